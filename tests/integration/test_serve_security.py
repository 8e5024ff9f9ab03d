# SPDX-License-Identifier: Apache-2.0
"""`husk serve` on a shared host: the admin API is private, every deploy is held to the deploy
policy, functions are not root on the host, and a hostile function or client cannot hurt the
daemon or other callers. The attacker is an unprivileged user (nobody) where it matters."""

import glob
import json
import os
import shutil
import socket
import stat
import subprocess
import time

import pytest

from conftest import HUSK, pid_alive, wait_for
from serve_harness import Daemon, UnixHTTPConnection, cgroup_pids
from test_serve import shell_bundle

NOBODY = 65534
USERNS_BASE = 0x60000000
ADMIN_GID = 4242  # a group with no name: members are made with setpriv --groups


def as_user(argv, uid=NOBODY, groups=(), **kw):
    groups_arg = ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", *groups_arg, *argv],
                          capture_output=True, timeout=30, **kw)


def curl(*args, uid=None):
    argv = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args]
    r = as_user(argv, uid) if uid is not None else subprocess.run(argv, capture_output=True,
                                                                  timeout=30)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body


def functions(daemon):
    status, _, body = daemon.request("GET", "/system/functions")
    assert status == 200, body
    return json.loads(body)


def instance_cgroups(name):
    return glob.glob(f"/sys/fs/cgroup/*/husk/serve-*/{name}-v*")


def assert_nothing_created(daemon, name):
    assert functions(daemon) == []
    assert not instance_cgroups(name)
    assert not os.listdir(daemon.state / "instances")


def fn_idle(daemon, name):
    status, _, body = daemon.request("GET", f"/system/functions/{name}")
    return json.loads(body)["instances"]["idle"] if status == 200 else 0


def instance_pids(name):
    pids = set()
    for cg in instance_cgroups(name):
        pids |= set(cgroup_pids(cg) or ())  # None: gone meanwhile
    return pids


def status_field(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return line.split()[1:]
    return None


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    yield d
    assert d.stop() in (0, None), d.log.read_text()


def owned_by_nobody(ctx, name):
    """A bundle the unprivileged user owns, whose config bind-mounts the host's / read-write."""
    b = ctx.bundle(name)
    b.add_mount("/host", "bind", "/", ["rbind", "rw"])
    b.args("/bin/sh", "-c", "echo pwned > /host/tmp/pwned-by-a-function")
    b.write()
    for root, dirs, files in os.walk(b.path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), NOBODY, NOBODY)
    os.lchown(b.path, NOBODY, NOBODY)
    return b


# ---------------------------------------------------------------------------------------------
# the admin API is private


def test_the_local_root_attack_is_refused(ctx, daemon):
    """The review's attack: nobody deploys a bundle that binds the host's / and calls it."""
    b = owned_by_nobody(ctx, "evil")
    spec = json.dumps({"name": "evil", "bundle": str(b.path)})
    # on the front door the admin API does not exist, whoever asks
    code, body = curl("-X", "POST", "-H", "Content-Type: application/json", "-d", spec,
                      f"{daemon.url}/system/functions", uid=NOBODY)
    assert code == 403, body
    assert b"admin socket" in body
    # the admin socket is root's alone: nobody cannot even connect
    sock = stat.S_IMODE(os.stat(daemon.socket).st_mode)
    assert sock == 0o600 and os.stat(daemon.socket).st_uid == 0
    r = as_user([HUSK, "fn", "deploy", "evil", "--bundle", str(b.path), "--url", daemon.admin_url])
    assert r.returncode != 0
    assert b"Permission denied" in r.stderr, r.stderr
    # and root deploying nobody's files gets the policy's answer, not a sandbox
    status, body = daemon.deploy(name="evil", bundle=str(b.path))
    assert status == 400, body
    assert "owned by another user" in json.loads(body)["error"]
    assert_nothing_created(daemon, "evil")
    assert not os.path.exists("/tmp/pwned-by-a-function")


def test_admin_paths_on_the_front_door(ctx, daemon):
    for method, path in (("GET", "/system/functions"), ("GET", "/system/functions/x"),
                         ("DELETE", "/system/functions/x"), ("GET", "/system/logs/x")):
        status, _, body = daemon.request(method, path, via="tcp")
        assert status == 403, (method, path, body)
        assert "admin socket" in json.loads(body)["error"]
    # the front door still serves calls, metrics and health
    assert daemon.request("GET", "/_/health")[0] == 200
    assert daemon.request("GET", "/metrics")[0] == 200


