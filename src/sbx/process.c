/* SPDX-License-Identifier: Apache-2.0 */
/* The child's last steps: kernel parameters, limits, identity, cwd, fds, then execve. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"
#include "child.h"
#include "syscalls.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int
set_sysctls(struct sbx_child_ctx *ctx)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < ctx->cfg->n_sysctl; i++) {
        const struct sbx_sysctl *s = &ctx->cfg->sysctl[i];
        int n = snprintf(path, sizeof(path), "/proc/sys/%s", s->key);
        if (n < 0 || (size_t)n >= sizeof(path))
            return child_fail(ctx, SBX_STEP_SYSCTL, (int)i, ENAMETOOLONG);
        for (char *p = path + strlen("/proc/sys/"); *p; p++)
            if (*p == '.')
                *p = '/';
        int r = write_file_at(AT_FDCWD, path, s->value);
        if (r < 0)
            return child_fail(ctx, SBX_STEP_SYSCTL, (int)i, r);
    }
    return 0;
}

static int
set_rlimits(struct sbx_child_ctx *ctx)
{
    const struct sbx_process *p = &ctx->cfg->process;
    for (size_t i = 0; i < p->n_rlimits; i++) {
        struct rlimit rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
        if (setrlimit(p->rlimits[i].resource, &rl) < 0)
            return child_fail(ctx, SBX_STEP_RLIMIT, (int)i, errno);
    }
    return 0;
}

/*
 * chdir, then prove the cwd is inside our root: a cwd reached through a leaked fd
 * (/proc/self/fd/N, CVE-2024-21626) shows up as "(unreachable)/..." from the raw getcwd.
 */
static int
set_cwd(struct sbx_child_ctx *ctx)
{
    const char *cwd = ctx->cfg->process.cwd ? ctx->cfg->process.cwd : "/";
    char buf[PATH_MAX];

    if (chdir(cwd) < 0)
        return child_fail(ctx, SBX_STEP_CWD, 0, errno);
    long n = syscall(SYS_getcwd, buf, sizeof(buf));
    if (n < 0) /* a seccomp profile that denies getcwd: we cannot tell, so we do not go on */
        return child_fail(ctx, SBX_STEP_CWD_CHECK, 0, errno);
    if (buf[0] != '/')
        return child_fail(ctx, SBX_STEP_CWD_OUTSIDE, 0, EPERM);
    return 0;
}

static int
set_identity(struct sbx_child_ctx *ctx)
{
    const struct sbx_process *p = &ctx->cfg->process;

    if (sys_setgroups(p->n_groups, (const gid_t *)p->groups) < 0 &&
        !(errno == EPERM && p->n_groups == 0))
        return child_fail(ctx, SBX_STEP_SETGROUPS, 0, errno);
    if (sys_setresgid(p->gid, p->gid, p->gid) < 0)
        return child_fail(ctx, SBX_STEP_SETGID, 0, errno);
    if (sys_setresuid(p->uid, p->uid, p->uid) < 0)
        return child_fail(ctx, SBX_STEP_SETUID, 0, errno);
    umask(p->umask >= 0 ? (mode_t)p->umask : 022);
    return 0;
}

int
child_finish_process(struct sbx_child_ctx *ctx)
{
    const struct sbx_config *cfg = ctx->cfg;
    int r;

    if (cfg->ns[SBX_NS_UTS].enabled && cfg->hostname &&
        sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        return child_fail(ctx, SBX_STEP_HOSTNAME, 0, errno);
    if (cfg->ns[SBX_NS_UTS].enabled && cfg->domainname &&
        setdomainname(cfg->domainname, strlen(cfg->domainname)) < 0)
        return child_fail(ctx, SBX_STEP_DOMAINNAME, 0, errno);
    if ((r = set_sysctls(ctx)) < 0)
        return r;
    return 0;
}

static const char *
env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    return NULL;
}

/* PATH search as execvp does, on the stack. Returns 0 with buf filled, or -errno. */
static int
find_executable(const char *file, char *const *env, char *buf, size_t len)
{
    if (strchr(file, '/')) {
        if ((size_t)snprintf(buf, len, "%s", file) >= len)
            return -ENAMETOOLONG;
        return 0;
    }
    const char *path = env_get(env, "PATH");
    int saw_eacces = 0;
    if (path == NULL)
        path = DEFAULT_PATH;
    while (*path) {
        const char *end = strchrnul(path, ':');
        size_t dl = (size_t)(end - path);
        struct stat st;
        if ((size_t)snprintf(buf, len, "%.*s%s%s", (int)dl, path, dl ? "/" : "", file) < len &&
            stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(buf, X_OK) == 0)
                return 0;
            saw_eacces = 1;
        }
        path = *end ? end + 1 : end;
    }
    return saw_eacces ? -EACCES : -ENOENT;
}

