/* SPDX-License-Identifier: Apache-2.0 */
/* The CLI's pure logic: container ids, signal names, table-driven flags, process start times. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "container.h"
#include "util.h"

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (h_ == NULL || strstr(h_, (needle)) == NULL)                                            \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle));              \
    } while (0)

/* ---- container ids ------------------------------------------------------------------------ */

static void
test_valid_ids(void **state)
{
    static const char *const ok[] = {"web", "a", "A1", "a-b_c.d+e", "..x", "x..", "0"};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        struct husk_error *err = NULL;
        if (cli_check_id(ok[i], &err) != 0) {
            husk_error_free(err);
            fail_msg("id '%s' rejected", ok[i]);
        }
        assert_null(err);
    }
    char long_id[1025];
    memset(long_id, 'a', 1024);
    long_id[1024] = '\0';
    assert_int_equal(cli_check_id(long_id, NULL), 0);
}

static void
test_invalid_ids_are_named(void **state)
{
    /* The id becomes a directory name under --root: nothing that can walk out of it. */
    static const char *const bad[] = {".",    "..",  "a/b", "../etc", "/abs", "a b",
                                      "a\nb", "a:b", "a*",  "é",      "a\\b"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct husk_error *err = NULL;
        if (cli_check_id(bad[i], &err) != -EINVAL) {
            husk_error_free(err);
            fail_msg("id '%s' accepted", bad[i]);
        }
        cleanup_free char *quoted = xasprintf("'%s'", bad[i]);
        assert_contains(err->msg, quoted);
        assert_int_equal(err->code, 0);
        husk_error_free(err);
    }
}

static void
test_empty_and_overlong_ids(void **state)
{
    struct husk_error *err = NULL;
    char long_id[1026];

    assert_int_equal(cli_check_id(NULL, &err), -EINVAL);
    assert_contains(err->msg, "required");
    husk_error_freep(&err);
    assert_int_equal(cli_check_id("", &err), -EINVAL);
    husk_error_freep(&err);
    memset(long_id, 'a', 1025);
    long_id[1025] = '\0';
    assert_int_equal(cli_check_id(long_id, &err), -EINVAL);
    husk_error_freep(&err);
}

/* ---- signals ------------------------------------------------------------------------------ */

