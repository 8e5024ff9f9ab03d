/* SPDX-License-Identifier: Apache-2.0 */
/* The image layer: minimal rootfs from a program's closure, rootfs writers, OCI image layouts. */
#ifndef HUSK_IMAGE_H
#define HUSK_IMAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "husk/error.h"

/* ---- the set of files an image holds (tree.c) ---- */

enum img_kind { IMG_DIR, IMG_FILE, IMG_SYMLINK };

struct img_entry {
    char *path;   /* inside the image: absolute, normalised, no symlink among its parents */
    char *source; /* IMG_FILE: the host file its content comes from */
    char *target; /* IMG_SYMLINK: the link text, kept as it was */
    char *reason; /* why it is in the image, for the manifest */
    enum img_kind kind;
    mode_t mode; /* permission bits, setuid/setgid/sticky included */
    uid_t uid;
    gid_t gid;
    uint64_t size;
    bool analysed; /* its dependencies were added (ELF closure, script interpreter, imports) */
};

struct img_tree;

/* Host paths resolve under sysroot ("/" normally; a directory for tests). */
int img_tree_new(const char *sysroot, struct img_tree **out, struct husk_error **err);
void img_tree_free(struct img_tree *t);
void img_tree_freep(struct img_tree **t);

size_t img_tree_count(const struct img_tree *t);
struct img_entry *img_tree_at(const struct img_tree *t, size_t i);
struct img_entry *img_tree_find(const struct img_tree *t, const char *path);

/* A host path at the same place in the image: each symlink on the way stays a symlink (and its
 * target is added), each directory keeps its mode. *real (optional) is the file reached. */
int img_tree_add_host(struct img_tree *t, const char *path, const char *reason, char **real,
                      struct husk_error **err);
/* A host file or directory tree (symlinks at src followed, inside a directory kept) at dst. */
int img_tree_add_copy(struct img_tree *t, const char *src, const char *dst, const char *reason,
                      struct husk_error **err);
/* An empty directory (a mount point); existing entries are left alone. */
int img_tree_add_dir(struct img_tree *t, const char *path, mode_t mode, const char *reason,
                     struct husk_error **err);

/* Progress of long steps, for the caller to show (libraries do not print). */
struct img_progress {
    void (*fn)(void *arg, const char *step, uint64_t done, uint64_t total);
    void *arg;
};
/* Materialise the tree in rootfd (an empty directory). progress may be NULL. */
int img_tree_write(const struct img_tree *t, int rootfd, const struct img_progress *progress,
                   struct husk_error **err);
/* {"files": [{"path", "type", "mode", "size", "source"|"target", "reason"}]} */
json_t *img_tree_manifest(const struct img_tree *t);
uint64_t img_tree_bytes(const struct img_tree *t);

/* ---- what a program needs (closure.c, script.c) ---- */

/* A program: an ELF file with its interpreter and library closure, or a script with its
 * interpreter (and, for Python and shell, the modules and commands it names). The file is only
 * read, never run. */
int img_add_program(struct img_tree *t, const char *path, const char *reason,
                    struct husk_error **err);
/* A file a program takes as an argument: analysed like a program when it is ELF or a script, as
 * Python source when `interp` (the program) is a Python interpreter; else just copied. */
int img_add_argument(struct img_tree *t, const char *path, const char *interp,
                     struct husk_error **err);
/* Files a program needs at run time that no ELF header names: CA certificates when the tree
 * holds a TLS library, resolv.conf, hosts and nsswitch.conf when it holds resolver or socket
 * code. Only what exists on this machine. */
int img_add_extras(struct img_tree *t, struct husk_error **err);
/* Libraries glibc itself loads with dlopen (libgcc_s.so.1, for thread exit and cancellation)
 * when the tree holds glibc. Not run-time files: --bare keeps them. */
int img_add_implicit_libs(struct img_tree *t, struct husk_error **err);
/* Look a command name up in the default PATH, under the tree's sysroot. Caller frees. */
char *img_which(const struct img_tree *t, const char *name);

/* ---- checks of a root before it runs (check.c) ---- */

