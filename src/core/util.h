/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation that aborts on exhaustion, string and fd helpers shared by every layer. */
#ifndef HUSK_CORE_UTIL_H
#define HUSK_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cleanup.h"
#include "husk/error.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure is not recoverable in husk: abort, as redis does. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

size_t strv_len(char *const *v);
char **strv_dup(char *const *v);
bool str_has_prefix(const char *s, const char *prefix);

/* Strict decimal parsing: the whole string, no sign unless allowed, range checked. */
int parse_u64(const char *s, uint64_t *out);
int parse_i64(const char *s, int64_t *out);

/* write(2) until done, retrying EINTR and short writes. 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read a whole (small) file relative to dirfd. Caller frees *out (NUL-terminated). */
int read_file_at(int dirfd, const char *path, char **out, size_t *len);
/* Read an fd to its end (from its offset). Caller frees *out (NUL-terminated). 0 or -errno. */
int read_all_fd(int fd, char **out, size_t *len);
/* Open for write (O_TRUNC, no create) and write the string. 0 or -errno. */
int write_file_at(int dirfd, const char *path, const char *data);
/* Atomically replace dirfd/path with data (temp file + rename), mode 0644. */
int write_file_atomic(int dirfd, const char *path, const char *data, size_t len);

/* mkdir -p with the given mode for the directories it creates. 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);

/* Remove a directory tree relative to dirfd, never crossing mount points. */
int rm_rf_at(int dirfd, const char *path);

/* Whether we are in the initial user namespace (uid_map "0 0 4294967295"). No heap: safe
 * between clone and exec. */
bool in_initial_userns(void);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
