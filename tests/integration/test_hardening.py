# SPDX-License-Identifier: Apache-2.0
"""Regressions of a security review of the engine: each test reproduces one finding through the
real CLI, and fails on a runtime that still has it.

The image importer's findings (whiteouts of "..", links escaping through a parent symlink,
decompression bombs, /tmp's mode) are in test_image.py, the parsers' in the unit tests and fuzzers.
"""

import errno
import fcntl
import json
import os
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import HUSK, pid_alive, reap_children, wait_for


def assert_refused(ctx, r, *words):
    assert r.rc != 0, str(r)
    for w in words:
        assert w in r.err, f"{w!r} not in the error message: {r}"
    ctx.assert_nothing_left()


# ---- sysctls: only what the container's own namespaces hold


def test_host_global_sysctl_is_refused(ctx, bundle):
    """linux.sysctl kernel.core_pattern would set the host's core pattern (a crash anywhere on
    the host would then run a program of the container's choosing as root). runc refuses it too.
    The value asked is the host's own, so that a runtime that writes it changes nothing."""
    host = Path("/proc/sys/kernel/core_pattern")
    before = host.read_text()
    bundle.linux["sysctl"] = {"kernel.core_pattern": before.rstrip("\n")}
    r = ctx.run(bundle)
    assert_refused(ctx, r, "kernel.core_pattern")
    assert host.read_text() == before


@pytest.mark.husk_message
@pytest.mark.parametrize("key,ns", [("net.ipv4.ip_forward", "network"),
                                    ("kernel.shmmax", "ipc"),
                                    ("kernel.domainname", "uts")])
def test_namespaced_sysctl_needs_its_namespace(ctx, bundle, key, ns):
    bundle.remove_ns(ns)
    bundle.config.pop("hostname", None)
    host = Path("/proc/sys", *key.split("."))
    before = host.read_text()
    bundle.linux["sysctl"] = {key: before.rstrip("\n")}
    r = ctx.run(bundle)
    assert_refused(ctx, r, f"linux.sysctl.{key}", f"needs the container's own {ns} namespace")
    assert host.read_text() == before


# ---- labels of security modules husk does not apply


def host_lsms():
    try:
        return Path("/sys/kernel/security/lsm").read_text().strip().split(",")
    except OSError:
        lsms = []
        try:
            if Path("/sys/module/apparmor/parameters/enabled").read_text().startswith("Y"):
                lsms.append("apparmor")
        except OSError:
            pass
        if Path("/sys/fs/selinux/enforce").exists():
            lsms.append("selinux")
        return lsms


@pytest.mark.husk_behaviour
@pytest.mark.parametrize("where,key,lsm", [("process", "apparmorProfile", "apparmor"),
                                           ("process", "selinuxLabel", "selinux"),
                                           ("linux", "mountLabel", "selinux")])
def test_lsm_label_is_never_dropped_silently(ctx, bundle, where, key, lsm):
    """runc drops these without a word on a host without the module. husk warns, naming the
    field; on a host that enforces the module it refuses the config instead."""
    bundle.config.setdefault(where, {})[key] = "label_t"
    r = ctx.run(bundle)
    if lsm in host_lsms():
        assert_refused(ctx, r, f"{where}.{key}", "husk cannot apply")
    else:
        assert r.rc == 0, str(r)
        assert f"{where}.{key}" in r.err and "ignored" in r.err, str(r)


# ---- devices


@pytest.mark.husk_message
@pytest.mark.parametrize("userns", [False, True])
def test_device_path_with_dotdot_is_refused(ctx, bundle, userns):
    """In a user namespace the host's node of a device's path is bound into the container:
    "/dev/../etc/hostname" would bring the host's file in."""
    if userns:
        bundle.set_ns("user")
        bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    bundle.linux["devices"] = [{"path": "/dev/../etc/hostname", "type": "c", "major": 1,
                                "minor": 3}]
    bundle.probe("read", "/etc/hostname")
    r = ctx.run(bundle)
    assert_refused(ctx, r, "linux.devices[0].path", "'..'")


# ---- seccomp: AF_VSOCK through i386's socketcall


