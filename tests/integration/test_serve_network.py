# SPDX-License-Identifier: Apache-2.0
"""Functions on the network: loopback only by default; with --network egress an address on
husk's bridge and an allow-list enforced in the kernel (cgroup BPF) for every process of the
instance. The daemon runs in a network namespace of the test's (the "host"); remote hosts
are further namespaces; nothing leaves them, and nothing is left behind."""

import json
import os
import signal

import pytest

from conftest import pid_alive, wait_for
from serve_harness import Daemon
from test_network import NFT, NSENTER, REMOTE_PORT, Net, pytestmark  # noqa: F401 (the skip)
from test_serve import shell_bundle
from test_serve_lambda import instance_cgroups, instance_pids
from test_serve_pools import fn_get

# Each target: "ok <what the server said>" or "denied <why>", one line each.
PROBE = ("for t in \"$@\"; do out=$(nc -w 3 ${t%:*} ${t#*:} </dev/null 2>&1); "
         "case \"$out\" in *'not permitted'*) echo \"$t denied\";; "
         "'') echo \"$t nothing\";; *) echo \"$t ok $out\";; esac; done")


@pytest.fixture
def net(ctx):
    n = Net(ctx)
    try:
        yield n
    finally:
        left = n.close()
    assert not left, "left behind: " + ", ".join(left)


def probe_bundle(ctx, name, targets):
    b = ctx.bundle(name)
    b.args("/bin/sh", "-c", PROBE, "probe", *targets)
    b.write()
    return b


def answers(body):
    return dict(line.split(" ", 1) for line in body.decode().splitlines())


def test_egress_reaches_listed_destinations_only(ctx, net):
    r1, r2 = net.remote(1), net.remote(2)
    net.serve(r1, "198.51.101.2")
    net.serve(r1, "198.51.101.2", REMOTE_PORT + 1)
    net.serve(r2, "198.51.102.2")
    net.serve(net.host, "0.0.0.0", 9000)  # a service of the host's, on every address
    d = Daemon(ctx, ctx.dir / "faas", wrap=[NSENTER, f"--net=/run/netns/{net.host}"])
    d.start()
    try:
        allowed = f"198.51.101.2:{REMOTE_PORT}"
        targets = [allowed, f"198.51.101.2:{REMOTE_PORT + 1}", f"198.51.102.2:{REMOTE_PORT}",
                   "10.77.0.1:9000"]
        b = probe_bundle(ctx, "out", targets)
        r = d.fn("deploy", "out", "--bundle", str(b.path), "--network", "egress",
                 "--egress", f"198.51.101.2/32:{REMOTE_PORT}/tcp")
        assert r.returncode == 0, r
        status, _, body = d.request("GET", "/function/out")
        assert status == 200, body
        got = answers(body)
        # through NAT: the remote host sees the host's address on its link
        assert got[allowed] == "ok 198.51.101.1", got
        assert got[targets[1]] == "denied" and got[targets[2]] == "denied", got
        assert got["10.77.0.1:9000"] == "denied", got  # the host, through the bridge
        # the default: loopback only, nothing reachable at all
        b = probe_bundle(ctx, "lo", [allowed])
        assert d.deploy(name="lo", bundle=str(b.path))[0] == 201
        got = answers(d.request("GET", "/function/lo")[2])
        assert got[allowed] != f"ok 198.51.101.1", got
        assert d.fn("rm", "out").returncode == 0 and d.fn("rm", "lo").returncode == 0
    finally:
        assert d.stop() == 0, d.log.read_text()
    left = [x for x in net.leftovers() if ".network" not in x]
    store = ctx.dir / "faas" / ".network"
    left += [f"lease {p.name}" for p in store.rglob("*") if p.is_file()] if store.exists() else []
    assert not left, left


@pytest.mark.parametrize("spec,says", [
    ({"network": "egress", "egress": ["10.0.0.0/33"]}, "field 'egress'"),
    ({"network": "wifi"}, "field 'network'"),
    ({"egress": ["10.0.0.0/8"]}, "field 'egress': needs \"network\": \"egress\""),
    ({"network": "egress", "egress_dns": "resolver.example"}, "field 'egress_dns'"),
    ({"network": "egress", "egress": "10.0.0.0/8"}, "field 'egress': must be a list"),
])
def test_bad_network_settings_are_refused(ctx, spec, says):
    d = Daemon(ctx, ctx.dir / "faas")
    d.start()
    try:
        b = shell_bundle(ctx, "true")
        status, body = d.deploy(name="bad", bundle=str(b.path), **spec)
        assert status == 400 and says in json.loads(body)["error"], body
    finally:
        d.stop()


