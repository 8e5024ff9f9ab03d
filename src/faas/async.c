/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asynchronous calls: /async-function/NAME, a Lambda Event invocation, or Prefer:
 * respond-async. A call is written to STATE/calls.db before its 202 goes out, so a daemon
 * killed right after still runs it when it starts again. Calls run as the function's own,
 * a few at a time; a failure (a 5xx, a function error, a timeout) is retried twice, 1 s and
 * 2 s later (Lambda retries twice too, minutes apart); the outcome is kept for `husk fn calls`
 * and GET /system/calls/ID, sent to the X-Callback-Url the caller gave (OpenFaaS's
 * X-Function-Status and X-Call-Id headers, the function's answer as the body), and, for a
 * call that still failed, to the function's on_failure URL. Database work and callbacks run
 * off the loop.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "faas-internal.h"
#include "husk/net.h"
#include "util.h"

#define ASYNC_ATTEMPTS      3 /* the first and two retries */
#define ASYNC_RUNNING       64
#define ASYNC_KEEP_FINISHED 10000
#define ASYNC_MAX_RESULT    (256u << 10)

/* One call, in memory while it waits or runs. */
struct faas_async_call {
    struct faas_timer t_retry;
    char id[40];
    char *function, *callback, *subpath;
    struct faas_request req;
    unsigned attempts;
    /* The time of its latest record, later for each record: the work threads write records
     * in any order, and one written late must not undo a newer one. */
    int64_t updated_ms;
    struct faas_async_call *next, *next_retry;
};

struct faas_asyncq {
    sqlite3 *db;
    pthread_mutex_t lock;
    struct faas_async_call *head, *tail; /* waiting to run */
    struct faas_async_call *retrying;    /* waiting for their retry timers */
    size_t n_waiting, n_running, max_waiting;
    struct sbx_cidr *allow; /* callback destinations allowed despite the refused ranges */
    size_t n_allow;
    atomic_bool stop; /* the daemon is going: callbacks in flight give up, none is retried */
};

/* A job for a work thread: one statement on calls.db, or a callback. */
struct async_job {
    struct faas_work work;
    struct faas_server *s;
    struct faas_conn *conn; /* a request waiting for the job (NULL when gone) */
    char rid[72];
    struct faas_async_call *call;
    /* the outcome to record and to send */
    char id[40], *function, *callback, *on_failure, *state, *error, *result, *headers;
    size_t result_len;
    int status, r;
    unsigned attempts;
    int64_t when;           /* the record's time: it is written only over older ones */
    bool lambda;            /* accepted by the Lambda front: a 202 without a body */
    json_t *shown;          /* a call's record, for GET /system/calls/ID */
    struct async_job *then; /* the callback, sent once this record is written */
    struct husk_error *err;
};

static void dispatch(struct faas_server *s);

/* ---- calls.db */

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS calls (id TEXT PRIMARY KEY, function TEXT NOT NULL, state TEXT "
    "NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, request TEXT NOT NULL, callback TEXT, "
    "created INTEGER NOT NULL, updated INTEGER NOT NULL, status INTEGER, result BLOB, error "
    "TEXT);"
    "CREATE INDEX IF NOT EXISTS calls_state ON calls (state);";

static int64_t
epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
request_json(const struct faas_request *r, const char *subpath)
{
    json_t *h = json_array();
    for (size_t i = 0; i < r->n_headers; i++)
        json_array_append_new(h, json_pack("[s,s]", r->headers[i].name, r->headers[i].value));
    cleanup_free char *body = faas_base64(r->body ? r->body : "", r->body_len);
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:s}", "method", r->method, "url", r->url,
                          "subpath", subpath, "headers", h, "body", body);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static int
request_load(const char *text, struct faas_request *r, char **subpath)
{
    json_error_t je;
    cleanup_json json_t *j = json_loads(text, 0, &je);
    const char *m = json_string_value(json_object_get(j, "method"));
    const char *url = json_string_value(json_object_get(j, "url"));
    const char *body = json_string_value(json_object_get(j, "body"));
    json_t *hs = json_object_get(j, "headers"), *h;
    size_t i;
    const char *sub = json_string_value(json_object_get(j, "subpath"));
    if (m == NULL || url == NULL || body == NULL || !json_is_array(hs))
        return -EINVAL;
    *subpath = xstrdup(sub ? sub : "");
    memset(r, 0, sizeof(*r));
    snprintf(r->method, sizeof(r->method), "%s", m);
    r->url = xstrdup(url);
    r->url_len = strlen(url);
    ssize_t n = faas_unbase64(body, &r->body);
    r->body_len = n > 0 ? (size_t)n : 0;
    json_array_foreach(hs, i, h)
    {
        if (r->n_headers == FAAS_MAX_HEADERS)
            break;
        const char *k = json_string_value(json_array_get(h, 0));
        const char *v = json_string_value(json_array_get(h, 1));
        if (k && v)
            r->headers[r->n_headers++] = (struct faas_header){xstrdup(k), xstrdup(v)};
    }
    r->headers_done = r->complete = true;
    return 0;
}

static int
db_fail(struct faas_asyncq *q, const char *what, struct husk_error **err)
{
    return husk_err(err, EIO, "calls.db: %s: %s", what, sqlite3_errmsg(q->db));
}

/* Run one statement with text and integer parameters (NULL text: SQL NULL). */
static int
db_exec(struct faas_asyncq *q, const char *sql, const char *const *texts, size_t n_texts,
        const int64_t *ints, size_t n_ints, struct husk_error **err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < n_texts; i++)
        if (texts[i])
            sqlite3_bind_text(st, (int)i + 1, texts[i], -1, SQLITE_STATIC);
    for (size_t i = 0; rc == SQLITE_OK && i < n_ints; i++)
        sqlite3_bind_int64(st, (int)(n_texts + i) + 1, ints[i]);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    int r = rc == SQLITE_DONE ? 0 : db_fail(q, "write", err);
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* ---- accepting a call: written before the 202 */

static struct faas_async_call *
async_call_new(struct faas_request *req, const char *function, const char *callback,
               const char *subpath, struct faas_server *s)
{
    struct faas_async_call *a = xcalloc(1, sizeof(*a));
    faas_lambda_uuid(s, a->id);
    a->function = xstrdup(function);
    a->subpath = xstrdup(subpath);
    a->callback = callback ? xstrdup(callback) : NULL;
    a->req = *req;
    a->updated_ms = epoch_ms();
    memset(req, 0, sizeof(*req));
    return a;
}

static void
async_call_free(struct faas_async_call *a)
{
    if (a == NULL)
        return;
    free(a->function);
    free(a->callback);
    free(a->subpath);
    faas_request_reset(&a->req);
    free(a);
}

static void
job_free(struct async_job *j)
{
    if (j->then)
        job_free(j->then);
    if (j->conn)
        j->conn->waiter = NULL;
    free(j->function);
    free(j->callback);
    free(j->on_failure);
    free(j->state);
    free(j->error);
    free(j->result);
    free(j->headers);
    json_decref(j->shown);
    husk_error_free(j->err);
    free(j);
}

static void
insert_run(struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    struct faas_async_call *a = j->call;
    cleanup_free char *req = request_json(&a->req, a->subpath);
    const char *texts[] = {a->id, a->function, req, a->callback};
    int64_t ints[] = {a->updated_ms, a->updated_ms};
    j->r = db_exec(j->s->async,
                   "INSERT INTO calls (id, function, state, request, callback, "
                   "created, updated) VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6)",
                   texts, 4, ints, 2, &j->err);
}

static void
enqueue(struct faas_asyncq *q, struct faas_async_call *a)
{
    a->next = NULL;
    if (q->tail)
        q->tail->next = a;
    else
        q->head = a;
    q->tail = a;
    q->n_waiting++;
}

static void
insert_done(struct faas_server *s, struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    struct faas_asyncq *q = s->async;
    if (j->conn) {
        struct faas_route_ctx c = {.s = s, .conn = j->conn, .rid = j->rid};
        j->conn->waiter = NULL;
        if (j->r < 0) {
            cleanup_free char *msg = husk_error_string(j->err);
            faas_respond_error(&c, 500, msg);
        } else {
            /* Lambda's Event answer has no body; the others name the call. The call's id is
             * the request id from here on (its runs are logged under it), so the X-Call-Id
             * every answer carries is the call's, once. */
            cleanup_free char *body =
                j->lambda ? xstrdup("") : xasprintf("{\"callId\":\"%s\"}\n", j->call->id);
            cleanup_free char *extra = xasprintf("X-Amzn-RequestId: %s\r\n", j->call->id);
            faas_conn_respond(s, j->conn, 202, j->call->id, j->lambda ? NULL : "application/json",
                              body, strlen(body), extra);
        }
        j->conn = NULL;
    }
    if (j->r == 0) {
        q->n_waiting--; /* counted when it was accepted; enqueue counts it again */
        enqueue(q, steal_ptr(&j->call));
        dispatch(s);
    } else {
        q->n_waiting--; /* counted when it was accepted */
        async_call_free(j->call);
    }
    job_free(j);
}

void
faas_async_submit(struct faas_route_ctx *c, struct faas_function *f, const char *callback,
                  const char *subpath, bool lambda)
{
    struct faas_asyncq *q = c->s->async;
    if (q->n_waiting + q->n_running >= q->max_waiting) {
        static const char lambda_full[] =
            "{\"Type\":\"User\",\"message\":\"the asynchronous queue is full\"}";
        if (lambda) /* in Lambda's shape: the SDKs see a TooManyRequestsException */
            faas_conn_respond(c->s, c->conn, 429, c->rid, "application/json", lambda_full,
                              strlen(lambda_full),
                              "Retry-After: 1\r\nX-Amzn-ErrorType: TooManyRequestsException\r\n");
        else
            faas_respond_error_headers(c, 429, "the asynchronous queue is full",
                                       "Retry-After: 1\r\n");
        return;
    }
    if (callback && !str_has_prefix(callback, "http://") && !str_has_prefix(callback, "https://")) {
        faas_respond_error(c, 400, "header 'X-Callback-Url': must be an http:// or https:// URL");
        return;
    }
    struct async_job *j = xcalloc(1, sizeof(*j));
    j->work.run = insert_run;
    j->work.done = insert_done;
    j->s = c->s;
    j->conn = c->conn;
    c->conn->waiter = &j->conn;
    snprintf(j->rid, sizeof(j->rid), "%s", c->rid);
    j->lambda = lambda;
    j->call = async_call_new(c->req, f->name, callback, subpath, c->s);
    q->n_waiting++; /* the slot is taken now: a burst cannot overfill the queue */
    faas_work_submit(c->s, &j->work);
}

/* ---- running: a call of the function with no client, its reply captured */

static void async_finish(struct faas_call *c);
static const struct faas_front_ops async_front = {.finish = async_finish};

static void
retry_now(struct faas_server *s, struct faas_timer *t)
{
    struct faas_async_call *a = container_of(t, struct faas_async_call, t_retry);
    struct faas_async_call **p = &s->async->retrying;
    while (*p != a)
        p = &(*p)->next_retry;
    *p = a->next_retry;
    enqueue(s->async, a);
    dispatch(s);
}

static void record(struct faas_server *s, struct faas_async_call *a, const char *state,
                   struct faas_call *c, const char *error);

static void
dispatch(struct faas_server *s)
{
    struct faas_asyncq *q = s->async;
    while (q->head && q->n_running < ASYNC_RUNNING && !s->stopping) {
        struct faas_async_call *a = q->head;
        q->head = a->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->n_waiting--;
        struct faas_function *f = faas_server_find(s, a->function, strlen(a->function));
        if (f == NULL) {
            record(s, a, "failed", NULL, "the function was removed");
            async_call_free(a);
            continue;
        }
        a->attempts++;
        q->n_running++;
        struct faas_call *c = faas_call_new(s, NULL, f, a->id, a->subpath);
        c->front = &async_front;
        c->async = a;
        c->trigger = FAAS_TRIGGER_OTHER;
        snprintf(c->aws_id, sizeof(c->aws_id), "%s", a->id);
        /* Each attempt gets a copy: the original stays for a retry. */
        c->req = a->req;
        c->req.url = xstrdup(a->req.url);
        c->req.body = a->req.body_len ? xstrndup(a->req.body, a->req.body_len) : NULL;
        for (size_t i = 0; i < a->req.n_headers; i++)
            c->req.headers[i] = (struct faas_header){xstrdup(a->req.headers[i].name),
                                                     xstrdup(a->req.headers[i].value)};
        record(s, a, "running", NULL, NULL);
        faas_pool_submit(s, c);
    }
}

static bool
failed(const struct faas_call *c)
{
    return c->fail_status || c->function_error || !c->reply_ok || c->status >= 500;
}

static void
async_finish(struct faas_call *c)
{
    struct faas_server *s = c->s;
    struct faas_asyncq *q = s->async;
    struct faas_async_call *a = c->async;
    c->async = NULL;
    q->n_running--;
    if (failed(c) && s->stopping) { /* cut short by the stop: the next start runs it again */
        async_call_free(a);
        return;
    }
    if (failed(c) && a->attempts < ASYNC_ATTEMPTS) {
        /* Retried after 1 s, then 2 s. */
        faas_server_log(s, "info", "asynchronous call %s of '%s' failed (attempt %u): retried",
                        a->id, a->function, a->attempts);
        record(s, a, "retrying", c, c->fail_msg);
        a->t_retry.fn = retry_now;
        a->next_retry = q->retrying;
        q->retrying = a;
        faas_timer_set(s, &a->t_retry, now_ns() + (uint64_t)a->attempts * NS_PER_SEC);
    } else {
        record(s, a, failed(c) ? "failed" : "succeeded", c, c->fail_msg);
        async_call_free(a);
    }
    dispatch(s);
}

/* ---- outcomes: written, and sent to the callback (and the failure destination) */

size_t
faas_curl_discard(char *p, size_t size, size_t n, void *data)
{
    return size * n;
}

/* Callbacks come from the daemon's host, so a caller must not aim them at what only the host
 * reaches: loopback, link-local (a cloud's metadata service) and "this network" are refused,
 * unless --allow-callback names them. Checked on the address connected to, after DNS. */
static const char *const refused_ranges[] = {
    "127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16",      "::1/128",
    "::/128",      "fe80::/10", "::ffff:127.0.0.0/104"};

static bool
in_cidr(const struct sbx_cidr *net, int family, const uint8_t *addr)
{
    if (net->family != family)
        return false;
    unsigned full = net->prefix / 8, bits = net->prefix % 8;
    if (memcmp(net->addr, addr, full) != 0)
        return false;
    uint8_t mask = (uint8_t)(0xff << (8 - bits));
    return bits == 0 || (net->addr[full] & mask) == (addr[full] & mask);
}

static bool
callback_allowed(const struct faas_asyncq *q, const struct sockaddr *sa)
{
    const uint8_t *addr = sa->sa_family == AF_INET
                              ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr
                              : (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return false;
    for (size_t i = 0; i < q->n_allow; i++)
        if (in_cidr(&q->allow[i], sa->sa_family, addr))
            return true;
    for (size_t i = 0; i < ARRAY_SIZE(refused_ranges); i++) {
        struct sbx_cidr net;
        if (sbx_cidr_parse(refused_ranges[i], &net, NULL) == 0 &&
            in_cidr(&net, sa->sa_family, addr))
            return false;
    }
    return true;
}

struct post_ctx {
    const struct faas_asyncq *q;
    bool refused;
};

static curl_socket_t
open_checked(void *data, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct post_ctx *p = data;
    if (purpose != CURLSOCKTYPE_IPCXN || !callback_allowed(p->q, &a->addr)) {
        p->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* curl's progress function: a non-zero answer cuts the transfer short. */
static int
until_stop(void *data, curl_off_t dl_total, curl_off_t dl_now, curl_off_t ul_total,
           curl_off_t ul_now)
{
    return atomic_load(&((const struct faas_asyncq *)data)->stop);
}

/* One POST, with a timeout; tried three times. On a network thread: it may block, until the
 * daemon stops (faas_async_stop). */
static int
post(struct faas_asyncq *q, const char *url, const char *const *headers, size_t n_headers,
     const char *body, size_t len, struct husk_error **err)
{
    CURLcode rc = CURLE_OK;
    long code = 0;
    for (int attempt = 0; attempt < 3 && !atomic_load(&q->stop); attempt++) {
        struct post_ctx ctx = {.q = q};
        CURL *h = curl_easy_init();
        struct curl_slist *list = NULL;
        if (h == NULL)
            return husk_err(err, ENOMEM, "callback to '%s'", url);
        for (size_t i = 0; i < n_headers; i++)
            list = curl_slist_append(list, headers[i]);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, faas_curl_discard);
        curl_easy_setopt(h, CURLOPT_PROXY, ""); /* straight to the address checked */
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_checked);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &ctx);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, until_stop);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, q);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(list);
        curl_easy_cleanup(h);
        if (rc == CURLE_OK && code < 500)
            return 0;
        if (ctx.refused) /* not retried */
            return husk_err(err, EACCES,
                            "callback to '%s' refused: its address is loopback or link-local "
                            "(allow it with --allow-callback)",
                            url);
        if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
            break;
        for (int i = 0; i < 10 && !atomic_load(&q->stop); i++)
            usleep(100 * 1000);
    }
    if (atomic_load(&q->stop))
        return husk_err(err, ECANCELED, "callback to '%s': cut short by the daemon's stop", url);
    if (rc == CURLE_OK)
        return husk_err(err, EIO, "callback to '%s': answered HTTP %ld, three times", url, code);
    return husk_err(err, EIO, "callback to '%s': %s", url, curl_easy_strerror(rc));
}

