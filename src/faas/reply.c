/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A call's response as its caller gets it. Contracts write a head, body pieces and an end;
 * for a client of the front door that is HTTP on its connection, framed by a length when one
 * is known and chunked when not (streamed as it comes); other front doors (the Lambda invoke
 * API, asynchronous calls) capture it, bounded by the function's max_response, and shape it
 * their way when it is complete.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "util.h"

void
faas_reply_head(struct faas_call *c, int status, const char *reason, const char *headers,
                size_t hlen, int64_t length)
{
    struct faas_conn *conn = c->conn;
    c->status = status;
    c->head_done = true;
    if (c->front && c->front->head) {
        c->front->head(c, status, headers, hlen);
        return;
    }
    if (c->front) { /* captured: the front door shapes it at the end */
        faas_buf_add(&c->reply_headers, headers, hlen);
        return;
    }
    if (conn == NULL)
        return;
    struct faas_buf *out = &conn->out;
    faas_buf_addf(out, "HTTP/1.1 %d %s\r\n", status,
                  reason && *reason ? reason : faas_status_text(status));
    faas_buf_add(out, headers, hlen);
    bool no_body = c->no_body =
        status == 101 || status == 204 || status == 304 || strcmp(c->req.method, "HEAD") == 0;
    if (status == 101) { /* switched (tunnel.c): nothing of HTTP follows */
        faas_buf_addf(out, "X-Request-Id: %s\r\nConnection: Upgrade\r\n\r\n", c->rid);
        return;
    }
    /* A 204 or a 304 has no Content-Length (RFC 9110 8.6: a 304's would have to be the
     * length a 200 would have); a HEAD answer has the one the function gave, if any. */
    if (length >= 0 && status != 204 && status != 304)
        faas_buf_addf(out, "Content-Length: %lld\r\n", (long long)length);
    else if (!no_body && !c->req.http10)
        c->chunked_out = true;
    else if (!no_body)
        conn->close_after = true; /* the body ends when the connection does */
    if (c->chunked_out)
        faas_buf_add(out, "Transfer-Encoding: chunked\r\n", 28);
    if (faas_stopping(c->s))
        conn->close_after = true;
    faas_buf_addf(out, "X-Request-Id: %s\r\nConnection: %s\r\n\r\n", c->rid,
                  faas_conn_connection_header(conn));
}

void
faas_reply_body(struct faas_call *c, const void *p, size_t n)
{
    c->relayed += n;
    if (n == 0)
        return;
    if (c->front && c->front->body) {
        c->front->body(c, p, n);
        return;
    }
    if (c->front) {
        size_t room = (uint64_t)c->fn->max_response > c->reply_body.len
                          ? (size_t)((uint64_t)c->fn->max_response - c->reply_body.len)
                          : 0;
        c->reply_overflow |= n > room;
        faas_buf_add(&c->reply_body, p, n < room ? n : room);
        return;
    }
    if (c->conn == NULL || c->no_body)
        return;
    struct faas_buf *out = &c->conn->out;
    if (c->chunked_out)
        faas_buf_addf(out, "%zx\r\n", n);
    faas_buf_add(out, p, n);
    if (c->chunked_out)
        faas_buf_add(out, "\r\n", 2);
}

void
faas_reply_end(struct faas_call *c, bool ok)
{
    if (c->front) { /* the front door ends it in its finish */
        c->reply_ok = ok;
        return;
    }
    if (c->conn == NULL)
        return;
    if (!ok)
        c->conn->close_after = true; /* a cut body: the client must not take it as whole */
    else if (c->chunked_out)
        faas_buf_add(&c->conn->out, "0\r\n\r\n", 5);
    /* Sent by the call's end, after its pool counted it as ended: a caller with the answer
     * finds the instance free for its next call. */
}

/* Whether more of a streamed body may be read for this caller now (backpressure: a client
 * that reads slowly holds the function's output back instead of the daemon's memory). */
bool
faas_reply_room(const struct faas_call *c)
{
    return faas_reply_captured(c) || c->conn == NULL ||
           faas_buf_pending(&c->conn->out) < (1u << 20);
}

bool
faas_reply_captured(const struct faas_call *c)
{
    return c->front && c->front->body == NULL;
}
