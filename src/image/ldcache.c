/* SPDX-License-Identifier: Apache-2.0 */
/* /etc/ld.so.cache as glibc writes it (elf/cache.c, "glibc-ld.so.cache1.1"), bounds-checked. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "img-internal.h"
#include "util.h"

#define OLD_MAGIC      "ld.so-1.7.0"
#define NEW_MAGIC      "glibc-ld.so.cache1.1"
#define OLD_HEADER     16 /* char magic[11], padding, uint32_t nlibs */
#define OLD_ENTRY      12 /* int32_t flags; uint32_t key, value */
#define NEW_HEADER     48
#define NEW_ENTRY      24 /* int32_t flags; uint32_t key, value, osversion; uint64_t hwcap */
#define FLAG_ELF_LIBC6 0x0003
#define FLAG_TYPE_MASK 0x00ff

static uint32_t
u32_at(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t
u64_at(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* A NUL-terminated string at off within [base, end). */
static char *
string_at(const unsigned char *base, size_t avail, uint32_t off)
{
    if (off >= avail)
        return NULL;
    size_t n = strnlen((const char *)base + off, avail - off);
    return n < avail - off ? xstrndup((const char *)base + off, n) : NULL;
}

int
img_ldcache_parse(const void *buf, size_t len, struct img_ldcache *out, struct husk_error **err)
{
    const unsigned char *p = buf;
    size_t off = 0;

    memset(out, 0, sizeof(*out));
    if (len >= OLD_HEADER && memcmp(p, OLD_MAGIC, strlen(OLD_MAGIC)) == 0) {
        uint64_t old = (uint64_t)u32_at(p + 12) * OLD_ENTRY + OLD_HEADER;
        off = (size_t)((old + 7) & ~(uint64_t)7);
        if (old > len || off > len)
            return husk_err(err, 0, "old-format part is truncated");
    }
    if (len - off < NEW_HEADER || memcmp(p + off, NEW_MAGIC, strlen(NEW_MAGIC)) != 0)
        return husk_err(err, 0, "not a glibc ld.so.cache (format 1.1)");
    const unsigned char *h = p + off;
    size_t avail = len - off;
    uint64_t nlibs = u32_at(h + 20);
    if (nlibs * NEW_ENTRY + NEW_HEADER > avail)
        return husk_err(err, 0, "%llu entries do not fit in %zu bytes", (unsigned long long)nlibs,
                        avail);
    out->v = xcalloc(nlibs ? nlibs : 1, sizeof(*out->v));
    for (uint64_t i = 0; i < nlibs; i++) {
        const unsigned char *e = h + NEW_HEADER + i * NEW_ENTRY;
        int32_t flags = (int32_t)u32_at(e);
        /* hwcap entries name optimised copies under glibc-hwcaps/; the baseline one is kept,
         * it runs on every CPU this image may meet. */
        if ((flags & FLAG_TYPE_MASK) != FLAG_ELF_LIBC6 || u64_at(e + 16) != 0)
            continue;
        char *key = string_at(h, avail, u32_at(e + 4));
        char *value = string_at(h, avail, u32_at(e + 8));
        if (key == NULL || value == NULL) {
            free(key);
            free(value);
            img_ldcache_clear(out);
            return husk_err(err, 0, "entry %llu points outside the file", (unsigned long long)i);
        }
        out->v[out->n++] = (struct img_ldcache_entry){.soname = key, .path = value, .flags = flags};
    }
    return 0;
}

void
img_ldcache_clear(struct img_ldcache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].soname);
        free(c->v[i].path);
    }
    free(c->v);
    memset(c, 0, sizeof(*c));
}
