/* SPDX-License-Identifier: Apache-2.0 */
/* The function registry: deploy specs in SQLite under the state directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "registry.h"
#include "util.h"

int
faas_registry_err(struct faas_registry *r, int rc, const char *what, struct husk_error **err)
{
    return husk_err(err, EIO, "registry: %s: %s", what,
                    r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
}

/* Each function's host id range is a slot: base + slot * FAAS_USERNS_SIZE, kept by name. */
static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS functions (name TEXT PRIMARY KEY, spec TEXT NOT NULL, "
    "version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS owners (name TEXT PRIMARY KEY, uid INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS userns (name TEXT PRIMARY KEY, slot INTEGER UNIQUE NOT NULL);"
    /* every version ever deployed (immutable), and named pointers to them */
    "CREATE TABLE IF NOT EXISTS versions (name TEXT NOT NULL, version INTEGER NOT NULL, spec "
    "TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (name, version));"
    "INSERT OR IGNORE INTO versions SELECT name, version, spec, 0 FROM functions;"
    "CREATE TABLE IF NOT EXISTS aliases (name TEXT NOT NULL, alias TEXT NOT NULL, version "
    "INTEGER NOT NULL, version2 INTEGER, weight2 REAL, PRIMARY KEY (name, alias));";

int
faas_registry_open(const char *state_dir, const struct faas_policy *p, struct faas_registry **out,
                   struct husk_error **err)
{
    int r = mkdir_p(state_dir, 0700);
    if (r < 0)
        return husk_err(err, -r, "create state directory '%s'", state_dir);
    struct faas_registry *reg = xcalloc(1, sizeof(*reg));
    reg->policy = p;
    pthread_mutex_init(&reg->lock, NULL);
    cleanup_free char *path = xasprintf("%s/functions.db", state_dir);
    int rc = sqlite3_open_v2(path, &reg->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(reg->db, schema, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        r = faas_registry_err(reg, rc, path, err);
        faas_registry_free(reg);
        return r;
    }
    *out = reg;
    return 0;
}

void
faas_registry_free(struct faas_registry *r)
{
    if (r == NULL)
        return;
    sqlite3_close(r->db);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The function's slot, allocated (the lowest free one) when it has none. */
static int
userns_slot(struct faas_registry *r, const char *name, int64_t *slot, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        r->db,
        "INSERT INTO userns (name, slot) SELECT ?1, (SELECT MIN(s) FROM (SELECT 0 AS s UNION "
        "SELECT slot + 1 FROM userns) WHERE s NOT IN (SELECT slot FROM userns)) "
        "ON CONFLICT(name) DO UPDATE SET slot = slot RETURNING slot",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, "allocate a host id range", err);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *slot = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return faas_registry_err(r, rc, "allocate a host id range", err);
    if (*slot >= (int64_t)r->policy->userns_slots)
        return husk_err(err, ENOSPC, "registry: every host id range is taken (%u functions)",
                        r->policy->userns_slots);
    return 0;
}

uint32_t
faas_registry_slot_base(const struct faas_registry *r, int64_t slot)
{
    return r->policy->userns_base + (uint32_t)slot * FAAS_USERNS_SIZE;
}

int
faas_registry_load(struct faas_registry *r, const struct faas_deploy_ctx *dc,
                   struct faas_function ***out, size_t *n, char **warn, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db,
                                "SELECT f.spec, f.version, COALESCE(o.uid, 0), u.slot FROM "
                                "functions f LEFT JOIN owners o USING (name) LEFT JOIN userns u "
                                "USING (name) ORDER BY f.name",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, "list functions", err);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *spec = (const char *)sqlite3_column_text(st, 0);
        struct husk_error *e = NULL;
        struct faas_function *f = NULL;
        struct faas_deploy_ctx c = *dc;
        c.owner = (uid_t)sqlite3_column_int64(st, 2);
        if (sqlite3_column_type(st, 3) == SQLITE_NULL ||
            faas_function_parse(spec, strlen(spec), &c, &f, &e) < 0) {
            if (*warn == NULL)
                *warn = e ? husk_error_string(e) : xstrdup("no host id range recorded");
            husk_error_free(e);
            continue;
        }
        f->version = sqlite3_column_int64(st, 1);
        faas_function_set_userns(f, faas_registry_slot_base(r, sqlite3_column_int64(st, 3)));
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = f;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : faas_registry_err(r, rc, "list functions", err);
}

static int
exec_bound(struct faas_registry *r, const char *sql, const char *name, int64_t v, const char *what,
           struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, what, err);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : faas_registry_err(r, rc, what, err);
}

