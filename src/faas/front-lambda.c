/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Lambda Invoke API as a front door for every function, so the AWS CLI and SDKs work
 * against husk with --endpoint-url: POST /2015-03-31/functions/NAME/invocations, with
 * X-Amz-Invocation-Type RequestResponse (200), Event (202: an asynchronous call) or DryRun
 * (204), X-Amz-Log-Type Tail (the last 4 KB of the call's log in X-Amz-Log-Result), a
 * Qualifier, and errors in Lambda's shape; and InvokeWithResponseStream, POST
 * /2021-11-15/functions/NAME/response-streaming-invocations (eventstream.c). SigV4 headers are
 * accepted and not verified: this
 * door gives what /function/NAME gives, nothing of the admin API. The payload is the body a
 * function gets; what it answers is the payload back, and a failure is a function error
 * (X-Amz-Function-Error), as Lambda reports one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "faas-internal.h"
#include "util.h"

#define ASYNC_MAX_PAYLOAD (256u << 10) /* Lambda's limit for an Event invocation */

/* Lambda's error shape: the type in X-Amzn-ErrorType and in the body. */
static void
aws_error(struct faas_route_ctx *c, int status, const char *type, const char *msg)
{
    cleanup_free char *extra = xasprintf("X-Amzn-ErrorType: %s\r\n", type);
    json_t *j = json_object();
    json_object_set_new(j, "Type", json_string(status < 500 ? "User" : "Service"));
    json_object_set_new(j, "message", faas_json_string_lossy(msg));
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    faas_conn_respond(c->s, c->conn, status, c->rid, "application/json", text, strlen(text), extra);
}

/* "%3A" and friends: a name in the path may be an ARN, URL-encoded by the SDKs. */
static char *
url_decode(const char *p, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (p[i] == '%' && i + 2 < n && sscanf(p + i + 1, "%2x", &v) == 1) {
            *o++ = (char)v;
            i += 2;
        } else {
            *o++ = p[i];
        }
    }
    *o = '\0';
    return out;
}

/* NAME, NAME:QUALIFIER or arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]. */
static void
split_name(char *id, char **name, char **qualifier)
{
    *name = id;
    *qualifier = NULL;
    if (str_has_prefix(id, "arn:")) {
        char *fn = strstr(id, ":function:");
        *name = fn ? fn + strlen(":function:") : id;
    }
    char *colon = strchr(*name, ':');
    if (colon) {
        *colon = '\0';
        *qualifier = colon + 1;
    }
}

/* The largest request body the function named in a Lambda Invoke path takes. */
uint64_t
faas_lambda_body_limit(struct faas_server *s, const char *path)
{
    size_t n = strcspn(path, "/?");
    cleanup_free char *id = url_decode(path, n);
    char *name, *qualifier;
    split_name(id, &name, &qualifier);
    struct faas_function *f = faas_server_find(s, name, strlen(name));
    return f ? (uint64_t)f->max_body : FAAS_ADMIN_MAX_BODY;
}

static char *
query_param(const char *url, const char *key)
{
    const char *q = strchr(url, '?');
    size_t k = strlen(key);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        size_t n = strcspn(p, "&");
        if (n > k && strncmp(p, key, k) == 0 && p[k] == '=')
            return url_decode(p + k + 1, n - k - 1);
        p += n + (p[n] == '&');
    }
    return NULL;
}

/* A failure that is the service's, not the function's (throttled, unavailable, too large):
 * answered in Lambda's error shape. false: not one. */
bool
faas_lambda_service_error(struct faas_call *c)
{
    static const struct {
        int status;
        const char *type;
    } types[] = {{429, "TooManyRequestsException"},
                 {503, "ServiceException"},
                 {413, "RequestTooLargeException"}};
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        if (types[i].status != c->fail_status)
            continue;
        struct faas_route_ctx rc = {.s = c->s, .conn = c->conn, .rid = c->rid};
        aws_error(&rc, c->fail_status, types[i].type, c->fail_msg ? c->fail_msg : "");
        c->conn = NULL; /* answered */
        return true;
    }
    return false;
}

