/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Publishing a staged rootfs: as an OCI bundle (config.json from `husk spec`'s defaults, the
 * rootfs as a directory or as an erofs/squashfs image named by the run.husk.rootfs.image
 * annotation), or as a bare rootfs, tar or image. Everything is built in a scratch directory
 * beside the destination and renamed into place, so a failure leaves nothing behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "oci.h"
#include "pack-bundle.h"
#include "util.h"

int
pack_parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "kmgt";
    size_t len = strlen(s);
    uint64_t mult = 1;
    cleanup_free char *num = xstrdup(s);
    if (len > 1) {
        const char *u = strchr(units, s[len - 1] | 0x20);
        if (u) {
            mult = 1ull << (10 * (u - units + 1));
            num[len - 1] = '\0';
        }
    }
    uint64_t v;
    if (parse_u64(num, &v) < 0 || v > UINT64_MAX / mult)
        return -EINVAL;
    *out = v * mult;
    return 0;
}

void
pack_format_bytes(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000)
        snprintf(buf, len, "%.1f MB", (double)n / 1e6);
    else if (n >= 1000)
        snprintf(buf, len, "%.1f kB", (double)n / 1e3);
    else
        snprintf(buf, len, "%llu B", (unsigned long long)n);
}

char **
pack_mount_points(void)
{
    cleanup_json json_t *spec = oci_spec_default(false);
    json_t *mounts = json_object_get(spec, "mounts"), *m;
    size_t i, n = 0;
    char **v = xcalloc(json_array_size(mounts) + 2, sizeof(char *));
    json_array_foreach(mounts, i, m)
    {
        const char *dst = json_string_value(json_object_get(m, "destination"));
        if (dst && dst[0] == '/' && strchr(dst + 1, '/') == NULL)
            v[n++] = xstrdup(dst);
    }
    v[n++] = xstrdup("/tmp");
    return v;
}

static const char *
image_ext(const char *image)
{
    return strcmp(image, "squashfs") == 0 ? "squashfs" : "erofs";
}

int
pack_output_check(const struct pack_output *o, struct husk_error **err)
{
    enum img_format f;
    struct stat st;
    if (o->out == NULL)
        return husk_err(err, 0, "an output is required (-o PATH)");
    if (lstat(o->out, &st) == 0)
        return husk_err(err, 0, "'%s' exists already; remove it or pick another output", o->out);
    cleanup_free char *parent = xstrdup(o->out);
    char *slash = strrchr(parent, '/');
    if (slash)
        *(slash == parent ? slash + 1 : slash) = '\0';
    if (slash && stat(parent, &st) < 0)
        return husk_err(err, errno, "output '%s': its directory '%s'", o->out, parent);
    if (slash && !S_ISDIR(st.st_mode))
        return husk_err(err, ENOTDIR, "output '%s': '%s'", o->out, parent);
    bool bundle = strcmp(o->format, "bundle") == 0;
    if (!bundle && img_format_parse(o->format, &f) < 0)
        return husk_err(err, 0, "unknown format '%s': use bundle, rootfs, tar, erofs or squashfs",
                        o->format);
    if (o->image && !bundle)
        return husk_err(err, 0, "--image goes with --format bundle");
    if (o->image && strcmp(o->image, "erofs") != 0 && strcmp(o->image, "squashfs") != 0)
        return husk_err(err, 0, "--image must be erofs or squashfs, not '%s'", o->image);
    if (o->compress && bundle && !o->image)
        return husk_err(err, 0, "--compress goes with an image (--image, or an image format)");
    return 0;
}

static json_t *
strv_json(char **v)
{
    json_t *a = json_array();
    for (; v && *v; v++)
        json_array_append_new(a, json_string(*v));
    return a;
}

