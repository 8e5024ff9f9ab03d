/* SPDX-License-Identifier: Apache-2.0 */
/* OCI mount options: flag names set and clear MS_* bits, propagation, the rest is fs data. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include <cmocka.h>

#include "oci.h"
#include "util.h"

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (h_ == NULL || strstr(h_, (needle)) == NULL)                                            \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle));              \
    } while (0)

/* Apply a JSON array of options (single quotes for readability) to m. */
static int
apply(const char *opts, struct sbx_mount *m, struct husk_error **err)
{
    cleanup_free char *t = xstrdup(opts);
    json_error_t je;

    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_t *j = json_loads(t, 0, &je);
    if (j == NULL)
        fail_msg("bad test JSON: %s", je.text);
    int r = oci_mount_options(j, "mounts[2].options", m, err);
    json_decref(j);
    return r;
}

static struct sbx_mount
apply_ok(const char *opts)
{
    struct sbx_mount m = {0};
    struct husk_error *err = NULL;

    if (apply(opts, &m, &err) < 0) {
        cleanup_free char *s = husk_error_string(err);
        husk_error_free(err);
        fail_msg("options %s rejected: %s", opts, s);
    }
    return m;
}

static void
test_each_set_and_clear_option(void **state)
{
    static const struct {
        const char *set, *clear;
        unsigned long flag;
    } pairs[] = {
        {"ro", "rw", MS_RDONLY},
        {"nosuid", "suid", MS_NOSUID},
        {"nodev", "dev", MS_NODEV},
        {"noexec", "exec", MS_NOEXEC},
        {"sync", "async", MS_SYNCHRONOUS},
        {"mand", "nomand", MS_MANDLOCK},
        {"noatime", "atime", MS_NOATIME},
        {"nodiratime", "diratime", MS_NODIRATIME},
        {"relatime", "norelatime", MS_RELATIME},
        {"strictatime", "nostrictatime", MS_STRICTATIME},
        {"lazytime", "nolazytime", MS_LAZYTIME},
        {"iversion", "noiversion", MS_I_VERSION},
        {"silent", "loud", MS_SILENT},
    };

    for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
        cleanup_free char *set = xasprintf("['%s']", pairs[i].set);
        cleanup_free char *clear = xasprintf("['%s']", pairs[i].clear);
        cleanup_free char *set_clear = xasprintf("['%s', '%s']", pairs[i].set, pairs[i].clear);
        cleanup_free char *clear_set = xasprintf("['%s', '%s']", pairs[i].clear, pairs[i].set);

        struct sbx_mount m = apply_ok(set);
        if (m.flags != pairs[i].flag || m.clear != 0 || m.data != NULL)
            fail_msg("'%s': flags %#lx clear %#lx", pairs[i].set, m.flags, m.clear);
        m = apply_ok(clear);
        if (m.flags != 0 || m.clear != pairs[i].flag || m.data != NULL)
            fail_msg("'%s': flags %#lx clear %#lx", pairs[i].clear, m.flags, m.clear);
        /* The last word wins, and only one of flags/clear holds the bit. */
        m = apply_ok(set_clear);
        if (m.flags != 0 || m.clear != pairs[i].flag)
            fail_msg("%s: flags %#lx clear %#lx", set_clear, m.flags, m.clear);
        m = apply_ok(clear_set);
        if (m.flags != pairs[i].flag || m.clear != 0)
            fail_msg("%s: flags %#lx clear %#lx", clear_set, m.flags, m.clear);
    }
}

static void
test_combined_flags(void **state)
{
    struct sbx_mount m = apply_ok("['nosuid', 'noexec', 'nodev', 'ro', 'relatime']");

    assert_true(m.flags == (MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY | MS_RELATIME));
    assert_true(m.clear == 0);
    assert_null(m.data);
}

static void
test_bind_and_rbind(void **state)
{
    struct sbx_mount m = apply_ok("['rbind']");
    assert_true(m.flags == (MS_BIND | MS_REC));
    m = apply_ok("['bind']");
    assert_true(m.flags == MS_BIND);
    m = apply_ok("['bind', 'ro', 'remount']");
    assert_true(m.flags == (MS_BIND | MS_RDONLY | MS_REMOUNT));
    m = apply_ok("['dirsync']");
    assert_true(m.flags == MS_DIRSYNC);
}

