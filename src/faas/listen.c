/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's doors. The front door is TCP and serves calls to functions, /metrics and
 * /_/health to anyone who can reach it; the admin API is served on a unix socket only root
 * (or a group the operator names) may connect to, as Docker and containerd do, and over TCP
 * only with a bearer token (routes.c). Connections are capped in total and per client address;
 * when the process runs out of fds the listener pauses instead of spinning on EMFILE.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

#define ACCEPT_PAUSE_NS (100ull * 1000000ull) /* after EMFILE/ENFILE */
#define CLIENT_BUCKETS  1024

/* Connections per client address, for the per-client cap. */
struct faas_client {
    char addr[INET6_ADDRSTRLEN];
    size_t n;
    struct faas_client *next;
};

static size_t
client_bucket(const char *addr)
{
    uint64_t h = 1469598103934665603ull;
    for (; *addr; addr++)
        h = (h ^ (unsigned char)*addr) * 1099511628211ull;
    return (size_t)(h % CLIENT_BUCKETS);
}

static struct faas_client *
client_find(struct faas_server *s, const char *addr, bool create)
{
    if (s->clients == NULL)
        s->clients = xcalloc(CLIENT_BUCKETS, sizeof(*s->clients));
    struct faas_client **b = &s->clients[client_bucket(addr)];
    for (struct faas_client *c = *b; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c;
    if (!create)
        return NULL;
    struct faas_client *c = xcalloc(1, sizeof(*c));
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->next = *b;
    *b = c;
    return c;
}

void
faas_client_release(struct faas_server *s, struct faas_client *c)
{
    if (c == NULL || --c->n > 0)
        return;
    for (struct faas_client **p = &s->clients[client_bucket(c->addr)]; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            free(c);
            return;
        }
}

/* A listener's watch (a pause takes it away: EPOLLEXCLUSIVE allows no EPOLL_CTL_MOD). */
static int
listener_watch(struct faas_server *s, struct faas_listener *l)
{
    return faas_watch_add(s, l->fd, EPOLLIN | (l->shared ? EPOLLEXCLUSIVE : 0), &l->w);
}

static void
listener_resume(struct faas_server *s, struct faas_timer *t)
{
    struct faas_listener *l = container_of(t, struct faas_listener, resume);
    if (l->paused && l->fd >= 0 && listener_watch(s, l) == 0)
        l->paused = false;
}

static void
listener_pause(struct faas_server *s, struct faas_listener *l)
{
    if (!l->paused) {
        faas_watch_del(s, l->fd);
        l->paused = true;
    }
    faas_timer_set(s, &l->resume, now_ns() + ACCEPT_PAUSE_NS);
}

static void
wake(struct faas_server *s, struct faas_listener *l)
{
    if (l->paused) {
        faas_timer_cancel(s, &l->resume);
        listener_resume(s, &l->resume);
    }
}

/* A connection closed: a listener of this loop paused for want of fds may take the next one. */
void
faas_listeners_wake(struct faas_server *s)
{
    if (faas_on_front()) {
        wake(s, &faas_loop_cur()->front);
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(s->listeners); i++)
        wake(s, &s->listeners[i]);
}

static void
refuse_busy(int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

/* Whether a unix socket peer may use the admin API: root, or a member of the admin group. */
static bool
admin_peer(struct faas_server *s, int fd, uid_t *uid)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    *uid = cred.uid;
    if (cred.uid == 0)
        return true;
    if (!s->opts->admin_group_set)
        return false;
    if (cred.gid == s->opts->admin_gid)
        return true;
    gid_t groups[256];
    len = sizeof(groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
        return false;
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == s->opts->admin_gid)
            return true;
    return false;
}

static void
on_accept(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_listener *l = container_of(w, struct faas_listener, w);
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                faas_server_log(s, "warning", "accept: %s: pausing new connections for 100 ms",
                                strerror(errno));
                listener_pause(s, l);
            }
            return;
        }
        char peer[INET6_ADDRSTRLEN] = "local";
        uid_t uid = (uid_t)-1;
        if (sa.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, peer, sizeof(peer));
        else if (sa.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, peer, sizeof(peer));
        if (l->admin && !admin_peer(s, fd, &uid)) {
            close(fd); /* the socket's mode should have kept them out already */
            continue;
        }
        faas_lock(s);
        struct faas_client *c = l->admin ? NULL : client_find(s, peer, true);
        bool busy =
            __atomic_load_n(&s->n_conns, __ATOMIC_RELAXED) >= (size_t)s->opts->max_connections ||
            (c && c->n >= (size_t)s->opts->max_client_connections);
        if (c && !busy)
            c->n++;
        faas_unlock(s);
        if (busy) {
            refuse_busy(fd);
            continue;
        }
        if (!l->admin) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        if (faas_conn_new(s, fd, peer, l->admin, uid, c) == NULL) {
            faas_lock(s);
            faas_client_release(s, c);
            faas_unlock(s);
            close(fd);
        }
    }
}

