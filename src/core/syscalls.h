/* SPDX-License-Identifier: Apache-2.0 */
/* Raw wrappers for syscalls glibc 2.36 lacks or declares in conflicting headers, and for the
 * identity calls a sandbox's child makes: glibc's setresuid, setresgid and setgroups signal
 * every other thread of the process to change its identity too, and a child cloned raw from the
 * multi-threaded daemon has a copy of the daemon's thread list (a failing tgkill per thread,
 * per call). The child is single-threaded: the syscall is the whole job. */
#ifndef HUSK_CORE_SYSCALLS_H
#define HUSK_CORE_SYSCALLS_H

#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static inline long
sys_clone3(struct clone_args *args)
{
    return syscall(SYS_clone3, args, sizeof(*args));
}

static inline int
sys_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

static inline int
sys_open_tree(int dfd, const char *path, unsigned flags)
{
    return (int)syscall(SYS_open_tree, dfd, path, flags);
}

static inline int
sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to, unsigned flags)
{
    return (int)syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}

static inline int
sys_fsopen(const char *fsname, unsigned flags)
{
    return (int)syscall(SYS_fsopen, fsname, flags);
}

static inline int
sys_fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux)
{
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

static inline int
sys_fsmount(int fd, unsigned flags, unsigned attr_flags)
{
    return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

static inline int
sys_mount_setattr(int dfd, const char *path, unsigned flags, struct mount_attr *attr)
{
    return (int)syscall(SYS_mount_setattr, dfd, path, flags, attr, sizeof(*attr));
}

static inline int
sys_openat2(int dfd, const char *path, struct open_how *how)
{
    return (int)syscall(SYS_openat2, dfd, path, how, sizeof(*how));
}

static inline int
sys_pidfd_open(pid_t pid, unsigned flags)
{
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

static inline int
sys_pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned flags)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags);
}

static inline int
sys_setresuid(uid_t r, uid_t e, uid_t s)
{
    return (int)syscall(SYS_setresuid, r, e, s);
}

static inline int
sys_setresgid(gid_t r, gid_t e, gid_t s)
{
    return (int)syscall(SYS_setresgid, r, e, s);
}

static inline int
sys_setgroups(size_t n, const gid_t *groups)
{
    return (int)syscall(SYS_setgroups, n, groups);
}

static inline int
sys_close_range(unsigned first, unsigned last, unsigned flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}

#endif