static void
test_propagation_options(void **state)
{
    static const struct {
        const char *name;
        unsigned long prop;
    } cases[] = {
        {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
        {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
        {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
        {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *opts = xasprintf("['%s']", cases[i].name);
        struct sbx_mount m = apply_ok(opts);
        /* Propagation is a separate mount(2) call: it must not leak into the mount flags. */
        if (m.propagation != cases[i].prop || m.flags != 0 || m.data != NULL)
            fail_msg("'%s': propagation %#lx flags %#lx", cases[i].name, m.propagation, m.flags);
    }
    struct sbx_mount m = apply_ok("['rbind', 'rshared', 'rslave']");
    assert_true(m.propagation == (MS_SLAVE | MS_REC));
    assert_true(m.flags == (MS_BIND | MS_REC));
}

static void
test_unknown_options_become_data_in_order(void **state)
{
    struct sbx_mount m =
        apply_ok("['nosuid', 'mode=755', 'strictatime', 'size=65536k', 'rprivate', 'uid=5']");

    assert_string_equal(m.data, "mode=755,size=65536k,uid=5");
    assert_true(m.flags == (MS_NOSUID | MS_STRICTATIME));
    assert_true(m.propagation == (MS_PRIVATE | MS_REC));
    free(m.data);

    m = apply_ok("['newinstance']");
    assert_string_equal(m.data, "newinstance");
    free(m.data);
}

static void
test_defaults_and_tmpcopyup_are_no_ops(void **state)
{
    struct sbx_mount m = apply_ok("['defaults', 'tmpcopyup']");

    assert_true(m.flags == 0 && m.clear == 0 && m.propagation == 0);
    assert_null(m.data); /* not handed to the filesystem either */
}

static void
test_empty_options(void **state)
{
    struct sbx_mount m = apply_ok("[]");

    assert_true(m.flags == 0 && m.clear == 0 && m.propagation == 0);
    assert_null(m.data);
}

static void
test_flags_accumulate_and_data_is_replaced(void **state)
{
    struct sbx_mount m = {.flags = MS_NOSUID, .data = xstrdup("stale=1")};
    struct husk_error *err = NULL;

    assert_int_equal(apply("['ro', 'size=1m']", &m, &err), 0);
    assert_true(m.flags == (MS_NOSUID | MS_RDONLY));
    assert_string_equal(m.data, "size=1m"); /* the old string is freed, not leaked */
    free(m.data);
}

static void
test_option_names_are_exact(void **state)
{
    /* Case and prefixes matter: "RO" or "r" are filesystem data, not MS_RDONLY. */
    struct sbx_mount m = apply_ok("['RO', 'r', 'nosuidx']");

    assert_true(m.flags == 0);
    assert_string_equal(m.data, "RO,r,nosuidx");
    free(m.data);
}

static void
test_non_string_option_is_an_error(void **state)
{
    struct sbx_mount m = {0};
    struct husk_error *err = NULL;

    assert_int_equal(apply("['nosuid', 'mode=755', 755]", &m, &err), -EINVAL);
    assert_non_null(err);
    assert_contains(err->msg, "mounts[2].options[2]");
    assert_contains(err->msg, "expected a string");
    assert_null(m.data); /* and the partial data is not leaked */
    husk_error_free(err);

    err = NULL;
    assert_true(apply("[null]", &m, &err) < 0);
    assert_contains(err->msg, "mounts[2].options[0]");
    husk_error_free(err);

    err = NULL;
    assert_true(apply("[['ro']]", &m, &err) < 0);
    husk_error_free(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_set_and_clear_option),
        cmocka_unit_test(test_combined_flags),
        cmocka_unit_test(test_bind_and_rbind),
        cmocka_unit_test(test_propagation_options),
        cmocka_unit_test(test_unknown_options_become_data_in_order),
        cmocka_unit_test(test_defaults_and_tmpcopyup_are_no_ops),
        cmocka_unit_test(test_empty_options),
        cmocka_unit_test(test_flags_accumulate_and_data_is_replaced),
        cmocka_unit_test(test_option_names_are_exact),
        cmocka_unit_test(test_non_string_option_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
