# SPDX-License-Identifier: Apache-2.0
"""`husk serve` with zygotes for http functions (--zygote with the http contract): the version
keeps one template sandbox whose zygote loaded the interpreter and the script's modules, and
each instance is a fork of it with its own cgroup (the function's limits, its own OOM kills),
its own $PORT and random state. The template stays while the version is deployed (a cold start
from zero instances is a fork) and goes with it; should it die, new instances come from a new
one."""

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, wait_for
from serve_harness import Daemon, cgroup_pids, serve_cgroup
from test_serve import daemon  # noqa: F401 (fixture)
from test_serve_zygote import PY, log
from test_serve_zygote_node import node_or_skip

NODE_SERVER = r"""
const fs = require('fs');
// The cgroup its first line runs in (the memory controller's line), to its log.
const memcg = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => /:memory:|^0::/.test(l));
process.stderr.write(`first line in ${memcg}\n`);
const http = require('http');
const kept = [];  // HOG_AT_START MiB held from the server's first line on
for (let i = 0; i < Number(process.env.HOG_AT_START || 0); i++) kept.push(Buffer.alloc(1 << 20, 1));
http.createServer((req, res) => {
  const q = new URL(req.url, 'http://x').searchParams;
  if (q.get('alloc')) {
    const hog = [];
    for (let i = 0; i < Number(q.get('alloc')); i++) hog.push(Buffer.alloc(1 << 20, 1));
  }
  setTimeout(() => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({
      pid: process.pid, kernelPid: Number(fs.readlinkSync('/proc/self')),
      port: process.env.PORT, random: Math.random(), greeting: process.env.GREETING || null,
      preload: process.env.LD_PRELOAD || null,
    }));
  }, Number(q.get('ms') || 0));
}).listen(Number(process.env.PORT), '127.0.0.1');
"""

