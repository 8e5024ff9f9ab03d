/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WebAssembly functions: a WASI preview1 command module run per call on the CGI contract
 * (WAGI: the request's variables, the query as arguments, the body on stdin, a CGI header
 * block then the body on stdout) or the stdio contract, in the same sandbox as any function.
 *
 * The engine is Node.js's node:wasi (see docs/wasm.md for why). Its binary and ELF closure,
 * husk's per-call program (wasm-run.c) and the engine's script (wasm-server.js) make a root
 * directory built once per engine under STATE/wasm/engine-KEY with husk's own packing code.
 * The module is read through the deploy policy's trusted open and checked (wasm-module.c);
 * the function's root is STATE/wasm/root-DIGEST-KEY, the engine's root linked file by file
 * (no data is copied) with the module at /wasm/module.wasm, so identical modules share one
 * root and a deployed version keeps its bytes whatever happens to the deployer's file.
 * Directories the deploy grants (--wasm-dir, held to --allow-bind like a bundle's binds) are
 * bound at /wasm/dirN and preopened under the guest path asked for. So WASM adds a layer and
 * removes none: the module sees only what WASI gives it, and the engine only its sandbox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faas-internal.h"
#include "image.h"
#include "util.h"

#define WASM_MAX_MODULE (256u << 20)
#define WASM_MAX_DIRS   8
#define WASM_PAGE       65536
/* What the engine itself takes of the memory limit (Node.js with a compiled module: about
 * 55 MB resident); the module's linear memory may grow to the rest. */
#define WASM_ENGINE_RESERVE (64ll << 20)
#define WASM_MIN_MEMORY     (WASM_ENGINE_RESERVE + (16ll << 20))

extern const char faas_wasm_run_bin[], faas_wasm_run_end[];
extern const char faas_wasm_server_bin[], faas_wasm_server_end[];

/* The engine: Node.js from the host's packages (Debian's nodejs). */
static int
find_engine(char **out, struct husk_error **err)
{
    static const char *const candidates[] = {"/usr/local/bin/node", "/usr/bin/node",
                                             "/usr/bin/nodejs"};
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
        if (access(candidates[i], X_OK) == 0) {
            *out = xstrdup(candidates[i]);
            return 0;
        }
    return husk_err(err, 0,
                    "field 'wasm': no WebAssembly engine on this host: WebAssembly functions run "
                    "on Node.js's node:wasi (Debian: apt-get install nodejs)");
}

/* Write an embedded file into the staged root. */
static int
put_file(int rootfd, const char *path, const char *p, size_t n, mode_t mode,
         struct husk_error **err)
{
    cleanup_fd int fd = openat(rootfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || write_all(fd, p, n) < 0 || fchmod(fd, mode) < 0)
        return husk_err(err, errno, "write '%s' into the WebAssembly engine's root", path);
    return 0;
}

/* The files of the engine's root: the engine and its closure, mount points, our two files. */
static int
engine_tree(const char *engine, struct img_tree **out, struct husk_error **err)
{
    static const char *const dirs[] = {"/proc", "/dev", "/sys", "/husk", "/wasm"};
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    int r = img_tree_new("/", &t, err);
    if (r == 0)
        r = img_add_program(t, engine, "the WebAssembly engine", err);
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(dirs); i++)
        r = img_tree_add_dir(t, dirs[i], 0755, "mount point", err);
    if (r == 0)
        r = img_tree_add_dir(t, "/tmp", 01777, "mount point", err);
    for (int i = 0; r == 0 && i < WASM_MAX_DIRS; i++) {
        char dir[32];
        snprintf(dir, sizeof(dir), "/wasm/dir%d", i);
        r = img_tree_add_dir(t, dir, 0755, "a granted directory's mount point", err);
    }
    if (r < 0)
        return r;
    *out = steal_ptr(&t);
    return 0;
}

