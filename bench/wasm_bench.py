#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""WebAssembly functions: the WAGI hello on `husk serve` beside the same program compiled
natively and served on the stdio contract, in one run, as ratios.

Run as root: /usr/bin/python3 bench/wasm_bench.py [--husk PATH] [--cycles N] [--requests N]
             [--engines]

In one run, on this machine:
  cold start   deploy a function, then time from sending its first request to the first byte
               of the response (p50 over --cycles deploy/first-request cycles; each deploy is a
               new version, so each first request starts a new instance): the native program
               from a packed erofs image on the stdio contract, and the same C source built for
               wasm32-wasi, deployed with --wasm (WAGI);
  warm         latency p50/p99 of --requests sequential calls, one connection each;
  --engines    the WebAssembly engines this host's packages offer, outside any sandbox: a
               process per call (node:wasi, wabt's wasm-interp) against the native program, one
               call on a compiled module inside a running engine, and the compute speed of a
               sieve-and-hash module (docs/wasm.md has the numbers and the choice).
The modules are built with Debian's clang and wasi-libc (scripts/deps.sh clang lld wasi-libc
libclang-rt-dev-wasm32). Timing never fails anything: exit 0 when every part ran, 2 when some
part could not run (named in the output), 1 when nothing could be set up, 3 when something was
left behind, 130 when interrupted.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import serve_bench as svb  # noqa: E402  (timed requests, percentiles, packing, leftovers)
import start_bench as sb  # noqa: E402  (cgroup helpers)

REPO = os.path.dirname(HERE)
EXIT_OK, EXIT_SETUP, EXIT_PARTIAL, EXIT_LEFTOVERS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
WANT = b"hello, bench"

