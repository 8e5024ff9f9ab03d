/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A large sized body of a function's answer moves from its server's socket to the client's
 * through a pipe (splice(2)): the bytes never enter the daemon, and each MiB costs two calls
 * into the kernel instead of a read and a send per 256 KiB. The head, and whatever of the body
 * the parser saw with it, went through the client's buffer first and has left already, so the
 * order holds; the parser is told how many body bytes passed it, so the response still ends
 * exactly at its length and nothing past it is relayed. Unsized (chunked) bodies, captured
 * replies and small bodies go through the buffer as before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

#define SPLICE_MIN  (256u << 10) /* a body smaller than this is one read and one send */
#define SPLICE_PIPE (1u << 20)

struct faas_splice {
    int rd, wr;
    size_t held; /* in the pipe, not yet sent to the client */
    size_t cap;
};

bool
faas_splice_wanted(struct faas_call *c)
{
    if (c->splice)
        return true;
    struct faas_conn *conn = c->conn;
    if (conn == NULL || c->front || c->no_body || c->chunked_out || conn->broken ||
        faas_resp_body_left(c->resp) < SPLICE_MIN)
        return false;
    faas_conn_flush(c->s, conn);
    if (faas_buf_pending(&conn->out)) /* the head leaves first: the next edge */
        return false;
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return false; /* copied, then */
    struct faas_splice *sp = xcalloc(1, sizeof(*sp));
    sp->rd = fds[0];
    sp->wr = fds[1];
    int cap = fcntl(sp->wr, F_SETPIPE_SZ, SPLICE_PIPE);
    if (cap < 0)
        cap = fcntl(sp->wr, F_GETPIPE_SZ);
    sp->cap = cap > 0 ? (size_t)cap : 65536;
    c->splice = sp;
    return true;
}

int
faas_splice_pump(struct faas_call *c, const char **why)
{
    struct faas_splice *sp = c->splice;
    struct faas_conn *conn = c->conn;
    for (;;) {
        while (sp->held) {
            if (!conn->writable)
                return 0;
            ssize_t n =
                splice(sp->rd, NULL, conn->fd, NULL, sp->held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN) {
                conn->writable = false; /* its EPOLLOUT edge: faas_call_drained */
                return 0;
            }
            if (n <= 0) {
                faas_conn_broken(c->s, conn);
                return -2;
            }
            sp->held -= (size_t)n;
        }
        uint64_t left = faas_resp_body_left(c->resp);
        if (left == 0)
            return 1;
        if (!c->up->readable)
            return 0;
        /* The pipe is empty here: EAGAIN can only mean the socket is. */
        ssize_t n = splice(c->up->fd, NULL, sp->wr, NULL, left < sp->cap ? (size_t)left : sp->cap,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->up->readable = false;
            return 0;
        }
        if (n <= 0) {
            *why =
                n < 0 ? strerror(errno) : "the connection closed before the response was complete";
            return -1;
        }
        sp->held += (size_t)n;
        c->relayed += (uint64_t)n;
        faas_resp_body_skip(c->resp, (uint64_t)n);
    }
}

void
faas_splice_free(struct faas_call *c)
{
    struct faas_splice *sp = c->splice;
    if (sp == NULL)
        return;
    close(sp->rd);
    close(sp->wr);
    free(sp);
    c->splice = NULL;
}
