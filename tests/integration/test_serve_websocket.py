# SPDX-License-Identifier: Apache-2.0
"""Upgraded connections through the http contract (WebSocket, as Knative passes them): the
client's Upgrade reaches the function's server, its 101 reaches the client, and then bytes go
both ways as they come until either side closes. The call holds its slot of the instance while
the connection is open, the function's timeout is the connection's idle timeout, and an upgrade
the server refuses is an ordinary answer."""
import base64
import json
import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from conftest import wait_for
from serve_harness import Daemon
from test_pack_programs import app  # noqa: F401 (fixture: the programs' dir outside /tmp)
from test_serve_stream import npm_package
from test_serve_zygote_node import node_or_skip

# An unmodified Node server with no dependencies: RFC 6455's handshake and an echo of each
# message (a close answered with a close); plain requests get a plain answer; /refuse refuses.
SERVER = r"""
const http = require('http'), crypto = require('crypto');
const srv = http.createServer((req, res) => {
  res.writeHead(200, {'Content-Type': 'text/plain'});
  res.end(`plain ${req.headers.upgrade || '-'}\n`);
});
function frame(op, data) {
  const n = data.length;
  const head = n < 126 ? Buffer.from([0x80 | op, n])
    : n < 65536 ? Buffer.from([0x80 | op, 126, n >> 8, n & 255])
    : Buffer.concat([Buffer.from([0x80 | op, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  return Buffer.concat([head, data]);
}
srv.on('upgrade', (req, sock, head) => {
  if (req.url.startsWith('/refuse')) {
    sock.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope');
    return;
  }
  const accept = crypto.createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
             `Sec-WebSocket-Accept: ${accept}\r\nX-Served-By: ${process.env.K_REVISION}\r\n\r\n`);
  let buf = head;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15, masked = buf[1] & 128;
      let n = buf[1] & 127, at = 2;
      if (n === 126) { if (buf.length < 4) return; n = buf.readUInt16BE(2); at = 4; }
      else if (n === 127) { if (buf.length < 10) return; n = Number(buf.readBigUInt64BE(2)); at = 10; }
      const mask = masked ? buf.subarray(at, at + 4) : null;
      if (masked) at += 4;
      if (buf.length < at + n) return;
      const data = Buffer.from(buf.subarray(at, at + n));
      if (mask) for (let i = 0; i < n; i++) data[i] ^= mask[i & 3];
      buf = buf.subarray(at + n);
      if (op === 8) { sock.end(frame(8, data)); return; }
      sock.write(frame(op, data));
    }
  });
  sock.on('error', () => {});
});
srv.listen(parseInt(process.env.PORT));
"""


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    yield d
    assert d.proc is None or d.proc.poll() is None, d.log.read_text()  # alive, or stopped by the test
    assert d.stop() in (0, None), d.log.read_text()


@pytest.fixture
def ws_fn(ctx, app, daemon):
    node = node_or_skip()
    (app / "ws.js").write_text(SERVER)
    (app / "ws.js").chmod(0o644)
    out = ctx.dir / "ws.bundle"
    r = ctx.runtime("pack", "-o", out, node, app / "ws.js", timeout=120)
    assert r.rc == 0, str(r)

    def deploy(name="ws", *flags):
        r = daemon.fn("deploy", name, "--bundle", str(out), "--contract", "http", *flags)
        assert r.returncode == 0, r
        return f"/function/{name}"
    return deploy


