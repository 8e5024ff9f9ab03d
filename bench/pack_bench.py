#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Packaging benchmark: `husk pack` time and image sizes per format, next to the size of the
Debian base rootfs the same program would otherwise ship in, and how long `husk run` takes to
start the program from each kind of rootfs (directory, erofs, erofs + overlay, squashfs).

Run as root: /usr/bin/python3 bench/pack_bench.py [-n 30] [--husk PATH] [--json FILE]

The Debian base size is the sum of dpkg's Installed-Size over what debootstrap's minbase holds
(every installed package of Priority required, plus Essential ones) and the packages the
program's own package depends on, recursively: what `FROM debian:bookworm-slim` plus
`apt-get install` of that package would unpack. With --debian-rootfs DIR (a real debootstrap)
its `du` is used instead. Timing never makes this script fail.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMATS = [  # (label, pack flags, output suffix)
    ("bundle (dir)", ["-f", "bundle"], ""),
    ("tar.zst", ["-f", "tar"], ".tar.zst"),
    ("erofs", ["-f", "erofs"], ".erofs"),
    ("erofs lz4hc", ["-f", "erofs", "--compress", "lz4hc"], ".lz4.erofs"),
    ("squashfs", ["-f", "squashfs"], ".sqfs"),
    ("squashfs gzip", ["-f", "squashfs", "--compress", "gzip"], ".gz.sqfs"),
    ("squashfs zstd", ["-f", "squashfs", "--compress", "zstd"], ".zst.sqfs"),
]
STARTS = [  # (label, pack flags, root.readonly)
    ("directory", [], True),
    ("erofs", ["--image", "erofs"], True),
    ("erofs + tmpfs overlay", ["--image", "erofs"], False),
    ("erofs lz4hc", ["--image", "erofs", "--compress", "lz4hc"], True),
    ("squashfs", ["--image", "squashfs"], True),
    ("squashfs gzip", ["--image", "squashfs", "--compress", "gzip"], True),
]

