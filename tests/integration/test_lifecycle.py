# SPDX-License-Identifier: Apache-2.0
"""The OCI lifecycle (creating, created, running, stopped) and the verbs around it."""

import json
import time

import pytest

from conftest import pid_alive, proc_descendants, wait_for


def test_spec_writes_a_valid_config(ctx):
    d = ctx.dir / "fresh"
    d.mkdir()
    r = ctx.runtime("spec", cwd=d)
    assert r.rc == 0, str(r)
    config = json.loads((d / "config.json").read_text())
    assert config["ociVersion"].startswith("1.")
    assert config["root"]["path"] == "rootfs"
    assert isinstance(config["process"]["args"], list) and config["process"]["args"]
    assert config["process"]["cwd"] == "/"
    assert "mount" in [n["type"] for n in config["linux"]["namespaces"]]


def test_spec_refuses_to_overwrite(ctx):
    d = ctx.dir / "taken"
    d.mkdir()
    (d / "config.json").write_text("{}\n")
    r = ctx.runtime("spec", cwd=d)
    assert r.rc != 0, str(r)
    assert "config.json" in r.err
    assert (d / "config.json").read_text() == "{}\n"


def test_create_start_state_delete(ctx, bundle):
    bundle.probe("sleep", "30")
    c = ctx.create(bundle)
    assert c.create_result.rc == 0, str(c.create_result)

    st = c.state()
    assert st["status"] == "created"
    assert st["id"] == c.id
    assert st["ociVersion"].startswith("1.")
    assert st["bundle"] == str(bundle.path)
    assert st["pid"] > 0 and pid_alive(st["pid"])
    assert '"ready"' not in c.output()  # the user's program has not run yet

    r = c.start()
    assert r.rc == 0, str(r)
    c.wait_output('"ready"')
    st = c.state()
    assert st["status"] == "running"
    pid = st["pid"]

    assert c.kill("KILL").rc == 0
    ctx.wait_status(c.id, "stopped")
    assert not pid_alive(pid)

    r = c.delete()
    assert r.rc == 0, str(r)
    assert ctx.runtime("state", c.id).rc != 0
    ctx.assert_nothing_left()


def test_process_exit_makes_the_container_stopped(ctx, bundle):
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    assert c.create_result.rc == 0, str(c.create_result)
    pid = c.state()["pid"]
    assert c.start().rc == 0
    ctx.wait_status(c.id, "stopped")
    assert not pid_alive(pid)


def test_start_of_a_running_container_fails(ctx, bundle):
    c = ctx.run_detached(bundle)
    r = c.start()
    assert r.rc != 0, str(r)
    assert c.status() == "running"


def test_start_of_a_stopped_container_fails(ctx, bundle):
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    assert c.start().rc == 0
    ctx.wait_status(c.id, "stopped")
    r = c.start()
    assert r.rc != 0, str(r)
    assert c.status() == "stopped"


def test_delete_of_a_running_container_needs_force(ctx, bundle):
    c = ctx.run_detached(bundle)
    r = c.delete()
    assert r.rc != 0, str(r)
    assert c.status() == "running" and pid_alive(c.pid)

    r = c.delete(force=True)
    assert r.rc == 0, str(r)
    assert not pid_alive(c.pid)
    ctx.assert_nothing_left()


def test_delete_of_a_created_container(ctx, bundle):
    bundle.probe("sleep", "30")
    c = ctx.create(bundle)
    assert c.create_result.rc == 0, str(c.create_result)
    pid = c.state()["pid"]
    r = c.delete()
    assert r.rc == 0, str(r)
    assert not pid_alive(pid)
    assert '"ready"' not in c.output()
    ctx.assert_nothing_left()


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9", "TERM"])
def test_kill(ctx, bundle, sig):
    c = ctx.run_detached(bundle)
    r = c.kill(sig)
    assert r.rc == 0, str(r)
    ctx.wait_status(c.id, "stopped")
    assert not pid_alive(c.pid)
    if sig == "TERM":  # the probe's handler saw it; KILL leaves no trace but the stop
        assert {"signal": 15} in c.output_lines()


