/* SPDX-License-Identifier: Apache-2.0 */
/* Scope-bound cleanup helpers and ownership transfer (steal_ptr, steal_fd). */
#ifndef HUSK_CORE_CLEANUP_H
#define HUSK_CORE_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>

#define cleanup_(f) __attribute__((cleanup(f)))

static inline void
freep(void *p)
{
    free(*(void **)p);
}

static inline void
closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void
fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

static inline void
closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

/* NULL-terminated array of strings, each owned. */
static inline void
strv_freep(char ***v)
{
    if (*v) {
        for (char **s = *v; *s; s++)
            free(*s);
        free(*v);
        *v = NULL;
    }
}

#define cleanup_free cleanup_(freep)
#define cleanup_fd   cleanup_(closep)
#define cleanup_file cleanup_(fclosep)
#define cleanup_dir  cleanup_(closedirp)
#define cleanup_strv cleanup_(strv_freep)

static inline void *
steal_ptr_impl(void *pp)
{
    void **p = pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_ptr(pp) ((__typeof__(*(pp)))steal_ptr_impl(pp))

static inline int
steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