def test_admin_group_may_deploy_its_own_files(ctx):
    d = Daemon(ctx, ctx.dir / "faas-grp", args=["--admin-group", str(ADMIN_GID)])
    d.start()
    try:
        st = os.stat(d.socket)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == ADMIN_GID
        member = (NOBODY, [ADMIN_GID])
        mine = shell_bundle(ctx, "echo mine", name="mine")
        for root, dirs, files in os.walk(mine.path):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), NOBODY, NOBODY)
        os.lchown(mine.path, NOBODY, NOBODY)
        r = as_user([HUSK, "fn", "deploy", "mine", "--bundle", str(mine.path), "--url",
                     d.admin_url], uid=member[0], groups=member[1])
        assert r.returncode == 0, r.stderr
        r = as_user([HUSK, "fn", "invoke", "mine", "--url", d.admin_url], uid=member[0],
                    groups=member[1])
        assert r.returncode == 0 and r.stdout == b"mine\n", r
        # not a member: refused at connect
        r = as_user([HUSK, "fn", "ls", "--url", d.admin_url])
        assert r.returncode != 0 and b"Permission denied" in r.stderr, r
        # a member may not deploy another user's files (root's are fine)
        other = shell_bundle(ctx, "echo other", name="other")
        os.lchown(other.path, 4243, 4243)
        r = as_user([HUSK, "fn", "deploy", "other", "--bundle", str(other.path), "--url",
                     d.admin_url], uid=member[0], groups=member[1])
        assert r.returncode != 0 and b"owned by another user" in r.stderr, r
    finally:
        assert d.stop() == 0


def test_admin_over_tcp_needs_the_token(ctx):
    token = "t0ken-" + "x" * 20
    tf = ctx.dir / "token"
    tf.write_text(token + "\n")
    os.chmod(tf, 0o600)
    d = Daemon(ctx, ctx.dir / "faas-tok", args=["--admin-token-file", str(tf)])
    d.start()
    try:
        cases = [({}, 401), ({"Authorization": "Bearer"}, 401),
                 ({"Authorization": "Bearer "}, 401), ({"Authorization": "Bearer wrong"}, 401),
                 ({"Authorization": f"Bearer {token}x"}, 401),
                 ({"Authorization": f"Basic {token}"}, 401),
                 ({"Authorization": f"Bearer {token}"}, 200),
                 ({"Authorization": f"Bearer {token}", "Origin": "http://evil.example"}, 403)]
        for headers, want in cases:
            status, h, body = d.request("GET", "/system/functions", headers=headers, via="tcp")
            assert status == want, (headers, body)
            if want == 401:
                assert h.get("WWW-Authenticate", "").startswith("Bearer"), h
            assert "Access-Control-Allow-Origin" not in h
        # a form post (no JSON content type) is refused even with the token
        b = shell_bundle(ctx, "echo hi")
        spec = json.dumps({"name": "f", "bundle": str(b.path)})
        status, _, body = d.request("POST", "/system/functions", spec, via="tcp",
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "text/plain"})
        assert status == 415, body
        status, _, body = d.request("POST", "/system/functions", spec, via="tcp",
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "application/json"})
        assert status == 201, body
        # the CLI with the token file
        r = subprocess.run([HUSK, "fn", "ls", "--url", d.url, "--token-file", str(tf),
                            "--format", "json"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "f", r
    finally:
        assert d.stop() == 0


FRONT_DOOR_WARNING = "beyond this machine, without TLS: put a TLS proxy in front of it"
# the daemon in a network namespace of its own, its loopback up: no port of it is reachable
# from outside the namespace
OWN_NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
@pytest.mark.parametrize("token", [False, True])
def test_a_front_door_beyond_loopback_is_warned_about(ctx, host, token):
    """The daemon runs in a network namespace of its own (nothing outside it can reach the
    port) and listens on every address there: its log says the front door is open beyond this
    machine without TLS, and that the admin token would cross it in clear text."""
    args = ["--listen", f"{host}:8080"]
    if token:
        tf = ctx.dir / "token"
        tf.write_text("t0ken-" + "x" * 20 + "\n")
        os.chmod(tf, 0o600)
        args += ["--admin-token-file", str(tf)]
    d = Daemon(ctx, ctx.dir / "faas", args=args, wrap=OWN_NETNS)
    d.start()
    try:
        listening = subprocess.run(["nsenter", f"--net=/proc/{d.proc.pid}/ns/net", "ss", "-Htln"],
                                   capture_output=True, text=True, timeout=10).stdout
        assert f"{host}:8080" in listening or f"*:8080" in listening, listening
        lines = [ln for ln in d.log.read_text().splitlines() if FRONT_DOOR_WARNING in ln]
        assert len(lines) == 1 and "warning" in lines[0], d.log.read_text()
        assert f"listens on {host}:8080" in lines[0], lines
        assert ("the admin token travels in clear text" in lines[0]) == token, lines
    finally:
        assert d.stop() == 0, d.log.read_text()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "[::1]"])
