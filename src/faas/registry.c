/* SPDX-License-Identifier: Apache-2.0 */
/* The function registry: deploy specs in SQLite under the state directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "util.h"

struct faas_registry {
    sqlite3 *db;
};

static int
db_err(struct faas_registry *r, int rc, const char *what, struct husk_error **err)
{
    return husk_err(err, EIO, "registry: %s: %s", what,
                    r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
}

int
faas_registry_open(const char *state_dir, struct faas_registry **out, struct husk_error **err)
{
    int r = mkdir_p(state_dir, 0700);
    if (r < 0)
        return husk_err(err, -r, "create state directory '%s'", state_dir);
    struct faas_registry *reg = xcalloc(1, sizeof(*reg));
    cleanup_free char *path = xasprintf("%s/functions.db", state_dir);
    int rc = sqlite3_open_v2(path, &reg->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(reg->db,
                          "PRAGMA journal_mode=WAL;"
                          "CREATE TABLE IF NOT EXISTS functions (name TEXT PRIMARY KEY, "
                          "spec TEXT NOT NULL, version INTEGER NOT NULL);",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        db_err(reg, rc, path, err);
        faas_registry_free(reg);
        return -EIO;
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
    free(r);
}

int
faas_registry_load(struct faas_registry *r, const char *state_dir, struct faas_function ***out,
                   size_t *n, char **warn, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, "SELECT spec, version FROM functions ORDER BY name", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return db_err(r, rc, "list functions", err);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *spec = (const char *)sqlite3_column_text(st, 0);
        struct husk_error *e = NULL;
        struct faas_function *f = NULL;
        if (faas_function_parse(spec, strlen(spec), state_dir, &f, &e) < 0) {
            if (*warn == NULL)
                *warn = husk_error_string(e);
            husk_error_free(e);
            continue;
        }
        f->version = sqlite3_column_int64(st, 1);
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = f;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_err(r, rc, "list functions", err);
}

int
faas_registry_put(struct faas_registry *r, struct faas_function *f, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        r->db,
        "INSERT INTO functions (name, spec, version) VALUES (?1, ?2, 1) ON CONFLICT(name) DO "
        "UPDATE SET spec = excluded.spec, version = version + 1 RETURNING version",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_err(r, rc, "save function", err);
    f->version = 0;
    cleanup_free char *spec = json_dumps(f->spec, JSON_COMPACT);
    sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, spec, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        f->version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return f->version > 0 ? 0 : db_err(r, rc, "save function", err);
}

int
faas_registry_delete(struct faas_registry *r, const char *name, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, "DELETE FROM functions WHERE name = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_err(r, rc, "delete function", err);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_err(r, rc, "delete function", err);
    return sqlite3_changes(r->db) > 0;
}
