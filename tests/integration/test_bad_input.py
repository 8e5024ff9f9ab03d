# SPDX-License-Identifier: Apache-2.0
"""A user's mistake gets a non-zero exit, a message naming the problem, and leaves nothing behind.

Tests marked husk_message pin husk's own wording and fail on runc, which words these errors
differently: missing config.json (runc does not print the path), malformed JSON (no line/column),
wrong field type, duplicate id, unknown verb, unknown flag and unknown namespace type. The one
marked husk_behaviour fails on runc too: runc creates a missing cwd, husk refuses it.
"""

import shutil

import pytest


def assert_fails(ctx, r, *words):
    assert r.rc != 0, str(r)
    for w in words:
        assert w in r.err, f"{w!r} not in the error message: {r}"
    ctx.assert_nothing_left()


@pytest.mark.husk_message
def test_missing_config_json(ctx, bundle):
    r = ctx.run(bundle, write=False)
    assert_fails(ctx, r, f"{bundle.path}/config.json")


@pytest.mark.husk_message
def test_malformed_json(ctx, bundle):
    (bundle.path / "config.json").write_text('{\n  "ociVersion": "1.0.2",\n  "process": {\n')
    r = ctx.run(bundle, write=False)
    assert_fails(ctx, r, "config.json", "line")


@pytest.mark.husk_message
def test_wrong_field_type(ctx, bundle):
    bundle.process["args"] = "/probe"
    r = ctx.run(bundle)
    assert_fails(ctx, r, "field 'process.args': expected an array, got a string")


def test_missing_rootfs(ctx, bundle):
    shutil.rmtree(bundle.rootfs)
    r = ctx.run(bundle)
    assert_fails(ctx, r, "rootfs")


@pytest.mark.husk_message
def test_duplicate_id(ctx):
    first_bundle = ctx.bundle("first")
    first_bundle.probe("sleep", "30")
    first = ctx.create(first_bundle)
    assert first.create_result.rc == 0, str(first.create_result)
    before = first.state()

    second = ctx.bundle("second")
    second.probe("sleep", "30")
    second.write()
    r = ctx.runtime("create", "--bundle", second.path, first.id)
    assert r.rc != 0, str(r)
    assert f"container '{first.id}' already exists" in r.err, str(r)

    after = first.state()  # the first container is untouched
    assert (after["status"], after["pid"]) == ("created", before["pid"])
    assert after["bundle"] == str(first_bundle.path)
    ids = [e["id"] for e in ctx.runtime("list", "--format", "json").json()]
    assert ids == [first.id]


@pytest.mark.husk_message
def test_unknown_verb(ctx):
    r = ctx.runtime("frobnicate")
    assert_fails(ctx, r, "unknown command 'frobnicate'")


@pytest.mark.husk_message
def test_unknown_flag(ctx, bundle):
    bundle.write()
    r = ctx.runtime("run", "--frobnicate", "--bundle", bundle.path, ctx.new_id())
    assert_fails(ctx, r, "unknown flag '--frobnicate'")


@pytest.mark.husk_message
def test_unknown_namespace_type(ctx, bundle):
    n = len(bundle.linux["namespaces"])
    bundle.linux["namespaces"].append({"type": "foo"})
    r = ctx.run(bundle)
    assert_fails(ctx, r, f"field 'linux.namespaces[{n}].type': unknown namespace type 'foo'")


def test_executable_not_found(ctx, bundle):
    bundle.args("nope")
    r = ctx.run(bundle)
    assert_fails(ctx, r, "nope", "executable file not found")


@pytest.mark.husk_behaviour
def test_cwd_does_not_exist(ctx, bundle):
    bundle.config["root"]["readonly"] = False  # so a runtime cannot fail for a different reason
    bundle.process["cwd"] = "/does/not/exist"
    r = ctx.run(bundle)
    assert_fails(ctx, r, "/does/not/exist")