/* Whether the call is a function error (Lambda answers those 200 with
 * X-Amz-Function-Error); *error: the error document when the function gave none. */
bool
faas_lambda_function_error(struct faas_call *c, char **error)
{
    bool fn_error = c->function_error || c->fail_status || c->reply_overflow || !c->reply_ok ||
                    (c->fn->contract != &faas_contract_lambda && c->status >= 500);
    *error = NULL;
    if (!(c->fail_status || c->reply_overflow ||
          (fn_error && !c->function_error && c->reply_body.len == 0)))
        return fn_error;
    const char *type = c->fail_status == 504 ? "Sandbox.Timedout"
                       : c->reply_overflow   ? "Function.ResponseSizeTooLarge"
                       : c->fail_status == 500 || c->runtime_exited ? "Runtime.ExitError"
                                                                    : "Runtime.Unknown";
    cleanup_free char *msg =
        c->fail_status == 504 ? xasprintf("%s Task timed out after %lld.00 seconds", c->aws_id,
                                          (long long)c->fn->timeout)
        : c->reply_overflow   ? xasprintf("Response payload size exceeded maximum allowed payload "
                                            "size (%lld bytes).",
                                          (long long)c->fn->max_response)
                              : xstrdup(c->fail_msg ? c->fail_msg : "the function failed");
    json_t *j =
        json_pack("{s:o, s:s}", "errorMessage", faas_json_string_lossy(msg), "errorType", type);
    *error = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return true;
}

/* The last 4 KB of the call's log, base64 (X-Amz-Log-Result, LogResult). */
char *
faas_lambda_log_tail(const struct faas_call *c)
{
    const struct faas_buf *t = &c->log_tail;
    size_t n = faas_buf_pending(t) > 4096 ? 4096 : faas_buf_pending(t);
    return faas_base64(t->p ? t->p + t->len - n : "", n);
}

static void
invoke_finish(struct faas_call *c)
{
    if (c->conn == NULL || faas_lambda_service_error(c))
        return;
    struct faas_buf h = {0};
    faas_buf_addf(&h, "X-Amz-Executed-Version: %lld\r\nX-Amzn-RequestId: %s\r\n",
                  (long long)c->fn->version, c->aws_id);
    cleanup_free char *error = NULL;
    bool fn_error = faas_lambda_function_error(c, &error);
    const char *body = error ? error : c->reply_body.p ? c->reply_body.p : "";
    size_t len = error ? strlen(error) : c->reply_body.len;
    if (fn_error)
        faas_buf_add(&h, "X-Amz-Function-Error: Unhandled\r\n", 33);
    if (c->want_log_tail) {
        cleanup_free char *b64 = faas_lambda_log_tail(c);
        faas_buf_addf(&h, "X-Amz-Log-Result: %s\r\n", b64);
    }
    faas_buf_add(&h, "", 1);
    faas_conn_respond(c->s, c->conn, 200, c->rid, "application/json", body, len, h.p);
    c->conn = NULL; /* answered */
    faas_buf_free(&h);
}

static const struct faas_front_ops invoke_front = {.finish = invoke_finish};

static void
lambda_not_found(struct faas_route_ctx *c, const char *msg)
{
    aws_error(c, 404, "ResourceNotFoundException", msg);
}

/* The function an Invoke path names (NAME, NAME:QUALIFIER or an ARN, then suffix; or
 * ?Qualifier=): the version (or alias) is resolved, then cont runs. */
