#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Start-up benchmark: husk, crun and runc each `run` /bin/true from one bundle, interleaved.

Run as root: /usr/bin/python3 bench/start_bench.py [--scenario all] [-n N] [--husk PATH]
Scenarios: plain (no policy), limits (memory/cpu/pids resources), seccomp (the profile of
`husk spec`), landlock (husk only), bridge (a bridge network and a published port: husk against
`podman run --network bridge -p` with crun and runc, from an image `podman import`ed from the
same rootfs), parallel (the plain bundle started by two workers at once: starts per second).
The bridge scenario runs every runtime in a network namespace of the benchmark's own: the
host's interfaces, rules and sysctls are never touched. Each is timed on its own, rows
interleaved, and printed as its own table. See bench/README.md for what each row means. Timing never makes this script
fail: a runtime that cannot run is reported as "n/a (reason)" and the others carry on.
"""

import argparse
import ctypes
import fcntl
import gc
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_PARENT = "husk-bench"  # every container cgroup is /husk-bench/<id>
TRICK_SOURCE = "husk-bench-cgv1"  # mount source naming the v1 hierarchies this script mounts
NAMESPACES = ["pid", "mount", "ipc", "uts", "network"]
TRUE_ARGS = ["/bin/true"]
# Untimed sanity probe: proves a runtime really ran the bundle's process and passed its exit
# status on, and shows in how many hierarchies it placed the process in the configured cgroup.
# It also prints /proc/self/status (Seccomp: 2 means a filter is on) and tries to create a file
# in /dev (a writable tmpfs): landlock with write access only beneath /tmp must refuse that.
PROBE_ARGS = ["/bin/sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/self/status; echo --; "
              "if echo x > /dev/.hb-probe; then echo write-allowed; else echo write-refused; fi; "
              "exit 42"]
PROBE_STATUS = 42

SCENARIOS = ("plain", "limits", "seccomp", "landlock", "bridge", "parallel")
# What issue 13 asks of husk: `run` of /bin/true at most 0.40x crun's and 2x the floor's median;
# two parallel workers at least 2.5x crun's starts per second. Printed, never enforced.
TARGET_VS_CRUN, TARGET_VS_FLOOR, TARGET_PARALLEL = 0.40, 2.0, 2.5
WORKERS = 2  # the parallel scenario's workers
PUBLISH = "18080:80"  # the published port of the bridge scenario
PODMAN_IMAGE = "localhost/husk-bench-busybox:latest"
NETWORK_STORE = ".network"  # husk's lease store in its --root: the pool's leases live there
# linux.resources of the limits scenario: memory 256 MiB, cpu 50 ms per 100 ms, 100 pids
LIMITS = {"memory": {"limit": 256 << 20}, "cpu": {"quota": 50000, "period": 100000},
          "pids": {"limit": 100}}
LANDLOCK = {"run.husk.landlock.read": "/", "run.husk.landlock.write": "/tmp"}
SECCOMP_CACHE = ".seccomp-cache"  # husk's compiled filters, in its --root
SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

# Exit status: 0 measured (whatever the runtimes did), 1 could not set up, 3 left something
# behind, 130 interrupted (after cleaning up).
EXIT_OK, EXIT_SETUP, EXIT_LEFTOVERS, EXIT_INTERRUPTED = 0, 1, 3, 130


def log(msg):
    try:
        print(msg, file=sys.stderr, flush=True)
    except OSError:
        pass


def first_line(text):
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ---------------------------------------------------------------------------------------------
# bundle


def runc_default_process(args):
    """The process section of `runc spec` (runc 1.1.5) with our args and no terminal."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": list(args),
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def make_config(cgroups_path, args, variant="plain", seccomp=None, netns=None):
    """The bundle's config. variant "plain" has no linux.resources, seccomp, maskedPaths or
    readonlyPaths: its rows compare the cost of namespaces, rootfs, mounts and cgroup placement.
    The other variants add exactly one policy feature each."""
    cfg = {
        "ociVersion": "1.0.2",
        "process": runc_default_process(args),
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "husk-bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in NAMESPACES],
            "cgroupsPath": cgroups_path,
        },
    }
    if variant == "limits":
        cfg["linux"]["resources"] = LIMITS
    elif variant == "seccomp":
        cfg["linux"]["seccomp"] = seccomp
    elif variant == "landlock":
        cfg["annotations"] = dict(LANDLOCK)
    elif variant == "prepared":
        cfg["linux"]["namespaces"] = [{"type": t} for t in NAMESPACES if t != "network"] + [
            {"type": "network", "path": netns}]
    return cfg


