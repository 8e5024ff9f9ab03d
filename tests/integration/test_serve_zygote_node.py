# SPDX-License-Identifier: Apache-2.0
"""`husk serve` with zygotes (--zygote) for Node.js: a Node function's calls are forks of one
node process that loaded the built-in modules the function needs, with the behaviour, limits
and isolation of a call without: stdio, variables, exit codes and 'exit' listeners, a new pid
and Math.random per call, timers, worker threads and child processes in a forked call."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO
from test_serve import daemon  # noqa: F401 (fixture)
from test_serve_zygote import call, log, refused

# The calls' tests in the sanitizer pass: what they run beyond the daemon's side (the agent, the
# preload library, node) is built without sanitizers, and the daemon's side of a zygote's calls
# is the Python zygote's, which that pass runs. The deploys' checks (the daemon's) run in both.
calls_unsanitized = pytest.mark.skipif(
    "ASAN_OPTIONS" in os.environ,
    reason="the sanitizer pass: the daemon's side of a zygote's calls is test_serve_zygote.py's; "
    "the rest of these calls is not sanitized; the plain pass runs them")

# Everything a stdio call shows of itself (a JSON line, then what its 'exit' listener and its
# worker write): stdin, its variables, argv, whether zlib was loaded before the script ran, what
# a module global left by an earlier call would show, its pid as Node says it and as the kernel
# does, its parent (the zygote, or the agent as pid 1), its random values.
ECHO = r"""
const preloaded = process.moduleLoadList.includes('NativeModule zlib');
const zlib = require('zlib');
const fs = require('fs');
const crypto = require('crypto');
const { Worker } = require('worker_threads');
const { execFileSync } = require('child_process');
zlib.calls = (zlib.calls || 0) + 1;
let body = '';
process.stdin.on('data', (d) => (body += d));
process.stdin.on('end', () => setTimeout(answer, 5));
process.on('exit', (code) => process.stdout.write(`exit listener ${code}\n`));
function answer() {
  const q = process.env.Http_Query || '';
  if (q.startsWith('sleep=')) return setTimeout(() => {}, Number(q.slice(6)) * 1000);
  if (q.startsWith('alloc=')) {  // before any output: a started answer would be cut, not a 500
    const hog = [];
    for (let i = 0; i < Number(q.slice(6)); i++) hog.push(Buffer.alloc(1 << 20, 1));
  }
  process.stderr.write('stderr line\n');
  const out = {
    body, method: process.env.Http_Method, greeting: process.env.GREETING, query: q,
    argv: process.argv.slice(2), main: require.main === module, calls: zlib.calls,
    random: Math.random(), uuid: crypto.randomUUID(), pid: process.pid,
    kernelPid: Number(fs.readlinkSync('/proc/self')), ppid: process.ppid, preloaded,
    execArgv: process.execArgv, preload: process.env.LD_PRELOAD || null,
  };
  if (q === 'child')
    out.child = execFileSync(process.execPath, ['-e', 'process.stdout.write("sub")']).toString();
  process.stdout.write(JSON.stringify(out) + '\n');
  if (q.startsWith('exit=')) process.exit(Number(q.slice(5)));
  if (q === 'throw') throw new Error('bad input');
  if (q === 'worker') {
    const w = new Worker('require("worker_threads").parentPort.postMessage(21 * 2)', { eval: true });
    w.on('message', (m) => process.stdout.write(`worker ${m}\n`));
  }
}
"""

CGI = r"""
process.stdout.write('Status: 201 Created\r\nContent-Type: text/plain\r\n\r\n');
process.stdout.write(`cgi ${process.env.REQUEST_METHOD} ${process.env.QUERY_STRING}\n`);
"""


def node_or_skip():
    if shutil.which("node") is None:
        subprocess.run([REPO / "scripts" / "deps.sh", "nodejs"], capture_output=True)
    if shutil.which("node") is None:
        pytest.skip("Node.js (Debian's nodejs) cannot be installed")
    return os.path.realpath(shutil.which("node"))


@pytest.fixture(scope="module")
def node():
    return node_or_skip()


@pytest.fixture
def app(ctx, node):
    """The function's own directory outside /tmp (a function's tmpfs covers /tmp), packed with
    node into a root."""
    d = Path("/var/tmp") / f"husk-zygote-node-{ctx.token}"
    d.mkdir(mode=0o755)
    (d / "echo.js").write_text(ECHO)
    (d / "cgi.js").write_text(CGI)
    shutil.copy(REPO / "examples" / "functions" / "node-json.js", d / "node-json.js")
    root = d / "root"
    r = ctx.runtime("pack", "-f", "rootfs", "-o", str(root), node, str(d / "echo.js"),
                    str(d / "cgi.js"), str(d / "node-json.js"), timeout=300)
    assert r.rc == 0, str(r)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def deploy(daemon, app, node, name, script="echo.js", **spec):
    spec.setdefault("timeout", 30)
    status, body = daemon.deploy(name=name, dir=str(app / "root"),
                                 command=[node, str(app / script), "arg1"], **spec)
    assert status == 201, body
    return body


def answer(out):
    """The call's JSON line and the lines after it."""
    first, _, rest = out.partition(b"\n")
    return json.loads(first), rest.decode()


