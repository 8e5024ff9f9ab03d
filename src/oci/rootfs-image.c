/* SPDX-License-Identifier: Apache-2.0 */
/* The run.husk.rootfs.image annotation: a rootfs image to mount instead of binding root.path. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci.h"
#include "util.h"

#define EROFS_MAGIC    0xE0F5E1E2u /* little-endian, 1024 bytes in */
#define SQUASHFS_MAGIC "hsqs"      /* little-endian squashfs 4 */

/* The filesystem type from the superblock: the kernel would refuse the wrong one anyway, but a
 * message naming the annotation is better than a failed mount. */
const char *
oci_image_type(int fd)
{
    unsigned char sq[4], ero[4];
    if (pread(fd, sq, sizeof(sq), 0) == 4 && memcmp(sq, SQUASHFS_MAGIC, 4) == 0)
        return "squashfs";
    if (pread(fd, ero, sizeof(ero), 1024) == 4 &&
        (uint32_t)(ero[0] | ero[1] << 8 | ero[2] << 16 | (uint32_t)ero[3] << 24) == EROFS_MAGIC)
        return "erofs";
    return NULL;
}

int
oci_rootfs_image_parse(struct oci_config *oc, const char *file, struct husk_error **err)
{
    const char *v = json_string_value(json_object_get(oc->annotations, OCI_ANN_ROOTFS_IMAGE));
    char real[PATH_MAX];
    struct stat st;
    if (v == NULL)
        return 0;
    if (*v == '\0')
        return husk_err(err, 0, "%s: annotations.%s: empty path", file, OCI_ANN_ROOTFS_IMAGE);
    /* Neither erofs nor squashfs may be mounted from inside a user namespace. */
    if (oc->sbx->ns[SBX_NS_USER].enabled)
        return husk_err(err, 0,
                        "%s: annotations.%s: a rootfs image cannot be mounted in a user "
                        "namespace; unpack it to a directory (husk pack --format bundle)",
                        file, OCI_ANN_ROOTFS_IMAGE);
    cleanup_free char *full = v[0] == '/' ? xstrdup(v) : xasprintf("%s/%s", oc->bundle, v);
    if (realpath(full, real) == NULL)
        return husk_err(err, errno, "%s: annotations.%s: image '%s'", file, OCI_ANN_ROOTFS_IMAGE,
                        full);
    cleanup_fd int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0)
        return husk_err(err, errno, "%s: annotations.%s: image '%s'", file, OCI_ANN_ROOTFS_IMAGE,
                        real);
    const char *type = S_ISREG(st.st_mode) ? oci_image_type(fd) : NULL;
    if (type == NULL)
        return husk_err(err, 0, "%s: annotations.%s: '%s' is neither an erofs nor a squashfs image",
                        file, OCI_ANN_ROOTFS_IMAGE, real);
    oc->sbx->rootfs_image = xstrdup(real);
    oc->sbx->rootfs_image_type = xstrdup(type);
    return 0;
}
