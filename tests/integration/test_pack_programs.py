# SPDX-License-Identifier: Apache-2.0
"""`husk pack` of ordinary programs as a new user packs them: Python's implicit imports, the
traced run's environment, Node's node_modules, shell substitutions, relative outputs; bad input
named with nothing left behind; the checks `husk serve` makes at deploy; the deduplicated store."""

import json
import os
import pty
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import HUSK
from serve_harness import Daemon


def pack(ctx, *args, cwd=None, timeout=60):
    return ctx.runtime("pack", *[str(a) for a in args], cwd=cwd, timeout=timeout)


def run(ctx, bundle):
    return ctx.runtime("run", "--bundle", bundle, ctx.new_id(), timeout=30)


def manifest(bundle):
    return {f["path"]: f for f in json.loads((Path(bundle) / "manifest.json").read_text())["files"]}


@pytest.fixture
def app(ctx):
    """A program's own directory outside /tmp (a function's tmpfs covers /tmp)."""
    d = Path("/var/tmp") / f"husk-app-{ctx.token}"
    d.mkdir(mode=0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write(path, text, mode=0o644):
    path.write_text(text)
    path.chmod(mode)
    return path


SERVER = """\
import http.server, os, socket, threading, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from " + self.server.server_name.encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)  # getfqdn: idna
threading.Thread(target=srv.serve_forever, daemon=True).start()
print(urllib.request.urlopen(f"http://127.0.0.1:{os.environ['PORT']}/").read().decode())
"""


def test_python_http_server_runs_packed(ctx, app):
    """http.server resolves its name through the idna codec, which no import statement names."""
    script = write(app / "server.py", SERVER)
    out = ctx.dir / "py"
    r = pack(ctx, "-e", "PORT=8080", "-o", out, "/usr/bin/python3", script)
    assert r.rc == 0, str(r)
    m = manifest(out)
    assert any(p.endswith("/encodings/idna.py") for p in m)
    assert any(p.endswith("/stringprep.py") for p in m)
    r = run(ctx, out)
    assert r.rc == 0 and r.out.startswith("hello from "), str(r)


def test_trace_keeps_init_py_and_gets_the_environment(ctx, app):
    """Python only stat()s a package's __init__.py (it opens the cached .pyc); -e reaches the
    traced run; the os.py landmark is kept when python3 is reached through env."""
    pkg = app / "mypkg"
    pkg.mkdir()
    write(pkg / "__init__.py", "def add_shim():\n    return 'shim'\n")
    subprocess.run(["/usr/bin/python3", "-m", "compileall", "-q", str(pkg)], check=True)
    script = write(app / "main.py", "import os, mypkg\nprint(mypkg.add_shim(), os.environ['PORT'])\n")
    out = ctx.dir / "traced"
    r = pack(ctx, "--trace", "-e", "PORT=9399", "-o", out, "--", "/usr/bin/env", "python3",
             script)
    assert r.rc == 0, str(r)
    assert "exited with status" not in r.err, str(r)
    m = manifest(out)
    assert str(pkg / "__init__.py") in m
    assert any(p.endswith("/python3.11/os.py") for p in m)
    r = run(ctx, out)
    assert r.rc == 0 and r.out.split() == ["shim", "9399"], str(r)


def test_trace_without_env_sees_no_port(ctx, app):
    """The traced run's environment is PATH, HOME and the -e values, nothing of the caller's."""
    script = write(app / "env.py", "import os, sys\nsys.exit(0 if 'PORT' in os.environ else 3)\n")
    env_before = os.environ.get("PORT")
    os.environ["PORT"] = "1"
    try:
        r = pack(ctx, "--trace", "-o", ctx.dir / "noport", "--", "/usr/bin/python3", script)
    finally:
        if env_before is None:
            del os.environ["PORT"]
        else:
            os.environ["PORT"] = env_before
    assert r.rc == 0 and "exited with status 3" in r.err, str(r)


def test_node_modules_are_followed(ctx, app):
    nm = app / "node_modules"
    (nm / "leftpad" / "lib").mkdir(parents=True)
    (nm / "dep").mkdir(parents=True)
    write(nm / "leftpad" / "package.json",
          json.dumps({"name": "leftpad", "exports": {".": {"require": "./lib/main.js"}},
                      "dependencies": {"dep": "1"}}))
    write(nm / "leftpad" / "lib" / "main.js",
          "const d = require('dep');\nmodule.exports = (s, n) => d(' ', n - s.length) + s;\n")
    write(nm / "dep" / "package.json", json.dumps({"name": "dep", "main": "index.js"}))
    write(nm / "dep" / "index.js", "module.exports = (c, n) => c.repeat(Math.max(0, n));\n")
    write(app / "util.js", "exports.twice = (s) => s + s;\n")
    script = write(app / "main.js", "#!/usr/bin/env node\nconst pad = require('leftpad');\n"
                   "const { twice } = require('./util');\nconst os = require('node:os');\n"
                   "console.log('[' + pad(twice('ab'), 6) + ']');\n", 0o755)
    out = ctx.dir / "node"
    r = pack(ctx, "-o", out, script)
    assert r.rc == 0, str(r)
    m = manifest(out)
    assert str(nm / "dep" / "index.js") in m and str(app / "util.js") in m
    r = run(ctx, out)
    assert r.rc == 0 and r.out.strip() == "[  abab]", str(r)


@pytest.mark.parametrize("case", ["loop", "outside", "exports"])
def test_bad_node_modules_are_named(ctx, app, case):
    nm = app / "node_modules"
    nm.mkdir()
    if case == "loop":
        os.symlink("b", nm / "a")
        os.symlink("a", nm / "b")
        want = "node package 'a'"
    elif case == "outside":
        os.symlink("/usr/share", nm / "a")
        want = "points outside its tree"
    else:
        (nm / "a").mkdir()
        write(nm / "a" / "package.json", json.dumps({"name": "a", "main": "../../../etc/passwd"}))
        want = "points outside the package"
    script = write(app / "main.js", "require('a')\n")
    out = ctx.dir / "bad"
    r = pack(ctx, "-o", out, "/usr/bin/node", script)
    assert r.rc != 0 and want in r.err, str(r)
    assert not out.exists() and not list(ctx.dir.glob(".bad.husk-*"))


SHELL = """\
#!/bin/sh
set -e
echo "$(echo abc | tr a-c x-z) $(basename /a/b) `dirname /c/d`"
cat <<EOF | sed 's/^/> /'
$(printf '%s' "$(seq 3 | paste -sd+ | bc)")
EOF
"""


def test_shell_substitutions_run_packed(ctx, app):
    script = write(app / "subst.sh", SHELL, 0o755)
    out = ctx.dir / "sh"
    r = pack(ctx, "-o", out, script)
    assert r.rc == 0, str(r)
    r = run(ctx, out)
    assert r.rc == 0, str(r)
    assert r.out.splitlines() == ["xyz b /c", "> 6"], str(r)


def test_unterminated_substitution_is_named(ctx, app):
    script = write(app / "broken.sh", "#!/bin/sh\necho ok\necho $(date\n", 0o755)
    out = ctx.dir / "broken"
    r = pack(ctx, "-o", out, script)
    assert r.rc != 0, str(r)
    assert str(script) in r.err and "unterminated $( that starts on line 3" in r.err, str(r)
    assert not out.exists() and not list(ctx.dir.glob(".broken.husk-*"))


def test_relative_output_path(ctx, app):
    (ctx.dir / "sv").mkdir()
    r = pack(ctx, "-f", "erofs", "-o", "sv/x.erofs", "/bin/true", cwd=ctx.dir)
    assert r.rc == 0, str(r)
    assert (ctx.dir / "sv" / "x.erofs").is_file()
    assert (ctx.dir / "sv" / "x.erofs.manifest.json").is_file()
    r = pack(ctx, "-o", "nodir/x", "/bin/true", cwd=ctx.dir)
    assert r.rc != 0 and f"output '{ctx.dir}/nodir/x': its directory '{ctx.dir}/nodir'" in r.err
    r = pack(ctx, "-f", "erofs", "-o", "sv/x.erofs", "/bin/true", cwd=ctx.dir)
    assert r.rc != 0 and "exists already" in r.err and f"{ctx.dir}/sv/x.erofs" in r.err


def foreign_elf(path):
    data = bytearray(Path("/bin/true").read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    path.write_bytes(bytes(data))
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("case", ["foreign", "not-a-program", "directory", "interp-missing",
                                  "interp-loop", "symlink-loop", "unreadable"])
def test_bad_programs_are_named_and_leave_nothing(ctx, app, case):
    if case == "foreign":
        prog, want = foreign_elf(app / "arm"), "for another architecture (aarch64"
    elif case == "not-a-program":
        prog, want = write(app / "data.txt", "just text\n", 0o755), "is not a program"
    elif case == "directory":
        prog, want = app, "is a directory, not a program"
    elif case == "interp-missing":
        prog = write(app / "s.sh", "#!/usr/bin/no-such-shell\necho\n", 0o755)
        want = "/usr/bin/no-such-shell"
    elif case == "interp-loop":
        write(app / "b", f"#!{app}/a\n", 0o755)
        prog, want = write(app / "a", f"#!{app}/b\n", 0o755), "nest deeper than the kernel"
    elif case == "symlink-loop":
        os.symlink("l2", app / "l1")
        os.symlink("l1", app / "l2")
        prog, want = app / "l1", "Too many levels of symbolic links"
    else:  # a FIFO: nothing to read a program from
        os.mkfifo(app / "fifo", 0o755)
        prog, want = app / "fifo", "is not a regular file, directory or symlink"
    out = ctx.dir / "out"
    r = pack(ctx, "-o", out, prog)
    assert r.rc != 0 and want in r.err, str(r)
    assert str(prog) in r.err or case == "interp-loop" and str(app) in r.err, str(r)
    assert not out.exists() and not list(ctx.dir.glob(".out.husk-*"))


def test_progress_on_a_terminal_only(ctx, app):
    out = ctx.dir / "tty"
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(HUSK, [HUSK, "--root", str(ctx.state), "pack", "-o", str(out), "/usr/bin/python3"])
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    assert b"writing 100%" in seen and b"\r" in seen, seen
    r = pack(ctx, "-o", ctx.dir / "pipe", "/usr/bin/python3")
    assert r.rc == 0 and "%" not in r.err, str(r)


def test_store_dedups_across_images_and_gc_frees_the_rest(ctx, app):
    store_root = ("--root", str(ctx.dir / "storestate"))  # the store outlives a test's containers

    def husk(*args):
        return ctx.runtime(*args, global_args=store_root, timeout=60)

    a = write(app / "a.py", "import json\nprint(json.dumps([1]))\n")
    b = write(app / "b.py", "import json, csv\nprint(json.dumps([2]))\n")
    for name, script in (("a", a), ("b", b)):
        r = husk("pack", "-f", "store", "-o", name, "/usr/bin/python3", script)
        assert r.rc == 0, str(r)
    r = husk("pack", "-f", "store", "-o", "a", "/usr/bin/python3", a)
    assert r.rc != 0 and "image 'a' is in the store already" in r.err
    ia = husk("image", "inspect", "a").json()
    ib = husk("image", "inspect", "b").json()
    # b shares python3 and the standard library with a: stored once.
    assert ib["new_bytes"] < ib["bytes"] / 10, ib
    py_a = Path(ia["rootfs"]) / "usr/bin/python3.11"
    py_b = Path(ib["rootfs"]) / "usr/bin/python3.11"
    assert os.stat(py_a).st_ino == os.stat(py_b).st_ino
    df = husk("image", "df").json()
    assert df["images"] == 2 and df["dedup_ratio"] > 1.8, df
    names = [e["ref"] for e in husk("image", "ls").json()]
    assert sorted(names) == ["a", "b"]
    # A store image runs as a bundle's read-only root.
    bundle = ctx.dir / "from-store"
    assert pack(ctx, "-o", bundle, "/bin/true").rc == 0
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": ia["rootfs"], "readonly": True}
    config["process"]["args"] = ["/usr/bin/python3", str(a)]
    (bundle / "config.json").write_text(json.dumps(config))
    r = run(ctx, bundle)
    assert r.rc == 0 and r.out.strip() == "[1]", str(r)
    # rm, then gc frees b's own files and keeps what a still uses.
    assert husk("image", "rm", "b").rc == 0
    assert husk("image", "df").json()["unreferenced_objects"] > 0
    r = husk("image", "gc")
    assert r.rc == 0 and "freed" in r.out, str(r)
    df = husk("image", "df").json()
    assert df["images"] == 1 and df["unreferenced_objects"] == 0, df
    assert py_a.exists() and os.stat(py_a).st_nlink == 2
    r = husk("image", "inspect", "b")
    assert r.rc != 0 and "image 'b' is not in the store" in r.err
    assert husk("image", "rm", "a").rc == 0 and husk("image", "gc").rc == 0
    df = husk("image", "df").json()
    assert df["objects"] == 0 and df["stored_bytes"] == 0, df


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    yield d
    assert d.stop() in (0, None), d.log.read_text()


def test_deploy_refuses_an_image_with_files_under_tmp(ctx, daemon):
    """A program packed from /tmp would be hidden by the function's tmpfs on every call."""
    script = write(ctx.dir / "hidden.sh", "#!/bin/sh\necho hi\n", 0o755)
    image = ctx.dir / "hidden.erofs"
    r = pack(ctx, "-f", "erofs", "-o", image, script)
    assert r.rc == 0 and "files under /tmp" in r.err, str(r)
    status, body = daemon.deploy(name="hidden", image=str(image), command=[str(script)])
    assert status == 400, body
    error = json.loads(body)["error"]
    assert "field 'image'" in error and "under /tmp" in error and str(script) in error, error
    assert daemon.request("GET", "/system/functions/hidden")[0] == 404


def test_deploy_names_a_missing_interpreter(ctx, daemon):
    root = ctx.dir / "root"
    assert pack(ctx, "-f", "rootfs", "--add", "/usr/bin/env", "-o", root, "/bin/sh").rc == 0
    (root / "srv").mkdir()
    write(root / "srv" / "app.py", "#!/usr/bin/python3\nprint('hi')\n", 0o755)
    write(root / "srv" / "env.sh", "#!/usr/bin/env ruby\nputs 1\n", 0o755)
    for prog, want in (("/srv/app.py", "interpreter '/usr/bin/python3' (#!) is not in the root"),
                       ("/srv/env.sh", "interpreter 'ruby' (#!/usr/bin/env ruby) is not in"),
                       ("/srv/none", "the program '/srv/none' is not in the root")):
        status, body = daemon.deploy(name="noint", dir=str(root), command=[prog])
        assert status == 400, body
        error = json.loads(body)["error"]
        assert "field 'command'" in error and want in error, error
    # The same root with its interpreter there deploys.
    write(root / "srv" / "ok.sh", "#!/bin/sh\necho fine\n", 0o755)
    status, body = daemon.deploy(name="ok", dir=str(root), command=["/srv/ok.sh"])
    assert status == 201, body
    assert daemon.request("GET", "/function/ok")[2] == b"fine\n"
