/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the HTTP request parser (http-parse.c); fuzz-driver.c runs it as a unit test
 * (a corpus replayed, then mutated) unless built for libFuzzer. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "faas-internal.h"
#include "fuzz.h"
#include "util.h"

#define FUZZ_MAX_URL    8192 /* http-parse.c's limits */
#define FUZZ_MAX_HEADER 16384
#define FUZZ_MAX_BYTES  1024 /* byte-by-byte feeding only below this size */
/* RFC 9110's tchar: what a field name is made of */
#define TCHAR "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_DATA, SPLIT_TWO, SPLIT_N };

struct limit {
    bool set;       /* false: the parser's default limit */
    uint64_t value; /* returned by the callback */
    unsigned calls;
    size_t n_head; /* headers seen by the callback; any after them came as trailers */
};

/* HUSK_FUZZ_STRICT=1 adds the RFC 9112 checks http-parse.c does not pass yet (README.md). */
static bool strict;

#define check(cond) fuzz_check(cond)

static uint64_t
hash(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3u;
    return h;
}

/* Called once the headers are in: the request line and headers must be whole by then. */
static void
limit_fn(struct faas_request *r, void *data)
{
    struct limit *l = data;
    check(r->headers_done && !r->complete);
    check(r->method[0] != '\0');
    check(r->url != NULL && strlen(r->url) == r->url_len);
    l->calls++;
    l->n_head = r->n_headers;
    r->max_body = l->value;
}

static void
check_request(const struct faas_request *r, const struct limit *l)
{
    check(r->complete && r->headers_done);
    check(l->calls == (l->set ? 1u : 0u));
    check(r->max_body == (l->set ? l->value : FAAS_ADMIN_MAX_BODY));
    check(r->method[0] != '\0' && strnlen(r->method, sizeof(r->method)) < sizeof(r->method));
    check(r->url != NULL && strlen(r->url) == r->url_len && r->url_len <= FUZZ_MAX_URL);
    check(r->n_headers <= FAAS_MAX_HEADERS);
    for (size_t i = 0; i < FAAS_MAX_HEADERS; i++) {
        const struct faas_header *h = &r->headers[i];
        if (i >= r->n_headers) {
            check(h->name == NULL && h->value == NULL);
            continue;
        }
        check(h->name != NULL && strlen(h->name) <= FUZZ_MAX_HEADER);
        check(h->value != NULL && strlen(h->value) <= FUZZ_MAX_HEADER);
        check(faas_request_header(r, h->name) != NULL);
    }
    check(r->body_len <= r->max_body);
    check(r->body_len == 0 || r->body != NULL);
    /* A declared length is honoured exactly, or refused as a whole. A CONNECT has no body: the
     * bytes after its headers belong to the tunnel. */
    bool tunnel = strcmp(r->method, "CONNECT") == 0;
    uint64_t n;
    for (size_t i = 0; i < l->n_head; i++)
        if (strcasecmp(r->headers[i].name, "content-length") == 0 &&
            parse_u64(r->headers[i].value, &n) == 0) {
            check(n <= r->max_body || r->too_large);
            check(r->too_large || tunnel || r->body_len == n);
            break;
        }
    if (!strict)
        return;
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *name = r->headers[i].name;
        check(name[0] != '\0' && strspn(name, TCHAR) == strlen(name));
    }
    check(!l->set || r->n_headers == l->n_head);
}

/* The length of the next piece to feed, by split pattern. */
static size_t
piece(enum split how, const uint8_t *data, size_t size, size_t k)
{
    switch (how) {
    case SPLIT_BYTES:
        return 1;
    case SPLIT_DATA:
        return 1 + (data[k % size] ^ k) % 29;
    case SPLIT_TWO:
        return k == 0 ? 1 + hash(data, size) % size : size;
    default:
        return size;
    }
}

/* What one connection's bytes gave: the requests taken in turn, then how it ended. */
struct outcome {
    struct faas_request *reqs;
    size_t n_reqs;
    int end; /* 0: the bytes ran out between requests; 1: a request without keep-alive; -1: error */
};

static void
outcome_free(struct outcome *o)
{
    for (size_t i = 0; i < o->n_reqs; i++)
        faas_request_reset(&o->reqs[i]);
    free(o->reqs);
}

/* A request is complete: check it and move it out, as the daemon does before answering it. */
static void
take(struct faas_parser *p, struct limit *l, struct outcome *o)
{
    const char *why = NULL;
    check_request(faas_parser_request(p), l);
    check(faas_parser_feed(p, "GET", 3, &why) == 1 && faas_parser_consumed(p) == 0);
    o->reqs = xrealloc(o->reqs, (o->n_reqs + 1) * sizeof(*o->reqs));
    faas_parser_take(p, &o->reqs[o->n_reqs++]);
    const struct faas_request *next = faas_parser_request(p);
    check(!next->complete && !next->headers_done && next->url == NULL && next->n_headers == 0);
    l->calls = 0;
    l->n_head = 0;
    if (!o->reqs[o->n_reqs - 1].keep_alive)
        o->end = 1;
}

/* Feed one piece, and what a complete request left of it to the next one, as conn.c does.
 * Returns whether the connection goes on; *mid: bytes of an incomplete request were fed. */
