/* SPDX-License-Identifier: Apache-2.0 */
/* Error objects: creation, first error wins, context prefixes, the one-line rendering. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "husk/error.h"
#include "util.h"

static void
test_err_sets_code_and_message(void **state)
{
    struct husk_error *err = NULL;

    assert_int_equal(husk_err(&err, ENOENT, "open '%s'", "/x"), -ENOENT);
    assert_non_null(err);
    assert_int_equal(err->code, ENOENT);
    assert_string_equal(err->msg, "open '/x'");
    husk_error_free(err);
}

static void
test_err_user_mistake_has_no_errno(void **state)
{
    struct husk_error *err = NULL;

    /* A user's mistake (errnum 0) still fails the caller, as -EINVAL. */
    assert_int_equal(husk_err(&err, 0, "config.json: field '%s': is required", "process"), -EINVAL);
    assert_int_equal(err->code, 0);
    cleanup_free char *s = husk_error_string(err);
    assert_string_equal(s, "config.json: field 'process': is required");
    husk_error_free(err);
}

static void
test_err_without_object_still_returns_code(void **state)
{
    assert_int_equal(husk_err(NULL, EACCES, "open '%s'", "/x"), -EACCES);
    assert_int_equal(husk_err(NULL, 0, "bad"), -EINVAL);
}

static void
test_first_error_wins(void **state)
{
    struct husk_error *err = NULL;

    husk_err(&err, ENOENT, "first");
    /* A later failure on the unwind path must not hide the root cause. */
    assert_int_equal(husk_err(&err, EIO, "second"), -EIO);
    assert_int_equal(err->code, ENOENT);
    assert_string_equal(err->msg, "first");
    husk_error_free(err);
}

static void
test_prefix_adds_context_outermost_first(void **state)
{
    struct husk_error *err = NULL;

    husk_err(&err, ENOENT, "open_tree(fd %d)", 7);
    assert_int_equal(husk_err_prefix(&err, "mount '%s': ", "/data"), -ENOENT);
    assert_int_equal(husk_err_prefix(&err, "container '%s': ", "web"), -ENOENT);
    assert_string_equal(err->msg, "container 'web': mount '/data': open_tree(fd 7)");
    assert_int_equal(err->code, ENOENT);
    husk_error_free(err);
}

static void
test_prefix_on_user_error_returns_einval(void **state)
{
    struct husk_error *err = NULL;

    husk_err(&err, 0, "bad id");
    assert_int_equal(husk_err_prefix(&err, "create: "), -EINVAL);
    assert_string_equal(err->msg, "create: bad id");
    husk_error_free(err);
}

static void
test_prefix_without_error_is_harmless(void **state)
{
    struct husk_error *err = NULL;

    assert_int_equal(husk_err_prefix(&err, "container '%s': ", "web"), -EINVAL);
    assert_null(err);
    assert_int_equal(husk_err_prefix(NULL, "x"), -EINVAL);
}

static void
test_string_appends_strerror(void **state)
{
    struct husk_error *err = NULL;

    husk_err(&err, ENOENT, "open '%s'", "/etc/none");
    cleanup_free char *s = husk_error_string(err);
    cleanup_free char *want = xasprintf("open '/etc/none': %s", strerror(ENOENT));
    assert_string_equal(s, want);
    husk_error_free(err);
}

static void
test_string_of_null(void **state)
{
    cleanup_free char *s = husk_error_string(NULL);
    assert_string_equal(s, "unknown error");
}

static void
test_message_is_not_a_format_string(void **state)
{
    struct husk_error *err = NULL;

    /* User input that looks like a format must survive both creation and prefixing. */
    husk_err(&err, 0, "%s", "id '%n%s%d'");
    husk_err_prefix(&err, "%s", "a%sb: ");
    assert_string_equal(err->msg, "a%sb: id '%n%s%d'");
    husk_error_free(err);
}

static void
test_free_null_and_freep(void **state)
{
    struct husk_error *err = NULL;

    husk_error_free(NULL);
    husk_error_freep(&err);
    husk_err(&err, EIO, "x");
    husk_error_freep(&err);
    assert_null(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_sets_code_and_message),
        cmocka_unit_test(test_err_user_mistake_has_no_errno),
        cmocka_unit_test(test_err_without_object_still_returns_code),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_prefix_adds_context_outermost_first),
        cmocka_unit_test(test_prefix_on_user_error_returns_einval),
        cmocka_unit_test(test_prefix_without_error_is_harmless),
        cmocka_unit_test(test_string_appends_strerror),
        cmocka_unit_test(test_string_of_null),
        cmocka_unit_test(test_message_is_not_a_format_string),
        cmocka_unit_test(test_free_null_and_freep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
