/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Spawn: clone3 into new namespaces with a SOCK_SEQPACKET sync pair. The child runs the setup
 * script below top to bottom; any failure travels to the parent as one {step, errno, index}
 * record and becomes an error object there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "exec-stub.h"
#include "husk/cgroup.h"
#include "idmap.h"
#include "tty.h"
#include "syscalls.h"
#include "util.h"

/* Every namespace with a path, from the pidfd at once (the pid namespace is the parent's). */
static int
child_join_pidfd(struct sbx_child_ctx *ctx)
{
    int flags = 0;
    for (int t = 0; t < SBX_NS_COUNT; t++)
        if (ctx->cfg->ns[t].enabled && ctx->cfg->ns[t].path && t != SBX_NS_PID)
            flags |= sbx_ns_clone_flag(t);
    if (flags && setns(ctx->opts->join_pidfd, flags) < 0)
        return child_fail(ctx, SBX_STEP_SETNS_PIDFD, 0, errno);
    return 0;
}

static int
child_join_namespaces(struct sbx_child_ctx *ctx)
{
    const struct sbx_config *cfg = ctx->cfg;
    int fds[SBX_NS_COUNT];
    int r = 0;

    if (ctx->opts->join_pidfd >= 0)
        return child_join_pidfd(ctx);

    /* Open every path first: once we are in the container's mount namespace, its /proc no
     * longer shows host pids. */
    for (int t = 0; t < SBX_NS_COUNT; t++) {
        fds[t] = -1;
        if (r < 0 || !cfg->ns[t].enabled || cfg->ns[t].path == NULL || t == SBX_NS_PID)
            continue;
        fds[t] = open(cfg->ns[t].path, O_RDONLY | O_CLOEXEC);
        if (fds[t] < 0)
            r = child_fail(ctx, SBX_STEP_SETNS, t, errno);
    }
    /* The user namespace first (SBX_NS_USER is 0): it decides what the other joins may do. */
    for (int t = 0; t < SBX_NS_COUNT; t++) {
        if (r == 0 && fds[t] >= 0 && setns(fds[t], sbx_ns_clone_flag(t)) < 0)
            r = child_fail(ctx, SBX_STEP_SETNS, t, errno);
        if (fds[t] >= 0)
            close(fds[t]);
    }
    return r;
}

/* Wait for the start signal: from the parent, or from whoever connects to the start socket. */
static int
child_wait_start(struct sbx_child_ctx *ctx, int min_fd)
{
    struct sbx_msg m;

    if (ctx->opts->start_listen_fd < 0) {
        int r = sbx_msg_recv(ctx->sync_fd, &m);
        return r < 0 ? child_fail(ctx, SBX_STEP_SYNC, 1, r) : ctx->sync_fd;
    }
    for (;;) {
        int c = accept4(ctx->opts->start_listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return child_fail(ctx, SBX_STEP_START_ACCEPT, 0, errno);
        }
        /* Keep the report fd clear of the range handed to the process. */
        int conn = fcntl(c, F_DUPFD_CLOEXEC, min_fd);
        close(c);
        if (conn < 0)
            return child_fail(ctx, SBX_STEP_START_ACCEPT, 1, errno);
        if (sbx_msg_recv(conn, &m) == 0 && m.kind == SBX_MSG_GO)
            return conn;
        close(conn); /* not a start request: keep waiting */
    }
}

/*
 * Close every fd the runtime had open (state dirs, cgroup dirs, pidfds): none may be reachable
 * from the container, not even through /proc/self/fd during our own setup or PATH lookup
 * (CVE-2024-21626). Kept: stdio, the preserved fds, and our own sockets.
 */
