/* SPDX-License-Identifier: Apache-2.0 */
/* The child's {step, errno, index} records: transport, and messages that name the config item. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "husk/sandbox.h"
#include "sync.h"
#include "util.h"

static char arg0[] = "/usr/bin/app";
static char *args[] = {arg0, NULL};
static char masked0[] = "/proc/kcore", masked1[] = "/sys/firmware";
static char *masked[] = {masked0, masked1, NULL};
static char ro0[] = "/proc/sys";
static char *readonly[] = {ro0, NULL};
static char src_proc[] = "proc", dst_proc[] = "/proc", type_proc[] = "proc";
static char src_tmpfs[] = "tmpfs", dst_dev[] = "/dev", type_tmpfs[] = "tmpfs";
static char dst_run[] = "/run";
static char src_data[] = "/srv/data", dst_data[] = "/data";
static struct sbx_mount mounts[] = {
    {.destination = dst_proc, .type = type_proc, .source = src_proc},
    {.destination = dst_dev, .type = type_tmpfs, .source = src_tmpfs},
    {.destination = dst_run, .type = type_tmpfs, .source = NULL},
    {.destination = dst_data, .source = src_data, .flags = MS_BIND | MS_REC},
};
static char dev_fuse[] = "/dev/fuse";
static struct sbx_device devices[] = {{.path = dev_fuse, .type = 'c', .major = 10, .minor = 229}};
static char sk[] = "net.ipv4.ip_forward", sv[] = "1";
static struct sbx_sysctl sysctls[] = {{.key = sk, .value = sv}};
static struct sbx_rlimit rlimits[] = {{.resource = RLIMIT_CORE}, {.resource = RLIMIT_NOFILE}};
static char netns[] = "/run/netns/blue";
static char cwd[] = "/srv/app";

static struct sbx_config cfg;

static int
setup(void **state)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.ns[SBX_NS_NET] = (struct sbx_ns){.enabled = true, .path = netns};
    cfg.mounts = mounts;
    cfg.n_mounts = ARRAY_SIZE(mounts);
    cfg.devices = devices;
    cfg.n_devices = ARRAY_SIZE(devices);
    cfg.masked_paths = masked;
    cfg.readonly_paths = readonly;
    cfg.sysctl = sysctls;
    cfg.n_sysctl = ARRAY_SIZE(sysctls);
    cfg.process.args = args;
    cfg.process.cwd = cwd;
    cfg.process.uid = 1000;
    cfg.process.gid = 1001;
    cfg.process.rlimits = rlimits;
    cfg.process.n_rlimits = ARRAY_SIZE(rlimits);
    return 0;
}

struct result {
    int ret;
    int code;
    char *msg;  /* err->msg */
    char *line; /* husk_error_string */
};

static struct result
to_error(int step, int errnum, int index)
{
    struct sbx_msg m = {.kind = SBX_MSG_ERROR, .step = step, .err = errnum, .index = index};
    struct husk_error *err = NULL;
    struct result r;

    r.ret = sbx_msg_to_error(&m, &cfg, &err);
    assert_non_null(err);
    r.code = err->code;
    r.msg = xstrdup(err->msg);
    r.line = husk_error_string(err);
    husk_error_free(err);
    return r;
}

static void
result_free(struct result *r)
{
    free(r->msg);
    free(r->line);
}

#define EXPECT(step, errnum, index, want)                                                          \
    do {                                                                                           \
        struct result r_ = to_error(step, errnum, index);                                          \
        if (strcmp(r_.msg, (want)) != 0) {                                                         \
            cleanup_free char *m_ = xstrdup(r_.msg);                                               \
            result_free(&r_);                                                                      \
            fail_msg("step %d index %d: got \"%s\", want \"%s\"", (int)(step), (int)(index), m_,   \
                     (want));                                                                      \
        }                                                                                          \
        result_free(&r_);                                                                          \
    } while (0)

