/* SPDX-License-Identifier: Apache-2.0 */
/* config.json -> struct sbx_config: every field lands, every mistake names the file and field. */
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

/* -Wl,--wrap=oci_host_lsms: the security modules the "host" enforces, or NULL for the real. */
static const char *fake_lsms;
char *__real_oci_host_lsms(void);
char *__wrap_oci_host_lsms(void);
char *
__wrap_oci_host_lsms(void)
{
    return fake_lsms ? xstrdup(fake_lsms) : __real_oci_host_lsms();
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (h_ == NULL || strstr(h_, (needle)) == NULL)                                            \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle));              \
    } while (0)

static int
setup(void **state)
{
    return fx_new(state, "config", true);
}

static int
teardown(void **state)
{
    return fx_free(state);
}

/* JSON with single quotes for readability. */
static json_t *
J(const char *text)
{
    cleanup_free char *t = xstrdup(text);
    json_error_t je;

    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_t *j = json_loads(t, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        fail_msg("bad test JSON at column %d: %s: %s", je.column, je.text, t);
    return j;
}

/* The smallest config husk accepts. */
static json_t *
base(void)
{
    return J("{'ociVersion': '1.2.0', 'root': {'path': 'rootfs'},"
             " 'process': {'args': ['sh'], 'cwd': '/'},"
             " 'linux': {'namespaces': [{'type': 'pid'}, {'type': 'mount'}]}}");
}

/* base() with patch merged in (objects merge, arrays and scalars replace). */
static json_t *
with(const char *patch)
{
    json_t *root = base();
    json_t *p = J(patch);
    assert_int_equal(json_object_update_recursive(root, p), 0);
    json_decref(p);
    return root;
}

static struct oci_config *
parse_ok(struct fx *fx, json_t *root)
{
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;

    if (oci_config_parse(root, fx->path, fx->bundle, &c, &err) < 0) {
        cleanup_free char *s = husk_error_string(err);
        husk_error_free(err);
        json_decref(root);
        fail_msg("config rejected: %s", s);
    }
    json_decref(root);
    assert_non_null(c);
    assert_null(err);
    return c;
}

/* The error as the user sees it; every config error starts with the file's path. */
static char *
parse_fail(struct fx *fx, json_t *root)
{
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;

    int r = oci_config_parse(root, fx->path, fx->bundle, &c, &err);
    json_decref(root);
    if (r >= 0) {
        oci_config_free(c);
        fail_msg("config accepted, expected an error");
    }
    assert_null(c); /* *out is written only on success */
    assert_non_null(err);
    assert_int_equal(r, err->code ? -err->code : -EINVAL);
    char *s = husk_error_string(err);
    husk_error_free(err);
    if (!str_has_prefix(s, fx->path))
        fail_msg("error does not name the file '%s': %s", fx->path, s);
    return s;
}

static void
write_config(struct fx *fx, const char *text)
{
    FILE *f = fopen(fx->path, "we");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void
make_dir(struct fx *fx, const char *rel)
{
    cleanup_free char *p = xasprintf("%s/%s", fx->bundle, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

/* ---- process ------------------------------------------------------------------------------ */

static void
test_missing_process(void **state)
{
    json_t *root = base();
    json_object_del(root, "process");
    cleanup_free char *s = parse_fail(*state, root);
    assert_contains(s, "field 'process': is required");
}

static void
test_args_not_an_array(void **state)
{
    cleanup_free char *s = parse_fail(*state, with("{'process': {'args': 'sh -c true'}}"));
    assert_contains(s, "field 'process.args'");
    assert_contains(s, "expected an array, got a string");
}

static void
test_args_element_not_a_string(void **state)
{
    cleanup_free char *s = parse_fail(*state, with("{'process': {'args': ['sh', 1]}}"));
    assert_contains(s, "field 'process.args[1]'");
}

static void
test_empty_args(void **state)
{
    cleanup_free char *s1 = parse_fail(*state, with("{'process': {'args': []}}"));
    assert_contains(s1, "field 'process.args': must name a program");
    cleanup_free char *s2 = parse_fail(*state, with("{'process': {'args': ['']}}"));
    assert_contains(s2, "field 'process.args': must name a program");
}

static void
test_env_entry_without_equals(void **state)
{
    cleanup_free char *s = parse_fail(*state, with("{'process': {'env': ['A=1', 'FOO']}}"));
    assert_contains(s, "field 'process.env[1]'");
    assert_contains(s, "'FOO'");
}

static void
test_relative_cwd(void **state)
{
    cleanup_free char *s = parse_fail(*state, with("{'process': {'cwd': 'srv'}}"));
    assert_contains(s, "field 'process.cwd'");
    assert_contains(s, "'srv' is not an absolute path");
}

static void
test_missing_cwd(void **state)
{
    json_t *root = base();
    json_object_del(json_object_get(root, "process"), "cwd");
    cleanup_free char *s = parse_fail(*state, root);
    assert_contains(s, "field 'process.cwd': is required");
}

static void
test_unknown_rlimit(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'process': {'rlimits': [{'type': 'RLIMIT_BOGUS', 'soft': 1, 'hard': 1}]}}"));
    assert_contains(s, "field 'process.rlimits[0].type'");
    assert_contains(s, "RLIMIT_BOGUS");
}

static void
test_duplicate_rlimit(void **state)
{
    cleanup_free char *s =
        parse_fail(*state, with("{'process': {'rlimits': ["
                                "{'type': 'RLIMIT_NOFILE', 'soft': 1, 'hard': 2},"
                                "{'type': 'RLIMIT_NOFILE', 'soft': 3, 'hard': 4}]}}"));
    assert_contains(s, "field 'process.rlimits[1].type'");
    assert_contains(s, "RLIMIT_NOFILE");
}

static void
test_negative_rlimit(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'process': {'rlimits': [{'type': 'RLIMIT_CORE', 'soft': 0, 'hard': -1}]}}"));
    assert_contains(s, "field 'process.rlimits[0].hard'");
}

static void
test_oom_score_adj_range(void **state)
{
    cleanup_free char *hi = parse_fail(*state, with("{'process': {'oomScoreAdj': 1001}}"));
    assert_contains(hi, "field 'process.oomScoreAdj'");
    assert_contains(hi, "1001 is out of range");
    cleanup_free char *lo = parse_fail(*state, with("{'process': {'oomScoreAdj': -1001}}"));
    assert_contains(lo, "field 'process.oomScoreAdj'");

    struct oci_config *c = parse_ok(*state, with("{'process': {'oomScoreAdj': -1000}}"));
    assert_true(c->sbx->process.has_oom_score_adj);
    assert_int_equal(c->sbx->process.oom_score_adj, -1000);
    oci_config_free(c);
}

static void
test_user_field_errors(void **state)
{
    cleanup_free char *uid = parse_fail(*state, with("{'process': {'user': {'uid': -1}}}"));
    assert_contains(uid, "field 'process.user.uid'");
    cleanup_free char *umask = parse_fail(*state, with("{'process': {'user': {'umask': 512}}}"));
    assert_contains(umask, "field 'process.user.umask'");
    cleanup_free char *gids =
        parse_fail(*state, with("{'process': {'user': {'additionalGids': [1, 'wheel']}}}"));
    assert_contains(gids, "field 'process.user.additionalGids[1]'");
    cleanup_free char *name =
        parse_fail(*state, with("{'process': {'user': {'username': 'ContainerUser'}}}"));
    assert_contains(name, "field 'process.user.username'");
}

/* ---- namespaces and id maps --------------------------------------------------------------- */

static void
test_unknown_namespace_type(void **state)
{
    cleanup_free char *s =
        parse_fail(*state, with("{'linux': {'namespaces': [{'type': 'mount'}, {'type': 'net'}]}}"));
    assert_contains(s, "field 'linux.namespaces[1].type'");
    assert_contains(s, "'net'");
}

static void
test_duplicate_namespace(void **state)
{
    cleanup_free char *s = parse_fail(
        *state,
        with("{'linux': {'namespaces': [{'type': 'pid'}, {'type': 'mount'}, {'type': 'pid'}]}}"));
    assert_contains(s, "field 'linux.namespaces[2].type'");
    assert_contains(s, "given twice");
}

static void
test_namespace_path_missing(void **state)
{
    cleanup_free char *s =
        parse_fail(*state, with("{'linux': {'namespaces': [{'type': 'mount'},"
                                " {'type': 'network', 'path': '/run/netns/does-not-exist'}]}}"));
    assert_contains(s, "field 'linux.namespaces[1].path'");
    assert_contains(s, "/run/netns/does-not-exist");
    assert_contains(s, strerror(ENOENT));
}

static void
test_new_userns_without_mappings(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'linux': {'namespaces': [{'type': 'mount'}, {'type': 'user'}]}}"));
    assert_contains(s, "uidMappings");
    assert_contains(s, "user namespace");

    /* Both maps are needed: gid alone is not enough either. */
    cleanup_free char *g = parse_fail(
        *state, with("{'linux': {'namespaces': [{'type': 'mount'}, {'type': 'user'}],"
                     " 'uidMappings': [{'containerID': 0, 'hostID': 1000, 'size': 1}]}}"));
    assert_contains(g, "gidMappings");
}

static void
test_joined_userns_needs_no_mappings(void **state)
{
    struct oci_config *c =
        parse_ok(*state, with("{'linux': {'namespaces': [{'type': 'mount'},"
                              " {'type': 'user', 'path': '/proc/self/ns/user'}]}}"));
    assert_true(c->sbx->ns[SBX_NS_USER].enabled);
    assert_string_equal(c->sbx->ns[SBX_NS_USER].path, "/proc/self/ns/user");
    oci_config_free(c);
}

static void
test_mappings_without_userns(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'linux': {"
                     " 'uidMappings': [{'containerID': 0, 'hostID': 1000, 'size': 1}],"
                     " 'gidMappings': [{'containerID': 0, 'hostID': 1000, 'size': 1}]}}"));
    assert_contains(s, "field 'linux.uidMappings'");
    assert_contains(s, "need a user namespace");
}

