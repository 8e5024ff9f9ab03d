# SPDX-License-Identifier: Apache-2.0
"""Security defaults, seen from inside: capabilities, no_new_privs, seccomp, masked and read-only
paths, the read-only root, landlock.

`probe security` tries each forbidden action in a harmless way and reports per action whether it
got past every security layer ("blocked": false) or not. The default `husk spec` config must block
them all. Each relaxation then unblocks what it relaxes, seen by the same probe: a check that
could never succeed (a typo, a missing file, a wrong argument) would fail there, so the default
test cannot pass by accident.

Known escapes (CVE regressions) are in test_escapes.py.
"""

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

# linux/capability.h
CAPS = {name: bit for bit, name in enumerate([
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"])}
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

# What getpriority(2) returns for a rule's errnoRet: no real errno is that large.
MATCHED = 1234

# Checks whose outcome without the default defences depends on the host's sysctls and kernel
# config (perf_event_paranoid, unprivileged_userfaultfd, io_uring_disabled, AF_VSOCK, user
# namespaces, CONFIG_KEXEC, CONFIG_MODULES) or on the keys root has: never required either way
# once a relaxation removes seccomp or the masks.
HOST_DEPENDENT = {"read_keys", "perf_event_open", "userfaultfd", "io_uring_setup", "socket_vsock",
                  "unshare_user", "kexec_load", "init_module"}


def cap_mask(*names):
    mask = 0
    for n in names:
        mask |= 1 << CAPS[n.removeprefix("CAP_")]
    return mask


def cap_names(*names):
    return ["CAP_" + n.removeprefix("CAP_") for n in names]


def set_caps(bundle, *names, sets=("bounding", "effective", "permitted")):
    bundle.process["capabilities"] = {s: cap_names(*names) for s in sets}


def add_caps(bundle, *names):
    caps = bundle.process.setdefault("capabilities", {})
    for s in ("bounding", "effective", "permitted"):
        caps[s] = list(caps.get(s, [])) + [n for n in cap_names(*names) if n not in caps.get(s, [])]


def security(ctx, bundle, *checks):
    """The probe's security report in the bundle's container (all checks, or the named ones)."""
    return ctx.probe(bundle, "security", *checks)


def unblocked(report):
    return {name for name, r in report.items() if name != "status" and not r["blocked"]}


def assert_unblocks(report, must, may=()):
    """`must` got through, and nothing but `must` and `may` did."""
    got = unblocked(report)
    assert set(must) <= got, f"still blocked: {sorted(set(must) - got)}\n{json.dumps(report)}"
    extra = got - set(must) - set(may)
    assert not extra, f"unblocked too: {sorted(extra)}\n{json.dumps(report)}"


def status_caps(status, field):
    return int(status[field], 16)


# ---------------------------------------------------------------------------------------------
# the default config


def test_default_config_blocks_every_action(ctx, bundle):
    report = security(ctx, bundle)
    assert len(report) > 30, report  # every check ran
    assert unblocked(report) == set(), json.dumps(report, indent=1)
    # Some of them for the reason meant, not only for some reason.
    assert report["clone3"]["errno"] == errno.ENOSYS  # so that libcs fall back to clone
    assert report["keyctl"]["errno"] == errno.EPERM
    assert report["create_in_root"]["errno"] == errno.EROFS
    assert report["write_proc_sys"]["errno"] == errno.EROFS
    assert report["mount_tmpfs"]["errno"] == errno.EPERM
    status = report["status"]
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # filter mode
    for field in ("CapBnd", "CapPrm", "CapEff"):
        assert status_caps(status, field) == cap_mask(*DEFAULT_CAPS), (field, status)
    assert status_caps(status, "CapInh") == 0
    # Listed as ambient by `husk spec`, but not inheritable, so not raised.
    assert status_caps(status, "CapAmb") == 0


def make_setuid_probe(bundle):
    """/probe-suid: a setuid-root copy of the probe (a copy: the template's probe is shared)."""
    path = bundle.rootfs / "probe-suid"
    shutil.copy2(bundle.rootfs / "probe", path)
    os.chown(path, 0, 0)
    os.chmod(path, 0o4755)
    assert path.stat().st_mode & stat.S_ISUID
    return "/probe-suid"


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileges-allowed"])
def test_setuid_binary_gains_nothing_under_no_new_privs(ctx, bundle, nnp):
    suid = make_setuid_probe(bundle)
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["noNewPrivileges"] = nnp
    check = ctx.probe(bundle, "setuid-check", suid)
    assert (check["uid"], check["euid"], check["errno"]) == (1000, 1000, 0), check
    if nnp:
        assert check["exec_euid"] == 1000, check
    else:  # the same binary escalates without the flag: the check itself works
        assert check["exec_euid"] == 0, check
    assert check["blocked"] is nnp


# ---------------------------------------------------------------------------------------------
# each relaxation unblocks what it relaxes, and nothing else


def no_seccomp(bundle):
    bundle.linux.pop("seccomp")


def seccomp_removed(bundle):
    no_seccomp(bundle)


def cap_with_seccomp_removed(*caps):
    def edit(bundle):
        no_seccomp(bundle)
        add_caps(bundle, *caps)
    return edit


def cap_added(*caps):
    def edit(bundle):
        add_caps(bundle, *caps)
    return edit


def writable_root(bundle):
    bundle.config["root"]["readonly"] = False


def no_masked_paths(bundle):
    bundle.linux.pop("maskedPaths")


def no_readonly_paths(bundle):
    bundle.linux.pop("readonlyPaths")


# The calls the default seccomp profile blocks that need no capability.
SECCOMP_ONLY = {"keyctl", "add_key", "request_key", "ptrace_traceme", "clone3", "personality"}
FILE_CHECKS = {"read_kcore", "read_keys", "read_timer_list", "read_sched_debug",
               "list_sys_firmware", "list_proc_acpi", "list_proc_scsi", "write_proc_sys",
               "open_sysrq_trigger", "create_in_root", "release_agent", "cgroup_mkdir"}

RELAXATIONS = [
    # (id, edit, must unblock, may unblock)
    ("seccomp-removed", seccomp_removed, SECCOMP_ONLY, HOST_DEPENDENT),
    ("CAP_SYS_ADMIN-seccomp-removed", cap_with_seccomp_removed("SYS_ADMIN"),
     # CAP_SYS_ADMIN is also bpf_capable()
     SECCOMP_ONLY | {"mount_tmpfs", "umount", "unshare_mount", "setns", "clone_newnet", "bpf"},
     HOST_DEPENDENT),
    ("CAP_SYS_BOOT-seccomp-removed", cap_with_seccomp_removed("SYS_BOOT"),
     SECCOMP_ONLY | {"reboot"}, HOST_DEPENDENT),
    ("CAP_SYS_CHROOT-seccomp-removed", cap_with_seccomp_removed("SYS_CHROOT"),
     SECCOMP_ONLY | {"chroot"}, HOST_DEPENDENT),
    ("CAP_BPF-seccomp-removed", cap_with_seccomp_removed("BPF"),
     SECCOMP_ONLY | {"bpf"}, HOST_DEPENDENT),
    ("CAP_DAC_READ_SEARCH-seccomp-removed", cap_with_seccomp_removed("DAC_READ_SEARCH"),
     SECCOMP_ONLY | {"open_by_handle_at"}, HOST_DEPENDENT),
    # The default profile alone still blocks what these capabilities are about.
    ("CAP_SYS_ADMIN-with-seccomp", cap_added("SYS_ADMIN"), set(), set()),
    ("CAP_SYS_BOOT-with-seccomp", cap_added("SYS_BOOT"), set(), set()),
    # Capabilities for calls the profile allows.
    ("CAP_CHOWN", cap_added("CHOWN"), {"chown"}, set()),
    ("CAP_NET_RAW", cap_added("NET_RAW"), {"raw_socket"}, set()),
    ("CAP_MKNOD", cap_added("MKNOD"), {"mknod_block"}, set()),
    ("root-writable", writable_root, {"create_in_root"}, set()),
    ("maskedPaths-removed", no_masked_paths, {"read_timer_list", "list_sys_firmware"},
     {"read_keys", "read_kcore", "read_sched_debug", "list_proc_acpi", "list_proc_scsi"}),
    ("readonlyPaths-removed", no_readonly_paths, {"write_proc_sys"}, {"open_sysrq_trigger"}),
]


@pytest.mark.parametrize("edit,must,may", [r[1:] for r in RELAXATIONS],
                         ids=[r[0] for r in RELAXATIONS])
def test_relaxation_unblocks_only_what_it_relaxes(ctx, bundle, edit, must, may):
    edit(bundle)
    report = security(ctx, bundle)
    assert_unblocks(report, must, may)


def test_device_cgroup_denies_a_disk_even_with_cap_mknod(ctx, bundle):
    """linux.resources.devices of `husk spec` denies every device: a block node the container
    may create (CAP_MKNOD) must still not open."""
    add_caps(bundle, "MKNOD")
    report = security(ctx, bundle, "mknod_block", "open_block")
    assert not report["mknod_block"]["blocked"], report  # the node was made...
    assert report["open_block"]["blocked"], report  # ...but the disk it names stays closed
    assert report["open_block"]["errno"] == errno.EPERM, report


# ---------------------------------------------------------------------------------------------
# capabilities


@pytest.mark.husk_behaviour
def test_no_capabilities_object_means_no_capabilities(ctx, bundle):
    bundle.process.pop("capabilities")
    info = ctx.probe(bundle)
    for field in ("cap_bnd", "cap_prm", "cap_eff", "cap_inh", "cap_amb"):
        assert int(info[field], 16) == 0, (field, info[field])


SETS = {
    "bounding": ["CHOWN", "KILL", "NET_RAW", "SETUID", "NET_BIND_SERVICE"],
    "permitted": ["KILL", "NET_RAW", "NET_BIND_SERVICE"],
    "effective": ["KILL", "NET_RAW"],
    "inheritable": ["NET_RAW", "CHOWN", "NET_BIND_SERVICE"],
    # raised: only NET_RAW is also permitted and inheritable (CHOWN is not permitted, KILL not
    # inheritable); NET_BIND_SERVICE could be, but is not asked for
    "ambient": ["NET_RAW", "CHOWN", "KILL"],
}


@pytest.mark.parametrize("uid", [0, 1000])
def test_capability_sets_land_in_proc_status(ctx, bundle, uid):
    bundle.process["user"] = {"uid": uid, "gid": uid}
    bundle.process["capabilities"] = {s: cap_names(*v) for s, v in SETS.items()}
    info = ctx.probe(bundle)
    amb = cap_mask("NET_RAW")
    assert int(info["cap_bnd"], 16) == cap_mask(*SETS["bounding"])
    assert int(info["cap_inh"], 16) == cap_mask(*SETS["inheritable"])
    assert int(info["cap_amb"], 16) == amb
    # execve recomputes the rest (capabilities(7)). Root would get its whole bounding set, but
    # no_new_privs caps that at what it had: its permitted set (with the ambient one in it).
    # Anyone else keeps only the ambient set.
    want = cap_mask(*SETS["permitted"]) if uid == 0 else amb
    assert int(info["cap_prm"], 16) == want
    assert int(info["cap_eff"], 16) == want


@pytest.mark.husk_message
def test_unknown_capability_warns_and_the_container_runs(ctx, bundle):
    set_caps(bundle, "KILL", "CAP_FROBNICATE")
    bundle.probe()
    r = ctx.run(bundle)
    assert r.rc == 0, str(r)
    assert "CAP_FROBNICATE" in r.err and "warning" in r.err.lower(), str(r)
    assert int(r.json()["cap_bnd"], 16) == cap_mask("KILL")


# ---------------------------------------------------------------------------------------------
# seccomp profiles


def allow_all_but(*rules, **top):
    """A profile allowing everything but the given rules."""
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **top}


def rule(names, action="SCMP_ACT_ERRNO", errno_ret=MATCHED, args=None):
    r = {"names": [names] if isinstance(names, str) else list(names), "action": action}
    if errno_ret is not None and action == "SCMP_ACT_ERRNO":
        r["errnoRet"] = errno_ret
    if args:
        r["args"] = args
    return r


def getpriority(ctx, bundle, *pairs):
    """[(ret, errno)] of getpriority(which, who) for each (which, who)."""
    res = ctx.probe(bundle, "getpriority", *[f"{w}:{who}" for w, who in pairs])["results"]
    return [(x["ret"], x["errno"]) for x in res]


def matched(results):
    return [e == MATCHED for _, e in results]


def test_default_errno_ret(ctx, bundle):
    bundle.linux["seccomp"]["defaultErrnoRet"] = 1234
    report = security(ctx, bundle, "keyctl", "add_key", "clone3")
    assert report["keyctl"]["errno"] == 1234
    assert report["add_key"]["errno"] == 1234
    assert report["clone3"]["errno"] == errno.ENOSYS  # a rule's own errnoRet still wins


def test_errno_ret_per_rule(ctx, bundle):
    bundle.linux["seccomp"]["syscalls"].append(rule("keyctl", errno_ret=1235))
    report = security(ctx, bundle, "keyctl", "add_key")
    assert report["keyctl"]["errno"] == 1235
    assert report["add_key"]["errno"] == errno.EPERM  # the default action's


def test_rule_without_errno_ret_returns_eperm(ctx, bundle):
    """The runtime spec: a rule's errnoRet defaults to EPERM, whatever defaultErrnoRet says."""
    bundle.linux["seccomp"]["defaultErrnoRet"] = 1234
    bundle.linux["seccomp"]["syscalls"].append(rule("keyctl", errno_ret=None))
    report = security(ctx, bundle, "keyctl", "add_key")
    assert report["add_key"]["errno"] == 1234
    assert report["keyctl"]["errno"] == errno.EPERM, report


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_kill_actions_end_the_process_with_sigsys(ctx, bundle, action):
    bundle.linux["seccomp"] = allow_all_but(rule("getpriority", action))
    bundle.probe("getpriority", "0:0")
    r = ctx.run(bundle)
    assert r.rc == 128 + 31, str(r)  # SIGSYS
    assert r.out == "", str(r)


# (op, value, valueTwo, who values that match, who values that do not)
OPERATORS = [
    ("SCMP_CMP_NE", 5, None, [4, 6], [5]),
    ("SCMP_CMP_LT", 5, None, [3, 4], [5, 6]),
    ("SCMP_CMP_LE", 5, None, [4, 5], [6, 7]),
    ("SCMP_CMP_EQ", 5, None, [5], [4, 6]),
    ("SCMP_CMP_GE", 5, None, [5, 6], [3, 4]),
    ("SCMP_CMP_GT", 5, None, [6, 7], [4, 5]),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x50, [0x50, 0x5F], [0x40, 0x60, 0x05]),
]


@pytest.mark.parametrize("op,value,value2,hits,misses", OPERATORS, ids=[o[0] for o in OPERATORS])
def test_argument_operators(ctx, bundle, op, value, value2, hits, misses):
    arg = {"index": 1, "value": value, "op": op}
    if value2 is not None:
        arg["valueTwo"] = value2
    bundle.linux["seccomp"] = allow_all_but(rule("getpriority", args=[arg]))
    results = getpriority(ctx, bundle, *[(0, who) for who in hits + misses])
    assert matched(results) == [True] * len(hits) + [False] * len(misses), results


def test_conditions_on_one_argument_are_ored(ctx, bundle):
    """As runc: libseccomp cannot AND two comparisons of one argument, so each is its own rule."""
    args = [{"index": 1, "value": 3, "op": "SCMP_CMP_LE"},
            {"index": 1, "value": 10, "op": "SCMP_CMP_GE"}]
    bundle.linux["seccomp"] = allow_all_but(rule("getpriority", args=args))
    results = getpriority(ctx, bundle, (0, 2), (0, 3), (0, 5), (0, 9), (0, 10), (0, 12))
    assert matched(results) == [True, True, False, False, True, True], results


def test_conditions_on_different_arguments_are_anded(ctx, bundle):
    args = [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]
    bundle.linux["seccomp"] = allow_all_but(rule("getpriority", args=args))
    results = getpriority(ctx, bundle, (0, 7), (1, 7), (0, 8), (2, 7))
    assert matched(results) == [True, False, False, False], results


def host_runs_i386_syscalls(bundle):
    """Whether int 0x80 works on the host itself: some kernels (ia32_emulation=0, or
    hypervisors without it) fault on it with SIGSEGV, sandbox or not."""
    r = subprocess.run([str(bundle.rootfs / "probe"), "getpriority32", "0", "0"],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("arches", [["SCMP_ARCH_X86_64"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]],
                         ids=["native-only", "with-x86"])
def test_architectures(ctx, bundle, arches):
    if os.uname().machine != "x86_64":
        pytest.skip("the probe's 32-bit entry point is x86_64's")
    if not host_runs_i386_syscalls(bundle):
        pytest.skip("this kernel does not run i386 syscalls (int 0x80 faults outside any "
                    "sandbox too): there is no second syscall table to filter")
    bundle.linux["seccomp"] = allow_all_but(rule("getpriority"), architectures=arches)
    bundle.args("/bin/sh", "-c", "/probe getpriority 0:0; exec /probe getpriority32 0 0")
    r = ctx.run(bundle)
    lines = r.out.splitlines()
    assert json.loads(lines[0])["results"][0]["errno"] == MATCHED, str(r)
    if "SCMP_ARCH_X86" in arches:
        # the rule was compiled for the i386 syscall table too
        assert r.rc == 0, str(r)
        assert json.loads(lines[1]) == {"ret": -1, "errno": MATCHED}, str(r)
    else:
        # an architecture the filter does not know is killed, not let through
        assert r.rc == 128 + 31, str(r)
        assert len(lines) == 1, str(r)


def bad_action(sec):
    sec["syscalls"][0]["action"] = "SCMP_ACT_FOO"


def bad_default_action(sec):
    sec["defaultAction"] = "SCMP_ACT_BAR"


def bad_operator(sec):
    sec["syscalls"][0]["args"] = [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]


def bad_architecture(sec):
    sec["architectures"] = ["SCMP_ARCH_FOO"]


BAD_PROFILES = [
    ("action", bad_action, "linux.seccomp.syscalls[0].action", "SCMP_ACT_FOO"),
    ("defaultAction", bad_default_action, "linux.seccomp.defaultAction", "SCMP_ACT_BAR"),
    ("operator", bad_operator, "linux.seccomp.syscalls[0].args[0].op", "SCMP_CMP_FOO"),
    ("architecture", bad_architecture, "linux.seccomp.architectures", "SCMP_ARCH_FOO"),
]


@pytest.mark.husk_message
@pytest.mark.parametrize("edit,field,word", [b[1:] for b in BAD_PROFILES],
                         ids=[b[0] for b in BAD_PROFILES])
def test_bad_profile_names_the_field(ctx, bundle, edit, field, word):
    edit(bundle.linux["seccomp"])
    r = ctx.run(bundle)
    assert r.rc != 0, str(r)
    assert field in r.err and word in r.err, str(r)
    assert r.out == "", str(r)
    ctx.assert_nothing_left()


def test_errno_ret_on_an_action_without_errno_is_refused(ctx, bundle):
    """The runtime spec: "When the action doesn't support an errno, the runtime MUST print and
    error and fail." """
    bundle.linux["seccomp"] = allow_all_but(
        {"names": ["getpriority"], "action": "SCMP_ACT_KILL_PROCESS", "errnoRet": 5})
    r = ctx.run(bundle)
    assert r.rc != 0, str(r)
    assert "linux.seccomp.syscalls[0]" in r.err and "errnoRet" in r.err, str(r)
    ctx.assert_nothing_left()


def cache_files(ctx):
    d = ctx.state / ".seccomp-cache"
    return {p.name: p for p in d.iterdir()} if d.exists() else {}


@pytest.mark.husk_behaviour
def test_seccomp_cache_is_keyed_by_the_profile_and_reused(ctx):
    first = ctx.bundle("first")
    first.linux["seccomp"] = allow_all_but(rule("getpriority", errno_ret=1001))
    second = ctx.bundle("second")
    second.linux["seccomp"] = allow_all_but(rule("getpriority", errno_ret=1002))

    assert getpriority(ctx, first, (0, 0)) == [(-1, 1001)]
    files = cache_files(ctx)
    assert len(files) == 1, files
    (name_first,) = files
    assert name_first.endswith(".bpf") and len(name_first) == 64 + 4, name_first
    before = files[name_first].stat()

    # the same profile again: the same file, not rewritten
    assert getpriority(ctx, first, (0, 0)) == [(-1, 1001)]
    after = cache_files(ctx)
    assert list(after) == [name_first]
    assert (after[name_first].stat().st_ino, after[name_first].stat().st_mtime_ns) == (
        before.st_ino, before.st_mtime_ns)

    # a different profile: a file of its own
    assert getpriority(ctx, second, (0, 0)) == [(-1, 1002)]
    files = cache_files(ctx)
    assert len(files) == 2, files
    (name_second,) = set(files) - {name_first}

    # The cached program is what runs: put the second one under the first one's name.
    shutil.copyfile(files[name_second], files[name_first])
    assert getpriority(ctx, first, (0, 0)) == [(-1, 1002)]
    assert hashlib.sha256(files[name_first].read_bytes()).digest() == hashlib.sha256(
        files[name_second].read_bytes()).digest()


# ---------------------------------------------------------------------------------------------
# landlock (annotations)

LANDLOCK = {
    "run.husk.landlock.read": "/bin:/probe:/etc",
    "run.husk.landlock.write": "/mnt/w",
    "run.husk.landlock.tcp.bind": "8080",
    "run.husk.landlock.tcp.connect": "9090",
}


@pytest.mark.husk_behaviour  # landlock through husk's own annotations
@pytest.mark.parametrize("enabled", [True, False], ids=["landlock", "no-landlock"])
def test_landlock(ctx, bundle, enabled):
    (bundle.rootfs / "srv" / "app" / "secret").write_text("not for you")
    bundle.add_mount("/mnt/w", "tmpfs", "tmpfs", ["size=64k"])
    bundle.add_mount("/mnt/other", "tmpfs", "tmpfs", ["size=64k"])
    if enabled:
        bundle.config["annotations"] = dict(LANDLOCK)
    (passwd, secret, write_w, write_other, bind_ok, bind_other, connect_ok,
     connect_other) = ctx.probes(
        bundle, ["read", "/etc/passwd"], ["read", "/srv/app/secret"], ["write", "/mnt/w/f"],
        ["write", "/mnt/other/f"], ["bind", 8080], ["bind", 8081], ["connect", 9090],
        ["connect", 9091])
    # allowed either way
    assert passwd["data"].startswith("root:"), passwd
    assert write_w["ok"], write_w
    assert bind_ok["ok"], bind_ok
    # nothing listens, and lo may be down: refused or unreachable, but not denied
    assert connect_ok["errno"] in (errno.ECONNREFUSED, errno.ENETUNREACH), connect_ok
    if enabled:
        assert secret == {"errno": errno.EACCES}
        assert write_other == {"ok": False, "errno": errno.EACCES}
        assert bind_other == {"ok": False, "errno": errno.EACCES}
        assert connect_other == {"ok": False, "errno": errno.EACCES}
    else:  # the same probes get through without the rules
        assert secret == {"data": "not for you"}
        assert write_other["ok"], write_other
        assert bind_other["ok"], bind_other
        assert connect_other["errno"] in (errno.ECONNREFUSED, errno.ENETUNREACH), connect_other
