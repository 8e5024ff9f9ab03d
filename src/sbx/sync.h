/* SPDX-License-Identifier: Apache-2.0 */
/* The parent/child protocol: fixed-size records on a SOCK_SEQPACKET pair, no heap in the child. */
#ifndef HUSK_SBX_SYNC_H
#define HUSK_SBX_SYNC_H

#include <stdint.h>

#include "husk/sandbox.h"

enum sbx_msg_kind {
    SBX_MSG_GO = 1, /* parent -> child: proceed to the next phase */
    SBX_MSG_READY,  /* child -> parent: set up, waiting to be started */
    SBX_MSG_ERROR,  /* child -> parent (or start connection): a step failed */
    SBX_MSG_PTY,    /* child -> parent: the terminal master, with SCM_RIGHTS */
    SBX_MSG_NOTIFY, /* child -> parent: the notify filter's listener, with SCM_RIGHTS */
};

/* Every step the child takes between clone and execve; the index names which item failed. */
enum sbx_step {
    SBX_STEP_SYNC,
    SBX_STEP_SETNS,
    SBX_STEP_USERNS_ID,
    SBX_STEP_UNSHARE_CGROUP,
    SBX_STEP_OOM_SCORE,
    SBX_STEP_ROOT_PROPAGATION,
    SBX_STEP_ROOTFS_BIND,
    SBX_STEP_MOUNT_DEST,
    SBX_STEP_MOUNT,
    SBX_STEP_MOUNT_PROPAGATION,
    SBX_STEP_DEVICE,
    SBX_STEP_DEFAULT_DEVICE,
    SBX_STEP_DEV_LINK,
    SBX_STEP_MASK_PATH,
    SBX_STEP_READONLY_PATH,
    SBX_STEP_PIVOT_ROOT,
    SBX_STEP_CHROOT,
    SBX_STEP_ROOT_READONLY,
    SBX_STEP_HOSTNAME,
    SBX_STEP_DOMAINNAME,
    SBX_STEP_SYSCTL,
    SBX_STEP_RLIMIT,
    SBX_STEP_CWD,
    SBX_STEP_CWD_OUTSIDE,
    SBX_STEP_SETGROUPS,
    SBX_STEP_SETGID,
    SBX_STEP_SETUID,
    SBX_STEP_NO_NEW_PRIVS,
    SBX_STEP_CAPS,
    SBX_STEP_SECCOMP,
    SBX_STEP_LANDLOCK,
    SBX_STEP_FDS,
    SBX_STEP_EXEC_NOT_FOUND,
    SBX_STEP_EXEC,
    SBX_STEP_START_ACCEPT,
    SBX_STEP_TTY,
    SBX_STEP_HOOK,
    SBX_STEP_ROOTFS_IMAGE,
    SBX_STEP_SETSID,
    SBX_STEP_LOOPBACK,
    SBX_STEP_CWD_CHECK,
    SBX_STEP_SETNS_PIDFD,
    SBX_STEP__MAX
};

struct sbx_msg {
    int32_t kind;
    int32_t step;
    int32_t err;
    int32_t index;
};

/* Child side: async-signal-safe, no allocation. 0 or -errno. */
int sbx_msg_send(int fd, int kind, int step, int err, int index);
int sbx_msg_recv(int fd, struct sbx_msg *m); /* 0, -EPIPE on EOF, or -errno */

/* Parent side: turn a child's error record into an error object naming the config item. */
int sbx_msg_to_error(const struct sbx_msg *m, const struct sbx_config *cfg,
                     struct husk_error **err);

#endif
