/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon: an epoll loop that reads requests, routes them, and forks one worker per invocation.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

/* A client gets this long to send its whole request. */
#define FAAS_READ_TIMEOUT_NS (30ull * 1000000000ull)

struct conn {
    int fd;
    struct faas_parser *parser;
    uint64_t deadline;
    bool got_bytes;
    struct conn *prev, *next;
};

void
faas_server_log(struct faas_server *s, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (msg && s->opts->log)
        s->opts->log(level, msg, s->opts->log_data);
}

struct faas_function *
faas_server_find(struct faas_server *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n_fns; i++)
        if (strlen(s->fns[i]->name) == len && memcmp(s->fns[i]->name, name, len) == 0)
            return s->fns[i];
    return NULL;
}

int
faas_server_fork(struct faas_server *s, int fd, void (*fn)(void *data), void *data)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* The worker: only the client's socket matters; signals back to their defaults. */
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        signal(SIGPIPE, SIG_DFL); /* the daemon ignores it; functions get the default */
        /* Other clients' sockets must not stay open here after the daemon answers them. */
        if (fd > 3)
            close_range(3, fd - 1, 0);
        close_range(fd + 1, ~0u, 0);
        fn(data);
        _exit(0);
    }
    s->n_workers++;
    return 0;
}

static int
parse_listen(const char *spec, struct sockaddr_in *sa, struct husk_error **err)
{
    const char *colon = strrchr(spec, ':');
    uint64_t port;
    cleanup_free char *host = colon ? xstrndup(spec, colon - spec) : NULL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (colon == NULL || parse_u64(colon + 1, &port) < 0 || port > 65535 ||
        inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return husk_err(err, 0, "--listen '%s': expected IPV4:PORT", spec);
    sa->sin_port = htons(port);
    return 0;
}

static int
open_listener(const char *spec, struct husk_error **err)
{
    struct sockaddr_in sa;
    if (parse_listen(spec, &sa, err) < 0)
        return -EINVAL;
    cleanup_fd int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return husk_err(err, errno, "socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return husk_err(err, errno, "bind %s", spec);
    if (listen(fd, 512) < 0)
        return husk_err(err, errno, "listen on %s", spec);
    return steal_fd(&fd);
}

static void
conn_close(struct faas_server *s, struct conn *c)
{
    epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    faas_parser_free(c->parser);
    free(c);
    s->n_conns--;
}

static void
request_id(char out[33])
{
    unsigned char b[16] = {0};
    if (getrandom(b, sizeof(b), GRND_NONBLOCK) < 0) {
        uint64_t t = now_ns();
        memcpy(b, &t, sizeof(t));
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* A caller's X-Request-Id is kept when it is short and plain (it ends up in a cgroup name). */
static bool
valid_request_id(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789-_") == n;
}

static void
conn_readable(struct faas_server *s, struct conn *c)
{
    char buf[65536];
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    c->got_bytes |= n > 0;
    const char *why = NULL;
    int r = n < 0 ? -1 : faas_parser_feed(c->parser, buf, n, &why);
    if (r == 0)
        return;
    char rid[65];
    request_id(rid);
    if (r < 0) {
        if (n > 0 || faas_parser_request(c->parser)->url) {
            cleanup_free char *body =
                xasprintf("{\"error\":\"malformed HTTP request: %s\"}\n", why ? why : "read error");
            faas_respond(c->fd, 400, rid, "application/json", body, strlen(body), NULL);
        }
        conn_close(s, c);
        return;
    }
    struct faas_request *req = faas_parser_request(c->parser);
    const char *given = faas_request_header(req, "X-Request-Id");
    if (given && valid_request_id(given))
        snprintf(rid, sizeof(rid), "%s", given); /* a caller's id carries through */
    faas_route(s, c->fd, req, rid);
    faas_server_log(s, "debug", "%s %s request %s", req->method, req->url, rid);
    conn_close(s, c);
}

static void
accept_all(struct faas_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = xcalloc(1, sizeof(*c));
        c->fd = fd;
        c->parser = faas_parser_new();
        c->deadline = now_ns() + FAAS_READ_TIMEOUT_NS;
        faas_parser_set_limit_fn(c->parser, faas_route_body_limit, s);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            faas_parser_free(c->parser);
            free(c);
            continue;
        }
        s->n_conns++;
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
    }
}

static void
on_signal(struct faas_server *s)
{
    struct signalfd_siginfo si;
    while (read(s->opts->signal_fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            continue;
        if (!s->stopping) {
            faas_server_log(s, "info", "signal %u: finishing %zu requests in flight", si.ssi_signo,
                            s->n_conns + s->n_workers);
            s->stopping = true;
            epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
            close(s->listen_fd);
            s->listen_fd = -1;
        }
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (s->n_workers)
            s->n_workers--;
}

static int
load_functions(struct faas_server *s, struct husk_error **err)
{
    cleanup_free char *warn = NULL;
    if (faas_registry_load(s->reg, s->seccomp_cache, &s->fns, &s->n_fns, &warn, err) < 0)
        return -EINVAL;
    if (warn)
        faas_server_log(s, "warning", "a function was not loaded: %s", warn);
    faas_server_log(s, "info", "%zu functions loaded", s->n_fns);
    return 0;
}

static void
server_free(struct faas_server *s)
{
    for (size_t i = 0; i < s->n_fns; i++)
        faas_function_free(s->fns[i]);
    free(s->fns);
    faas_registry_free(s->reg);
    free(s->seccomp_cache);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->epoll_fd >= 0)
        close(s->epoll_fd);
}

/* Drop clients past their read deadline and, when stopping, those that sent nothing yet. */
static void
sweep(struct faas_server *s)
{
    uint64_t now = now_ns();
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (now >= c->deadline || (s->stopping && !c->got_bytes))
            conn_close(s, c);
    }
}

static void
loop(struct faas_server *s)
{
    struct epoll_event evs[64];
    while (!s->stopping || s->n_conns || s->n_workers) {
        /* While draining, wake up now and then: a worker may end before its SIGCHLD is read. */
        int n = epoll_wait(s->epoll_fd, evs, ARRAY_SIZE(evs), s->stopping ? 100 : 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (s->stopping)
            on_signal(s);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &s->listen_fd)
                accept_all(s);
            else if (evs[i].data.ptr == &s->opts->signal_fd)
                on_signal(s);
            else
                conn_readable(s, evs[i].data.ptr);
        }
        sweep(s); /* after the events: it may free connections they point to */
    }
}

int
faas_serve(const struct faas_serve_opts *opts, struct husk_error **err)
{
    struct faas_server s = {.opts = opts, .listen_fd = -1, .epoll_fd = -1};
    int r = 0;
    s.seccomp_cache = xasprintf("%s/seccomp-cache", opts->state_dir);
    if (faas_registry_open(opts->state_dir, &s.reg, err) < 0 || load_functions(&s, err) < 0 ||
        (s.listen_fd = open_listener(opts->listen, err)) < 0) {
        server_free(&s);
        return -EINVAL;
    }
    s.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &s.listen_fd};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = (void *)&opts->signal_fd};
    if (s.epoll_fd < 0 || epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, s.listen_fd, &lev) < 0 ||
        epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, opts->signal_fd, &sev) < 0)
        r = husk_err(err, errno, "set up the event loop");
    if (r == 0) {
        faas_server_log(&s, "info", "listening on http://%s", opts->listen);
        loop(&s);
        faas_server_log(&s, "info", "stopped");
    }
    server_free(&s);
    return r;
}
