/* SPDX-License-Identifier: Apache-2.0 */
/* OCI image-spec documents: descriptors, index (manifest selection), manifest, config. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#include "img-internal.h"
#include "util.h"

#define REF_NAME "org.opencontainers.image.ref.name"

int
img_json_parse(const char *text, size_t len, const char *what, json_t **out,
               struct husk_error **err)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        return husk_err(err, 0, "%s: line %d, column %d: %s", what, je.line, je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return husk_err(err, 0, "%s: expected a JSON object", what);
    }
    *out = j;
    return 0;
}

void
img_desc_clear(struct img_desc *d)
{
    free(d->media_type);
    free(d->digest);
    memset(d, 0, sizeof(*d));
}

int
img_desc_parse(json_t *j, const char *what, struct img_desc *d, struct husk_error **err)
{
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const char *digest = json_string_value(json_object_get(j, "digest"));
    json_t *size = json_object_get(j, "size");
    memset(d, 0, sizeof(*d));
    if (!json_is_object(j))
        return husk_err(err, 0, "%s: expected a descriptor object", what);
    if (!img_digest_valid(digest))
        return husk_err(err, 0, "%s: digest '%s' is not sha256:<64 hex digits>", what,
                        digest ? digest : "");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return husk_err(err, 0, "%s: 'size' must be a non-negative integer", what);
    d->media_type = xstrdup(mt ? mt : "");
    d->digest = xstrdup(digest);
    d->size = (uint64_t)json_integer_value(size);
    return 0;
}

bool
img_media_is_index(const char *mt)
{
    return strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
           strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0;
}

bool
img_media_is_manifest(const char *mt)
{
    return strcmp(mt, "application/vnd.oci.image.manifest.v1+json") == 0 ||
           strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json") == 0;
}

int
img_layer_compression(const char *mt, enum img_compression *out)
{
    static const struct {
        const char *suffix;
        enum img_compression comp;
    } kinds[] = {
        {"image.layer.v1.tar", IMG_COMP_NONE},
        {"image.layer.v1.tar+gzip", IMG_COMP_GZIP},
        {"image.layer.v1.tar+zstd", IMG_COMP_ZSTD},
        {"image.layer.nondistributable.v1.tar", IMG_COMP_NONE},
        {"image.layer.nondistributable.v1.tar+gzip", IMG_COMP_GZIP},
        {"image.layer.nondistributable.v1.tar+zstd", IMG_COMP_ZSTD},
        {"image.rootfs.diff.tar.gzip", IMG_COMP_GZIP}, /* docker */
    };
    const char *p = strstr(mt, "image.");
    for (size_t i = 0; p && i < ARRAY_SIZE(kinds); i++) {
        if (strcmp(p, kinds[i].suffix) == 0) {
            *out = kinds[i].comp;
            return 0;
        }
    }
    return -EINVAL;
}

/* This machine as GOARCH spells it. */
static const char *
host_arch(void)
{
    static const char *const map[][2] = {
        {"x86_64", "amd64"}, {"aarch64", "arm64"},   {"i686", "386"},    {"i386", "386"},
        {"armv7l", "arm"},   {"ppc64le", "ppc64le"}, {"s390x", "s390x"}, {"riscv64", "riscv64"},
    };
    struct utsname u;
    if (uname(&u) < 0)
        return "";
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (strcmp(u.machine, map[i][0]) == 0)
            return map[i][1];
    return "";
}

static bool
platform_matches(json_t *desc)
{
    json_t *p = json_object_get(desc, "platform");
    const char *os = json_string_value(json_object_get(p, "os"));
    const char *arch = json_string_value(json_object_get(p, "architecture"));
    return p && os && arch && strcmp(os, "linux") == 0 && strcmp(arch, host_arch()) == 0;
}

