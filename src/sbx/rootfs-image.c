/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A rootfs from an erofs or squashfs image. The parent mounts the image read-only (erofs
 * straight from the file on Linux 6.12+, otherwise through a read-only, autoclear loop device)
 * and, unless root.readonly, covers it with an overlay whose upper layer is a fresh tmpfs, all
 * as detached mounts (fsopen/fsmount): attached nowhere, seen by no one. The parent does this
 * because the child already sits in the container's cgroup, whose device rules refuse the loop
 * device. The child, whose "/" is already a slave, attaches the tree on root.path with one
 * move_mount; the usual rootfs code then binds it like a directory. The mounts live only in
 * the container's mount namespace and go away with it, the loop device with them; if the child
 * never attaches it, closing the fd releases everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/loop.h>

#include "child.h"
#include "syscalls.h"
#include "util.h"

/* A free loop device backed by the image, read-only; AUTOCLEAR detaches it when its last user
 * (the mount) goes. Returns the open device (kept until mounted) or -errno. */
static int
loop_attach(int image_fd, char *dev, size_t len)
{
    cleanup_fd int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return -errno;
    for (int tries = 0; tries < 32; tries++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0)
            return -errno;
        snprintf(dev, len, "/dev/loop%d", n);
        int fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        struct loop_config lc = {.fd = (unsigned)image_fd};
        lc.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_CONFIGURE, &lc) == 0)
            return fd;
        int e = errno;
        close(fd);
        if (e != EBUSY) /* EBUSY: another process took it between GET_FREE and CONFIGURE */
            return -e;
    }
    return -EBUSY;
}

/* A detached mount of a new filesystem; -errno. */
static int
fs_create(const char *type, const char *source, const char *mode, unsigned attrs)
{
    cleanup_fd int fs = sys_fsopen(type, FSOPEN_CLOEXEC);
    if (fs < 0)
        return -errno;
    if ((source && sys_fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0) ||
        (source && sys_fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0) ||
        (mode && sys_fsconfig(fs, FSCONFIG_SET_STRING, "mode", mode, 0) < 0) ||
        sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return -errno;
    int mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, attrs);
    return mnt < 0 ? -errno : mnt;
}

static int
mount_image(const struct sbx_config *cfg, struct husk_error **err)
{
    const char *type = cfg->rootfs_image_type ? cfg->rootfs_image_type : "erofs";
    unsigned attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
    char dev[64];

    if (strcmp(type, "erofs") == 0) {
        int mnt = fs_create(type, cfg->rootfs_image, NULL, attrs);
        if (mnt >= 0)
            return mnt;
        if (mnt != -ENOTBLK) /* ENOTBLK: before Linux 6.12 erofs needs a block device */
            return husk_err(err, -mnt, "mount erofs image '%s'", cfg->rootfs_image);
    }
    cleanup_fd int image = open(cfg->rootfs_image, O_RDONLY | O_CLOEXEC);
    if (image < 0)
        return husk_err(err, errno, "open rootfs image '%s'", cfg->rootfs_image);
    cleanup_fd int loop = loop_attach(image, dev, sizeof(dev));
    if (loop < 0)
        return husk_err(err, -loop, "loop device for rootfs image '%s'", cfg->rootfs_image);
    int mnt = fs_create(type, dev, NULL, attrs);
    if (mnt < 0)
        return husk_err(err, -mnt, "mount %s image '%s' (%s)", type, cfg->rootfs_image, dev);
    return mnt;
}

