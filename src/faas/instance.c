/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Instances: one sandbox of a function version, kept warm between calls. Each has its own
 * cgroup (limits, accounting), user, pid and network namespaces (loopback only) and a log
 * pipe; its pid 1 is husk's agent, which forks the program per call (stdio, cgi) or runs it
 * as the instance's server (http).
 *
 * The life of one, none of it blocking the loop: the sandbox is made on a work thread; an http
 * instance is ready once a connect to $PORT succeeds (tried with backoff on timers); idle ones
 * stop on a timer. Stopping kills the agent, which as pid 1 takes its pid namespace along:
 * when its pidfd says it is gone every process of the instance is, and the cgroup is removed
 * (tried again on a timer while the kernel still counts a leaving process).
 *
 * A function deployed with "zygote" has no sandbox per instance: its instances are forks of
 * its version's template (zygote-fork.c), which uses this file's life cycle with its own
 * start and end.
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
#include "syscalls.h"
#include "util.h"

#define PROBE_FIRST_NS  (200ull * 1000ull)   /* 0.2 ms, doubling ... */
#define PROBE_MAX_NS    (4ull * 1000000ull)  /* ... up to 4 ms: a cold start waits at most that */
#define REMOVE_FIRST_NS (1000000ull)         /* cgroup still busy: 1 ms, doubling */
#define REMOVE_TRIES    14                   /* about 16 s in all */
#define LOG_BATCH_NS    (10ull * 1000000ull) /* a published instance's log: every 10 ms */
#define LOG_PIPE_SIZE   (1 << 20)            /* ... from a 1 MiB pipe */

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

/* The peak is the instance's, not one call's: read at most every 10 ms (one pread), so a busy
 * instance does not pay a syscall per call for it. */