static void
test_signal_names_and_numbers(void **state)
{
    static const struct {
        const char *s;
        int sig;
    } cases[] = {
        {"KILL", SIGKILL},
        {"SIGKILL", SIGKILL},
        {"kill", SIGKILL},
        {"sigkill", SIGKILL},
        {"9", SIGKILL},
        {"TERM", SIGTERM},
        {"SIGTERM", SIGTERM},
        {"15", SIGTERM},
        {"HUP", SIGHUP},
        {"INT", SIGINT},
        {"USR1", SIGUSR1},
        {"USR2", SIGUSR2},
        {"WINCH", SIGWINCH},
        {"CHLD", SIGCHLD},
        {"CONT", SIGCONT},
        {"STOP", SIGSTOP},
        {"PWR", SIGPWR},
        {"SYS", SIGSYS},
        {"1", 1},
        {"64", 64},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (parse_signal(cases[i].s) != cases[i].sig)
            fail_msg("parse_signal(\"%s\") = %d, want %d", cases[i].s, parse_signal(cases[i].s),
                     cases[i].sig);
}

static void
test_realtime_signals(void **state)
{
    assert_int_equal(parse_signal("RTMIN"), SIGRTMIN);
    assert_int_equal(parse_signal("RTMIN+3"), SIGRTMIN + 3);
    assert_int_equal(parse_signal("SIGRTMIN+3"), SIGRTMIN + 3);
    assert_int_equal(parse_signal("sigrtmin+1"), SIGRTMIN + 1);
    assert_int_equal(parse_signal("RTMAX"), SIGRTMAX);
    assert_int_equal(parse_signal("RTMAX-1"), SIGRTMAX - 1);
    assert_int_equal(parse_signal("SIGRTMAX-2"), SIGRTMAX - 2);
    assert_int_equal(parse_signal("RTMIN+0"), SIGRTMIN);
    /* The whole real-time range and no further. */
    cleanup_free char *top = xasprintf("RTMIN+%d", SIGRTMAX - SIGRTMIN);
    cleanup_free char *over = xasprintf("RTMIN+%d", SIGRTMAX - SIGRTMIN + 1);
    assert_int_equal(parse_signal(top), SIGRTMAX);
    assert_int_equal(parse_signal(over), -1);
    assert_int_equal(parse_signal("RTMIN-1"), -1);
    assert_int_equal(parse_signal("RTMAX+1"), -1);
}

static void
test_bad_signals(void **state)
{
    static const char *const bad[] = {
        "",       "SIG",    "BOGUS",   "SIGBOGUS", "0",      "-9",    "65", "999",
        "RTMINX", "RTMIN+", "RTMIN+x", "RTMIN3",   "RTMAX-", "KILL9", "9x", "SIGSIGKILL",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (parse_signal(bad[i]) != -1)
            fail_msg("parse_signal(\"%s\") = %d, want -1", bad[i], parse_signal(bad[i]));
}

/* ---- flags -------------------------------------------------------------------------------- */

struct opts {
    bool detach;
    bool all;
    const char *bundle;
    const char *pid_file;
    int preserve_fds;
    struct strlist env;
};

static const struct flag flags[] = {
    {"detach", 'd', FLAG_BOOL, offsetof(struct opts, detach), "detach"},
    {"all", 'a', FLAG_BOOL, offsetof(struct opts, all), "all"},
    {"bundle", 'b', FLAG_STRING, offsetof(struct opts, bundle), "bundle"},
    {"pid-file", 0, FLAG_STRING, offsetof(struct opts, pid_file), "pid file"},
    {"preserve-fds", 0, FLAG_INT, offsetof(struct opts, preserve_fds), "fds"},
    {"env", 'e', FLAG_STRINGS, offsetof(struct opts, env), "env"},
};

static const struct verb verb = {"test", "[options] ID", "a verb for tests", NULL};

/* argv given as one space-separated string; returns cli_parse_flags' result. */
static int
parse(struct opts *o, const char *line, char ***argv_out)
{
    char **argv = xcalloc(32, sizeof(char *));
    int argc = 0;
    cleanup_free char *copy = xstrdup(line);
    char *save = NULL;

    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
        argv[argc++] = xstrdup(t);
    memset(o, 0, sizeof(*o));
    int r = cli_parse_flags(&verb, flags, ARRAY_SIZE(flags), o, argc, argv);
    *argv_out = argv;
    return r;
}

static void
opts_free(struct opts *o, char **argv)
{
    free(o->env.v);
    strv_freep(&argv);
}

#define PARSE(o, line, want)                                                                       \
    do {                                                                                           \
        int r_ = parse(&(o), (line), &argv);                                                       \
        if (r_ != (want)) {                                                                        \
            opts_free(&(o), argv);                                                                 \
            fail_msg("\"%s\": got %d, want %d", (line), r_, (want));                               \
        }                                                                                          \
    } while (0)

static void
test_long_flag_with_separate_value(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--bundle /srv/b --pid-file /run/p web", 4);
    assert_string_equal(o.bundle, "/srv/b");
    assert_string_equal(o.pid_file, "/run/p");
    assert_string_equal(argv[4], "web");
    opts_free(&o, argv);
}

static void
test_long_flag_with_equals(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--bundle=/srv/b=x --preserve-fds=3 web", 2);
    assert_string_equal(o.bundle, "/srv/b=x"); /* only the first '=' splits */
    assert_int_equal(o.preserve_fds, 3);
    opts_free(&o, argv);
    PARSE(o, "--bundle= web", 1);
    assert_string_equal(o.bundle, "");
    opts_free(&o, argv);
}

static void
test_single_dash_long_flag(void **state)
{
    struct opts o;
    char **argv;

    /* runc (urfave/cli) takes -bundle as --bundle. */
    PARSE(o, "-bundle /srv/b -detach web", 3);
    assert_string_equal(o.bundle, "/srv/b");
    assert_true(o.detach);
    opts_free(&o, argv);
}

static void
test_short_flags(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "-b /srv/b -d -a web", 4);
    assert_string_equal(o.bundle, "/srv/b");
    assert_true(o.detach);
    assert_true(o.all);
    opts_free(&o, argv);
    PARSE(o, "-b=/srv/c web", 1);
    assert_string_equal(o.bundle, "/srv/c");
    opts_free(&o, argv);
}

static void
test_bool_values(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--detach=true web", 1);
    assert_true(o.detach);
    opts_free(&o, argv);
    PARSE(o, "--detach=false web", 1);
    assert_false(o.detach);
    opts_free(&o, argv);
    PARSE(o, "--detach=1 --all=0 web", 2);
    assert_true(o.detach);
    assert_false(o.all);
    opts_free(&o, argv);
    /* A bool never eats the next word. */
    PARSE(o, "--detach web", 1);
    assert_true(o.detach);
    opts_free(&o, argv);
}

static void
test_malformed_bool_is_rejected(void **state)
{
    struct opts o;
    char **argv;

    /* As for --preserve-fds=x: a value that is not a boolean is reported, not read as false. */
    PARSE(o, "--detach=yes web", -1);
    opts_free(&o, argv);
    PARSE(o, "--detach=ture web", -1);
    opts_free(&o, argv);
}

static void
test_repeatable_flag(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--env A=1 -e B=2 --env=C=3 web", 5);
    assert_int_equal(o.env.n, 3);
    assert_string_equal(o.env.v[0], "A=1");
    assert_string_equal(o.env.v[1], "B=2");
    assert_string_equal(o.env.v[2], "C=3");
    assert_null(o.env.v[3]);
    opts_free(&o, argv);
}

static void
test_int_flag_range(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--preserve-fds -1 web", 2);
    assert_int_equal(o.preserve_fds, -1);
    opts_free(&o, argv);
    PARSE(o, "--preserve-fds x web", -1);
    opts_free(&o, argv);
    PARSE(o, "--preserve-fds 99999999999 web", -1);
    opts_free(&o, argv);
    PARSE(o, "--preserve-fds 3x web", -1);
    opts_free(&o, argv);
}

static void
test_unknown_flags(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--bogus web", -1);
    opts_free(&o, argv);
    PARSE(o, "-x web", -1);
    opts_free(&o, argv);
    /* Names match exactly: no prefixes, and --b is not -b. */
    PARSE(o, "--bund /srv/b web", -1);
    opts_free(&o, argv);
    PARSE(o, "--b /srv/b web", -1);
    opts_free(&o, argv);
    PARSE(o, "--bundlex /srv/b web", -1);
    opts_free(&o, argv);
}

static void
test_missing_value(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--bundle", -1);
    opts_free(&o, argv);
    PARSE(o, "web -d --preserve-fds", 0); /* flags after the id are not ours */
    opts_free(&o, argv);
}

static void
test_help(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "--help", -2);
    opts_free(&o, argv);
    PARSE(o, "-d -h web", -2);
    opts_free(&o, argv);
}

