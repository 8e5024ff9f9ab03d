/* SPDX-License-Identifier: Apache-2.0 */
/* Deploy specs, validated, and their registry in SQLite under the state directory. */
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

void
faas_function_free(struct faas_function *f)
{
    if (f == NULL)
        return;
    free(f->name);
    free(f->bundle);
    free(f->contract);
    strv_freep(&f->env);
    oci_config_free(f->cfg);
    free(f);
}

void
faas_function_freep(struct faas_function **f)
{
    faas_function_free(*f);
}

json_t *
faas_function_json(const struct faas_function *f)
{
    json_t *env = json_array();
    for (char **e = f->env; e && *e; e++)
        json_array_append_new(env, json_string(*e));
    return json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I}", "name", f->name, "bundle",
                     f->bundle, "contract", f->contract, "env", env, "timeout",
                     (json_int_t)f->timeout, "max_body", (json_int_t)f->max_body, "memory",
                     (json_int_t)f->memory, "version", (json_int_t)f->version);
}

static bool
valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '.')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* An optional integer field within [lo, hi]; absent keeps *out. */
static int
int_field(json_t *root, const char *key, int64_t lo, int64_t hi, int64_t *out,
          struct husk_error **err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return husk_err(err, 0, "field '%s': must be an integer from %lld to %lld", key,
                        (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

static int
env_field(json_t *root, char ***out, struct husk_error **err)
{
    json_t *env = json_object_get(root, "env");
    if (env == NULL)
        return 0;
    if (!json_is_array(env))
        return husk_err(err, 0, "field 'env': must be an array of \"KEY=VALUE\" strings");
    cleanup_strv char **v = xcalloc(json_array_size(env) + 1, sizeof(char *));
    size_t i;
    json_t *e;
    json_array_foreach(env, i, e)
    {
        const char *s = json_string_value(e);
        if (s == NULL || strchr(s, '=') == NULL || s[0] == '=')
            return husk_err(err, 0, "field 'env[%zu]': must be a \"KEY=VALUE\" string", i);
        v[i] = xstrdup(s);
    }
    *out = steal_ptr(&v);
    return 0;
}

int
faas_function_load(struct faas_function *f, const char *seccomp_cache, struct husk_error **err)
{
    cleanup_(oci_config_freep) struct oci_config *cfg = NULL;
    if (oci_config_load(f->bundle, &cfg, err) < 0)
        return husk_err_prefix(err, "field 'bundle': ");
    if (cfg->terminal)
        return husk_err(err, 0, "field 'bundle': %s: process.terminal must be false", cfg->path);
    if (cfg->seccomp && oci_seccomp_compile(cfg->seccomp, cfg->path, seccomp_cache,
                                            &cfg->sbx->process.seccomp, err) < 0)
        return husk_err_prefix(err, "field 'bundle': ");
    /* Killing the sandbox's first process must end all of it: give it a pid namespace. */
    if (!cfg->sbx->ns[SBX_NS_PID].enabled || cfg->sbx->ns[SBX_NS_PID].path) {
        free(cfg->sbx->ns[SBX_NS_PID].path);
        cfg->sbx->ns[SBX_NS_PID].path = NULL;
        cfg->sbx->ns[SBX_NS_PID].enabled = true;
    }
    oci_config_free(f->cfg);
    f->cfg = steal_ptr(&cfg);
    return 0;
}

int
faas_function_parse(const char *body, size_t len, const char *seccomp_cache,
                    struct faas_function **out, struct husk_error **err)
{
    json_error_t je;
    cleanup_json json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (root == NULL)
        return husk_err(err, 0, "body: malformed JSON at line %d column %d: %s", je.line, je.column,
                        je.text);
    if (!json_is_object(root))
        return husk_err(err, 0, "body: must be a JSON object");
    cleanup_(faas_function_freep) struct faas_function *f = xcalloc(1, sizeof(*f));
    const char *name = json_string_value(json_object_get(root, "name"));
    if (name == NULL || !valid_name(name))
        return husk_err(err, 0, "field 'name': must be 1 to 63 of [A-Za-z0-9_.-]");
    f->name = xstrdup(name);
    const char *contract = json_string_value(json_object_get(root, "contract"));
    if (json_object_get(root, "contract") && (contract == NULL || strcmp(contract, "stdio") != 0))
        return husk_err(err, 0, "field 'contract': unknown contract (supported: \"stdio\")");
    f->contract = xstrdup("stdio");
    f->timeout = FAAS_DEFAULT_TIMEOUT;
    f->max_body = FAAS_DEFAULT_MAX_BODY;
    if (int_field(root, "timeout", 1, 3600, &f->timeout, err) < 0 ||
        int_field(root, "max_body", 0, 1ll << 30, &f->max_body, err) < 0 ||
        int_field(root, "memory", 0, 1ll << 40, &f->memory, err) < 0 ||
        env_field(root, &f->env, err) < 0)
        return -EINVAL;
    if (f->memory != 0 && f->memory < (4 << 20))
        return husk_err(err, 0, "field 'memory': must be 0 (no limit) or at least 4 MiB");
    const char *bundle = json_string_value(json_object_get(root, "bundle"));
    if (bundle == NULL || bundle[0] != '/')
        return husk_err(err, 0, "field 'bundle': must be an absolute path to an OCI bundle");
    f->bundle = xstrdup(bundle);
    if (faas_function_load(f, seccomp_cache, err) < 0)
        return -EINVAL;
    *out = steal_ptr(&f);
    return 0;
}

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
faas_registry_load(struct faas_registry *r, const char *seccomp_cache, struct faas_function ***out,
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
        if (faas_function_parse(spec, strlen(spec), seccomp_cache, &f, &e) < 0) {
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
    cleanup_json json_t *j = faas_function_json(f);
    json_object_del(j, "version");
    cleanup_free char *spec = json_dumps(j, JSON_COMPACT);
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
