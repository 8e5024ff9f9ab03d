/* SPDX-License-Identifier: Apache-2.0 */
/* state.json: save/load round trip, the runtime-spec state document, corrupt files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci.h"
#include "fixture.h"
#include "util.h"

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (h_ == NULL || strstr(h_, (needle)) == NULL)                                            \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle));              \
    } while (0)

static int
setup(void **state)
{
    return fx_new(state, "state", false);
}

static int
teardown(void **state)
{
    return fx_free(state);
}

static void
put_state(struct fx *fx, const char *text)
{
    assert_int_equal(write_file_atomic(fx->dirfd, "state.json", text, strlen(text)), 0);
}

static char *
load_fail(struct fx *fx, const char *id)
{
    struct oci_state *s = NULL;
    struct husk_error *err = NULL;

    if (oci_state_load(fx->dirfd, id, &s, &err) >= 0) {
        oci_state_free(s);
        fail_msg("state loaded, expected an error");
    }
    assert_null(s);
    char *msg = husk_error_string(err);
    husk_error_free(err);
    return msg;
}

static void
test_round_trip_every_field(void **state)
{
    struct fx *fx = *state;
    cleanup_json json_t *ann = json_pack("{s:s, s:s}", "org.example/a", "1", "b", "two words");
    struct oci_state in = {
        .id = "web-1",
        .pid = 4242,
        .start_time = 123456789012ULL,
        .bundle = "/srv/bundles/web",
        .rootfs = "/srv/bundles/web/rootfs",
        .created = "2024-05-01T10:20:30.123456789Z",
        .owner = "alice",
        .annotations = ann,
    };
    struct oci_state *out = NULL;
    struct husk_error *err = NULL;

    assert_int_equal(oci_state_save(fx->dirfd, &in, &err), 0);
    assert_null(err);
    assert_int_equal(oci_state_load(fx->dirfd, "web-1", &out, &err), 0);
    assert_string_equal(out->id, in.id);
    assert_int_equal(out->pid, in.pid);
    assert_true(out->start_time == in.start_time);
    assert_string_equal(out->bundle, in.bundle);
    assert_string_equal(out->rootfs, in.rootfs);
    assert_string_equal(out->created, in.created);
    assert_string_equal(out->owner, in.owner);
    assert_true(json_equal(out->annotations, ann));
    oci_state_free(out);

    /* Saved atomically: nothing but state.json is left in the directory. */
    struct stat st;
    assert_int_equal(fstatat(fx->dirfd, "state.json", &st, 0), 0);
    assert_int_equal(fstatat(fx->dirfd, "state.json.tmp", &st, 0), -1);
}

static void
test_save_replaces_previous_state(void **state)
{
    struct fx *fx = *state;
    struct oci_state a = {.id = "c", .pid = 1, .bundle = "/a", .created = "t1"};
    struct oci_state b = {.id = "c", .pid = 2, .bundle = "/b", .created = "t2"};
    struct oci_state *out = NULL;
    struct husk_error *err = NULL;
    cleanup_json json_t *ann = json_object();

    a.annotations = b.annotations = ann;
    assert_int_equal(oci_state_save(fx->dirfd, &a, &err), 0);
    assert_int_equal(oci_state_save(fx->dirfd, &b, &err), 0);
    assert_int_equal(oci_state_load(fx->dirfd, "c", &out, &err), 0);
    assert_int_equal(out->pid, 2);
    assert_string_equal(out->bundle, "/b");
    oci_state_free(out);
}

static void
test_round_trip_of_optional_fields(void **state)
{
    struct fx *fx = *state;
    struct oci_state in = {.id = "min", .pid = 7, .bundle = "/b", .created = "now"};
    struct oci_state *out = NULL;
    struct husk_error *err = NULL;

    /* No rootfs, owner or annotations: they load as empty, never NULL. (No leak either.) */
    assert_int_equal(oci_state_save(fx->dirfd, &in, &err), 0);
    assert_int_equal(oci_state_load(fx->dirfd, "min", &out, &err), 0);
    assert_string_equal(out->rootfs, "");
    assert_string_equal(out->owner, "");
    assert_non_null(out->annotations);
    assert_int_equal(json_object_size(out->annotations), 0);
    assert_true(out->start_time == 0);
    oci_state_free(out);
}