static bool
feed_piece(struct faas_parser *p, const char *buf, size_t n, struct limit *l, struct outcome *o,
           bool *mid)
{
    for (size_t used = 0; used < n;) {
        const char *why = NULL;
        int r = faas_parser_feed(p, buf + used, n - used, &why);
        size_t c = faas_parser_consumed(p);
        check(l->calls <= 1);
        if (r < 0) {
            check(why != NULL && why[0] != '\0');
            o->end = -1;
            return false;
        }
        check(r == 0 ? c == n - used : c > 0 && c <= n - used); /* or conn.c spins */
        used += c;
        *mid = r == 0;
        if (r == 1)
            take(p, l, o);
        if (o->end)
            return false;
    }
    return true;
}

/* Feed the input in pieces, each in a heap copy of its own exact size (so a read past a piece,
 * or a pointer kept into it, is caught), then the end of the stream. */
static void
run(const uint8_t *data, size_t size, enum split how, struct limit l, struct outcome *o)
{
    struct faas_parser *p = faas_parser_new();
    bool mid = false;
    if (l.set)
        faas_parser_set_head_fn(p, limit_fn, &l);
    *o = (struct outcome){0};
    for (size_t off = 0, k = 0; off < size; k++) {
        size_t n = piece(how, data, size, k);
        if (n > size - off)
            n = size - off;
        char *buf = xmalloc(n);
        memcpy(buf, data + off, n);
        bool more = feed_piece(p, buf, n, &l, o, &mid);
        free(buf);
        off += n;
        if (!more)
            break;
    }
    if (o->end == 0 && mid) {
        const char *why = NULL;
        if (faas_parser_feed(p, NULL, 0, &why) == 1)
            take(p, &l, o);
        else
            o->end = -1;
    }
    faas_parser_free(p);
}

static bool
str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "(null)", b ? b : "(null)") == 0;
}

/* However the bytes arrive, the outcome is the same. Not the reason of an error: llhttp reports a
 * span (a header name, say) at the end of each buffer, so a span's own check can come before a
 * later byte's. A body over the limit is cut wherever the pieces fall: only its being too large
 * is compared. */
static void
check_same(const struct outcome *x, const struct outcome *y)
{
    check(x->end == y->end && x->n_reqs == y->n_reqs);
    for (size_t i = 0; i < x->n_reqs; i++) {
        const struct faas_request *a = &x->reqs[i], *b = &y->reqs[i];
        check(strcmp(a->method, b->method) == 0 && str_eq(a->url, b->url));
        check(a->n_headers == b->n_headers);
        for (size_t j = 0; j < a->n_headers; j++)
            check(str_eq(a->headers[j].name, b->headers[j].name) &&
                  str_eq(a->headers[j].value, b->headers[j].value));
        check(a->too_large == b->too_large && a->max_body == b->max_body);
        check(a->keep_alive == b->keep_alive);
        if (!a->too_large)
            check(a->body_len == b->body_len &&
                  (a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0));
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *s = getenv("HUSK_FUZZ_STRICT");
    strict = s && strcmp(s, "1") == 0;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t limits[] = {0, 1, 7, 64, 4096, FAAS_ADMIN_MAX_BODY, UINT64_MAX};
    size_t pick = hash(data, size) % (ARRAY_SIZE(limits) + 1); /* one more: no callback */
    struct limit lim = {.set = pick < ARRAY_SIZE(limits)};
    struct outcome first, other;

    if (lim.set)
        lim.value = limits[pick];
    fuzz_set_input(data, size);
    run(data, size, SPLIT_WHOLE, lim, &first);
    for (enum split how = SPLIT_WHOLE + 1; how < SPLIT_N && size > 0; how++) {
        if (how == SPLIT_BYTES && size > FUZZ_MAX_BYTES)
            continue;
        run(data, size, how, lim, &other);
        check_same(&first, &other);
        outcome_free(&other);
    }
    outcome_free(&first);
    fuzz_set_input(NULL, 0); /* a leak is found at exit, with no input of its own */
    return 0;
}

/* Inserted whole; NULs and other single bytes come from the byte mutations. The tables are
 * packed by hand. */
/* clang-format off */
static const char *const tokens[] = {
    "\r\n", "\r\n\r\n", "\n", "\r", " ", "\t", ":", ";", "\"", "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: gzip, chunked\r\n", "Content-Length: ", "Content-Length: 0\r\n", "chunked",
    "Connection: close\r\n", "Connection: upgrade\r\nUpgrade: h2c\r\n", "Expect: 100-continue\r\n",
    "Host: a\r\n", "0\r\n\r\n", "1;ext=\"v\"\r\nx\r\n", "0\r\nX-Trailer: t\r\n\r\n", "HTTP/1.1",
    "HTTP/1.0", "HTTP/2.0", "GET ", "POST ", "HEAD ", "CONNECT ", "OPTIONS * ", "/function/",
    "?a=b", "%00", "#", "\xff", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
};
/* clang-format on */
static const char grammar[] = "\0\t\n\r :;,\"0aF\x7f\x80\xff";
/* a line about as long as the parser allows: a path, a name, a value or a body */
static const size_t long_runs[] = {FUZZ_MAX_URL, FUZZ_MAX_HEADER};

const struct fuzz_target fuzz_target = {
    .name = "http-parse",
    .tokens = tokens,
    .n_tokens = ARRAY_SIZE(tokens),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .long_runs = long_runs,
    .n_long_runs = ARRAY_SIZE(long_runs),
    .iterations = 20000,
    .max_input = 32768,
};
