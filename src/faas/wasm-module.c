/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A deployed WebAssembly module, read before anything is built from it: the binary format's
 * framing (magic, version, sections in their order, every length within the file) and what a
 * WASI preview1 command must have (imports only from wasi_snapshot_preview1, an exported
 * `_start` function and `memory`). The engine validates the code itself when it compiles the
 * module inside the sandbox; this is what lets a deploy of the wrong file fail at once with a
 * message naming the problem.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "faas-internal.h"

#define WASI_MODULE "wasi_snapshot_preview1"

struct reader {
    const uint8_t *p;
    size_t len, off;
    char *why;
    size_t why_len;
};

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, r->why_len, fmt, ap);
    va_end(ap);
    return -1;
}

static int
byte(struct reader *r, uint8_t *out)
{
    if (r->off >= r->len)
        return fail(r, "it ends in the middle of a section (at byte %zu)", r->off);
    *out = r->p[r->off++];
    return 0;
}

/* An unsigned LEB128 of at most 32 bits, as the format encodes every count and index. */
static int
u32(struct reader *r, uint32_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
        uint8_t b = 0;
        if (byte(r, &b) < 0)
            return -1;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (v > UINT32_MAX)
                break;
            *out = (uint32_t)v;
            return 0;
        }
    }
    return fail(r, "a number at byte %zu is not a valid 32-bit LEB128", r->off);
}

/* A name: a length and that many bytes, within the section. */
static int
name(struct reader *r, const char **s, uint32_t *n)
{
    if (u32(r, n) < 0)
        return -1;
    if (*n > r->len - r->off)
        return fail(r, "a name at byte %zu runs past the end of its section", r->off);
    *s = (const char *)r->p + r->off;
    r->off += *n;
    return 0;
}

