/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Published functions: zero hops between a client and an http function. A function deployed
 * with "publish": "[HOSTIP:]PORT" has a listening socket on the host (in the daemon's network
 * namespace), made at deploy and owned by the daemon from then on. The kernel is the activator:
 *
 *   - no instance: the daemon watches the socket (never accepting). The first connection waits
 *     in the kernel's accept queue; its readiness starts instances, and the daemon steps aside.
 *   - instances: their own, unmodified servers accept from that very socket. A server's bind()
 *     on $PORT gets the socket instead (publish-notify.c, seccomp user notification), or the
 *     server takes it as fd 3 ("publish_mode": "listen_fds", LISTEN_FDS/LISTEN_PID). Several
 *     instances accept from the one socket; the kernel hands each connection to one of them.
 *   - scaling: the accept queue, sampled while instances serve, starts another instance when
 *     it backs up (up to `max`); idle instances go as before, unless the function's open
 *     connections still need them (publish-stats.c); with the last one gone the socket stays
 *     and new connections wait again.
 *
 * The daemon sees no bytes of those connections, so no per-call features apply to them (the
 * README says which); /function/NAME still reaches the same instances through the daemon.
 *
 * The sockets are made in a cgroup of their own whose connect programs refuse every address
 * (sbx_egress with no rule): a function holds a socket of the host's network, and a TCP
 * socket can be disconnected (shutdown of a listener, connect(AF_UNSPEC)) and connected
 * anew; cgroup programs see the socket's cgroup, not the caller's, so this one keeps any
 * such connect (TCP Fast Open's too) from leaving as the host.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "publish.h"
#include "syscalls.h"
#include "util.h"

#define SAMPLE_NS (20ull * 1000000ull) /* the accept queue, every 20 ms while instances serve */
#define BACKLOG   4096

/* ---- the deploy fields */

static void
address_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, len, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, len, "%s:%u", host, ntohs(a->sin_port));
    }
}

static uint16_t
address_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

/* "PORT" alone is on the host's loopback: published beyond the machine only when asked. */
static int
publish_address(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
                struct husk_error **err)
{
    uint64_t port = 0;
    if (strchr(spec, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        if (parse_u64(spec, &port) < 0 || port < 1 || port > 65535)
            return husk_err(err, 0,
                            "field 'publish': '%s': expected [HOSTIP:]PORT, a port from 1 "
                            "to 65535",
                            spec);
        memset(ss, 0, sizeof(*ss));
        *in = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof(*in);
        return 0;
    }
    int r = faas_parse_address(spec, "field 'publish':", ss, len, err);
    if (r == 0 && address_port(ss) == 0)
        return husk_err(err, 0, "field 'publish': '%s': the port must be 1 to 65535", spec);
    return r;
}

int
faas_publish_parse(json_t *root, struct faas_function *f, const struct faas_deploy_ctx *dc,
                   struct husk_error **err)
{
    json_t *v = json_object_get(root, "publish"), *mode = json_object_get(root, "publish_mode");
    if (v == NULL)
        return mode ? husk_err(err, 0, "field 'publish_mode': only with 'publish'") : 0;
    cleanup_free char *spec = json_is_integer(v)
                                  ? xasprintf("%lld", (long long)json_integer_value(v))
                              : json_is_string(v) ? xstrdup(json_string_value(v))
                                                  : NULL;
    if (spec == NULL)
        return husk_err(err, 0, "field 'publish': must be \"[HOSTIP:]PORT\"");
    if (!f->contract->server)
        return husk_err(err, 0,
                        "field 'publish': only for a function whose program is a server on $PORT "
                        "(contract \"http\"), not contract \"%s\"",
                        f->contract->name);
    if (f->freeze > 0) /* the daemon sees no call that would thaw it */
        return husk_err(err, 0,
                        "field 'freeze': not with 'publish': a published function's instances "
                        "take their connections from the kernel, unseen by the daemon, so "
                        "nothing would thaw a frozen one");
    struct sockaddr_storage ss;
    socklen_t sl;
    int r = publish_address(spec, &ss, &sl, err);
    if (r < 0)
        return r;
    if (address_port(&ss) < 1024 && dc->owner != 0)
        return husk_err(err, 0, "field 'publish': port %u is privileged: only root publishes it",
                        address_port(&ss));
    const char *m = mode ? json_string_value(mode) : "bind";
    if (m == NULL || (strcmp(m, "bind") != 0 && strcmp(m, "listen_fds") != 0))
        return husk_err(err, 0, "field 'publish_mode': \"bind\" (the default) or \"listen_fds\"");
    char text[64];
    address_text(&ss, text, sizeof(text));
    f->publish = xstrdup(text);
    f->publish_fds = strcmp(m, "listen_fds") == 0;
    return 0;
}

/* ---- the sockets */

static bool
same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || address_port(a) != address_port(b))
        return false;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/* The cgroup the sockets are made in, on first use (under the lock): one left by a daemon that
 * was killed is removed first, so its programs are not attached twice. */
