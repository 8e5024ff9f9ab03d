# SPDX-License-Identifier: Apache-2.0
"""The corpus: real programs from Debian and npm, each with how it is packed (the default
`husk pack`, `--trace` where the program loads what only running shows), how it is run, what it
must print, and, where it fits a function contract, how `husk serve` calls it."""

from dataclasses import dataclass, field

PY = "/usr/bin/python3"
NODE = "/usr/bin/node"


@dataclass
class Program:
    name: str
    debs: list            # the Debian packages it comes from (sizes are of their closure)
    pack: list            # `husk pack` arguments after -f store -o NAME ({A}: the app dir)
    run: list             # the command under `husk run`
    expect: str           # in its output
    env: list = field(default_factory=list)
    host_net: bool = False  # talks to the test's TLS server on the host's loopback
    serve: dict = None    # contract, command, method, path, body, expect
    needs: str = None     # a setup step it needs ("npm", "addon")


PROGRAMS = [
    Program("python-http-server", ["python3"], [PY, "{A}/py/server.py"],
            [PY, "{A}/py/server.py", "--selftest"], "hello from",
            env=["PORT=8080"],
            serve=dict(contract="http", command=[PY, "{A}/py/server.py"], path="/",
                       expect="hello from")),
    Program("python-yaml", ["python3-yaml"], [PY, "{A}/py/yamljson.py"],
            [PY, "{A}/py/yamljson.py", "a: [1, 2]"], '{"a": [1, 2]}',
            serve=dict(contract="stdio", command=[PY, "{A}/py/yamljson.py"], body="b: 3",
                       expect='{"b": 3}')),
    Program("python-requests", ["python3-requests"], [PY, "{A}/py/request.py"],
            [PY, "{A}/py/request.py"], "POST https://example.invalid/api?q=husk",
            serve=dict(contract="stdio", command=[PY, "{A}/py/request.py"], body="",
                       expect="application/json")),
    Program("python-jinja2", ["python3-jinja2"], [PY, "{A}/py/render.py"],
            [PY, "{A}/py/render.py", "husk"], "Hello husk! 123",
            serve=dict(contract="stdio", command=[PY, "{A}/py/render.py"], body="serve",
                       expect="Hello serve! 123")),
    Program("python-cgi", ["python3"], [PY, "{A}/py/cgi.py"], [PY, "{A}/py/cgi.py"],
            "query=x=1", env=["QUERY_STRING=x=1", "REQUEST_METHOD=GET"],
            serve=dict(contract="cgi", command=[PY, "{A}/py/cgi.py"], path="/?x=1",
                       expect="query=x=1")),
    Program("python-sqlite", ["python3"], [PY, "{A}/py/db.py"], [PY, "{A}/py/db.py"],
            "rows=3 sum=42"),
    Program("python-hashlib-zlib", ["python3"], [PY, "{A}/py/digest.py"],
            [PY, "{A}/py/digest.py"], "sha256=2cf24dba"),
    Program("node-express", ["nodejs"], [NODE, "{A}/web/server.js"],
            [NODE, "{A}/web/server.js"], "hello from express", env=["SELFTEST=1"],
            serve=dict(contract="http", command=[NODE, "{A}/web/server.js"], path="/",
                       expect="hello from express"),
            needs="npm"),
    Program("node-addon", ["nodejs"], ["{A}/addon/main.js"], ["{A}/addon/main.js"],
            "addon 42 gzip 30 sha1 aaf4c61d", needs="addon"),
    Program("node-esm", ["nodejs"], [NODE, "{A}/esm/main.js"], [NODE, "{A}/esm/main.js"],
            "esm husk/x.txt"),
    Program("bash-pipeline", ["bash", "coreutils", "sed", "mawk", "grep", "jq"],
            ["{A}/sh/report.sh"], ["{A}/sh/report.sh"],
            "total=7 names=b,a lines=3 avg=3.5 upper=HUSK words=3 head=2 cut=b",
            serve=dict(contract="stdio", command=["{A}/sh/report.sh"], body="",
                       expect="total=7")),
    Program("curl-tls", ["curl"], ["/usr/bin/curl", "-sS", "--cacert", "{A}/tls/ca.pem",
                                   "https://localhost:{TLS_PORT}/"],
            ["/usr/bin/curl", "-sS", "--cacert", "{A}/tls/ca.pem",
             "https://localhost:{TLS_PORT}/"], "hello over tls", host_net=True),
    Program("openssl-s_client", ["openssl"], ["{A}/sh/tls.sh", "{A}/tls/ca.pem"], ["{A}/sh/tls.sh", "{TLS_PORT}"],
            "hello over tls", host_net=True),
    Program("openssl-dgst", ["openssl"], ["/usr/bin/openssl", "dgst", "-sha256",
                                          "{A}/data/hello.txt"],
            ["/usr/bin/openssl", "dgst", "-sha256", "{A}/data/hello.txt"], "5891b5b522d5df08",
            serve=dict(contract="stdio", command=["/usr/bin/openssl", "dgst", "-sha256", "-r"],
                       body="hello\n", expect="5891b5b522d5df08")),
    Program("sqlite3", ["sqlite3"], ["/usr/bin/sqlite3"],
            ["/usr/bin/sqlite3", ":memory:",
             "create table t(a); insert into t values (1),(2),(39); select sum(a) from t;"], "42",
            serve=dict(contract="stdio", command=["/usr/bin/sqlite3", ":memory:"],
                       body="select 6*7;", expect="42")),
    Program("jq", ["jq"], ["/usr/bin/jq"], ["/usr/bin/jq", "-n", "-c", "{a: ([1,2,3]|add)}"],
            '{"a":6}',
            serve=dict(contract="stdio", command=["/usr/bin/jq", "-c", ".x|add"],
                       body='{"x":[1,2]}', expect="3")),
    Program("git", ["git"], ["{A}/sh/git.sh"], ["{A}/sh/git.sh"], "second\nfirst commit"),
    Program("perl-modules", ["perl"], ["{A}/perl/tool.pl"], ["{A}/perl/tool.pl"],
            '"sum":6', serve=dict(contract="stdio", command=["{A}/perl/tool.pl"], body="",
                                  expect='"floor":2')),
    Program("gzip", ["gzip"], ["{A}/sh/gzip.sh"], ["{A}/sh/gzip.sh"], "hello gzip"),
    Program("xz", ["xz-utils"], ["{A}/sh/xz.sh"], ["{A}/sh/xz.sh"], "hello xz"),
    Program("zstd", ["zstd"], ["{A}/sh/zstd.sh"], ["{A}/sh/zstd.sh"], "hello zstd"),
    Program("imagemagick-convert", ["imagemagick"],
            ["--trace", "--", "/usr/bin/convert", "-size", "2x2", "xc:red", "-depth", "8",
             "txt:-"],
            ["/usr/bin/convert", "-size", "2x2", "xc:red", "-depth", "8", "txt:-"], "#FF0000"),
    Program("file-libmagic", ["file"], ["--trace", "--", "/usr/bin/file", "-b", "/usr/bin/true"],
            ["/usr/bin/file", "-b", "/usr/bin/true"], "ELF 64-bit"),
    Program("busybox-static", ["busybox-static"], ["/bin/busybox"],
            ["/bin/busybox", "sh", "-c", "echo $((6*7))"], "42"),
    Program("bc", ["bc"], ["{A}/sh/calc.sh"], ["{A}/sh/calc.sh"], "1048576",
            serve=dict(contract="stdio", command=["/usr/bin/bc", "-q"], body="2^10\n",
                       expect="1024")),
    Program("awk", ["mawk"], ["/usr/bin/awk"],
            ["/usr/bin/awk", "BEGIN { for (i = 1; i <= 4; i++) s += i; print \"sum\", s }"],
            "sum 10"),
    Program("tar", ["tar"], ["{A}/sh/tar.sh"], ["{A}/sh/tar.sh"], "a.txt\nb.txt"),
    Program("sh-cgi", ["dash", "coreutils"], ["{A}/sh/cgi.sh"], ["{A}/sh/cgi.sh"],
            "method=GET", env=["REQUEST_METHOD=GET"],
            serve=dict(contract="cgi", command=["{A}/sh/cgi.sh"], path="/", expect="method=GET")),
    Program("python-stdlib-tool", ["python3"], [PY, "{A}/py/tool.py"],
            [PY, "{A}/py/tool.py"], "csv=3 json=ok argparse=ok dt=2026"),
]


