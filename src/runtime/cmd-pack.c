/* SPDX-License-Identifier: Apache-2.0 */
/* `husk pack`: a program and exactly what it needs, as a bundle, rootfs, tar or image. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "image.h"
#include "oci.h"
#include "pack-bundle.h"
#include "util.h"

struct pack_opts {
    const char *output, *format, *image, *compress, *manifest;
    struct strlist add, env;
    bool trace, bare;
    int trace_timeout;
    const char *scratch; /* scratch space goes next to this path (not a flag) */
};

static const struct flag pack_flags[] = {
    {"output", 'o', FLAG_STRING, offsetof(struct pack_opts, output),
     "where to write the result (must not exist)"},
    {"format", 'f', FLAG_STRING, offsetof(struct pack_opts, format),
     "bundle (default), rootfs, tar (zstd), erofs, squashfs, or store (-o NAME: the "
     "deduplicated image store)"},
    {"image", 0, FLAG_STRING, offsetof(struct pack_opts, image),
     "bundle only: keep the rootfs as an erofs or squashfs image that `husk run` mounts"},
    {"compress", 0, FLAG_STRING, offsetof(struct pack_opts, compress),
     "image compression (default none: it starts fastest): erofs lz4|lz4hc, squashfs "
     "gzip|lz4|zstd|xz"},
    {"add", 'a', FLAG_STRINGS, offsetof(struct pack_opts, add),
     "SRC[:DST]: also include a host file or directory (repeatable)"},
    {"env", 'e', FLAG_STRINGS, offsetof(struct pack_opts, env),
     "KEY=VALUE for the process's environment in config.json (repeatable)"},
    {"trace", 0, FLAG_BOOL, offsetof(struct pack_opts, trace),
     "run `-- COMMAND [ARG...]` once in a sandbox and add every file it opens"},
    {"trace-timeout", 0, FLAG_INT, offsetof(struct pack_opts, trace_timeout),
     "seconds the traced run may take before it is stopped (default 10)"},
    {"bare", 0, FLAG_BOOL, offsetof(struct pack_opts, bare),
     "no resolv.conf, hosts or CA certificates even when the program links TLS or DNS code"},
    {"manifest", 0, FLAG_STRING, offsetof(struct pack_opts, manifest),
     "where the manifest goes (default: BUNDLE/manifest.json or OUTPUT.manifest.json)"},
};

/* A command-line path made absolute against the cwd; names without '/' are looked up in PATH. */
static char *
absolute(const struct img_tree *t, const char *name, bool lookup)
{
    char cwd[PATH_MAX];
    if (name[0] == '/')
        return xstrdup(name);
    if (lookup && strchr(name, '/') == NULL)
        return img_which(t, name);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    return xasprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, name);
}

/* SRC[:DST]; DST defaults to SRC's absolute path. */
static int
add_extra(struct img_tree *t, const char *spec, struct husk_error **err)
{
    cleanup_free char *copy = xstrdup(spec);
    char *colon = strchr(copy, ':');
    if (colon)
        *colon = '\0';
    cleanup_free char *src = absolute(t, copy, false);
    const char *dst = colon ? colon + 1 : src;
    if (src == NULL || dst[0] != '/')
        return husk_err(err, 0, "--add '%s': the destination must be an absolute path", spec);
    int r = img_tree_add_copy(t, src, dst, "--add", err);
    return r < 0 ? husk_err_prefix(err, "--add '%s': ", spec) : 0;
}

/* The traced run's environment: a default PATH and HOME, then each -e (documented in
 * docs/packaging.md; the same -e the bundle's process gets). */
static char **
trace_env(const struct strlist *extra)
{
    char **env = xcalloc(extra->n + 3, sizeof(char *));
    size_t n = 0;
    env[n++] = xstrdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    env[n++] = xstrdup("HOME=/root");
    for (size_t i = 0; i < extra->n; i++)
        env[n++] = xstrdup(extra->v[i]);
    return env;
}