static int
sockets_cgroup(struct faas_publishing *pg, struct husk_error **err)
{
    if (pg->cg)
        return 0;
    struct faas_server *s = pg->s;
    struct sbx_cgroup_opts o = {.root = s->opts->cgroup_root};
    struct sbx_cgroup_limits none = {0};
    cleanup_free char *path = xasprintf("%s/publish", s->cgroup_parent);
    struct sbx_cgroup *old = NULL;
    if (sbx_cgroup_open(&o, path, 1, &old, NULL) == 0) {
        sbx_cgroup_destroy(old, NULL);
        sbx_cgroup_free(old);
    }
    int r = sbx_cgroup_create(&o, path, &none, &pg->cg, err);
    if (r == 0 &&
        (r = sbx_egress_attach(sbx_cgroup_spawn_fd(pg->cg), NULL, 0, &pg->deny, err)) < 0) {
        sbx_cgroup_destroy(pg->cg, NULL);
        sbx_cgroup_free(pg->cg);
        pg->cg = NULL;
    }
    return r < 0 ? husk_err_prefix(err, "the cgroup of published sockets: ") : 0;
}

/*
 * A socket that belongs to the sockets' cgroup: made by a short-lived child born there
 * (CLONE_INTO_CGROUP) that shares our fd table (CLONE_FILES) and puts it at a number we
 * reserved. It exits with an errno or 0; no SIGCHLD (the loop's reaper never sees it).
 */
static int
socket_in_cgroup(int cgroup_fd, int family, struct husk_error **err)
{
    cleanup_fd int slot = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pidfd = -1;
    if (slot < 0)
        return husk_err(err, errno, "open /dev/null");
    struct clone_args a = {.flags = CLONE_FILES | CLONE_INTO_CGROUP | CLONE_PIDFD,
                           .pidfd = (uint64_t)(uintptr_t)&pidfd,
                           .cgroup = (uint64_t)cgroup_fd};
    pid_t pid = (pid_t)sys_clone3(&a);
    if (pid == 0) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int e = fd < 0 || dup3(fd, slot, O_CLOEXEC) < 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
        _exit(e);
    }
    if (pid < 0)
        return husk_err(err, errno, "start a process in the cgroup of published sockets");
    siginfo_t si = {0};
    int w;
    while ((w = waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL)) < 0 && errno == EINTR)
        ;
    close(pidfd);
    int domain = 0;
    socklen_t dl = sizeof(domain);
    if (w < 0 || si.si_code != CLD_EXITED || si.si_status != 0 ||
        getsockopt(slot, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0 || domain != family)
        return husk_err(err, si.si_code == CLD_EXITED && si.si_status ? si.si_status : EIO,
                        "make a socket in the cgroup of published sockets");
    return steal_fd(&slot);
}

static int
pub_new(struct faas_publishing *pg, const struct faas_function *f,
        const struct sockaddr_storage *ss, socklen_t sl, struct faas_pub **out,
        struct husk_error **err)
{
    int r = sockets_cgroup(pg, err);
    if (r < 0)
        return husk_err_prefix(err, "field 'publish': ");
    cleanup_fd int fd = socket_in_cgroup(sbx_cgroup_spawn_fd(pg->cg), ss->ss_family, err);
    if (fd < 0)
        return husk_err_prefix(err, "field 'publish': ");
    int one = 1;
    struct stat st;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* its TIME_WAITs, a restart */
    if (bind(fd, (const struct sockaddr *)ss, sl) < 0)
        return husk_err(err, errno, "field 'publish': %s", f->publish);
    if (listen(fd, BACKLOG) < 0 || fstat(fd, &st) < 0)
        return husk_err(err, errno, "field 'publish': listen on %s", f->publish);
    struct faas_pub *p = xcalloc(1, sizeof(*p));
    p->pg = pg;
    p->fn = xstrdup(f->name);
    snprintf(p->text, sizeof(p->text), "%s", f->publish);
    p->sa = *ss;
    p->sl = sl;
    p->ino = st.st_ino;
    p->refs = 1;
    p->fd = steal_fd(&fd);
    p->next = pg->pubs;
    pg->pubs = p;
    *out = p;
    return 0;
}

