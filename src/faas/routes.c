/* SPDX-License-Identifier: Apache-2.0 */
/* The routes: the admin API under /system/functions and the front door under /function/. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

struct route_ctx {
    struct faas_server *s;
    struct faas_conn *conn;
    struct faas_request *req;
    const char *rid;
    const char *rest; /* the path after the route's prefix, without the query */
    size_t rest_len;
};

static void
respond_json(struct route_ctx *c, int status, json_t *j)
{
    cleanup_json json_t *owned = j;
    cleanup_free char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    cleanup_free char *body = xasprintf("%s\n", text);
    faas_conn_respond(c->s, c->conn, status, c->rid, "application/json", body, strlen(body), NULL);
}

/* Bytes of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates), 0 if none. */
static size_t
utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) /* a NUL ends the string here too */
            return 0;
    if (n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)))
        return 0;
    if (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)))
        return 0;
    return n;
}

/* A message quoting the request (a path, a name) may hold bytes that are not UTF-8: they
 * become U+FFFD, so the error is still JSON. */
static json_t *
json_string_lossy(const char *msg)
{
    struct faas_buf b = {0};
    for (const unsigned char *p = (const unsigned char *)msg; *p;) {
        size_t n = utf8_len(p);
        faas_buf_add(&b, n ? (const char *)p : "\xef\xbf\xbd", n ? n : 3);
        p += n ? n : 1;
    }
    faas_buf_add(&b, "", 1);
    json_t *j = json_string(b.p);
    faas_buf_free(&b);
    return j;
}

static void
respond_error_headers(struct route_ctx *c, int status, const char *msg, const char *extra)
{
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string_lossy(msg));
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    cleanup_free char *body = xasprintf("%s\n", text);
    json_decref(j);
    faas_conn_respond(c->s, c->conn, status, c->rid, "application/json", body, strlen(body), extra);
}

static void
respond_error(struct route_ctx *c, int status, const char *msg)
{
    respond_error_headers(c, status, msg, NULL);
}

/* At most max_deploys_per_minute deploys in each minute: each one compiles a seccomp filter
 * and writes the registry. */
static bool
deploy_allowed(struct faas_server *s)
{
    uint64_t minute = now_ns() / (60 * NS_PER_SEC);
    if (minute != s->deploy_window) {
        s->deploy_window = minute;
        s->deploys_in_window = 0;
    }
    return s->deploys_in_window++ < s->opts->max_deploys_per_minute;
}

static void
deploy(struct route_ctx *c)
{
    struct husk_error *err = NULL;
    struct faas_function *f = NULL;
    if (!deploy_allowed(c->s)) {
        respond_error_headers(c, 429, "too many deploys: the limit is --max-deploys-per-minute",
                              "Retry-After: 60\r\n");
        return;
    }
    /* Files a group member deploys may be theirs; everything else must be root's. */
    struct faas_deploy_ctx dc = {.state_dir = c->s->opts->state_dir,
                                 .policy = &c->s->policy,
                                 .owner = c->conn->admin ? c->conn->peer_uid : 0};
    /* Everything the parse refuses is the deployer's to fix (a missing bundle too): 400. */
    int status = 400;
    if (faas_function_parse(c->req->body, c->req->body_len, &dc, &f, &err) < 0 ||
        (status = 500, faas_registry_put(c->s->reg, f, &err) < 0)) {
        cleanup_free char *msg = husk_error_string(err);
        respond_error(c, status, msg);
        husk_error_free(err);
        faas_function_free(f);
        return;
    }
    struct faas_function *old = faas_server_find(c->s, f->name, strlen(f->name));
    if (old) {
        for (size_t i = 0; i < c->s->n_fns; i++)
            if (c->s->fns[i] == old)
                c->s->fns[i] = f;
    } else {
        c->s->fns = xrealloc(c->s->fns, (c->s->n_fns + 1) * sizeof(*c->s->fns));
        c->s->fns[c->s->n_fns++] = f;
    }
    faas_server_log(c->s, "info", "deployed function '%s' version %lld", f->name,
                    (long long)f->version);
    faas_pool_activate(c->s, f);
    /* Calls in flight finish on the old version; those still queued wait for the new one. */
    if (old) {
        while (old->queue_head) {
            struct faas_call *q = old->queue_head;
            old->queue_head = q->next;
            old->n_queued--;
            q->next = q->prev = NULL;
            q->queued = false;
            q->fn = f;
            faas_pool_submit(c->s, q);
        }
        old->queue_tail = NULL;
        faas_pool_retire(c->s, old);
    }
    respond_json(c, 201, faas_function_json(f));
}