@calls_unsanitized
def test_same_behaviour_as_without(ctx, daemon, app, node):
    """stdin to stdout, the variables, argv, require.main, exit listeners, exit codes (500 with
    the output), stderr and stack traces to the log, child processes: the same with the zygote as
    without; the preload library is not in the call's environment."""
    env = ["GREETING=hi"]
    deploy(daemon, app, node, "plain", env=env)
    deploy(daemon, app, node, "zyg", env=env, zygote=True)
    seen = {}
    for name in ("plain", "zyg"):
        for i in range(3):  # each a fork of the instance's zygote
            status, out = call(daemon, name, b"hello", "a=1")
            assert status == 200, out
            got, rest = answer(out)
            assert got["body"] == "hello" and got["method"] == "POST" and got["query"] == "a=1"
            assert got["greeting"] == "hi" and got["argv"] == ["arg1"] and got["main"] is True
            assert got["execArgv"] == [] and got["preload"] is None
            assert got["pid"] == got["kernelPid"], got
            assert rest == "exit listener 0\n", out
            seen.setdefault(name, []).append(got)
        status, out = call(daemon, name, b"", "exit=3")
        assert status == 500 and b"status 3" in out and b"exit listener 3" in out, out
        status, out = call(daemon, name, b"", "throw")
        assert status == 500 and b"status 1" in out, out
        status, out = call(daemon, name, b"", "child")
        assert status == 200 and answer(out)[0]["child"] == "sub", out
        text = log(daemon, name)
        assert "stderr stderr line" in text
        assert "Error: bad input" in text and f"{app}/echo.js:" in text, text
    assert not any(s["preloaded"] for s in seen["plain"])
    assert all(s["preloaded"] for s in seen["zyg"])
    assert all(s["ppid"] == 1 for s in seen["plain"])
    assert len({s["ppid"] for s in seen["zyg"]}) == 1 and seen["zyg"][0]["ppid"] != 1


@calls_unsanitized
def test_each_call_is_a_fresh_fork(ctx, daemon, app, node):
    """A new process, new Math.random and randomUUID values each call; what a call changes in a
    module the zygote loaded (zlib) is gone at the next."""
    deploy(daemon, app, node, "fresh", zygote=True)
    outs = []
    for _ in range(5):
        status, out = call(daemon, "fresh")
        assert status == 200, out
        outs.append(answer(out)[0])
    assert [o["calls"] for o in outs] == [1] * 5
    assert len({o["random"] for o in outs}) == 5
    assert len({o["uuid"] for o in outs}) == 5
    assert len({o["pid"] for o in outs}) == 5
    # One zygote, the instance's (a fork of its version's template), forked them all.
    assert len({o["ppid"] for o in outs}) == 1 and outs[0]["ppid"] != 1