static int
build_engine_root(const char *engine, const char *dst, struct husk_error **err)
{
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    cleanup_free char *staged = NULL;
    int r = engine_tree(engine, &t, err);
    if (r == 0)
        r = img_stage_dir(dst, &staged, err);
    if (r < 0)
        return r;
    cleanup_fd int fd = open(staged, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        r = husk_err(err, errno, "open '%s'", staged);
    if (r == 0)
        r = img_tree_write(t, fd, NULL, err);
    if (r == 0)
        r = put_file(fd, "husk/wasm-run", faas_wasm_run_bin,
                     (size_t)(faas_wasm_run_end - faas_wasm_run_bin), 0755, err);
    if (r == 0)
        r = put_file(fd, "husk/wasm-server.js", faas_wasm_server_bin,
                     (size_t)(faas_wasm_server_end - faas_wasm_server_bin), 0644, err);
    /* Another deploy may have built the same root meanwhile: theirs is as good. */
    if (r == 0 && rename(staged, dst) < 0 && errno != EEXIST && errno != ENOTEMPTY)
        r = husk_err(err, errno, "rename '%s' to '%s'", staged, dst);
    if (access(staged, F_OK) == 0)
        rm_rf_at(AT_FDCWD, staged);
    return r;
}

/* STATE/wasm/engine-KEY: KEY names the engine binary as it is now and the two files we add,
 * so an upgraded engine or husk gets a root of its own. */
static int
engine_root(const char *state_dir, const char *engine, char **out, struct husk_error **err)
{
    struct stat st;
    if (stat(engine, &st) < 0)
        return husk_err(err, errno, "field 'wasm': the WebAssembly engine '%s'", engine);
    cleanup_free char *id = xasprintf(
        "%s %llu %llu %lld %lld.%09ld %zu %zu", engine, (unsigned long long)st.st_dev,
        (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
        st.st_mtim.tv_nsec, (size_t)(faas_wasm_run_end - faas_wasm_run_bin),
        (size_t)(faas_wasm_server_end - faas_wasm_server_bin));
    size_t n = strlen(id), run = (size_t)(faas_wasm_run_end - faas_wasm_run_bin);
    size_t js = (size_t)(faas_wasm_server_end - faas_wasm_server_bin);
    cleanup_free char *all = xmalloc(n + run + js);
    memcpy(all, id, n);
    memcpy(all + n, faas_wasm_run_bin, run);
    memcpy(all + n + run, faas_wasm_server_bin, js);
    cleanup_free char *digest = img_digest_buf(all, n + run + js);
    cleanup_free char *dir = xasprintf("%s/wasm", state_dir);
    cleanup_free char *root = xasprintf("%s/engine-%.16s", dir, digest + strlen("sha256:"));
    int r = mkdir_p(dir, 0700) < 0 ? -errno : 0;
    if (r < 0)
        return husk_err(err, -r, "create '%s'", dir);
    if (access(root, F_OK) < 0 && (r = build_engine_root(engine, root, err)) < 0)
        return husk_err_prefix(err, "field 'wasm': build the WebAssembly engine's root: ");
    *out = steal_ptr(&root);
    return 0;
}

/* The module, read through the policy's trusted open and checked. */
static int
read_module(const char *path, uid_t owner, char **buf, size_t *len, struct faas_wasm_info *info,
            struct husk_error **err)
{
    cleanup_fd int fd = -1;
    int r = faas_open_trusted(path, owner, false, "wasm", &fd, err);
    if (r < 0)
        return r;
    if ((r = read_fd_all(fd, WASM_MAX_MODULE, buf, len)) < 0)
        return husk_err(err, -r, "field 'wasm': read '%s'%s", path,
                        r == -EFBIG ? " (over 256 MiB)" : "");
    char why[256];
    if (faas_wasm_module_check((const uint8_t *)*buf, *len, info, why, sizeof(why)) < 0)
        return husk_err(err, 0, "field 'wasm': '%s': %s", path, why);
    return 0;
}

/* Link the tree at src into dst (an empty directory): directories and symlinks made anew,
 * files hard-linked (the same filesystem: both are under the state directory). */
static int
link_tree(int src, int dst, const char *at, struct husk_error **err)
{
    int dup_fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        return husk_err(err, errno, "read '%s'", at);
    }
    int r = 0;
    for (struct dirent *e; r == 0 && (e = readdir(d));) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(src, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = husk_err(err, errno, "stat '%s/%s'", at, e->d_name);
        } else if (S_ISDIR(st.st_mode)) {
            cleanup_free char *sub = xasprintf("%s/%s", at, e->d_name);
            if (mkdirat(dst, e->d_name, 0700) < 0 ||
                fchmodat(dst, e->d_name, st.st_mode & 07777, 0))
                r = husk_err(err, errno, "create '%s'", sub);
            cleanup_fd int s2 =
                r ? -1 : openat(src, e->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            cleanup_fd int d2 =
                r ? -1 : openat(dst, e->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (r == 0)
                r = s2 < 0 || d2 < 0 ? husk_err(err, errno, "open '%s'", sub)
                                     : link_tree(s2, d2, sub, err);
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(src, e->d_name, target, sizeof(target) - 1);
            if (n >= 0)
                target[n] = '\0';
            if (n < 0 || symlinkat(target, dst, e->d_name) < 0)
                r = husk_err(err, errno, "copy the symlink '%s/%s'", at, e->d_name);
        } else if (linkat(src, e->d_name, dst, e->d_name, 0) < 0) {
            r = husk_err(err, errno, "link '%s/%s'", at, e->d_name);
        }
    }
    closedir(d);
    return r;
}

/* STATE/wasm/root-DIGEST-KEY: the engine's root with the module in it, made once. */
static int
module_root(const char *state_dir, const char *engine_dir, const char *buf, size_t len, char **out,
            struct husk_error **err)
{
    cleanup_free char *digest = img_digest_buf(buf, len);
    const char *key = strrchr(engine_dir, '-') + 1; /* engine-KEY */
    cleanup_free char *root =
        xasprintf("%s/wasm/root-%.32s-%s", state_dir, digest + strlen("sha256:"), key);
    cleanup_free char *staged = NULL;
    if (access(root, F_OK) == 0) {
        *out = steal_ptr(&root);
        return 0;
    }
    int r = img_stage_dir(root, &staged, err);
    if (r < 0)
        return r;
    cleanup_fd int src = open(engine_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_fd int dst = open(staged, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_fd int wdir = -1;
    if (src < 0 || dst < 0)
        r = husk_err(err, errno, "open '%s'", src < 0 ? engine_dir : staged);
    if (r == 0)
        r = link_tree(src, dst, engine_dir, err);
    if (r == 0 && (wdir = openat(dst, "wasm", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        r = husk_err(err, errno, "open '%s/wasm'", staged);
    if (r == 0)
        r = put_file(wdir, "module.wasm", buf, len, 0644, err);
    /* The same module deployed meanwhile made the same root. */
    if (r == 0 && rename(staged, root) < 0 && errno != EEXIST && errno != ENOTEMPTY)
        r = husk_err(err, errno, "rename '%s' to '%s'", staged, root);
    if (access(staged, F_OK) == 0)
        rm_rf_at(AT_FDCWD, staged);
    if (r < 0)
        return husk_err_prefix(err, "field 'wasm': build the function's root: ");
    *out = steal_ptr(&root);
    return 0;
}

static void
add_bind(struct sbx_config *c, const char *source, const char *dst, bool ro)
{
    c->mounts = xrealloc(c->mounts, (c->n_mounts + 1) * sizeof(*c->mounts));
    c->mounts[c->n_mounts++] = (struct sbx_mount){.destination = xstrdup(dst),
                                                  .type = xstrdup("bind"),
                                                  .source = xstrdup(source),
                                                  .flags = MS_BIND | MS_NOSUID | MS_NODEV |
                                                           MS_NOEXEC | (ro ? MS_RDONLY : 0)};
}

/* "HOST:GUEST[:ro]": HOST an allowed directory, GUEST the absolute path the module sees. */
static int
one_dir(const struct faas_policy *p, const char *spec, size_t i, struct sbx_config *grants,
        json_t *preopens, struct husk_error **err)
{
    cleanup_free char *field = xasprintf("wasm_dirs[%zu]", i);
    cleanup_free char *copy = xstrdup(spec);
    char *guest = strchr(copy, ':'), *mode = guest ? strchr(guest + 1, ':') : NULL;
    if (guest)
        *guest++ = '\0';
    if (mode)
        *mode++ = '\0';
    if (guest == NULL || copy[0] != '/' || guest[0] != '/' || (mode && strcmp(mode, "ro") != 0) ||
        path_has_dot_component(guest))
        return husk_err(err, 0,
                        "field '%s': '%s': expected HOST:GUEST[:ro] with absolute paths (GUEST "
                        "without '.' or '..')",
                        field, spec);
    if (json_object_get(preopens, guest))
        return husk_err(err, 0, "field '%s': the guest path '%s' is granted twice", field, guest);
    int r = faas_policy_check_bind(p, copy, field, err);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(copy, &st) < 0 || !S_ISDIR(st.st_mode))
        return husk_err(err, errno ? errno : ENOTDIR, "field '%s': '%s' is not a directory", field,
                        copy);
    char dst[32];
    snprintf(dst, sizeof(dst), "/wasm/dir%zu", i);
    add_bind(grants, copy, dst, mode != NULL);
    json_object_set_new(preopens, guest, json_string(dst));
    return 0;
}

/* The directories granted: binds collected in grants, guest paths in preopens. */
static int
dirs_field(json_t *spec, const struct faas_policy *p, struct sbx_config *grants, json_t *preopens,
           struct husk_error **err)
{
    json_t *a = json_object_get(spec, "wasm_dirs"), *e;
    size_t i;
    if (a == NULL)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > WASM_MAX_DIRS)
        return husk_err(err, 0, "field 'wasm_dirs': must be an array of at most %d strings",
                        WASM_MAX_DIRS);
    json_array_foreach(a, i, e)
    {
        if (!json_is_string(e))
            return husk_err(err, 0, "field 'wasm_dirs[%zu]': must be a string", i);
        int r = one_dir(p, json_string_value(e), i, grants, preopens, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* What the deploy asks that a WebAssembly function cannot do. */
static int
check_fields(struct faas_function *f, json_t *spec, const struct faas_wasm_info *info,
             struct husk_error **err)
{
    if (json_object_get(spec, "contract") == NULL)
        f->contract = &faas_contract_cgi; /* WAGI */
    if (f->contract != &faas_contract_cgi && f->contract != &faas_contract_stdio)
        return husk_err(err, 0,
                        "field 'contract': a wasm function runs on the cgi (WAGI, the default) "
                        "or the stdio contract");
    if (json_object_get(spec, "command"))
        return husk_err(err, 0,
                        "field 'command': not used with 'wasm' (the module is the "
                        "program; the query gives its arguments)");
    for (size_t i = 0; f->env && f->env[i]; i++)
        if (str_has_prefix(f->env[i], "HUSK_WASM_"))
            return husk_err(err, 0, "field 'env[%zu]': HUSK_WASM_* variables are the engine's", i);
    if (f->concurrency != 1)
        return husk_err(err, 0,
                        "field 'concurrency': a wasm function's instance runs one call "
                        "at a time (scale with 'max')");
    if (f->memory && f->memory < WASM_MIN_MEMORY)
        return husk_err(err, 0,
                        "field 'memory': a wasm function needs at least %lld MiB (the engine "
                        "takes %lld MiB of it)",
                        WASM_MIN_MEMORY >> 20, WASM_ENGINE_RESERVE >> 20);
    int64_t pages = f->memory ? (f->memory - WASM_ENGINE_RESERVE) / WASM_PAGE : 0;
    if (pages && info->min_pages > pages)
        return husk_err(err, 0,
                        "field 'memory': the module starts with %u MiB of linear memory, over "
                        "the %lld MiB its memory limit leaves it",
                        info->min_pages / 16, (long long)pages / 16);
    return 0;
}

/* The per-call program and the engine's command line. */
static char **
wasm_args(const char *engine, int64_t memory)
{
    char **v = xcalloc(9, sizeof(char *));
    size_t n = 0;
    v[n++] = xstrdup("/husk/wasm-run");
    v[n++] = xstrdup(engine);
    v[n++] = xstrdup("--no-warnings");
    v[n++] = xstrdup("--disallow-code-generation-from-strings");
    /* Node 20's node:wasi calls may allocate from V8's fast API calls, where a garbage
     * collection (likely once a module's memory has grown) aborts the engine: the slow calls
     * allow it. */
    v[n++] = xstrdup("--no-turbo-fast-api-calls");
    if (memory) /* the engine's own cap on each linear memory, in pages */
        v[n++] = xasprintf("--wasm-max-mem-pages=%lld",
                           (long long)((memory - WASM_ENGINE_RESERVE) / WASM_PAGE));
    v[n++] = xstrdup("/husk/wasm-server.js");
    return v;
}

static void
env_add(struct sbx_process *p, char *kv)
{
    size_t n = strv_len(p->env);
    p->env = xrealloc(p->env, (n + 2) * sizeof(char *));
    p->env[n] = kv;
    p->env[n + 1] = NULL;
}

static void
grants_freep(struct sbx_config **c)
{
    sbx_config_free(*c);
}

/* The tmpfs on /tmp (the engine's socket lives there) and the grants' binds, moved into the
 * plan. */
static void
add_grants(struct sbx_config *c, struct sbx_config *grants)
{
    faas_add_tmp(c);
    if (grants->n_mounts == 0)
        return;
    c->mounts = xrealloc(c->mounts, (c->n_mounts + grants->n_mounts) * sizeof(*c->mounts));
    memcpy(c->mounts + c->n_mounts, grants->mounts, grants->n_mounts * sizeof(*c->mounts));
    c->n_mounts += grants->n_mounts;
    grants->n_mounts = 0;
}

int
faas_wasm_plan(struct faas_function *f, json_t *spec, const struct faas_deploy_ctx *dc,
               struct husk_error **err)
{
    const char *path = json_string_value(json_object_get(spec, "wasm"));
    cleanup_free char *buf = NULL, *engine = NULL, *engine_dir = NULL, *root = NULL;
    size_t len = 0;
    struct faas_wasm_info info;
    cleanup_(grants_freep) struct sbx_config *grants = xcalloc(1, sizeof(*grants));
    cleanup_json json_t *preopens = json_object();
    /* Everything the deployer may get wrong first: a refusal builds nothing. */
    int r = read_module(path, dc->owner, &buf, &len, &info, err);
    if (r == 0)
        r = check_fields(f, spec, &info, err);
    if (r == 0)
        r = dirs_field(spec, dc->policy, grants, preopens, err);
    if (r == 0)
        r = find_engine(&engine, err);
    if (r == 0)
        r = engine_root(dc->state_dir, engine, &engine_dir, err);
    if (r == 0)
        r = module_root(dc->state_dir, engine_dir, buf, len, &root, err);
    if (r == 0)
        r = faas_open_trusted(root, dc->owner, true, "wasm", &f->root_fd, err);
    if (r == 0)
        r = oci_config_default(root, &f->cfg, err);
    if (r < 0)
        return r;
    f->root_path = steal_ptr(&root);
    struct sbx_config *c = f->cfg->sbx;
    add_grants(c, grants);
    strv_freep(&c->process.args);
    c->process.args = wasm_args(engine, f->memory);
    cleanup_json json_t *config =
        json_pack("{s:s, s:s, s:b, s:O}", "module", "/wasm/module.wasm", "name", f->name, "wagi",
                  f->contract == &faas_contract_cgi, "dirs", preopens);
    cleanup_free char *text = json_dumps(config, JSON_COMPACT);
    env_add(&c->process, xasprintf("HUSK_WASM_CONFIG=%s", text));
    return 0;
}
