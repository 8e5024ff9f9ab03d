# SPDX-License-Identifier: Apache-2.0
"""`husk serve`: asynchronous calls as their clients use them. OpenFaaS's /async-function/NAME
with X-Callback-Url (to a listener the test runs), RFC 7240's Prefer: respond-async, the Lambda
Event invocation, the durable queue across a kill -9, retries and the on_failure destination,
the bounded queue, the refusal of callbacks to loopback unless --allow-callback names it, and
callback receivers that cannot be reached or never answer."""

import concurrent.futures
import http.client
import http.server
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from conftest import wait_for
from serve_harness import Daemon, free_port
from test_serve import shell_bundle
from test_serve_lambda import LAMBDA_HELLO, pack_root
from test_serve_pools import fn_get

CALL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class Listener:
    """An HTTP server on 127.0.0.1, in a thread: it keeps every POST it gets (path, headers
    with lower-case names, body) and answers 200."""

    def __init__(self):
        self.got = []
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers Expect: 100-continue at once

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer.cond:
                    outer.got.append((self.path, headers, body))
                    outer.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def posts(self, path):
        with self.cond:
            return [g for g in self.got if g[0] == path]

    def wait(self, path, n=1, timeout=15):
        """The POSTs to `path` once there are n of them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len([g for g in self.got if g[0] == path]) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"{n} POST(s) to {path} within {timeout}s; got {self.got}"
                self.cond.wait(left)
        return self.posts(path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    lis = Listener()
    yield lis
    lis.close()


def start_daemon(ctx, *args, state=None):
    d = Daemon(ctx, state or ctx.dir / "faas", args)
    d.start()
    return d


@pytest.fixture
def daemon(ctx):
    """A daemon whose callbacks may reach the listener on 127.0.0.1."""
    d = start_daemon(ctx, "--allow-callback", "127.0.0.1/32")
    yield d
    assert d.stop() in (0, None), d.log.read_text()


def deploy(daemon, name, script, **spec):
    b = shell_bundle(daemon.ctx, script, name=f"b-{name}")
    status, body = daemon.deploy(name=name, bundle=str(b.path), timeout=10, **spec)
    assert status == 201, body


def call_record(daemon, call_id):
    status, _, body = daemon.request("GET", f"/system/calls/{call_id}")
    assert status == 200, body
    return json.loads(body)


def wait_state(daemon, call_id, state, timeout=15):
    wait_for(lambda: call_record(daemon, call_id)["state"] == state, timeout,
             f"call {call_id} to be {state}")
    return call_record(daemon, call_id)


def submit(daemon, path, body=b"", headers=None, method="POST"):
    """A call on the front door: (status, every header as (name, value), body)."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def accepted(status, headers, body):
    """The call id of a 202: one X-Call-Id header, the one the JSON body names."""
    assert status == 202, body
    ids = [v for k, v in headers if k.lower() == "x-call-id"]
    assert len(ids) == 1 and CALL_ID.match(ids[0]), headers
    assert json.loads(body) == {"callId": ids[0]}
    return ids[0]


# ---------------------------------------------------------------------------------------------
# OpenFaaS: /async-function/NAME with X-Callback-Url


def test_async_function_calls_back_with_the_answer(ctx, daemon, listener):
    deploy(daemon, "greet", 'echo "hello $(cat) at $Http_Path $Http_Method"')
    cb = listener.url("/done")
    call_id = accepted(*submit(daemon, "/async-function/greet/sub/x", b"world",
                                      headers={"X-Callback-Url": cb}, method="PUT"))
    (path, headers, body), = listener.wait("/done")
    assert body == b"hello world at /sub/x PUT\n"
    assert headers["x-function-status"] == "200"
    assert headers["x-call-id"] == call_id
    assert headers["x-function-name"] == "greet"
    # recorded before it was sent: a caller called back finds the call finished
    rec = call_record(daemon, call_id)
    assert rec["state"] == "succeeded", rec
    assert rec["attempts"] == 1 and rec["status"] == 200 and rec["callback"] == cb, rec
    assert rec["result"] == "hello world at /sub/x PUT\n"
    # the CLI shows the same record, and the function's list of calls holds it
    r = daemon.fn("call", call_id)
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "succeeded", r
    r = daemon.fn("calls", "greet")
    assert r.returncode == 0 and [c["id"] for c in json.loads(r.stdout)] == [call_id], r
    # `husk fn invoke --async --callback`: stdin is the body, the call's id is printed
    r = daemon.fn("invoke", "greet", "--async", "--callback", cb, stdin=b"cli")
    assert r.returncode == 0, r
    cli_id = json.loads(r.stdout)["callId"]
    assert listener.wait("/done", 2)[1][1]["x-call-id"] == cli_id
    assert listener.posts("/done")[1][2] == b"hello cli at / POST\n"
    # one callback per call, no more
    time.sleep(0.5)
    assert len(listener.posts("/done")) == 2


