# SPDX-License-Identifier: Apache-2.0
"""Published http functions: zero hops. `--publish HOST:PORT` gives the function a listening
socket on the host that the daemon owns; while no instance runs, the kernel queues the first
connection and the daemon starts one; the instances' own, unmodified servers accept from the
socket (their bind() on $PORT gets it, or fd 3 with LISTEN_FDS), so the daemon handles none of
the bytes. Scaling from the accept queue, scale to zero, a daemon killed while instances serve,
the proxied path, the socket's confinement, and bad input named with nothing left behind."""

import concurrent.futures
import glob
import http.client
import json
import os
import socket
import time
from pathlib import Path

import pytest

from conftest import wait_for
from serve_harness import Daemon, free_port
from test_pack_programs import app  # noqa: F401 (fixture: the programs' dir outside /tmp)
from test_serve_lambda import serve_cgroup

# Each answer names the instance (an id drawn at start), the version and the path.
PY_SERVER = """\
import http.server, os, time, uuid
INSTANCE = uuid.uuid4().hex[:12]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = self.path.partition("?")[2]
        if query.startswith("sleep="):
            time.sleep(float(query[6:]))
        body = f"{INSTANCE} {os.environ['K_REVISION']} {self.path}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
"""

NODE_SERVER = """\
const http = require('http');
const instance = Math.random().toString(16).slice(2, 14);
http.createServer((req, res) => {
  console.error(`served ${req.url}`);
  const body = `${instance} ${process.env.K_REVISION} ${req.url}\\n`;
  res.writeHead(200, {'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}).listen(parseInt(process.env.PORT));
"""

# Socket activation: the listening socket is fd 3, and only for the process LISTEN_PID names.
PY_LISTEN_FDS = """\
import http.server, os, socket, uuid
assert os.environ["LISTEN_FDS"] == "1" and os.environ["LISTEN_PID"] == str(os.getpid())
INSTANCE = uuid.uuid4().hex[:12]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{INSTANCE} fd3 {self.server.socket.getsockname()[1]} {self.path}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("", 0), H, bind_and_activate=False)
srv.socket = socket.socket(fileno=3)
srv.serve_forever()
"""

# A function that turns its published socket against the host: it shuts the listener down
# (which leaves a bound, unconnected TCP socket of the host's network) and connects it to a
# port on the host's loopback.
PY_ESCAPE = """\
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        s = self.server.socket
        try:
            s.shutdown(socket.SHUT_RD)
            s.settimeout(3)
            s.connect(("127.0.0.1", int(os.environ["TARGET"])))
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            out = "escaped " + s.recv(64).decode(errors="replace")
        except OSError as e:
            out = f"refused errno {e.errno}"
        body = out.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
"""


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    yield d
    assert d.proc.poll() is None, d.log.read_text()  # alive to the end
    assert d.stop() == 0, d.log.read_text()
    assert not daemon_cgroups(d), daemon_cgroups(d)


def instance_cgroups(d):
    """The instances' sandboxes of this daemon (other daemons on the machine have their own)."""
    return [p for p in glob.glob(f"/sys/fs/cgroup/*/{serve_cgroup(d)}/*-v*") if os.path.isdir(p)]


def daemon_cgroups(d):
    """What the daemon leaves under its cgroup: instances, and the published sockets' cgroup."""
    return [p for p in glob.glob(f"/sys/fs/cgroup/*/{serve_cgroup(d)}/*") if os.path.isdir(p)]


def pack(ctx, app, name, program, source):
    script = app / name
    script.write_text(source)
    script.chmod(0o644)
    out = ctx.dir / f"{name}.bundle"
    r = ctx.runtime("pack", "-o", out, program, script, timeout=120)
    assert r.rc == 0, str(r)
    return out


def deploy(d, name, bundle, *flags):
    r = d.fn("deploy", name, "--bundle", str(bundle), "--contract", "http", *flags)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def get(port, path="/", timeout=15):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def at_once(port, n, sleep):
    """n requests at once that each take the server `sleep` seconds: the answers (all 200),
    and the seconds they took."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda i: get(port, f"/c{i}?sleep={sleep}"), range(n)))
    assert all(a[0] == 200 for a in answers), answers
    return answers, time.monotonic() - start


def fn_get(d, name):
    status, _, body = d.request("GET", f"/system/functions/{name}")
    assert status == 200, body
    return json.loads(body)


def instances(d, name):
    return sum(fn_get(d, name)["instances"].values())


def listening(port):
    """A listening TCP socket of the host on this port (/proc/net/tcp, state 0A)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.split(":")[1], 16) == port and state == "0A":
            return True
    return False


