# SPDX-License-Identifier: Apache-2.0
"""`husk exec`: a new process inside a running container sees what its init sees."""

import json

NS = ("mnt", "pid", "net", "uts", "ipc", "cgroup")


def exec_probe(ctx, c, *flags):
    r = ctx.runtime("exec", *flags, c.id, "/probe")
    assert r.rc == 0, str(r)
    return r.json()


def status_fields(ctx, c, *flags):
    r = ctx.runtime("exec", *flags, c.id, "/bin/cat", "/proc/self/status")
    assert r.rc == 0, str(r)
    fields = dict(line.split(":\t", 1) for line in r.out.splitlines() if ":\t" in line)
    return {k: v.strip() for k, v in fields.items()}


def test_exec_joins_the_namespaces_of_init(ctx, bundle):
    c = ctx.run_detached(bundle)
    init = c.output_lines()[0] if c.output_lines() else None
    seen = exec_probe(ctx, c)
    r = ctx.runtime("exec", c.id, "/bin/sh", "-c",
                    "for n in mnt pid net uts ipc cgroup; do readlink /proc/1/ns/$n; done")
    assert r.rc == 0, str(r)
    init_ns = [line.split("[")[1].rstrip("]") for line in r.out.split()]
    assert [str(seen["ns"][n]) for n in NS] == init_ns
    assert seen["pid"] != 1 and init is not None


def test_exec_keeps_seccomp_caps_and_no_new_privs(ctx, bundle):
    c = ctx.run_detached(bundle)
    mine = status_fields(ctx, c)
    r = ctx.runtime("exec", c.id, "/bin/cat", "/proc/1/status")
    init = {k: v.strip() for k, v in (line.split(":\t", 1) for line in r.out.splitlines()
                                      if ":\t" in line)}
    for field in ("Seccomp", "NoNewPrivs", "CapEff", "CapBnd", "CapPrm"):
        assert mine[field] == init[field], field
    assert mine["Seccomp"] == "2" and mine["NoNewPrivs"] == "1"


def test_exec_flags_user_cwd_env_caps(ctx, bundle):
    c = ctx.run_detached(bundle)
    seen = exec_probe(ctx, c, "--user", "1000:1001", "--additional-gids", "7", "--cwd", "/tmp",
                      "--env", "HUSK_EXEC=yes")
    assert (seen["uid"], seen["gid"], seen["cwd"]) == (1000, 1001, "/tmp")
    assert 7 in seen["groups"]
    assert "HUSK_EXEC=yes" in seen["env"]
    caps = status_fields(ctx, c, "--cap", "CAP_SYS_CHROOT")
    assert int(caps["CapEff"], 16) & (1 << 18)


def test_exec_process_json(ctx, bundle):
    c = ctx.run_detached(bundle)
    proc = ctx.path("process.json")
    proc.write_text(json.dumps({"args": ["/probe", "exit", "5"], "cwd": "/", "env": ["A=b"],
                                "user": {"uid": 0, "gid": 0}}))
    r = ctx.runtime("exec", "--process", proc, c.id)
    assert r.rc == 5, str(r)


def test_exec_exit_code_and_detach(ctx, bundle):
    c = ctx.run_detached(bundle)
    assert ctx.runtime("exec", c.id, "/probe", "exit", "3").rc == 3
    pid_file = ctx.path("exec.pid")
    r = ctx.runtime("exec", "-d", "--pid-file", pid_file, c.id, "/probe", "sleep", "30")
    assert r.rc == 0, str(r)
    assert int(pid_file.read_text()) > 0


def test_exec_failures_are_clear_and_leave_nothing(ctx, bundle):
    c = ctx.run_detached(bundle)
    r = ctx.runtime("exec", c.id, "nope")
    assert r.rc != 0 and "executable file not found" in r.err
    r = ctx.runtime("exec", "--user", "root", c.id, "/probe")
    assert r.rc != 0 and "--user" in r.err
    # husk's own fds are closed before the cwd is reached, so /proc/self/fd/3 leads nowhere.
    r = ctx.runtime("exec", "--cwd", "/proc/self/fd/3", c.id, "/probe")
    assert r.rc != 0 and "cwd '/proc/self/fd/3'" in r.err
    r = ctx.runtime("exec", "nosuchcontainer", "/probe")
    assert r.rc != 0 and "does not exist" in r.err
    c.kill("KILL")
    ctx.wait_status(c.id, "stopped")
    r = ctx.runtime("exec", c.id, "/probe")
    assert r.rc != 0 and "stopped" in r.err