def test_default_profile_blocks_vsock_through_i386_entry_points(ctx, bundle):
    """socketcall(SYS_SOCKET) takes its arguments in memory, out of seccomp's sight, and
    libseccomp let it through for the profile's socket rule: an AF_VSOCK socket from an i386
    call. The default profile has no i386 table now; such calls die of SIGSYS. (On a kernel
    without the i386 entry point int 0x80 faults instead: tests/unit/test-seccomp.c runs the
    compiled filter on these calls whatever the host.)"""
    report = ctx.probe(bundle, "security", "socketcall_vsock", "socket32_vsock")
    for check in ("socketcall_vsock", "socket32_vsock"):
        assert report[check]["blocked"], report
        if "detail" not in report[check]:  # the host has int 0x80: the filter decided
            assert report[check]["errno"] == 128 + 31, report


# ---- the compiled-seccomp cache: nothing planted there is used

MATCHED = 1234


def allow_all_but_getpriority():
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": MATCHED}]}


def getpriority_errno(ctx, bundle):
    return ctx.probe(bundle, "getpriority", "0:0")["results"][0]["errno"]


def poison_dir_world_writable(cache, name, evil, elsewhere):
    (cache / name).write_bytes(evil)
    cache.chmod(0o777)


def poison_file_world_writable(cache, name, evil, elsewhere):
    (cache / name).write_bytes(evil)
    (cache / name).chmod(0o666)


def poison_file_symlink(cache, name, evil, elsewhere):
    (elsewhere / name).write_bytes(evil)
    (cache / name).unlink()
    (cache / name).symlink_to(elsewhere / name)


def poison_dir_symlink(cache, name, evil, elsewhere):
    (elsewhere / name).write_bytes(evil)
    for f in cache.iterdir():
        f.unlink()
    cache.rmdir()
    cache.symlink_to(elsewhere)


def poison_other_owner(cache, name, evil, elsewhere):
    (cache / name).write_bytes(evil)
    os.chown(cache / name, 65534, 65534)


@pytest.mark.husk_behaviour
@pytest.mark.parametrize("poison", [poison_dir_world_writable, poison_file_world_writable,
                                    poison_file_symlink, poison_dir_symlink, poison_other_owner],
                         ids=lambda f: f.__name__.removeprefix("poison_"))
def test_seccomp_cache_ignores_what_others_could_plant(ctx, poison):
    """A program in the cache runs as the container's filter. Where --root is writable by
    others, a program put there by someone else (a world-writable directory or file, a symlink
    to one, a file of another owner) must not be what runs: here it is the compiled program of
    another profile, which would make getpriority fail with MATCHED."""
    own, other = ctx.bundle("own"), ctx.bundle("other")
    other.linux["seccomp"] = allow_all_but_getpriority()
    assert getpriority_errno(ctx, own) == 0  # the default profile allows getpriority
    assert getpriority_errno(ctx, other) == MATCHED
    cache = ctx.state / ".seccomp-cache"
    programs = {p.name: p.read_bytes() for p in cache.iterdir()}
    assert len(programs) == 2, programs
    (evil,) = [data for data in programs.values() if len(data) < 200]  # the short profile's
    (name,) = [n for n, data in programs.items() if data != evil]
    elsewhere = ctx.dir / "planted"
    elsewhere.mkdir()
    poison(cache, name, evil, elsewhere)
    assert getpriority_errno(ctx, own) == 0


# ---- the caller's terminal: the container is in a session of its own


class Pty:
    """A pty pair of the test's own; the runtime runs with the slave as its controlling terminal
    and stdio, as from a shell in a terminal (nothing reaches a real terminal of the machine)."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.out = b""

    def run(self, ctx, *args, timeout=10):
        argv = [HUSK, "--root", str(ctx.state), *map(str, args)]

        def controlling_terminal():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        reap_children()
        p = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave, stderr=self.slave,
                             env=ctx.env(), preexec_fn=controlling_terminal)
        deadline = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < deadline:
            self.drain(0.05)
        if p.poll() is None:
            p.kill()
            p.wait()
            raise AssertionError(f"{argv} timed out; pty: {self.out!r}")
        self.drain(0)
        return p.returncode

    def drain(self, wait):
        while select.select([self.master], [], [], wait)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.out += data
            wait = 0

    def report(self, timeout=10):
        """The probe's `tty` report, once it has been written."""
        deadline = time.monotonic() + timeout
        while b'"tiocsti"' not in self.out and time.monotonic() < deadline:
            self.drain(0.05)
        for line in self.out.replace(b"\r", b"").splitlines():
            if b'{"pid"' in line:  # after the echo of an injected byte ("^@"), if any
                return json.loads(line[line.index(b'{"pid"'):])
        raise AssertionError(f"no report on the pty: {self.out!r}")

    def close(self):
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def pty():
    p = Pty()
    yield p
    p.close()


