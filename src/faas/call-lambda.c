/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lambda contract: an unmodified AWS Lambda runtime (a custom `bootstrap`, the runtime
 * interface clients) pulls its events from the Runtime API, which the daemon serves to each
 * instance on 127.0.0.1:9001 inside the instance's own network namespace. The instance is
 * ready at its first invocation/next; a call assigned to it waits there until the runtime asks
 * for the next event, and ends when it posts the response or the error. A call from the
 * front door's /function/NAME is an API Gateway HTTP API (payload 2.0) event, and the
 * function's {statusCode, headers, body} its answer; other front doors pass the payload as is.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "faas-internal.h"
#include "syscalls.h"
#include "util.h"

#define API_PORT   9001
#define API_PREFIX "/2018-06-01/runtime/"

/* ---- ids and names */

void
faas_lambda_uuid(struct faas_server *s, char out[37])
{
    char h[33];
    faas_random_hex(s, h, 16);
    h[12] = '4';                              /* version 4 */
    h[16] = "89ab"[(unsigned char)h[16] % 4]; /* the variant */
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

const char *
faas_lambda_env(const struct faas_function *f, const char *key, const char *dflt)
{
    size_t n = strlen(key);
    for (char **e = f->env; e && *e; e++)
        if (strncmp(*e, key, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return dflt;
}

char *
faas_lambda_arn(const struct faas_function *f)
{
    return xasprintf("arn:aws:lambda:%s:000000000000:function:%s",
                     faas_lambda_env(f, "AWS_REGION", "us-east-1"), f->name);
}

/* ---- base64 (OpenSSL's) */

char *
faas_base64(const void *p, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

/* Decoded bytes into *out (owned), or -1 when s is not base64. */
ssize_t
faas_unbase64(const char *s, char **out)
{
    size_t n = strlen(s);
    if (n % 4)
        return -1;
    *out = xmalloc(n / 4 * 3 + 1);
    int r = EVP_DecodeBlock((unsigned char *)*out, (const unsigned char *)s, (int)n);
    if (r < 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    size_t len = (size_t)r;
    for (size_t i = n; i > 0 && s[i - 1] == '='; i--)
        len--; /* EVP_DecodeBlock counts the padding */
    (*out)[len] = '\0';
    return (ssize_t)len;
}

/* ---- the event and the answer of an HTTP call (API Gateway HTTP API, payload 2.0) */

static json_t *
http_event(struct faas_call *c)
{
    const struct faas_request *r = &c->req;
    const char *q = strchr(r->url, '?');
    json_t *headers = json_object(), *cookies = json_array();
    for (size_t i = 0; i < r->n_headers; i++) {
        char name[256];
        snprintf(name, sizeof(name), "%s", r->headers[i].name);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (strcmp(name, "cookie") == 0) {
            cleanup_free char *all = xstrdup(r->headers[i].value);
            for (char *save = NULL, *k = strtok_r(all, ";", &save); k;
                 k = strtok_r(NULL, ";", &save))
                json_array_append_new(cookies, json_string(k + strspn(k, " ")));
            continue;
        }
        json_t *old = json_object_get(headers, name);
        if (old) { /* repeated: comma-joined, as API Gateway does */
            cleanup_free char *joined =
                xasprintf("%s,%s", json_string_value(old), r->headers[i].value);
            json_object_set_new(headers, name, json_string(joined));
        } else {
            json_object_set_new(headers, name, json_string(r->headers[i].value));
        }
    }
    json_t *query = json_object();
    cleanup_free char *qs = xstrdup(q ? q + 1 : "");
    for (char *save = NULL, *kv = strtok_r(qs, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq)
            *eq = '\0';
        json_object_set_new(query, kv, json_string(eq ? eq + 1 : ""));
    }
    cleanup_free char *path = xstrdup(*c->subpath ? c->subpath : "/");
    cleanup_free char *body64 = faas_base64(r->body ? r->body : "", r->body_len);
    const char *host = faas_request_header(r, "Host");
    const char *ua = faas_request_header(r, "User-Agent");
    time_t now = time(NULL);
    struct tm tm;
    char when[40];
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    json_t *ev = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}, "
        "s:s, s:s, s:s, s:s, s:I}, s:s, s:b}",
        "version", "2.0", "routeKey", "$default", "rawPath", path, "rawQueryString", q ? q + 1 : "",
        "headers", headers, "queryStringParameters", query, "requestContext", "accountId",
        "000000000000", "apiId", c->fn->name, "domainName", host ? host : "localhost",
        "domainPrefix", c->fn->name, "http", "method", r->method, "path", path, "protocol",
        r->http10 ? "HTTP/1.0" : "HTTP/1.1", "sourceIp", c->conn ? c->conn->peer : "", "userAgent",
        ua ? ua : "", "requestId", c->aws_id, "routeKey", "$default", "stage", "$default", "time",
        when, "timeEpoch", (json_int_t)now * 1000, "body", body64, "isBase64Encoded", 1);
    if (json_array_size(cookies))
        json_object_set(ev, "cookies", cookies);
    json_decref(cookies);
    return ev;
}

/* The head an API Gateway answer asks for ({statusCode, headers, cookies}): its status, and
 * its header lines (nothing a function says may split a header or set the framing). -1 when
 * j has no valid statusCode. */
int
faas_lambda_http_head(const json_t *j, struct faas_buf *lines)
{
    json_t *code = json_object_get(j, "statusCode");
    if (!json_is_integer(code) || json_integer_value(code) < 100 || json_integer_value(code) > 599)
        return -1;
    const char *key;
    json_t *v, *a;
    size_t i;
    bool typed = false;
    json_object_foreach(json_object_get(j, "headers"), key, v)
    {
        if (!json_is_string(v) || strpbrk(key, "\r\n:") || strpbrk(json_string_value(v), "\r\n"))
            continue;
        typed |= strcasecmp(key, "Content-Type") == 0;
        if (strcasecmp(key, "Content-Length") && strcasecmp(key, "Transfer-Encoding") &&
            strcasecmp(key, "Connection"))
            faas_buf_addf(lines, "%s: %s\r\n", key, json_string_value(v));
    }
    json_array_foreach(json_object_get(j, "cookies"), i,
                       a) if (json_is_string(a) && !strpbrk(json_string_value(a), "\r\n"))
        faas_buf_addf(lines, "Set-Cookie: %s\r\n", json_string_value(a));
    if (!typed)
        faas_buf_add(lines, "Content-Type: text/plain\r\n", 26);
    return (int)json_integer_value(code);
}

/* The function's answer to an HTTP call: {statusCode, headers, cookies, body,
 * isBase64Encoded}, or any other JSON as a 200 application/json body. */
static void
http_answer(struct faas_call *c, const char *body, size_t len)
{
    json_error_t je;
    cleanup_json json_t *j = json_loadb(body ? body : "", len, 0, &je);
    struct faas_buf lines = {0};
    int status = faas_lambda_http_head(j, &lines);
    if (status < 0) {
        faas_reply_head(c, 200, NULL, "Content-Type: application/json\r\n", 32, (int64_t)len);
        faas_reply_body(c, body, len);
        faas_buf_free(&lines);
        return;
    }
    const char *text = json_string_value(json_object_get(j, "body"));
    cleanup_free char *raw = NULL;
    ssize_t n = text ? (ssize_t)strlen(text) : 0;
    if (text && json_is_true(json_object_get(j, "isBase64Encoded")) &&
        (n = faas_unbase64(text, &raw)) >= 0)
        text = raw;
    if (n < 0)
        n = 0;
    faas_reply_head(c, status, NULL, lines.p, lines.len, n);
    faas_reply_body(c, text, (size_t)n);
    faas_buf_free(&lines);
}

/* ---- the Runtime API */

static void
api_json(struct faas_server *s, struct faas_conn *conn, int status, const char *rid, json_t *j)
{
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    faas_conn_respond(s, conn, status, rid, "application/json", text, strlen(text), NULL);
}

static void
api_error(struct faas_server *s, struct faas_conn *conn, int status, const char *rid,
          const char *type, const char *msg)
{
    api_json(s, conn, status, rid, json_pack("{s:s, s:s}", "errorMessage", msg, "errorType", type));
}

/* Hand queued events to a runtime waiting in invocation/next. */
static void
deliver(struct faas_server *s, struct faas_instance *in)
{
    while (in->api_next && in->api_queue) {
        struct faas_call *c = in->api_queue;
        struct faas_conn *conn = in->api_next;
        in->api_queue = c->api_next_q;
        if (in->api_queue == NULL)
            in->api_queue_tail = NULL;
        in->api_next = NULL;
        c->api_delivered = true;
        cleanup_json json_t *ev = c->front ? NULL : http_event(c);
        cleanup_free char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        const char *body = text ? text : c->req.body ? c->req.body : "";
        size_t len = text ? strlen(text) : c->req.body_len;
        cleanup_free char *arn = faas_lambda_arn(c->fn);
        char trace[80], hex[41];
        faas_random_hex(s, hex, 20);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t left = (c->t_deadline.when > now_ns() ? c->t_deadline.when - now_ns() : 0);
        uint64_t deadline_ms =
            (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000 + left / 1000000;
        snprintf(trace, sizeof(trace), "Root=1-%08lx-%.24s;Parent=%.16s;Sampled=0",
                 (unsigned long)now.tv_sec, hex, hex + 24);
        cleanup_free char *extra =
            xasprintf("Lambda-Runtime-Aws-Request-Id: %s\r\nLambda-Runtime-Deadline-Ms: %llu\r\n"
                      "Lambda-Runtime-Invoked-Function-Arn: %s\r\nLambda-Runtime-Trace-Id: %s\r\n",
                      c->aws_id, (unsigned long long)deadline_ms, arn, trace);
        faas_conn_respond(s, conn, 200, c->rid, "application/json", body, len, extra);
    }
}

static bool
was_answered(const struct faas_instance *in, const char *id, size_t len)
{
    for (unsigned i = 0; i < ARRAY_SIZE(in->answered) && i < in->n_answered; i++)
        if (strlen(in->answered[i]) == len && memcmp(in->answered[i], id, len) == 0)
            return true;
    return false;
}

static struct faas_call *
api_call(struct faas_instance *in, const char *id, size_t len)
{
    for (struct faas_call *c = in->calls; c; c = c->next)
        if (c->api_delivered && strlen(c->aws_id) == len && memcmp(c->aws_id, id, len) == 0)
            return c;
    return NULL;
}

/* The runtime's answer for a call: it ends the call. */
static void
answer(struct faas_call *c, const struct faas_request *req, bool error)
{
    c->api_answered = true;
    if (error) {
        const char *type = faas_request_header(req, "Lambda-Runtime-Function-Error-Type");
        c->function_error = true;
        faas_log_call(c, "stderr", "function error", 14);
        if (c->front == NULL) { /* a function URL answers an unhandled error with 502 */
            faas_reply_head(c, 502, NULL, "Content-Type: application/json\r\n", 32,
                            (int64_t)req->body_len);
            faas_reply_body(c, req->body, req->body_len);
        } else {
            cleanup_free char *hdr = xasprintf("X-Amz-Function-Error: Unhandled\r\n%s%s%s",
                                               type ? "X-Amz-Function-Error-Type: " : "",
                                               type ? type : "", type ? "\r\n" : "");
            faas_reply_head(c, 200, NULL, hdr, strlen(hdr), (int64_t)req->body_len);
            faas_reply_body(c, req->body, req->body_len);
        }
    } else if (c->front == NULL) {
        http_answer(c, req->body, req->body_len);
    } else {
        faas_reply_head(c, 200, NULL, "Content-Type: application/json\r\n", 32,
                        (int64_t)req->body_len);
        faas_reply_body(c, req->body, req->body_len);
    }
    faas_reply_end(c, true);
    faas_call_end(c);
}

static void
api_invocation(struct faas_server *s, struct faas_conn *conn, struct faas_request *req,
               const char *rid, const char *rest)
{
    struct faas_instance *in = conn->from;
    const char *slash = strchr(rest, '/');
    bool response = slash && strcmp(slash, "/response") == 0;
    bool error = slash && strcmp(slash, "/error") == 0;
    if (strcmp(req->method, "POST") != 0 || !(response || error)) {
        api_error(s, conn, 404, rid, "InvalidPath", "no such Runtime API path");
        return;
    }
    struct faas_call *c = api_call(in, rest, (size_t)(slash - rest));
    if (c == NULL && was_answered(in, rest, (size_t)(slash - rest))) {
        api_error(s, conn, 403, rid, "InvalidStateTransition",
                  "this invocation was answered already");
        return;
    }
    if (c == NULL) {
        api_error(s, conn, 400, rid, "InvalidRequestID", "no invocation with this request id");
        return;
    }
    if (c->api_answered) {
        api_error(s, conn, 403, rid, "InvalidStateTransition",
                  "this invocation was answered already");
        return;
    }
    const char *mode = faas_request_header(req, "Lambda-Runtime-Function-Response-Mode");
    if (response && mode && strcasecmp(mode, "streaming") != 0 &&
        strcasecmp(mode, "buffered") != 0) {
        /* The answer is refused, so the call ends now (as an oversized one does): its caller
         * learns why instead of waiting for the timeout. */
        api_error(s, conn, 400, rid, "InvalidResponseModeHeader",
                  "Lambda-Runtime-Function-Response-Mode: must be streaming or buffered");
        cleanup_free char *msg = xasprintf("the runtime's response was refused: header "
                                           "'Lambda-Runtime-Function-Response-Mode': '%.64s' is "
                                           "not streaming or buffered",
                                           mode);
        c->api_answered = true;
        faas_call_fail(c, 502, msg, NULL);
        return;
    }
    if (req->body_streams && response) {
        faas_lambda_stream(s, conn, c, req, rid);
        return;
    }
    if (req->too_large) {
        cleanup_free char *msg = xasprintf("Exceeded maximum allowed payload size (%lld bytes).",
                                           (long long)c->fn->max_response);
        api_error(s, conn, 413, rid, "RequestEntityTooLarge", msg);
        c->api_answered = true;
        c->reply_overflow = true;
        faas_call_fail(c, 502, "Response payload size exceeded maximum allowed payload size", NULL);
        return;
    }
    api_json(s, conn, 202, rid, json_pack("{s:s}", "status", "OK"));
    answer(c, req, error);
}

static void
api_request(struct faas_server *s, struct faas_conn *conn, struct faas_request *req,
            const char *rid)
{
    struct faas_instance *in = conn->from;
    size_t plen = strcspn(req->url, "?");
    cleanup_free char *path = xstrndup(req->url, plen);
    if (in->state == INST_DYING) {
        api_error(s, conn, 500, rid, "ServiceException", "the instance is stopping");
        return;
    }
    if (!str_has_prefix(path, API_PREFIX)) {
        api_error(s, conn, 404, rid, "InvalidPath", "not a Runtime API path");
        return;
    }
    const char *rest = path + strlen(API_PREFIX);
    if (strcmp(rest, "invocation/next") == 0 && strcmp(req->method, "GET") == 0) {
        if (in->api_next) {
            api_error(s, conn, 403, rid, "InvalidStateTransition",
                      "another invocation/next is waiting");
            return;
        }
        in->api_next = conn; /* answered by deliver(), whenever an event comes */
        if (in->state == INST_STARTING)
            faas_instance_ready(s, in); /* init is done: the runtime asks for work */
        deliver(s, in);
    } else if (strcmp(rest, "init/error") == 0 && strcmp(req->method, "POST") == 0) {
        api_json(s, conn, 202, rid, json_pack("{s:s}", "status", "OK"));
        const char *type = faas_request_header(req, "Lambda-Runtime-Function-Error-Type");
        cleanup_free char *why = xasprintf(
            "its runtime failed to initialize (%s): %.*s", type ? type : "Runtime.InitError",
            (int)(req->body_len > 512 ? 512 : req->body_len), req->body ? req->body : "");
        faas_server_log(s, "error", "instance %s: %s", in->id, why);
        faas_pool_instance_gone(s, in, why);
    } else if (str_has_prefix(rest, "invocation/")) {
        api_invocation(s, conn, req, rid, rest + strlen("invocation/"));
    } else {
        api_error(s, conn, 404, rid, "InvalidPath", "no such Runtime API path");
    }
}

/* A response body is buffered up to the function's max_response (6 MB by default); a
 * streamed one goes to the caller as it comes, unbounded. */
static void
api_head(struct faas_request *r, void *data)
{
    struct faas_instance *in = data;
    const char *mode = faas_request_header(r, "Lambda-Runtime-Function-Response-Mode");
    size_t plen = strcspn(r->url, "?");
    r->may_stream = mode && strcasecmp(mode, "streaming") == 0 && plen > 9 &&
                    strncmp(r->url + plen - 9, "/response", 9) == 0;
    r->max_body = r->may_stream ? UINT64_MAX : (uint64_t)in->fn->max_response;
}

static void
on_api_accept(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_instance *in = container_of(w, struct faas_instance, w_api);
    for (;;) {
        int fd = accept4(in->api_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (faas_conn_new_from(s, fd, in, api_head) == NULL)
            close(fd);
    }
}

/* On the work thread: the API's socket exists before the runtime starts and connects. */
static int
lambda_prepare(struct faas_instance *in, struct husk_error **err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(API_PORT)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int fd = faas_instance_socket(in->s, in);
    if (fd < 0)
        return husk_err(err, -fd, "the Runtime API's socket in instance %s", in->id);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return husk_err(err, e, "the Runtime API on 127.0.0.1:%d in instance %s", API_PORT, in->id);
    }
    in->api_fd = fd;
    return 0;
}

static void
lambda_await(struct faas_server *s, struct faas_instance *in)
{
    in->w_api.fn = on_api_accept;
    if (faas_watch_add(s, in->api_fd, EPOLLIN, &in->w_api) < 0)
        faas_pool_instance_gone(s, in, "could not watch its Runtime API");
}

/* ---- calls */

static int
lambda_start(struct faas_call *c, struct husk_error **err)
{
    struct faas_instance *in = c->inst;
    c->api_next_q = NULL;
    if (in->api_queue_tail)
        in->api_queue_tail->api_next_q = c;
    else
        in->api_queue = c;
    in->api_queue_tail = c;
    deliver(c->s, in);
    return 0;
}

static void
lambda_close(struct faas_call *c)
{
    struct faas_instance *in = c->inst;
    faas_lambda_stream_drop(c);
    if (c->api_delivered) { /* remembered a while: a second answer is told apart (403) */
        snprintf(in->answered[in->n_answered++ % ARRAY_SIZE(in->answered)], sizeof(in->answered[0]),
                 "%s", c->aws_id);
        return;
    }
    struct faas_call *prev = NULL;
    for (struct faas_call *q = in->api_queue; q; prev = q, q = q->api_next_q)
        if (q == c) {
            if (prev)
                prev->api_next_q = c->api_next_q;
            else
                in->api_queue = c->api_next_q;
            if (in->api_queue_tail == c)
                in->api_queue_tail = prev;
            break;
        }
}

/* The client went away: the runtime answers anyway, to no one. */
static void
lambda_detach(struct faas_call *c)
{
}

static bool
has_env(char **env, size_t n, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], key, k) == 0 && env[i][k] == '=')
            return true;
    return false;
}

static void
lambda_env(const struct faas_function *f, char ***envp, size_t *n)
{
    const char *region = faas_lambda_env(f, "AWS_REGION", "us-east-1");
    const char *handler = f->handler ? f->handler : "";
    cleanup_free char *vars[] = {
        xasprintf("AWS_LAMBDA_RUNTIME_API=127.0.0.1:%d", API_PORT),
        xasprintf("_HANDLER=%s", handler),
        xstrdup("LAMBDA_TASK_ROOT=/var/task"),
        xstrdup("LAMBDA_RUNTIME_DIR=/var/runtime"),
        xasprintf("AWS_LAMBDA_FUNCTION_NAME=%s", f->name),
        xstrdup("AWS_LAMBDA_FUNCTION_VERSION=$LATEST"),
        xasprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%lld", (long long)faas_function_memory_mb(f)),
        xasprintf("AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/%s", f->name),
        xasprintf("AWS_LAMBDA_LOG_STREAM_NAME=%s-v%lld", f->name, (long long)f->version),
        xasprintf("AWS_REGION=%s", region),
        xasprintf("AWS_DEFAULT_REGION=%s", region),
        xstrdup("AWS_EXECUTION_ENV=AWS_Lambda_husk"),
        xstrdup("TZ=:UTC"),
        xstrdup("AWS_ACCESS_KEY_ID=AKIDHUSKLOCAL"),
        xstrdup("AWS_SECRET_ACCESS_KEY=husk-local-secret"),
        xstrdup("AWS_SESSION_TOKEN=husk-local-session"),
        xstrdup("AWS_LAMBDA_INITIALIZATION_TYPE=on-demand"),
    };
    for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
        cleanup_free char *key = xstrndup(vars[i], strcspn(vars[i], "="));
        if (!has_env(*envp, *n, key)) /* what the deployer set with -e wins */
            (*envp)[(*n)++] = steal_ptr(&vars[i]);
    }
}