PY_SERVER = r"""
import sys
with open("/proc/self/cgroup") as f:  # the cgroup its first line runs in, to its log
    MEMCG = [l for l in f.read().splitlines() if ":memory:" in l or l.startswith("0::")][0]
print("first line in", MEMCG, file=sys.stderr, flush=True)
PRELOADED = "http.server" in sys.modules  # loaded by the zygote before the script ran
import http.server, json, os, random, time

KEPT = bytearray(int(os.environ.get("HOG_AT_START", "0")) << 20)  # held from the start on
for i in range(0, len(KEPT), 4096):
    KEPT[i] = 1


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
        if "alloc" in q:
            hog = bytearray(int(q["alloc"]) << 20)
            for i in range(0, len(hog), 4096):
                hog[i] = 1
        time.sleep(int(q.get("ms", 0)) / 1000)
        body = json.dumps({"pid": os.getpid(), "port": os.environ["PORT"],
                           "random": random.random(), "greeting": os.environ.get("GREETING"),
                           "preloaded": PRELOADED, "main": __name__}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def node():
    return node_or_skip()


@pytest.fixture
def app(ctx, node):
    """The servers outside /tmp (a function's tmpfs covers /tmp), packed with node and python3."""
    d = Path("/var/tmp") / f"husk-zygote-http-{ctx.token}"
    d.mkdir(mode=0o755)
    (d / "server.js").write_text(NODE_SERVER)
    (d / "server.py").write_text(PY_SERVER)
    for root, program, script in (("node-root", node, "server.js"), ("py-root", PY, "server.py")):
        r = ctx.runtime("pack", "-f", "rootfs", "-o", str(d / root), program, str(d / script),
                        timeout=300)
        assert r.rc == 0, str(r)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def deploy(daemon, app, interpreter, script, name, **spec):
    spec.setdefault("timeout", 30)
    spec.setdefault("init_timeout", 60)
    root = app / ("py-root" if script.endswith(".py") else "node-root")
    status, body = daemon.deploy(name=name, dir=str(root), contract="http",
                                 command=[interpreter, str(app / script)], zygote=True, **spec)
    assert status == 201, body
    return json.loads(body)


def get(daemon, name, query=""):
    status, _, out = daemon.request("GET", f"/function/{name}/x" + (f"?{query}" if query else ""),
                                    timeout=60)
    return status, out


def cgroups(daemon, name):
    """The function's cgroups in the memory hierarchy: {dir name: [pids]}."""
    base = Path("/sys/fs/cgroup/memory") / serve_cgroup(daemon)
    if not base.is_dir():
        base = Path("/sys/fs/cgroup") / serve_cgroup(daemon)
    out = {}
    for d in base.glob(f"{name}-v*"):
        pids = cgroup_pids(d)
        if pids is not None:  # else gone meanwhile
            out[d.name] = pids
    return out


def nspid(pid):
    """The process's pid in its own pid namespace."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1])


def concurrent_calls(fn, n):
    """fn() n times at once, in threads: their results."""
    results = [None] * n

    def one(i):
        results[i] = fn()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def concurrent(daemon, name, n, query):
    return concurrent_calls(lambda: get(daemon, name, query), n)


@pytest.mark.parametrize("lang", ["node", "python"])
def test_instances_are_forks_with_their_own_port_cgroup_and_random(ctx, daemon, app, node, lang):
    """Three calls at once (one call per instance): three instances, each a fork of the
    template's zygote with its own $PORT, its own cgroup (holding its server and nothing else)
    and its own random state; the version's variables reach each; husk's preload library is not
    in the server's environment; the template's cgroup holds the zygote."""
    interpreter, script = (node, "server.js") if lang == "node" else (PY, "server.py")
    deploy(daemon, app, interpreter, script, "web", concurrency=1, max=3, env=["GREETING=hi"])
    outs = concurrent(daemon, "web", 3, "ms=1500")
    assert all(s == 200 for s, _ in outs), (outs, log(daemon, "web"))
    got = [json.loads(o) for _, o in outs]
    assert len({g["port"] for g in got}) == 3, got
    assert len({g["random"] for g in got}) == 3, got
    assert all(g["greeting"] == "hi" for g in got), got
    if lang == "node":
        assert all(g["preload"] is None and g["pid"] == g["kernelPid"] for g in got), got
    else:
        assert all(g["preloaded"] and g["main"] == "__main__" for g in got), got
    groups = cgroups(daemon, "web")
    tmpl = [k for k in groups if "-zygote" in k]
    insts = [k for k in groups if "-zygote" not in k]
    assert len(tmpl) == 1 and len(insts) == 3, groups
    assert len(groups[tmpl[0]]) >= 2, groups  # the agent and the zygote (and a spare)
    assert all(len(groups[k]) >= 1 for k in insts), groups
    # Each server's first line ran in its own instance's cgroup, never the template's.
    firsts = [line for line in log(daemon, "web").splitlines() if "first line in" in line]
    assert len(firsts) == 3, firsts
    for line in firsts:
        inst = line.split()[1]  # the log line's instance id
        assert inst in insts and line.rstrip().endswith("/" + inst), (line, insts)
    # A second round goes to the same instances (kept alive), not new forks.
    outs = concurrent(daemon, "web", 3, "ms=300")
    assert {json.loads(o)["port"] for _, o in outs} <= {g["port"] for g in got}, outs


@pytest.mark.parametrize("lang", ["node", "python"])
def test_memory_limit_is_each_instances(ctx, daemon, app, node, lang):
    """An instance that grows past the function's memory limit is OOM-killed in its own cgroup:
    its call is a 502 naming the memory, the template survives, and the next call is served by
    a new fork."""
    interpreter, script = (node, "server.js") if lang == "node" else (PY, "server.py")
    deploy(daemon, app, interpreter, script, "hog", memory=96 << 20, max=2)
    status, out = get(daemon, "hog")
    assert status == 200, out
    before = cgroups(daemon, "hog")
    tmpl = [k for k in before if "-zygote" in k]
    killed = [k for k in before if "-zygote" not in k]
    status, out = get(daemon, "hog", "alloc=300")
    assert status == 502, out
    assert b"ran out of memory" in out, out
    # The instance ends when its process's end reaches the daemon (its pidfd): a call sent in
    # between could still be routed to it.
    wait_for(lambda: not set(killed) & set(cgroups(daemon, "hog")), timeout=15,
             what="the killed instance to go")
    status, out = get(daemon, "hog")
    assert status == 200, out
    after = cgroups(daemon, "hog")
    assert [k for k in after if "-zygote" in k] == tmpl, (before, after)


def oom_kills(daemon, group):
    """The kernel's count of OOM kills in one of the daemon's cgroups (memory v1 or v2)."""
    v1 = Path("/sys/fs/cgroup/memory") / serve_cgroup(daemon) / group
    d = v1 if v1.is_dir() else Path("/sys/fs/cgroup") / serve_cgroup(daemon) / group
    text = (d / ("memory.oom_control" if v1.is_dir() else "memory.events")).read_text()
    return int(dict(line.split() for line in text.splitlines())["oom_kill"])


@pytest.mark.parametrize("lang", ["node", "python"])
def test_an_instance_is_in_its_cgroup_from_its_first_line(ctx, daemon, app, node, lang):
    """A server that takes more than the memory limit in its first lines, before it listens,
    is OOM-killed in its instance's cgroup: the call says the function could not start because
    it ran out of memory; the template's cgroup saw no OOM kill and its zygote lives on. (That
    a fork runs nothing before its gate opens is test_zygote_gate.py's.)"""
    interpreter, script = (node, "server.js") if lang == "node" else (PY, "server.py")
    deploy(daemon, app, interpreter, script, "early", memory=64 << 20, env=["HOG_AT_START=200"])
    wait_for(lambda: len(next(iter(cgroups(daemon, "early").values()), [])) >= 2, timeout=30,
             what="the template's agent and zygote")
    tmpl, = cgroups(daemon, "early")
    zygote = cgroups(daemon, "early")[tmpl]
    status, out = get(daemon, "early")
    assert status == 502, out
    assert b"could not start" in out and b"ran out of memory" in out, out
    assert oom_kills(daemon, tmpl) == 0
    assert all(os.path.exists(f"/proc/{p}") for p in zygote[:2]), zygote


def test_scale_to_zero_keeps_the_template_and_rm_removes_everything(ctx, daemon, app, node):
    """With idle 1 the instance stops; the template stays and the next call is a new fork. fn rm
    takes the template, its cgroups and its processes with it."""
    deploy(daemon, app, node, "server.js", "idle", idle=1)
    status, out = get(daemon, "idle")
    assert status == 200, out
    first = json.loads(out)
    wait_for(lambda: [k for k in cgroups(daemon, "idle") if "-zygote" not in k] == [],
             timeout=15, what="the idle instance to stop")
    tmpl = list(cgroups(daemon, "idle"))
    assert len(tmpl) == 1 and "-zygote" in tmpl[0], tmpl
    status, out = get(daemon, "idle")
    assert status == 200, out
    assert json.loads(out)["random"] != first["random"]
    pids = [p for ps in cgroups(daemon, "idle").values() for p in ps]
    assert pids
    status, _, body = daemon.request("DELETE", "/system/functions/idle")
    assert status in (200, 202, 204), body
    wait_for(lambda: cgroups(daemon, "idle") == {}, timeout=15, what="the cgroups to go")
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), timeout=15,
             what="the processes to go")


