/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The deduplicated image store: every regular file of every image is an object named by the
 * SHA-256 of its content (and its mode and owner, which a hard link shares), stored once under
 * objects/; an image is a directory tree of hard links to objects plus image.json. An object's
 * link count is its reference count (1: only the store holds it), so `gc` needs no index that
 * could disagree with the trees. The trees are ordinary directories: they start as fast as a
 * directory rootfs (which shares the page cache, docs/packaging.md) and deploy with --dir.
 *
 *   STORE/objects/ab/<sha256>-<mode>-<uid>-<gid>
 *   STORE/images/NAME/rootfs/...      hard links into objects/
 *   STORE/images/NAME/image.json
 *   STORE/tmp/                        staging (same filesystem: a rename or link publishes)
 *
 * Adding an image copies nothing: the staged file either becomes the object (link) or is
 * replaced by a link to the object that has its content. The trees must stay read-only (a
 * write through one link changes every image sharing it): bundles made from the store have a
 * read-only root, and `husk serve` mounts every function's root read-only.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

struct img_cas {
    char *dir;
    int dirfd, lockfd;
};

void
img_cas_free(struct img_cas *c)
{
    if (c == NULL)
        return;
    if (c->lockfd >= 0)
        close(c->lockfd); /* releases the lock */
    if (c->dirfd >= 0)
        close(c->dirfd);
    free(c->dir);
    free(c);
}

void
img_cas_freep(struct img_cas **c)
{
    img_cas_free(*c);
    *c = NULL;
}

int
img_cas_open(const char *dir, struct img_cas **out, struct husk_error **err)
{
    cleanup_(img_cas_freep) struct img_cas *c = xcalloc(1, sizeof(*c));
    c->dirfd = c->lockfd = -1;
    c->dir = xstrdup(dir);
    int r = mkdir_p(dir, 0700);
    if (r < 0)
        return husk_err(err, -r, "create the image store '%s'", dir);
    c->dirfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (c->dirfd < 0)
        return husk_err(err, errno, "open the image store '%s'", dir);
    static const char *const subdirs[] = {"objects", "images", "tmp"};
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++)
        if (mkdirat(c->dirfd, subdirs[i], 0700) < 0 && errno != EEXIST)
            return husk_err(err, errno, "create '%s/%s'", dir, subdirs[i]);
    /* One writer at a time: held from open to free (a pack stages under it). */
    c->lockfd = openat(c->dirfd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (c->lockfd < 0 || flock(c->lockfd, LOCK_EX) < 0)
        return husk_err(err, errno, "lock the image store '%s'", dir);
    *out = steal_ptr(&c);
    return 0;
}

const char *
img_cas_dir(const struct img_cas *c)
{
    return c->dir;
}

static bool
name_valid(const char *name)
{
    size_t l = strlen(name);
    if (l == 0 || l > 128 || name[0] == '.' || name[0] == '-')
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("._-", *p)))
            return false;
    return true;
}

int
img_cas_check_name(const struct img_cas *c, const char *name, bool must_exist,
                   struct husk_error **err)
{
    if (!name_valid(name))
        return husk_err(err, 0,
                        "image name '%s': use 1-128 letters, digits, '.', '_' or '-', not "
                        "starting with '.' or '-'",
                        name);
    cleanup_free char *rel = xasprintf("images/%s", name);
    struct stat st;
    bool exists = fstatat(c->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (must_exist && !exists)
        return husk_err(err, ENOENT, "image '%s' is not in the store '%s'", name, c->dir);
    if (!must_exist && exists)
        return husk_err(err, 0, "image '%s' is in the store already; `husk image rm` it first",
                        name);
    return 0;
}

int
img_cas_stage(struct img_cas *c, char **out, struct husk_error **err)
{
    cleanup_free char *tmpl = xasprintf("%s/tmp/stage-XXXXXX", c->dir);
    if (mkdtemp(tmpl) == NULL)
        return husk_err(err, errno, "create a staging directory in '%s/tmp'", c->dir);
    if (chmod(tmpl, 0755) < 0)
        return husk_err(err, errno, "chmod '%s'", tmpl);
    *out = steal_ptr(&tmpl);
    return 0;
}

/* "sha256:<hex>" of an open file. */
static int
hash_fd(int fd, char **out)
{
    struct img_sha256 *h = img_sha256_new();
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            free(img_sha256_final(h));
            return e;
        }
        if (n == 0)
            break;
        img_sha256_update(h, buf, (size_t)n);
    }
    *out = img_sha256_final(h);
    return 0;
}

