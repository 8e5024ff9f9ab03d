/* SPDX-License-Identifier: Apache-2.0 */
/* ELF reading, ld.so.cache, $ORIGIN expansion, the closure in a sysroot, and path checks. */
#define _GNU_SOURCE
#include <elf.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "img-internal.h"
#include "util.h"

static char *
real(const char *path)
{
    char buf[PATH_MAX];
    assert_non_null(realpath(path, buf));
    return xstrdup(buf);
}

static bool
strv_has(char **v, const char *s)
{
    for (; v && *v; v++)
        if (strcmp(*v, s) == 0)
            return true;
    return false;
}

static void
test_elf_dynamic(void **state)
{
    cleanup_free char *ls = real("/bin/ls");
    cleanup_fd int fd = open(ls, O_RDONLY | O_CLOEXEC);
    cleanup_(img_elf_freep) struct img_elf *e = NULL;
    assert_int_equal(img_elf_read(fd, ls, &e, NULL), 0);
    assert_int_equal(e->cls, ELFCLASS64);
    assert_non_null(e->interp);
    assert_true(strstr(e->interp, "ld-linux") != NULL);
    assert_true(strv_has(e->needed, "libc.so.6"));
}

static void
test_elf_static_has_no_deps(void **state)
{
    if (access("/bin/busybox", R_OK) < 0)
        skip();
    cleanup_fd int fd = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
    cleanup_(img_elf_freep) struct img_elf *e = NULL;
    assert_int_equal(img_elf_read(fd, "/bin/busybox", &e, NULL), 0);
    assert_null(e->interp);
    assert_null(e->needed);
}

