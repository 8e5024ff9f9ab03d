# SPDX-License-Identifier: Apache-2.0
"""`husk serve`: warm instances, both contracts, scaling, limits, logs, metrics, restarts."""

import concurrent.futures
import glob
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import time

import pytest

from conftest import HUSK, pid_alive, wait_for
from serve_harness import Daemon
from test_serve import daemon, shell_bundle  # noqa: F401 (fixture)

# A tiny HTTP server for busybox: `nc -ll -e` runs this per connection. It answers with the
# request head it got, so the tests see what the instance received.
ECHO_HEAD = r"""
head=""
while IFS= read -r line; do
    line=$(printf '%s' "$line" | tr -d '\r')
    [ -z "$line" ] && break
    head="$head$line|"
done
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s' ${#head} "$head"
"""

# Two chunks a second apart: a proxy that buffers shows the first only after the second.
STREAM = r"""
while IFS= read -r line; do [ -z "$(printf '%s' "$line" | tr -d '\r')" ] && break; done
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n'
sleep 1
printf '6\r\nsecond\r\n0\r\n\r\n'
"""


def server_bundle(ctx, handler, name="srv"):
    """A bundle whose program serves HTTP on $PORT: busybox nc -ll runs `handler` per connection."""
    b = ctx.bundle(name)
    (b.path / "rootfs" / "srv" / "app" / "handler").write_text("#!/bin/sh\n" + handler)
    os.chmod(b.path / "rootfs" / "srv" / "app" / "handler", 0o755)
    b.args("/bin/sh", "-c", 'exec nc -ll -p "$PORT" -e /srv/app/handler')
    b.write()
    return b


def instance_cgroups(name):
    return glob.glob(f"/sys/fs/cgroup/*/husk/serve-*/{name}-v*")


def instance_cgroup_files(name, *files):
    """The first of these files that exists in each of the function's instance cgroups."""
    out = []
    for cg in glob.glob(f"/sys/fs/cgroup/memory/husk/serve-*/{name}-v*") or \
            glob.glob(f"/sys/fs/cgroup/husk/serve-*/{name}-v*"):
        out += [p for p in (os.path.join(cg, f) for f in files) if os.path.exists(p)][:1]
    return out


def fn_get(daemon, name):
    status, _, body = daemon.request("GET", f"/system/functions/{name}")
    assert status == 200, body
    return json.loads(body)


def metrics(daemon):
    status, _, body = daemon.request("GET", "/metrics")
    assert status == 200
    return body.decode()


def deploy_cli(daemon, name, *args):
    """`husk fn deploy NAME --url URL ARGS...` (ARGS may end with -- COMMAND)."""
    return subprocess.run([HUSK, "fn", "deploy", name, "--url", daemon.admin_url, *args],
                          capture_output=True, timeout=30, env=daemon.ctx.env())


def deploy_ok(daemon, **spec):
    status, body = daemon.deploy(**spec)
    assert status == 201, body
    return json.loads(body)


# ---------------------------------------------------------------------------------------------
# warm instances


def test_stdio_instance_stays_warm_and_reports(ctx, daemon):
    b = shell_bundle(ctx, "echo out-$$; echo err-line >&2")
    deploy_ok(daemon, name="warm", bundle=str(b.path))
    bodies = [daemon.request("POST", "/function/warm", b"")[2] for _ in range(3)]
    # one sandbox (one pid namespace: the agent is pid 1), a fresh process per call
    assert all(x.startswith(b"out-") for x in bodies), bodies
    assert len(set(bodies)) == 3
    assert fn_get(daemon, "warm")["instances"] == {"starting": 0, "idle": 1, "busy": 0, "frozen": 0}
    m = metrics(daemon)
    assert 'husk_cold_starts_total{function="warm"} 1' in m
    assert 'husk_invocations_total{function="warm",status="200"} 3' in m
    r = daemon.fn("logs", "warm")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    reports = [x for x in lines if " report REPORT " in x]
    assert len(reports) == 3, lines
    assert "Init Duration" in reports[0] and "Init Duration" not in reports[1]
    assert "Max Memory Used" in reports[0]
    errs = [x for x in lines if " stderr err-line" in x]
    assert len(errs) == 3
    rid = errs[0].split()[2]
    assert any(rid in x for x in reports)


