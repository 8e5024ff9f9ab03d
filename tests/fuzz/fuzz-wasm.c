/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the WebAssembly module check of a wasm deploy (wasm-module.c): any bytes are
 * either accepted as a WASI command (with what it needs) or refused with a message. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "fuzz.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct faas_wasm_info info;
    char why[256];
    memset(why, 'x', sizeof(why));
    fuzz_set_input(data, size);
    if (faas_wasm_module_check(data, size, &info, why, sizeof(why)) == 0) {
        fuzz_count(0); /* modules accepted */
        fuzz_check(info.has_start && info.has_memory && info.exports_memory);
        fuzz_check(size >= 8);
    } else {
        fuzz_count(1); /* refused */
        fuzz_check(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
    }
    fuzz_set_input(NULL, 0);
    return 0;
}

/* clang-format off */
static const char *const tokens[] = {
    "\0asm\x01\0\0\0", "\x16wasi_snapshot_preview1", "\x06_start\x00\x00", "\x06memory\x02\x00",
    "\x01\x60\x00\x00", "\x80\x80\x80\x80\x10", "\xff\xff\xff\xff\x0f", "\x0d\x00\x01\x00",
};
/* clang-format on */
static const char grammar[] = "\0\x01\x02\x03\x05\x07\x0a\x0b\x0c\x0d\x60\x7f\x80\xff";
static const size_t long_runs[] = {127, 128, 16384};

const struct fuzz_target fuzz_target = {
    .name = "wasm",
    .counted = {"modules accepted", "refused"},
    .tokens = tokens,
    .n_tokens = ARRAY_SIZE(tokens),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .long_runs = long_runs,
    .n_long_runs = ARRAY_SIZE(long_runs),
    .iterations = 50000,
    .max_input = 65536,
};
