/* SPDX-License-Identifier: Apache-2.0 */
/* `husk image`: OCI image layouts into husk's content store, and bundles or images out of it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "image.h"
#include "oci.h"
#include "pack-bundle.h"
#include "syscalls.h"
#include "util.h"

struct import_opts {
    const char *ref, *output, *format, *image, *compress, *max_file, *max_total, *max_ratio;
};

#define IMAGE_IMPORT 1u /* the group of import's flags */
#define IMPORT_FLAG(n, s, f, h)                                                                    \
    {                                                                                              \
        n, s, FLAG_STRING, offsetof(struct import_opts, f), h, IMAGE_IMPORT                        \
    }
static const struct flag image_flags[] = {
    IMPORT_FLAG(
        "ref", 0, ref,
        "the manifest named so (org.opencontainers.image.ref.name); the name it is stored under"),
    IMPORT_FLAG("output", 'o', output,
                "also write the image as a bundle, rootfs, tar or image here (must not exist)"),
    IMPORT_FLAG("format", 'f', format,
                "with --output: bundle (default), rootfs, tar, erofs or squashfs"),
    IMPORT_FLAG(
        "image", 0, image,
        "bundle only: keep the rootfs as an erofs or squashfs image that `husk run` mounts"),
    IMPORT_FLAG("compress", 0, compress, "image compression (default none)"),
    IMPORT_FLAG("max-file-size", 0, max_file,
                "refuse a layer entry larger than this (default 8G; k, M, G suffixes)"),
    IMPORT_FLAG("max-total-size", 0, max_total,
                "refuse an image that unpacks to more than this (default 32G)"),
    IMPORT_FLAG(
        "max-ratio", 0, max_ratio,
        "refuse a layer that expands more than N times its compressed size past its first 64M "
        "(default 100; 0: no limit)"),
};

static char *
store_dir(const struct cli *cli)
{
    return xasprintf("%s/images", cli->root);
}

/* "uid[:gid]" or names looked up in the image's own /etc/passwd and /etc/group, opened
 * inside the image's root (a symlink there cannot point at the host's files). */
static int
lookup_id(int rootfd, const char *file, const char *name, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(name, &v) == 0 && v <= UINT32_MAX) {
        *out = (uint32_t)v;
        return 0;
    }
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = sys_openat2(rootfd, file, &how);
    cleanup_file FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return -ENOENT;
    }
    cleanup_free char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *user = strtok_r(line, ":", &save);
        strtok_r(NULL, ":", &save); /* password */
        char *id = strtok_r(NULL, ":\n", &save);
        if (user && id && strcmp(user, name) == 0 && parse_u64(id, &v) == 0 && v <= UINT32_MAX) {
            *out = (uint32_t)v;
            return 0;
        }
    }
    return -ENOENT;
}

static int
resolve_user(int rootfd, const char *user, struct pack_process *p, struct husk_error **err)
{
    if (user == NULL)
        return 0;
    cleanup_free char *copy = xstrdup(user);
    char *colon = strchr(copy, ':');
    if (colon)
        *colon++ = '\0';
    if (lookup_id(rootfd, "/etc/passwd", copy, &p->uid) < 0)
        return husk_err(err, 0, "image config: User '%s' is not in the image's /etc/passwd", user);
    p->gid = p->uid;
    if (colon && lookup_id(rootfd, "/etc/group", colon, &p->gid) < 0)
        return husk_err(err, 0, "image config: group '%s' is not in the image's /etc/group", colon);
    return 0;
}

/* Mount points a read-only root must have; a symlink in their place is left alone. Modes are
 * set after mkdir, which the umask would narrow (a /tmp of 1755 is of no use). */