static int
close_inherited_fds(struct sbx_child_ctx *ctx, int min_fd)
{
    enum { N_KEEP = 8 };
    int keep[N_KEEP] = {ctx->sync_fd,
                        ctx->opts->start_listen_fd,
                        ctx->opts->console_fd,
                        ctx->root_tree_fd,
                        ctx->opts->seccomp_listener_fd,
                        ctx->opts->exec_fd,
                        ctx->opts->join_pidfd,
                        ctx->stub_fd};
    unsigned next = (unsigned)min_fd;

    for (int i = 0; i < N_KEEP; i++) /* sort them */
        for (int j = i + 1; j < N_KEEP; j++)
            if (keep[j] < keep[i]) {
                int t = keep[i];
                keep[i] = keep[j];
                keep[j] = t;
            }
    for (int i = 0; i < N_KEEP; i++) {
        if (keep[i] < 0 || (unsigned)keep[i] < next)
            continue;
        if ((unsigned)keep[i] > next && sys_close_range(next, (unsigned)keep[i] - 1, 0) < 0)
            return -errno;
        next = (unsigned)keep[i] + 1;
    }
    return sys_close_range(next, ~0U, 0) < 0 ? -errno : 0;
}

/* Our cgroup paths, while /proc/self/cgroup still shows them: a user namespace binds the
 * container's own cgroup directories for a "cgroup" mount (rootfs.c). */
static void
read_self_cgroup(struct sbx_child_ctx *ctx)
{
    bool wanted = false;
    for (size_t i = 0; i < ctx->cfg->n_mounts; i++)
        wanted |= ctx->cfg->mounts[i].type && strcmp(ctx->cfg->mounts[i].type, "cgroup") == 0;
    if (!wanted)
        return;
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, ctx->self_cgroup, sizeof(ctx->self_cgroup) - 1);
    ctx->self_cgroup[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
}

/* The caller's three fds onto 0, 1, 2: first out of the way (one of them may be 0-2). */
static int
set_stdio(const int fds[3])
{
    int high[3];
    for (int i = 0; i < 3; i++)
        if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
            return -1;
    for (int i = 0; i < 3; i++)
        if (dup2(high[i], i) < 0)
            return -1;
    for (int i = 0; i < 3; i++)
        close(high[i]);
    return 0;
}

