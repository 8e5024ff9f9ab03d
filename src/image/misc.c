/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers the image layer's files share: string vectors, warnings. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "img-internal.h"
#include "util.h"

void
img_strv_push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

void
img_warn(struct img_warnings *w, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    if (w == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    img_strv_push(&w->v, &w->n, msg);
}

void
img_warnings_clear(struct img_warnings *w)
{
    strv_freep(&w->v);
    w->n = 0;
}