static void
test_mount_step_names_the_mount(void **state)
{
    struct result r = to_error(SBX_STEP_MOUNT, ENODEV, 1);
    cleanup_free char *want = xasprintf("mount 'tmpfs' on '/dev': %s", strerror(ENODEV));

    assert_string_equal(r.msg, "mount 'tmpfs' on '/dev'");
    assert_int_equal(r.code, ENODEV);
    assert_int_equal(r.ret, -ENODEV);
    assert_string_equal(r.line, want); /* the errno appears through husk_error_string */
    result_free(&r);
}

static void
test_mount_steps_name_source_or_type(void **state)
{
    EXPECT(SBX_STEP_MOUNT, EPERM, 0, "mount 'proc' on '/proc'");
    EXPECT(SBX_STEP_MOUNT, EPERM, 2, "mount 'tmpfs' on '/run'"); /* no source: the type */
    EXPECT(SBX_STEP_MOUNT, ENOENT, 3, "mount '/srv/data' on '/data'");
    EXPECT(SBX_STEP_MOUNT_DEST, ELOOP, 3, "resolve mount destination '/srv/data' on '/data'");
    EXPECT(SBX_STEP_MOUNT_PROPAGATION, EINVAL, 1, "set mount propagation 'tmpfs' on '/dev'");
}

static void
test_exec_not_found(void **state)
{
    struct result r = to_error(SBX_STEP_EXEC_NOT_FOUND, ENOENT, 0);

    assert_string_equal(r.msg, "exec: '/usr/bin/app': executable file not found in $PATH");
    /* runc's wording, and no "No such file or directory" tacked on. */
    assert_string_equal(r.line, r.msg);
    assert_true(r.ret < 0);
    result_free(&r);
}

static void
test_exec_failure_carries_errno(void **state)
{
    struct result r = to_error(SBX_STEP_EXEC, EACCES, 0);
    cleanup_free char *want = xasprintf("exec '/usr/bin/app': %s", strerror(EACCES));

    assert_string_equal(r.line, want);
    assert_int_equal(r.ret, -EACCES);
    result_free(&r);
}

static void
test_other_steps_name_their_item(void **state)
{
    EXPECT(SBX_STEP_SETNS, EINVAL, SBX_NS_NET, "join namespace network '/run/netns/blue'");
    EXPECT(SBX_STEP_DEVICE, EEXIST, 0, "create device '/dev/fuse'");
    EXPECT(SBX_STEP_MASK_PATH, EPERM, 1, "mask path '/sys/firmware'");
    EXPECT(SBX_STEP_READONLY_PATH, EPERM, 0, "make path read-only '/proc/sys'");
    EXPECT(SBX_STEP_SYSCTL, EACCES, 0, "set sysctl 'net.ipv4.ip_forward'");
    EXPECT(SBX_STEP_RLIMIT, EPERM, 1, "set rlimit RLIMIT_NOFILE");
    EXPECT(SBX_STEP_RLIMIT, EPERM, 0, "set rlimit RLIMIT_CORE");
    EXPECT(SBX_STEP_CWD, ENOENT, 0, "change to cwd '/srv/app'");
    EXPECT(SBX_STEP_SETUID, EPERM, 0, "set uid 1000");
    EXPECT(SBX_STEP_SETGID, EPERM, 0, "set gid 1001");
    EXPECT(SBX_STEP_PIVOT_ROOT, EINVAL, 0, "pivot_root");
    EXPECT(SBX_STEP_HOSTNAME, EPERM, 0, "set hostname");
}

static void
test_cwd_outside_root_is_a_user_error(void **state)
{
    struct result r = to_error(SBX_STEP_CWD_OUTSIDE, EXDEV, 0);

    assert_string_equal(r.msg, "cwd '/srv/app' is outside the container root");
    assert_int_equal(r.code, 0);
    result_free(&r);
}

/* A getcwd that fails (a seccomp profile denying it) is said as such, with its errno, not as
 * a cwd outside the root. */
