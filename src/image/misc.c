/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers the image layer's files share: whole-fd reads, string vectors, warnings. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

int
img_read_fd(int fd, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, used = 0;
    cleanup_free char *buf = xmalloc(cap);
    for (;;) {
        if (used + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + used, cap - used - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        used += (size_t)n;
        if (used > max)
            return -EFBIG;
    }
    buf[used] = '\0';
    if (len)
        *len = used;
    *out = steal_ptr(&buf);
    return 0;
}

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
