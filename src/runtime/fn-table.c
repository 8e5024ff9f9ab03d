/* SPDX-License-Identifier: Apache-2.0 */
/* husk fn's answers for people: aligned tables of what the admin API answers in JSON (which
 * --format json prints as it is). */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fn-table.h"
#include "util.h"

#define MAX_COLS 10

struct table {
    size_t n_cols, n_rows;
    char **cells; /* n_rows x n_cols, row 0 the headers */
};

static void
table_row(struct table *t, char **cells)
{
    t->cells = xrealloc(t->cells, (t->n_rows + 1) * t->n_cols * sizeof(char *));
    memcpy(t->cells + t->n_rows * t->n_cols, cells, t->n_cols * sizeof(char *));
    t->n_rows++;
}

static void
table_print(struct table *t, FILE *out)
{
    size_t w[MAX_COLS] = {0};
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t n = strlen(t->cells[r * t->n_cols + c]);
            w[c] = n > w[c] ? n : w[c];
        }
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *cell = t->cells[r * t->n_cols + c];
            if (c + 1 < t->n_cols)
                fprintf(out, "%-*s  ", (int)w[c], cell);
            else
                fprintf(out, "%s\n", cell);
        }
    }
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* A field as text: strings as they are, numbers in decimal, absent as "-". */
static char *
text(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return xasprintf("%lld", (long long)json_integer_value(v));
    if (json_is_real(v))
        return xasprintf("%g", json_real_value(v));
    if (json_is_boolean(v))
        return xstrdup(json_is_true(v) ? "yes" : "no");
    return xstrdup("-");
}

static char *
when(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return xstrdup("-");
    time_t t = (time_t)(json_integer_value(v) / 1000);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
    return xstrdup(buf);
}

static char *
root_of(json_t *spec)
{
    static const char *const keys[] = {"image", "bundle", "dir", "wasm"};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (json_is_string(json_object_get(spec, keys[i])))
            return text(spec, keys[i]);
    return xstrdup("-");
}

static void
functions(json_t *j, FILE *out)
{
    struct table t = {.n_cols = 8};
    table_row(&t, (char *[]){xstrdup("NAME"), xstrdup("CONTRACT"), xstrdup("VERSION"),
                             xstrdup("STARTING"), xstrdup("IDLE"), xstrdup("BUSY"),
                             xstrdup("QUEUED"), xstrdup("ROOT")});
    size_t i;
    json_t *f;
    json_array_foreach(j, i, f)
    {
        json_t *in = json_object_get(f, "instances");
        char *contract = text(f, "contract");
        if (strcmp(contract, "-") == 0)
            free(contract), contract = xstrdup("stdio");
        table_row(&t,
                  (char *[]){text(f, "name"), contract, text(f, "version"), text(in, "starting"),
                             text(in, "idle"), text(in, "busy"), text(f, "queued"), root_of(f)});
    }
    table_print(&t, out);
}

/* One object as "key  value" lines, in the order the daemon gave them. */
static void
vertical(json_t *j, FILE *out)
{
    struct table t = {.n_cols = 2};
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        char *value =
            json_is_object(v) || json_is_array(v) ? json_dumps(v, JSON_COMPACT) : text(j, key);
        table_row(&t, (char *[]){xstrdup(key), value});
    }
    table_print(&t, out);
}

static void
one_function(json_t *j, FILE *out)
{
    vertical(j, out);
}

static void
versions(json_t *j, FILE *out)
{
    struct table t = {.n_cols = 4};
    table_row(&t, (char *[]){xstrdup("VERSION"), xstrdup("CREATED (UTC)"), xstrdup("CONTRACT"),
                             xstrdup("ROOT")});
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        json_t *spec = json_object_get(v, "spec");
        char *contract = text(spec, "contract");
        if (strcmp(contract, "-") == 0)
            free(contract), contract = xstrdup("stdio");
        table_row(&t,
                  (char *[]){text(v, "version"), when(v, "created_ms"), contract, root_of(spec)});
    }
    table_print(&t, out);
}

static char *
routing(json_t *a)
{
    const char *key;
    json_t *w;
    json_object_foreach(json_object_get(a, "weights"), key, w)
    {
        return xasprintf("version %s for %g%% of calls", key, json_number_value(w) * 100);
    }
    return xstrdup("-");
}

static void
aliases(json_t *j, FILE *out)
{
    struct table t = {.n_cols = 3};
    table_row(&t, (char *[]){xstrdup("ALIAS"), xstrdup("VERSION"), xstrdup("ROUTING")});
    size_t i;
    json_t *a;
    json_array_foreach(j, i, a)
    {
        table_row(&t, (char *[]){text(a, "name"), text(a, "version"), routing(a)});
    }
    table_print(&t, out);
}

static void
calls(json_t *j, FILE *out)
{
    struct table t = {.n_cols = 5};
    table_row(&t, (char *[]){xstrdup("ID"), xstrdup("STATE"), xstrdup("ATTEMPTS"),
                             xstrdup("STATUS"), xstrdup("CREATED (UTC)")});
    size_t i;
    json_t *c;
    json_array_foreach(j, i, c)
    {
        table_row(&t, (char *[]){text(c, "id"), text(c, "state"), text(c, "attempts"),
                                 text(c, "status"), when(c, "created_ms")});
    }
    table_print(&t, out);
}

static void
deployed(json_t *j, FILE *out)
{
    fprintf(out, "function '%s' version %lld deployed\n",
            json_string_value(json_object_get(j, "name")),
            (long long)json_integer_value(json_object_get(j, "version")));
}

static void
alias_set(json_t *j, FILE *out)
{
    cleanup_free char *r = routing(j);
    fprintf(out, "alias '%s' calls version %lld%s%s\n",
            json_string_value(json_object_get(j, "name")),
            (long long)json_integer_value(json_object_get(j, "version")),
            strcmp(r, "-") ? ", and " : "", strcmp(r, "-") ? r : "");
}

static const struct {
    const char *sub;
    void (*render)(json_t *j, FILE *out);
} views[] = {
    {"ls", functions},      {"get", one_function}, {"versions", versions}, {"aliases", aliases},
    {"calls", calls},       {"call", vertical},    {"deploy", deployed},   {"update", deployed},
    {"rollback", deployed}, {"alias", alias_set},
};

bool
fn_table_render(const char *sub, const char *body, size_t len, FILE *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(views); i++) {
        if (strcmp(views[i].sub, sub) != 0)
            continue;
        json_error_t je;
        json_t *j = json_loadb(body, len, 0, &je);
        if (j == NULL)
            return false;
        views[i].render(j, out);
        json_decref(j);
        return true;
    }
    return false;
}