struct cas_add {
    struct img_cas *c;
    const char *image;
    uint64_t files, bytes, new_bytes;
    char **created; /* objects this add created: removed again if it fails */
    size_t n_created;
};

/* One regular file of the staged tree: it becomes the object, or a link to it. */
static int
dedup_file(struct cas_add *a, int dirfd, const char *name, const char *path,
           struct husk_error **err)
{
    cleanup_fd int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return husk_err(err, errno, "open '%s'", path);
    cleanup_free char *digest = NULL;
    int r = hash_fd(fd, &digest);
    if (r < 0)
        return husk_err(err, -r, "read '%s'", path);
    const char *hex = digest + strlen("sha256:");
    cleanup_free char *sub = xasprintf("objects/%.2s", hex);
    cleanup_free char *obj = xasprintf("%s/%s-%o-%u-%u", sub, hex, (unsigned)(st.st_mode & 07777),
                                       (unsigned)st.st_uid, (unsigned)st.st_gid);
    if (mkdirat(a->c->dirfd, sub, 0700) < 0 && errno != EEXIST)
        return husk_err(err, errno, "create '%s/%s'", a->c->dir, sub);
    a->files++;
    a->bytes += (uint64_t)st.st_size;
    if (linkat(dirfd, name, a->c->dirfd, obj, 0) == 0) {
        a->new_bytes += (uint64_t)st.st_size;
        img_strv_push(&a->created, &a->n_created, xstrdup(obj));
        return 0;
    }
    if (errno != EEXIST)
        return husk_err(err, errno, "store '%s' as '%s'", path, obj);
    struct stat ost;
    if (fstatat(a->c->dirfd, obj, &ost, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(ost.st_mode) ||
        ost.st_size != st.st_size)
        return husk_err(err, EIO, "object '%s/%s' is damaged (not the size of '%s')", a->c->dir,
                        obj, path);
    /* Replace the staged file with a link to the object, atomically. */
    cleanup_free char *tmp = xasprintf(".%s.husk-link", name);
    if (linkat(a->c->dirfd, obj, dirfd, tmp, 0) < 0)
        return husk_err(err, errno, "link '%s' to '%s'", path, obj);
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        int e = errno;
        unlinkat(dirfd, tmp, 0);
        return husk_err(err, e, "replace '%s' with its object", path);
    }
    return 0;
}

/* Each entry under a directory (depth first); visit() is called for every non-directory. */
typedef int (*visit_fn)(void *arg, int dirfd, const char *name, const char *path,
                        const struct stat *st, struct husk_error **err);

