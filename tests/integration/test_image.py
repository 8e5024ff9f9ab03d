# SPDX-License-Identifier: Apache-2.0
"""`husk image import`: OCI image layouts into the content store, bundles and images out of it,
and untrusted layers refused or neutralised with a message naming the entry.

Layouts are built here: with umoci from a busybox-static rootfs when Debian's umoci is installed,
and by hand (tarfile, gzip, the zstd CLI) for whiteouts and every malicious archive."""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
REF = "org.opencontainers.image.ref.name"


# ---- building layouts


def _member(name, kind="file", data=b"", target="", mode=None, size=None):
    ti = tarfile.TarInfo(name)
    ti.mtime = 1_700_000_000
    if kind == "file":
        ti.size = len(data) if size is None else size
        ti.mode = 0o644 if mode is None else mode
    elif kind == "dir":
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755 if mode is None else mode
    elif kind == "symlink":
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    elif kind == "hardlink":
        ti.type, ti.linkname = tarfile.LNKTYPE, target
    elif kind == "chardev":
        ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 8, 0, 0o600
    return ti, data


def tar_bytes(members, truncate=None):
    """A tar of (TarInfo, data) pairs; `truncate` cuts the stream to that many bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in members:
            if ti.isfile() and len(data) != ti.size:
                buf.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                buf.write(data)  # a header promising more than follows
                return buf.getvalue()
            t.addfile(ti, io.BytesIO(data) if ti.isfile() else None)
    raw = buf.getvalue()
    return raw[:truncate] if truncate else raw


def compress(raw, how):
    if how == "gzip":
        return gzip.compress(raw, mtime=0), LAYER + "+gzip"
    if how == "zstd":
        if not shutil.which("zstd"):
            pytest.skip("the zstd CLI is needed to build a zstd layer")
        out = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True)
        return out.stdout, LAYER + "+zstd"
    return raw, LAYER


class Layout:
    """An OCI image layout directory written blob by blob."""

    def __init__(self, path):
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data):
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    def image(self, layers, cmd=("/bin/sh",), ref="test", env=None):
        """layers: [(raw tar bytes, "gzip"|"zstd"|None)]."""
        descs = []
        for raw, how in layers:
            data, media = compress(raw, how)
            descs.append({"mediaType": media, **self.blob(data)})
        config = {"architecture": "amd64", "os": "linux",
                  "config": {"Cmd": list(cmd), "Env": env or ["PATH=/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": []}}
        cdesc = {"mediaType": CONFIG, **self.blob(json.dumps(config).encode())}
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": cdesc, "layers": descs}
        mdesc = {"mediaType": MANIFEST, **self.blob(json.dumps(manifest).encode()),
                 "annotations": {REF: ref}}
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                          "manifests": [mdesc]}))
        return descs


def busybox_layer():
    """A busybox-static rootfs with a few applets as one tar."""
    members = [_member("bin", "dir"), _member("tmp", "dir", mode=0o1777)]
    busybox = Path("/bin/busybox").read_bytes()
    members.append(_member("bin/busybox", data=busybox, mode=0o755))
    for applet in ("sh", "ls", "cat", "echo", "test"):
        members.append(_member(f"bin/{applet}", "symlink", target="busybox"))
    return members


# ---- driving husk


def img(ctx, *args):
    """`husk image ...` with a state dir of its own: the store is a directory in it."""
    return ctx.runtime("image", *args, global_args=("--root", str(ctx.dir / "imgstate")))


def no_staging_left(parent):
    left = [p.name for p in Path(parent).iterdir() if ".husk-" in p.name]
    assert not left, f"staging directories left: {left}"


def run_bundle(ctx, bundle, *args):
    config = json.loads((Path(bundle) / "config.json").read_text())
    if args:
        config["process"]["args"] = list(args)
    config["process"]["env"] = config["process"].get("env", []) + [
        f"HUSK_IT_TOKEN={ctx.token}"]
    (Path(bundle) / "config.json").write_text(json.dumps(config))
    return ctx.runtime("run", "--bundle", bundle, ctx.new_id())


# ---- import and run


def test_import_umoci_image_and_run(ctx):
    if not shutil.which("umoci"):
        pytest.skip("umoci is not installed")
    layout, work = ctx.dir / "oci", ctx.dir / "umoci-bundle"
    subprocess.run(["umoci", "init", "--layout", layout], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:bb"], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:bb", work], check=True,
                   capture_output=True)
    rootfs = work / "rootfs"
    (rootfs / "bin").mkdir()
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "cat", "ls"):
        os.symlink("busybox", rootfs / "bin" / applet)
    (rootfs / "greeting").write_text("hello from umoci\n")
    subprocess.run(["umoci", "repack", "--image", f"{layout}:bb", work], check=True)
    subprocess.run(["umoci", "config", "--image", f"{layout}:bb", "--config.cmd", "/bin/cat",
                    "--config.cmd", "/greeting"], check=True)

    out = ctx.dir / "bb-bundle"
    r = img(ctx, "import", "--ref", "bb", "-o", out, layout)
    assert r.rc == 0, str(r)
    assert "as bb" in r.out
    assert (out / "rootfs" / "bin" / "busybox").stat().st_mode & 0o111
    assert os.readlink(out / "rootfs" / "bin" / "sh") == "busybox"
    r = run_bundle(ctx, out)
    assert r.rc == 0 and r.out == "hello from umoci\n", str(r)

    listing = img(ctx, "ls").json()
    assert [e["ref"] for e in listing] == ["bb"]
    store = ctx.dir / "imgstate" / "images"
    assert (store / "oci-layout").exists()
    for blob in (store / "blobs" / "sha256").iterdir():  # content-addressed: name == sha256
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def test_import_layers_whiteouts_opaque_from_tar(ctx):
    """Three layers (gzip, zstd, plain) of a layout given as a tar: .wh. files remove, an opaque
    directory hides what lower layers put in it but keeps its own layer's entries."""
    lower = busybox_layer() + [
        _member("a", "dir"), _member("a/x", data=b"x"), _member("a/y", data=b"y"),
        _member("b", data=b"b"), _member("c", "dir"), _member("c/old", data=b"old"),
        _member("c/sub", "dir"), _member("c/sub/deep", data=b"deep")]
    middle = [_member("c/new", data=b"new"), _member("c/.wh..wh..opq"), _member(".wh.b"),
              _member("a/.wh.x"), _member("a/z", data=b"z", mode=0o4755)]
    upper = [_member("b", data=b"b again")]
    layout = Layout(ctx.dir / "layout")
    layout.image([(tar_bytes(lower), "gzip"), (tar_bytes(middle), "zstd"),
                  (tar_bytes(upper), None)], cmd=("/bin/ls", "/c"))
    archive = ctx.dir / "layout.tar"
    with tarfile.open(archive, "w") as t:
        for name in ("oci-layout", "index.json", "blobs"):
            t.add(layout.path / name, arcname=name)

    out = ctx.dir / "rootfs"
    r = img(ctx, "import", "-f", "rootfs", "-o", out, archive)
    assert r.rc == 0, str(r)
    assert sorted(p.name for p in (out / "a").iterdir()) == ["y", "z"]
    assert (out / "a" / "z").stat().st_mode & 0o7777 == 0o4755
    assert sorted(p.name for p in (out / "c").iterdir()) == ["new"]
    assert (out / "b").read_text() == "b again"
    for mp in ("proc", "sys", "dev"):
        assert (out / mp).is_dir()
    no_staging_left(ctx.dir)


