# SPDX-License-Identifier: Apache-2.0
"""Every contract streams: an answer reaches the client as the function writes it, a request
body reaches the function as the client sends it, at the pace of the slower side, and the
daemon holds neither whole. A function that fails once its answer began cuts the body off."""

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HUSK
from serve_harness import Daemon
from test_serve import shell_bundle
from test_serve_loop import READ_HEAD, http_bundle
from test_serve_security import status_field

EXAMPLES = Path(HUSK).resolve().parent / "examples" / "functions"


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    yield d
    assert d.stop() in (0, None), d.log.read_text()


# A sanitizer's own memory (ASan's quarantine of freed buffers, TSan's shadow) says nothing
# about what the daemon holds: the peak is compared only in plain builds.
SANITIZED = "ASAN_OPTIONS" in os.environ or "TSAN_OPTIONS" in os.environ


def peak_kb(daemon):
    return int(status_field(daemon.proc.pid, "VmHWM")[0])


def stream_get(daemon, path, method="GET", body=None, headers=None):
    """The response, its first line with when it came, and the rest with when it ended."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    first = r.readline()
    t_first = time.monotonic()
    rest = r.read()
    t_end = time.monotonic()
    conn.close()
    return r, first, rest, t_end - t_first


def test_a_stdio_answer_streams_as_the_function_writes_it(ctx, daemon):
    b = shell_bundle(ctx, "echo line1; sleep 1; echo line2")
    assert daemon.deploy(name="lines", bundle=str(b.path))[0] == 201
    r, first, rest, gap = stream_get(daemon, "/function/lines")
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    assert (first, rest) == (b"line1\n", b"line2\n")
    assert gap > 0.5, "the first line came only when the function ended"


def test_a_quick_stdio_answer_is_whole_with_its_exit_status(ctx, daemon):
    b = shell_bundle(ctx, "echo hi")
    assert daemon.deploy(name="quick", bundle=str(b.path))[0] == 201
    status, headers, body = daemon.request("GET", "/function/quick")
    assert (status, body, headers["Content-Length"]) == (200, b"hi\n", "3")
    b = shell_bundle(ctx, "echo partial; exit 3", name="fails")
    assert daemon.deploy(name="fails", bundle=str(b.path))[0] == 201
    status, _, body = daemon.request("GET", "/function/fails")
    assert status == 500 and b"exited with status 3" in body and b"partial" in body


def test_a_function_failing_mid_stream_cuts_the_body_off(ctx, daemon):
    b = shell_bundle(ctx, "echo first; sleep 0.5; echo second; exit 3")
    assert daemon.deploy(name="breaks", bundle=str(b.path))[0] == 201
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    conn.request("GET", "/function/breaks")
    r = conn.getresponse()
    assert r.status == 200 and r.readline() == b"first\n"
    with pytest.raises(http.client.IncompleteRead):
        r.read()  # never a clean end: the client knows the answer is broken
    conn.close()
    log = daemon.fn("logs", "breaks").stdout.decode()
    assert "exited with status 3" in log, log


def test_cgi_streams_after_its_header_block(ctx, daemon):
    b = shell_bundle(ctx, "printf 'Status: 201 Created\\r\\nContent-Type: text/x-lines\\r\\n"
                          "X-Mine: 1\\r\\n\\r\\n'; echo a; sleep 1; echo b")
    assert daemon.deploy(name="cgi", bundle=str(b.path), contract="cgi")[0] == 201
    r, first, rest, gap = stream_get(daemon, "/function/cgi")
    assert (r.status, r.getheader("Content-Type"), r.getheader("X-Mine")) == \
        (201, "text/x-lines", "1")
    assert (first, rest) == (b"a\n", b"b\n") and gap > 0.5


def test_an_http_function_streams(ctx, daemon):
    b = http_bundle(ctx, "chunks", READ_HEAD +
                    "printf 'HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
                    "6\\r\\nline1\\n\\r\\n'; sleep 1; printf '6\\r\\nline2\\n\\r\\n0\\r\\n\\r\\n'\n")
    assert daemon.deploy(name="chunks", bundle=str(b.path), contract="http")[0] == 201
    r, first, rest, gap = stream_get(daemon, "/function/chunks")
    assert r.status == 200 and (first, rest) == (b"line1\n", b"line2\n") and gap > 0.5


def test_large_http_answers_arrive_whole_and_at_once(ctx, daemon):
    """A server that writes its answer faster than the client takes it (8 MiB at once): each
    answer arrives whole, and none waits for the call's deadline. The daemon stops reading the
    server while 1 MiB is queued for the client; when its own send then emptied that queue, no
    event would ever say so (the client's socket never filled), and the call hung until its
    timeout with part of the body sent."""
    size = 8 << 20
    b = http_bundle(ctx, "big", READ_HEAD +
                    f"printf 'HTTP/1.1 200 OK\\r\\nContent-Length: {size}\\r\\n"
                    f"Connection: close\\r\\n\\r\\n'; head -c {size} /dev/zero\n")
    assert daemon.deploy(name="big", bundle=str(b.path), contract="http", timeout=30)[0] == 201
    for _ in range(6):
        start = time.monotonic()
        status, _, body = daemon.request("GET", "/function/big", timeout=60)
        took = time.monotonic() - start
        assert status == 200 and len(body) == size, (status, len(body))
        assert took < 15, f"an 8 MiB answer took {took:.1f} s"


def expect_continue(daemon, path, length, body=True):
    """A client that sends `Expect: 100-continue` and waits for the 100 before its body, as
    curl does for large bodies (for a second) and many SDKs do: what came before the body, and
    the final answer's head and body."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                  "Expect: 100-continue\r\n\r\n".encode())
        first = read_until(s, b"", b"\r\n\r\n", "an interim or final answer")
        if first.startswith(b"HTTP/1.1 100 ") and body:
            s.sendall(b"x" * length)
        buf = first
        if first.startswith(b"HTTP/1.1 100 "):
            buf = read_until(s, first.split(b"\r\n\r\n", 1)[1], b"\r\n\r\n", "the answer")
        head, _, rest = buf.partition(b"\r\n\r\n")
        want = int(next((ln.split(b":")[1] for ln in head.split(b"\r\n")
                         if ln.lower().startswith(b"content-length:")), b"0"))
        while len(rest) < want:
            got = s.recv(65536)
            if not got:
                break
            rest += got
        return first, head, rest
    finally:
        s.close()


@pytest.mark.parametrize("length", [100, 1 << 20])  # a buffered body, and a streamed one
def test_expect_100_continue_is_answered_before_the_body(ctx, daemon, length):
    """The daemon says `100 Continue` as it starts reading the body: a client that waits for it
    does not wait for nothing (curl waited a second on every upload of 1 MiB or more)."""
    b = shell_bundle(ctx, "wc -c", name="count")
    assert daemon.deploy(name="count", bundle=str(b.path), max_body=4 << 20)[0] == 201
    first, head, rest = expect_continue(daemon, "/function/count", length)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert rest.strip() == str(length).encode()


def test_expect_100_continue_gets_the_refusal_instead(ctx, daemon):
    """A declared body over max_body is refused on the head alone, at once and without a 100:
    the client never sends it."""
    b = shell_bundle(ctx, "wc -c", name="small")
    assert daemon.deploy(name="small", bundle=str(b.path), max_body=1 << 10)[0] == 201
    first, head, _ = expect_continue(daemon, "/function/small", 1 << 20, body=False)
    assert first.startswith(b"HTTP/1.1 413 "), first


def test_bodiless_answers_carry_no_length(ctx, daemon):
    """204 and 304 from a function reach the client without a Content-Length (RFC 9110 8.6) or
    a body, a HEAD answer without an invented length, and the connection serves the next call."""
    b = http_bundle(ctx, "bodiless", READ_HEAD +
                    "printf 'HTTP/1.1 %s\\r\\nETag: \"e\"\\r\\nConnection: close\\r\\n\\r\\n' "
                    "\"$(cat /srv/app/status)\"\n")
    (b.rootfs / "srv" / "app" / "status").write_text("204 No Content")
    assert daemon.deploy(name="bodiless", bundle=str(b.path), contract="http")[0] == 201
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=15)
    try:
        for method in ("GET", "HEAD", "GET"):
            conn.request(method, "/function/bodiless")
            r = conn.getresponse()
            assert r.status == 204 and r.read() == b""
            assert r.getheader("Content-Length") is None, r.getheaders()
            assert r.getheader("Transfer-Encoding") is None, r.getheaders()
    finally:
        conn.close()
    (b.rootfs / "srv" / "app" / "status").write_text("304 Not Modified")
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=15)
    try:
        for _ in range(2):
            conn.request("GET", "/function/bodiless", headers={"If-None-Match": '"e"'})
            r = conn.getresponse()
            assert r.status == 304 and r.read() == b"" and r.getheader("ETag") == '"e"'
            assert r.getheader("Content-Length") is None, r.getheaders()
    finally:
        conn.close()