/* One statement, so that a reader never sees a call's new state without its result. */
static void
record_run(struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    struct faas_asyncq *q = j->s->async;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = sqlite3_prepare_v2(q->db,
                                "UPDATE calls SET state = ?1, error = ?2, attempts = ?3, updated = "
                                "?4, status = ?5, result = coalesce(?6, result) WHERE id = ?7 AND "
                                "updated < ?4",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, j->state, -1, SQLITE_STATIC);
        if (j->error)
            sqlite3_bind_text(st, 2, j->error, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, j->attempts);
        sqlite3_bind_int64(st, 4, j->when);
        sqlite3_bind_int64(st, 5, j->status);
        if (j->result)
            sqlite3_bind_blob(st, 6, j->result, (int)j->result_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, j->id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    j->r = rc == SQLITE_DONE ? 0 : db_fail(q, "write", &j->err);
    pthread_mutex_unlock(&q->lock);
}

/* Callbacks go from the network threads, whatever they wait for. */
static void
callback_run(struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    struct faas_asyncq *q = j->s->async;
    cleanup_free char *status = xasprintf("X-Function-Status: %d", j->status);
    cleanup_free char *call = xasprintf("X-Call-Id: %s", j->id);
    cleanup_free char *name = xasprintf("X-Function-Name: %s", j->function);
    const char *headers[] = {status, call, name, "Content-Type: application/octet-stream"};
    int r;
    if (j->callback && (r = post(q, j->callback, headers, 4, j->result ? j->result : "",
                                 j->result_len, &j->err)) < 0)
        j->r = r;
    if (j->on_failure && strcmp(j->state, "failed") == 0) {
        json_t *rec = json_pack(
            "{s:s, s:{s:s, s:s, s:s, s:i}, s:{s:i, s:s}, s:s}", "version", "1.0", "requestContext",
            "requestId", j->id, "functionName", j->function, "condition", "RetriesExhausted",
            "approximateInvokeCount", (int)j->attempts, "responseContext", "statusCode", j->status,
            "functionError", "Unhandled", "error", j->error ? j->error : "");
        cleanup_free char *text = json_dumps(rec, JSON_COMPACT);
        json_decref(rec);
        const char *jh[] = {call, "Content-Type: application/json"};
        if ((r = post(q, j->on_failure, jh, 2, text, strlen(text), &j->err)) < 0)
            j->r = r;
    }
}

static void
job_done_log(struct faas_server *s, struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    if (j->r < 0)
        faas_server_log(s, "warning", "asynchronous call %s: %s", j->id,
                        j->err ? j->err->msg : "not recorded");
    job_free(j);
}

/* The record is written: now its callback may go (a caller that looks the call up when
 * called back finds it finished). */
static void
record_done(struct faas_server *s, struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    if (j->then)
        faas_workq_submit(s->net, &steal_ptr(&j->then)->work);
    job_done_log(s, w);
}

static void
record(struct faas_server *s, struct faas_async_call *a, const char *state, struct faas_call *c,
       const char *error)
{
    struct async_job *j = xcalloc(1, sizeof(*j));
    j->work.run = record_run;
    j->work.done = record_done;
    j->s = s;
    snprintf(j->id, sizeof(j->id), "%s", a->id);
    j->function = xstrdup(a->function);
    j->state = xstrdup(state);
    j->error = error ? xstrdup(error) : NULL;
    j->attempts = a->attempts;
    int64_t now = epoch_ms();
    a->updated_ms = now > a->updated_ms ? now : a->updated_ms + 1;
    j->when = a->updated_ms;
    j->status = c ? c->status : 0;
    if (c && c->reply_body.len) {
        j->result_len = c->reply_body.len < ASYNC_MAX_RESULT ? c->reply_body.len : ASYNC_MAX_RESULT;
        j->result = xstrndup(c->reply_body.p, j->result_len);
    } else if (c && c->fail_msg) {
        j->result = xstrdup(c->fail_msg);
        j->result_len = strlen(j->result);
    }
    bool final = strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0;
    struct faas_function *f = faas_server_find(s, a->function, strlen(a->function));
    const char *on_failure = f ? json_string_value(json_object_get(f->spec, "on_failure")) : NULL;
    if (final && (a->callback || (on_failure && strcmp(state, "failed") == 0))) {
        struct async_job *cb = xcalloc(1, sizeof(*cb));
        *cb = *j;
        cb->work.run = callback_run;
        cb->work.done = job_done_log;
        cb->function = xstrdup(j->function);
        cb->state = xstrdup(j->state);
        cb->error = j->error ? xstrdup(j->error) : NULL;
        cb->result = j->result ? xstrndup(j->result, j->result_len) : NULL;
        cb->callback = a->callback ? xstrdup(a->callback) : NULL;
        cb->on_failure = on_failure ? xstrdup(on_failure) : NULL;
        j->then = cb; /* written first, then sent: the record is the truth if the callback fails */
    }
    faas_work_submit(s, &j->work);
}

/* ---- startup: what was accepted and not finished runs (again) */

static int
load_pending(struct faas_server *s, struct husk_error **err)
{
    struct faas_asyncq *q = s->async;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            q->db,
            "SELECT id, function, request, callback, attempts, updated FROM calls WHERE "
            "state IN ('queued', 'running', 'retrying') ORDER BY created",
            -1, &st, NULL) != SQLITE_OK)
        return db_fail(q, "list pending calls", err);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct faas_async_call *a = xcalloc(1, sizeof(*a));
        snprintf(a->id, sizeof(a->id), "%s", (const char *)sqlite3_column_text(st, 0));
        a->function = xstrdup((const char *)sqlite3_column_text(st, 1));
        const char *cb = (const char *)sqlite3_column_text(st, 3);
        a->callback = cb ? xstrdup(cb) : NULL;
        a->attempts = (unsigned)sqlite3_column_int(st, 4);
        a->updated_ms = sqlite3_column_int64(st, 5);
        if (request_load((const char *)sqlite3_column_text(st, 2), &a->req, &a->subpath) < 0) {
            async_call_free(a);
            continue;
        }
        enqueue(q, a);
        n++;
    }
    sqlite3_finalize(st);
    if (n)
        faas_server_log(s, "info", "%zu asynchronous calls to run from an earlier run", n);
    return 0;
}

