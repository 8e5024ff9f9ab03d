/* SPDX-License-Identifier: Apache-2.0 */
/* `husk spec`: the default config parses back, and is as strict as promised (rootless too). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci.h"
#include "fixture.h"
#include "util.h"

static int
setup(void **state)
{
    return fx_new(state, "spec", true);
}

static int
teardown(void **state)
{
    return fx_free(state);
}

/* As `husk spec` then `husk create` would: write BUNDLE/config.json and load it back. */
static struct oci_config *
write_and_load(struct fx *fx, bool rootless)
{
    cleanup_json json_t *spec = oci_spec_default(rootless);
    cleanup_free char *path = xasprintf("%s/config.json", fx->bundle);
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;

    assert_non_null(spec);
    assert_int_equal(json_dump_file(spec, path, JSON_INDENT(2)), 0);
    if (oci_config_load(fx->bundle, &c, &err) < 0) {
        cleanup_free char *s = husk_error_string(err);
        husk_error_free(err);
        fail_msg("default spec (rootless=%d) rejected: %s", rootless, s);
    }
    return c;
}

static bool
strv_has(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static const struct sbx_mount *
find_mount(const struct sbx_config *s, const char *dst)
{
    for (size_t i = 0; i < s->n_mounts; i++)
        if (strcmp(s->mounts[i].destination, dst) == 0)
            return &s->mounts[i];
    fail_msg("no mount on '%s'", dst);
    return NULL;
}

static void
test_default_parses_through_oci_config_parse(void **state)
{
    struct fx *fx = *state;
    json_t *spec = oci_spec_default(false);
    cleanup_free char *path = xasprintf("%s/config.json", fx->bundle);
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;

    int r = oci_config_parse(spec, path, fx->bundle, &c, &err);
    json_decref(spec);
    if (r < 0) {
        cleanup_free char *s = husk_error_string(err);
        husk_error_free(err);
        fail_msg("default spec rejected: %s", s);
    }
    assert_string_equal(c->oci_version, OCI_VERSION);
    oci_config_free(c);
}

static void
test_default_is_strict(void **state)
{
    struct oci_config *c = write_and_load(*state, false);
    const struct sbx_config *s = c->sbx;

    assert_true(s->process.no_new_privs);
    assert_true(s->rootfs_readonly);
    assert_false(c->terminal); /* `husk run` from a script must not need a tty */
    for (int t = 0; t < SBX_NS_COUNT; t++) {
        bool want = t != SBX_NS_USER && t != SBX_NS_TIME;
        if (s->ns[t].enabled != want)
            fail_msg("namespace %s: enabled=%d", sbx_ns_name(t), s->ns[t].enabled);
        assert_null(s->ns[t].path);
    }
    assert_true(s->ns[SBX_NS_CGROUP].enabled);
    assert_int_equal(s->n_uid_map + s->n_gid_map, 0);
    assert_string_equal(s->hostname, "husk");
    assert_string_equal(s->process.args[0], "sh");
    assert_string_equal(s->process.cwd, "/");
    assert_true(strv_has(s->process.env, "TERM=xterm"));
    assert_int_equal(s->process.n_rlimits, 1);
    assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NOFILE);
    oci_config_free(c);
}

static void
test_default_masks_at_least_what_docker_masks(void **state)
{
    static const char *const masked[] = {
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    };
    static const char *const readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                           "/proc/sysrq-trigger"};
    struct oci_config *c = write_and_load(*state, false);

    for (size_t i = 0; i < ARRAY_SIZE(masked); i++)
        if (!strv_has(c->sbx->masked_paths, masked[i]))
            fail_msg("maskedPaths lacks %s", masked[i]);
    for (size_t i = 0; i < ARRAY_SIZE(readonly); i++)
        if (!strv_has(c->sbx->readonly_paths, readonly[i]))
            fail_msg("readonlyPaths lacks %s", readonly[i]);
    oci_config_free(c);
}

