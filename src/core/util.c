/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation, string, number and file helpers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        abort();
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

char *
xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (p == NULL)
        abort();
    return p;
}

char *
xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        abort();
    return p;
}

char *
xasprintf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    return s;
}

size_t
strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

char **
strv_dup(char *const *v)
{
    size_t n = strv_len(v);
    char **out = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

bool
str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int
parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;

    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -errno;
    if (*end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

int
parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;

    if (s == NULL || !((*s >= '0' && *s <= '9') || *s == '-' || *s == '+'))
        return -EINVAL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0)
        return -errno;
    if (*end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

int
write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
read_file_at(int dirfd, const char *path, char **out, size_t *len)
{
    cleanup_fd int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return read_all_fd(fd, out, len);
}

int
read_all_fd(int fd, char **out, size_t *len)
{
    size_t cap = 4096, used = 0;
    cleanup_free char *buf = xmalloc(cap);
    for (;;) {
        if (used + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + used, cap - used - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    buf[used] = '\0';
    if (len)
        *len = used;
    *out = steal_ptr(&buf);
    return 0;
}

int
write_file_at(int dirfd, const char *path, const char *data)
{
    cleanup_fd int fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return write_all(fd, data, strlen(data));
}

int
write_file_atomic(int dirfd, const char *path, const char *data, size_t len)
{
    cleanup_free char *tmp = xasprintf("%s.tmp", path);
    /* O_EXCL|O_NOFOLLOW: never write through something planted at the temporary name. */
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST && unlinkat(dirfd, tmp, 0) == 0)
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, data, len);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && renameat(dirfd, tmp, dirfd, path) < 0)
        r = -errno;
    if (r < 0)
        unlinkat(dirfd, tmp, 0);
    return r;
}

int
mkdir_p(const char *path, mode_t mode)
{
    cleanup_free char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int
rm_rf_children(int dfd, dev_t dev)
{
    cleanup_dir DIR *d = fdopendir(dfd);
    struct dirent *de;
    int ret = 0;

    if (d == NULL) {
        close(dfd);
        return -errno;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            /* A mount point (a bind mount of the same filesystem included): never descend. */
            struct statx stx;
            if (st.st_dev != dev ||
                (statx(dirfd(d), de->d_name, AT_SYMLINK_NOFOLLOW, 0, &stx) == 0 &&
                 (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
                 (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)))
                return -EBUSY;
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                int r = rm_rf_children(sub, dev);
                if (r < 0 && ret == 0)
                    ret = r;
            }
            if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && ret == 0)
                ret = -errno;
        } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && ret == 0) {
            ret = -errno;
        }
    }
    return ret;
}

int
rm_rf_at(int dirfd, const char *path)
{
    struct stat st;
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOTDIR)
            return unlinkat(dirfd, path, 0) < 0 ? -errno : 0;
        return errno == ENOENT ? 0 : -errno;
    }
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -errno;
    }
    int r = rm_rf_children(fd, st.st_dev);
    if (r < 0)
        return r;
    return unlinkat(dirfd, path, AT_REMOVEDIR) < 0 ? -errno : 0;
}

bool
in_initial_userns(void)
{
    char map[64] = {0};
    unsigned a, b, n;
    int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
    ssize_t len = fd < 0 ? -1 : read(fd, map, sizeof(map) - 1);
    if (fd >= 0)
        close(fd);
    /* Without /proc we cannot tell; assume the initial namespace, as most hosts are. */
    if (len <= 0)
        return true;
    return sscanf(map, "%u %u %u", &a, &b, &n) == 3 && a == 0 && b == 0 && n == 4294967295u;
}

uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
