/* SPDX-License-Identifier: Apache-2.0 */
/* Writing a child's user namespace id maps, as root or through newuidmap/newgidmap. */
#ifndef HUSK_SBX_IDMAP_H
#define HUSK_SBX_IDMAP_H

#include <sys/types.h>

#include "husk/sandbox.h"

int sbx_idmap_write(pid_t pid, const struct sbx_config *cfg, struct husk_error **err);

#endif
