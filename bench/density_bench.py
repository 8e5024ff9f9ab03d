#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Density: how fast `--min N` instances are ready, and what an idle instance costs the host.

Run as root: /usr/bin/python3 bench/density_bench.py [--husk PATH] [--min 1000] [--functions 1]

In one run: examples/functions/hello-stdio packed into an erofs image, `husk serve` started, and
--functions functions deployed with `--min N` each. Printed: the time from the first deploy
until every instance is ready (instances per second), and per idle instance the daemon's fds,
the daemon's resident memory, the instance's own memory (its memory cgroup's usage), its
processes and the fall in the host's MemAvailable; then the functions are removed and the time until every instance is gone. A call to
one of them shows they serve. Timing never fails anything: exit 0 when it ran, 1 when it could
not be set up, 3 when something was left behind.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_bench as sb  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fn_ls(husk, url):
    r = subprocess.run([husk, "fn", "ls", "--url", url, "--format", "json"], capture_output=True,
                       text=True, timeout=60)
    return json.loads(r.stdout) if r.returncode == 0 else []


def ready(husk, url):
    return sum(f.get("instances", {}).get("idle", 0) for f in fn_ls(husk, url))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def instance_memory(state_hash_glob):
    """Bytes charged to the instances' memory cgroups, and how many cgroups."""
    total, n = 0, 0
    for cg in glob.glob(state_hash_glob):
        for name in ("memory.usage_in_bytes", "memory.current"):
            p = os.path.join(cg, name)
            if os.path.exists(p):
                with open(p) as f:
                    total += int(f.read())
                n += 1
                break
    return total, n


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--husk", default=os.environ.get("HUSK") or os.path.join(REPO, "build", "husk"))
    p.add_argument("--examples", default=os.path.join(REPO, "build", "examples", "functions"))
    p.add_argument("--min", type=int, default=1000, help="instances per function (1000, the most)")
    p.add_argument("--functions", type=int, default=1, help="functions deployed (1)")
    p.add_argument("--parallel-starts", type=int, default=4, help="husk serve's setting (4)")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="husk-density-bench-", dir="/var/tmp")
    daemon, code = None, 0
    try:
        prog = sb.find_examples(args, tmp)["hello-stdio"]
        image = os.path.join(tmp, "hello.erofs")
        argv = sb.husk_pack(args.husk, "erofs", image, prog)
        daemon, port, url = sb.start_serve(args.husk, tmp, "--parallel-starts",
                                           str(args.parallel_starts))
        fds0, rss0 = len(os.listdir(f"/proc/{daemon.pid}/fd")), rss_kib(daemon.pid)
        avail0 = mem_available_kib()
        want = args.min * args.functions
        t0 = time.monotonic()
        for i in range(args.functions):
            r = subprocess.run([args.husk, "fn", "deploy", f"d{i}", "--url", url, "--image", image,
                                "--min", str(args.min), "--max", str(args.min), "--memory", "16M",
                                "--", *argv], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"deploy d{i}: {sb.last_line(r.stderr)}")
        n = 0
        while n < want:
            if daemon.poll() is not None:
                raise RuntimeError("husk serve exited")
            if time.monotonic() - t0 > 600:
                raise RuntimeError(f"only {n} of {want} instances ready after 600 s")
            time.sleep(0.05)
            n = ready(args.husk, url)
        t_ready = time.monotonic() - t0
        fds1, rss1 = len(os.listdir(f"/proc/{daemon.pid}/fd")), rss_kib(daemon.pid)
        avail1 = mem_available_kib()
        mem, n_cg = instance_memory("/sys/fs/cgroup/memory/husk/serve-*/d*-v*") if \
            glob.glob("/sys/fs/cgroup/memory/husk") else \
            instance_memory("/sys/fs/cgroup/husk/serve-*/d*-v*")
        procs = 0
        for cg in glob.glob("/sys/fs/cgroup/unified/husk/serve-*/d*-v*") or \
                glob.glob("/sys/fs/cgroup/husk/serve-*/d*-v*"):
            with open(os.path.join(cg, "cgroup.procs")) as f:
                procs += len(f.read().split())
        call = sb.timed_request(port, "/function/d0")
        t1 = time.monotonic()
        for i in range(args.functions):
            subprocess.run([args.husk, "fn", "rm", f"d{i}", "--url", url], capture_output=True,
                           timeout=60)
        while glob.glob("/sys/fs/cgroup/*/husk/serve-*/d*-v*") and time.monotonic() - t1 < 600:
            time.sleep(0.1)
        t_gone = time.monotonic() - t1
        print(f"density_bench: {args.functions} x --min {args.min} hello-stdio from erofs, "
              f"--parallel-starts {args.parallel_starts}, load average {os.getloadavg()[0]:.2f}")
        print(f"ready: {want} instances in {t_ready:.2f} s ({want / t_ready:.0f}/s)")
        print(f"per idle instance: {(fds1 - fds0) / want:.2f} daemon fds, "
              f"{(rss1 - rss0) / want:.1f} KiB daemon RSS, "
              f"{mem / max(n_cg, 1) / 1048576:.2f} MiB in its memory cgroup, "
              f"{procs / want:.2f} processes; the host's MemAvailable fell by "
              f"{(avail0 - avail1) / want / 1024:.2f} MiB per instance (other work on the host "
              "counts too)")
        print(f"a call to one of them: {call.status} in {call.total_ns / 1e6:.2f} ms; "
              f"all removed in {t_gone:.2f} s")
        if glob.glob("/sys/fs/cgroup/*/husk/serve-*/d*-v*"):
            print("left behind: instance cgroups", file=sys.stderr)
            code = 3
        return code
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
        print(f"density_bench: {e}", file=sys.stderr)
        return 1
    finally:
        sb.stop_pid(daemon, 120)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
