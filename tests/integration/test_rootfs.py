# SPDX-License-Identifier: Apache-2.0
"""The container's filesystem: root, pivot_root, mounts and their flags, /dev."""

import errno
import json
import os
import shlex

import pytest

from conftest import mountinfo, wait_for


def mount_at(info, target):
    """The top mount at target in the probe's mountinfo (the last one listed wins)."""
    found = [m for m in info["mounts"] if m["target"] == target]
    assert found, f"no mount at {target}: {[m['target'] for m in info['mounts']]}"
    return found[-1]


def flags(mount):
    return set(mount["options"].split(","))


def super_opts(mount):
    return set(mount["super_options"].split(","))


def assert_sees_rootfs_as_root(ctx, lines, info):
    marker, host_dir = lines[:2]
    assert marker["type"] == "file"
    assert host_dir["errno"] == errno.ENOENT  # the host's tree is out of reach
    # Only the container's mounts are left: the old root is gone, not merely hidden.
    allowed = ("/proc", "/sys", "/dev") + tuple(m["destination"] for m in info["mounts_config"])
    stray = [m["target"] for m in info["mounts"]
             if m["target"] != "/" and not m["target"].startswith(allowed)]
    assert not stray


@pytest.mark.parametrize("no_pivot", [False, True], ids=["pivot_root", "no-pivot"])
def test_process_sees_rootfs_as_root(ctx, bundle, no_pivot):
    (bundle.rootfs / "rootfs-marker").write_text("x")
    commands = [["stat", "/rootfs-marker"], ["stat", ctx.dir], ["info"]]
    bundle.args("/bin/sh", "-c", "; ".join(shlex.join(["/probe", *map(str, c)]) for c in commands))
    c = ctx.create(bundle, *(["--no-pivot"] if no_pivot else []))
    assert c.create_result.rc == 0, str(c.create_result)
    r = c.start()
    assert r.rc == 0, str(r)
    ctx.wait_status(c.id, "stopped")
    lines = c.output_lines()
    info = dict(lines[2], mounts_config=bundle.config["mounts"])
    assert_sees_rootfs_as_root(ctx, lines, info)


def test_readonly_root_refuses_writes(ctx, bundle):
    bundle.config["root"]["readonly"] = True
    info, write = ctx.probes(bundle, ["info"], ["write", "/new-file"])
    assert info["root_readonly"] is True
    assert "ro" in flags(mount_at(info, "/"))
    assert write == {"ok": False, "errno": errno.EROFS}


def test_writable_root_writes_land_in_the_bundle(ctx, bundle):
    bundle.config["root"]["readonly"] = False
    info, write = ctx.probes(bundle, ["info"], ["write", "/new-file"])
    assert info["root_readonly"] is False
    assert write["ok"], write
    assert (bundle.rootfs / "new-file").read_text() == "written by probe\n"


def test_tmpfs_mount_with_size_and_mode(ctx, bundle):
    bundle.add_mount("/mnt/t", "tmpfs", "tmpfs", ["size=1m", "mode=1777"])
    info, st = ctx.probes(bundle, ["info"], ["stat", "/mnt/t"])
    m = mount_at(info, "/mnt/t")
    assert m["fstype"] == "tmpfs"
    assert "size=1024k" in super_opts(m)
    assert st["mode"] == 0o1777  # mountinfo hides tmpfs's default mode, 1777, so stat it


def test_bind_mount_flags(ctx, bundle):
    src = ctx.dir / "src"
    src.mkdir()
    (src / "hello").write_text("hi")
    bundle.add_mount("/mnt/b", "bind", src, ["bind", "ro", "nosuid", "nodev", "noexec"])
    info, hello, write = ctx.probes(bundle, ["info"], ["read", "/mnt/b/hello"],
                                    ["write", "/mnt/b/new"])
    assert {"ro", "nosuid", "nodev", "noexec"} <= flags(mount_at(info, "/mnt/b"))
    assert hello == {"data": "hi"}
    assert write["errno"] == errno.EROFS
    assert not (src / "new").exists()


@pytest.mark.parametrize("option,recursive", [("bind", False), ("rbind", True)])
def test_rbind_carries_submounts(ctx, bundle, option, recursive):
    src = ctx.dir / "src"
    sub = ctx.host_mount(src / "sub", "-t", "tmpfs", "tmpfs")
    (sub / "in-tmpfs").write_text("x")
    bundle.add_mount("/mnt/b", "bind", src, [option])
    info, st = ctx.probes(bundle, ["info"], ["stat", "/mnt/b/sub/in-tmpfs"])
    submounts = [m for m in info["mounts"] if m["target"] == "/mnt/b/sub"]
    if recursive:
        assert submounts and submounts[-1]["fstype"] == "tmpfs"
        assert st["type"] == "file"
    else:
        assert not submounts
        assert st["errno"] == errno.ENOENT


def test_relative_bind_source_is_resolved_against_the_bundle(ctx, bundle):
    (bundle.path / "data").mkdir()
    (bundle.path / "data" / "hello").write_text("from the bundle")
    bundle.add_mount("/mnt/rel", "bind", "data", ["bind"])
    bundle.probe("read", "/mnt/rel/hello")
    r = ctx.run(bundle, cwd="/")  # not the bundle dir, so a cwd-relative lookup would miss
    assert r.rc == 0, str(r)
    assert r.json() == {"data": "from the bundle"}