/* The program (looked up in env's PATH, or the default, inside the root) exists, is
 * executable, and so are its "#!" interpreters (through /usr/bin/env too) and its ELF loader,
 * as the kernel would follow them. The message names the missing file. */
int img_check_program(int root_fd, const char *prog, char *const *env, struct husk_error **err);
/* No file under mount_point, which the sandbox's own mount (`by`: "the function's tmpfs")
 * would hide; the message names one. */
int img_check_not_hidden(int root_fd, const char *mount_point, const char *by,
                         struct husk_error **err);

/* ---- trace: what a program opens when it runs (trace.c, trace-notify.c) ---- */

struct img_trace_opts {
    char **argv;         /* the command; argv[0] absolute */
    char **env;          /* its environment */
    const char *cwd;     /* its working directory (a host path; the host is visible read-only) */
    char **helper;       /* argv prefix that runs img_trace_supervise() in the sandbox */
    const char *workdir; /* an empty scratch directory the caller removes */
    int timeout_ms;      /* the run is killed after this; what was seen until then counts */
};

struct img_trace_result {
    char **opened;   /* absolute paths opened for reading or executed, in order, unique */
    int exit_status; /* wait status of the command, -1 when it was killed at the timeout */
    bool timed_out;
};

/* Run the command once in a sandbox (own mount, pid, ipc, uts and network namespaces, the
 * host's files read-only, no capabilities) and record every file it opens or executes. */
int img_trace_run(const struct img_trace_opts *o, struct img_trace_result *res,
                  struct husk_error **err);
void img_trace_result_clear(struct img_trace_result *r);
/* Add what the trace saw (regular files outside /proc, /sys, /dev) with their closures. */
int img_trace_add(struct img_tree *t, const struct img_trace_result *r, const char *what,
                  struct husk_error **err);
/* Inside the sandbox: run argv under a seccomp user-notification filter, appending each path
 * it opens or executes to out_path. Returns the command's wait status, or -errno. */
int img_trace_supervise(const char *out_path, char **argv, struct husk_error **err);

/* ---- writers (output.c) ---- */

enum img_format {
    IMG_FMT_ROOTFS,   /* a directory */
    IMG_FMT_TAR,      /* tar, zstd-compressed */
    IMG_FMT_EROFS,    /* mkfs.erofs */
    IMG_FMT_SQUASHFS, /* mksquashfs */
};

int img_format_parse(const char *name, enum img_format *out);
const char *img_format_name(enum img_format f);

/* Turn the staged rootfs directory into `dst` (which must not exist). `compress`: erofs none,
 * lz4, lz4hc; squashfs none, gzip, lz4, zstd, xz; NULL for the default (none: it starts
 * fastest). A rootfs is renamed into place; otherwise the staged directory is left. */
int img_output_write(const char *staged, enum img_format f, const char *compress, const char *dst,
                     struct husk_error **err);
/* A scratch directory next to `dst` (same filesystem, so a rename publishes it). Caller frees. */
int img_stage_dir(const char *dst, char **out, struct husk_error **err);

/* ---- OCI image layouts (layout.c, store.c, layer.c) ---- */

/* Limits for unpacking untrusted layers. */
struct img_limits {
    uint64_t max_file;  /* bytes in one regular file */
    uint64_t max_total; /* bytes written in all */
    uint64_t max_entries;
    /* A decompression bomb: a stream that expands more than max_ratio times its compressed
     * size, once past ratio_floor bytes (small, very compressible layers are fine). */
    uint64_t max_ratio, ratio_floor;
};
#define IMG_LIMITS_DEFAULT                                                                         \
    {                                                                                              \
        .max_file = 8ull << 30, .max_total = 32ull << 30, .max_entries = 1000000,                  \
        .max_ratio = 100, .ratio_floor = 64ull << 20                                               \
    }

/* Things accepted but changed or left out (device nodes), for the caller to show. */
struct img_warnings {
    char **v;
    size_t n;
};
void img_warnings_clear(struct img_warnings *w);

enum img_compression { IMG_COMP_NONE, IMG_COMP_GZIP, IMG_COMP_ZSTD };

