# SPDX-License-Identifier: Apache-2.0
"""`husk serve` on every core: front loops (--loops N, one per core by default) accept the front
door's connections and serve warm calls of http functions themselves; every other request goes
to the main loop with its connection. A user sees one daemon: each call answered, counted and
logged once, instances idle and stop as they would, a redeploy or a stop loses no call."""

import contextlib
import datetime
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import HUSK, wait_for
from serve_harness import Daemon
from test_serve import daemon, shell_bundle  # noqa: F401  (daemon: the fixture)
from test_serve_loop import READ_HEAD, fn_get, http_bundle

EXAMPLES = Path(HUSK).resolve().parent / "examples" / "functions"
CORES = os.cpu_count() or 1


@pytest.fixture
def hello(ctx):
    """http-hello (a keep-alive HTTP/1.1 server in C) packed into an erofs image."""
    image = ctx.dir / "http-hello.erofs"
    prog = EXAMPLES / "http-hello"
    r = subprocess.run([HUSK, "pack", "-f", "erofs", "-o", str(image), str(prog)],
                       capture_output=True, text=True, env=ctx.env())
    assert r.returncode == 0, r.stderr
    return image, str(prog)


def deploy_hello(daemon, hello, name="hh", **spec):
    image, prog = hello
    status, body = daemon.deploy(name=name, image=str(image), contract="http",
                                 command=[prog], **spec)
    assert status == 201, body


@contextlib.contextmanager
def hh_and_echo(ctx, hello, **kw):
    """A daemon of its own with an http function (hh) and a stdio one (echo) deployed."""
    d = Daemon(ctx, ctx.dir / "faas", **kw)
    d.start()
    try:
        deploy_hello(d, hello)
        b = shell_bundle(ctx, 'printf "echo:"; cat', "echo")
        assert d.deploy(name="echo", bundle=str(b.path))[0] == 201
        yield d
    finally:
        assert d.stop() in (0, None), d.log.read_text()


def exchange(port, data):
    """Everything the daemon answers to data sent in one write, until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def loop_threads(pid):
    """{tid: name} of the daemon's front loops."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:
            continue
        if name.startswith("husk-loop-"):
            out[int(tid)] = name
    return out


def run_ns(pid, tid):
    return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])


def hammer(daemon, path, conns, calls):
    """conns keep-alive connections, calls GETs each, in parallel: [(status, request id, body)]."""
    results, errors = [], []

    def one():
        c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        try:
            for _ in range(calls):
                c.request("GET", path)
                r = c.getresponse()
                results.append((r.status, r.getheader("X-Request-Id"), r.read()))
        except OSError as e:
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=one) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def function_log(daemon, name):
    text, since = b"", 0
    while True:
        status, headers, body = daemon.request("GET", f"/system/logs/{name}?since={since}")
        assert status == 200, body
        text += body
        nxt = int(headers.get("X-Log-Offset", since))
        if nxt == since or not body:
            return text.decode()
        since = nxt