def test_http_contract_forwards_and_keeps_alive(ctx, daemon):
    b = server_bundle(ctx, ECHO_HEAD)
    deploy_ok(daemon, name="web", bundle=str(b.path), contract="http", port=9000)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        for i in range(2):  # twice on one connection
            conn.request("POST", f"/function/web/some/path?q={i}", body=b"payload",
                         headers={"X-Request-Id": f"req-{i}", "Connection": "keep-alive"})
            r = conn.getresponse()
            body = r.read().decode()
            assert r.status == 200, body
            assert r.getheader("X-Request-Id") == f"req-{i}"
            assert r.getheader("Connection") == "keep-alive"
            head = body.split("|")
            assert head[0] == f"POST /some/path?q={i} HTTP/1.1"
            assert f"X-Request-Id: req-{i}" in head
            assert "X-Forwarded-For: 127.0.0.1" in head
            assert "X-Forwarded-Proto: http" in head
            assert any(h.startswith("Forwarded: for=127.0.0.1;proto=http") for h in head)
            assert any(h.startswith("traceparent: 00-") for h in head)
            assert "Content-Length: 7" in head
    finally:
        conn.close()
    info = fn_get(daemon, "web")
    assert info["instances"]["idle"] == 1


def test_http_contract_streams_chunked_responses(ctx, daemon):
    b = server_bundle(ctx, STREAM, name="stream")
    deploy_ok(daemon, name="stream", bundle=str(b.path), contract="http")
    daemon.request("GET", "/function/stream")  # warm it up
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    try:
        s.sendall(b"GET /function/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        first = b""
        while b"first" not in first:
            first += s.recv(4096)
        assert time.monotonic() - t0 < 0.9, "the first chunk waited for the second"
        assert b"Transfer-Encoding: chunked" in first
        rest = first
        while not rest.endswith(b"0\r\n\r\n"):
            data = s.recv(4096)
            assert data, rest
            rest += data
        assert b"second" in rest
    finally:
        s.close()


def test_http_server_that_never_listens_fails_the_call(ctx, daemon):
    b = shell_bundle(ctx, "sleep 30", name="deaf")
    deploy_ok(daemon, name="deaf", bundle=str(b.path), contract="http", init_timeout=1)
    status, _, body = daemon.request("GET", "/function/deaf")
    assert status == 502, body
    assert b"did not accept connections on port 8080 within 1 seconds" in body
    wait_for(lambda: not instance_cgroups("deaf"), 5, "the instance's cgroup to go")


def test_cgi_sets_status_and_headers(ctx, daemon):
    b = shell_bundle(ctx, r"printf 'Status: 404 Not Found\r\nContent-Type: text/x-test\r\n"
                          r"X-Thing: yes\r\n\r\n'; echo $REQUEST_METHOD $PATH_INFO $QUERY_STRING "
                          r"$CONTENT_LENGTH $HTTP_X_CUSTOM; cat")
    deploy_ok(daemon, name="cgi", bundle=str(b.path), contract="cgi")
    status, headers, body = daemon.request("PUT", "/function/cgi/a/b?x=1", b"data",
                                           {"X-Custom": "c"})
    assert status == 404, body
    assert headers["Content-Type"] == "text/x-test"
    assert headers["X-Thing"] == "yes"
    assert body == b"PUT /a/b x=1 4 c\ndata"
    b2 = shell_bundle(ctx, "echo no header block", name="nohead")
    deploy_ok(daemon, name="nohead", bundle=str(b2.path), contract="cgi")
    status, _, body = daemon.request("GET", "/function/nohead")
    assert status == 502 and b"no CGI header block" in body


# ---------------------------------------------------------------------------------------------
# scaling and limits


def test_concurrency_cap_queue_and_429(ctx, daemon):
    b = shell_bundle(ctx, "sleep 1; echo done")
    deploy_ok(daemon, name="capped", bundle=str(b.path), concurrency=1, max=2, queue=2)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(daemon.request, "POST", "/function/capped", b"") for _ in range(8)]
        results = [f.result() for f in futs]
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert len(ok) == 4, [r[0] for r in results]  # 2 instances x 1 + a queue of 2
    assert len(refused) == 4
    assert all(r[1].get("Retry-After") == "1" for r in refused)
    assert b"queue limit" in refused[0][2]
    info = fn_get(daemon, "capped")
    assert info["instances"]["idle"] == 2  # scaled out to max, no further


