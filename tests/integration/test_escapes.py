# SPDX-License-Identifier: Apache-2.0
"""One regression test per known container-runtime escape, against the default `husk spec` config.

Where the defence is something a config can turn off, the same attack is also run without it and
must then be seen to work: the test detects the attack, so it cannot pass by accident.

  CVE-2019-5736   overwrite the runtime's binary through /proc/PID/exe
  CVE-2024-21626  a leaked host directory fd as cwd or as the path of the program
  CVE-2021-30465  mount destinations that lead out of the rootfs (symlinks, "..")
  CVE-2019-16884  mounts over /proc (AppArmor's attr files, /proc/sys), also through symlinks
  CVE-2022-0492   cgroup v1 release_agent
  exec            a process added with `husk exec` keeps the container's defences
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import conftest
from conftest import wait_for


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@contextlib.contextmanager
def runtime_binary(path):
    """Runs every runtime call of the block with another binary (a copy the test may lose)."""
    saved = conftest.HUSK
    conftest.HUSK = str(path)
    try:
        yield
    finally:
        conftest.HUSK = saved


def husk_copy(ctx):
    d = ctx.dir / "runtime"
    d.mkdir()
    copy = d / "husk"  # the name makes the comm the probe looks for
    shutil.copy2(conftest.HUSK, copy)
    return copy


def add_caps(bundle, *names):
    caps = bundle.process.setdefault("capabilities", {})
    for s in ("bounding", "effective", "permitted"):
        caps[s] = list(caps.get(s, [])) + [f"CAP_{n}" for n in names]


def json_lines(container):
    return container.output_lines()


def assert_refused(ctx, r, *words):
    assert r.rc != 0, str(r)
    assert r.out == "", str(r)  # the container's program never ran
    for w in words:
        assert w in r.err, f"{w!r} not in the error message: {r}"
    ctx.assert_nothing_left()


# ---------------------------------------------------------------------------------------------
# CVE-2019-5736: a container overwrites the runtime's binary through /proc/PID/exe.
#
# The victim container joins the attacker's pid namespace and is created, not started: its husk
# process waits for `start` in there, in the attacker's sight. The attacker (`probe exe-attack`,
# see probe.c) opens that process's /proc/PID/exe for writing, for reading and as O_PATH, then,
# once the process has exec'd, reopens an O_PATH fd on the runtime's binary for writing and
# writes a marker. The runtime is a copy of husk, so a working attack only spoils the copy.


def run_exe_attack(ctx, copy, attacker_edit=None, victim_edit=None, release=None):
    """The attacker's three JSON lines, and the victim's `start` result."""
    inode = copy.stat().st_ino
    with runtime_binary(copy):
        a = ctx.bundle("attacker")
        if attacker_edit:
            attacker_edit(a)
        attacker = ctx.run_detached(a, args=("/probe", "exe-attack", str(inode), "10"),
                                    ready=False)
        v = ctx.bundle("victim")
        v.set_ns("pid", f"/proc/{attacker.pid}/ns/pid")
        v.probe("exit", "0")
        if victim_edit:
            victim_edit(v)
        victim = ctx.create(v)
        assert victim.create_result.rc == 0, str(victim.create_result)
        wait_for(lambda: len(json_lines(attacker)) >= 1, 10, "the attacker to find husk")
        started = victim.start()
        wait_for(lambda: len(json_lines(attacker)) >= 2, 12, "the attacker's second try")
        if release:
            release(v)
        wait_for(lambda: len(json_lines(attacker)) >= 3, 12, "the attacker to finish")
    return json_lines(attacker), started


def test_cve_2019_5736_waiting_runtime_process_is_out_of_reach(ctx):
    """Not dumpable: nothing in the container may look at the waiting husk process, not even
    read its exe link. (With CAP_SYS_PTRACE the container could, but all it would reach is a
    read-only bind mount of the binary: see the next test.)"""
    copy = husk_copy(ctx)
    before = sha256(copy)
    (found, after_exec, reopen), started = run_exe_attack(ctx, copy)
    assert started.rc == 0, str(started)
    assert found["pid"] > 0 and found["comm"] == "husk", found
    for key in ("readlink", "open_write", "open_read", "open_path"):
        assert found[key] == {**found[key], "ok": False, "errno": errno.EACCES}, found
    assert not found["grabbed"] and not after_exec["grabbed"], (found, after_exec)
    assert "reopen_write" not in reopen, reopen
    assert sha256(copy) == before


def test_cve_2019_5736_ptrace_capable_container_reaches_only_a_read_only_binary(ctx):
    """A process with CAP_SYS_PTRACE may open the exe of a process that is not dumpable. A husk
    whose sandbox process joins a pid namespace with processes in it therefore runs from a
    read-only bind mount of its binary: every open for writing fails with EROFS, before the
    exec and after it, once no husk runs the file any more (ETXTBSY until then)."""
    copy = husk_copy(ctx)
    before = sha256(copy)
    (found, after_exec, reopen), started = run_exe_attack(
        ctx, copy, attacker_edit=lambda a: add_caps(a, "SYS_PTRACE"))
    assert started.rc == 0, str(started)
    assert found["comm"] == "husk" and found["open_path"]["ok"], found
    assert found["open_write"]["errno"] in (errno.EROFS, errno.ETXTBSY), found
    assert found["grabbed"] or after_exec["grabbed"], (found, after_exec)
    assert reopen["reopen_write"] == {"ok": False, "errno": errno.EROFS}, reopen
    assert sha256(copy) == before


def shared_libraries(binary):
    """The files the dynamic loader maps for binary (none for a static one)."""
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    libs = []
    for line in r.stdout.splitlines():
        words = line.replace("=>", " ").split()
        libs += [w for w in words if w.startswith("/")]
    return libs


def test_cve_2019_5736_program_cannot_rerun_the_runtime(ctx):
    """The original exploit: the image's program is a script for the interpreter
    "#!/proc/self/exe", so the runtime's exec runs the runtime's own binary again, inside the
    container, dumpable now. The image also brings the libraries that binary needs, and an
    LD_PRELOAD of a FIFO that holds the dynamic loader until the attacker has its handle (a
    real exploit brings a library doing the attacker's work instead). A runtime that runs from
    a sealed copy of itself (runc: a memfd, or a read-only bind mount) is immune."""
    copy = husk_copy(ctx)
    before = sha256(copy)
    libs = shared_libraries(copy)

    def victim(v):
        for lib in libs:
            dst = v.rootfs / lib.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(lib, dst)
        (v.rootfs / "evil").write_text("#!/proc/self/exe\n")
        os.chmod(v.rootfs / "evil", 0o755)
        v.args("/evil")
        if libs:
            os.mkfifo(v.rootfs / "preload-fifo")
            v.process["env"].append("LD_PRELOAD=/preload-fifo")

    def release(v):
        # EOF for the loader: the preload is ignored and the binary runs on, to its exit
        deadline = time.monotonic() + 5
        while libs and time.monotonic() < deadline:
            try:
                os.close(os.open(v.rootfs / "preload-fifo", os.O_WRONLY | os.O_NONBLOCK))
                break
            except OSError as e:  # ENXIO: no reader (yet, or any more)
                if e.errno != errno.ENXIO:
                    raise
                time.sleep(0.01)

    (found, after_exec, reopen), started = run_exe_attack(ctx, copy, victim_edit=victim,
                                                          release=release)
    assert found["comm"] == "husk" and not found["grabbed"], found
    assert sha256(copy) == before, (
        f"the container overwrote the runtime's binary through /proc/PID/exe: after the exec "
        f"{after_exec}, then {reopen}")


def rerun_script(ctx, bundle):
    """A program of the image whose interpreter is /proc/self/exe, asking for `--version`, with
    the libraries a dynamically linked husk needs: if the runtime's binary ran it, it would
    print its version. Returns its path in the container."""
    for lib in shared_libraries(conftest.HUSK):
        dst = bundle.rootfs / lib.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, dst)
    (bundle.rootfs / "rerun").write_text("#!/proc/self/exe --version\n")
    os.chmod(bundle.rootfs / "rerun", 0o755)
    return "/rerun"


def test_cve_2019_5736_program_never_finds_husk_at_proc_self_exe(ctx, bundle):
    """The process's program is executed through the exec stub (a sealed memfd of a few
    kilobytes), so /proc/self/exe is never husk while the kernel resolves an interpreter."""
    bundle.args(rerun_script(ctx, bundle))
    r = ctx.run(bundle)
    assert "husk version" not in r.out, str(r)
    assert r.rc != 0, str(r)


def test_cve_2019_5736_exec_never_finds_husk_at_proc_self_exe(ctx, bundle):
    rerun = rerun_script(ctx, bundle)
    c = ctx.run_detached(bundle)
    r = exec_or_skip(ctx, c.id, rerun)
    assert "husk version" not in r.out, str(r)
    assert r.rc != 0, str(r)


def test_cve_2019_5736_start_hook_never_finds_husk_at_proc_self_exe(ctx, bundle):
    """startContainer hooks run inside the container, from a file of the image: through the
    stub as well. The hook fails (the stub refuses to be an interpreter), so start does."""
    bundle.config["hooks"] = {"startContainer": [{"path": rerun_script(ctx, bundle)}]}
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    started = c.start() if c.create_result.rc == 0 else c.create_result
    out = Path(c.create_result.out_path).read_text()
    assert "husk version" not in out, out
    assert started.rc != 0 and "startContainer hook 0" in started.err, str(started)
    ctx.wait_status(c.id, "stopped")


# ---------------------------------------------------------------------------------------------
# CVE-2024-21626: the runtime's own fds to host directories, open in its process until execve,
# reached through /proc/self/fd/N.


@pytest.mark.parametrize("fd", range(3, 11))
def test_cve_2024_21626_cwd_through_proc_self_fd(ctx, bundle, fd):
    bundle.process["cwd"] = f"/proc/self/fd/{fd}"
    bundle.probe("info")
    r = ctx.run(bundle)
    assert_refused(ctx, r, f"/proc/self/fd/{fd}")


@pytest.mark.parametrize("fd", range(3, 11))
def test_cve_2024_21626_program_through_proc_self_fd(ctx, bundle, fd):
    """Attack 3a of the advisory: the program's path goes out through a leaked directory fd to
    a binary on the host (here a copy of the probe that only the host has)."""
    host_only = ctx.dir / "host-only-probe"
    shutil.copy2(conftest.PROBE, host_only)
    bundle.args(f"/proc/self/fd/{fd}/" + "../" * 40 + str(host_only).lstrip("/"), "info")
    r = ctx.run(bundle)
    assert_refused(ctx, r)


@pytest.mark.husk_message
@pytest.mark.parametrize("preserve", [False, True], ids=["inherited", "preserved"])
@pytest.mark.parametrize("cwd", ["/proc/self/fd/3", "/proc/self/fd/3/.."])
def test_cve_2024_21626_cwd_through_a_callers_host_dir_fd(ctx, bundle, preserve, cwd):
    """fd 3 is a host directory the caller had open: it reaches the container process only
    with --preserve-fds, but it is open in the runtime until execve either way."""
    bundle.process["cwd"] = cwd
    bundle.probe("info")
    flags = ["--preserve-fds", "1"] if preserve else []
    r = ctx.run(bundle, *flags, pass_fds_files=[ctx.dir])
    # Preserved, fd 3 exists and the cwd check refuses it; inherited, husk closed it at once.
    want = f"cwd '{cwd}' is outside the container root" if preserve else f"cwd '{cwd}'"
    assert_refused(ctx, r, want)


def test_cve_2024_21626_no_fd_of_the_caller_or_runtime_reaches_the_container(ctx, bundle):
    (ctx.dir / "host-file").write_text("x")
    files = [ctx.dir / "host-file", ctx.dir, Path("/")]
    bundle.probe("info")
    run = ctx.run(bundle, pass_fds_files=files)
    assert run.rc == 0, str(run)
    assert sorted(f["fd"] for f in run.json()["fds"]) == [0, 1, 2], run.json()["fds"]

    # create + start: the start socket and its connection must not leak either
    bundle.write()
    cid = ctx.new_id()
    created = ctx.runtime("create", "--bundle", bundle.path, cid, pass_fds_files=files)
    assert created.rc == 0, str(created)
    r = ctx.runtime("start", cid)
    assert r.rc == 0, str(r)
    ctx.wait_status(cid, "stopped")
    info = json.loads(Path(created.out_path).read_text())  # the process has create's stdout
    assert sorted(f["fd"] for f in info["fds"]) == [0, 1, 2], info["fds"]


# ---------------------------------------------------------------------------------------------
# CVE-2021-30465 class: mount destinations that would lead out of the rootfs.


def escaping_destination(kind, bundle, host_path):
    """A destination that names host_path from outside the root; the symlinks are in the rootfs."""
    rel = str(host_path).lstrip("/")
    if kind == "absolute-symlink":
        os.symlink(str(host_path), bundle.rootfs / "mnt" / "evil")
        return "/mnt/evil"
    if kind == "relative-symlink":
        os.symlink("../" * 20 + rel, bundle.rootfs / "mnt" / "evil")
        return "/mnt/evil"
    if kind == "dotdot":
        return "/mnt/" + "../" * 20 + rel
    if kind == "symlinked-parent":
        os.symlink("/", bundle.rootfs / "mnt" / "evil")
        return "/mnt/evil/" + rel
    raise ValueError(kind)


KINDS = ["absolute-symlink", "relative-symlink", "dotdot", "symlinked-parent"]


@pytest.mark.parametrize("kind", KINDS)
def test_cve_2021_30465_tmpfs_destination_stays_in_the_rootfs(ctx, bundle, kind):
    host_path = ctx.dir / "host" / "not-there"  # a mkdir on the host would show
    (ctx.dir / "host").mkdir()
    bundle.add_mount(escaping_destination(kind, bundle, host_path), "tmpfs", "tmpfs",
                     ["size=64k"])
    bundle.args("/bin/sh", "-c", f"/probe info; echo in-tmpfs > {host_path}/marker; "
                                 f"/probe read {host_path}/marker")
    r = ctx.run(bundle)
    assert r.rc == 0, str(r)
    info, marker = [json.loads(line) for line in r.out.splitlines()]
    # the tmpfs is at that path inside the container, which is in the rootfs...
    mounts = [m for m in info["mounts"] if m["target"] == str(host_path)]
    assert mounts and mounts[-1]["fstype"] == "tmpfs", [m["target"] for m in info["mounts"]]
    assert marker == {"data": "in-tmpfs\n"}
    assert (bundle.rootfs / str(host_path).lstrip("/")).is_dir()
    # ...and the host's tree did not change
    assert not host_path.exists()
    assert os.listdir(ctx.dir / "host") == []


@pytest.mark.parametrize("kind", ["absolute-symlink", "dotdot"])
def test_cve_2021_30465_bind_destination_stays_in_the_rootfs(ctx, bundle, kind):
    src = ctx.dir / "volume"
    src.mkdir()
    (src / "from-volume").write_text("v")
    host_dir = ctx.dir / "host-dir"  # exists on the host, not in the rootfs
    host_dir.mkdir()
    (host_dir / "host-file").write_text("h")
    bundle.add_mount(escaping_destination(kind, bundle, host_dir), "bind", src, ["bind"])
    (info, vol, hostfile) = ctx.probes(bundle, ["info"], ["read", f"{host_dir}/from-volume"],
                                       ["read", f"{host_dir}/host-file"])
    assert vol == {"data": "v"}
    assert hostfile == {"errno": errno.ENOENT}
    assert any(m["target"] == str(host_dir) for m in info["mounts"])
    assert sorted(os.listdir(host_dir)) == ["host-file"]
    assert (bundle.rootfs / str(host_dir).lstrip("/")).is_dir()


# ---------------------------------------------------------------------------------------------
# CVE-2019-16884 class: a mount over /proc's files (AppArmor's attr files, /proc/sys), by
# destination or through a symlink in the rootfs.


def proc_over(kind, bundle, ctx):
    """Adds the mount; returns (the mount, words the error message must have)."""
    host_file = ctx.dir / "fake-attr"
    host_file.write_text("unconfined\n")
    if kind == "attr-current":
        return bundle.add_mount("/proc/self/attr/current", "bind", host_file, ["bind"]), [
            "/proc/self/attr/current"]
    if kind == "attr-dir":
        return bundle.add_mount("/proc/self/attr", "tmpfs", "tmpfs"), ["/proc/self/attr"]
    if kind == "proc-sys":
        return bundle.add_mount("/proc/sys", "tmpfs", "tmpfs"), ["/proc/sys"]
    if kind == "proc-sys-dotdot":
        return bundle.add_mount("/mnt/../proc/./sys", "tmpfs", "tmpfs"), ["/proc/sys"]
    if kind == "proc-replaced":
        return bundle.add_mount("/proc", "tmpfs", "tmpfs"), ["/proc"]
    if kind == "symlink-to-attr":
        os.symlink("/proc/self/attr", bundle.rootfs / "mnt" / "attr")
        return bundle.add_mount("/mnt/attr/current", "bind", host_file, ["bind"]), [
            "/mnt/attr/current"]
    if kind == "symlink-to-proc-sys":
        os.symlink("../proc/sys", bundle.rootfs / "mnt" / "sys")
        return bundle.add_mount("/mnt/sys", "tmpfs", "tmpfs"), ["/mnt/sys"]
    if kind == "symlink-to-proc":
        os.symlink("/proc", bundle.rootfs / "mnt" / "p")
        return bundle.add_mount("/mnt/p", "tmpfs", "tmpfs"), ["/mnt/p"]
    raise ValueError(kind)


PROC_KINDS = ["attr-current", "attr-dir", "proc-sys", "proc-sys-dotdot", "proc-replaced",
              "symlink-to-attr", "symlink-to-proc-sys", "symlink-to-proc"]


@pytest.mark.parametrize("kind", PROC_KINDS)
def test_cve_2019_16884_mount_over_proc_is_refused(ctx, bundle, kind):
    _, words = proc_over(kind, bundle, ctx)
    bundle.probe("info")
    r = ctx.run(bundle)
    assert_refused(ctx, r, *words)


def test_lxcfs_style_mount_over_proc_file_is_allowed(ctx, bundle):
    """The guard is not a blanket refusal: the files lxcfs covers may be covered."""
    fake = ctx.dir / "uptime"
    fake.write_text("12345.67 890.12\n")
    bundle.add_mount("/proc/uptime", "bind", fake, ["bind", "ro"])
    (up,) = ctx.probes(bundle, ["read", "/proc/uptime"])
    assert up == {"data": "12345.67 890.12\n"}


# ---------------------------------------------------------------------------------------------
# CVE-2022-0492: cgroup v1 release_agent, run by the kernel as root on the host.


def test_cve_2022_0492_release_agent_and_cgroup_tree_are_read_only(ctx, bundle):
    report = ctx.probe(bundle, "security", "release_agent", "cgroup_mkdir", "unshare_user",
                       "mount_tmpfs")
    for check in ("release_agent", "cgroup_mkdir", "unshare_user", "mount_tmpfs"):
        assert report[check]["blocked"], report
    if report["release_agent"]["size"]:  # found one: blocked for being read-only
        assert report["release_agent"]["errno"] == errno.EROFS, report
    assert report["cgroup_mkdir"]["errno"] in (errno.EROFS, errno.ENOENT), report


def test_cve_2022_0492_probe_sees_a_writable_release_agent(ctx, bundle):
    """Control: without "ro" on the cgroup mount the same check opens release_agent for
    writing (it never writes to it)."""
    (cg,) = [m for m in bundle.config["mounts"] if m["destination"] == "/sys/fs/cgroup"]
    cg["options"] = [o for o in cg["options"] if o != "ro"]
    report = ctx.probe(bundle, "security", "release_agent")
    if not report["release_agent"]["size"]:
        pytest.skip("no release_agent in the container's view: its cgroup namespace is not "
                    "rooted at a hierarchy's root on this host")
    assert not report["release_agent"]["blocked"], report


# ---------------------------------------------------------------------------------------------
# exec: the added process gets the container's defences, not the runtime's privileges.


def exec_or_skip(ctx, *args):
    r = ctx.runtime("exec", *args)
    if "unknown command 'exec'" in r.err:
        pytest.skip("husk exec is not implemented yet")
    return r


STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                 "Seccomp_filters")


def proc_status(pid):
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}


def test_exec_keeps_seccomp_caps_and_no_new_privs(ctx, bundle):
    c = ctx.run_detached(bundle)
    init = proc_status(c.pid)
    r = exec_or_skip(ctx, c.id, "/probe", "security")
    assert r.rc == 0, str(r)
    report = r.json()
    unblocked = [k for k, v in report.items() if k != "status" and not v["blocked"]]
    assert unblocked == [], json.dumps(report)
    for field in STATUS_FIELDS:
        assert report["status"][field] == init[field], (field, report["status"], init)
    assert init["NoNewPrivs"] == "1" and init["Seccomp"] == "2"


def test_cve_2024_21626_exec_cwd_through_proc_self_fd(ctx, bundle):
    """The advisory's attack 1 was through `runc exec --cwd`."""
    c = ctx.run_detached(bundle)
    ran = []
    for fd in range(3, 11):
        r = exec_or_skip(ctx, "--cwd", f"/proc/self/fd/{fd}", c.id, "/probe", "info")
        if r.rc == 0 or r.out or f"/proc/self/fd/{fd}" not in r.err:
            ran.append(str(r))
    assert not ran, "\n".join(ran)


def test_cve_2024_21626_exec_program_through_proc_self_fd(ctx, bundle):
    host_only = ctx.dir / "host-only-probe"
    shutil.copy2(conftest.PROBE, host_only)
    c = ctx.run_detached(bundle)
    ran = []
    for fd in range(3, 11):
        program = f"/proc/self/fd/{fd}/" + "../" * 40 + str(host_only).lstrip("/")
        r = exec_or_skip(ctx, c.id, program, "info")
        if r.rc == 0 or r.out:
            ran.append(f"fd {fd}: {r}")
    assert not ran, "a binary of the host ran in the container:\n" + "\n".join(ran)
