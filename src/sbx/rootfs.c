/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The child's filesystem: bind the rootfs, mount everything under it with every destination
 * resolved inside the root (openat2 RESOLVE_IN_ROOT, so a symlink in the rootfs can never send
 * a mount onto the host), create devices, mask paths, then pivot_root. No heap: stack buffers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "child.h"
#include "syscalls.h"
#include "util.h"

#define PROP_FLAGS (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)

static int
open_in_root(int rootfd, const char *path)
{
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = sys_openat2(rootfd, path, &how);
    return fd < 0 ? -errno : fd;
}

/* A missing component may be a dangling symlink: create its target, inside the root. */
static int open_in_root_depth(int rootfd, const char *path, bool create, bool is_dir, int depth);

static int
follow_dangling(int rootfd, int parent, const char *prefix, const char *name, const char *rest,
                bool is_dir, int depth)
{
    char target[PATH_MAX], next[PATH_MAX];
    ssize_t n = readlinkat(parent, name, target, sizeof(target) - 1);
    if (n < 0)
        return -ENOENT;
    target[n] = '\0';
    size_t dir_len = (size_t)(name - prefix);
    int k = target[0] == '/'
                ? snprintf(next, sizeof(next), "%s/%s", target, rest)
                : snprintf(next, sizeof(next), "%.*s%s/%s", (int)dir_len, prefix, target, rest);
    if (k < 0 || (size_t)k >= sizeof(next))
        return -ENAMETOOLONG;
    return open_in_root_depth(rootfd, next, true, is_dir, depth + 1);
}

/*
 * Walk the path one component at a time, each resolved from the root, creating what is
 * missing with mkdirat() on the parent's fd. Returns an O_PATH fd or -errno.
 */
static int
open_in_root_depth(int rootfd, const char *path, bool create, bool is_dir, int depth)
{
    char buf[PATH_MAX];
    int fd = open_in_root(rootfd, path);

    if (fd >= 0 || fd != -ENOENT || !create)
        return fd;
    if (depth > 16)
        return -ELOOP;
    if (strlen(path) >= sizeof(buf))
        return -ENAMETOOLONG;
    strcpy(buf, path);

    int parent = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
    if (parent < 0)
        return -errno;
    char *p = buf;
    for (;;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            return parent;
        char *name = p;
        while (*p && *p != '/')
            p++;
        bool last = true;
        for (char *q = p; *q; q++)
            if (*q != '/')
                last = false;
        char saved = *p;
        *p = '\0';
        int next = open_in_root(rootfd, buf);
        if (next == -ENOENT) {
            int r;
            if (!last || is_dir) {
                r = mkdirat(parent, name, 0755);
            } else {
                r = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                           0644);
                if (r >= 0)
                    close(r);
            }
            if (r < 0 && errno == EEXIST) {
                next =
                    follow_dangling(rootfd, parent, buf, name, saved ? p + 1 : "", is_dir, depth);
                close(parent);
                return next;
            }
            if (r < 0) {
                int e = errno;
                close(parent);
                return -e;
            }
            next = open_in_root(rootfd, buf);
        }
        close(parent);
        if (next < 0)
            return next;
        parent = next;
        *p = saved;
    }
}

int
child_open_in_root(int rootfd, const char *path, bool create, bool is_dir)
{
    return open_in_root_depth(rootfd, path, create, is_dir, 0);
}

static unsigned
ms_to_attr(unsigned long ms)
{
    unsigned a = 0;
    if (ms & MS_RDONLY)
        a |= MOUNT_ATTR_RDONLY;
    if (ms & MS_NOSUID)
        a |= MOUNT_ATTR_NOSUID;
    if (ms & MS_NODEV)
        a |= MOUNT_ATTR_NODEV;
    if (ms & MS_NOEXEC)
        a |= MOUNT_ATTR_NOEXEC;
    if (ms & MS_NODIRATIME)
        a |= MOUNT_ATTR_NODIRATIME;
    if (ms & MS_NOATIME)
        a |= MOUNT_ATTR_NOATIME;
    else if (ms & MS_STRICTATIME)
        a |= MOUNT_ATTR_STRICTATIME;
    else if (ms & MS_RELATIME)
        a |= MOUNT_ATTR_RELATIME;
    return a;
}

