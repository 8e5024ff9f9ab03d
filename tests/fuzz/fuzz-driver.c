/* SPDX-License-Identifier: Apache-2.0 */
/* The driver every fuzz target shares. Under libFuzzer (HUSK_LIBFUZZER) only the failure
 * reporting is used; otherwise this is main(): replay the seeds, then mutate them with a
 * seeded (so repeatable) PRNG, as a unit test (see README.md). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "util.h"

static const uint8_t *cur_data;
static size_t cur_size;
static unsigned long counts[FUZZ_COUNTS];

void
fuzz_count(unsigned i)
{
    if (i < FUZZ_COUNTS)
        counts[i]++;
}

/* "fuzz-idmap: 1234 maps parsed, 56 refused", at exit (under libFuzzer too). */
static void
report_counts(void)
{
    if (fuzz_target.counted[0] == NULL)
        return;
    printf("fuzz-%s:", fuzz_target.name);
    for (size_t i = 0; i < FUZZ_COUNTS && fuzz_target.counted[i]; i++)
        printf("%s %lu %s", i ? "," : "", counts[i], fuzz_target.counted[i]);
    printf("\n");
}

__attribute__((constructor)) static void
counts_at_exit(void)
{
    atexit(report_counts);
}

__attribute__((weak)) int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

void
fuzz_set_input(const uint8_t *data, size_t size)
{
    cur_data = data;
    cur_size = size;
}

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

void
fuzz_fail(const char *what, int line)
{
    fprintf(stderr, "fuzz-%s:%d: invariant violated: %s\n", fuzz_target.name, line, what);
    print_input();
    abort();
}

static char *scratch;

static void
scratch_remove(void)
{
    rm_rf_at(AT_FDCWD, scratch);
}

const char *
fuzz_scratch_dir(void)
{
    if (scratch)
        return scratch;
    scratch = xasprintf("/tmp/husk-fuzz-%s.XXXXXX", fuzz_target.name);
    if (mkdtemp(scratch) == NULL) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(scratch_remove);
    return scratch;
}

uint64_t
fuzz_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

size_t
fuzz_below(uint64_t *s, size_t n)
{
    return n ? fuzz_rng_next(s) % n : 0;
}

void
fuzz_input_set(struct fuzz_input *in, const void *data, size_t len)
{
    if (len > fuzz_target.max_input)
        len = fuzz_target.max_input;
    in->data = xrealloc(in->data, len ? len : 1);
    memcpy(in->data, data, len);
    in->len = len;
}

#ifndef HUSK_LIBFUZZER
#include <getopt.h>

#define FUZZ_SEED 1

struct seeds {
    struct fuzz_input *v;
    size_t n;
};

/* Numbers at the bounds of the parsers' integers: lengths, sizes, ids, modes. */
static const char *const numbers[] = {
    "0",
    "1",
    "-1",
    "00000000000000000001",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "ffffffffffffffff",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "0.5",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
};

/* Insert n bytes at `at`, up to the size cap; src may point into the input itself. */
static void
input_insert(struct fuzz_input *in, size_t at, const void *src, size_t n)
{
    if (n > fuzz_target.max_input - in->len)
        n = fuzz_target.max_input - in->len;
    cleanup_free uint8_t *copy = xmalloc(n ? n : 1);
    memcpy(copy, src, n);
    in->data = xrealloc(in->data, in->len + n ? in->len + n : 1);
    memmove(in->data + at + n, in->data + at, in->len - at);
    memcpy(in->data + at, copy, n);
    in->len += n;
}

static void
input_erase(struct fuzz_input *in, size_t at, size_t n)
{
    if (n > in->len - at)
        n = in->len - at;
    memmove(in->data + at, in->data + at + n, in->len - at - n);
    in->len -= n;
}

/* Replace the run of digits at or after `at` with a number that tests a bound. */
static void
mutate_number(struct fuzz_input *in, size_t at, uint64_t *rng)
{
    while (at < in->len && (in->data[at] < '0' || in->data[at] > '9'))
        at++;
    size_t end = at;
    while (end < in->len && in->data[end] >= '0' && in->data[end] <= '9')
        end++;
    input_erase(in, at, end - at);
    const char *s = numbers[fuzz_below(rng, ARRAY_SIZE(numbers))];
    input_insert(in, at, s, strlen(s));
}

