/* SPDX-License-Identifier: Apache-2.0 */
/* Core helpers: strict number parsing, strv, and the file helpers' error paths (syscalls wrapped).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

/*
 * Syscall injection (-Wl,--wrap=write,read,close,renameat). Each wrapper passes through to the
 * real call unless a test scripted a failure; the fixture resets the script for every test.
 */
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_read(int fd, void *buf, size_t n);
int __real_close(int fd);
int __real_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n);
int __wrap_close(int fd);
int __wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

#define SCRIPT_MAX 16

/* One entry per call: > 0 caps the byte count (a short transfer), < 0 fails with -errno. */
struct script {
    int step[SCRIPT_MAX];
    size_t n, next;
    unsigned calls; /* every call while a script is loaded, scripted or not */
};

static struct script write_script, read_script;
static int close_errno;    /* next close() closes the fd but reports this errno */
static int renameat_errno; /* every renameat() fails with this errno */

static void
script_load(struct script *s, size_t n, const int *steps)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->step, steps, n * sizeof(int));
    s->n = n;
}

/* 0: pass through; otherwise the capped length, or -1 with errno set. */
static ssize_t
script_next(struct script *s, size_t *len)
{
    if (s->n == 0)
        return 0;
    s->calls++;
    if (s->next >= s->n)
        return 0;
    int v = s->step[s->next++];
    if (v < 0) {
        errno = -v;
        return -1;
    }
    if ((size_t)v < *len)
        *len = (size_t)v;
    return 0;
}

ssize_t
__wrap_write(int fd, const void *buf, size_t n)
{
    if (script_next(&write_script, &n) < 0)
        return -1;
    return __real_write(fd, buf, n);
}

ssize_t
__wrap_read(int fd, void *buf, size_t n)
{
    if (script_next(&read_script, &n) < 0)
        return -1;
    return __real_read(fd, buf, n);
}

int
__wrap_close(int fd)
{
    int r = __real_close(fd);
    if (close_errno && r == 0) {
        /* As NFS does: the fd is gone, but the data may not have reached the server. */
        errno = close_errno;
        close_errno = 0;
        return -1;
    }
    return r;
}

int
__wrap_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    if (renameat_errno) {
        errno = renameat_errno;
        return -1;
    }
    return __real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

/* A private temp directory per test. */
struct fx {
    char dir[64];
    int dirfd;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) < 0 ? -1 : 0;
}

static int
setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));

    memset(&write_script, 0, sizeof(write_script));
    memset(&read_script, 0, sizeof(read_script));
    close_errno = renameat_errno = 0;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/husk-test-util.XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    fx->dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fx->dirfd < 0)
        return -1;
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    memset(&write_script, 0, sizeof(write_script));
    memset(&read_script, 0, sizeof(read_script));
    close_errno = renameat_errno = 0;
    __real_close(fx->dirfd);
    int r = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return r;
}

