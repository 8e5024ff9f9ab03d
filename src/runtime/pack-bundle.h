/* SPDX-License-Identifier: Apache-2.0 */
/* Publishing a staged rootfs for `husk pack` and `husk image import`: a bundle or an image. */
#ifndef HUSK_RUNTIME_PACK_BUNDLE_H
#define HUSK_RUNTIME_PACK_BUNDLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "husk/error.h"

/* What goes into the bundle's config.json besides `husk spec`'s defaults. */
struct pack_process {
    char **args;      /* required */
    char **extra_env; /* appended to the default PATH and TERM; may be NULL */
    char **env;       /* replaces the defaults when not NULL (an image's Env) */
    const char *cwd;  /* NULL: "/" */
    uint32_t uid, gid;
    bool tmp_in_image; /* the rootfs has files under /tmp: no tmpfs may cover them */
};

struct pack_output {
    const char *out;      /* the destination; must not exist */
    const char *format;   /* bundle, rootfs, tar, erofs, squashfs */
    const char *image;    /* bundle only: NULL (a directory rootfs), "erofs" or "squashfs" */
    const char *compress; /* NULL: the format's default */
    const char *manifest; /* where the manifest goes; NULL: the default for the format */
};

/* Check the combination of format, image and compression before any work is done. */
int pack_output_check(const struct pack_output *o, struct husk_error **err);

/* Publish `staged` (a rootfs directory, consumed) as o->format at o->out, with the manifest
 * (may be NULL) next to it; on failure nothing is left at o->out. */
int pack_output_write(const struct pack_output *o, const char *staged, const struct pack_process *p,
                      json_t *manifest, struct husk_error **err);

/* The directories a bundle's default mounts need in a read-only rootfs ("/proc", ...). */
char **pack_mount_points(void);

/* Parse "1M", "512k", "3G" or plain bytes. */
int pack_parse_size(const char *s, uint64_t *out);

/* "1.9 MB" */
void pack_format_bytes(uint64_t n, char *buf, size_t len);

#endif