def handshake(daemon, path, extra=b""):
    """A WebSocket opening handshake by hand: the socket and the head of the answer."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
              f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
              "\r\n".encode() + extra)
    head = b""
    while b"\r\n\r\n" not in head:
        got = s.recv(4096)
        assert got, head
        head += got
    head, _, rest = head.partition(b"\r\n\r\n")
    return s, head.decode(), rest


def masked(op, data):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i & 3] for i, b in enumerate(data))
    assert len(data) < 126
    return bytes([0x80 | op, 0x80 | len(data)]) + mask + body


def read_frame(s, buf=b""):
    while len(buf) < 2 or len(buf) < 2 + (buf[1] & 127):
        got = s.recv(4096)
        assert got, buf
        buf += got
    n = buf[1] & 127
    return buf[0] & 15, buf[2:2 + n], buf[2 + n:]


def busy(daemon, name):
    status, _, body = daemon.request("GET", f"/system/functions/{name}")
    assert status == 200, body
    return json.loads(body)["instances"]["busy"]


def test_a_websocket_client_talks_to_the_function_through_the_front_door(ctx, daemon, ws_fn):
    """The npm package ws, as a browser or a service would: a text and a 1 MiB binary message
    echoed, and a clean close (1000) that ends the call."""
    path = ws_fn()
    modules = npm_package("ws", "8")
    r = subprocess.run(["node", str(Path(__file__).parent / "clients" / "ws-echo.cjs"),
                        f"ws://127.0.0.1:{daemon.port}{path}/chat"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, NODE_PATH=str(modules)))
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out == {"got": ["text hello", f"binary {1 << 20} true"], "code": 1000,
                   "reason": "done"}, out
    wait_for(lambda: busy(daemon, "ws") == 0, 10, "the call to end with the connection")
    log = daemon.fn("logs", "ws", table=True).stdout.decode()
    assert "Status: 101" in log, log  # its REPORT line, written when the connection closed


def test_an_open_websocket_holds_its_instance_and_passes_early_bytes(ctx, daemon, ws_fn):
    """A frame sent right behind the handshake (before the 101) arrives; while the connection
    is open the instance counts it as busy; the 101 carries the server's headers and the
    request id; the client's close comes back and the call ends."""
    path = ws_fn()
    s, head, rest = handshake(daemon, path, extra=masked(1, b"early"))
    try:
        lines = head.split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101 "), head
        fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        assert fields["upgrade"] == "websocket" and fields["connection"] == "Upgrade", head
        assert fields["x-served-by"] == "ws-v1" and fields["x-request-id"], head
        assert "content-length" not in fields and "transfer-encoding" not in fields, head
        op, data, rest = read_frame(s, rest)
        assert (op, data) == (1, b"early")
        assert busy(daemon, "ws") == 1
        s.sendall(masked(1, b"again"))
        op, data, rest = read_frame(s, rest)
        assert (op, data) == (1, b"again")
        s.sendall(masked(8, struct.pack("!H", 1000)))
        op, data, rest = read_frame(s, rest)
        assert op == 8 and data == struct.pack("!H", 1000)
        assert s.recv(100) == b""  # the server ended its side: the client's ends too
    finally:
        s.close()
    wait_for(lambda: busy(daemon, "ws") == 0, 10, "the call to end with the connection")


def test_a_silent_websocket_is_closed_after_the_timeout_and_the_instance_stays(ctx, daemon,
                                                                              ws_fn):
    path = ws_fn("quiet", "--timeout", "2")
    s, head, _ = handshake(daemon, path)
    try:
        assert head.startswith("HTTP/1.1 101 "), head
        start = time.monotonic()
        s.settimeout(15)
        assert s.recv(100) == b""
        took = time.monotonic() - start
        assert 1.5 < took < 10, took
    finally:
        s.close()
    # the instance was not stopped: the next call is served by it, warm
    status, _, body = daemon.request("GET", f"{path}/x")
    assert status == 200 and body == b"plain -\n", body
    status, _, body = daemon.request("GET", "/system/functions/quiet")
    assert json.loads(body)["instances"]["idle"] + busy(daemon, "quiet") == 1


def test_an_upgrade_the_server_refuses_is_an_ordinary_answer(ctx, daemon, ws_fn):
    path = ws_fn()
    s, head, rest = handshake(daemon, f"{path}/refuse", extra=masked(1, b"early"))
    try:
        assert head.startswith("HTTP/1.1 403 ") and "Connection: close" in head, head
        s.settimeout(10)
        while got := s.recv(100):
            rest += got
        assert rest == b"nope"  # and then the end: the frame sent ahead is not read as HTTP
    finally:
        s.close()
    # a plain request is not upgraded, and the Upgrade of a request without Connection: upgrade
    # is not passed on (hop-by-hop)
    status, _, body = daemon.request("GET", f"{path}/p", headers={"Upgrade": "websocket"})
    assert status == 200 and body == b"plain -\n", body


def test_a_stopping_daemon_closes_open_websockets(ctx, daemon, ws_fn):
    """An open WebSocket would keep its call in flight forever: a SIGTERM closes it at once,
    and the daemon exits 0 leaving nothing."""
    path = ws_fn()
    s, head, rest = handshake(daemon, path)
    try:
        assert head.startswith("HTTP/1.1 101 "), head
        s.sendall(masked(1, b"ping"))
        assert read_frame(s, rest)[:2] == (1, b"ping")
        start = time.monotonic()
        assert daemon.stop() == 0, daemon.log.read_text()
        assert time.monotonic() - start < 10
        s.settimeout(10)
        assert s.recv(100) == b""
    finally:
        s.close()