/* Helpers that go straight to the kernel, so the wrapped calls only see husk's own use. */
static void
put_file(struct fx *fx, const char *path, const char *data)
{
    cleanup_free char *full = xasprintf("%s/%s", fx->dir, path);
    FILE *f = fopen(full, "we");
    assert_non_null(f);
    assert_int_equal(fputs(data, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Small files only, into a caller's buffer: a failed assertion then leaks nothing. */
#define FILE_BUF 256

static const char *
get_file(struct fx *fx, const char *path, char *buf)
{
    int fd = openat(fx->dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = __real_read(fd, buf, FILE_BUF - 1);
    __real_close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static bool
exists(struct fx *fx, const char *path)
{
    struct stat st;
    return fstatat(fx->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
fx_mkdir(struct fx *fx, const char *path)
{
    cleanup_free char *p = xstrdup(path);
    for (char *s = p;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdirat(fx->dirfd, p, 0755) < 0 && errno != EEXIST)
                fail_msg("mkdir %s: %s", p, strerror(errno));
            *s = c;
            if (c == '\0')
                break;
        }
    }
}

/* ---- numbers ---------------------------------------------------------------------------- */

static void
test_parse_u64_accepts_whole_decimal(void **state)
{
    uint64_t v = 1;

    assert_int_equal(parse_u64("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(parse_u64("42", &v), 0);
    assert_true(v == 42);
    assert_int_equal(parse_u64("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
}

static void
test_parse_u64_rejects_junk_and_overflow(void **state)
{
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "1.0", "-0"};
    uint64_t v = 7;

    assert_int_equal(parse_u64(NULL, &v), -EINVAL);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (parse_u64(bad[i], &v) != -EINVAL)
            fail_msg("parse_u64(\"%s\") was accepted", bad[i]);
    }
    assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
    assert_true(v == 7); /* *out is written only on success */
}

static void
test_parse_i64_accepts_sign_and_limits(void **state)
{
    int64_t v = 0;

    assert_int_equal(parse_i64("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(parse_i64("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(parse_i64("-17", &v), 0);
    assert_true(v == -17);
}

static void
test_parse_i64_rejects_junk_and_overflow(void **state)
{
    /* "Strict decimal parsing: the whole string" (util.h): no blanks on either side. */
    static const char *const bad[] = {"", "-", "+", "1.5", "5 ", "5\n", " 5", "\t5", "0x1", "1e3"};
    int64_t v = 7;

    assert_int_equal(parse_i64(NULL, &v), -EINVAL);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (parse_i64(bad[i], &v) != -EINVAL)
            fail_msg("parse_i64(\"%s\") was accepted", bad[i]);
    }
    assert_int_equal(parse_i64("9223372036854775808", &v), -ERANGE);
    assert_int_equal(parse_i64("-9223372036854775809", &v), -ERANGE);
    assert_true(v == 7);
}

/* ---- strings ---------------------------------------------------------------------------- */

static void
test_strv_dup_is_deep_and_terminated(void **state)
{
    char a[] = "a", b[] = "bb";
    char *src[] = {a, b, NULL};
    cleanup_strv char **copy = strv_dup(src);

    assert_int_equal(strv_len(copy), 2);
    assert_null(copy[2]);
    a[0] = 'x'; /* the copy owns its strings */
    assert_string_equal(copy[0], "a");
    assert_string_equal(copy[1], "bb");
    assert_ptr_not_equal(copy[1], b);
}

static void
test_strv_of_null_is_empty(void **state)
{
    cleanup_strv char **copy = strv_dup(NULL);

    assert_int_equal(strv_len(NULL), 0);
    assert_non_null(copy);
    assert_null(copy[0]);
}

static void
test_str_has_prefix(void **state)
{
    assert_true(str_has_prefix("RLIMIT_NOFILE", "RLIMIT_"));
    assert_true(str_has_prefix("abc", ""));
    assert_true(str_has_prefix("abc", "abc"));
    assert_false(str_has_prefix("ab", "abc"));
    assert_false(str_has_prefix("xabc", "abc"));
}

static void
test_xasprintf_and_xstrdup(void **state)
{
    cleanup_free char *s = xasprintf("%s[%zu].%s", "mounts", (size_t)3, "type");
    cleanup_free char *d = xstrdup(NULL);
    cleanup_free char *n = xstrndup("abcdef", 3);

    assert_string_equal(s, "mounts[3].type");
    assert_string_equal(d, "");
    assert_string_equal(n, "abc");
}

static void
test_now_ns_is_monotonic(void **state)
{
    uint64_t a = now_ns();
    uint64_t b = now_ns();

    assert_true(a > 0);
    assert_true(b >= a);
}

/* ---- write_all ---------------------------------------------------------------------------- */

static void
test_write_all_retries_eintr_and_short_writes(void **state)
{
    static const int steps[] = {-EINTR, 3, -EINTR, 2, 1};
    const char msg[] = "hello, world";
    char got[sizeof(msg)] = {0};
    int p[2];

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    script_load(&write_script, ARRAY_SIZE(steps), steps);
    assert_int_equal(write_all(p[1], msg, strlen(msg)), 0);
    /* 5 scripted calls move 6 bytes; one more moves the remaining 6. */
    assert_int_equal(write_script.calls, 6);
    assert_int_equal(__real_read(p[0], got, sizeof(got)), (ssize_t)strlen(msg));
    assert_string_equal(got, msg);
    __real_close(p[0]);
    __real_close(p[1]);
}

static void
test_write_all_returns_real_errors(void **state)
{
    static const int steps[] = {2, -ENOSPC};
    int p[2];

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    script_load(&write_script, ARRAY_SIZE(steps), steps);
    assert_int_equal(write_all(p[1], "abcdef", 6), -ENOSPC);
    assert_int_equal(write_script.calls, 2);
    __real_close(p[0]);
    __real_close(p[1]);
}

static void
test_write_all_reports_closed_fd(void **state)
{
    assert_int_equal(write_all(-1, "x", 1), -EBADF);
    assert_int_equal(write_all(-1, "", 0), 0); /* nothing to write: no syscall at all */
}

/* ---- read_file_at ------------------------------------------------------------------------- */

static void
test_read_file_at_reads_large_file_across_short_reads(void **state)
{
    struct fx *fx = *state;
    static const int steps[] = {-EINTR, 1000, -EINTR, 1, 4095, 4096, 777};
    cleanup_free char *data = xmalloc(10001);
    char *out = NULL;
    size_t len = 0;

    for (size_t i = 0; i < 10000; i++)
        data[i] = (char)('a' + i % 26);
    data[10000] = '\0';
    put_file(fx, "big", data);
    script_load(&read_script, ARRAY_SIZE(steps), steps);
    assert_int_equal(read_file_at(fx->dirfd, "big", &out, &len), 0);
    assert_int_equal(len, 10000);
    assert_string_equal(out, data); /* and NUL-terminated */
    free(out);
}

static void
test_read_file_at_empty_file(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    size_t len = 99;

    put_file(fx, "empty", "");
    assert_int_equal(read_file_at(fx->dirfd, "empty", &out, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
}

static void
test_read_file_at_errors_leave_out_untouched(void **state)
{
    struct fx *fx = *state;
    static const int steps[] = {100, -EIO};
    char sentinel;
    char *out = &sentinel;

    assert_int_equal(read_file_at(fx->dirfd, "missing", &out, NULL), -ENOENT);
    assert_ptr_equal(out, &sentinel);

    fx_mkdir(fx, "adir");
    assert_int_equal(read_file_at(fx->dirfd, "adir", &out, NULL), -EISDIR);
    assert_ptr_equal(out, &sentinel);

    put_file(fx, "f",
             "some content that is longer than one hundred bytes, some content that is "
             "longer than one hundred bytes");
    script_load(&read_script, ARRAY_SIZE(steps), steps);
    assert_int_equal(read_file_at(fx->dirfd, "f", &out, NULL), -EIO); /* and no leak */
    assert_ptr_equal(out, &sentinel);
}

/* read_fd_all stops at its limit: a pipe that never ends cannot exhaust memory. */
static void
test_read_fd_all_limit(void **state)
{
    (void)state;
    int p[2];
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(__real_write(p[1], "0123456789", 10), 10);
    __real_close(p[1]);
    assert_int_equal(read_fd_all(p[0], 9, &out, &len), -EFBIG);
    assert_null(out);
    __real_close(p[0]);

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(__real_write(p[1], "0123456789", 10), 10);
    __real_close(p[1]);
    assert_int_equal(read_fd_all(p[0], 10, &out, &len), 0);
    assert_int_equal(len, 10);
    assert_string_equal(out, "0123456789");
    free(out);
    __real_close(p[0]);
}

/* ---- idmap_parse --------------------------------------------------------------------------- */

static void
test_idmap_parse(void **state)
{
    (void)state;
    struct id_range r[4];
    size_t n = 9;
    static const char identity[] = "         0          0 4294967295\n";
    assert_int_equal(idmap_parse(identity, strlen(identity), r, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_true(r[0].inner == 0 && r[0].outer == 0 && r[0].count == 4294967295u);
    static const char two[] = "0 100000 65536\n\t65536  1000000 1";
    assert_int_equal(idmap_parse(two, strlen(two), r, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_true(r[1].inner == 65536 && r[1].outer == 1000000 && r[1].count == 1);
    assert_int_equal(idmap_parse("", 0, r, 4, &n), 0);
    assert_int_equal(n, 0);
    static const char *const bad[] = {"0 0 0\n",          "-1 0 1\n",   "0 0 4294967297\n",
                                      "4294967295 0 2\n", "0 0\n",      "0 0 1 junk\n",
                                      "0 0 1\n\n",        "00 0x1 1\n", "4294967296 0 1\n"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (idmap_parse(bad[i], strlen(bad[i]), r, 4, &n) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(idmap_parse("0 0 1\n1 1 1\n", 12, r, 1, &n), -E2BIG);
}

/* ---- write_file_at ------------------------------------------------------------------------ */

static void
test_write_file_at_truncates(void **state)
{
    struct fx *fx = *state;

    put_file(fx, "knob", "a much longer old value");
    assert_int_equal(write_file_at(fx->dirfd, "knob", "42"), 0);
    char got_buf[FILE_BUF];
    const char *got = get_file(fx, "knob", got_buf);
    assert_string_equal(got, "42");
}

static void
test_write_file_at_does_not_create(void **state)
{
    struct fx *fx = *state;

    /* cgroup and /proc knobs exist or the kernel lacks the feature: never create a plain file. */
    assert_int_equal(write_file_at(fx->dirfd, "nope", "1"), -ENOENT);
    assert_false(exists(fx, "nope"));
}

static void
test_write_file_at_reports_write_error(void **state)
{
    struct fx *fx = *state;
    static const int steps[] = {-EINVAL};

    put_file(fx, "knob", "");
    script_load(&write_script, ARRAY_SIZE(steps), steps);
    assert_int_equal(write_file_at(fx->dirfd, "knob", "max"), -EINVAL);
}

/* ---- write_file_atomic -------------------------------------------------------------------- */

static void
test_atomic_creates_with_mode_0644(void **state)
{
    struct fx *fx = *state;
    struct stat st;
    mode_t old = umask(022);

    assert_int_equal(write_file_atomic(fx->dirfd, "state.json", "{}", 2), 0);
    umask(old);
    char got_buf[FILE_BUF];
    const char *got = get_file(fx, "state.json", got_buf);
    assert_string_equal(got, "{}");
    assert_int_equal(fstatat(fx->dirfd, "state.json", &st, 0), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_false(exists(fx, "state.json.tmp"));
}

static void
test_atomic_replaces_existing_and_honours_len(void **state)
{
    struct fx *fx = *state;

    put_file(fx, "f", "old content, longer than the new one");
    /* len, not strlen: only the first 3 bytes. */
    assert_int_equal(write_file_atomic(fx->dirfd, "f", "newXXX", 3), 0);
    char got_buf[FILE_BUF];
    const char *got = get_file(fx, "f", got_buf);
    assert_string_equal(got, "new");
    assert_false(exists(fx, "f.tmp"));
}

static void
test_atomic_survives_short_writes(void **state)
{
    struct fx *fx = *state;
    static const int steps[] = {1, -EINTR, 1, 1, -EINTR};

    script_load(&write_script, ARRAY_SIZE(steps), steps);
    assert_int_equal(write_file_atomic(fx->dirfd, "pid", "123456", 6), 0);
    char got_buf[FILE_BUF];
    const char *got = get_file(fx, "pid", got_buf);
    assert_string_equal(got, "123456");
}

static void
test_atomic_rename_failure_removes_temp(void **state)
{
    struct fx *fx = *state;

    put_file(fx, "state.json", "old");
    renameat_errno = EXDEV;
    assert_int_equal(write_file_atomic(fx->dirfd, "state.json", "new", 3), -EXDEV);
    assert_false(exists(fx, "state.json.tmp"));
    char got_buf[FILE_BUF];
    const char *got = get_file(fx, "state.json", got_buf);
    assert_string_equal(got, "old");
}

static void
test_atomic_write_failure_removes_temp(void **state)
{
    struct fx *fx = *state;
    static const int steps[] = {2, -ENOSPC};

    put_file(fx, "state.json", "old");
    script_load(&write_script, ARRAY_SIZE(steps), steps);
    assert_int_equal(write_file_atomic(fx->dirfd, "state.json", "new state", 9), -ENOSPC);
    assert_false(exists(fx, "state.json.tmp"));
    char got_buf[FILE_BUF];
    const char *got = get_file(fx, "state.json", got_buf);
    assert_string_equal(got, "old");
}

static void
test_atomic_close_failure_is_an_error(void **state)
{
    struct fx *fx = *state;

    /* A failed close can mean lost data (NFS, quota): the file must not replace the old one. */
    put_file(fx, "state.json", "old");
    close_errno = EIO;
    assert_int_equal(write_file_atomic(fx->dirfd, "state.json", "new", 3), -EIO);
    assert_false(exists(fx, "state.json.tmp"));
    char got_buf[FILE_BUF];
    const char *got = get_file(fx, "state.json", got_buf);
    assert_string_equal(got, "old");
}

static void
test_atomic_open_failure(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(write_file_atomic(fx->dirfd, "no/such/dir/f", "x", 1), -ENOENT);
    assert_int_equal(write_file_atomic(-1, "f", "x", 1), -EBADF);
}

static void
test_atomic_does_not_follow_symlink_at_temp_name(void **state)
{
    struct fx *fx = *state;

    /*
     * The pid file lands wherever --pid-file says, often a shared directory. Whoever can plant
     * PATH.tmp -> victim must not get husk (root) to truncate and write the victim.
     */
    put_file(fx, "victim", "precious");
    assert_int_equal(symlinkat("victim", fx->dirfd, "x.pid.tmp"), 0);
    int r = write_file_atomic(fx->dirfd, "x.pid", "4242", 4);
    char victim_buf[FILE_BUF];
    const char *victim = get_file(fx, "victim", victim_buf);
    assert_string_equal(victim, "precious");
    if (r == 0) {
        struct stat st;
        char got_buf[FILE_BUF];
        const char *got = get_file(fx, "x.pid", got_buf);
        assert_int_equal(fstatat(fx->dirfd, "x.pid", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_string_equal(got, "4242");
    }
}

/* ---- rm_rf_at ----------------------------------------------------------------------------- */

static void
test_rm_rf_removes_tree(void **state)
{
    struct fx *fx = *state;

    fx_mkdir(fx, "tree/a/b/c");
    fx_mkdir(fx, "tree/empty");
    put_file(fx, "tree/a/b/c/deep", "x");
    put_file(fx, "tree/a/top", "x");
    put_file(fx, "tree/file", "x");
    assert_int_equal(symlinkat("/etc", fx->dirfd, "tree/a/etc-link"), 0);
    assert_int_equal(symlinkat("dangling", fx->dirfd, "tree/dangling"), 0);
    assert_int_equal(mkfifoat(fx->dirfd, "tree/a/fifo", 0600), 0);
    assert_int_equal(rm_rf_at(fx->dirfd, "tree"), 0);
    assert_false(exists(fx, "tree"));
}

static void
test_rm_rf_missing_is_success(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(rm_rf_at(fx->dirfd, "gone"), 0);
}

static void
test_rm_rf_regular_file(void **state)
{
    struct fx *fx = *state;

    put_file(fx, "plain", "x");
    assert_int_equal(rm_rf_at(fx->dirfd, "plain"), 0);
    assert_false(exists(fx, "plain"));
}

static void
test_rm_rf_does_not_follow_symlinks(void **state)
{
    struct fx *fx = *state;

    fx_mkdir(fx, "outside");
    put_file(fx, "outside/keep", "x");
    fx_mkdir(fx, "tree");
    assert_int_equal(symlinkat("../outside", fx->dirfd, "tree/link"), 0);
    assert_int_equal(symlinkat("outside", fx->dirfd, "toplink"), 0);

    assert_int_equal(rm_rf_at(fx->dirfd, "tree"), 0);
    assert_true(exists(fx, "outside/keep"));
    /* The path itself a symlink to a directory: the link goes, the target stays. */
    assert_int_equal(rm_rf_at(fx->dirfd, "toplink"), 0);
    assert_false(exists(fx, "toplink"));
    assert_true(exists(fx, "outside/keep"));
}

/* "." and ".." name the tree's container, not an entry of it: refused, nothing removed. */
static void
test_rm_rf_refuses_dot_and_dotdot(void **state)
{
    struct fx *fx = *state;
    static const char *const bad[] = {"", ".", "..", "tree/..", "tree/.", "tree/../..", "./"};

    fx_mkdir(fx, "tree/sub");
    put_file(fx, "canary", "x");
    put_file(fx, "tree/sub/keep", "x");
    cleanup_fd int tree = openat(fx->dirfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(tree >= 0);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(rm_rf_at(fx->dirfd, bad[i]), -EINVAL);
        assert_int_equal(rm_rf_at(tree, bad[i]), -EINVAL);
    }
    assert_true(exists(fx, "canary") && exists(fx, "tree/sub/keep"));
}

/* A relative path stays beneath dirfd: no "..", no symlink out of it. */
static void
test_rm_rf_resolves_beneath(void **state)
{
    struct fx *fx = *state;

    fx_mkdir(fx, "outside/victim");
    put_file(fx, "outside/victim/keep", "x");
    fx_mkdir(fx, "tree/a");
    assert_int_equal(symlinkat("../outside", fx->dirfd, "tree/out"), 0);
    cleanup_fd int tree = openat(fx->dirfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(tree >= 0);
    assert_int_equal(rm_rf_at(tree, "../outside/victim"), -EXDEV);
    assert_int_equal(rm_rf_at(tree, "out/victim"), -EXDEV);
    assert_int_equal(rm_rf_at(tree, "a/../../outside/victim"), -EXDEV);
    assert_true(exists(fx, "outside/victim/keep"));
    /* Staying inside is fine, "a/.." included. */
    fx_mkdir(fx, "tree/b/c");
    assert_int_equal(rm_rf_at(tree, "a/../b/c"), 0);
    assert_false(exists(fx, "tree/b/c"));
    assert_true(exists(fx, "tree/b"));
}

/* Run fn in a child with a private mount namespace: 0 passed, 77 no namespace, else failed. */
static int
in_mount_ns(struct fx *fx, int (*fn)(struct fx *))
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    pid_t pid = fork();
    int status = 0;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) < 0) {
            char map[64];
            if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                _exit(77);
            int n = snprintf(map, sizeof(map), "0 %u 1", uid);
            int fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
            if (fd < 0 || __real_write(fd, map, (size_t)n) != n)
                _exit(77);
            __real_close(fd);
            fd = open("/proc/self/setgroups", O_WRONLY | O_CLOEXEC);
            if (fd >= 0) {
                __real_write(fd, "deny", 4);
                __real_close(fd);
            }
            n = snprintf(map, sizeof(map), "0 %u 1", gid);
            fd = open("/proc/self/gid_map", O_WRONLY | O_CLOEXEC);
            if (fd < 0 || __real_write(fd, map, (size_t)n) != n)
                _exit(77);
            __real_close(fd);
        }
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            _exit(77);
        /* An fd from before unshare walks the old namespace's mounts: reopen. */
        fx->dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fx->dirfd < 0)
            _exit(3);
        _exit(fn(fx));
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static int
rm_rf_over_tmpfs(struct fx *fx)
{
    cleanup_free char *mnt = xasprintf("%s/tree/a/mnt", fx->dir);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") < 0)
        return 77;
    int fd = openat(fx->dirfd, "tree/a/mnt/keep", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return 3;
    __real_close(fd);
    int r = rm_rf_at(fx->dirfd, "tree");
    if (r >= 0)
        return 1;
    if (!exists(fx, "tree/a/mnt/keep"))
        return 2;
    return 0;
}

static void
test_rm_rf_stops_at_other_filesystem(void **state)
{
    struct fx *fx = *state;

    fx_mkdir(fx, "tree/a/mnt");
    put_file(fx, "tree/a/file", "x");
    int r = in_mount_ns(fx, rm_rf_over_tmpfs);
    if (r == 77)
        skip();
    if (r == 1)
        fail_msg("rm_rf_at reported success with a mount point inside the tree");
    if (r == 2)
        fail_msg("rm_rf_at deleted a file on a mounted tmpfs");
    assert_int_equal(r, 0);
}

static int
rm_rf_over_bind(struct fx *fx)
{
    cleanup_free char *src = xasprintf("%s/outside", fx->dir);
    cleanup_free char *dst = xasprintf("%s/tree/sub/bind", fx->dir);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
        return 77;
    return rm_rf_at(fx->dirfd, "tree") < 0 ? 0 : 1;
}

static void
test_rm_rf_stops_at_bind_mount_of_same_filesystem(void **state)
{
    struct fx *fx = *state;

    /*
     * A bind mount from the same filesystem has the same st_dev as the tree: only the mount
     * id tells it apart. The host directory behind it must come through untouched.
     */
    fx_mkdir(fx, "outside");
    put_file(fx, "outside/precious", "x");
    fx_mkdir(fx, "tree/sub/bind");
    int r = in_mount_ns(fx, rm_rf_over_bind);
    if (r == 77)
        skip();
    if (!exists(fx, "outside/precious"))
        fail_msg("rm_rf_at crossed a bind mount and deleted the host's outside/precious");
    if (r == 1)
        fail_msg("rm_rf_at reported success with a mount point inside the tree");
    assert_int_equal(r, 0);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_parse_u64_accepts_whole_decimal),
        T(test_parse_u64_rejects_junk_and_overflow),
        T(test_parse_i64_accepts_sign_and_limits),
        T(test_parse_i64_rejects_junk_and_overflow),
        T(test_strv_dup_is_deep_and_terminated),
        T(test_strv_of_null_is_empty),
        T(test_str_has_prefix),
        T(test_xasprintf_and_xstrdup),
        T(test_now_ns_is_monotonic),
        T(test_write_all_retries_eintr_and_short_writes),
        T(test_write_all_returns_real_errors),
        T(test_write_all_reports_closed_fd),
        T(test_read_file_at_reads_large_file_across_short_reads),
        T(test_read_file_at_empty_file),
        T(test_read_file_at_errors_leave_out_untouched),
        T(test_write_file_at_truncates),
        T(test_write_file_at_does_not_create),
        T(test_write_file_at_reports_write_error),
        T(test_atomic_creates_with_mode_0644),
        T(test_atomic_replaces_existing_and_honours_len),
        T(test_atomic_survives_short_writes),
        T(test_atomic_rename_failure_removes_temp),
        T(test_atomic_write_failure_removes_temp),
        T(test_atomic_close_failure_is_an_error),
        T(test_atomic_open_failure),
        T(test_atomic_does_not_follow_symlink_at_temp_name),
        T(test_rm_rf_removes_tree),
        T(test_rm_rf_missing_is_success),
        T(test_rm_rf_regular_file),
        T(test_rm_rf_does_not_follow_symlinks),
        T(test_read_fd_all_limit),
        T(test_idmap_parse),
        T(test_rm_rf_refuses_dot_and_dotdot),
        T(test_rm_rf_resolves_beneath),
        T(test_rm_rf_stops_at_other_filesystem),
        T(test_rm_rf_stops_at_bind_mount_of_same_filesystem),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