uint64_t
faas_instance_max_memory(struct faas_instance *in)
{
    char buf[32];
    uint64_t now = now_ns(), v = 0;
    if (in->peak_fd < 0 || now - in->peak_read_ns < 10000000ull)
        return in->peak;
    ssize_t n = pread(in->peak_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return in->peak;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (parse_u64(buf, &v) == 0)
        in->peak = v;
    in->peak_read_ns = now;
    return in->peak;
}

/* Asked when something in the instance failed: did the kernel OOM-kill it? The calls in flight
 * then ran out of memory. The cgroup is parked (no fds) between looks. */
bool
faas_instance_oom_check(struct faas_server *s, struct faas_instance *in)
{
    /* A dying instance's cgroup is being killed off the loop (and a front loop's call may
     * outlive it): what it counted before is in oom_kills. */
    if (in->cg == NULL || in->state == INST_DYING || sbx_cgroup_unpark(in->cg, NULL) < 0)
        return false;
    uint64_t n = sbx_cgroup_oom_kills(in->cg);
    sbx_cgroup_park(in->cg);
    if (n <= in->oom_kills)
        return false;
    in->oom_kills = n;
    for (struct faas_call *c = in->calls; c; c = c->next)
        c->oom = true;
    return true;
}

bool
faas_instance_near_limit(struct faas_instance *in)
{
    int64_t limit = in->fn->memory;
    return limit > 0 && faas_instance_max_memory(in) + (1u << 20) >= (uint64_t)limit;
}

/* An idle stdio or CGI instance holds one fd of the daemon's, its control socket (an http
 * instance: its pidfd and log too). The memory peak is opened while calls run
 * (faas_instance_busy). */
static void
slim(struct faas_instance *in)
{
    int *fds[] = {&in->peak_fd, in->fn->contract->server ? NULL : &in->netns_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] && *fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
    sbx_cgroup_park(in->cg);
}

/* Front loops' calls (loops.c) leave the main loop's idle timers where they are: a timer
 * that finds its instance busy, or used since, looks again a period after the last call. */
static bool
used_since(struct faas_server *s, struct faas_instance *in, struct faas_timer *t, uint64_t period)
{
    uint64_t now = now_ns(), due = in->last_end_ns + period;
    if (in->in_flight == 0 && due <= now)
        return false;
    faas_timer_set(s, t, in->in_flight ? now + period : due);
    return true;
}

bool
faas_instance_idle_armed(const struct faas_instance *in)
{
    const struct faas_function *f = in->fn;
    bool stops = in->state == INST_READY && !f->retired && f->n_instances > (size_t)f->min;
    return in->t_slim.slot && (!stops || in->t_idle.slot) && (f->freeze <= 0 || in->t_freeze.slot);
}

/* Idle for a second: the peak's fd goes (calls in a row keep it, and pay no open each). */
static void
slim_now(struct faas_server *s, struct faas_timer *t)
{
    struct faas_instance *in = container_of(t, struct faas_instance, t_slim);
    if (used_since(s, in, t, NS_PER_SEC))
        return;
    if (in->peak_fd >= 0)
        close(in->peak_fd);
    in->peak_fd = -1;
}

/* Freezing (--freeze): asked of the kernel, never waited for; a call thaws it first. The cgroup
 * is parked again after each write. */
static int
set_frozen(struct faas_instance *in, bool frozen)
{
    struct husk_error *err = NULL;
    if (in->cg == NULL || sbx_cgroup_unpark(in->cg, NULL) < 0)
        return -1;
    int r = sbx_cgroup_freeze_request(in->cg, frozen, &err);
    sbx_cgroup_park(in->cg);
    if (r < 0 && frozen) { /* said once: the function's instances stay thawed */
        cleanup_free char *msg = husk_error_string(err);
        char line[512];
        int n = snprintf(line, sizeof(line), "--freeze: not frozen: %s", msg ? msg : "");
        faas_log_line(in->s, in->fn->name, in->id, "-", "husk", line,
                      n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
        in->fn->freeze = 0;
    }
    husk_error_free(err);
    if (r == 0 && in->frozen != frozen) {
        in->frozen = frozen;
        if (frozen)
            in->fn->n_frozen++;
        else
            in->fn->n_frozen--;
    }
    return r;
}

static void
freeze_now(struct faas_server *s, struct faas_timer *t)
{
    struct faas_instance *in = container_of(t, struct faas_instance, t_freeze);
    if (in->state == INST_READY && !used_since(s, in, t, (uint64_t)in->fn->freeze * NS_PER_SEC))
        set_frozen(in, true);
}

static void
arm_freeze(struct faas_server *s, struct faas_instance *in)
{
    if (in->fn->freeze > 0) {
        in->t_freeze.fn = freeze_now;
        faas_timer_set(s, &in->t_freeze, now_ns() + (uint64_t)in->fn->freeze * NS_PER_SEC);
    }
}

static void
thaw(struct faas_server *s, struct faas_instance *in)
{
    uint64_t t0 = now_ns();
    if (in->frozen && set_frozen(in, false) == 0)
        faas_metrics_thaw(s, in->fn->name, (double)(now_ns() - t0) / NS_PER_SEC);
}

void
faas_instance_busy(struct faas_server *s, struct faas_instance *in, bool busy)
{
    if (!busy) {
        in->t_slim.fn = slim_now;
        faas_timer_set(s, &in->t_slim, now_ns() + NS_PER_SEC);
        arm_freeze(s, in);
        return;
    }
    faas_timer_cancel(s, &in->t_slim);
    faas_timer_cancel(s, &in->t_freeze);
    thaw(s, in);
    faas_instance_peak_open(in);
}

void
faas_instance_peak_open(struct faas_instance *in)
{
    if (in->peak_fd < 0 && in->cg) {
        in->peak_fd = sbx_cgroup_memory_peak_fd(in->cg);
        if (in->peak_fd < 0)
            in->peak_fd = -1;
    }
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
        if (in->in_flight == 1 && in->calls) /* one call in flight: the line is its */
            faas_log_call(in->calls, "log", start, n);
        else if (in->in_flight == 1 && in->lent_rid[0]) /* a front loop's, alone */
            faas_log_line(in->s, in->fn->name, in->id, in->lent_rid, "log", start, n);
        else
            faas_log_line(in->s, in->fn->name, in->id, "-", "log", start, n);
        b->off += n + (nl != NULL);
    }
    if (faas_buf_pending(b) > 16384) /* a line without end: cut it */
        log_lines(in, true);
}

static void
close_log(struct faas_server *s, struct faas_instance *in)
{
    if (in->log_fd < 0)
        return;
    faas_timer_cancel(s, &in->t_log);
    log_lines(in, true);
    faas_watch_del(s, in->log_fd);
    close(in->log_fd);
    in->log_fd = -1;
}

static void
log_rearm(struct faas_server *s, struct faas_timer *t)
{
    struct faas_instance *in = container_of(t, struct faas_instance, t_log);
    if (in->log_fd >= 0)
        faas_watch_mod(s, in->log_fd, EPOLLIN, &in->w_log);
}

/* A published instance's server may log a line per request the daemon never sees: waking for
 * each would cost the daemon about as much as proxying it. Its log is read at most every
 * LOG_BATCH_NS, as much as is there (its pipe holds LOG_PIPE_SIZE meanwhile). */
static void
on_log(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_log);
    char buf[16384];
    bool batch = in->fn->pub != NULL;
    for (int i = 0; i < (batch ? LOG_PIPE_SIZE / (int)sizeof(buf) : 1); i++) {
        ssize_t n = read(in->log_fd, buf, sizeof(buf));
        if (n > 0) {
            faas_buf_add(&in->log, buf, (size_t)n);
            log_lines(in, false);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close_log(s, in);
            return;
        }
        break;
    }
    if (batch && faas_watch_mod(s, in->log_fd, 0, &in->w_log) == 0) {
        in->t_log.fn = log_rearm;
        faas_timer_set(s, &in->t_log, now_ns() + LOG_BATCH_NS);
    }
}

