# SPDX-License-Identifier: Apache-2.0
"""Running husk serve as an operator does: a configuration file (flags win), checked with
--check-config; default and maximum limits for every function; the systemd units, and
socket activation through systemd-socket-activate (LISTEN_FDS)."""

import glob
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import HUSK, wait_for
from serve_harness import Daemon, UnixHTTPConnection, free_port
from test_serve import shell_bundle

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "systemd"


def serve(ctx, *args):
    return subprocess.run([HUSK, "--root", str(ctx.state), "serve", *args],
                          capture_output=True, text=True, timeout=30, env=ctx.env())


def write(ctx, name, text):
    p = ctx.dir / name
    p.write_text(text)
    return p


def test_check_config_accepts_a_good_file_and_flags_win(ctx):
    cfg = write(ctx, "ok.json", json.dumps({
        "listen": "127.0.0.1:8081", "state": str(ctx.dir / "st"), "max_connections": 100,
        "allow_bind": ["/var/tmp"], "default_fn_timeout": 20, "max_fn_memory": "256M",
        "log_format": "json"}))
    r = serve(ctx, "--config", str(cfg), "--check-config")
    assert r.returncode == 0 and "settings are valid" in r.stdout, r
    r = serve(ctx, "--config", str(cfg), "--listen", "not-an-address", "--check-config")
    assert r.returncode == 1 and "--listen 'not-an-address'" in r.stderr, r
    # nothing was created by a check
    assert not (ctx.dir / "st").exists()


@pytest.mark.parametrize("text,says", [
    ('{"listen": 8080}', "line 1: key 'listen': expected a string"),
    ('{\n  "state": "/x",\n  "colour": "blue"\n}', "line 3: unknown setting 'colour'"),
    ('{\n  "state": "/x"\n  "listen": "a"\n}', "line 3 column"),
    ('{"max_connections": "many"}', "key 'max_connections': expected an integer"),
    ('{"allow_bind": "/var/tmp"}', "key 'allow_bind': expected a list of strings"),
    ('{"log_format": "xml"}', "key 'log_format': expected \"text\" or \"json\""),
    ('[1, 2]', "must be a JSON object"),
    ('{"max_fn_memory": "lots"}', "--max-fn-memory 'lots': expected a size"),
    ('{"default_fn_timeout": 600, "max_fn_timeout": 60}', "over its --max-fn-* setting"),
    ('{"otlp_endpoint": "ftp://x/"}', "--otlp-endpoint 'ftp://x/'"),
    ('{"allow_callback": ["10.0.0.0/33"]}', "--allow-callback '10.0.0.0/33'"),
])
def test_a_bad_config_is_refused_naming_the_line_and_key(ctx, text, says):
    cfg = write(ctx, "bad.json", text)
    for args in (["--check-config"], []):
        r = serve(ctx, "--config", str(cfg), "--state", str(ctx.dir / "st"),
                  "--admin-socket", str(ctx.dir / "a.sock"), "--listen", "127.0.0.1:1", *args)
        assert r.returncode == 1 and says in r.stderr, (args, r.stderr)
        assert str(cfg) in r.stderr or "--" in says, r.stderr
    assert not (ctx.dir / "a.sock").exists()


def test_an_unreadable_config_is_named(ctx):
    r = serve(ctx, "--config", str(ctx.dir / "missing.json"), "--check-config")
    assert r.returncode == 1 and "missing.json" in r.stderr and "No such file" in r.stderr


