/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for OCI image documents as `husk image import` reads them from a layout: the
 * input is parsed as index.json (a manifest picked by platform, then by ref name), as a
 * manifest and as an image config. What is accepted holds valid digests and layers husk can
 * unpack; what is refused says why. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "img-internal.h"
#include "util.h"

static void
refused(struct husk_error *err)
{
    fuzz_check(err != NULL && err->msg[0] != '\0');
    husk_error_free(err);
}

static void
check_desc(const struct img_desc *d)
{
    fuzz_check(d->media_type != NULL && img_digest_valid(d->digest));
}

static void
as_index(json_t *j, const char *ref)
{
    struct img_desc d = {0};
    char *found = NULL;
    struct husk_error *err = NULL;
    if (img_index_select(j, "index.json", ref, &d, &found, &err) == 0) {
        fuzz_count(1); /* picked a manifest */
        check_desc(&d);
        fuzz_check(ref == NULL || (found && strcmp(found, ref) == 0));
    } else {
        refused(err);
    }
    free(found);
    img_desc_clear(&d);
}

static void
as_manifest(json_t *j)
{
    struct img_desc config = {0}, *layers = NULL;
    size_t n = 0;
    struct husk_error *err = NULL;
    if (img_manifest_parse(j, "manifest", &config, &layers, &n, &err) == 0) {
        fuzz_count(2); /* manifests */
        check_desc(&config);
        for (size_t i = 0; i < n; i++) {
            enum img_compression comp;
            check_desc(&layers[i]);
            fuzz_check(img_layer_compression(layers[i].media_type, &comp) == 0);
        }
    } else {
        refused(err);
    }
    for (size_t i = 0; i < n; i++)
        img_desc_clear(&layers[i]);
    free(layers);
    img_desc_clear(&config);
}

static void
as_config(json_t *j)
{
    struct img_config c = {0};
    struct husk_error *err = NULL;
    if (img_config_parse(j, "config", &c, &err) == 0) {
        fuzz_count(3); /* configs */
        fuzz_check(c.workdir == NULL || c.workdir[0] != '\0');
        fuzz_check(c.user == NULL || c.user[0] != '\0');
    } else {
        refused(err);
    }
    img_config_clear(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    struct husk_error *err = NULL;
    fuzz_set_input(data, size);
    if (img_json_parse((const char *)data, size, "document", &j, &err) < 0) {
        fuzz_check(j == NULL);
        refused(err);
        fuzz_set_input(NULL, 0);
        return 0;
    }
    fuzz_count(0); /* documents */
    as_index(j, NULL);
    as_index(j, "test");
    as_manifest(j);
    as_config(j);
    json_decref(j);
    fuzz_set_input(NULL, 0);
    return 0;
}

/* clang-format off */
static const char *const words[] = {
    "schemaVersion", "mediaType", "manifests", "layers", "config", "digest", "size",
    "annotations", "org.opencontainers.image.ref.name", "test", "platform", "os", "linux",
    "windows", "architecture", "amd64", "arm64", "386", "variant", "v8",
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256:",
    "sha512:00", "Entrypoint", "Cmd", "Env", "PATH=/bin", "WorkingDir", "User", "0:0", "nobody",
    "rootfs", "diff_ids", "history",
};
/* clang-format on */
static const char grammar[] = "{}[]\",:\\ 0af";

const struct fuzz_target fuzz_target = {
    .name = "image",
    .counted = {"documents", "picked a manifest", "manifests", "configs"},
    .tokens = words,
    .n_tokens = ARRAY_SIZE(words),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .iterations = 20000,
    .max_input = 1 << 16,
    .mutate = fuzz_json_mutate,
    .mutate_share = 3,
};
