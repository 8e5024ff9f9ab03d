/* SPDX-License-Identifier: Apache-2.0 */
/* Typed JSON getters that produce "FILE: field 'a.b[2]': expected ..." errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "json-get.h"
#include "util.h"

int
jerr(const struct jctx *c, const char *path, struct husk_error **err, const char *fmt, ...)
{
    cleanup_free char *what = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        abort();
    va_end(ap);
    return husk_err(err, 0, "%s: field '%s': %s", c->file, path, what);
}

static const char *
jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static int
lookup(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
       json_t **out, struct husk_error **err)
{
    json_t *v = key ? json_object_get(obj, key) : obj;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return jerr(c, path, err, "is required");
        return 0;
    }
    *out = v;
    return 1;
}

#define GET_TYPED(check, want)                                                                     \
    json_t *v = NULL;                                                                              \
    int r = lookup(c, obj, key, path, required, &v, err);                                          \
    if (r <= 0)                                                                                    \
        return r;                                                                                  \
    if (!check(v))                                                                                 \
        return jerr(c, path, err, "expected " want ", got %s", jtype(v));

int
jget_object(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
            json_t **out, struct husk_error **err)
{
    GET_TYPED(json_is_object, "an object");
    *out = v;
    return 1;
}

int
jget_array(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
           json_t **out, struct husk_error **err)
{
    GET_TYPED(json_is_array, "an array");
    *out = v;
    return 1;
}

int
jget_string(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
            char **out, struct husk_error **err)
{
    GET_TYPED(json_is_string, "a string");
    free(*out);
    *out = xstrdup(json_string_value(v));
    return 1;
}

int
jget_bool(const struct jctx *c, json_t *obj, const char *key, const char *path, bool *out,
          struct husk_error **err)
{
    bool required = false;
    GET_TYPED(json_is_boolean, "a boolean");
    *out = json_is_true(v);
    return 1;
}

int
jget_int(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
         int64_t min, int64_t max, int64_t *out, struct husk_error **err)
{
    GET_TYPED(json_is_integer, "an integer");
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return jerr(c, path, err, "%lld is out of range [%lld, %lld]", (long long)n, (long long)min,
                    (long long)max);
    *out = n;
    return 1;
}

int
jget_strv(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
          char ***out, struct husk_error **err)
{
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(c, obj, key, path, required, &arr, err);
    if (r <= 0)
        return r;
    cleanup_strv char **v = xcalloc(json_array_size(arr) + 1, sizeof(char *));
    json_array_foreach(arr, i, e)
    {
        if (!json_is_string(e)) {
            cleanup_free char *p = xasprintf("%s[%zu]", path, i);
            return jerr(c, p, err, "expected a string, got %s", jtype(e));
        }
        v[i] = xstrdup(json_string_value(e));
    }
    strv_freep(out);
    *out = steal_ptr(&v);
    return 1;
}
