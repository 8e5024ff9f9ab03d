# SPDX-License-Identifier: Apache-2.0
"""Versions and aliases, as Lambda has them: every deploy is a version that stays callable
(NAME@N, the Lambda Qualifier), aliases point at one version or split calls between two
(a canary), rollback and update make new versions from old ones, and all of it survives a
restart and goes with `fn rm`."""

import json
import os
import subprocess

import pytest

from serve_harness import Daemon
from test_serve import shell_bundle


@pytest.fixture
def daemon(ctx):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    yield d
    assert d.stop() in (0, None), d.log.read_text()


def call(daemon, path):
    status, _, body = daemon.request("GET", path)
    return status, body.decode()


def deploy_versions(ctx, daemon, name, n):
    """Versions 1..n of NAME, each from a bundle of its own that prints vN."""
    for v in range(1, n + 1):
        b = shell_bundle(ctx, f"echo v{v}", name=f"{name}-b{v}")
        status, body = daemon.deploy(name=name, bundle=str(b.path))
        assert status == 201 and json.loads(body)["version"] == v, body


def test_every_version_stays_callable(ctx, daemon):
    deploy_versions(ctx, daemon, "f", 3)
    assert call(daemon, "/function/f") == (200, "v3\n")
    assert call(daemon, "/function/f@1") == (200, "v1\n")
    assert call(daemon, "/function/f@2/sub/path") == (200, "v2\n")
    assert call(daemon, "/function/f@3") == (200, "v3\n")
    status, body = call(daemon, "/function/f@4")
    assert status == 404 and "has no version 4" in body
    status, body = call(daemon, "/function/f@nope")
    assert status == 404 and "no version or alias 'nope'" in body
    r = daemon.fn("versions", "f")
    assert r.returncode == 0, r
    listed = json.loads(r.stdout)
    assert [v["version"] for v in listed] == [1, 2, 3]
    assert listed[0]["spec"]["bundle"].endswith("f-b1")
    r = daemon.fn("invoke", "f", "--version", "2")
    assert r.returncode == 0 and r.stdout == b"v2\n", r


def test_an_alias_points_at_a_version_and_splits_calls(ctx, daemon):
    deploy_versions(ctx, daemon, "g", 2)
    r = daemon.fn("alias", "g", "live", "1")
    assert r.returncode == 0, r
    assert call(daemon, "/function/g@live") == (200, "v1\n")
    r = daemon.fn("alias", "g", "live", "1", "--weight", "2=0.5")
    assert r.returncode == 0 and json.loads(r.stdout)["weights"] == {"2": 0.5}, r
    seen = [call(daemon, "/function/g@live")[1] for _ in range(200)]
    share = seen.count("v2\n") / len(seen)
    assert set(seen) == {"v1\n", "v2\n"} and 0.3 < share < 0.7, share
    assert json.loads(daemon.fn("aliases", "g").stdout) == \
        [{"name": "live", "version": 1, "weights": {"2": 0.5}}]
    r = daemon.fn("unalias", "g", "live")
    assert r.returncode == 0, r
    assert call(daemon, "/function/g@live")[0] == 404


@pytest.mark.parametrize("args,body,status,says", [
    (["missing", "9"], None, 404, "has no version 9"),
    (["9bad", "1"], None, 400, "alias '9bad'"),
    (["live", "1", "--weight", "2=1.5"], None, 400, "above 0 and below 1"),
    (["live", "1", "--weight", "1=0.5"], None, 400, "is not another version"),
    (["live", "1", "--weight", "7=0.5"], None, 404, "has no version 7"),
])
def test_bad_aliases_are_refused_and_change_nothing(ctx, daemon, args, body, status, says):
    deploy_versions(ctx, daemon, "h", 2)
    assert daemon.fn("alias", "h", "live", "2").returncode == 0
    r = daemon.fn("alias", "h", *args)
    assert r.returncode != 0 and f"HTTP {status}".encode() in r.stderr, r
    assert says.encode() in r.stderr, r.stderr
    assert json.loads(daemon.fn("aliases", "h").stdout) == [{"name": "live", "version": 2}]
    # two extra versions at once: refused by the API itself
    st, _, out = daemon.request("PUT", "/system/functions/h/aliases/x",
                                json.dumps({"version": 1, "weights": {"2": 0.1, "3": 0.1}}))
    assert st == 400 and b"at most one" in out


def test_rollback_and_update_make_new_versions(ctx, daemon):
    b = shell_bundle(ctx, "echo only", name="one-b")
    assert daemon.deploy(name="one", bundle=str(b.path))[0] == 201
    r = daemon.fn("rollback", "one")
    assert r.returncode != 0 and b"no earlier version" in r.stderr, r
    deploy_versions(ctx, daemon, "k", 3)
    r = daemon.fn("rollback", "k")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == 4, r
    assert call(daemon, "/function/k") == (200, "v2\n")
    r = daemon.fn("rollback", "k", "--to", "1")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == 5, r
    assert call(daemon, "/function/k") == (200, "v1\n")
    r = daemon.fn("update", "k", "--timeout", "7", "-e", "X=1")
    assert r.returncode == 0, r
    got = json.loads(r.stdout)
    assert (got["version"], got["timeout"], got["env"]) == (6, 7, ["X=1"])
    assert got["bundle"].endswith("k-b1")  # the rest is version 5's
    assert call(daemon, "/function/k@4") == (200, "v2\n")  # the old ones stay callable
    r = daemon.fn("update", "k")
    assert r.returncode != 0 and b"nothing to change" in r.stderr


