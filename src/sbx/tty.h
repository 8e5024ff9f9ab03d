/* SPDX-License-Identifier: Apache-2.0 */
/* Terminals and fd passing over unix sockets. */
#ifndef HUSK_SBX_TTY_H
#define HUSK_SBX_TTY_H

#include <stddef.h>

struct sbx_child_ctx;

/* Send fd with SCM_RIGHTS: kind 0 sends `name` as the payload (console sockets), otherwise an
 * sbx_msg of that kind. 0 or -errno. */
int sbx_send_fd(int sock, int fd, const char *name, int kind);
/* Receive a message and at most one fd (-1 if none). Bytes read or -errno. */
int sbx_recv_fd(int sock, void *buf, size_t len, int *fd_out);

int child_setup_tty(struct sbx_child_ctx *ctx);

#endif
