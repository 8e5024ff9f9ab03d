# SPDX-License-Identifier: Apache-2.0
"""The container process: names, sysctls, args, env, cwd, ids, limits and inherited fds."""

import os
from pathlib import Path

import pytest

from conftest import HOST_ONLY_VAR, TOKEN_VAR


def test_hostname(ctx, bundle):
    before = os.uname().nodename
    bundle.set_ns("uts")
    bundle.config["hostname"] = "husk-it-host"
    assert ctx.probe(bundle)["hostname"] == "husk-it-host"
    assert os.uname().nodename == before


def test_domainname(ctx, bundle):
    bundle.set_ns("uts")
    bundle.config["domainname"] = "husk.example"
    assert ctx.probe(bundle)["domainname"] == "husk.example"


def test_sysctl_in_network_namespace(ctx, bundle):
    host = Path("/proc/sys/net/ipv4/ip_forward")
    before = host.read_text()
    want = "0" if before.strip() == "1" else "1"  # whichever differs from the host
    bundle.set_ns("network")
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": want}
    (st,) = ctx.probes(bundle, ["sysctl", "net.ipv4.ip_forward"])
    assert st["value"] == want
    assert host.read_text() == before


def test_sysctl_kernel_domainname(ctx, bundle):
    bundle.set_ns("uts")
    bundle.linux["sysctl"] = {"kernel.domainname": "sysctl.example"}
    assert ctx.probe(bundle)["domainname"] == "sysctl.example"


def test_args_are_passed_verbatim(ctx, bundle):
    args = ["info", "two words", 'a "quoted" one', "", "$HOME", "ü"]
    info = ctx.probe(bundle, *args)
    assert info["args"] == ["/probe", *args]


def test_env(ctx, bundle):
    env = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "EQ=a=b", f"{TOKEN_VAR}={ctx.token}"]
    bundle.process["env"] = env
    got = ctx.probe(bundle)["env"]
    assert set(env) <= set(got)
    # the runtime's own environment stays out
    assert not [e for e in got if e.startswith(HOST_ONLY_VAR + "=")]
    assert len(got) == len(set(got))


def test_cwd(ctx, bundle):
    bundle.process["cwd"] = "/srv/app"
    assert ctx.probe(bundle)["cwd"] == "/srv/app"


def test_user_ids_groups_and_umask(ctx, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 0o027}
    info = ctx.probe(bundle)
    assert (info["uid"], info["euid"], info["gid"], info["egid"]) == (1000, 1000, 1001, 1001)
    assert sorted(info["groups"]) == [5, 6]
    assert info["umask"] == "0027"


def test_rlimits(ctx, bundle):
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
        {"type": "RLIMIT_CORE", "soft": 1024, "hard": 2048},
    ]
    limits = ctx.probe(bundle)["rlimits"]
    assert limits["RLIMIT_NOFILE"] == {"soft": 1000, "hard": 2000}
    assert limits["RLIMIT_CORE"] == {"soft": 1024, "hard": 2048}


def test_oom_score_adj(ctx, bundle):
    bundle.process["oomScoreAdj"] = 123
    assert ctx.probe(bundle)["oom_score_adj"] == 123


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(ctx, bundle, nnp):
    bundle.process["noNewPrivileges"] = nnp
    assert ctx.probe(bundle)["no_new_privs"] == int(nnp)


def test_only_stdio_fds_are_inherited(ctx, bundle):
    fds = ctx.probe(bundle)["fds"]
    assert sorted(f["fd"] for f in fds) == [0, 1, 2], fds


def test_preserve_fds(ctx, bundle):
    files = []
    for n in (3, 4, 5):
        f = ctx.dir / f"fd{n}-file"
        f.write_text(str(n))
        files.append(f)
    bundle.probe()
    r = ctx.run(bundle, "--preserve-fds", "2", pass_fds_files=files)
    assert r.rc == 0, str(r)
    fds = {f["fd"]: f["target"] for f in r.json()["fds"]}
    assert sorted(fds) == [0, 1, 2, 3, 4], fds
    assert fds[3].endswith("/fd3-file") and fds[4].endswith("/fd4-file"), fds
