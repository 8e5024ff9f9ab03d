/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streamed Lambda responses: a runtime that posts its response with
 * Lambda-Runtime-Function-Response-Mode: streaming sends a chunked body that goes to the
 * caller as it comes, at the caller's pace. A body of type
 * application/vnd.awslambda.http-integration-response starts with a JSON prelude
 * ({statusCode, headers, cookies}) and eight NUL bytes; an HTTP caller gets that status and
 * those headers. An error the runtime reports in the trailers
 * (Lambda-Runtime-Function-Error-Type, -Error-Body in base64) after the body began cuts the
 * body off: the caller never takes it for a whole answer. The runtime gets its 202 at the end.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "faas-internal.h"
#include "util.h"

#define INTEGRATION_TYPE "application/vnd.awslambda.http-integration-response"
#define PRELUDE_MAX      (64u << 10)

struct faas_lambda_stream {
    struct faas_call *call;
    struct faas_conn *conn; /* the runtime's */
    char rid[72];
    char *type;              /* the body's Content-Type */
    bool integration;        /* a prelude comes first (to an HTTP caller) */
    struct faas_buf prelude; /* until its eight NULs */
};

static void
stream_free(struct faas_lambda_stream *st)
{
    if (st->call)
        st->call->api_stream = NULL;
    faas_buf_free(&st->prelude);
    free(st->type);
    free(st);
}

/* The head for an HTTP caller, from the prelude; false when it is not one. */
static bool
prelude_head(struct faas_lambda_stream *st, size_t len)
{
    json_error_t je;
    cleanup_json json_t *j = json_loadb(st->prelude.p, len, 0, &je);
    struct faas_buf lines = {0};
    int status = faas_lambda_http_head(j, &lines);
    if (status > 0)
        faas_reply_head(st->call, status, NULL, lines.p, lines.len, -1);
    faas_buf_free(&lines);
    return status > 0;
}

static void
plain_head(struct faas_lambda_stream *st)
{
    cleanup_free char *line =
        xasprintf("Content-Type: %s\r\n", st->type ? st->type : "application/octet-stream");
    faas_reply_head(st->call, 200, NULL, line, strlen(line), -1);
}

/* Hold the body back until the prelude's end; then the head, and what followed it. */
static void
take_prelude(struct faas_lambda_stream *st, const char *p, size_t n)
{
    static const char nuls[8] = {0};
    faas_buf_add(&st->prelude, p, n);
    char *end = memmem(st->prelude.p, st->prelude.len, nuls, sizeof(nuls));
    if (end == NULL && st->prelude.len < PRELUDE_MAX)
        return;
    st->integration = false;
    size_t len = end ? (size_t)(end - st->prelude.p) : 0;
    if (end == NULL || !prelude_head(st, len)) {
        faas_log_call(st->call, "stderr", "malformed HTTP integration prelude: sent as is", 47);
        plain_head(st);
        faas_reply_body(st->call, st->prelude.p, st->prelude.len);
    } else {
        faas_reply_body(st->call, end + sizeof(nuls), st->prelude.len - len - sizeof(nuls));
    }
    faas_buf_free(&st->prelude);
}

static void
stream_data(void *sink, const char *p, size_t n)
{
    struct faas_lambda_stream *st = sink;
    struct faas_call *c = st->call;
    if (st->integration) {
        take_prelude(st, p, n);
    } else {
        if (!c->head_done)
            plain_head(st);
        faas_reply_body(c, p, n);
    }
    if (c->conn)
        faas_conn_flush(c->s, c->conn);
}

/* A function error in the trailers: recorded (and logged) for the caller's front door. */
static bool
trailer_error(struct faas_call *c, const struct faas_request *tr)
{
    const char *type = tr ? faas_request_header(tr, "Lambda-Runtime-Function-Error-Type") : NULL;
    const char *body64 = tr ? faas_request_header(tr, "Lambda-Runtime-Function-Error-Body") : NULL;
    if (type == NULL && body64 == NULL)
        return false;
    cleanup_free char *body = NULL;
    if (body64 == NULL || faas_unbase64(body64, &body) < 0)
        body = xstrdup("");
    cleanup_free char *msg = xasprintf("function error %s: %s", type ? type : "Unhandled", body);
    faas_log_call(c, "stderr", msg, strlen(msg));
    c->function_error = true;
    if (c->front) { /* a front door answers the error document (captured, or as details) */
        faas_buf_free(&c->reply_body);
        faas_buf_add(&c->reply_body, body, strlen(body));
    }
    return true;
}

static void
stream_end(void *sink, int status, const struct faas_request *trailers)
{
    struct faas_lambda_stream *st = sink;
    struct faas_call *c = st->call;
    struct faas_server *s = c->s;
    if (st->integration && status == 0)
        take_prelude(st, "", 0), st->integration = false;
    if (!c->head_done && status == 0)
        plain_head(st);
    bool failed = trailer_error(c, trailers) || status != 0;
    if (status == 0)
        faas_conn_respond(s, st->conn, 202, st->rid, "application/json", "{\"status\":\"OK\"}", 15,
                          NULL);
    if (!c->head_done) { /* the runtime broke off before the body began */
        stream_free(st);
        faas_call_fail(c, 502, "the function's runtime broke off its streamed response", NULL);
        return;
    }
    stream_free(st);
    faas_reply_end(c, !failed);
    faas_call_end(c);
}

static bool
stream_room(void *sink)
{
    struct faas_lambda_stream *st = sink;
    return faas_reply_room(st->call);
}

static const struct faas_body_sink_ops stream_sink = {
    .data = stream_data, .end = stream_end, .room = stream_room};

void
faas_lambda_stream(struct faas_server *s, struct faas_conn *conn, struct faas_call *c,
                   const struct faas_request *req, const char *rid)
{
    struct faas_lambda_stream *st = xcalloc(1, sizeof(*st));
    const char *type = faas_request_header(req, "Content-Type");
    st->call = c;
    st->conn = conn;
    snprintf(st->rid, sizeof(st->rid), "%s", rid);
    st->type = type ? xstrdup(type) : NULL;
    /* only an HTTP caller takes the prelude as a head; others get the bytes as they are */
    st->integration = type && strcasecmp(type, INTEGRATION_TYPE) == 0 && c->front == NULL;
    c->api_answered = true;
    c->api_stream = st;
    faas_conn_body_take(conn, &stream_sink, st);
}

/* The call ends first (its deadline): the runtime's body has no taker any more. */
void
faas_lambda_stream_drop(struct faas_call *c)
{
    struct faas_lambda_stream *st = c->api_stream;
    if (st == NULL)
        return;
    faas_conn_body_drop(st->conn);
    stream_free(st);
}

/* The caller's socket has room again: read on from the runtime. */
void
faas_lambda_stream_drained(struct faas_call *c)
{
    struct faas_lambda_stream *st = c->api_stream;
    if (st)
        faas_conn_body_resume(c->s, st->conn);
}
