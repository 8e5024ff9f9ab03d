/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libarchive, loaded on first use. Only `husk pack` and `husk image` read or write archives,
 * and libarchive brings libxml2, ICU and libstdc++ with it (22 libraries, 4 ms of start-up, paid
 * twice by the sealed re-exec): every other verb must not load them. These forwarders carry
 * the names and signatures of <archive.h>; the library is resolved by soname. The resolved
 * pointers are the one piece of process-wide state here: a cache, never reset.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define LIBARCHIVE_SONAME "libarchive.so.13"

static void *
lib(void)
{
    static void *handle;
    if (handle == NULL)
        handle = dlopen(LIBARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
    return handle;
}

static void *
sym(const char *name)
{
    void *h = lib();
    void *p = h ? dlsym(h, name) : NULL;
    if (p == NULL) {
        /* Only reachable with an archive object, which only a loaded library makes. */
        fprintf(stderr, "husk: %s: %s\n", LIBARCHIVE_SONAME, dlerror());
        abort();
    }
    return p;
}

#define FWD(ret, name, params, args)                                                               \
    ret name params                                                                                \
    {                                                                                              \
        static ret(*fn) params;                                                                    \
        if (fn == NULL)                                                                            \
            fn = (ret(*) params)sym(#name);                                                        \
        return fn args;                                                                            \
    }

#define FWD_VOID(name, params, args)                                                               \
    void name params                                                                               \
    {                                                                                              \
        static void(*fn) params;                                                                   \
        if (fn == NULL)                                                                            \
            fn = (void(*) params)sym(#name);                                                       \
        fn args;                                                                                   \
    }

/* Constructors fail softly (NULL) when libarchive is not installed; callers report that. */
#define FWD_NEW(ret, name)                                                                         \
    ret *name(void)                                                                                \
    {                                                                                              \
        static ret *(*fn)(void);                                                                   \
        if (fn == NULL && lib() != NULL)                                                           \
            fn = (ret * (*)(void)) dlsym(lib(), #name);                                            \
        return fn ? fn() : NULL;                                                                   \
    }

FWD_NEW(struct archive, archive_read_new)
FWD_NEW(struct archive, archive_write_new)
FWD_NEW(struct archive_entry, archive_entry_new)

FWD(const char *, archive_error_string, (struct archive * a), (a))
FWD(int, archive_read_free, (struct archive * a), (a))
FWD(la_int64_t, archive_filter_bytes, (struct archive * a, int n), (a, n))
FWD(int, archive_read_support_filter_all, (struct archive * a), (a))
FWD(int, archive_read_support_filter_gzip, (struct archive * a), (a))
FWD(int, archive_read_support_filter_none, (struct archive * a), (a))
FWD(int, archive_read_support_filter_zstd, (struct archive * a), (a))
FWD(int, archive_read_support_format_tar, (struct archive * a), (a))
FWD(int, archive_read_next_header, (struct archive * a, struct archive_entry **e), (a, e))
FWD(la_ssize_t, archive_read_data, (struct archive * a, void *buf, size_t n), (a, buf, n))
FWD(int, archive_read_data_block,
    (struct archive * a, const void **buf, size_t *n, la_int64_t *off), (a, buf, n, off))
FWD(int, archive_read_open,
    (struct archive * a, void *data, archive_open_callback *o, archive_read_callback *r,
     archive_close_callback *c),
    (a, data, o, r, c))
FWD(int, archive_read_open_fd, (struct archive * a, int fd, size_t block), (a, fd, block))
FWD(int, archive_read_open_filename, (struct archive * a, const char *f, size_t block),
    (a, f, block))
FWD(int, archive_write_add_filter_zstd, (struct archive * a), (a))
FWD(int, archive_write_set_format_pax_restricted, (struct archive * a), (a))
FWD(int, archive_write_open_fd, (struct archive * a, int fd), (a, fd))
FWD(int, archive_write_header, (struct archive * a, struct archive_entry *e), (a, e))
FWD(la_ssize_t, archive_write_data, (struct archive * a, const void *buf, size_t n), (a, buf, n))
FWD(int, archive_write_close, (struct archive * a), (a))
FWD(int, archive_write_free, (struct archive * a), (a))

FWD_VOID(archive_entry_free, (struct archive_entry * e), (e))
FWD_VOID(archive_entry_copy_pathname, (struct archive_entry * e, const char *p), (e, p))
FWD_VOID(archive_entry_copy_symlink, (struct archive_entry * e, const char *p), (e, p))
FWD_VOID(archive_entry_copy_stat, (struct archive_entry * e, const struct stat *st), (e, st))
FWD(const char *, archive_entry_pathname, (struct archive_entry * e), (e))
FWD(const char *, archive_entry_hardlink, (struct archive_entry * e), (e))
FWD(const char *, archive_entry_symlink, (struct archive_entry * e), (e))
FWD(__LA_MODE_T, archive_entry_filetype, (struct archive_entry * e), (e))
FWD(__LA_MODE_T, archive_entry_perm, (struct archive_entry * e), (e))
FWD(la_int64_t, archive_entry_size, (struct archive_entry * e), (e))
FWD(la_int64_t, archive_entry_uid, (struct archive_entry * e), (e))
FWD(la_int64_t, archive_entry_gid, (struct archive_entry * e), (e))
FWD(time_t, archive_entry_mtime, (struct archive_entry * e), (e))
FWD(long, archive_entry_mtime_nsec, (struct archive_entry * e), (e))

void
archive_set_error(struct archive *a, int err, const char *fmt, ...)
{
    static void (*fn)(struct archive *, int, const char *, ...);
    char msg[512];
    va_list ap;
    if (fn == NULL)
        fn = (void (*)(struct archive *, int, const char *, ...))sym("archive_set_error");
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fn(a, err, "%s", msg);
}
