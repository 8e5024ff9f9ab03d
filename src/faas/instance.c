/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Instances: one sandbox of a function version, kept warm between calls. Each has its own
 * cgroup (limits, accounting, one kill for all of it), pid and network namespaces (loopback
 * only), and a log pipe. A stdio/cgi instance runs the agent as its pid 1, which forks the
 * program per call; an http instance runs the program, a server on $PORT, and is ready once a
 * TCP connect to that port succeeds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-proto.h"
#include "faas-internal.h"
#include "util.h"

#define PROBE_INTERVAL_NS 1000000ull /* 1 ms between TCP connects while a server starts */

int
faas_instance_socket(struct faas_server *s, struct faas_instance *in)
{
    if (setns(in->netns_fd, CLONE_NEWNET) < 0)
        return -errno;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e = errno;
    if (setns(s->self_netns, CLONE_NEWNET) < 0)
        abort(); /* the daemon would go on in a sandbox's network: never */
    return fd < 0 ? -e : fd;
}

static int
loopback_up(struct faas_server *s, struct faas_instance *in)
{
    if (setns(in->netns_fd, CLONE_NEWNET) < 0)
        return -errno;
    cleanup_fd int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (setns(s->self_netns, CLONE_NEWNET) < 0)
        abort();
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        return -errno;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

uint64_t
faas_instance_max_memory(struct faas_instance *in)
{
    struct sbx_cgroup_stats st;
    if (in->cg == NULL || sbx_cgroup_stats(in->cg, &st, NULL) < 0 || !st.has_memory)
        return 0;
    return st.mem_max_usage;
}

static const char *
single_call_rid(struct faas_instance *in)
{
    return in->in_flight == 1 && in->calls ? in->calls->rid : "-";
}

static void
log_lines(struct faas_instance *in, bool flush)
{
    struct faas_buf *b = &in->log;
    while (faas_buf_pending(b)) {
        char *start = b->p + b->off;
        char *nl = memchr(start, '\n', faas_buf_pending(b));
        size_t n = nl ? (size_t)(nl - start) : faas_buf_pending(b);
        if (!nl && !(flush && n))
            break;
        faas_log_line(in->s, in->fn->name, in->id, single_call_rid(in), "log", start, n);
        b->off += n + (nl != NULL);
    }
    if (faas_buf_pending(b) > 16384) /* a line without end: cut it */
        log_lines(in, true);
}

static void
on_log(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_log);
    char buf[16384];
    ssize_t n = read(in->log_fd, buf, sizeof(buf));
    if (n > 0) {
        faas_buf_add(&in->log, buf, (size_t)n);
        log_lines(in, false);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        log_lines(in, true);
        faas_watch_del(s, in->log_fd);
        close(in->log_fd);
        in->log_fd = -1;
    }
}

/* The instance's program (the agent, or an http instance's server) ended: so does it. */
static void
instance_ended(struct faas_server *s, struct faas_instance *in, int status)
{
    bool oom = in->cg && sbx_cgroup_oom_kills(in->cg) > in->oom_kills;
    cleanup_free char *why =
        oom ? xasprintf("it ran out of memory (limit %lld bytes)", (long long)in->fn->memory)
        : status < 0
            ? xasprintf("its program could not be run: %s", strerror(-status))
            : xasprintf("its program exited with status %d", sbx_status_to_exit_code(status));
    faas_server_log(s, "info", "instance %s ended: %s", in->id, why);
    for (struct faas_call *c = in->calls, *next; c; c = next) {
        next = c->next;
        c->oom = oom;
        faas_call_abort(c, 502, why);
    }
    faas_pool_instance_gone(s, in, why);
}

static void
on_exit_(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_pid);
    int status = 0;
    faas_watch_del(s, in->child->pidfd);
    sbx_child_wait(in->child, &status, NULL);
    close(in->child->pidfd); /* reaped: nothing may signal its pid again */
    in->child->pidfd = -1;
    instance_ended(s, in, status);
}