static void
test_mapping_of_size_zero(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'linux': {'namespaces': [{'type': 'user'}],"
                     " 'uidMappings': [{'containerID': 0, 'hostID': 1000, 'size': 1},"
                     "                 {'containerID': 1, 'hostID': 2000, 'size': 0}],"
                     " 'gidMappings': [{'containerID': 0, 'hostID': 1000, 'size': 1}]}}"));
    assert_contains(s, "field 'linux.uidMappings[1].size'");
}

static void
test_hostname_without_uts(void **state)
{
    cleanup_free char *s = parse_fail(*state, with("{'hostname': 'web'}"));
    assert_contains(s, "field 'hostname'");
    assert_contains(s, "uts namespace");
}

static void
test_domainname_without_uts(void **state)
{
    /* As runc: without its own uts namespace the value would be dropped (or set the host's). */
    cleanup_free char *s = parse_fail(*state, with("{'domainname': 'example.org'}"));
    assert_contains(s, "field 'domainname'");
    assert_contains(s, "uts namespace");
}

/* ---- devices ------------------------------------------------------------------------------ */

static void
test_bad_device_type(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'linux': {'devices': [{'path': '/dev/null', 'type': 'c', 'major': 1,"
                     " 'minor': 3}, {'path': '/dev/x', 'type': 'x', 'major': 1, 'minor': 1}]}}"));
    assert_contains(s, "field 'linux.devices[1].type'");
    assert_contains(s, "'x'");
    cleanup_free char *s2 = parse_fail(
        *state,
        with("{'linux': {'devices': [{'path': '/dev/x', 'type': 'cb', 'major': 1, 'minor': 1}]}}"));
    assert_contains(s2, "field 'linux.devices[0].type'");
}

static void
test_device_needs_numbers_and_absolute_path(void **state)
{
    cleanup_free char *s =
        parse_fail(*state, with("{'linux': {'devices': [{'path': '/dev/x', 'type': 'c'}]}}"));
    assert_contains(s, "field 'linux.devices[0].major'");
    cleanup_free char *s2 = parse_fail(
        *state,
        with("{'linux': {'devices': [{'path': 'dev/x', 'type': 'c', 'major': 1, 'minor': 1}]}}"));
    assert_contains(s2, "field 'linux.devices[0].path'");
    cleanup_free char *s3 =
        parse_fail(*state, with("{'linux': {'devices': [{'path': '/dev/x', 'type': 'c', 'major': 1,"
                                " 'minor': 1, 'fileMode': 65536}]}}"));
    assert_contains(s3, "field 'linux.devices[0].fileMode'");
    /* In a user namespace the host's node is bound from the same path. */
    static const char *const dots[] = {"/dev/../etc/shadow", "/dev/./null", "/dev/x/.."};
    for (size_t i = 0; i < ARRAY_SIZE(dots); i++) {
        cleanup_free char *patch = xasprintf(
            "{'linux': {'devices': [{'path': '%s', 'type': 'c', 'major': 1, 'minor': 3}]}}",
            dots[i]);
        cleanup_free char *s4 = parse_fail(*state, with(patch));
        assert_contains(s4, "field 'linux.devices[0].path'");
        assert_contains(s4, "'.' or '..'");
    }
}

/* ---- files -------------------------------------------------------------------------------- */

static void
test_malformed_json_names_line_and_column(void **state)
{
    struct fx *fx = *state;
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;

    write_config(fx, "{\n  \"ociVersion\": \"1.2.0\",\n  \"process\": }\n");
    assert_true(oci_config_load(fx->bundle, &c, &err) < 0);
    assert_null(c);
    cleanup_free char *s = husk_error_string(err);
    husk_error_free(err);
    assert_contains(s, fx->path);
    assert_contains(s, "line 3");
    assert_contains(s, "column 14");
}

static void
test_duplicate_key_rejected(void **state)
{
    struct fx *fx = *state;
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;

    /* Two "process" keys: which one would win is parser-dependent, so refuse both. */
    write_config(fx, "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"},\n"
                     " \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"},\n"
                     " \"process\": {\"args\": [\"evil\"], \"cwd\": \"/\"}}\n");
    assert_true(oci_config_load(fx->bundle, &c, &err) < 0);
    cleanup_free char *s = husk_error_string(err);
    husk_error_free(err);
    assert_contains(s, fx->path);
    assert_contains(s, "line 3");
    assert_contains(s, "duplicate");
}

