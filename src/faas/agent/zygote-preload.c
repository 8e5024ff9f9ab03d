/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fork of a Node.js function's zygote (`husk fn deploy --zygote -- node SCRIPT`). Node has
 * no fork; this library, preloaded into the zygote by the template sandbox's agent
 * (agent/zygote.c, an LD_PRELOAD of a sealed memfd), is where it forks. The zygote's script
 * (zygote-node.js) loads what the function needs, then reads fd 3 once: that read is this
 * library's. It serves the agent's runs on fd 3 as zygote.py does (agent-proto.h: AGENT_RUN
 * in, AGENT_STARTED and AGENT_EXIT out) and returns only in a run's process, with the run in
 * the buffer: its header (status: the process's pid, which Node would otherwise report as the
 * zygote's) and its environment block; fds 0-2 are the run's. A gated run (an http instance)
 * first waits for the daemon's byte on its stdin; a run flagged AGENT_RUN_ZYGOTE (a stdio or
 * CGI instance) becomes a zygote itself and serves the daemon's calls on that socket.
 *
 * What a fork of Node needs, and gets here:
 * - V8 advises MADV_DONTFORK on its heap's pages: a child would have none of them and fault at
 *   its first object. The advice is dropped.
 * - libuv's epoll instance would be shared with the zygote and every other run: the run's
 *   process makes its own (uv_loop_fork, which node exports).
 * - The template's other threads are not copied: V8 runs with --single-threaded (the plan adds
 *   it), so no background task of the zygote's is ever waited for; libuv's thread pool is made
 *   again on first use (its pthread_atfork handler); OpenSSL reseeds after a fork. At exit,
 *   node joins its platform's threads: in a forked run, a join of a thread made before the
 *   fork returns at once (it does not exist there; glibc would read its freed descriptor), and
 *   so does destroying a condition variable or a mutex such a thread waited on or held.
 *
 * Linked against nothing, so no glibc version is asked for: the process's own glibc (and node's
 * libuv) is resolved when node loads it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-proto.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define ZYGOTE_FD 3
#define MAX_CALLS 1024 /* as the agent's runs */

/* node's libuv (exported by the node executable; weak: absent in anything else). */
extern void *uv_default_loop(void) __attribute__((weak));
extern int uv_loop_fork(void *loop) __attribute__((weak));

struct call {
    uint32_t id;
    int pidfd;
};

static struct call calls[MAX_CALLS];
static size_t n_calls;
/* What fd 3's reads are in this process: the zygote's first serves the runs; a spare's waits
 * for its run; a run's are the program's. */
static enum { ROLE_ZYGOTE, ROLE_SPARE, ROLE_RUN } role;
static bool forked; /* a process forked from the zygote (a spare, a run) */
static struct {
    pid_t pid;
    int sock, pidfd;
} spare = {-1, -1, -1};

/* The threads a forked run made itself: the only ones it can join. */
static struct {
    pthread_mutex_t lock;
    pthread_t *ids;
    size_t n, cap;
} born = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The agent passes the memfd this library was loaded from: closed, and the variable says the
 * library is in (the zygote's script checks it). */
__attribute__((constructor)) static void
preload_init(void)
{
    const char *fd = getenv(AGENT_PRELOAD_ENV);
    if (fd == NULL)
        return;
    close(atoi(fd));
    setenv(AGENT_PRELOAD_ENV, "loaded", 1);
}

int
madvise(void *addr, size_t len, int advice)
{
    if (advice == MADV_DONTFORK)
        return 0;
    return (int)syscall(SYS_madvise, addr, len, advice);
}

int
pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (real == NULL)
        real = dlsym(RTLD_NEXT, "pthread_create");
    int r = real(t, attr, fn, arg);
    if (r != 0 || !forked)
        return r;
    pthread_mutex_lock(&born.lock);
    if (born.n == born.cap) {
        size_t cap = born.cap ? born.cap * 2 : 16;
        pthread_t *ids = realloc(born.ids, cap * sizeof(*ids));
        if (ids)
            born.ids = ids, born.cap = cap;
    }
    if (born.n < born.cap)
        born.ids[born.n++] = *t;
    pthread_mutex_unlock(&born.lock);
    return r;
}