/* The traced run of argv; its files join the tree. */
static int
trace(struct img_tree *t, char **argv, const struct pack_opts *po, struct husk_error **err)
{
    int timeout_s = po->trace_timeout > 0 ? po->trace_timeout : 10;
    const char *out = po->scratch;
    char self[PATH_MAX], cwd[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0 || getcwd(cwd, sizeof(cwd)) == NULL)
        return husk_err(err, errno, "find the husk binary");
    self[n] = '\0';
    char *helper[] = {self, "pack", "--trace-helper", NULL};
    cleanup_strv char **env = trace_env(&po->env);
    cleanup_free char *work = NULL;
    int r = img_stage_dir(out, &work, err);
    if (r < 0)
        return r;
    struct img_trace_opts o = {.argv = argv,
                               .env = env,
                               .cwd = cwd,
                               .helper = helper,
                               .workdir = work,
                               .timeout_ms = timeout_s * 1000};
    struct img_trace_result res;
    r = img_trace_run(&o, &res, err);
    rm_rf_at(AT_FDCWD, work);
    if (r == 0 && res.timed_out)
        fprintf(stderr,
                "husk pack: the traced run was stopped after %d s; what it opened "
                "until then is included\n",
                timeout_s);
    else if (r == 0 && res.exit_status != 0)
        fprintf(stderr, "husk pack: the traced run exited with status %d\n",
                WIFEXITED(res.exit_status) ? WEXITSTATUS(res.exit_status)
                                           : 128 + WTERMSIG(res.exit_status));
    if (r == 0)
        r = img_trace_add(t, &res, argv[0], err);
    img_trace_result_clear(&res);
    return r;
}

/* The files of the image: program, argument files, traced files, --add, mount points. */
static int
collect(struct img_tree *t, const struct pack_opts *o, char **args, struct husk_error **err)
{
    int r = img_add_program(t, args[0], "program", err);
    for (size_t i = 1; r == 0 && args[i]; i++) {
        /* Only arguments naming files on this machine are files; the rest are just words. */
        if (access(args[i], F_OK) == 0 && args[i][0] == '/')
            r = img_add_argument(t, args[i], args[0], err);
    }
    if (r == 0 && o->trace)
        r = trace(t, args, o, err);
    for (size_t i = 0; r == 0 && i < o->add.n; i++)
        r = add_extra(t, o->add.v[i], err);
    if (r == 0)
        r = img_add_implicit_libs(t, err);
    if (r == 0 && !o->bare)
        r = img_add_extras(t, err);
    cleanup_strv char **mps = pack_mount_points();
    for (size_t i = 0; r == 0 && mps[i]; i++)
        r = img_tree_add_dir(t, mps[i], strcmp(mps[i], "/tmp") == 0 ? 01777 : 0755, "mount point",
                             err);
    return r;
}

/* The command line: PROGRAM [FILE...] (files resolved) or, with --trace, COMMAND [ARG...]. */
static int
resolve_args(const struct img_tree *t, char **argv, int argc, char ***out, struct husk_error **err)
{
    char **v = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        v[i] = absolute(t, argv[i], i == 0);
        if (v[i] == NULL) {
            strv_freep(&v);
            return husk_err(err, 0, "'%s' is not in PATH", argv[i]);
        }
        /* Arguments that are not files stay as they are. */
        if (i > 0 && argv[i][0] != '/' && access(v[i], F_OK) < 0) {
            free(v[i]);
            v[i] = xstrdup(argv[i]);
        }
    }
    *out = v;
    return 0;
}

static bool
tmp_in_image(const struct img_tree *t)
{
    for (size_t i = 0; i < img_tree_count(t); i++)
        if (str_has_prefix(img_tree_at(t, i)->path, "/tmp/"))
            return true;
    return false;
}

