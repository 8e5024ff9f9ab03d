# SPDX-License-Identifier: Apache-2.0
"""linux.namespaces: new, absent (shared with the host) and joined by path.

An unknown namespace type is a bad-input case: see test_bad_input.py.
"""

import os
from pathlib import Path

import pytest

from conftest import NS_PROC_NAME, host_ns

NEW_TYPES = ["pid", "mount", "uts", "ipc", "network", "cgroup", "time"]  # runc 1.1 has no "time"


@pytest.mark.parametrize("ns_type", NEW_TYPES)
def test_new_namespace_differs_from_host(ctx, bundle, ns_type):
    bundle.set_ns(ns_type)
    info = ctx.probe(bundle)
    name = NS_PROC_NAME[ns_type]
    assert info["ns"][name] != host_ns(name)


# "mount" cannot be absent: a runtime needs its own mount namespace to set up the rootfs.
@pytest.mark.parametrize("ns_type", ["pid", "uts", "ipc", "network", "cgroup", "time", "user"])
def test_absent_namespace_is_the_hosts(ctx, bundle, ns_type):
    bundle.remove_ns(ns_type)
    if ns_type == "uts":  # the hostname can only be set in a private uts namespace
        bundle.config.pop("hostname", None)
        bundle.config.pop("domainname", None)
    info = ctx.probe(bundle)
    name = NS_PROC_NAME[ns_type]
    assert info["ns"][name] == host_ns(name)


def test_pid_namespace_makes_the_process_pid_1(ctx, bundle):
    bundle.set_ns("pid")
    info = ctx.probe(bundle)
    assert info["pid"] == 1


def test_network_namespace_has_only_loopback(ctx, bundle):
    bundle.set_ns("network")
    (dev,) = ctx.probes(bundle, ["read", "/proc/self/net/dev"])
    # two header lines, then one line per interface: "  lo: 0 0 ..."
    interfaces = [line.split(":")[0].strip() for line in dev["data"].splitlines()[2:]]
    assert interfaces == ["lo"]


def test_user_namespace_maps_container_root_to_host_uid(ctx, bundle):
    bundle.set_ns("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    c = ctx.run_detached(bundle, args=("/bin/sh", "-c", "/probe info; exec /probe sleep 30"))
    c.wait_output('"ready"')
    info = c.output_lines()[0]

    assert (info["uid"], info["euid"], info["gid"], info["egid"]) == (0, 0, 0, 0)
    assert info["ns"]["user"] != host_ns("user")
    status = dict(line.split(":", 1)
                  for line in Path(f"/proc/{c.pid}/status").read_text().splitlines())
    assert status["Uid"].split() == ["100000"] * 4
    assert status["Gid"].split() == ["100000"] * 4
    assert Path(f"/proc/{c.pid}/uid_map").read_text().split() == ["0", "100000", "65536"]
    assert Path(f"/proc/{c.pid}/gid_map").read_text().split() == ["0", "100000", "65536"]


# Joining "mount" or "user" by path is left out: the first needs a rootfs already set up there,
# the second needs the mappings of the namespace joined.
@pytest.mark.parametrize("ns_type", ["network", "ipc", "uts", "pid", "cgroup"])
def test_join_namespace_by_path(ctx, ns_type):
    name = NS_PROC_NAME[ns_type]
    first_bundle = ctx.bundle("first")
    first_bundle.set_ns(ns_type)
    first = ctx.run_detached(first_bundle)
    first_ns = os.stat(f"/proc/{first.pid}/ns/{name}").st_ino

    second = ctx.bundle("second")
    second.set_ns(ns_type, f"/proc/{first.pid}/ns/{name}")
    info = ctx.probe(second)

    assert first_ns != host_ns(name)
    assert info["ns"][name] == first_ns
    if ns_type == "pid":
        assert info["pid"] != 1  # the first container's probe is pid 1 there
