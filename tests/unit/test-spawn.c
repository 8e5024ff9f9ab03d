/* SPDX-License-Identifier: Apache-2.0 */
/* sbx_spawn: joins through a pidfd (the namespaces are that process's whatever the paths say:
 * exec checks the container's init, then joins it, a pid reused in between must not count),
 * the exec stub's error report, and the first layout of the options. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "husk/sandbox.h"
#include "syscalls.h"
#include "util.h"

/* A process in a network namespace of its own, waiting on a pipe; its pidfd. */
struct other {
    pid_t pid;
    int pidfd, hold;
};

static int
other_start(struct other *o)
{
    int hold[2], ready[2];
    char c;
    if (pipe2(hold, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
        return -1;
    o->pid = fork();
    if (o->pid == 0) {
        close(hold[1]);
        close(ready[0]);
        c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
        (void)!write(ready[1], &c, 1);
        (void)!read(hold[0], &c, 1);
        _exit(0);
    }
    close(hold[0]);
    close(ready[1]);
    o->hold = hold[1];
    o->pidfd = sys_pidfd_open(o->pid, 0);
    bool ok = read(ready[0], &c, 1) == 1 && c == 'y';
    close(ready[0]);
    return o->pidfd < 0 || !ok ? -1 : 0;
}

static void
other_stop(struct other *o)
{
    close(o->hold);
    waitpid(o->pid, NULL, 0);
}

static char *
ns_link(const char *path)
{
    char buf[64];
    ssize_t n = readlink(path, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    return xstrdup(buf);
}

/* Spawn readlink of its own net namespace, joining from pidfd with a decoy path. The output,
 * or NULL when the spawn failed (err set). */
static char *
spawn_readlink(int pidfd, struct husk_error **err)
{
    char *args[] = {"/bin/sh", "-c", "readlink /proc/self/ns/net", NULL};
    char *env[] = {"PATH=/usr/bin:/bin", NULL};
    struct sbx_config cfg = {.process = {.args = args, .env = env, .umask = -1}};
    cfg.ns[SBX_NS_NET] = (struct sbx_ns){.enabled = true, .path = "/proc/self/ns/net"};
    struct sbx_spawn_opts so = sbx_spawn_opts_init();
    so.join_pidfd = pidfd;
    struct sbx_child *c = NULL;
    int out[2], saved = dup(1), status;
    assert_int_equal(pipe2(out, 0), 0);
    dup2(out[1], 1);
    close(out[1]);
    int r = sbx_spawn(&cfg, &so, &c, err);
    if (r == 0)
        r = sbx_child_start(c, &cfg, err);
    dup2(saved, 1);
    close(saved);
    char buf[64] = {0};
    if (r == 0) {
        sbx_child_wait(c, &status, NULL);
        ssize_t n = read(out[0], buf, sizeof(buf) - 1);
        assert_true(n > 0);
        buf[strcspn(buf, "\n")] = '\0';
    }
    close(out[0]);
    sbx_child_free(c);
    return r == 0 ? xstrdup(buf) : NULL;
}

static void
test_join_follows_the_pidfd_not_the_path(void **state)
{
    struct other o = {0};
    (void)state;
    if (geteuid() != 0)
        skip(); /* setns into a network namespace needs CAP_SYS_ADMIN */
    assert_int_equal(other_start(&o), 0);
    cleanup_free char *mine = ns_link("/proc/self/ns/net");
    cleanup_free char *path = xasprintf("/proc/%d/ns/net", o.pid);
    cleanup_free char *theirs = ns_link(path);
    assert_string_not_equal(mine, theirs);
    cleanup_free char *got = spawn_readlink(o.pidfd, NULL);
    assert_non_null(got);
    assert_string_equal(got, theirs);
    other_stop(&o);

    /* Gone since its pidfd was opened: no join at all, whatever the path or a new owner of
     * the pid would give. */
    struct husk_error *err = NULL;
    assert_null(spawn_readlink(o.pidfd, &err));
    assert_non_null(err);
    assert_int_equal(err->code, ESRCH);
    husk_error_free(err);
    close(o.pidfd);
}

/* Spawn and start args with no namespaces; the exit status, or -1 with *err set. */
static int
spawn_plain(char **args, const struct sbx_spawn_opts *so, struct husk_error **err)
{
    char *env[] = {"PATH=/usr/bin:/bin", NULL};
    struct sbx_config cfg = {.process = {.args = args, .env = env, .umask = -1}};
    struct sbx_child *c = NULL;
    int status = -1;
    int r = sbx_spawn(&cfg, so, &c, err);
    if (r == 0)
        r = sbx_child_start(c, &cfg, err);
    if (r == 0)
        sbx_child_wait(c, &status, NULL);
    sbx_child_free(c);
    return r < 0 ? -1 : status;
}

/* The program runs through the exec stub: when its execve fails, the stub's record still names
 * the program and the errno, as a direct execve did. */
static void
test_exec_failure_through_the_stub_is_reported(void **state)
{
    (void)state;
    char path[] = "/tmp/husk-test-spawn-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a program\n", 14), 14);
    fchmod(fd, 0755);
    close(fd);
    char *args[] = {path, NULL};
    struct sbx_spawn_opts so = sbx_spawn_opts_init();
    struct husk_error *err = NULL;
    assert_int_equal(spawn_plain(args, &so, &err), -1);
    unlink(path);
    assert_non_null(err);
    assert_int_equal(err->code, ENOEXEC);
    assert_non_null(strstr(err->msg, path));
    husk_error_free(err);

    char *ok[] = {"/bin/true", NULL};
    assert_int_equal(spawn_plain(ok, &so, NULL), 0);
}

/* A zero-initialised struct (abi 0, as src/image/trace.c writes it) keeps its first meaning:
 * 0 is "none" for rootfs_image_fd, join_pidfd, exec_fd and rootfs_fd, not fd 0. */
static void
test_zero_initialised_options_mean_none(void **state)
{
    (void)state;
    char *args[] = {"/bin/true", NULL};
    struct sbx_spawn_opts so = {
        .start_listen_fd = -1, .console_fd = -1, .seccomp_listener_fd = -1, .cgroup_fd = -1};
    struct husk_error *err = NULL;
    assert_int_equal(spawn_plain(args, &so, &err), 0);
    assert_null(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_follows_the_pidfd_not_the_path),
        cmocka_unit_test(test_exec_failure_through_the_stub_is_reported),
        cmocka_unit_test(test_zero_initialised_options_mean_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