static int
temp_file(const void *data, size_t len)
{
    char path[] = "/tmp/husk-test-elf.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

static void
test_elf_refuses_non_elf_and_truncated(void **state)
{
    cleanup_fd int text = temp_file("#!/bin/sh\necho hi\n", 18);
    struct husk_error *err = NULL;
    struct img_elf *e = NULL;
    assert_int_equal(img_elf_read(text, "script", &e, &err), -ENOEXEC);
    assert_non_null(strstr(err->msg, "'script' is not an ELF file"));
    husk_error_freep(&err);

    /* The first 100 bytes of a real ELF: a header whose tables point past the end. */
    cleanup_free char *ls = real("/bin/ls");
    cleanup_fd int fd = open(ls, O_RDONLY | O_CLOEXEC);
    char head[100];
    assert_int_equal(read(fd, head, sizeof(head)), (ssize_t)sizeof(head));
    cleanup_fd int cut = temp_file(head, sizeof(head));
    assert_true(img_elf_read(cut, "cut", &e, &err) < 0);
    assert_null(e);
    assert_non_null(err);
    husk_error_freep(&err);
}

static void
test_elf_expand_tokens(void **state)
{
    struct img_elf e = {.cls = ELFCLASS64, .machine = EM_X86_64};
    cleanup_free char *a = img_elf_expand("$ORIGIN/../lib", "/opt/app/bin", &e);
    cleanup_free char *b = img_elf_expand("${ORIGIN}/x:$LIB", "/o", &e);
    cleanup_free char *c = img_elf_expand("/usr/$PLATFORM", "/o", &e);
    cleanup_free char *d = img_elf_expand("$ORIGINAL/x", "/o", &e);
    cleanup_free char *f = img_elf_expand("$NOPE/x", "/o", &e);
    assert_string_equal(a, "/opt/app/bin/../lib");
    assert_string_equal(b, "/o/x:lib/x86_64-linux-gnu");
    assert_string_equal(c, "/usr/x86_64");
    assert_null(d); /* $ORIGINAL is not $ORIGIN followed by "AL" */
    assert_null(f);
}

/* A cache in glibc's 1.1 format: header, entries, strings (offsets from the header). */
static size_t
make_cache(unsigned char *buf, size_t cap, const int32_t *flags, const uint64_t *hwcap,
           const char *const *names, size_t n)
{
    size_t strings = 48 + n * 24, off = strings;
    memset(buf, 0, cap);
    memcpy(buf, "glibc-ld.so.cache1.1", 20);
    uint32_t nlibs = (uint32_t)n;
    memcpy(buf + 20, &nlibs, 4);
    for (size_t i = 0; i < n; i++) {
        unsigned char *e = buf + 48 + i * 24;
        uint32_t key = (uint32_t)off;
        off += strlen(names[i]) + 1;
        uint32_t value = (uint32_t)off;
        cleanup_free char *path = xasprintf("/lib/%s", names[i]);
        memcpy(buf + key, names[i], strlen(names[i]) + 1);
        memcpy(buf + value, path, strlen(path) + 1);
        off += strlen(path) + 1;
        memcpy(e, &flags[i], 4);
        memcpy(e + 4, &key, 4);
        memcpy(e + 8, &value, 4);
        memcpy(e + 16, &hwcap[i], 8);
    }
    return off;
}

static void
test_ldcache_parse(void **state)
{
    unsigned char buf[1024];
    const int32_t flags[] = {0x0303, 0x0303, 0x0000};
    const uint64_t hwcap[] = {0, 1ull << 62, 0};
    const char *const names[] = {"libfoo.so.1", "libfoo.so.1", "libold.so"};
    size_t len = make_cache(buf, sizeof(buf), flags, hwcap, names, 3);
    struct img_ldcache c;
    /* The hwcap copy and the non-libc6 entry are left out. */
    assert_int_equal(img_ldcache_parse(buf, len, &c, NULL), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.v[0].soname, "libfoo.so.1");
    assert_string_equal(c.v[0].path, "/lib/libfoo.so.1");
    img_ldcache_clear(&c);

    struct husk_error *err = NULL;
    assert_true(img_ldcache_parse(buf, 60, &c, &err) < 0); /* entries cut off */
    husk_error_freep(&err);
    uint32_t bad = 5000; /* a string offset beyond the file */
    memcpy(buf + 48 + 4, &bad, 4);
    assert_true(img_ldcache_parse(buf, len, &c, &err) < 0);
    assert_non_null(strstr(err->msg, "outside"));
    husk_error_freep(&err);
    assert_true(img_ldcache_parse("garbage", 7, &c, &err) < 0);
    husk_error_freep(&err);
}

static void
test_ldcache_of_this_machine(void **state)
{
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    assert_int_equal(img_tree_new("/", &t, NULL), 0);
    const struct img_ldcache *c = img_tree_ldcache(t, NULL);
    assert_non_null(c);
    bool libc = false;
    for (size_t i = 0; i < c->n; i++)
        libc |= strcmp(c->v[i].soname, "libc.so.6") == 0;
    assert_true(libc);
}

static void
test_closure_of_ls(void **state)
{
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    assert_int_equal(img_tree_new("/", &t, NULL), 0);
    assert_int_equal(img_add_program(t, "/bin/ls", "program", NULL), 0);
    bool libc = false, interp = false;
    for (size_t i = 0; i < img_tree_count(t); i++) {
        const struct img_entry *e = img_tree_at(t, i);
        libc |= e->kind == IMG_FILE && strcmp(img_path_basename(e->path), "libc.so.6") == 0;
        interp |= str_has_prefix(e->reason, "interpreter (PT_INTERP)");
    }
    assert_true(libc && interp);
    json_t *m = img_tree_manifest(t);
    assert_int_equal(json_array_size(json_object_get(m, "files")), img_tree_count(t));
    json_decref(m);
}

struct sysroot {
    char dir[64];
};

static int
sysroot_setup(void **state)
{
    struct sysroot *s = xcalloc(1, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/husk-test-sysroot.XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    *state = s;
    return 0;
}

static int
sysroot_teardown(void **state)
{
    struct sysroot *s = *state;
    rm_rf_at(AT_FDCWD, s->dir);
    free(s);
    return 0;
}

static void
put_file(const char *root, const char *rel, const char *from)
{
    cleanup_free char *dst = xasprintf("%s/%s", root, rel);
    cleanup_free char *dir = img_path_dirname(dst);
    assert_int_equal(mkdir_p(dir, 0755), 0);
    cleanup_free char *data = NULL;
    size_t len = 0;
    assert_int_equal(read_file_at(AT_FDCWD, from, &data, &len), 0);
    cleanup_fd int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, data, len), 0);
}