# One program for both: a CGI header block only when called as CGI (WAGI).
HELLO_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    char body[64];
    size_t n = fread(body, 1, sizeof(body) - 1, stdin);
    body[n] = 0;
    if (getenv("GATEWAY_INTERFACE"))
        printf("Content-Type: text/plain\r\n\r\n");
    printf("hello, %s\n", body);
    return 0;
}
"""

# Compute: a sieve of 2^20 and a hash over it, ROUNDS times; no imports, so any engine runs it.
SIEVE_C = r"""
#define N (1 << 20)
static unsigned char s[N];
__attribute__((export_name("run"))) unsigned run(void) {
    unsigned h = 2166136261u;
    for (int k = 0; k < 20; k++) {
        for (int i = 0; i < N; i++) s[i] = 1;
        for (int i = 2; i * i < N; i++)
            if (s[i]) for (int j = i * i; j < N; j += i) s[j] = 0;
        for (int i = 0; i < N; i++) h = (h ^ s[i]) * 16777619u;
    }
    return h;
}
#ifndef NO_MAIN
#include <stdio.h>
int main(void) { printf("%u\n", run()); return 0; }
#endif
"""

# A process per call, and calls inside one running engine, with node:wasi.
NODE_RUN = r"""
const { WASI } = require('node:wasi');
const fs = require('node:fs');
const [mode, file, n] = process.argv.slice(2);
const mod = new WebAssembly.Module(fs.readFileSync(file));
const out = fs.openSync('/dev/null', 'w');
function once() {
    const w = new WASI({ version: 'preview1', args: ['hello'], env: {}, returnOnExit: true,
                         stdin: fs.openSync('/dev/null', 'r'), stdout: out });
    return w.start(new WebAssembly.Instance(mod, w.getImportObject()));
}
if (mode === 'once') process.exitCode = once();
if (mode === 'calls') {
    once();
    const t = process.hrtime.bigint();
    for (let i = 0; i < Number(n); i++) once();
    console.log(Number(process.hrtime.bigint() - t) / 1e3 / Number(n));
}
if (mode === 'compute') {
    const inst = new WebAssembly.Instance(mod, {});
    const t = process.hrtime.bigint();
    const h = inst.exports.run();
    console.log(Number(process.hrtime.bigint() - t) / 1e6, h);
}
"""

def build(tmp):
    """hello.wasm, hello (native), sieve.wasm (no WASI), sieve (native) in tmp."""
    for name, src in (("hello.c", HELLO_C), ("sieve.c", SIEVE_C), ("run.js", NODE_RUN)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(src)
    steps = [
        ["clang", "--target=wasm32-wasi", "-O2", "-Wl,--strip-all", "-o", "hello.wasm",
         "hello.c"],
        ["clang", "--target=wasm32-wasi", "-O2", "-nostartfiles", "-DNO_MAIN", "-Wl,--no-entry",
         "-Wl,--strip-all", "-o", "sieve.wasm", "sieve.c"],
        ["cc", "-O2", "-o", "hello", "hello.c"],
        ["cc", "-O2", "-o", "sieve", "sieve.c"],
    ]
    for argv in steps:
        r = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` failed: {svb.last_line(r.stderr)} (Debian: "
                               f"scripts/deps.sh clang lld wasi-libc libclang-rt-dev-wasm32)")
    for f in ("hello.wasm", "hello"):
        os.chmod(os.path.join(tmp, f), 0o755)


class Daemon:
    """`husk serve` of our own: its own --state, --root and admin socket in tmp."""

    def __init__(self, husk, tmp):
        self.husk, self.dir = husk, os.path.join(tmp, "husk")
        os.makedirs(os.path.join(self.dir, "state"))
        self.port = svb.free_port()
        self.admin = "unix:" + os.path.join(self.dir, "admin.sock")
        self.logf = open(os.path.join(self.dir, "serve.log"), "wb")
        self.proc = subprocess.Popen(
            [husk, "--root", os.path.join(self.dir, "root"), "serve", "--listen",
             f"127.0.0.1:{self.port}", "--state", os.path.join(self.dir, "state"),
             "--admin-socket", self.admin[5:]],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=svb.set_pdeathsig)
        # No polling: the daemon says when its admin API listens (after the front door), and
        # a thread copies the rest of its output to the log.
        seen = b""
        for line in self.proc.stdout:
            seen += line
            self.logf.write(line)
            if b"admin API on" in line:
                break
        else:
            raise RuntimeError(f"husk serve did not start: {svb.last_line(seen) or 'no output'}")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.logf.write(line)

    def cli(self, *argv):
        return subprocess.run([self.husk, "fn", argv[0], "--url", self.admin, *argv[1:]],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)

    def deploy(self, name, *how):
        r = self.cli("deploy", name, "--idle", "1", *how)
        if r.returncode != 0:
            raise RuntimeError(f"`husk fn deploy {name}` failed: "
                               f"{svb.last_line(r.stderr or r.stdout)}")

    def cgroup_parent(self):
        """/husk/serve-HASH of our --state (as cgroup_parent() in src/faas/server.c)."""
        h = 1469598103934665603
        for b in os.path.realpath(os.path.join(self.dir, "state")).encode():
            h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        return f"husk/serve-{(h ^ (h >> 32)) & 0xFFFFFFFF:08x}"

    def stop(self):
        """SIGTERM; then what is left of its sandboxes (killed and removed): their cgroups."""
        svb.stop_pid(self.proc)
        self.logf.close()
        left = []
        for m in sb.cgroup_mounts():
            d = os.path.join(m, self.cgroup_parent())
            if os.path.isdir(d) and any(os.path.isdir(os.path.join(d, e))
                                        for e in os.listdir(d)):
                left.append(d)
            if os.path.isdir(d):
                sb.remove_cgroup_tree(d, kill=True)
        return left


def measure(daemon, name, how, args):
    """{"cold": p50 µs, "p50": µs, "p99": µs} of one function."""
    path, cold, warm = f"/function/{name}", [], []
    for i in range(args.cycles + 1):
        daemon.deploy(name, *how)
        r = svb.timed_request(daemon.port, path, timeout=60)
        if r.status != 200 or not r.body.startswith(WANT):
            raise RuntimeError(f"{path}: HTTP {r.status}: {svb.last_line(r.body)}")
        if i:  # the first cycle also builds the function's root: not counted
            cold.append(r.first_ns / 1e3)
    for _ in range(args.requests):
        r = svb.timed_request(daemon.port, path, timeout=60)
        if r.status != 200:
            raise RuntimeError(f"{path}: HTTP {r.status}: {svb.last_line(r.body)}")
        warm.append(r.first_ns / 1e3)
    return {"cold": svb.pct(cold, 50), "p50": svb.pct(warm, 50), "p99": svb.pct(warm, 99)}


def timed_runs(argv, n, cwd):
    """p50 wall time (µs) of n runs of argv to its exit, or the reason it does not run."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
        samples.append((time.perf_counter_ns() - t0) / 1e3)
        if r.returncode != 0:
            return svb.last_line(r.stderr or r.stdout) or f"exit status {r.returncode}"
    return svb.pct(samples, 50)


