# SPDX-License-Identifier: Apache-2.0
"""`husk serve`'s loop: it never blocks and never scans. A hung function, a slow cold start, a
slow or half-closed client and a flood of connections leave other calls moving; an instance
killed mid-call is a clean 502 and is replaced; nothing leaks."""

import http.client
import json
import os
import select
import socket
import subprocess
import threading
import time

import pytest

from conftest import HUSK, wait_for
from serve_harness import Daemon
from test_serve import shell_bundle

READ_HEAD = ("while IFS= read -r l; do [ -z \"$(printf %s \"$l\" | tr -d '\\r')\" ] && break; "
             "done\n")


def http_bundle(ctx, name, handler, before=""):
    """An http function: busybox nc runs `handler` per connection (after `before` at start)."""
    b = ctx.bundle(name)
    (b.rootfs / "srv" / "app" / "handler").write_text("#!/bin/sh\n" + handler)
    os.chmod(b.rootfs / "srv" / "app" / "handler", 0o755)
    b.args("/bin/sh", "-c", before + 'exec nc -ll -p "$PORT" -e /srv/app/handler')
    b.write()
    return b


def fn_get(daemon, name):
    status, _, body = daemon.request("GET", f"/system/functions/{name}")
    assert status == 200, body
    return json.loads(body)


def timed_get(daemon, path, timeout=30):
    start = time.monotonic()
    status, _, body = daemon.request("GET", path, timeout=timeout)
    return status, body, time.monotonic() - start


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas", args=["--read-timeout", "2"])
    d.start()
    yield d
    assert d.stop() in (0, None), d.log.read_text()


def test_a_hung_function_and_a_slow_cold_start_do_not_stall_others(ctx, daemon):
    ok = "HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n"
    for name, handler, before in (
            ("warm", READ_HEAD + f"printf '{ok}'\n", ""),
            ("hung", READ_HEAD + "sleep 1000\n", ""),  # accepts, never answers
            ("slow", READ_HEAD + f"printf '{ok}'\n", "sleep 4; ")):  # a slow cold start
        b = http_bundle(ctx, name, handler, before)
        status, body = daemon.deploy(name=name, bundle=str(b.path), contract="http",
                                     timeout=4 if name == "hung" else 20, init_timeout=20,
                                     min=1 if name == "warm" else 0)
        assert status == 201, body
    wait_for(lambda: fn_get(daemon, "warm")["instances"]["idle"] == 1, 10, "warm's instance")
    assert timed_get(daemon, "/function/warm")[0] == 200
    stalled = []
    for path in ["/function/hung"] * 4 + ["/function/slow"]:
        t = threading.Thread(target=lambda p=path: stalled.append(timed_get(daemon, p)),
                             daemon=True)
        t.start()
    time.sleep(0.5)  # the hung calls are in, the slow instance is starting
    assert fn_get(daemon, "slow")["instances"]["starting"] == 1
    worst = 0
    for _ in range(20):
        status, body, took = timed_get(daemon, "/function/warm")
        assert status == 200 and body == b"ok\n", body
        worst = max(worst, took)
    # Each call on its own: a loop blocked by the others would wait seconds.
    assert worst < 1.0, f"a warm call took {worst:.3f} s while others stalled"
    wait_for(lambda: any(r[0] == 200 and r[1] == b"ok\n" for r in stalled), 15,
             "the slow cold start to answer")


def test_an_instance_killed_mid_call_is_a_502_and_is_replaced(ctx, daemon):
    b = http_bundle(ctx, "victim", READ_HEAD + "sleep 2\nprintf 'HTTP/1.1 200 OK\\r\\n"
                    "Content-Length: 6\\r\\n\\r\\nlater\\n'\n")
    assert daemon.deploy(name="victim", bundle=str(b.path), contract="http", min=1)[0] == 201
    wait_for(lambda: fn_get(daemon, "victim")["instances"]["idle"] == 1, 10, "the instance")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=timed_get(daemon, "/function/victim")))
    t.start()
    wait_for(lambda: fn_get(daemon, "victim")["instances"]["busy"] == 1, 5, "the call")
    cgs = [p for p in __import__("glob").glob("/sys/fs/cgroup/*/husk/serve-*/victim-v1-*")]
    pids = {int(p) for cg in cgs for p in open(os.path.join(cg, "cgroup.procs")).read().split()}
    pidfds = []  # a pid number may be reused (by a kernel thread) once free: its pidfd is not
    for pid in pids:
        try:
            pidfds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            pass
    for pid in pids:  # the whole instance dies, as an OOM kill or a crash would take it
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass  # gone with its pid namespace's init
    t.join(15)
    status, body, took = result["r"]
    assert status == 502, body
    assert took < 2, "answered when the instance died, not when the call would have ended"
    # counted as failed, and the instance is replaced (min 1)
    wait_for(lambda: fn_get(daemon, "victim")["instances"]["idle"] == 1, 10, "a new instance")
    metrics = daemon.request("GET", "/metrics")[2].decode()
    assert 'husk_invocations_total{function="victim",status="502"} 1' in metrics
    def all_exited():  # a pidfd is readable once its process has exited
        return all(select.select([fd], [], [], 0)[0] for fd in pidfds)
    try:
        wait_for(all_exited, 5, "the killed instance's processes to exit")
    finally:
        for fd in pidfds:
            os.close(fd)


