/* SPDX-License-Identifier: Apache-2.0 */
/* Writing a child's user namespace id maps, as root or through newuidmap/newgidmap. */
#ifndef HUSK_SBX_IDMAP_H
#define HUSK_SBX_IDMAP_H

#include <sys/types.h>

#include "husk/sandbox.h"

int sbx_idmap_write(pid_t pid, const struct sbx_config *cfg, struct husk_error **err);
/* The text a uid_map or gid_map takes: its length, or -E2BIG when it does not fit in buf. */
int sbx_idmap_format(const struct sbx_idmap *map, size_t n, char *buf, size_t len);

#endif
