# SPDX-License-Identifier: Apache-2.0
"""`husk pack`: a program's closure read from its files (never run), scripts with their
interpreter, `--trace` for what only running shows (dlopen), the output formats, and running
each result under husk in a rootfs that holds nothing else."""

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest


def pack(ctx, *args):
    return ctx.runtime("pack", "-e", f"HUSK_IT_TOKEN={ctx.token}", *args, timeout=60)


def manifest(bundle):
    return {f["path"]: f for f in json.loads((Path(bundle) / "manifest.json").read_text())["files"]}


def run(ctx, bundle, *args, readonly=None):
    if args or readonly is not None:
        path = Path(bundle) / "config.json"
        config = json.loads(path.read_text())
        if args:
            config["process"]["args"] = list(args)
        if readonly is not None:
            config["root"]["readonly"] = readonly
        path.write_text(json.dumps(config))
    return ctx.runtime("run", "--bundle", bundle, ctx.new_id())


def tree(root):
    """Every path under root, relative, as the rootfs holds it."""
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add("/" + os.path.relpath(os.path.join(d, n), root))
    return out


def image_mounted(image):
    return str(image) in Path("/proc/self/mountinfo").read_text()


def loops_of(image):
    return subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout


def test_pack_ls_closure_and_run(ctx):
    out = ctx.dir / "ls"
    r = pack(ctx, "-o", out, "/bin/ls")
    assert r.rc == 0, str(r)
    m = manifest(out)
    # The rootfs holds what the manifest lists and nothing else.
    assert tree(out / "rootfs") == set(m) - {"/"}
    files = {p: f for p, f in m.items() if f["type"] == "file"}
    libs = {os.path.basename(p) for p in files}
    assert {"ls", "libc.so.6", "libselinux.so.1"} <= libs, sorted(libs)
    assert any(f["reason"].startswith("interpreter (PT_INTERP)") for f in m.values())
    assert any("DT_NEEDED libselinux.so.1" in f["reason"] for f in m.values())
    # Symlinks and modes are kept: Debian's merged /usr shows as links.
    if os.path.islink("/bin"):
        assert m["/bin"]["type"] == "symlink" and m["/bin"]["target"] == os.readlink("/bin")
    ls_path = next(p for p in files if p.endswith("/ls"))
    assert os.stat(out / "rootfs" / ls_path.lstrip("/")).st_mode & 0o777 == 0o755
    r = run(ctx, out, "/bin/ls", "/")
    assert r.rc == 0, str(r)
    assert set(r.out.split()) <= {"bin", "dev", "lib", "lib64", "proc", "sys", "tmp", "usr",
                                  "sbin", "lib32", "libx32"}, r.out


@pytest.mark.parametrize("image,readonly", [("erofs", True), ("erofs", False),
                                            ("squashfs", False)])
def test_pack_image_bundle_runs_from_image(ctx, image, readonly):
    """The rootfs stays an image: mounted read-only in the container's own mount namespace (with
    a tmpfs overlay when the root is writable); nothing outlives the container."""
    out = ctx.dir / f"ls-{image}"
    r = pack(ctx, "--image", image, "-o", out, "/bin/ls")
    assert r.rc == 0, str(r)
    img = out / f"rootfs.{image}"
    config = json.loads((out / "config.json").read_text())
    assert config["annotations"]["run.husk.rootfs.image"] == img.name
    assert not any((out / "rootfs").iterdir())
    if readonly:
        r = run(ctx, out, "/bin/ls", "/usr/bin", readonly=True)
        assert r.rc == 0 and r.out.split() == ["ls"], str(r)
    else:
        # Writes go to the tmpfs upper layer: the image stays as it was.
        before = img.read_bytes()
        r = run(ctx, out, "/bin/ls", "-d", "/usr/bin/ls", "/bin", readonly=False)
        assert r.rc == 0, str(r)
        assert img.read_bytes() == before
    assert not image_mounted(img)
    assert loops_of(img) == ""