/* The agent reports ended runs: a call's program, or an http instance's server. */
static void
on_ctl(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_ctl);
    struct agent_msg m;
    ssize_t n = recv(in->ctl_fd, &m, sizeof(m), MSG_DONTWAIT);
    if (n == (ssize_t)sizeof(m) && m.kind == AGENT_EXIT) {
        /* Either may free in: one message per event. */
        if (in->server_run && m.id == in->server_run)
            instance_ended(s, in, m.status);
        else
            faas_stdio_exited(in, m.id, m.status);
        return;
    }
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
        faas_watch_del(s, in->ctl_fd); /* the agent is gone: its pidfd tells the rest */
}

static void
on_probe(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_probe);
    int e = 0;
    socklen_t l = sizeof(e);
    getsockopt(in->probe_fd, SOL_SOCKET, SO_ERROR, &e, &l);
    faas_watch_del(s, in->probe_fd);
    close(in->probe_fd);
    in->probe_fd = -1;
    if (e) {
        in->next_probe = now_ns() + PROBE_INTERVAL_NS;
        return;
    }
    in->state = INST_READY;
    in->init_ns = now_ns() - in->spawned_ns;
    in->fn->n_starting--;
    faas_metrics_cold_start(s, in->fn->name, in->init_ns / 1e9);
    faas_pool_ready(s, in);
}

void
faas_instance_probe(struct faas_server *s, struct faas_instance *in)
{
    if (in->probe_fd >= 0 || now_ns() < in->next_probe)
        return;
    in->probe_fd = faas_instance_socket(s, in);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)in->fn->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (in->probe_fd < 0)
        return;
    if (connect(in->probe_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS)
        faas_watch_add(s, in->probe_fd, EPOLLOUT, &in->w_probe);
    else
        on_probe(s, &in->w_probe, 0);
}

static int
make_cgroup(struct faas_server *s, struct faas_function *f, struct faas_instance *in,
            struct husk_error **err)
{
    struct sbx_cgroup_limits l = {0};
    if (f->cfg->resources)
        l = f->cfg->resources->limits; /* shallow: only read */
    /* Always in a memory cgroup: the peak is reported per call. */
    l.memory.limit = (struct sbx_cg_num){.set = true, .v = f->memory ? f->memory : -1};
    if (f->memory)
        l.memory.swap = (struct sbx_cg_num){.set = true, .v = f->memory};
    if (f->cpus > 0) {
        l.cpu.period = (struct sbx_cg_num){.set = true, .v = 100000};
        l.cpu.quota = (struct sbx_cg_num){.set = true, .v = (int64_t)(f->cpus * 100000)};
    }
    if (f->pids)
        l.pids = (struct sbx_cg_num){.set = true, .v = f->pids};
    struct sbx_cgroup_opts o = {.root = s->opts->cgroup_root};
    cleanup_free char *path = xasprintf("%s/%s", s->cgroup_parent, in->id);
    cleanup_free char *record = xasprintf("%s/%s", s->instance_dir, in->id);
    cleanup_fd int fd = open(record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, path, strlen(path)) < 0)
        return husk_err(err, errno, "record instance '%s'", record);
    if (sbx_cgroup_create(&o, path, &l, &in->cg, err) < 0) {
        unlink(record);
        return husk_err_prefix(err, "create the instance's cgroup: ");
    }
    return 0;
}

/* Spawn with stdio wired to the instance: the daemon's own 0-2 are put back after. */
static int
spawn_wired(struct faas_server *s, struct faas_function *f, struct faas_instance *in,
            const int stdio[3], struct husk_error **err)
{
    int saved[3];
    for (int i = 0; i < 3; i++)
        saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 3);
    for (int i = 0; i < 3; i++)
        dup2(stdio[i], i);
    struct sbx_spawn_opts so = {.start_listen_fd = -1,
                                .console_fd = -1,
                                .seccomp_listener_fd = -1,
                                .cgroup_fd = sbx_cgroup_spawn_fd(in->cg),
                                .on_created = sbx_cgroup_on_created,
                                .data = in->cg,
                                .exec_fd = s->agent_fd,
                                .rootfs_fd = f->root_is_image ? 0 : f->root_fd};
    sbx_cgroup_enter_self(in->cg);
    int r = sbx_spawn(f->cfg->sbx, &so, &in->child, err);
    sbx_cgroup_leave_self(in->cg, NULL);
    for (int i = 0; i < 3; i++) {
        dup2(saved[i], i);
        close(saved[i]);
    }
    return r;
}