def engines(tmp, args):
    """Rows: (what, native, node:wasi, wasm-interp), each a number of µs or a reason."""
    node = shutil.which("node") or "node (not installed)"
    interp = shutil.which("wasm-interp") or "wasm-interp (Debian: wabt)"
    n = max(5, args.cycles)
    rows = []
    rows.append(("a process per call (start to exit), p50",
                 timed_runs(["./hello"], n, tmp),
                 timed_runs([node, "--no-warnings", "run.js", "once", "hello.wasm"], n, tmp),
                 timed_runs([interp, "--wasi", "hello.wasm"], n, tmp)))
    r = subprocess.run([node, "--no-warnings", "run.js", "calls", "hello.wasm",
                        str(args.requests)], cwd=tmp, capture_output=True, text=True)
    rows.append(("one call in a running engine (new instance + run), mean", "-",
                 float(r.stdout) if r.returncode == 0 else svb.last_line(r.stderr), "-"))
    t0 = time.perf_counter_ns()
    native = subprocess.run(["./sieve"], cwd=tmp, capture_output=True, text=True)
    native_ms = (time.perf_counter_ns() - t0) / 1e6
    r = subprocess.run([node, "--no-warnings", "run.js", "compute", "sieve.wasm"], cwd=tmp,
                       capture_output=True, text=True)
    t0 = time.perf_counter_ns()
    w = subprocess.run([interp, "--run-all-exports", "sieve.wasm"], cwd=tmp, capture_output=True,
                       text=True, timeout=600)
    interp_ms = (time.perf_counter_ns() - t0) / 1e6
    rows.append(("compute: sieve + hash of 2^20, 20 rounds (ms)",
                 native_ms * 1e3 if native.returncode == 0 else svb.last_line(native.stderr),
                 float(r.stdout.split()[0]) * 1e3 if r.returncode == 0
                 else svb.last_line(r.stderr),
                 interp_ms * 1e3 if w.returncode == 0 else svb.last_line(w.stderr or w.stdout)))
    hashes = {int(x) & 0xFFFFFFFF for x in
              [native.stdout.strip(), r.stdout.split()[-1] if r.returncode == 0 else "0",
               w.stdout.split(":")[-1] if w.returncode == 0 else native.stdout.strip()]}
    return rows, len(hashes) == 1


def cell(v):
    if isinstance(v, str):
        return v if v == "-" else f"n/a ({v})"
    return f"{v / 1e3:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def ratio(a, b):
    return f"{a / b:.2f}x" if isinstance(a, float) and isinstance(b, float) and b else "-"


def leftovers(tmp):
    """What names our temp dir (processes killed by pid), and engines of our daemon."""
    return svb.leftovers(tmp)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--husk", default=os.environ.get("HUSK", os.path.join(REPO, "build", "husk")))
    p.add_argument("--cycles", type=int, default=10, help="cold deploy/first-request cycles")
    p.add_argument("--requests", type=int, default=200, help="warm sequential requests")
    p.add_argument("--engines", action="store_true", help="also compare the engines")
    return p.parse_args()


def main():
    args = parse_args()
    if os.geteuid() != 0:
        print("wasm_bench.py: run as root", file=sys.stderr)
        return EXIT_SETUP
    tmp = tempfile.mkdtemp(prefix="wasm-bench-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    could_not, results, daemon = {}, {}, None
    try:
        build(tmp)
        daemon = Daemon(args.husk, tmp)
        image = os.path.join(tmp, "hello.erofs")
        cmd = svb.husk_pack(args.husk, "erofs", image, os.path.join(tmp, "hello"))
        for name, how in (("native", ["--image", image, "--contract", "stdio", "--", *cmd]),
                          ("wasm", ["--wasm", os.path.join(tmp, "hello.wasm")])):
            try:
                results[name] = measure(daemon, f"wb-{name}", how, args)
            except (RuntimeError, OSError) as e:
                could_not[name] = str(e)
        eng = engines(tmp, args) if args.engines else None
    except RuntimeError as e:
        print(f"wasm_bench.py: {e}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        left = daemon.stop() if daemon else []
        left += leftovers(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"husk serve, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}: "
          f"{args.cycles} cold cycles, {args.requests} warm requests\n")
    print(f"| metric | native, stdio | wasm, WAGI | wasm / native |\n|---|---:|---:|---:|")
    for key, what in (("cold", "cold start: first byte, p50"), ("p50", "warm: latency p50"),
                      ("p99", "warm: latency p99")):
        a = results.get("native", {}).get(key, could_not.get("native", "-"))
        b = results.get("wasm", {}).get(key, could_not.get("wasm", "-"))
        print(f"| {what} | {cell(a)} | {cell(b)} | {ratio(b, a)} |")
    if eng:
        rows, same = eng
        print("\n| engine, outside a sandbox | native | node:wasi | wasm-interp |\n"
              "|---|---:|---:|---:|")
        for what, *vals in rows:
            print(f"| {what} | " + " | ".join(cell(v) for v in vals) + " |")
        print(f"\nthe engines computed {'the same' if same else 'different'} hashes")
    for part, why in could_not.items():
        print(f"could not run: {part}: {why}")
    if left:
        print("left behind (removed):\n  " + "\n  ".join(left))
        return EXIT_LEFTOVERS
    return EXIT_PARTIAL if could_not else EXIT_OK


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(EXIT_INTERRUPTED))
    sys.exit(main())