char *
faas_instance_end_reason(struct faas_server *s, struct faas_instance *in, int status)
{
    if (faas_instance_oom_check(s, in))
        return xasprintf("it ran out of memory (limit %lld bytes)", (long long)in->fn->memory);
    return status < 0
               ? xasprintf("its program could not be run: %s", strerror(-status))
               : xasprintf("its program exited with status %d", sbx_status_to_exit_code(status));
}

void
faas_instance_end(struct faas_server *s, struct faas_instance *in, const char *why)
{
    faas_server_log(s, "info", "instance %s ended: %s", in->id, why);
    if (in->is_template) {
        faas_fork_template_ended(s, in, why);
        return;
    }
    in->program_exited = true;
    for (struct faas_call *c = in->calls, *next; c; c = next) {
        next = c->next;
        c->runtime_exited = true;
        faas_call_abort(c, 502, why);
    }
    faas_pool_instance_gone(s, in, why);
}

/* The instance's program (the agent, or an http instance's server) ended: so does it. */
static void
instance_ended(struct faas_server *s, struct faas_instance *in, int status)
{
    cleanup_free char *why = faas_instance_end_reason(s, in, status);
    faas_instance_end(s, in, why);
}

/* ---- stopping */

static void
release(struct faas_server *s, struct faas_instance *in)
{
    if (in->cg) {
        sbx_cgroup_free(in->cg);
        cleanup_free char *record = xasprintf("%s/%s", s->instance_dir, in->id);
        unlink(record);
    }
    faas_egress_release(s, in);
    for (struct faas_instance **p = in->tmpl ? &in->tmpl->forks : NULL; p && *p;
         p = &(*p)->fork_next)
        if (*p == in) {
            *p = in->fork_next;
            break;
        }
    for (struct faas_instance *k = in->is_template ? in->forks : NULL; k; k = k->fork_next)
        k->tmpl = NULL; /* what is left of them needs it no more */
    if (in->is_template && in->fn->tmpl == in)
        in->fn->tmpl = NULL;
    in->fn->n_tmpl -= in->is_template;
    sbx_child_free(in->child);
    faas_buf_free(&in->log);
    husk_error_free(in->spawn_err);
    in->w_pid.dead = in->w_log.dead = in->w_ctl.dead = in->w_probe.dead = true;
    in->w_api.dead = in->w_notify.dead = true;
    struct faas_function *f = in->fn;
    f->n_dying--;
    s->n_instances--;
    /* Not while its idle check is out or a front loop's call or message holds it
     * (faas_instance_released, when the last of them is back). */
    if (in->pub_checking || in->lent)
        in->bury_later = true;
    else
        faas_server_bury(s, in);
    faas_pool_maybe_free(s, f);
}

