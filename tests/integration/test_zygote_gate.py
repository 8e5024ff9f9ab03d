# SPDX-License-Identifier: Apache-2.0
"""The gate of a forked http instance (AGENT_RUN_GATED), tested on the zygotes themselves: the
test plays the agent on the zygote's fd 3 (agent-proto.h's messages) and shows that a gated
run does not run the script until its gate (stdin) gives a byte, and that a gate closed
without one ends the run with status 70 having run nothing. The daemon moves the fork into its
instance's cgroup between the two; that the script's first line then runs there is
test_serve_zygote_http.py's."""

import os
import select
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HUSK, REPO, pid_alive, wait_for
from test_serve_zygote_node import node_or_skip

HDR = struct.Struct("=IIiI")  # struct agent_msg
RUN, EXIT, STARTED = 1, 2, 3
GATED, ZYGOTE = 2, 4
SCRIPTS = {"python": "import sys\nsys.stdout.write('ran\\n')\n",
           "node": "process.stdout.write('ran\\n');\n"}


def start_zygote(lang, tmp):
    """The zygote as the agent starts it, its fd 3 our end of a socket pair."""
    script = tmp / ("s.py" if lang == "python" else "s.js")
    script.write_text(SCRIPTS[lang])
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {"PATH": "/usr/bin:/bin"}
    if lang == "python":
        code = (REPO / "src" / "faas" / "agent" / "zygote.py").read_text()
        argv = ["/usr/bin/python3", "-c", code, str(script)]
    else:
        lib = Path(HUSK).resolve().parent / "src" / "faas" / "libhusk-zygote-preload.so"
        if not lib.exists():
            pytest.skip(f"the preload library is not built beside {HUSK}")
        code = (REPO / "src" / "faas" / "agent" / "zygote-node.js").read_text()
        argv = [node_or_skip(), "--single-threaded", "-e", code, str(script)]
        env.update(LD_PRELOAD=str(lib), HUSK_ZYGOTE_PRELOAD="4")
    null = os.open("/dev/null", os.O_RDONLY)

    def fds():
        os.dup2(theirs.fileno(), 3)
        os.dup2(null, 4)  # the preload library closes the fd it was loaded from

    # Python opens every fd close-on-exec: only what fds() set up reaches the zygote.
    proc = subprocess.Popen(argv, env=env, preexec_fn=fds, close_fds=False,
                            stdin=subprocess.DEVNULL)
    theirs.close()
    os.close(null)
    return proc, ours


def send_run(sock, rid, gate_r, out_w, flags=GATED):
    env = b"A=1\0"
    socket.send_fds(sock, [HDR.pack(RUN, rid, flags, len(env)) + env], [gate_r, out_w, out_w])


def recv_msg(sock, timeout=30):
    sock.settimeout(timeout)
    return HDR.unpack(sock.recv(HDR.size))


def readable(fd, timeout):
    return bool(select.select([fd], [], [], timeout)[0])


def gated_run(sock, rid):
    """A gated run of the script, started: its gate's write end and its output's read end."""
    gate_r, gate_w = os.pipe()
    out_r, out_w = os.pipe()
    send_run(sock, rid, gate_r, out_w)
    os.close(gate_r)
    os.close(out_w)
    kind, got, pid, _ = recv_msg(sock)
    assert (kind, got) == (STARTED, rid) and pid > 0
    return gate_w, out_r


def stop_zygote(proc, sock, also=()):
    """Close the zygote's socket (it and its spare end with it) and wait for them, and for the
    processes in also (forks of its forks, orphaned when their parent ended)."""
    spares = children(proc.pid) + list(also)
    sock.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for pid in spares:
        gone(pid)


@pytest.mark.parametrize("lang", ["python", "node"])
def test_a_gated_run_waits_for_its_byte(ctx, lang):
    proc, sock = start_zygote(lang, ctx.dir)
    try:
        gate_w, out_r = gated_run(sock, 7)
        assert not readable(out_r, 0.5), "the script ran before its gate opened"
        os.write(gate_w, b"g")
        os.close(gate_w)
        assert readable(out_r, 30)
        assert os.read(out_r, 100) == b"ran\n"
        kind, rid, status, _ = recv_msg(sock)
        assert (kind, rid, status) == (EXIT, 7, 0)
        os.close(out_r)

        # A gate closed without its byte: the run ends with status 70, the script never ran.
        gate_w, out_r = gated_run(sock, 8)
        os.close(gate_w)
        kind, rid, status, _ = recv_msg(sock)
        assert (kind, rid) == (EXIT, 8) and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 70
        assert os.read(out_r, 100) == b""
        os.close(out_r)
    finally:
        stop_zygote(proc, sock)


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def gone(pid, timeout=10):
    """Wait for an orphaned spare to end (it is reparented to this subreaper, which reaps it);
    SIGKILL at the timeout."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        pid_alive(pid)


@pytest.mark.parametrize("lang", ["python", "node"])
def test_a_zygote_run_serves_on_its_socket_and_forks_nothing_before(ctx, lang):
    """A run flagged AGENT_RUN_ZYGOTE (a stdio or CGI instance) becomes a zygote serving runs on
    its stdin, a socket: it forks nothing (no spare) before its first message there, which the
    daemon sends once it is in its instance's cgroup (a message with no run in it); then it
    forks its spare, and its runs are its own forks."""
    proc, sock = start_zygote(lang, ctx.dir)
    forks = []  # the instance's zygote's spare, orphaned when it ends: waited for
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        null = os.open("/dev/null", os.O_WRONLY)
        send_run(sock, 9, theirs.fileno(), null, flags=ZYGOTE)
        theirs.close()
        os.close(null)
        kind, rid, inst, _ = recv_msg(sock)
        assert (kind, rid) == (STARTED, 9) and inst > 0
        assert inst in children(proc.pid)  # this test shares the zygote's pid namespace
        time.sleep(0.5)
        assert children(inst) == [], "the instance's zygote forked before its first message"
        ours.send(HDR.pack(0, 0, 0, 0))  # the daemon's "go": no run in it; a spare may come now
        wait_for(lambda: children(inst), 10, "the instance's zygote to fork its spare")
        forks += children(inst)
        out_r, out_w = os.pipe()
        null = os.open("/dev/null", os.O_RDONLY)
        send_run(ours, 10, null, out_w, flags=0)
        os.close(null)
        os.close(out_w)
        kind, rid, pid, _ = recv_msg(ours)
        assert (kind, rid) == (STARTED, 10) and pid > 0
        assert readable(out_r, 30) and os.read(out_r, 100) == b"ran\n"
        kind, rid, status, _ = recv_msg(ours)
        assert (kind, rid, status) == (EXIT, 10, 0)
        os.close(out_r)
        ours.close()  # the instance's zygote ends with its socket
        kind, rid, status, _ = recv_msg(sock)
        assert (kind, rid, status) == (EXIT, 9, 0)
    finally:
        stop_zygote(proc, sock, also=forks)