/* The agent's stdio: its control socket, then the instance's log for its own messages. */
static int
wire(struct faas_server *s, struct faas_function *f, struct faas_instance *in, int stdio[3],
     struct husk_error **err)
{
    int logp[2], ctl[2];
    if (pipe2(logp, O_CLOEXEC) < 0)
        return husk_err(err, errno, "create the instance's log pipe");
    in->log_fd = logp[0];
    fcntl(in->log_fd, F_SETFL, O_NONBLOCK);
    stdio[1] = logp[1];
    stdio[2] = logp[1];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
        return husk_err(err, errno, "create the instance's control socket");
    int big = 1 << 20;
    setsockopt(ctl[1], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
    setsockopt(ctl[0], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    stdio[0] = ctl[0];
    in->ctl_fd = ctl[1];
    fcntl(in->ctl_fd, F_SETFL, O_NONBLOCK);
    return 0;
}

int
faas_instance_send_run(struct faas_instance *in, uint32_t id, const struct faas_buf *env,
                       const int fds[3], struct husk_error **err)
{
    struct agent_msg m = {.kind = AGENT_RUN, .id = id, .len = (uint32_t)env->len};
    char cbuf[CMSG_SPACE(3 * sizeof(int))] = {0};
    struct iovec iov[2] = {{&m, sizeof(m)}, {env->p, env->len}};
    struct msghdr mh = {
        .msg_iov = iov, .msg_iovlen = 2, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, 3 * sizeof(int));
    if (env->len > AGENT_MSG_MAX)
        return husk_err(err, E2BIG, "the request's headers are too large for the environment");
    if (sendmsg(in->ctl_fd, &mh, MSG_NOSIGNAL) < 0)
        return husk_err(err, errno, "hand the run to instance %s", in->id);
    return 0;
}

/* An http instance's server is the agent's one long run: stdin /dev/null, output to the log.
 * The agent as pid 1 ends the whole sandbox when the daemon goes (its socket closes). */
static int
start_server(struct faas_server *s, struct faas_instance *in, int log_w, struct husk_error **err)
{
    struct faas_buf env = {0};
    for (char **e = in->fn->cfg->sbx->process.env; e && *e; e++)
        faas_buf_add(&env, *e, strlen(*e) + 1);
    cleanup_fd int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int fds[3] = {null, log_w, log_w};
    in->server_run = ++s->next_agent_id;
    int r = null < 0 ? husk_err(err, errno, "open /dev/null")
                     : faas_instance_send_run(in, in->server_run, &env, fds, err);
    faas_buf_free(&env);
    return r;
}

static int
instance_run(struct faas_server *s, struct faas_function *f, struct faas_instance *in,
             struct husk_error **err)
{
    int stdio[3] = {-1, -1, -1};
    int r = faas_recheck_trusted(f->root_fd, f->owner, f->root_path, err);
    if (r == 0)
        r = wire(s, f, in, stdio, err);
    if (r == 0)
        r = spawn_wired(s, f, in, stdio, err);
    if (stdio[0] >= 0)
        close(stdio[0]);
    cleanup_fd int log_w = stdio[1];
    if (r < 0)
        return r;
    cleanup_free char *ns = xasprintf("/proc/%d/ns/net", in->child->pid);
    in->netns_fd = open(ns, O_RDONLY | O_CLOEXEC);
    if (in->netns_fd < 0 || (r = loopback_up(s, in)) < 0)
        return husk_err(err, in->netns_fd < 0 ? errno : -r, "bring up the instance's loopback");
    if ((r = sbx_child_start(in->child, f->cfg->sbx, err)) < 0)
        return r;
    if (f->contract == FAAS_HTTP && (r = start_server(s, in, log_w, err)) < 0)
        return r;
    in->w_pid.fn = on_exit_;
    in->w_log.fn = on_log;
    in->w_probe.fn = on_probe;
    in->w_ctl.fn = on_ctl;
    if (faas_watch_add(s, in->child->pidfd, EPOLLIN, &in->w_pid) < 0 ||
        faas_watch_add(s, in->log_fd, EPOLLIN, &in->w_log) < 0 ||
        faas_watch_add(s, in->ctl_fd, EPOLLIN, &in->w_ctl) < 0)
        return husk_err(err, errno, "watch the instance");
    return 0;
}

int
faas_instance_spawn(struct faas_server *s, struct faas_function *f, struct faas_instance **out,
                    struct husk_error **err)
{
    struct faas_instance *in = xcalloc(1, sizeof(*in));
    in->s = s;
    in->fn = f;
    in->ctl_fd = in->log_fd = in->netns_fd = in->probe_fd = -1;
    in->spawned_ns = now_ns();
    in->state = INST_STARTING;
    snprintf(in->id, sizeof(in->id), "%s-v%lld-%zu", f->name, (long long)f->version,
             ++f->next_instance);
    in->next = f->instances;
    f->instances = in;
    f->n_instances++;
    f->n_starting++;
    int r = make_cgroup(s, f, in, err);
    if (r == 0)
        r = instance_run(s, f, in, err);
    if (r < 0) {
        faas_instance_destroy(s, in);
        return r;
    }
    in->idle_since = now_ns();
    if (f->contract != FAAS_HTTP) { /* the agent takes calls from the start */
        in->state = INST_READY;
        in->init_ns = now_ns() - in->spawned_ns;
        f->n_starting--;
        faas_metrics_cold_start(s, f->name, in->init_ns / 1e9);
    }
    faas_server_log(s, "debug", "instance %s spawned (pid %d)", in->id, in->child->pid);
    *out = in;
    return 0;
}

static void
unlink_instance(struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    for (struct faas_instance **p = &f->instances; *p; p = &(*p)->next)
        if (*p == in) {
            *p = in->next;
            f->n_instances--;
            if (in->state == INST_STARTING)
                f->n_starting--;
            break;
        }
    in->state = INST_DEAD;
}

void
faas_instance_destroy(struct faas_server *s, struct faas_instance *in)
{
    unlink_instance(in);
    for (struct faas_call *c = in->calls, *next; c; c = next) {
        next = c->next;
        faas_call_abort(c, 502, "the function's instance was stopped");
    }
    int fds[] = {in->ctl_fd, in->log_fd, in->probe_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        faas_watch_del(s, fds[i]);
    if (in->log_fd >= 0)
        log_lines(in, true);
    if (in->cg)
        sbx_cgroup_kill(in->cg, SIGKILL, NULL);
    if (in->child) {
        faas_watch_del(s, in->child->pidfd);
        if (in->child->pidfd >= 0) {
            syscall(SYS_pidfd_send_signal, in->child->pidfd, SIGKILL, NULL, 0);
            int st;
            sbx_child_wait(in->child, &st, NULL);
        }
        sbx_child_free(in->child);
    }
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (in->netns_fd >= 0)
        close(in->netns_fd);
    if (in->cg) {
        sbx_cgroup_destroy(in->cg, NULL);
        sbx_cgroup_free(in->cg);
        cleanup_free char *record = xasprintf("%s/%s", s->instance_dir, in->id);
        unlink(record);
    }
    faas_buf_free(&in->log);
    in->w_pid.dead = in->w_log.dead = in->w_ctl.dead = in->w_probe.dead = true;
    faas_server_bury(s, in);
}