int
faas_parse_address(const char *spec, const char *what, struct sockaddr_storage *ss, socklen_t *len,
                   struct husk_error **err)
{
    const char *colon = strrchr(spec, ':');
    uint64_t port;
    cleanup_free char *host = colon ? xstrndup(spec, (size_t)(colon - spec)) : NULL;
    memset(ss, 0, sizeof(*ss));
    if (colon == NULL || parse_u64(colon + 1, &port) < 0 || port > 65535)
        return husk_err(err, 0, "%s '%s': expected IPV4:PORT or [IPV6]:PORT", what, spec);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
            return husk_err(err, 0, "%s '%s': '%s' is not an IPv6 address", what, spec, host + 1);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
        return 0;
    }
    if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
        return husk_err(err, 0, "%s '%s': expected IPV4:PORT or [IPV6]:PORT", what, spec);
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    *len = sizeof(*in);
    return 0;
}

bool
faas_address_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int
open_tcp(struct faas_server *s, const char *spec, struct husk_error **err)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int r = faas_parse_address(spec, "--listen", &ss, &sl, err);
    if (r < 0)
        return r;
    cleanup_fd int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return husk_err(err, errno, "socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* front loops bind sockets of their own beside it (faas_listener_share) */
    if (s->opts->loops > 1)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
        return husk_err(err, errno, "bind %s", spec);
    if (listen(fd, 4096) < 0)
        return husk_err(err, errno, "listen on %s", spec);
    if (!faas_address_is_loopback(&ss))
        faas_server_log(s, "warning",
                        "the front door listens on %s, beyond this machine, without TLS: put a "
                        "TLS proxy in front of it%s",
                        spec, s->opts->token ? " (the admin token travels in clear text)" : "");
    return steal_fd(&fd);
}

/* A stale socket file (no daemon answers on it) is replaced; a live one is an error. */
static int
clear_stale(const char *path, struct husk_error **err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : husk_err(err, errno, "admin socket '%s'", path);
    if (!S_ISSOCK(st.st_mode))
        return husk_err(err, 0, "admin socket '%s': exists and is not a socket", path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return husk_err(err, EADDRINUSE, "admin socket '%s': another husk serve answers on it",
                        path);
    return unlink(path) < 0 && errno != ENOENT ? husk_err(err, errno, "remove '%s'", path) : 0;
}

static int
open_unix(struct faas_server *s, struct faas_listener *l, const char *path, struct husk_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path))
        return husk_err(err, 0, "--admin-socket '%s': expected an absolute path under %zu bytes",
                        path, sizeof(sa.sun_path));
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cleanup_free char *dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
    int r;
    if (*dir && (r = mkdir_p(dir, 0755)) < 0)
        return husk_err(err, -r, "create '%s'", dir);
    if ((r = clear_stale(path, err)) < 0)
        return r;
    cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return husk_err(err, errno, "socket");
    /* Created 0600: no window in which others could connect. */
    mode_t old = umask(0177);
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0)
        return husk_err(err, errno, "bind admin socket '%s'", path);
    struct stat st;
    if (s->opts->admin_group_set &&
        (chown(path, 0, s->opts->admin_gid) < 0 || chmod(path, 0660) < 0))
        r = husk_err(err, errno, "admin socket '%s': give it to group %u", path,
                     (unsigned)s->opts->admin_gid);
    if (r == 0 && (listen(fd, 512) < 0 || stat(path, &st) < 0))
        r = husk_err(err, errno, "listen on '%s'", path);
    if (r < 0) {
        unlink(path);
        return r;
    }
    l->path = xstrdup(path);
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    return steal_fd(&fd);
}

/* A socket a service manager handed over: a listening stream socket of the family wanted. An
 * admin socket must be a unix socket no one but root (and its group) may connect to. */