PY_APP = """#!/usr/bin/env python3
import json, sys
print(json.dumps({"ok": True, "argv": sys.argv[1:]}))
"""
SH_APP = """#!/bin/sh
set -e
for w in a b; do echo "$w"; done | sort | uniq -c >/dev/null
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def du(path):
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True,
                         text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else 0


def human(n):
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# ---- the Debian baseline


def dpkg_installed():
    """{package: (installed size in bytes, priority, essential, depends)} of installed packages."""
    fmt = "${Package}\t${Installed-Size}\t${Priority}\t${Essential}\t${Pre-Depends}, ${Depends}\t${db:Status-Abbrev}\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True).stdout
    pkgs = {}
    for line in out.splitlines():
        name, size, prio, ess, deps, status = (line.split("\t") + [""] * 6)[:6]
        if not status.startswith("ii"):
            continue
        names = [d.strip().split()[0].split(":")[0] for alt in deps.split(",")
                 for d in alt.split("|")[:1] if d.strip()]
        pkgs[name.split(":")[0]] = (int(size or 0) * 1024, prio, ess == "yes", names)
    return pkgs


def closure(pkgs, roots):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen or p not in pkgs:
            continue
        seen.add(p)
        todo += pkgs[p][3]
    return seen


def owner_package(path):
    for candidate in (path, os.path.realpath(path)):
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if not line.startswith("diversion"):
                return line.split(":")[0].split(",")[0].strip()
    return None


def debian_base(pkgs, program, rootfs_dir):
    if rootfs_dir:
        return du(rootfs_dir), f"du of {rootfs_dir}"
    base = {p for p, (_, prio, ess, _) in pkgs.items() if prio == "required" or ess}
    own = owner_package(program)
    every = closure(pkgs, list(base) + ([own] if own else []))
    return sum(pkgs[p][0] for p in every), f"dpkg estimate: minbase + {own or '?'}"


# ---- husk


def pack(husk, args, out):
    t0 = time.perf_counter()
    r = subprocess.run([husk, "pack", "-o", str(out), *args], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return dt


def out_size(path):
    return du(path) if os.path.isdir(path) else os.path.getsize(path)


def time_runs(husk, bundle, root, n, warm=3):
    samples = []
    for i in range(warm + n):
        t0 = time.perf_counter()
        r = subprocess.run([husk, "--root", str(root), "run", "--bundle", str(bundle),
                            f"pb-{os.getpid()}-{i}"], capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip() or f"exit {r.returncode}")
        if i >= warm:
            samples.append(dt)
    return samples


def set_config(bundle, args, readonly):
    path = Path(bundle) / "config.json"
    config = json.loads(path.read_text())
    config["process"]["args"] = args
    config["root"]["readonly"] = readonly
    path.write_text(json.dumps(config))


def bench_program(husk, name, program, owner, run_args, work, n, pkgs, debian_dir, results):
    log(f"== {name}")
    row = {"program": program, "formats": {}, "starts": {}}
    base, how = debian_base(pkgs, owner, debian_dir)
    row["debian_base"] = {"bytes": base, "how": how}
    print(f"\n{name}: {program}")
    print(f"  {'Debian base rootfs':<24} {human(base):>10}   ({how})")
    for label, flags, suffix in FORMATS:
        times, size = [], 0
        for i in range(3):
            out = work / f"{name}-{i}{suffix or '-bundle'}"
            try:
                times.append(pack(husk, flags + ["--bare", program], out))
            except RuntimeError as e:
                print(f"  {label:<24} n/a ({e})")
                break
            size = out_size(out)
        if times:
            t = statistics.median(times)
            row["formats"][label] = {"bytes": size, "pack_s": t}
            print(f"  {label:<24} {human(size):>10}   {size / base * 100:5.1f}% of base   "
                  f"pack {t * 1000:7.1f} ms")
    root = work / "state"
    for label, flags, readonly in STARTS:
        bundle = work / f"{name}-start-{label.replace(' ', '_').replace('+', '')}"
        try:
            pack(husk, flags + ["--bare", program], bundle)
            set_config(bundle, run_args, readonly)
            s = time_runs(husk, bundle, root, n)
        except RuntimeError as e:
            print(f"  start from {label:<22} n/a ({e})")
            continue
        med = statistics.median(s)
        row["starts"][label] = {"median_s": med, "samples": s}
        first = next(iter(row["starts"].values()))["median_s"]
        print(f"  start from {label:<22} median {med * 1000:6.2f} ms   p90 "
              f"{sorted(s)[int(len(s) * 0.9) - 1] * 1000:6.2f} ms   x{med / first:.2f}")
    results[name] = row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="timed `husk run` per rootfs kind (30)")
    ap.add_argument("--husk", default=os.environ.get("HUSK", str(HERE.parent / "build/husk")))
    ap.add_argument("--debian-rootfs", help="a debootstrapped rootfs to measure with du")
    ap.add_argument("--json", help="also write the numbers here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("pack_bench.py: run as root (it starts containers)")
    if not os.access(a.husk, os.X_OK):
        sys.exit(f"pack_bench.py: no husk at {a.husk} (build it, or --husk PATH)")
    work = Path(tempfile.mkdtemp(prefix="husk-pack-bench-", dir="/tmp"))
    os.chmod(work, 0o755)
    results = {}
    try:
        pkgs = dpkg_installed()
        py, sh = work / "app.py", work / "job.sh"
        py.write_text(PY_APP)
        sh.write_text(SH_APP)
        py.chmod(0o755)
        sh.chmod(0o755)
        # (name, program, the file whose Debian package it needs, args when run)
        programs = [("ls", "/bin/ls", "/bin/ls", ["/bin/ls", "/"]),
                    ("python", str(py), "/usr/bin/python3", [str(py), "x"]),
                    ("shell", str(sh), "/bin/sh", [str(sh)])]
        for name, program, owner, run_args in programs:
            bench_program(a.husk, name, program, owner, run_args, work, a.n, pkgs,
                          a.debian_rootfs, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
