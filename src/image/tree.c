/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The set of files an image holds. Host paths are walked one component at a time under the
 * sysroot, so every symlink met on the way is recorded as a symlink (and followed), and every
 * entry's parents are real directories: the tree has the host's shape, only smaller.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "syscalls.h"
#include "util.h"

#define MAX_LINKS 40 /* as the kernel's MAXSYMLINKS */

struct img_tree {
    int hostfd; /* O_PATH: the sysroot */
    struct img_entry **v;
    size_t n, cap;
    struct img_map index; /* path -> position in v */
    struct img_ldcache cache;
    bool cache_loaded;
};

int
img_tree_new(const char *sysroot, struct img_tree **out, struct husk_error **err)
{
    cleanup_(img_tree_freep) struct img_tree *t = xcalloc(1, sizeof(*t));
    t->hostfd = open(sysroot, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (t->hostfd < 0)
        return husk_err(err, errno, "open sysroot '%s'", sysroot);
    *out = steal_ptr(&t);
    return 0;
}

static void
entry_free(struct img_entry *e)
{
    free(e->path);
    free(e->source);
    free(e->target);
    free(e->reason);
    free(e);
}

void
img_tree_free(struct img_tree *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        entry_free(t->v[i]);
    free(t->v);
    img_map_clear(&t->index);
    img_ldcache_clear(&t->cache);
    if (t->hostfd >= 0)
        close(t->hostfd);
    free(t);
}

void
img_tree_freep(struct img_tree **t)
{
    img_tree_free(*t);
    *t = NULL;
}

size_t
img_tree_count(const struct img_tree *t)
{
    return t->n;
}

struct img_entry *
img_tree_at(const struct img_tree *t, size_t i)
{
    return i < t->n ? t->v[i] : NULL;
}

struct img_entry *
img_tree_find(const struct img_tree *t, const char *path)
{
    size_t i;
    return img_map_get(&t->index, path, &i) ? t->v[i] : NULL;
}

int
img_tree_hostfd(const struct img_tree *t)
{
    return t->hostfd;
}

static const char *
kind_name(enum img_kind k)
{
    return k == IMG_DIR ? "directory" : k == IMG_FILE ? "file" : "symlink";
}

/* Record one entry; an existing one of the same kind is kept (first reason wins). */
static struct img_entry *
put(struct img_tree *t, enum img_kind kind, const char *path, const struct stat *st,
    const char *reason, struct husk_error **err)
{
    struct img_entry *old = img_tree_find(t, path);
    if (old) {
        if (old->kind == kind)
            return old;
        husk_err(err, 0, "'%s' is in the image as a %s already, not a %s", path,
                 kind_name(old->kind), kind_name(kind));
        return NULL;
    }
    struct img_entry *e = xcalloc(1, sizeof(*e));
    e->path = xstrdup(path);
    e->reason = xstrdup(reason);
    e->kind = kind;
    e->mode = st ? st->st_mode & 07777 : 0755;
    e->uid = st ? st->st_uid : 0;
    e->gid = st ? st->st_gid : 0;
    e->size = st && kind == IMG_FILE ? (uint64_t)st->st_size : 0;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    img_map_put(&t->index, path, t->n);
    t->v[t->n++] = e;
    return e;
}

int
img_host_open(const struct img_tree *t, const char *path, int flags)
{
    /* O_NONBLOCK: opening a FIFO (or a device) for reading must not wait for a writer;
     * it changes nothing for regular files, the only ones read. */
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC | (flags & O_PATH ? 0 : O_NONBLOCK)),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    int fd = sys_openat2(t->hostfd, *path ? path : ".", &how);
    return fd < 0 ? -errno : fd;
}