static void
add_mount_points(int rootfd)
{
    cleanup_strv char **mps = pack_mount_points();
    for (size_t i = 0; mps[i]; i++) {
        mode_t mode = strcmp(mps[i], "/tmp") == 0 ? 01777 : 0755;
        if (mkdirat(rootfd, mps[i] + 1, mode) < 0)
            continue;
        cleanup_fd int fd =
            openat(rootfd, mps[i] + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            fchmod(fd, mode);
    }
}

static bool
dir_has_entries(int rootfd, const char *name)
{
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = sys_openat2(rootfd, name, &how);
    cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return true;
    return false;
}

static char **
process_args(const struct img_config *c)
{
    size_t n = strv_len(c->entrypoint) + strv_len(c->cmd);
    char **v = xcalloc(n + 2, sizeof(char *));
    size_t k = 0;
    for (char **a = c->entrypoint; a && *a; a++)
        v[k++] = xstrdup(*a);
    for (char **a = c->cmd; a && *a; a++)
        v[k++] = xstrdup(*a);
    if (k == 0)
        v[k++] = xstrdup("sh"); /* neither Entrypoint nor Cmd: what `husk spec` runs */
    return v;
}

/* Unpack the imported manifest into a staged rootfs and publish it as asked. */
static int
write_output(struct cli *cli, struct img_store *s, const struct img_import *imp,
             const struct import_opts *o, const struct img_limits *lim, struct husk_error **err)
{
    struct pack_output po = {.out = o->output,
                             .format = o->format ? o->format : "bundle",
                             .image = o->image,
                             .compress = o->compress};
    cleanup_free char *staged = NULL;
    struct img_config cfg = {0};
    struct img_warnings warn = {0};
    int r = pack_output_check(&po, err);
    if (r == 0)
        r = img_stage_dir(o->output, &staged, err);
    cleanup_fd int rootfd = r == 0 ? open(staged, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (r == 0 && rootfd < 0)
        r = husk_err(err, errno, "open '%s'", staged);
    if (r == 0)
        r = img_store_unpack(s, imp->manifest_digest, rootfd, lim, &cfg, &warn, err);
    for (size_t i = 0; i < warn.n; i++)
        cli_log(cli, "warning", "%s", warn.v[i]);
    cleanup_strv char **args = process_args(&cfg);
    struct pack_process p = {.args = args, .env = cfg.env, .cwd = cfg.workdir};
    if (r == 0)
        r = resolve_user(rootfd, cfg.user, &p, err);
    if (r == 0) {
        add_mount_points(rootfd);
        p.tmp_in_image = dir_has_entries(rootfd, "tmp");
        cleanup_json json_t *m =
            json_pack("{s:{s:s, s:s?}}", "image", "digest", imp->manifest_digest, "ref", imp->ref);
        r = pack_output_write(&po, staged, &p, m, err);
    } else if (staged) {
        rm_rf_at(AT_FDCWD, staged);
    }
    img_config_clear(&cfg);
    img_warnings_clear(&warn);
    return r;
}

static int
parse_limits(const struct import_opts *o, struct img_limits *lim, struct husk_error **err)
{
    if (o->max_file && pack_parse_size(o->max_file, &lim->max_file) < 0)
        return husk_err(err, 0, "--max-file-size: '%s' is not a size", o->max_file);
    if (o->max_total && pack_parse_size(o->max_total, &lim->max_total) < 0)
        return husk_err(err, 0, "--max-total-size: '%s' is not a size", o->max_total);
    if (o->max_ratio && parse_u64(o->max_ratio, &lim->max_ratio) < 0)
        return husk_err(err, 0, "--max-ratio: '%s' is not a number", o->max_ratio);
    return 0;
}

static int
image_import(struct cli *cli, const struct verb *v, int argc, char **argv)
{
    struct import_opts o = {0};
    struct husk_error *err = NULL;
    int i = cli_parse_flags(v, v->flags, v->n_flags, &o, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (i + 1 != argc) {
        fprintf(stderr, "husk image import: one DIR or TAR is required\n");
        return 2;
    }
    struct img_limits lim = IMG_LIMITS_DEFAULT;
    cleanup_free char *dir = store_dir(cli);
    cleanup_(img_store_freep) struct img_store *s = NULL;
    struct img_import imp = {0};
    uint64_t t0 = now_ns();
    int r = parse_limits(&o, &lim, &err);
    if (r == 0 && (o.format || o.image || o.compress) && !o.output)
        r = husk_err(&err, 0, "--format, --image and --compress go with --output");
    if (r == 0)
        r = img_store_open(dir, &s, &err);
    if (r == 0)
        r = img_store_import(s, argv[i], o.ref, &lim, &imp, &err);
    if (r == 0 && o.output)
        r = write_output(cli, s, &imp, &o, &lim, &err);
    if (r < 0) {
        img_import_clear(&imp);
        return cli_fail(cli, err);
    }
    char size[32];
    pack_format_bytes(imp.blob_bytes, size, sizeof(size));
    printf("imported %s%s%s: %zu layers, %s%s%s in %.1f ms\n", imp.manifest_digest,
           imp.ref ? " as " : "", imp.ref ? imp.ref : "", imp.n_layers, size,
           o.output ? " -> " : "", o.output ? o.output : "", (double)(now_ns() - t0) / 1e6);
    img_import_clear(&imp);
    return 0;
}

static char *
cas_dir(const struct cli *cli)
{
    return xasprintf("%s/store", cli->root);
}

static int
print_json(json_t *j)
{
    cleanup_free char *text = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", text);
    return 0;
}

/* The packed images of the deduplicated store, after the OCI layout's refs. */
static int
cas_list(struct cli *cli, json_t *list, struct husk_error **err)
{
    cleanup_free char *dir = cas_dir(cli);
    struct stat st;
    if (stat(dir, &st) < 0)
        return 0;
    cleanup_(img_cas_freep) struct img_cas *c = NULL;
    int r = img_cas_open(dir, &c, err);
    if (r < 0)
        return r;
    cleanup_json json_t *images = img_cas_list(c, err);
    if (images == NULL)
        return -EINVAL;
    size_t i;
    json_t *v;
    json_array_foreach(images, i, v)
    {
        json_object_set(v, "ref", json_object_get(v, "name"));
        json_object_set_new(v, "store", json_string("packed"));
        json_array_append(list, v);
    }
    return 0;
}

static int
image_ls(struct cli *cli, const struct verb *v, int argc, char **argv)
{
    struct husk_error *err = NULL;
    cleanup_free char *dir = store_dir(cli);
    cleanup_(img_store_freep) struct img_store *s = NULL;
    struct stat st;
    int i = cli_parse_flags(v, NULL, 0, NULL, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (argc > 0) {
        fprintf(stderr, "husk image ls: no arguments expected\n");
        return 2;
    }
    cleanup_json json_t *list = json_array();
    if (stat(dir, &st) == 0) {
        json_decref(list);
        if (img_store_open(dir, &s, &err) < 0 || (list = img_store_list(s, &err)) == NULL)
            return cli_fail(cli, err);
    }
    if (cas_list(cli, list, &err) < 0)
        return cli_fail(cli, err);
    return print_json(list);
}

/* inspect NAME, rm NAME, gc, df: the deduplicated store. */
static int
image_cas(struct cli *cli, const struct verb *v, int argc, char **argv)
{
    struct husk_error *err = NULL;
    const char *verb = v->name + strlen("image ");
    bool named = strcmp(verb, "inspect") == 0 || strcmp(verb, "rm") == 0;
    int i = cli_parse_flags(v, NULL, 0, NULL, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    argc -= i;
    argv += i;
    if (argc != (named ? 1 : 0)) {
        fprintf(stderr, "husk image %s: %s\n", verb,
                named ? "one image NAME is required" : "no arguments expected");
        return 2;
    }
    cleanup_free char *dir = cas_dir(cli);
    cleanup_(img_cas_freep) struct img_cas *c = NULL;
    if (img_cas_open(dir, &c, &err) < 0)
        return cli_fail(cli, err);
    if (strcmp(verb, "rm") == 0) {
        if (img_cas_remove(c, argv[0], &err) < 0)
            return cli_fail(cli, err);
        printf("removed image '%s' (`husk image gc` frees what no image uses now)\n", argv[0]);
        return 0;
    }
    if (strcmp(verb, "gc") == 0) {
        uint64_t bytes, objects;
        if (img_cas_gc(c, &bytes, &objects, &err) < 0)
            return cli_fail(cli, err);
        char size[32];
        pack_format_bytes(bytes, size, sizeof(size));
        printf("freed %llu objects, %s\n", (unsigned long long)objects, size);
        return 0;
    }
    cleanup_json json_t *j = named ? img_cas_inspect(c, argv[0], &err) : img_cas_usage(c, &err);
    if (j == NULL)
        return cli_fail(cli, err);
    return print_json(j);
}

static const struct image_sub {
    struct cli_sub sub;
    int (*run)(struct cli *cli, const struct verb *v, int argc, char **argv);
} image_subs[] = {
    {{"import", "[flags] DIR|TAR",
      "Import an OCI image layout (a directory or a tar) into the store; with --output, also "
      "make a bundle, rootfs, tar or image of it.",
      IMAGE_IMPORT, CLI_ARG_FILE},
     image_import},
    {{"ls", "", "List the images of both stores, as JSON."}, image_ls},
    {{"inspect", "NAME", "Show an image of the deduplicated store, as JSON."}, image_cas},
    {{"rm", "NAME",
      "Remove an image from the deduplicated store (`husk image gc` frees its files)."},
     image_cas},
    {{"gc", "", "Free the files of the deduplicated store that no image uses."}, image_cas},
    {{"df", "", "Show the deduplicated store's size and its dedup ratio, as JSON."}, image_cas},
};

static int
cmd_image(struct cli *cli, int argc, char **argv)
{
    int code;
    const struct image_sub *s =
        (const struct image_sub *)cli_find_sub(&verb_image, argc, argv, &code);
    if (s == NULL)
        return code;
    struct cli_sub_verb sv;
    cli_sub_verb_init(&sv, &verb_image, &s->sub);
    code = s->run(cli, &sv.verb, argc - 1, argv + 1);
    cli_sub_verb_clear(&sv);
    return code;
}

const struct verb verb_image = {
    .name = "image",
    .usage = "SUBCOMMAND [flags] [ARGS]",
    .summary = "Import OCI image layouts; make bundles or images of them.",
    .run = cmd_image,
    .flags = image_flags,
    .n_flags = ARRAY_SIZE(image_flags),
    .subs = &image_subs[0].sub,
    .n_subs = ARRAY_SIZE(image_subs),
    .sub_size = sizeof(image_subs[0]),
    .kind = VERB_HUSK,
    .description =
        "Images are imported into the store under the state directory (ROOT/images, itself an "
        "OCI layout). `husk pack -f store -o NAME` keeps images in the deduplicated store "
        "(ROOT/store: each file stored once, by content), which inspect, rm, gc and df "
        "manage.",
};