@pytest.mark.parametrize("propagation,propagates", [("rslave", True), ("rprivate", False)])
def test_bind_propagation(ctx, bundle, propagation, propagates):
    shared = ctx.host_mount(ctx.dir / "shared", "-t", "tmpfs", "tmpfs")
    ctx.host_mount(shared, "--make-shared")
    bundle.add_mount("/mnt/p", "bind", shared, ["rbind", propagation])
    c = ctx.run_detached(bundle)

    def container_mount(target):
        return [m for m in mountinfo(f"/proc/{c.pid}/mountinfo") if m["target"] == target]

    fields = container_mount("/mnt/p")[-1]["propagation"]
    if propagates:
        assert any(f.startswith("master:") for f in fields), fields
    else:
        assert fields == [], fields
    # What a user relies on: a mount made later on the host shows up in a slave, not in a private.
    ctx.host_mount(shared / "late", "-t", "tmpfs", "tmpfs")
    if propagates:
        wait_for(lambda: container_mount("/mnt/p/late"), 5, "the mount to propagate")
    else:
        assert not container_mount("/mnt/p/late")


def test_default_spec_mounts(ctx, bundle):
    info = ctx.probe(bundle)
    checked = []
    for want in bundle.config["mounts"]:
        if want["type"] in ("cgroup", "bind"):
            continue  # cgroup v1 is a tmpfs with binds under it, not one mount
        m = mount_at(info, want["destination"])
        assert m["fstype"] == want["type"], m
        opts = want.get("options", [])
        assert {f for f in opts if f in ("ro", "nosuid", "nodev", "noexec")} <= flags(m), m
        for opt in opts:
            key, _, value = opt.partition("=")
            if key == "mode" and value.lstrip("0") == "1777":
                continue  # tmpfs's default: the kernel leaves it out of mountinfo
            if key in ("mode", "ptmxmode", "gid"):
                assert f"{key}={value.lstrip('0') or '0'}" in super_opts(m), (opt, m)
            elif key == "size":
                assert opt in super_opts(m), (opt, m)
        checked.append(want["type"])
    assert {"proc", "sysfs", "devpts", "mqueue", "tmpfs"} <= set(checked)
    devpts = mount_at(info, "/dev/pts")
    assert "ptmxmode=666" in super_opts(devpts)


DEFAULT_DEVICES = {
    "/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
    "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0),
}


def test_default_devices(ctx, bundle):
    results = ctx.probes(bundle, *[["stat", d] for d in DEFAULT_DEVICES])
    for st in results:
        assert st.get("type") == "char", st
        assert (st["major"], st["minor"]) == DEFAULT_DEVICES[st["path"]], st
        assert st["mode"] == 0o666, st


def test_linux_devices_entry(ctx, bundle):
    bundle.linux["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600,
         "uid": 1, "gid": 2}]
    bundle.linux.setdefault("resources", {}).setdefault("devices", []).append(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    # write as the owner: root without CAP_DAC_OVERRIDE may not
    bundle.process["user"] = {"uid": 1, "gid": 2}
    st, write = ctx.probes(bundle, ["stat", "/dev/mynull"], ["write", "/dev/mynull"])
    assert st["type"] == "char", st
    assert (st["major"], st["minor"], st["mode"], st["uid"], st["gid"]) == (1, 3, 0o600, 1, 2)
    assert write["ok"], write


DEV_LINKS = {
    "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
    "/dev/stderr": "/proc/self/fd/2", "/dev/ptmx": "pts/ptmx",
}


def test_dev_symlinks(ctx, bundle):
    for st in ctx.probes(bundle, *[["stat", link] for link in DEV_LINKS]):
        assert st.get("type") == "symlink", st
        assert st["target"] == DEV_LINKS[st["path"]], st


def evil_symlink(ctx, bundle):
    """rootfs/evil -> <test dir>/outside: an absolute path that also exists, empty, on the host.
    A mount destination under /evil must be resolved inside the rootfs, never on the host."""
    outside = ctx.dir / "outside"
    outside.mkdir()
    os.symlink(outside, bundle.rootfs / "evil")
    src = ctx.dir / "src"
    src.mkdir()
    (src / "marker").write_text("m")
    return outside, src, bundle.rootfs / str(outside).lstrip("/")


def test_mount_through_symlink_to_host_path_lands_in_rootfs(ctx, bundle):
    outside, src, inside = evil_symlink(ctx, bundle)
    (inside / "newdir").mkdir(parents=True)  # the destination exists in the rootfs only
    bundle.add_mount("/evil/newdir", "bind", src, ["bind"])
    marker, info = ctx.probes(bundle, ["read", "/evil/newdir/marker"], ["info"])
    assert marker == {"data": "m"}
    assert mount_at(info, f"{outside}/newdir")
    assert os.listdir(outside) == []


def test_mount_through_symlink_to_host_path_creates_destination_in_rootfs(ctx, bundle):
    outside, src, inside = evil_symlink(ctx, bundle)
    bundle.add_mount("/evil/newdir", "bind", src, ["bind"])  # missing: the runtime makes it
    bundle.add_mount("/evil/tmp", "tmpfs", "tmpfs", [])
    bundle.args("/bin/sh", "-c", "/probe read /evil/newdir/marker; /probe info")
    r = ctx.run(bundle)
    assert os.listdir(outside) == [], str(r)  # whatever else happened, the host was not touched
    assert r.rc == 0, str(r)
    marker, info = [json.loads(line) for line in r.out.splitlines()]
    assert marker == {"data": "m"}
    assert mount_at(info, f"{outside}/tmp")["fstype"] == "tmpfs"
    assert (inside / "newdir").is_dir() and (inside / "tmp").is_dir()
