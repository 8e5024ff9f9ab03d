# SPDX-License-Identifier: Apache-2.0
"""Real programs packed with the default `husk pack` (no --add) into the deduplicated store, each
run under `husk run` and, where it fits a contract, deployed to `husk serve` from the store and
called; then the table of packed sizes beside Debian's, the store's dedup ratio, and the start
cost of a store image (a directory of hard links) against a plain erofs image.

Setup needs the Debian packages of scripts/deps.sh and the npm registry (express); a program
whose setup cannot be done is skipped with the reason."""

import http.server
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import HUSK, Ctx
from programs import EXECUTABLE, FILES, PROGRAMS
from serve_harness import Daemon

RESULTS = {}  # name -> row of the table


# ---- setup: the app directory, a TLS server with a CA of the test's own, npm, the addon

def sh(*argv, cwd=None, env=None, timeout=120):
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def make_ca(tls):
    tls.mkdir()
    ok = sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=husk corpus test CA", "-keyout",
            tls / "ca.key", "-out", tls / "ca.pem")
    assert ok.returncode == 0, ok.stderr
    (tls / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for step in (("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-subj", "/CN=localhost", "-keyout", tls / "server.key", "-out",
                  tls / "server.csr"),
                 ("x509", "-req", "-in", tls / "server.csr", "-CA", tls / "ca.pem", "-CAkey",
                  tls / "ca.key", "-CAcreateserial", "-days", "2", "-extfile", tls / "ext",
                  "-out", tls / "server.pem")):
        ok = sh("openssl", *step)
        assert ok.returncode == 0, ok.stderr


class TLSServer:
    """HTTPS on 127.0.0.1 only, with the test CA's certificate."""

    def __init__(self, tls):
        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"hello over tls\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls / "server.pem", tls / "server.key")
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def npm_install(web):
    """express from the npm registry into the app's node_modules (never vendored)."""
    if shutil.which("npm") is None:
        return "npm is not installed"
    env = dict(os.environ, npm_config_cache=str(web / ".npm-cache"), npm_config_update_notifier="false")
    try:
        r = sh("npm", "install", "--no-audit", "--no-fund", "--omit=dev", "express@4", cwd=web,
               env=env, timeout=240)
    except subprocess.TimeoutExpired:
        return "npm install express timed out"
    shutil.rmtree(web / ".npm-cache", ignore_errors=True)
    return None if r.returncode == 0 else f"npm install express failed: {r.stderr[-300:]}"


def build_addon(addon):
    if not Path("/usr/include/node/node_api.h").exists():
        return "no Node headers (/usr/include/node/node_api.h)"
    (addon / "build").mkdir()
    r = sh("cc", "-shared", "-fPIC", "-O2", "-DNODE_GYP_MODULE_NAME=addon", "-I/usr/include/node",
           "-o", addon / "build" / "addon.node", addon / "addon.c", "-lz")
    return None if r.returncode == 0 else f"cannot build the addon: {r.stderr[-300:]}"


class Corpus:
    def __init__(self, session):
        self.ctx = Ctx(session, "corpus")
        # Outside /tmp: a function's tmpfs covers /tmp, and deploy refuses what it would hide.
        self.app = Path("/var/tmp") / f"husk-corpus-{self.ctx.token}"
        self.app.mkdir(mode=0o755)
        self.root = ("--root", str(self.ctx.dir / "corpus-state"))  # the store outlives runs
        for rel, text in FILES.items():
            path = self.app / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("{A}", str(self.app)))
            path.chmod(0o755 if rel.startswith(EXECUTABLE) else 0o644)
        make_ca(self.app / "tls")
        self.tls = TLSServer(self.app / "tls")
        self.missing = {"npm": npm_install(self.app / "web"),
                        "addon": build_addon(self.app / "addon")}
        # Every bundle made for `husk run` takes pack's own config (read-only root, tmpfs /tmp).
        template = self.ctx.dir / "template"
        r = self.husk("pack", "-o", template, "/bin/true")
        assert r.rc == 0, str(r)
        self.config = json.loads((template / "config.json").read_text())
        self.daemon = None

    def husk(self, *args, timeout=120):
        return self.ctx.runtime(*args, global_args=self.root, timeout=timeout)

    def subst(self, words):
        return [str(w).replace("{A}", str(self.app)).replace("{TLS_PORT}", str(self.tls.port))
                for w in words]

    def bundle(self, name, rootfs, args, env=(), host_net=False):
        b = self.ctx.dir / "bundles" / name
        b.mkdir(parents=True)
        config = json.loads(json.dumps(self.config))
        config["root"] = {"path": rootfs, "readonly": True}
        config["process"]["args"] = args
        config["process"]["env"] += list(env)
        if host_net:
            ns = config["linux"]["namespaces"]
            config["linux"]["namespaces"] = [n for n in ns if n["type"] != "network"]
        (b / "config.json").write_text(json.dumps(config))
        return b

    def serve(self):
        if self.daemon is None:
            self.daemon = Daemon(self.ctx, self.ctx.dir / "faas")
            self.daemon.start()
        return self.daemon

    def close(self):
        if self.daemon:
            self.daemon.stop()
        self.tls.stop()
        for image in list(RESULTS):
            self.husk("image", "rm", image)
        self.husk("image", "gc")
        shutil.rmtree(self.app, ignore_errors=True)
        return self.ctx.teardown()