/* Its processes are gone; the cgroup goes once the kernel agrees it is empty. */
static void
try_remove(struct faas_server *s, struct faas_timer *t)
{
    struct faas_instance *in = container_of(t, struct faas_instance, t_remove);
    struct husk_error *err = NULL;
    int r = in->cg ? sbx_cgroup_try_remove(in->cg, &err) : 0;
    if (r == -EBUSY && ++in->remove_tries < REMOVE_TRIES) {
        faas_timer_set(s, &in->t_remove, now_ns() + (REMOVE_FIRST_NS << in->remove_tries));
        return;
    }
    if (r < 0) {
        cleanup_free char *msg = err ? husk_error_string(err) : xstrdup("the cgroup stays busy");
        faas_server_log(s, "warning", "instance %s: %s (left for the next start to remove)", in->id,
                        msg);
        husk_error_free(err);
        sbx_cgroup_free(in->cg); /* its record stays: the next start removes it */
        in->cg = NULL;
    }
    release(s, in);
}

/* The agent (pid 1) is gone, and with it its pid namespace (a fork: its process): reap it,
 * then the cgroup. */
void
faas_instance_reaped(struct faas_server *s, struct faas_instance *in)
{
    faas_timer_cancel(s, &in->t_reap);
    if (in->run_pidfd >= 0) {
        faas_watch_del(s, in->run_pidfd);
        close(in->run_pidfd);
        in->run_pidfd = -1;
    }
    if (in->ctl_fd >= 0) { /* kept to hear the end of an instance without a pidfd */
        faas_watch_del(s, in->ctl_fd);
        close(in->ctl_fd);
        in->ctl_fd = -1;
    }
    if (in->child && in->child->pidfd >= 0) {
        siginfo_t si;
        faas_watch_del(s, in->child->pidfd);
        waitid(P_PIDFD, (id_t)in->child->pidfd, &si, WEXITED | WNOHANG);
        close(in->child->pidfd);
        in->child->pidfd = -1;
    }
    in->t_remove.fn = try_remove;
    if (in->cg && sbx_cgroup_unpark(in->cg, NULL) < 0) { /* its directories went already */
        sbx_cgroup_free(in->cg);
        in->cg = NULL;
    }
    try_remove(s, &in->t_remove);
}

static int
wait_status(const siginfo_t *si)
{
    return si->si_code == CLD_EXITED ? W_EXITCODE(si->si_status, 0) : si->si_status & 0x7f;
}

static void
on_exit_(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_pid);
    if (in->state == INST_DYING) {
        faas_instance_reaped(s, in);
        return;
    }
    siginfo_t si = {0};
    waitid(P_PIDFD, (id_t)in->child->pidfd, &si, WEXITED | WNOHANG | __WALL);
    instance_ended(s, in, wait_status(&si));
}

static void agent_gone(struct faas_server *s, struct faas_instance *in);

static void
reap_again(struct faas_server *s, struct faas_timer *t)
{
    agent_gone(s, container_of(t, struct faas_instance, t_reap));
}

/* An instance without a pidfd: its agent's control socket closed. The agent is our child and
 * not reaped, so its pid is still its own; it may take a moment to become a zombie. */
static void
agent_gone(struct faas_server *s, struct faas_instance *in)
{
    siginfo_t si = {0};
    int r = waitid(P_PID, (id_t)in->child->pid, &si, WEXITED | WNOHANG | __WALL);
    if (r == 0 && si.si_pid == 0) { /* not yet: again in 1, 2, 4 ... ms */
        in->reap_delay = in->reap_delay ? in->reap_delay * 2 : NS_PER_SEC / 1000;
        in->t_reap.fn = reap_again;
        faas_timer_set(s, &in->t_reap, now_ns() + in->reap_delay);
        return;
    }
    in->agent_reaped = true;
    if (in->state == INST_DYING)
        faas_instance_reaped(s, in);
    else
        instance_ended(s, in, r == 0 ? wait_status(&si) : 0);
}

static void
unlink_instance(struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    for (struct faas_instance **p = &f->instances; *p; p = &(*p)->next)
        if (*p == in) {
            *p = in->next;
            f->n_instances--;
            if (in->state == INST_STARTING || in->state == INST_SPAWNING)
                f->n_starting--;
            break;
        }
}