/* Look the program up now, inside the root, so a missing binary fails `create`, as in runc. */
int
child_resolve_exec(struct sbx_child_ctx *ctx, char *buf, size_t len)
{
    const struct sbx_process *p = &ctx->cfg->process;
    int r = find_executable(p->args[0], p->env, buf, len);
    if (r == -ENOENT && !strchr(p->args[0], '/'))
        return child_fail(ctx, SBX_STEP_EXEC_NOT_FOUND, 0, ENOENT);
    if (r < 0)
        return child_fail(ctx, SBX_STEP_EXEC, 0, r);
    return 0;
}

/* Everything below runs after the last step that may need privileges. */
static int
set_fds(struct sbx_child_ctx *ctx)
{
    /* Nothing but stdio and the preserved fds crosses execve; the report fd is CLOEXEC. */
    unsigned first = 3 + (unsigned)(ctx->opts->preserve_fds > 0 ? ctx->opts->preserve_fds : 0);
    if (sys_close_range(first, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        return child_fail(ctx, SBX_STEP_FDS, 0, errno);
    for (unsigned fd = 3; fd < first; fd++)
        fcntl((int)fd, F_SETFD, 0);
    return 0;
}

/* The policy's filter first (index 1 in a failure report), then the process's own, then the
 * caller's notify filter (index 2), whose listener goes out on the report fd. */
static int
load_seccomp(struct sbx_child_ctx *ctx, int report_fd)
{
    const struct sbx_process *p = &ctx->cfg->process;
    int r = sbx_seccomp_load(&p->seccomp_policy, -1, ctx->host_pid);
    if (r < 0)
        return child_fail(ctx, SBX_STEP_SECCOMP, 1, r);
    r = sbx_seccomp_load(&p->seccomp, ctx->opts->seccomp_listener_fd, ctx->host_pid);
    if (r < 0)
        return child_fail(ctx, SBX_STEP_SECCOMP, 0, r);
    if (ctx->opts->notify_filter && (r = sbx_notify_load(ctx->opts->notify_filter, report_fd)) < 0)
        return child_fail(ctx, SBX_STEP_SECCOMP, 2, r);
    return 0;
}

/*
 * execve through the stub (exec-stub.h): REPORT_FD FILE ARGV..., built on our stack. The report
 * fd crosses this execve (the stub marks it close-on-exec before its own), so a failure to run
 * FILE still comes back as a record naming the step.
 */
static int
exec_through_stub(struct sbx_child_ctx *ctx, int report_fd, const char *file)
{
    const struct sbx_process *p = &ctx->cfg->process;
    size_t n = 0;
    char fd_arg[16];

    while (p->args[n])
        n++;
    char *argv[n + 3];
    snprintf(fd_arg, sizeof(fd_arg), "%d", report_fd);
    argv[0] = fd_arg;
    argv[1] = (char *)file;
    memcpy(argv + 2, p->args, (n + 1) * sizeof(char *));
    syscall(SYS_execveat, ctx->stub_fd, "", argv, p->env, AT_EMPTY_PATH);
    int e = errno;
    /* A filter that allows execve but not execveat: the stub by its /proc path instead. */
    if (e == ENOSYS || e == EPERM) {
        char path[40];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", ctx->stub_fd);
        execve(path, argv, p->env);
    }
    return child_fail(ctx, SBX_STEP_EXEC, 0, e);
}

/*
 * The order matters: landlock and (without no_new_privs) seccomp need privileges we are about
 * to drop; the bounding set must go while we still hold CAP_SETPCAP; with no_new_privs the
 * filter comes last so it never sees our own setup syscalls.
 */
int
child_exec(struct sbx_child_ctx *ctx, int report_fd, const char *file)
{
    const struct sbx_process *p = &ctx->cfg->process;
    int abi, r;

    if ((r = set_rlimits(ctx)) < 0 || (r = set_fds(ctx)) < 0)
        return r;
    if (ctx->opts->exec_fd < 0 && fcntl(report_fd, F_SETFD, 0) < 0)
        return child_fail(ctx, SBX_STEP_FDS, 2, errno);
    if ((r = sbx_landlock_apply(&p->landlock, &abi)) < 0)
        return child_fail(ctx, SBX_STEP_LANDLOCK, 0, r);
    if (!p->no_new_privs && (r = load_seccomp(ctx, report_fd)) < 0)
        return r;
    if ((r = sbx_caps_before_setuid(&p->caps)) < 0)
        return child_fail(ctx, SBX_STEP_CAPS, 0, r);
    if ((r = set_identity(ctx)) < 0 || (r = set_cwd(ctx)) < 0)
        return r;
    if ((r = sbx_caps_after_setuid(&p->caps)) < 0)
        return child_fail(ctx, SBX_STEP_CAPS, 1, r);
    if (p->no_new_privs) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return child_fail(ctx, SBX_STEP_NO_NEW_PRIVS, 0, errno);
        if ((r = load_seccomp(ctx, report_fd)) < 0)
            return r;
    }
    if (ctx->opts->exec_fd < 0)
        return exec_through_stub(ctx, report_fd, file);
    syscall(SYS_execveat, ctx->opts->exec_fd, "", p->args, p->env, AT_EMPTY_PATH);
    return child_fail(ctx, SBX_STEP_EXEC, 0, errno);
}
