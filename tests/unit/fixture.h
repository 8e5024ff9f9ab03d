/* SPDX-License-Identifier: Apache-2.0 */
/* A private temporary directory per test, optionally laid out as a bundle (DIR/rootfs). */
#ifndef HUSK_TEST_FIXTURE_H
#define HUSK_TEST_FIXTURE_H

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct fx {
    char dir[64];
    int dirfd;    /* O_RDONLY dir fd */
    char *bundle; /* realpath of dir */
    char *path;   /* bundle/config.json */
};

static inline int
fx_new(void **state, const char *name, bool bundle)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    char real[PATH_MAX];

    *state = fx;
    fx->dirfd = -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/husk-test-%s.XXXXXX", name);
    if (mkdtemp(fx->dir) == NULL || realpath(fx->dir, real) == NULL)
        return -1;
    fx->bundle = xstrdup(real);
    fx->path = xasprintf("%s/config.json", real);
    fx->dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fx->dirfd < 0)
        return -1;
    if (bundle) {
        cleanup_free char *rootfs = xasprintf("%s/rootfs", real);
        if (mkdir(rootfs, 0755) < 0)
            return -1;
    }
    return 0;
}

static inline int
fx_free(void **state)
{
    struct fx *fx = *state;
    int r = rm_rf_at(AT_FDCWD, fx->dir);

    if (fx->dirfd >= 0)
        close(fx->dirfd);
    free(fx->bundle);
    free(fx->path);
    free(fx);
    return r;
}

#endif
