/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-call program of a WebAssembly function (static, in the function's root as
 * /husk/wasm-run; the agent runs it for each call like any stdio or CGI program). It hands the
 * call to the instance's engine, a long-lived process that holds the compiled module, and
 * exits with the module's exit status:
 *
 *   wasm-run ENGINE [ENGINE-ARG...]
 *
 * The engine listens on a unix socket in the instance's own /tmp. The first call starts it
 * (under a lock, as a grandchild that the agent, pid 1, inherits), with a clean environment:
 * only HUSK_WASM_CONFIG. A call is one connection: "PID IN OUT ERR" and the environment,
 * NUL-separated. IN, OUT and ERR are pipes of ours that the engine opens through
 * /proc/PID/fd (same user, same sandbox: the call's own stdio are the daemon's pipes, which
 * the sandbox's users may not open by path), then says "opened"; when the module is done it
 * answers the exit status. Meanwhile the call's stdin, stdout and stderr are spliced to and
 * from those pipes (no copy through user space), each at the pace of its slower side.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SOCKET_PATH "/tmp/.husk-wasm.sock"
#define LOCK_PATH   "/tmp/.husk-wasm.lock"
#define CONFIG_VAR  "HUSK_WASM_CONFIG="

extern char **environ;

/* The engine failed to start or to run the call: the reason goes to the log (stderr) and to
 * stdout, which the daemon puts in the 500 it answers for a non-zero status. */
static _Noreturn void
die(const char *what, const char *detail)
{
    dprintf(2, "husk-wasm: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    dprintf(1, "%s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(70);
}

static int
try_connect(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = SOCKET_PATH};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("create a socket", strerror(errno));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    close(fd);
    return -1;
}

/* Where the engine's own output goes: the instance's log (the agent's stderr) when it may be
 * opened, else nowhere. */
static int
log_fd(void)
{
    int fd = open("/proc/1/fd/2", O_WRONLY | O_CLOEXEC);
    return fd >= 0 ? fd : open("/dev/null", O_WRONLY | O_CLOEXEC);
}

static _Noreturn void
exec_engine(char **argv, int ready)
{
    char *config = NULL;
    for (char **e = environ; *e && config == NULL; e++)
        if (strncmp(*e, CONFIG_VAR, strlen(CONFIG_VAR)) == 0)
            config = *e; /* the plan's (the deploy may not set HUSK_WASM_*) */
    char *env[] = {config, NULL};
    int null = open("/dev/null", O_RDWR | O_CLOEXEC), log = log_fd();
    if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(log, 2) < 0 ||
        dup2(ready, 3) < 0)
        _exit(127);
    syscall(SYS_close_range, 4, ~0U, 0);
    execve(argv[0], argv, env);
    dprintf(3, "execute %s: %s", argv[0], strerror(errno));
    _exit(127);
}

/* Start the engine and wait until it listens (it writes "ready" to fd 3) or fails (it writes
 * why, or nothing). Under the lock, so concurrent first calls start one engine. */
static int
start_engine(char **argv)
{
    int lock = open(LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) < 0)
        die("lock " LOCK_PATH, strerror(errno));
    int fd = try_connect();
    if (fd >= 0)
        return fd; /* another call started it meanwhile */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        die("create a pipe", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("start the WebAssembly engine", strerror(errno));
    if (pid == 0) {
        setsid();
        if (fork() == 0) /* the engine: not this call's child, so the call can end */
            exec_engine(argv, p[1]);
        _exit(0);
    }
    close(p[1]);
    waitpid(pid, NULL, 0);
    char msg[4096];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(msg) - 1 && (k = read(p[0], msg + n, sizeof(msg) - 1 - n)) != 0) {
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            break;
        n += (size_t)k;
    }
    msg[n] = '\0';
    close(p[0]);
    if (strcmp(msg, "ready") != 0)
        die("the WebAssembly engine did not start", n ? msg : "it exited without a word");
    fd = try_connect();
    if (fd < 0)
        die("connect to the WebAssembly engine", strerror(errno));
    close(lock);
    return fd;
}

static void
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            die("send the call to the WebAssembly engine", strerror(errno));
        p += k;
        n -= (size_t)k;
    }
}

/* One direction of the relay: src is spliced into dst. */
struct flow {
    int src, dst;
    bool dst_full; /* wait for room in dst, not for data in src */
};

static void
flow_close(struct flow *f, bool close_dst)
{
    close(f->src);
    if (close_dst)
        close(f->dst);
    f->src = f->dst = -1;
}

