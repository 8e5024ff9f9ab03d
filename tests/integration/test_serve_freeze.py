# SPDX-License-Identifier: Apache-2.0
"""`husk serve --freeze`: idle instances frozen by the cgroup freezer and thawed by the next call."""

import glob
import json
import os
import time

from conftest import pid_alive, wait_for
from test_serve import daemon, shell_bundle  # noqa: F401 (fixture)
from test_serve_pools import deploy_cli, fn_get, metrics, server_bundle

# An http server (busybox nc) that keeps a ticker running beside it: a line in /tmp/ticks every
# 0.1 s while the instance runs. Each request answers with the number of ticks so far.
TICKS = r"""
while IFS= read -r line; do [ -z "$(printf '%s' "$line" | tr -d '\r')" ] && break; done
n=$(wc -l < /tmp/ticks)
printf 'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' ${#n} "$n"
"""


def frozen_cgroups(name):
    """Each instance cgroup's state as cgroup2 reports it (husk freezes idle instances with
    cgroup2's freezer, also on a hybrid host): True when frozen."""
    out = []
    for cg in glob.glob(f"/sys/fs/cgroup/unified/husk/serve-*/{name}-v*") + \
            glob.glob(f"/sys/fs/cgroup/husk/serve-*/{name}-v*"):
        with open(f"{cg}/cgroup.events") as f:
            out.append("frozen 1\n" in f.read())
    return out


def metric(text, name, fn):
    for line in text.splitlines():
        if line.startswith(f'{name}{{function="{fn}"}} '):
            return float(line.split()[-1])
    return None


def test_idle_stdio_instance_is_frozen_and_thawed_by_the_next_call(ctx, daemon):
    b = shell_bundle(ctx, "cat; echo done")
    st, body = daemon.deploy(name="fz", bundle=str(b.path), freeze=1, timeout=10)
    assert st == 201, body
    st, _, body = daemon.request("POST", "/function/fz", b"one ")
    assert (st, body) == (200, b"one done\n")
    assert fn_get(daemon, "fz")["freeze"] == 1
    wait_for(lambda: frozen_cgroups("fz") == [True], what="the idle instance frozen")
    assert fn_get(daemon, "fz")["instances"]["frozen"] == 1
    assert metric(metrics(daemon), "husk_instances_frozen", "fz") == 1
    # the next call thaws it and is served by the same instance (no second cold start)
    st, _, body = daemon.request("POST", "/function/fz", b"two ")
    assert (st, body) == (200, b"two done\n")
    m = metrics(daemon)
    assert metric(m, "husk_cold_starts_total", "fz") == 1
    assert metric(m, "husk_thaw_duration_seconds_count", "fz") == 1
    assert metric(m, "husk_instances_frozen", "fz") == 0
    assert fn_get(daemon, "fz")["instances"] == {"starting": 0, "idle": 1, "busy": 0, "frozen": 0}
    # and frozen again once idle
    wait_for(lambda: frozen_cgroups("fz") == [True], what="frozen again")


def test_frozen_http_server_does_not_run_and_serves_after_thaw(ctx, daemon):
    b = server_bundle(ctx, TICKS, name="ticker")
    b.args("/bin/sh", "-c", ': > /tmp/ticks; (while :; do echo >> /tmp/ticks; sleep 0.1; done) & '
           'exec nc -ll -p "$PORT" -e /srv/app/handler')
    b.write()
    st, body = daemon.deploy(name="tick", bundle=str(b.path), contract="http", freeze=1,
                             timeout=10)
    assert st == 201, body
    st, _, first = daemon.request("GET", "/function/tick")
    assert st == 200, first
    t_first = time.monotonic()
    wait_for(lambda: frozen_cgroups("tick") == [True], what="the idle server frozen")
    t_frozen = time.monotonic()
    time.sleep(3)  # 30 ticks if it ran
    st, _, second = daemon.request("GET", "/function/tick")
    assert st == 200, second
    ran = int(second) - int(first)
    # While frozen the ticker made no progress: only the time before the freeze (plus the
    # request's own moment) shows.
    assert ran <= (t_frozen - t_first) / 0.1 + 8, (ran, t_frozen - t_first)
    assert metric(metrics(daemon), "husk_cold_starts_total", "tick") == 1


def test_frozen_instance_is_still_reaped_when_idle(ctx, daemon):
    b = shell_bundle(ctx, "cat")
    st, body = daemon.deploy(name="gone", bundle=str(b.path), freeze=1, idle=3, timeout=10)
    assert st == 201, body
    assert daemon.request("POST", "/function/gone", b"x")[0] == 200
    wait_for(lambda: frozen_cgroups("gone") == [True], what="frozen")
    pids = []
    for cg in glob.glob("/sys/fs/cgroup/*/husk/serve-*/gone-v*")[:1]:
        with open(f"{cg}/cgroup.procs") as f:
            pids += [int(p) for p in f.read().split()]
    assert pids, "the frozen instance has processes"
    wait_for(lambda: fn_get(daemon, "gone")["instances"]["idle"] == 0, timeout=15,
             what="the idle instance stopped")
    wait_for(lambda: not frozen_cgroups("gone"), what="its cgroup removed")
    assert not [p for p in pids if pid_alive(p)]
    assert metric(metrics(daemon), "husk_instances_frozen", "gone") == 0


def test_freeze_flag_and_bad_values(ctx, daemon):
    b = shell_bundle(ctx, "cat")
    r = deploy_cli(daemon, "flagged", "--bundle", str(b.path), "--freeze", "5")
    assert r.returncode == 0, r.stderr
    assert fn_get(daemon, "flagged")["freeze"] == 5
    for bad in (-1, 86401, "soon"):
        st, body = daemon.deploy(name="bad", bundle=str(b.path), freeze=bad)
        assert st == 400 and b"'freeze'" in body, body
    assert daemon.request("GET", "/system/functions/bad")[0] == 404
    # without --freeze nothing is frozen
    st, body = daemon.deploy(name="plain", bundle=str(b.path), timeout=10)
    assert st == 201, body
    assert daemon.request("POST", "/function/plain", b"x")[0] == 200
    time.sleep(2)
    assert frozen_cgroups("plain") == [False]
    assert json.loads(daemon.request("GET", "/system/functions/plain")[2])["instances"][
        "frozen"] == 0