_Noreturn void
sbx_child_main(struct sbx_child_ctx *ctx)
{
    const struct sbx_config *cfg = ctx->cfg;
    struct sbx_msg m;
    char exe[4096];
    int report = ctx->sync_fd;
    int min_fd = 3 + (ctx->opts->preserve_fds > 0 ? ctx->opts->preserve_fds : 0);

    umask(0);
    if (sbx_msg_recv(ctx->sync_fd, &m) < 0 || m.kind != SBX_MSG_GO)
        _exit(1); /* the parent went away or gave up on us */
    /* Not dumpable from here on, while we enter the container holding host resources: nothing
     * in it may ptrace us or open our /proc/PID/exe (CVE-2019-5736). Not before GO: an
     * unprivileged parent writes our id maps, which needs us dumpable. execve resets it. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    ctx->host_pid = m.index;
    if (ctx->opts->stdio && set_stdio(ctx->opts->stdio) < 0) {
        child_fail(ctx, SBX_STEP_FDS, 1, errno);
        goto fail;
    }
    /* A session of our own, as crun does: in the caller's, TIOCSTI on its terminal would type
     * into the shell that ran us (CVE-2017-5226 class). With a terminal, the tty step does it. */
    if (!cfg->process.terminal && setsid() < 0) {
        child_fail(ctx, SBX_STEP_SETSID, 0, errno);
        goto fail;
    }
    if (close_inherited_fds(ctx, min_fd) < 0) {
        child_fail(ctx, SBX_STEP_FDS, 0, errno);
        goto fail;
    }
    if (child_join_namespaces(ctx) < 0)
        goto fail;
    if (cfg->ns[SBX_NS_USER].enabled &&
        (sys_setresgid(0, 0, 0) < 0 || sys_setresuid(0, 0, 0) < 0)) {
        child_fail(ctx, SBX_STEP_USERNS_ID, 0, errno);
        goto fail;
    }
    read_self_cgroup(ctx);
    /* After the parent placed us in our cgroups, so the namespace is rooted there. */
    if (cfg->ns[SBX_NS_CGROUP].enabled && cfg->ns[SBX_NS_CGROUP].path == NULL &&
        unshare(CLONE_NEWCGROUP) < 0) {
        child_fail(ctx, SBX_STEP_UNSHARE_CGROUP, 0, errno);
        goto fail;
    }
    /* A new network namespace has lo down: 127.0.0.1 would be unreachable (runc brings it up). */
    if (cfg->ns[SBX_NS_NET].enabled && cfg->ns[SBX_NS_NET].path == NULL) {
        int r = child_loopback_up();
        if (r < 0) {
            child_fail(ctx, SBX_STEP_LOOPBACK, 0, r);
            goto fail;
        }
    }
    if (cfg->process.has_oom_score_adj) {
        char v[16];
        snprintf(v, sizeof(v), "%d", cfg->process.oom_score_adj);
        int r = write_file_at(AT_FDCWD, "/proc/self/oom_score_adj", v);
        if (r < 0) {
            child_fail(ctx, SBX_STEP_OOM_SCORE, 0, r);
            goto fail;
        }
    }
    if (cfg->ns[SBX_NS_MNT].enabled && cfg->rootfs) {
        if (child_setup_rootfs(ctx) < 0 || child_enter_root(ctx) < 0)
            goto fail;
    }
    if (child_finish_process(ctx) < 0)
        goto fail;
    if (cfg->ns[SBX_NS_MNT].enabled && cfg->rootfs && child_protect_paths(ctx) < 0)
        goto fail;
    if (cfg->process.terminal && child_setup_tty(ctx) < 0)
        goto fail;
    if (child_resolve_exec(ctx, exe, sizeof(exe)) < 0)
        goto fail;
    /* An unprivileged caller's helpers (slirp4netns, newuidmap) need /proc/PID/ns of us. Such a
     * caller cannot write the husk binary anyway, so being dumpable gives nothing away. */
    if (!ctx->caller_privileged)
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (sbx_msg_send(ctx->sync_fd, SBX_MSG_READY, 0, 0, 0) < 0)
        _exit(1);

    report = child_wait_start(ctx, min_fd);
    if (report < 0) {
        report = ctx->sync_fd;
        goto fail;
    }
    if (child_run_start_hooks(ctx, ctx->host_pid) < 0)
        goto fail;
    child_exec(ctx, report, exe);
fail:
    sbx_msg_send(report, SBX_MSG_ERROR, ctx->step, ctx->err, ctx->index);
    _exit(127);
}

/* ---- parent side ---- */

/* clone3 can only make new namespaces; joining a pid namespace must be done by the parent. */
static int
enter_pid_ns(const struct sbx_config *cfg, int join_pidfd, int *saved, struct husk_error **err)
{
    *saved = -1;
    if (!cfg->ns[SBX_NS_PID].enabled || cfg->ns[SBX_NS_PID].path == NULL)
        return 0;
    *saved = open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
    cleanup_fd int fd = join_pidfd >= 0 ? -1 : open(cfg->ns[SBX_NS_PID].path, O_RDONLY | O_CLOEXEC);
    if (*saved < 0 || (join_pidfd < 0 && fd < 0))
        return husk_err(err, errno, "join namespace pid '%s'", cfg->ns[SBX_NS_PID].path);
    if (setns(join_pidfd >= 0 ? join_pidfd : fd, CLONE_NEWPID) < 0)
        return husk_err(err, errno, "join namespace pid '%s'", cfg->ns[SBX_NS_PID].path);
    return 0;
}

static uint64_t
clone_flags(const struct sbx_config *cfg)
{
    uint64_t flags = CLONE_PIDFD;
    for (int t = 0; t < SBX_NS_COUNT; t++) {
        /* The cgroup namespace is unshared by the child once it sits in its cgroup. */
        if (cfg->ns[t].enabled && cfg->ns[t].path == NULL && t != SBX_NS_CGROUP)
            flags |= (uint64_t)sbx_ns_clone_flag(t);
    }
    return flags;
}