int
faas_publish_acquire(struct faas_server *s, struct faas_function *f, struct husk_error **err)
{
    struct faas_publishing *pg = s->publishing;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (f->publish == NULL || f->pub)
        return 0;
    int r = publish_address(f->publish, &ss, &sl, err);
    if (r < 0)
        return r;
    if (!f->publish_fds && pg->filter.bpf == NULL)
        return husk_err(err, ENOSYS,
                        "field 'publish': no seccomp notification here: use "
                        "\"publish_mode\": \"listen_fds\"");
    pthread_mutex_lock(&pg->lock);
    struct faas_pub *p = pg->pubs;
    while (p && !same_address(&p->sa, &ss))
        p = p->next;
    if (p && strcmp(p->fn, f->name) != 0)
        r = husk_err(err, EADDRINUSE, "field 'publish': %s is published by function '%s'",
                     f->publish, p->fn);
    else if (p)
        p->refs++;
    else
        r = pub_new(pg, f, &ss, sl, &p, err);
    if (r == 0)
        f->pub = p;
    pthread_mutex_unlock(&pg->lock);
    return r;
}

static void
watch(struct faas_server *s, struct faas_pub *p)
{
    if (!p->watching && faas_watch_add(s, p->fd, EPOLLIN, &p->w) == 0)
        p->watching = true;
}

static void
unwatch(struct faas_server *s, struct faas_pub *p)
{
    if (p->watching)
        faas_watch_del(s, p->fd);
    p->watching = false;
}

/* The version in service lets go: no watch, no timer of its is left. */
static void
quiet(struct faas_server *s, struct faas_pub *p)
{
    unwatch(s, p);
    faas_timer_cancel(s, &p->t_sample);
    faas_timer_cancel(s, &p->t_retry);
    p->active = NULL;
}

/* On the loop (a version is freed there): the last version's release closes the socket. The
 * instances that still hold it keep it until they are gone. */
void
faas_publish_release(struct faas_function *f)
{
    struct faas_pub *p = f->pub;
    if (p == NULL)
        return;
    f->pub = NULL;
    struct faas_publishing *pg = p->pg;
    pthread_mutex_lock(&pg->lock);
    bool last = --p->refs == 0;
    for (struct faas_pub **q = &pg->pubs; last && *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            break;
        }
    pthread_mutex_unlock(&pg->lock);
    if (!last)
        return;
    if (p->active == f)
        quiet(pg->s, p);
    p->w.dead = true;
    close(p->fd);
    free(p->fn);
    faas_server_bury(pg->s, p);
    faas_pubstats_update(pg->s);
}

/* ---- the activator and the scaler */

static size_t
instances_for(const struct faas_function *f, size_t conns)
{
    size_t n = (conns + (size_t)f->concurrency - 1) / (size_t)f->concurrency;
    return n < 1 ? 1 : n > (size_t)f->max ? (size_t)f->max : n;
}

/* Connections wait and no instance serves: start instances for them, then step aside. */
static void
on_waiting(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_pub *p = container_of(w, struct faas_pub, w);
    struct faas_function *f = p->active;
    unwatch(s, p);
    if (f == NULL || f->retired || s->stopping || f->n_instances)
        return;
    if (f->t_min.slot) { /* its starts keep failing: again once the backoff is over */
        faas_timer_set(s, &p->t_retry, f->t_min.when);
        return;
    }
    unsigned q = faas_pub_queue(p);
    size_t want = instances_for(f, q);
    faas_server_log(s, "debug", "function '%s': %u connections wait on %s: %zu instances", f->name,
                    q, p->text, want);
    while (f->n_instances < want) {
        p->n_activated++;
        faas_instance_spawn(s, f);
    }
}

static void
retry(struct faas_server *s, struct faas_timer *t)
{
    struct faas_pub *p = container_of(t, struct faas_pub, t_retry);
    if (p->active && p->active->n_instances == 0)
        watch(s, p);
}

/* An instance shut the socket down (shutdown() of a listener, connect(AF_UNSPEC)): it stays
 * bound, so it listens again; the function broke only its own door meanwhile. */
