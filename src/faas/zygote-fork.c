/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Functions from a zygote ("zygote": true). The version keeps one template sandbox, made as an
 * instance's is (its namespaces, cgroup, seccomp filter, landlock rules, read-only root), whose
 * agent holds the function's interpreter with its code loaded (the zygote: agent/zygote.c);
 * the template is in no pool and serves no call. Each instance is a fork of that zygote with
 * its own cgroup (the function's limits, its own accounting and OOM kills) and random state:
 * an http instance's fork runs the server on its own $PORT with its own log; a stdio or CGI
 * instance's becomes a zygote of its own, which forks the instance's calls, speaking the
 * agent's protocol with the daemon on a socket of its own. The version's instances share the
 * template's namespaces (network, pid, mounts), as threads of one function would.
 *
 * An instance's way there, none of it blocking the loop: its cgroup and pipes (or socket) are
 * made on a work thread; the template's agent is asked for a fork (AGENT_FORK); the agent
 * answers with the fork's pidfd; a work thread moves that process into the instance's cgroup;
 * only then does the fork run anything of the function's: a server's gate (its stdin) gets a
 * byte; a zygote's first message is the daemon's first call, and it forks nothing before.
 * A stopping instance's cgroup is killed (off the loop: a v1 freezer waits) and its pidfd says
 * when it is gone. The template goes with its version; should it end first, its instances end
 * with it and the pool starts new ones from a new template.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent-proto.h"
#include "faas-internal.h"
#include "util.h"

#define PORTS_MAX 4096 /* the version's instances at once: each its own port from $PORT up */

static void
close_hand(struct faas_instance *in)
{
    for (int i = 0; i < 2; i++)
        if (in->hand[i] >= 0) {
            close(in->hand[i]);
            in->hand[i] = -1;
        }
}

static bool
tmpl_gone(const struct faas_instance *in)
{
    return in->tmpl == NULL || in->tmpl->state == INST_DYING;
}

/* Its process (the server, or the instance's zygote) ended: the instance does, at once (the
 * agent's report of its status comes through the template's zygote, later; a call must not go
 * to it meanwhile). */
static void
run_exited(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_pid);
    faas_watch_del(s, in->run_pidfd);
    bool oom = faas_instance_oom_check(s, in);
    cleanup_free char *why =
        oom ? xasprintf("it ran out of memory (limit %lld bytes)", (long long)in->fn->memory)
            : xstrdup(in->fn->contract->server ? "its server exited" : "its zygote exited");
    faas_instance_end(s, in, why);
}

/* The fork's "spawn" returned: watched and handed to the pool, or failed (spawn_r). */
static void
fork_done(struct faas_server *s, struct faas_instance *in)
{
    in->fn->n_spawning--;
    in->state = INST_STARTING;
    close_hand(in);
    if (in->spawn_r == 0) {
        in->phase = FORK_RUNNING;
        in->w_pid.fn = run_exited;
        if (faas_instance_watch_log(s, in) < 0 ||
            faas_watch_add(s, in->run_pidfd, EPOLLIN, &in->w_pid) < 0 ||
            (in->ctl_fd >= 0 && faas_watch_add(s, in->ctl_fd, EPOLLIN, &in->w_ctl) < 0))
            in->spawn_r = husk_err(&in->spawn_err, errno, "watch the instance");
        else
            faas_server_log(s, "debug", "instance %s forked from %s", in->id, in->tmpl->id);
    }
    if (in->doomed) {
        faas_instance_destroy(s, in);
        return;
    }
    faas_pool_spawned(s, in);
}

static void
fork_fail(struct faas_server *s, struct faas_instance *in, int r)
{
    in->spawn_r = r;
    fork_done(s, in);
}

/* ---- the template */

void
faas_fork_template(struct faas_server *s, struct faas_function *f)
{
    if (f->tmpl || f->retired || s->stopping)
        return;
    struct faas_instance *t = faas_instance_new(s, f);
    snprintf(t->id, sizeof(t->id), "%s-v%lld-zygote%zu", f->name, (long long)f->version,
             ++f->next_instance);
    t->is_template = true;
    t->server_run = 0; /* its agent starts the zygote; the runs are the instances */
    t->w_ctl.fn = faas_fork_on_ctl;
    f->tmpl = t;
    f->n_tmpl++;
    faas_workq_submit(s->spawns, &t->work);
}

static void send_fork(struct faas_server *s, struct faas_instance *in);

