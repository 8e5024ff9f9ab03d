/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the HTTP request parser (http-parse.c); without HUSK_LIBFUZZER it is its own
 * driver, which replays a corpus and mutates it, so normal CI runs it as a unit test. */
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

/* The input under test, printed when an invariant fails. */
static const uint8_t *cur_data;
static size_t cur_size;
/* HUSK_FUZZ_STRICT=1 adds the RFC 9112 checks http-parse.c does not pass yet (README.md). */
static bool strict;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
print_input(void)
{
    if (cur_data == NULL)
        return;
    fprintf(stderr, "input (%zu bytes): \"", cur_size);
    for (size_t i = 0; i < cur_size; i++) {
        uint8_t c = cur_data[i];
        if (c == '\r' || c == '\n' || c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c == '\r' ? 'r' : c == '\n' ? 'n' : c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x\"\"", c); /* closed, so a hex digit after it stays apart */
        else
            fputc(c, stderr);
    }
    fputs("\"\n", stderr);
}

static void
fail(const char *what, int line)
{
    fprintf(stderr, "fuzz-http-parse:%d: invariant violated: %s\n", line, what);
    print_input();
    abort();
}

#define check(cond) ((cond) ? (void)0 : fail(#cond, __LINE__))

static uint64_t
hash(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3u;
    return h;
}

/* Called once the headers are in: the request line and headers must be whole by then. */
static uint64_t
limit_fn(const struct faas_request *r, void *data)
{
    struct limit *l = data;
    check(r->headers_done && !r->complete);
    check(r->method[0] != '\0');
    check(r->url != NULL && strlen(r->url) == r->url_len);
    l->calls++;
    l->n_head = r->n_headers;
    return l->value;
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
        faas_parser_set_limit_fn(p, limit_fn, &l);
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
    cur_data = data;
    cur_size = size;
    run(data, size, SPLIT_WHOLE, lim, &first);
    for (enum split how = SPLIT_WHOLE + 1; how < SPLIT_N && size > 0; how++) {
        if (how == SPLIT_BYTES && size > FUZZ_MAX_BYTES)
            continue;
        run(data, size, how, lim, &other);
        check_same(&first, &other);
        outcome_free(&other);
    }
    outcome_free(&first);
    cur_data = NULL; /* a leak is found at exit, with no input of its own */
    return 0;
}

#ifndef HUSK_LIBFUZZER
/* The standalone driver: replay the seeds, then mutate them with a seeded (so repeatable) PRNG. */
#include <getopt.h>

#define FUZZ_MAX_INPUT  32768
#define FUZZ_ITERATIONS 20000
#define FUZZ_SEED       1

struct input {
    uint8_t *data;
    size_t len;
};

struct seeds {
    struct input *v;
    size_t n;
};

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
/* Numbers at the bounds of the parsers' integers, for lengths and chunk sizes. */
static const char *const numbers[] = {
    "0", "1", "00000000000000000001", "4294967295", "4294967296", "18446744073709551615",
    "18446744073709551616", "99999999999999999999999999", "ffffffffffffffff", "fffffffffffffffff",
    "-1",
};
/* clang-format on */

static uint64_t
rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t
below(uint64_t *s, size_t n)
{
    return n ? rng_next(s) % n : 0;
}

/* Insert n bytes at `at`, up to the size cap; src may point into the input itself. */
static void
input_insert(struct input *in, size_t at, const void *src, size_t n)
{
    if (n > FUZZ_MAX_INPUT - in->len)
        n = FUZZ_MAX_INPUT - in->len;
    cleanup_free uint8_t *copy = xmalloc(n ? n : 1);
    memcpy(copy, src, n);
    in->data = xrealloc(in->data, in->len + n);
    memmove(in->data + at + n, in->data + at, in->len - at);
    memcpy(in->data + at, copy, n);
    in->len += n;
}

static void
input_erase(struct input *in, size_t at, size_t n)
{
    if (n > in->len - at)
        n = in->len - at;
    memmove(in->data + at, in->data + at + n, in->len - at - n);
    in->len -= n;
}

/* Replace the run of digits at or after `at` with a number that tests a bound. */
static void
mutate_number(struct input *in, size_t at, uint64_t *rng)
{
    while (at < in->len && (in->data[at] < '0' || in->data[at] > '9'))
        at++;
    size_t end = at;
    while (end < in->len && in->data[end] >= '0' && in->data[end] <= '9')
        end++;
    input_erase(in, at, end - at);
    const char *s = numbers[below(rng, ARRAY_SIZE(numbers))];
    input_insert(in, at, s, strlen(s));
}