int
pthread_join(pthread_t t, void **ret)
{
    static int (*real)(pthread_t, void **);
    if (real == NULL)
        real = dlsym(RTLD_NEXT, "pthread_join");
    bool mine = !forked;
    pthread_mutex_lock(&born.lock);
    for (size_t i = 0; i < born.n && !mine; i++)
        if (pthread_equal(born.ids[i], t)) {
            mine = true;
            born.ids[i] = born.ids[--born.n];
        }
    pthread_mutex_unlock(&born.lock);
    if (!mine) {
        if (ret)
            *ret = NULL;
        return 0;
    }
    return real(t, ret);
}

/* Threads made before the fork may have waited on a condition or held a lock: they are not here
 * to leave or release it, and glibc would wait for them (or libuv abort on EBUSY). Destroying
 * either frees nothing: in a forked run, it is skipped. */
#define SKIPPED_IN_A_RUN(fn, type)                                                                 \
    int fn(type *obj)                                                                              \
    {                                                                                              \
        static int (*real)(type *);                                                                \
        if (forked)                                                                                \
            return 0;                                                                              \
        if (real == NULL)                                                                          \
            real = dlsym(RTLD_NEXT, #fn);                                                          \
        return real(obj);                                                                          \
    }
SKIPPED_IN_A_RUN(pthread_cond_destroy, pthread_cond_t)
SKIPPED_IN_A_RUN(pthread_mutex_destroy, pthread_mutex_t)

/* A forked run's exit (process.reallyExit, once its 'exit' listeners ran): no destructors of
 * the zygote's objects, no atexit handlers; Node's stdio are written synchronously. */
void
exit(int code)
{
    static void (*real)(int);
    if (forked)
        _exit(code);
    if (real == NULL)
        real = dlsym(RTLD_NEXT, "exit");
    real(code);
    _exit(code);
}

static void
send_msg(uint32_t kind, uint32_t id, int32_t status)
{
    struct agent_msg m = {.kind = kind, .id = id, .status = status};
    while (send(ZYGOTE_FD, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* The wait status, as waitpid gives it, of what waitid told. */
static int32_t
wait_status(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED:
        return (si->si_status & 0xff) << 8;
    case CLD_DUMPED:
        return si->si_status | 0x80;
    default:
        return si->si_status;
    }
}

static void
reap(size_t i)
{
    siginfo_t si = {0};
    if (waitid((idtype_t)P_PIDFD, (id_t)calls[i].pidfd, &si, WEXITED) < 0)
        return;
    send_msg(AGENT_EXIT, calls[i].id, wait_status(&si));
    close(calls[i].pidfd);
    calls[i] = calls[--n_calls];
}

/* A gated run (AGENT_RUN_GATED) waits on its stdin for the daemon's byte: it has moved the
 * run into the instance's cgroup by then. Closed without one: the instance is gone. */
static void
pass_gate(int fd)
{
    char c;
    ssize_t r;
    while ((r = syscall(SYS_read, fd, &c, 1)) < 0 && errno == EINTR)
        ;
    if (r != 1)
        _exit(70);
}

static ssize_t serve(void *buf, size_t len);
static bool wait_first; /* an instance's zygote: no spare before its first message */

/* Become an instance's zygote (AGENT_RUN_ZYGOTE): its socket (fds[0]) on fd 3, its log on 1
 * and 2, and serve there. */
static ssize_t
become_zygote(void *buf, size_t len, const int fds[3])
{
    role = ROLE_ZYGOTE;
    wait_first = true;
    if (dup2(fds[0], ZYGOTE_FD) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], 2) < 0)
        _exit(126);
    for (int i = 0; i < 3; i++)
        if (fds[i] > ZYGOTE_FD)
            close(fds[i]);
    return serve(buf, len);
}

/* Become the run: its stdio; fd 3 (the agent's socket, or a spare's) closed. */
static ssize_t
become_run(void *buf, size_t n, size_t len, const int fds[3])
{
    if (((struct agent_msg *)buf)->status & AGENT_RUN_ZYGOTE)
        return become_zygote(buf, len, fds);
    role = ROLE_RUN;
    if (((struct agent_msg *)buf)->status & AGENT_RUN_GATED)
        pass_gate(fds[0]);
    close(ZYGOTE_FD);
    for (size_t i = 0; i < n_calls; i++)
        close(calls[i].pidfd);
    n_calls = 0;
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            _exit(126);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    ((struct agent_msg *)buf)->status = (int32_t)getpid();
    return (ssize_t)n;
}

/* In a process just forked from the zygote: what it must not keep of it, and a libuv loop of
 * its own. */
static void
forked_child(void)
{
    forked = true;
    for (size_t i = 0; i < n_calls; i++)
        close(calls[i].pidfd);
    n_calls = 0;
    if (spare.sock >= 0)
        close(spare.sock), close(spare.pidfd);
    spare.pid = spare.sock = spare.pidfd = -1;
    if (uv_loop_fork && uv_default_loop && uv_loop_fork(uv_default_loop()) != 0)
        _exit(126);
}

/* A run from sock: its size (fds set), 0 for a bad message (dropped), -1 at the end. */
static ssize_t
recv_run(int sock, void *buf, size_t len, int fds[3])
{
    char cbuf[CMSG_SPACE(3 * sizeof(int))];
    struct iovec iov = {buf, len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)
        return -1;
    size_t n_fds = 0;
    fds[0] = fds[1] = fds[2] = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            n_fds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(c), (n_fds > 3 ? 3 : n_fds) * sizeof(int));
        }
    const struct agent_msg *m = buf;
    if (n_fds == 3 && (size_t)n >= sizeof(*m) && m->kind == AGENT_RUN &&
        sizeof(*m) + m->len == (size_t)n && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        return n;
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return 0;
}