static void
child_kill(struct sbx_child *c)
{
    if (c->pidfd >= 0)
        sys_pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
    while (waitpid(c->pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
}

/* Read the child's next record: READY, or an error turned into an error object. */
static int
await_ready(struct sbx_child *c, const struct sbx_config *cfg, struct husk_error **err)
{
    struct sbx_msg m;
    int fd = -1;
    int r = sbx_recv_fd(c->sync_fd, &m, sizeof(m), &fd);
    if (r >= 0 && r != sizeof(m)) {
        if (fd >= 0)
            close(fd);
        r = r == 0 ? -EPIPE : -EIO;
    }
    /* ECONNRESET: it died with our GO still unread. */
    if (r == -EPIPE || r == -ECONNRESET)
        return husk_err(err, 0, "sandbox process exited during setup");
    if (r < 0)
        return husk_err(err, -r, "read from sandbox process");
    if (m.kind == SBX_MSG_PTY) {
        c->pty_master = fd;
        return await_ready(c, cfg, err);
    }
    if (fd >= 0)
        close(fd);
    if (m.kind == SBX_MSG_ERROR)
        return sbx_msg_to_error(&m, cfg, err);
    if (m.kind != SBX_MSG_READY)
        return husk_err(err, EPROTO, "unexpected message %d from sandbox process", m.kind);
    return 0;
}

struct sbx_spawn_opts
sbx_spawn_opts_init(void)
{
    return (struct sbx_spawn_opts){.abi = SBX_SPAWN_ABI,
                                   .start_listen_fd = -1,
                                   .console_fd = -1,
                                   .seccomp_listener_fd = -1,
                                   .cgroup_fd = -1,
                                   .rootfs_image_fd = -1,
                                   .join_pidfd = -1,
                                   .exec_fd = -1,
                                   .rootfs_fd = -1};
}

/* The options as this version reads them: the first layout's "0: none" fields become -1. */
static struct sbx_spawn_opts
opts_normalised(const struct sbx_spawn_opts *opts)
{
    struct sbx_spawn_opts o = *opts;
    if (opts->abi == 0) {
        int *zero_is_none[] = {&o.rootfs_image_fd, &o.join_pidfd, &o.exec_fd, &o.rootfs_fd};
        for (size_t i = 0; i < ARRAY_SIZE(zero_is_none); i++)
            if (*zero_is_none[i] == 0)
                *zero_is_none[i] = -1;
    }
    if (o.cgroup)
        o.cgroup_fd = sbx_cgroup_spawn_fd(o.cgroup);
    return o;
}

/* The caller's fds the child keeps, as CLOEXEC copies above the preserved range. */
enum { N_CALLER_FDS = 4 };

static void
close_caller_fds(int (*fds)[N_CALLER_FDS])
{
    for (int i = 0; i < N_CALLER_FDS; i++)
        closep(&(*fds)[i]);
}

static int
dup_caller_fds(struct sbx_spawn_opts *o, int min_fd, int owned[N_CALLER_FDS],
               struct husk_error **err)
{
    static const char *const what[N_CALLER_FDS] = {"start socket", "seccomp listener socket",
                                                   "pidfd to join", "console socket"};
    int *fields[N_CALLER_FDS] = {&o->start_listen_fd, &o->seccomp_listener_fd, &o->join_pidfd,
                                 &o->console_fd};
    for (int i = 0; i < N_CALLER_FDS; i++) {
        if (*fields[i] < 0)
            continue;
        owned[i] = fcntl(*fields[i], F_DUPFD_CLOEXEC, min_fd);
        if (owned[i] < 0)
            return husk_err(err, errno, "dup %s", what[i]);
        *fields[i] = owned[i];
    }
    return 0;
}

/* In the parent, once the child exists: its id maps, its cgroups, then the caller's work. */
static int
on_child_created(const struct sbx_config *cfg, const struct sbx_spawn_opts *o, pid_t pid,
                 int tree_fd, struct husk_error **err)
{
    int r = 0;
    if (cfg->ns[SBX_NS_USER].enabled && cfg->ns[SBX_NS_USER].path == NULL) {
        r = sbx_idmap_write(pid, cfg, err);
        if (r == 0 && cfg->rootfs_idmap && tree_fd >= 0)
            r = sbx_root_tree_idmap(tree_fd, pid, err);
    }
    if (r == 0 && o->cgroup)
        r = sbx_cgroup_on_created(pid, o->cgroup, err);
    if (r == 0 && o->on_created)
        r = o->on_created(pid, o->data, err);
    return r;
}

int
sbx_spawn(const struct sbx_config *cfg, const struct sbx_spawn_opts *opts, struct sbx_child **out,
          struct husk_error **err)
{
    struct sbx_spawn_opts copts = opts_normalised(opts);
    int min_fd = 3 + (copts.preserve_fds > 0 ? copts.preserve_fds : 0);
    int pair[2];
    int pidfd = -1;
    cleanup_fd int saved_pidns = -1;

    if (cfg->process.args == NULL || cfg->process.args[0] == NULL)
        return husk_err(err, 0, "process.args must name a program");
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return husk_err(err, errno, "socketpair");
    /* The child's end must stay out of the range of preserved fds. */
    cleanup_fd int parent_fd = pair[0];
    cleanup_fd int child_fd = fcntl(pair[1], F_DUPFD_CLOEXEC, min_fd);
    close(pair[1]);
    if (child_fd < 0)
        return husk_err(err, errno, "dup sync socket");
    cleanup_(close_caller_fds) int caller_fds[N_CALLER_FDS] = {-1, -1, -1, -1};
    int r = dup_caller_fds(&copts, min_fd, caller_fds, err);
    if (r < 0)
        return r;
    /* Without a program of the caller's, the process's own runs through the stub; so do the
     * startContainer hooks, executed from inside the container too. */
    bool stub = copts.exec_fd < 0 || cfg->n_start_hooks > 0;
    cleanup_fd int stub_fd = stub ? sbx_exec_stub_open(min_fd, err) : -1;
    if (stub && stub_fd < 0)
        return stub_fd;
    /* Mounted or cloned here, detached (an image needs a loop device, which the container's
     * device cgroup refuses, so before we step into it); the child attaches the tree as its
     * root (rootfs-image.c). */
    cleanup_fd int tree_fd = -1;
    r = sbx_root_tree_child_fd(cfg, &copts, min_fd, &tree_fd, err);
    if (r < 0)
        return r;
    if (enter_pid_ns(cfg, copts.join_pidfd, &saved_pidns, err) < 0)
        return -EINVAL;

    struct clone_args args = {
        .flags = clone_flags(cfg),
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    if (copts.cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)copts.cgroup_fd;
    }
    /* Root in the initial user namespace, not merely uid 0 inside one. */
    bool privileged = geteuid() == 0 && in_initial_userns();
    if (copts.cgroup) /* v1: the child is born in them too (see sbx_cgroup_enter_self) */
        sbx_cgroup_enter_self(copts.cgroup);
    pid_t pid = (pid_t)sys_clone3(&args);
    int clone_errno = errno;
    if (pid == 0) {
        /* Only the parent's end: if the parent dies, our recv sees EOF instead of waiting. */
        close(parent_fd);
        struct sbx_child_ctx ctx = {.cfg = cfg,
                                    .opts = &copts,
                                    .sync_fd = child_fd,
                                    .rootfd = -1,
                                    .root_tree_fd = tree_fd,
                                    .stub_fd = stub_fd,
                                    .index = -1,
                                    .caller_privileged = privileged};
        sbx_child_main(&ctx);
    }
    if (saved_pidns >= 0)
        setns(saved_pidns, CLONE_NEWPID);
    if (pid < 0) {
        if (copts.cgroup)
            sbx_cgroup_leave_self(copts.cgroup, NULL);
        return husk_err(err, clone_errno, "clone3");
    }
    /* The child's end is the child's alone: held here too, a child killed during setup (the
     * OOM killer under a tiny memory limit) would never show as EOF, and we would wait. */
    close(steal_fd(&child_fd));

    cleanup_(sbx_child_freep) struct sbx_child *c = xcalloc(1, sizeof(*c));
    c->pid = pid;
    c->pidfd = pidfd;
    c->pty_master = -1;
    c->notify_fd = -1;
    c->sync_fd = steal_fd(&parent_fd);

    r = on_child_created(cfg, &copts, pid, tree_fd, err);
    if (copts.cgroup) /* on_created stepped out already, unless something failed before */
        sbx_cgroup_leave_self(copts.cgroup, NULL);
    if (r == 0 && (r = sbx_msg_send(c->sync_fd, SBX_MSG_GO, 0, 0, pid)) < 0)
        husk_err(err, -r, "release sandbox process");
    if (r == 0)
        r = await_ready(c, cfg, err);
    if (r < 0) {
        child_kill(c);
        return r;
    }
    *out = steal_ptr(&c);
    return 0;
}

/* After GO the child execs: EOF on the CLOEXEC sync socket means execve succeeded. Before it,
 * the notify filter's listener may come (kept in *notify_fd, or closed when NULL). */
static int
await_exec(int fd, const struct sbx_config *cfg, int *notify_fd, struct husk_error **err)
{
    struct sbx_msg m;
    int got = -1;
    int r = sbx_recv_fd(fd, &m, sizeof(m), &got);
    if (r >= 0 && m.kind == SBX_MSG_NOTIFY && r == (int)sizeof(m) && got >= 0) {
        if (notify_fd && *notify_fd < 0)
            *notify_fd = got;
        else
            close(got);
        return await_exec(fd, cfg, notify_fd, err);
    }
    if (got >= 0)
        close(got);
    if (r == 0)
        return 0;
    if (r > 0 && r != (int)sizeof(m))
        r = -EIO;
    if (r < 0)
        return husk_err(err, -r, "read exec result");
    if (m.kind != SBX_MSG_ERROR)
        return husk_err(err, EPROTO, "unexpected message %d from sandbox process", m.kind);
    if (cfg)
        return sbx_msg_to_error(&m, cfg, err);
    return husk_err(err, m.err, "start: step %d failed", m.step);
}

int
sbx_child_start(struct sbx_child *c, const struct sbx_config *cfg, struct husk_error **err)
{
    int r = sbx_msg_send(c->sync_fd, SBX_MSG_GO, 0, 0, 0);
    if (r < 0)
        return husk_err(err, -r, "start sandbox process");
    r = await_exec(c->sync_fd, cfg, &c->notify_fd, err);
    close(c->sync_fd);
    c->sync_fd = -1;
    return r;
}

int
sbx_start_conn(int conn_fd, const struct sbx_config *cfg, struct husk_error **err)
{
    int r = sbx_msg_send(conn_fd, SBX_MSG_GO, 0, 0, 0);
    if (r < 0)
        return husk_err(err, -r, "send start");
    return await_exec(conn_fd, cfg, NULL, err);
}

int
sbx_child_wait(struct sbx_child *c, int *status, struct husk_error **err)
{
    for (;;) {
        if (waitpid(c->pid, status, __WALL) >= 0)
            return 0;
        if (errno != EINTR)
            return husk_err(err, errno, "wait for pid %d", c->pid);
    }
}

void
sbx_child_free(struct sbx_child *c)
{
    if (c == NULL)
        return;
    if (c->pidfd >= 0)
        close(c->pidfd);
    if (c->sync_fd >= 0)
        close(c->sync_fd);
    if (c->pty_master >= 0)
        close(c->pty_master);
    if (c->notify_fd >= 0)
        close(c->notify_fd);
    free(c);
}

void
sbx_child_freep(struct sbx_child **c)
{
    sbx_child_free(*c);
    *c = NULL;
}

int
sbx_status_to_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}