def test_pack_python_script(ctx):
    app = ctx.dir / "app"
    app.mkdir()
    (app / "helper.py").write_text("import os.path\n\ndef greet(n):\n    return 'hi ' + n\n")
    script = app / "main.py"
    script.write_text("#!/usr/bin/env python3\nimport json, sys\nfrom helper import greet\n"
                      "print(json.dumps({'msg': greet('husk'), 'argv': sys.argv[1:]}))\n")
    script.chmod(0o755)
    out = ctx.dir / "py"
    r = pack(ctx, "-o", out, script)
    assert r.rc == 0, str(r)
    m = manifest(out)
    assert str(app / "helper.py") in m
    assert any(p.endswith("/json/__init__.py") for p in m)
    # Only what the script needs of the standard library, not all of it.
    assert not any(p.endswith("/tkinter/__init__.py") or "/test/" in p for p in m)
    r = run(ctx, out, str(script), "x")
    assert r.rc == 0, str(r)
    assert json.loads(r.out) == {"msg": "hi husk", "argv": ["x"]}


def test_pack_shell_script_commands(ctx):
    script = ctx.dir / "job.sh"
    script.write_text("#!/bin/sh\nset -e\nfor w in a b; do echo \"$w\"; done | cat\n"
                      "ls / | wc -l >/dev/null\n")
    script.chmod(0o755)
    out = ctx.dir / "sh"
    r = pack(ctx, "-o", out, script)
    assert r.rc == 0, str(r)
    reasons = {os.path.basename(p): f["reason"] for p, f in manifest(out).items()}
    assert "interpreter (#!)" in reasons[os.path.basename(os.path.realpath("/bin/sh"))]
    assert reasons["cat"].startswith("command 'cat'") and reasons["wc"].startswith("command 'wc'")
    r = run(ctx, out)
    assert r.rc == 0 and r.out == "a\nb\n", str(r)


def _build_dlopen_program(ctx):
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    d = ctx.dir / "dl"
    (d / "plugins").mkdir(parents=True)
    (d / "plug.c").write_text("#include <math.h>\ndouble plug(double x) { return sqrt(x); }\n")
    (d / "main.c").write_text(
        "#include <dlfcn.h>\n#include <stdio.h>\n"
        "int main(void) {\n"
        "  void *h = dlopen(\"libhuskplug.so\", RTLD_NOW);\n"
        "  if (!h) { fprintf(stderr, \"dlopen: %s\\n\", dlerror()); return 3; }\n"
        "  double (*f)(double) = (double (*)(double))dlsym(h, \"plug\");\n"
        "  printf(\"plugin: %.0f\\n\", f(81.0));\n  return 0;\n}\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", d / "plugins" / "libhuskplug.so",
                    d / "plug.c", "-lm"], check=True)
    subprocess.run(["cc", "-o", d / "prog", d / "main.c", "-Wl,-rpath,$ORIGIN/plugins"],
                   check=True)
    return d / "prog"


def test_pack_dlopen_needs_trace(ctx):
    prog = _build_dlopen_program(ctx)
    static = ctx.dir / "static"
    r = pack(ctx, "-o", static, prog)
    assert r.rc == 0, str(r)
    assert not any(p.endswith("libhuskplug.so") for p in manifest(static))
    r = run(ctx, static)
    assert r.rc == 3 and "libhuskplug.so" in r.err, str(r)

    traced = ctx.dir / "traced"
    r = pack(ctx, "--trace", "-o", traced, "--", prog)
    assert r.rc == 0, str(r)
    m = manifest(traced)
    plug = str(prog.parent / "plugins" / "libhuskplug.so")
    assert m[plug]["reason"].startswith("opened while tracing"), m[plug]
    # The plugin's own closure comes with it (libm, found by DT_NEEDED).
    assert any(os.path.basename(p).startswith("libm.so") for p in m)
    r = run(ctx, traced)
    assert r.rc == 0 and r.out == "plugin: 9\n", str(r)


