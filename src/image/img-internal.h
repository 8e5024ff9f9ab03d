/* SPDX-License-Identifier: Apache-2.0 */
/* What the image layer's files share with each other (and with their unit tests). */
#ifndef HUSK_IMAGE_INTERNAL_H
#define HUSK_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "image.h"

#ifndef cleanup_json
#define cleanup_json __attribute__((cleanup(json_decrefp)))
#endif

/* ---- paths (path.c) ---- */

/* "/a//b/./c/" -> "/a/b/c"; ".." is kept (only a walk of the real tree may resolve it). */
char *img_path_clean(const char *path);
/* Lexically resolve ".." too, never above "/" (for paths without symlinks). */
char *img_path_resolve_dots(const char *path);
char *img_path_join(const char *dir, const char *name);
char *img_path_dirname(const char *path);
const char *img_path_basename(const char *path);
/* A relative archive path made safe: leading "/" and "./" dropped, "." parts removed; NULL when
 * a ".." part would climb above its start. "" for the root itself. */
char *img_path_archive(const char *name);
/* Does a symlink at `linkpath` (relative to the root) with this target stay inside the root
 * when read lexically? Absolute targets do: they are resolved inside the root. */
bool img_link_stays_inside(const char *linkpath, const char *target);

/* ---- a string -> index map (map.c) ---- */

struct img_map {
    char **keys;
    size_t *vals;
    size_t cap, n;
};
void img_map_clear(struct img_map *m);
bool img_map_get(const struct img_map *m, const char *key, size_t *val);
/* Adds or replaces. */
void img_map_put(struct img_map *m, const char *key, size_t val);

/* ---- ELF (elf.c) ---- */

struct img_elf {
    int cls; /* ELFCLASS32 or ELFCLASS64 */
    int machine;
    int type; /* ET_EXEC, ET_DYN, ... */
    char *interp;
    char **needed;
    char *rpath, *runpath;
    bool nodeflib; /* DF_1_NODEFLIB: no ld.so.cache, no default directories */
};

/* -ENOEXEC (with a message) when the file is not ELF. */
int img_elf_read(int fd, const char *name, struct img_elf **out, struct husk_error **err);
bool img_elf_is_elf(int fd);
void img_elf_free(struct img_elf *e);
void img_elf_freep(struct img_elf **e);
/* "x86_64-linux-gnu" and the like, NULL when unknown. */
const char *img_elf_triplet(const struct img_elf *e);
const char *img_elf_platform(const struct img_elf *e);
/* Expand $ORIGIN, $LIB and $PLATFORM in one DT_RUNPATH/DT_RPATH element. NULL if unknown token. */
char *img_elf_expand(const char *dir, const char *origin, const struct img_elf *e);

/* ---- ld.so.cache (ldcache.c) ---- */

struct img_ldcache_entry {
    char *soname, *path;
    int32_t flags;
};
struct img_ldcache {
    struct img_ldcache_entry *v;
    size_t n;
};
/* glibc's "glibc-ld.so.cache1.1" format (with or without the old "ld.so-1.7.0" part first). */
int img_ldcache_parse(const void *buf, size_t len, struct img_ldcache *out,
                      struct husk_error **err);
void img_ldcache_clear(struct img_ldcache *c);

/* ---- the tree's internals (tree.c) ---- */

int img_tree_hostfd(const struct img_tree *t);
/* The cache under the sysroot, loaded on first use (an empty one when there is none). */
const struct img_ldcache *img_tree_ldcache(struct img_tree *t, struct husk_error **err);
/* Open a host path (absolute, under the sysroot) for reading. -errno. */
int img_host_open(const struct img_tree *t, const char *path, int flags);
/* fstatat on a host path, following symlinks only inside the sysroot when follow. */
int img_host_stat(const struct img_tree *t, const char *path, bool follow, struct stat *st);
/* An interpreter's real path and its prefix ("/usr" for /usr/bin/python3.11). */
int img_interp_prefix(struct img_tree *t, const char *interp, char **real, char **prefix,
                      struct husk_error **err);
/* The path a host path leads to, following symlinks under the sysroot; nothing recorded. */
int img_host_realpath(struct img_tree *t, const char *path, char **out, struct husk_error **err);

/* ---- analysis (closure.c, script.c) ---- */

int img_add_elf(struct img_tree *t, const struct img_entry *file, const char *origin,
                const struct img_elf *exe, int depth, struct husk_error **err);
/* A library by soname as ld.so would find it for `like` (an ELF in the tree), with its closure;
 * nothing when it is not on this machine. */
int img_add_library(struct img_tree *t, const char *soname, const char *like, const char *reason,
                    struct husk_error **err);
int img_add_analysed(struct img_tree *t, const char *path, const char *reason, int depth,
                     struct husk_error **err);