int
img_host_stat(const struct img_tree *t, const char *path, bool follow, struct stat *st)
{
    cleanup_fd int fd = img_host_open(t, path, O_PATH | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return fd;
    return fstat(fd, st) < 0 ? -errno : 0;
}

/* Walk a host path the way the kernel would, recording each symlink and directory met. */
static int
walk_host(struct img_tree *t, const char *path, const char *reason, int links, char **real,
          bool record, struct husk_error **err)
{
    cleanup_free char *p = img_path_clean(path);
    cleanup_free char *done = xstrdup(""); /* resolved so far: no symlinks in it */
    char *rest = p;

    for (;;) {
        while (*rest == '/')
            rest++;
        if (*rest == '\0')
            break;
        char *end = strchrnul(rest, '/');
        bool last = *end == '\0';
        cleanup_free char *comp = xstrndup(rest, (size_t)(end - rest));
        rest = end;
        if (strcmp(comp, "..") == 0) {
            char *slash = strrchr(done, '/');
            if (slash)
                *slash = '\0';
            continue;
        }
        cleanup_free char *next = xasprintf("%s/%s", done, comp);
        struct stat st;
        if (fstatat(t->hostfd, next + 1, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return husk_err(err, errno, "'%s'", next);
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(t->hostfd, next + 1, target, sizeof(target) - 1);
            if (n < 0)
                return husk_err(err, errno, "readlink '%s'", next);
            target[n] = '\0';
            if (++links > MAX_LINKS)
                return husk_err(err, ELOOP, "'%s'", path);
            cleanup_free char *why = xasprintf("symlink on the way to %s", p);
            if (record && put(t, IMG_SYMLINK, next, &st, last ? reason : why, err) == NULL)
                return -EINVAL;
            struct img_entry *e = record ? img_tree_find(t, next) : NULL;
            if (e && e->target == NULL)
                e->target = xstrdup(target);
            cleanup_free char *again = target[0] == '/' ? xasprintf("%s/%s", target, rest)
                                                        : xasprintf("%s/%s/%s", done, target, rest);
            return walk_host(t, again, reason, links, real, record, err);
        }
        if (!record && (S_ISDIR(st.st_mode) || last)) {
            /* only resolving */
        } else if (S_ISDIR(st.st_mode)) {
            if (put(t, IMG_DIR, next, &st, last ? reason : "parent directory", err) == NULL)
                return -EINVAL;
        } else if (!last) {
            return husk_err(err, ENOTDIR, "'%s'", next);
        } else if (S_ISREG(st.st_mode)) {
            struct img_entry *e = put(t, IMG_FILE, next, &st, reason, err);
            if (e == NULL)
                return -EINVAL;
            if (e->source == NULL)
                e->source = xstrdup(next);
        } else {
            return husk_err(err, 0, "'%s' is not a regular file, directory or symlink", next);
        }
        free(done);
        done = steal_ptr(&next);
    }
    if (real)
        *real = done[0] ? steal_ptr(&done) : xstrdup("/");
    return 0;
}

int
img_tree_add_host(struct img_tree *t, const char *path, const char *reason, char **real,
                  struct husk_error **err)
{
    if (path[0] != '/')
        return husk_err(err, 0, "'%s' is not an absolute path", path);
    return walk_host(t, path, reason, 0, real, true, err);
}

int
img_interp_prefix(struct img_tree *t, const char *interp, char **real, char **prefix,
                  struct husk_error **err)
{
    cleanup_free char *r = NULL;
    int ret = img_host_realpath(t, interp, &r, err);
    if (ret < 0)
        return ret;
    cleanup_free char *bindir = img_path_dirname(r);
    *prefix = img_path_dirname(bindir);
    *real = steal_ptr(&r);
    return 0;
}

int
img_host_realpath(struct img_tree *t, const char *path, char **out, struct husk_error **err)
{
    if (path[0] != '/')
        return husk_err(err, 0, "'%s' is not an absolute path", path);
    return walk_host(t, path, "", 0, out, false, err);
}

/* Resolve an image path through the tree's own symlinks, creating missing directories. */
static int
tree_dir(struct img_tree *t, const char *path, const char *reason, int links, char **out,
         struct husk_error **err)
{
    cleanup_free char *p = img_path_resolve_dots(path);
    cleanup_free char *done = xstrdup("");
    for (char *rest = p; *rest;) {
        while (*rest == '/')
            rest++;
        if (*rest == '\0')
            break;
        char *end = strchrnul(rest, '/');
        cleanup_free char *next = xasprintf("%s/%.*s", done, (int)(end - rest), rest);
        rest = end;
        struct img_entry *e = img_tree_find(t, next);
        if (e && e->kind == IMG_SYMLINK) {
            if (++links > MAX_LINKS)
                return husk_err(err, ELOOP, "'%s'", path);
            cleanup_free char *again = e->target[0] == '/'
                                           ? xasprintf("%s/%s", e->target, rest)
                                           : xasprintf("%s/%s/%s", done, e->target, rest);
            return tree_dir(t, again, reason, links, out, err);
        }
        if (e && e->kind == IMG_FILE)
            return husk_err(err, ENOTDIR, "'%s' in the image", next);
        if (e == NULL && put(t, IMG_DIR, next, NULL, reason, err) == NULL)
            return -EINVAL;
        free(done);
        done = steal_ptr(&next);
    }
    *out = done[0] ? steal_ptr(&done) : xstrdup("/");
    return 0;
}

int
img_tree_add_dir(struct img_tree *t, const char *path, mode_t mode, const char *reason,
                 struct husk_error **err)
{
    cleanup_free char *parent = img_path_dirname(path), *real = NULL;
    int r = tree_dir(t, parent, "parent directory", 0, &real, err);
    if (r < 0)
        return r;
    cleanup_free char *full = img_path_join(real, img_path_basename(path));
    if (img_tree_find(t, full))
        return 0;
    struct stat st = {.st_mode = S_IFDIR | mode};
    return put(t, IMG_DIR, full, &st, reason, err) ? 0 : -EINVAL;
}

static int copy_into(struct img_tree *t, const char *src, const char *dst, const char *reason,
                     bool top, int depth, struct husk_error **err);

static int
copy_dir(struct img_tree *t, const char *src, const char *dst, const char *reason, int depth,
         struct husk_error **err)
{
    cleanup_dir DIR *d = opendir(src);
    if (d == NULL)
        return husk_err(err, errno, "open directory '%s'", src);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cleanup_free char *s = img_path_join(src, de->d_name);
        cleanup_free char *o = img_path_join(dst, de->d_name);
        int r = copy_into(t, s, o, reason, false, depth + 1, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* dst is a real path in the tree (its parents exist as directories). */
static int
copy_into(struct img_tree *t, const char *src, const char *dst, const char *reason, bool top,
          int depth, struct husk_error **err)
{
    struct stat st;
    if (depth > 64)
        return husk_err(err, ELOOP, "'%s': too deep", src);
    if ((top ? stat(src, &st) : lstat(src, &st)) < 0)
        return husk_err(err, errno, "'%s'", src);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return husk_err(err, errno, "readlink '%s'", src);
        target[n] = '\0';
        struct img_entry *e = put(t, IMG_SYMLINK, dst, &st, reason, err);
        if (e && e->target == NULL)
            e->target = xstrdup(target);
        return e ? 0 : -EINVAL;
    }
    if (S_ISDIR(st.st_mode)) {
        if (put(t, IMG_DIR, dst, &st, reason, err) == NULL)
            return -EINVAL;
        return copy_dir(t, src, dst, reason, depth, err);
    }
    if (!S_ISREG(st.st_mode))
        return husk_err(err, 0, "'%s' is not a regular file, directory or symlink", src);
    struct img_entry *e = put(t, IMG_FILE, dst, &st, reason, err);
    if (e == NULL)
        return -EINVAL;
    if (e->source == NULL) {
        char real[PATH_MAX];
        e->source = xstrdup(realpath(src, real) ? real : src);
    }
    return 0;
}

int
img_tree_add_copy(struct img_tree *t, const char *src, const char *dst, const char *reason,
                  struct husk_error **err)
{
    if (dst[0] != '/')
        return husk_err(err, 0, "destination '%s' is not an absolute path", dst);
    cleanup_free char *parent = img_path_dirname(dst), *real = NULL;
    int r = tree_dir(t, parent, "parent directory", 0, &real, err);
    if (r < 0)
        return r;
    cleanup_free char *full = img_path_join(real, img_path_basename(dst));
    /* The sysroot is for analysis; what the user names with --add is a path of this machine. */
    return copy_into(t, src, full, reason, true, 0, err);
}

const struct img_ldcache *
img_tree_ldcache(struct img_tree *t, struct husk_error **err)
{
    if (t->cache_loaded)
        return &t->cache;
    cleanup_fd int fd = img_host_open(t, "/etc/ld.so.cache", O_RDONLY);
    cleanup_free char *buf = NULL;
    size_t len = 0;
    if (fd >= 0) {
        int r = read_fd_all(fd, 64 << 20, &buf, &len);
        if (r < 0) {
            husk_err(err, -r, "read /etc/ld.so.cache");
            return NULL;
        }
        if (img_ldcache_parse(buf, len, &t->cache, err) < 0) {
            husk_err_prefix(err, "/etc/ld.so.cache: ");
            return NULL;
        }
    }
    t->cache_loaded = true;
    return &t->cache;
}

uint64_t
img_tree_bytes(const struct img_tree *t)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < t->n; i++)
        sum += t->v[i]->size;
    return sum;
}

json_t *
img_tree_manifest(const struct img_tree *t)
{
    json_t *files = json_array();
    for (size_t i = 0; i < t->n; i++) {
        const struct img_entry *e = t->v[i];
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)e->mode);
        json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "path", e->path, "type", kind_name(e->kind),
                              "mode", mode, "reason", e->reason);
        if (e->kind == IMG_FILE) {
            json_object_set_new(j, "size", json_integer((json_int_t)e->size));
            json_object_set_new(j, "source", json_string(e->source));
        } else if (e->kind == IMG_SYMLINK) {
            json_object_set_new(j, "target", json_string(e->target));
        }
        json_array_append_new(files, j);
    }
    return json_pack("{s:i, s:o}", "version", 1, "files", files);
}
