# SPDX-License-Identifier: Apache-2.0
"""`husk serve` with zygotes (--zygote): a Python function's calls are forks of one interpreter
that loaded the function's code, with the behaviour, limits and isolation of a call without."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HUSK, REPO, wait_for
from test_serve import daemon  # noqa: F401 (fixture)

PY = "/usr/bin/python3"

# Everything a stdio call shows of itself: stdin, its variables, stderr, its exit status, the
# parent it has (the zygote, or the agent as pid 1), whether json was loaded before the script
# ran, and what a module global left by an earlier call would show.
ECHO = """\
import sys
preloaded = "json" in sys.modules
import json, os, random
body = sys.stdin.read()
json.calls = getattr(json, "calls", 0) + 1
print("stderr line", file=sys.stderr)
print(json.dumps({"body": body, "method": os.environ.get("Http_Method"),
                  "greeting": os.environ.get("GREETING"), "query": os.environ.get("Http_Query"),
                  "argv": sys.argv[1:], "name": __name__, "calls": json.calls,
                  "random": random.random(), "pid": os.getpid(), "ppid": os.getppid(),
                  "preloaded": preloaded}))
q = os.environ.get("Http_Query", "")
if q.startswith("exit="):
    sys.exit(int(q[5:]))
if q == "raise":
    raise ValueError("bad input")
if q.startswith("sleep="):
    import time
    time.sleep(float(q[6:]))
if q.startswith("alloc="):
    hog = bytearray(int(q[6:]) << 20)
    for i in range(0, len(hog), 4096):
        hog[i] = 1