static void
test_default_mounts(void **state)
{
    struct oci_config *c = write_and_load(*state, false);
    const struct sbx_config *s = c->sbx;

    const struct sbx_mount *proc = find_mount(s, "/proc");
    assert_string_equal(proc->type, "proc");
    assert_true(proc->flags == (MS_NOSUID | MS_NOEXEC | MS_NODEV));
    const struct sbx_mount *dev = find_mount(s, "/dev");
    assert_string_equal(dev->type, "tmpfs");
    assert_true(dev->flags == (MS_NOSUID | MS_STRICTATIME));
    assert_string_equal(dev->data, "mode=755,size=65536k");
    const struct sbx_mount *pts = find_mount(s, "/dev/pts");
    assert_string_equal(pts->data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    const struct sbx_mount *sys = find_mount(s, "/sys");
    assert_string_equal(sys->type, "sysfs");
    assert_true(sys->flags & MS_RDONLY);
    assert_false(sys->flags & MS_BIND);
    const struct sbx_mount *cg = find_mount(s, "/sys/fs/cgroup");
    assert_true(cg->flags & MS_RDONLY);
    oci_config_free(c);
}

static void
test_rootless_has_userns_and_no_netns(void **state)
{
    struct oci_config *c = write_and_load(*state, true);
    const struct sbx_config *s = c->sbx;

    assert_true(s->ns[SBX_NS_USER].enabled);
    assert_null(s->ns[SBX_NS_USER].path);
    assert_false(s->ns[SBX_NS_NET].enabled);
    assert_true(s->ns[SBX_NS_MNT].enabled);
    assert_true(s->ns[SBX_NS_PID].enabled);
    assert_true(s->ns[SBX_NS_CGROUP].enabled);
    assert_int_equal(s->n_uid_map, 1);
    assert_true(s->uid_map[0].inner == 0 && s->uid_map[0].outer == geteuid() &&
                s->uid_map[0].count == 1);
    assert_int_equal(s->n_gid_map, 1);
    assert_true(s->gid_map[0].inner == 0 && s->gid_map[0].outer == getegid() &&
                s->gid_map[0].count == 1);
    assert_true(s->process.no_new_privs);
    assert_true(strv_has(s->masked_paths, "/proc/kcore"));
    oci_config_free(c);
}

static void
test_rootless_mounts(void **state)
{
    struct oci_config *c = write_and_load(*state, true);
    const struct sbx_config *s = c->sbx;

    /* sysfs cannot be mounted without a network namespace of our own: bind the host's, ro. */
    const struct sbx_mount *sys = find_mount(s, "/sys");
    assert_true((sys->flags & (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV)) ==
                (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV));
    assert_string_equal(sys->source, "/sys");
    /* One mapped gid: gid=5 does not exist in the namespace. */
    const struct sbx_mount *pts = find_mount(s, "/dev/pts");
    assert_null(strstr(pts->data, "gid="));
    oci_config_free(c);
}

static void
test_rootless_spec_document(void **state)
{
    cleanup_json json_t *spec = oci_spec_default(true);
    json_t *linux_ = json_object_get(spec, "linux");
    json_t *ns = json_object_get(linux_, "namespaces");
    size_t i, users = 0;
    json_t *e;

    /* No device cgroup rules: an unprivileged user cannot set them. */
    assert_null(json_object_get(linux_, "resources"));
    json_array_foreach(ns, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        assert_non_null(t);
        assert_string_not_equal(t, "network");
        users += strcmp(t, "user") == 0;
    }
    assert_int_equal(users, 1);
}

static void
test_each_call_returns_a_fresh_document(void **state)
{
    cleanup_json json_t *a = oci_spec_default(false);
    json_object_set_new(a, "hostname", json_string("changed"));
    cleanup_json json_t *r = oci_spec_default(true);
    cleanup_json json_t *b = oci_spec_default(false);

    assert_string_equal(json_string_value(json_object_get(b, "hostname")), "husk");
    /* The rootless edits do not leak into the next default spec. */
    assert_non_null(json_object_get(json_object_get(b, "linux"), "resources"));
    assert_null(json_object_get(json_object_get(b, "linux"), "uidMappings"));
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_default_parses_through_oci_config_parse),
        T(test_default_is_strict),
        T(test_default_masks_at_least_what_docker_masks),
        T(test_default_mounts),
        T(test_rootless_has_userns_and_no_netns),
        T(test_rootless_mounts),
        T(test_rootless_spec_document),
        T(test_each_call_returns_a_fresh_document),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
