/* SPDX-License-Identifier: Apache-2.0 */
/* Error objects: creation where errno is fresh, context added on the way up. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "husk/error.h"
#include "util.h"

int
husk_errv(struct husk_error **err, int errnum, const char *fmt, va_list ap)
{
    int ret = errnum > 0 ? -errnum : -EINVAL;

    if (err == NULL || *err != NULL)
        return ret;
    struct husk_error *e = xcalloc(1, sizeof(*e));
    e->code = errnum > 0 ? errnum : 0;
    if (vasprintf(&e->msg, fmt, ap) < 0)
        abort();
    *err = e;
    return ret;
}

int
husk_err(struct husk_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int ret = husk_errv(err, errnum, fmt, ap);
    va_end(ap);
    return ret;
}

int
husk_err_prefix(struct husk_error **err, const char *fmt, ...)
{
    if (err == NULL || *err == NULL)
        return -EINVAL;
    struct husk_error *e = *err;
    cleanup_free char *prefix = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&prefix, fmt, ap) < 0)
        abort();
    va_end(ap);
    char *msg = xasprintf("%s%s", prefix, e->msg);
    free(e->msg);
    e->msg = msg;
    return e->code ? -e->code : -EINVAL;
}

char *
husk_error_string(const struct husk_error *e)
{
    if (e == NULL)
        return xstrdup("unknown error");
    if (e->code == 0)
        return xstrdup(e->msg);
    return xasprintf("%s: %s", e->msg, strerror(e->code));
}

void
husk_error_free(struct husk_error *e)
{
    if (e == NULL)
        return;
    free(e->msg);
    free(e);
}

void
husk_error_freep(struct husk_error **e)
{
    husk_error_free(*e);
    *e = NULL;
}