def write_config(bundle, cfg):
    tmp = os.path.join(bundle, ".config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=1)
    os.rename(tmp, os.path.join(bundle, "config.json"))


def husk_seccomp_profile(husk, tmp):
    """linux.seccomp of the config `husk spec` writes: (profile, None) or (None, reason)."""
    d = os.path.join(tmp, "husk-spec")
    os.makedirs(d)
    try:
        r = subprocess.run([husk, "spec", "--bundle", d], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            return None, f"`husk spec` failed: {first_line(r.stderr) or r.returncode}"
        with open(os.path.join(d, "config.json")) as f:
            prof = json.load(f).get("linux", {}).get("seccomp")
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return None, f"`husk spec` failed: {e}"
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if not prof:
        return None, "`husk spec` wrote no linux.seccomp"
    return prof, None


def build_rootfs(bundle, busybox):
    rootfs = os.path.join(bundle, "rootfs")
    for d in ("bin", "proc", "dev", "tmp"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    for applet in ("true", "sh", "cat"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    return rootfs


# ---------------------------------------------------------------------------------------------
# cgroups


def mountinfo():
    """[(mount point, fstype, source)] of this mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, source = right.split()[:2]
            out.append((left.split()[4], fstype, source))
    return out


def cgroup_mounts():
    return [m for m, t, _ in mountinfo()
            if t in ("cgroup", "cgroup2") and m.startswith(CGROUP_ROOT + "/")]


def proc_cgroups():
    """{controller: (hierarchy id, num_cgroups)}; hierarchy 0 means cgroup2 (or unused)."""
    res = {}
    with open("/proc/cgroups") as f:
        for line in f:
            if not line.startswith("#"):
                name, hier, num, _enabled = line.split()
                res[name] = (int(hier), int(num))
    return res


def v2_controllers():
    try:
        with open(os.path.join(CGROUP_ROOT, "unified", "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []


def cgroup_mode():
    """"unified", "hybrid" or "legacy", told apart the way crun and runc do."""
    mounts = mountinfo()
    if any(m == CGROUP_ROOT and t == "cgroup2" for m, t, _ in mounts):
        return "unified"
    if any(m == CGROUP_ROOT + "/unified" and t == "cgroup2" for m, t, _ in mounts):
        return "hybrid"
    return "legacy"


def enter_private_mount_ns():
    """Move this process, and so every runtime it starts, into a mount namespace of its own.

    The v1 hierarchy of the cgroup trick is then mounted only here. Otherwise any container
    that another process creates meanwhile copies the mount; the copy pins the hierarchy past
    our umount and keeps the controller off cgroup2 until that container exits.
    """
    clone_newns, ms_rec, ms_private = 0x00020000, 0x4000, 0x40000
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(clone_newns) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    # private before anything is mounted, so nothing propagates back to the shared namespace
    if libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate / (in our namespace)")


def enter_private_net_ns():
    """The bridge scenario's host: a network namespace of our own, loopback up and forwarding
    on in there only. Bridges, veths, NAT rules and podman's iptables all live and die in it."""
    clone_newnet = 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(clone_newnet) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")


def mount_v1(controller, mnt):
    return subprocess.run(["mount", "-t", "cgroup", "-o", controller, TRICK_SOURCE, mnt],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)


def apply_cgroup_trick():
    """Bind each controller that hybrid mode gives cgroup2 to a v1 hierarchy of our own.

    crun 1.8.1 refuses hybrid mode only when /sys/fs/cgroup/unified/cgroup.controllers is
    non-empty ("drop all controllers from cgroupv2"). A controller that no cgroup2 group enables
    in cgroup.subtree_control may be bound to a new v1 hierarchy, which empties that file.
    Returns ([(controller, mount point)], notes).
    """
    moved, notes = [], []
    pc = proc_cgroups()
    for c in v2_controllers():
        mnt = os.path.join(CGROUP_ROOT, c)
        if c not in pc or pc[c][0] != 0:
            notes.append(f"{c} already on v1 hierarchy {pc.get(c, ('?',))[0]}; left alone")
        elif os.path.lexists(mnt):
            notes.append(f"{mnt} already exists; {c} left alone")
        else:
            os.mkdir(mnt)
            r = mount_v1(c, mnt)
            if r.returncode == 0:
                moved.append((c, mnt))
            else:
                os.rmdir(mnt)
                notes.append(f"mount {c}: {r.stderr.strip()}")
    left = v2_controllers()
    if left:
        notes.append("cgroup2 still has " + " ".join(left))
    return moved, notes


def undo_cgroup_trick(moved):
    """Give the controllers back to cgroup2. Returns problems.

    A v1 hierarchy is destroyed at umount only if it has no child cgroup at that moment, dying
    ones included; otherwise it lives on, mounted nowhere, and its controller never returns to
    cgroup2. So: wait until /proc/cgroups counts only the root, umount, check the controller is
    back, and if not mount the same hierarchy again (same options reattach it) and retry.
    """
    problems = []
    for c, mnt in reversed(moved):
        back = False
        for _attempt in range(3):
            if not any(m == mnt and s == TRICK_SOURCE for m, _, s in mountinfo()):
                if not os.path.isdir(mnt) or mount_v1(c, mnt).returncode != 0:
                    break
            if not wait_for(lambda: proc_cgroups()[c][1] <= 1, 10):
                kids = [d for d in os.listdir(mnt) if os.path.isdir(os.path.join(mnt, d))]
                problems.append(f"{c}: v1 hierarchy still has child cgroups {kids}")
            r = subprocess.run(["umount", mnt], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"umount {mnt}: {r.stderr.strip()}")
                break
            if wait_for(lambda: c in v2_controllers(), 2):
                back = True
                break
        if os.path.isdir(mnt) and not os.path.ismount(mnt):
            try:
                os.rmdir(mnt)
            except OSError as e:
                # Only a process outside our mount namespace can have put something there: it
                # saw the empty directory on /sys/fs/cgroup's tmpfs (a runtime taking it for a
                # hierarchy, say). Not ours to delete; say what it is.
                try:
                    held = sorted(os.listdir(mnt))
                except OSError:
                    held = []
                problems.append(f"rmdir {mnt}: {e.strerror}; it holds {held}, made by another "
                                f"process while the benchmark ran (plain tmpfs entries, not "
                                f"cgroups); check and remove by hand")
        if not back:
            problems.append(f"{c} did not return to cgroup2 (/proc/cgroups: {proc_cgroups()[c]});"
                            f" see bench/README.md, 'If something is left behind'")
    return problems


def remove_cgroup_tree(path, kill):
    """rmdir a cgroup and its children, deepest first. With kill, first SIGKILL the pids in it:
    only ever used on cgroups named with this run's prefix, whose processes are ours."""
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        for _ in range(100 if kill else 1):
            if kill:
                try:
                    with open(os.path.join(dirpath, "cgroup.procs")) as f:
                        for pid in f.read().split():
                            try:
                                os.kill(int(pid), signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                except OSError:
                    pass
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# rows, runs and cleanup


class Row:
    def __init__(self, name, label, kind, exe, family=None, variant="plain", role=None,
                 fresh_seccomp=False):
        self.name = name  # short name, unique in the invocation, part of container ids
        self.label = label
        self.kind = kind  # "oci", "floor" or "harness"
        self.exe = exe
        self.family = family or name  # what --only selects: husk, crun, runc, floor, harness
        self.variant = variant  # the bundle it runs: plain, limits, seccomp or landlock
        self.role = role or self.family  # husk, husk-ref (husk on the plain bundle), crun, ...
        self.fresh_seccomp = fresh_seccomp  # delete <state>/.seccomp-cache before each run
        self.runtime = None  # kind "podman": the OCI runtime podman runs
        self.scenario = None  # name of the scenario the row belongs to
        self.state = None  # private --root of an OCI runtime
        self.samples = []  # ns
        self.failures = []  # (timed run index, message)
        self.leaks = 0  # runs after which a state entry or cgroup of the container remained
        self.na = None  # why the row has no numbers
        self.version = ""
        self.probe_note = ""
        self.rates = []  # parallel scenario: starts per second of each round


class Scenario:
    def __init__(self, name, title, bundle_note, rows):
        self.name = name
        self.title = title
        self.bundle_note = bundle_note
        self.rows = rows
        self.na = None  # why the whole scenario was not measured
        self.ran = False
        self.load = None  # (before, after) 1-minute load average
        self.elapsed = None  # s


def make_scenarios(args):
    """The scenarios asked for, each with its rows (filtered by --only)."""
    def oci(family, exe, scen, variant, label, role=None, fresh=False, suffix=""):
        return Row(f"{scen[:3]}-{family}{suffix}", label, "oci", exe, family, variant, role,
                   fresh)

    def tail(scen):
        return [Row(f"{scen[:3]}-floor", "floor: unshare+chroot", "floor",
                    shutil.which("unshare"), "floor"),
                Row(f"{scen[:3]}-harness", "harness: host /bin/true", "harness", "/bin/true",
                    "harness")]

    def ref(scen):
        return oci("husk", args.husk, scen, "plain", "husk (plain bundle)", "husk-ref", False,
                   "ref")

    out = []
    for scen in (SCENARIOS if args.scenario == "all" else (args.scenario,)):
        if scen == "plain":
            rows = [oci("husk", args.husk, scen, "plain", "husk"),
                    oci("crun", args.crun, scen, "plain", "crun"),
                    oci("runc", args.runc, scen, "plain", "runc")] + tail(scen)
            title = "plain: the bundle alone"
            note = "no seccomp, no resources"
        elif scen == "limits":
            rows = [oci("husk", args.husk, scen, "limits", "husk (limits)"),
                    oci("crun", args.crun, scen, "limits", "crun (limits)"),
                    oci("runc", args.runc, scen, "limits", "runc (limits)"),
                    ref(scen)] + tail(scen)
            title = "limits: cgroup setup of memory, cpu and pids limits"
            note = ("+ linux.resources: memory.limit 256 MiB, cpu quota 50000 / period 100000, "
                    "pids.limit 100 (every (limits) row)")
        elif scen == "seccomp":
            rows = [oci("husk", args.husk, scen, "seccomp", "husk (cached filter)", "husk",
                        False, "c"),
                    oci("husk", args.husk, scen, "seccomp", "husk (compiling)", "husk",
                        True, "x"),
                    oci("crun", args.crun, scen, "seccomp", "crun (seccomp)"),
                    oci("runc", args.runc, scen, "seccomp", "runc (seccomp)"),
                    ref(scen)] + tail(scen)
            title = "seccomp: the default profile of `husk spec`"
            note = ("+ linux.seccomp of `husk spec` (every row but husk (plain bundle)); "
                    f"husk (compiling) starts each run without <root>/{SECCOMP_CACHE}")
        elif scen == "bridge":
            rows = [oci("husk", args.husk, scen, "bridge", "husk (bridge -p)"),
                    oci("husk", args.husk, scen, "prepared", "husk (prepared netns)", "husk",
                        False, "pool"),
                    ref(scen)]
            for fam, exe in (("crun", args.crun), ("runc", args.runc)):
                r = Row(f"bri-podman-{fam}", f"podman+{fam} (bridge -p)", "podman", args.podman,
                        fam, "bridge", fam)
                r.runtime = exe
                rows.append(r)
            rows += tail(scen)
            title = "bridge: a bridge network with a published port"
            note = (f"+ husk (bridge -p): --network bridge -p {PUBLISH}; husk (prepared netns): "
                    f"the config joins a namespace net-bench --pool prepared (veth, address) "
                    f"beforehand, untimed; podman: run --rm --network bridge -p {PUBLISH} of the "
                    f"same rootfs as an image; husk (plain bundle): a new netns, loopback only")
        elif scen == "parallel":
            rows = [oci("husk", args.husk, scen, "plain", "husk"),
                    oci("crun", args.crun, scen, "plain", "crun"),
                    oci("runc", args.runc, scen, "plain", "runc")] + tail(scen)[:1]
            title = f"parallel: {WORKERS} workers starting containers at once"
            note = (f"the plain bundle; each round, every row runs {args.batch} starts in each of "
                    f"{WORKERS} workers, back to back; starts per second = "
                    f"{WORKERS * args.batch} / the round's wall time")
        else:
            rows = [oci("husk", args.husk, scen, "landlock", "husk (landlock)"),
                    ref(scen),
                    oci("crun", args.crun, scen, "plain", "crun (plain bundle)"),
                    oci("runc", args.runc, scen, "plain", "runc (plain bundle)")] + tail(scen)
            title = "landlock: husk only; crun and runc on the plain bundle for reference"
            note = ("+ annotations run.husk.landlock.read=/ and run.husk.landlock.write=/tmp "
                    "(husk (landlock) only)")
        if args.only:
            rows = [r for r in rows if r.family in args.only.split(",")]
        for r in rows:
            r.scenario = scen
        out.append(Scenario(scen, title, note, rows))
    return out


def force_delete(exe, state, cid):
    """`RUNTIME --root STATE delete -f ID`, untimed; a hung runtime is killed after 30 s."""
    try:
        subprocess.run([exe, "--root", state, "delete", "-f", cid], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    except (subprocess.TimeoutExpired, OSError):
        pass


class Cleaner:
    """Everything this run may leave behind, removed idempotently. Runs in the benchmark at exit
    and, if the benchmark dies without doing it (SIGKILL), in the guardian process."""

    def __init__(self, prefix, tmp, rows):
        self.prefix = prefix
        self.tmp = tmp
        self.rows = rows
        self.moved = []  # [(controller, mount point)] of the cgroup trick
        self.pool = None  # net-bench --pool of the bridge scenario
        self.podman_cleanup = []  # commands that remove the podman image and storage

    def our_cgroups(self):
        for m in cgroup_mounts():
            parent = os.path.join(m, CGROUP_PARENT)
            if os.path.isdir(parent):
                for e in os.listdir(parent):
                    if e.startswith(self.prefix) and os.path.isdir(os.path.join(parent, e)):
                        yield os.path.join(parent, e)

    def run(self):
        problems = []
        for row in self.rows:
            if row.kind == "oci" and row.state and os.path.isdir(row.state):
                for e in os.listdir(row.state):
                    if e not in (SECCOMP_CACHE, NETWORK_STORE):
                        force_delete(row.exe, row.state, e)
        if self.pool:
            self.pool.stdin.close()  # the pool releases its namespaces and leases
            try:
                self.pool.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.pool.kill()
                problems.append("net-bench --pool did not exit; killed")
            self.pool = None
        for argv in self.podman_cleanup:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)
        for p in list(self.our_cgroups()):
            remove_cgroup_tree(p, kill=True)
        for m in cgroup_mounts():
            parent = os.path.join(m, CGROUP_PARENT)
            try:
                os.rmdir(parent)
            except FileNotFoundError:
                pass
            except OSError:
                # Kept for cgroups of other runs is no leftover of ours; kept for one of ours is.
                rest = [e for e in os.listdir(parent) if os.path.isdir(os.path.join(parent, e))]
                ours = [e for e in rest if e.startswith(self.prefix)]
                if ours or not rest:
                    problems.append(f"{parent} kept: holds {ours}")
        problems += undo_cgroup_trick(self.moved)
        self.moved = []
        shutil.rmtree(self.tmp, ignore_errors=True)
        if os.path.exists(self.tmp):
            problems.append(f"temp dir {self.tmp} not removed")
        return problems


def start_guardian(cleaner):
    """Fork a process that cleans up if the benchmark dies without saying it did (SIGKILL, OOM).

    It shares our private mount namespace, so it can still reach the v1 mount after we die.
    Returns the write end of its pipe: write b"d" once cleanup is done; EOF alone means "clean".
    """
    r, w = os.pipe()  # non-inheritable: no runtime child keeps the pipe open
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(w)
            os.setsid()  # out of the terminal's process group: a Ctrl-C is ours to handle
            for s in SIGNALS:
                signal.signal(s, signal.SIG_IGN)
            if os.read(r, 1) != b"d":
                problems = cleaner.run()
                log("start_bench guardian: benchmark died; cleaned up"
                    + ("; LEFT BEHIND: " + "; ".join(problems) if problems else ""))
        except BaseException:  # noqa: B902 - never let the guardian return into main()
            status = 1
        finally:
            os._exit(status)
    os.close(r)
    return pid, w


class Bench:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.bundle = os.path.join(tmp, "bundle")
        self.rootfs = None
        self.prefix = f"hb{os.getpid()}-"
        self.errf = None
        self.seccomp = None  # linux.seccomp of `husk spec`
        self.pool_paths = []  # prepared network namespaces (bridge scenario)
        self.podman = [args.podman]  # with its global flags once set up
        self.podman_na = None
        self.podman_version = ""

    def setup(self, rows):
        os.makedirs(self.bundle)
        self.rootfs = build_rootfs(self.bundle, self.args.busybox)
        self.errf = open(os.path.join(self.tmp, "stderr"), "w+b")
        for row in rows:
            if row.kind == "oci":
                row.state = os.path.join(self.tmp, "state-" + row.name)
                os.makedirs(row.state)

    def setup_bridge(self, rows, cleaner):
        """The pool of prepared namespaces (in the husk bridge row's lease store, one store per
        network namespace) and podman's image, from a tar of the same rootfs."""
        bridge = next((r for r in rows if r.variant == "bridge" and r.kind == "oci"), None)
        prepared = next((r for r in rows if r.variant == "prepared"), None)
        if prepared:
            store = bridge.state if bridge else prepared.state
            n = self.args.warmup + self.args.iterations + 4
            try:
                cleaner.pool = subprocess.Popen([self.args.net_bench, "--pool", str(n), store],
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                text=True)
                self.pool_paths = [cleaner.pool.stdout.readline().strip() for _ in range(n)]
            except OSError as e:
                prepared.na = f"net-bench --pool: {e}"
            if not all(self.pool_paths):
                prepared.na = "net-bench --pool prepared fewer namespaces than asked"
        pd = os.path.join(self.tmp, "podman")
        self.podman = [self.args.podman, "--root", f"{pd}/storage", "--runroot", f"{pd}/run",
                       "--tmpdir", f"{pd}/tmp", "--network-config-dir", f"{pd}/net",
                       "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
        if not any(r.kind == "podman" for r in rows):
            return
        if not os.access(self.args.podman, os.X_OK):
            self.podman_na = f"not found: {self.args.podman}"
            return
        tar = os.path.join(self.tmp, "rootfs.tar")
        cleaner.podman_cleanup = [[*self.podman, "rmi", "-a", "-f"],
                                  [*self.podman, "system", "reset", "-f"]]
        try:
            subprocess.run(["tar", "-C", self.rootfs, "-cf", tar, "."], check=True,
                           capture_output=True)
            r = subprocess.run([*self.podman, "import", tar, PODMAN_IMAGE],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=120)
            if r.returncode != 0:
                self.podman_na = f"podman import: {first_line(r.stderr)}"
            v = subprocess.run([self.args.podman, "--version"], capture_output=True, text=True)
            self.podman_version = v.stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            self.podman_na = f"podman import: {e}"

    def write_config(self, row, cid, args=TRUE_ARGS):
        netns = None
        if row.variant == "prepared":
            netns = self.pool_paths.pop() if self.pool_paths else "/nonexistent: pool empty"
        write_config(self.bundle, make_config(f"/{CGROUP_PARENT}/{cid}", args, row.variant,
                                              self.seccomp, netns))

    def argv(self, row, cid):
        if row.kind == "oci" and row.variant == "bridge":
            return [row.exe, "--root", row.state, "run", "--network", "bridge", "-p", PUBLISH,
                    "--bundle", self.bundle, cid]
        if row.kind == "oci":
            return [row.exe, "--root", row.state, "run", "--bundle", self.bundle, cid]
        if row.kind == "podman":
            # podman's default rlimits exceed what this host allows a root process
            return [*self.podman, "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit",
                    "nproc=4096:4096", "--cgroup-parent", f"/{CGROUP_PARENT}/{cid}",
                    "--network", "bridge", "-p", PUBLISH, "--runtime", row.runtime,
                    PODMAN_IMAGE, *TRUE_ARGS]
        if row.kind == "floor":
            return [row.exe, "--fork", "--pid", "--mount", "--uts", "--ipc", "--net",
                    "--mount-proc", "chroot", self.rootfs, "/bin/true"]
        return [row.exe]

    def run_once(self, row, cid):
        """Time one run: (ns, None) or (None, error message)."""
        if row.kind == "oci":
            self.write_config(row, cid)
            if row.fresh_seccomp:
                # untimed: the run then compiles the filter, as on a host's first start
                shutil.rmtree(os.path.join(row.state, SECCOMP_CACHE), ignore_errors=True)
        self.errf.seek(0)
        self.errf.truncate()
        argv = self.argv(row, cid)
        t0 = time.perf_counter_ns()
        try:
            rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=self.errf, timeout=self.args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = f"killed after {self.args.timeout:g} s"
        except OSError as e:
            rc = f"cannot execute: {e}"
        t1 = time.perf_counter_ns()
        if row.kind in ("oci", "podman"):
            self.reap(row, cid)
        if rc == 0:
            return t1 - t0, None
        if not isinstance(rc, int):
            return None, rc
        self.errf.seek(0)
        msg = first_line(self.errf.read().decode(errors="replace"))
        return None, f"exit {rc}" + (f": {msg}" if msg else "")

    def reap(self, row, cid):
        """Untimed: make sure the container is gone; count runs that left anything behind.
        husk's seccomp cache in the state dir is meant to stay and is no leftover."""
        left = False
        for e in os.listdir(row.state) if row.state else ():
            if e in (SECCOMP_CACHE, NETWORK_STORE):
                continue
            left = True
            force_delete(row.exe, row.state, e)
            shutil.rmtree(os.path.join(row.state, e), ignore_errors=True)
        for m in cgroup_mounts():
            d = os.path.join(m, CGROUP_PARENT, cid)
            if os.path.isdir(d):
                left = True
                remove_cgroup_tree(d, kill=True)
        row.leaks += left

    def probe(self, row):
        """Untimed runs before the benchmark; a failing /bin/true run makes the row n/a."""
        if not (row.exe and os.path.isfile(row.exe) and os.access(row.exe, os.X_OK)):
            row.na = f"not found: {row.exe}"
            return
        if row.kind == "podman":
            if not (row.runtime and os.access(row.runtime, os.X_OK)):
                row.na = f"not found: {row.runtime}"
                return
            if self.podman_na:
                row.na = self.podman_na
                return
            r = subprocess.run([row.runtime, "--version"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True)
            row.version = f"{self.podman_version}, " + (r.stdout.splitlines() or [""])[0]
        if row.kind == "oci":
            r = subprocess.run([row.exe, "--version"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True)
            row.version = (r.stdout.splitlines() or [""])[0]
            self.sanity_probe(row)
            row.leaks = 0
        _, err = self.run_once(row, f"{self.prefix}{row.name}-probe")
        row.na = err
        row.leaks = 0

    def sanity_probe(self, row):
        cid = f"{self.prefix}{row.name}-sanity"
        want = f"/{CGROUP_PARENT}/{cid}"
        self.write_config(row, cid, PROBE_ARGS)
        try:
            r = subprocess.run([row.exe, "--root", row.state, "run", "--bundle", self.bundle, cid],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=self.args.timeout)
        except (subprocess.TimeoutExpired, OSError) as e:
            row.probe_note = f"sanity probe failed: {e}"
            return
        finally:
            self.reap(row, cid)
        parts = (r.stdout.split("\n--\n") + ["", ""])[:3]
        lines = [ln.split(":", 2) for ln in parts[0].splitlines() if ln.count(":") >= 2]
        placed = sum(1 for ln in lines if ln[2] == want)
        status = "ok" if r.returncode == PROBE_STATUS else f"{r.returncode}, want {PROBE_STATUS}"
        note = f"exit status {status}; process in the configured cgroup in " \
               f"{placed}/{len(lines)} hierarchies"
        if row.scenario == "seccomp":
            mode = next((ln.split(":", 1)[1].strip() for ln in parts[1].splitlines()
                         if ln.startswith("Seccomp:")), "?")
            note += "; seccomp " + {"0": "off", "2": "filter on"}.get(mode, f"mode {mode}")
            if row.variant == "seccomp" and mode != "2":
                note += " (NOT APPLIED)"
            cache = os.path.join(row.state, SECCOMP_CACHE)
            if os.path.isdir(cache):
                note += f"; {len(os.listdir(cache))} file(s) in {SECCOMP_CACHE}"
        if row.scenario == "landlock":
            w = parts[2].strip()
            note += {"write-refused": "; file creation in /dev refused",
                     "write-allowed": "; file creation in /dev allowed"}.get(
                         w, f"; /dev test: {w!r}")
            if row.variant == "landlock" and w != "write-refused":
                note += " (landlock NOT enforced)"
        if r.returncode != PROBE_STATUS and r.stderr.strip():
            note += f"; stderr: {first_line(r.stderr)}"
        row.probe_note = note

    def measure(self, rows, what):
        live = [r for r in rows if not r.na]
        total = self.args.warmup + self.args.iterations
        rng = random.Random(self.args.seed)
        gc.disable()
        try:
            for i in range(total):
                order = list(live)
                if self.args.order == "shuffle":
                    # A run pays for its predecessor's deferred kernel teardown (netns cleanup,
                    # cgroup release, RCU); shuffling spreads that evenly over the rows.
                    rng.shuffle(order)
                for row in order:
                    if self.args.gap:
                        time.sleep(self.args.gap / 1000)
                    warm = i < self.args.warmup
                    tag = f"w{i}" if warm else str(i - self.args.warmup)
                    ns, err = self.run_once(row, f"{self.prefix}{row.name}-{tag}")
                    if warm:
                        continue
                    if err:
                        row.failures.append((i - self.args.warmup, err))
                    else:
                        row.samples.append(ns)
                if (i + 1) % 50 == 0:
                    log(f"  {what}: {i + 1}/{total} iterations")
        finally:
            gc.enable()

    def parallel_bundles(self):
        """One bundle per worker (its own config.json), all on the one rootfs."""
        out = []
        for w in range(WORKERS):
            b = os.path.join(self.tmp, f"bundle-w{w}")
            os.makedirs(b, exist_ok=True)
            out.append(b)
        return out

    def parallel_batch(self, row, bundles, round_tag):
        """One round of a row: WORKERS threads, each `run`ning args.batch containers in turn.
        (wall ns, [errors]). Each worker has a cgroup of its own, reused run after run."""
        errors = []

        def worker(w):
            cg = f"{self.prefix}{row.name}-{round_tag}-w{w}"
            if row.kind == "oci":
                cfg = make_config(f"/{CGROUP_PARENT}/{cg}", TRUE_ARGS)
                cfg["root"]["path"] = self.rootfs
                write_config(bundles[w], cfg)
            for k in range(self.args.batch):
                if row.kind == "oci":
                    argv = [row.exe, "--root", row.state, "run", "--bundle", bundles[w],
                            f"{cg}-{k}"]
                else:
                    argv = self.argv(row, None)
                try:
                    rc = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        timeout=self.args.timeout).returncode
                except (subprocess.TimeoutExpired, OSError) as e:
                    rc = str(e)
                if rc != 0:
                    errors.append(f"worker {w} run {k}: exit {rc}")

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
        t0 = time.perf_counter_ns()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter_ns() - t0
        if row.kind == "oci":  # untimed: nothing of the round may stay
            for w in range(WORKERS):
                self.reap(row, f"{self.prefix}{row.name}-{round_tag}-w{w}")
        return elapsed, errors

    def measure_parallel(self, rows, what):
        live = [r for r in rows if not r.na]
        bundles = self.parallel_bundles()
        rounds = max(1, self.args.iterations // (WORKERS * self.args.batch))
        warm = 1 if self.args.warmup else 0
        rng = random.Random(self.args.seed)
        for i in range(warm + rounds):
            order = list(live)
            if self.args.order == "shuffle":
                rng.shuffle(order)
            for row in order:
                tag = f"w{i}" if i < warm else f"p{i - warm}"
                ns, errors = self.parallel_batch(row, bundles, tag)
                if i < warm:
                    continue
                if errors:
                    row.failures += [(i - warm, e) for e in errors]
                else:
                    row.rates.append(WORKERS * self.args.batch / (ns / 1e9))
            log(f"  {what}: round {i + 1}/{warm + rounds}")


# ---------------------------------------------------------------------------------------------
# report


def stats_ms(samples):
    s = sorted(samples)
    return {
        "median": statistics.median(s) / 1e6,
        "p90": s[max(0, math.ceil(0.9 * len(s)) - 1)] / 1e6,  # nearest rank
        "mean": statistics.fmean(s) / 1e6,
        "min": s[0] / 1e6,
    }


def row_stats(rows):
    return {r.name: stats_ms(r.samples) for r in rows if not r.na and r.samples}


def ratio_note(ratio, a="husk"):
    return f"below 1: {a} is faster" if ratio < 1 else f"above 1: {a} is slower"


def report_header(args, cgroup_note, scenarios):
    print(f"\nstart-up of /bin/true: {args.iterations} timed runs per row after {args.warmup} "
          f"warm-up; scenarios one after the other, rows interleaved within a scenario "
          f"({args.order} order each iteration, {args.gap:g} ms gap)")
    print("times in ms: wall clock around the whole `run` command, container exit and reaping "
          "included")
    print(f"bundle: busybox rootfs, readonly root, namespaces {','.join(NAMESPACES)}, "
          f"/proc + /dev tmpfs, runc's default caps; scenarios: "
          f"{', '.join(sc.name for sc in scenarios)}")
    print(f"cgroups: {cgroup_note}")
    print(f"load average before/after: {args.load_before:.2f} / {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cpus")


def report_scenario(sc, plain_st):
    """Print one scenario's table; returns {row name: stats}."""
    print(f"\n=== {sc.title} ===")
    if sc.na:
        print(f"n/a ({sc.na})")
        return {}
    if not sc.ran:
        print("not run (interrupted before it started)")
        return {}
    rows = sc.rows
    if not rows:
        print("no rows (see --only)")
        return {}
    st = row_stats(rows)
    print(f"bundle: {sc.bundle_note}")
    if sc.load:
        print(f"{sc.elapsed:.0f} s; load average {sc.load[0]:.2f} -> {sc.load[1]:.2f}")
    print()
    floor = next((st[r.name]["median"] for r in rows if r.kind == "floor" and r.name in st), None)
    w = max(len(r.label) for r in rows)
    hdr = f"{'row':<{w}}  {'median':>7} {'p90':>7} {'mean':>7} {'min':>7}  {'x floor':>7}  ok/fail"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if r.na or not r.samples:
            print(f"{r.label:<{w}}  n/a ({r.na or 'every timed run failed'})")
            continue
        s = st[r.name]
        xf = f"{s['median'] / floor:7.2f}" if floor and r.kind == "oci" else " " * 7
        leaks = f"  ({r.leaks} runs left state behind)" if r.leaks else ""
        print(f"{r.label:<{w}}  {s['median']:7.2f} {s['p90']:7.2f} {s['mean']:7.2f} "
              f"{s['min']:7.2f}  {xf}  {len(r.samples)}/{len(r.failures)}{leaks}")
    print()

    def med(r):
        return st[r.name]["median"] if r and r.name in st else None

    def no_numbers(*rs):
        if None in rs:
            return "a row left out by --only"
        return " and ".join(r.label for r in rs if med(r) is None) + " has no numbers"

    husks = [r for r in rows if r.role == "husk"]
    ref = next((r for r in rows if r.role == "husk-ref"), None)
    if sc.name == "plain":
        report_targets(rows, med)
    for h in husks or [None]:
        for fam in ("crun", "runc"):
            o = next((r for r in rows if r.role == fam), None)
            hl, ol = (h.label if h else "husk"), (o.label if o else fam)
            if med(h) is not None and med(o) is not None:
                ratio = med(h) / med(o)
                print(f"{hl}/{ol} at the median: {ratio:.2f}  ({ratio_note(ratio)})")
            else:
                print(f"{hl}/{ol} at the median: n/a ({no_numbers(h, o)})")
    if sc.name != "plain":
        print()
        for h in husks or [None]:
            hl = h.label if h else "husk"
            if med(h) is not None and med(ref) is not None:
                print(f"added cost: {hl} - husk (plain bundle) = {med(h) - med(ref):+.2f} ms "
                      f"at the median, ratio {med(h) / med(ref):.2f} (interleaved)")
            else:
                print(f"added cost: {hl} - husk (plain bundle) = n/a ({no_numbers(h, ref)})")
        if sc.name == "seccomp" and len(husks) == 2 and None not in (med(husks[0]),
                                                                       med(husks[1])):
            print(f"compiling the filter: {husks[1].label} - {husks[0].label} = "
                  f"{med(husks[1]) - med(husks[0]):+.2f} ms at the median")
        # crun and runc have no plain row in this scenario; compare with the plain table,
        # measured in another time window, so drift is not cancelled out.
        for r in rows:
            p = plain_st.get(r.family)
            if r.kind == "oci" and r.role != "husk-ref" and r.variant != "plain" \
                    and med(r) is not None and p is not None and r.family != "husk":
                print(f"added cost: {r.label} - {r.family} of the plain table = "
                      f"{med(r) - p:+.2f} ms (not interleaved: other time window)")
    print()
    for r in rows:
        if r.kind == "oci" and r.probe_note:
            print(f"{r.label} ({r.version or r.exe}) probe: {r.probe_note}")
    for r in rows:
        if r.failures:
            print(f"\n{r.label}: {len(r.failures)} timed run(s) failed; the first:")
            for i, msg in r.failures[:5]:
                print(f"  run {i}: {msg}")
    return st


def report_targets(rows, med):
    """The plain scenario's figures against issue 13's targets (printed, never enforced)."""
    h = next((r for r in rows if r.role == "husk"), None)
    for fam, target, word in (("crun", TARGET_VS_CRUN, "crun"),
                              ("floor", TARGET_VS_FLOOR, "the floor")):
        o = next((r for r in rows if r.family == fam), None)
        if med(h) is None or med(o) is None:
            continue
        ratio = med(h) / med(o)
        verdict = "met" if ratio <= target else "NOT met"
        print(f"target: husk at most {target:.2f}x {word}: {ratio:.2f}, {verdict}")


def report_parallel(sc):
    """The parallel scenario: starts per second of each row, over its rounds."""
    print(f"\n=== {sc.title} ===")
    if sc.na or not sc.ran or not sc.rows:
        print(f"n/a ({sc.na})" if sc.na else "not run" if not sc.ran else "no rows (see --only)")
        return {}
    print(f"bundle: {sc.bundle_note}")
    if sc.load:
        print(f"{sc.elapsed:.0f} s; load average {sc.load[0]:.2f} -> {sc.load[1]:.2f}")
    print()
    st = {r.name: {"median": statistics.median(r.rates), "min": min(r.rates),
                   "max": max(r.rates), "rounds": len(r.rates)} for r in sc.rows if r.rates}
    w = max(len(r.label) for r in sc.rows)
    hdr = f"{'row':<{w}}  {'starts/s':>8} {'min':>7} {'max':>7}  rounds ok/fail"
    print(hdr)
    print("-" * len(hdr))
    for r in sc.rows:
        if r.name not in st:
            print(f"{r.label:<{w}}  n/a ({r.na or 'every round failed'})")
            continue
        s = st[r.name]
        leaks = f"  ({r.leaks} runs left state behind)" if r.leaks else ""
        print(f"{r.label:<{w}}  {s['median']:8.1f} {s['min']:7.1f} {s['max']:7.1f}  "
              f"{s['rounds']}/{len({i for i, _ in r.failures})}{leaks}")
    print()
    h = next((r for r in sc.rows if r.role == "husk"), None)
    for o in sc.rows:
        if o is h or h is None or h.name not in st or o.name not in st:
            continue
        ratio = st[h.name]["median"] / st[o.name]["median"]
        line = f"husk/{o.label} starts per second: {ratio:.2f}"
        if o.family == "crun":
            line += (f"  (target at least {TARGET_PARALLEL:.1f}: "
                     f"{'met' if ratio >= TARGET_PARALLEL else 'NOT met'})")
        print(line)
    for r in sc.rows:
        for i, msg in r.failures[:3]:
            print(f"{r.label}: round {i}: {msg}")
    return st


def report_summary(scenarios, all_st):
    """One line per husk row of each scenario: the numbers a reader compares."""
    print("\n=== summary: medians in ms ===")
    hdr = (f"{'scenario':<24} {'husk':>7} {'+ vs plain':>10} {'crun':>7} {'runc':>7} "
           f"{'husk/crun':>9} {'husk/runc':>9}")
    print(hdr)
    print("-" * len(hdr))

    def fmt(v, spec):
        if v is None:
            return "n/a".rjust(int(spec.lstrip("+").split(".")[0]))
        return format(v, spec)

    for sc in scenarios:
        st = all_st.get(sc.name, {})
        if sc.name == "parallel":
            continue

        def med(role):
            return [(r, st[r.name]["median"] if r.name in st else None)
                    for r in sc.rows if r.role == role]
        crun = (med("crun") or [(None, None)])[0][1]
        runc = (med("runc") or [(None, None)])[0][1]
        ref = (med("husk-ref") or [(None, None)])[0][1]
        husks = med("husk") or [(None, None)]
        for h, m in husks:
            name = f"{sc.name} {h.label[len('husk '):]}" if len(husks) > 1 else sc.name
            plus = m - ref if m is not None and ref is not None else None
            plus = fmt(plus, "+10.2f") if sc.name != "plain" else "-".rjust(10)
            print(f"{name:<24} {fmt(m, '7.2f')} {plus} {fmt(crun, '7.2f')} {fmt(runc, '7.2f')} "
                  f"{fmt(m / crun if m and crun else None, '9.2f')} "
                  f"{fmt(m / runc if m and runc else None, '9.2f')}")
    print("(+ vs plain: minus the interleaved husk (plain bundle) row of the same scenario; "
          "landlock: crun and runc run the plain bundle)")


def write_json(path, args, cgroup_note, scenarios, all_st):
    out = {"iterations": args.iterations, "warmup": args.warmup, "order": args.order,
           "cgroups": cgroup_note, "scenarios": {}}
    for sc in scenarios:
        st = all_st.get(sc.name, {})
        out["scenarios"][sc.name] = {
            "title": sc.title, "bundle": sc.bundle_note, "na": sc.na, "ran": sc.ran,
            "elapsed_s": sc.elapsed, "load": sc.load,
            "rows": {r.name: {"label": r.label, "role": r.role, "variant": r.variant,
                              "exe": r.exe, "version": r.version, "na": r.na,
                              "probe": r.probe_note, "stats_ms": st.get(r.name),
                              "samples_ns": r.samples, "failures": r.failures,
                              "starts_per_s": r.rates,
                              "leaks": r.leaks}
                     for r in sc.rows}}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


def report(scenarios, args, cgroup_note):
    report_header(args, cgroup_note, scenarios)
    all_st = {}
    plain_st = {}
    for sc in scenarios:
        if sc.name == "parallel":
            all_st[sc.name] = report_parallel(sc)
            continue
        all_st[sc.name] = report_scenario(sc, plain_st)
        if sc.name == "plain":
            plain_st = {r.family: all_st["plain"][r.name]["median"]
                        for r in sc.rows if r.name in all_st["plain"]}
    if len(scenarios) > 1:
        report_summary(scenarios, all_st)
    if args.json:
        write_json(args.json, args, cgroup_note, scenarios, all_st)
        print(f"\nraw samples: {args.json}")


# ---------------------------------------------------------------------------------------------
# main


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=SCENARIOS + ("all",), default="all",
                   help="what the bundle adds: plain (nothing), limits, seccomp, landlock, or "
                        "all of them one after the other (all)")
    p.add_argument("-n", "--iterations", type=int,
                   help="timed runs per row (150 with --scenario all, else 200)")
    p.add_argument("-w", "--warmup", type=int, default=10, help="untimed runs per row first (10)")
    p.add_argument("--husk", default=os.environ.get("HUSK") or
                   os.path.normpath(os.path.join(here, "..", "build", "husk")),
                   help="husk binary (default: $HUSK, else build/husk next to bench/)")
    p.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
    p.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    p.add_argument("--busybox", default="/bin/busybox", help="static busybox for the rootfs")
    p.add_argument("--podman", default=shutil.which("podman") or "/usr/bin/podman")
    p.add_argument("--net-bench", default=os.path.normpath(
        os.path.join(here, "..", "build", "bench", "net-bench")),
        help="the pool of prepared namespaces (bridge scenario)")
    p.add_argument("--only", help="comma-separated rows: husk,crun,runc,floor,harness")
    p.add_argument("--order", choices=("shuffle", "fixed"), default="shuffle",
                   help="row order inside each iteration (shuffle)")
    p.add_argument("--seed", type=int, default=1, help="seed of the shuffle (1)")
    p.add_argument("--gap", type=float, default=0.0, help="ms of sleep before each run (0)")
    p.add_argument("--no-cgroup-trick", action="store_true",
                   help="leave hybrid cgroups as they are (crun is then n/a)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a run is killed")
    p.add_argument("--json", help="also write raw samples to this file")
    p.add_argument("--batch", type=int, default=10,
                   help="parallel scenario: starts per worker and round (10); rounds = -n / "
                        f"({WORKERS} x batch)")
    a = p.parse_args()
    if a.iterations is None:
        a.iterations = 150 if a.scenario == "all" else 200
    if a.iterations < 1 or a.warmup < 0 or a.batch < 1:
        p.error("-n must be >= 1 and -w >= 0")
    if a.only and not set(a.only.split(",")) <= {"husk", "crun", "runc", "floor", "harness"}:
        p.error("--only takes husk,crun,runc,floor,harness")
    return a


def raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main():
    args = parse_args()
    args.load_before = os.getloadavg()[0]
    if os.geteuid() != 0:
        log("start_bench: needs root: the runtimes create namespaces and cgroups")
        return EXIT_SETUP
    if not os.path.isfile(args.busybox):
        log(f"start_bench: no busybox at {args.busybox} (apt-get install busybox-static)")
        return EXIT_SETUP

    scenarios = make_scenarios(args)
    rows = [r for sc in scenarios for r in sc.rows]

    # One benchmark at a time: the cgroup trick changes machine-wide state.
    lock = os.open(CGROUP_ROOT, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("start_bench: another start_bench holds the lock on /sys/fs/cgroup; try later")
        return EXIT_SETUP
    try:
        enter_private_mount_ns()
    except OSError as e:
        log(f"start_bench: {e}")
        return EXIT_SETUP
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, raise_interrupt)

    if any(sc.name == "bridge" for sc in scenarios):
        try:
            enter_private_net_ns()
        except OSError as e:
            log(f"start_bench: {e}")
            return EXIT_SETUP
    tmp = tempfile.mkdtemp(prefix="husk-bench.")
    bench = Bench(args, tmp)
    cleaner = Cleaner(bench.prefix, tmp, rows)
    guardian, guardian_pipe = None, None
    interrupted = None
    mode = cgroup_mode()
    cgroup_note = f"{mode} mode"
    if mode == "hybrid":
        cgroup_note += f", cgroup2 controllers: {' '.join(v2_controllers()) or 'none'}"
    try:
        bench.setup(rows)
        wants_trick = (mode == "hybrid" and v2_controllers() and not args.no_cgroup_trick
                       and any(r.family == "crun" for r in rows))
        if wants_trick:
            # The guardian needs to know the mounts, so it starts right after them.
            cleaner.moved, notes = apply_cgroup_trick()
            guardian, guardian_pipe = start_guardian(cleaner)
            names = " ".join(c for c, _ in cleaner.moved) or "nothing"
            cgroup_note = (f"hybrid; {names} moved from cgroup2 to a v1 hierarchy mounted only "
                           f"in the benchmark's mount namespace, for crun (undone at exit)")
            if notes:
                cgroup_note += "; " + "; ".join(notes)
        else:
            guardian, guardian_pipe = start_guardian(cleaner)
        log(f"start_bench: {cgroup_note}")
        bridge = next((sc for sc in scenarios if sc.name == "bridge"), None)
        if bridge:
            bench.setup_bridge(bridge.rows, cleaner)
        for sc in scenarios:
            if sc.name == "seccomp" and sc.rows:
                bench.seccomp, sc.na = husk_seccomp_profile(args.husk, tmp)
                if sc.na:
                    for row in sc.rows:
                        row.na = sc.na
                    log(f"start_bench: scenario seccomp: n/a ({sc.na})")
                    continue
            log(f"start_bench: scenario {sc.name}")
            sc.ran = True
            for row in sc.rows:
                bench.probe(row)
                log(f"  {row.label}: " + (f"n/a ({row.na})" if row.na else f"ok {row.version}")
                    + (f"\n    probe: {row.probe_note}" if row.probe_note else ""))
            load0, t0 = os.getloadavg()[0], time.monotonic()
            try:
                if sc.name == "parallel":
                    bench.measure_parallel(sc.rows, sc.name)
                else:
                    bench.measure(sc.rows, sc.name)
            finally:
                sc.elapsed = time.monotonic() - t0
                sc.load = (load0, os.getloadavg()[0])
    except KeyboardInterrupt as e:
        interrupted = str(e) or "SIGINT"
    finally:
        # Cleanup must not be cut short by a second Ctrl-C.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        if interrupted:
            log(f"start_bench: interrupted by {interrupted}; cleaning up")
        if bench.errf:
            bench.errf.close()
        problems = cleaner.run()
        if guardian_pipe is not None:
            os.write(guardian_pipe, b"d")
            os.close(guardian_pipe)
            os.waitpid(guardian, 0)
        os.close(lock)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    if interrupted:
        print(f"\ninterrupted by {interrupted}: the numbers below cover the runs done so far")
    report(scenarios, args, cgroup_note)
    if problems:
        print("\nLEFT BEHIND (see bench/README.md, 'If something is left behind'):")
        for p in problems:
            print(f"  {p}")
        return EXIT_LEFTOVERS
    print("\ncleanup: no container, state dir, cgroup, mount or temp file left behind")
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
