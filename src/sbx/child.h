/* SPDX-License-Identifier: Apache-2.0 */
/* The child's side of spawn: setup steps run between clone3 and execve. */
#ifndef HUSK_SBX_CHILD_H
#define HUSK_SBX_CHILD_H

#include "husk/sandbox.h"
#include "sync.h"

/* State of the child; lives on its stack. Steps record where they failed. */
struct sbx_child_ctx {
    const struct sbx_config *cfg;
    const struct sbx_spawn_opts *opts;
    int sync_fd;
    int rootfd; /* O_PATH fd of the rootfs bind mount, -1 without a mount namespace */
    int step, index, err;
    bool caller_privileged; /* the parent is root in the initial user namespace */
    bool no_mknod;          /* mknod was refused (a user namespace): devices are bound */
    int host_pid;           /* our pid as the host sees it (sent with the first GO) */
    /* A detached mount tree that becomes the root (cfg->rootfs_image's, or a clone of
     * opts->rootfs_fd), or -1: cfg->rootfs is bound by path. */
    int root_tree_fd;
    bool root_on_top; /* the tree was attached on top of "/" (no path to it exists) */
    /* The exec stub's sealed memfd (exec-stub.h), or -1: the program (unless opts->exec_fd
     * names the caller's own) and the startContainer hooks are executed through it. */
    int stub_fd;
    /* /proc/self/cgroup as read before the cgroup namespace hides the paths: a user namespace
     * binds the container's own cgroup directories instead of mounting cgroupfs. */
    char self_cgroup[2048];
};

/* Each returns 0 or -errno; on failure ctx->step and ctx->index say what failed. */
static inline int
child_fail(struct sbx_child_ctx *ctx, int step, int index, int errnum)
{
    ctx->step = step;
    ctx->index = index;
    ctx->err = errnum < 0 ? -errnum : errnum;
    return errnum > 0 ? -errnum : errnum;
}

int child_setup_rootfs(struct sbx_child_ctx *ctx);
int child_attach_root_tree(struct sbx_child_ctx *ctx);
/* Parent side: *out is the root tree for the child, at or above min_fd: the image's
 * (opts->rootfs_image_fd, or mounted now), a clone of opts->rootfs_fd, or -1 for neither. */
/* Parent side: the tree's owners mapped through the user namespace of the child `pid`. */
int sbx_root_tree_idmap(int tree_fd, pid_t pid, struct husk_error **err);
int sbx_root_tree_child_fd(const struct sbx_config *cfg, const struct sbx_spawn_opts *opts,
                           int min_fd, int *out, struct husk_error **err);
int child_run_start_hooks(struct sbx_child_ctx *ctx, int host_pid);
int child_enter_root(struct sbx_child_ctx *ctx);
int child_protect_paths(struct sbx_child_ctx *ctx);
int child_finish_process(struct sbx_child_ctx *ctx);
int child_resolve_exec(struct sbx_child_ctx *ctx, char *buf, size_t len);
int child_exec(struct sbx_child_ctx *ctx, int report_fd, const char *file);

/* Bring "lo" up in our (new) network namespace: it starts down. 0 or -errno; no heap. */
int child_loopback_up(void);

/* Open (creating as needed) a path inside the root without leaving it. */
int child_open_in_root(int rootfd, const char *path, bool create, bool is_dir);

_Noreturn void sbx_child_main(struct sbx_child_ctx *ctx);

#endif