static void
drop_spare(void)
{
    if (spare.pid <= 0)
        return;
    kill(spare.pid, SIGKILL);
    siginfo_t si;
    waitid((idtype_t)P_PIDFD, (id_t)spare.pidfd, &si, WEXITED);
    close(spare.sock);
    close(spare.pidfd);
    spare.pid = spare.sock = spare.pidfd = -1;
}

/* Fork the spare: the next run's process, made while the zygote is idle, so that a run waits
 * for no fork. true in the spare. */
static bool
make_spare(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    int big = (int)(sizeof(struct agent_msg) + AGENT_MSG_MAX) * 2;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    pid_t pid = fork();
    if (pid == 0) { /* fd 3 is the spare's socket now: its next read waits for its run */
        close(sv[0]);
        if (dup2(sv[1], ZYGOTE_FD) < 0)
            _exit(126);
        close(sv[1]);
        forked_child();
        role = ROLE_SPARE;
        return true;
    }
    close(sv[1]);
    int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pidfd < 0) {
        if (pid > 0)
            kill(pid, SIGKILL), waitpid(pid, NULL, 0);
        close(sv[0]);
        return false;
    }
    spare.pid = pid;
    spare.sock = sv[0];
    spare.pidfd = pidfd;
    return false;
}

/* A run for the zygote: the spare takes it, or a fork now. The pid (or -errno), and the
 * pidfd to reap it by. */
