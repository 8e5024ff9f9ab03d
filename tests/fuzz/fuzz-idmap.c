/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for id maps as text: /proc/PID/uid_map read by idmap_parse (in_initial_userns
 * decides with it whether husk is root on the host), and maps formatted for writing there. A
 * map that parses is made of valid ranges and reads back the same once formatted again. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "idmap.h"
#include "util.h"

#define MAX_RANGES 340 /* what the kernel accepts in one map */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct id_range r[MAX_RANGES], again[MAX_RANGES];
    static struct sbx_idmap m[MAX_RANGES];
    static char text[MAX_RANGES * 33 + 1];
    size_t n = 0, n2 = 0;
    fuzz_set_input(data, size);
    int rc = idmap_parse((const char *)data, size, r, MAX_RANGES, &n);
    if (rc < 0) {
        fuzz_count(1); /* refused */
        fuzz_check(rc == -EINVAL || rc == -E2BIG);
        fuzz_set_input(NULL, 0);
        return 0;
    }
    fuzz_count(0); /* maps parsed */
    for (size_t i = 0; i < n; i++) {
        fuzz_check(r[i].count >= 1);
        fuzz_check((uint64_t)r[i].inner + r[i].count <= (uint64_t)UINT32_MAX + 1);
        fuzz_check((uint64_t)r[i].outer + r[i].count <= (uint64_t)UINT32_MAX + 1);
        m[i] = (struct sbx_idmap){r[i].inner, r[i].outer, r[i].count};
    }
    int len = sbx_idmap_format(m, n, text, sizeof(text));
    fuzz_check(len >= 0 && (size_t)len < sizeof(text));
    fuzz_check(idmap_parse(text, (size_t)len, again, MAX_RANGES, &n2) == 0 && n2 == n);
    fuzz_check(memcmp(r, again, n * sizeof(*r)) == 0);
    fuzz_set_input(NULL, 0);
    return 0;
}

/* clang-format off */
static const char *const tokens[] = {
    "         0          0 4294967295\n", "0 100000 65536\n", "1000 1000 1\n", " ", "\t", "\n",
    "4294967295", "4294967296", "0", "65536", "-1", "+1", "0x10",
};
/* clang-format on */
static const char grammar[] = " \t\n0123456789-+";
static const size_t long_runs[] = {64, 1000};

const struct fuzz_target fuzz_target = {
    .name = "idmap",
    .counted = {"maps parsed", "refused"},
    .tokens = tokens,
    .n_tokens = ARRAY_SIZE(tokens),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .long_runs = long_runs,
    .n_long_runs = ARRAY_SIZE(long_runs),
    .iterations = 20000,
    .max_input = 16384,
};