def daemon_io(d):
    io = dict(line.split(": ") for line in Path(f"/proc/{d.proc.pid}/io").read_text().splitlines())
    return int(io["rchar"]) + int(io["wchar"])


def test_python_server_is_activated_then_reached_directly(ctx, app, daemon):
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    shown = deploy(daemon, "py", bundle, "--publish", f"127.0.0.1:{port}")
    assert shown["published"]["address"] == f"127.0.0.1:{port}", shown
    # deployed: the socket listens on the host, and no instance runs
    assert listening(port) and instances(daemon, "py") == 0
    # the first connection waits in the kernel's queue while the daemon starts an instance
    status, _, body = get(port, "/first")
    assert status == 200, body
    first = body.split()
    assert first[1] == b"py-v1" and first[2] == b"/first", body
    # the rest reach the function without the daemon: none of their bytes pass through it
    before_io, before = daemon_io(daemon), fn_get(daemon, "py")["published"]
    sent = 0
    for i in range(100):
        status, _, body = get(port, f"/direct/{i}")
        assert status == 200 and body.split()[0] == first[0], body
        sent += len(body)
    moved = daemon_io(daemon) - before_io  # (the two function reads included)
    assert moved < 2048, f"the daemon read or wrote {moved} bytes for 100 requests"
    # ... while the kernel counted the connections and their bytes for it
    wait_for(lambda: fn_get(daemon, "py")["published"]["connections"]["closed"]
             - before["connections"]["closed"] >= 100, 5, "100 ended connections counted")
    after = fn_get(daemon, "py")["published"]
    assert after["bytes"]["out"] - before["bytes"]["out"] >= sent, after
    # the proxied path reaches the same instance, with the daemon's per-call features; its
    # bytes pass through the daemon (what the count above would have shown)
    before_io = daemon_io(daemon)
    status, headers, body = daemon.request("GET", "/function/py/proxied")
    assert status == 200 and body.split()[0] == first[0], body
    assert "X-Request-Id" in headers
    assert daemon_io(daemon) - before_io > 2 * len(body)
    metrics = daemon.request("GET", "/metrics")[2].decode()
    assert 'husk_invocations_total{function="py",status="200"} 1' in metrics, metrics
    assert 'husk_published_connections_closed_total{function="py"}' in metrics


def test_node_server_is_activated_then_reached_directly(ctx, app, daemon):
    bundle = pack(ctx, app, "server.js", "/usr/bin/node", NODE_SERVER)
    port = free_port()
    deploy(daemon, "js", bundle, "--publish", str(port))  # PORT alone: the host's loopback
    assert instances(daemon, "js") == 0
    ids = set()
    for i in range(20):
        status, _, body = get(port, f"/n/{i}")
        assert status == 200 and body.split()[1:] == [b"js-v1", f"/n/{i}".encode()], body
        ids.add(body.split()[0])
    assert len(ids) == 1, ids  # one instance, warm, took them all
    # the kernel counts the ended connections for the daemon (as it tells it of them)
    wait_for(lambda: fn_get(daemon, "js")["published"]["connections"]["closed"] >= 20, 5,
             "20 ended connections counted")
    # what the server writes still reaches the function's log (read in batches)
    wait_for(lambda: b"served /n/19" in daemon.fn("logs", "js", table=True).stdout, 5,
             "the server's lines in the function's log")


def test_instances_share_the_socket_and_the_load(ctx, app, daemon):
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    deploy(daemon, "slow", bundle, "--publish", f"127.0.0.1:{port}", "--concurrency", "1",
           "--max", "3")
    # http.server answers one connection at a time: the accept queue backs up, instances start
    answers, took = at_once(port, 3, 2)
    ids = {a[2].split()[0] for a in answers}
    assert len(ids) == 3, answers
    assert took < 5, f"3 calls of 2 s took {took:.1f} s: not in parallel"
    assert instances(daemon, "slow") <= 3
    # the decisions that started them, as the socket showed the need
    scaling = fn_get(daemon, "slow")["published"]["scaling"]
    assert scaling["activated"] >= 1 and scaling["activated"] + scaling["queue"] >= 3, scaling
    metrics = daemon.request("GET", "/metrics")[2].decode()
    assert 'husk_published_scaling_total{function="slow",decision="activated"}' in metrics


