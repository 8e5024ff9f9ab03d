#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Serving benchmark: `husk serve` against the direct call and a container per request.

Run as root: /usr/bin/python3 bench/serve_bench.py [--husk PATH] [--requests N] [--only LIST]

In one run, on this machine:
  cold start   deploy a function, then time from sending its first request to the first byte
               of the response (p50 over --cycles deploy/first-request cycles; each deploy is a
               new version, so each first request is cold), for the stdio contract
               (examples/functions/hello-stdio from a packed erofs image), the http contract
               (examples/functions/http-hello) and the lambda contract
               (examples/functions/lambda-hello, a Runtime API client), each from an erofs image;
  warm         p50/p99 latency and throughput at concurrency 1, 16 and 64 with wrk (or hey, or
               a Python thread-pool client if neither can be installed; the output says which),
               and the lambda function at concurrency 1 through the Lambda Invoke API too; with
               the CPU time per call of the `husk serve` process and of the function's
               instances (their cgroups), and of the direct server;
  published    http-hello deployed with --publish 127.0.0.1:PORT (zero hop: its own server
               accepts from the daemon's socket): the first request at zero instances (the
               activator), then the warm levels on that port, beside the proxied path
               (/function/hs-http) and the direct call;
  references   direct: http-hello run on the host on a free loopback port, measured the same
               way (the floor); naive: `crun run` and `runc run` of a bundle whose process is
               hello-stdio with the body on stdin, one container per request, sequentially.
