/* SPDX-License-Identifier: Apache-2.0 */
/*
 * husk's image store: itself an OCI image layout (oci-layout, index.json, blobs/sha256/), so
 * every blob is named by the sha256 of its content. A blob enters through a temporary file,
 * hashed while it is copied, and is renamed to its name only when the digest (and the size the
 * descriptor promised) match; a mismatch leaves nothing. Unpacking hashes each layer again as
 * it reads it, so a blob changed in the store is caught too.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "syscalls.h"
#include "util.h"

#define MAX_JSON   (4u << 20) /* index, manifest, config */
#define MAX_NESTED 4          /* index -> index -> manifest */
#define REF_NAME   "org.opencontainers.image.ref.name"

struct img_store {
    char *dir;
    int fd;    /* the layout directory */
    int blobs; /* blobs/sha256 */
};

void
img_store_free(struct img_store *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd);
    if (s->blobs >= 0)
        close(s->blobs);
    free(s->dir);
    free(s);
}

void
img_store_freep(struct img_store **s)
{
    img_store_free(*s);
    *s = NULL;
}

static int
write_if_missing(int dirfd, const char *name, const char *text, struct husk_error **err)
{
    if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    int r = write_file_atomic(dirfd, name, text, strlen(text));
    return r < 0 ? husk_err(err, -r, "write '%s'", name) : 0;
}

