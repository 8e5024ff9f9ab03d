/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CVE-2019-5736, for a container that may look at a husk process: husk re-executes itself from
 * a read-only bind mount of its own binary (the file, not a copy), attached nowhere, so every
 * /proc/PID/exe of this process names a file that refuses writes (EROFS) whoever opens it.
 *
 * A container never sees a husk process as its program: that is the exec stub's part (see
 * src/sbx/stub/exec-stub.c). It can see the sandbox process while it sets up only when that
 * process enters a pid namespace which already has processes (`husk exec`, or a config that
 * joins another container's): not dumpable then, it is out of their reach, unless one of them
 * holds CAP_SYS_PTRACE. For that case this costs one more execve, paid only by those verbs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cli.h"
#include "syscalls.h"
#include "util.h"

#ifndef ST_RDONLY
#define ST_RDONLY 1
#endif

int
cli_run_from_readonly_exe(struct cli *cli, struct husk_error **err)
{
    extern char **environ;
    struct statfs sf;

    cleanup_fd int exe = open("/proc/self/exe", O_PATH | O_CLOEXEC);
    if (exe < 0 || fstatfs(exe, &sf) < 0)
        return husk_err(err, errno, "open /proc/self/exe");
    if (sf.f_flags & ST_RDONLY) /* already: the mount we made, or the host's own */
        return 0;
    cleanup_fd int tree =
        sys_open_tree(exe, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0 && (errno == EPERM || errno == ENOSYS))
        return 0; /* no CAP_SYS_ADMIN (rootless: the binary is not ours to write anyway) */
    if (tree < 0)
        return husk_err(err, errno, "bind the husk binary read-only");
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (sys_mount_setattr(tree, "", AT_EMPTY_PATH, &attr) < 0)
        return husk_err(err, errno, "make the husk binary's bind mount read-only");
    syscall(SYS_execveat, tree, "", cli->argv, environ, AT_EMPTY_PATH);
    return husk_err(err, errno, "re-execute husk from its read-only bind mount");
}