@calls_unsanitized
def test_threads_in_a_forked_call(ctx, daemon, app, node):
    """A forked call makes and joins a worker thread, and ends with its status."""
    deploy(daemon, app, node, "threads", zygote=True)
    for _ in range(3):
        status, out = call(daemon, "threads", b"", "worker")
        assert status == 200, out
        assert "worker 42\n" in answer(out)[1], out


@calls_unsanitized
def test_cgi_contract(ctx, daemon, app, node):
    deploy(daemon, app, node, "cgi", script="cgi.js", contract="cgi", zygote=True)
    for _ in range(2):
        status, _, out = daemon.request("GET", "/function/cgi?x=2")
        assert status == 201, out
        assert out == b"cgi GET x=2\n"


@calls_unsanitized
def test_memory_limit_still_kills(ctx, daemon, app, node):
    deploy(daemon, app, node, "hog", zygote=True, memory=128 << 20)
    call(daemon, "hog")  # the instance's first call: the next are forks
    status, out = call(daemon, "hog", b"", "alloc=300")
    assert status == 500, out
    assert b"ran out of memory" in out, out
    status, out = call(daemon, "hog", b"again")
    assert status == 200 and answer(out)[0]["body"] == "again", out


@calls_unsanitized
def test_timeout_still_works(ctx, daemon, app, node):
    deploy(daemon, app, node, "slow", zygote=True, timeout=2)
    call(daemon, "slow")
    start = time.monotonic()
    status, out = call(daemon, "slow", b"", "sleep=30")
    assert status == 504, out
    assert time.monotonic() - start < 8
    status, out = call(daemon, "slow", b"next")
    assert status == 200 and answer(out)[0]["body"] == "next", out


@calls_unsanitized
def test_the_example(ctx, daemon, app, node):
    """examples/functions/node-json.js, as its header deploys it."""
    status, body = daemon.deploy(name="greet", dir=str(app / "root"), zygote=True, timeout=30,
                                 command=[node, str(app / "node-json.js")])
    assert status == 201, body
    ids = set()
    for _ in range(3):
        status, out = call(daemon, "greet", b'{"name": "husk"}')
        assert status == 200, out
        got = json.loads(out)
        assert got["hello"] == "husk" and got["method"] == "POST"
        ids.add(got["id"])
    assert len(ids) == 3


@pytest.mark.parametrize("command,words", [
    (["-e", "1"], ["field 'zygote'", "'-e'", "SCRIPT"]),
    (["-p", "1"], ["field 'zygote'", "'-p'"]),
    (["--eval=1"], ["field 'zygote'", "'--eval=1'"]),
    (["--test", "echo.js"], ["field 'zygote'", "'--test'"]),
    ([], ["field 'zygote'", "SCRIPT"]),
])
def test_bad_deploy_is_400_and_creates_nothing(ctx, daemon, app, node, command, words):
    refused(daemon, {"name": "bad", "dir": str(app / "root"), "zygote": True, "timeout": 10,
                     "command": [node, *command]}, words)


@calls_unsanitized
def test_options_before_the_script(ctx, daemon, app, node):
    """Node's own options stay the function's: --require with its value, --name=value, and a
    '--' before the script."""
    status, body = daemon.deploy(
        name="opts2", dir=str(app / "root"), zygote=True, timeout=30,
        command=[node, "--stack-size=900", "-r", "zlib", "--", str(app / "echo.js"), "x"])
    assert status == 201, body
    for _ in range(2):
        status, out = call(daemon, "opts2")
        assert status == 200, out
        got = answer(out)[0]
        assert got["argv"] == ["x"] and got["execArgv"] == ["--stack-size=900", "-r", "zlib"]