def test_a_loopback_front_door_is_not_warned_about(ctx, host):
    d = Daemon(ctx, ctx.dir / "faas", args=["--listen", f"{host}:8080"],
               wrap=OWN_NETNS)
    d.start()
    try:
        assert d.request("GET", "/system/functions")[0] == 200
        assert "beyond this machine" not in d.log.read_text(), d.log.read_text()
    finally:
        assert d.stop() == 0, d.log.read_text()


@pytest.mark.parametrize("mode,content,why", [
    (0o644, "t" * 20, "no one else may read"),
    (0o600, "short", "at least 16 characters"),
])
def test_a_bad_token_file_stops_the_daemon_at_start(ctx, mode, content, why):
    tf = ctx.dir / "token"
    tf.write_text(content)
    os.chmod(tf, mode)
    r = subprocess.run([HUSK, "serve", "--listen", "127.0.0.1:0", "--state", str(ctx.dir / "s"),
                        "--admin-socket", str(ctx.dir / "a.sock"), "--admin-token-file", str(tf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and why in r.stderr, r.stderr
    assert not os.path.exists(ctx.dir / "a.sock")


def test_a_live_admin_socket_is_not_taken_over(ctx, daemon):
    r = subprocess.run([HUSK, "serve", "--listen", "127.0.0.1:0", "--state", str(ctx.dir / "s2"),
                        "--admin-socket", daemon.socket], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and "another husk serve answers on it" in r.stderr, r.stderr
    assert daemon.request("GET", "/system/functions")[0] == 200


# ---------------------------------------------------------------------------------------------
# the deploy policy


def config_edit(edit):
    def apply(b):
        edit(b.config)
    return apply


FORBIDDEN = {
    "host-bind": (lambda c: c["mounts"].append(
        {"destination": "/etc2", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]}),
        "mounts[", "not beneath a directory the operator allows"),
    "filesystem": (lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "ext4", "source": "/dev/sda"}), "mounts[",
        "filesystem 'ext4'"),
    "host-netns": (lambda c: c["linux"]["namespaces"].__setitem__(
        1, {"type": "network", "path": "/proc/self/ns/net"}), "linux.namespaces[network]",
        "no joining of existing namespaces"),
    "capability": (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN"),
                   "process.capabilities.bounding", "CAP_SYS_ADMIN"),
    "device": (lambda c: c["linux"].__setitem__("devices", [
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}]), "linux.devices",
        "no devices"),
    "device-rule": (lambda c: c["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rwm"}),
        "linux.resources.devices", "no device access"),
    "sysctl": (lambda c: c["linux"].__setitem__("sysctl", {"kernel.msgmax": "8192"}),
               "linux.sysctl", "no sysctls"),
    "hook": (lambda c: c.__setitem__("hooks", {"prestart": [{"path": "/bin/true"}]}),
             "hooks.prestart", "no hooks"),
    "idmap": (lambda c: c["linux"].update(
        namespaces=c["linux"]["namespaces"] + [{"type": "user"}],
        uidMappings=[{"containerID": 0, "hostID": 0, "size": 1}],
        gidMappings=[{"containerID": 0, "hostID": 0, "size": 1}]), "linux.uidMappings",
        "its own host id range"),
    "oom-score": (lambda c: c["process"].__setitem__("oomScoreAdj", -1000),
                  "process.oomScoreAdj", "host privilege"),
    "cgroup-file": (lambda c: c["linux"]["resources"].__setitem__(
        "unified", {"cgroup.max.descendants": "1"}), "linux.resources.unified", "cgroup.*"),
    "big-uid": (lambda c: c["process"]["user"].__setitem__("uid", 70000), "process.user",
                "below 65536"),
    "realtime-runtime": (lambda c: c["linux"]["resources"].setdefault("cpu", {}).update(
        realtimeRuntime=950000, realtimePeriod=1000000), "linux.resources.cpu.realtimeRuntime",
        "no real-time CPU budget"),
    "realtime-period": (lambda c: c["linux"]["resources"].setdefault("cpu", {}).update(
        realtimePeriod=1000000), "linux.resources.cpu.realtimePeriod",
        "no real-time CPU budget"),
    "seccomp-agent": (lambda c: c["linux"].__setitem__("seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]}),
        "linux.seccomp.listenerPath", "no seccomp agents"),
}


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_forbidden_deploy_is_a_400_and_creates_nothing(ctx, daemon, what):
    edit, field, rule = FORBIDDEN[what]
    b = shell_bundle(ctx, "echo x")
    edit(b.config)
    b.write()
    status, body = daemon.deploy(name="bad", bundle=str(b.path))
    assert status == 400, body
    msg = json.loads(body)["error"]
    assert field in msg and rule in msg, msg
    assert "deploy policy" in msg, msg
    assert_nothing_created(daemon, "bad")