/* "#!" line of buf: *interp and *arg (NULL when none). -ENOEXEC when buf has none. */
int img_shebang_parse(const char *buf, size_t len, char **interp, char **arg);
int img_add_script(struct img_tree *t, const struct img_entry *file, const char *buf, size_t len,
                   int depth, struct husk_error **err);
/* Python: modules a source line (logical: continuations joined) imports, "." prefixes kept. */
void img_py_line_imports(const char *line, char ***mods, size_t *n);
/* script may be NULL: the interpreter's own implicit needs only. */
int img_add_python(struct img_tree *t, const char *interp, const char *script,
                   struct husk_error **err);
/* For a Python interpreter however it entered the image (ELF program, #!, trace, a shell
 * command): its landmarks, startup modules, encodings, site and .pth files. */
int img_add_python_runtime(struct img_tree *t, const char *interp, struct husk_error **err);
/* Every NAME.TAG.pyc under __pycache__ gets its NAME.py, or (none on the host) a copy at
 * NAME.pyc where Python loads sourceless files. */
int img_py_bytecode_sources(struct img_tree *t, struct husk_error **err);
/* Shell: command names a script runs: first words of simple commands, in $(...), backticks,
 * double quotes and unquoted here-documents too. An unterminated $(, backtick, quote or
 * here-document is an error naming its line. */
int img_sh_commands(const char *text, char ***cmds, size_t *n, struct husk_error **err);
bool img_is_python(const char *interp_path);
/* Node.js: what a script loads through require()/import, node_modules and package.json. */
int img_add_node(struct img_tree *t, const char *interp, const char *script,
                 struct husk_error **err);
bool img_is_node(const char *interp_path);
/* Perl: the modules a script loads (use, no, require, use parent/base) on Debian's @INC. */
int img_add_perl(struct img_tree *t, const char *interp, const char *script,
                 struct husk_error **err);
bool img_is_perl(const char *interp_path);
/* The module files ("Foo/Bar.pm", "file.pl") one line of Perl loads. */
void img_perl_line_modules(const char *line, char ***out, size_t *n);
/* The module names a JavaScript source names literally (require, import, export from). */
void img_js_specifiers(const char *text, char ***out, size_t *n);
bool img_is_shell(const char *interp_path);

/* ---- running a host tool (tool.c) ---- */

/* Find a tool in the usual sbin/bin directories. Caller frees; NULL if missing. */
char *img_tool_find(const char *name);
/* Run argv (argv[0] absolute); non-zero exit becomes an error carrying its stderr's tail. */
int img_tool_run(char *const argv[], struct husk_error **err);

/* ---- sha256 (digest.c) ---- */

struct img_sha256;
struct img_sha256 *img_sha256_new(void);
void img_sha256_update(struct img_sha256 *h, const void *buf, size_t len);
/* "sha256:<hex>"; frees h. */
char *img_sha256_final(struct img_sha256 *h);

/* ---- OCI image layouts (layout.c) ---- */

struct img_desc {
    char *media_type, *digest;
    uint64_t size;
};
void img_desc_clear(struct img_desc *d);
/* A descriptor object; `what` names it in messages ("index.json: manifests[0]"). */
int img_desc_parse(json_t *j, const char *what, struct img_desc *d, struct husk_error **err);
bool img_media_is_index(const char *media_type);
bool img_media_is_manifest(const char *media_type);
/* The manifest to use from an index: by ref name, else the only one, else this platform's. */
int img_index_select(json_t *index, const char *what, const char *ref, struct img_desc *out,
                     char **ref_found, struct husk_error **err);
int img_manifest_parse(json_t *m, const char *what, struct img_desc *config,
                       struct img_desc **layers, size_t *n_layers, struct husk_error **err);
int img_config_parse(json_t *c, const char *what, struct img_config *out, struct husk_error **err);
/* The layer's compression from its media type; -EINVAL for one husk cannot unpack. */
int img_layer_compression(const char *media_type, enum img_compression *out);
/* Parse JSON text; errors name `what` with line and column. */
int img_json_parse(const char *text, size_t len, const char *what, json_t **out,
                   struct husk_error **err);

/* ---- layers (layer.c) ---- */

struct archive;
/* A libarchive reader for one layer's compression (tar only). */
struct archive *img_layer_reader(enum img_compression comp);
int img_layer_apply_archive(struct archive *a, int rootfd, const char *name,
                            const struct img_limits *lim, uint64_t *total,
                            struct img_warnings *warn, struct husk_error **err);
/* Refuse a stream that has expanded more than lim->max_ratio times what it read so far. */
int img_check_expansion(struct archive *a, const struct img_limits *lim, const char *name,
                        struct husk_error **err);

/* ---- misc ---- */

void img_strv_push(char ***v, size_t *n, char *s); /* takes s */
void img_warn(struct img_warnings *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