int
img_index_select(json_t *index, const char *what, const char *ref, struct img_desc *out,
                 char **ref_found, struct husk_error **err)
{
    json_t *list = json_object_get(index, "manifests"), *d, *pick = NULL;
    size_t i, n = json_array_size(list), matches = 0, at = 0;
    if (!json_is_array(list) || n == 0)
        return husk_err(err, 0, "%s: 'manifests' lists no image", what);
    json_array_foreach(list, i, d)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(d, "annotations"), REF_NAME));
        bool ok = ref ? (name && strcmp(name, ref) == 0) : (n == 1 || platform_matches(d));
        if (ok && matches++ == 0) {
            pick = d;
            at = i;
        }
    }
    if (pick == NULL && ref)
        return husk_err(err, 0, "%s: no manifest is named '%s' (%s)", what, ref, REF_NAME);
    if (pick == NULL)
        return husk_err(err, 0, "%s: %zu manifests and none for linux/%s; pick one with --ref",
                        what, n, host_arch());
    if (matches > 1 && !ref)
        return husk_err(err, 0, "%s: %zu manifests match; pick one with --ref", what, matches);
    cleanup_free char *dw = xasprintf("%s: manifests[%zu]", what, at);
    int r = img_desc_parse(pick, dw, out, err);
    if (r < 0)
        return r;
    if (ref_found) {
        const char *name =
            json_string_value(json_object_get(json_object_get(pick, "annotations"), REF_NAME));
        *ref_found = name ? xstrdup(name) : NULL;
    }
    return 0;
}

int
img_manifest_parse(json_t *m, const char *what, struct img_desc *config, struct img_desc **layers,
                   size_t *n_layers, struct husk_error **err)
{
    json_t *ls = json_object_get(m, "layers"), *d;
    size_t i;
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    if (mt && !img_media_is_manifest(mt))
        return husk_err(err, 0, "%s: mediaType '%s' is not an image manifest", what, mt);
    cleanup_free char *cw = xasprintf("%s: config", what);
    int r = img_desc_parse(json_object_get(m, "config"), cw, config, err);
    if (r < 0)
        return r;
    if (!json_is_array(ls))
        return husk_err(err, 0, "%s: 'layers' must be an array", what);
    *layers = xcalloc(json_array_size(ls) + 1, sizeof(**layers));
    *n_layers = 0;
    json_array_foreach(ls, i, d)
    {
        cleanup_free char *lw = xasprintf("%s: layers[%zu]", what, i);
        enum img_compression comp;
        if ((r = img_desc_parse(d, lw, &(*layers)[i], err)) < 0)
            return r;
        (*n_layers)++;
        if (img_layer_compression((*layers)[i].media_type, &comp) < 0)
            return husk_err(err, 0, "%s: mediaType '%s' is not a layer husk can unpack", lw,
                            (*layers)[i].media_type);
    }
    return 0;
}

static char **
json_strv(json_t *a)
{
    json_t *v;
    size_t i, n = 0;
    if (!json_is_array(a))
        return NULL;
    char **out = xcalloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v))
            out[n++] = xstrdup(json_string_value(v));
    }
    return out;
}

int
img_config_parse(json_t *c, const char *what, struct img_config *out, struct husk_error **err)
{
    json_t *cfg = json_object_get(c, "config");
    memset(out, 0, sizeof(*out));
    const char *os = json_string_value(json_object_get(c, "os"));
    if (os && strcmp(os, "linux") != 0)
        return husk_err(err, 0, "%s: an image for '%s', not linux", what, os);
    if (cfg == NULL || json_is_null(cfg))
        return 0;
    out->entrypoint = json_strv(json_object_get(cfg, "Entrypoint"));
    out->cmd = json_strv(json_object_get(cfg, "Cmd"));
    out->env = json_strv(json_object_get(cfg, "Env"));
    const char *wd = json_string_value(json_object_get(cfg, "WorkingDir"));
    const char *user = json_string_value(json_object_get(cfg, "User"));
    out->workdir = wd && *wd ? xstrdup(wd) : NULL;
    out->user = user && *user ? xstrdup(user) : NULL;
    return 0;
}

void
img_config_clear(struct img_config *c)
{
    strv_freep(&c->entrypoint);
    strv_freep(&c->cmd);
    strv_freep(&c->env);
    free(c->workdir);
    free(c->user);
    memset(c, 0, sizeof(*c));
}