# ---- the programs' own files ({A} is replaced by the app directory)

FILES = {
    "py/server.py": """\
import http.server, os, sys, threading, urllib.request

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from " + self.server.server_name + "\\n").encode()  # getfqdn: idna
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

port = int(os.environ.get("PORT", "8080"))
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Hello)
if "--selftest" in sys.argv:
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(urllib.request.urlopen(f"http://127.0.0.1:{port}/").read().decode(), end="")
else:
    srv.serve_forever()
""",
    "py/yamljson.py": """\
import json, sys, yaml
text = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
print(json.dumps(yaml.safe_load(text)))
""",
    "py/request.py": """\
import requests
req = requests.Request("POST", "https://example.invalid/api", params={"q": "husk"},
                       json={"a": 1}, headers={"X-Husk": "1"}).prepare()
print(req.method, req.url)
print(req.headers["Content-Type"], req.body.decode())
""",
    "py/render.py": """\
import sys
from jinja2 import Environment, DictLoader
env = Environment(loader=DictLoader({"t": "Hello {{ name }}! {% for i in xs %}{{ i }}{% endfor %}"}))
name = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read().strip()
print(env.get_template("t").render(name=name, xs=[1, 2, 3]))
""",
    "py/cgi.py": """\
import os
print("Content-Type: text/plain")
print()
print("method=" + os.environ.get("REQUEST_METHOD", ""), "query=" + os.environ.get("QUERY_STRING", ""))
""",
    "py/db.py": """\
import sqlite3
db = sqlite3.connect(":memory:")
db.execute("create table t (a integer)")
db.executemany("insert into t values (?)", [(1,), (2,), (39,)])
print("rows=%d sum=%d" % db.execute("select count(*), sum(a) from t").fetchone())
""",
    "py/digest.py": """\
import hashlib, zlib, base64
print("sha256=" + hashlib.sha256(b"hello").hexdigest(), "crc=%08x" % zlib.crc32(b"hello"),
      base64.b64encode(zlib.compress(b"hello" * 10)).decode()[:8])
""",
    "py/tool.py": """\
import argparse, csv, datetime, io, json
p = argparse.ArgumentParser()
p.parse_args([])
rows = list(csv.reader(io.StringIO("a,b\\n1,2\\n3,4\\n")))
json.loads(json.dumps(rows))
print("csv=%d json=ok argparse=ok dt=%d" % (len(rows), datetime.date(2026, 1, 1).year))
""",
    "web/package.json": '{"name": "web", "version": "1.0.0", "private": true}\n',
    "web/server.js": """\
const express = require('express');
const http = require('http');
const app = express();
app.get('/', (req, res) => res.type('text').send('hello from express\\n'));
const port = Number(process.env.PORT || 8080);
const server = app.listen(port, '127.0.0.1', () => {
  if (!process.env.SELFTEST) return;
  http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
    let body = '';
    res.on('data', (c) => { body += c; });
    res.on('end', () => { process.stdout.write(body); server.close(); });
  });
});
""",
    "addon/addon.c": """\
#include <node_api.h>
#include <zlib.h>
static napi_value
add(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value args[2], out;
    double a, b;
    napi_get_cb_info(env, info, &argc, args, NULL, NULL);
    napi_get_value_double(env, args[0], &a);
    napi_get_value_double(env, args[1], &b);
    napi_create_double(env, a + b + 0 * (double)zlibVersion()[0], &out);
    return out;
}
static napi_value
init(napi_env env, napi_value exports)
{
    napi_value fn;
    napi_create_function(env, "add", NAPI_AUTO_LENGTH, add, NULL, &fn);
    napi_set_named_property(env, exports, "add", fn);
    return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
""",
    "addon/main.js": """\
#!/usr/bin/env node
const addon = require('./build/addon.node');
const zlib = require('zlib');
const crypto = require('node:crypto');
const gz = zlib.gzipSync(Buffer.from('hello husk'));
console.log('addon', addon.add(40, 2), 'gzip', gz.length,
            'sha1', crypto.createHash('sha1').update('hello').digest('hex').slice(0, 8));
""",
    "esm/package.json": '{"name": "esm", "type": "module"}\n',
    "esm/lib.js": "export const label = (p) => 'esm ' + p;\n",
    "esm/main.js": """\
import path from 'node:path';
import { label } from './lib.js';
console.log(label(path.join('husk', 'x.txt')));
""",
    "sh/report.sh": """\
#!/bin/bash
set -euo pipefail
json='{"items":[{"n":"a","v":3},{"n":"b","v":4}]}'
total=$(echo "$json" | jq '[.items[].v] | add')
names=$(echo "$json" | jq -r '.items[].n' | sort -r | tr '\\n' ',' | sed 's/,$//')
lines=$(printf 'x\\ny\\nzz\\n' | grep -c .)
avg=$(printf '%s\\n' 3 4 | awk '{ s += $1 } END { print s / NR }')
upper=`echo husk | tr a-z A-Z`
cat <<EOF
total=$total names=$names lines=$lines avg=$avg upper=$upper words=$(echo a b c | wc -w) head=$(seq 5 | head -n 2 | tail -n 1) cut=$(echo a:b:c | cut -d: -f2)
EOF
""",
    "sh/tls.sh": """\
#!/bin/sh
printf 'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' |
    openssl s_client -quiet -verify_return_error -CAfile {A}/tls/ca.pem \\
        -connect 127.0.0.1:"$1" -servername localhost 2>/dev/null | tail -n 1
""",
    "sh/git.sh": """\
#!/bin/sh
set -e
export HOME=/tmp GIT_AUTHOR_NAME=husk GIT_AUTHOR_EMAIL=husk@example.invalid
export GIT_COMMITTER_NAME=husk GIT_COMMITTER_EMAIL=husk@example.invalid
cd /tmp
git init -q -b main repo 2>/dev/null
cd repo
echo hello > a.txt
git add a.txt
git commit -q -m "first commit"
echo again >> a.txt
git commit -q -am second
git log --format=%s
""",
    "sh/gzip.sh": "#!/bin/sh\nprintf 'hello gzip\\n' | gzip -9 | gzip -dc\n",
    "sh/xz.sh": "#!/bin/sh\nprintf 'hello xz\\n' | xz -T1 | xz -dc\n",
    "sh/zstd.sh": "#!/bin/sh\nprintf 'hello zstd\\n' | zstd -q | zstd -dcq\n",
    "sh/calc.sh": "#!/bin/sh\necho '2^20' | bc\n",
    "sh/tar.sh": """\
#!/bin/sh
set -e
mkdir -p /tmp/t && cd /tmp/t
echo a > a.txt && echo b > b.txt
tar -cf - a.txt b.txt | gzip | tar -tzf - | sort
""",
    "sh/cgi.sh": """\
#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "method=$REQUEST_METHOD year=$(date -u +%Y | cut -c1-2)xx"
""",
    "perl/tool.pl": """\
#!/usr/bin/perl
use strict;
use warnings;
use JSON::PP;
use POSIX qw(floor);
use File::Basename qw(basename);
use List::Util qw(sum);
print JSON::PP->new->canonical->encode({sum => sum(1, 2, 3), floor => floor(2.7),
                                        base => basename("/a/b.txt")}), "\\n";
""",
    "data/hello.txt": "hello\n",
}

EXECUTABLE = ("sh/", "perl/", "addon/main.js")
