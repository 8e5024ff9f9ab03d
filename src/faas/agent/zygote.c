/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's zygote mode, in the template sandbox of a `--zygote` function's version
 * (../zygote-fork.c): instead of executing the function's program, the agent keeps one process
 * of it, the zygote (for Python: husk's zygote.py, which has loaded the interpreter and the
 * function's code), and hands it the daemon's forks (AGENT_FORK): each instance of the version
 * is a fork of the zygote, a server (http) or a zygote of its own (stdio, CGI). The zygote
 * forks it, reports its pid (the agent sends the daemon a pidfd of it), reaps it and reports
 * its wait status (an OOM kill included: the kernel's status, only relayed). Should the zygote
 * die first, its forks are reparented to the agent (pid 1 of the sandbox), which reaps them by
 * the pids it was told. A zygote that dies (killed, out of memory) is started again for the
 * next fork; the forks it had not started yet fail with a line on their stderr.
 *
 * Called with AGENT_ZYGOTE_PRELOAD_ARG, the agent preloads husk's library (zygote-preload.c,
 * embedded in the agent) into each zygote: Node.js has no fork of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

#define MAX_PENDING 1024 /* runs handed over, their pid not reported yet */
#define ZYGOTE_FD   3    /* the zygote's end of its socket */
/* The exit status of a run the zygote could not start (EX_SOFTWARE). */
#define ZYGOTE_FAILED 70

struct pending {
    uint32_t id;
    int fds[3]; /* kept to write why the run failed, should the zygote die first */
};

#ifndef MFD_EXEC
#define MFD_EXEC 0x10U
#endif

extern const char faas_zygote_preload_bin[], faas_zygote_preload_end[];

static struct {
    char **argv;
    bool preload;
    const sigset_t *old;
    pid_t pid;
    int fd;
    struct pending pending[MAX_PENDING];
    size_t n_pending;
} z = {.pid = -1, .fd = -1};

/* The preload library in a sealed memfd, fd ZYGOTE_FD + 1, named in LD_PRELOAD (after the
 * function's own) and in AGENT_PRELOAD_ENV; the library closes it once loaded. */
static int
preload(void)
{
    size_t size = (size_t)(faas_zygote_preload_end - faas_zygote_preload_bin);
    int fd = memfd_create("husk-zygote-preload", MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* before Linux 6.3 */
        fd = memfd_create("husk-zygote-preload", MFD_ALLOW_SEALING);
    if (fd < 0 || write(fd, faas_zygote_preload_bin, size) != (ssize_t)size ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0 ||
        dup2(fd, ZYGOTE_FD + 1) < 0)
        return -1;
    char path[64], num[16];
    const char *old = getenv("LD_PRELOAD");
    snprintf(path, sizeof(path), "/proc/self/fd/%d", ZYGOTE_FD + 1);
    snprintf(num, sizeof(num), "%d", ZYGOTE_FD + 1);
    size_t n = (old ? strlen(old) + 1 : 0) + strlen(path) + 1;
    char *list = malloc(n);
    if (list == NULL)
        return -1;
    snprintf(list, n, "%s%s%s", old ? old : "", old ? ":" : "", path);
    return setenv("LD_PRELOAD", list, 1) < 0 || setenv(AGENT_PRELOAD_ENV, num, 1) < 0 ? -1 : 0;
}

static _Noreturn void
zygote_child(int sock)
{
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(sock, ZYGOTE_FD) < 0)
        _exit(126);
    if (sock == ZYGOTE_FD) /* dup2 onto itself keeps close-on-exec */
        fcntl(ZYGOTE_FD, F_SETFD, 0);
    syscall(SYS_close_range, ZYGOTE_FD + 1, ~0U, 0);
    if (z.preload && preload() < 0) {
        dprintf(2, "husk-agent: load the zygote's preload library: %s\n", strerror(errno));
        _exit(126);
    }
    sigprocmask(SIG_SETMASK, z.old, NULL);
    execvp(z.argv[0], z.argv);
    dprintf(2, "husk-agent: execute the zygote %s: %s\n", z.argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

static int
zygote_start(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    /* A run's environment goes in one message: as large a buffer as the sandbox may have. */
    int big = (int)(sizeof(struct agent_msg) + AGENT_MSG_MAX) * 2;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    pid_t pid = fork();
    if (pid == 0)
        zygote_child(sv[1]);
    int e = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -e;
    }
    z.pid = pid;
    z.fd = sv[0];
    return 0;
}

void
zygote_init(char **argv, const sigset_t *old, bool preload)
{
    z.argv = argv;
    z.preload = preload;
    z.old = old;
    zygote_start(); /* loads while the first run is on its way; tried again per run if not */
}

int
zygote_fd(void)
{
    return z.fd;
}

static void
close_fds(const int fds[3])
{
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

/* The run never started: its stderr says why (the daemon logs it), its status says failed. */
static void
fail_run(uint32_t id, const int fds[3], const char *why, int e)
{
    if (fds)
        dprintf(fds[2], "husk-agent: the zygote (%s) %s%s%s\n", z.argv[0], why, e ? ": " : "",
                e ? strerror(e) : "");
    if (fds)
        close_fds(fds);
    agent_send_exit(id, W_EXITCODE(ZYGOTE_FAILED, 0));
}

void
zygote_run(struct agent_msg *m, const char *payload, const int fds[3])
{
    if (z.fd < 0) {
        int r = zygote_start();
        if (r < 0) {
            fail_run(m->id, fds, "could not be started", -r);
            return;
        }
    }
    if (z.n_pending == MAX_PENDING) {
        close_fds(fds);
        agent_send_exit(m->id, -EAGAIN);
        return;
    }
    m->kind = AGENT_RUN;
    m->status = m->status & AGENT_FORK_ZYGOTE ? AGENT_RUN_ZYGOTE : AGENT_RUN_GATED;
    ssize_t n;
    while ((n = agent_send_run(z.fd, m, payload, fds, 3)) < 0 && errno == EINTR)
        ;
    if (n < 0) { /* a dead zygote is reaped, and restarted by the next run */
        fail_run(m->id, fds,
                 errno == EMSGSIZE ? "could not take the run's environment"
                                   : "could not take the run",
                 errno);
        return;
    }
    struct pending *p = &z.pending[z.n_pending++];
    p->id = m->id;
    memcpy(p->fds, fds, sizeof(p->fds));
}

/* AGENT_STARTED to the daemon: the fork's pid, and a pidfd of it by SCM_RIGHTS (the daemon
 * moves the fork into its instance's cgroup by it). */
static void
report_started(uint32_t id, int32_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct agent_msg m = {.kind = AGENT_STARTED, .id = id, .status = pidfd < 0 ? -errno : pid};
    while ((pidfd < 0 ? send(0, &m, sizeof(m), MSG_NOSIGNAL)
                      : agent_send_run(0, &m, NULL, &pidfd, 1)) < 0 &&
           errno == EINTR)
        ;
    if (pidfd >= 0)
        close(pidfd);
}

/* The run's process exists (or could not be made: -errno). */
static void
started(uint32_t id, int32_t pid)
{
    for (size_t i = 0; i < z.n_pending; i++) {
        if (z.pending[i].id != id)
            continue;
        close_fds(z.pending[i].fds);
        z.pending[i] = z.pending[--z.n_pending];
        if (pid <= 0) {
            agent_send_exit(id, pid < 0 ? pid : -EIO);
            return;
        }
        agent_track(pid, id, 0);
        report_started(id, pid);
        return;
    }
}

/* The zygote is gone: what it had not started fails; the next run starts another. */
static void
zygote_lost(const char *why)
{
    if (z.fd >= 0)
        close(z.fd);
    z.fd = -1;
    while (z.n_pending) {
        struct pending p = z.pending[--z.n_pending];
        fail_run(p.id, p.fds, why, 0);
    }
}

static void
on_message(const struct agent_msg *m)
{
    if (m->kind == AGENT_STARTED)
        started(m->id, m->status);
    else if (m->kind == AGENT_EXIT && agent_untrack(m->id))
        agent_send_exit(m->id, m->status);
}

void
zygote_on_message(void)
{
    struct agent_msg m;
    ssize_t n;
    while ((n = recv(z.fd, &m, sizeof(m), MSG_DONTWAIT)) == (ssize_t)sizeof(m))
        on_message(&m);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        zygote_lost("ended before the run started");
}

void
zygote_reaped(pid_t pid, int status)
{
    if (pid == z.pid) {
        z.pid = -1;
        if (z.fd < 0)
            return;
        struct agent_msg m; /* the starts it reported before it went */
        while (recv(z.fd, &m, sizeof(m), MSG_DONTWAIT) == (ssize_t)sizeof(m))
            on_message(&m);
        char why[64];
        if (WIFSIGNALED(status))
            snprintf(why, sizeof(why), "was killed by signal %d", WTERMSIG(status));
        else
            snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
        zygote_lost(why);
    }
}
