# SPDX-License-Identifier: Apache-2.0
"""Rootless: husk run by an unprivileged user (nobody), with `husk spec --rootless`."""

import json
import os
import subprocess

from conftest import HUSK, TOKEN_VAR

NOBODY = 65534


def as_nobody(ctx, *args, cwd=None):
    env = ctx.env()
    env.pop("XDG_RUNTIME_DIR", None)
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", HUSK, *args]
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=20)


def rootless_bundle(ctx):
    bundle = ctx.bundle("rootless")
    os.chown(bundle.path, NOBODY, NOBODY)
    (bundle.path / "config.json").unlink(missing_ok=True)
    r = as_nobody(ctx, "spec", "--rootless", "--bundle", str(bundle.path))
    assert r.returncode == 0, r.stderr
    bundle.config = json.loads((bundle.path / "config.json").read_text())
    bundle.process["env"].append(f"{TOKEN_VAR}={ctx.token}")
    ctx.state.mkdir(mode=0o700)
    os.chown(ctx.state, NOBODY, NOBODY)
    return bundle


def test_rootless_spec_maps_the_caller_to_root(ctx):
    bundle = rootless_bundle(ctx)
    linux = bundle.config["linux"]
    assert {"type": "user"} in linux["namespaces"]
    assert {"type": "network"} not in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": NOBODY, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": NOBODY, "size": 1}]


def test_rootless_run_is_root_inside_and_nobody_outside(ctx):
    bundle = rootless_bundle(ctx)
    bundle.args("/bin/sh", "-c", "/probe; cat /proc/self/uid_map")
    bundle.write()
    r = as_nobody(ctx, "--root", str(ctx.state), "run", "--bundle", str(bundle.path),
                  ctx.new_id())
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.splitlines()[0])
    assert seen["uid"] == 0 and seen["euid"] == 0
    assert seen["no_new_privs"] == 1
    assert seen["ns"]["user"] != os.stat("/proc/self/ns/user").st_ino
    assert r.stdout.split()[-3:] == ["0", str(NOBODY), "1"]


def test_rootless_wider_map_without_subids_fails_clearly(ctx):
    bundle = rootless_bundle(ctx)
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.probe()
    bundle.write()
    r = as_nobody(ctx, "--root", str(ctx.state), "run", "--bundle", str(bundle.path),
                  ctx.new_id())
    assert r.returncode != 0
    assert "newuidmap" in r.stderr
    assert not [e for e in os.listdir(ctx.state) if not e.startswith(".")]