static void
test_save_error_names_container(void **state)
{
    struct oci_state in = {.id = "web", .pid = 1, .bundle = "/b", .created = "now"};
    struct husk_error *err = NULL;
    cleanup_json json_t *ann = json_object();

    in.annotations = ann;
    assert_int_equal(oci_state_save(-1, &in, &err), -EBADF);
    cleanup_free char *s = husk_error_string(err);
    husk_error_free(err);
    assert_contains(s, "'web'");
}

static void
test_missing_state_names_container(void **state)
{
    cleanup_free char *s = load_fail(*state, "web");
    assert_contains(s, "container 'web'");
    assert_contains(s, strerror(ENOENT));
}

static void
test_corrupt_state_names_container(void **state)
{
    struct fx *fx = *state;

    put_state(fx, "{\"id\": \"web\", \"pid\": 12");
    cleanup_free char *s = load_fail(fx, "web");
    assert_contains(s, "container 'web'");
    assert_contains(s, "corrupt");

    put_state(fx, "");
    cleanup_free char *e = load_fail(fx, "web");
    assert_contains(e, "container 'web'");
}

static void
test_state_with_wrong_fields_names_container_and_field(void **state)
{
    struct fx *fx = *state;

    put_state(fx, "{\"id\": \"web\", \"pid\": 12, \"start_time\": 5, \"created\": \"now\"}");
    cleanup_free char *s = load_fail(fx, "web");
    assert_contains(s, "container 'web'");
    assert_contains(s, "'bundle'");

    put_state(fx, "{\"id\": \"web\", \"pid\": -3, \"start_time\": 5, \"bundle\": \"/b\","
                  " \"created\": \"now\"}");
    cleanup_free char *p = load_fail(fx, "web");
    assert_contains(p, "container 'web'");
    assert_contains(p, "'pid'");

    put_state(fx, "[1, 2]");
    cleanup_free char *a = load_fail(fx, "web");
    assert_contains(a, "container 'web'");
}

static void
test_state_json_running(void **state)
{
    cleanup_json json_t *ann = json_pack("{s:s}", "k", "v");
    struct oci_state s = {.id = "web",
                          .pid = 4242,
                          .bundle = "/b",
                          .rootfs = "/b/rootfs",
                          .created = "2024-05-01T10:20:30Z",
                          .owner = "root",
                          .annotations = ann};
    cleanup_json json_t *j = oci_state_json(&s, "running");

    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "ociVersion")), OCI_VERSION);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "web");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "running");
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), 4242);
    assert_string_equal(json_string_value(json_object_get(j, "bundle")), "/b");
    assert_string_equal(json_string_value(json_object_get(j, "rootfs")), "/b/rootfs");
    assert_string_equal(json_string_value(json_object_get(j, "created")), "2024-05-01T10:20:30Z");
    assert_string_equal(json_string_value(json_object_get(j, "owner")), "root");
    assert_true(json_equal(json_object_get(j, "annotations"), ann));
    /* Internal bookkeeping stays internal. */
    assert_null(json_object_get(j, "start_time"));
}

static void
test_state_json_stopped_has_pid_zero(void **state)
{
    cleanup_json json_t *ann = json_object();
    struct oci_state s = {
        .id = "web", .pid = 4242, .bundle = "/b", .created = "now", .annotations = ann};
    cleanup_json json_t *j = oci_state_json(&s, "stopped");
    cleanup_json json_t *c = oci_state_json(&s, "created");

    assert_string_equal(json_string_value(json_object_get(j, "status")), "stopped");
    assert_true(json_is_integer(json_object_get(j, "pid")));
    assert_int_equal(json_integer_value(json_object_get(j, "pid")), 0);
    /* Empty annotations are left out, as runc does. */
    assert_null(json_object_get(j, "annotations"));
    assert_int_equal(json_integer_value(json_object_get(c, "pid")), 4242);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip_every_field),
        T(test_save_replaces_previous_state),
        T(test_round_trip_of_optional_fields),
        T(test_save_error_names_container),
        T(test_missing_state_names_container),
        T(test_corrupt_state_names_container),
        T(test_state_with_wrong_fields_names_container_and_field),
        T(test_state_json_running),
        T(test_state_json_stopped_has_pid_zero),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
