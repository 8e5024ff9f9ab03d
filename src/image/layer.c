/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One OCI layer (a tar, maybe gzip or zstd) applied to a rootfs, as untrusted input:
 *  - names are made relative and any ".." part is refused, so no entry is named outside;
 *  - every parent directory is opened with openat2(RESOLVE_IN_ROOT), so a symlink (absolute or
 *    relative, from this layer or a lower one) always resolves inside the root: an entry
 *    "etc/x" under a symlink "etc -> /host" lands in ROOT/host/x, never on the host;
 *  - the last component is created with *at() calls that never follow it (O_NOFOLLOW, O_EXCL);
 *  - a relative symlink whose target climbs above the root from where the link really is (its
 *    parents may be symlinks: "a -> ." puts "a/b/link" one level up), a hardlink to such a
 *    symlink, and a hardlink whose target is missing, a directory, or named with "..", are
 *    refused;
 *  - device nodes are not created (a warning names them), sockets are skipped;
 *  - sizes are checked against limits before data is written, a stream that expands more than
 *    max_ratio times its compressed size is refused as a decompression bomb, runs of zeros
 *    become holes, and a truncated stream fails.
 * Whiteouts (.wh.NAME) remove NAME from lower layers; an opaque marker (.wh..wh..opq) empties
 * its directory of everything lower layers put there. NAME must be one entry: "", "." and ".."
 * are refused (".wh..." would otherwise empty the directory holding the root). Messages name
 * the entry.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "syscalls.h"
#include "util.h"

#define WHITEOUT        ".wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"
#define SPARSE_BLOCK    4096 /* all-zero blocks of file data are left as holes */

struct layer {
    int rootfd;
    char *root_path;  /* where rootfd is, as /proc/self/fd shows it */
    const char *name; /* for messages */
    const struct img_limits *lim;
    uint64_t *total;
    uint64_t entries;
    struct img_warnings *warn;
    struct img_map created; /* paths this layer made (and their parents): opaque keeps them */
};

static void
archive_readp(struct archive **a)
{
    if (*a)
        archive_read_free(*a);
}

static int
open_in_root(int rootfd, const char *rel, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = sys_openat2(rootfd, rel[0] ? rel : ".", &how);
    return fd < 0 ? -errno : fd;
}

/* The directory `rel`, created (0755) where missing, every step resolved inside the root. */
static int
dir_in_root(int rootfd, const char *rel, bool create)
{
    int fd = open_in_root(rootfd, rel, O_PATH | O_DIRECTORY);
    if (fd != -ENOENT || !create || rel[0] == '\0')
        return fd;
    cleanup_free char *abs = xasprintf("/%s", rel);
    cleanup_free char *parent = img_path_dirname(abs);
    cleanup_fd int pfd = dir_in_root(rootfd, parent + 1, true);
    if (pfd < 0)
        return pfd;
    if (mkdirat(pfd, img_path_basename(rel), 0755) < 0 && errno != EEXIST)
        return -errno;
    return open_in_root(rootfd, rel, O_PATH | O_DIRECTORY);
}

static void
mark_created(struct layer *l, const char *path)
{
    cleanup_free char *p = xstrdup(path);
    for (;;) {
        img_map_put(&l->created, p, 0);
        char *slash = strrchr(p, '/');
        if (slash == NULL)
            return;
        *slash = '\0';
    }
}

/* Remove what lower layers put in dir; this layer's own entries stay. */
static int
make_opaque(struct layer *l, const char *dir, struct husk_error **err)
{
    int fd = open_in_root(l->rootfd, dir, O_RDONLY | O_DIRECTORY);
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return husk_err(err, -fd, "%s: opaque directory '%s'", l->name, dir);
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return husk_err(err, errno, "%s: opaque directory '%s'", l->name, dir);
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cleanup_free char *path =
            dir[0] ? xasprintf("%s/%s", dir, de->d_name) : xstrdup(de->d_name);
        int r = img_map_get(&l->created, path, NULL) ? 0 : rm_rf_at(dirfd(d), de->d_name);
        if (r < 0)
            return husk_err(err, -r, "%s: opaque directory '%s': remove '%s'", l->name, dir,
                            de->d_name);
    }
    return 0;
}

/* The path an fd has, from /proc/self/fd. */
static char *
fd_path(int fd)
{
    char link[64], buf[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof(buf) - 1);
    if (n <= 0 || buf[0] != '/')
        return NULL;
    buf[n] = '\0';
    return xstrdup(buf);
}