def test_many_concurrent_calls_are_all_answered(ctx, daemon):
    b = shell_bundle(ctx, "cat")
    deploy_ok(daemon, name="many", bundle=str(b.path), concurrency=4, max=4)
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        futs = [pool.submit(daemon.request, "POST", "/function/many", f"n{i}".encode())
                for i in range(64)]
        results = [f.result() for f in futs]
    assert sorted(r[2] for r in results) == sorted(f"n{i}".encode() for i in range(64))
    assert fn_get(daemon, "many")["instances"]["starting"] == 0
    assert 1 <= sum(fn_get(daemon, "many")["instances"].values()) <= 4


def test_min_instances_and_scale_to_zero(ctx, daemon):
    b = shell_bundle(ctx, "echo hi")
    deploy_ok(daemon, name="kept", bundle=str(b.path), min=1, idle=1)
    # started off the loop, ready before any call
    wait_for(lambda: fn_get(daemon, "kept")["instances"]["idle"] == 1, 5, "the min instance")
    deploy_ok(daemon, name="zero", bundle=str(b.path), idle=1)
    assert sum(fn_get(daemon, "zero")["instances"].values()) == 0
    assert daemon.request("GET", "/function/zero")[0] == 200
    assert fn_get(daemon, "zero")["instances"]["idle"] == 1
    wait_for(lambda: sum(fn_get(daemon, "zero")["instances"].values()) == 0, 5, "scale to zero")
    assert 'husk_instances{function="zero",state="idle"} 0' in metrics(daemon)
    # teardown is asynchronous: the cgroups go once the kernel says the instance's processes
    # are gone (a loaded host takes a moment)
    wait_for(lambda: not instance_cgroups("zero"), 5, "the instance's cgroups removed")
    time.sleep(1.5)
    assert fn_get(daemon, "kept")["instances"]["idle"] == 1  # min stays


def test_timeout_kills_the_instance_and_says_so(ctx, daemon):
    b = shell_bundle(ctx, "sleep 100 & sleep 100")
    deploy_ok(daemon, name="slow2", bundle=str(b.path), timeout=1)
    status, _, body = daemon.request("GET", "/function/slow2")
    assert status == 504
    assert b"exceeded its timeout of 1 seconds" in body
    wait_for(lambda: not instance_cgroups("slow2"), 5, "the instance to be killed")
    assert 'status="504"} 1' in metrics(daemon)


def test_oom_is_reported_as_such(ctx, daemon):
    b = shell_bundle(ctx, "tail /dev/zero; echo survived")
    deploy_ok(daemon, name="hog", bundle=str(b.path), memory=16 << 20)
    status, _, body = daemon.request("GET", "/function/hog")
    assert status == 500, body
    assert b"ran out of memory" in body and str(16 << 20).encode() in body
    r = daemon.fn("logs", "hog")
    assert "Error: out of memory" in r.stdout.decode()
    # the instance survives its program's OOM kill and serves again
    assert fn_get(daemon, "hog")["instances"]["idle"] == 1


# ---------------------------------------------------------------------------------------------
# lifecycle


def test_redeploy_under_load(ctx, daemon):
    v1 = shell_bundle(ctx, "sleep 1; echo v1", name="v1")
    v2 = shell_bundle(ctx, "echo v2", name="v2")
    deploy_ok(daemon, name="ver", bundle=str(v1.path), max=4, concurrency=1)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        old = [pool.submit(daemon.request, "POST", "/function/ver", b"") for _ in range(3)]
        wait_for(lambda: fn_get(daemon, "ver")["instances"]["busy"] == 3, 5, "calls in flight")
        assert deploy_ok(daemon, name="ver", bundle=str(v2.path))["version"] == 2
        new = daemon.request("POST", "/function/ver", b"")
        assert new[0] == 200 and new[2] == b"v2\n"
        assert [f.result()[2] for f in old] == [b"v1\n"] * 3  # in-flight finish on v1
    wait_for(lambda: not glob.glob("/sys/fs/cgroup/*/husk/serve-*/ver-v1-*"), 5,
             "the old version's instances to go")


