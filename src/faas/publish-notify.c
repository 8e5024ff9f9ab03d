/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The published socket handed to an instance's own server (publish.c). A bind-mode instance
 * runs under a notify filter for bind() and listen() (husk/notify.h, loaded last before the
 * agent's execve), and the daemon watches its listener fd in the loop:
 *
 *   bind(fd, {AF_INET or AF_INET6, port $PORT}) of a TCP socket: the daemon puts the published
 *   socket at that fd number (SECCOMP_ADDFD_FLAG_SETFD replaces the program's socket as dup2
 *   would) and answers 0. The socket's blocking mode and close-on-exec follow the program's
 *   socket: an event loop that made it non-blocking must not block in accept() when another
 *   instance took the connection first.
 *   listen(fd) on the published socket: answered 0 without touching the daemon's backlog; the
 *   instance is ready from then on.
 *   Anything else (another port, a UDP socket, a version no longer deployed): the call runs as
 *   asked, in the instance's own network.
 *
 * TOCTOU: the port is read from the caller's memory and the socket's kind from a copy of its
 * fd; another thread of the caller may change either right after. Neither matters: an answer
 * only ever gives the instance the socket the daemon gives its function anyway (or lets the
 * instance's own call run), never grants anything because of what was read; the helpers check
 * the notification is still alive after reading, so a reused pid is never read from.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "husk/notify.h"
#include "publish.h"
#include "util.h"

int
faas_pubnotify_filter(struct sbx_seccomp *out, struct husk_error **err)
{
    static const int nrs[] = {SYS_bind, SYS_listen};
    return sbx_notify_filter(nrs, ARRAY_SIZE(nrs), out, err);
}

/* The socket for this instance, if it is one its function wants serving. */
static struct faas_pub *
wanted(const struct faas_instance *in)
{
    const struct faas_function *f = in->fn;
    return f->pub && f->pub->active == f && in->state != INST_DYING ? f->pub : NULL;
}

/* Whether the call binds an internet address with the function's port. */
static bool
binds_port(int nfd, const struct sbx_notify_req *req, int64_t port)
{
    struct sockaddr_in6 sa = {0}; /* the larger one; sin_port sits where sin6_port does */
    uint64_t len = req->args[2];
    if (len < offsetof(struct sockaddr_in, sin_port) + sizeof(sa.sin6_port))
        return false;
    if (sbx_notify_read(nfd, req, req->args[1], &sa, len < sizeof(sa) ? len : sizeof(sa)) < 0)
        return false;
    return (sa.sin6_family == AF_INET || sa.sin6_family == AF_INET6) &&
           ntohs(sa.sin6_port) == (uint16_t)port;
}

/* O_NONBLOCK and O_CLOEXEC of the caller's fd, from /proc/PID/fdinfo ("flags:", octal). */
static int
fd_flags(pid_t pid, int fd)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
    cleanup_fd int f = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
    if (n <= 0)
        return O_CLOEXEC;
    buf[n] = '\0';
    const char *p = strstr(buf, "flags:");
    return p ? (int)strtol(p + 6, NULL, 8) : O_CLOEXEC;
}

static bool
is_tcp(int fd)
{
    int type = 0, proto = 0;
    socklen_t tl = sizeof(type), pl = sizeof(proto);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
           getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) == 0 && type == SOCK_STREAM &&
           proto == IPPROTO_TCP;
}

static void
on_bind(struct faas_server *s, struct faas_instance *in, const struct sbx_notify_req *req)
{
    int nfd = in->notify_fd, fd = (int)req->args[0];
    struct faas_pub *p = wanted(in);
    cleanup_fd int theirs = -1;
    if (p == NULL || !binds_port(nfd, req, in->fn->port) ||
        (theirs = sbx_notify_getfd(nfd, req, fd)) < 0 || !is_tcp(theirs)) {
        sbx_notify_continue(nfd, req->id);
        return;
    }
    int flags = fd_flags(req->pid, fd), ours = fcntl(p->fd, F_GETFL);
    if (ours >= 0 && (ours ^ flags) & O_NONBLOCK)
        fcntl(p->fd, F_SETFL, (ours & ~O_NONBLOCK) | (flags & O_NONBLOCK));
    int r = sbx_notify_setfd(nfd, req->id, p->fd, fd, flags & O_CLOEXEC);
    if (r == -ENOENT) /* the caller is gone */
        return;
    sbx_notify_return(nfd, req->id, 0, r < 0 ? -r : 0);
    if (r < 0)
        faas_server_log(s, "warning", "instance %s: hand %s to its server: %s", in->id, p->text,
                        strerror(-r));
    else
        faas_server_log(s, "debug", "instance %s: its bind() on port %lld took %s", in->id,
                        (long long)in->fn->port, p->text);
}

static void
on_listen(struct faas_server *s, struct faas_instance *in, const struct sbx_notify_req *req)
{
    int nfd = in->notify_fd;
    struct faas_pub *p = in->fn->pub;
    struct stat st;
    cleanup_fd int theirs = p ? sbx_notify_getfd(nfd, req, (int)req->args[0]) : -1;
    if (theirs < 0 || fstat(theirs, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != p->ino) {
        sbx_notify_continue(nfd, req->id);
        return;
    }
    if (sbx_notify_return(nfd, req->id, 0, 0) == 0 && in->state == INST_STARTING)
        faas_instance_ready(s, in);
}

static void
on_notify(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_notify);
    struct sbx_notify_req req;
    if (in->notify_fd < 0)
        return;
    if (!(events & EPOLLIN)) { /* every process under the filter is gone */
        faas_pubnotify_close(s, in);
        return;
    }
    int r = sbx_notify_recv(in->notify_fd, &req);
    if (r == -ENOENT || r == -EINTR)
        return;
    if (r < 0) {
        faas_server_log(s, "warning", "instance %s: its seccomp listener: %s", in->id,
                        strerror(-r));
        faas_pubnotify_close(s, in);
    } else if (req.nr == SYS_bind) {
        on_bind(s, in, &req);
    } else if (req.nr == SYS_listen) {
        on_listen(s, in, &req);
    } else {
        sbx_notify_continue(in->notify_fd, req.id);
    }
}

void
faas_pubnotify_watch(struct faas_server *s, struct faas_instance *in)
{
    if (in->child == NULL || in->child->notify_fd < 0)
        return;
    in->notify_fd = steal_fd(&in->child->notify_fd);
    in->w_notify.fn = on_notify;
    if (faas_watch_add(s, in->notify_fd, EPOLLIN, &in->w_notify) < 0) {
        faas_server_log(s, "warning", "instance %s: watch its seccomp listener: %s", in->id,
                        strerror(errno));
        faas_pubnotify_close(s, in);
    }
}

/* Closing the listener fails any call still waiting (ENOSYS): the instance is going. */
void
faas_pubnotify_close(struct faas_server *s, struct faas_instance *in)
{
    if (in->notify_fd < 0)
        return;
    faas_watch_del(s, in->notify_fd);
    close(in->notify_fd);
    in->notify_fd = -1;
}
