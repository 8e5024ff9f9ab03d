/* SPDX-License-Identifier: Apache-2.0 */
/* OCI hooks at the lifecycle points runtime-spec 1.2 defines. */
#ifndef HUSK_RUNTIME_HOOKS_H
#define HUSK_RUNTIME_HOOKS_H

#include "oci.h"

/* Run every hook of a kind in order with the state (given status) on stdin; stops at the first
 * failure, which the caller turns into an error or a warning as the spec says. */
int hooks_run(const struct oci_config *cfg, enum oci_hook_kind kind, const struct oci_state *st,
              const char *status, struct husk_error **err);
/* Run every hook of a kind even when one fails, as the spec asks of poststart and poststop:
 * each failure goes to warn, which owns it. */
void hooks_run_all(const struct oci_config *cfg, enum oci_hook_kind kind,
                   const struct oci_state *st, const char *status,
                   void (*warn)(void *data, struct husk_error *e), void *data);
/* Hand the startContainer hooks to the sandbox process, which runs them in the container. */
void hooks_prepare_start(struct oci_config *cfg, const struct oci_state *st);

#endif