def test_kill9_of_the_daemon_ends_its_instances_and_restart_cleans_up(ctx):
    d = Daemon(ctx, ctx.dir / "faas9")
    d.start()
    # Every instance's pid 1 is husk's agent: when the daemon's socket closes it ends the whole
    # sandbox, so nothing of a function outlives the daemon, not even an http server.
    b = server_bundle(ctx, ECHO_HEAD)
    deploy_ok(d, name="survivor", bundle=str(b.path), contract="http", min=1)
    wait_for(lambda: fn_get(d, "survivor")["instances"]["idle"] == 1, 10, "the instance")
    cgs = instance_cgroups("survivor")
    assert cgs
    procs = {int(p) for cg in cgs for p in open(os.path.join(cg, "cgroup.procs")).read().split()}
    assert len(procs) >= 2  # the agent and the server
    d.proc.kill()
    d.proc.wait()
    wait_for(lambda: not any(pid_alive(p) for p in procs), 5, "the orphaned instance to end")
    assert instance_cgroups("survivor")  # its (empty) cgroup is left for the restart
    d.start()
    try:
        status, _, body = d.request("GET", "/function/survivor")
        assert status == 200 and body.startswith(b"GET / HTTP/1.1|")
        assert "removed 1 sandboxes left by an earlier run" in d.log.read_text()
    finally:
        assert d.stop() == 0
    assert not instance_cgroups("survivor")


def test_deploy_from_a_packed_image(ctx, daemon):
    image = ctx.dir / "cat.erofs"
    r = subprocess.run([HUSK, "pack", "-f", "erofs", "-o", str(image), "/bin/busybox"],
                       capture_output=True, text=True, env=ctx.env())
    assert r.returncode == 0, r.stderr
    r = deploy_cli(daemon, "img", "--image", str(image), "--memory", "32M", "--", "/bin/busybox",
                   "rev")
    assert r.returncode == 0, r.stderr
    status, _, body = daemon.request("POST", "/function/img", b"olleh\n")
    assert status == 200 and body == b"hello\n", body
    # read-only root, writable /tmp
    r = deploy_cli(daemon, "img2", "--image", str(image), "--", "/bin/busybox", "sh", "-c",
                   "touch /x 2>/dev/null || echo ro; touch /tmp/y && echo tmp")
    assert r.returncode == 0, r.stderr
    assert daemon.request("GET", "/function/img2")[2] == b"ro\ntmp\n"


@pytest.mark.parametrize("fmt", ["erofs", "squashfs"])
def test_instances_of_an_image_share_one_mount_of_it(ctx, daemon, fmt):
    """Each instance's root is a clone of one mount of the version's image (one superblock, one
    page cache), not a mount of its own; a write still goes nowhere."""
    image = ctx.dir / f"sh.{fmt}"
    r = subprocess.run([HUSK, "pack", "-f", fmt, "-o", str(image), "/bin/busybox"],
                       capture_output=True, text=True, env=ctx.env())
    assert r.returncode == 0, r.stderr
    cmd = ["--", "/bin/busybox", "sh", "-c", "cat >/dev/null; sleep 1; "
           "/bin/busybox stat -c %d / ; touch /x 2>/dev/null || echo ro"]
    r = deploy_cli(daemon, "shared", "--image", str(image), "--concurrency", "1", *cmd)
    assert r.returncode == 0, r.stderr
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        answers = list(ex.map(lambda _: daemon.request("POST", "/function/shared", b"x"),
                              range(3)))
    assert [a[0] for a in answers] == [200] * 3, answers
    devs = {a[2].split()[0] for a in answers}
    assert all(a[2].split()[1] == b"ro" for a in answers), answers
    assert fn_get(daemon, "shared")["instances"]["idle"] == 3
    assert len(devs) == 1, f"three instances, roots on {devs}"


