/* SPDX-License-Identifier: Apache-2.0 */
/* The registry's inside, shared by registry.c (functions) and registry-versions.c. */
#ifndef HUSK_FAAS_REGISTRY_H
#define HUSK_FAAS_REGISTRY_H

#include <pthread.h>
#include <sqlite3.h>

#include "faas-internal.h"

/* Used from the work threads (deploys, removals) one operation at a time. */
struct faas_registry {
    sqlite3 *db;
    const struct faas_policy *policy;
    pthread_mutex_t lock;
};

int faas_registry_err(struct faas_registry *r, int rc, const char *what, struct husk_error **err);
uint32_t faas_registry_slot_base(const struct faas_registry *r, int64_t slot);
/* Record a version's spec (lock held, in the caller's transaction). */
int faas_registry_version_put(struct faas_registry *r, const char *name, int64_t version,
                              const char *spec, struct husk_error **err);

#endif