int
img_store_open(const char *dir, struct img_store **out, struct husk_error **err)
{
    cleanup_(img_store_freep) struct img_store *s = xcalloc(1, sizeof(*s));
    s->fd = s->blobs = -1;
    s->dir = xstrdup(dir);
    cleanup_free char *blobs = xasprintf("%s/blobs/sha256", dir);
    int r = mkdir_p(blobs, 0700);
    if (r < 0)
        return husk_err(err, -r, "create image store '%s'", dir);
    s->fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    s->blobs = open(blobs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->fd < 0 || s->blobs < 0)
        return husk_err(err, errno, "open image store '%s'", dir);
    if ((r = write_if_missing(s->fd, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}\n", err)) <
            0 ||
        (r = write_if_missing(s->fd, "index.json", "{\"schemaVersion\":2,\"manifests\":[]}\n",
                              err)) < 0)
        return r;
    *out = steal_ptr(&s);
    return 0;
}

/* Where a blob's bytes come from: a file, or the current entry of an archive. */
struct blob_src {
    int fd;
    struct archive *a;
    const struct img_limits *lim; /* with a: how far the archive may expand */
};

static ssize_t
src_read(const struct blob_src *src, void *buf, size_t n)
{
    if (src->a)
        return archive_read_data(src->a, buf, n);
    ssize_t r;
    do
        r = read(src->fd, buf, n);
    while (r < 0 && errno == EINTR);
    return r;
}

static bool
have_blob(struct img_store *s, const char *digest)
{
    struct stat st;
    return fstatat(s->blobs, digest + 7, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* Copy and hash into a temporary file; keep it under its digest only if everything matches.
 * size < 0: unknown (a blob found in an archive, checked later against its descriptor). */
static int
copy_verified(struct img_store *s, const char *digest, int64_t size, const struct blob_src *src,
              const char *tmp, struct husk_error **err)
{
    cleanup_fd int out =
        openat(s->blobs, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0)
        return husk_err(err, errno, "blob %s: create", digest);
    struct img_sha256 *h = img_sha256_new();
    uint64_t got = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = src_read(src, buf, sizeof(buf));
        if (n < 0) {
            free(img_sha256_final(h));
            return husk_err(err, src->a ? 0 : errno, "blob %s: read%s%s", digest,
                            src->a ? ": " : "", src->a ? archive_error_string(src->a) : "");
        }
        if (n == 0)
            break;
        if (src->a && img_check_expansion(src->a, src->lim, digest, err) < 0) {
            free(img_sha256_final(h));
            return -EFBIG;
        }
        got += (uint64_t)n;
        img_sha256_update(h, buf, (size_t)n);
        if ((size >= 0 && got > (uint64_t)size) || write_all(out, buf, (size_t)n) < 0) {
            free(img_sha256_final(h));
            return size >= 0 && got > (uint64_t)size
                       ? husk_err(err, 0,
                                  "blob %s: larger than the %lld bytes its descriptor "
                                  "says",
                                  digest, (long long)size)
                       : husk_err(err, errno, "blob %s: write", digest);
        }
    }
    cleanup_free char *actual = img_sha256_final(h);
    if (size >= 0 && got != (uint64_t)size)
        return husk_err(err, 0, "blob %s: %llu bytes, its descriptor says %lld", digest,
                        (unsigned long long)got, (long long)size);
    if (strcmp(actual, digest) != 0)
        return husk_err(err, 0, "blob %s: digest mismatch: the content is %s", digest, actual);
    return 0;
}

static int
store_put(struct img_store *s, const char *digest, int64_t size, const struct blob_src *src,
          struct husk_error **err)
{
    if (have_blob(s, digest))
        return 0;
    cleanup_free char *tmp = xasprintf(".tmp-%d-%s", (int)getpid(), digest + 7);
    unlinkat(s->blobs, tmp, 0);
    int r = copy_verified(s, digest, size, src, tmp, err);
    if (r == 0 && renameat(s->blobs, tmp, s->blobs, digest + 7) < 0)
        r = husk_err(err, errno, "blob %s: rename", digest);
    if (r < 0)
        unlinkat(s->blobs, tmp, 0);
    return r;
}

/* A stored JSON blob, hashed again on the way in. */
static int
read_json_blob(struct img_store *s, const struct img_desc *d, const char *what, json_t **out,
               struct husk_error **err)
{
    if (d->size > MAX_JSON)
        return husk_err(err, 0, "%s %s: %llu bytes is too large for JSON", what, d->digest,
                        (unsigned long long)d->size);
    cleanup_fd int fd = openat(s->blobs, d->digest + 7, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    cleanup_free char *text = NULL;
    size_t len = 0;
    int r = fd < 0 ? -errno : read_fd_all(fd, MAX_JSON, &text, &len);
    if (r < 0)
        return husk_err(err, -r, "%s %s", what, d->digest);
    cleanup_free char *actual = img_digest_buf(text, len);
    if (strcmp(actual, d->digest) != 0)
        return husk_err(err, 0, "%s %s: digest mismatch: the content is %s", what, d->digest,
                        actual);
    cleanup_free char *w = xasprintf("%s %s", what, d->digest);
    return img_json_parse(text, len, w, out, err);
}

/* ---- sources: a layout directory, or a tar of one ---- */

struct source {
    int dirfd;        /* a directory layout, or -1 */
    const char *name; /* for messages */
    char **fresh;     /* blobs a tar brought that were not in the store before */
    size_t n_fresh;
};

/* Make sure the store has the blob a descriptor names, with the size it says. */
static int
fetch(struct img_store *s, struct source *src, const struct img_desc *d, const char *what,
      struct husk_error **err)
{
    if (src->dirfd < 0) {
        struct stat st;
        if (!have_blob(s, d->digest))
            return husk_err(err, 0, "%s: %s %s is not in the archive", src->name, what, d->digest);
        if (fstatat(s->blobs, d->digest + 7, &st, 0) == 0 && (uint64_t)st.st_size != d->size)
            return husk_err(err, 0, "%s: %s %s: %lld bytes, its descriptor says %llu", src->name,
                            what, d->digest, (long long)st.st_size, (unsigned long long)d->size);
        return 0;
    }
    cleanup_free char *path = xasprintf("blobs/sha256/%s", d->digest + 7);
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    cleanup_fd int fd = sys_openat2(src->dirfd, path, &how);
    if (fd < 0)
        return husk_err(err, errno, "%s: %s %s", src->name, what, d->digest);
    struct blob_src bs = {.fd = fd};
    int r = store_put(s, d->digest, (int64_t)d->size, &bs, err);
    return r < 0 ? husk_err_prefix(err, "%s: %s ", src->name, what) : 0;
}

/* Every blobs/sha256/HEX of a tar into the store; index.json and oci-layout into memory. */
static int
scan_tar(struct img_store *s, struct source *src, const char *path, json_t **index,
         const struct img_limits *lim, struct husk_error **err)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    int r = archive_read_open_filename(a, path, 1 << 16) == ARCHIVE_OK
                ? 0
                : husk_err(err, 0, "%s: %s", path, archive_error_string(a));
    uint64_t total = 0;
    bool layout = false;
    struct archive_entry *e;
    while (r == 0) {
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar < ARCHIVE_WARN) {
            r = husk_err(err, 0, "%s: %s", path, archive_error_string(a));
            break;
        }
        if ((r = img_check_expansion(a, lim, path, err)) < 0)
            break;
        const char *raw = archive_entry_pathname(e);
        cleanup_free char *name = raw ? img_path_archive(raw) : NULL;
        if (name == NULL) {
            r = husk_err(err, 0, "%s: entry '%s': the path leaves the root", path, raw ? raw : "");
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
            continue;
        total += (uint64_t)archive_entry_size(e);
        if (total > lim->max_total) {
            r = husk_err(err, 0, "%s: entry '%s': over the %llu-byte limit", path, raw,
                         (unsigned long long)lim->max_total);
        } else if (strcmp(name, "index.json") == 0 || strcmp(name, "oci-layout") == 0) {
            cleanup_free char *text = xcalloc(1, MAX_JSON + 1);
            ssize_t n = archive_entry_size(e) > (int64_t)MAX_JSON
                            ? -1
                            : archive_read_data(a, text, MAX_JSON);
            json_t *j = NULL;
            if (n < 0)
                r = husk_err(err, 0, "%s: '%s' is unreadable or too large", path, name);
            else if ((r = img_json_parse(text, (size_t)n, name, &j, err)) == 0 &&
                     strcmp(name, "index.json") == 0)
                *index = j;
            else
                json_decref(j);
            layout |= r == 0 && strcmp(name, "oci-layout") == 0;
        } else if (str_has_prefix(name, "blobs/sha256/")) {
            cleanup_free char *digest = xasprintf("sha256:%s", name + 13);
            if (!img_digest_valid(digest))
                continue;
            bool had = have_blob(s, digest);
            struct blob_src bs = {.a = a, .lim = lim};
            r = store_put(s, digest, archive_entry_size(e), &bs, err);
            if (r == 0 && !had)
                img_strv_push(&src->fresh, &src->n_fresh, steal_ptr(&digest));
        }
    }
    archive_read_free(a);
    if (r == 0 && (!layout || *index == NULL))
        r = husk_err(err, 0, "%s: not an OCI image layout (no oci-layout or index.json)", path);
    return r;
}

static int
open_dir_layout(struct source *src, const char *path, json_t **index, struct husk_error **err)
{
    src->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src->dirfd < 0)
        return husk_err(err, errno, "open '%s'", path);
    cleanup_free char *layout = NULL, *text = NULL;
    size_t len = 0;
    if (read_file_at(src->dirfd, "oci-layout", &layout, NULL) < 0)
        return husk_err(err, 0, "%s: not an OCI image layout (no oci-layout file)", path);
    int r = read_file_at(src->dirfd, "index.json", &text, &len);
    if (r < 0)
        return husk_err(err, -r, "%s/index.json", path);
    cleanup_free char *what = xasprintf("%s/index.json", path);
    return img_json_parse(text, len, what, index, err);
}

/* ---- import ---- */

static int
record_ref(struct img_store *s, const struct img_desc *d, const char *ref, struct husk_error **err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    int r = read_file_at(s->fd, "index.json", &text, &len);
    if (r < 0)
        return husk_err(err, -r, "%s/index.json", s->dir);
    cleanup_json json_t *index = NULL;
    if ((r = img_json_parse(text, len, "store index.json", &index, err)) < 0)
        return r;
    json_t *list = json_object_get(index, "manifests"), *m;
    size_t i;
    json_array_foreach(list, i, m)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(m, "annotations"), REF_NAME));
        const char *digest = json_string_value(json_object_get(m, "digest"));
        if ((ref && name && strcmp(name, ref) == 0) ||
            (!ref && !name && digest && strcmp(digest, d->digest) == 0))
            json_array_remove(list, i--);
    }
    json_t *desc = json_pack("{s:s, s:s, s:I}", "mediaType", d->media_type, "digest", d->digest,
                             "size", (json_int_t)d->size);
    if (ref)
        json_object_set_new(desc, "annotations", json_pack("{s:s}", REF_NAME, ref));
    json_array_append_new(list, desc);
    cleanup_free char *out = json_dumps(index, JSON_INDENT(2));
    r = write_file_atomic(s->fd, "index.json", out, strlen(out));
    return r < 0 ? husk_err(err, -r, "write %s/index.json", s->dir) : 0;
}

