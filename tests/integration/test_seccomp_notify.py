# SPDX-License-Identifier: Apache-2.0
"""seccomp user notification: the notify fd reaches the agent at linux.seccomp.listenerPath
with runc's ContainerProcessState, and the agent's answers are what the program sees."""

import errno
import json
import os
import socket
import struct
import threading
from fcntl import ioctl

NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif), 80 bytes
NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp), 24 bytes


class Agent(threading.Thread):
    """Accepts one connection, keeps the state, answers every notification with EACCES."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(1)
        self.srv.settimeout(10)
        self.state, self.answered = None, 0

    def run(self):
        conn, _ = self.srv.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        conn.close()
        self.state = json.loads(msg)
        fd = fds[0]
        try:
            while True:
                buf = bytearray(80)
                ioctl(fd, NOTIF_RECV, buf)
                (nid,) = struct.unpack_from("Q", buf, 0)
                resp = struct.pack("QqiI", nid, 0, -errno.EACCES, 0)
                ioctl(fd, NOTIF_SEND, bytearray(resp))
                self.answered += 1
        except OSError:
            pass  # the filter's last process is gone
        finally:
            os.close(fd)
            self.srv.close()


def notify_bundle(ctx, bundle, path):
    bundle.args("/bin/sh", "-c", "mkdir /dev/shm/x; echo rc=$?")
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(path),
        "listenerMetadata": "husk-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }


def test_agent_gets_the_fd_and_decides(ctx, bundle):
    path = ctx.path("agent.sock")
    agent = Agent(path)
    agent.start()
    notify_bundle(ctx, bundle, path)
    cid = ctx.new_id()
    r = ctx.run(bundle, cid=cid)
    agent.join(10)
    assert r.rc == 0, str(r)
    assert "Permission denied" in r.err and "rc=1" in r.out, str(r)
    assert agent.answered >= 1
    st = agent.state
    assert st["fds"] == ["seccompFd"] and st["metadata"] == "husk-test"
    assert st["state"]["id"] == cid and st["pid"] == st["state"]["pid"] > 0


def test_missing_listener_fails_create_clearly(ctx, bundle):
    notify_bundle(ctx, bundle, ctx.path("nobody-listens.sock"))
    bundle.write()
    r = ctx.runtime("create", "--bundle", bundle.path, ctx.new_id())
    assert r.rc != 0 and "linux.seccomp.listenerPath" in r.err, str(r)
    ctx.assert_nothing_left()
