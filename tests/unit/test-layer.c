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
    char type; /* f file, z file of `size` zeros, d dir, l symlink, h hardlink, c char device */
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

/* A tar (gzip-compressed when asked) of the entries in a temporary file; its fd at offset 0. */
static int
make_tar_z(const struct entry *es, size_t n, bool gzip)
{
    char path[] = "/tmp/husk-test-layer-tar.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip)
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, es[i].name);
        archive_entry_set_perm(e, es[i].type == 'd' ? 0755 : 0644);
        switch (es[i].type) {
        case 'f':
        case 'z':
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
        static const char zeros[65536];
        for (int64_t left = es[i].type == 'z' ? es[i].size : 0; left > 0;) {
            size_t k = left < (int64_t)sizeof(zeros) ? (size_t)left : sizeof(zeros);
            assert_int_equal(archive_write_data(a, zeros, k), (la_ssize_t)k);
            left -= (int64_t)k;
        }
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static int
make_tar(const struct entry *es, size_t n)
{
    return make_tar_z(es, n, false);
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

/* ".wh..", ".wh..." and ".wh." name no entry: refused, and the directory holding the root (the
 * fixture's dir, with a canary) keeps everything. */
static void
test_whiteout_of_dot_and_dotdot_refused(void **state)
{
    struct fx *fx = *state;
    cleanup_free char *canary = xasprintf("%s/canary", fx->dir);
    cleanup_fd int c = open(canary, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(c >= 0);
    const struct entry files[] = {{"keep", 'f', "k", -1}, {"d", 'd', NULL, 0}};
    assert_int_equal(apply(fx, files, ARRAY_SIZE(files), NULL, NULL), 0);
    static const char *const bad[] = {".wh...", ".wh..", ".wh.", "d/.wh...", "d/.wh.."};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const struct entry wh[] = {{bad[i], 'f', "", -1}};
        expect_refused(fx, wh, 1, "is not the name of an entry");
    }
    assert_int_equal(access(canary, F_OK), 0);
    assert_true(exists(fx, "keep") && exists(fx, "d"));
    /* A whiteout's name as a directory (found by fuzz-tar): it would stay in the root. */
    const struct entry under[] = {{"d/.wh.x/y", 'f', "y", -1}};
    expect_refused(fx, under, 1, "is a whiteout, not a directory");
    assert_false(exists(fx, "d/.wh.x"));
}

/* "a -> ." puts "a/b/link" in b, one level below the root: "../../x" leaves it from there. */
static void
test_symlink_through_parent_symlink_refused(void **state)
{
    struct fx *fx = *state;
    const struct entry es[] = {{"a", 'l', ".", 0}, {"a/b/link", 'l', "../../x", 0}};
    expect_refused(fx, es, ARRAY_SIZE(es), "symlink 'a/b/link' -> '../../x' points outside");
    assert_false(exists(fx, "b/link"));
    /* The same target from where the path says it is stays inside. */
    const struct entry ok[] = {{"c", 'd', NULL, 0}, {"c/b/link", 'l', "../../x", 0}};
    assert_int_equal(apply(fx, ok, ARRAY_SIZE(ok), NULL, NULL), 0);
    assert_true(exists(fx, "c/b/link"));
    /* A hardlink gives that symlink a name at the top, where its text climbs out. */
    const struct entry hard[] = {{"h", 'h', "c/b/link", 0}};
    expect_refused(fx, hard, 1, "hardlink 'h' -> 'c/b/link'");
    assert_false(exists(fx, "h"));
}

static int
apply_gz(struct fx *fx, const struct entry *es, size_t n, const struct img_limits *lim,
         struct husk_error **err)
{
    uint64_t total = 0;
    cleanup_fd int fd = make_tar_z(es, n, true);
    return img_layer_apply(fx->rootfd, fd, IMG_COMP_GZIP, "layer", lim, &total, NULL, err);
}

/* 16 MiB of zeros gzip to about 16 KiB: over a ratio of 100, a decompression bomb. Allowed,
 * the zeros become a hole rather than 16 MiB of disk. */
static void
test_decompression_bomb_refused_and_zeros_sparse(void **state)
{
    struct fx *fx = *state;
    const struct entry es[] = {{"zeros", 'z', NULL, 16 << 20}};
    struct img_limits lim = {.max_file = 1ull << 30,
                             .max_total = 1ull << 30,
                             .max_entries = 10,
                             .max_ratio = 100,
                             .ratio_floor = 1 << 20};
    struct husk_error *err = NULL;
    assert_true(apply_gz(fx, es, 1, &lim, &err) < 0);
    assert_non_null(err);
    if (strstr(err->msg, "decompression bomb") == NULL)
        fail_msg("'%s'", err->msg);
    husk_error_freep(&err);

    rm_rf_at(fx->rootfd, "zeros");
    lim.max_ratio = 0;
    assert_int_equal(apply_gz(fx, es, 1, &lim, NULL), 0);
    struct stat st;
    assert_int_equal(fstatat(fx->rootfd, "zeros", &st, 0), 0);
    assert_int_equal(st.st_size, 16 << 20);
    assert_true(st.st_blocks * 512 < (1 << 20));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whiteouts_and_opaque, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_resolves_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteout_of_dot_and_dotdot_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_through_parent_symlink_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_decompression_bomb_refused_and_zeros_sparse, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
