/* SPDX-License-Identifier: Apache-2.0 */
/* Terminals for the CLI. */
#ifndef HUSK_RUNTIME_TTY_H
#define HUSK_RUNTIME_TTY_H

#include "husk/error.h"

/* Connect to a unix stream socket (a --console-socket, a seccomp listener); `what` names it
 * in errors. Returns the fd or -errno. */
int unix_connect(const char *path, const char *what, struct husk_error **err);
/* Relay the caller's stdio and the pty master until the process (pidfd) exits; the caller's
 * terminal is raw meanwhile and follows SIGWINCH. */
int tty_relay(int master, int pidfd, struct husk_error **err);

#endif
