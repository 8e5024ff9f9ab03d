/* SPDX-License-Identifier: Apache-2.0 */
/* Layers as untrusted input: whiteouts, opaque directories, and every escape refused. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "img-internal.h"
#include "util.h"

struct entry {
    const char *name;
    char type;        /* f file, d dir, l symlink, h hardlink, c char device */
    const char *data; /* file content, or link target */
    int64_t size;     /* -1: strlen(data) */
};

struct fx {
    char dir[64];
    char *root;
    int rootfd;
};

static int
setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/husk-test-layer.XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    fx->root = xasprintf("%s/root", fx->dir);
    if (mkdir(fx->root, 0755) < 0)
        return -1;
    fx->rootfd = open(fx->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    *state = fx;
    return fx->rootfd < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    close(fx->rootfd);
    rm_rf_at(AT_FDCWD, fx->dir);
    free(fx->root);
    free(fx);
    return 0;
}

/* A tar of the entries in a temporary file; returns its fd at offset 0. */
static int
make_tar(const struct entry *es, size_t n)
{
    char path[] = "/tmp/husk-test-layer-tar.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, es[i].name);
        archive_entry_set_perm(e, es[i].type == 'd' ? 0755 : 0644);
        switch (es[i].type) {
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, es[i].size >= 0 ? es[i].size : (int64_t)strlen(es[i].data));
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, es[i].data);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, es[i].data);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdev(e, makedev(1, 3));
            break;
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (es[i].type == 'f' && es[i].size < 0)
            archive_write_data(a, es[i].data, strlen(es[i].data));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static int
apply(struct fx *fx, const struct entry *es, size_t n, struct img_warnings *w,
      struct husk_error **err)
{
    struct img_limits lim = {.max_file = 1 << 20, .max_total = 4 << 20, .max_entries = 100};
    uint64_t total = 0;
    cleanup_fd int fd = make_tar(es, n);
    return img_layer_apply(fx->rootfd, fd, IMG_COMP_NONE, "layer", &lim, &total, w, err);
}

static bool
exists(struct fx *fx, const char *rel)
{
    struct stat st;
    return fstatat(fx->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
test_whiteouts_and_opaque(void **state)
{
    struct fx *fx = *state;
    const struct entry lower[] = {
        {"a", 'd', NULL, 0},          {"a/x", 'f', "x", -1},   {"a/y", 'f', "y", -1},
        {"c", 'd', NULL, 0},          {"c/old", 'f', "o", -1}, {"c/sub", 'd', NULL, 0},
        {"c/sub/deep", 'f', "d", -1}, {"gone", 'f', "g", -1},
    };
    const struct entry upper[] = {
        {"c/new", 'f', "n", -1},  {"c/.wh..wh..opq", 'f', "", -1}, {".wh.gone", 'f', "", -1},
        {"a/.wh.x", 'f', "", -1}, {"a/link", 'h', "a/y", 0},
    };
    assert_int_equal(apply(fx, lower, ARRAY_SIZE(lower), NULL, NULL), 0);
    assert_int_equal(apply(fx, upper, ARRAY_SIZE(upper), NULL, NULL), 0);
    assert_false(exists(fx, "gone"));
    assert_false(exists(fx, "a/x"));
    assert_true(exists(fx, "a/y") && exists(fx, "a/link"));
    assert_true(exists(fx, "c/new"));
    assert_false(exists(fx, "c/old") || exists(fx, "c/sub"));
    assert_false(exists(fx, ".wh.gone") || exists(fx, "c/.wh..wh..opq"));
}

static void
expect_refused(struct fx *fx, const struct entry *es, size_t n, const char *needle)
{
    struct husk_error *err = NULL;
    assert_true(apply(fx, es, n, NULL, &err) < 0);
    assert_non_null(err);
    if (strstr(err->msg, needle) == NULL)
        fail_msg("'%s' not in '%s'", needle, err->msg);
    husk_error_freep(&err);
}

static void
test_escapes_refused(void **state)
{
    struct fx *fx = *state;
    const struct entry dotdot[] = {{"../outside", 'f', "x", -1}};
    const struct entry climb[] = {{"d", 'd', NULL, 0}, {"d/up", 'l', "../../..", 0}};
    const struct entry hard[] = {{"h", 'h', "../../etc/passwd", 0}};
    const struct entry missing[] = {{"h", 'h', "no/such", 0}};
    const struct entry big[] = {{"big", 'f', "", 2 << 20}};
    expect_refused(fx, dotdot, 1, "entry '../outside': the path leaves the root");
    expect_refused(fx, climb, 2, "symlink 'd/up' -> '../../..' points outside the root");
    expect_refused(fx, hard, 1, "hardlink 'h'");
    expect_refused(fx, missing, 1, "target is not in the image");
    expect_refused(fx, big, 1, "entry 'big'");
    cleanup_free char *outside = xasprintf("%s/outside", fx->dir);
    assert_int_equal(access(outside, F_OK), -1);
}

static void
test_symlink_resolves_inside(void **state)
{
    struct fx *fx = *state;
    /* "etc" points at the fixture's own directory on the host: the file must land inside. */
    const struct entry es[] = {
        {"etc", 'l', fx->dir, 0},          {"x", 'd', NULL, 0},   {"etc/x", 'l', "/x", 0},
        {"etc/x/file", 'f', "inside", -1}, {"dev", 'd', NULL, 0}, {"dev/null", 'c', NULL, 0},
    };
    struct img_warnings w = {0};
    struct husk_error *err = NULL;
    /* etc -> /tmp/husk-test-layer.X does not exist inside: refused, nothing written outside. */
    assert_true(apply(fx, es, 4, &w, &err) < 0);
    husk_error_freep(&err);
    cleanup_free char *host = xasprintf("%s/x/file", fx->dir);
    assert_int_equal(access(host, F_OK), -1);

    const struct entry es2[] = {
        {"etc", 'l', "/", 0},  {"x", 'd', NULL, 0},        {"etc/x/file", 'f', "inside", -1},
        {"dev", 'd', NULL, 0}, {"dev/null", 'c', NULL, 0},
    };
    assert_int_equal(apply(fx, es2, ARRAY_SIZE(es2), &w, NULL), 0);
    assert_true(exists(fx, "x/file"));
    assert_false(exists(fx, "dev/null"));
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.v[0], "'dev/null'"));
    img_warnings_clear(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whiteouts_and_opaque, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_resolves_inside, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