static int
put_spec(struct faas_registry *r, struct faas_function *f, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        r->db,
        "INSERT INTO functions (name, spec, version) VALUES (?1, ?2, 1) ON CONFLICT(name) DO "
        "UPDATE SET spec = excluded.spec, version = version + 1 RETURNING version",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, "save function", err);
    f->version = 0;
    cleanup_free char *spec = json_dumps(f->spec, JSON_COMPACT);
    sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, spec, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        f->version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (f->version <= 0)
        return faas_registry_err(r, rc, "save function", err);
    return faas_registry_version_put(r, f->name, f->version, spec, err);
}

static int registry_put(struct faas_registry *r, struct faas_function *f, struct husk_error **err);

int
faas_registry_put(struct faas_registry *r, struct faas_function *f, struct husk_error **err)
{
    pthread_mutex_lock(&r->lock);
    int ret = registry_put(r, f, err);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

static int
registry_put(struct faas_registry *r, struct faas_function *f, struct husk_error **err)
{
    int64_t slot = 0;
    int ret = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
                  ? 0
                  : faas_registry_err(r, 0, "save function", err);
    if (ret == 0)
        ret = userns_slot(r, f->name, &slot, err);
    if (ret == 0)
        ret = put_spec(r, f, err);
    if (ret == 0)
        ret = exec_bound(r,
                         "INSERT INTO owners (name, uid) VALUES (?1, ?2) ON CONFLICT(name) DO "
                         "UPDATE SET uid = excluded.uid",
                         f->name, (int64_t)f->owner, "save function", err);
    if (ret == 0 && sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        ret = faas_registry_err(r, 0, "save function", err);
    if (ret < 0) {
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        return ret;
    }
    faas_function_set_userns(f, faas_registry_slot_base(r, slot));
    return 0;
}

static int registry_delete(struct faas_registry *r, const char *name, struct husk_error **err);

int
faas_registry_delete(struct faas_registry *r, const char *name, struct husk_error **err)
{
    pthread_mutex_lock(&r->lock);
    int ret = registry_delete(r, name, err);
    pthread_mutex_unlock(&r->lock);
    return ret;
}

static int
registry_delete(struct faas_registry *r, const char *name, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, "DELETE FROM functions WHERE name = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return faas_registry_err(r, rc, "delete function", err);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return faas_registry_err(r, rc, "delete function", err);
    int removed = sqlite3_changes(r->db) > 0;
    int ret = exec_bound(r, "DELETE FROM owners WHERE name = ?1 AND ?2 = ?2", name, 0,
                         "delete function", err);
    if (ret == 0)
        ret = exec_bound(r, "DELETE FROM userns WHERE name = ?1 AND ?2 = ?2", name, 0,
                         "free the function's host id range", err);
    if (ret == 0)
        ret = exec_bound(r, "DELETE FROM versions WHERE name = ?1 AND ?2 = ?2", name, 0,
                         "delete the function's versions", err);
    if (ret == 0)
        ret = exec_bound(r, "DELETE FROM aliases WHERE name = ?1 AND ?2 = ?2", name, 0,
                         "delete the function's aliases", err);
    return ret < 0 ? ret : removed;
}