def test_prefer_respond_async_is_a_202(ctx, daemon, listener):
    deploy(daemon, "pref", "cat")
    call_id = accepted(*submit(daemon, "/function/pref", b"later", headers={
        "Prefer": "respond-async", "X-Callback-Url": listener.url("/pref")}))
    (_, headers, body), = listener.wait("/pref")
    assert body == b"later" and headers["x-call-id"] == call_id
    # without the preference the same path answers at once
    status, _, body = daemon.request("POST", "/function/pref", b"now")
    assert status == 200 and body == b"now"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "127.0.0.1:1/x", "javascript:alert(1)"])
def test_an_invalid_callback_url_is_a_400(ctx, daemon, url):
    deploy(daemon, "cbbad", "cat")
    status, headers, body = daemon.request("POST", "/async-function/cbbad", b"x",
                                           headers={"X-Callback-Url": url})
    assert status == 400, body
    assert "X-Callback-Url" in json.loads(body)["error"]
    status, _, body = daemon.request("GET", "/system/calls?function=cbbad")
    assert status == 200 and json.loads(body) == [], body  # nothing was accepted


def test_unknown_function_is_a_404(ctx, daemon):
    status, _, body = daemon.request("POST", "/async-function/nothere", b"x")
    assert status == 404 and b"nothere" in body, body


# ---------------------------------------------------------------------------------------------
# durable: a 202 is a promise that outlives the daemon


def test_calls_accepted_before_kill9_run_after_the_restart(ctx, listener):
    """One call is running when the daemon is killed, another was answered 202 just before:
    the next start runs each, and each calls back once."""
    d = start_daemon(ctx, "--allow-callback", "127.0.0.1/32")
    try:
        deploy(d, "durable", "sleep 1; echo \"ran with $(cat)\"")
        cb = {"X-Callback-Url": listener.url("/cb")}
        running = accepted(*submit(d, "/async-function/durable", b"first", headers=cb))
        wait_state(d, running, "running")
        queued = accepted(*submit(d, "/async-function/durable", b"second", headers=cb))
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL
        assert listener.posts("/cb") == []
        d.start()  # the same state directory
        got = {h["x-call-id"]: (h["x-function-status"], body) for _, h, body in
               listener.wait("/cb", 2)}
        assert got == {running: ("200", b"ran with first\n"),
                       queued: ("200", b"ran with second\n")}, got
        assert wait_state(d, running, "succeeded")["result"] == "ran with first\n"
        assert wait_state(d, queued, "succeeded")["result"] == "ran with second\n"
        assert "2 asynchronous calls to run from an earlier run" in d.log.read_text()
        time.sleep(1.5)  # long enough for a second run to call back: there is none
        assert len(listener.posts("/cb")) == 2
    finally:
        assert d.stop() in (0, None), d.log.read_text()


# ---------------------------------------------------------------------------------------------
# failures: retried twice, then recorded and sent to on_failure


