/* SPDX-License-Identifier: Apache-2.0 */
/*
 * startContainer hooks, run by the sandbox process in the container's namespaces after `start`
 * and before the program: fork, feed the state on stdin, wait with the hook's timeout. No heap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "syscalls.h"

/* The hook through the exec stub ("-": no report fd), so a hook file of the image cannot make
 * us run husk's own binary in the container (see stub/exec-stub.c); directly without one. */
static void
exec_hook(const struct sbx_hook *h, int stub_fd)
{
    char *const empty[] = {NULL};
    char *const argv0[] = {h->path, NULL};
    char *const *args = h->args ? h->args : argv0;
    char *const *env = h->env ? h->env : empty;
    size_t n = 0;

    if (stub_fd < 0) {
        execve(h->path, args, env);
        return;
    }
    while (args[n])
        n++;
    char *argv[n + 3];
    argv[0] = "-";
    argv[1] = h->path;
    memcpy(argv + 2, args, (n + 1) * sizeof(char *));
    syscall(SYS_execveat, stub_fd, "", argv, env, AT_EMPTY_PATH);
}

static int
run_hook(const struct sbx_hook *h, int stub_fd, const char *state, size_t len)
{
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        return -e;
    }
    if (pid == 0) {
        setpgid(0, 0); /* a timeout kills the hook and whatever it started */
        dup2(in[0], STDIN_FILENO);
        exec_hook(h, stub_fd);
        _exit(127);
    }
    close(in[0]);
    (void)!write(in[1], state, len); /* a hook that does not read its stdin is fine */
    close(in[1]);
    int pidfd = sys_pidfd_open(pid, 0);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (pidfd >= 0 && h->timeout > 0 && poll(&p, 1, h->timeout * 1000) == 0) {
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(pidfd);
        return -ETIMEDOUT;
    }
    if (pidfd >= 0)
        close(pidfd);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECANCELED;
}

int
child_run_start_hooks(struct sbx_child_ctx *ctx, int host_pid)
{
    const struct sbx_config *cfg = ctx->cfg;
    char state[8192];

    if (cfg->n_start_hooks == 0)
        return 0;
    const char *pre = cfg->hook_state[0] ? cfg->hook_state[0] : "";
    const char *post = cfg->hook_state[1] ? cfg->hook_state[1] : "";
    int len = snprintf(state, sizeof(state), "%s%d%s", pre, host_pid, post);
    if (len < 0 || (size_t)len >= sizeof(state))
        return child_fail(ctx, SBX_STEP_HOOK, 0, E2BIG);
    for (size_t i = 0; i < cfg->n_start_hooks; i++) {
        int r = run_hook(&cfg->start_hooks[i], ctx->stub_fd, state, (size_t)len);
        if (r < 0)
            return child_fail(ctx, SBX_STEP_HOOK, (int)i, r);
    }
    return 0;
}