static void
test_sysroot_symlink_chain(void **state)
{
    struct sysroot *s = *state;
    if (access("/bin/busybox", R_OK) < 0)
        skip();
    put_file(s->dir, "usr/bin/prog", "/bin/busybox");
    cleanup_free char *bin = xasprintf("%s/bin", s->dir);
    cleanup_free char *alias = xasprintf("%s/usr/bin/alias", s->dir);
    assert_int_equal(symlink("usr/bin", bin), 0);
    assert_int_equal(symlink("/usr/bin/prog", alias), 0); /* absolute: inside the sysroot */
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    assert_int_equal(img_tree_new(s->dir, &t, NULL), 0);
    assert_int_equal(img_add_program(t, "/bin/alias", "program", NULL), 0);
    const struct img_entry *e = img_tree_find(t, "/bin");
    assert_non_null(e);
    assert_int_equal(e->kind, IMG_SYMLINK);
    assert_string_equal(e->target, "usr/bin");
    e = img_tree_find(t, "/usr/bin/alias");
    assert_int_equal(e->kind, IMG_SYMLINK);
    assert_string_equal(e->target, "/usr/bin/prog");
    e = img_tree_find(t, "/usr/bin/prog");
    assert_int_equal(e->kind, IMG_FILE);
    assert_int_equal(e->mode, 0755);
    assert_int_equal(img_tree_find(t, "/usr")->kind, IMG_DIR);
}

static void
test_sysroot_missing_interpreter(void **state)
{
    struct sysroot *s = *state;
    cleanup_free char *ls = real("/bin/ls");
    put_file(s->dir, "bin/ls", ls);
    cleanup_(img_tree_freep) struct img_tree *t = NULL;
    struct husk_error *err = NULL;
    assert_int_equal(img_tree_new(s->dir, &t, NULL), 0);
    assert_true(img_add_program(t, "/bin/ls", "program", &err) < 0);
    assert_int_equal(err->code, ENOENT);
    assert_non_null(strstr(err->msg, "/lib")); /* the loader's path, which the sysroot lacks */
    husk_error_freep(&err);

    put_file(s->dir, "bin/notes", "/etc/hostname");
    assert_true(img_add_program(t, "/bin/notes", "program", &err) < 0);
    assert_non_null(strstr(err->msg, "is not a program"));
    husk_error_freep(&err);
}

static void
test_paths(void **state)
{
    static const struct {
        const char *in, *out;
    } archive[] = {
        {"./a/b", "a/b"}, {"/abs/x", "abs/x"}, {"a//./b/", "a/b"}, {"./", ""},
        {"../x", NULL},   {"a/../../x", NULL}, {"a/../b", NULL},   {"..", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(archive); i++) {
        cleanup_free char *p = img_path_archive(archive[i].in);
        if (archive[i].out)
            assert_string_equal(p, archive[i].out);
        else
            assert_null(p);
    }
    assert_true(img_link_stays_inside("a/b/link", "../x"));
    assert_true(img_link_stays_inside("a/b/link", "../../x"));
    assert_false(img_link_stays_inside("a/b/link", "../../../x"));
    assert_false(img_link_stays_inside("link", ".."));
    assert_true(img_link_stays_inside("link", "/etc/passwd"));
    assert_true(img_link_stays_inside("a/link", "./b/../c"));
    cleanup_free char *c = img_path_clean("//a/./b//c/");
    cleanup_free char *d = img_path_resolve_dots("/a/b/../../../c");
    assert_string_equal(c, "/a/b/c");
    assert_string_equal(d, "/c");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elf_dynamic),
        cmocka_unit_test(test_elf_static_has_no_deps),
        cmocka_unit_test(test_elf_refuses_non_elf_and_truncated),
        cmocka_unit_test(test_elf_expand_tokens),
        cmocka_unit_test(test_ldcache_parse),
        cmocka_unit_test(test_ldcache_of_this_machine),
        cmocka_unit_test(test_closure_of_ls),
        cmocka_unit_test_setup_teardown(test_sysroot_symlink_chain, sysroot_setup,
                                        sysroot_teardown),
        cmocka_unit_test_setup_teardown(test_sysroot_missing_interpreter, sysroot_setup,
                                        sysroot_teardown),
        cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