void
faas_instance_destroy(struct faas_server *s, struct faas_instance *in)
{
    if (in->state == INST_DYING)
        return;
    if (in->state == INST_SPAWNING) { /* ended when the spawn returns */
        in->doomed = true;
        return;
    }
    unlink_instance(in);
    in->state = INST_DYING;
    in->fn->n_dying++;
    faas_publish_instance_gone(s, in);
    for (struct faas_call *c = in->calls, *next; c; c = next) {
        next = c->next;
        faas_call_abort(c, 502, "the function's instance was stopped");
    }
    faas_http_drop_idle(s, in);
    struct faas_timer *timers[] = {&in->t_init, &in->t_idle, &in->t_probe, &in->t_slim,
                                   &in->t_freeze};
    for (size_t i = 0; i < ARRAY_SIZE(timers); i++)
        faas_timer_cancel(s, timers[i]);
    if (in->frozen) /* the v1 freezer holds even SIGKILL */
        set_frozen(in, false);
    faas_conn_close_from(s, in);
    bool by_pid = in->child && in->child->pidfd < 0 && !in->agent_reaped;
    int fds[] = {by_pid ? -1 : in->ctl_fd, in->probe_fd, in->netns_fd, in->peak_fd, in->api_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0) {
            faas_watch_del(s, fds[i]);
            close(fds[i]);
        }
    if (!by_pid)
        in->ctl_fd = -1;
    in->probe_fd = in->netns_fd = in->peak_fd = in->api_fd = -1;
    close_log(s, in);
    if (in->is_fork) { /* its own cgroup is all of it */
        faas_fork_kill(s, in);
        return;
    }
    /* pid 1 of its namespace: the kernel kills everything else in it too. */
    if (in->child && in->child->pidfd >= 0 &&
        syscall(SYS_pidfd_send_signal, in->child->pidfd, SIGKILL, NULL, 0) == 0)
        return; /* on_exit_ hears when it is gone */
    if (by_pid && kill(in->child->pid, SIGKILL) == 0)
        return; /* our unreaped child: its pid is its own; its control socket closing says when */
    faas_instance_reaped(s, in);
}

/* ---- readiness */

void
faas_instance_ready(struct faas_server *s, struct faas_instance *in)
{
    faas_timer_cancel(s, &in->t_init);
    faas_timer_cancel(s, &in->t_probe);
    in->state = INST_READY;
    in->init_ns = now_ns() - in->spawned_ns;
    in->fn->n_starting--;
    faas_metrics_cold_start(s, in->fn->name, in->init_ns / 1e9);
    faas_instance_idle_check(s, in);
    arm_freeze(s, in); /* a call it takes now disarms it */
    faas_pool_ready(s, in);
}

static void probe_now(struct faas_server *s, struct faas_timer *t);

static void
on_probe(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_probe);
    int e = 0;
    /* An event fetched in the batch that ended the instance: its probe is closed, and an
     * instance stopping must not be made ready again (it would be stopped twice). */
    if (in->probe_fd < 0 || in->state != INST_STARTING)
        return;
    socklen_t l = sizeof(e);
    getsockopt(in->probe_fd, SOL_SOCKET, SO_ERROR, &e, &l);
    faas_watch_del(s, in->probe_fd);
    close(in->probe_fd);
    in->probe_fd = -1;
    if (e) { /* not listening yet: again after a backoff */
        faas_timer_set(s, &in->t_probe, now_ns() + in->probe_delay);
        in->probe_delay = in->probe_delay * 2 < PROBE_MAX_NS ? in->probe_delay * 2 : PROBE_MAX_NS;
        return;
    }
    faas_instance_ready(s, in);
}

/* A non-blocking connect to $PORT in the instance's network; its result is an event. */
static void
probe_now(struct faas_server *s, struct faas_timer *t)
{
    struct faas_instance *in = container_of(t, struct faas_instance, t_probe);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)in->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->probe_fd = faas_instance_socket(s, in);
    if (in->probe_fd < 0) {
        in->probe_fd = -1;
        faas_timer_set(s, &in->t_probe, now_ns() + PROBE_MAX_NS);
        return;
    }
    if (connect(in->probe_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS)
        faas_watch_add(s, in->probe_fd, EPOLLOUT, &in->w_probe);
    else
        on_probe(s, &in->w_probe, 0);
}

void
faas_instance_probe_start(struct faas_server *s, struct faas_instance *in)
{
    if (faas_publish_await(s, in)) /* its server listens on the published socket */
        return;
    in->probe_delay = PROBE_FIRST_NS;
    probe_now(s, &in->t_probe);
}