def test_a_failing_call_is_tried_three_times_then_sent_to_on_failure(ctx, daemon, listener):
    deploy(daemon, "flaky", "echo attempt >&2; echo broken; exit 3",
           on_failure=listener.url("/failed"))
    start = time.monotonic()
    call_id = accepted(*submit(daemon, "/async-function/flaky", b"x",
                                       headers={"X-Callback-Url": listener.url("/cb")}))
    (_, headers, body), = listener.wait("/failed", timeout=20)
    elapsed = time.monotonic() - start
    assert elapsed >= 3, f"retries 1 s and 2 s apart, all done in {elapsed:.1f}s"
    record = json.loads(body)
    assert headers["x-call-id"] == call_id
    assert headers["content-type"] == "application/json"
    assert record["requestContext"] == {"requestId": call_id, "functionName": "flaky",
                                        "condition": "RetriesExhausted",
                                        "approximateInvokeCount": 3}, record
    assert record["responseContext"]["statusCode"] == 500, record
    # the caller's callback gets the last answer once, with the failing status
    (_, headers, body), = listener.wait("/cb")
    assert headers["x-function-status"] == "500" and b"broken" in body, (headers, body)
    r = daemon.fn("call", call_id)
    assert r.returncode == 0, r
    rec = json.loads(r.stdout)
    assert rec["state"] == "failed" and rec["attempts"] == 3 and rec["status"] == 500, rec
    # three runs of the function, in its log
    r = daemon.fn("logs", "flaky")
    assert r.stdout.count(b"attempt") == 3, r.stdout


def test_a_call_that_succeeds_is_not_sent_to_on_failure(ctx, daemon, listener):
    deploy(daemon, "fine", "echo ok", on_failure=listener.url("/failed"))
    call_id = accepted(*submit(daemon, "/async-function/fine", b"",
                                       headers={"X-Callback-Url": listener.url("/cb")}))
    listener.wait("/cb")
    assert wait_state(daemon, call_id, "succeeded")["attempts"] == 1
    time.sleep(0.5)
    assert listener.posts("/failed") == []


# ---------------------------------------------------------------------------------------------
# bounds and the callback policy


def test_a_full_queue_answers_429(ctx):
    d = start_daemon(ctx, "--max-async-queue", "1")
    try:
        deploy(d, "slow", "sleep 2; echo done")
        first = accepted(*submit(d, "/async-function/slow", b""))
        status, headers, body = d.request("POST", "/async-function/slow", b"")
        assert status == 429, body
        assert headers.get("Retry-After") == "1" and "queue is full" in json.loads(body)["error"]
        status, headers, body = d.request("POST", "/function/slow", b"",
                                          headers={"Prefer": "respond-async"})
        assert status == 429, body
        # the Lambda Event door says it as Lambda does
        status, headers, body = d.request("POST", "/2015-03-31/functions/slow/invocations", b"{}",
                                          headers={"X-Amz-Invocation-Type": "Event"})
        assert status == 429, body
        assert headers.get("X-Amzn-ErrorType") == "TooManyRequestsException", headers
        # once the first is done, there is room again
        wait_state(d, first, "succeeded")
        accepted(*submit(d, "/async-function/slow", b""))
    finally:
        assert d.stop() in (0, None), d.log.read_text()


def test_a_callback_to_loopback_is_refused_by_default(ctx, listener):
    d = start_daemon(ctx)  # no --allow-callback
    try:
        deploy(d, "cbloop", "echo secret")
        call_id = accepted(*submit(d, "/async-function/cbloop", b"",
                                      headers={"X-Callback-Url": listener.url("/cb")}))
        rec = wait_state(d, call_id, "succeeded")
        assert rec["result"] == "secret\n"
        refusal = f"callback to '{listener.url('/cb')}' refused"
        wait_for(lambda: refusal in d.log.read_text(), 10, "the refusal in the daemon's log")
        line = [ln for ln in d.log.read_text().splitlines() if refusal in ln][0]
        assert "warning" in line and call_id in line and "--allow-callback" in line, line
        # and on the IPv6 loopback and the link-local range alike
        for url in ("http://[::1]:9/x", "http://169.254.169.254/latest/meta-data/"):
            call_id = accepted(*submit(d, "/async-function/cbloop", b"",
                                          headers={"X-Callback-Url": url}))
            wait_state(d, call_id, "succeeded")
            wait_for(lambda: f"asynchronous call {call_id}: callback to '{url}' refused"
                     in d.log.read_text(), 10, f"the refusal of {url}")
        assert listener.posts("/cb") == []
    finally:
        assert d.stop() in (0, None), d.log.read_text()


# ---------------------------------------------------------------------------------------------
# callback receivers that fail: the call ends anyway, recorded; the failure is logged, once