def read_until(sock, buf, want, what):
    while want not in buf:
        got = sock.recv(65536)
        assert got, f"the connection closed before {what}: {buf!r}"
        buf += got
    return buf


def duplex(daemon, path):
    """Send a chunked body a line at a time; the function's answer to the first line must come
    before the second is sent (a body held whole until its end never lets it)."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=15)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "2\r\na\n\r\n".encode())
        buf = read_until(s, b"", b"got a", "the answer to the first line")
        s.sendall(b"2\r\nb\n\r\n0\r\n\r\n")
        buf = read_until(s, buf, b"got b", "the answer to the second line")
        assert buf.startswith(b"HTTP/1.1 200 "), buf
    finally:
        s.close()


def test_a_request_body_streams_into_a_stdio_function(ctx, daemon):
    b = shell_bundle(ctx, 'while read l; do echo "got $l"; done')
    assert daemon.deploy(name="duplex", bundle=str(b.path))[0] == 201
    duplex(daemon, "/function/duplex")


def test_a_request_body_streams_into_an_http_function(ctx, daemon):
    # the server answers at once, then echoes each chunk of the body as it comes
    handler = READ_HEAD + (
        "printf 'HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n'\n"
        "while IFS= read -r size; do size=$(printf %s \"$size\" | tr -d '\\r')\n"
        "  [ -z \"$size\" ] && continue\n"  # the CRLF that ends a chunk of \"a\\n\"
        "  [ \"$size\" = 0 ] && break\n"
        "  IFS= read -r data\n"
        "  out=\"got $data\"; printf '%x\\r\\n%s\\r\\n' ${#out} \"$out\"\n"
        "done\nprintf '0\\r\\n\\r\\n'\n")
    b = http_bundle(ctx, "echoer", handler)
    assert daemon.deploy(name="echoer", bundle=str(b.path), contract="http")[0] == 201
    duplex(daemon, "/function/echoer")


def test_a_sized_body_reaches_an_http_function_sized(ctx, daemon):
    """A body the client sized (Content-Length) streams to an http function with that length,
    not re-chunked: many servers (Python's http.server, the http-hello example) take no chunked
    request body. A chunked body stays chunked."""
    handler = (
        "len=0; te=\n"
        "while IFS= read -r l; do l=$(printf %s \"$l\" | tr -d '\\r'); [ -z \"$l\" ] && break\n"
        "  case \"$l\" in [Cc]ontent-[Ll]ength:*) len=${l#*: };; "
        "[Tt]ransfer-[Ee]ncoding:*) te=${l#*: };; esac\n"
        "done\n"
        "got=$(head -c \"$len\" | wc -c)\n"
        "out=\"length=$len te=$te got=$got\"\n"
        "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: %s\\r\\nConnection: close\\r\\n\\r\\n%s' "
        "${#out} \"$out\"\n")
    b = http_bundle(ctx, "sized", handler)
    assert daemon.deploy(name="sized", bundle=str(b.path), contract="http", max_body=8 << 20,
                         timeout=20)[0] == 201
    size = 1 << 20  # over 64 KiB: it streams
    status, _, body = daemon.request("POST", "/function/sized", b"y" * size, timeout=30)
    assert status == 200 and body == f"length={size} te= got={size}".encode(), body
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.request("POST", "/function/sized", body=iter([b"a" * 1000, b"b" * 1000]),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        assert r.status == 200 and b"te=chunked" in r.read()
    finally:
        conn.close()


def test_a_large_body_streams_through_in_bounded_memory(ctx, daemon):
    b = shell_bundle(ctx, "wc -c")
    assert daemon.deploy(name="count", bundle=str(b.path), max_body=64 << 20)[0] == 201
    size = 48 << 20
    piece = b"x" * (1 << 20)

    def chunks():
        for _ in range(size // len(piece)):
            yield piece

    assert daemon.request("POST", "/function/count", b"warm")[0] == 200
    before = peak_kb(daemon)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
    conn.request("POST", "/function/count", body=chunks(), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 200 and r.read().strip() == str(size).encode()
    conn.close()
    grew = peak_kb(daemon) - before
    assert SANITIZED or grew < 16 * 1024, \
        f"the daemon's peak RSS grew by {grew} kB for a {size >> 20} MiB body"


def test_a_streamed_body_over_max_body_is_a_413(ctx, daemon):
    b = shell_bundle(ctx, "wc -c")
    assert daemon.deploy(name="small", bundle=str(b.path), max_body=1 << 20)[0] == 201
    piece = b"x" * 65536
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.request("POST", "/function/small", body=iter([piece] * 40), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused while still sending
    r = conn.getresponse()
    assert r.status == 413 and b"max_body" in r.read()
    conn.close()


def test_a_slow_reader_holds_the_function_back_not_the_daemon(ctx, daemon):
    b = shell_bundle(ctx, "head -c 48000000 /dev/zero")
    assert daemon.deploy(name="flood", bundle=str(b.path))[0] == 201
    before = peak_kb(daemon)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
    conn.request("GET", "/function/flood")
    r = conn.getresponse()
    time.sleep(1.5)  # the function writes on; the daemon must not take it all in meanwhile
    total = 0
    while chunk := r.read(1 << 20):
        total += len(chunk)
    conn.close()
    assert total == 48000000
    grew = peak_kb(daemon) - before
    assert SANITIZED or grew < 16 * 1024, f"the daemon's peak RSS grew by {grew} kB"


def test_a_slow_reader_of_a_large_sized_http_answer_holds_the_function_back(ctx, daemon):
    """The spliced path (a sized answer past 256 KiB) keeps the backpressure: while the client
    reads slowly the daemon holds at most its pipe, and the answer arrives whole and exact."""
    size = 48 << 20
    b = http_bundle(ctx, "bigslow", READ_HEAD +
                    f"printf 'HTTP/1.1 200 OK\\r\\nContent-Length: {size}\\r\\n"
                    f"Connection: close\\r\\n\\r\\n'; yes 0123456789abcde | head -c {size}\n")
    assert daemon.deploy(name="bigslow", bundle=str(b.path), contract="http", timeout=60)[0] == 201
    before = peak_kb(daemon)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
    conn.request("GET", "/function/bigslow")
    r = conn.getresponse()
    time.sleep(1.5)  # the function writes on; the daemon must not take it all in meanwhile
    digest, total = hashlib.sha256(), 0
    while chunk := r.read(1 << 20):
        digest.update(chunk)
        total += len(chunk)
    conn.close()
    want = (b"0123456789abcde\n" * (size // 16 + 1))[:size]
    assert total == size and digest.hexdigest() == hashlib.sha256(want).hexdigest()
    grew = peak_kb(daemon) - before
    assert SANITIZED or grew < 16 * 1024, f"the daemon's peak RSS grew by {grew} kB"


def test_keep_alive_connections_serve_any_number_of_requests(ctx, daemon):
    """The limit on a request's head is per request, not per connection."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    for i in range(1500):  # 1500 heads of ~150 bytes: over 64 KiB in all
        conn.request("GET", "/_/health", headers={"X-Pad": "p" * 100})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, f"request {i} on the connection: {r.status}"
    conn.close()


# ---- the lambda contract: streamed responses from the Runtime API

@pytest.fixture
def lambda_fn(ctx, daemon):
    image = ctx.dir / "lambda.erofs"
    prog = EXAMPLES / "lambda-hello"
    r = subprocess.run([HUSK, "pack", "-f", "erofs", "-o", str(image), str(prog)],
                       capture_output=True, text=True, env=ctx.env())
    assert r.returncode == 0, r.stderr
    status, body = daemon.deploy(name="lam", image=str(image), contract="lambda",
                                 command=[str(prog)])
    assert status == 201, body
    return "lam"


def test_a_lambda_streamed_response_reaches_an_http_caller_as_it_comes(daemon, lambda_fn):
    r, first, rest, gap = stream_get(daemon, "/function/lam/stream")
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    assert (first, rest) == (b"line 1\n", b"line 2\nline 3\n") and gap > 0.3


def test_a_lambda_http_integration_prelude_sets_status_and_headers(daemon, lambda_fn):
    r, first, rest, _ = stream_get(daemon, "/function/lam/stream-http")
    assert (r.status, r.getheader("X-Streamed")) == (201, "yes")
    assert first + rest == b"line 1\nline 2\nline 3\n"


def test_a_lambda_stream_error_cuts_the_http_body_and_is_a_function_error(daemon, lambda_fn):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    conn.request("GET", "/function/lam/stream-fail")
    r = conn.getresponse()
    assert r.status == 200 and r.readline() == b"line 1\n"
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    conn.close()
    # the Lambda invoke API takes the answer whole: the error from the trailers
    status, headers, body = daemon.request("POST", "/2015-03-31/functions/lam/invocations",
                                           b'"stream-fail"')
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled", headers
    assert json.loads(body) == {"errorMessage": "broke mid-stream", "errorType": "Stream"}
    status, headers, body = daemon.request("POST", "/2015-03-31/functions/lam/invocations",
                                           b'"stream"')
    assert status == 200 and "X-Amz-Function-Error" not in headers
    assert body == b"line 1\nline 2\nline 3\n"


# ---- InvokeWithResponseStream with the AWS SDK for JavaScript (from npm)

NPM_CACHE = Path("/var/tmp/husk-it-cache")


def npm_package(name, version):
    """The package installed under NPM_CACHE (once); the test is skipped, saying why, when
    the npm registry cannot be reached."""
    prefix = NPM_CACHE / f"npm-{name.replace('/', '-')}-{version}"
    if not (prefix / "node_modules" / name / "package.json").exists():
        if not shutil.which("npm"):
            pytest.skip("npm is not installed (Debian's npm package)")
        prefix.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                            f"{name}@{version}"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.skip(f"npm could not install {name}@{version}: {r.stderr.strip()[-300:]}")
    return prefix / "node_modules"


def sdk_stream(daemon, name, payload):
    modules = npm_package("@aws-sdk/client-lambda", "3.*")
    env = dict(os.environ, NODE_PATH=str(modules), NODE_NO_WARNINGS="1")
    r = subprocess.run(["node", str(Path(__file__).parent / "clients" / "lambda-stream.cjs"),
                        f"http://127.0.0.1:{daemon.port}", name, payload],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_the_aws_sdk_streams_a_lambda_response(daemon, lambda_fn):
    lines = sdk_stream(daemon, "lam", '"stream"')
    assert lines[0]["status"] == 200 and lines[0]["version"] == "1"
    chunks = [x for x in lines if "chunk" in x]
    assert "".join(x["chunk"] for x in chunks) == "line 1\nline 2\nline 3\n"
    assert chunks[-1]["ms"] - chunks[0]["ms"] > 300, "the chunks came together at the end"
    complete = next(x["complete"] for x in lines if "complete" in x)
    assert "error" not in complete and complete["log"].startswith("START RequestId: ")
    assert "REPORT RequestId: " in complete["log"]
    invoke = lines[-1]["invoke"]
    assert invoke == {"status": 200, "payload": "line 1\nline 2\nline 3\n"}  # no "error"


def test_the_aws_sdk_sees_a_stream_error_as_a_function_error(daemon, lambda_fn):
    lines = sdk_stream(daemon, "lam", '"stream-fail"')
    assert [x["chunk"] for x in lines if "chunk" in x] == ["line 1\n"]
    complete = next(x["complete"] for x in lines if "complete" in x)
    assert complete["error"] == "Unhandled"
    assert json.loads(complete["details"])["errorMessage"] == "broke mid-stream"
    assert lines[-1]["invoke"]["error"] == "Unhandled"


def test_the_aws_sdk_streams_a_stdio_function(ctx, daemon):
    b = shell_bundle(ctx, "echo one; sleep 1; echo two; sleep 0.2; exit 4")
    assert daemon.deploy(name="sh", bundle=str(b.path))[0] == 201
    lines = sdk_stream(daemon, "sh", "x")
    chunks = [x for x in lines if "chunk" in x]
    assert "".join(x["chunk"] for x in chunks) == "one\ntwo\n"
    assert chunks[-1]["ms"] - chunks[0]["ms"] > 500
    complete = next(x["complete"] for x in lines if "complete" in x)
    assert complete["error"] == "Unhandled", complete  # it exited with 4 once it had begun


def test_a_large_sized_answer_passes_whole_and_nothing_after_it(ctx, daemon):
    """A sized answer of 2 MiB moves socket to socket (splice) past its head: it arrives whole
    and exact, and a second response the server appends to it (in the same write) reaches no
    caller: the next call gets its own answer on a new connection."""
    size = 2 << 20
    before = (f"printf 'HTTP/1.1 200 OK\\r\\nContent-Length: {size}\\r\\n\\r\\n' >/tmp/r; "
              f"yes abcdefg | head -c {size} >>/tmp/r; "
              "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 8\\r\\n\\r\\ninjected' >>/tmp/r; ")
    b = http_bundle(ctx, "bigkeep", READ_HEAD + "cat /tmp/r\n" + READ_HEAD +
                    "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\n\\r\\nreused'\n",
                    before=before)
    assert daemon.deploy(name="bigkeep", bundle=str(b.path), contract="http", timeout=30)[0] == 201
    want = (b"abcdefg\n" * (size // 8 + 1))[:size]
    for _ in range(3):
        status, _, body = daemon.request("GET", "/function/bigkeep", timeout=60)
        assert status == 200 and len(body) == size and body == want, (status, len(body), body[:40])
    assert "after its response" in daemon.log.read_text()