static void
list(struct route_ctx *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->s->n_fns; i++)
        json_array_append_new(a, faas_function_json(c->s->fns[i]));
    respond_json(c, 200, a);
}

static struct faas_function *
named(struct route_ctx *c)
{
    struct faas_function *f = faas_server_find(c->s, c->rest, c->rest_len);
    if (f == NULL) {
        cleanup_free char *msg = xasprintf("function '%.*s' not found", (int)c->rest_len, c->rest);
        respond_error(c, 404, msg);
    }
    return f;
}

static void
get(struct route_ctx *c)
{
    struct faas_function *f = named(c);
    if (f)
        respond_json(c, 200, faas_function_json(f));
}

static void
rm(struct route_ctx *c)
{
    struct faas_function *f = named(c);
    struct husk_error *err = NULL;
    if (f == NULL)
        return;
    if (faas_registry_delete(c->s->reg, f->name, &err) < 0) {
        cleanup_free char *msg = husk_error_string(err);
        husk_error_free(err);
        respond_error(c, 500, msg);
        return;
    }
    for (size_t i = 0; i < c->s->n_fns; i++)
        if (c->s->fns[i] == f)
            c->s->fns[i] = c->s->fns[--c->s->n_fns];
    faas_server_log(c->s, "info", "removed function '%s'", f->name);
    faas_log_remove(c->s, f->name);
    faas_pool_retire(c->s, f);
    faas_conn_respond(c->s, c->conn, 204, c->rid, NULL, "", 0, NULL);
}

static void
invoke(struct route_ctx *c)
{
    const char *slash = memchr(c->rest, '/', c->rest_len);
    size_t name_len = slash ? (size_t)(slash - c->rest) : c->rest_len;
    struct faas_function *f = faas_server_find(c->s, c->rest, name_len);
    if (f == NULL) {
        cleanup_free char *msg = xasprintf("function '%.*s' not found", (int)name_len, c->rest);
        respond_error(c, 404, msg);
        return;
    }
    if (c->req->too_large) {
        cleanup_free char *msg = xasprintf(
            "request body over the function's max_body of %lld bytes", (long long)f->max_body);
        c->conn->keep_alive = false; /* the rest of the body was not read */
        respond_error(c, 413, msg);
        return;
    }
    cleanup_free char *subpath = xstrndup(c->rest + name_len, c->rest_len - name_len);
    struct faas_call *call = faas_call_new(c->s, c->conn, f, c->rid, subpath);
    call->req = *c->req;
    memset(c->req, 0, sizeof(*c->req));
    faas_pool_submit(c->s, call);
}

/* GET /system/logs/NAME?since=OFFSET: the log from an offset; X-Log-Offset is the next. */
static void
logs(struct route_ctx *c)
{
    cleanup_free char *name = xstrndup(c->rest, c->rest_len);
    const char *q = strstr(c->req->url, "since=");
    uint64_t since = 0;
    if (q && parse_u64(strndupa(q + 6, strcspn(q + 6, "&")), &since) < 0) {
        respond_error(c, 400, "query 'since': must be a byte offset");
        return;
    }
    if (faas_server_find(c->s, name, strlen(name)) == NULL) {
        respond_error(c, 404, "no such function");
        return;
    }
    size_t len;
    uint64_t next;
    cleanup_free char *text = faas_log_read(c->s, name, since, 1 << 20, &len, &next);
    cleanup_free char *extra = xasprintf("X-Log-Offset: %llu\r\n", (unsigned long long)next);
    faas_conn_respond(c->s, c->conn, 200, c->rid, "text/plain", text, len, extra);
}

static void
metrics(struct route_ctx *c)
{
    size_t len;
    cleanup_free char *text = faas_metrics_text(c->s, &len);
    faas_conn_respond(c->s, c->conn, 200, c->rid, "text/plain; version=0.0.4", text, len, NULL);
}

static void
health(struct route_ctx *c)
{
    faas_conn_respond(c->s, c->conn, c->s->stopping ? 503 : 200, c->rid, NULL, "OK\n", 3, NULL);
}