static void
invoke_target(struct faas_route_ctx *c, const char *suffix, faas_resolved_fn cont)
{
    size_t sl = strlen(suffix);
    if (c->rest_len <= sl || strncmp(c->rest + c->rest_len - sl, suffix, sl) != 0) {
        aws_error(c, 404, "UnknownOperationException", "no such Lambda API operation");
        return;
    }
    cleanup_free char *id = url_decode(c->rest, c->rest_len - sl);
    char *name, *qualifier;
    split_name(id, &name, &qualifier);
    cleanup_free char *q_param = query_param(c->req->url, "Qualifier");
    if (q_param)
        qualifier = q_param;
    c->rest += c->rest_len; /* the function gets "/" */
    c->rest_len = 0;
    c->not_found = lambda_not_found;
    faas_versions_resolve(c, name, qualifier, cont);
}

/* The invocation type; NULL when the request was answered (a body too large, a dry run). */
static const char *
invocation_type(struct faas_route_ctx *c, struct faas_function *f)
{
    const char *type = faas_request_header(c->req, "X-Amz-Invocation-Type");
    if (type == NULL)
        type = "RequestResponse";
    bool event = strcmp(type, "Event") == 0;
    if (c->req->too_large || (event && c->req->body_len > ASYNC_MAX_PAYLOAD)) {
        c->conn->keep_alive = !c->req->too_large;
        cleanup_free char *msg =
            xasprintf("Request must be smaller than %u bytes for the %s invocation type",
                      event ? ASYNC_MAX_PAYLOAD : (unsigned)f->max_body, type);
        aws_error(c, 413, "RequestTooLargeException", msg);
        return NULL;
    }
    if (strcmp(type, "DryRun") == 0) {
        cleanup_free char *extra =
            xasprintf("X-Amz-Executed-Version: %lld\r\n", (long long)f->version);
        faas_conn_respond(c->s, c->conn, 204, c->rid, NULL, "", 0, extra);
        return NULL;
    }
    return type;
}

/* A call of f for the Lambda fronts: the payload is the body, as is. */
static void
invoke_call(struct faas_route_ctx *c, struct faas_function *f, const struct faas_front_ops *front)
{
    struct faas_call *call = faas_call_new(c->s, c->conn, f, c->rid, "");
    call->front = front;
    faas_lambda_uuid(c->s, call->aws_id);
    const char *log = faas_request_header(c->req, "X-Amz-Log-Type");
    call->want_log_tail = log && strcmp(log, "Tail") == 0;
    call->req = *c->req;
    memset(c->req, 0, sizeof(*c->req));
    snprintf(call->req.method, sizeof(call->req.method), "POST");
    free(call->req.url);
    call->req.url = xstrdup("/");
    faas_pool_submit(c->s, call);
}

static void
invoke_resolved(struct faas_route_ctx *c, struct faas_function *f)
{
    const char *type = invocation_type(c, f);
    if (type == NULL)
        return;
    if (strcmp(type, "Event") == 0 && f != faas_server_find(c->s, f->name, strlen(f->name)))
        aws_error(c, 400, "InvalidParameterValueException",
                  "Event invocations run the latest version ($LATEST)");
    else if (strcmp(type, "Event") == 0)
        faas_async_submit(c, f, NULL, "", true);
    else if (strcmp(type, "RequestResponse") == 0)
        invoke_call(c, f, &invoke_front);
    else
        aws_error(c, 400, "InvalidParameterValueException",
                  "X-Amz-Invocation-Type: must be RequestResponse, Event or DryRun");
}

void
faas_route_lambda_invoke(struct faas_route_ctx *c)
{
    invoke_target(c, "/invocations", invoke_resolved);
}

static void
stream_resolved(struct faas_route_ctx *c, struct faas_function *f)
{
    const char *type = invocation_type(c, f);
    if (type && strcmp(type, "RequestResponse") == 0)
        invoke_call(c, f, &faas_eventstream_front);
    else if (type)
        aws_error(c, 400, "InvalidParameterValueException",
                  "X-Amz-Invocation-Type: must be RequestResponse or DryRun");
}

/* InvokeWithResponseStream: the answer as it comes, in AWS event-stream messages. */
void
faas_route_lambda_stream(struct faas_route_ctx *c)
{
    invoke_target(c, "/response-streaming-invocations", stream_resolved);
}
