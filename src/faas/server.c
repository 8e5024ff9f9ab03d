/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon: one epoll loop for clients, instances and calls; start-up and shutdown. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <search.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faas-internal.h"
#include "husk/net.h"
#include "util.h"

extern const unsigned char faas_agent_bin[], faas_agent_end[];

void
faas_server_log(struct faas_server *s, const char *level, const char *fmt, ...)
{
    if (s->opts->log == NULL || (strcmp(level, "debug") == 0 && !s->opts->log_debug))
        return;
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    if (msg)
        s->opts->log(level, msg, s->opts->log_data);
}

static int
fn_cmp(const void *a, const void *b)
{
    return strcmp(((const struct faas_function *)a)->name, ((const struct faas_function *)b)->name);
}

struct faas_function *
faas_server_find(struct faas_server *s, const char *name, size_t len)
{
    char key[FAAS_NAME_MAX + 1];
    if (len > FAAS_NAME_MAX)
        return NULL;
    memcpy(key, name, len);
    key[len] = '\0';
    struct faas_function probe = {.name = key};
    void **hit = tfind(&probe, &s->fn_index, fn_cmp);
    return hit ? *hit : NULL;
}

/* The functions in service: an array (to list them) and a tree by name (to find one without
 * a scan); these keep the two together. */
void
faas_server_add(struct faas_server *s, struct faas_function *f)
{
    s->fns = xrealloc(s->fns, (s->n_fns + 1) * sizeof(*s->fns));
    s->fns[s->n_fns++] = f;
    tsearch(f, &s->fn_index, fn_cmp);
}

void
faas_server_remove(struct faas_server *s, struct faas_function *f)
{
    for (size_t i = 0; i < s->n_fns; i++)
        if (s->fns[i] == f)
            s->fns[i] = s->fns[--s->n_fns];
    tdelete(f, &s->fn_index, fn_cmp);
}

void
faas_server_replace(struct faas_server *s, struct faas_function *old, struct faas_function *f)
{
    faas_server_remove(s, old);
    faas_server_add(s, f);
}