static void
test_positional_boundaries(void **state)
{
    struct opts o;
    char **argv;

    PARSE(o, "", 0);
    opts_free(&o, argv);
    PARSE(o, "web --detach", 0); /* stops at the first positional */
    assert_false(o.detach);
    opts_free(&o, argv);
    PARSE(o, "-d -- --not-a-flag", 2); /* "--" ends the flags */
    assert_true(o.detach);
    assert_string_equal(argv[2], "--not-a-flag");
    opts_free(&o, argv);
    PARSE(o, "-d - x", 1); /* a lone "-" is an argument (stdin) */
    opts_free(&o, argv);
}

/* ---- process start time ------------------------------------------------------------------- */

static void
test_proc_start_time(void **state)
{
    unsigned long long self = proc_start_time(getpid());

    assert_true(self > 0);
    assert_true(proc_start_time(getpid()) == self); /* stable: it guards against pid reuse */
    assert_true(proc_start_time(0) == 0);
    assert_true(proc_start_time(-1) == 0);

    /* A zombie counts as gone. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    assert_true(proc_start_time(pid) == 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_true(proc_start_time(pid) == 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_ids),
        cmocka_unit_test(test_invalid_ids_are_named),
        cmocka_unit_test(test_empty_and_overlong_ids),
        cmocka_unit_test(test_signal_names_and_numbers),
        cmocka_unit_test(test_realtime_signals),
        cmocka_unit_test(test_bad_signals),
        cmocka_unit_test(test_long_flag_with_separate_value),
        cmocka_unit_test(test_long_flag_with_equals),
        cmocka_unit_test(test_single_dash_long_flag),
        cmocka_unit_test(test_short_flags),
        cmocka_unit_test(test_bool_values),
        cmocka_unit_test(test_malformed_bool_is_rejected),
        cmocka_unit_test(test_repeatable_flag),
        cmocka_unit_test(test_int_flag_range),
        cmocka_unit_test(test_unknown_flags),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_positional_boundaries),
        cmocka_unit_test(test_proc_start_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