def test_a_dead_template_is_replaced(ctx, daemon, app, node):
    """Killing the template's agent (pid 1 of the sandbox the forks share) ends the instances;
    the next call is served from a new template."""
    deploy(daemon, app, node, "server.js", "phoenix")
    status, out = get(daemon, "phoenix")
    assert status == 200, out
    groups = cgroups(daemon, "phoenix")
    tmpl = [k for k in groups if "-zygote" in k]
    agent, = [p for p in groups[tmpl[0]] if nspid(p) == 1]  # the agent: pid 1 of the sandbox
    os.kill(agent, signal.SIGKILL)
    wait_for(lambda: tmpl[0] not in cgroups(daemon, "phoenix"), timeout=15,
             what="the dead template's cgroup to go")
    status, out = get(daemon, "phoenix")
    assert status == 200, out
    assert [k for k in cgroups(daemon, "phoenix") if "-zygote" in k] != tmpl


def test_stop_leaves_nothing(ctx, app, node):
    """A daemon stopped with instances and a template running removes all of their cgroups."""
    d = Daemon(ctx, ctx.dir / "faas-stop")
    d.start()
    try:
        deploy(d, app, node, "server.js", "bye", min=2)
        wait_for(lambda: len(cgroups(d, "bye")) == 3, timeout=30, what="two instances")
        pids = [p for ps in cgroups(d, "bye").values() for p in ps]
    finally:
        assert d.stop() in (0, None), d.log.read_text()
    assert cgroups(d, "bye") == {}
    time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


