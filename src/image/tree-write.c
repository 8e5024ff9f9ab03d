/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Materialise a tree in a directory: parents before children (the tree's order), every parent
 * opened inside the root without following symlinks, files created O_EXCL with the source's
 * mode, owner and times (Python compares a .pyc with its source's mtime). Directory modes are
 * set last, so a read-only directory can still be filled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "syscalls.h"
#include "util.h"

static int
open_parent(int rootfd, const char *path)
{
    cleanup_free char *dir = img_path_dirname(path);
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    const char *rel = dir + strspn(dir, "/");
    int fd = sys_openat2(rootfd, *rel ? rel : ".", &how);
    return fd < 0 ? -errno : fd;
}

/* copy_file_range, which reflinks where the filesystem can; plain read/write otherwise. */
static int
copy_data(int in, int out)
{
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return -errno;
        break;
    }
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : 0;
        int r = write_all(out, buf, (size_t)n);
        if (r < 0)
            return r;
    }
}

static int
write_file(const struct img_tree *t, const struct img_entry *e, int dir, const char *name,
           struct husk_error **err)
{
    cleanup_fd int in = img_host_open(t, e->source, O_RDONLY | O_NOFOLLOW);
    if (in < 0)
        return husk_err(err, -in, "open '%s'", e->source);
    cleanup_fd int out =
        openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return husk_err(err, errno, "create '%s'", e->path);
    struct stat st;
    int r = copy_data(in, out);
    if (r < 0)
        return husk_err(err, -r, "copy '%s' to '%s'", e->source, e->path);
    /* chown before chmod: chown clears setuid/setgid. Unprivileged, ownership stays ours. */
    if (fchown(out, e->uid, e->gid) < 0 && errno != EPERM)
        return husk_err(err, errno, "chown '%s'", e->path);
    if (fchmod(out, e->mode) < 0)
        return husk_err(err, errno, "chmod '%s'", e->path);
    if (fstat(in, &st) == 0) {
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        futimens(out, times);
    }
    return 0;
}

static int
write_entry(const struct img_tree *t, int rootfd, const struct img_entry *e,
            struct husk_error **err)
{
    if (strcmp(e->path, "/") == 0)
        return 0;
    cleanup_fd int dir = open_parent(rootfd, e->path);
    if (dir < 0)
        return husk_err(err, -dir, "open the directory of '%s'", e->path);
    const char *name = img_path_basename(e->path);
    switch (e->kind) {
    case IMG_DIR:
        if (mkdirat(dir, name, 0700) < 0 && errno != EEXIST)
            return husk_err(err, errno, "mkdir '%s'", e->path);
        if (fchownat(dir, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
            return husk_err(err, errno, "chown '%s'", e->path);
        return 0;
    case IMG_SYMLINK:
        if (symlinkat(e->target, dir, name) < 0)
            return husk_err(err, errno, "symlink '%s'", e->path);
        if (fchownat(dir, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
            return husk_err(err, errno, "chown '%s'", e->path);
        return 0;
    case IMG_FILE:
        return write_file(t, e, dir, name, err);
    }
    return husk_err(err, EINVAL, "'%s': unknown kind", e->path);
}

int
img_tree_write(const struct img_tree *t, int rootfd, const struct img_progress *progress,
               struct husk_error **err)
{
    size_t n = img_tree_count(t);
    uint64_t total = img_tree_bytes(t), done = 0;
    for (size_t i = 0; i < n; i++) {
        const struct img_entry *e = img_tree_at(t, i);
        int r = write_entry(t, rootfd, e, err);
        if (r < 0)
            return r;
        done += e->size;
        if (progress && progress->fn)
            progress->fn(progress->arg, "writing", done, total);
    }
    for (size_t i = n; i-- > 0;) {
        const struct img_entry *e = img_tree_at(t, i);
        if (e->kind != IMG_DIR)
            continue;
        const char *rel = e->path + strspn(e->path, "/");
        if (fchmodat(rootfd, *rel ? rel : ".", e->mode, 0) < 0)
            return husk_err(err, errno, "chmod '%s'", e->path);
    }
    return 0;
}
