# SPDX-License-Identifier: Apache-2.0
"""`husk serve`: the function registry, the admin API and the stdio contract behind HTTP."""

import glob
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import HUSK, wait_for
from serve_harness import Daemon


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    yield d
    assert d.stop() in (0, None), d.log.read_text()


def shell_bundle(ctx, script, name="fn"):
    b = ctx.bundle(name)
    b.args("/bin/sh", "-c", script)
    b.write()
    return b


def test_deploy_and_invoke(ctx, daemon):
    b = shell_bundle(ctx, "cat; echo done")
    status, body = daemon.deploy(name="echo", bundle=str(b.path), contract="stdio", timeout=10)
    assert status == 201, body
    assert json.loads(body)["version"] == 1
    status, headers, body = daemon.request("POST", "/function/echo", b"hello ")
    assert status == 200, body
    assert body == b"hello done\n"
    assert len(headers["X-Request-Id"]) == 32
    _, headers, _ = daemon.request("POST", "/function/echo", b"", headers={"X-Request-Id": "abc-1"})
    assert headers["X-Request-Id"] == "abc-1"
    # redeploy bumps the version; list and get show it
    status, body = daemon.deploy(name="echo", bundle=str(b.path), timeout=10)
    assert status == 201 and json.loads(body)["version"] == 2, body
    status, _, body = daemon.request("GET", "/system/functions")
    assert [f["name"] for f in json.loads(body)] == ["echo"]
    status, _, body = daemon.request("GET", "/system/functions/echo")
    assert status == 200 and json.loads(body)["version"] == 2
    # the CLI client
    r = daemon.fn("invoke", "echo", stdin=b"from cli ")
    assert r.returncode == 0, r
    assert r.stdout == b"from cli done\n"
    r = daemon.fn("ls")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "echo", r
    r = daemon.fn("rm", "echo")
    assert r.returncode == 0, r
    status, headers, _ = daemon.request("POST", "/function/echo", b"x")
    assert status == 404 and "X-Request-Id" in headers


def test_cli_deploy_env_and_headers(ctx, daemon):
    b = shell_bundle(ctx, 'echo "$GREETING $Http_Method $Http_X_Thing $Http_Path $Http_Query"')
    r = daemon.fn("deploy", "env", "--bundle", str(b.path), "--timeout", "10", "--env",
                  "GREETING=hi")
    assert r.returncode == 0, r
    status, _, body = daemon.request("GET", "/function/env/sub/dir?a=1", headers={"X-Thing": "t"})
    assert status == 200, body
    assert body == b"hi GET t /sub/dir a=1\n"
    r = daemon.fn("get", "env")
    assert r.returncode == 0 and json.loads(r.stdout)["env"] == ["GREETING=hi"], r


def test_exit_code_is_500(ctx, daemon):
    b = shell_bundle(ctx, "echo oops; exit 3")
    assert daemon.deploy(name="fail", bundle=str(b.path), timeout=10)[0] == 201
    status, headers, body = daemon.request("POST", "/function/fail", b"")
    assert status == 500
    assert b"status 3" in body and b"oops" in body
    assert "X-Request-Id" in headers
    r = daemon.fn("invoke", "fail")
    assert r.returncode != 0


def test_timeout_is_504_and_kills_the_sandbox(ctx, daemon):
    b = shell_bundle(ctx, "sleep 100 & sleep 100; echo never")
    assert daemon.deploy(name="slow", bundle=str(b.path), timeout=1)[0] == 201
    start = time.monotonic()
    status, headers, body = daemon.request("POST", "/function/slow", b"")
    assert status == 504, body
    assert b"timeout of 1 seconds" in body
    assert time.monotonic() - start < 5
    assert "X-Request-Id" in headers

    def sleeping(p):
        try:
            return "sleep" in open(f"/proc/{p}/cmdline").read()
        except OSError:  # gone between the listing and the read
            return False

    def gone():
        return not [p for p in ctx._token_pids() if p != daemon.proc.pid and sleeping(p)]

    wait_for(gone, 5, "the timed-out sandbox to be gone")


