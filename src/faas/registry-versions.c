/* SPDX-License-Identifier: Apache-2.0 */
/* The registry's versions (every deploy, immutable) and aliases (named pointers to one version,
 * or to two with a weight for the second: a canary). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faas-internal.h"
#include "registry.h"
#include "util.h"

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
faas_registry_version_put(struct faas_registry *r, const char *name, int64_t version,
                          const char *spec, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db,
                                "INSERT OR REPLACE INTO versions (name, version, spec, created) "
                                "VALUES (?1, ?2, ?3, ?4)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, "save the version", err);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    sqlite3_bind_text(st, 3, spec, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : faas_registry_err(r, rc, "save the version", err);
}

static int
version_get(struct faas_registry *r, const char *name, int64_t version,
            const struct faas_deploy_ctx *dc, struct faas_function **out, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db,
                                "SELECT v.spec, COALESCE(o.uid, 0), u.slot FROM versions v LEFT "
                                "JOIN owners o USING (name) LEFT JOIN userns u USING (name) "
                                "WHERE v.name = ?1 AND v.version = ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, "read the version", err);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || sqlite3_column_type(st, 2) == SQLITE_NULL) {
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return faas_registry_err(r, rc, "read the version", err);
        husk_err(err, 0, "function '%s' has no version %lld", name, (long long)version);
        return -ENOENT;
    }
    const char *spec = (const char *)sqlite3_column_text(st, 0);
    struct faas_deploy_ctx c = *dc;
    c.owner = (uid_t)sqlite3_column_int64(st, 1);
    int64_t slot = sqlite3_column_int64(st, 2);
    int ret = faas_function_parse(spec, strlen(spec), &c, out, err);
    sqlite3_finalize(st);
    if (ret < 0)
        return husk_err_prefix(err, "version %lld of '%s': ", (long long)version, name);
    (*out)->version = version;
    faas_function_set_userns(*out, faas_registry_slot_base(r, slot));
    return 0;
}

int
faas_registry_version_get(struct faas_registry *r, const char *name, int64_t version,
                          const struct faas_deploy_ctx *dc, struct faas_function **out,
                          struct husk_error **err)
{
    pthread_mutex_lock(&r->lock);
    int ret = version_get(r, name, version, dc, out, err);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

/* The spec of a version, as deployed (for a rollback or an update); NULL when none. */
json_t *
faas_registry_version_spec(struct faas_registry *r, const char *name, int64_t version)
{
    sqlite3_stmt *st = NULL;
    json_t *spec = NULL;
    pthread_mutex_lock(&r->lock);
    if (sqlite3_prepare_v2(r->db, "SELECT spec FROM versions WHERE name = ?1 AND version = ?2", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, version);
        if (sqlite3_step(st) == SQLITE_ROW)
            spec = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&r->lock);
    return spec;
}

json_t *
faas_registry_versions(struct faas_registry *r, const char *name)
{
    sqlite3_stmt *st = NULL;
    json_t *a = json_array();
    pthread_mutex_lock(&r->lock);
    if (sqlite3_prepare_v2(r->db,
                           "SELECT version, created, spec FROM versions WHERE name = ?1 ORDER BY "
                           "version",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *spec = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
            json_array_append_new(
                a, json_pack("{s:I, s:I, s:o}", "version", (json_int_t)sqlite3_column_int64(st, 0),
                             "created_ms", (json_int_t)sqlite3_column_int64(st, 1), "spec",
                             spec ? spec : json_null()));
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&r->lock);
    return a;
}

/* ---- aliases */

void
faas_alias_free(struct faas_alias *a)
{
    if (a == NULL)
        return;
    free(a->fn);
    free(a->name);
    free(a);
}

int
faas_registry_alias_put(struct faas_registry *r, const struct faas_alias *a,
                        struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&r->lock);
    int rc = sqlite3_prepare_v2(r->db,
                                "INSERT OR REPLACE INTO aliases (name, alias, version, version2, "
                                "weight2) VALUES (?1, ?2, ?3, ?4, ?5)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, a->fn, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, a->version);
        if (a->version2) {
            sqlite3_bind_int64(st, 4, a->version2);
            sqlite3_bind_double(st, 5, a->weight2);
        }
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    int ret = rc == SQLITE_DONE ? 0 : faas_registry_err(r, rc, "save the alias", err);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int
faas_registry_alias_delete(struct faas_registry *r, const char *fn, const char *alias,
                           struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&r->lock);
    int rc = sqlite3_prepare_v2(r->db, "DELETE FROM aliases WHERE name = ?1 AND alias = ?2", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, fn, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, alias, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    int ret = rc == SQLITE_DONE ? sqlite3_changes(r->db) > 0
                                : faas_registry_err(r, rc, "delete the alias", err);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

int
faas_registry_aliases_load(struct faas_registry *r, struct faas_alias **list,
                           struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db,
                                "SELECT name, alias, version, COALESCE(version2, 0), "
                                "COALESCE(weight2, 0) FROM aliases",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, "list aliases", err);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct faas_alias *a = xcalloc(1, sizeof(*a));
        a->fn = xstrdup((const char *)sqlite3_column_text(st, 0));
        a->name = xstrdup((const char *)sqlite3_column_text(st, 1));
        a->version = sqlite3_column_int64(st, 2);
        a->version2 = sqlite3_column_int64(st, 3);
        a->weight2 = sqlite3_column_double(st, 4);
        a->next = *list;
        *list = a;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : faas_registry_err(r, rc, "list aliases", err);
}