/* overlay(lower = image, upper = a new tmpfs), the layers passed as fds (Linux 6.13+). */
static int
mount_overlay(int image, struct husk_error **err)
{
    cleanup_fd int tmp = fs_create("tmpfs", NULL, "0755", MOUNT_ATTR_NODEV);
    if (tmp < 0)
        return husk_err(err, -tmp, "tmpfs for the rootfs image's upper layer");
    if (mkdirat(tmp, "upper", 0755) < 0 || mkdirat(tmp, "work", 0700) < 0)
        return husk_err(err, errno, "overlay directories on tmpfs");
    cleanup_fd int upper = openat(tmp, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_fd int work = openat(tmp, "work", O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_fd int fs = sys_fsopen("overlay", FSOPEN_CLOEXEC);
    if (upper < 0 || work < 0 || fs < 0)
        return husk_err(err, errno, "overlay on the rootfs image");
    if (sys_fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, image) < 0 ||
        sys_fsconfig(fs, FSCONFIG_SET_FD, "upperdir", NULL, upper) < 0 ||
        sys_fsconfig(fs, FSCONFIG_SET_FD, "workdir", NULL, work) < 0 ||
        sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return husk_err(err, errno, "overlay on the rootfs image (layers by fd need Linux 6.13)");
    int mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, 0);
    if (mnt < 0)
        return husk_err(err, errno, "mount the overlay on the rootfs image");
    return mnt;
}

int
sbx_rootfs_image_mount(const struct sbx_config *cfg, struct husk_error **err)
{
    cleanup_fd int image = mount_image(cfg, err);
    if (image < 0)
        return image;
    /* A read-only root needs no upper layer: the image is the root (its mount points exist:
     * `husk pack` and `husk image import` create them). */
    if (cfg->rootfs_readonly)
        return steal_fd(&image);
    return mount_overlay(image, err);
}

/* A clone of the directory (the fd's, or the path's), with its submounts, attached nowhere. */
static int
clone_rootfs(int rootfs_fd, const char *path, struct husk_error **err)
{
    int fd = sys_open_tree(rootfs_fd, path ? path : "",
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                               (path ? 0 : AT_EMPTY_PATH));
    return fd < 0 ? husk_err(err, errno, "clone the rootfs '%s'", path ? path : "(by fd)") : fd;
}

int
sbx_root_tree_child_fd(const struct sbx_config *cfg, const struct sbx_spawn_opts *opts, int min_fd,
                       int *out, struct husk_error **err)
{
    cleanup_fd int own = -1;
    int given = -1;
    *out = -1;
    if (cfg->rootfs_image && opts->rootfs_image_fd >= 0)
        given = opts->rootfs_image_fd;
    else if (cfg->rootfs_image)
        own = sbx_rootfs_image_mount(cfg, err);
    else if (opts->rootfs_fd >= 0)
        own = clone_rootfs(opts->rootfs_fd, NULL, err);
    else if (cfg->rootfs_idmap && cfg->rootfs) /* an idmapped root is set up detached */
        own = clone_rootfs(AT_FDCWD, cfg->rootfs, err);
    else
        return 0;
    if (given < 0 && own < 0)
        return own;
    /* Clear of the fds the process inherits. */
    *out = fcntl(given >= 0 ? given : own, F_DUPFD_CLOEXEC, min_fd);
    return *out < 0 ? husk_err(err, errno, "dup the rootfs tree") : 0;
}

/* Files of the root tree as the sandbox's user namespace maps their owners: what the host's
 * root owns is root's inside. Filesystems without idmapped mounts (squashfs) keep their owners,
 * seen as the overflow id inside. */
int
sbx_root_tree_idmap(int tree_fd, pid_t pid, struct husk_error **err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/user", pid);
    cleanup_fd int userns = open(path, O_RDONLY | O_CLOEXEC);
    if (userns < 0)
        return husk_err(err, errno, "open %s", path);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns};
    if (sys_mount_setattr(tree_fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr) < 0 && errno != EINVAL)
        return husk_err(err, errno, "map the rootfs's owners into the user namespace");
    return 0;
}

/*
 * Attach the tree on top of "/" in our (slave) mount namespace and use it as the root: no
 * path leads to it, so neither the rootfs's host path nor its parents need to be reachable
 * by the container's user (a user namespace's root may not search a 0700 parent), and a
 * caller that checked a directory and kept it open is not exposed to it being swapped since.
 * Absolute paths still resolve from the old root until pivot_root, as host bind sources must.
 */
int
child_attach_root_tree(struct sbx_child_ctx *ctx)
{
    if (sys_move_mount(ctx->root_tree_fd, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return child_fail(
            ctx, ctx->cfg->rootfs_image ? SBX_STEP_ROOTFS_IMAGE : SBX_STEP_ROOTFS_BIND, 0, errno);
    ctx->rootfd = ctx->root_tree_fd; /* the attached tree's root */
    ctx->root_tree_fd = -1;
    ctx->root_on_top = true;
    return 0;
}