static void
mutate(struct input *in, const struct seeds *seeds, uint64_t *rng)
{
    const struct input *s = &seeds->v[below(rng, seeds->n)];
    size_t at = below(rng, in->len + 1), from = below(rng, s->len + 1);
    uint8_t c = (uint8_t)rng_next(rng);

    switch (below(rng, 9)) {
    case 0: /* flip a bit */
        if (at < in->len)
            in->data[at] ^= 1u << (c & 7);
        break;
    case 1: /* a byte the grammar cares about, in place or inserted */
        c = (uint8_t) "\0\t\n\r :;,\"0aF\x7f\x80\xff"[c % 16];
        if (at < in->len && (rng_next(rng) & 1))
            in->data[at] = c;
        else
            input_insert(in, at, &c, 1);
        break;
    case 2:
        input_insert(in, at, &c, 1);
        break;
    case 3:
        input_erase(in, at, 1 + c % 16);
        break;
    case 4: {
        const char *t = tokens[c % ARRAY_SIZE(tokens)];
        input_insert(in, at, t, strlen(t));
        break;
    }
    case 5: /* a piece of a seed */
        input_insert(in, at, s->data + from, below(rng, s->len - from + 1));
        break;
    case 6: /* this input's head, a seed's tail */
        in->len = at;
        input_insert(in, at, s->data + from, s->len - from);
        break;
    case 7: /* a piece repeated: many headers, many chunks, and now and then a line about as long
             * as the parser allows */
        if (c % 11 == 10) {
            size_t n = (c & 0x80 ? FUZZ_MAX_HEADER : FUZZ_MAX_URL) + below(rng, 3) - 1;
            uint8_t *run = xmalloc(n);
            memset(run, 'a', n); /* fits a path, a name, a value or a body */
            input_insert(in, at, run, n);
            free(run);
        } else if (at < in->len) {
            size_t n = 1 + below(rng, in->len - at < 64 ? in->len - at : 64);
            size_t k = (size_t)1 << below(rng, 1 + c % 11); /* up to 512, mostly a few */
            while (k-- > 0 && in->len < FUZZ_MAX_INPUT)
                input_insert(in, at, in->data + at, n);
        }
        break;
    default:
        mutate_number(in, at, rng);
    }
}

static void
add_seed(int dirfd, const char *path, struct seeds *seeds)
{
    char *data;
    size_t len;
    int r = read_file_at(dirfd, path, &data, &len);
    if (r < 0) {
        fprintf(stderr, "fuzz-http-parse: read '%s': %s\n", path, strerror(-r));
        exit(2);
    }
    seeds->v = xrealloc(seeds->v, (seeds->n + 1) * sizeof(*seeds->v));
    seeds->v[seeds->n++] = (struct input){(uint8_t *)data, len};
}

/* A corpus directory (its files, sorted, so runs repeat), or one file, e.g. a reproducer. */
static void
add_seeds(const char *path, struct seeds *seeds)
{
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        add_seed(AT_FDCWD, path, seeds);
        return;
    }
    cleanup_fd int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.' && names[i]->d_type != DT_DIR)
            add_seed(dirfd, names[i]->d_name, seeds);
        free(names[i]);
    }
    free(names);
}

static uint64_t
number_arg(const char *s, const char *what)
{
    uint64_t v;
    if (parse_u64(s, &v) < 0) {
        fprintf(stderr, "fuzz-http-parse: %s: not a number: '%s'\n", what, s);
        exit(2);
    }
    return v;
}

void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

int
main(int argc, char **argv)
{
    const char *env_n = getenv("HUSK_FUZZ_ITERATIONS"), *env_s = getenv("HUSK_FUZZ_SEED");
    uint64_t iterations = env_n ? number_arg(env_n, "HUSK_FUZZ_ITERATIONS") : FUZZ_ITERATIONS;
    uint64_t seed = env_s ? number_arg(env_s, "HUSK_FUZZ_SEED") : FUZZ_SEED;
    struct seeds seeds = {0};
    int opt;

    while ((opt = getopt(argc, argv, "n:s:")) != -1) {
        if (opt == 'n')
            iterations = number_arg(optarg, "-n");
        else if (opt == 's')
            seed = number_arg(optarg, "-s");
        else
            goto usage;
    }
    if (optind == argc)
        goto usage;
    for (int i = optind; i < argc; i++)
        add_seeds(argv[i], &seeds);
    if (seeds.n == 0)
        add_seed(AT_FDCWD, "/dev/null", &seeds);
    LLVMFuzzerInitialize(&argc, &argv);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(print_input);

    printf("fuzz-http-parse: %zu inputs, then %" PRIu64 " mutations of them with seed %" PRIu64
           "\n",
           seeds.n, iterations, seed);
    fflush(stdout);
    for (size_t i = 0; i < seeds.n; i++)
        LLVMFuzzerTestOneInput(seeds.v[i].data, seeds.v[i].len);

    uint64_t rng = seed;
    struct input in = {0};
    for (uint64_t i = 0; i < iterations; i++) {
        if (in.len == 0 || below(&rng, 4) == 0) { /* start again from a seed */
            const struct input *s = &seeds.v[below(&rng, seeds.n)];
            in.len = 0;
            input_insert(&in, 0, s->data, s->len);
        }
        for (size_t k = 1 + below(&rng, 4); k > 0; k--)
            mutate(&in, &seeds, &rng);
        LLVMFuzzerTestOneInput(in.data, in.len);
    }
    printf("fuzz-http-parse: no invariant broken\n");

    free(in.data);
    for (size_t i = 0; i < seeds.n; i++)
        free(seeds.v[i].data);
    free(seeds.v);
    return 0;

usage:
    fprintf(stderr, "usage: fuzz-http-parse [-n ITERATIONS] [-s SEED] CORPUS_DIR_OR_FILE...\n");
    return 2;
}
#endif