/* Where the directory dir really is below the root ("" for the root itself): the entry's own
 * path may run through symlinks. NULL when it cannot be told (then nothing is trusted). */
static char *
real_dir(const struct layer *l, int dir)
{
    cleanup_free char *path = fd_path(dir);
    size_t n = l->root_path ? strlen(l->root_path) : 0;
    if (path == NULL || n == 0 || strncmp(path, l->root_path, n) != 0)
        return NULL;
    if (path[n] == '\0')
        return xstrdup("");
    if (strcmp(l->root_path, "/") == 0)
        return xstrdup(path + 1);
    return path[n] == '/' ? xstrdup(path + n + 1) : NULL;
}

/* Would a symlink with this target, placed as base in dir, stay inside the root? */
static bool
link_stays_inside(const struct layer *l, int dir, const char *base, const char *target)
{
    if (target[0] == '/')
        return true;
    cleanup_free char *where = real_dir(l, dir);
    if (where == NULL)
        return false;
    cleanup_free char *linkpath = where[0] ? xasprintf("%s/%s", where, base) : xstrdup(base);
    return img_link_stays_inside(linkpath, target);
}

/* A parent directory named like a whiteout: no layer tool makes one, and it would stay in the
 * root as a marker no later layer understands. */
static bool
whiteout_parent(const char *parent)
{
    return strstr(parent, "/" WHITEOUT) != NULL;
}

/* What a whiteout removes: one entry of its directory, never the directory or its parent. */
static bool
whiteout_target_ok(const char *name)
{
    return name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
           strchr(name, '/') == NULL;
}

/* Clear the way for a new entry: a directory over a directory is merged, all else replaced. */
static int
clear_slot(int dir, const char *base, bool is_dir)
{
    struct stat st;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (is_dir && S_ISDIR(st.st_mode))
        return 1;
    return rm_rf_at(dir, base);
}

int
img_check_expansion(struct archive *a, const struct img_limits *lim, const char *name,
                    struct husk_error **err)
{
    int64_t in = archive_filter_bytes(a, -1), out = archive_filter_bytes(a, 0);
    if (lim->max_ratio == 0 || in <= 0 || out <= 0 || (uint64_t)out <= lim->ratio_floor ||
        (uint64_t)out / (uint64_t)in <= lim->max_ratio)
        return 0;
    return husk_err(err, 0,
                    "%s: expands more than %llu times (%lld bytes to over %lld): a "
                    "decompression bomb? (--max-ratio)",
                    name, (unsigned long long)lim->max_ratio, (long long)in, (long long)out);
}