def test_import_erofs_bundle_runs_and_leaves_nothing(ctx):
    layout = Layout(ctx.dir / "layout")
    layout.image([(tar_bytes(busybox_layer() + [_member("msg", data=b"from erofs\n")]), "gzip")],
                 cmd=("/bin/cat", "/msg"))
    out = ctx.dir / "b"
    r = img(ctx, "import", "-o", out, "--image", "erofs", layout.path)
    assert r.rc == 0, str(r)
    assert (out / "rootfs.erofs").read_bytes()[1024:1028] == bytes.fromhex("e2e1f5e0")
    assert not any((out / "rootfs").iterdir())
    r = run_bundle(ctx, out)
    assert r.rc == 0 and r.out == "from erofs\n", str(r)
    image = str(out / "rootfs.erofs")
    assert image not in Path("/proc/self/mountinfo").read_text()
    loops = subprocess.run(["losetup", "-j", image], capture_output=True, text=True).stdout
    assert loops == ""


# ---- clear errors


def test_digest_mismatch_is_refused(ctx):
    layout = Layout(ctx.dir / "layout")
    descs = layout.image([(tar_bytes(busybox_layer()), "gzip")])
    blob = layout.path / "blobs" / "sha256" / descs[0]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = ctx.dir / "out"
    r = img(ctx, "import", "-o", out, layout.path)
    assert r.rc != 0
    assert "digest mismatch" in r.err and descs[0]["digest"] in r.err, str(r)
    assert not out.exists()
    stored = ctx.dir / "imgstate" / "images" / "blobs" / "sha256"
    assert not (stored / descs[0]["digest"][7:]).exists()
    assert not [p for p in stored.iterdir() if p.name.startswith(".tmp")]