def test_the_python_example(ctx, daemon):
    """examples/functions/python-http.py, packed and deployed with --zygote as its header says,
    answers from a fork of its version's template."""
    d = Path("/var/tmp") / f"husk-zygote-http-ex-{ctx.token}"
    d.mkdir(mode=0o755)
    try:
        script = d / "python-http.py"
        shutil.copy(REPO / "examples" / "functions" / "python-http.py", script)
        r = ctx.runtime("pack", "-f", "rootfs", "-o", str(d / "root"), PY, str(script),
                        timeout=300)
        assert r.rc == 0, str(r)
        status, body = daemon.deploy(name="pyweb", dir=str(d / "root"), contract="http",
                                     zygote=True, command=[PY, str(script)], timeout=30)
        assert status == 201, body
        status, out = get(daemon, "pyweb")
        assert status == 200, out
        got = json.loads(out)
        assert got["hello"] == "python" and got["path"] == "/x"
        groups = cgroups(daemon, "pyweb")
        assert len([k for k in groups if "-zygote" in k]) == 1 and len(groups) == 2, groups
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_redeploy_drains_the_old_version_then_drops_its_template(ctx, daemon, app, node):
    """A call running on version 1 when version 2 is deployed finishes there; then version 1's
    instance and template go, and version 2 serves from a template of its own."""
    deploy(daemon, app, node, "server.js", "roll")
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=get(daemon, "roll", "ms=1500")))
    t.start()
    wait_for(lambda: json.loads(daemon.request("GET", "/system/functions/roll")[2])
             ["instances"]["busy"] == 1, timeout=30, what="the call running on version 1")
    deploy(daemon, app, node, "server.js", "roll", env=["GREETING=v2"])
    t.join()
    assert slow["r"][0] == 200, slow
    assert json.loads(slow["r"][1])["greeting"] is None  # version 1's answer
    status, out = get(daemon, "roll")
    assert status == 200 and json.loads(out)["greeting"] == "v2", out
    wait_for(lambda: not [k for k in cgroups(daemon, "roll") if "-v1-" in k], timeout=15,
             what="version 1's instance and template to go")
    assert [k for k in cgroups(daemon, "roll") if "-v2-zygote" in k]


def test_a_restart_starts_a_new_template(ctx, app, node):
    """A daemon restarted on the same state loads the function, makes a new template (the old
    sandboxes gone with the old daemon) and serves."""
    d = Daemon(ctx, ctx.dir / "faas-restart")
    d.start()
    try:
        deploy(d, app, node, "server.js", "again")
        status, out = get(d, "again")
        assert status == 200, out
    finally:
        assert d.stop() in (0, None), d.log.read_text()
    assert cgroups(d, "again") == {}
    d.start()
    try:
        status, out = get(d, "again")
        assert status == 200, out
        groups = cgroups(d, "again")
        assert len([k for k in groups if "-zygote" in k]) == 1 and len(groups) == 2, groups
    finally:
        assert d.stop() in (0, None), d.log.read_text()
    assert cgroups(d, "again") == {}
