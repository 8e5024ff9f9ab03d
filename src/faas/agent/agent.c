/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-sandbox agent of `husk serve` (a static program, embedded in husk and executed from a
 * sealed memfd as the sandbox's pid 1, with the function's own confinement: same identity,
 * capabilities, seccomp filter). It keeps the sandbox warm and, per request, forks and executes
 * the function's program (its own argv) with the request's stdio and environment.
 *
 * fd 0: the control socket (SOCK_SEQPACKET, agent-proto.h). fd 1, 2: the instance's log.
 * EOF on fd 0 means the daemon is gone: everything in the sandbox is killed, at once or, for a
 * run the daemon said may go on (a published function's server, whose clients do not go
 * through the daemon), once that run ends or its time is up. Called as
 * ARGV0 AGENT_ZYGOTE_ARG (or AGENT_ZYGOTE_PRELOAD_ARG) ..., it hands the runs to a zygote
 * instead (zygote.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define MAX_RUNS 1024

struct run {
    pid_t pid;
    uint32_t id;
    int32_t hold; /* seconds it may go on without the daemon */
};

static struct run runs[MAX_RUNS];
static size_t n_runs;
static char **prog_argv;
static bool zygote;

void
agent_send_exit(uint32_t id, int32_t status)
{
    struct agent_msg m = {.kind = AGENT_EXIT, .id = id, .status = status};
    while (send(0, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* Split the NUL-separated block into an argv-style array (pointing into buf). */
static char **
env_of(char *buf, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == 0;
    char **env = calloc(n + 1, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len && k < n; i += strlen(buf + i) + 1)
        env[k++] = buf + i;
    return env;
}

/* env with LISTEN_FDS=1 and LISTEN_PID=<our pid>, as sd_listen_fds(3) checks them: only the
 * process they were meant for takes the socket, never one it runs. */
static char **
listen_env(char **env)
{
    static char fds[] = "LISTEN_FDS=1", pid[32];
    size_t n = 0, k = 0;
    while (env[n])
        n++;
    char **out = calloc(n + 3, sizeof(char *));
    if (out == NULL)
        _exit(126);
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], "LISTEN_FDS=", 11) != 0 && strncmp(env[i], "LISTEN_PID=", 11) != 0)
            out[k++] = env[i];
    snprintf(pid, sizeof(pid), "LISTEN_PID=%d", (int)getpid());
    out[k++] = fds;
    out[k++] = pid;
    return out;
}

static _Noreturn void
child(const int fds[4], char **env, const sigset_t *old)
{
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0 && dup2(fds[i], i) < 0)
            _exit(126);
    if (fds[3] >= 0)
        env = listen_env(env);
    syscall(SYS_close_range, fds[3] >= 0 ? 4 : 3, ~0U, 0);
    sigprocmask(SIG_SETMASK, old, NULL);
    execvpe(prog_argv[0], prog_argv, env);
    dprintf(2, "husk-agent: execute %s: %s\n", prog_argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

static void
on_run(struct agent_msg *m, char *payload, const int fds[4], const sigset_t *old)
{
    if (zygote) {
        zygote_run(m, payload, fds);
        return;
    }
    payload[m->len] = 0;
    char **env = env_of(payload, m->len);
    pid_t pid = n_runs < MAX_RUNS && env ? fork() : (errno = EAGAIN, -1);
    if (pid == 0)
        child(fds, env, old);
    int e = errno;
    free(env);
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (pid < 0) {
        agent_send_exit(m->id, -e);
        return;
    }
    agent_track(pid, m->id, m->status > 0 ? m->status : 0);
}

void
agent_track(pid_t pid, uint32_t id, int32_t hold)
{
    if (n_runs == MAX_RUNS) { /* cannot happen: the zygote's runs are bounded as these */
        agent_send_exit(id, -EAGAIN);
        return;
    }
    runs[n_runs++] = (struct run){.pid = pid, .id = id, .hold = hold};
}

bool
agent_untrack(uint32_t id)
{
    for (size_t i = 0; i < n_runs; i++)
        if (runs[i].id == id) {
            runs[i] = runs[--n_runs];
            return true;
        }
    return false;
}

/* 1 went on, 0 the daemon is gone. */
static int
on_control(char *buf, const sigset_t *old)
{
    char cbuf[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(struct agent_msg) + AGENT_MSG_MAX};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(0, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return 0;
    int fds[4] = {-1, -1, -1, -1}, nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(c), (nfds > 4 ? 4 : nfds) * sizeof(int));
        }
    struct agent_msg *m = (struct agent_msg *)buf;
    /* A template's agent (zygote mode) takes forks, an instance's runs. */
    uint32_t kind = zygote ? AGENT_FORK : AGENT_RUN;
    if ((size_t)n < sizeof(*m) || m->kind != kind || nfds < 3 || nfds > (zygote ? 3 : 4) ||
        m->len != (size_t)n - sizeof(*m)) {
        for (int i = 0; i < 4 && i < nfds; i++)
            close(fds[i]);
        if ((size_t)n >= sizeof(*m))
            agent_send_exit(m->id, -EINVAL);
        return 1;
    }
    on_run(m, buf + sizeof(*m), fds, old);
    return 1;
}

static void
reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        size_t i = 0;
        while (i < n_runs && runs[i].pid != pid)
            i++;
        if (i < n_runs) {
            agent_send_exit(runs[i].id, status);
            runs[i] = runs[--n_runs];
        }
        if (zygote)
            zygote_reaped(pid, status);
    }
}

static long
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec;
}

/* The daemon is gone: how long the runs that may go on still may, in seconds (0: none). */
static long
hold_until(void)
{
    long hold = 0;
    for (size_t i = 0; i < n_runs; i++)
        if (runs[i].hold > hold)
            hold = runs[i].hold;
    return hold ? now_s() + hold : 0;
}

int
main(int argc, char **argv)
{
    sigset_t set, old;
    if (argc < 1)
        return 2;
    prog_argv = argv;
    bool preload = argc > 2 && strcmp(argv[1], AGENT_ZYGOTE_PRELOAD_ARG) == 0;
    zygote = preload || (argc > 2 && strcmp(argv[1], AGENT_ZYGOTE_ARG) == 0);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    if (zygote)
        zygote_init(argv + 2, &old, preload);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    char *buf = malloc(sizeof(struct agent_msg) + AGENT_MSG_MAX + 1);
    if (sfd < 0 || buf == NULL)
        return 1;
    long until = 0; /* the daemon is gone: the time the held runs end */
    for (;;) {
        long left = until ? until - now_s() : 0;
        if (until && (left <= 0 || n_runs == 0))
            break;
        struct pollfd p[3] = {{.fd = until ? -1 : 0, .events = POLLIN},
                              {.fd = sfd, .events = POLLIN},
                              {.fd = zygote_fd(), .events = POLLIN}};
        if (poll(p, 3, until ? (int)left * 1000 : -1) < 0 && errno != EINTR)
            break;
        if (p[2].revents) /* before reaping: the zygote's runs are known by then */
            zygote_on_message();
        if (p[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) > 0)
                ;
            reap();
        }
        if (p[0].revents && !on_control(buf, &old) && (until = hold_until()) == 0)
            break;
    }
    kill(-1, SIGKILL); /* pid 1 of the sandbox: everything in it */
    return 0;
}