static void
test_missing_config_json_names_path(void **state)
{
    struct fx *fx = *state;
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;

    assert_int_equal(oci_config_load(fx->bundle, &c, &err), -ENOENT);
    cleanup_free char *s = husk_error_string(err);
    husk_error_free(err);
    assert_contains(s, fx->path);
    assert_contains(s, strerror(ENOENT));
}

static void
test_missing_bundle_names_it(void **state)
{
    struct fx *fx = *state;
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;
    cleanup_free char *b = xasprintf("%s/nope", fx->bundle);

    assert_int_equal(oci_config_load(b, &c, &err), -ENOENT);
    cleanup_free char *s = husk_error_string(err);
    husk_error_free(err);
    assert_contains(s, b);
}

static void
test_load_relative_bundle_becomes_absolute(void **state)
{
    struct fx *fx = *state;
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    write_config(fx, "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"},"
                     " \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"}}");
    assert_true(cwd >= 0);
    assert_int_equal(chdir(fx->bundle), 0);
    int r = oci_config_load(".", &c, &err);
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
    if (r < 0) {
        cleanup_free char *s = husk_error_string(err);
        husk_error_free(err);
        fail_msg("%s", s);
    }
    assert_string_equal(c->bundle, fx->bundle);
    assert_string_equal(c->path, fx->path);
    cleanup_free char *rootfs = xasprintf("%s/rootfs", fx->bundle);
    assert_string_equal(c->sbx->rootfs, rootfs);
    oci_config_free(c);
}