void
faas_fork_template_spawned(struct faas_server *s, struct faas_instance *t)
{
    struct faas_function *f = t->fn;
    bool ok = t->spawn_r == 0 && !t->doomed && !f->retired;
    cleanup_free char *why = t->spawn_r < 0 ? husk_error_string(t->spawn_err) : NULL;
    if (why)
        faas_server_log(s, "error", "function '%s': its zygote's sandbox could not start: %s",
                        f->name, why);
    if (ok)
        t->state = INST_READY;
    else if (f->tmpl == t)
        f->tmpl = NULL; /* the instances the pool starts now get another */
    for (struct faas_instance *in = t->forks, *next; in; in = next) {
        next = in->fork_next;
        if (in->phase != FORK_AWAIT_TMPL)
            continue;
        if (ok)
            send_fork(s, in);
        else
            fork_fail(s, in,
                      husk_err(&in->spawn_err, ECANCELED, "its zygote's sandbox %s: %s", t->id,
                               why ? why : "stopped"));
    }
    if (!ok)
        faas_instance_destroy(s, t);
}

void
faas_fork_template_ended(struct faas_server *s, struct faas_instance *t, const char *why)
{
    struct faas_function *f = t->fn;
    if (f->tmpl == t)
        f->tmpl = NULL;
    cleanup_free char *msg = xasprintf("its zygote's sandbox ended: %s", why);
    for (struct faas_instance *in = t->forks, *next; in; in = next) {
        next = in->fork_next;
        if (in->phase == FORK_AWAIT_TMPL || in->phase == FORK_AWAIT_STARTED)
            fork_fail(s, in, husk_err(&in->spawn_err, ECANCELED, "%s", msg));
        else if (in->phase == FORK_RUNNING && in->state != INST_DYING)
            faas_instance_end(s, in, msg);
        /* preparing or entering: their work's end sees the template gone */
    }
    faas_instance_destroy(s, t);
}

void
faas_fork_template_stop(struct faas_server *s, struct faas_function *f)
{
    struct faas_instance *t = f->tmpl;
    if (t == NULL)
        return;
    f->tmpl = NULL;
    faas_instance_destroy(s, t);
}

/* ---- an instance: its cgroup and pipes, on a work thread */

/* A server's: its log, and a gate pipe (the daemon keeps the write end). */
static int
server_pipes(struct faas_instance *in)
{
    int logp[2], gate[2];
    if (pipe2(logp, O_CLOEXEC) < 0)
        return -1;
    in->log_fd = logp[0];
    in->hand[1] = logp[1];
    fcntl(in->log_fd, F_SETFL, O_NONBLOCK);
    if (pipe2(gate, O_CLOEXEC) < 0)
        return -1;
    in->hand[0] = gate[0];
    in->gate_fd = gate[1];
    return 0;
}

/* A zygote's (stdio, CGI): its control socket, the gate too (the zygote forks nothing before
 * the daemon's first run there); its own output to /dev/null (each call has its pipes). */