struct route {
    const char *methods; /* space-separated, with spaces around */
    const char *prefix;
    bool exact; /* the path is exactly the prefix */
    bool admin; /* the admin API: the admin socket, or TCP with the bearer token */
    void (*handler)(struct route_ctx *c);
};

static const struct route routes[] = {
    {" POST ", "/system/functions", true, true, deploy},
    {" GET ", "/system/functions", true, true, list},
    {" GET ", "/system/functions/", false, true, get},
    {" DELETE ", "/system/functions/", false, true, rm},
    {" GET ", "/system/logs/", false, true, logs},
    {" GET HEAD POST PUT PATCH DELETE OPTIONS ", "/function/", false, false, invoke},
    {" GET ", "/metrics", true, false, metrics},
    {" GET ", "/_/health", true, false, health},
};

/* Equal strings, in a time that depends on the expected one's length only. */
static bool
token_equal(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char d = gl != wl;
    for (size_t i = 0; i < wl; i++)
        d |= (unsigned char)(want[i] ^ given[i < gl ? i : 0]);
    return d == 0;
}

/* Whether the request may use the admin API; if not, it was answered. Browsers cannot drive
 * it cross-site: no CORS, requests naming an Origin are refused, and bodies must be JSON (a
 * form cannot send that without a preflight, which is never granted). */
static bool
admin_allowed(struct route_ctx *c)
{
    const struct faas_request *req = c->req;
    const char *ct = faas_request_header(req, "Content-Type");
    if (!c->conn->admin) {
        const char *auth = faas_request_header(req, "Authorization");
        if (c->s->opts->token == NULL) {
            respond_error(c, 403,
                          "the admin API is not served on the front door: use the admin socket "
                          "(husk fn --url unix:PATH), or start husk serve with "
                          "--admin-token-file");
            return false;
        }
        if (faas_request_header(req, "Origin")) {
            respond_error(c, 403, "cross-origin requests to the admin API are refused");
            return false;
        }
        if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 ||
            !token_equal(auth + 7, c->s->opts->token)) {
            respond_error_headers(c, 401,
                                  auth ? "the admin token is wrong"
                                       : "the admin API needs 'Authorization: Bearer TOKEN'",
                                  "WWW-Authenticate: Bearer realm=\"husk\"\r\n");
            return false;
        }
    }
    if (strcmp(req->method, "POST") == 0 &&
        (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)) {
        respond_error(c, 415, "the admin API takes 'Content-Type: application/json'");
        return false;
    }
    return true;
}

uint64_t
faas_route_body_limit(const struct faas_request *req, void *data)
{
    struct faas_server *s = data;
    const char *p = req->url;
    if (!str_has_prefix(p, "/function/"))
        return FAAS_ADMIN_MAX_BODY;
    p += strlen("/function/");
    size_t n = strcspn(p, "/?");
    struct faas_function *f = faas_server_find(s, p, n);
    return f ? (uint64_t)f->max_body : FAAS_ADMIN_MAX_BODY;
}

static void
route(struct route_ctx *c_)
{
    struct route_ctx c = *c_;
    const struct faas_request *req = c.req;
    size_t path_len = strcspn(req->url, "?");
    bool path_known = false;
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        const struct route *r = &routes[i];
        size_t pl = strlen(r->prefix);
        if (path_len < pl || strncmp(req->url, r->prefix, pl) != 0)
            continue;
        if (r->exact ? path_len != pl : path_len == pl)
            continue;
        path_known = true;
        char m[20];
        snprintf(m, sizeof(m), " %s ", req->method);
        if (strstr(r->methods, m) == NULL)
            continue;
        c.rest = req->url + pl;
        c.rest_len = path_len - pl;
        if (r->admin && !admin_allowed(&c))
            return;
        if (req->too_large && r->handler != invoke) {
            c.conn->keep_alive = false; /* the rest of the body was not read */
            respond_error(&c, 413, "request body over the limit of 1 MiB");
            return;
        }
        r->handler(&c);
        return;
    }
    if (path_known)
        respond_error(&c, 405, "method not allowed");
    else
        respond_error(&c, 404, "no route for this path");
}

void
faas_route(struct faas_server *s, struct faas_conn *conn, struct faas_request *req, const char *rid)
{
    struct route_ctx c = {.s = s, .conn = conn, .req = req, .rid = rid};
    route(&c);
    faas_request_reset(req);
}