static void
test_not_an_object(void **state)
{
    cleanup_free char *s = parse_fail(*state, J("['ociVersion']"));
    assert_contains(s, "expected a JSON object");
    json_t *root = base();
    json_object_del(root, "ociVersion");
    cleanup_free char *v = parse_fail(*state, root);
    assert_contains(v, "field 'ociVersion': is required");
}

/* ---- root and mounts ---------------------------------------------------------------------- */

static void
test_missing_rootfs_names_root_path(void **state)
{
    struct fx *fx = *state;
    cleanup_free char *s = parse_fail(fx, with("{'root': {'path': 'nosuchroot'}}"));
    cleanup_free char *full = xasprintf("%s/nosuchroot", fx->bundle);
    assert_contains(s, "field 'root.path'");
    assert_contains(s, full);
    assert_contains(s, strerror(ENOENT));
}

static void
test_missing_root(void **state)
{
    json_t *root = base();
    json_object_del(root, "root");
    cleanup_free char *s = parse_fail(*state, root);
    assert_contains(s, "field 'root': is required");
}

static void
test_bind_mount_without_source(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'mounts': [{'destination': '/proc', 'type': 'proc', 'source': 'proc'},"
                     " {'destination': '/data', 'type': 'bind', 'options': ['rbind']}]}"));
    assert_contains(s, "field 'mounts[1].source'");
    assert_contains(s, "source");
}

static void
test_bind_source_missing(void **state)
{
    struct fx *fx = *state;
    cleanup_free char *s = parse_fail(
        fx,
        with("{'mounts': [{'destination': '/data', 'source': 'nodata', 'options': ['bind']}]}"));
    cleanup_free char *full = xasprintf("%s/nodata", fx->bundle);
    assert_contains(s, "field 'mounts[0].source'");
    assert_contains(s, full);
    assert_contains(s, strerror(ENOENT));
}

static void
test_relative_bind_source_resolved_against_bundle(void **state)
{
    struct fx *fx = *state;
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    make_dir(fx, "data");
    /* Not against the cwd of `husk create`. */
    assert_int_equal(chdir("/"), 0);
    struct oci_config *c =
        parse_ok(fx, with("{'mounts': [{'destination': '/data', 'type': 'bind', 'source': 'data',"
                          " 'options': ['rbind', 'ro']}]}"));
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
    cleanup_free char *want = xasprintf("%s/data", fx->bundle);
    assert_int_equal(c->sbx->n_mounts, 1);
    assert_string_equal(c->sbx->mounts[0].source, want);
    assert_true((c->sbx->mounts[0].flags & (MS_BIND | MS_REC | MS_RDONLY)) ==
                (MS_BIND | MS_REC | MS_RDONLY));
    oci_config_free(c);
}

static void
test_mount_type_required_unless_bind(void **state)
{
    cleanup_free char *s =
        parse_fail(*state, with("{'mounts': [{'destination': '/x', 'source': 'none'}]}"));
    assert_contains(s, "field 'mounts[0].type'");
    cleanup_free char *d =
        parse_fail(*state, with("{'mounts': [{'type': 'tmpfs', 'source': 'tmpfs'}]}"));
    assert_contains(d, "field 'mounts[0].destination'");
    cleanup_free char *o = parse_fail(*state, with("{'mounts': ['/tmp']}"));
    assert_contains(o, "field 'mounts[0]'");
}

static void
test_mount_option_not_a_string(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'mounts': [{'destination': '/tmp', 'type': 'tmpfs', 'source': 'tmpfs',"
                     " 'options': ['nosuid', 755]}]}"));
    assert_contains(s, "mounts[0].options[1]");
}

static void
test_mounts_need_mount_namespace(void **state)
{
    cleanup_free char *s = parse_fail(
        *state, with("{'linux': {'namespaces': [{'type': 'pid'}]},"
                     " 'mounts': [{'destination': '/tmp', 'type': 'tmpfs', 'source': 'tmpfs'}]}"));
    assert_contains(s, "field 'mounts'");
    assert_contains(s, "mount namespace");
}