@pytest.fixture(scope="module")
def corpus(session):
    c = Corpus(session)
    yield c
    left = c.close()
    assert not left, "left behind:\n  " + "\n  ".join(left)


# ---- Debian's installed size: the package and what it depends on, as dpkg records them

def debian_sizes():
    out = subprocess.run(["dpkg-query", "-W", "-f",
                          "${Package}\t${Installed-Size}\t${Depends}, ${Pre-Depends}\t"
                          "${Provides}\t${db:Status-Abbrev}\n"],
                         capture_output=True, text=True).stdout
    size, deps, provides = {}, {}, {}
    for line in out.splitlines():
        name, kib, dep, prov, status = line.split("\t")
        if not status.startswith("ii"):
            continue
        size[name] = int(kib or 0) * 1024
        deps[name] = [[re.split(r"[ :(]", alt.strip())[0] for alt in d.split("|")]
                      for d in dep.split(",") if d.strip()]
        for p in prov.split(","):
            if p.strip():
                provides.setdefault(re.split(r"[ :(]", p.strip())[0], name)
    return size, deps, provides


def closure_bytes(debs, db):
    size, deps, provides = db
    seen, todo = set(), list(debs)
    while todo:
        p = todo.pop()
        p = p if p in size else provides.get(p)
        if p is None or p in seen:
            continue
        seen.add(p)
        for alts in deps.get(p, []):
            have = [a for a in alts if a in size or a in provides]
            if have:
                todo.append(have[0])
    return sum(size[p] for p in seen)


def mb(n):
    return f"{n / 1e6:.1f} MB"


# ---- the programs