/* Bind: clone the source tree, set its attributes while detached, attach it in one step. */
static int
mount_bind(const struct sbx_mount *m, int dstfd)
{
    bool rec = (m->flags & MS_REC) != 0;
    cleanup_fd int tree = sys_open_tree(
        AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
    if (tree < 0)
        return -errno;
    struct mount_attr attr = {
        .attr_set = ms_to_attr(m->flags),
        .attr_clr = ms_to_attr(m->clear),
    };
    if (attr.attr_set & (MOUNT_ATTR_NOATIME | MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_RELATIME))
        attr.attr_clr |= MOUNT_ATTR__ATIME;
    if ((attr.attr_set || attr.attr_clr) &&
        sys_mount_setattr(tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &attr) < 0)
        return -errno;
    if (sys_move_mount(tree, "", dstfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return -errno;
    return 0;
}

static void
fd_path(char *buf, size_t len, int fd)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* A filesystem: mount(2) on the fd's own path, so the target cannot be swapped underneath. */
static int
mount_fs(const struct sbx_mount *m, int dstfd)
{
    char target[64];
    fd_path(target, sizeof(target), dstfd);
    unsigned long flags = m->flags & ~(PROP_FLAGS | MS_REC | MS_BIND);
    const char *src = m->source ? m->source : m->type;
    if (mount(src, target, m->type, flags, m->data) < 0)
        return -errno;
    return 0;
}

/* Keep only what names the hierarchy ("cpu,cpuacct", "name=systemd") from a mount's options. */
static void
cgroup_opts(const char *in, char *out, size_t len)
{
    static const char *const generic[] = {"rw",     "ro",    "relatime", "noatime",
                                          "nosuid", "nodev", "noexec",   "strictatime"};
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", in);
    out[0] = '\0';
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool skip = false;
        for (size_t i = 0; i < ARRAY_SIZE(generic); i++)
            skip |= strcmp(t, generic[i]) == 0;
        if (!skip)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? "," : "", t);
    }
}

/*
 * type "cgroup" means "the container's view of the cgroup filesystem", as runc reads it:
 * cgroup2 on a unified host; on v1 and hybrid hosts a tmpfs holding one mount per hierarchy
 * the host has under /sys/fs/cgroup. In a cgroup namespace each shows the container's subtree.
 */
/* Lines of a file through a fixed buffer (no heap between clone and exec). A line longer than
 * the caller's buffer is skipped whole. */
struct line_reader {
    int fd;
    size_t len, off;
    char buf[4096];
};

/* 1 with the next line in out, 0 at the end, -errno. */
static int
next_line(struct line_reader *r, char *out, size_t cap)
{
    size_t n = 0;
    bool too_long = false;
    for (;;) {
        if (r->off == r->len) {
            ssize_t k = read(r->fd, r->buf, sizeof(r->buf));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return -errno;
            if (k == 0) {
                out[n] = '\0';
                return n > 0 && !too_long ? 1 : 0;
            }
            r->len = (size_t)k;
            r->off = 0;
        }
        char c = r->buf[r->off++];
        if (c == '\n') {
            if (!too_long) {
                out[n] = '\0';
                return 1;
            }
            n = 0;
            too_long = false;
        } else if (n + 1 < cap) {
            out[n++] = c;
        } else {
            too_long = true;
        }
    }
}

/* One hierarchy the host mounts directly under /sys/fs/cgroup. */
struct cg_mount {
    char name[64];  /* "cpu,cpuacct", "unified" */
    char opts[256]; /* what names the hierarchy; empty for cgroup2 */
    bool v2;
};
#define CG_MAX_MOUNTS 32

/* Every cgroup and cgroup2 mount at /sys/fs/cgroup/NAME, read whole before anything is
 * mounted (our own mounts would show up in the file while we read it). */
static int
host_cgroup_mounts(struct cg_mount *out, size_t *n)
{
    static const char prefix[] = "/sys/fs/cgroup/";
    struct line_reader r = {.fd = open("/proc/self/mounts", O_RDONLY | O_CLOEXEC)};
    char line[1024];
    int k;
    if (r.fd < 0)
        return -errno;
    *n = 0;
    while ((k = next_line(&r, line, sizeof(line))) > 0) {
        char src[64], dir[256], type[16], mopts[256];
        if (sscanf(line, "%63s %255s %15s %255s", src, dir, type, mopts) != 4 ||
            !str_has_prefix(dir, prefix))
            continue;
        const char *name = dir + strlen(prefix);
        bool v2 = strcmp(type, "cgroup2") == 0;
        if (name[0] == '\0' || strchr(name, '/') || strlen(name) >= sizeof(out->name) ||
            (!v2 && strcmp(type, "cgroup") != 0) || *n == CG_MAX_MOUNTS)
            continue;
        struct cg_mount *m = &out[(*n)++];
        snprintf(m->name, sizeof(m->name), "%s", name);
        m->v2 = v2;
        if (v2)
            m->opts[0] = '\0';
        else
            cgroup_opts(mopts, m->opts, sizeof(m->opts));
    }
    close(r.fd);
    return k;
}

/* Whether every comma-separated item of want[0..want_len) is one of `have`'s. */
static bool
all_listed(const char *want, size_t want_len, const char *have)
{
    const char *end = want + want_len;
    for (const char *w = want; w < end;) {
        size_t n = strcspn(w, ",");
        if (n > (size_t)(end - w))
            n = (size_t)(end - w);
        bool found = false;
        for (const char *h = have; *h && !found;) {
            size_t hn = strcspn(h, ",");
            found = hn == n && strncmp(h, w, n) == 0;
            h += hn + (h[hn] != '\0');
        }
        if (!found)
            return false;
        w += n + 1;
    }
    return true;
}

/* Our cgroup in the hierarchy mounted with these options, from the ID:CONTROLLERS:PATH lines
 * of /proc/self/cgroup read before the cgroup namespace was made. */
static int
own_cgroup(const char *self, bool v2, const char *hier_opts, char *path, size_t len)
{
    for (const char *line = self; *line;) {
        const char *end = line + strcspn(line, "\n");
        const char *c1 = memchr(line, ':', (size_t)(end - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
        if (c2) {
            size_t list_len = (size_t)(c2 - c1 - 1);
            bool match =
                v2 ? list_len == 0 : list_len > 0 && all_listed(c1 + 1, list_len, hier_opts);
            if (match) {
                snprintf(path, len, "%.*s", (int)(end - c2 - 1), c2 + 1);
                return 0;
            }
        }
        line = *end ? end + 1 : end;
    }
    return -ENOENT;
}

/*
 * A user namespace may not mount cgroup v1. Bind the container's own directory of each
 * hierarchy instead (read-only as the mount asks), so the container sees its own limits and
 * nothing of the host's tree. Without our paths (no /proc when the child started), bind the
 * host's tree as runc does.
 */
static int
bind_own_cgroups(int rootfd, const struct sbx_mount *m, int dstfd, const char *self)
{
    struct cg_mount hier[CG_MAX_MOUNTS];
    struct sbx_mount bind = *m;
    char target[64], own[1024], src[PATH_MAX];
    size_t n = 0;
    bind.source = "/sys/fs/cgroup";
    bind.flags = (m->flags & ~PROP_FLAGS) | MS_BIND | MS_REC;
    if (self == NULL || *self == '\0')
        return mount_bind(&bind, dstfd);
    int r = host_cgroup_mounts(hier, &n);
    if (r < 0)
        return r;
    fd_path(target, sizeof(target), dstfd);
    if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
        return -errno;
    /* dstfd still names the directory underneath; work in the new tmpfs. */
    cleanup_fd int top = child_open_in_root(rootfd, m->destination, false, true);
    if (top < 0)
        return top;
    bind.flags &= ~MS_REC;
    for (size_t i = 0; i < n; i++) {
        if (own_cgroup(self, hier[i].v2, hier[i].opts, own, sizeof(own)) < 0)
            continue;
        snprintf(src, sizeof(src), "/sys/fs/cgroup/%.63s%.1023s", hier[i].name, own);
        bind.source = src;
        if (mkdirat(top, hier[i].name, 0755) < 0 && errno != EEXIST)
            return -errno;
        cleanup_fd int sub =
            openat(top, hier[i].name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if ((r = sub < 0 ? -errno : mount_bind(&bind, sub)) < 0)
            return r;
    }
    fd_path(target, sizeof(target), top);
    if ((m->flags & MS_RDONLY) &&
        mount(NULL, target, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
              "mode=755") < 0)
        return -errno;
    return 0;
}

static int
mount_cgroupfs(int rootfd, const struct sbx_mount *m, int dstfd, const char *self)
{
    struct cg_mount hier[CG_MAX_MOUNTS];
    char target[64], path[sizeof(target) + sizeof(hier[0].name) + 1];
    unsigned long flags = m->flags & ~(PROP_FLAGS | MS_REC | MS_BIND);
    size_t n = 0;
    struct statfs sfs;
    bool v2 = statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;

    fd_path(target, sizeof(target), dstfd);
    /* cgroup2 may be mounted in a user namespace that owns its cgroup namespace too. */
    if (v2 && mount("cgroup2", target, "cgroup2", flags, NULL) == 0)
        return 0;
    if (!in_initial_userns())
        return bind_own_cgroups(rootfd, m, dstfd, self);
    if (v2)
        return -errno;
    int r = host_cgroup_mounts(hier, &n);
    if (r < 0)
        return r;
    if (mount("tmpfs", target, "tmpfs", flags & ~MS_RDONLY, "mode=755") < 0)
        return -errno;
    /* dstfd still names the directory underneath; work in the new tmpfs. */
    cleanup_fd int top = child_open_in_root(rootfd, m->destination, false, true);
    if (top < 0)
        return top;
    fd_path(target, sizeof(target), top);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%.63s", target, hier[i].name);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -errno;
        if (mount("cgroup", path, hier[i].v2 ? "cgroup2" : "cgroup", flags,
                  hier[i].v2 ? NULL : hier[i].opts) < 0)
            return -errno;
    }
    if ((flags & MS_RDONLY) && mount(NULL, target, NULL, MS_REMOUNT | flags, "mode=755") < 0)
        return -errno;
    return 0;
}

static bool
source_is_dir(const struct sbx_mount *m)
{
    struct stat st;
    if (!(m->flags & MS_BIND))
        return true;
    return stat(m->source, &st) < 0 || S_ISDIR(st.st_mode);
}

static int
do_mount(struct sbx_child_ctx *ctx, size_t i)
{
    const struct sbx_mount *m = &ctx->cfg->mounts[i];
    cleanup_fd int dst = child_open_in_root(ctx->rootfd, m->destination, true, source_is_dir(m));
    if (dst < 0)
        return child_fail(ctx, SBX_STEP_MOUNT_DEST, (int)i, dst);
    /* Whatever path led here (symlinks included), nothing but procfs lands on procfs. */
    struct statfs sfs;
    bool is_proc = m->type && strcmp(m->type, "proc") == 0;
    if (!is_proc && !m->allow_on_proc && fstatfs(dst, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC)
        return child_fail(ctx, SBX_STEP_MOUNT_DEST, (int)i, EPERM);
    int r = (m->flags & MS_BIND) ? mount_bind(m, dst)
            : (m->type && strcmp(m->type, "cgroup") == 0)
                ? mount_cgroupfs(ctx->rootfd, m, dst, ctx->self_cgroup)
                : mount_fs(m, dst);
    if (r < 0)
        return child_fail(ctx, SBX_STEP_MOUNT, (int)i, r);
    if (m->propagation) {
        /* Re-open: the fd still names the covered directory, not the new mount. */
        cleanup_fd int top = child_open_in_root(ctx->rootfd, m->destination, false, false);
        char target[64];
        if (top < 0)
            return child_fail(ctx, SBX_STEP_MOUNT_PROPAGATION, (int)i, top);
        fd_path(target, sizeof(target), top);
        if (mount(NULL, target, NULL, m->propagation, NULL) < 0)
            return child_fail(ctx, SBX_STEP_MOUNT_PROPAGATION, (int)i, errno);
    }
    return 0;
}

static const struct {
    const char *name;
    unsigned maj, min;
} default_devices[] = {
    {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static const struct {
    const char *name, *target;
} dev_links[] = {
    {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},         {"core", "/proc/kcore"},
};

/*
 * In a user namespace mknod is refused: bind the host's node of the same path instead, as runc
 * does, but only a node under /dev reached without "..", symlinks or other mounts, of the type
 * and numbers asked for. Then an O_PATH fd, not the path, is what is bound.
 */
static int
bind_host_device(int dir, const char *name, const char *path, mode_t type, dev_t dev)
{
    static const char prefix[] = "/dev/";
    struct stat st;
    if (!str_has_prefix(path, prefix) || path[strlen(prefix)] == '\0')
        return -EPERM;
    cleanup_fd int devfd = open(prefix, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV};
    cleanup_fd int node = devfd < 0 ? -1 : sys_openat2(devfd, path + strlen(prefix), &how);
    if (node < 0 || fstat(node, &st) < 0)
        return -errno;
    if ((st.st_mode & S_IFMT) != type || st.st_rdev != dev)
        return -ENODEV; /* the host's node there is another device */
    int f = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f < 0)
        return -errno;
    close(f);
    cleanup_fd int tree =
        sys_open_tree(node, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0)
        return -errno;
    if (sys_move_mount(tree, "", dir, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return -errno;
    return 0;
}

/* mknod where we may, else bind the host's node (bind_host_device). Once mknod was refused
 * (a user namespace), the next devices are bound without asking again. */
static int
make_device(struct sbx_child_ctx *ctx, const char *path, mode_t type, dev_t dev, mode_t perm,
            uid_t uid, gid_t gid)
{
    cleanup_fd int dir = -1;
    const char *slash = strrchr(path, '/');
    char parent[PATH_MAX];

    if (slash == NULL || (size_t)(slash - path) >= sizeof(parent))
        return -EINVAL;
    memcpy(parent, path, (size_t)(slash - path));
    parent[slash - path] = '\0';
    dir = child_open_in_root(ctx->rootfd, parent[0] ? parent : "/", true, true);
    if (dir < 0)
        return dir;
    const char *name = slash + 1;
    unlinkat(dir, name, 0);
    if (!ctx->no_mknod || type == S_IFIFO) {
        if (mknodat(dir, name, type | perm, dev) == 0) {
            if (fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
            return 0;
        }
        if (errno != EPERM || type == S_IFIFO)
            return -errno;
        ctx->no_mknod = true;
    }
    return bind_host_device(dir, name, path, type, dev);
}

static int
setup_devices(struct sbx_child_ctx *ctx)
{
    const struct sbx_config *cfg = ctx->cfg;
    char path[64];

    for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
        snprintf(path, sizeof(path), "/dev/%s", default_devices[i].name);
        int r = make_device(ctx, path, S_IFCHR,
                            makedev(default_devices[i].maj, default_devices[i].min), 0666, 0, 0);
        if (r < 0)
            return child_fail(ctx, SBX_STEP_DEFAULT_DEVICE, (int)i, r);
    }
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct sbx_device *d = &cfg->devices[i];
        mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
        int r = make_device(ctx, d->path, type, makedev(d->major, d->minor), d->mode & 07777,
                            d->uid, d->gid);
        if (r < 0)
            return child_fail(ctx, SBX_STEP_DEVICE, (int)i, r);
    }
    cleanup_fd int dev = child_open_in_root(ctx->rootfd, "/dev", true, true);
    if (dev < 0)
        return child_fail(ctx, SBX_STEP_DEV_LINK, 0, dev);
    for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
        if (symlinkat(dev_links[i].target, dev, dev_links[i].name) < 0 && errno != EEXIST)
            return child_fail(ctx, SBX_STEP_DEV_LINK, (int)i, errno);
    }
    return 0;
}

/*
 * The container's /dev/null, made by setup_devices, as an O_PATH fd: reached without a symlink
 * and checked to be the 1:3 character device. Binding it by path after pivot_root would follow
 * whatever /dev/null has become (CVE-2025-31133 class: a symlink to /proc/sysrq-trigger would
 * turn every masked file into a writable one).
 */
static int
open_dev_null(void)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve =
                               RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    struct stat st;
    int fd = sys_openat2(AT_FDCWD, "/dev/null", &how);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
        close(fd);
        return -ENODEV;
    }
    return fd;
}

/* Bind the checked /dev/null over the file fd names. */
static int
mask_file(int null_fd, int fd)
{
    cleanup_fd int tree =
        sys_open_tree(null_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0)
        return -errno;
    if (sys_move_mount(tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return -errno;
    return 0;
}

/* Files are covered by /dev/null, directories by an empty read-only tmpfs. */
static int
mask_paths(struct sbx_child_ctx *ctx)
{
    char **v = ctx->cfg->masked_paths;
    cleanup_fd int null_fd = -1;
    for (size_t i = 0; v && v[i]; i++) {
        cleanup_fd int fd = child_open_in_root(ctx->rootfd, v[i], false, false);
        struct stat st;
        char target[64];
        int r;
        if (fd == -ENOENT)
            continue;
        if (fd < 0 || fstat(fd, &st) < 0)
            return child_fail(ctx, SBX_STEP_MASK_PATH, (int)i, fd < 0 ? fd : -errno);
        if (S_ISDIR(st.st_mode)) {
            fd_path(target, sizeof(target), fd);
            r = mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=0,mode=0555") < 0
                    ? -errno
                    : 0;
        } else {
            if (null_fd < 0 && (null_fd = open_dev_null()) < 0)
                return child_fail(ctx, SBX_STEP_MASK_PATH, (int)i, null_fd);
            r = mask_file(null_fd, fd);
        }
        if (r < 0)
            return child_fail(ctx, SBX_STEP_MASK_PATH, (int)i, r);
    }
    return 0;
}

static int
readonly_paths(struct sbx_child_ctx *ctx)
{
    char **v = ctx->cfg->readonly_paths;
    for (size_t i = 0; v && v[i]; i++) {
        cleanup_fd int fd = child_open_in_root(ctx->rootfd, v[i], false, false);
        if (fd == -ENOENT)
            continue;
        if (fd < 0)
            return child_fail(ctx, SBX_STEP_READONLY_PATH, (int)i, fd);
        cleanup_fd int tree = sys_open_tree(
            fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        struct mount_attr attr = {.attr_set =
                                      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
        if (tree < 0 || sys_mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr) < 0 ||
            sys_move_mount(tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            return child_fail(ctx, SBX_STEP_READONLY_PATH, (int)i, errno);
    }
    return 0;
}

int
child_setup_rootfs(struct sbx_child_ctx *ctx)
{
    const struct sbx_config *cfg = ctx->cfg;
    unsigned long prop = cfg->rootfs_propagation;

    /* Stop our mounts from reaching the host. A shared "/" would also make pivot_root fail,
     * an unbindable one the rootfs bind below (EINVAL): both are applied after pivot_root. */
    if (prop == 0 || (prop & (MS_SHARED | MS_UNBINDABLE)))
        prop = MS_SLAVE | MS_REC;
    if (mount(NULL, "/", NULL, prop | MS_REC, NULL) < 0)
        return child_fail(ctx, SBX_STEP_ROOT_PROPAGATION, 0, errno);
    /* An image, or a directory the caller holds open, arrives as a detached tree
     * (rootfs-image.c); otherwise root.path is bound onto itself. */
    if (ctx->root_tree_fd >= 0) {
        if (child_attach_root_tree(ctx) < 0)
            return -ctx->err;
    } else {
        if (mount(cfg->rootfs, cfg->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
            return child_fail(ctx, SBX_STEP_ROOTFS_BIND, 0, errno);
        ctx->rootfd = open(cfg->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (ctx->rootfd < 0)
            return child_fail(ctx, SBX_STEP_ROOTFS_BIND, 0, errno);
    }

    for (size_t i = 0; i < cfg->n_mounts; i++) {
        int r = do_mount(ctx, i);
        if (r < 0)
            return r;
    }
    return setup_devices(ctx);
}

/* After pivot_root and the sysctls (which write under /proc/sys before it turns read-only);
 * then the root's propagation. */
int
child_protect_paths(struct sbx_child_ctx *ctx)
{
    ctx->rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ctx->rootfd < 0)
        return child_fail(ctx, SBX_STEP_MASK_PATH, 0, errno);
    int r = mask_paths(ctx);
    if (r == 0)
        r = readonly_paths(ctx);
    close(ctx->rootfd);
    ctx->rootfd = -1;
    /* The root's propagation last: the masks and read-only paths are bind mounts, which an
     * unbindable root (linux.rootfsPropagation "runbindable") would refuse with EINVAL. */
    if (r == 0 && ctx->cfg->rootfs_propagation &&
        mount(NULL, "/", NULL, ctx->cfg->rootfs_propagation, NULL) < 0)
        r = child_fail(ctx, SBX_STEP_ROOT_PROPAGATION, 1, errno);
    return r;
}

/* Move into the root: pivot_root(".", ".") then detach the old root stacked beneath. */
int
child_enter_root(struct sbx_child_ctx *ctx)
{
    const struct sbx_config *cfg = ctx->cfg;

    if (fchdir(ctx->rootfd) < 0)
        return child_fail(ctx, SBX_STEP_PIVOT_ROOT, 0, errno);
    if (cfg->no_pivot) {
        /* A tree attached on top of "/" is already there: only chroot into it. */
        if ((!ctx->root_on_top && mount(".", "/", NULL, MS_MOVE, NULL) < 0) || chroot(".") < 0)
            return child_fail(ctx, SBX_STEP_CHROOT, 0, errno);
    } else {
        if (sys_pivot_root(".", ".") < 0)
            return child_fail(ctx, SBX_STEP_PIVOT_ROOT, 0, errno);
        if (umount2(".", MNT_DETACH) < 0)
            return child_fail(ctx, SBX_STEP_PIVOT_ROOT, 1, errno);
    }
    if (chdir("/") < 0)
        return child_fail(ctx, SBX_STEP_PIVOT_ROOT, 2, errno);
    close(ctx->rootfd);
    ctx->rootfd = -1;

    if (cfg->rootfs_readonly) {
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
        if (sys_mount_setattr(AT_FDCWD, "/", 0, &attr) < 0)
            return child_fail(ctx, SBX_STEP_ROOT_READONLY, 0, errno);
    }
    return 0;
}