static void
relisten(struct faas_server *s, struct faas_pub *p)
{
    int on = 1;
    socklen_t l = sizeof(on);
    if (getsockopt(p->fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &l) < 0 || on)
        return;
    faas_server_log(s, "warning", "function '%s': an instance shut %s down: listening again", p->fn,
                    p->text);
    if (listen(p->fd, BACKLOG) < 0)
        faas_server_log(s, "error", "function '%s': listen on %s again: %s", p->fn, p->text,
                        strerror(errno));
}

/* While instances serve: connections waiting at two samples in a row, beyond what starting
 * instances will take, start more (up to max). */
static void
sample(struct faas_server *s, struct faas_timer *t)
{
    struct faas_pub *p = container_of(t, struct faas_pub, t_sample);
    struct faas_function *f = p->active;
    if (f == NULL || f->n_instances == 0)
        return;
    relisten(s, p);
    unsigned q = faas_pub_queue(p);
    if (q && p->queued && !f->retired && !s->stopping && !f->t_min.slot)
        while (q > f->n_starting * (size_t)f->concurrency && f->n_instances < (size_t)f->max) {
            p->n_scaled++;
            faas_instance_spawn(s, f);
        }
    p->queued = q;
    faas_timer_set(s, t, now_ns() + SAMPLE_NS);
}

void
faas_publish_activate(struct faas_server *s, struct faas_function *f)
{
    struct husk_error *err = NULL;
    /* An older version loaded for a call by version or alias is reached through the daemon
     * alone: the socket is the deployed version's. */
    if (f->publish == NULL || faas_server_find(s, f->name, strlen(f->name)) != f)
        return;
    if (f->pub == NULL && faas_publish_acquire(s, f, &err) < 0) {
        cleanup_free char *msg = husk_error_string(err);
        husk_error_free(err);
        faas_server_log(s, "error", "function '%s' is not published (only /function/%s): %s",
                        f->name, f->name, msg);
        return;
    }
    struct faas_pub *p = f->pub;
    if (p->active && p->active != f)
        quiet(s, p);
    p->active = f;
    p->w = (struct faas_watch){.fn = on_waiting};
    p->t_sample.fn = sample;
    p->t_retry.fn = retry;
    if (f->n_instances == 0)
        watch(s, p);
    else
        faas_timer_set(s, &p->t_sample, now_ns() + SAMPLE_NS);
    faas_pubstats_update(s);
    if (!faas_address_is_loopback(&p->sa))
        faas_server_log(s, "warning", "function '%s' is published on %s, beyond this machine",
                        f->name, p->text);
    faas_server_log(s, "info", "function '%s' published on %s (%s)", f->name, p->text,
                    f->publish_fds ? "LISTEN_FDS" : "its bind() on $PORT");
}

void
faas_publish_retire(struct faas_server *s, struct faas_function *f)
{
    if (f->pub && f->pub->active == f)
        quiet(s, f->pub);
}

void
faas_publish_starting(struct faas_server *s, struct faas_function *f)
{
    struct faas_pub *p = f->pub;
    if (p == NULL || p->active != f)
        return;
    unwatch(s, p);
    if (!p->t_sample.slot)
        faas_timer_set(s, &p->t_sample, now_ns() + SAMPLE_NS);
}

void
faas_publish_spawned(struct faas_server *s, struct faas_instance *in)
{
    faas_pubnotify_watch(s, in);
}

void
faas_publish_instance_gone(struct faas_server *s, struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    struct faas_pub *p = f->pub;
    faas_pubnotify_close(s, in);
    if (p == NULL || p->active != f || f->n_instances)
        return;
    faas_timer_cancel(s, &p->t_sample);
    p->queued = 0;
    if (!f->retired && !s->stopping)
        watch(s, p);
}

/* ---- what instances get */

const struct sbx_seccomp *
faas_publish_filter(struct faas_server *s, const struct faas_function *f)
{
    return f->pub && !f->publish_fds ? &s->publishing->filter : NULL;
}

int
faas_publish_listen_fd(const struct faas_function *f)
{
    return f->pub && f->publish_fds ? f->pub->fd : -1;
}

bool
faas_publish_await(struct faas_server *s, struct faas_instance *in)
{
    if (in->fn->pub == NULL)
        return false;
    /* LISTEN_FDS: the server has the socket from its first instruction, and connections wait
     * in the kernel until it accepts. With bind(), its listen() on the socket says so. */
    if (in->fn->publish_fds)
        faas_instance_ready(s, in);
    return true;
}