static pid_t
start_run(void *buf, size_t n, const int fds[3], int *pidfd)
{
    struct agent_msg *m = buf;
    if (spare.pid > 0) {
        pid_t pid = spare.pid;
        if (agent_send_run(spare.sock, m, (char *)buf + sizeof(*m), fds, 3) >= 0) {
            *pidfd = spare.pidfd;
            close(spare.sock);
            spare.pid = spare.sock = spare.pidfd = -1;
            return pid;
        }
        drop_spare(); /* it died: a fork now */
    }
    if (n_calls == MAX_CALLS)
        return -EAGAIN;
    pid_t pid = fork();
    if (pid == 0) {
        forked_child();
        return 0;
    }
    if (pid < 0)
        return -errno;
    if ((*pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) { /* not to be reaped: no run */
        int e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -e;
    }
    return pid;
}

/* One message from the agent: a run's process returns (its size), the zygote gets 0. */
static ssize_t
take_run(void *buf, size_t len)
{
    int fds[3];
    ssize_t n = recv_run(ZYGOTE_FD, buf, len, fds);
    if (n < 0)
        _exit(0); /* the agent is gone */
    if (n == 0)
        return 0;
    const struct agent_msg *m = buf;
    uint32_t id = m->id;
    int pidfd = -1;
    pid_t pid = start_run(buf, (size_t)n, fds, &pidfd);
    if (pid == 0)
        return become_run(buf, (size_t)n, len, fds);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    send_msg(AGENT_STARTED, id, pid);
    if (pid > 0)
        calls[n_calls++] = (struct call){.id = id, .pidfd = pidfd};
    return 0;
}

/* The fork server's loop, in fd 3's first read; returns in each run's process, and in each
 * spare (a header of kind 0: the script warms up and reads again). */
static ssize_t
serve(void *buf, size_t len)
{
    static struct pollfd p[2 + MAX_CALLS];
    bool spare_failed = false; /* until the next run: no busy loop of failing forks */
    for (;;) {
        p[0] = (struct pollfd){.fd = ZYGOTE_FD, .events = POLLIN};
        p[1] = (struct pollfd){.fd = spare.pidfd, .events = POLLIN};
        for (size_t i = 0; i < n_calls; i++)
            p[2 + i] = (struct pollfd){.fd = calls[i].pidfd, .events = POLLIN};
        int ready = poll(p, 2 + n_calls, spare.pid > 0 || spare_failed || wait_first ? -1 : 0);
        if (ready < 0 && errno != EINTR)
            _exit(70);
        if (ready == 0) { /* idle, no spare */
            if (make_spare()) {
                memset(buf, 0, sizeof(struct agent_msg));
                ((struct agent_msg *)buf)->status = (int32_t)getpid();
                return sizeof(struct agent_msg);
            }
            spare_failed = spare.pid <= 0;
            continue;
        }
        if (ready < 0)
            continue;
        for (size_t i = n_calls; i-- > 0;) /* from the end: reap() moves the last into i */
            if (p[2 + i].revents)
                reap(i);
        if (p[1].revents) /* the spare died while idle */
            drop_spare();
        if (p[0].revents) {
            spare_failed = false;
            wait_first = false;
            ssize_t n = take_run(buf, len);
            if (n > 0)
                return n;
        }
    }
}

/* A spare's read: its run, from the zygote. */
static ssize_t
spare_wait(void *buf, size_t len)
{
    int fds[3];
    ssize_t n;
    while ((n = recv_run(ZYGOTE_FD, buf, len, fds)) == 0)
        ;
    if (n < 0)
        _exit(0); /* the zygote is gone */
    return become_run(buf, (size_t)n, len, fds);
}

ssize_t
read(int fd, void *buf, size_t len)
{
    if (fd == ZYGOTE_FD && role != ROLE_RUN && len >= sizeof(struct agent_msg) &&
        getenv(AGENT_PRELOAD_ENV))
        return role == ROLE_SPARE ? spare_wait(buf, len) : serve(buf, len);
    return syscall(SYS_read, fd, buf, len);
}
