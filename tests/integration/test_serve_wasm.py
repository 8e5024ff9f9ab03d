# SPDX-License-Identifier: Apache-2.0
"""WebAssembly functions: WASI preview1 command modules, built here from C with Debian's clang
and wasi-libc, served on the CGI contract as WAGI (request variables, the query as arguments,
the body on stdin, a CGI header block then the body on stdout) or on the stdio contract, inside
the same sandbox as any function."""

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, wait_for
from serve_harness import Daemon
from test_serve import daemon  # noqa: F401  (the fixture: a daemon of the test's own)

CACHE = Path("/var/tmp/husk-wasm-tests")
# What the toolchain needs on Debian 12 (clang's wasm32 target, wasm-ld, WASI's libc and
# compiler-rt builtins).
TOOLCHAIN = ["clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32"]

SOURCES = {
    # WAGI: sets its status and a header; argv is the path, then the query's parts.
    "hello": r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    const char *m = getenv("REQUEST_METHOD"), *g = getenv("GREETING");
    printf("Status: 201 Created\r\nContent-Type: text/plain\r\nX-Wasm: %s\r\n\r\n", m ? m : "");
    printf("hello %s", g ? g : "");
    for (int i = 0; i < argc; i++)
        printf(" [%s]", argv[i]);
    printf("\n");
    return 0;
}
""",
    # Reads its body; answers on either contract.
    "body": r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    static char buf[1 << 21];
    size_t n = fread(buf, 1, sizeof(buf), stdin);
    if (getenv("GATEWAY_INTERFACE"))
        printf("Content-Type: text/plain\n\n");
    printf("len=%zu\n", n);
    fwrite(buf, 1, n, stdout);
    return 0;
}
""",
    # Each argument: a path to read, or w:PATH to write.
    "files": r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    printf("Content-Type: text/plain\n\n");
    for (int i = 1; i < argc; i++) {
        int w = strncmp(argv[i], "w:", 2) == 0;
        const char *p = w ? argv[i] + 2 : argv[i];
        FILE *f = fopen(p, w ? "w" : "r");
        if (f == NULL) {
            printf("%s %s: refused (%s)\n", w ? "write" : "read", p, strerror(errno));
            continue;
        }
        char buf[256] = "";
        if (w) {
            int bad = fputs("written\n", f) < 0;
            bad |= fclose(f) != 0;
            printf("write %s: %s\n", p, bad ? "refused" : "ok");
        } else {
            buf[fread(buf, 1, sizeof(buf) - 1, f)] = 0;
            fclose(f);
            printf("read %s: %s\n", p, buf);
        }
    }
    return 0;
}
""",
    "loop": r"""
int main(void) {
    volatile unsigned long i = 0;
    for (;;)
        i++;
}
""",
    # Grows its linear memory a MiB at a time (touching it) until the engine says no.
    "grow": r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    int mib = 0;
    void **last = NULL;
    for (void **p; (p = malloc(1 << 20)) != NULL; mib++, last = p) {
        memset(p, 1, 1 << 20);
        *p = last; /* kept: the compiler may not drop the allocations */
    }
    printf("out of memory after %d MiB\n", mib);
    fprintf(stderr, "out of memory after %d MiB\n", mib);
    return 3;
}
""",
    # Imports from the host besides WASI: not a WASI command.
    "imports": r"""
__attribute__((import_module("env"), import_name("host_secret"))) int host_secret(void);
int main(void) { return host_secret(); }
""",
}