/* From the source's index to a manifest, every blob it needs in the store. */
static int
import_from(struct img_store *s, struct source *src, json_t *index, const char *ref,
            struct img_import *res, struct husk_error **err)
{
    struct img_desc d = {0}, config = {0};
    struct img_desc *layers = NULL;
    size_t n_layers = 0;
    cleanup_free char *found = NULL;
    cleanup_json json_t *nested = NULL, *manifest = NULL;
    cleanup_free char *what = xasprintf("%s: index.json", src->name);
    int r = img_index_select(index, what, ref, &d, &found, err);
    for (int depth = 0; r == 0 && img_media_is_index(d.media_type); depth++) {
        json_decref(nested);
        nested = NULL;
        if (depth >= MAX_NESTED)
            r = husk_err(err, 0, "%s: image indexes nest too deep", src->name);
        if (r == 0 && (r = fetch(s, src, &d, "index", err)) == 0 &&
            (r = read_json_blob(s, &d, "index", &nested, err)) == 0) {
            img_desc_clear(&d);
            r = img_index_select(nested, "nested index", NULL, &d, NULL, err);
        }
    }
    if (r == 0 && (r = fetch(s, src, &d, "manifest", err)) == 0 &&
        (r = read_json_blob(s, &d, "manifest", &manifest, err)) == 0 &&
        (r = img_manifest_parse(manifest, d.digest, &config, &layers, &n_layers, err)) == 0)
        r = fetch(s, src, &config, "config", err);
    for (size_t i = 0; r == 0 && i < n_layers; i++) {
        r = fetch(s, src, &layers[i], "layer", err);
        res->blob_bytes += layers[i].size;
    }
    const char *name = ref ? ref : found;
    if (r == 0 && (r = record_ref(s, &d, name, err)) == 0) {
        res->manifest_digest = xstrdup(d.digest);
        res->ref = name ? xstrdup(name) : NULL;
        res->n_layers = n_layers;
    }
    /* A tar's blobs that no descriptor named are not kept. */
    for (size_t i = 0; i < src->n_fresh; i++) {
        bool used = strcmp(src->fresh[i], d.digest ? d.digest : "") == 0 ||
                    strcmp(src->fresh[i], config.digest ? config.digest : "") == 0;
        for (size_t k = 0; !used && k < n_layers; k++)
            used = strcmp(src->fresh[i], layers[k].digest) == 0;
        if (!used || r < 0)
            unlinkat(s->blobs, src->fresh[i] + 7, 0);
    }
    for (size_t i = 0; i < n_layers; i++)
        img_desc_clear(&layers[i]);
    free(layers);
    img_desc_clear(&d);
    img_desc_clear(&config);
    return r;
}

