/* SPDX-License-Identifier: Apache-2.0 */
/* A small open-addressing map from strings to indexes (the tree's path index, seen-sets). */
#define _GNU_SOURCE
#include <string.h>

#include "img-internal.h"
#include "util.h"

static uint64_t
hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t
slot(const struct img_map *m, const char *key)
{
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

bool
img_map_get(const struct img_map *m, const char *key, size_t *val)
{
    if (m->cap == 0)
        return false;
    size_t i = slot(m, key);
    if (m->keys[i] == NULL)
        return false;
    if (val)
        *val = m->vals[i];
    return true;
}

static void
grow(struct img_map *m)
{
    struct img_map bigger = {.cap = m->cap ? m->cap * 2 : 64};
    bigger.keys = xcalloc(bigger.cap, sizeof(char *));
    bigger.vals = xcalloc(bigger.cap, sizeof(size_t));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == NULL)
            continue;
        size_t j = slot(&bigger, m->keys[i]);
        bigger.keys[j] = m->keys[i];
        bigger.vals[j] = m->vals[i];
    }
    bigger.n = m->n;
    free(m->keys);
    free(m->vals);
    *m = bigger;
}

void
img_map_put(struct img_map *m, const char *key, size_t val)
{
    if ((m->n + 1) * 2 > m->cap)
        grow(m);
    size_t i = slot(m, key);
    if (m->keys[i] == NULL) {
        m->keys[i] = xstrdup(key);
        m->n++;
    }
    m->vals[i] = val;
}

void
img_map_clear(struct img_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}
