/* SPDX-License-Identifier: Apache-2.0 */
/* linux.cgroupsPath and linux.resources -> cgroup settings. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "oci.h"

struct oci_resources {
    int unused;
};

int
oci_resources_parse(json_t *linux_, const char *file, struct oci_resources **out,
                    struct husk_error **err)
{
    (void)linux_;
    (void)file;
    (void)err;
    *out = NULL;
    return 0;
}

void
oci_resources_free(struct oci_resources *r)
{
    free(r);
}