int
img_store_import(struct img_store *s, const char *path, const char *ref,
                 const struct img_limits *lim, struct img_import *res, struct husk_error **err)
{
    struct source src = {.dirfd = -1, .name = path};
    cleanup_json json_t *index = NULL;
    struct stat st;
    memset(res, 0, sizeof(*res));
    if (stat(path, &st) < 0)
        return husk_err(err, errno, "'%s'", path);
    int r = S_ISDIR(st.st_mode) ? open_dir_layout(&src, path, &index, err)
                                : scan_tar(s, &src, path, &index, lim, err);
    if (r == 0)
        r = import_from(s, &src, index, ref, res, err);
    else
        for (size_t i = 0; i < src.n_fresh; i++)
            unlinkat(s->blobs, src.fresh[i] + 7, 0);
    strv_freep(&src.fresh);
    if (src.dirfd >= 0)
        close(src.dirfd);
    return r;
}

void
img_import_clear(struct img_import *r)
{
    free(r->manifest_digest);
    free(r->ref);
    memset(r, 0, sizeof(*r));
}

/* ---- unpack ---- */

/* libarchive reads the layer through us: we hash every byte on the way. */
struct hashing_reader {
    int fd;
    struct img_sha256 *h;
    char buf[1 << 16];
};

static la_ssize_t
hashing_read(struct archive *a, void *data, const void **out)
{
    struct hashing_reader *hr = data;
    ssize_t n;
    do
        n = read(hr->fd, hr->buf, sizeof(hr->buf));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (a)
            archive_set_error(a, errno, "read layer");
        return -1;
    }
    img_sha256_update(hr->h, hr->buf, (size_t)n);
    *out = hr->buf;
    return n;
}

