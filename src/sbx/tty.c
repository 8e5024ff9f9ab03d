/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container's terminal: a pty from the container's own devpts (opened after pivot_root),
 * its master handed out over a unix socket with SCM_RIGHTS (to `--console-socket`, as conmon and
 * containerd expect, or to the parent for a foreground `run -t`), its peer made the controlling
 * terminal and stdio of the process. No heap: runs in the child.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "child.h"
#include "tty.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41) /* Linux 4.13 */
#endif

int
sbx_send_fd(int sock, int fd, const char *name, int kind)
{
    struct sbx_msg m = {.kind = kind};
    char payload[sizeof(m) + 64];
    size_t len = sizeof(m);
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl = {0};

    memcpy(payload, &m, sizeof(m));
    if (kind == 0) { /* a console socket wants the pty's name, as runc sends it */
        len = (size_t)snprintf(payload, sizeof(payload), "%s", name);
    }
    struct iovec iov = {.iov_base = payload, .iov_len = len ? len : 1};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int
sbx_recv_fd(int sock, void *buf, size_t len, int *fd_out)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t n;

    *fd_out = -1;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(fd_out, CMSG_DATA(c), sizeof(int));
    return (int)n;
}

int
child_setup_tty(struct sbx_child_ctx *ctx)
{
    const struct sbx_process *p = &ctx->cfg->process;
    char name[64];
    int unlock = 0, pty_no = 0;

    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return child_fail(ctx, SBX_STEP_TTY, 0, errno);
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &pty_no) < 0)
        return child_fail(ctx, SBX_STEP_TTY, 1, errno);
    /* TIOCGPTPEER opens the peer through the master, never through a path. */
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0)
        return child_fail(ctx, SBX_STEP_TTY, 2, errno);
    if (p->console_rows && p->console_cols) {
        struct winsize ws = {.ws_row = p->console_rows, .ws_col = p->console_cols};
        ioctl(slave, TIOCSWINSZ, &ws);
    }
    snprintf(name, sizeof(name), "/dev/pts/%d", pty_no);
    int r = ctx->opts->console_fd >= 0 ? sbx_send_fd(ctx->opts->console_fd, master, name, 0)
                                       : sbx_send_fd(ctx->sync_fd, master, name, SBX_MSG_PTY);
    close(master);
    if (r < 0)
        return child_fail(ctx, SBX_STEP_TTY, 3, r);
    if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
        return child_fail(ctx, SBX_STEP_TTY, 4, errno);
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            return child_fail(ctx, SBX_STEP_TTY, 5, errno);
    if (slave > 2)
        close(slave);
    return 0;
}
