/* SPDX-License-Identifier: Apache-2.0 */
/* SQLite on first use (lazy.h): only `husk serve` keeps a registry. */
#include <sqlite3.h>

#include <stddef.h>

#include "lazy.h"

static struct lazy_lib sqlite = {"libsqlite3.so.0", NULL};

LAZY_FWD(sqlite, int, sqlite3_open_v2, (const char *f, sqlite3 **db, int flags, const char *vfs),
         (f, db, flags, vfs))
LAZY_FWD(sqlite, int, sqlite3_close, (sqlite3 * db), (db))
LAZY_FWD(sqlite, int, sqlite3_exec,
         (sqlite3 * db, const char *sql, int (*cb)(void *, int, char **, char **), void *data,
          char **errmsg),
         (db, sql, cb, data, errmsg))
LAZY_FWD(sqlite, int, sqlite3_prepare_v2,
         (sqlite3 * db, const char *sql, int n, sqlite3_stmt **st, const char **tail),
         (db, sql, n, st, tail))
LAZY_FWD(sqlite, int, sqlite3_step, (sqlite3_stmt * st), (st))
LAZY_FWD(sqlite, int, sqlite3_finalize, (sqlite3_stmt * st), (st))
LAZY_FWD(sqlite, int, sqlite3_changes, (sqlite3 * db), (db))
LAZY_FWD(sqlite, int, sqlite3_bind_int64, (sqlite3_stmt * st, int i, sqlite3_int64 v), (st, i, v))
LAZY_FWD(sqlite, int, sqlite3_bind_text,
         (sqlite3_stmt * st, int i, const char *v, int n, void (*free_fn)(void *)),
         (st, i, v, n, free_fn))
LAZY_FWD(sqlite, int, sqlite3_bind_blob,
         (sqlite3_stmt * st, int i, const void *v, int n, void (*free_fn)(void *)),
         (st, i, v, n, free_fn))
LAZY_FWD(sqlite, int, sqlite3_bind_double, (sqlite3_stmt * st, int i, double v), (st, i, v))
LAZY_FWD(sqlite, int, sqlite3_column_int, (sqlite3_stmt * st, int i), (st, i))
LAZY_FWD(sqlite, double, sqlite3_column_double, (sqlite3_stmt * st, int i), (st, i))
LAZY_FWD(sqlite, int, sqlite3_column_bytes, (sqlite3_stmt * st, int i), (st, i))
LAZY_FWD(sqlite, const void *, sqlite3_column_blob, (sqlite3_stmt * st, int i), (st, i))
LAZY_FWD(sqlite, sqlite3_int64, sqlite3_column_int64, (sqlite3_stmt * st, int i), (st, i))
LAZY_FWD(sqlite, const unsigned char *, sqlite3_column_text, (sqlite3_stmt * st, int i), (st, i))
LAZY_FWD(sqlite, int, sqlite3_column_type, (sqlite3_stmt * st, int i), (st, i))
LAZY_FWD(sqlite, const char *, sqlite3_errmsg, (sqlite3 * db), (db))
LAZY_FWD(sqlite, const char *, sqlite3_errstr, (int rc), (rc))