static void
init_expired(struct faas_server *s, struct faas_timer *t)
{
    struct faas_instance *in = container_of(t, struct faas_instance, t_init);
    cleanup_free char *what = in->fn->contract->not_ready ? in->fn->contract->not_ready(in->fn)
                                                          : xstrdup("it was not ready");
    cleanup_free char *why =
        xasprintf("%s within %lld seconds", what, (long long)in->fn->init_timeout);
    faas_server_log(s, "error", "instance %s: %s", in->id, why);
    faas_pool_instance_gone(s, in, why);
}

static void
idle_expired(struct faas_server *s, struct faas_timer *t)
{
    struct faas_instance *in = container_of(t, struct faas_instance, t_idle);
    if (used_since(s, in, t, (uint64_t)in->fn->idle * NS_PER_SEC))
        return;
    if (in->pub_checking || faas_publish_idle_check(s, in)) /* decided off the loop */
        return;
    faas_server_log(s, "debug", "instance %s idle: stopped", in->id);
    faas_instance_destroy(s, in);
}

bool
faas_instance_released(struct faas_server *s, struct faas_instance *in)
{
    if (!in->bury_later)
        return false;
    if (!in->pub_checking && in->lent == 0)
        faas_server_bury(s, in);
    return true;
}

void
faas_instance_idle_decided(struct faas_server *s, struct faas_instance *in, bool keep)
{
    struct faas_function *f = in->fn;
    if (in->state != INST_READY) /* stopping already */
        return;
    if (keep || in->in_flight || f->n_instances <= (size_t)f->min) { /* as it is now */
        faas_instance_idle_check(s, in);
        return;
    }
    faas_server_log(s, "debug", "instance %s idle: stopped", in->id);
    faas_instance_destroy(s, in);
}

void
faas_instance_idle_check(struct faas_server *s, struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    if (in->state == INST_READY && in->in_flight == 0 && !f->retired &&
        f->n_instances > (size_t)f->min)
        faas_timer_set(s, &in->t_idle, now_ns() + (uint64_t)f->idle * NS_PER_SEC);
    else
        faas_timer_cancel(s, &in->t_idle);
}

/* ---- the agent's reports */

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
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
        faas_watch_del(s, in->ctl_fd); /* the agent is gone: its pidfd tells the rest */
        if (in->child && in->child->pidfd < 0 && !in->agent_reaped)
            agent_gone(s, in);
    }
}

/* A run with 3 fds (stdin, stdout, stderr), or 4: a listening socket the program gets as fd 3
 * (LISTEN_FDS). hold: seconds the agent keeps the run going once the daemon is gone. */
static int
send_run(struct faas_instance *in, uint32_t id, const struct faas_buf *env, const int *fds,
         size_t n_fds, int32_t hold, struct husk_error **err)
{
    struct agent_msg m = {.kind = AGENT_RUN, .id = id, .status = hold, .len = (uint32_t)env->len};
    if (env->len > AGENT_MSG_MAX)
        return husk_err(err, E2BIG, "the request's headers are too large for the environment");
    if (agent_send_run(in->ctl_fd, &m, env->p, fds, n_fds) < 0)
        return husk_err(err, errno, "hand the run to instance %s", in->id);
    return 0;
}

int
faas_instance_send_run(struct faas_instance *in, uint32_t id, const struct faas_buf *env,
                       const int fds[3], struct husk_error **err)
{
    return send_run(in, id, env, fds, 3, 0, err);
}

int
faas_instance_connect(struct faas_server *s, struct faas_instance *in, int *fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(struct sockaddr_in);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    bool published = faas_publish_dial(in->fn, &ss, &sl);
    if (!published)
        *sin = (struct sockaddr_in){.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)in->port),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* The published socket is in the daemon's own network; $PORT in the instance's. */
    *fd = published ? socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
                    : faas_instance_socket(s, in);
    if (*fd < 0)
        return published ? -errno : *fd;
    if (connect(*fd, (struct sockaddr *)&ss, sl) == 0)
        return 0;
    int e = errno;
    if (e == EINPROGRESS)
        return 1;
    close(*fd);
    *fd = -1;
    return -e;
}

/* ---- making one: on a work thread, touching only the instance and the (read-only) plan */