"""

CGI = """\
import os
print("Status: 201 Created")
print("Content-Type: text/plain")
print()
print("cgi", os.environ["REQUEST_METHOD"], os.environ.get("QUERY_STRING"))
"""


@pytest.fixture
def app(ctx):
    """The function's own directory outside /tmp (a function's tmpfs covers /tmp), packed with
    Python into a root."""
    d = Path("/var/tmp") / f"husk-zygote-{ctx.token}"
    d.mkdir(mode=0o755)
    (d / "echo.py").write_text(ECHO)
    (d / "cgi.py").write_text(CGI)
    root = d / "root"
    r = ctx.runtime("pack", "-f", "rootfs", "-o", str(root), PY, str(d / "echo.py"),
                    str(d / "cgi.py"), timeout=120)
    assert r.rc == 0, str(r)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def deploy(daemon, app, name, script="echo.py", **spec):
    spec.setdefault("timeout", 20)
    status, body = daemon.deploy(name=name, dir=str(app / "root"),
                                 command=[PY, str(app / script), "arg1"], **spec)
    assert status == 201, body
    return body


def call(daemon, name, body=b"", query=""):
    status, headers, out = daemon.request("POST", f"/function/{name}" + (f"?{query}" if query else ""),
                                          body)
    return status, out


def log(daemon, name):
    status, _, body = daemon.request("GET", f"/system/logs/{name}")
    assert status == 200
    return body.decode()


def test_same_behaviour_as_without(ctx, daemon, app):
    """stdin to stdout, the variables, argv, __main__, exit status 500 with the output, stderr
    and tracebacks to the log: the same with the zygote as without."""
    env = ["GREETING=hi"]
    deploy(daemon, app, "plain", env=env)
    deploy(daemon, app, "zyg", env=env, zygote=True)
    seen = {}
    for name in ("plain", "zyg"):
        status, out = call(daemon, name, b"hello", "a=1")
        assert status == 200, out
        seen[name] = json.loads(out)
        assert seen[name]["body"] == "hello"
        assert seen[name]["method"] == "POST" and seen[name]["query"] == "a=1"
        assert seen[name]["greeting"] == "hi" and seen[name]["argv"] == ["arg1"]
        assert seen[name]["name"] == "__main__"
        status, out = call(daemon, name, b"", "exit=3")
        assert status == 500 and b"status 3" in out and b'"body": ""' in out, out
        status, out = call(daemon, name, b"", "raise")
        assert status == 500 and b"status 1" in out, out
        text = log(daemon, name)
        assert "stderr stderr line" in text
        assert "ValueError: bad input" in text
        assert f'File "{app}/echo.py", line' in text
        assert '"<string>"' not in text  # the traceback starts at the script
    # Only the zygote's calls run in an interpreter that loaded json for them, each a fork of
    # its instance's zygote (the agent, pid 1, starts the plain calls).
    assert seen["plain"]["ppid"] == 1 and not seen["plain"]["preloaded"]
    assert seen["zyg"]["preloaded"] and seen["zyg"]["ppid"] != 1
    status, out = call(daemon, "zyg")
    assert status == 200 and json.loads(out)["ppid"] == seen["zyg"]["ppid"], out
    assert json.loads(out)["preloaded"], out


def test_cgi_contract(ctx, daemon, app):
    deploy(daemon, app, "cgi", script="cgi.py", contract="cgi", zygote=True)
    status, headers, out = daemon.request("GET", "/function/cgi?x=2")
    assert status == 201, out
    assert out == b"cgi GET x=2\n"


def test_each_call_is_a_fresh_fork(ctx, daemon, app):
    """New random state and a new process each call; what a call changes in a module (json, loaded
    by the zygote) is gone at the next."""
    deploy(daemon, app, "fresh", zygote=True)
    outs = []
    for _ in range(5):
        status, out = call(daemon, "fresh")
        assert status == 200, out
        outs.append(json.loads(out))
    assert [o["calls"] for o in outs] == [1] * 5
    assert len({o["random"] for o in outs}) == 5
    assert len({o["pid"] for o in outs}) == 5
    # One zygote, the instance's (a fork of its version's template), forked them all.
    assert len({o["ppid"] for o in outs}) == 1 and outs[0]["ppid"] != 1


def test_memory_limit_still_kills(ctx, daemon, app):
    deploy(daemon, app, "hog", zygote=True, memory=64 << 20)
    status, out = call(daemon, "hog", b"", "alloc=200")
    assert status == 500, out
    assert b"ran out of memory" in out, out
    status, out = call(daemon, "hog", b"again")
    assert status == 200 and json.loads(out)["body"] == "again", out


def test_timeout_still_works(ctx, daemon, app):
    deploy(daemon, app, "slow", zygote=True, timeout=1)
    start = time.monotonic()
    status, out = call(daemon, "slow", b"", "sleep=30")
    assert status == 504, out
    assert b"timeout of 1 seconds" in out
    assert time.monotonic() - start < 5
    status, out = call(daemon, "slow", b"next")
    assert status == 200 and json.loads(out)["body"] == "next", out


def test_cli_flag(ctx, daemon, app):
    r = subprocess.run([HUSK, "fn", "deploy", "cli", "--url", daemon.admin_url, "--dir",
                        str(app / "root"), "--zygote", "--", PY, str(app / "echo.py")],
                       capture_output=True, timeout=30, env=ctx.env())
    assert r.returncode == 0, r
    status, _, body = daemon.request("GET", "/system/functions/cli")
    assert status == 200 and json.loads(body)["zygote"] is True
    status, out = call(daemon, "cli", b"x")
    assert status == 200 and json.loads(out)["preloaded"], out


@pytest.mark.parametrize("spec,words", [
    ({"command": ["/bin/true"], "dir": "TRUE"}, ["field 'zygote'", "'/bin/true'", "Python"]),
    ({"contract": "lambda", "handler": "x.y"}, ["field 'zygote'", "lambda", "stdio, cgi, http"]),
    ({"contract": "http", "publish": "127.0.0.1:1"}, ["field 'zygote'", "'publish'", "forks"]),
    ({"contract": "http", "network": "egress"}, ["field 'zygote'", "egress", "forks"]),
    ({"command": [PY, "-m", "http.server"]}, ["field 'zygote'", "'-m'", "SCRIPT"]),
    ({"command": [PY]}, ["field 'zygote'", "SCRIPT"]),
    ({"zygote": "yes"}, ["field 'zygote'", "true or false"]),
])
def test_bad_deploy_is_400_and_creates_nothing(ctx, daemon, app, spec, words):
    true_root = app / "true-root"
    if spec.get("dir") == "TRUE":
        r = ctx.runtime("pack", "-f", "rootfs", "-o", str(true_root), "/bin/true")
        assert r.rc == 0, str(r)
        spec["dir"] = str(true_root)
    full = {"name": "bad", "dir": str(app / "root"), "command": [PY, str(app / "echo.py")],
            "zygote": True, "timeout": 10}
    full.update(spec)
    refused(daemon, full, words)


def refused(daemon, spec, words):
    """The deploy of spec (named "bad") is a 400 naming words, and creates nothing."""
    status, body = daemon.deploy(**spec)
    assert status == 400, body
    msg = json.loads(body)["error"]
    for w in words:
        assert w in msg, msg
    status, _, _ = daemon.request("GET", "/system/functions/bad")
    assert status == 404
    assert not list((daemon.state).glob("**/bad*"))


def node_or_skip():
    if shutil.which("node") is None:
        subprocess.run([REPO / "scripts" / "deps.sh", "nodejs"], capture_output=True)
    if shutil.which("node") is None:
        pytest.skip("Node.js (Debian's nodejs) cannot be installed")
    return shutil.which("node")


def test_node_example(ctx, daemon, app):
    """The Node http example serves, with --zygote as without (test_serve_zygote_http.py has
    the rest of the http zygote)."""
    node = os.path.realpath(node_or_skip())
    script = app / "node-http.js"
    shutil.copy(REPO / "examples" / "functions" / "node-http.js", script)
    root = app / "node-root"
    r = ctx.runtime("pack", "-f", "rootfs", "-o", str(root), node, str(script), timeout=300)
    assert r.rc == 0, str(r)
    spec = {"dir": str(root), "command": [node, str(script)], "contract": "http",
            "timeout": 10, "init_timeout": 30}
    for name, zygote in (("web", False), ("webz", True)):
        status, body = daemon.deploy(name=name, **spec, zygote=zygote)
        assert status == 201, body
        status, _, out = daemon.request("GET", f"/function/{name}/x")
        assert status == 200, out
        assert json.loads(out)["hello"] == "node"


def test_instances_are_forks_of_the_version_template(ctx, daemon, app):
    """Two calls at once (one per instance): two instances, each its own zygote (a fork of the
    version's template) in its own cgroup; with idle 1 they stop, the template stays, and the
    next call's instance is a fork of it again."""
    from test_serve_zygote_http import cgroups, concurrent_calls
    deploy(daemon, app, "forks", zygote=True, concurrency=1, max=2, idle=1)
    outs = concurrent_calls(lambda: call(daemon, "forks", b"", "sleep=1.5"), 2)
    assert all(status == 200 for status, _ in outs), outs
    got = [json.loads(out) for _, out in outs]
    assert len({g["ppid"] for g in got}) == 2 and all(g["preloaded"] for g in got), got
    groups = cgroups(daemon, "forks")
    assert len([k for k in groups if "-zygote" in k]) == 1 and len(groups) == 3, groups
    wait_for(lambda: len(cgroups(daemon, "forks")) == 1, timeout=15, what="the instances to stop")
    status, out = call(daemon, "forks", b"again")
    assert status == 200 and json.loads(out)["body"] == "again", out