The husk interface (`husk serve`, `husk fn deploy`) may be missing or incomplete: its column
then says "n/a (reason)" and the references still run; `--only husk` re-runs just that part,
`--only published` the published function alone (`--only published,husk,direct` with the two
it is compared with).
See bench/README.md, "serve_bench.py". Timing never fails anything: exit 0 when every selected
part ran, 2 when some part could not run at all (named in the output), 1 when nothing could be
set up, 3 when something was left behind, 130 when interrupted.
"""

import argparse
import ctypes
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import start_bench as sb  # noqa: E402  (bundle, cgroup and crun-on-hybrid helpers)

REPO = os.path.dirname(HERE)
BODY = b"bench"
WANT_STDIO = b"hello, bench (POST)"
PARTS = ("husk", "published", "direct", "crun", "runc")
TABLE = ("husk", "direct", "crun", "runc")  # the main table's columns; published has its own
LEVELS = (1, 16, 64)
# The functions husk serves, by contract: (program, --concurrency, --max). The concurrency is
# each contract's default and the max the daemon's; given explicitly so that the output can say.
CONTRACTS = {"stdio": ("hello-stdio", 1, 10), "http": ("http-hello", 100, 10),
             "lambda": ("lambda-hello", 1, 10)}
INVOKE = "/2015-03-31/functions/hs-lambda/invocations"  # the Lambda Invoke API of hs-lambda
# Warm metric families and their concurrency levels: one per contract on /function/NAME, and
# "invoke", the lambda function through INVOKE.
FAMILIES = {"http": LEVELS, "stdio": LEVELS, "lambda": LEVELS, "invoke": (1,)}
# Per warm level: latency, throughput, and CPU time per call of the husk serve process ("cpu")
# and of the function ("fcpu": its instances' cgroups, or the direct server process).
WARM = ("p50", "p99", "rps", "cpu", "fcpu")
# Names of everything this run creates: containers and cgroups /husk-bench/hs<pid>-..., and
# functions hs-stdio / hs-http / hs-lambda in a daemon of our own with its own --state and
# --root.
PREFIX = f"hs{os.getpid()}-"
EXIT_OK, EXIT_SETUP, EXIT_PARTIAL, EXIT_LEFTOVERS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

log = sb.log


def last_line(text):
    """The last non-empty line of an error output: usually the one that says what failed."""
    return sb.first_line(text if isinstance(text, str) else text.decode(errors="replace"))


def head_line(text):
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def pct(samples, p):
    """Nearest-rank percentile of a list of numbers."""
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LIBC = ctypes.CDLL(None, use_errno=True)


def set_pdeathsig():
    """preexec_fn of long-lived servers: they get SIGTERM if the benchmark dies (SIGKILL)."""
    LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_pid(proc, grace=10.0):
    """SIGTERM a child we started (by its pid), then SIGKILL after the grace period."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_serve(husk, tmp, *extra):
    """`husk serve` on a free loopback port with its state and admin socket under tmp, for the
    small benchmarks beside this one: (process, port, admin URL); RuntimeError if it does not
    listen within 10 s."""
    port, sock = free_port(), os.path.join(tmp, "admin.sock")
    proc = subprocess.Popen([husk, "serve", "--listen", f"127.0.0.1:{port}", "--state",
                             os.path.join(tmp, "state"), "--admin-socket", sock, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=set_pdeathsig)
    if not wait_port(port, proc, 10):
        stop_pid(proc)
        raise RuntimeError("husk serve did not start")
    return proc, port, f"unix:{sock}"


def wait_port(port, proc, timeout):
    """True once 127.0.0.1:port accepts a connection; False if proc exits or time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False


# ---------------------------------------------------------------------------------------------
# one HTTP request on a raw socket, timed to the first byte


class Reply:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.body = b""
        self.first_ns = None  # time to the first byte of the response
        self.total_ns = None  # time to the end of the response


def parse_reply(data, r):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    m = re.match(r"HTTP/1\.\d (\d{3})", lines[0]) if lines else None
    r.status = int(m.group(1)) if m else None
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        r.headers[k.strip().lower()] = v.strip()
    if r.headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    r.body = body


def timed_request(port, path, t0=None, connect_until=None, timeout=30.0):
    """POST BODY to 127.0.0.1:port with Connection: close and read to EOF.

    Times from t0 (default: just before the request is sent). With connect_until (a monotonic
    deadline), a refused connection is retried until then: a server that is still starting.
    """
    r = Reply()
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        try:
            s.connect(("127.0.0.1", port))
            break
        except ConnectionRefusedError:
            s.close()
            if connect_until is None or time.monotonic() > connect_until:
                raise
            time.sleep(0.0002)
    with s:
        req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode() + BODY
        if t0 is None:
            t0 = time.perf_counter_ns()
        s.sendall(req)
        chunks = [s.recv(65536)]
        r.first_ns = time.perf_counter_ns() - t0
        if not chunks[0]:
            raise ConnectionError("connection closed before any response byte")
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
        r.total_ns = time.perf_counter_ns() - t0
    parse_reply(b"".join(chunks), r)
    return r


def lambda_answer_ok(body, event_length=None):
    """lambda-hello's answer: a JSON object with "hello": "world" and the event's length (the
    payload's own through the Invoke API; an API Gateway event on /function/NAME is longer)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    if not isinstance(doc, dict) or doc.get("hello") != "world":
        return False
    n = doc.get("eventLength")
    return isinstance(n, int) and (n == event_length if event_length else n > len(BODY))


def check_reply(r, contract):
    """None if the response is what the function answers, else what is wrong. contract is
    also "invoke": the lambda function through the Lambda Invoke API, payload BODY as is."""
    if r.status != 200:
        return f"HTTP {r.status}: {last_line(r.body) or 'no body'}"
    ok = {"stdio": lambda b: b.startswith(WANT_STDIO),
          "http": lambda b: b"body-length: 5" in b,
          "lambda": lambda_answer_ok,
          "invoke": lambda b: lambda_answer_ok(b, len(BODY))}[contract]
    return None if ok(r.body) else f"unexpected body {r.body[:80]!r}"


# ---------------------------------------------------------------------------------------------
# load generators: wrk, hey, or Python threads


WRK_LUA = """wrk.method = "POST"
wrk.body = "bench"
wrk.headers["Content-Type"] = "text/plain"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.1f,'
    .. '"p99_us":%.1f,"mean_us":%.1f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,'
    .. '"timeout":%.0f}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class Load:
    """Runs one load level and returns {"p50_us", "p99_us", "rps", "requests", "errors"}."""

    def __init__(self, args, tmp):
        self.args = args
        self.tool, self.note = self.pick(args)
        self.version = ""
        if self.tool == "wrk":
            self.lua = os.path.join(tmp, "post.lua")
            with open(self.lua, "w") as f:
                f.write(WRK_LUA)
            r = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
            self.version = head_line(r.stdout + r.stderr).split(" Copyright")[0]

    @staticmethod
    def pick(args):
        want = args.client
        if want in ("wrk", "hey"):
            if shutil.which(want):
                return want, ""
            return "python", f"{want} not found"
        if want == "python":
            return "python", "chosen with --client python"
        for tool in ("wrk", "hey"):
            if shutil.which(tool):
                return tool, ""
        if not args.no_install:
            for pkg in ("wrk", "hey"):
                log(f"serve_bench: installing {pkg}: apt-get update && apt-get install -y {pkg}")
                r = subprocess.run(f"apt-get update -qq && apt-get install -y -qq {pkg}",
                                   shell=True, stdin=subprocess.DEVNULL, capture_output=True,
                                   text=True, timeout=600)
                if r.returncode == 0 and shutil.which(pkg):
                    return pkg, f"{pkg} installed by this run"
        return "python", "neither wrk nor hey could be installed"

    def describe(self):
        if self.tool == "wrk":
            return (f"{self.version or 'wrk'}, {self.args.duration} s per level, threads = "
                    f"min(connections, 2), keep-alive")
        if self.tool == "hey":
            return (f"hey, {self.args.requests} requests per level, keep-alive; it reports "
                    f"latency in steps of 0.1 ms")
        return (f"Python thread-pool client (http.client, keep-alive), {self.args.requests} "
                f"requests per level: {self.note}; the GIL makes its latencies an upper bound")

    def run(self, port, path, conc, seconds=None):
        if self.tool == "wrk":
            return self.wrk(port, path, conc, seconds or self.args.duration)
        if self.tool == "hey":
            return self.hey(port, path, conc, None if seconds is None else max(50, conc * 4))
        return self.python(port, path, conc, None if seconds is None else max(50, conc * 4))

    def wrk(self, port, path, conc, seconds):
        argv = ["wrk", "-t", str(min(conc, 2)), "-c", str(conc), "-d", f"{max(1, int(seconds))}s",
                "--timeout", "30s", "-s", self.lua, f"http://127.0.0.1:{port}{path}"]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=seconds + 60)
        m = re.search(r"^WRKJSON (\{.*\})$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed: {last_line(r.stderr or r.stdout)}")
        j = json.loads(m.group(1))
        errs = j["connect"] + j["read"] + j["write"] + j["status"] + j["timeout"]
        # wrk counts a request that failed on a socket error or with a non-2xx/3xx status in
        # "requests" too; its latency histogram holds only the completed ones.
        ok = max(0, j["requests"] - j["read"] - j["write"] - j["status"] - j["timeout"])
        return {"p50_us": j["p50_us"], "p99_us": j["p99_us"],
                "rps": ok / (j["duration_us"] / 1e6), "requests": int(ok),
                "errors": int(errs), "detail": {k: int(j[k]) for k in ("connect", "read",
                                                                        "write", "status",
                                                                        "timeout")}}

    def hey(self, port, path, conc, n=None):
        n = n or self.args.requests
        argv = ["hey", "-n", str(max(n, conc)), "-c", str(conc), "-m", "POST", "-d",
                BODY.decode(), "-T", "text/plain", f"http://127.0.0.1:{port}{path}"]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=600)
        out = r.stdout

        def num(pattern):
            m = re.search(pattern, out, re.M)
            return float(m.group(1)) if m else None
        p50, p99 = num(r"^\s*50% in ([\d.]+) secs"), num(r"^\s*99% in ([\d.]+) secs")
        rps = num(r"Requests/sec:\s*([\d.]+)")
        if r.returncode != 0 or None in (p50, p99, rps):
            raise RuntimeError(f"hey failed: {last_line(r.stderr or out)}")
        codes = {int(c): int(k) for c, k in re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", out,
                                                        re.M)}
        errs = sum(k for c, k in codes.items() if c != 200)
        errs += sum(int(k) for k in re.findall(r"^\s*\[(\d+)\]\s+(?!\d+ responses)", out, re.M))
        return {"p50_us": p50 * 1e6, "p99_us": p99 * 1e6, "rps": rps,
                "requests": sum(codes.values()), "errors": errs, "detail": codes}

    def python(self, port, path, conc, n=None):
        todo = [n or self.args.requests]
        lock = threading.Lock()
        lat, errors = [], []

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine, bad = [], 0
            while True:
                with lock:
                    if todo[0] <= 0:
                        break
                    todo[0] -= 1
                t0 = time.perf_counter_ns()
                try:
                    conn.request("POST", path, BODY, {"Content-Type": "text/plain"})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        bad += 1
                        continue
                except (OSError, http.client.HTTPException):
                    bad += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    continue
                mine.append(time.perf_counter_ns() - t0)
            conn.close()
            with lock:
                lat.extend(mine)
                errors.append(bad)

        threads = [threading.Thread(target=worker) for _ in range(conc)]
        t0 = time.perf_counter_ns()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = (time.perf_counter_ns() - t0) / 1e9
        if not lat:
            raise RuntimeError(f"no request succeeded ({sum(errors)} failed)")
        return {"p50_us": pct(lat, 50) / 1e3, "p99_us": pct(lat, 99) / 1e3,
                "rps": len(lat) / elapsed, "requests": len(lat), "errors": sum(errors)}


# ---------------------------------------------------------------------------------------------
# results


class Results:
    """metric -> column -> value (float) or "n/a (reason)"; plus notes and failures."""

    def __init__(self):
        self.cells = {}
        self.notes = []
        self.failures = {}  # part -> [message]
        self.could_not_run = {}  # part -> reason
        self.extra = {}

    def put(self, metric, col, value):
        self.cells.setdefault(metric, {})[col] = value

    def get(self, metric, col):
        return self.cells.get(metric, {}).get(col)

    def fail(self, part, msg):
        self.failures.setdefault(part, []).append(msg)

    def na_all(self, part, reason, metrics):
        self.could_not_run.setdefault(part, reason)
        for m in metrics:
            if not isinstance(self.get(m, part), float):
                self.put(m, part, f"n/a ({reason})")


def warm_metrics(fam, c, what=WARM):
    return [f"warm.{fam}.c{c}.{w}" for w in what]


def metrics_for(part):
    """The metrics a part can fill: husk all; direct (one server, the floor of every contract)
    no cold lambda and no husk serve CPU; crun and runc the stdio rows they can."""
    if part == "husk":
        return [f"cold.{k}" for k in CONTRACTS] + [
            m for fam, levels in FAMILIES.items() for c in levels for m in warm_metrics(fam, c)]
    if part == "published":
        return ["cold.http"] + [m for c in LEVELS for m in warm_metrics("http", c)]
    if part == "direct":
        return ["cold.stdio", "cold.http"] + [
            m for fam, levels in FAMILIES.items() for c in levels
            for m in warm_metrics(fam, c, ("p50", "p99", "rps", "fcpu"))]
    return ["cold.stdio"] + warm_metrics("stdio", 1, ("p50", "p99", "rps"))


# ---------------------------------------------------------------------------------------------
# the programs


def find_examples(args, tmp):
    """Paths of the example functions: the build's, else compiled here with cc."""
    out = {}
    for name, _conc, _max in CONTRACTS.values():
        built = os.path.join(args.examples, name)
        if os.path.isfile(built) and os.access(built, os.X_OK):
            out[name] = built
            continue
        src = os.path.join(REPO, "examples", "functions", name + ".c")
        dst = os.path.join(tmp, "bin", name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        r = subprocess.run(["cc", "-O2", "-o", dst, src], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"no {built}, and cc {src} failed: {last_line(r.stderr)}")
        log(f"serve_bench: {built} not built; compiled {src} into {dst}")
        out[name] = dst
    return out


def husk_pack(husk, fmt, out, program):
    """`husk pack -f FMT -o OUT PROGRAM`; returns the program's argv inside the image."""
    r = subprocess.run([husk, "pack", "-f", fmt, "-o", out, program], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"husk pack -f {fmt} failed: {last_line(r.stderr)}")
    with open(out + ".manifest.json") as f:
        return json.load(f).get("args") or [program]


# ---------------------------------------------------------------------------------------------
# direct: the floor


def spawn_stdio(argv, env, timeout):
    """Start argv with BODY on stdin; (first byte ns, end ns, stdout, exit status, stderr).

    Times from just before the spawn to the first byte on stdout and to the process's exit.
    """
    errf = tempfile.TemporaryFile()
    t0 = time.perf_counter_ns()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf,
                         env=env, bufsize=0)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        try:
            p.stdin.write(BODY)
        except BrokenPipeError:
            pass
        p.stdin.close()
        first = os.read(p.stdout.fileno(), 65536)
        t1 = time.perf_counter_ns()
        chunks = [first]
        while first:
            d = os.read(p.stdout.fileno(), 65536)
            if not d:
                break
            chunks.append(d)
        rc = p.wait()
        t2 = time.perf_counter_ns()
    finally:
        timer.cancel()
        p.stdout.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    errf.seek(0)
    return (t1 - t0 if first else None), t2 - t0, b"".join(chunks), rc, errf.read()


def run_direct(args, res, progs, load):
    env = dict(os.environ, Http_Method="POST")
    # cold stdio: fork+exec of hello-stdio on the host, body on stdin
    samples = []
    for i in range(args.warmup + args.cycles):
        first, _end, out, rc, err = spawn_stdio([progs["hello-stdio"]], env, args.timeout)
        if rc != 0 or not out.startswith(WANT_STDIO):
            res.fail("direct", f"hello-stdio run {i}: exit {rc}, {out[:60]!r} {last_line(err)}")
        elif i >= args.warmup:
            samples.append(first)
    if samples:
        res.put("cold.stdio", "direct", pct(samples, 50) / 1e3)

    # cold http: spawn http-hello, then the first request as soon as it accepts
    samples = []
    for i in range(args.warmup + args.cycles):
        port = free_port()
        t0 = time.perf_counter_ns()
        p = subprocess.Popen([progs["http-hello"]], env=dict(os.environ, PORT=str(port)),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            r = timed_request(port, "/function/hs-http", t0=t0,
                              connect_until=time.monotonic() + 10)
            bad = check_reply(r, "http")
            if bad:
                res.fail("direct", f"http-hello cold run {i}: {bad}")
            elif i >= args.warmup:
                samples.append(r.first_ns)
        except OSError as e:
            res.fail("direct", f"http-hello cold run {i}: {e}")
        finally:
            stop_pid(p)
    if samples:
        res.put("cold.http", "direct", pct(samples, 50) / 1e3)

    # warm: one http-hello, the load generator at each concurrency
    port = free_port()
    p = subprocess.Popen([progs["http-hello"]], env=dict(os.environ, PORT=str(port)),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=set_pdeathsig)
    try:
        if not wait_port(port, p, 10):
            raise RuntimeError(f"http-hello did not listen on 127.0.0.1:{port}")
        warm_levels(args, res, load, "direct", port, "/function/hs-http", tuple(FAMILIES),
                    meter=lambda: {"fcpu": proc_cpu(p.pid)})
    finally:
        stop_pid(p)


# ---------------------------------------------------------------------------------------------
# CPU time of a server: a sample is (ns, key, coarse ns) or "n/a (why)"


def proc_cpu(pid):
    """The CPU time a process used so far. ns sums its threads' /proc/PID/task/T/schedstat
    (nanoseconds), key is the set of those threads; coarse is utime + stime of /proc/PID/stat
    (clock ticks), which also holds the time of threads that ended."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        tids = frozenset(os.listdir(f"/proc/{pid}/task"))
    except OSError as e:
        return f"n/a (/proc/{pid}: {e.strerror})"
    coarse = (int(fields[11]) + int(fields[12])) * 1e9 / os.sysconf("SC_CLK_TCK")
    ns = 0
    try:
        for t in tids:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                ns += int(f.read().split()[0])
    except OSError:  # no schedstat in this kernel, or a thread ended meanwhile
        return coarse, None, coarse
    return ns, tids, coarse


def cgroup_cpu(rel):
    """The CPU time the processes of cgroup /rel and its descendants used so far: usage_usec of
    cgroup2's cpu.stat (there without the cpu controller), else a v1 cpuacct.usage."""
    mounts = sb.mountinfo()
    for m, t, _src in mounts:
        path = os.path.join(m, rel, "cpu.stat")
        if t == "cgroup2" and os.path.exists(path):
            with open(path) as f:
                ns = 1e3 * int(dict(ln.split() for ln in f)["usage_usec"])
            return ns, None, ns
    for m, t, _src in mounts:
        path = os.path.join(m, rel, "cpuacct.usage")
        if t == "cgroup" and "cpuacct" in os.path.basename(m) and os.path.exists(path):
            with open(path) as f:
                ns = float(f.read())
            return ns, None, ns
    return f"n/a (no cpu.stat or cpuacct.usage for /{rel})"


def cpu_per_call(before, after, calls):
    """µs of CPU per call between two samples: the fine count if the same threads ran at both,
    else the coarse one; "n/a (why)" if a sample is one."""
    for s in (before, after):
        if isinstance(s, str):
            return s
    used = after[0] - before[0] if before[1] == after[1] else after[2] - before[2]
    return used / 1e3 / calls


def warm_levels(args, res, load, col, port, path, metrics, dead=lambda: None, meter=dict,
                levels=None, warmup=True):
    """Warm up at the highest level, then each level of the metric families given (FAMILIES),
    or those of `levels`; the numbers go to each family that has the level. dead() returns why
    the server is gone, or None; meter() samples CPU time as {"cpu" or "fcpu": sample}, taken
    around each level."""
    levels = levels or sorted({c for fam in metrics for c in FAMILIES[fam]})
    try:
        if warmup:
            load.run(port, path, max(LEVELS), seconds=1)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        res.fail(col, f"warm-up of {path}: {e}")
    for c in levels:
        fams = [fam for fam in metrics if c in FAMILIES[fam]]
        why = dead()
        if why:
            for m in (m for fam in fams for m in warm_metrics(fam, c)):
                res.put(m, col, f"n/a ({why})")
            continue
        before = meter()
        try:
            m = load.run(port, path, c)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            res.fail(col, f"{path} at concurrency {c}: {e}")
            continue
        after = meter()
        cpu = {k: cpu_per_call(v, after[k], m["requests"]) for k, v in before.items()
               if m["requests"]}
        log(f"  {col} {path} c={c}: p50 {m['p50_us']:.0f} us, p99 {m['p99_us']:.0f} us, "
            f"{m['rps']:.0f} req/s, {m['requests']} ok, {m['errors']} errors; CPU per call "
            + (", ".join(f"{k} {v:.1f} us" if isinstance(v, float) else f"{k} {v}"
                         for k, v in cpu.items()) or "not measured"))
        if m["errors"]:
            res.fail(col, f"{path} at concurrency {c}: {m['errors']} request(s) failed, "
                          f"{m['requests']} succeeded {m.get('detail', '')}")
        if m["requests"] == 0:
            continue
        for fam in fams:
            res.put(f"warm.{fam}.c{c}.p50", col, m["p50_us"])
            res.put(f"warm.{fam}.c{c}.p99", col, m["p99_us"])
            res.put(f"warm.{fam}.c{c}.rps", col, m["rps"])
            for k, v in cpu.items():
                res.put(f"warm.{fam}.c{c}.{k}", col, v)


# ---------------------------------------------------------------------------------------------
# naive: a new crun / runc container per request


class Naive:
    def __init__(self, args, tmp, progs, res):
        self.args = args
        self.res = res
        self.bundle = os.path.join(tmp, "naive-bundle")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        self.errf = open(os.path.join(tmp, "naive-stderr"), "w+b")
        self.cmd = None
        self.note = ""
        os.makedirs(self.bundle)
        try:
            self.cmd = husk_pack(args.husk, "rootfs", self.rootfs, progs["hello-stdio"])
            self.note = "rootfs: `husk pack -f rootfs` of hello-stdio (its library closure)"
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            # Without husk pack: the same program linked statically, alone in the rootfs.
            shutil.rmtree(self.rootfs, ignore_errors=True)
            for d in ("proc", "dev", "tmp"):
                os.makedirs(os.path.join(self.rootfs, d))
            src = os.path.join(REPO, "examples", "functions", "hello-stdio.c")
            r = subprocess.run(["cc", "-O2", "-static", "-o",
                                os.path.join(self.rootfs, "hello-stdio"), src],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{e}; cc -static hello-stdio.c failed: "
                                   f"{last_line(r.stderr)}")
            self.cmd = ["/hello-stdio"]
            self.note = f"rootfs: static hello-stdio ({e})"

    def config(self, cid):
        cfg = sb.make_config(f"/{sb.CGROUP_PARENT}/{cid}", self.cmd)
        cfg["process"]["env"].append("Http_Method=POST")
        sb.write_config(self.bundle, cfg)

    def reap(self, row, cid):
        left = False
        for e in os.listdir(row.state):
            left = True
            sb.force_delete(row.exe, row.state, e)
            shutil.rmtree(os.path.join(row.state, e), ignore_errors=True)
        for m in sb.cgroup_mounts():
            d = os.path.join(m, sb.CGROUP_PARENT, cid)
            if os.path.isdir(d):
                left = True
                sb.remove_cgroup_tree(d, kill=True)
        row.leaks += left

    def run_one(self, row, cid):
        """One request: (first byte ns, end ns) or raises RuntimeError."""
        self.config(cid)
        self.errf.seek(0)
        self.errf.truncate()
        argv = [row.exe, "--root", row.state, "run", "--bundle", self.bundle, cid]
        try:
            first, end, out, rc, err = spawn_stdio(argv, None, self.args.timeout)
        finally:
            self.reap(row, cid)
        if rc != 0 or not out.startswith(WANT_STDIO):
            raise RuntimeError(f"exit {rc}, stdout {out[:60]!r}: {last_line(err)}")
        return first, end

    def measure(self, row):
        name = row.family
        if not (row.exe and os.access(row.exe, os.X_OK)):
            self.res.na_all(name, f"not found: {row.exe}", metrics_for(name))
            return
        r = subprocess.run([row.exe, "--version"], capture_output=True, text=True)
        row.version = head_line(r.stdout)
        try:
            self.run_one(row, f"{PREFIX}{name}-probe")
        except RuntimeError as e:
            self.res.na_all(name, f"probe run failed: {e}", metrics_for(name))
            return
        firsts, ends = [], []
        t0 = time.perf_counter_ns()
        for i in range(self.args.warmup + self.args.naive):
            if i == self.args.warmup:
                t0 = time.perf_counter_ns()
            try:
                first, end = self.run_one(row, f"{PREFIX}{name}-{i}")
            except RuntimeError as e:
                self.res.fail(name, f"run {i}: {e}")
                continue
            if i >= self.args.warmup:
                firsts.append(first)
                ends.append(end)
        elapsed = (time.perf_counter_ns() - t0) / 1e9
        if not ends:
            self.res.na_all(name, "every timed run failed", metrics_for(name))
            return
        self.res.put("cold.stdio", name, pct(firsts, 50) / 1e3)
        self.res.put("warm.stdio.c1.p50", name, pct(ends, 50) / 1e3)
        self.res.put("warm.stdio.c1.p99", name, pct(ends, 99) / 1e3)
        self.res.put("warm.stdio.c1.rps", name, len(ends) / elapsed)
        log(f"  {name}: first byte p50 {pct(firsts, 50) / 1e6:.2f} ms, per request p50 "
            f"{pct(ends, 50) / 1e6:.2f} ms p99 {pct(ends, 99) / 1e6:.2f} ms")


# ---------------------------------------------------------------------------------------------
# husk serve


class Husk:
    def __init__(self, args, tmp, progs, res, load):
        self.args = args
        self.res = res
        self.load = load
        self.progs = progs
        self.dir = os.path.join(tmp, "husk")
        self.port = None
        self.url = None
        self.proc = None
        self.logf = None
        self.images = {}  # contract -> (image, command)
        self.version = ""

    def cli(self, *argv, timeout=60):
        r = subprocess.run([self.args.husk, "--root", os.path.join(self.dir, "root"), *argv],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        return r

    def daemon_log_tail(self):
        try:
            with open(os.path.join(self.dir, "serve.log"), errors="replace") as f:
                return last_line(f.read()) or "no output"
        except OSError:
            return "no log"

    def start(self, contracts):
        os.makedirs(os.path.join(self.dir, "state"))
        for contract in contracts:
            prog = CONTRACTS[contract][0]
            img = os.path.join(self.dir, prog + ".erofs")
            path = self.progs[prog]
            if path.startswith(tempfile.gettempdir() + os.sep):
                # An image packs a program at its host path, and `husk serve` refuses images
                # with files under /tmp (each instance has a tmpfs there).
                raise RuntimeError(f"{prog} is not built in {self.args.examples} and the copy "
                                   f"compiled under /tmp cannot be deployed: build the examples "
                                   f"(ninja -C build) or give --examples")
            self.images[contract] = (img, husk_pack(self.args.husk, "erofs", img, path))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = "unix:" + os.path.join(self.dir, "admin.sock")
        self.logf = open(os.path.join(self.dir, "serve.log"), "wb")
        self.proc = subprocess.Popen(
            [self.args.husk, "--root", os.path.join(self.dir, "root"), "serve", "--listen",
             f"127.0.0.1:{self.port}", "--state", os.path.join(self.dir, "state"),
             "--admin-socket", self.admin_url[5:],
             *(["--loops", str(self.args.loops)] if self.args.loops else [])],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT,
            preexec_fn=set_pdeathsig)
        if not wait_port(self.port, self.proc, 10):
            raise RuntimeError(f"`husk serve` did not listen on {self.url}: "
                               f"{self.daemon_log_tail()}")

    def dead(self):
        """Why the daemon is gone, or None while it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"husk serve died, exit status {self.proc.returncode}: {self.daemon_log_tail()}"

    def deploy(self, name, contract, *flags):
        if self.dead():
            raise RuntimeError(self.dead())
        img, cmd = self.images[contract]
        _prog, conc, most = CONTRACTS[contract]
        argv = ["fn", "deploy", name, "--image", img, "--contract", contract, "--min", "0",
                "--concurrency", str(conc), "--max", str(most), *flags, "--url",
                self.admin_url, "--", *cmd]
        t0 = time.perf_counter_ns()
        r = self.cli(*argv)
        took = time.perf_counter_ns() - t0
        if r.returncode != 0:
            raise RuntimeError(f"`husk fn deploy {name} --contract {contract}` failed: "
                               f"{last_line(r.stderr or r.stdout) or r.returncode}")
        return took

    def cold(self, contract):
        name = f"hs-{contract}"
        path = f"/function/{name}"
        samples, deploys = [], []
        for i in range(self.args.warmup + self.args.cycles):
            deploys.append(self.deploy(name, contract))
            try:
                r = timed_request(self.port, path, timeout=self.args.timeout)
            except OSError as e:
                self.res.fail("husk", f"cold {contract} cycle {i}: {e}")
                continue
            bad = check_reply(r, contract)
            if bad:
                self.res.fail("husk", f"cold {contract} cycle {i}: {bad}")
                if i == 0:
                    raise RuntimeError(f"first request to {path}: {bad}")
                continue
            if i == 0 and not any(os.path.isdir(os.path.join(m, self.cgroup_parent()))
                                  for m in sb.cgroup_mounts()):
                self.res.notes.append(f"husk: no instance cgroup at /{self.cgroup_parent()}: "
                                      f"the leftover check cannot follow its sandboxes")
            rid = r.headers.get("x-request-id")
            if i == 0 and not rid:
                self.res.notes.append(f"husk: the response to {path} carries no X-Request-Id")
            if i == 0 and contract == "http" and rid and f"x-request-id: {rid}".encode() \
                    not in r.body:
                self.res.notes.append("husk: the X-Request-Id the http function received "
                                      "differs from the response's")
            if i >= self.args.warmup:
                samples.append(r.first_ns)
        if samples:
            self.res.put(f"cold.{contract}", "husk", pct(samples, 50) / 1e3)
            self.res.extra[f"`husk fn deploy` wall time, {contract}, p50"] = \
                f"{pct(deploys, 50) / 1e6:.2f} ms"

    def meter(self):
        """CPU time so far of the daemon and of its instances (all of them: those of the
        function under load do the work, the others sit idle)."""
        return {"cpu": proc_cpu(self.proc.pid), "fcpu": cgroup_cpu(self.cgroup_parent())}

    def warm(self, path, fam):
        warm_levels(self.args, self.res, self.load, "husk", self.port, path, (fam,),
                    self.dead, self.meter)

    def invoke(self):
        """The lambda function through the Lambda Invoke API: one checked call, then warm."""
        try:
            r = timed_request(self.port, INVOKE, timeout=self.args.timeout)
            bad = check_reply(r, "invoke")
        except OSError as e:
            bad = str(e)
        if bad:
            self.res.fail("husk", f"{INVOKE}: {bad}")
            for m in warm_metrics("invoke", 1):
                self.res.put(m, "husk", f"n/a ({INVOKE}: {bad})")
            return
        self.warm(INVOKE, "invoke")

    def published(self):
        """http-hello with --publish: the first request of each deploy cycle meets no instance
        (a redeploy is a new version with none: the activator again), then the warm levels on
        the published port. The daemon's CPU per call shows what it does per request: nothing."""
        port = free_port()
        samples = []
        for i in range(self.args.warmup + self.args.cycles):
            self.deploy("hs-pub", "http", "--publish", f"127.0.0.1:{port}")
            try:
                r = timed_request(port, "/", timeout=self.args.timeout)
            except OSError as e:
                self.res.fail("published", f"cold cycle {i}: {e}")
                continue
            bad = check_reply(r, "http")
            if bad:
                self.res.fail("published", f"cold cycle {i}: {bad}")
                if i == 0:
                    raise RuntimeError(f"first request to 127.0.0.1:{port}: {bad}")
            elif i >= self.args.warmup:
                samples.append(r.first_ns)
        if samples:
            self.res.put("cold.http", "published", pct(samples, 50) / 1e3)
        # Level by level, the direct server right after the published one: the two see the
        # same machine (its other load comes and goes on a shared host).
        dport = free_port()
        direct = subprocess.Popen([self.progs["http-hello"]],
                                  env=dict(os.environ, PORT=str(dport)),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, preexec_fn=set_pdeathsig)
        try:
            if not wait_port(dport, direct, 10):
                raise RuntimeError(f"http-hello did not listen on 127.0.0.1:{dport}")
            for c in LEVELS:
                warm_levels(self.args, self.res, self.load, "published", port, "/", ("http",),
                            self.dead, self.meter, levels=(c,), warmup=c == LEVELS[0])
                warm_levels(self.args, self.res, self.load, "alongside", dport, "/", ("http",),
                            meter=lambda: {"fcpu": proc_cpu(direct.pid)}, levels=(c,),
                            warmup=c == LEVELS[0])
        finally:
            stop_pid(direct)
        r = self.cli("fn", "get", "hs-pub", "--format", "json", "--url", self.admin_url)
        try:
            pub = json.loads(r.stdout).get("published", {})
            conns = pub.get("connections", {})
            self.res.extra["published: the daemon's count of the function's connections"] = (
                f"{conns.get('closed', 'n/a')} ended, {conns.get('open', 'n/a')} open; "
                f"{pub.get('bytes', {}).get('in', 'n/a')} bytes in (from sock_diag, none read)")
        except ValueError:
            pass

    def run(self, parts):
        self.version = head_line(subprocess.run([self.args.husk, "--version"],
                                                capture_output=True, text=True).stdout)
        self.start(CONTRACTS if "husk" in parts else ("http",))
        if "published" in parts:
            try:
                self.published()
            except RuntimeError as e:
                self.res.fail("published", str(e))
                self.res.na_all("published", str(e), metrics_for("published"))
        if "husk" not in parts:
            return
        for contract in CONTRACTS:
            fams = (contract, "invoke") if contract == "lambda" else (contract,)
            try:
                self.cold(contract)
            except RuntimeError as e:
                self.res.fail("husk", str(e))
                self.res.could_not_run[f"husk, {contract} contract"] = str(e)
                for m in metrics_for("husk"):
                    if m.split(".")[1] in fams:
                        self.res.put(m, "husk", f"n/a ({e})")
                continue
            self.warm(f"/function/hs-{contract}", contract)
            if contract == "lambda":
                self.invoke()
        r = self.cli("fn", "ls", "--format", "json", "--url", self.admin_url)
        try:
            fns = json.loads(r.stdout)
            names = [str(f.get("name", f)) if isinstance(f, dict) else str(f) for f in fns]
            self.res.notes.append(f"husk fn ls: {len(fns)} function(s) "
                                  f"{', '.join(names)}".rstrip())
        except ValueError:
            self.res.notes.append(f"husk fn ls did not print JSON: "
                                  f"{last_line(r.stderr or r.stdout) or r.returncode}")

    def cgroup_parent(self):
        """The daemon's instance cgroups, /husk/serve-HASH with HASH a 64-bit FNV-1a of the real
        path of --state folded to 32 bits (cgroup_parent() in src/faas/server.c): ours alone,
        since the state dir is our temp dir."""
        h = 1469598103934665603
        for b in os.path.realpath(os.path.join(self.dir, "state")).encode():
            h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        return f"husk/serve-{(h ^ (h >> 32)) & 0xFFFFFFFF:08x}"

    def sandboxes_left(self):
        """Remove what the stopped daemon left of its sandboxes: SIGKILL the processes in its
        instance cgroups (by pid; they run our functions), then rmdir the cgroups. Returns the
        cgroups found."""
        found = []
        for m in sb.cgroup_mounts():
            d = os.path.join(m, self.cgroup_parent())
            if os.path.isdir(d):
                found += [os.path.join(d, e) for e in os.listdir(d)
                          if os.path.isdir(os.path.join(d, e))] or [d]
                sb.remove_cgroup_tree(d, kill=True)
        return found

    def stop(self):
        if self.proc is not None:
            died = self.dead()
            stop_pid(self.proc)
            if died:
                self.res.fail("husk", died)
                self.res.could_not_run.setdefault("husk serve", died)
            elif self.proc.returncode not in (0, -signal.SIGTERM):
                self.res.fail("husk", f"husk serve exited with status {self.proc.returncode} "
                                      f"on SIGTERM: {self.daemon_log_tail()}")
            self.proc = None
            left = self.sandboxes_left()
            if left:
                how = "crashed" if died else "stopped on SIGTERM"
                self.res.fail("husk", f"husk serve {how} and left {len(left)} sandbox cgroup(s) "
                                      f"with their processes (removed by the benchmark): "
                                      + ", ".join(left[:4]))
        if self.logf:
            self.logf.close()
            self.logf = None
            if self.args.daemon_log:
                shutil.copyfile(os.path.join(self.dir, "serve.log"), self.args.daemon_log)


# ---------------------------------------------------------------------------------------------
# leftovers


def husk_cgroups():
    """Cgroup directories named for husk, two levels deep in every hierarchy."""
    out = set()
    for m in sb.cgroup_mounts() + [sb.CGROUP_ROOT]:
        for d in (m, *[os.path.join(m, e) for e in os.listdir(m)
                       if os.path.isdir(os.path.join(m, e))]):
            try:
                out.update(os.path.join(d, e) for e in os.listdir(d)
                           if "husk" in e and os.path.isdir(os.path.join(d, e)))
            except OSError:
                pass
    return out


def leftovers(tmp):
    """Processes, mounts and loop devices that still name our temp dir, and runtime state
    entries named with our prefix. Processes are ours (they run our files): killed by pid."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tmp in cmd:
            found.append(f"process {pid} ({cmd.strip()[:100]}): killed")
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    for who in ("self", "1"):
        try:
            with open(f"/proc/{who}/mountinfo") as f:
                found += [f"mount {ln.split()[4]} (in {who}'s namespace)" for ln in f
                          if tmp in ln]
        except OSError:
            pass
    for dev in sorted(os.listdir("/sys/block")):
        try:
            with open(f"/sys/block/{dev}/loop/backing_file") as f:
                if tmp in f.read():
                    found.append(f"loop device /dev/{dev} backed by a file of {tmp}")
        except OSError:
            pass
    for d in ("/run/crun", "/run/runc", "/run/husk"):
        if os.path.isdir(d):
            found += [f"{d}/{e}" for e in os.listdir(d) if e.startswith(PREFIX)]
    return found


# ---------------------------------------------------------------------------------------------
# report


ROWS = [(f"cold.{_k}", f"cold start, {_k} contract (erofs): first byte, p50", "lat")
        for _k in CONTRACTS]
WARM_LABELS = {"p50": ("latency p50", "lat"), "p99": ("latency p99", "lat"),
               "rps": ("requests/s", "rps"), "cpu": ("husk serve CPU per call", "cpu"),
               "fcpu": ("function CPU per call", "cpu")}
FAMILY_LABELS = {"http": "warm http", "stdio": "warm stdio", "lambda": "warm lambda",
                 "invoke": "warm lambda, Invoke API"}
for _k, _levels in FAMILIES.items():
    for _c in _levels:
        ROWS += [(f"warm.{_k}.c{_c}.{_w}", f"{FAMILY_LABELS[_k]}, concurrency {_c}: {_l}", _kind)
                 for _w, (_l, _kind) in WARM_LABELS.items()]


def fmt(v, kind, reasons):
    """A cell: a number with its unit, "-" (not measured for this column), or "n/a [k]" whose
    reason k is listed once below the table."""
    if v is None:
        return "-"
    if isinstance(v, str):
        why = v[len("n/a ("):-1] if v.startswith("n/a (") else v
        if why not in reasons:
            reasons.append(why)
        return f"n/a [{reasons.index(why) + 1}]"
    if kind == "rps":
        return f"{v:,.0f}"
    if kind == "cpu":
        return f"{v:,.1f} µs"
    return f"{v:,.0f} µs" if v < 1000 else f"{v / 1000:,.2f} ms"


def ratio(a, b):
    if isinstance(a, float) and isinstance(b, float) and b > 0:
        r = a / b
        return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"
    return "-"


def minus(res, metric, col_a, col_b, metric_b=None):
    """"+N µs": a cell minus another (of the same metric in another column, or another metric)."""
    a, b = res.get(metric, col_a), res.get(metric_b or metric, col_b)
    return f"{a - b:+,.0f} µs" if isinstance(a, float) and isinstance(b, float) else "n/a"


def main_table(res):
    """husk, direct, crun and runc: every contract's rows."""
    print("| metric | husk | direct | crun | runc | husk/direct | husk/crun | husk/runc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    reasons = []
    for key, label, kind in ROWS:
        cells = [res.get(key, p) for p in TABLE]
        h = cells[0]
        print(f"| {label} | " + " | ".join(fmt(c, kind, reasons) for c in cells) + " | "
              + " | ".join(ratio(h, c) for c in cells[1:]) + " |")
    print()
    for i, why in enumerate(reasons):
        print(f"[{i + 1}] n/a: {why}")
    if reasons:
        print()
    print("direct: http-hello on the host at a free loopback port (the floor; the same server "
          "for the http, stdio, lambda and Invoke API rows); in the cold rows, the host spawn of "
          "hello-stdio (stdio) and of http-hello until it answers (http), none for lambda. "
          "crun/runc: one `run` of a bundle per request (hello-stdio, body on stdin), "
          "sequential, so they fill only the cold and concurrency-1 stdio rows; their latency "
          "is the whole `run`, exit included. CPU per call: CPU time used during the level over "
          "the calls answered; husk serve is the daemon process (all its threads, the Lambda "
          "Runtime API included), the function its instances' cgroups (agent and program) or, "
          "for direct, the http-hello process. Ratios: latency and CPU below 1 and requests/s "
          "above 1 mean husk is faster.")
    print()
    for k, levels in FAMILIES.items():
        parts = [f"c={c} {minus(res, f'warm.{k}.c{c}.p50', 'husk', 'direct')}" for c in levels]
        what = "lambda contract, Invoke API" if k == "invoke" else f"{k} contract"
        print(f"husk overhead over the direct call at p50, {what}: " + ", ".join(parts))
    print("warm lambda p50 minus warm http p50 at concurrency 1 (target <= 100 µs): "
          + minus(res, "warm.lambda.c1.p50", "husk", "husk", "warm.http.c1.p50"))


def published_table(res):
    """The published function beside the proxied path and the direct call (http-hello)."""
    if not any(res.get(f"warm.http.c{c}.rps", "published") is not None for c in LEVELS):
        return
    reasons = []
    print("\n| http-hello | published | proxied | direct | direct, alongside | "
          "published/alongside |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [("cold.http", "first request at zero instances: first byte, p50", "lat")]
    for c in LEVELS:
        rows += [(f"warm.http.c{c}.{w}", f"concurrency {c}: {WARM_LABELS[w][0]}",
                  WARM_LABELS[w][1]) for w in WARM]
    for key, label, kind in rows:
        cells = [res.get(key, p) for p in ("published", "husk", "direct", "alongside")]
        print(f"| {label} | " + " | ".join(fmt(c, kind, reasons) for c in cells) + " | "
              + ratio(cells[0], cells[3]) + " |")
    for i, why in enumerate(reasons):
        print(f"[{i + 1}] n/a: {why}")
    print("published: `--publish 127.0.0.1:PORT`, the load on that port (proxied: "
          "/function/hs-http through the daemon; direct, alongside: a second direct http-hello "
          "loaded right after the published function at each level). Its husk serve CPU is the function's own "
          "log (http-hello writes a line to stderr per request, which the daemon writes to the "
          "function's log; the direct server's stderr is /dev/null), none of the requests' "
          "bytes. Targets: throughput >= 0.95x direct, p50 within 10 µs of direct.")
    for c in LEVELS:
        a, b = (res.get(f"warm.http.c{c}.rps", p) for p in ("published", "alongside"))
        print(f"published at concurrency {c}: requests/s {ratio(a, b)}x direct (alongside), "
              "p50 " + minus(res, f"warm.http.c{c}.p50", "published", "alongside"))


def report(args, res, load, env_note):
    print(f"\n## husk serve benchmark ({time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    for ln in env_note:
        print(f"- {ln}")
    if load:
        print(f"- load generator: {load.describe()}; it runs on the same {os.cpu_count()} cpus "
              f"as the servers")
    print(f"- cold start: p50 of {args.cycles} cycles after {args.warmup} untimed; naive "
          f"crun/runc: {args.naive} sequential runs after {args.warmup} untimed")
    print("- husk functions deployed with --min 0 and: " + ", ".join(
        f"{k} --concurrency {conc} --max {most}" for k, (_p, conc, most) in CONTRACTS.items())
        + "\n")
    if set(TABLE) & set(args.parts):
        main_table(res)
    published_table(res)
    for k, v in res.extra.items():
        print(f"{k}: {v}")
    for n in res.notes:
        print(f"note: {n}")
    for part, msgs in res.failures.items():
        print(f"\n{part}: {len(msgs)} failure(s); the first:")
        for m in msgs[:5]:
            print(f"  {m}")
    if res.could_not_run:
        print("\ncould not run at all:")
        for part, why in res.could_not_run.items():
            print(f"  {part}: {why}")


# ---------------------------------------------------------------------------------------------
# main


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--husk", default=os.environ.get("HUSK") or
                   os.path.join(REPO, "build", "husk"),
                   help="husk binary (default: $HUSK, else build/husk)")
    p.add_argument("--examples", help="directory with hello-stdio, http-hello and "
                   "lambda-hello (default: "
                   "examples/functions/ beside the husk binary; compiled with cc if missing)")
    p.add_argument("--requests", type=int, default=5000,
                   help="requests per concurrency level with hey or the Python client (5000)")
    p.add_argument("--duration", type=int, default=5, help="seconds per level with wrk (5)")
    p.add_argument("--cycles", type=int, default=15,
                   help="deploy/first-request cycles of each cold start (15)")
    p.add_argument("--naive", type=int, default=30, help="timed crun/runc runs each (30)")
    p.add_argument("-w", "--warmup", type=int, default=3, help="untimed cycles/runs first (3)")
    p.add_argument("--only", help="comma-separated parts: husk,published,direct,crun,runc")
    p.add_argument("--client", choices=("auto", "wrk", "hey", "python"), default="auto",
                   help="load generator (auto: wrk, else hey, else install one, else Python)")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install wrk/hey")
    p.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
    p.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    p.add_argument("--no-cgroup-trick", action="store_true",
                   help="leave hybrid cgroups as they are (crun is then n/a)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request or run (30)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--daemon-log", help="copy the output of `husk serve` to this file")
    p.add_argument("--loops", type=int, help="husk serve --loops N (default: its own, one per core)")
    a = p.parse_args()
    a.parts = a.only.split(",") if a.only else list(PARTS)
    if not set(a.parts) <= set(PARTS):
        p.error("--only takes husk,published,direct,crun,runc")
    if min(a.requests, a.duration, a.cycles, a.naive) < 1 or a.warmup < 0:
        p.error("--requests, --duration, --cycles and --naive must be >= 1, -w >= 0")
    a.husk = os.path.abspath(a.husk)
    a.examples = a.examples or os.path.join(os.path.dirname(a.husk), "examples", "functions")
    return a


def crun_phase(args, naive, row, res, tmp):
    """crun on a hybrid host: the cgroup trick of start_bench, only for as long as crun runs
    (while it is on, hugetlb is missing from cgroup2 for the whole machine)."""
    mode = sb.cgroup_mode()
    if mode != "hybrid" or not sb.v2_controllers() or args.no_cgroup_trick:
        naive.measure(row)
        return f"cgroups: {mode} mode, no trick needed" if mode != "hybrid" else \
            "cgroups: hybrid, trick not applied"
    cleaner = sb.Cleaner(PREFIX, os.path.join(tmp, "crun-phase"), [row])
    os.makedirs(cleaner.tmp)
    cleaner.moved, notes = sb.apply_cgroup_trick()
    guardian, pipe = sb.start_guardian(cleaner)
    names = " ".join(c for c, _ in cleaner.moved) or "nothing"
    try:
        naive.measure(row)
    finally:
        problems = cleaner.run()
        os.write(pipe, b"d")
        os.close(pipe)
        os.waitpid(guardian, 0)
    for p in problems:
        res.fail("cleanup", p)
    return (f"cgroups: hybrid; for crun's runs only, {names} moved from cgroup2 to a v1 "
            f"hierarchy in the benchmark's own mount namespace (undone after)"
            + ("; " + "; ".join(notes) if notes else ""))


def main():
    args = parse_args()
    if os.geteuid() != 0:
        log("serve_bench: needs root: the runtimes create namespaces and cgroups")
        return EXIT_SETUP
    lock = os.open(sb.CGROUP_ROOT, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("serve_bench: another benchmark holds the lock on /sys/fs/cgroup; try later")
        return EXIT_SETUP
    try:
        sb.enter_private_mount_ns()
    except OSError as e:
        log(f"serve_bench: {e}")
        return EXIT_SETUP
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, sb.raise_interrupt)

    load0 = os.getloadavg()[0]
    cgroups0 = husk_cgroups()
    tmp = tempfile.mkdtemp(prefix="husk-serve-bench.")
    res = Results()
    rows = {n: sb.Row(n, n, "oci", getattr(args, n), n) for n in ("crun", "runc")}
    for r in rows.values():
        r.state = os.path.join(tmp, "state-" + r.name)
        os.makedirs(r.state)
    cleaner = sb.Cleaner(PREFIX, tmp, list(rows.values()))
    guardian, pipe = sb.start_guardian(cleaner)
    env_note = [f"{os.uname().release}, {os.cpu_count()} cpus, load average {load0:.2f} before"]
    husk = None
    load = None
    interrupted = None
    try:
        progs = find_examples(args, tmp)
        load = Load(args, tmp)
        log(f"serve_bench: load generator: {load.describe()}")
        if "direct" in args.parts:
            log("serve_bench: direct")
            try:
                run_direct(args, res, progs, load)
            except (RuntimeError, OSError) as e:
                res.na_all("direct", str(e), metrics_for("direct"))
        naive = None
        if {"crun", "runc"} & set(args.parts):
            try:
                naive = Naive(args, tmp, progs, res)
                env_note.append(f"naive bundle: {naive.note}; config as bench/start_bench.py's "
                                f"plain bundle (pid, mount, ipc, uts, network namespaces, "
                                f"readonly root, no seccomp, no limits)")
            except (RuntimeError, OSError) as e:
                for n in ("crun", "runc"):
                    res.na_all(n, f"no bundle: {e}", metrics_for(n))
        if naive and "runc" in args.parts:
            log("serve_bench: runc, a container per request")
            naive.measure(rows["runc"])
        if naive and "crun" in args.parts:
            log("serve_bench: crun, a container per request")
            env_note.append(crun_phase(args, naive, rows["crun"], res, tmp))
        for r in rows.values():
            if r.version:
                env_note.append(f"{r.name}: {r.version}")
        if {"husk", "published"} & set(args.parts):
            log("serve_bench: husk serve")
            husk = Husk(args, tmp, progs, res, load)
            try:
                if not os.access(args.husk, os.X_OK):
                    raise RuntimeError(f"not found: {args.husk}")
                husk.run(args.parts)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                for part in {"husk", "published"} & set(args.parts):
                    res.na_all(part, str(e), metrics_for(part))
            finally:
                husk.stop()
            env_note.append(f"husk: {husk.version or args.husk}")
    except KeyboardInterrupt as e:
        interrupted = str(e) or "SIGINT"
    except RuntimeError as e:
        log(f"serve_bench: {e}")
        interrupted = None
        res.could_not_run["setup"] = str(e)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, sb.SIGNALS)
        if husk:
            husk.stop()
        left = leftovers(tmp)
        left += cleaner.run()
        os.write(pipe, b"d")
        os.close(pipe)
        os.waitpid(guardian, 0)
        os.close(lock)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, sb.SIGNALS)

    if "setup" in res.could_not_run:
        log(f"serve_bench: could not set up: {res.could_not_run['setup']}")
        return EXIT_SETUP
    for part in args.parts:
        for m in metrics_for(part):
            if res.get(m, part) is None:
                res.put(m, part, "n/a (interrupted before it ran)" if interrupted
                        else "n/a (no sample: see the failures below)")
    env_note.append(f"load average after: {os.getloadavg()[0]:.2f}")
    left += res.failures.pop("cleanup", [])
    for d in sorted(husk_cgroups() - cgroups0):
        # A /husk parent that this run's daemon created: removed if empty (another daemon's
        # children keep it, and rmdir then fails harmlessly).
        if os.path.basename(d) == "husk":
            try:
                os.rmdir(d)
            except OSError:
                pass
    new = sorted(husk_cgroups() - cgroups0)
    if new:
        # Not ours for certain: other users' husk tests create such cgroups too.
        res.notes.append("cgroups named for husk that appeared during the run (this run's "
                         "daemon, or another user's): " + ", ".join(new[:10]))
    if interrupted:
        print(f"\ninterrupted by {interrupted}: the numbers below cover what ran so far")
    report(args, res, load, env_note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cells": res.cells, "notes": res.notes, "failures": res.failures,
                       "could_not_run": res.could_not_run, "extra": res.extra,
                       "env": env_note, "client": load and load.describe()}, f, indent=1)
    if left:
        print("\nLEFT BEHIND:")
        for x in left:
            print(f"  {x}")
        return EXIT_LEFTOVERS
    print("\ncleanup: no container, daemon, cgroup, mount, loop device or temp file left behind")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if res.could_not_run else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