def test_function_defaults_and_maxima(ctx):
    cfg = write(ctx, "limits.json", json.dumps({
        "default_fn_timeout": 1, "max_fn_timeout": 5, "max_fn_memory": "64M",
        "max_fn_instances": 2}))
    d = Daemon(ctx, ctx.dir / "faas", args=["--config", str(cfg)])
    d.start()
    try:
        b = shell_bundle(ctx, "sleep 3; echo late")
        status, body = d.deploy(name="big", bundle=str(b.path), memory=128 << 20)
        assert status == 400 and "over the daemon's maximum" in json.loads(body)["error"]
        status, body = d.deploy(name="many", bundle=str(b.path), max=3)
        assert status == 400 and "--max-fn-instances" in json.loads(body)["error"]
        status, body = d.deploy(name="long", bundle=str(b.path), timeout=10)
        assert status == 400 and "field 'timeout'" in json.loads(body)["error"]
        # left out: the defaults (the 1 s timeout; the maximum memory as the limit)
        assert d.deploy(name="dflt", bundle=str(b.path))[0] == 201
        status, _, body = d.request("GET", "/function/dflt")
        assert status == 504 and b"timeout of 1 seconds" in body, body
        name = f"limits{os.getpid()}"  # a name no other test's instance has
        assert d.deploy(name=name, bundle=str(shell_bundle(ctx, "cat", name="w").path),
                        min=1)[0] == 201
        wait_for(lambda: json.loads(d.request("GET", f"/system/functions/{name}")[2])
                 ["instances"]["idle"] == 1, 10, "the instance")
        limits = [int(open(p).read()) for p in
                  glob.glob(f"/sys/fs/cgroup/memory/husk/serve-*/{name}-v1-*/"
                            "memory.limit_in_bytes") +
                  glob.glob(f"/sys/fs/cgroup/unified/husk/serve-*/{name}-v1-*/memory.max")]
        assert limits == [64 << 20], limits  # the maximum, as no default was set
    finally:
        d.stop()


# ---- systemd


def test_the_systemd_units_verify(ctx):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    units = ctx.dir / "units"
    units.mkdir()
    for f in ("husk.service", "husk.socket", "husk-admin.socket"):
        text = (CONTRIB / f).read_text().replace("/usr/local/bin/husk", HUSK)
        (units / f).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        *[str(units / f) for f in ("husk.service", "husk.socket",
                                                   "husk-admin.socket")]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    cfg = json.loads((CONTRIB / "serve.json").read_text())
    cfg["state"] = str(ctx.dir / "st")
    p = write(ctx, "serve.json", json.dumps(cfg))
    assert serve(ctx, "--config", str(p), "--check-config").returncode == 0


def activated(ctx, *extra):
    if not shutil.which("systemd-socket-activate"):
        pytest.skip("systemd-socket-activate is not installed (Debian's systemd package)")
    port = free_port()
    log = open(ctx.dir / "activate.log", "w")
    proc = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", *extra,
                             HUSK, "--root", str(ctx.state), "serve", "--state",
                             str(ctx.dir / "st"), "--admin-socket", str(ctx.dir / "a.sock")],
                            stdout=log, stderr=log, env=ctx.env())
    return port, proc


def test_socket_activation_serves_the_handed_over_front_door(ctx):
    port, proc = activated(ctx)
    try:
        # systemd-socket-activate listens first and starts the daemon at the first connection
        def health():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /_/health HTTP/1.0\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
            except OSError:
                return False
        wait_for(health, 15, "the activated daemon")
        log = (ctx.dir / "activate.log").read_text()
        assert "front door on fd 3 (socket activation)" in log, log
        b = shell_bundle(ctx, "echo activated")
        conn = UnixHTTPConnection(str(ctx.dir / "a.sock"))
        conn.request("POST", "/system/functions", json.dumps({"name": "a", "bundle": str(b.path)}),
                     {"Content-Type": "application/json"})
        assert conn.getresponse().status == 201
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /function/a HTTP/1.0\r\n\r\n")
        assert s.recv(4096).endswith(b"activated\n")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_activated_admin_socket_open_to_others_is_refused(ctx):
    sock = ctx.dir / "open.sock"
    port, proc = activated(ctx, "-l", str(sock), "--fdname=front:admin")
    try:
        def knock():  # the first connection starts the daemon, which must refuse the socket
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                return True
            except OSError:
                return False
        wait_for(knock, 10, "systemd-socket-activate to listen")
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = "running"
        log = (ctx.dir / "activate.log").read_text()
        assert rc == 1, log
        assert "must be owned by root and closed to others" in log, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