/* On the idle timer of a published instance (every --idle seconds, not per connection), off
 * the loop: the dump of open connections is a netlink round trip, and which instance holds which
 * of them is read from its processes' fd tables. The instance is kept while it is being decided
 * (faas_instance_idle_decided, on the loop). */
struct idle_check {
    struct faas_work work;
    struct faas_instance *in;
    struct sockaddr_storage sa;
    int procs_dir;
    int r;
    size_t open;
    bool holds;
};

static void
idle_check_run(struct faas_work *w)
{
    struct idle_check *k = container_of(w, struct idle_check, work);
    cleanup_free uint64_t *inodes = NULL;
    size_t n_inodes = 0;
    k->r = faas_pubstats_open_conns(&k->sa, &k->open, &inodes, &n_inodes);
    if (k->r == 0)
        k->holds = faas_pubstats_holds(k->procs_dir, inodes, n_inodes);
}

static void
idle_check_done(struct faas_server *s, struct faas_work *w)
{
    struct idle_check *k = container_of(w, struct idle_check, work);
    struct faas_instance *in = k->in;
    bool counted = k->r == 0, holds = k->holds;
    size_t open = k->open;
    if (k->procs_dir >= 0)
        close(k->procs_dir);
    free(k);
    in->pub_checking = false;
    if (faas_instance_released(s, in)) /* stopped meanwhile */
        return;
    struct faas_function *f = in->fn;
    struct faas_pub *p = f->pub;
    bool keep = false;
    if (counted && p && p->active == f) {
        size_t need = open ? instances_for(f, open) : 0;
        if (need < (size_t)f->min)
            need = (size_t)f->min;
        keep = f->n_instances <= need || holds;
        p->n_kept += keep;
    }

    faas_instance_idle_decided(s, in, keep);
}

bool
faas_publish_idle_check(struct faas_server *s, struct faas_instance *in)
{
    struct faas_pub *p = in->fn->pub;
    if (p == NULL || p->active != in->fn)
        return false;
    struct idle_check *k = xcalloc(1, sizeof(*k));
    k->work.run = idle_check_run;
    k->work.done = idle_check_done;
    k->in = in;
    k->sa = p->sa;
    k->procs_dir = in->cg ? sbx_cgroup_procs_dir(in->cg) : -1;
    in->pub_checking = true;
    faas_work_submit(s, &k->work);
    return true;
}

bool
faas_publish_dial(const struct faas_function *f, struct sockaddr_storage *sa, socklen_t *len)
{
    if (f->pub == NULL)
        return false;
    *sa = f->pub->sa;
    *len = f->pub->sl;
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    if (sa->ss_family == AF_INET && in->sin_addr.s_addr == htonl(INADDR_ANY))
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sa->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
        in6->sin6_addr = in6addr_loopback;
    return true;
}

/* ---- the daemon's */

void
faas_publish_open(struct faas_server *s)
{
    struct faas_publishing *pg = xcalloc(1, sizeof(*pg));
    pthread_mutex_init(&pg->lock, NULL);
    pg->s = s;
    pg->diag_fd = -1;
    struct husk_error *err = NULL;
    if (faas_pubnotify_filter(&pg->filter, &err) < 0) { /* listen_fds only */
        cleanup_free char *msg = husk_error_string(err);
        faas_server_log(s, "warning", "published functions: %s", msg);
        husk_error_free(err);
    }
    s->publishing = pg;
}

/* At the stop, once every version was freed: what is left (versions whose instances outlived
 * the stop) is closed, and the sockets' cgroup goes. */
void
faas_publish_close(struct faas_server *s)
{
    struct faas_publishing *pg = s->publishing;
    if (pg == NULL)
        return;
    while (pg->pubs) {
        struct faas_pub *p = pg->pubs;
        pg->pubs = p->next;
        if (p->active)
            quiet(s, p);
        close(p->fd);
        free(p->fn);
        free(p);
    }
    faas_pubstats_close(pg);
    if (pg->cg) {
        struct husk_error *err = NULL;
        if (sbx_cgroup_destroy(pg->cg, &err) < 0) {
            cleanup_free char *msg = husk_error_string(err);
            faas_server_log(s, "warning", "the cgroup of published sockets: %s", msg);
            husk_error_free(err);
        }
        sbx_cgroup_free(pg->cg);
    }
    sbx_egress_free(pg->deny);
    free(pg->filter.bpf);
    pthread_mutex_destroy(&pg->lock);
    free(pg);
    s->publishing = NULL;
}