def test_allowed_bind_directories(ctx):
    data = ctx.dir / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "file").write_text("shared\n")
    os.symlink("/etc", data / "escape")
    d = Daemon(ctx, ctx.dir / "faas-bind", args=["--allow-bind", str(data)])
    d.start()
    try:
        b = shell_bundle(ctx, "cat /data/file", name="ok")
        b.add_mount("/data", "bind", data / "sub", ["rbind", "ro"])
        b.write()
        status, body = d.deploy(name="ok", bundle=str(b.path))
        assert status == 201, body
        assert d.request("GET", "/function/ok")[2] == b"shared\n"
        for name, source in (("out", ctx.dir), ("link", data / "escape")):
            b = shell_bundle(ctx, "ls /data", name=name)
            b.add_mount("/data", "bind", source, ["rbind", "ro"])
            b.write()
            status, body = d.deploy(name=name, bundle=str(b.path))
            assert status == 400, body
            assert "mounts[" in json.loads(body)["error"], body
    finally:
        assert d.stop() == 0


def test_root_paths_must_be_trusted(ctx, daemon):
    b = shell_bundle(ctx, "echo x")
    link = ctx.dir / "link"
    os.symlink(b.path, link)
    status, body = daemon.deploy(name="f", bundle=str(link))
    assert status == 400 and "is a symlink" in json.loads(body)["error"], body
    os.chmod(b.path, 0o777)
    status, body = daemon.deploy(name="f", bundle=str(b.path))
    assert status == 400 and "writable by other users" in json.loads(body)["error"], body
    os.chmod(b.path, 0o755)
    os.chown(b.path / "config.json", NOBODY, NOBODY)
    status, body = daemon.deploy(name="f", bundle=str(b.path))
    assert status == 400 and "owned by another user" in json.loads(body)["error"], body
    os.chown(b.path / "config.json", 0, 0)
    os.chmod(b.path / "rootfs", 0o775)
    os.chown(b.path / "rootfs", 0, 1000)
    status, body = daemon.deploy(name="f", bundle=str(b.path))
    assert status == 400 and "writable by other users" in json.loads(body)["error"], body
    assert_nothing_created(daemon, "f")


def test_a_root_swapped_after_deploy_is_not_used(ctx, daemon):
    """The root is opened once at deploy and used through that fd: a swap of the path does
    not reach the function, and a change of its owner or mode stops new instances."""
    root = ctx.dir / "root"
    shutil.copytree(ctx.session.template, root, symlinks=True)
    (root / "srv" / "app" / "who").write_text("the original\n")
    status, body = daemon.deploy(name="sw", dir=str(root), command=["cat", "/srv/app/who"],
                                 idle=1)
    assert status == 201, body
    assert daemon.request("GET", "/function/sw")[2] == b"the original\n"
    os.rename(root, ctx.dir / "root.old")
    shutil.copytree(ctx.dir / "root.old", root, symlinks=True)
    (root / "srv" / "app" / "who").write_text("a swapped root\n")
    wait_for(lambda: not instance_cgroups("sw"), 10, "the idle instance to stop")
    assert daemon.request("GET", "/function/sw")[2] == b"the original\n"  # a new instance
    wait_for(lambda: not instance_cgroups("sw"), 10, "the idle instance to stop")
    os.chmod(ctx.dir / "root.old", 0o777)
    status, _, body = daemon.request("GET", "/function/sw")
    assert status == 502 and b"writable by other users" in body, body


