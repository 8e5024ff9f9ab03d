/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lambda's InvokeWithResponseStream answer: 200 with Content-Type
 * application/vnd.amazon.eventstream, then AWS event-stream messages, each framed as
 *   total length (4) | headers length (4) | CRC32 of those 8 bytes (4) |
 *   headers (name length (1), name, type 7 = string, value length (2), value) |
 *   payload | CRC32 of everything before (4),
 * big-endian. A PayloadChunk event carries each piece of the function's answer as it comes;
 * the InvokeComplete event ends the stream with ErrorCode and ErrorDetails when the call
 * failed, and LogResult (the log's last 4 KB) when the caller asked for the tail. The
 * function's status and headers are not passed on: as Lambda does, the payload is the answer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "faas-internal.h"
#include "util.h"

static void
put32(struct faas_buf *b, uint32_t v)
{
    uint32_t be = htonl(v);
    faas_buf_add(b, &be, 4);
}

static void
header(struct faas_buf *b, const char *name, const char *value)
{
    uint8_t nl = (uint8_t)strlen(name), type = 7;
    uint16_t vl = htons((uint16_t)strlen(value));
    faas_buf_add(b, &nl, 1);
    faas_buf_add(b, name, nl);
    faas_buf_add(b, &type, 1);
    faas_buf_add(b, &vl, 2);
    faas_buf_add(b, value, strlen(value));
}

/* One event, as one chunk of the HTTP body. */
static void
event(struct faas_call *c, const char *type, const char *content_type, const void *payload,
      size_t n)
{
    struct faas_conn *conn = c->conn;
    if (conn == NULL)
        return;
    struct faas_buf h = {0}, m = {0};
    header(&h, ":event-type", type);
    header(&h, ":content-type", content_type);
    header(&h, ":message-type", "event");
    uint32_t total = (uint32_t)(12 + h.len + n + 4);
    put32(&m, total);
    put32(&m, (uint32_t)h.len);
    put32(&m, (uint32_t)crc32(0, (const Bytef *)m.p, 8));
    faas_buf_add(&m, h.p, h.len);
    faas_buf_add(&m, payload, n);
    put32(&m, (uint32_t)crc32(0, (const Bytef *)m.p, (uInt)m.len));
    faas_buf_addf(&conn->out, "%zx\r\n", m.len);
    faas_buf_add(&conn->out, m.p, m.len);
    faas_buf_add(&conn->out, "\r\n", 2);
    faas_buf_free(&h);
    faas_buf_free(&m);
}

static void
stream_head(struct faas_call *c)
{
    struct faas_conn *conn = c->conn;
    if (conn == NULL || c->chunked_out)
        return;
    c->chunked_out = true; /* the HTTP head is out */
    faas_buf_addf(&conn->out,
                  "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
                  "Transfer-Encoding: chunked\r\nX-Amz-Executed-Version: %lld\r\n"
                  "X-Amzn-RequestId: %s\r\nX-Request-Id: %s\r\nConnection: %s\r\n\r\n",
                  (long long)c->fn->version, c->aws_id, c->rid, faas_conn_connection_header(conn));
}

static void
es_head(struct faas_call *c, int status, const char *headers, size_t hlen)
{
    stream_head(c);
}

static void
es_body(struct faas_call *c, const void *p, size_t n)
{
    if (c->function_error) { /* an error document: the InvokeComplete event's details */
        size_t room = c->reply_body.len < 4096 ? 4096 - c->reply_body.len : 0;
        faas_buf_add(&c->reply_body, p, n < room ? n : room);
        return;
    }
    event(c, "PayloadChunk", "application/octet-stream", p, n);
    if (c->conn)
        faas_conn_flush(c->s, c->conn);
}

static void
es_finish(struct faas_call *c)
{
    if (c->conn == NULL || (!c->chunked_out && faas_lambda_service_error(c)))
        return;
    stream_head(c);
    cleanup_free char *error = NULL;
    bool failed = faas_lambda_function_error(c, &error);
    json_t *done = json_object();
    if (failed) {
        json_object_set_new(done, "ErrorCode", json_string("Unhandled"));
        json_object_set_new(
            done, "ErrorDetails",
            faas_json_string_lossy(error             ? error
                                   : c->reply_body.p ? strndupa(c->reply_body.p, c->reply_body.len)
                                                     : ""));
    }
    cleanup_free char *tail = c->want_log_tail ? faas_lambda_log_tail(c) : NULL;
    if (tail)
        json_object_set_new(done, "LogResult", json_string(tail));
    cleanup_free char *text = json_dumps(done, JSON_COMPACT);
    json_decref(done);
    event(c, "InvokeComplete", "application/json", text, strlen(text));
    faas_buf_add(&c->conn->out, "0\r\n\r\n", 5);
}

const struct faas_front_ops faas_eventstream_front = {
    .finish = es_finish, .head = es_head, .body = es_body};