def test_max_instances_is_honoured(ctx, app, daemon):
    """An instance past --max is never started: the one instance takes the calls in turn."""
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    deploy(daemon, "one", bundle, "--publish", f"127.0.0.1:{port}", "--concurrency", "1",
           "--max", "1")
    answers, took = at_once(port, 3, 1)
    assert len({a[2].split()[0] for a in answers}) == 1, answers
    assert took >= 2.9, f"3 calls of 1 s on one instance took {took:.1f} s"
    scaling = fn_get(daemon, "one")["published"]["scaling"]
    assert scaling["activated"] + scaling["queue"] == 1, scaling


def test_scale_to_zero_keeps_the_socket_and_comes_back(ctx, app, daemon):
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    deploy(daemon, "nap", bundle, "--publish", f"127.0.0.1:{port}", "--idle", "1")
    first = get(port, "/a")[2].split()[0]
    wait_for(lambda: instances(daemon, "nap") == 0, 10, "the idle instance to stop")
    wait_for(lambda: not instance_cgroups(daemon), 10, "its sandbox to go")
    assert listening(port)  # the daemon kept the socket
    status, _, body = get(port, "/b")
    assert status == 200 and body.split()[0] != first, body
    wait_for(lambda: instances(daemon, "nap") == 0, 10, "the idle instance to stop again")


def test_an_idle_instance_holding_an_open_connection_is_kept(ctx, app, daemon):
    """Past --idle, of two instances with one connection open, the one that accepted it stays
    (its processes' fd tables are read off the loop) and the other stops; the kept one then
    answers that connection."""
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    deploy(daemon, "hold", bundle, "--publish", f"127.0.0.1:{port}", "--concurrency", "1",
           "--max", "2", "--idle", "1")
    held = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        held.sendall(b"GET /held HTTP/1.0\r\n")  # http.server now waits in this request
        wait_for(lambda: instances(daemon, "hold") == 1, 15, "an instance for the connection")
        # a second connection waits in the accept queue: a second instance serves it
        status, _, body = get(port, "/other")
        assert status == 200, body
        other = body.split()[0]
        assert instances(daemon, "hold") == 2
        wait_for(lambda: instances(daemon, "hold") == 1, 15, "the surplus instance to stop")
        time.sleep(2.5)  # two more idle periods: the holder is still needed
        assert instances(daemon, "hold") == 1
        assert fn_get(daemon, "hold")["published"]["scaling"]["kept_idle"] >= 2
        held.sendall(b"\r\n")
        answer = b""
        while chunk := held.recv(4096):
            answer += chunk
    finally:
        held.close()
    assert answer.startswith(b"HTTP/1.0 200"), answer
    kept = answer.split(b"\r\n\r\n", 1)[1].split()[0].decode()
    assert kept != other, (kept, other)
    wait_for(lambda: instances(daemon, "hold") == 0, 15, "scale to zero once it is closed")


def test_kill9_of_the_daemon_while_instances_serve(ctx, app):
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    d = Daemon(ctx, ctx.dir / "faas9")
    d.start()
    try:
        # One instance at most: a start slow under load could let the scaler add a second,
        # and the orphan and the restart's count below are about this one.
        deploy(d, "hold", bundle, "--publish", f"127.0.0.1:{port}", "--max", "1")
        first = get(port, "/warm")[2].split()[0]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(get, port, "/slow?sleep=2")
            time.sleep(0.5)  # the request is with the instance
            d.proc.kill()
            d.proc.wait()
            # the established connection is served to its end; new ones still reach the
            # instance, which no longer needs the daemon to serve
            status, _, body = slow.result()
            assert status == 200 and body.split()[0] == first, body
        status, _, body = get(port, "/orphan")
        assert status == 200 and body.split()[0] == first, body
        # a restart removes what the killed daemon left and serves the socket again
        d.start()
        assert "removed 1 sandboxes left by an earlier run" in d.log.read_text()
        # the functions are put in service once the daemon's own doors are open
        wait_for(lambda: listening(port), 5, "the published socket to listen again")
        status, _, body = get(port, "/restarted")
        assert status == 200 and body.split()[0] != first, body
    finally:
        assert d.proc.poll() is None, d.log.read_text()
        assert d.stop() == 0, d.log.read_text()
    assert not daemon_cgroups(d) and not listening(port)


