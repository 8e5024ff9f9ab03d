/* SPDX-License-Identifier: Apache-2.0 */
/* A rootfs directory as a zstd-compressed POSIX tar (libarchive), entries sorted by name. */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

int img_tar_write(const char *dir, const char *dst, struct husk_error **err);

static void
archive_writep(struct archive **a)
{
    if (*a)
        archive_write_free(*a);
}

static void
entryp(struct archive_entry **e)
{
    if (*e)
        archive_entry_free(*e);
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_tree(struct archive *a, int dirfd, const char *prefix, int depth,
                    struct husk_error **err);

static int
add_one(struct archive *a, int dirfd, const char *name, const char *path, int depth,
        struct husk_error **err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return husk_err(err, errno, "stat '%s'", path);
    cleanup_(entryp) struct archive_entry *e = archive_entry_new();
    archive_entry_copy_pathname(e, path);
    archive_entry_copy_stat(e, &st);
    cleanup_fd int fd = -1;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return husk_err(err, errno, "readlink '%s'", path);
        target[n] = '\0';
        archive_entry_copy_symlink(e, target);
    } else if (S_ISREG(st.st_mode)) {
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return husk_err(err, errno, "open '%s'", path);
    } else if (!S_ISDIR(st.st_mode)) {
        return husk_err(err, 0, "'%s': only files, directories and symlinks are archived", path);
    }
    if (archive_write_header(a, e) != ARCHIVE_OK)
        return husk_err(err, 0, "tar '%s': %s", path, archive_error_string(a));
    for (char buf[65536]; fd >= 0;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return husk_err(err, errno, "read '%s'", path);
        if (n == 0)
            break;
        if (archive_write_data(a, buf, (size_t)n) != n)
            return husk_err(err, 0, "tar '%s': %s", path, archive_error_string(a));
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return husk_err(err, errno, "open '%s'", path);
    return add_tree(a, sub, path, depth + 1, err);
}

/* Takes dirfd. */
static int
add_tree(struct archive *a, int fd, const char *prefix, int depth, struct husk_error **err)
{
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return husk_err(err, errno, "read directory '%s'", prefix);
    }
    if (depth > 256)
        return husk_err(err, ELOOP, "'%s': too deep", prefix);
    cleanup_strv char **names = NULL;
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            img_strv_push(&names, &n, xstrdup(de->d_name));
    if (n)
        qsort(names, n, sizeof(char *), cmp_names);
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *path =
            prefix[0] ? xasprintf("%s/%s", prefix, names[i]) : xstrdup(names[i]);
        int r = add_one(a, fd, names[i], path, depth, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
img_tar_write(const char *dir, const char *dst, struct husk_error **err)
{
    cleanup_(archive_writep) struct archive *a = archive_write_new();
    if (a == NULL || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_zstd(a) != ARCHIVE_OK)
        return husk_err(err, 0, "libarchive: no zstd tar writer: %s",
                        a ? archive_error_string(a) : "out of memory");
    cleanup_fd int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0)
        return husk_err(err, errno, "create '%s'", dst);
    if (archive_write_open_fd(a, out) != ARCHIVE_OK)
        return husk_err(err, 0, "write '%s': %s", dst, archive_error_string(a));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return husk_err(err, errno, "open '%s'", dir);
    int r = add_tree(a, fd, "", 0, err);
    if (r < 0)
        return r;
    if (archive_write_close(a) != ARCHIVE_OK)
        return husk_err(err, 0, "write '%s': %s", dst, archive_error_string(a));
    return 0;
}
