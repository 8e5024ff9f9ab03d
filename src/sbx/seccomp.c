/* SPDX-License-Identifier: Apache-2.0 */
/* Load a compiled seccomp filter (compiled by the caller, e.g. from OCI JSON with libseccomp). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"

/* The message with every "%PID%" replaced, into buf. Length or -E2BIG. */
static int
expand_pid(const char *msg, int pid, char *buf, size_t len)
{
    char num[16];
    size_t o = 0, nl = (size_t)snprintf(num, sizeof(num), "%d", pid);
    for (const char *p = msg; *p;) {
        if (strncmp(p, "%PID%", 5) == 0) {
            if (o + nl >= len)
                return -E2BIG;
            memcpy(buf + o, num, nl);
            o += nl;
            p += 5;
        } else {
            if (o + 1 >= len)
                return -E2BIG;
            buf[o++] = *p++;
        }
    }
    buf[o] = '\0';
    return (int)o;
}

/* Hand the notify fd to the seccomp agent, with the state it needs to make sense of it. */
static int
send_listener(int sock, int notify_fd, const char *msg, int host_pid)
{
    char buf[16384];
    int len = expand_pid(msg, host_pid, buf, sizeof(buf));
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl = {0};
    if (len < 0)
        return len;
    struct iovec iov = {.iov_base = buf, .iov_len = (size_t)len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &notify_fd, sizeof(int));
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int
sbx_seccomp_load(const struct sbx_seccomp *s, int listener_sock, int host_pid)
{
    struct sock_fprog prog = {
        .len = (unsigned short)(s->len / sizeof(struct sock_filter)),
        .filter = s->bpf,
    };
    if (s->bpf == NULL)
        return 0;
    bool notify = s->listener_msg != NULL && listener_sock >= 0;
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      s->flags | (notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0), &prog);
    if (fd < 0)
        return -errno;
    if (!notify)
        return 0;
    int r = send_listener(listener_sock, (int)fd, s->listener_msg, host_pid);
    close((int)fd);
    close(listener_sock);
    return r;
}