def assert_own_session(report):
    """No controlling terminal, so TIOCSTI on the caller's terminal is refused (the
    bubblewrap CVE-2017-5226 class; this host has dev.tty.legacy_tiocsti=1). runc gives a
    foreground container pipes that it relays instead of the terminal itself: ENOTTY."""
    assert report["sid"] == report["pid"], report
    assert not report["ctty"], report
    assert not report["tiocsti"]["ok"], report
    assert report["tiocsti"]["errno"] in (errno.EPERM, errno.ENOTTY), report


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
def test_run_puts_the_container_in_its_own_session(ctx, bundle, pty, detach):
    bundle.probe("tty")
    bundle.write()
    cid = ctx.new_id()
    rc = pty.run(ctx, "run", *(["-d"] if detach else []), "--bundle", bundle.path, cid)
    assert rc == 0, pty.out
    assert_own_session(pty.report())


def test_create_puts_the_container_in_its_own_session(ctx, bundle, pty):
    bundle.probe("tty")
    c = ctx.create(bundle)  # the state dir and bundle exist; create again on the pty
    ctx.runtime("delete", "--force", c.id)
    rc = pty.run(ctx, "create", "--bundle", bundle.path, c.id)
    assert rc == 0, pty.out
    r = c.start()
    assert r.rc == 0, str(r)
    assert_own_session(pty.report())


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
def test_exec_puts_the_process_in_its_own_session(ctx, bundle, pty, detach):
    c = ctx.run_detached(bundle)
    rc = pty.run(ctx, "exec", *(["-d"] if detach else []), c.id, "/probe", "tty")
    assert rc == 0, pty.out
    assert_own_session(pty.report())


def test_foreground_exec_passes_signals_on(ctx, bundle):
    """In a session of its own the process no longer gets the terminal's ^C itself: a
    foreground exec passes the signals it gets on, as run does."""
    c = ctx.run_detached(bundle)
    out = ctx.path("exec-out")
    with open(out, "w") as f:
        p = subprocess.Popen([HUSK, "--root", str(ctx.state), "exec", c.id, "/probe", "sleep",
                              "30"], stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=ctx.env())
    deadline = time.monotonic() + 10
    while '"ready"' not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(2)
    assert p.wait(10) == 130, out.read_text()
    assert '{"signal":2}' in out.read_text()


# ---- loopback in a new network namespace


def test_loopback_is_up_in_a_new_network_namespace(ctx, bundle):
    """runc brings lo up; with it down, 127.0.0.1 is unreachable (ENETUNREACH) instead of
    refusing a connection to a port nothing listens on."""
    bundle.set_ns("network")
    flags, conn = ctx.probes(bundle, ["read", "/sys/class/net/lo/flags"], ["connect", "9"])
    assert int(flags["data"], 16) & 0x1, flags  # IFF_UP
    assert conn == {"ok": False, "errno": errno.ECONNREFUSED}, conn


# ---- a memory limit too small to set up in; a state dir without state.json


@pytest.mark.parametrize("limit", [4096, 65536, 262144])
def test_tiny_memory_limit_fails_cleanly(ctx, bundle, limit):
    """The runtime joined the container's memory cgroup around the clone, and under a limit
    below about 1 MiB the OOM killer picked it: the state dir and the cgroups stayed, and
    nothing could delete them. Now only the container's process is in there: it is killed
    during setup (an error naming the memory limit), after exec (137), or runs; all goes."""
    bundle.probe("exit", "0")
    bundle.linux.setdefault("resources", {})["memory"] = {"limit": limit}
    r = ctx.run(bundle)
    assert r.rc in (0, 1, 137), str(r)
    if r.rc == 1:
        assert "exited during setup" in r.err and f"memory limit of {limit} bytes" in r.err, str(r)
    ctx.assert_nothing_left()


def make_cgroup(path):
    """The cgroup a killed create may leave, holding a process; [dirs made], the process."""
    made = []
    for hier in ("freezer", "memory", "unified"):
        d = Path("/sys/fs/cgroup", hier, path.lstrip("/"))
        if Path("/sys/fs/cgroup", hier).is_dir():
            d.mkdir(parents=True, exist_ok=True)
            made.append(d)
    p = subprocess.Popen(["sleep", "60"])
    for d in made:
        (d / "cgroup.procs").write_text(str(p.pid))
    return made, p