static int
unpack_layer(struct img_store *s, const struct img_desc *d, size_t i, int rootfd,
             const struct img_limits *lim, uint64_t *total, struct img_warnings *warn,
             struct husk_error **err)
{
    enum img_compression comp = IMG_COMP_NONE;
    img_layer_compression(d->media_type, &comp);
    cleanup_free char *name = xasprintf("layer %zu (%.19s)", i + 1, d->digest);
    cleanup_fd int fd = openat(s->blobs, d->digest + 7, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return husk_err(err, errno, "%s", name);
    cleanup_free struct hashing_reader *hr = xcalloc(1, sizeof(*hr));
    hr->fd = fd;
    hr->h = img_sha256_new();
    struct archive *a = img_layer_reader(comp);
    int r = archive_read_open(a, hr, NULL, hashing_read, NULL) == ARCHIVE_OK
                ? img_layer_apply_archive(a, rootfd, name, lim, total, warn, err)
                : husk_err(err, 0, "%s: %s", name, archive_error_string(a));
    archive_read_free(a);
    /* Whatever follows the tar's end (padding) counts for the digest too. */
    for (const void *p; r == 0 && hashing_read(NULL, hr, &p) > 0;)
        ;
    cleanup_free char *actual = img_sha256_final(hr->h);
    if (r == 0 && strcmp(actual, d->digest) != 0)
        r = husk_err(err, 0, "%s: digest mismatch: the stored blob is now %s", name, actual);
    return r;
}

int
img_store_unpack(struct img_store *s, const char *manifest_digest, int rootfd,
                 const struct img_limits *lim, struct img_config *cfg, struct img_warnings *warn,
                 struct husk_error **err)
{
    struct img_desc md = {.media_type = NULL, .digest = (char *)manifest_digest};
    struct stat st;
    if (!img_digest_valid(manifest_digest) || fstatat(s->blobs, manifest_digest + 7, &st, 0) < 0)
        return husk_err(err, 0, "manifest %s is not in the store", manifest_digest);
    md.size = (uint64_t)st.st_size;
    cleanup_json json_t *manifest = NULL, *config_json = NULL;
    struct img_desc config = {0};
    struct img_desc *layers = NULL;
    size_t n = 0;
    uint64_t total = 0;
    int r = read_json_blob(s, &md, "manifest", &manifest, err);
    if (r == 0)
        r = img_manifest_parse(manifest, manifest_digest, &config, &layers, &n, err);
    if (r == 0 && (r = read_json_blob(s, &config, "config", &config_json, err)) == 0)
        r = img_config_parse(config_json, config.digest, cfg, err);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = unpack_layer(s, &layers[i], i, rootfd, lim, &total, warn, err);
    for (size_t i = 0; i < n; i++)
        img_desc_clear(&layers[i]);
    free(layers);
    img_desc_clear(&config);
    return r;
}

json_t *
img_store_list(struct img_store *s, struct husk_error **err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    int r = read_file_at(s->fd, "index.json", &text, &len);
    json_t *index = NULL;
    if (r < 0) {
        husk_err(err, -r, "%s/index.json", s->dir);
        return NULL;
    }
    if (img_json_parse(text, len, "store index.json", &index, err) < 0)
        return NULL;
    json_t *out = json_array(), *m;
    size_t i;
    json_array_foreach(json_object_get(index, "manifests"), i, m)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(m, "annotations"), REF_NAME));
        json_array_append_new(out, json_pack("{s:s?, s:O?, s:O?}", "ref", name, "digest",
                                             json_object_get(m, "digest"), "size",
                                             json_object_get(m, "size")));
    }
    json_decref(index);
    return out;
}