def compile_modules():
    """Each source as NAME.wasm in a cache keyed by the sources and the compiler."""
    version = subprocess.run(["clang", "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256((version + json.dumps(SOURCES, sort_keys=True)).encode()).hexdigest()
    out = CACHE / key[:16]
    if all((out / f"{n}.wasm").exists() for n in SOURCES):
        return out
    tmp = CACHE / f".{key[:16]}.{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    os.chmod(CACHE, 0o755)
    os.chmod(tmp, 0o755)
    for name, src in SOURCES.items():
        (tmp / f"{name}.c").write_text(src)
        extra = ["-Wl,--allow-undefined"] if name == "imports" else []
        r = subprocess.run(["clang", "--target=wasm32-wasi", "-O2", "-Wl,--strip-all", *extra,
                            "-o", str(tmp / f"{name}.wasm"), str(tmp / f"{name}.c")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(tmp)
            return r.stderr
        os.chmod(tmp / f"{name}.wasm", 0o644)
    try:
        tmp.rename(out)
    except OSError:  # another run built the same modules meanwhile: theirs are as good
        shutil.rmtree(tmp)
    return out


@pytest.fixture(scope="module")
def modules():
    if shutil.which("node") is None:
        subprocess.run([REPO / "scripts" / "deps.sh", "nodejs"], capture_output=True)
    if shutil.which("node") is None:
        pytest.skip("Node.js (Debian's nodejs), the WebAssembly engine, cannot be installed")
    built = compile_modules()
    if not isinstance(built, Path):
        subprocess.run([REPO / "scripts" / "deps.sh", *TOOLCHAIN], capture_output=True)
        built = compile_modules()
    if not isinstance(built, Path):
        pytest.skip(f"no wasm32-wasi toolchain ({' '.join(TOOLCHAIN)}) could be installed: "
                    f"{built.strip()[-300:]}")
    return built


def wasm_roots(daemon):
    d = daemon.state / "wasm"
    return sorted(p.name for p in d.iterdir() if p.name.startswith("root-")) if d.exists() else []


def engines(daemon):
    """The engine processes of the daemon's instances (node running wasm-server.js)."""
    ids = os.listdir(daemon.state / "instances")
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cg = Path(f"/proc/{pid}/cgroup").read_text().split()
        except OSError:
            continue
        if cmd[0] != b"/husk/wasm-run" and b"/husk/wasm-server.js" in cmd and any(c.endswith("/" + i) for c in cg for i in ids):
            found.append(int(pid))
    return found


def test_wagi_sets_status_and_headers_with_the_query_as_arguments(ctx, daemon, modules):
    # through the CLI: --wasm, -e; the contract is cgi (WAGI) by default
    r = daemon.fn("deploy", "hello", "--wasm", str(modules / "hello.wasm"), "-e",
                  "GREETING=world")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["wasm"] == str(modules / "hello.wasm")
    status, headers, body = daemon.request("GET", "/function/hello/sub?a=1&b=x%20y&c+d")
    assert (status, headers["X-Wasm"], headers["Content-Type"]) == (201, "GET", "text/plain"), body
    assert body == b"hello world [/sub] [a=1] [b=x y] [c d]\n"
    # warm: the same engine process answers every call, each on a fresh instance of the module
    first = engines(daemon)
    assert len(first) == 1, [Path(f"/proc/{p}/cmdline").read_bytes() for p in first]
    for _ in range(3):
        status, _, body = daemon.request("POST", "/function/hello?again", b"")
        assert status == 201 and body == b"hello world [/] [again]\n", body
    assert engines(daemon) == first


def test_the_body_reaches_the_module_on_both_contracts(ctx, daemon, modules):
    wasm = str(modules / "body.wasm")
    assert daemon.deploy(name="cgi", wasm=wasm)[0] == 201
    assert daemon.deploy(name="std", wasm=wasm, contract="stdio")[0] == 201
    status, headers, body = daemon.request("POST", "/function/cgi", b"hello")
    assert (status, body) == (200, b"len=5\nhello"), body
    big = os.urandom(1 << 20)
    status, _, body = daemon.request("POST", "/function/std", big)
    assert status == 200 and body == b"len=1048576\n" + big
    # identical modules share one root, kept by digest
    assert len(wasm_roots(daemon)) == 1, wasm_roots(daemon)


def test_files_outside_the_preopened_directories_are_refused(ctx, modules):
    data = ctx.dir / "data"
    (data / "granted").mkdir(parents=True)
    (data / "granted" / "note.txt").write_text("granted note")
    (data / "other").mkdir()
    (data / "other" / "secret.txt").write_text("classified")
    d = Daemon(ctx, ctx.dir / "faas", args=["--allow-bind", str(data)])
    d.start()
    try:
        wasm = str(modules / "files.wasm")
        status, body = d.deploy(name="nodirs", wasm=wasm)
        assert status == 201, body
        status, _, body = d.request("GET", "/function/nodirs?/etc/passwd&/wasm/module.wasm")
        assert status == 200 and body.count(b"refused") == 2, body
        r = d.fn("deploy", "files", "--wasm", wasm, "--wasm-dir",
                 f"{data / 'granted'}:/data:ro")
        assert r.returncode == 0, r
        paths = ["/data/note.txt", "/data/../other/secret.txt", "/data/../../etc/hostname",
                 "/husk/wasm-server.js", "w:/data/new.txt"]
        status, _, body = d.request("GET", "/function/files?" + "&".join(paths))
        text = body.decode()
        assert status == 200, text
        assert "read /data/note.txt: granted note" in text
        for p in paths[1:4]:
            assert f"read {p}: refused" in text, text
        assert "write /data/new.txt: refused" in text, text
        assert not (data / "granted" / "new.txt").exists()
        assert b"classified" not in body
    finally:
        assert d.stop() in (0, None), d.log.read_text()


def test_a_module_that_never_ends_is_killed_at_the_timeout(ctx, daemon, modules):
    assert daemon.deploy(name="loop", wasm=str(modules / "loop.wasm"), timeout=2)[0] == 201
    status, _, body = daemon.request("GET", "/function/loop", timeout=30)
    assert status == 504 and b"2 s" in body, body
    # the instance (engine and all) is gone
    wait_for(lambda: not engines(daemon), 10, "the engine to be gone")


def test_memory_past_the_limit_is_a_clean_error(ctx, daemon, modules):
    status, body = daemon.deploy(name="grow", wasm=str(modules / "grow.wasm"), memory=128 << 20)
    assert status == 201, body
    status, _, body = daemon.request("GET", "/function/grow")
    # the engine refused to grow the linear memory (128 MiB less the engine's 64 MiB), so
    # malloc failed and the module said so; the instance was not killed for it
    assert status == 500 and b"exited with status 3" in body, body
    mib = int(re.search(rb"out of memory after (\d+) MiB", body).group(1))
    assert 32 <= mib <= 64, body
    status, _, body = daemon.request("GET", "/function/grow")
    assert status == 500 and b"out of memory after" in body, body
    assert b"ran out of memory" not in body
    # a limit that leaves the module nothing is refused at deploy
    status, body = daemon.deploy(name="small", wasm=str(modules / "grow.wasm"), memory=64 << 20)
    assert status == 400 and b"field 'memory'" in body, body


@pytest.mark.parametrize("content, why", [
    (b"\0asm\x01\0\0\0\x01\x7f\0", b"section 1 at byte 8 runs past the end of the file"),
    (b"#!/bin/sh\necho hi\n", b"not a WebAssembly module"),
    (b"\0asm\x0d\0\x01\0", b"a WebAssembly component"),
    (None, b"imports 'env'.'host_secret'"),
])
def test_a_malformed_module_is_refused_at_deploy(ctx, daemon, modules, content, why):
    path = ctx.dir / "bad.wasm"
    if content is None:
        shutil.copy(modules / "imports.wasm", path)
    else:
        path.write_bytes(content)
    os.chmod(path, 0o644)
    status, body = daemon.deploy(name="bad", wasm=str(path))
    assert status == 400 and b"field 'wasm'" in body and why in body, body
    # nothing left behind: no function, no root built for it
    assert json.loads(daemon.request("GET", "/system/functions")[2]) == []
    assert wasm_roots(daemon) == []


def test_wasm_deploys_refuse_what_does_not_apply(ctx, daemon, modules):
    wasm = str(modules / "hello.wasm")
    for extra, field in [({"contract": "http"}, b"contract"),
                         ({"command": ["/x"]}, b"command"),
                         ({"concurrency": 4}, b"concurrency"),
                         ({"env": ["HUSK_WASM_CONFIG={}"]}, b"env[0]")]:
        status, body = daemon.deploy(name="w", wasm=wasm, **extra)
        assert status == 400 and b"field '" + field + b"'" in body, body
    status, body = daemon.deploy(name="w", wasm=wasm, wasm_dirs=["/etc:/etc"])
    assert status == 400 and b"field 'wasm_dirs[0]'" in body and b"--allow-bind" in body, body
    status, body = daemon.deploy(name="w", dir="/", wasm_dirs=["/tmp:/tmp"], command=["/x"])
    assert status == 400 and b"field 'wasm_dirs'" in body, body
    # a refused deploy builds nothing
    assert json.loads(daemon.request("GET", "/system/functions")[2]) == []
    assert wasm_roots(daemon) == []