# ---------------------------------------------------------------------------------------------
# functions are not root on the host


def test_instances_run_as_their_own_unprivileged_host_ids(ctx, daemon):
    ranges = []
    for name in ("one", "two"):
        b = shell_bundle(ctx, "id -u; cat /proc/self/uid_map", name=name)
        assert daemon.deploy(name=name, bundle=str(b.path), min=1, timeout=60)[0] == 201
        wait_for(lambda n=name: fn_idle(daemon, n) == 1, 10, "the instance")
        for pid in instance_pids(name):
            uids = [int(u) for u in status_field(pid, "Uid")]
            gids = [int(g) for g in status_field(pid, "Gid")]
            assert all(u >= USERNS_BASE for u in uids + gids), (name, uids, gids)
            assert status_field(pid, "NoNewPrivs") == ["1"]
            ranges.append(uids[0] // 65536)
        status, _, body = daemon.request("POST", "/function/" + name, b"")
        inside = body.split()
        assert inside[0] == b"0", body  # root inside the function
        assert int(inside[2]) >= USERNS_BASE and inside[3] == b"65536", body
    assert len(set(ranges)) == 2  # each function its own range


def test_seccomp_default_stays_under_a_bundles_own_profile(ctx, daemon):
    b = shell_bundle(ctx, "grep -E 'Seccomp|NoNewPrivs' /proc/self/status")
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}  # a profile that allows all
    b.write()
    assert daemon.deploy(name="sec", bundle=str(b.path))[0] == 201, "deploy"
    status, _, body = daemon.request("GET", "/function/sec")
    assert status == 200, body
    lines = dict(line.split(":\t") for line in body.decode().splitlines())
    assert lines["NoNewPrivs"] == "1" and lines["Seccomp"] == "2", lines
    # the daemon's default filter, and the bundle's own on top: it can only tighten
    assert lines["Seccomp_filters"] == "2", lines


def test_a_function_cannot_reach_the_admin_api(ctx, daemon):
    b = shell_bundle(ctx, f"ls {daemon.socket} 2>&1; nc -w 1 127.0.0.1 {daemon.port} "
                          "</dev/null 2>&1; echo nc=$?")
    assert daemon.deploy(name="peek", bundle=str(b.path))[0] == 201
    status, _, body = daemon.request("GET", "/function/peek")
    assert status == 200, body
    assert b"No such file" in body  # the admin socket is not in its root
    assert body.rstrip().endswith(b"nc=1")  # the daemon's port is not in its network


def test_landlock_keeps_a_leaked_host_fd_closed(ctx, daemon):
    """An http instance's stdin is the host's /dev/null: reopening it through /proc/self/fd
    leaves the function's root, which landlock refuses (and allows with --no-landlock)."""
    # framed by a length: busybox nc -ll may hold a connection open after its handler exits
    handler = ("#!/bin/sh\nwhile IFS= read -r l; do [ -z \"$(printf %s \"$l\" | tr -d '\\r')\" ] "
               "&& break; done\nr=$(cat /tmp/r)\n"
               "printf 'HTTP/1.0 200 OK\\r\\nContent-Length: %s\\r\\n\\r\\n%s\\n' "
               "$((${#r} + 1)) \"$r\"\n")
    for name, extra in (("ll", {}), ("noll", {"landlock": False})):
        b = ctx.bundle(name)
        (b.rootfs / "srv" / "app" / "handler").write_text(handler)
        os.chmod(b.rootfs / "srv" / "app" / "handler", 0o755)
        b.args("/bin/sh", "-c", "( : 3<>/proc/self/fd/0 ) 2>/dev/null && echo reopened > /tmp/r "
               "|| echo refused > /tmp/r; exec nc -ll -p \"$PORT\" -e /srv/app/handler")
        b.write()
        status, body = daemon.deploy(name=name, bundle=str(b.path), contract="http", **extra)
        assert status == 201, body
    assert daemon.request("GET", "/function/ll")[2] == b"refused\n"
    assert daemon.request("GET", "/function/noll")[2] == b"reopened\n"