/* A regular, executable file at `path` in the function's root (a directory, or an image
 * mounted detached for the look). */
static bool
in_root(int root, const char *path)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
    cleanup_fd int fd = sys_openat2(root, path, &how);
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

/* Lambda's entrypoint: /var/task/bootstrap, /opt/bootstrap, /var/runtime/bootstrap, then the
 * command given at deploy; _HANDLER from "handler", or a command's last argument. */
static int
lambda_deploy(struct faas_function *f, json_t *spec, struct husk_error **err)
{
    static const char *const boots[] = {"/var/task/bootstrap", "/opt/bootstrap",
                                        "/var/runtime/bootstrap"};
    struct sbx_config *c = f->cfg->sbx;
    json_t *h = json_object_get(spec, "handler");
    json_t *cmd = json_object_get(spec, "command");
    if (h && (!json_is_string(h) || !*json_string_value(h)))
        return husk_err(err, 0, "field 'handler': must be a non-empty string");
    if (h)
        f->handler = xstrdup(json_string_value(h));
    else if (json_array_size(cmd) > 1)
        f->handler = xstrdup(json_string_value(json_array_get(cmd, json_array_size(cmd) - 1)));
    cleanup_fd int image = f->root_is_image ? sbx_rootfs_image_mount(c, err) : -1;
    if (f->root_is_image && image < 0)
        return husk_err_prefix(err, "field 'image': ");
    int root = f->root_is_image ? image : f->root_fd;
    for (size_t i = 0; i < ARRAY_SIZE(boots); i++)
        if (in_root(root, boots[i])) {
            strv_freep(&c->process.args);
            c->process.args = xcalloc(2, sizeof(char *));
            c->process.args[0] = xstrdup(boots[i]);
            break;
        }
    if (c->process.args == NULL || c->process.args[0] == NULL ||
        (!json_is_array(cmd) && !in_root(root, c->process.args[0])))
        return husk_err(err, 0,
                        "field 'command': a lambda function needs /var/task/bootstrap, "
                        "/opt/bootstrap or a command");
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
    cleanup_fd int task = sys_openat2(root, "/var/task", &how);
    free(c->process.cwd);
    c->process.cwd = xstrdup(task >= 0 ? "/var/task" : "/");
    return 0;
}

static char *
lambda_not_ready(const struct faas_function *f)
{
    return xstrdup(
        "its runtime did not ask for an event (GET /2018-06-01/runtime/invocation/next)");
}

const struct faas_contract_ops faas_contract_lambda = {
    .not_ready = lambda_not_ready,
    .name = "lambda",
    .default_concurrency = 1,
    .server = true,
    .env_size = 17,
    .deploy = lambda_deploy,
    .prepare = lambda_prepare,
    .await_ready = lambda_await,
    .instance_request = api_request,
    .env = lambda_env,
    .call_start = lambda_start,
    .call_close = lambda_close,
    .call_detach = lambda_detach,
    .call_drained = faas_lambda_stream_drained,
};