/* Apply one layer (a tar stream on fd) to rootfd: whiteouts remove, opaque directories hide what
 * lower layers put there. Every path resolves inside rootfd; `..`, escaping links, oversized or
 * truncated entries are refused with the entry's name. `name` prefixes messages. */
int img_layer_apply(int rootfd, int fd, enum img_compression comp, const char *name,
                    const struct img_limits *lim, uint64_t *total, struct img_warnings *warn,
                    struct husk_error **err);

/* The image's runtime defaults (the config blob's "config"). */
struct img_config {
    char **entrypoint, **cmd, **env;
    char *workdir, *user;
};
void img_config_clear(struct img_config *c);

struct img_store;
/* A content-addressed store: an OCI image layout at `dir` (created if missing). */
int img_store_open(const char *dir, struct img_store **out, struct husk_error **err);
void img_store_free(struct img_store *s);
void img_store_freep(struct img_store **s);

struct img_import {
    char *manifest_digest; /* "sha256:..." */
    char *ref;             /* the ref name it was imported under, or NULL */
    size_t n_layers;
    uint64_t blob_bytes;
};
void img_import_clear(struct img_import *r);

/* Copy an OCI image layout (a directory or a tar of one) into the store, every blob checked
 * against its sha256. `ref` picks a manifest by org.opencontainers.image.ref.name (NULL: the
 * only one, or the one for this machine's platform). */
int img_store_import(struct img_store *s, const char *src, const char *ref,
                     const struct img_limits *lim, struct img_import *res, struct husk_error **err);
/* Unpack an imported manifest's layers into rootfd and read its config. */
int img_store_unpack(struct img_store *s, const char *manifest_digest, int rootfd,
                     const struct img_limits *lim, struct img_config *cfg,
                     struct img_warnings *warn, struct husk_error **err);
/* [{"ref", "digest", "layers"}] of what the store holds. */
json_t *img_store_list(struct img_store *s, struct husk_error **err);

/* ---- the deduplicated store of packed images (cas.c) ---- */

/* Regular files stored once by content; an image is a tree of hard links to them. */
struct img_cas;
struct img_cas_stats {
    uint64_t files, bytes;
    uint64_t new_bytes;    /* stored by this add (the rest was there already) */
    uint64_t shared_bytes; /* in objects another image links too */
};
/* Open (creating) the store at dir, locked against other writers until freed. */
int img_cas_open(const char *dir, struct img_cas **out, struct husk_error **err);
void img_cas_free(struct img_cas *c);
void img_cas_freep(struct img_cas **c);
const char *img_cas_dir(const struct img_cas *c);
/* A valid name that is (must_exist) or is not in the store yet. */
int img_cas_check_name(const struct img_cas *c, const char *name, bool must_exist,
                       struct husk_error **err);
/* A scratch directory in the store (same filesystem). Caller frees. */
int img_cas_stage(struct img_cas *c, char **out, struct husk_error **err);
/* The staged rootfs (consumed) becomes image `name`; on failure nothing of it is left. */
int img_cas_add(struct img_cas *c, const char *name, const char *staged, json_t *manifest,
                struct img_cas_stats *stats, struct husk_error **err);
int img_cas_remove(struct img_cas *c, const char *name, struct husk_error **err);
/* {"name", "created", "files", "bytes", "new_bytes", "shared_bytes", "rootfs"[, "manifest"]} */
json_t *img_cas_inspect(struct img_cas *c, const char *name, struct husk_error **err);
json_t *img_cas_list(struct img_cas *c, struct husk_error **err);
/* {"images", "image_bytes", "stored_bytes", "objects", "unreferenced_objects", "dedup_ratio"} */
json_t *img_cas_usage(struct img_cas *c, struct husk_error **err);
/* Remove every object no image links, and stagings left by packs that died. */
int img_cas_gc(struct img_cas *c, uint64_t *freed_bytes, uint64_t *freed_objects,
               struct husk_error **err);

/* ---- digests (digest.c) ---- */

/* "sha256:<64 hex>" */
bool img_digest_valid(const char *digest);
/* sha256 of a buffer as "sha256:<hex>". Caller frees. */
char *img_digest_buf(const void *buf, size_t len);

#endif