static void
test_relative_destination_becomes_absolute(void **state)
{
    struct oci_config *c = parse_ok(
        *state, with("{'mounts': [{'destination': 'tmp', 'type': 'tmpfs', 'source': 'tmpfs'},"
                     " {'destination': '/run', 'type': 'tmpfs'}]}"));
    assert_int_equal(c->sbx->n_mounts, 2);
    assert_string_equal(c->sbx->mounts[0].destination, "/tmp");
    assert_string_equal(c->sbx->mounts[0].type, "tmpfs");
    assert_string_equal(c->sbx->mounts[0].source, "tmpfs");
    assert_string_equal(c->sbx->mounts[1].destination, "/run");
    assert_null(c->sbx->mounts[1].source);
    oci_config_free(c);
}

/* ---- sysctl, propagation, annotations ----------------------------------------------------- */

static void
test_sysctl_key_with_slash_or_dotdot(void **state)
{
    static const char *const bad[] = {"net/ipv4/ip_forward", "net..ipv4", "../../etc/passwd",
                                      ".net"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        cleanup_free char *patch = xasprintf("{'linux': {'sysctl': {'%s': '1'}}}", bad[i]);
        cleanup_free char *field = xasprintf("field 'linux.sysctl.%s'", bad[i]);
        cleanup_free char *s = parse_fail(*state, with(patch));
        assert_contains(s, field);
        assert_contains(s, "not a sysctl name");
    }
}

static void
test_sysctl_value_and_namespace(void **state)
{
    cleanup_free char *s =
        parse_fail(*state, with("{'linux': {'sysctl': {'net.ipv4.ip_forward': 1}}}"));
    assert_contains(s, "field 'linux.sysctl.net.ipv4.ip_forward'");
    assert_contains(s, "expected a string");
    cleanup_free char *n = parse_fail(
        *state,
        with("{'linux': {'namespaces': [{'type': 'pid'}], 'sysctl': {'kernel.shmmax': '1'}}}"));
    assert_contains(n, "field 'linux.sysctl'");
}

/* A host-global sysctl would change the host: refused, as runc does. */
static void
test_sysctl_host_global_refused(void **state)
{
    static const char *const bad[] = {"kernel.core_pattern", "vm.overcommit_memory",
                                      "kernel.modprobe", "fs.file-max", "kernel.msgX"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        cleanup_free char *patch = xasprintf("{'linux': {'sysctl': {'%s': '1'}}}", bad[i]);
        cleanup_free char *field = xasprintf("field 'linux.sysctl.%s'", bad[i]);
        cleanup_free char *s = parse_fail(*state, with(patch));
        if (strcmp(bad[i], "kernel.msgX") == 0) /* a kernel.msg* name: the ipc rule */
            assert_contains(s, "needs the container's own ipc namespace");
        else
            assert_contains(s, "not namespaced: setting it would change the host");
        assert_contains(s, field);
    }
}