def test_versions_and_aliases_survive_a_restart_and_go_with_rm(ctx):
    d = Daemon(ctx, ctx.dir / "faas-restart")
    d.start()
    try:
        deploy_versions(ctx, d, "p", 2)
        assert d.fn("alias", "p", "stable", "1").returncode == 0
        assert d.stop() == 0
        d.start()
        assert call(d, "/function/p@stable") == (200, "v1\n")
        assert call(d, "/function/p@2") == (200, "v2\n")
        assert d.fn("rm", "p").returncode == 0
        b = shell_bundle(ctx, "echo again", name="p-again")
        status, body = d.deploy(name="p", bundle=str(b.path))
        assert status == 201 and json.loads(body)["version"] == 1, body
        assert call(d, "/function/p@stable")[0] == 404
        assert call(d, "/function/p@2")[0] == 404
    finally:
        d.stop()


def test_the_lambda_qualifier_calls_a_version_or_an_alias(ctx, daemon):
    deploy_versions(ctx, daemon, "q", 2)
    assert daemon.fn("alias", "q", "blue", "1").returncode == 0
    home = ctx.dir / "awshome"
    home.mkdir()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
               AWS_DEFAULT_REGION="us-east-1", HOME=str(home),
               AWS_CONFIG_FILE=str(home / "none"), AWS_SHARED_CREDENTIALS_FILE=str(home / "none"))

    def invoke(*extra):
        out = ctx.dir / "out.json"
        r = subprocess.run(["/usr/bin/aws", "lambda", "invoke", "--endpoint-url",
                            f"http://127.0.0.1:{daemon.port}", "--function-name", "q", *extra,
                            str(out)], capture_output=True, text=True, timeout=60, env=env)
        return r, out.read_text() if r.returncode == 0 else None

    assert invoke()[1] == "v2\n"
    r, out = invoke("--qualifier", "1")
    assert out == "v1\n" and json.loads(r.stdout)["ExecutedVersion"] == "1", r
    assert invoke("--qualifier", "blue")[1] == "v1\n"
    assert invoke("--function-name", "q:2")[1] == "v2\n"  # NAME:QUALIFIER (the last one wins)
    r, _ = invoke("--qualifier", "green")
    assert r.returncode != 0 and "ResourceNotFoundException" in r.stderr, r.stderr
    # asynchronous calls run the latest: a qualifier that is not it is refused
    r, _ = invoke("--qualifier", "1", "--invocation-type", "Event")
    assert r.returncode != 0 and "InvalidParameterValue" in r.stderr, r.stderr
    status, _ = call(daemon, "/async-function/q@1")
    assert status == 400


def test_tables_for_people_json_for_programs(ctx, daemon):
    deploy_versions(ctx, daemon, "tbl", 2)
    assert daemon.fn("alias", "tbl", "live", "1", "--weight", "2=0.25").returncode == 0
    r = daemon.fn("ls", table=True)
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["NAME", "CONTRACT", "VERSION", "STARTING", "IDLE", "BUSY",
                                "QUEUED", "ROOT"], lines
    row = lines[1].split()
    assert row[:3] == ["tbl", "stdio", "2"] and row[-1].endswith("tbl-b2"), lines
    assert lines[0].index("VERSION") == lines[1].index("2 ")  # aligned
    r = daemon.fn("versions", "tbl", table=True)
    assert [ln.split()[0] for ln in r.stdout.decode().splitlines()] == ["VERSION", "1", "2"]
    r = daemon.fn("aliases", "tbl", table=True)
    assert "live   1        version 2 for 25% of calls" in r.stdout.decode(), r.stdout
    r = daemon.fn("get", "tbl", table=True)
    assert any(ln.split() == ["version", "2"] for ln in r.stdout.decode().splitlines())
    r = daemon.fn("ls", "--format", "yaml", table=True)
    assert r.returncode == 2 and b"--format 'yaml'" in r.stderr


def test_invoke_takes_a_method_path_query_and_headers(ctx, daemon):
    b = shell_bundle(ctx, 'echo "$Http_Method $Http_Path $Http_Query $Http_X_Mine"; cat')
    assert daemon.deploy(name="echo", bundle=str(b.path))[0] == 201
    r = daemon.fn("invoke", "echo", "-X", "PUT", "--path", "/a/b", "--query", "x=1&y=2",
                  "-H", "X-Mine: yes", stdin=b"body")
    assert r.returncode == 0 and r.stdout == b"PUT /a/b x=1&y=2 yes\nbody", r
    r = daemon.fn("invoke", "echo", "-X", "GET", stdin=b"ignored")
    assert r.stdout == b"GET /  \n", r
    r = daemon.fn("invoke", "echo", "-H", "no colon")
    assert r.returncode != 0 and b"expected 'Name: value'" in r.stderr