def test_slow_and_half_closed_clients(ctx, daemon):
    b = http_bundle(ctx, "echo", READ_HEAD + "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 3"
                    "\\r\\n\\r\\nhi\\n'\n")
    assert daemon.deploy(name="echo", bundle=str(b.path), contract="http")[0] == 201
    # a client trickling its head is dropped after --read-timeout (2 s), and blocks nobody
    slow = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    slow.sendall(b"GET /function/echo HTTP/1.1\r\n")
    start = time.monotonic()
    for _ in range(3):
        assert daemon.request("GET", "/function/echo")[2] == b"hi\n"
    assert slow.recv(100) == b""  # closed by the daemon
    assert 1.5 < time.monotonic() - start < 6
    slow.close()
    # a client that shuts down its side after the request still gets the whole answer
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(b"GET /function/echo HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hi\n"), data
    # a client that goes away mid-call is no trouble either
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(b"GET /function/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert daemon.request("GET", "/function/echo")[2] == b"hi\n"


def test_a_flood_of_connections(ctx, daemon):
    b = shell_bundle(ctx, "echo fine")
    assert daemon.deploy(name="fine", bundle=str(b.path))[0] == 201
    socks = []
    for _ in range(1500):  # from another address: past its per-client cap, and the backlog
        try:
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", daemon.port))
            socks.append(s)
        except OSError:
            break
    try:
        status, _, body = daemon.request("POST", "/function/fine", b"", timeout=20)
        assert status == 200 and body == b"fine\n"
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: daemon.request("GET", "/_/health")[0] == 200, 10, "the daemon")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_no_fd_leaks_across_calls(ctx, daemon):
    b = http_bundle(ctx, "leak", READ_HEAD + "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 3"
                    "\\r\\n\\r\\nok\\n'\n")
    assert daemon.deploy(name="leak", bundle=str(b.path), contract="http", min=1)[0] == 201
    s = shell_bundle(ctx, "cat", name="cat")
    assert daemon.deploy(name="cat", bundle=str(s.path), min=1)[0] == 201
    wait_for(lambda: fn_get(daemon, "cat")["instances"]["idle"] == 1, 10, "instances")
    wait_for(lambda: fn_get(daemon, "leak")["instances"]["idle"] == 1, 10, "instances")
    for path in ("/function/leak", "/function/cat"):
        daemon.request("POST", path, b"warm")
    before = open_fds(daemon.proc.pid)
    for i in range(100):
        assert daemon.request("POST", "/function/cat", f"n{i}".encode())[2] == f"n{i}".encode()
        assert daemon.request("GET", "/function/leak")[0] == 200
    time.sleep(0.2)
    assert open_fds(daemon.proc.pid) <= before + 2, "fds grew with the calls"


def test_the_loop_makes_no_blocking_or_per_call_file_syscalls(ctx, daemon):
    """strace the loop's thread during warm calls: it only waits in epoll_wait, and opens no
    file per call (no cgroup stat files, no log reopen)."""
    if subprocess.run(["which", "strace"], capture_output=True).returncode != 0:
        pytest.skip("strace is not installed")
    b = http_bundle(ctx, "traced", READ_HEAD + "printf 'HTTP/1.1 200 OK\\r\\nContent-Length: "
                    "3\\r\\n\\r\\nok\\n'\n")
    assert daemon.deploy(name="traced", bundle=str(b.path), contract="http", min=1)[0] == 201
    s = shell_bundle(ctx, "cat", name="cat")
    assert daemon.deploy(name="cat", bundle=str(s.path), min=1)[0] == 201
    wait_for(lambda: fn_get(daemon, "cat")["instances"]["idle"] == 1, 10, "instances")
    wait_for(lambda: fn_get(daemon, "traced")["instances"]["idle"] == 1, 10, "instances")
    daemon.request("GET", "/function/traced")
    daemon.request("POST", "/function/cat", b"x")
    out = ctx.path("strace")
    tracer = subprocess.Popen(["strace", "-qq", "-o", str(out), "-p", str(daemon.proc.pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    for i in range(20):
        assert daemon.request("GET", "/function/traced")[0] == 200
        assert daemon.request("POST", "/function/cat", b"y")[2] == b"y"
    tracer.terminate()
    tracer.wait(10)
    calls = [line.split("(")[0] for line in out.read_text().splitlines() if "(" in line]
    assert calls.count("epoll_wait") > 0
    blocking = {"nanosleep", "clock_nanosleep", "wait4", "poll", "ppoll", "select", "pselect6",
                "fsync", "fdatasync", "flock", "openat", "open", "newfstatat", "fstat",
                "getrandom"}
    found = sorted(set(calls) & blocking)
    assert not found, f"the loop made {found} during warm calls"