static bool
all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Write one block of file data; blocks of zeros stay holes of the new (empty) file. */
static int
write_block(int fd, const char *buf, size_t len, int64_t off)
{
    for (size_t done = 0; done < len;) {
        size_t n = len - done < SPARSE_BLOCK ? len - done : SPARSE_BLOCK;
        if (all_zero(buf + done, n)) {
            done += n;
            continue;
        }
        ssize_t w = pwrite(fd, buf + done, n, (off_t)(off + (int64_t)done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        done += (size_t)w;
    }
    return 0;
}

static int
write_data(struct archive *a, int fd, struct layer *l, const char *path, struct husk_error **err)
{
    const void *buf;
    size_t len;
    int64_t off;
    for (;;) {
        int r = archive_read_data_block(a, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return husk_err(err, 0, "%s: entry '%s': %s", l->name, path, archive_error_string(a));
        if ((r = img_check_expansion(a, l->lim, l->name, err)) < 0)
            return r;
        if ((r = write_block(fd, buf, len, off)) < 0)
            return husk_err(err, -r, "%s: entry '%s': write", l->name, path);
    }
}

static int
check_size(struct layer *l, struct archive_entry *e, const char *path, struct husk_error **err)
{
    int64_t size = archive_entry_size(e);
    if (size < 0)
        return husk_err(err, 0, "%s: entry '%s': negative size", l->name, path);
    if ((uint64_t)size > l->lim->max_file)
        return husk_err(err, 0,
                        "%s: entry '%s': %lld bytes is over the %llu-byte limit for one "
                        "file",
                        l->name, path, (long long)size, (unsigned long long)l->lim->max_file);
    *l->total += (uint64_t)size;
    if (*l->total > l->lim->max_total)
        return husk_err(err, 0, "%s: entry '%s': the image is over the %llu-byte limit", l->name,
                        path, (unsigned long long)l->lim->max_total);
    return 0;
}

static int
make_file(struct archive *a, struct archive_entry *e, struct layer *l, int dir, const char *base,
          const char *path, struct husk_error **err)
{
    int r = check_size(l, e, path, err);
    if (r < 0)
        return r;
    cleanup_fd int fd =
        openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return husk_err(err, errno, "%s: entry '%s': create", l->name, path);
    if ((r = write_data(a, fd, l, path, err)) < 0)
        return r;
    /* Sparse entries end with a hole: the size is the header's, not the last block's end. */
    if (ftruncate(fd, archive_entry_size(e)) < 0)
        return husk_err(err, errno, "%s: entry '%s': truncate", l->name, path);
    return 0;
}

static int
make_hardlink(struct layer *l, const char *target_name, int dir, const char *base, const char *path,
              struct husk_error **err)
{
    cleanup_free char *target = img_path_archive(target_name);
    if (target == NULL || target[0] == '\0')
        return husk_err(err, 0, "%s: hardlink '%s' -> '%s': target leaves the root", l->name, path,
                        target_name);
    cleanup_free char *abs = xasprintf("/%s", target);
    cleanup_free char *tdir = img_path_dirname(abs);
    cleanup_fd int tfd = dir_in_root(l->rootfd, tdir + 1, false);
    struct stat st;
    if (tfd < 0 || fstatat(tfd, img_path_basename(target), &st, AT_SYMLINK_NOFOLLOW) < 0)
        return husk_err(err, 0, "%s: hardlink '%s' -> '%s': target is not in the image", l->name,
                        path, target_name);
    if (S_ISDIR(st.st_mode))
        return husk_err(err, 0, "%s: hardlink '%s' -> '%s': target is a directory", l->name, path,
                        target_name);
    /* A second name for a symlink is a symlink somewhere else: its text must fit there too. */
    if (S_ISLNK(st.st_mode)) {
        char text[PATH_MAX];
        ssize_t n = readlinkat(tfd, img_path_basename(target), text, sizeof(text) - 1);
        if (n < 0)
            return husk_err(err, errno, "%s: hardlink '%s' -> '%s'", l->name, path, target_name);
        text[n] = '\0';
        if (!link_stays_inside(l, dir, base, text))
            return husk_err(err, 0,
                            "%s: hardlink '%s' -> '%s': the symlink '%s' points outside the "
                            "root from there",
                            l->name, path, target_name, text);
    }
    if (linkat(tfd, img_path_basename(target), dir, base, 0) < 0)
        return husk_err(err, errno, "%s: hardlink '%s' -> '%s'", l->name, path, target_name);
    return 0;
}

/* Owner, mode and times of what was just made (never through a symlink). */
static void
set_attrs(int dir, const char *base, struct archive_entry *e, bool is_link)
{
    if (fchownat(dir, base, archive_entry_uid(e), archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
        (void)0; /* unprivileged: files stay ours */
    if (!is_link)
        fchmodat(dir, base, archive_entry_perm(e) & 07777, 0);
    struct timespec t[2] = {{.tv_nsec = UTIME_OMIT},
                            {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    utimensat(dir, base, t, AT_SYMLINK_NOFOLLOW);
}

static int
apply_entry(struct archive *a, struct archive_entry *e, struct layer *l, struct husk_error **err)
{
    const char *raw = archive_entry_pathname(e);
    if (raw == NULL)
        return husk_err(err, 0, "%s: an entry without a name", l->name);
    cleanup_free char *path = img_path_archive(raw);
    if (path == NULL)
        return husk_err(err, 0, "%s: entry '%s': the path leaves the root", l->name, raw);
    if (++l->entries > l->lim->max_entries)
        return husk_err(err, 0, "%s: more than %llu entries", l->name,
                        (unsigned long long)l->lim->max_entries);
    if (path[0] == '\0')
        return 0; /* "./": the root itself */
    cleanup_free char *abs = xasprintf("/%s", path);
    cleanup_free char *parent = img_path_dirname(abs);
    const char *base = img_path_basename(path);
    if (whiteout_parent(parent))
        return husk_err(err, 0,
                        "%s: entry '%s': a '" WHITEOUT "' name is a whiteout, not a directory",
                        l->name, raw);
    if (strcmp(base, WHITEOUT_OPAQUE) == 0)
        return make_opaque(l, parent + 1, err);
    bool whiteout = str_has_prefix(base, WHITEOUT);
    if (whiteout && !whiteout_target_ok(base + strlen(WHITEOUT)))
        return husk_err(err, 0, "%s: whiteout '%s': '%s' is not the name of an entry", l->name, raw,
                        base + strlen(WHITEOUT));
    cleanup_fd int dir = dir_in_root(l->rootfd, parent + 1, !whiteout);
    if (whiteout) {
        int r = dir < 0 ? 0 : rm_rf_at(dir, base + strlen(WHITEOUT));
        return r < 0 ? husk_err(err, -r, "%s: whiteout '%s'", l->name, raw) : 0;
    }
    if (dir < 0)
        return husk_err(err, -dir, "%s: entry '%s': parent directory", l->name, raw);
    mode_t type = archive_entry_filetype(e);
    const char *hardlink = archive_entry_hardlink(e);
    if (!hardlink && (type == AE_IFCHR || type == AE_IFBLK)) {
        img_warn(l->warn, "%s: device node '%s' left out", l->name, raw);
        return 0;
    }
    if (!hardlink && type == AE_IFSOCK)
        return 0;
    int r = clear_slot(dir, base, !hardlink && type == AE_IFDIR);
    if (r < 0)
        return husk_err(err, -r, "%s: entry '%s': replace", l->name, raw);
    mark_created(l, path);
    if (hardlink)
        return make_hardlink(l, hardlink, dir, base, raw, err);
    if (type == AE_IFDIR) {
        if (r == 0 && mkdirat(dir, base, 0700) < 0)
            return husk_err(err, errno, "%s: entry '%s': mkdir", l->name, raw);
    } else if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if (target == NULL || !link_stays_inside(l, dir, base, target))
            return husk_err(err, 0, "%s: symlink '%s' -> '%s' points outside the root", l->name,
                            raw, target ? target : "");
        if (symlinkat(target, dir, base) < 0)
            return husk_err(err, errno, "%s: entry '%s': symlink", l->name, raw);
    } else if (type == AE_IFIFO) {
        if (mkfifoat(dir, base, 0600) < 0)
            return husk_err(err, errno, "%s: entry '%s': mkfifo", l->name, raw);
    } else if (type == AE_IFREG) {
        if ((r = make_file(a, e, l, dir, base, raw, err)) < 0)
            return r;
    } else {
        return husk_err(err, 0, "%s: entry '%s': unknown type %o", l->name, raw, type);
    }
    set_attrs(dir, base, e, type == AE_IFLNK);
    return 0;
}

/* Apply an opened archive (the store feeds one that hashes what it reads). */
int
img_layer_apply_archive(struct archive *a, int rootfd, const char *name,
                        const struct img_limits *lim, uint64_t *total, struct img_warnings *warn,
                        struct husk_error **err)
{
    struct layer l = {.rootfd = rootfd, .name = name, .lim = lim, .total = total, .warn = warn};
    struct archive_entry *e;
    int r = 0;
    l.root_path = fd_path(rootfd);
    while (r == 0) {
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar < ARCHIVE_WARN)
            r = husk_err(err, 0, "%s: %s", name, archive_error_string(a));
        else if ((r = img_check_expansion(a, lim, name, err)) == 0)
            r = apply_entry(a, e, &l, err);
    }
    img_map_clear(&l.created);
    free(l.root_path);
    return r;
}

struct archive *
img_layer_reader(enum img_compression comp)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        abort();
    archive_read_support_format_tar(a);
    /* Only the compression the media type declares. */
    if (comp == IMG_COMP_GZIP)
        archive_read_support_filter_gzip(a);
    else if (comp == IMG_COMP_ZSTD)
        archive_read_support_filter_zstd(a);
    else
        archive_read_support_filter_none(a);
    return a;
}

int
img_layer_apply(int rootfd, int fd, enum img_compression comp, const char *name,
                const struct img_limits *lim, uint64_t *total, struct img_warnings *warn,
                struct husk_error **err)
{
    cleanup_(archive_readp) struct archive *a = img_layer_reader(comp);
    if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK)
        return husk_err(err, 0, "%s: %s", name, archive_error_string(a));
    return img_layer_apply_archive(a, rootfd, name, lim, total, warn, err);
}