def test_listen_fds_socket_activation(ctx, app, daemon):
    bundle = pack(ctx, app, "activated.py", "/usr/bin/python3", PY_LISTEN_FDS)
    port = free_port()
    # One instance at most: the scaler may start a second when the first request waited two
    # samples in a row (a slow start under load), and the proxied call must reach this one.
    shown = deploy(daemon, "sd", bundle, "--publish", f"127.0.0.1:{port}", "--publish-mode",
                   "listen_fds", "--max", "1")
    assert shown["published"]["mode"] == "listen_fds"
    status, _, body = get(port, "/x")
    assert status == 200, body
    instance, how, where = body.split()[:3]
    assert how == b"fd3" and where == str(port).encode(), body
    status, _, body = daemon.request("GET", "/function/sd/y")  # proxied: the same socket
    assert status == 200 and body.split()[:2] == [instance, b"fd3"], body


def test_redeploy_hands_the_socket_to_the_new_version_and_rm_closes_it(ctx, app, daemon):
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    deploy(daemon, "ver", bundle, "--publish", f"127.0.0.1:{port}")
    assert get(port)[2].split()[1] == b"ver-v1"
    assert deploy(daemon, "ver", bundle, "--publish", f"127.0.0.1:{port}")["version"] == 2
    assert get(port)[2].split()[1] == b"ver-v2"
    # the older version, called by number through the daemon, runs on its own: the socket
    # stays the deployed version's
    status, _, body = daemon.request("GET", "/function/ver@1/old")
    assert status == 200 and body.split()[1:] == [b"ver-v1", b"/old"], body
    for _ in range(5):
        assert get(port)[2].split()[1] == b"ver-v2"
    assert fn_get(daemon, "ver")["published"]["serving"]
    r = daemon.fn("rm", "ver")
    assert r.returncode == 0, r
    wait_for(lambda: not listening(port), 5, "the socket to close")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_published_socket_cannot_reach_the_host(ctx, app, daemon):
    """The socket is of the host's network: disconnected and connected anew, it would connect
    as the host. Its cgroup's connect programs refuse that; the daemon listens on it again."""
    bundle = pack(ctx, app, "escape.py", "/usr/bin/python3", PY_ESCAPE)
    port = free_port()
    deploy(daemon, "esc", bundle, "--publish", f"127.0.0.1:{port}", "-e", f"TARGET={daemon.port}")
    status, _, body = get(port)
    assert status == 200 and body == b"refused errno 1", body  # EPERM
    wait_for(lambda: listening(port), 5, "the daemon to listen on the socket again")
    assert "an instance shut 127.0.0.1:%d down: listening again" % port in daemon.log.read_text()


@pytest.mark.parametrize("case", ["stdio", "in-use", "address", "no-host", "port-0", "port-big",
                                  "mode-alone", "mode-bad", "freeze"])
def test_bad_publish_is_a_400_naming_the_field(ctx, app, daemon, case):
    bundle = pack(ctx, app, "server.py", "/usr/bin/python3", PY_SERVER)
    port = free_port()
    held = None
    spec = {"name": "bad", "bundle": str(bundle), "contract": "http",
            "publish": f"127.0.0.1:{port}"}
    field, says = "publish", None
    if case == "stdio":
        spec["contract"] = "stdio"
        says = 'contract "http"'
    elif case == "in-use":
        held = socket.socket()
        held.bind(("127.0.0.1", port))
        held.listen()
        says = "Address already in use"
    elif case == "address":
        spec["publish"] = "300.1.2.3:8000"
    elif case == "no-host":
        spec["publish"] = "localhost:8000"
    elif case == "port-0":
        spec["publish"] = "127.0.0.1:0"
        says = "1 to 65535"
    elif case == "port-big":
        spec["publish"] = "70000"
        says = "1 to 65535"
    elif case == "freeze":
        spec["freeze"] = 5
        field, says = "freeze", "nothing would thaw"
    elif case == "mode-alone":
        del spec["publish"]
        spec["publish_mode"] = "listen_fds"
        field = "publish_mode"
    else:
        spec["publish_mode"] = "inetd"
        field = "publish_mode"
    try:
        status, body = daemon.deploy(**spec)
        assert status == 400, body
        error = json.loads(body)["error"]
        assert f"field '{field}'" in error and (says is None or says in error), error
        assert daemon.request("GET", "/system/functions/bad")[0] == 404
        if held is None:
            assert not listening(port)
    finally:
        if held:
            held.close()
    assert not glob.glob(f"/sys/fs/cgroup/*/{serve_cgroup(daemon)}/bad-*")
