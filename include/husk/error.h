/* SPDX-License-Identifier: Apache-2.0 */
/* Error objects: an errno plus a message that gains context as it travels up. */
#ifndef HUSK_ERROR_H
#define HUSK_ERROR_H

#include <stdarg.h>

struct husk_error {
    int code;  /* errno of the failure, 0 for a user's mistake (no strerror appended) */
    char *msg; /* "context: context: operation" */
};

/* Set *err (when err is not NULL and *err is empty) and return -errnum (-EINVAL for 0). */
int husk_err(struct husk_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int husk_errv(struct husk_error **err, int errnum, const char *fmt, va_list ap);

/* Prefix context onto an existing error ("container 'x': " + msg); returns -code. */
int husk_err_prefix(struct husk_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The error as one line: "msg: strerror(code)" (or just msg for code 0). Caller frees. */
char *husk_error_string(const struct husk_error *e);

void husk_error_free(struct husk_error *e);
void husk_error_freep(struct husk_error **e);

#endif