int
faas_watch_add(struct faas_server *s, int fd, uint32_t events, struct faas_watch *w)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(faas_loop_cur()->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int
faas_watch_mod(struct faas_server *s, int fd, uint32_t events, struct faas_watch *w)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(faas_loop_cur()->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void
faas_watch_del(struct faas_server *s, int fd)
{
    if (fd >= 0)
        epoll_ctl(faas_loop_cur()->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

void
faas_buf_add(struct faas_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 256;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

int
faas_buf_send(struct faas_buf *b, int fd, bool *writable)
{
    while (*writable && faas_buf_pending(b)) {
        size_t want = faas_buf_pending(b);
        ssize_t n = send(fd, b->p + b->off, want, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            *writable = false;
        if (n < 0)
            return errno == EAGAIN ? 1 : -1;
        b->off += (size_t)n;
        *writable = (size_t)n == want; /* short: the socket is full, the next send would fail */
    }
    return faas_buf_pending(b) ? 1 : 0;
}

void
faas_buf_compact(struct faas_buf *b, size_t len)
{
    if (b->off == 0 || b->len + len <= b->cap)
        return;
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

/* Formatted straight into the buffer: no allocation on the request path once it has grown. */
void
faas_buf_addf(struct faas_buf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= room) {
        b->cap = (b->len + (size_t)n + 1) * 2 + 256;
        b->p = xrealloc(b->p, b->cap);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void
faas_buf_free(struct faas_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

size_t
faas_buf_pending(const struct faas_buf *b)
{
    return b->len - b->off;
}

/* The agent every stdio instance runs as its pid 1, in a sealed memfd (see agent/agent.c). */
static int
agent_memfd(struct husk_error **err)
{
    cleanup_fd int fd = memfd_create("husk-agent", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    size_t len = (size_t)(faas_agent_end - faas_agent_bin);
    if (fd < 0 || write_all(fd, faas_agent_bin, len) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
        return husk_err(err, errno, "prepare the in-sandbox agent");
    return steal_fd(&fd);
}

static void
stop_accepting(struct faas_server *s, unsigned signo)
{
    faas_server_log(s, "info", "signal %u: finishing %zu requests in flight", signo,
                    s->main.n_calls);
    s->stopping = s->main.stopping = true;
    faas_loops_stop(s); /* each finishes its own */
    faas_listeners_close(s);
    faas_conn_close_all(s, true);
    faas_tunnel_stop_all(s);
}

static void
on_signal(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct signalfd_siginfo si;
    while (read(s->opts->signal_fd, &si, sizeof(si)) == sizeof(si))
        if (si.ssi_signo != SIGCHLD && !s->stopping)
            stop_accepting(s, si.ssi_signo);
    /* Instances are reaped through their pidfds; anything else (hooks' helpers) here. */
    int status;
    while (waitpid(-1, &status, WNOHANG | __WNOTHREAD) > 0)
        ;
}

/* Each instance leaves a record (its cgroup path) until it is destroyed: after a kill -9 of
 * the daemon, its sandboxes are found and removed here. */
static void
remove_leftovers(struct faas_server *s)
{
    cleanup_dir DIR *d = opendir(s->instance_dir);
    struct dirent *e;
    size_t n = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        cleanup_free char *path = xasprintf("%s/%s", s->instance_dir, e->d_name);
        cleanup_free char *cgpath = NULL;
        size_t len;
        if (read_file_at(AT_FDCWD, path, &cgpath, &len) == 0 && str_has_prefix(cgpath, "/husk/")) {
            struct sbx_cgroup_opts o = {.root = s->opts->cgroup_root};
            struct sbx_cgroup *cg = NULL;
            if (sbx_cgroup_open(&o, cgpath, 1, &cg, NULL) == 0) {
                sbx_cgroup_destroy(cg, NULL);
                sbx_cgroup_free(cg);
            }
            n++;
        }
        unlink(path);
    }
    if (n)
        faas_server_log(s, "warning", "removed %zu sandboxes left by an earlier run", n);
}

static int
load_functions(struct faas_server *s, struct husk_error **err)
{
    cleanup_free char *warn = NULL;
    /* Each function was checked against the policy with its deployer's uid; again now. */
    struct faas_deploy_ctx dc = {.state_dir = s->opts->state_dir, .policy = &s->policy};
    int r = faas_registry_load(s->reg, &dc, &s->fns, &s->n_fns, &warn, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s->n_fns; i++)
        tsearch(s->fns[i], &s->fn_index, fn_cmp);
    if ((r = faas_registry_aliases_load(s->reg, &s->aliases, err)) < 0)
        return r;
    faas_aliases_index(s);
    if (warn)
        faas_server_log(s, "warning", "a function was not loaded: %s", warn);
    faas_server_log(s, "info", "%zu functions loaded", s->n_fns);
    return 0;
}

/* A short stable name for this state directory: two daemons never share instance cgroups. */
static void
cgroup_parent(struct faas_server *s)
{
    uint64_t h = 1469598103934665603ull;
    char real[4096];
    const char *p = realpath(s->opts->state_dir, real) ? real : s->opts->state_dir;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(s->cgroup_parent, sizeof(s->cgroup_parent), "/husk/serve-%08x",
             (unsigned)(h ^ (h >> 32)));
}

/* Enough fds for many clients and instances: an idle instance holds 3, a connection 1 or 2.
 * As root, the hard limit too, up to the kernel's nr_open (a million by default); else the soft
 * limit up to the hard one. */
#define WANT_NOFILE (1u << 20)

static void
raise_nofile(struct faas_server *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= WANT_NOFILE)
        return;
    rlim_t was = rl.rlim_cur;
    uint64_t nr_open = WANT_NOFILE;
    cleanup_free char *text = NULL;
    if (read_file_at(AT_FDCWD, "/proc/sys/fs/nr_open", &text, NULL) == 0)
        parse_u64(strtok(text, "\n"), &nr_open);
    struct rlimit want = {.rlim_cur = nr_open < WANT_NOFILE ? nr_open : WANT_NOFILE};
    want.rlim_max = want.rlim_cur > rl.rlim_max ? want.rlim_cur : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) < 0) { /* not root: up to the hard limit */
        want = (struct rlimit){.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (rl.rlim_cur >= rl.rlim_max || setrlimit(RLIMIT_NOFILE, &want) < 0)
            return;
    }
    faas_server_log(s, "info",
                    "open files limit raised from %llu to %llu (an idle instance holds 3)",
                    (unsigned long long)was, (unsigned long long)want.rlim_cur);
}

static int
server_init(struct faas_server *s, struct husk_error **err)
{
    int r;
    s->policy = (struct faas_policy){.allow_bind = s->opts->allow_bind,
                                     .n_allow_bind = s->opts->n_allow_bind,
                                     .userns_base = s->opts->userns_base,
                                     .userns_slots = s->opts->userns_slots,
                                     .defaults = s->opts->fn_defaults,
                                     .maxima = s->opts->fn_maxima};
    s->log_dir = xasprintf("%s/logs", s->opts->state_dir);
    s->instance_dir = xasprintf("%s/instances", s->opts->state_dir);
    raise_nofile(s);
    if ((r = faas_registry_open(s->opts->state_dir, &s->policy, &s->reg, err)) < 0)
        return r;
    if (mkdir_p(s->log_dir, 0700) < 0 || mkdir_p(s->instance_dir, 0700) < 0)
        return husk_err(err, errno, "create '%s'", s->instance_dir);
    cgroup_parent(s);
    /* not under /run/husk, which is root's alone (0700): functions' users read these files */
    s->runtime_dir = xasprintf("/run/husk-functions%s", strrchr(s->cgroup_parent, '/'));
    s->policy.runtime_dir = s->runtime_dir;
    remove_leftovers(s);
    faas_egress_open(s);
    faas_publish_open(s);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned starts = s->opts->parallel_starts ? s->opts->parallel_starts : 4;
    if ((r = faas_workq_new(s, cores > 1 ? (unsigned)cores : 2, &s->work, err)) < 0 ||
        (r = faas_workq_new(s, 2, &s->net, err)) < 0 ||
        (r = faas_workq_new(s, starts, &s->spawns, err)) < 0)
        return r;
    if ((r = load_functions(s, err)) < 0 ||
        (r = faas_async_open(s, s->opts->max_async_queue, err)) < 0 ||
        (r = faas_trace_open(s, s->opts->otlp_endpoint, err)) < 0 ||
        (r = faas_listeners_open(s, err)) < 0 || (s->agent_fd = agent_memfd(err)) < 0)
        return r < 0 ? r : s->agent_fd;
    s->self_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    s->w_signal.fn = on_signal;
    if (s->self_netns < 0 || faas_watch_add(s, s->opts->signal_fd, EPOLLIN, &s->w_signal) < 0)
        return husk_err(err, errno, "set up the event loop");
    return 0;
}

/* Run the loop for what is left to tear down: every instance's processes and cgroup, and the
 * spawns still on the work threads. Bounded: a stop never hangs on a sandbox. */
static void
drain_instances(struct faas_server *s)
{
    struct epoll_event evs[64];
    uint64_t until = now_ns() + 20 * NS_PER_SEC;
    while (s->n_instances && now_ns() < until) {
        int timer = faas_loop_timers(&s->main);
        faas_loop_events(s, &s->main, NULL, 0);
        int n = epoll_wait(s->main.epoll_fd, evs, ARRAY_SIZE(evs),
                           timer < 0 || timer > 100 ? 100 : timer);
        faas_loop_events(s, &s->main, evs, n > 0 ? n : 0);
    }
}

static void
no_free(void *p)
{
}

/* What the daemon made for functions to read (their resolv.conf files) goes when it stops. */
static void
remove_runtime_dir(struct faas_server *s)
{
    cleanup_free char *net = s->runtime_dir ? xasprintf("%s/net", s->runtime_dir) : NULL;
    DIR *d = net ? opendir(net) : NULL;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    if (net) {
        rmdir(net);
        rmdir(s->runtime_dir);
        rmdir("/run/husk-functions"); /* when no other daemon uses it */
    }
}

static void
server_free(struct faas_server *s)
{
    s->stopping = s->main.stopping = true;
    faas_loops_stop(s);
    faas_loops_join(s); /* no loop but this one from here on */
    for (size_t i = 0; i < s->n_fns; i++) {
        faas_versions_retire(s, s->fns[i]);
        faas_pool_retire(s, s->fns[i]);
    }
    tdestroy(s->fn_index, no_free);
    faas_aliases_free(s);
    s->fn_index = NULL;
    free(s->fns);
    s->fns = NULL;
    s->n_fns = 0;
    faas_conn_close_all(s, false);
    if (s->main.epoll_fd >= 0)
        drain_instances(s);
    faas_workq_stop(s, &s->spawns); /* runs the `done` of spawns still out: they undo themselves */
    faas_workq_stop(s, &s->work);
    faas_trace_flush(s);
    faas_async_stop(s);
    faas_workq_stop(s, &s->net);
    faas_trace_close(s);
    faas_egress_close(s);
    faas_async_close(s);
    while (s->retired) {
        struct faas_function *f = s->retired;
        s->retired = f->next_retired;
        faas_timer_cancel(s, &f->t_min);
        if (f->instances || f->n_dying)
            faas_server_log(s, "warning", "function '%s': instances left to the next start",
                            f->name);
        else
            faas_function_free(f);
    }
    faas_loop_events(s, &s->main, NULL, 0);
    faas_publish_close(s);
    faas_listeners_close(s);
    faas_clients_free(s);
    faas_logs_flush(s);
    s->timers_gone = true; /* no timer from here on: log lines are written as they come */
    faas_loop_free(&s->main);
    faas_metrics_free(s);
    free(s->recent);
    faas_registry_free(s->reg);
    free(s->log_dir);
    free(s->instance_dir);
    remove_runtime_dir(s);
    free(s->runtime_dir);
    pthread_mutex_destroy(&s->lock);
    int fds[] = {s->agent_fd, s->self_netns};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* The main loop holds the daemon's lock while it works, and lets go of it while it waits. */
static int
loop(struct faas_server *s, struct husk_error **err)
{
    struct faas_loop *l = &s->main;
    struct epoll_event evs[64];
    int r = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping || l->n_calls || l->conns || s->fronts_running) {
        int timeout = faas_loop_timers(l);
        faas_loop_events(s, l, NULL, 0);
        pthread_mutex_unlock(&s->lock);
        int n = epoll_wait(l->epoll_fd, evs, ARRAY_SIZE(evs), timeout);
        int e = errno;
        pthread_mutex_lock(&s->lock);
        if (n < 0 && e != EINTR) {
            r = husk_err(err, e, "wait for events");
            break;
        }
        faas_loop_events(s, l, evs, n > 0 ? n : 0);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
faas_serve_check(const struct faas_serve_opts *opts, struct husk_error **err)
{
    struct faas_server s = {.opts = opts};
    int r = faas_listen_check(opts, err);
    if (r == 0)
        r = faas_trace_open(&s, opts->otlp_endpoint, err);
    faas_trace_close(&s);
    for (size_t i = 0; r == 0 && i < opts->n_allow_callback; i++) {
        struct sbx_cidr c;
        if ((r = sbx_cidr_parse(opts->allow_callback[i], &c, err)) < 0)
            husk_err_prefix(err, "--allow-callback '%s'", opts->allow_callback[i]);
    }
    return r;
}

int
faas_serve(const struct faas_serve_opts *opts, struct husk_error **err)
{
    struct faas_server s = {.opts = opts, .agent_fd = -1, .self_netns = -1};
    pthread_mutex_init(&s.lock, NULL);
    faas_loop_set_cur(&s.main);
    int r = faas_loop_init(&s, &s.main, 0, err);
    if (r == 0)
        r = server_init(&s, err);
    if (r == 0) {
        for (size_t i = 0; i < s.n_fns; i++)
            faas_pool_activate(&s, s.fns[i]);
        faas_async_start(&s);
        r = faas_loops_start(&s, err); /* last: from here on the lock is taken */
    }
    if (r == 0) {
        if (s.n_fronts)
            faas_server_log(&s, "info", "%u loops serve the front door", s.n_fronts);
        if (opts->listen_fd >= 0)
            faas_server_log(&s, "info", "front door on fd %d (socket activation)", opts->listen_fd);
        else if (opts->listen)
            faas_server_log(&s, "info", "front door on http://%s", opts->listen);
        if (opts->admin_fd >= 0)
            faas_server_log(&s, "info", "admin API on fd %d (socket activation)", opts->admin_fd);
        else if (opts->admin_socket)
            faas_server_log(&s, "info", "admin API on unix:%s", opts->admin_socket);
        r = loop(&s, err);
        faas_server_log(&s, "info", "stopped");
    }
    server_free(&s);
    faas_loop_set_cur(NULL);
    return r;
}
