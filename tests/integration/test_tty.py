# SPDX-License-Identifier: Apache-2.0
"""Terminals: --console-socket as conmon and containerd use it, and a foreground `run -t`."""

import os
import pty
import select
import socket
import time

from conftest import HUSK


def tty_bundle(bundle, script, rows=30, cols=100):
    bundle.args("/bin/sh", "-c", script)
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": rows, "width": cols}
    bundle.write()
    return bundle


def read_until(fd, needle, timeout=5.0):
    out, end = b"", time.monotonic() + timeout
    while needle not in out and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_console_socket_receives_the_master(ctx, bundle):
    tty_bundle(bundle, "tty; stty size; read line; echo got:$line")
    path = str(ctx.path("console.sock"))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    cid = ctx.new_id()
    r = ctx.runtime("create", "--bundle", bundle.path, "--console-socket", path, cid)
    assert r.rc == 0, str(r)
    conn, _ = srv.accept()
    name, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    conn.close()
    srv.close()
    assert name.startswith(b"/dev/pts/") and len(fds) == 1
    master = fds[0]
    try:
        assert ctx.runtime("start", cid).rc == 0
        os.write(master, b"hello\r")
        out = read_until(master, b"got:hello")
    finally:
        os.close(master)
    assert b"/dev/pts/" in out and b"30 100" in out and b"got:hello" in out


def test_detached_terminal_needs_a_console_socket(ctx, bundle):
    tty_bundle(bundle, "true")
    r = ctx.runtime("create", "--bundle", bundle.path, ctx.new_id())
    assert r.rc != 0 and "--console-socket" in r.err


def test_console_socket_without_terminal_is_refused(ctx, bundle):
    bundle.probe()
    bundle.write()
    r = ctx.runtime("create", "--bundle", bundle.path, "--console-socket", "/nonexistent",
                    ctx.new_id())
    assert r.rc != 0 and "terminal" in r.err


def test_foreground_run_relays_a_terminal(ctx, bundle):
    tty_bundle(bundle, "tty; stty size; read line; echo got:$line; exit 4")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(HUSK, [HUSK, "--root", str(ctx.state), "run", "--bundle", str(bundle.path),
                        ctx.new_id()])
    try:
        os.write(fd, b"typed\r")
        out = read_until(fd, b"got:typed")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"/dev/pts/0" in out and b"30 100" in out and b"got:typed" in out
    assert os.waitstatus_to_exitcode(status) == 4