def test_missing_blob_and_not_a_layout(ctx):
    layout = Layout(ctx.dir / "layout")
    descs = layout.image([(tar_bytes(busybox_layer()), None)])
    (layout.path / "blobs" / "sha256" / descs[0]["digest"][7:]).unlink()
    r = img(ctx, "import", layout.path)
    assert r.rc != 0 and descs[0]["digest"] in r.err, str(r)
    (ctx.dir / "plain").mkdir()
    r = img(ctx, "import", ctx.dir / "plain")
    assert r.rc != 0 and "not an OCI image layout" in r.err, str(r)


# ---- malicious archives: refused with the entry named, the destination clean

REFUSED = {
    "dotdot": ([_member("../escape", data=b"x")], "'../escape'"),
    "dotdot-inside": ([_member("a/../../escape", data=b"x")], "'a/../../escape'"),
    "symlink-climbs-out": ([_member("up", "symlink", target="../../../../../..")], "'up'"),
    "hardlink-dotdot": ([_member("pw", "hardlink", target="../../../etc/passwd")], "'pw'"),
    "hardlink-absolute": ([_member("pw", "hardlink", target="/etc/passwd")], "'pw'"),
    "huge-header": ([_member("big", data=b"abc", size=1 << 40)], "'big'"),
    # "a -> ." puts a/b/link in b: from there "../../x" leaves the root
    "symlink-through-parent-symlink": ([_member("a", "symlink", target="."),
                                        _member("a/b/link", "symlink", target="../../x")],
                                       "'a/b/link'"),
    "truncated": ([_member("cut", data=os.urandom(200_000))], None),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_malicious_layer_refused(ctx, case):
    members, named = REFUSED[case]
    raw = tar_bytes(busybox_layer() + members, truncate=-70_000 if case == "truncated" else None)
    layout = Layout(ctx.dir / "layout")
    layout.image([(raw, "gzip")])
    out = ctx.dir / "out"
    r = img(ctx, "import", "-o", out, layout.path)
    assert r.rc != 0, str(r)
    if named:
        assert named in r.err, str(r)
    else:
        assert "cut" in r.err or "runcated" in r.err, str(r)
    assert not out.exists()
    assert not (ctx.dir / "escape").exists() and not (ctx.dir.parent / "escape").exists()
    no_staging_left(ctx.dir)


def test_file_over_the_size_limit_refused(ctx):
    layout = Layout(ctx.dir / "layout")
    layout.image([(tar_bytes([_member("blob", data=b"\0" * (2 << 20))]), "gzip")])
    out = ctx.dir / "out"
    r = img(ctx, "import", "--max-file-size", "1M", "-o", out, layout.path)
    assert r.rc != 0 and "'blob'" in r.err and "limit" in r.err, str(r)
    assert not out.exists()
    no_staging_left(ctx.dir)


def test_absolute_symlink_and_device_neutralised(ctx):
    """An absolute symlink resolves inside the root, so writing through it stays in the image;
    a device node is left out with a warning naming it."""
    name = f"pwned-{ctx.token}"
    layout = Layout(ctx.dir / "layout")
    layout.image([(tar_bytes(busybox_layer() + [
        _member("sneaky", "symlink", target="/tmp"),
        _member(f"sneaky/{name}", data=b"gotcha"),
        _member("dev", "dir"), _member("dev/sda", "chardev")]), "gzip")])
    out = ctx.dir / "out"
    r = img(ctx, "import", "-f", "rootfs", "-o", out, layout.path)
    assert r.rc == 0, str(r)
    assert not Path("/tmp", name).exists(), "a layer wrote on the host through a symlink"
    assert (out / "tmp" / name).read_bytes() == b"gotcha"
    assert "'dev/sda'" in r.err and "device" in r.err, str(r)
    assert not (out / "dev" / "sda").exists()


def test_whiteout_of_dotdot_refused_and_nothing_outside_removed(ctx):
    """A layer entry ".wh..." whites out "..": the directory holding the output (a canary and a
    sibling folder in it) must come through untouched, and the entry is named."""
    app = ctx.dir / "app"
    (app / "sibling").mkdir(parents=True)
    (app / "sibling" / "data").write_text("keep")
    (app / "canary").write_text("keep")
    for entry in (".wh...", "sub/.wh...", ".wh..", ".wh."):
        layout = Layout(ctx.dir / f"layout{len(entry)}{entry.count('/')}")
        layout.image([(tar_bytes(busybox_layer() + [_member("sub", "dir"), _member(entry)]),
                       "gzip")])
        out = app / "bundle"
        r = img(ctx, "import", "-o", out, layout.path)
        assert r.rc != 0, str(r)
        assert f"whiteout '{entry}'" in r.err and "is not the name of an entry" in r.err, str(r)
        assert (app / "canary").read_text() == "keep"
        assert (app / "sibling" / "data").read_text() == "keep"
        assert not out.exists()
        no_staging_left(app)


def test_decompression_bomb_refused(ctx):
    """200 MiB of zeros in a zstd layer of a few KB: refused as a bomb once it expands more than
    100 times, long before it is written out; --max-ratio 0 lets it through, as a hole."""
    if not shutil.which("zstd"):
        pytest.skip("the zstd CLI is needed to build a zstd layer")
    size = 200 << 20
    ti = tarfile.TarInfo("zeros")
    ti.size, ti.mode, ti.mtime = size, 0o644, 1_700_000_000
    head = ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    z = subprocess.Popen(["zstd", "-q", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    z.stdin.write(head)
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        z.stdin.write(chunk)
    z.stdin.write(bytes(1024))  # the end-of-archive blocks
    z.stdin.close()
    data = z.stdout.read()
    assert z.wait() == 0
    assert len(data) < 100_000
    layout = Layout(ctx.dir / "layout")
    blob = layout.blob(data)
    config = layout.blob(json.dumps({"os": "linux", "config": {"Cmd": ["/x"]}}).encode())
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                "config": {"mediaType": CONFIG, **config},
                "layers": [{"mediaType": LAYER + "+zstd", **blob}]}
    mdesc = {"mediaType": MANIFEST, **layout.blob(json.dumps(manifest).encode())}
    (layout.path / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                        "manifests": [mdesc]}))
    out = ctx.dir / "out"
    r = img(ctx, "import", "-f", "rootfs", "-o", out, layout.path)
    assert r.rc != 0, str(r)
    assert "decompression bomb" in r.err and "layer 1" in r.err, str(r)
    assert not out.exists()
    no_staging_left(ctx.dir)
    r = img(ctx, "import", "--max-ratio", "0", "-f", "rootfs", "-o", out, layout.path)
    assert r.rc == 0, str(r)
    st = (out / "zeros").stat()
    assert st.st_size == size and st.st_blocks * 512 < (1 << 20)


def test_import_makes_tmp_1777(ctx):
    """An image without /tmp gets one for the read-only root's tmpfs mount point, world-writable
    and sticky whatever the umask."""
    layout = Layout(ctx.dir / "layout")
    layout.image([(tar_bytes([_member("bin", "dir"),
                              _member("bin/busybox", data=Path("/bin/busybox").read_bytes(),
                                      mode=0o755)]), "gzip")])
    out = ctx.dir / "out"
    r = img(ctx, "import", "-f", "rootfs", "-o", out, layout.path)
    assert r.rc == 0, str(r)
    assert (out / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (out / "proc").stat().st_mode & 0o7777 == 0o755