@pytest.mark.husk_behaviour
@pytest.mark.parametrize("kept_config", [False, True], ids=["default-path", "cgroupsPath"])
def test_delete_force_removes_a_container_without_state(ctx, kept_config):
    """`create` killed before it records the state leaves ROOT/ID without state.json (and the
    copy of config.json it keeps first): delete --force removes it, with the cgroup and
    what runs in it, at the config's cgroupsPath or the default one."""
    cid = ctx.new_id()
    d = ctx.state / cid
    d.mkdir(parents=True)
    path = f"/husk/{cid}"
    if kept_config:
        path = f"/husk-it-{ctx.token}/{cid}"
        (d / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": path}}))
    made, p = make_cgroup(path)
    try:
        r = ctx.runtime("delete", "--force", cid)
        assert r.rc == 0, str(r)
        assert not d.exists()
        wait_for(lambda: not pid_alive(p.pid), 5, "the process in the cgroup to be killed")
        assert not any(m.exists() for m in made), made
        r = ctx.runtime("delete", "--force", cid)  # gone: not an error either
        assert r.rc == 0, str(r)
    finally:
        p.kill()
        p.wait()
        for m in made:
            for sub in (m, m.parent):
                if sub.exists() and sub.name != "husk":
                    sub.rmdir()


# ---- hooks: a failing poststart or poststop hook does not skip the ones after it


@pytest.mark.parametrize("kind", ["poststart", "poststop"])
@pytest.mark.parametrize("verb", ["run", "delete"])
def test_hooks_after_a_failing_one_still_run(ctx, bundle, kind, verb):
    """The spec: a failing poststart or poststop hook is a warning, and the next ones run."""
    log = ctx.path("hooks.log")
    bundle.config["hooks"] = {kind: [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo first >> {log}"]},
        {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]},
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo third >> {log}"]}]}
    bundle.probe("exit", "0")
    if verb == "run":
        r = ctx.run(bundle)
    else:  # create, start, then delete runs poststop (poststart at start)
        c = ctx.create(bundle)
        assert c.create_result.rc == 0, str(c.create_result)
        r = c.start()
        if kind == "poststop":
            assert r.rc == 0, str(r)
            ctx.wait_status(c.id, "stopped")
            r = c.delete()
    assert r.rc == 0, str(r)
    assert f"{kind} hook 1" in r.err and "warning" in r.err, str(r)
    assert log.read_text().split() == ["first", "third"]


# ---- rootfsPropagation unbindable


@pytest.mark.husk_behaviour  # runc 1.1 fails the same way
@pytest.mark.parametrize("prop", ["unbindable", "runbindable"])
def test_rootfs_propagation_unbindable(ctx, bundle, prop):
    """"/" made unbindable before the rootfs was bound made the bind fail with EINVAL, and a
    recursively unbindable root refuses the masks' binds: it is applied last."""
    bundle.linux["rootfsPropagation"] = prop
    (info,) = ctx.probes(bundle, ["read", "/proc/self/mountinfo"])
    root = [line.split() for line in info["data"].splitlines() if line.split()[4] == "/"]
    assert root and "unbindable" in root[0][6:root[0].index("-")], info["data"]


# ---- a getcwd that fails is said as such


@pytest.mark.husk_message
def test_getcwd_denied_by_seccomp_is_named(ctx, bundle):
    """The cwd check after chdir runs under the filter when noNewPrivileges is false: a
    profile that denies getcwd made husk say "cwd '/' is outside the container root"."""
    bundle.process["noNewPrivileges"] = False
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}
    r = ctx.run(bundle)
    assert_refused(ctx, r, "cwd '/': getcwd failed", "Operation not permitted")
    assert "outside" not in r.err, str(r)


# ---- masked paths and device binds go through checked fds


@pytest.mark.husk_behaviour
def test_masks_bind_only_the_real_dev_null(ctx, bundle):
    """Masked files were covered by whatever /dev/null was after pivot_root, by path: a
    symlink there (CVE-2025-31133 class) or, here, another device. Only the 1:3 character
    device reached without a symlink is bound; anything else fails the create."""
    bundle.linux["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]
    bundle.probe("read", "/proc/timer_list")
    r = ctx.run(bundle)
    assert_refused(ctx, r, "mask path '/proc/", "No such device")


USERNS_MAPS = {"uidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}],
               "gidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}]}


@pytest.mark.husk_behaviour
def test_userns_device_bind_is_the_node_asked_for(ctx, bundle):
    """In a user namespace the host's node of the same path is bound. It must be the device
    the config names: /dev/kmsg is 1:11, not 1:3."""
    bundle.set_ns("user")
    bundle.linux.update(USERNS_MAPS)
    bundle.linux["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 3}]
    r = ctx.run(bundle)
    assert_refused(ctx, r, "create device '/dev/kmsg'", "No such device")


def test_userns_device_bind_works(ctx, bundle):
    bundle.set_ns("user")
    bundle.linux.update(USERNS_MAPS)
    bundle.linux["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
    (st,) = ctx.probes(bundle, ["stat", "/dev/kmsg"])
    assert (st["type"], st["major"], st["minor"]) == ("char", 1, 11), st


# ---- the container's cgroupfs on a host with many mounts


def host_cgroup_mounts():
    """(type, options, name) of each hierarchy mounted at /sys/fs/cgroup/NAME."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        src, target, fstype, opts = line.split()[:4]
        name = target.removeprefix("/sys/fs/cgroup/")
        if fstype in ("cgroup", "cgroup2") and name != target and "/" not in name:
            keep = [o for o in opts.split(",") if o not in ("rw", "ro", "relatime", "nosuid",
                                                            "nodev", "noexec")]
            out.append((fstype, ",".join(keep), name))
    return out


def test_cgroupfs_sees_every_hierarchy_past_the_first_page_of_mounts(ctx, bundle):
    """The v1 cgroupfs view was built from one read() of /proc/self/mounts, which procfs
    answers a page at a time: a hierarchy listed past about 4 KiB was silently left out. In a
    private mount namespace, 100 mounts come first and /sys with the cgroup hierarchies is
    mounted again after them, so they are listed last."""
    hiers = host_cgroup_mounts()
    if not hiers or Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("needs a v1 or hybrid cgroup layout under /sys/fs/cgroup")
    bundle.args("/bin/sh", "-c", "ls /sys/fs/cgroup")
    bundle.write()
    many = ctx.dir / ("m" * 100)
    remount = "\n".join(f"mkdir -p /sys/fs/cgroup/{n}; mount -t {t} {'-o ' + o if o else ''} "
                         f"cgroup /sys/fs/cgroup/{n}" for t, o, n in hiers)
    script = f"""set -e
for i in $(seq 100); do mkdir -p {many}/$i; mount -t tmpfs -o size=4k tmpfs {many}/$i; done
umount -l /sys
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
{remount}
grep -n ' /sys/fs/cgroup/' /proc/self/mounts | head -1 | grep -q '^1[0-9][0-9]:'
exec "$@"
"""
    cid = ctx.new_id()
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                        HUSK, "--root", str(ctx.state), "run", "--bundle", str(bundle.path), cid],
                       capture_output=True, text=True, env=ctx.env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(n for _, _, n in hiers), r.stdout


@pytest.mark.husk_behaviour
@pytest.mark.parametrize("flag,lsm", [("--apparmor", "apparmor"), ("--process-label", "selinux")])
def test_exec_lsm_label_flags_are_not_dropped_silently(ctx, bundle, flag, lsm):
    c = ctx.run_detached(bundle)
    r = ctx.runtime("exec", flag, "label_t", c.id, "/probe", "exit", "0")
    if lsm in host_lsms():
        assert r.rc != 0 and flag in r.err and "husk cannot apply" in r.err, str(r)
    else:
        assert r.rc == 0 and f"{flag} 'label_t' ignored" in r.err, str(r)


@pytest.mark.husk_behaviour
def test_exec_process_json_lsm_label_warns(ctx, bundle):
    c = ctx.run_detached(bundle)
    proc = ctx.path("process.json")
    proc.write_text(json.dumps({"args": ["/probe", "exit", "0"], "cwd": "/",
                                "apparmorProfile": "label_t"}))
    r = ctx.runtime("exec", "--process", proc, c.id)
    if "apparmor" in host_lsms():
        assert r.rc != 0 and "process.apparmorProfile" in r.err, str(r)
    else:
        assert r.rc == 0 and "process.apparmorProfile" in r.err and "ignored" in r.err, str(r)