static int
run_helper(int argc, char **argv)
{
    struct husk_error *err = NULL;
    /* --trace-helper RECORD -- COMMAND...: we are inside the trace sandbox. */
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "husk pack --trace-helper: internal use only\n");
        return 2;
    }
    int status = img_trace_supervise(argv[1], argv + 3, &err);
    if (status < 0) {
        cleanup_free char *s = husk_error_string(err);
        fprintf(stderr, "husk pack: %s\n", s);
        husk_error_free(err);
        return 125;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A percentage on a terminal, nothing otherwise (a log or a pipe wants no \r). */
static void
show_progress(void *arg, const char *step, uint64_t done, uint64_t total)
{
    int *last = arg;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct == *last)
        return;
    *last = pct;
    char d[32], t[32];
    pack_format_bytes(done, d, sizeof(d));
    pack_format_bytes(total, t, sizeof(t));
    fprintf(stderr, "\rhusk pack: %s %3d%% (%s of %s)%s", step, pct, d, t, pct == 100 ? "\n" : "");
}

static json_t *
pack_manifest(const struct img_tree *t, char **args)
{
    json_t *manifest = img_tree_manifest(t);
    json_t *a = json_array();
    for (; *args; args++)
        json_array_append_new(a, json_string(*args));
    json_object_set_new(manifest, "args", a);
    return manifest;
}