def test_pack_formats(ctx):
    for fmt, check in (("rootfs", None), ("tar", None), ("erofs", (1024, "e2e1f5e0")),
                       ("squashfs", (0, "68737173"))):
        out = ctx.dir / f"ls.{fmt}"
        r = pack(ctx, "-f", fmt, "-o", out, "/bin/ls")
        assert r.rc == 0, str(r)
        assert Path(f"{out}.manifest.json").exists()
        if fmt == "rootfs":
            assert (out / "proc").is_dir() and (out / "usr" / "bin" / "ls").exists()
        elif fmt == "tar":
            raw = subprocess.run(["zstd", "-dc", out], capture_output=True, check=True).stdout
            tmp = ctx.dir / "ls.plain.tar"
            tmp.write_bytes(raw)
            with tarfile.open(tmp) as t:
                names = {m.name: m for m in t.getmembers()}
            assert names["usr/bin/ls"].mode & 0o777 == 0o755 and names["bin"].issym()
        else:
            off, magic = check
            with open(out, "rb") as f:
                f.seek(off)
                assert f.read(4).hex() == magic


def test_pack_add_and_manifest_reasons(ctx):
    extra = ctx.dir / "settings.conf"
    extra.write_text("k=v\n")
    out = ctx.dir / "b"
    r = pack(ctx, "--add", f"{extra}:/etc/app/settings.conf", "-o", out, "/bin/cat")
    assert r.rc == 0, str(r)
    m = manifest(out)
    assert m["/etc/app/settings.conf"]["reason"] == "--add"
    assert m["/etc/app/settings.conf"]["source"] == str(extra)
    r = run(ctx, out, "/bin/cat", "/etc/app/settings.conf")
    assert r.rc == 0 and r.out == "k=v\n", str(r)


def test_pack_errors_are_clear_and_leave_nothing(ctx):
    text = ctx.dir / "notes.txt"
    text.write_text("not a program\n")
    text.chmod(0o755)
    r = pack(ctx, "-o", ctx.dir / "x", text)
    assert r.rc != 0 and "is not a program" in r.err and str(text) in r.err, str(r)

    if shutil.which("cc"):
        lib, prog = ctx.dir / "libgone.so", ctx.dir / "needs-gone"
        (ctx.dir / "gone.c").write_text("int gone(void) { return 1; }\n")
        (ctx.dir / "use.c").write_text("int gone(void);\nint main(void) { return gone(); }\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, ctx.dir / "gone.c"], check=True)
        subprocess.run(["cc", "-o", prog, ctx.dir / "use.c", f"-L{ctx.dir}", "-lgone"],
                       check=True)
        lib.unlink()
        r = pack(ctx, "-o", ctx.dir / "y", prog)
        assert r.rc != 0 and "needs libgone.so" in r.err, str(r)

    (ctx.dir / "exists").mkdir()
    r = pack(ctx, "-o", ctx.dir / "exists", "/bin/ls")
    assert r.rc != 0 and "exists already" in r.err, str(r)
    assert not (ctx.dir / "x").exists() and not (ctx.dir / "y").exists()
    assert not [p for p in ctx.dir.iterdir() if ".husk-" in p.name]


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_packed_bundle_runs_under_other_runtimes(ctx, runtime):
    exe = shutil.which(runtime)
    if not exe:
        pytest.skip(f"{runtime} is not installed")
    out = ctx.dir / "ls"
    assert pack(ctx, "-o", out, "/bin/ls").rc == 0
    cid = ctx.new_id()
    r = subprocess.run([exe, "--root", str(ctx.dir / runtime), "run", "--bundle", str(out), cid],
                       capture_output=True, text=True, timeout=30)
    subprocess.run([exe, "--root", str(ctx.dir / runtime), "delete", "-f", cid],
                   capture_output=True)
    if r.returncode != 0 and "hybrid mode" in r.stderr:
        pytest.skip(f"{runtime} refuses this host's cgroup setup: {r.stderr.strip()}")
    assert r.returncode == 0 and "usr" in r.stdout.split(), r.stderr