static void
test_failed_getcwd_is_named(void **state)
{
    struct result r = to_error(SBX_STEP_CWD_CHECK, EPERM, 0);

    assert_non_null(strstr(r.msg, "cwd '/srv/app': getcwd failed"));
    assert_null(strstr(r.msg, "is outside"));
    assert_int_equal(r.code, EPERM);
    result_free(&r);
}

static void
test_every_step_has_a_name(void **state)
{
    for (int step = 0; step < SBX_STEP__MAX; step++) {
        struct result r = to_error(step, EIO, 0);
        bool unknown = strstr(r.msg, "unknown step") != NULL || r.msg[0] == '\0';
        result_free(&r);
        if (unknown)
            fail_msg("step %d has no name", step);
    }
}

static void
test_bad_index_or_step_does_not_crash(void **state)
{
    /* The record comes from another process: never trust its index. */
    EXPECT(SBX_STEP_MOUNT, EPERM, 4, "mount");
    EXPECT(SBX_STEP_MOUNT, EPERM, -1, "mount");
    EXPECT(SBX_STEP_MOUNT, EPERM, INT32_MAX, "mount");
    EXPECT(SBX_STEP_DEVICE, EPERM, 1, "create device");
    EXPECT(SBX_STEP_MASK_PATH, EPERM, 2, "mask path");
    EXPECT(SBX_STEP_SYSCTL, EPERM, -5, "set sysctl");
    EXPECT(SBX_STEP_RLIMIT, EPERM, 2, "set rlimit");
    EXPECT(SBX_STEP_SETNS, EPERM, SBX_NS_COUNT, "join namespace");
    EXPECT(SBX_STEP__MAX, EPERM, 0, "unknown step");
    EXPECT(-1, EPERM, 0, "unknown step");
    EXPECT(INT32_MAX, EPERM, 0, "unknown step");
}

static void
test_msg_round_trip_over_seqpacket(void **state)
{
    int sv_[2];
    struct sbx_msg m;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv_), 0);
    assert_int_equal(sbx_msg_send(sv_[1], SBX_MSG_ERROR, SBX_STEP_MOUNT, ENODEV, 3), 0);
    assert_int_equal(sbx_msg_recv(sv_[0], &m), 0);
    assert_int_equal(m.kind, SBX_MSG_ERROR);
    assert_int_equal(m.step, SBX_STEP_MOUNT);
    assert_int_equal(m.err, ENODEV);
    assert_int_equal(m.index, 3);

    /* The child died without a word: EOF. */
    close(sv_[1]);
    assert_int_equal(sbx_msg_recv(sv_[0], &m), -EPIPE);
    /* Sending to a dead peer is an error, not SIGPIPE. */
    assert_int_equal(sbx_msg_send(sv_[0], SBX_MSG_GO, 0, 0, 0), -EPIPE);
    close(sv_[0]);
}

static void
test_msg_recv_rejects_short_record(void **state)
{
    int sv_[2];
    struct sbx_msg m;
    int32_t half[2] = {SBX_MSG_READY, 0};

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv_), 0);
    assert_int_equal(send(sv_[1], half, sizeof(half), 0), (ssize_t)sizeof(half));
    assert_int_equal(sbx_msg_recv(sv_[0], &m), -EIO);
    close(sv_[0]);
    close(sv_[1]);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
    const struct CMUnitTest tests[] = {
        T(test_mount_step_names_the_mount),
        T(test_mount_steps_name_source_or_type),
        T(test_exec_not_found),
        T(test_exec_failure_carries_errno),
        T(test_other_steps_name_their_item),
        T(test_cwd_outside_root_is_a_user_error),
        T(test_failed_getcwd_is_named),
        T(test_every_step_has_a_name),
        T(test_bad_index_or_step_does_not_crash),
        T(test_msg_round_trip_over_seqpacket),
        T(test_msg_recv_rejects_short_record),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