int
faas_instance_make_cgroup(struct faas_server *s, struct faas_function *f, struct faas_instance *in,
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
    int r = sbx_cgroup_create(&o, path, &l, &in->cg, err);
    if (r < 0) {
        unlink(record);
        return husk_err_prefix(err, "create the instance's cgroup: ");
    }
    in->oom_kills = sbx_cgroup_oom_kills(in->cg);
    return 0;
}

/* The agent's stdio: its control socket, then the instance's log for its server's output. An
 * agent that only forks programs (stdio, CGI: each run has pipes of its own) writes nothing
 * there: /dev/null, and one fd less for the daemon. */
static int
wire(struct faas_instance *in, int stdio[3], struct husk_error **err)
{
    int logp[2], ctl[2];
    if (!in->fn->contract->server) {
        logp[0] = -1;
        logp[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
    } else if (pipe2(logp, O_CLOEXEC) < 0) {
        logp[1] = -1;
    }
    if (logp[1] < 0)
        return husk_err(err, errno, "create the instance's log pipe");
    in->log_fd = logp[0];
    if (in->log_fd >= 0)
        fcntl(in->log_fd, F_SETFL, O_NONBLOCK);
    if (in->log_fd >= 0 && in->fn->pub)
        fcntl(in->log_fd, F_SETPIPE_SZ, LOG_PIPE_SIZE); /* best effort: it is read in batches */
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

/* A clone of the version's image mount, made by the first spawn (spawns run on several work
 * threads: under the version's lock); -1 where each instance mounts its own (a writable root
 * would share its upper layer). */
static int
image_tree(struct faas_function *f, struct husk_error **err)
{
    if (!f->root_is_image || !f->cfg->sbx->rootfs_readonly)
        return -1;
    int r = 0;
    pthread_mutex_lock(&f->image_lock);
    if (f->image_mnt < 0 && (r = sbx_rootfs_image_mount(f->cfg->sbx, err)) >= 0)
        f->image_mnt = r;
    int fd =
        r < 0 ? -1
              : sys_open_tree(f->image_mnt, "",
                              OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    pthread_mutex_unlock(&f->image_lock);
    if (r < 0)
        return r;
    return fd < 0 ? husk_err(err, errno, "clone the mount of image '%s'", f->root_path) : fd;
}

static int
spawn_wired(struct faas_server *s, struct faas_function *f, struct faas_instance *in,
            const int stdio[3], struct husk_error **err)
{
    struct sbx_spawn_opts so = sbx_spawn_opts_init();
    so.cgroup = in->cg; /* born in it; v1 through this thread's own `tasks` */
    so.exec_fd = s->agent_fd;
    so.rootfs_fd = f->root_is_image ? -1 : f->root_fd;
    cleanup_fd int tree = image_tree(f, err);
    if (tree < -1)
        return tree;
    so.rootfs_image_fd = tree;
    so.stdio = stdio;
    so.notify_filter = faas_publish_filter(s, f);
    return sbx_spawn(f->cfg->sbx, &so, &in->child, err);
}

/* An http instance's server is the agent's one long run: stdin /dev/null, output to the log.
 * The agent as pid 1 ends the whole sandbox when the daemon goes (its socket closes). */
static int
start_server(struct faas_instance *in, int log_w, struct husk_error **err)
{
    struct faas_buf env = {0};
    for (char **e = in->fn->cfg->sbx->process.env; e && *e; e++)
        faas_buf_add(&env, *e, strlen(*e) + 1);
    cleanup_fd int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int fds[4] = {null, log_w, log_w, faas_publish_listen_fd(in->fn)};
    /* A published function's connections do not go through the daemon: its instances serve
     * on if it dies, for at most the function's timeout (until a restart removes them). */
    int32_t hold = in->fn->pub ? (int32_t)in->fn->timeout : 0;
    int r = null < 0 ? husk_err(err, errno, "open /dev/null")
                     : send_run(in, in->server_run, &env, fds, fds[3] >= 0 ? 4 : 3, hold, err);
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
        r = faas_instance_make_cgroup(s, f, in, err);
    if (r == 0)
        r = faas_egress_attach(s, in, err);
    if (r == 0)
        r = wire(in, stdio, err);
    if (r == 0)
        r = spawn_wired(s, f, in, stdio, err);
    if (stdio[0] >= 0)
        close(stdio[0]);
    cleanup_fd int log_w = stdio[1];
    if (r < 0)
        return r;
    cleanup_free char *ns = xasprintf("/proc/%d/ns/net", in->child->pid);
    in->netns_fd = open(ns, O_RDONLY | O_CLOEXEC);
    if (in->netns_fd < 0)
        return husk_err(err, errno, "open the instance's network namespace");
    if (f->egress_on && (r = faas_egress_connect(s, in, err)) < 0) /* lo too */
        return r;
    if (!f->egress_on && (r = loopback_up(s, in)) < 0)
        return husk_err(err, -r, "bring up the instance's loopback");
    if (f->contract->prepare && (r = f->contract->prepare(in, err)) < 0)
        return r;
    if ((r = sbx_child_start(in->child, f->cfg->sbx, err)) < 0)
        return r;
    if (in->server_run && (r = start_server(in, log_w, err)) < 0)
        return r;
    slim(in);
    return 0;
}

static void
spawn_run(struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    in->spawn_r = instance_run(in->s, in->fn, in, &in->spawn_err);
}

/* Back on the loop: watch it, or undo what the spawn made. */
static void
spawn_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    in->fn->n_spawning--;
    in->state = INST_STARTING;
    if (in->spawn_r == 0) {
        if (!in->fn->contract->server && !in->is_template) { /* its socket says it is gone */
            close(in->child->pidfd);
            in->child->pidfd = -1;
        }
        if ((in->child->pidfd >= 0 &&
             faas_watch_add(s, in->child->pidfd, EPOLLIN, &in->w_pid) < 0) ||
            (in->log_fd >= 0 && faas_watch_add(s, in->log_fd, EPOLLIN, &in->w_log) < 0) ||
            faas_watch_add(s, in->ctl_fd, EPOLLIN, &in->w_ctl) < 0)
            in->spawn_r = husk_err(&in->spawn_err, errno, "watch the instance");
        else
            faas_server_log(s, "debug", "instance %s spawned (pid %d)", in->id, in->child->pid);
        faas_publish_spawned(s, in);
    }
    if (in->is_template) {
        faas_fork_template_spawned(s, in);
        return;
    }
    if (in->doomed) {
        faas_instance_destroy(s, in);
        return;
    }
    faas_pool_spawned(s, in);
}

/* A new instance of f, spawning: not in the pool yet, its sandbox not asked for. */
struct faas_instance *
faas_instance_new(struct faas_server *s, struct faas_function *f)
{
    struct faas_instance *in = xcalloc(1, sizeof(*in));
    in->s = s;
    in->serial = ++s->next_serial;
    in->fn = f;
    in->ctl_fd = in->log_fd = in->netns_fd = in->probe_fd = in->peak_fd = -1;
    in->api_fd = in->notify_fd = in->gate_fd = in->run_pidfd = in->hand[0] = in->hand[1] = -1;
    in->port = f->port;
    in->spawned_ns = now_ns();
    in->state = INST_SPAWNING;
    in->t_init.fn = init_expired;
    in->t_idle.fn = idle_expired;
    in->t_probe.fn = probe_now;
    in->w_pid.fn = on_exit_;
    in->w_log.fn = on_log;
    in->w_probe.fn = on_probe;
    in->w_ctl.fn = on_ctl;
    in->work.run = spawn_run;
    in->work.done = spawn_done;
    if (f->contract->server)
        in->server_run = ++s->next_agent_id;
    f->n_spawning++;
    s->n_instances++;
    return in;
}

void
faas_instance_spawn(struct faas_server *s, struct faas_function *f)
{
    struct faas_instance *in = faas_instance_new(s, f);
    snprintf(in->id, sizeof(in->id), "%s-v%lld-%zu", f->name, (long long)f->version,
             ++f->next_instance);
    in->next = f->instances;
    f->instances = in;
    f->n_instances++;
    f->n_starting++;
    faas_publish_starting(s, f);
    if (f->fork_instances)
        faas_fork_spawn(s, in);
    else
        faas_workq_submit(s->spawns, &in->work); /* --parallel-starts at once */
}

int
faas_instance_watch_log(struct faas_server *s, struct faas_instance *in)
{
    return in->log_fd < 0 ? 0 : faas_watch_add(s, in->log_fd, EPOLLIN, &in->w_log);
}
