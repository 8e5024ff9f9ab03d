/* SPDX-License-Identifier: Apache-2.0 */
/* Typed getters for JSON fields; every error names the file and the field path. */
#ifndef HUSK_OCI_JSON_GET_H
#define HUSK_OCI_JSON_GET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "husk/error.h"

struct jctx {
    const char *file; /* for messages */
};

/* Each returns 1 if the field was present, 0 if absent (and not required), -errno on error. */
int jget_object(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
                json_t **out, struct husk_error **err);
int jget_array(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
               json_t **out, struct husk_error **err);
int jget_string(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
                char **out, struct husk_error **err);
int jget_bool(const struct jctx *c, json_t *obj, const char *key, const char *path, bool *out,
              struct husk_error **err);
int jget_int(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
             int64_t min, int64_t max, int64_t *out, struct husk_error **err);
/* An array of strings into a NULL-terminated vector. */
int jget_strv(const struct jctx *c, json_t *obj, const char *key, const char *path, bool required,
              char ***out, struct husk_error **err);

/* "FILE: field 'PATH': what" as a user error. */
int jerr(const struct jctx *c, const char *path, struct husk_error **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