def test_egress_dns_allows_the_resolver_and_names_it(ctx, net):
    net.remote(1)
    d = Daemon(ctx, ctx.dir / "faas", wrap=[NSENTER, f"--net=/run/netns/{net.host}"])
    d.start()
    try:
        b = ctx.bundle("dns")
        (b.rootfs / "etc").mkdir(exist_ok=True)
        (b.rootfs / "etc" / "resolv.conf").write_text("nameserver 127.0.0.53\n")
        b.args("/bin/sh", "-c", "cat /etc/resolv.conf; /probe net udp 198.51.101.2 53; "
               "/probe net udp 198.51.101.2 54; /probe net udp 198.51.102.2 53")
        b.write()
        r = d.fn("deploy", "dns", "--bundle", str(b.path), "--network", "egress",
                 "--egress-dns", "198.51.101.2")
        assert r.returncode == 0, r
        status, _, body = d.request("GET", "/function/dns")
        assert status == 200, body
        lines = body.decode().splitlines()
        assert lines[0] == "nameserver 198.51.101.2", lines
        sends = [json.loads(line) for line in lines[1:]]
        assert sends[0]["ok"], sends  # the resolver's port 53
        assert [s["errno"] for s in sends[1:]] == [1, 1], sends  # EPERM: another port, host
    finally:
        assert d.stop() == 0, d.log.read_text()


def leases(state):
    """The lease store's leases: {address: the lease's text}, its files named by an address
    (the text names the holder: an instance id comes again after a restart, a holder not)."""
    store = state / ".network"
    return {p.name: p.read_text() for p in store.glob("*/*")
            if p.is_file() and not p.is_symlink() and p.name[0].isdigit()} \
        if store.exists() else {}


def cgroup_dirs(daemon, name):
    """The instances' cgroup directories, each with its inode: an instance id, and its cgroup's
    path, come again after a restart."""
    return {(cg, os.stat(cg).st_ino) for cg in instance_cgroups(daemon, name)}


def veths(net):
    return {x for x in net.links() if x.startswith("hk") and not x.startswith("hkitr")}


def test_a_kill9_leaves_nothing_the_next_start_does_not_reclaim(ctx, net):
    """kill -9 of the daemon while an egress instance runs, then a start on the same state
    directory: the orphan's processes, cgroups, veth and lease go, a new instance gets an
    address and reaches its destination, and a clean stop leaves nothing."""
    r1 = net.remote(1)
    net.serve(r1, "198.51.101.2")
    allowed = f"198.51.101.2:{REMOTE_PORT}"
    state = ctx.dir / "faas"
    d = Daemon(ctx, state, wrap=[NSENTER, f"--net=/run/netns/{net.host}"])
    d.start()
    try:
        b = probe_bundle(ctx, "eg", [allowed])
        r = d.fn("deploy", "eg", "--bundle", str(b.path), "--network", "egress", "--egress",
                 f"198.51.101.2/32:{REMOTE_PORT}/tcp", "--min", "1")
        assert r.returncode == 0, r
        wait_for(lambda: fn_get(d, "eg")["instances"]["idle"] == 1, 10, "a ready instance")
        assert answers(d.request("GET", "/function/eg")[2])[allowed] == "ok 198.51.101.1"
        old_cgroups, old_pids = cgroup_dirs(d, "eg"), instance_pids(d, "eg")
        old_leases, old_veths = leases(state), veths(net)
        assert old_cgroups and old_pids and len(old_leases) == 1 and len(old_veths) == 1, \
            (old_cgroups, old_pids, old_leases, old_veths)
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL
        # what the daemon left: its instance's cgroups and its lease (the instance's agent
        # sees the daemon gone and kills what runs; its namespace, and the veth, go with it)
        assert cgroup_dirs(d, "eg") == old_cgroups and leases(state) == old_leases

        d.start()  # the same state directory
        wait_for(lambda: not [p for p in old_pids if pid_alive(p)], 10,
                 "the orphan's processes to go")
        wait_for(lambda: not old_cgroups & cgroup_dirs(d, "eg"), 10,
                 "the orphan's cgroups to go")
        assert "removed 1 sandboxes left by an earlier run" in d.log.read_text()
        wait_for(lambda: fn_get(d, "eg")["instances"]["idle"] == 1, 10, "a new ready instance")
        assert answers(d.request("GET", "/function/eg")[2])[allowed] == "ok 198.51.101.1"
        # the orphan's lease reclaimed (by the new instance's acquire), its veth gone: one
        # lease and one veth, the new instance's
        new_leases = leases(state)
        assert len(new_leases) == 1 and new_leases != old_leases, (old_leases, new_leases)
        assert len(veths(net)) == 1, veths(net)  # named by the address: it may come again
        assert d.fn("rm", "eg").returncode == 0
    finally:
        assert d.stop() == 0, d.log.read_text()
    assert not instance_cgroups(d, "eg")
    left = [x for x in net.leftovers() if ".network" not in x]
    store = state / ".network"
    left += [f"lease {p.name}" for p in store.rglob("*") if p.is_file()] if store.exists() else []
    assert not left, left