static int
walk_tree(int dirfd, const char *path, int depth, visit_fn visit, void *arg,
          struct husk_error **err)
{
    if (depth > 256)
        return husk_err(err, ELOOP, "'%s': too deep", path);
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return husk_err(err, errno, "read directory '%s'", path);
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cleanup_free char *sub = xasprintf("%s/%s", strcmp(path, "/") ? path : "", de->d_name);
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return husk_err(err, errno, "stat '%s'", sub);
        int r;
        if (S_ISDIR(st.st_mode)) {
            cleanup_fd int child =
                openat(dirfd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            r = child < 0 ? husk_err(err, errno, "open '%s'", sub)
                          : walk_tree(child, sub, depth + 1, visit, arg, err);
        } else {
            r = visit(arg, dirfd, de->d_name, sub, &st, err);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int
dedup_visit(void *arg, int dirfd, const char *name, const char *path, const struct stat *st,
            struct husk_error **err)
{
    return S_ISREG(st->st_mode) ? dedup_file(arg, dirfd, name, path, err) : 0;
}

int
img_cas_add(struct img_cas *c, const char *name, const char *staged, json_t *manifest,
            struct img_cas_stats *stats, struct husk_error **err)
{
    int r = img_cas_check_name(c, name, false, err);
    if (r < 0)
        return r;
    struct cas_add a = {.c = c, .image = name};
    cleanup_fd int root = open(staged, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    cleanup_free char *holder = NULL;
    if (root < 0)
        return husk_err(err, errno, "open '%s'", staged);
    r = walk_tree(root, "/", 0, dedup_visit, &a, err);
    if (r == 0)
        r = img_cas_stage(c, &holder, err);
    /* holder/rootfs + holder/image.json, renamed to images/NAME in one step. */
    cleanup_free char *rootfs = holder ? xasprintf("%s/rootfs", holder) : NULL;
    if (r == 0 && rename(staged, rootfs) < 0)
        r = husk_err(err, errno, "move '%s' into the store", staged);
    if (r == 0) {
        json_t *doc = json_pack("{s:s, s:I, s:I, s:I, s:I}", "name", name, "created",
                                (json_int_t)time(NULL), "files", (json_int_t)a.files, "bytes",
                                (json_int_t)a.bytes, "new_bytes", (json_int_t)a.new_bytes);
        if (manifest)
            json_object_set(doc, "manifest", manifest);
        cleanup_free char *file = xasprintf("%s/image.json", holder);
        if (json_dump_file(doc, file, JSON_INDENT(1)) < 0)
            r = husk_err(err, EIO, "write '%s'", file);
        json_decref(doc);
    }
    cleanup_free char *dst = xasprintf("%s/images/%s", c->dir, name);
    if (r == 0 && rename(holder, dst) < 0)
        r = husk_err(err, errno, "publish image '%s'", name);
    if (r < 0) {
        if (holder)
            rm_rf_at(AT_FDCWD, holder);
        for (size_t i = 0; i < a.n_created; i++)
            unlinkat(c->dirfd, a.created[i], 0);
    }
    strv_freep(&a.created);
    if (r == 0 && stats)
        *stats =
            (struct img_cas_stats){.files = a.files, .bytes = a.bytes, .new_bytes = a.new_bytes};
    return r;
}

int
img_cas_remove(struct img_cas *c, const char *name, struct husk_error **err)
{
    int r = img_cas_check_name(c, name, true, err);
    if (r < 0)
        return r;
    /* Out of sight first (one rename), then removed: no half-removed image is ever listed. */
    cleanup_free char *holder = NULL;
    if ((r = img_cas_stage(c, &holder, err)) < 0)
        return r;
    cleanup_free char *src = xasprintf("%s/images/%s", c->dir, name);
    cleanup_free char *dst = xasprintf("%s/gone", holder);
    if (rename(src, dst) < 0) {
        rmdir(holder);
        return husk_err(err, errno, "remove image '%s'", name);
    }
    return rm_rf_at(AT_FDCWD, holder) < 0 ? husk_err(err, errno, "remove '%s'", holder) : 0;
}

/* Files, bytes and bytes in objects another image links too, of one image's tree. */
static int
stats_visit(void *arg, int dirfd, const char *name, const char *path, const struct stat *st,
            struct husk_error **err)
{
    struct img_cas_stats *s = arg;
    (void)dirfd, (void)name, (void)path, (void)err;
    if (!S_ISREG(st->st_mode))
        return 0;
    s->files++;
    s->bytes += (uint64_t)st->st_size;
    if (st->st_nlink > 2) /* the store's link, ours, and another image's */
        s->shared_bytes += (uint64_t)st->st_size;
    return 0;
}

static json_t *
image_json(struct img_cas *c, const char *name, bool with_manifest, struct husk_error **err)
{
    cleanup_free char *dir = xasprintf("%s/images/%s", c->dir, name);
    cleanup_free char *file = xasprintf("%s/image.json", dir);
    cleanup_free char *rootfs = xasprintf("%s/rootfs", dir);
    json_error_t je;
    json_t *doc = json_load_file(file, 0, &je);
    if (doc == NULL) {
        husk_err(err, 0, "image '%s': %s: line %d: %s", name, file, je.line, je.text);
        return NULL;
    }
    if (!with_manifest)
        json_object_del(doc, "manifest");
    struct img_cas_stats s = {0};
    cleanup_fd int fd = open(rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || walk_tree(fd, "/", 0, stats_visit, &s, err) < 0) {
        if (fd < 0)
            husk_err(err, errno, "image '%s': open '%s'", name, rootfs);
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "rootfs", json_string(rootfs));
    json_object_set_new(doc, "shared_bytes", json_integer((json_int_t)s.shared_bytes));
    return doc;
}

json_t *
img_cas_inspect(struct img_cas *c, const char *name, struct husk_error **err)
{
    if (img_cas_check_name(c, name, true, err) < 0)
        return NULL;
    return image_json(c, name, true, err);
}

/* Every object: visit(arg, dirfd, name, st); a negative return stops. */
static int
for_each_object(struct img_cas *c, int (*visit)(void *, int, const char *, const struct stat *),
                void *arg)
{
    cleanup_free char *objects = xasprintf("%s/objects", c->dir);
    cleanup_dir DIR *top = opendir(objects);
    if (top == NULL)
        return -errno;
    for (struct dirent *de; (de = readdir(top)) != NULL;) {
        if (de->d_name[0] == '.')
            continue;
        cleanup_free char *sub = img_path_join(objects, de->d_name);
        cleanup_dir DIR *d = opendir(sub);
        for (struct dirent *o; d && (o = readdir(d)) != NULL;) {
            struct stat st;
            if (o->d_name[0] == '.' || fstatat(dirfd(d), o->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            int r = visit(arg, dirfd(d), o->d_name, &st);
            if (r < 0)
                return r;
        }
        unlinkat(dirfd(top), de->d_name, AT_REMOVEDIR); /* only when gc emptied it */
    }
    return 0;
}

struct usage {
    uint64_t bytes, count, unreferenced;
};

static int
usage_visit(void *arg, int dirfd, const char *name, const struct stat *st)
{
    struct usage *u = arg;
    (void)dirfd, (void)name;
    u->bytes += (uint64_t)st->st_size;
    u->count++;
    u->unreferenced += st->st_nlink == 1;
    return 0;
}

json_t *
img_cas_list(struct img_cas *c, struct husk_error **err)
{
    cleanup_free char *images = xasprintf("%s/images", c->dir);
    cleanup_dir DIR *d = opendir(images);
    if (d == NULL) {
        husk_err(err, errno, "read '%s'", images);
        return NULL;
    }
    json_t *list = json_array();
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (!name_valid(de->d_name))
            continue;
        json_t *j = image_json(c, de->d_name, false, err);
        if (j == NULL) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, j);
    }
    return list;
}

json_t *
img_cas_usage(struct img_cas *c, struct husk_error **err)
{
    cleanup_json json_t *list = img_cas_list(c, err);
    if (list == NULL)
        return NULL;
    uint64_t logical = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) logical +=
        (uint64_t)json_integer_value(json_object_get(v, "bytes"));
    struct usage u = {0};
    for_each_object(c, usage_visit, &u);
    uint64_t stored = u.bytes, objects = u.count, unreferenced = u.unreferenced;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "images", (json_int_t)json_array_size(list),
                     "image_bytes", (json_int_t)logical, "stored_bytes", (json_int_t)stored,
                     "objects", (json_int_t)objects, "unreferenced_objects",
                     (json_int_t)unreferenced, "dedup_ratio",
                     stored ? (double)logical / (double)stored : 1.0);
}

struct gc {
    uint64_t bytes, objects;
    struct husk_error **err;
};

static int
gc_visit(void *arg, int dirfd, const char *name, const struct stat *st)
{
    struct gc *g = arg;
    if (st->st_nlink != 1) /* an image links it */
        return 0;
    if (unlinkat(dirfd, name, 0) < 0)
        return husk_err(g->err, errno, "remove object '%s'", name);
    g->bytes += (uint64_t)st->st_size;
    g->objects++;
    return 0;
}

int
img_cas_gc(struct img_cas *c, uint64_t *freed_bytes, uint64_t *freed_objects,
           struct husk_error **err)
{
    /* Stagings of packs that died: we hold the lock, so no live one exists. */
    cleanup_free char *tmp = xasprintf("%s/tmp", c->dir);
    cleanup_dir DIR *td = opendir(tmp);
    for (struct dirent *de; td && (de = readdir(td)) != NULL;)
        if (de->d_name[0] != '.')
            rm_rf_at(dirfd(td), de->d_name);
    struct gc g = {.err = err};
    int r = for_each_object(c, gc_visit, &g);
    *freed_bytes = g.bytes;
    *freed_objects = g.objects;
    if (r < 0 && (err == NULL || *err == NULL))
        return husk_err(err, -r, "read '%s/objects'", c->dir);
    return r;
}