static int
adopt(struct faas_server *s, int fd, bool admin, struct husk_error **err)
{
    const char *what = admin ? "the admin socket" : "the front door";
    int listening = 0, type = 0;
    struct sockaddr_storage ss;
    socklen_t n = sizeof(int), m = sizeof(int), sl = sizeof(ss);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &n) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &m) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return husk_err(err, errno, "socket activation: fd %d for %s", fd, what);
    bool unix_socket = ss.ss_family == AF_UNIX;
    if (!listening || type != SOCK_STREAM ||
        (admin ? !unix_socket : ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return husk_err(err, 0,
                        "socket activation: fd %d for %s is not a listening %s stream socket", fd,
                        what, admin ? "unix" : "TCP");
    struct stat st;
    const char *path = ((struct sockaddr_un *)&ss)->sun_path;
    if (admin && (stat(path, &st) < 0 || st.st_uid != 0 || (st.st_mode & 0007)))
        return husk_err(err, 0,
                        "socket activation: the admin socket '%s' must be owned by root and "
                        "closed to others (SocketMode=0600, or 0660 with a group)",
                        path);
    if (!admin && !faas_address_is_loopback(&ss))
        faas_server_log(s, "warning",
                        "the front door (socket activation) listens beyond this machine, without "
                        "TLS: put a TLS proxy in front of it");
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* What faas_listeners_open would refuse, found without opening anything. */
int
faas_listen_check(const struct faas_serve_opts *o, struct husk_error **err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int r = o->listen && o->listen_fd < 0 ? faas_parse_address(o->listen, "--listen", &ss, &sl, err)
                                          : 0;
    if (r == 0 && o->admin_socket && o->admin_fd < 0 &&
        (o->admin_socket[0] != '/' ||
         strlen(o->admin_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
        r = husk_err(err, 0, "--admin-socket '%s': expected an absolute path under %zu bytes",
                     o->admin_socket, sizeof(((struct sockaddr_un *)0)->sun_path));
    return r;
}

int
faas_listeners_open(struct faas_server *s, struct husk_error **err)
{
    struct faas_listener *front = &s->listeners[0], *admin = &s->listeners[1];
    for (size_t i = 0; i < ARRAY_SIZE(s->listeners); i++) {
        s->listeners[i].fd = -1;
        s->listeners[i].w.fn = on_accept;
        s->listeners[i].resume.fn = listener_resume;
    }
    admin->admin = true;
    /* The admin socket first: once the front door answers, both do. */
    if (s->opts->admin_fd >= 0 && (admin->fd = adopt(s, s->opts->admin_fd, true, err)) < 0)
        return admin->fd;
    if (s->opts->admin_fd < 0 && s->opts->admin_socket &&
        (admin->fd = open_unix(s, admin, s->opts->admin_socket, err)) < 0)
        return admin->fd;
    if (s->opts->listen_fd >= 0 && (front->fd = adopt(s, s->opts->listen_fd, false, err)) < 0)
        return front->fd;
    if (s->opts->listen_fd < 0 && s->opts->listen &&
        (front->fd = open_tcp(s, s->opts->listen, err)) < 0)
        return front->fd;
    /* With front loops (--loops N) the main loop leaves the front door to them. */
    for (size_t i = s->opts->loops > 1 && front->fd >= 0; i < ARRAY_SIZE(s->listeners); i++)
        if (s->listeners[i].fd >= 0 && listener_watch(s, &s->listeners[i]) < 0)
            return husk_err(err, errno, "watch a listening socket");
    return 0;
}

/* Another socket on the front door's address (SO_REUSEPORT: the kernel spreads connections
 * over the group by their addresses). -1: errno. */
static int
open_beside(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int one = 1;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    cleanup_fd int nfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (nfd < 0 || setsockopt(nfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(nfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(nfd, (struct sockaddr *)&ss, sl) < 0 || listen(nfd, 4096) < 0)
        return -1;
    return steal_fd(&nfd);
}

/* A front loop's listener, its own fd (closing it stops this loop alone): the first takes
 * the front door's socket, the others sockets beside it; a socket handed over by a service
 * manager is shared by all, each woken alone. -1: errno. */
int
faas_listener_share(struct faas_server *s, struct faas_loop *lp)
{
    struct faas_listener *l = &lp->front;
    int fd = s->listeners[0].fd;
    l->w.fn = on_accept;
    l->resume.fn = listener_resume;
    l->shared = s->opts->listen_fd >= 0;
    l->fd = l->shared || lp->index == 1 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : open_beside(fd);
    struct epoll_event ev = {.events = EPOLLIN | (l->shared ? EPOLLEXCLUSIVE : 0),
                             .data.ptr = &l->w};
    return l->fd < 0 || epoll_ctl(lp->epoll_fd, EPOLL_CTL_ADD, l->fd, &ev) < 0 ? -1 : 0;
}

/* Stop accepting (shutdown); the admin socket's file goes if it is still ours. */
void
faas_listeners_close(struct faas_server *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(s->listeners); i++) {
        struct faas_listener *l = &s->listeners[i];
        faas_timer_cancel(s, &l->resume);
        if (l->fd >= 0) {
            faas_watch_del(s, l->fd);
            close(l->fd);
            l->fd = -1;
        }
        struct stat st;
        if (l->path && lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
            unlink(l->path);
        free(l->path);
        l->path = NULL;
    }
}

void
faas_clients_free(struct faas_server *s)
{
    for (size_t i = 0; s->clients && i < CLIENT_BUCKETS; i++)
        while (s->clients[i]) {
            struct faas_client *c = s->clients[i];
            s->clients[i] = c->next;
            free(c);
        }
    free(s->clients);
    s->clients = NULL;
}