static int
zygote_socket(struct faas_instance *in)
{
    int sv[2];
    if ((in->hand[1] = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    in->ctl_fd = sv[0];
    in->hand[0] = sv[1];
    return 0;
}

static void
prepare_run(struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    if (in->spawn_r < 0) /* no template to fork from */
        return;
    int r = in->port < 0 ? husk_err(&in->spawn_err, EADDRINUSE,
                                    "no free port for another instance (%d at most)", PORTS_MAX)
                         : faas_instance_make_cgroup(in->s, in->fn, in, &in->spawn_err);
    if (r == 0 && (in->fn->contract->server ? server_pipes(in) : zygote_socket(in)) < 0)
        r = husk_err(&in->spawn_err, errno, "create the instance's pipes");
    in->spawn_r = r;
}

static void
prepared(struct faas_server *s, struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    if (in->spawn_r == 0 && tmpl_gone(in))
        in->spawn_r = husk_err(&in->spawn_err, ECANCELED, "its zygote's sandbox ended");
    if (in->spawn_r < 0) {
        fork_done(s, in);
        return;
    }
    if (in->tmpl->state == INST_SPAWNING) {
        in->phase = FORK_AWAIT_TMPL; /* faas_fork_template_spawned sends it */
        return;
    }
    send_fork(s, in);
}

/* Ask the template's agent for the fork: the version's environment (a server's with the
 * instance's $PORT), stdin the gate (a zygote's: its socket), stdout and stderr the log. */
static void
send_fork(struct faas_server *s, struct faas_instance *in)
{
    struct faas_instance *t = in->tmpl;
    if (in->doomed) { /* stopped while it waited for the template */
        fork_fail(s, in, husk_err(&in->spawn_err, ECANCELED, "stopped before it started"));
        return;
    }
    bool server = in->fn->contract->server;
    struct faas_buf env = {0};
    for (char **e = in->fn->cfg->sbx->process.env; e && *e; e++)
        if (!server || !str_has_prefix(*e, "PORT="))
            faas_buf_add(&env, *e, strlen(*e) + 1);
    if (server) {
        faas_buf_addf(&env, "PORT=%lld", (long long)in->port);
        faas_buf_add(&env, "", 1);
    }
    struct agent_msg m = {.kind = AGENT_FORK,
                          .id = in->server_run,
                          .status = server ? 0 : AGENT_FORK_ZYGOTE,
                          .len = (uint32_t)env.len};
    int fds[3] = {in->hand[0], in->hand[1], in->hand[1]};
    in->phase = FORK_AWAIT_STARTED;
    if (server) /* probes and calls connect in its network */
        in->netns_fd = fcntl(t->netns_fd, F_DUPFD_CLOEXEC, 0);
    int r = server && in->netns_fd < 0
                ? husk_err(&in->spawn_err, errno, "hold the instance's network")
            : env.len > AGENT_MSG_MAX
                ? husk_err(&in->spawn_err, E2BIG, "the function's environment is too large")
            : agent_send_run(t->ctl_fd, &m, env.p, fds, 3) < 0
                ? husk_err(&in->spawn_err, errno, "ask the zygote's sandbox %s for a fork", t->id)
                : 0;
    faas_buf_free(&env);
    close_hand(in);
    if (r < 0)
        fork_fail(s, in, r);
}

/* ---- the agent's answer: the fork's pidfd; it moves into its cgroup on a work thread */

/* The pid of a pidfd's process as this process sees it (its fdinfo), or -1. */
static pid_t
pidfd_pid(int pidfd)
{
    char path[64];
    cleanup_free char *text = NULL;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
    if (read_file_at(AT_FDCWD, path, &text, NULL) < 0)
        return -1;
    const char *p = strstr(text, "\nPid:");
    long pid = p ? strtol(p + 5, NULL, 10) : -1;
    return pid > 0 ? (pid_t)pid : -1;
}

static void
enter_run(struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    pid_t pid = pidfd_pid(in->run_pidfd);
    int r = pid < 0 ? husk_err(&in->spawn_err, ESRCH, "the fork is gone")
                    : sbx_cgroup_enter(in->cg, pid, &in->spawn_err);
    /* The move goes by pid: had the fork ended and been reaped meanwhile, the number could
     * name another process by now (the kernel hands pids out in a cycle, so hardly so soon).
     * A fork still alive after the move was the one moved. */
    struct pollfd alive = {.fd = in->run_pidfd, .events = POLLIN};
    if (r == 0 && poll(&alive, 1, 0) != 0)
        r = husk_err(&in->spawn_err, ESRCH, "the fork ended while it was moved");
    if (r < 0)
        husk_err_prefix(&in->spawn_err, "move the fork into the instance's cgroup: ");
    sbx_cgroup_park(in->cg);
    in->spawn_r = r;
}

/* In its cgroup: the gate opens. A server's is a byte on its stdin; a zygote's, a first
 * message with no run in it (kind 0, which it drops): it may fork its spare from now on. */
static int
open_gate(struct faas_instance *in)
{
    struct agent_msg go = {0};
    if (in->gate_fd >= 0)
        return write(in->gate_fd, "g", 1) == 1 ? 0 : -1;
    return send(in->ctl_fd, &go, sizeof(go), MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(go) ? 0 : -1;
}

static void
entered(struct faas_server *s, struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    if (in->spawn_r == 0 && in->ended_early)
        in->spawn_r = husk_err(&in->spawn_err, ECHILD, "its server exited at once (status %d)",
                               sbx_status_to_exit_code(in->early_status));
    if (in->spawn_r == 0 && tmpl_gone(in))
        in->spawn_r = husk_err(&in->spawn_err, ECANCELED, "its zygote's sandbox ended");
    if (in->spawn_r == 0 && open_gate(in) < 0)
        in->spawn_r = husk_err(&in->spawn_err, errno, "let the fork go");
    if (in->gate_fd >= 0)
        close(in->gate_fd); /* without the byte: the fork exits */
    in->gate_fd = -1;
    fork_done(s, in);
}

static struct faas_instance *
fork_of(struct faas_instance *t, uint32_t id)
{
    for (struct faas_instance *in = t->forks; in; in = in->fork_next)
        if (in->server_run == id)
            return in;
    return NULL;
}

static void
started(struct faas_server *s, struct faas_instance *t, const struct agent_msg *m, int pidfd)
{
    struct faas_instance *in = fork_of(t, m->id);
    if (in == NULL || in->phase != FORK_AWAIT_STARTED) { /* stopped meanwhile: its gate closed */
        if (pidfd >= 0)
            close(pidfd);
        return;
    }
    if (pidfd < 0) {
        fork_fail(s, in,
                  husk_err(&in->spawn_err, m->status < 0 ? -m->status : EIO,
                           "the zygote in %s could not fork the instance", t->id));
        return;
    }
    in->run_pidfd = pidfd;
    if (in->doomed) { /* stopped meanwhile: killed without being let go */
        fork_fail(s, in, husk_err(&in->spawn_err, ECANCELED, "stopped before it started"));
        return;
    }
    in->phase = FORK_ENTERING;
    in->work.run = enter_run;
    in->work.done = entered;
    faas_workq_submit(s->spawns, &in->work);
}

static void
exited(struct faas_server *s, struct faas_instance *t, const struct agent_msg *m)
{
    struct faas_instance *in = fork_of(t, m->id);
    if (in == NULL || in->state == INST_DYING) /* a stopping one: its pidfd says when */
        return;
    if (in->phase == FORK_AWAIT_STARTED) { /* the zygote could not start it */
        cleanup_free char *why = faas_instance_end_reason(s, in, m->status);
        fork_fail(s, in, husk_err(&in->spawn_err, ECHILD, "%s", why));
    } else if (in->phase == FORK_ENTERING) {
        in->ended_early = true;
        in->early_status = m->status;
    } else if (in->phase == FORK_RUNNING) {
        cleanup_free char *why = faas_instance_end_reason(s, in, m->status);
        faas_instance_end(s, in, why);
    }
}

void
faas_fork_on_ctl(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *t = container_of(w, struct faas_instance, w_ctl);
    struct agent_msg m;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {&m, sizeof(m)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(t->ctl_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    int pidfd = -1;
    for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&pidfd, CMSG_DATA(c), sizeof(int));
    if (n == (ssize_t)sizeof(m) && m.kind == AGENT_STARTED) {
        started(s, t, &m, pidfd);
        return;
    }
    if (pidfd >= 0)
        close(pidfd);
    if (n == (ssize_t)sizeof(m) && m.kind == AGENT_EXIT)
        exited(s, t, &m);
    else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        faas_watch_del(s, t->ctl_fd); /* the agent is gone: its pidfd tells the rest */
}

/* ---- stopping one: its cgroup killed off the loop, then its pidfd says when it is gone */

static void
run_gone(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    faas_instance_reaped(s, container_of(w, struct faas_instance, w_pid));
}

static void
kill_run(struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    if (in->cg && sbx_cgroup_unpark(in->cg, NULL) == 0)
        sbx_cgroup_kill(in->cg, SIGKILL, NULL); /* what its server started too */
}

static void
killed(struct faas_server *s, struct faas_work *w)
{
    struct faas_instance *in = container_of(w, struct faas_instance, work);
    in->w_pid.fn = run_gone;
    if (faas_watch_add(s, in->run_pidfd, EPOLLIN, &in->w_pid) < 0)
        faas_instance_reaped(s, in);
}

void
faas_fork_spawn(struct faas_server *s, struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    faas_fork_template(s, f);
    struct faas_instance *t = f->tmpl;
    in->is_fork = true;
    in->phase = FORK_PREPARING;
    if (in->server_run == 0) /* the fork's id with the template's agent */
        in->server_run = ++s->next_agent_id;
    in->work.run = prepare_run;
    in->work.done = prepared;
    in->port = f->contract->server ? -1 : f->port;
    for (int64_t p = f->port; t && p < f->port + PORTS_MAX && p <= 65535 && in->port < 0; p++) {
        struct faas_instance *k = t->forks;
        while (k && k->port != p)
            k = k->fork_next;
        in->port = k ? -1 : p;
    }
    if (t) {
        in->tmpl = t;
        in->fork_next = t->forks;
        t->forks = in;
    } else {
        in->spawn_r = husk_err(&in->spawn_err, ECANCELED, "the function is being removed");
    }
    faas_workq_submit(s->spawns, &in->work); /* fails in `prepared` without a template */
}

void
faas_fork_kill(struct faas_server *s, struct faas_instance *in)
{
    if (in->gate_fd >= 0) { /* not let go yet: it exits at its gate */
        close(in->gate_fd);
        in->gate_fd = -1;
    }
    close_hand(in);
    if (in->run_pidfd < 0) {
        faas_instance_reaped(s, in);
        return;
    }
    faas_watch_del(s, in->run_pidfd); /* watched again once the rest is killed */
    syscall(SYS_pidfd_send_signal, in->run_pidfd, SIGKILL, NULL, 0);
    in->work.run = kill_run;
    in->work.done = killed;
    faas_workq_submit(s->spawns, &in->work);
}
