# SPDX-License-Identifier: Apache-2.0
"""A `husk serve` under test: its front door on a loopback port, its admin API on a unix socket
in the test's own directory (as an operator runs it), and clients for both."""

import errno
import glob
import http.client
import json
import os
import signal
import socket
import subprocess

from conftest import HUSK, wait_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the daemon's admin socket)."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def cgroup_pids(path):
    """The pids in the cgroup at path; None when it is gone or being removed (ENODEV)."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(p) for p in f.read().split()]
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENODEV):
            raise
        return None


def serve_cgroup(daemon):
    """The daemon's own cgroup, /husk/serve-HASH (server.c's FNV-1a-style hash of its state
    directory's real path): other daemons on this machine have functions of the same names."""
    h = 1469598103934665603  # server.c's starting value
    for b in os.path.realpath(daemon.state).encode():
        h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
    return f"husk/serve-{(h ^ (h >> 32)) & 0xffffffff:08x}"


class Daemon:
    def __init__(self, ctx, state, args=(), wrap=(), husk_args=()):
        """wrap: a command the daemon runs under (nsenter into a test's network namespace);
        its front door is then out of reach, and calls go through the admin socket.
        husk_args: husk's own flags, before "serve" (--debug)."""
        self.ctx, self.state, self.args, self.wrap = ctx, state, list(args), list(wrap)
        self.husk_args = list(husk_args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = str(ctx.dir / f"admin-{self.port}.sock")
        self.admin_url = f"unix:{self.socket}"
        self.log = ctx.path("serve-log")
        self.proc = None

    def start(self):
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [*self.wrap, HUSK, *self.husk_args, "--root", str(self.ctx.state), "serve",
                 "--listen", f"127.0.0.1:{self.port}", "--state", str(self.state),
                 "--admin-socket", self.socket, *self.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.ctx.env())

        def up():
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if not self.wrap:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                s.close()
                return True
            except OSError:
                return False

        wait_for(up, 10, "husk serve to listen")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_stuck(sig)
            self.proc = None
            return rc
        return None

    def kill_stuck(self, sig):
        """A daemon that did not stop: what its threads waited in, then SIGKILL, its empty
        cgroups removed (the next tests must not inherit them), and the failure said."""
        pid = self.proc.pid
        waits = []
        for task in glob.glob(f"/proc/{pid}/task/*"):
            try:
                with open(f"{task}/comm") as c, open(f"{task}/wchan") as w:
                    waits.append(f"{c.read().strip()}: {w.read().strip()}")
            except OSError:
                pass
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        for top in glob.glob(f"/sys/fs/cgroup/*/{serve_cgroup(self)}"):
            for sub in sorted((p for p, _, _ in os.walk(top)), key=len, reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
        raise AssertionError(f"husk serve did not stop within 15 s of signal {int(sig)}; its "
                             f"threads waited in {waits}; log:\n{self.log.read_text()[-3000:]}")

    def connection(self, via, timeout=30):
        if via == "unix":
            return UnixHTTPConnection(self.socket, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30, via=None):
        """Admin paths (/system/...) go to the admin socket, the rest to the front door."""
        via = via or ("unix" if path.startswith("/system/") or self.wrap else "tcp")
        headers = dict(headers or {})
        if via == "unix" and method in ("POST", "PUT", "PATCH"):
            headers.setdefault("Content-Type", "application/json")
        conn = self.connection(via, timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def deploy(self, **spec):
        status, headers, body = self.request("POST", "/system/functions", json.dumps(spec))
        return status, body

    def fn(self, *args, stdin=b"", table=False):
        """`husk fn ARGS` on the admin socket; answers as JSON unless table is asked for."""
        fmt = [] if table else ["--format", "json"]
        return subprocess.run([HUSK, "fn", *args, "--url", self.admin_url, *fmt], input=stdin,
                              capture_output=True, timeout=30, env=self.ctx.env())