class Silent:
    """A receiver on 127.0.0.1 that accepts connections and never answers: it keeps the time of
    each accept, and notes each connection the other side closed."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted, self.closed = [], []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(time.monotonic())
            threading.Thread(target=self.hold, args=(conn,), daemon=True).start()

    def hold(self, conn):
        with conn:
            while conn.recv(65536):  # the request, read and never answered
                pass
            self.closed.append(time.monotonic())

    def close(self):
        self.sock.close()


def fd_count(daemon):
    return len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))


def steady_fds(daemon):
    """The daemon's open fds without the connections of requests just answered (closed on
    its side a moment after the client's): the fewest seen in a second."""
    counts = []
    for _ in range(10):
        counts.append(fd_count(daemon))
        time.sleep(0.1)
    return min(counts)


def assert_fds(daemon, baseline):
    try:
        wait_for(lambda: fd_count(daemon) <= baseline, 5, f"{baseline} fds open")
    except AssertionError:
        fds = {f: os.readlink(f"/proc/{daemon.proc.pid}/fd/{f}")
               for f in os.listdir(f"/proc/{daemon.proc.pid}/fd")}
        raise AssertionError(f"{len(fds)} fds open, {baseline} before: {fds}") from None


def warmed(daemon, listener, name):
    """The function deployed and called once asynchronously, its callback answered: the
    daemon's open fds from here on are its steady state (an idle instance, the work threads)."""
    deploy(daemon, name, "echo \"done $(cat)\"")
    call_id = accepted(*submit(daemon, f"/async-function/{name}", b"warm",
                               headers={"X-Callback-Url": listener.url("/warm")}))
    listener.wait("/warm")
    wait_state(daemon, call_id, "succeeded")
    return steady_fds(daemon)


def callback_warning(daemon, call_id, timeout):
    """The daemon's warning that the callback of call_id failed, once it is logged."""
    def line():
        return [ln for ln in daemon.log.read_text().splitlines()
                if f"asynchronous call {call_id}: callback to" in ln]
    lines = wait_for(line, timeout, f"the warning about call {call_id}'s callback")
    assert len(lines) == 1 and "warning" in lines[0], lines
    return lines[0]


def test_an_unreachable_callback_is_logged_and_the_call_succeeds(ctx, daemon, listener):
    baseline = warmed(daemon, listener, "nocb")
    url = f"http://127.0.0.1:{free_port()}/nobody"  # allowed, and nobody listens there
    call_id = accepted(*submit(daemon, "/async-function/nocb", b"x",
                               headers={"X-Callback-Url": url}))
    # the call ended where its function did: the record is written before the callback goes
    rec = wait_state(daemon, call_id, "succeeded", timeout=5)
    assert rec["result"] == "done x\n" and rec["attempts"] == 1, rec
    # other calls go on meanwhile
    status, _, body = daemon.request("POST", "/function/nocb", b"sync")
    assert status == 200 and body == b"done sync\n", body
    line = callback_warning(daemon, call_id, 10)  # three tries, 1 s apart
    assert f"callback to '{url}'" in line and "connect" in line.lower(), line
    # the function is not run again for its callback's sake, and the record stands
    time.sleep(1)
    rec = call_record(daemon, call_id)
    assert rec["state"] == "succeeded" and rec["attempts"] == 1, rec
    assert_fds(daemon, baseline)