/* Namespaced sysctls need their namespace, and not the runtime's own joined by path. */
static void
test_sysctl_needs_own_namespace(void **state)
{
    static const struct {
        const char *ns, *key;
        bool ok;
    } cases[] = {
        {"{'type': 'ipc'}", "kernel.shmmax", true},
        {"{'type': 'ipc'}", "fs.mqueue.queues_max", true},
        {"{'type': 'ipc'}", "kernel.sem", true},
        {"{'type': 'network'}", "net.ipv4.ip_forward", true},
        {"{'type': 'uts'}", "kernel.domainname", true},
        {"{'type': 'uts'}", "kernel.hostname", true},
        {"{'type': 'uts'}", "kernel.shmmax", false},
        {"{'type': 'ipc'}", "net.core.somaxconn", false},
        {"{'type': 'network', 'path': '/proc/self/ns/net'}", "net.ipv4.ip_forward", false},
        {"{'type': 'ipc', 'path': '/proc/self/ns/ipc'}", "kernel.shmmax", false},
        {"{'type': 'network'}", "kernel.hostname", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *patch =
            xasprintf("{'linux': {'namespaces': [{'type': 'mount'}, %s], 'sysctl': {'%s': '1'}}}",
                      cases[i].ns, cases[i].key);
        if (cases[i].ok) {
            oci_config_free(parse_ok(*state, with(patch)));
            continue;
        }
        cleanup_free char *s = parse_fail(*state, with(patch));
        assert_contains(s, "needs the container's own");
    }
}

/* Labels for modules husk cannot apply: refused where the host enforces that module, a
 * warning naming the field where it does not. */
static void
test_lsm_labels(void **state)
{
    static const char *const cfgs[] = {
        "{'process': {'apparmorProfile': 'docker-default'}}",
        "{'process': {'selinuxLabel': 'system_u:system_r:container_t:s0'}}",
        "{'linux': {'mountLabel': 'system_u:object_r:container_file_t:s0'}}",
    };
    static const char *const fields[] = {"process.apparmorProfile", "process.selinuxLabel",
                                         "linux.mountLabel"};
    for (size_t i = 0; i < ARRAY_SIZE(cfgs); i++) {
        fake_lsms = "capability,landlock,yama";
        struct oci_config *c = parse_ok(*state, with(cfgs[i]));
        assert_int_equal(strv_len(c->warnings), 1);
        assert_contains(c->warnings[0], fields[i]);
        assert_contains(c->warnings[0], "ignored");
        oci_config_free(c);
        fake_lsms = i == 0 ? "capability,apparmor" : "selinux,bpf";
        cleanup_free char *s = parse_fail(*state, with(cfgs[i]));
        assert_contains(s, fields[i]);
        assert_contains(s, "husk cannot apply");
    }
    fake_lsms = "capability,apparmor,selinux";
    oci_config_free(parse_ok(*state, with("{'process': {'apparmorProfile': ''}}")));
    fake_lsms = NULL;
}

static void
test_unknown_rootfs_propagation(void **state)
{
    cleanup_free char *s = parse_fail(*state, with("{'linux': {'rootfsPropagation': 'rbogus'}}"));
    assert_contains(s, "field 'linux.rootfsPropagation'");
    assert_contains(s, "'rbogus'");
}

static void
test_rootfs_propagation_values(void **state)
{
    static const struct {
        const char *name;
        unsigned long flags;
    } cases[] = {
        {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
        {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
        {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
        {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *patch =
            xasprintf("{'linux': {'rootfsPropagation': '%s'}}", cases[i].name);
        struct oci_config *c = parse_ok(*state, with(patch));
        assert_true(c->sbx->rootfs_propagation == cases[i].flags);
        oci_config_free(c);
    }
}

static void
test_annotation_not_a_string(void **state)
{
    cleanup_free char *s = parse_fail(*state, with("{'annotations': {'a': 'b', 'n': 1}}"));
    assert_contains(s, "field 'annotations.n'");
}

/* ---- success: every field lands ----------------------------------------------------------- */

static void
test_defaults_of_minimal_config(void **state)
{
    struct fx *fx = *state;
    struct oci_config *c = parse_ok(fx, base());
    const struct sbx_config *s = c->sbx;
    cleanup_free char *rootfs = xasprintf("%s/rootfs", fx->bundle);

    assert_string_equal(c->oci_version, "1.2.0");
    assert_string_equal(c->path, fx->path);
    assert_string_equal(c->bundle, fx->bundle);
    assert_false(c->terminal);
    assert_non_null(c->annotations);
    assert_int_equal(json_object_size(c->annotations), 0);
    assert_string_equal(s->rootfs, rootfs);
    assert_false(s->rootfs_readonly);
    assert_true(s->rootfs_propagation == 0);
    assert_true(s->ns[SBX_NS_PID].enabled);
    assert_true(s->ns[SBX_NS_MNT].enabled);
    assert_false(s->ns[SBX_NS_NET].enabled);
    assert_false(s->ns[SBX_NS_USER].enabled);
    assert_null(s->ns[SBX_NS_PID].path);
    assert_null(s->hostname);
    assert_int_equal(s->n_mounts + s->n_devices + s->n_sysctl + s->n_uid_map + s->n_gid_map, 0);
    assert_int_equal(strv_len(s->process.args), 1);
    assert_non_null(s->process.env); /* an empty environment, not none */
    assert_null(s->process.env[0]);
    assert_string_equal(s->process.cwd, "/");
    assert_int_equal(s->process.uid, 0);
    assert_int_equal(s->process.gid, 0);
    assert_int_equal(s->process.umask, -1);
    assert_int_equal(s->process.n_groups, 0);
    assert_int_equal(s->process.n_rlimits, 0);
    assert_false(s->process.no_new_privs);
    assert_false(s->process.has_oom_score_adj);
    oci_config_free(c);
}

static json_t *
full_config(struct fx *fx)
{
    make_dir(fx, "data");
    return J("{'ociVersion': '1.0.2', 'hostname': 'web', 'domainname': 'example.org',"
             " 'root': {'path': 'rootfs', 'readonly': true},"
             " 'process': {'terminal': true, 'args': ['/bin/app', '-v'],"
             "   'env': ['PATH=/bin', 'EMPTY=', 'A=b=c'], 'cwd': '/srv',"
             "   'user': {'uid': 1000, 'gid': 1001, 'umask': 23, 'additionalGids': [5, 10]},"
             "   'noNewPrivileges': true, 'oomScoreAdj': -500,"
             "   'rlimits': [{'type': 'RLIMIT_NOFILE', 'soft': 1024, 'hard': 4096},"
             "               {'type': 'RLIMIT_CORE', 'soft': 0, 'hard': 0}]},"
             " 'mounts': ["
             "   {'destination': '/dev', 'type': 'tmpfs', 'source': 'tmpfs',"
             "    'options': ['nosuid', 'strictatime', 'mode=755', 'size=65536k']},"
             "   {'destination': '/data', 'type': 'bind', 'source': 'data',"
             "    'options': ['rbind', 'ro', 'rprivate']},"
             "   {'destination': '/etc/hosts', 'source': '/etc/hosts', 'options': ['bind']}],"
             " 'linux': {"
             "   'namespaces': [{'type': 'user'}, {'type': 'mount'}, {'type': 'pid'},"
             "     {'type': 'uts'}, {'type': 'ipc'}, {'type': 'cgroup'},"
             "     {'type': 'network', 'path': '/proc/self/ns/net'}],"
             "   'uidMappings': [{'containerID': 0, 'hostID': 100000, 'size': 65536}],"
             "   'gidMappings': [{'containerID': 0, 'hostID': 200000, 'size': 1},"
             "                   {'containerID': 1, 'hostID': 300000, 'size': 10}],"
             "   'devices': [{'path': '/dev/fuse', 'type': 'c', 'major': 10, 'minor': 229},"
             "     {'path': '/dev/sda', 'type': 'b', 'major': 8, 'minor': 0, 'fileMode': 432,"
             "      'uid': 1, 'gid': 6},"
             "     {'path': '/dev/null2', 'type': 'u', 'major': 1, 'minor': 3},"
             "     {'path': '/dev/fifo', 'type': 'p'}],"
             "   'sysctl': {'fs.mqueue.msg_max': '1', 'kernel.shm_rmid_forced': '0'},"
             "   'maskedPaths': ['/proc/kcore', '/sys/firmware'],"
             "   'readonlyPaths': ['/proc/sys'],"
             "   'rootfsPropagation': 'rshared'},"
             " 'annotations': {'org.example.key': 'value', 'empty': ''}}");
}

static void
test_full_process_fields(void **state)
{
    struct oci_config *c = parse_ok(*state, full_config(*state));
    const struct sbx_process *p = &c->sbx->process;

    assert_string_equal(c->oci_version, "1.0.2");
    assert_true(c->terminal);
    assert_int_equal(strv_len(p->args), 2);
    assert_string_equal(p->args[0], "/bin/app");
    assert_string_equal(p->args[1], "-v");
    assert_int_equal(strv_len(p->env), 3);
    assert_string_equal(p->env[0], "PATH=/bin");
    assert_string_equal(p->env[1], "EMPTY=");
    assert_string_equal(p->env[2], "A=b=c");
    assert_string_equal(p->cwd, "/srv");
    assert_int_equal(p->uid, 1000);
    assert_int_equal(p->gid, 1001);
    assert_int_equal(p->umask, 027); /* 23 in JSON */
    assert_int_equal(p->n_groups, 2);
    assert_int_equal(p->groups[0], 5);
    assert_int_equal(p->groups[1], 10);
    assert_true(p->no_new_privs);
    assert_true(p->has_oom_score_adj);
    assert_int_equal(p->oom_score_adj, -500);
    assert_int_equal(p->n_rlimits, 2);
    assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
    assert_true(p->rlimits[0].soft == 1024 && p->rlimits[0].hard == 4096);
    assert_int_equal(p->rlimits[1].resource, RLIMIT_CORE);
    assert_true(p->rlimits[1].soft == 0 && p->rlimits[1].hard == 0);
    oci_config_free(c);
}

static void
test_full_linux_fields(void **state)
{
    struct oci_config *c = parse_ok(*state, full_config(*state));
    const struct sbx_config *s = c->sbx;

    assert_string_equal(s->hostname, "web");
    assert_string_equal(s->domainname, "example.org");
    for (int t = 0; t < SBX_NS_COUNT; t++) {
        if (t == SBX_NS_TIME) {
            assert_false(s->ns[t].enabled);
            continue;
        }
        if (!s->ns[t].enabled)
            fail_msg("namespace %s not enabled", sbx_ns_name(t));
        if (t == SBX_NS_NET)
            assert_string_equal(s->ns[t].path, "/proc/self/ns/net");
        else
            assert_null(s->ns[t].path);
    }
    assert_int_equal(s->n_uid_map, 1);
    assert_true(s->uid_map[0].inner == 0 && s->uid_map[0].outer == 100000 &&
                s->uid_map[0].count == 65536);
    assert_int_equal(s->n_gid_map, 2);
    assert_true(s->gid_map[0].inner == 0 && s->gid_map[0].outer == 200000 &&
                s->gid_map[0].count == 1);
    assert_true(s->gid_map[1].inner == 1 && s->gid_map[1].outer == 300000 &&
                s->gid_map[1].count == 10);

    assert_int_equal(s->n_devices, 4);
    assert_string_equal(s->devices[0].path, "/dev/fuse");
    assert_int_equal(s->devices[0].type, 'c');
    assert_true(s->devices[0].major == 10 && s->devices[0].minor == 229);
    assert_int_equal(s->devices[0].mode, 0666); /* the default fileMode */
    assert_true(s->devices[0].uid == 0 && s->devices[0].gid == 0);
    assert_string_equal(s->devices[1].path, "/dev/sda");
    assert_int_equal(s->devices[1].type, 'b');
    assert_true(s->devices[1].major == 8 && s->devices[1].minor == 0);
    assert_int_equal(s->devices[1].mode, 0660);
    assert_true(s->devices[1].uid == 1 && s->devices[1].gid == 6);
    assert_int_equal(s->devices[2].type, 'c'); /* 'u' (unbuffered) is a character device */
    assert_int_equal(s->devices[3].type, 'p');

    assert_int_equal(s->n_sysctl, 2);
    for (size_t i = 0; i < s->n_sysctl; i++) {
        if (strcmp(s->sysctl[i].key, "fs.mqueue.msg_max") == 0)
            assert_string_equal(s->sysctl[i].value, "1");
        else if (strcmp(s->sysctl[i].key, "kernel.shm_rmid_forced") == 0)
            assert_string_equal(s->sysctl[i].value, "0");
        else
            fail_msg("unexpected sysctl '%s'", s->sysctl[i].key);
    }
    assert_int_equal(strv_len(s->masked_paths), 2);
    assert_string_equal(s->masked_paths[0], "/proc/kcore");
    assert_string_equal(s->masked_paths[1], "/sys/firmware");
    assert_int_equal(strv_len(s->readonly_paths), 1);
    assert_string_equal(s->readonly_paths[0], "/proc/sys");
    assert_true(s->rootfs_propagation == (MS_SHARED | MS_REC));
    oci_config_free(c);
}

static void
test_full_root_mounts_annotations(void **state)
{
    struct fx *fx = *state;
    struct oci_config *c = parse_ok(fx, full_config(fx));
    const struct sbx_config *s = c->sbx;
    cleanup_free char *rootfs = xasprintf("%s/rootfs", fx->bundle);
    cleanup_free char *data = xasprintf("%s/data", fx->bundle);

    assert_string_equal(s->rootfs, rootfs);
    assert_true(s->rootfs_readonly);
    assert_int_equal(s->n_mounts, 3);

    assert_string_equal(s->mounts[0].destination, "/dev");
    assert_string_equal(s->mounts[0].type, "tmpfs");
    assert_string_equal(s->mounts[0].source, "tmpfs");
    assert_true(s->mounts[0].flags == (MS_NOSUID | MS_STRICTATIME));
    assert_string_equal(s->mounts[0].data, "mode=755,size=65536k");

    assert_string_equal(s->mounts[1].destination, "/data");
    assert_string_equal(s->mounts[1].source, data);
    assert_true(s->mounts[1].flags == (MS_BIND | MS_REC | MS_RDONLY));
    assert_true(s->mounts[1].propagation == (MS_PRIVATE | MS_REC));
    assert_null(s->mounts[1].data);

    assert_string_equal(s->mounts[2].destination, "/etc/hosts");
    assert_string_equal(s->mounts[2].source, "/etc/hosts");
    assert_true(s->mounts[2].flags == MS_BIND);

    assert_int_equal(json_object_size(c->annotations), 2);
    assert_string_equal(json_string_value(json_object_get(c->annotations, "org.example.key")),
                        "value");
    assert_string_equal(json_string_value(json_object_get(c->annotations, "empty")), "");
    oci_config_free(c);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_missing_process),
        T(test_args_not_an_array),
        T(test_args_element_not_a_string),
        T(test_empty_args),
        T(test_env_entry_without_equals),
        T(test_relative_cwd),
        T(test_missing_cwd),
        T(test_unknown_rlimit),
        T(test_duplicate_rlimit),
        T(test_negative_rlimit),
        T(test_oom_score_adj_range),
        T(test_user_field_errors),
        T(test_unknown_namespace_type),
        T(test_duplicate_namespace),
        T(test_namespace_path_missing),
        T(test_new_userns_without_mappings),
        T(test_joined_userns_needs_no_mappings),
        T(test_mappings_without_userns),
        T(test_mapping_of_size_zero),
        T(test_hostname_without_uts),
        T(test_domainname_without_uts),
        T(test_bad_device_type),
        T(test_device_needs_numbers_and_absolute_path),
        T(test_malformed_json_names_line_and_column),
        T(test_duplicate_key_rejected),
        T(test_missing_config_json_names_path),
        T(test_missing_bundle_names_it),
        T(test_load_relative_bundle_becomes_absolute),
        T(test_not_an_object),
        T(test_missing_rootfs_names_root_path),
        T(test_missing_root),
        T(test_bind_mount_without_source),
        T(test_bind_source_missing),
        T(test_relative_bind_source_resolved_against_bundle),
        T(test_mount_type_required_unless_bind),
        T(test_mount_option_not_a_string),
        T(test_mounts_need_mount_namespace),
        T(test_relative_destination_becomes_absolute),
        T(test_sysctl_key_with_slash_or_dotdot),
        T(test_sysctl_host_global_refused),
        T(test_sysctl_needs_own_namespace),
        T(test_lsm_labels),
        T(test_sysctl_value_and_namespace),
        T(test_unknown_rootfs_propagation),
        T(test_rootfs_propagation_values),
        T(test_annotation_not_a_string),
        T(test_defaults_of_minimal_config),
        T(test_full_process_fields),
        T(test_full_linux_fields),
        T(test_full_root_mounts_annotations),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