def test_kill_of_a_stopped_container_fails(ctx, bundle):
    bundle.probe("exit", "0")
    c = ctx.create(bundle)
    assert c.start().rc == 0
    ctx.wait_status(c.id, "stopped")
    r = c.kill("KILL")
    assert r.rc != 0, str(r)


def test_kill_all(ctx, bundle):
    c = ctx.run_detached(bundle, args=("/bin/sh", "-c", "/probe sleep 30 & /probe sleep 30 & wait"))
    wait_for(lambda: c.output().count('"ready"') == 2, 10, "both probes to start")
    pids = [c.pid] + proc_descendants(c.pid)
    assert len(pids) == 3, pids
    r = c.kill("KILL", all_=True)
    assert r.rc == 0, str(r)
    ctx.wait_status(c.id, "stopped")
    wait_for(lambda: not any(pid_alive(p) for p in pids), 5, "every process to die")


def test_run_returns_the_exit_code(ctx, bundle):
    bundle.probe("exit", "3")
    r = ctx.run(bundle)
    assert r.rc == 3, str(r)


@pytest.mark.parametrize("signo", [9, 15])
def test_run_returns_128_plus_the_signal(ctx, bundle, signo):
    # pid 1 of a pid namespace cannot die by its own signal, so share the host's pid namespace.
    bundle.remove_ns("pid")
    bundle.probe("kill-self", str(signo))
    r = ctx.run(bundle)
    assert r.rc == 128 + signo, str(r)


def test_run_detach_keeps_the_container_running(ctx, bundle):
    t0 = time.monotonic()
    c = ctx.run_detached(bundle)
    assert time.monotonic() - t0 < 10
    assert c.status() == "running"
    assert pid_alive(c.pid)


def test_list(ctx, bundle):
    c = ctx.run_detached(bundle)
    r = ctx.runtime("list")
    assert r.rc == 0, str(r)
    lines = r.out.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    row = [line.split() for line in lines[1:] if line.split()[0] == c.id]
    assert row and row[0][1:4] == [str(c.pid), "running", str(bundle.path)], lines

    r = ctx.runtime("list", "--format", "json")
    assert r.rc == 0, str(r)
    (entry,) = r.json()
    assert (entry["id"], entry["pid"], entry["status"], entry["bundle"]) == (
        c.id, c.pid, "running", str(bundle.path))


def test_pid_file(ctx, bundle):
    pid_file = ctx.dir / "container.pid"
    bundle.probe("sleep", "30")
    c = ctx.create(bundle, "--pid-file", pid_file)
    assert c.create_result.rc == 0, str(c.create_result)
    pid = int(pid_file.read_text())
    assert pid == c.state()["pid"]
    assert pid_alive(pid)


def test_features(ctx):
    r = ctx.runtime("features")
    assert r.rc == 0, str(r)
    features = r.json()
    assert features["ociVersionMin"].startswith("1.")
    assert features["ociVersionMax"].startswith("1.")


def test_version(ctx):
    r = ctx.runtime("--version")
    assert r.rc == 0, str(r)
    assert "version" in r.out.lower()


def test_log_json(ctx):
    log = ctx.dir / "runtime.log"
    r = ctx.runtime("start", "no-such-container",
                    global_args=("--log", log, "--log-format", "json"))
    assert r.rc != 0, str(r)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all("level" in e and "msg" in e for e in entries), entries
    assert any(e["level"] == "error" and e["msg"] for e in entries), entries


def test_checkpoint_and_restore_say_they_are_not_supported(ctx):
    for verb in ("checkpoint", "restore"):
        r = ctx.runtime(verb, "anything")
        assert r.rc != 0 and "not supported" in r.err, str(r)


def test_help_lists_every_verb_once(ctx):
    r = ctx.runtime("--help")
    assert r.rc == 0 and r.out.count("usage:") == 1
    for verb in ("create", "start", "exec", "pause", "update", "events", "pack", "image"):
        assert f"  {verb} " in r.out, verb
