/* SPDX-License-Identifier: Apache-2.0 */
/* Parent/child records and their translation into error messages. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "sync.h"
#include "util.h"

int
sbx_msg_send(int fd, int kind, int step, int err, int index)
{
    struct sbx_msg m = {.kind = kind, .step = step, .err = err, .index = index};
    ssize_t n;

    do
        n = send(fd, &m, sizeof(m), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == sizeof(m) ? 0 : -EIO;
}

int
sbx_msg_recv(int fd, struct sbx_msg *m)
{
    ssize_t n;

    do
        n = recv(fd, m, sizeof(*m), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EPIPE;
    return n == sizeof(*m) ? 0 : -EIO;
}

static const char *const step_names[SBX_STEP__MAX] = {
    [SBX_STEP_SYNC] = "wait for the runtime",
    [SBX_STEP_SETNS] = "join namespace",
    [SBX_STEP_USERNS_ID] = "become root in the user namespace",
    [SBX_STEP_UNSHARE_CGROUP] = "create cgroup namespace",
    [SBX_STEP_OOM_SCORE] = "set oom_score_adj",
    [SBX_STEP_ROOT_PROPAGATION] = "set root propagation",
    [SBX_STEP_ROOTFS_BIND] = "bind the rootfs",
    [SBX_STEP_MOUNT_DEST] = "resolve mount destination",
    [SBX_STEP_MOUNT] = "mount",
    [SBX_STEP_MOUNT_PROPAGATION] = "set mount propagation",
    [SBX_STEP_DEVICE] = "create device",
    [SBX_STEP_DEFAULT_DEVICE] = "create default device",
    [SBX_STEP_DEV_LINK] = "create /dev link",
    [SBX_STEP_MASK_PATH] = "mask path",
    [SBX_STEP_READONLY_PATH] = "make path read-only",
    [SBX_STEP_PIVOT_ROOT] = "pivot_root",
    [SBX_STEP_CHROOT] = "chroot",
    [SBX_STEP_ROOT_READONLY] = "make root read-only",
    [SBX_STEP_HOSTNAME] = "set hostname",
    [SBX_STEP_DOMAINNAME] = "set domainname",
    [SBX_STEP_SYSCTL] = "set sysctl",
    [SBX_STEP_RLIMIT] = "set rlimit",
    [SBX_STEP_CWD] = "change to cwd",
    [SBX_STEP_CWD_OUTSIDE] = "cwd is outside the container root",
    [SBX_STEP_SETGROUPS] = "set additional gids",
    [SBX_STEP_SETGID] = "set gid",
    [SBX_STEP_SETUID] = "set uid",
    [SBX_STEP_NO_NEW_PRIVS] = "set no_new_privs",
    [SBX_STEP_CAPS] = "set capabilities",
    [SBX_STEP_SECCOMP] = "load seccomp filter",
    [SBX_STEP_LANDLOCK] = "apply landlock rules",
    [SBX_STEP_FDS] = "close inherited fds",
    [SBX_STEP_EXEC_NOT_FOUND] = "executable file not found in $PATH",
    [SBX_STEP_EXEC] = "exec",
    [SBX_STEP_START_ACCEPT] = "wait for start",
    [SBX_STEP_TTY] = "set up the terminal",
    [SBX_STEP_HOOK] = "startContainer hook",
    [SBX_STEP_ROOTFS_IMAGE] = "attach the rootfs image",
    [SBX_STEP_SETSID] = "start a session",
    [SBX_STEP_LOOPBACK] = "bring up loopback",
    [SBX_STEP_CWD_CHECK] = "check the cwd",
    [SBX_STEP_SETNS_PIDFD] = "join the namespaces of the process to join (pidfd)",
};

static const char *const rlimit_names[] = {
    [RLIMIT_CPU] = "RLIMIT_CPU",           [RLIMIT_FSIZE] = "RLIMIT_FSIZE",
    [RLIMIT_DATA] = "RLIMIT_DATA",         [RLIMIT_STACK] = "RLIMIT_STACK",
    [RLIMIT_CORE] = "RLIMIT_CORE",         [RLIMIT_RSS] = "RLIMIT_RSS",
    [RLIMIT_NPROC] = "RLIMIT_NPROC",       [RLIMIT_NOFILE] = "RLIMIT_NOFILE",
    [RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK",   [RLIMIT_AS] = "RLIMIT_AS",
    [RLIMIT_LOCKS] = "RLIMIT_LOCKS",       [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
    [RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",
    [RLIMIT_RTPRIO] = "RLIMIT_RTPRIO",     [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
};

/* The config item a failed step was working on, for the message. */
static char *
step_object(const struct sbx_msg *m, const struct sbx_config *cfg)
{
    size_t i = (size_t)m->index;
    const struct sbx_process *p = &cfg->process;

    switch (m->step) {
    case SBX_STEP_SETNS:
        if (i < SBX_NS_COUNT)
            return xasprintf(" %s '%s'", sbx_ns_name(i), cfg->ns[i].path ? cfg->ns[i].path : "");
        break;
    case SBX_STEP_MOUNT_DEST:
    case SBX_STEP_MOUNT:
    case SBX_STEP_MOUNT_PROPAGATION:
        if (i < cfg->n_mounts)
            return xasprintf(" '%s' on '%s'",
                             cfg->mounts[i].source ? cfg->mounts[i].source : cfg->mounts[i].type,
                             cfg->mounts[i].destination);
        break;
    case SBX_STEP_DEVICE:
        if (i < cfg->n_devices)
            return xasprintf(" '%s'", cfg->devices[i].path);
        break;
    case SBX_STEP_MASK_PATH:
        if (i < strv_len(cfg->masked_paths))
            return xasprintf(" '%s'", cfg->masked_paths[i]);
        break;
    case SBX_STEP_READONLY_PATH:
        if (i < strv_len(cfg->readonly_paths))
            return xasprintf(" '%s'", cfg->readonly_paths[i]);
        break;
    case SBX_STEP_SYSCTL:
        if (i < cfg->n_sysctl)
            return xasprintf(" '%s'", cfg->sysctl[i].key);
        break;
    case SBX_STEP_RLIMIT:
        if (i < p->n_rlimits && (size_t)p->rlimits[i].resource < ARRAY_SIZE(rlimit_names))
            return xasprintf(" %s", rlimit_names[p->rlimits[i].resource]);
        break;
    case SBX_STEP_CWD:
    case SBX_STEP_CWD_OUTSIDE:
    case SBX_STEP_CWD_CHECK:
        return xasprintf(" '%s'", p->cwd ? p->cwd : "/");
    case SBX_STEP_SETUID:
        return xasprintf(" %u", p->uid);
    case SBX_STEP_SETGID:
        return xasprintf(" %u", p->gid);
    case SBX_STEP_EXEC:
        return xasprintf(" '%s'", p->args && p->args[0] ? p->args[0] : "");
    case SBX_STEP_ROOTFS_IMAGE:
        return xasprintf(" '%s' on '%s'", cfg->rootfs_image ? cfg->rootfs_image : "",
                         cfg->rootfs ? cfg->rootfs : "");
    case SBX_STEP_HOOK:
        if (i < cfg->n_start_hooks)
            return xasprintf(" %zu '%s'%s", i, cfg->start_hooks[i].path,
                             m->err == ETIMEDOUT   ? " timed out"
                             : m->err == ECANCELED ? " failed"
                                                   : "");
        break;
    default:
        break;
    }
    return xstrdup("");
}

int
sbx_msg_to_error(const struct sbx_msg *m, const struct sbx_config *cfg, struct husk_error **err)
{
    const char *name = (m->step >= 0 && m->step < SBX_STEP__MAX && step_names[m->step])
                           ? step_names[m->step]
                           : "unknown step";
    cleanup_free char *obj = step_object(m, cfg);

    if (m->step == SBX_STEP_EXEC_NOT_FOUND)
        return husk_err(err, 0, "exec: '%s': executable file not found in $PATH",
                        cfg->process.args[0]);
    if (m->step == SBX_STEP_CWD_OUTSIDE)
        return husk_err(err, 0, "cwd%s is outside the container root", obj);
    if (m->step == SBX_STEP_CWD_CHECK)
        return husk_err(err, m->err,
                        "cwd%s: getcwd failed, so it cannot be checked to be inside the "
                        "container root (does the seccomp profile deny getcwd?)",
                        obj);
    return husk_err(err, m->err, "%s%s", name, obj);
}