static bool
name_is(const char *s, uint32_t n, const char *want)
{
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* Limits: flags, a minimum and, with flag 1, a maximum (pages or elements). */
static int
limits(struct reader *r, uint32_t *min)
{
    uint8_t flags = 0;
    uint32_t max = 0;
    if (byte(r, &flags) < 0 || u32(r, min) < 0)
        return -1;
    if (flags & ~0x03u)
        return fail(r,
                    "limits at byte %zu use flags 0x%x (64-bit or custom-page memories are "
                    "not supported)",
                    r->off, flags);
    return (flags & 1) ? u32(r, &max) : 0;
}

static int
imports(struct reader *r, struct faas_wasm_info *info)
{
    uint32_t n = 0, mlen = 0, flen = 0, idx = 0, min = 0;
    const char *mod = NULL, *field = NULL;
    uint8_t kind = 0, b = 0;
    if (u32(r, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (name(r, &mod, &mlen) < 0 || name(r, &field, &flen) < 0 || byte(r, &kind) < 0)
            return -1;
        if (!name_is(mod, mlen, WASI_MODULE))
            return fail(
                r, "it imports '%.*s'.'%.*s': a WASI command imports from " WASI_MODULE " only",
                (int)(mlen > 64 ? 64 : mlen), mod, (int)(flen > 64 ? 64 : flen), field);
        int rc = kind == 0   ? u32(r, &idx)
                 : kind == 1 ? (byte(r, &b) < 0 ? -1 : limits(r, &min))
                 : kind == 2 ? limits(r, &min)
                 : kind == 3
                     ? (byte(r, &b) < 0 ? -1 : byte(r, &b))
                     : fail(r, "an import of kind %u at byte %zu is not known", kind, r->off);
        if (rc < 0)
            return -1;
        info->n_imports++;
    }
    return 0;
}

static int
memories(struct reader *r, struct faas_wasm_info *info)
{
    uint32_t n = 0;
    if (u32(r, &n) < 0)
        return -1;
    if (n > 1)
        return fail(r, "it defines %u memories (multiple memories are not supported)", n);
    if (n == 1 && limits(r, &info->min_pages) < 0)
        return -1;
    info->has_memory = n == 1;
    return 0;
}

static int
exports(struct reader *r, struct faas_wasm_info *info)
{
    uint32_t n = 0, len = 0, idx = 0;
    const char *s = NULL;
    uint8_t kind = 0;
    if (u32(r, &n) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (name(r, &s, &len) < 0 || byte(r, &kind) < 0 || u32(r, &idx) < 0)
            return -1;
        info->has_start |= kind == 0 && name_is(s, len, "_start");
        info->exports_memory |= kind == 2 && name_is(s, len, "memory");
    }
    return 0;
}

/* The order known sections must come in (custom sections, id 0, may come anywhere): type,
 * import, function, table, memory, tag, global, export, start, element, data count, code,
 * data. */
static int
section_rank(uint8_t id)
{
    static const int8_t rank[] = {
        [1] = 1, [2] = 2, [3] = 3,  [4] = 4,   [5] = 5,   [13] = 6, [6] = 7,
        [7] = 8, [8] = 9, [9] = 10, [12] = 11, [10] = 12, [11] = 13};
    return id < sizeof(rank) ? rank[id] : 0;
}

static int
section(struct reader *r, uint8_t id, struct faas_wasm_info *info)
{
    const char *s = NULL;
    uint32_t n = 0;
    switch (id) {
    case 0: /* custom: a name, then anything */
        if (name(r, &s, &n) < 0)
            return -1;
        r->off = r->len;
        return 0;
    case 2:
        return imports(r, info);
    case 5:
        return memories(r, info);
    case 7:
        return exports(r, info);
    default:
        r->off = r->len; /* its content is the engine's to validate */
        return 0;
    }
}

int
faas_wasm_module_check(const uint8_t *p, size_t len, struct faas_wasm_info *info, char *why,
                       size_t why_len)
{
    static const uint8_t magic[4] = {0, 'a', 's', 'm'};
    struct reader r = {.p = p, .len = len, .why = why, .why_len = why_len};
    *info = (struct faas_wasm_info){0};
    if (len < 8 || memcmp(p, magic, 4) != 0)
        return fail(&r, "it is not a WebAssembly module (no \\0asm magic number)");
    uint32_t version = p[4] | p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    if (version == 0x0001000d)
        return fail(&r, "it is a WebAssembly component: a core module (a WASI preview1 command) "
                        "is needed");
    if (version != 1)
        return fail(&r, "WebAssembly version %u is not supported (only 1)", version);
    r.off = 8;
    int last = 0;
    while (r.off < len) {
        size_t at = r.off;
        uint8_t id = 0;
        uint32_t size = 0;
        if (byte(&r, &id) < 0 || u32(&r, &size) < 0)
            return -1;
        if (id != 0 && section_rank(id) == 0)
            return fail(&r, "section id %u at byte %zu is not known", id, at);
        if (size > len - r.off)
            return fail(&r,
                        "section %u at byte %zu runs past the end of the file (%u bytes "
                        "declared, %zu left)",
                        id, at, size, len - r.off);
        if (id != 0 && section_rank(id) <= last)
            return fail(&r, "section %u at byte %zu is out of order", id, at);
        if (id != 0)
            last = section_rank(id);
        struct reader sub = {
            .p = p, .len = r.off + size, .off = r.off, .why = why, .why_len = why_len};
        if (section(&sub, id, info) < 0)
            return -1;
        if (sub.off != sub.len)
            return fail(&r, "section %u at byte %zu has %zu bytes left over after its content", id,
                        at, sub.len - sub.off);
        r.off += size;
    }
    if (!info->has_start)
        return fail(&r, "it exports no '_start' function: a WASI command module is needed (a "
                        "reactor or a library cannot be run per call)");
    if (!info->has_memory || !info->exports_memory)
        return fail(&r, "it does not define and export its 'memory' (WASI passes data through "
                        "it)");
    return 0;
}
