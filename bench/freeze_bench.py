#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Freezing idle instances: what a call to a frozen instance pays to thaw it.

Run as root: /usr/bin/python3 bench/freeze_bench.py [--husk PATH] [--samples N]

In one run: examples/functions/hello-stdio packed into an erofs image and deployed twice, once
plain and once with `--freeze 1`. A call to the plain function's warm instance against a call to
the other's instance once the kernel reports it frozen (each sample waits for the freeze, so
--samples N takes about N seconds), p50 and p90 of the time to the last byte; and the daemon's
own thaw time (husk_thaw_duration_seconds: the freezer write). Timing never fails anything:
exit 0 when it ran, 1 when it could not be set up.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_bench as sb  # noqa: E402  (the request timing and helpers)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def metric(text, name, fn):
    for line in text.splitlines():
        if line.startswith(f'{name}{{function="{fn}"}} '):
            return float(line.split()[-1])
    return 0.0


def fn_json(husk, url, name):
    r = subprocess.run([husk, "fn", "get", name, "--url", url, "--format", "json"],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def wait_frozen(husk, url, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn_json(husk, url, name).get("instances", {}).get("frozen") == 1:
            return True
        time.sleep(0.05)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--husk", default=os.environ.get("HUSK") or os.path.join(REPO, "build", "husk"))
    p.add_argument("--examples", default=os.path.join(REPO, "build", "examples", "functions"))
    p.add_argument("--samples", type=int, default=20, help="calls to a frozen instance (20)")
    p.add_argument("--warm", type=int, default=200, help="calls to the plain instance (200)")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="husk-freeze-bench-", dir="/var/tmp")
    daemon = None
    try:
        prog = sb.find_examples(args, tmp)["hello-stdio"]
        image = os.path.join(tmp, "hello.erofs")
        argv = sb.husk_pack(args.husk, "erofs", image, prog)
        daemon, port, url = sb.start_serve(args.husk, tmp)
        for name, extra in (("plain", []), ("frozen", ["--freeze", "1"])):
            r = subprocess.run([args.husk, "fn", "deploy", name, "--url", url, "--image", image,
                                *extra, "--", *argv], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"deploy {name}: {sb.last_line(r.stderr)}")
            sb.timed_request(port, f"/function/{name}")  # the cold start
        plain = []
        for _ in range(args.warm):
            plain.append(sb.timed_request(port, "/function/plain").total_ns)
        frozen = []
        for _ in range(args.samples):
            if not wait_frozen(args.husk, url, "frozen"):
                raise RuntimeError("the idle instance was not frozen within 10 s")
            frozen.append(sb.timed_request(port, "/function/frozen").total_ns)
        text = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/metrics"],
                              capture_output=True, text=True, timeout=10).stdout
        n = metric(text, "husk_thaw_duration_seconds_count", "frozen")
        s = metric(text, "husk_thaw_duration_seconds_sum", "frozen")
        cold = metric(text, "husk_cold_starts_total", "frozen")
        load = os.getloadavg()[0]
        print(f"freeze_bench: hello-stdio from erofs, load average {load:.2f}")
        print(f"{'':34} {'p50':>9} {'p90':>9}")
        for label, v in (("warm call, plain instance", plain),
                         ("call to a frozen instance", frozen)):
            print(f"{label:34} {sb.pct(v, 50) / 1e3:>7.0f}us {sb.pct(v, 90) / 1e3:>7.0f}us")
        print(f"{'thaw cost (p50 difference)':34} "
              f"{(sb.pct(frozen, 50) - sb.pct(plain, 50)) / 1e3:>7.0f}us")
        print(f"{'daemon side thaw (mean of writes)':34} {(s / n * 1e6 if n else 0):>7.0f}us")
        print(f"thaws {n:.0f}, cold starts of the frozen function {cold:.0f} (1: every call "
              "thawed the same instance)")
        return 0
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"freeze_bench: {e}", file=sys.stderr)
        return 1
    finally:
        sb.stop_pid(daemon, 30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