@pytest.mark.parametrize("spec,field", [
    ({"contract": "grpc"}, "contract"),
    ({"min": 5, "max": 2}, "min"),
    ({"cpus": "lots"}, "cpus"),
    ({"concurrency": 0}, "concurrency"),
    ({"image": "/nonexistent.erofs", "bundle": None}, "image"),
])
def test_bad_deploy_names_the_field_and_leaves_nothing(ctx, daemon, spec, field):
    b = shell_bundle(ctx, "true")
    full = {"name": "bad", "bundle": str(b.path), **spec}
    full = {k: v for k, v in full.items() if v is not None}
    status, body = daemon.deploy(**full)
    assert status == 400, body
    assert f"field '{field}'" in json.loads(body)["error"]
    assert daemon.request("GET", "/system/functions/bad")[0] == 404
    assert not instance_cgroups("bad")


def test_image_without_command_is_refused(ctx, daemon):
    image = ctx.dir / "x.erofs"
    image.write_bytes(b"\0" * 4096)
    status, body = daemon.deploy(name="nocmd", image=str(image))
    assert status == 400
    assert "field 'command'" in json.loads(body)["error"]


def test_stop_leaves_no_instance_behind(ctx):
    d = Daemon(ctx, ctx.dir / "faas-stop")
    d.start()
    b = shell_bundle(ctx, "echo x")
    deploy_ok(d, name="stopme", bundle=str(b.path), min=2)
    wait_for(lambda: fn_get(d, "stopme")["instances"]["idle"] == 2, 5, "the min instances")
    procs = {int(p) for cg in instance_cgroups("stopme")
             for p in open(os.path.join(cg, "cgroup.procs")).read().split()}
    assert len(procs) == 2
    assert d.stop(signal.SIGTERM) == 0
    assert not any(pid_alive(p) for p in procs)
    assert not instance_cgroups("stopme")
    assert not os.listdir(ctx.dir / "faas-stop" / "instances")


def test_missing_entrypoint_is_a_400_at_deploy(ctx, daemon):
    b = ctx.bundle("noprog")
    b.args("/bin/no-such-program")
    b.write()
    status, body = daemon.deploy(name="noprog", bundle=str(b.path))
    assert status == 400, body
    assert "field 'bundle': the program '/bin/no-such-program'" in json.loads(body)["error"]
    status, body = daemon.deploy(name="noprog", dir=str(b.path / "rootfs"),
                                 command=["nothere"])
    assert status == 400, body
    assert "field 'command'" in json.loads(body)["error"]
    assert daemon.request("GET", "/system/functions/noprog")[0] == 404
    # found through PATH inside the root, and through its absolute links
    status, body = daemon.deploy(name="okprog", dir=str(b.path / "rootfs"), command=["sh"])
    assert status == 201, body


def test_an_idle_instance_costs_one_fd_and_under_half_a_mib(ctx, daemon):
    b = shell_bundle(ctx, "cat")
    before = len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))
    name = f"dense{os.getpid()}"  # no other run's instances match
    deploy_ok(daemon, name=name, bundle=str(b.path), min=20, max=20)
    wait_for(lambda: fn_get(daemon, name)["instances"]["idle"] == 20, 30, "20 instances")
    time.sleep(1.5)  # past the second an instance keeps its memory peak's fd after a call
    more = len(os.listdir(f"/proc/{daemon.proc.pid}/fd")) - before
    # 1 per instance (its control socket), and the function's own (its log file, a journal)
    assert more <= 20 + 2, f"{more} more daemon fds for 20 idle instances"
    usage = [int(open(p).read())
             for p in instance_cgroup_files(name, "memory.usage_in_bytes", "memory.current")]
    assert len(usage) == 20 and sum(usage) / 20 <= 512 * 1024, usage
    status, _, body = daemon.request("POST", f"/function/{name}", b"still here")
    assert (status, body) == (200, b"still here")
    # as many fds as the daemon may have: at least the hard limit it was given
    limits = open(f"/proc/{daemon.proc.pid}/limits").read()
    soft, hard = map(int, next(ln for ln in limits.splitlines()
                               if ln.startswith("Max open files")).split()[3:5])
    assert soft == hard and soft >= resource.getrlimit(resource.RLIMIT_NOFILE)[1], limits