# ---------------------------------------------------------------------------------------------
# a function cannot hurt the daemon or other callers


def http_fn(ctx, daemon, name, response, contract="http"):
    """An http function answering every connection with these bytes (printf format)."""
    b = ctx.bundle(name)
    handler = ("#!/bin/sh\nwhile IFS= read -r l; do [ -z \"$(printf %s \"$l\" | tr -d '\\r')\" ] "
               f"&& break; done\nprintf '{response}'\n")
    (b.rootfs / "srv" / "app" / "handler").write_text(handler)
    os.chmod(b.rootfs / "srv" / "app" / "handler", 0o755)
    b.args("/bin/sh", "-c", 'exec nc -ll -p "$PORT" -e /srv/app/handler')
    b.write()
    status, body = daemon.deploy(name=name, bundle=str(b.path), contract=contract)
    assert status == 201, body


def keepalive_pair(daemon, first, second):
    """Two requests on one client connection; both answers."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        out = []
        for path in (first, second):
            conn.request("GET", path)
            r = conn.getresponse()
            out.append((r.status, r.read()))
        return out
    finally:
        conn.close()


def test_bytes_after_a_response_never_reach_the_next_caller(ctx, daemon):
    second = "HTTP/1.1 200 OK\\r\\nContent-Length: 8\\r\\n\\r\\nINJECTED"
    http_fn(ctx, daemon, "inject", "HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi" + second)
    http_fn(ctx, daemon, "plain", "HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nplain")
    answers = keepalive_pair(daemon, "/function/inject", "/function/plain")
    assert answers == [(200, b"hi"), (200, b"plain")], answers
    answers = keepalive_pair(daemon, "/function/inject", "/function/inject")
    assert answers == [(200, b"hi"), (200, b"hi")], answers
    extra = len(second.replace("\\r\\n", "\r\n"))
    assert f"sent {extra} bytes after its response" in daemon.log.read_text()


def test_a_nul_in_the_status_line_is_a_502_and_the_daemon_lives(ctx, daemon):
    http_fn(ctx, daemon, "nul", "HTTP/1.1 200 OK\\0X\\r\\nContent-Length: 2\\r\\n\\r\\nhi")
    http_fn(ctx, daemon, "plain", "HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nplain")
    for _ in range(3):
        answers = keepalive_pair(daemon, "/function/nul", "/function/plain")
        assert answers[0][0] == 502 and b"malformed HTTP response" in answers[0][1], answers
        assert answers[1] == (200, b"plain"), answers
    assert daemon.proc.poll() is None


@pytest.mark.parametrize("response,why", [
    ("HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Length: 3\\r\\n\\r\\nhi", "ength"),
    ("HTTP/1.1 999 What\\r\\nContent-Length: 0\\r\\n\\r\\n", "status"),
    ("HTTP/1.1 200 OK\\r\\nX: a\\001b\\r\\nContent-Length: 0\\r\\n\\r\\n", "malformed"),
    ("SSH-2.0-OpenSSH\\r\\n", "malformed"),
])
def test_malformed_responses_are_502(ctx, daemon, response, why):
    http_fn(ctx, daemon, "bad", response)
    status, _, body = daemon.request("GET", "/function/bad")
    assert status == 502 and b"malformed HTTP response" in body, body
    assert daemon.request("GET", "/_/health")[0] == 200


def test_connections_are_capped_in_total_and_per_client(ctx):
    d = Daemon(ctx, ctx.dir / "faas-caps", args=["--max-connections", "20",
                                                  "--max-connections-per-client", "8"])
    d.start()
    held = []
    try:
        for _ in range(8):  # each answered: accepted (the loops accept in their own order)
            held.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
            held[-1].sendall(b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert held[-1].recv(200).startswith(b"HTTP/1.1 200")
        extra = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        assert extra.recv(200).startswith(b"HTTP/1.1 503"), "the 9th from one address"
        extra.close()
        # another address (127.0.0.2 is loopback too) still gets in
        other = socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                         source_address=("127.0.0.2", 0))
        other.sendall(b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.recv(200).startswith(b"HTTP/1.1 200")
        other.close()
    finally:
        for s in held:
            s.close()
    try:
        assert d.request("GET", "/_/health")[0] == 200
    finally:
        assert d.stop() == 0


def daemon_cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_fds_pauses_the_listener(ctx):
    """Near the fd limit accept fails with EMFILE: the daemon stops accepting for a moment
    instead of spinning on a listener that stays readable, and serves again when fds free."""
    d = Daemon(ctx, ctx.dir / "faas-fds")
    d.proc = None
    log = open(d.log, "a")
    d.proc = subprocess.Popen(
        ["prlimit", "--nofile=40:40", HUSK, "--root", str(ctx.state), "serve", "--listen",
         f"127.0.0.1:{d.port}", "--state", str(d.state), "--admin-socket", d.socket],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=ctx.env())
    wait_for(lambda: os.path.exists(d.socket), 10, "husk serve")
    held = []
    try:
        for _ in range(60):
            try:
                held.append(socket.create_connection(("127.0.0.1", d.port), timeout=2))
            except OSError:
                break
        before = daemon_cpu_seconds(d.proc.pid)
        time.sleep(2)
        used = daemon_cpu_seconds(d.proc.pid) - before
        assert used < 0.5, f"the daemon spun: {used:.2f} s of CPU in 2 s"
        assert "pausing new connections" in d.log.read_text()
    finally:
        for s in held:
            s.close()
    wait_for(lambda: d.request("GET", "/_/health", timeout=2)[0] == 200, 10, "serving again")
    assert d.stop() == 0


# ---------------------------------------------------------------------------------------------
# limits on what a caller can make the daemon hold


def test_a_declared_body_over_the_limit_is_refused_at_once(ctx, daemon):
    b = shell_bundle(ctx, "cat")
    assert daemon.deploy(name="small", bundle=str(b.path), max_body=10)[0] == 201
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
        s.sendall(b"POST /function/small HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        start = time.monotonic()
        data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 413"), data
        assert time.monotonic() - start < 5  # not the 30 s read timeout
        assert b"Connection: close" in data


def test_request_heads_are_bounded(ctx, daemon):
    many = "".join(f"X-H{i}: v\r\n" for i in range(100))
    big = "".join(f"X-B{i}: {'v' * 8000}\r\n" for i in range(10))
    for head in (many, big):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
            s.sendall(f"GET /_/health HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
            data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 431"), data[:200]


def test_an_error_quoting_a_non_utf8_path_is_still_json(ctx, daemon):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
        s.sendall(b"GET /function/\xff\xfeab HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404"), head
    assert json.loads(body)["error"] == "function '\ufffd\ufffdab' not found"


def test_max_response_bounds_what_the_daemon_holds(ctx, daemon):
    """A client of /function/ gets the answer streamed (no limit, the daemon holds little);
    a front door that takes the answer whole (the Lambda invoke API) stops at max_response."""
    b = shell_bundle(ctx, "head -c 3000000 /dev/zero")
    assert daemon.deploy(name="big", bundle=str(b.path), max_response=1 << 20)[0] == 201
    status, headers, body = daemon.request("GET", "/function/big")
    assert status == 200 and len(body) == 3000000 and headers["Transfer-Encoding"] == "chunked"
    status, headers, body = daemon.request("POST", "/2015-03-31/functions/big/invocations", b"{}")
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled", (status, headers)
    assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge", body[:200]
    rss = int(status_field(daemon.proc.pid, "VmHWM")[0])
    assert rss < 64 * 1024, f"the daemon's peak RSS is {rss} kB"


def test_deploys_per_minute_are_limited(ctx):
    d = Daemon(ctx, ctx.dir / "faas-rate", args=["--max-deploys-per-minute", "2"])
    d.start()
    try:
        b = shell_bundle(ctx, "echo")
        assert d.deploy(name="a", bundle=str(b.path))[0] == 201
        assert d.deploy(name="b", bundle=str(b.path))[0] == 201
        status, _, body = d.request("POST", "/system/functions",
                                    json.dumps({"name": "c", "bundle": str(b.path)}))
        assert status == 429 and b"max-deploys-per-minute" in body, body
    finally:
        assert d.stop() == 0