static json_t *
bundle_config(const struct pack_process *p, const char *image_file)
{
    json_t *spec = oci_spec_default(false);
    /* Nothing here postdates runtime-spec 1.0.2, and crun 1.8 (Debian 12) refuses "1.2.0". */
    json_object_set_new(spec, "ociVersion", json_string("1.0.2"));
    json_t *proc = json_object_get(spec, "process");
    json_object_set_new(proc, "args", strv_json(p->args));
    if (p->env)
        json_object_set_new(proc, "env", strv_json(p->env));
    json_t *env = json_object_get(proc, "env");
    for (char **e = p->extra_env; e && *e; e++)
        json_array_append_new(env, json_string(*e));
    json_object_set_new(proc, "cwd", json_string(p->cwd ? p->cwd : "/"));
    json_object_set_new(
        proc, "user",
        json_pack("{s:I, s:I}", "uid", (json_int_t)p->uid, "gid", (json_int_t)p->gid));
    json_object_set_new(spec, "root", json_pack("{s:s, s:b}", "path", "rootfs", "readonly", 1));
    /* The root is read-only; functions expect a scratch /tmp (unless the image has one). */
    if (!p->tmp_in_image)
        json_array_append_new(json_object_get(spec, "mounts"),
                              json_pack("{s:s, s:s, s:s, s:[s,s,s,s]}", "destination", "/tmp",
                                        "type", "tmpfs", "source", "tmpfs", "options", "nosuid",
                                        "nodev", "mode=1777", "size=65536k"));
    if (image_file)
        json_object_set_new(spec, "annotations",
                            json_pack("{s:s}", OCI_ANN_ROOTFS_IMAGE, image_file));
    return spec;
}

static int
write_json(json_t *j, const char *path, struct husk_error **err)
{
    cleanup_free char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    cleanup_free char *line = xasprintf("%s\n", text);
    cleanup_fd int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, line, strlen(line)) < 0)
        return husk_err(err, errno, "write '%s'", path);
    return 0;
}

static int
write_bundle(const struct pack_output *o, const char *staged, const char *bundle,
             const struct pack_process *p, json_t *manifest, struct husk_error **err)
{
    cleanup_free char *rootfs = xasprintf("%s/rootfs", bundle);
    cleanup_free char *image_file = o->image ? xasprintf("rootfs.%s", image_ext(o->image)) : NULL;
    int r;
    if (o->image) {
        cleanup_free char *path = xasprintf("%s/%s", bundle, image_file);
        enum img_format f = strcmp(o->image, "squashfs") == 0 ? IMG_FMT_SQUASHFS : IMG_FMT_EROFS;
        if ((r = img_output_write(staged, f, o->compress, path, err)) < 0)
            return r;
        /* The mount point the image is mounted on, in the container's own namespace. */
        if (mkdir(rootfs, 0755) < 0)
            return husk_err(err, errno, "mkdir '%s'", rootfs);
    } else if (rename(staged, rootfs) < 0) {
        return husk_err(err, errno, "rename '%s' to '%s'", staged, rootfs);
    }
    cleanup_json json_t *config = bundle_config(p, image_file);
    cleanup_free char *config_path = xasprintf("%s/config.json", bundle);
    if ((r = write_json(config, config_path, err)) < 0)
        return r;
    if (manifest && o->manifest == NULL) {
        cleanup_free char *mpath = xasprintf("%s/manifest.json", bundle);
        return write_json(manifest, mpath, err);
    }
    return 0;
}

int
pack_output_write(const struct pack_output *o, const char *staged, const struct pack_process *p,
                  json_t *manifest, struct husk_error **err)
{
    int r;
    if (strcmp(o->format, "bundle") == 0) {
        cleanup_free char *bundle = NULL;
        if ((r = img_stage_dir(o->out, &bundle, err)) < 0)
            return r;
        r = write_bundle(o, staged, bundle, p, manifest, err);
        if (r == 0 && renameat2(AT_FDCWD, bundle, AT_FDCWD, o->out, RENAME_NOREPLACE) < 0)
            r = husk_err(err, errno, "rename '%s' to '%s'", bundle, o->out);
        if (r < 0)
            rm_rf_at(AT_FDCWD, bundle);
    } else {
        enum img_format f;
        img_format_parse(o->format, &f);
        r = img_output_write(staged, f, o->compress, o->out, err);
    }
    rm_rf_at(AT_FDCWD, staged); /* gone already when it was renamed */
    if (r < 0 || manifest == NULL || (strcmp(o->format, "bundle") == 0 && o->manifest == NULL))
        return r;
    cleanup_free char *mpath =
        o->manifest ? xstrdup(o->manifest) : xasprintf("%s.manifest.json", o->out);
    unlink(mpath);
    return write_json(manifest, mpath, err);
}
