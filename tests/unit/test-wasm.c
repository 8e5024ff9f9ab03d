/* SPDX-License-Identifier: Apache-2.0 */
/* The WebAssembly module check of a wasm deploy (wasm-module.c): what it accepts, and the
 * message that names each problem it refuses. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "faas-internal.h"
#include "util.h"

struct mod {
    uint8_t p[512];
    size_t len;
};

static void
put(struct mod *m, const void *p, size_t n)
{
    assert_true(m->len + n <= sizeof(m->p));
    memcpy(m->p + m->len, p, n);
    m->len += n;
}

/* A section: its id, a one-byte size and the content. */
static void
section(struct mod *m, uint8_t id, const char *content, size_t n)
{
    uint8_t head[2] = {id, (uint8_t)n};
    assert_true(n < 128);
    put(m, head, 2);
    put(m, content, n);
}

#define SECTION(m, id, lit) section(m, id, lit, sizeof(lit) - 1)
#define TYPE                "\x01\x60\x00\x00"
#define FUNCTION            "\x01\x00"
#define MEMORY              "\x01\x00\x02"
#define EXPORTS             "\x02\x06_start\x00\x00\x06memory\x02\x00"
#define CODE                "\x01\x02\x00\x0b"
#define WASI_IMPORT         "\x01\x16wasi_snapshot_preview1\x09proc_exit\x00\x00"

/* A WASI command: one function, exported as _start, and an exported memory of 2 pages. */
static struct mod
command(bool with_import)
{
    struct mod m = {.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 0, "\x04name"); /* a custom section may come anywhere */
    SECTION(&m, 1, TYPE);
    if (with_import)
        SECTION(&m, 2, WASI_IMPORT);
    SECTION(&m, 3, FUNCTION);
    SECTION(&m, 5, MEMORY);
    SECTION(&m, 7, EXPORTS);
    SECTION(&m, 10, CODE);
    return m;
}

static void
expect(const struct mod *m, const char *why_part)
{
    struct faas_wasm_info info;
    char why[256] = "";
    int r = faas_wasm_module_check(m->p, m->len, &info, why, sizeof(why));
    if (why_part == NULL) {
        assert_int_equal(r, 0);
        return;
    }
    assert_int_equal(r, -1);
    if (strstr(why, why_part) == NULL)
        fail_msg("'%s' does not say '%s'", why, why_part);
}

static void
test_a_command_passes(void **state)
{
    struct faas_wasm_info info;
    char why[256];
    struct mod m = command(true);
    assert_int_equal(faas_wasm_module_check(m.p, m.len, &info, why, sizeof(why)), 0);
    assert_int_equal(info.min_pages, 2);
    assert_int_equal(info.n_imports, 1);
    assert_true(info.has_start && info.has_memory && info.exports_memory);
    m = command(false);
    expect(&m, NULL);
}

static void
test_framing_errors_are_named(void **state)
{
    struct mod m = command(false);
    m.p[0] = 'X';
    expect(&m, "no \\0asm magic number");
    m = command(false);
    m.p[4] = 2;
    expect(&m, "version 2 is not supported");
    m = command(false);
    memcpy(m.p + 4, "\x0d\x00\x01\x00", 4);
    expect(&m, "a WebAssembly component");
    m = command(false);
    m.len -= 2; /* the code section is cut short */
    expect(&m, "runs past the end of the file");
    m = (struct mod){.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 3, FUNCTION);
    SECTION(&m, 1, TYPE);
    expect(&m, "section 1 at byte 12 is out of order");
    m = (struct mod){.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 42, "");
    expect(&m, "section id 42 at byte 8 is not known");
    m = (struct mod){.len = 0};
    put(&m, "\0asm\x01\0\0\0\x01\xff\xff\xff\xff\xff\x01", 15);
    expect(&m, "not a valid 32-bit LEB128");
    m = (struct mod){.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 5, MEMORY "\x00"); /* a byte past the memory's limits */
    expect(&m, "bytes left over");
}

static void
test_what_a_wasi_command_needs(void **state)
{
    struct mod m = {.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 2,
            "\x01\x03"
            "env\x06secret\x00\x00");
    expect(&m, "imports 'env'.'secret'");
    m = (struct mod){.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 5, MEMORY);
    SECTION(&m, 7, "\x01\x06memory\x02\x00");
    expect(&m, "no '_start' function");
    m = (struct mod){.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 7, "\x01\x06_start\x00\x00");
    expect(&m, "export its 'memory'");
    m = (struct mod){.len = 0};
    put(&m, "\0asm\x01\0\0\0", 8);
    SECTION(&m, 5, "\x01\x04\x01"); /* a 64-bit memory */
    expect(&m, "flags 0x4");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_command_passes),
        cmocka_unit_test(test_framing_errors_are_named),
        cmocka_unit_test(test_what_a_wasi_command_needs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