def metric(daemon, name, labels):
    status, _, body = daemon.request("GET", "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.skipif(CORES < 2, reason="one core: the main loop serves the front door alone")
def test_a_loop_per_core_serves_the_calls_each_counted_and_logged_once(ctx, daemon, hello):
    assert f"{CORES} loops serve the front door" in daemon.log.read_text()
    pid = daemon.proc.pid
    loops = loop_threads(pid)
    assert sorted(loops.values()) == [f"husk-loop-{i}" for i in range(1, CORES + 1)]
    deploy_hello(daemon, hello)
    assert daemon.request("GET", "/function/hh")[0] == 200  # its cold start
    before = {tid: run_ns(pid, tid) for tid in loops}
    started = time.time()
    calls = hammer(daemon, "/function/hh", 16, 60)
    assert len(calls) == 960 and {s for s, _, _ in calls} == {200}
    # each answer is its own request's, as the function saw it (its id passed on)
    assert all(f"x-request-id: {rid}\n".encode() in b for _, rid, b in calls), calls[0]
    busy = [loops[t] for t in loops if run_ns(pid, t) > before[t]]
    assert len(busy) == CORES, f"only {busy} of {CORES} loops ran while 16 connections called"
    # Each call once in the function's log and the metrics, as the main loop's would be.
    ids = [rid for _, rid, _ in calls]
    assert len(set(ids)) == len(ids)
    log = wait_for(lambda: (t := function_log(daemon, "hh")).count("REPORT RequestId") >= 961
                   and t, timeout=10, what="961 REPORT lines")
    reported = re.findall(r"REPORT RequestId: (\S+)\t.*\tStatus: 200", log)
    assert len(reported) == 961 and set(ids) <= set(reported)
    # Each line says when (UTC, to the millisecond), which instance and which call.
    lines = re.findall(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\S+) (\S+) report "
                       r"REPORT RequestId: (\S+)\t", log, re.M)
    assert len(lines) == 961
    stamps = [datetime.datetime.strptime(w, "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp() for w, _, rid, rep in lines if rid in ids]
    assert all(rid == rep and inst.startswith("hh-") for _, inst, rid, rep in lines), lines[:3]
    assert len(stamps) == 960 and all(started - 1 < t < time.time() + 1 for t in stamps), \
        (started, stamps[:3])
    assert metric(daemon, "husk_invocations_total", {"function": "hh", "status": 200}) == 961


@pytest.mark.skipif(CORES < 2, reason="one core: the main loop serves the front door alone")
def test_a_connection_the_main_loop_answered_goes_back_to_its_front_loop(ctx, hello):
    """A stdio call is the main loop's: its connection goes there, and back to its front loop
    once answered, so the http calls after it are a front loop's again (the daemon's debug
    line for each request names the loop that routed it)."""
    with hh_and_echo(ctx, hello, husk_args=["--debug"]) as d:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        sent = []
        for i, (method, path, body) in enumerate(
                [("GET", "/function/hh", None), ("POST", "/function/echo", b"abc")] +
                [("GET", "/function/hh", None)] * 3 + [("POST", "/function/echo", b"abc")] +
                [("GET", "/function/hh", None)] * 3):
            rid = f"back-{i}"
            c.request(method, path, body=body, headers={"X-Request-Id": rid})
            r = c.getresponse()
            assert r.status == 200 and r.read(), (path, r.status)
            sent.append((path, rid))
        c.close()
        # a pipelined pair: the main loop answers the first, its front loop reads the second
        data = exchange(d.port, b"POST /function/echo HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 2\r\nX-Request-Id: back-p1\r\n\r\nhi"
                        b"GET /function/hh HTTP/1.1\r\nHost: x\r\nX-Request-Id: back-p2\r\n"
                        b"Connection: close\r\n\r\n")
        assert data.count(b"HTTP/1.1 200") == 2 and b"echo:hi" in data, data
        sent += [("/function/echo", "back-p1"), ("/function/hh", "back-p2")]
        log = d.log.read_text()
        loops = dict(re.findall(r"request (back-\S+) \(loop (\d+)\)", log))
        for path, rid in sent:  # each read by a front loop (1..N), none by the main loop (0)
            assert loops.get(rid, "0") != "0", (path, rid, loops, log[-2000:])


@pytest.mark.parametrize("loops", [None, "1"])
def test_any_request_on_a_front_loops_connection_is_answered(ctx, hello, loops):
    """Admin, stdio, health and unknown paths go to the main loop with the connection (the
    request already read, pipelined ones behind it); the http calls before and after them are
    answered in order, as with the main loop alone."""
    with hh_and_echo(ctx, hello, args=["--loops", loops] if loops else []) as d:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        for method, path, body, want in (
                ("GET", "/function/hh", None, (200, b"method: GET\npath: /\n")),
                ("POST", "/function/echo", b"abc", (200, b"echo:abc")),
                ("GET", "/_/health", None, (200, b"OK")),
                ("GET", "/function/hh/x?y=1", None, (200, b"method: GET\npath: /x?y=1\n")),
                ("GET", "/function/nope", None, (404, b"")),
                ("GET", "/system/functions", None, (403, b"")),
                ("POST", "/function/hh", b"12345", (200, b"method: POST\npath: /\n")),
                ("GET", "/function/hh", None, (200, b"method: GET\npath: /\n"))):
            c.request(method, path, body=body)
            r = c.getresponse()
            got = r.read()
            assert r.status == want[0] and got.startswith(want[1]), (path, r.status, got)
        c.close()
        # Three requests in one write: an http call, a stdio call, an http call.
        data = exchange(d.port, b"GET /function/hh HTTP/1.1\r\nHost: x\r\n\r\n"
                        b"POST /function/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
                        b"GET /function/hh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = re.findall(rb"HTTP/1.1 (\d+) [^\r]*\r\n.*?\r\n\r\n(method: GET|echo:hi)",
                             data, re.S)
        assert [(int(s), b) for s, b in answers] == \
            [(200, b"method: GET"), (200, b"echo:hi"), (200, b"method: GET")], data


def test_an_instance_is_free_again_before_its_caller_has_the_answer(ctx, daemon, hello):
    """The pool counts a call as ended before its answer's last bytes go: a caller that asks
    anything as soon as it has the answer (the function's state, another call on another
    connection) finds the instance idle, never busy with the call it already has the answer
    of (which, at concurrency 1, would queue the next call or start another instance)."""
    deploy_hello(daemon, hello)
    assert daemon.request("GET", "/function/hh")[0] == 200  # its cold start
    busy = []
    for _ in range(300):
        assert daemon.request("GET", "/function/hh")[0] == 200
        status, _, body = daemon.request("GET", "/system/functions/hh")
        busy.append(json.loads(body)["instances"]["busy"])
    assert busy == [0] * 300, f"{sum(busy)} of 300 answers came before their call had ended"
    assert metric(daemon, "husk_cold_starts_total", {"function": "hh"}) == 1


def test_an_instance_front_loops_keep_busy_stays_and_then_idles_out(ctx, daemon, hello):
    """Calls served by front loops move none of the main loop's timers: a steady stream for
    three times the idle time keeps its one instance (no call lost, no new start), and once
    the calls stop it stops after its idle time."""
    deploy_hello(daemon, hello, idle=1)
    assert daemon.request("GET", "/function/hh")[0] == 200  # its cold start
    until = time.monotonic() + 3
    calls = []
    while time.monotonic() < until:
        calls += hammer(daemon, "/function/hh", 4, 20)
    assert calls and {s for s, _, _ in calls} == {200}
    assert metric(daemon, "husk_cold_starts_total", {"function": "hh"}) == 1
    assert fn_get(daemon, "hh")["instances"]["idle"] == 1
    wait_for(lambda: sum(fn_get(daemon, "hh")["instances"].values()) == 0, timeout=10,
             what="the idle instance to stop")
    assert daemon.request("GET", "/function/hh")[0] == 200
    assert metric(daemon, "husk_cold_starts_total", {"function": "hh"}) == 2


def test_a_redeploy_while_front_loops_call_loses_no_call(ctx, daemon, hello):
    deploy_hello(daemon, hello, min=1)
    stop, results = threading.Event(), []

    def caller():
        c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        while not stop.is_set():
            c.request("GET", "/function/hh")
            r = c.getresponse()
            results.append((r.status, r.read()))
        c.close()

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for v in (2, 3):
            time.sleep(0.5)
            deploy_hello(daemon, hello, min=1)
            assert fn_get(daemon, "hh")["version"] == v
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    bad = [r for r in results if r[0] != 200]
    assert results and not bad, bad[:3]
    status, _, body = daemon.request("DELETE", "/system/functions/hh")
    assert status == 204, body
    wait_for(lambda: not any(os.path.isdir(p) for p in Path("/sys/fs/cgroup").glob(
        f"*/husk/*/hh-v*")), timeout=15, what="the instances' cgroups to go")


def test_a_front_loop_call_past_its_timeout_is_a_504_and_its_instance_goes(ctx, daemon):
    handler = ("read -r line\n" + READ_HEAD +
               'case "$line" in *slow*) sleep 30;; esac\n'
               "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n'\n")
    b = http_bundle(ctx, "tmo", handler)
    assert daemon.deploy(name="tmo", bundle=str(b.path), contract="http", timeout=1)[0] == 201
    assert daemon.request("GET", "/function/tmo")[0] == 200
    start = time.monotonic()
    status, _, body = daemon.request("GET", "/function/tmo/slow")
    assert status == 504 and b"timed out" in body and time.monotonic() - start < 10, body
    assert daemon.request("GET", "/function/tmo")[0] == 200  # a new instance
    log = function_log(daemon, "tmo")
    assert len(set(re.findall(r" (tmo-v1-\d+) ", log))) >= 2, log[-2000:]


def test_a_stop_finishes_the_calls_front_loops_are_serving(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    handler = READ_HEAD + "sleep 1; printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n'\n"
    b = http_bundle(ctx, "slow", handler)
    assert d.deploy(name="slow", bundle=str(b.path), contract="http")[0] == 201
    assert d.request("GET", "/function/slow")[0] == 200
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        d.request("GET", "/function/slow")[0])) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    start = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0, d.log.read_text()
    for t in threads:
        t.join()
    assert results == [200] * 4 and time.monotonic() - start < 10


@pytest.mark.parametrize("value", ["0", "257", "many"])
def test_a_bad_loops_value_is_refused(ctx, value):
    r = subprocess.run([HUSK, "serve", "--loops", value, "--check-config"], capture_output=True,
                       text=True, env=ctx.env(), timeout=30)
    assert r.returncode != 0 and "--loops" in r.stderr, r.stderr