def test_a_callback_receiver_that_never_answers(ctx, daemon, listener):
    """A try of the callback is cut after 10 s; meanwhile the other callbacks and calls go on;
    a stop of the daemon does not wait for the silent receiver, and closes its connection."""
    warmed(daemon, listener, "slowcb")
    silent = Silent()
    try:
        start = time.monotonic()
        url = silent.url("/never")
        call_id = accepted(*submit(daemon, "/async-function/slowcb", b"x",
                                   headers={"X-Callback-Url": url}))
        assert wait_state(daemon, call_id, "succeeded", timeout=5)["result"] == "done x\n"
        wait_for(lambda: silent.accepted, 5, "the callback to connect")
        # the daemon answers other calls, and another call's callback arrives at once
        status, _, body = daemon.request("POST", "/function/slowcb", b"sync")
        assert status == 200 and body == b"done sync\n", body
        other = accepted(*submit(daemon, "/async-function/slowcb", b"other",
                                 headers={"X-Callback-Url": listener.url("/other")}))
        (_, headers, body), = listener.wait("/other", timeout=5)
        assert headers["x-call-id"] == other and body == b"done other\n"
        assert time.monotonic() - start < 10, "the other callback waited for the silent one"
        # the first try is cut at 10 s, and the second one connects
        wait_for(lambda: len(silent.accepted) == 2, 15, "the second try")
        took = time.monotonic() - start
        assert 10 <= took < 14, f"the first try lasted {took:.1f}s"
        wait_for(lambda: len(silent.closed) >= 1, 5, "the first try's connection closed")
        # a stop cuts the callback in flight short, and says so
        t0 = time.monotonic()
        assert daemon.stop() == 0, daemon.log.read_text()
        assert time.monotonic() - t0 < 5, "the stop waited for the silent receiver"
        line = callback_warning(daemon, call_id, 5)
        assert f"callback to '{url}'" in line and "daemon's stop" in line, line
        assert len(silent.accepted) == 2, silent.accepted
        wait_for(lambda: len(silent.closed) == 2, 5, "the daemon to close each connection")
    finally:
        silent.close()


# ---------------------------------------------------------------------------------------------
# Lambda's Event invocation


def test_lambda_event_runs_the_function(ctx, daemon):
    deploy(daemon, "ev", "echo \"event $(cat)\"")
    status, headers, body = daemon.request("POST", "/2015-03-31/functions/ev/invocations",
                                           b'{"k":1}', headers={"X-Amz-Invocation-Type": "Event"})
    assert status == 202 and body == b"", body
    call_id = headers["X-Amzn-RequestId"]
    assert CALL_ID.match(call_id), headers
    rec = wait_state(daemon, call_id, "succeeded")
    assert rec["result"] == 'event {"k":1}\n', rec
    r = daemon.fn("calls", "ev")
    assert r.returncode == 0, r
    assert [(c["id"], c["state"]) for c in json.loads(r.stdout)] == [(call_id, "succeeded")]


def test_lambda_event_over_256k_is_413(ctx, daemon):
    deploy(daemon, "evbig", "cat >/dev/null; echo ran")
    big = b'"' + b"x" * (256 << 10) + b'"'
    status, headers, body = daemon.request("POST", "/2015-03-31/functions/evbig/invocations",
                                           big, headers={"X-Amz-Invocation-Type": "Event"})
    assert status == 413, body
    assert headers["X-Amzn-ErrorType"] == "RequestTooLargeException"
    assert "262144 bytes" in json.loads(body)["message"]
    status, _, body = daemon.request("GET", "/system/calls?function=evbig")
    assert json.loads(body) == [], body
    # the same payload as a RequestResponse call is within the function's max_body
    status, _, body = daemon.request("POST", "/2015-03-31/functions/evbig/invocations", big)
    assert status == 200 and body == b"ran\n", body


# ---------------------------------------------------------------------------------------------
# the record of each call ends where its call ended


def test_every_call_of_a_burst_ends_succeeded(ctx, daemon):
    """A fast function and a burst of calls: each call's records (running, then succeeded) are
    written by work threads in any order; the last state must win, or a call stays 'running'
    for ever, and runs again at the next start."""
    root = pack_root(ctx, "hello", LAMBDA_HELLO)
    status, body = daemon.deploy(name="burst", dir=str(root), command=[LAMBDA_HELLO],
                                 contract="lambda", min=4, timeout=10)
    assert status == 201, body
    wait_for(lambda: fn_get(daemon, "burst")["instances"]["idle"] == 4, 10, "warm instances")

    def submit_50(_):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        got = []
        for _ in range(50):
            conn.request("POST", "/async-function/burst", body=b"{}")
            r = conn.getresponse()
            got.append(accepted(r.status, r.getheaders(), r.read()))
        conn.close()
        return got

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = [i for got in pool.map(submit_50, range(4)) for i in got]

    def unfinished():
        return {i: s for i in ids if (s := call_record(daemon, i)["state"]) != "succeeded"}

    try:
        wait_for(lambda: not unfinished(), 15, "every call to succeed")
    finally:
        left = unfinished()
        assert not left, f"{len(left)} of 200 calls not recorded as succeeded: {left}"