@pytest.mark.parametrize("prog", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_program(corpus, prog):
    if prog.needs and corpus.missing[prog.needs]:
        pytest.skip(corpus.missing[prog.needs])
    t0 = time.monotonic()
    r = corpus.husk("pack", "-f", "store", "-o", prog.name, *corpus.subst(prog.pack))
    pack_s = time.monotonic() - t0
    assert r.rc == 0, str(r)
    assert "--add" not in prog.pack
    image = corpus.husk("image", "inspect", prog.name).json()
    b = corpus.bundle(prog.name, image["rootfs"], corpus.subst(prog.run), prog.env, prog.host_net)
    r = corpus.ctx.runtime("run", "--bundle", b, corpus.ctx.new_id(), global_args=corpus.root,
                           timeout=60)
    assert r.rc == 0 and prog.expect in r.out, str(r)
    served = "-"
    if prog.serve:
        served = serve_one(corpus, prog, image["rootfs"])
    RESULTS[prog.name] = dict(debs=prog.debs, packed=image["bytes"], files=image["files"],
                              pack_s=pack_s, run="yes", serve=served)


def serve_one(corpus, prog, rootfs):
    s = prog.serve
    d = corpus.serve()
    status, body = d.deploy(name=prog.name, dir=rootfs, command=corpus.subst(s["command"]),
                            contract=s["contract"], timeout=30)
    assert status == 201, body
    body = s.get("body")
    method = "GET" if body is None else "POST"
    status, _, out = d.request(method, f"/function/{prog.name}{s.get('path', '')}",
                               body.encode() if body is not None else None, timeout=60)
    assert status == 200 and s["expect"].encode() in out, (status, out, d.log.read_text()[-2000:])
    return s["contract"]


# ---- what the corpus shows

def run_ms(corpus, bundle, n):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = corpus.ctx.runtime("run", "--bundle", bundle, corpus.ctx.new_id(),
                               global_args=corpus.root, timeout=60)
        times.append((time.monotonic() - t0) * 1000)
        assert r.rc == 0, str(r)
    return statistics.median(times)


def start_costs(corpus):
    """husk run of one program from its store image (a directory of hard links) and from a
    plain (uncompressed) erofs image of the same files, interleaved, medians of 7."""
    name = "python-yaml" if "python-yaml" in RESULTS else next(iter(RESULTS))
    prog = next(p for p in PROGRAMS if p.name == name)
    image = corpus.husk("image", "inspect", name).json()
    store_b = corpus.bundle(name + "-start-store", image["rootfs"], corpus.subst(prog.run))
    erofs_b = corpus.ctx.dir / "bundles" / (name + "-start-erofs")
    r = corpus.husk("pack", "--image", "erofs", "-o", erofs_b, *corpus.subst(prog.pack))
    assert r.rc == 0, str(r)
    config = json.loads((erofs_b / "config.json").read_text())
    config["process"]["args"] = corpus.subst(prog.run)
    (erofs_b / "config.json").write_text(json.dumps(config))
    run_ms(corpus, store_b, 1), run_ms(corpus, erofs_b, 1)  # warm the page cache of both
    store, erofs = [], []
    for _ in range(7):
        store.append(run_ms(corpus, store_b, 1))
        erofs.append(run_ms(corpus, erofs_b, 1))
    return name, statistics.median(store), statistics.median(erofs)


def test_zz_table_dedup_and_start_cost(corpus, capsys):
    """Printed for the README: sizes, the dedup ratio over the corpus, the start costs."""
    assert len(RESULTS) >= 25, sorted(RESULTS)
    db = debian_sizes()
    lines = ["| program | packed | Debian (package + depends) | files | husk run | husk serve |",
             "|---|---:|---:|---:|---|---|"]
    for name, row in RESULTS.items():
        lines.append(f"| {name} | {mb(row['packed'])} | {mb(closure_bytes(row['debs'], db))} "
                     f"({', '.join(row['debs'])}) | {row['files']} | {row['run']} | "
                     f"{row['serve']} |")
    df = corpus.husk("image", "df").json()
    assert df["images"] == len(RESULTS)
    # Python, node, libc and the rest are stored once for all the programs that hold them.
    assert df["dedup_ratio"] > 2, df
    name, store_ms, erofs_ms = start_costs(corpus)
    summary = [f"dedup: {df['images']} images, {mb(df['image_bytes'])} of files, "
               f"{mb(df['stored_bytes'])} stored: ratio {df['dedup_ratio']:.2f}",
               f"start ({name}, husk run, median of 7): store image {store_ms:.1f} ms, "
               f"plain erofs {erofs_ms:.1f} ms"]
    # gc frees only what no image references: remove one image, the rest still run.
    before = corpus.husk("image", "df").json()
    assert corpus.husk("image", "rm", "imagemagick-convert").rc == 0
    r = corpus.husk("image", "gc")
    assert r.rc == 0, str(r)
    after = corpus.husk("image", "df").json()
    assert after["unreferenced_objects"] == 0 and after["stored_bytes"] < before["stored_bytes"]
    RESULTS.pop("imagemagick-convert")
    text = "\n".join(lines + [""] + summary)
    out = Path(os.environ.get("HUSK_CORPUS_REPORT", corpus.ctx.session.base / "corpus.md"))
    out.write_text(text + "\n")
    with capsys.disabled():
        print("\n" + text)