static void
mutate(struct fuzz_input *in, const struct seeds *seeds, uint64_t *rng)
{
    const struct fuzz_target *t = &fuzz_target;
    const struct fuzz_input *s = &seeds->v[fuzz_below(rng, seeds->n)];
    size_t at = fuzz_below(rng, in->len + 1), from = fuzz_below(rng, s->len + 1);
    uint8_t c = (uint8_t)fuzz_rng_next(rng);

    if (t->mutate && (c & 3) < t->mutate_share && t->mutate(in, rng))
        return;
    switch (fuzz_below(rng, 9)) {
    case 0: /* flip a bit */
        if (at < in->len)
            in->data[at] ^= 1u << (c & 7);
        break;
    case 1: /* a byte the grammar cares about, in place or inserted */
        c = (uint8_t)(t->n_bytes ? t->bytes[c % t->n_bytes] : c);
        if (at < in->len && (fuzz_rng_next(rng) & 1))
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
    case 4:
        if (t->n_tokens) {
            const char *tok = t->tokens[c % t->n_tokens];
            input_insert(in, at, tok, strlen(tok));
        }
        break;
    case 5: /* a piece of a seed */
        input_insert(in, at, s->data + from, fuzz_below(rng, s->len - from + 1));
        break;
    case 6: /* this input's head, a seed's tail */
        in->len = at;
        input_insert(in, at, s->data + from, s->len - from);
        break;
    case 7: /* a piece repeated, and now and then a run about as long as the parser allows */
        if (c % 11 == 10 && t->n_long_runs) {
            size_t n = t->long_runs[c % t->n_long_runs] + fuzz_below(rng, 3) - 1;
            uint8_t *run = xmalloc(n ? n : 1);
            memset(run, 'a', n);
            input_insert(in, at, run, n);
            free(run);
        } else if (at < in->len) {
            size_t n = 1 + fuzz_below(rng, in->len - at < 64 ? in->len - at : 64);
            size_t k = (size_t)1 << fuzz_below(rng, 1 + c % 11); /* up to 512, mostly a few */
            while (k-- > 0 && in->len < t->max_input)
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
        fprintf(stderr, "fuzz-%s: read '%s': %s\n", fuzz_target.name, path, strerror(-r));
        exit(2);
    }
    seeds->v = xrealloc(seeds->v, (seeds->n + 1) * sizeof(*seeds->v));
    seeds->v[seeds->n++] = (struct fuzz_input){(uint8_t *)data, len};
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
        fprintf(stderr, "fuzz-%s: %s: not a number: '%s'\n", fuzz_target.name, what, s);
        exit(2);
    }
    return v;
}

void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

int
main(int argc, char **argv)
{
    const char *env_n = getenv("HUSK_FUZZ_ITERATIONS"), *env_s = getenv("HUSK_FUZZ_SEED");
    uint64_t iterations =
        env_n ? number_arg(env_n, "HUSK_FUZZ_ITERATIONS") : fuzz_target.iterations;
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

    printf("fuzz-%s: %zu inputs, then %" PRIu64 " mutations of them with seed %" PRIu64 "\n",
           fuzz_target.name, seeds.n, iterations, seed);
    fflush(stdout);
    for (size_t i = 0; i < seeds.n; i++)
        LLVMFuzzerTestOneInput(seeds.v[i].data, seeds.v[i].len);

    uint64_t rng = seed;
    struct fuzz_input in = {0};
    for (uint64_t i = 0; i < iterations; i++) {
        if (in.len == 0 || fuzz_below(&rng, 4) == 0) { /* start again from a seed */
            const struct fuzz_input *s = &seeds.v[fuzz_below(&rng, seeds.n)];
            in.len = 0;
            input_insert(&in, 0, s->data, s->len);
        }
        for (size_t k = 1 + fuzz_below(&rng, 4); k > 0; k--)
            mutate(&in, &seeds, &rng);
        LLVMFuzzerTestOneInput(in.data, in.len);
    }
    printf("fuzz-%s: no invariant broken\n", fuzz_target.name);

    free(in.data);
    for (size_t i = 0; i < seeds.n; i++)
        free(seeds.v[i].data);
    free(seeds.v);
    return 0;

usage:
    fprintf(stderr, "usage: fuzz-%s [-n ITERATIONS] [-s SEED] CORPUS_DIR_OR_FILE...\n",
            fuzz_target.name);
    return 2;
}
#endif