/* Write the tree into a new staging directory (from stage()). */
static int
stage_tree(const struct img_tree *t, int (*stage)(void *, char **, struct husk_error **),
           void *stage_arg, char **staged, struct husk_error **err)
{
    cleanup_fd int stagefd = -1;
    int last = -1;
    struct img_progress progress = {.fn = show_progress, .arg = &last};
    int r = stage(stage_arg, staged, err);
    if (r == 0 && (stagefd = open(*staged, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        r = husk_err(err, errno, "open '%s'", *staged);
    if (r == 0)
        r = img_tree_write(t, stagefd, isatty(STDERR_FILENO) ? &progress : NULL, err);
    if (r < 0 && *staged)
        rm_rf_at(AT_FDCWD, *staged);
    return r;
}

static int
stage_next_to(void *dst, char **out, struct husk_error **err)
{
    return img_stage_dir(dst, out, err);
}

static int
stage_in_store(void *cas, char **out, struct husk_error **err)
{
    return img_cas_stage(cas, out, err);
}

static char *
store_path(const struct cli *cli)
{
    return xasprintf("%s/store", cli->root);
}

/* -f store -o NAME: into the deduplicated store (ROOT/store). */
static int
pack_store(struct cli *cli, const struct pack_opts *o, char **args, struct img_tree *t,
           struct husk_error **err)
{
    cleanup_free char *dir = store_path(cli), *staged = NULL;
    cleanup_(img_cas_freep) struct img_cas *cas = NULL;
    struct img_cas_stats st = {0};
    int r = img_cas_open(dir, &cas, err);
    if (r == 0)
        r = img_cas_check_name(cas, o->output, false, err);
    if (r == 0)
        r = collect(t, o, args, err);
    if (r == 0)
        r = stage_tree(t, stage_in_store, cas, &staged, err);
    if (r == 0) {
        cleanup_json json_t *manifest = pack_manifest(t, args);
        r = img_cas_add(cas, o->output, staged, manifest, &st, err);
        if (r < 0)
            rm_rf_at(AT_FDCWD, staged);
    }
    if (r < 0)
        return r;
    char all[32], fresh[32];
    pack_format_bytes(st.bytes, all, sizeof(all));
    pack_format_bytes(st.new_bytes, fresh, sizeof(fresh));
    printf("stored %s as image '%s' in %s: %llu files, %s, %s of it new\n", args[0], o->output, dir,
           (unsigned long long)st.files, all, fresh);
    return 0;
}

static int
pack(struct cli *cli, const struct pack_opts *o, char **args)
{
    struct husk_error *err = NULL;
    struct pack_output po = {.out = o->output,
                             .format = o->format,
                             .image = o->image,
                             .compress = o->compress,
                             .manifest = o->manifest};
    uint64_t t0 = now_ns();
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    cleanup_free char *staged = NULL;
    int r = img_tree_new("/", &t, &err);
    if (r == 0 && strcmp(o->format, "store") == 0) {
        if ((r = pack_store(cli, o, args, t, &err)) < 0)
            return cli_fail(cli, err);
        return 0;
    }
    if (r == 0)
        r = pack_output_check(&po, &err);
    if (r == 0)
        r = collect(t, o, args, &err);
    if (r == 0)
        r = stage_tree(t, stage_next_to, (void *)o->output, &staged, &err);
    if (r == 0) {
        cleanup_json json_t *manifest = pack_manifest(t, args);
        struct pack_process p = {
            .args = args, .extra_env = o->env.v, .tmp_in_image = tmp_in_image(t)};
        r = pack_output_write(&po, staged, &p, manifest, &err);
    }
    if (r < 0)
        return cli_fail(cli, err);
    if (tmp_in_image(t))
        fprintf(stderr, "husk pack: warning: the image has files under /tmp; `husk serve` mounts a "
                        "fresh tmpfs there, which hides them, and refuses to deploy it: pack from "
                        "another directory\n");
    char size[32];
    pack_format_bytes(img_tree_bytes(t), size, sizeof(size));
    printf("packed %s: %zu entries, %s -> %s (%s%s%s) in %.1f ms\n", args[0], img_tree_count(t),
           size, o->output, o->format, o->image ? ", " : "", o->image ? o->image : "",
           (double)(now_ns() - t0) / 1e6);
    return 0;
}

static int
cmd_pack(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("pack");
    if (argc >= 1 && strcmp(argv[0], "--trace-helper") == 0)
        return run_helper(argc, argv);
    struct pack_opts o = {.format = "bundle"};
    struct husk_error *err = NULL;
    int i = cli_parse_flags(v, pack_flags, ARRAY_SIZE(pack_flags), &o, argc, argv);
    cleanup_free char **add = o.add.v, **env = o.env.v;
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (i >= argc) {
        fprintf(stderr, "husk pack: a program is required (see husk pack --help)\n");
        return 2;
    }
    if (o.output == NULL) {
        fprintf(stderr, "husk pack: an output is required (-o PATH)\n");
        return 2;
    }
    /* Relative outputs are the cwd's (the staging directory and a bundle's paths need it); a
     * store image's output is its name. */
    bool store = strcmp(o.format, "store") == 0;
    cleanup_free char *output = store ? xstrdup(o.output) : absolute(NULL, o.output, false);
    cleanup_free char *manifest = o.manifest ? absolute(NULL, o.manifest, false) : NULL;
    if (output == NULL || (o.manifest && manifest == NULL)) {
        fprintf(stderr, "husk pack: the current directory is gone: cannot place '%s'\n", o.output);
        return 1;
    }
    o.output = output;
    o.manifest = manifest;
    cleanup_free char *scratch = store ? xasprintf("%s/store/tmp/trace", cli->root) : NULL;
    o.scratch = store ? scratch : output;
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    cleanup_strv char **args = NULL;
    if (img_tree_new("/", &t, &err) < 0 || resolve_args(t, argv + i, argc - i, &args, &err) < 0)
        return cli_fail(cli, err);
    return pack(cli, &o, args);
}

const struct verb verb_pack = {
    .name = "pack",
    .usage = "[flags] -o OUTPUT PROGRAM [FILE...] | --trace [flags] -o OUTPUT -- COMMAND [ARG...]",
    .summary = "Package a program and its dependencies as a bundle, rootfs, tar or image.",
    .run = cmd_pack,
    .flags = pack_flags,
    .n_flags = ARRAY_SIZE(pack_flags),
    .kind = VERB_HUSK,
    .arg = CLI_ARG_FILE,
    .description =
        "PROGRAM (looked up in PATH) goes in with its shared libraries, read from its ELF "
        "headers (it is never run), and for Python, Node, Perl and shell scripts what they "
        "import; FILEs and --add add more. With --trace the command runs once in a sandbox and "
        "every file it opens goes in. A bundle runs with `husk run`, an image deploys with "
        "`husk fn deploy --image`.",
};