/* Move what there is; close the flow at the end of src, or when dst is gone. */
static void
flow_move(struct flow *f, bool close_dst)
{
    for (;;) {
        ssize_t n = splice(f->src, NULL, f->dst, NULL, 1 << 16, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n > 0) {
            f->dst_full = false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            /* either src is empty or dst is full: poll says which next time */
            struct pollfd p = {.fd = f->src, .events = POLLIN};
            f->dst_full = poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
            return;
        }
        flow_close(f, close_dst); /* 0: the end; EPIPE: no reader any more */
        return;
    }
}

struct call {
    struct flow in, out, err;
    int sock, engine_ends[3];
    char answer[4096];
    size_t got;
    bool opened, answered;
};

static void
close_engine_ends(struct call *c)
{
    for (int i = 0; i < 3; i++)
        if (c->engine_ends[i] >= 0) {
            close(c->engine_ends[i]);
            c->engine_ends[i] = -1;
        }
}

static void
read_answer(struct call *c)
{
    ssize_t k = read(c->sock, c->answer + c->got, sizeof(c->answer) - 1 - c->got);
    if (k < 0 && errno == EINTR)
        return;
    if (k > 0) {
        c->got += (size_t)k;
        c->answer[c->got] = '\0';
    }
    if (!c->opened && strncmp(c->answer, "opened\n", 7) == 0) {
        c->opened = true; /* the engine holds its own ends now: ours would hide the EOFs */
        close_engine_ends(c);
        memmove(c->answer, c->answer + 7, c->got - 6);
        c->got -= 7;
    }
    if (k <= 0 || c->got == sizeof(c->answer) - 1) {
        c->answered = true;
        close_engine_ends(c); /* it failed before opening them: the output ends now */
        close(c->sock);
        c->sock = -1;
    }
}

static void
add_poll(struct pollfd *p, nfds_t *n, const struct flow *f, struct flow **who, struct flow *self)
{
    if (f->src < 0)
        return;
    p[*n] = f->dst_full ? (struct pollfd){.fd = f->dst, .events = POLLOUT}
                        : (struct pollfd){.fd = f->src, .events = POLLIN};
    who[(*n)++] = self;
}

static void
relay(struct call *c)
{
    while (!c->answered || c->out.src >= 0 || c->err.src >= 0) {
        struct pollfd p[4];
        struct flow *who[4] = {0};
        nfds_t n = 0;
        add_poll(p, &n, &c->in, who, &c->in);
        add_poll(p, &n, &c->out, who, &c->out);
        add_poll(p, &n, &c->err, who, &c->err);
        if (c->sock >= 0)
            p[n++] = (struct pollfd){.fd = c->sock, .events = POLLIN};
        if (poll(p, n, -1) < 0 && errno != EINTR)
            die("wait for the WebAssembly engine", strerror(errno));
        for (nfds_t i = 0; i < n; i++) {
            if (!p[i].revents)
                continue;
            if (who[i])
                flow_move(who[i], who[i] == &c->in);
            else
                read_answer(c);
        }
    }
}

static int
make_pipes(struct call *c)
{
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        die("create the call's pipes", strerror(errno));
    c->in = (struct flow){.src = 0, .dst = in[1]};
    c->out = (struct flow){.src = out[0], .dst = 1};
    c->err = (struct flow){.src = err[0], .dst = 2};
    c->engine_ends[0] = in[0];
    c->engine_ends[1] = out[1];
    c->engine_ends[2] = err[1];
    int ours[] = {0, 1, 2, in[1], out[0], err[0]};
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        fcntl(ours[i], F_SETFL, fcntl(ours[i], F_GETFL) | O_NONBLOCK);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        dprintf(2, "usage: wasm-run ENGINE [ARG...]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct call c = {.sock = try_connect()};
    if (c.sock < 0)
        c.sock = start_engine(argv + 1);
    make_pipes(&c);
    char head[64];
    int n = snprintf(head, sizeof(head), "%d %d %d %d", (int)getpid(), c.engine_ends[0],
                     c.engine_ends[1], c.engine_ends[2]);
    send_all(c.sock, head, (size_t)n + 1);
    for (char **e = environ; *e; e++)
        send_all(c.sock, *e, strlen(*e) + 1);
    shutdown(c.sock, SHUT_WR);
    relay(&c);
    char *end = NULL;
    long status = strtol(c.answer, &end, 10);
    if (c.got == 0 || end == c.answer || *end != '\n' || status < 0 || status > 255)
        die("the WebAssembly engine ended during the call", NULL);
    if (end[1]) /* the engine could not run the call: why */
        die("the WebAssembly engine could not run the call", end + 1);
    return (int)status;
}
