#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Zygote benchmark: Python and Node.js functions in `husk serve`, with and without --zygote.

Run as root: /usr/bin/python3 bench/zygote_bench.py [--husk PATH] [--calls N] [--cycles N]

In one run, on this machine:
  host         `python3 -c pass` and `node -e 0` with a bare environment (the interpreters'
               start, the floor a plain call pays);
  python       examples/functions/python-json.py (stdio) from a packed root, deployed twice,
  node         examples/functions/node-json.js (stdio) likewise: with and without --zygote,
               warm call p50 (the whole answer, a new connection each), the first call after
               each deploy (a new version; with --zygote its template starts with it), and the
               cold start from zero instances with the version deployed (idle 1; first byte);
  http         examples/functions/python-http.py and node-http.js, with and without --zygote
               (instances forked from the version's template), idle 1: cold start from zero
               instances to the first byte, p50.
Calls of the two deployments are interleaved. Prints p50s, ratios and the load average.
Timing never fails anything; exit 1 when something could not be set up.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"


def p50(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def ms(ns):
    return ns / 1e6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_byte(port, method, path, body=b""):
    """ns to the first byte of the answer, ns to all of it, the status and the body."""
    t0 = time.perf_counter_ns()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body)
    r = c.getresponse()
    t1 = time.perf_counter_ns()
    data = r.read()
    t2 = time.perf_counter_ns()
    c.close()
    return t1 - t0, t2 - t0, r.status, data


# The host's runs get a function's bare environment: a variable such as NODE_EXTRA_CA_CERTS
# (Node reads every certificate at start) would time the shell, not the interpreter.
BARE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def run_ns(argv, stdin=b""):
    t0 = time.perf_counter_ns()
    subprocess.run(argv, input=stdin, capture_output=True, check=True, env=BARE_ENV)
    return time.perf_counter_ns() - t0


class Serve:
    def __init__(self, husk, work):
        self.husk, self.work = husk, work
        self.port = free_port()
        self.admin = os.path.join(work, "admin.sock")
        self.log = open(os.path.join(work, "serve.log"), "wb")
        self.proc = subprocess.Popen(
            [husk, "--root", os.path.join(work, "run"), "serve", "--listen",
             f"127.0.0.1:{self.port}", "--state", os.path.join(work, "state"), "--admin-socket",
             self.admin], stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("husk serve did not listen")

    def deploy(self, spec):
        c = http.client.HTTPConnection("localhost", timeout=60)
        c.sock = socket.socket(socket.AF_UNIX)
        c.sock.connect(self.admin)
        c.request("POST", "/system/functions", body=json.dumps(spec),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def instances(self, name):
        """How many instances the function has (starting, idle or busy)."""
        c = http.client.HTTPConnection("localhost", timeout=60)
        c.sock = socket.socket(socket.AF_UNIX)
        c.sock.connect(self.admin)
        c.request("GET", f"/system/functions/{name}")
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        i = body["instances"]
        return i["starting"] + i["idle"] + i["busy"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def pack(husk, work, out, *argv):
    r = subprocess.run([husk, "--root", os.path.join(work, "run"), "pack", "-f", "rootfs", "-o",
                        out, *argv], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"husk pack {argv[0]}: {r.stderr.strip()}")


def from_zero(args, serve, names, method, path, body, ok):
    """Cold starts from zero instances, the versions deployed with idle 1: per cycle, a call to
    each (first byte), then a wait until their instances have stopped again. The first cycle
    is not counted (a zygote's template may still be loading)."""
    cold = {k: [] for k in names}
    for cycle in range(args.cycles + 1):
        for kind, name in names.items():
            fb, _, status, out = first_byte(serve.port, method, f"/function/{name}{path}", body)
            if status != 200 or ok not in out:
                raise RuntimeError(f"{name}: {status} {out!r}")
            if cycle:
                cold[kind].append(fb)
        deadline = time.monotonic() + 30
        while any(serve.instances(n) for n in names.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the instances did not stop when idle")
            time.sleep(0.05)
    return cold


def stdio_part(args, serve, work, res, label, interpreter, example):
    """The stdio example, deployed with and without --zygote, calls interleaved: the first call
    after each deploy (a new version), warm calls, then calls from zero instances."""
    script = os.path.join(work, example)
    shutil.copy(os.path.join(REPO, "examples", "functions", example), script)
    root = os.path.join(work, f"{label}-root")
    pack(args.husk, work, root, interpreter, script)
    names = {"plain": label, "zygote": f"{label}z"}
    body = b'{"name": "bench"}'
    cold = {k: [] for k in names}
    for cycle in range(args.cycles + 1):  # each deploy a new version: its first call is cold
        for kind, name in names.items():
            status, text = serve.deploy({"name": name, "dir": root, "command": [interpreter, script],
                                         "zygote": kind == "zygote", "timeout": 30, "idle": 1})
            if status != 201:
                raise RuntimeError(f"deploy {name}: {status} {text!r}")
            _, whole, status, out = first_byte(serve.port, "POST", f"/function/{name}", body)
            if status != 200 or b"bench" not in out:
                raise RuntimeError(f"{name}: {status} {out!r}")
            if cycle:
                cold[kind].append(whole)
    warm = {k: [] for k in names}
    for _ in range(args.calls):
        for kind, name in names.items():
            _, whole, status, _ = first_byte(serve.port, "POST", f"/function/{name}", body)
            warm[kind].append(whole)
    zero = from_zero(args, serve, names, "POST", "", body, b"bench")
    for kind in names:
        res[f"{label} warm p50, {kind}"] = ms(p50(warm[kind]))
        res[f"{label} first call after deploy p50, {kind}"] = ms(p50(cold[kind]))
        res[f"{label} cold start from zero p50, {kind}"] = ms(p50(zero[kind]))


def http_part(args, serve, work, res, label, interpreter, example):
    """The http example with and without --zygote, both with idle 1: each cycle's call starts
    an instance from zero (plain: a new sandbox and interpreter; --zygote: a fork of the
    version's template)."""
    script = os.path.join(work, example)
    shutil.copy(os.path.join(REPO, "examples", "functions", example), script)
    root = os.path.join(work, f"{label}-http-root")
    pack(args.husk, work, root, interpreter, script)
    names = {"plain": f"{label}web", "zygote": f"{label}webz"}
    for kind, name in names.items():
        status, body = serve.deploy({"name": name, "dir": root, "command": [interpreter, script],
                                     "contract": "http", "timeout": 30, "init_timeout": 60,
                                     "idle": 1, "zygote": kind == "zygote"})
        if status != 201:
            raise RuntimeError(f"deploy {name}: {status} {body!r}")
    cold = from_zero(args, serve, names, "GET", "/x", b"", b"hello")
    for kind in names:
        res[f"{label} http cold start from zero p50, {kind}"] = ms(p50(cold[kind]))


def ratios(res, label, host):
    floor = res[host]
    name = host[6:-4]
    for what in ("warm", "first call after deploy", "cold start from zero"):
        z, p = res[f"{label} {what} p50, zygote"], res[f"{label} {what} p50, plain"]
        print(f"{label} {what}, zygote / {name}: {z / floor:.2f}x (plain: {p / floor:.2f}x); "
              f"zygote / plain: {z / p:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--husk", default=os.environ.get("HUSK", os.path.join(REPO, "build", "husk")))
    ap.add_argument("--calls", type=int, default=50, help="warm calls per deployment (50)")
    ap.add_argument("--cycles", type=int, default=8, help="cold starts per deployment (8)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("zygote_bench: run as root")
    work = f"/var/tmp/husk-zygote-bench-{os.getpid()}"  # not /tmp: the functions' tmpfs
    os.makedirs(work, mode=0o755)
    res, notes = {}, []
    load0 = os.getloadavg()
    serve = None
    try:
        node = shutil.which("node")
        node = node and os.path.realpath(node)
        res["host: python3 -c pass p50"] = ms(p50([run_ns([PY, "-c", "pass"])
                                                   for _ in range(args.calls)]))
        if node:
            res["host: node -e 0 p50"] = ms(p50([run_ns([node, "-e", "0"])
                                                 for _ in range(args.calls)]))
        else:
            notes.append("node: not installed (Debian's nodejs): its part is skipped")
        serve = Serve(args.husk, work)
        stdio_part(args, serve, work, res, "python", PY, "python-json.py")
        http_part(args, serve, work, res, "python", PY, "python-http.py")
        if node:
            stdio_part(args, serve, work, res, "node", node, "node-json.js")
            http_part(args, serve, work, res, "node", node, "node-http.js")
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"zygote_bench: {e}", file=sys.stderr)
        return 1
    finally:
        if serve:
            serve.stop()
        shutil.rmtree(work, ignore_errors=True)
        load1 = os.getloadavg()
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v:8.2f} ms")
    ratios(res, "python", "host: python3 -c pass p50")
    if "node warm p50, zygote" in res:
        ratios(res, "node", "host: node -e 0 p50")
    for label in ("python", "node"):
        if f"{label} http cold start from zero p50, zygote" in res:
            z, p = (res[f"{label} http cold start from zero p50, {k}"]
                    for k in ("zygote", "plain"))
            print(f"{label} http cold start from zero, zygote / plain: {z / p:.2f}x")
    for n in notes:
        print(n)
    print("load average: %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end" % (*load0, *load1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