def test_body_over_max_body_is_413(ctx, daemon):
    b = shell_bundle(ctx, "cat")
    assert daemon.deploy(name="small", bundle=str(b.path), max_body=10, timeout=10)[0] == 201
    status, headers, body = daemon.request("POST", "/function/small", b"x" * 11)
    assert status == 413, body
    assert b"max_body" in body and "X-Request-Id" in headers
    status, _, body = daemon.request("POST", "/function/small", b"x" * 10)
    assert status == 200 and body == b"x" * 10


@pytest.mark.parametrize("spec,field", [
    ("{not json", "body"),
    ({"bundle": "/nonexistent"}, "name"),
    ({"name": "x"}, "bundle"),
    ({"name": "x", "bundle": "/nonexistent/bundle"}, "bundle"),
    ({"name": "x", "bundle": "BUNDLE", "contract": "openwhisk"}, "contract"),
    ({"name": "x", "bundle": "BUNDLE", "timeout": 0}, "timeout"),
    ({"name": "x", "bundle": "BUNDLE", "timeout": "10"}, "timeout"),
    ({"name": "x", "bundle": "BUNDLE", "max_body": -1}, "max_body"),
    ({"name": "x", "bundle": "BUNDLE", "memory": 1}, "memory"),
    ({"name": "x", "bundle": "BUNDLE", "env": ["NOEQUALS"]}, "env[0]"),
    ({"name": "../x", "bundle": "BUNDLE"}, "name"),
])
def test_bad_deploy_is_400_naming_the_field(ctx, daemon, spec, field):
    b = shell_bundle(ctx, "cat")
    if isinstance(spec, dict):
        spec = json.dumps({k: (str(b.path) if v == "BUNDLE" else v) for k, v in spec.items()})
    status, headers, body = daemon.request("POST", "/system/functions", spec)
    assert status == 400, body
    assert f"'{field}'" in json.loads(body)["error"] or field == "body", body
    assert "X-Request-Id" in headers
    _, _, body = daemon.request("GET", "/system/functions")
    assert json.loads(body) == []


def test_malformed_http_is_400(ctx, daemon):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b"X-Request-Id" in data
    # the daemon is still there
    assert daemon.request("GET", "/system/functions")[0] == 200


def test_restart_after_kill9_serves_again(ctx, daemon):
    b = shell_bundle(ctx, "cat; echo done")
    assert daemon.deploy(name="echo", bundle=str(b.path), timeout=10)[0] == 201
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    status, _, body = daemon.request("POST", "/function/echo", b"again ")
    assert status == 200 and body == b"again done\n", body


def test_sigterm_finishes_requests_in_flight(ctx, daemon):
    import threading

    b = shell_bundle(ctx, "sleep 1; cat; echo late")
    assert daemon.deploy(name="late", bundle=str(b.path), timeout=10)[0] == 201
    result = {}

    def call():
        result["r"] = daemon.request("POST", "/function/late", b"still ")

    t = threading.Thread(target=call)
    t.start()
    idle = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)  # sends nothing
    time.sleep(0.4)
    daemon.proc.send_signal(signal.SIGTERM)
    t.join(10)
    status, _, body = result["r"]
    assert status == 200 and body == b"still late\n", body
    assert daemon.proc.wait(timeout=10) == 0
    daemon.proc = None
    assert idle.recv(100) == b""  # closed, not waited for
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=1).close()


def test_memory_limit_is_the_instances_cgroup(ctx, daemon):
    b = shell_bundle(ctx, "cat /sys/fs/cgroup/memory.max 2>/dev/null"
                          " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    b.config["linux"].pop("resources", None)
    b.write()
    status, body = daemon.deploy(name="mem", bundle=str(b.path), memory=64 << 20, timeout=10,
                                 idle=1)
    assert status == 201, body
    status, _, body = daemon.request("GET", "/function/mem")
    assert status == 200, body
    assert int(body) == 64 << 20
    # the instance's cgroup goes with the instance, once idle
    wait_for(lambda: not glob.glob("/sys/fs/cgroup/*/husk/serve-*/mem-v*"), 5, "the cgroup")
