# SPDX-License-Identifier: Apache-2.0
"""OCI hooks: each kind fires once, in runtime-spec 1.2's order, with the state on stdin; a
failing hook fails or warns as the spec says."""

import json

KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]


def add_hooks(ctx, bundle, fail=None, timeout=None):
    """Every hook appends 'KIND <state json>' to a log; startContainer runs inside the
    container, so the log dir is bound in at /hooklog."""
    logdir = ctx.path("hooklog")
    logdir.mkdir()
    bundle.add_mount("/hooklog", "bind", logdir, ["rbind", "rw"])
    hooks = {}
    for kind in KINDS:
        log = "/hooklog/log" if kind == "startContainer" else f"{logdir}/log"
        script = f'read -r s; echo "{kind} $s" >> {log}'
        if kind == fail:
            script += "; exit 3"
        hook = {"path": "/bin/sh", "args": ["sh", "-c", script]}
        if kind == timeout:
            hook["args"] = ["sh", "-c", "sleep 30"]
            hook["timeout"] = 1
        hooks[kind] = [hook]
    bundle.config["hooks"] = hooks
    return logdir / "log"


def entries(log):
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        kind, _, state = line.partition(" ")
        out.append((kind, json.loads(state)))
    return out


def test_every_hook_fires_once_in_order_with_the_state(ctx, bundle):
    log = add_hooks(ctx, bundle)
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    assert c.create_result.rc == 0, str(c.create_result)
    assert [k for k, _ in entries(log)] == KINDS[:3]
    r = c.start()
    assert r.rc == 0, str(r)
    ctx.wait_status(c.id, "stopped")
    assert c.delete().rc == 0
    got = entries(log)
    assert [k for k, _ in got] == KINDS
    pid = got[0][1]["pid"]
    for kind, state in got:
        assert state["id"] == c.id and state["bundle"] == str(bundle.path), kind
        if kind != "poststop":
            assert state["pid"] == pid, kind
    statuses = {k: s["status"] for k, s in got}
    assert statuses["createRuntime"] == "creating"
    assert statuses["poststart"] == "running"
    assert statuses["poststop"] == "stopped"


def test_run_fires_every_hook(ctx, bundle):
    log = add_hooks(ctx, bundle)
    bundle.probe("exit", "0")
    r = ctx.run(bundle)
    assert r.rc == 0, str(r)
    assert [k for k, _ in entries(log)] == KINDS


def test_failing_create_runtime_hook_fails_create_and_leaves_nothing(ctx, bundle):
    log = add_hooks(ctx, bundle, fail="createRuntime")
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    assert c.create_result.rc != 0
    assert "createRuntime hook 0" in c.create_result.err
    assert [k for k, _ in entries(log)] == ["prestart", "createRuntime"]
    ctx.assert_nothing_left()


def test_failing_start_container_hook_fails_start(ctx, bundle):
    add_hooks(ctx, bundle, fail="startContainer")
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    assert c.create_result.rc == 0, str(c.create_result)
    r = c.start()
    assert r.rc != 0 and "startContainer hook 0" in r.err, str(r)
    ctx.wait_status(c.id, "stopped")


def test_failing_poststart_hook_only_warns(ctx, bundle):
    log = add_hooks(ctx, bundle, fail="poststart")
    bundle.probe("exit", "0")
    r = ctx.run(bundle)
    assert r.rc == 0, str(r)
    assert "poststart hook 0" in r.err and "warning" in r.err
    assert [k for k, _ in entries(log)] == KINDS


def test_hook_timeout_kills_it_and_fails(ctx, bundle):
    add_hooks(ctx, bundle, timeout="createContainer")
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    assert c.create_result.rc != 0
    assert "timed out after 1 s" in c.create_result.err
    ctx.assert_nothing_left()


def test_relative_hook_path_is_refused(ctx, bundle):
    bundle.config["hooks"] = {"poststart": [{"path": "sh"}]}
    bundle.probe("exit", "0")
    r = ctx.run(bundle)
    assert r.rc != 0 and "hooks.poststart[0].path" in r.err