int
faas_async_open(struct faas_server *s, unsigned max_waiting, struct husk_error **err)
{
    struct faas_asyncq *q = xcalloc(1, sizeof(*q));
    s->async = q;
    q->max_waiting = max_waiting;
    pthread_mutex_init(&q->lock, NULL);
    q->allow = xcalloc(s->opts->n_allow_callback + 1, sizeof(*q->allow));
    for (; q->n_allow < s->opts->n_allow_callback; q->n_allow++) {
        const char *text = s->opts->allow_callback[q->n_allow];
        if (sbx_cidr_parse(text, &q->allow[q->n_allow], err) < 0)
            return husk_err_prefix(err, "--allow-callback '%s'", text);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cleanup_free char *path = xasprintf("%s/calls.db", s->opts->state_dir);
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(q->db, schema, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(q, path, err);
    /* keep the newest finished calls, a bounded history */
    sqlite3_exec(q->db,
                 "DELETE FROM calls WHERE state IN ('succeeded', 'failed') AND id NOT IN (SELECT "
                 "id FROM calls WHERE state IN ('succeeded', 'failed') ORDER BY updated DESC "
                 "LIMIT "
                 "10000)",
                 NULL, NULL, NULL);
    return load_pending(s, err);
}

void
faas_async_start(struct faas_server *s)
{
    dispatch(s);
}

void
faas_async_stop(struct faas_server *s)
{
    if (s->async)
        atomic_store(&s->async->stop, true);
}

void
faas_async_close(struct faas_server *s)
{
    struct faas_asyncq *q = s->async;
    if (q == NULL)
        return;
    while (q->head) { /* still queued in calls.db: the next start runs them */
        struct faas_async_call *a = q->head;
        q->head = a->next;
        async_call_free(a);
    }
    while (q->retrying) { /* the same */
        struct faas_async_call *a = q->retrying;
        q->retrying = a->next_retry;
        faas_timer_cancel(s, &a->t_retry);
        async_call_free(a);
    }
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->lock);
    free(q->allow);
    curl_global_cleanup();
    free(q);
    s->async = NULL;
}

/* ---- the record of a call: GET /system/calls/ID, GET /system/calls?function=NAME */

static json_t *
row_json(sqlite3_stmt *st)
{
    const void *res = sqlite3_column_blob(st, 8);
    int n = sqlite3_column_bytes(st, 8);
    cleanup_free char *text = res ? xstrndup(res, (size_t)n) : NULL;
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "id", sqlite3_column_text(st, 0), "function",
                  sqlite3_column_text(st, 1), "state", sqlite3_column_text(st, 2), "attempts",
                  sqlite3_column_int(st, 3), "created_ms", (json_int_t)sqlite3_column_int64(st, 4),
                  "updated_ms", (json_int_t)sqlite3_column_int64(st, 5));
    if (sqlite3_column_type(st, 6) != SQLITE_NULL)
        json_object_set_new(j, "status", json_integer(sqlite3_column_int(st, 6)));
    if (sqlite3_column_type(st, 7) != SQLITE_NULL)
        json_object_set_new(j, "error", json_string((const char *)sqlite3_column_text(st, 7)));
    if (text)
        json_object_set_new(j, "result", faas_json_string_lossy(text));
    if (sqlite3_column_type(st, 9) != SQLITE_NULL)
        json_object_set_new(j, "callback", json_string((const char *)sqlite3_column_text(st, 9)));
    return j;
}

