/* SPDX-License-Identifier: Apache-2.0 */
/* What a fuzz target gives the driver it shares with the others (fuzz-driver.c): its name, the
 * tokens of its format, and the checks it fails with. */
#ifndef HUSK_FUZZ_H
#define HUSK_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fuzz_input {
    uint8_t *data;
    size_t len;
};

#define FUZZ_COUNTS 4

struct fuzz_target {
    const char *name;
    const char *const *tokens; /* inserted whole */
    size_t n_tokens;
    const char *bytes; /* single bytes the grammar cares about (NUL-terminated, "\0" ok) */
    size_t n_bytes;
    const size_t *long_runs; /* lengths about as long as the parser allows */
    size_t n_long_runs;
    uint64_t iterations; /* mutations in the CI run */
    size_t max_input;
    /* A mutation that knows the format, tried mutate_share times out of 4 (else a byte-level
     * one): false when it could not (the input is not of the format any more). */
    bool (*mutate)(struct fuzz_input *in, uint64_t *rng);
    unsigned mutate_share;
    /* What fuzz_count(i) counts ("maps parsed", "refused"): how far inputs got, said at exit. */
    const char *counted[FUZZ_COUNTS];
};

/* Each target defines fuzz_target and LLVMFuzzerTestOneInput; LLVMFuzzerInitialize when it
 * has something to set up (the driver's does nothing). */
extern const struct fuzz_target fuzz_target;
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input under test, printed (as a C string) when a check fails or a sanitizer reports. */
void fuzz_set_input(const uint8_t *data, size_t size);
_Noreturn void fuzz_fail(const char *what, int line);
/* One more input got as far as fuzz_target.counted[i] says. */
void fuzz_count(unsigned i);
#define fuzz_check(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __LINE__))

/* A directory of the run's own under /tmp, removed with what is in it at exit. */
const char *fuzz_scratch_dir(void);

/* For custom mutators: the driver's seeded PRNG, and edits that keep the size cap. */
uint64_t fuzz_rng_next(uint64_t *s);
size_t fuzz_below(uint64_t *s, size_t n);
void fuzz_input_set(struct fuzz_input *in, const void *data, size_t len);

/* fuzz-json.c: a mutation of a JSON document, node by node (fuzz_target.mutate for JSON). */
bool fuzz_json_mutate(struct fuzz_input *in, uint64_t *rng);

#endif