static void
show_run(struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    struct faas_asyncq *q = j->s->async;
    sqlite3_stmt *st = NULL;
    bool one = j->id[0] != '\0';
    pthread_mutex_lock(&q->lock);
    int rc = sqlite3_prepare_v2(q->db,
                                one ? "SELECT id, function, state, attempts, created, updated, "
                                      "status, error, result, callback FROM calls WHERE id = ?1"
                                    : "SELECT id, function, state, attempts, created, updated, "
                                      "status, error, result, callback FROM calls WHERE "
                                      "function = ?1 ORDER BY created DESC LIMIT 100",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, one ? j->id : j->function, -1, SQLITE_STATIC);
        j->shown = one ? NULL : json_array();
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *row = row_json(st);
            if (one) {
                j->shown = row;
                break;
            }
            json_array_append_new(j->shown, row);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->lock);
}

static void
show_done(struct faas_server *s, struct faas_work *w)
{
    struct async_job *j = container_of(w, struct async_job, work);
    if (j->conn) {
        struct faas_route_ctx c = {.s = s, .conn = j->conn, .rid = j->rid};
        j->conn->waiter = NULL;
        if (j->shown)
            faas_respond_json(&c, 200, steal_ptr(&j->shown));
        else
            faas_respond_error(&c, 404, "no asynchronous call with this id");
        j->conn = NULL;
    }
    job_free(j);
}

void
faas_route_calls(struct faas_route_ctx *c)
{
    struct async_job *j = xcalloc(1, sizeof(*j));
    j->work.run = show_run;
    j->work.done = show_done;
    j->s = c->s;
    j->conn = c->conn;
    c->conn->waiter = &j->conn;
    snprintf(j->rid, sizeof(j->rid), "%s", c->rid);
    if (c->rest_len > 0) /* GET /system/calls/ID: the route leaves the id */
        snprintf(j->id, sizeof(j->id), "%.*s", (int)c->rest_len, c->rest);
    else {
        const char *q = strstr(c->req->url, "function=");
        j->function = xstrndup(q ? q + 9 : "", q ? strcspn(q + 9, "&") : 0);
    }
    faas_work_submit(c->s, &j->work);
}
