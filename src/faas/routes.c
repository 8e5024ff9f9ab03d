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

void
faas_respond_json(struct faas_route_ctx *c, int status, json_t *j)
{
    cleanup_json json_t *owned = j;
    cleanup_free char *text =
        json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
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
json_t *
faas_json_string_lossy(const char *msg)
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

void
faas_respond_error_headers(struct faas_route_ctx *c, int status, const char *msg, const char *extra)
{
    json_t *j = json_object();
    json_object_set_new(j, "error", faas_json_string_lossy(msg));
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    cleanup_free char *body = xasprintf("%s\n", text);
    json_decref(j);
    faas_conn_respond(c->s, c->conn, status, c->rid, "application/json", body, strlen(body), extra);
}

void
faas_respond_error(struct faas_route_ctx *c, int status, const char *msg)
{
    faas_respond_error_headers(c, status, msg, NULL);
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

/* Admin work that may take a while (a seccomp compile, a registry write) runs on a work
 * thread; the request's connection waits, and may go away meanwhile (conn becomes NULL). */
struct faas_admin_job *
faas_admin_job(struct faas_route_ctx *c, void (*run)(struct faas_work *w),
               void (*done)(struct faas_server *s, struct faas_work *w))
{
    struct faas_admin_job *j = xcalloc(1, sizeof(*j));
    j->work.run = run;
    j->work.done = done;
    j->s = c->s;
    j->conn = c->conn;
    snprintf(j->rid, sizeof(j->rid), "%s", c->rid);
    c->conn->waiter = &j->conn;
    return j;
}

void
faas_admin_job_free(struct faas_admin_job *j)
{
    if (j->conn)
        j->conn->waiter = NULL;
    husk_error_free(j->err);
    json_decref(j->json);
    faas_request_reset(&j->req);
    free(j->name);
    free(j->body);
    free(j);
}

/* A route context again, to answer a job's request (when its client is still there). */
bool
faas_admin_job_ctx(struct faas_admin_job *j, struct faas_route_ctx *c)
{
    *c = (struct faas_route_ctx){.s = j->s, .conn = j->conn, .rid = j->rid, .req = &j->req};
    if (j->conn)
        j->conn->waiter = NULL;
    return j->conn != NULL;
}

static void
deploy_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    /* Everything the parse refuses is the deployer's to fix (a missing bundle too): 400. */
    j->status = 400;
    j->r = faas_function_parse(j->body, j->len, &j->dc, &j->f, &j->err);
    if (j->r == 0) /* its socket, before the registry knows it: a refusal leaves nothing */
        j->r = faas_publish_acquire(j->s, j->f, &j->err);
    if (j->r == 0) {
        j->status = 500;
        j->r = faas_registry_put(j->s->reg, j->f, &j->err);
    }
}

/* The new version takes the function's place: calls in flight finish on the old one, those
 * still queued go to the new one. */
static void
install(struct faas_server *s, struct faas_function *f)
{
    struct faas_function *old = faas_server_find(s, f->name, strlen(f->name));
    if (old && old->version > f->version) { /* a later deploy already landed */
        faas_pool_retire(s, f);
        return;
    }
    if (old) {
        faas_server_replace(s, old, f);
        faas_versions_carry(old, f);
    } else {
        faas_server_add(s, f);
    }
    faas_server_log(s, "info", "deployed function '%s' version %lld", f->name,
                    (long long)f->version);
    faas_pool_activate(s, f);
    if (old == NULL)
        return;
    while (old->queue_head) {
        struct faas_call *q = old->queue_head;
        faas_pool_unqueue(q);
        q->fn = f;
        faas_pool_submit(s, q);
    }
    faas_pool_retire(s, old);
}

static void
deploy_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_route_ctx c;
    bool answer = faas_admin_job_ctx(j, &c);
    if (j->r < 0) {
        cleanup_free char *msg = husk_error_string(j->err);
        if (answer)
            faas_respond_error(&c, j->status, msg);
        faas_function_free(j->f);
    } else {
        json_t *shown = faas_function_json(j->f); /* install may retire (and free) a stale f */
        install(s, j->f);
        if (answer)
            faas_respond_json(&c, 201, shown);
        else
            json_decref(shown);
    }
    faas_admin_job_free(j);
}

/* A deploy job, or NULL when the rate limit answered. */
static struct faas_admin_job *
deploy_job(struct faas_route_ctx *c, void (*run)(struct faas_work *w))
{
    if (!deploy_allowed(c->s)) {
        faas_respond_error_headers(c, 429,
                                   "too many deploys: the limit is --max-deploys-per-minute",
                                   "Retry-After: 60\r\n");
        return NULL;
    }
    struct faas_admin_job *j = faas_admin_job(c, run, deploy_done);
    /* Files a group member deploys may be theirs; everything else must be root's. */
    j->dc = (struct faas_deploy_ctx){.state_dir = c->s->opts->state_dir,
                                     .policy = &c->s->policy,
                                     .owner = c->conn->admin ? c->conn->peer_uid : 0};
    return j;
}

static void
deploy(struct faas_route_ctx *c)
{
    struct faas_admin_job *j = deploy_job(c, deploy_run);
    if (j == NULL)
        return;
    j->body = steal_ptr(&c->req->body);
    j->len = c->req->body_len;
    c->req->body_len = 0;
    faas_work_submit(c->s, &j->work);
}

/* A new version from an old one's spec: the previous (or a named) version for a rollback, the
 * latest with some fields changed for an update. */
static void
redeploy_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    cleanup_json json_t *spec = faas_registry_version_spec(j->s->reg, j->name, j->version);
    if (spec == NULL) {
        j->status = 404;
        j->r = husk_err(&j->err, 0, "function '%s' has no version %lld", j->name,
                        (long long)j->version);
        return;
    }
    if (j->json)
        json_object_update(spec, j->json);
    json_object_set_new(spec, "name", json_string(j->name));
    j->body = json_dumps(spec, JSON_COMPACT);
    j->len = strlen(j->body);
    deploy_run(w);
}

/* PATCH /system/functions/NAME {"memory": ...}: the latest's spec with these fields changed. */
static void
update(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    json_error_t je;
    json_t *patch = json_loadb(c->req->body ? c->req->body : "", c->req->body_len, 0, &je);
    if (!json_is_object(patch) || json_object_get(patch, "name")) {
        json_decref(patch);
        faas_respond_error(c, 400, "body: a JSON object of the fields to change (not 'name')");
        return;
    }
    struct faas_admin_job *j = deploy_job(c, redeploy_run);
    if (j == NULL) {
        json_decref(patch);
        return;
    }
    j->name = xstrdup(f->name);
    j->version = f->version;
    j->json = patch;
    faas_work_submit(c->s, &j->work);
}

/* POST /system/functions/NAME/rollback [{"version": N}]: version N (the one before the latest
 * by default) again, as a new version. */
static void
rollback(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    json_error_t je;
    cleanup_json json_t *body =
        c->req->body_len ? json_loadb(c->req->body, c->req->body_len, 0, &je) : json_object();
    json_t *v = json_object_get(body, "version");
    int64_t version = v ? json_integer_value(v) : f->version - 1;
    if (f->version == 1 && v == NULL) {
        faas_respond_error(c, 409, "there is no earlier version to roll back to");
        return;
    }
    if (!json_is_object(body) || (v && !json_is_integer(v)) || version < 1 ||
        version >= f->version) {
        cleanup_free char *msg =
            xasprintf("field 'version': a version of '%s' before the latest (%lld)", f->name,
                      (long long)f->version);
        faas_respond_error(c, 400, msg);
        return;
    }
    struct faas_admin_job *j = deploy_job(c, redeploy_run);
    if (j == NULL)
        return;
    j->name = xstrdup(f->name);
    j->version = version;
    faas_work_submit(c->s, &j->work);
}

static void
list(struct faas_route_ctx *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->s->n_fns; i++)
        json_array_append_new(a, faas_function_json(c->s->fns[i]));
    faas_respond_json(c, 200, a);
}

static void
get(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    faas_respond_json(c, 200, faas_function_json(f));
}

static void
rm_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    j->r = faas_registry_delete(j->s->reg, j->name, &j->err);
}

static void
rm_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_route_ctx c;
    bool answer = faas_admin_job_ctx(j, &c);
    struct faas_function *f = faas_server_find(s, j->name, strlen(j->name));
    if (j->r < 0) {
        cleanup_free char *msg = husk_error_string(j->err);
        if (answer)
            faas_respond_error(&c, 500, msg);
    } else {
        if (f)
            faas_server_remove(s, f);
        faas_server_log(s, "info", "removed function '%s'", j->name);
        faas_log_remove(s, j->name);
        faas_aliases_drop(s, j->name);
        if (f) {
            faas_versions_retire(s, f);
            faas_pool_retire(s, f);
        }
        if (answer)
            faas_conn_respond(s, c.conn, 204, c.rid, NULL, "", 0, NULL);
    }
    faas_admin_job_free(j);
}

static void
rm(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    struct faas_admin_job *j = faas_admin_job(c, rm_run, rm_done);
    j->name = xstrdup(f->name);
    faas_work_submit(c->s, &j->work);
}

/* A call path: NAME[@VERSION|@ALIAS][/SUBPATH]. The version is resolved, then cont runs with
 * c->rest at the subpath. */
static void
call_target(struct faas_route_ctx *c, faas_resolved_fn cont)
{
    const char *slash = memchr(c->rest, '/', c->rest_len);
    size_t seg = slash ? (size_t)(slash - c->rest) : c->rest_len;
    const char *at = memchr(c->rest, '@', seg);
    cleanup_free char *name = xstrndup(c->rest, at ? (size_t)(at - c->rest) : seg);
    cleanup_free char *qualifier = at ? xstrndup(at + 1, seg - (size_t)(at + 1 - c->rest)) : NULL;
    c->rest += seg;
    c->rest_len -= seg;
    faas_versions_resolve(c, name, qualifier, cont);
}

/* A body over the function's limit (known once the version is): 413. */
static bool
body_too_large(struct faas_route_ctx *c, struct faas_function *f)
{
    if (!c->req->too_large)
        return false;
    cleanup_free char *msg = xasprintf("request body over the function's max_body of %lld bytes",
                                       (long long)f->max_body);
    c->conn->keep_alive = false; /* the rest of the body was not read */
    faas_respond_error(c, 413, msg);
    return true;
}

/* An asynchronous call: 202 once recorded; X-Callback-Url gets the outcome. Such calls run
 * the latest version. */
static void
submit_async(struct faas_route_ctx *c, struct faas_function *f)
{
    if (body_too_large(c, f))
        return;
    if (f->pinned_next || f != faas_server_find(c->s, f->name, strlen(f->name))) {
        faas_respond_error(c, 400, "asynchronous calls run the latest version: call NAME");
        return;
    }
    cleanup_free char *subpath = xstrndup(c->rest, c->rest_len);
    faas_async_submit(c, f, faas_request_header(c->req, "X-Callback-Url"), subpath, false);
}

static void
invoke_async(struct faas_route_ctx *c)
{
    call_target(c, submit_async);
}

/* RFC 7240: "Prefer: respond-async" asks for a 202 now and the work later. */
static bool
prefers_async(const struct faas_request *req)
{
    const char *p = faas_request_header(req, "Prefer");
    return p && strcasestr(p, "respond-async") != NULL;
}

static void
invoke_resolved(struct faas_route_ctx *c, struct faas_function *f)
{
    if (prefers_async(c->req)) {
        submit_async(c, f);
        return;
    }
    if (body_too_large(c, f))
        return;
    cleanup_free char *subpath = xstrndup(c->rest, c->rest_len);
    struct faas_call *call = faas_call_new(c->s, c->conn, f, c->rid, subpath);
    call->req = *c->req;
    memset(c->req, 0, sizeof(*c->req));
    faas_call_take_body(call);
    faas_pool_submit(c->s, call);
}

static void
invoke(struct faas_route_ctx *c)
{
    call_target(c, invoke_resolved);
}

/* GET /system/logs/NAME?since=OFFSET: the log from an offset; X-Log-Offset is the next. The
 * file is read on a work thread. */
static void
logs_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    uint64_t since = (uint64_t)j->version, next;
    j->body = faas_log_read(j->name, since, 1 << 20, &j->len, &next);
    j->version = (int64_t)next;
}

static void
logs_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_route_ctx c;
    if (faas_admin_job_ctx(j, &c)) {
        cleanup_free char *extra =
            xasprintf("X-Log-Offset: %llu\r\n", (unsigned long long)j->version);
        faas_conn_respond(s, c.conn, 200, c.rid, "text/plain", j->body, j->len, extra);
    }
    faas_admin_job_free(j);
}

static void
logs(struct faas_route_ctx *c)
{
    cleanup_free char *name = xstrndup(c->rest, c->rest_len);
    const char *q = strstr(c->req->url, "since=");
    uint64_t since = 0;
    if (q && (parse_u64(strndupa(q + 6, strcspn(q + 6, "&")), &since) < 0 || since > INT64_MAX)) {
        faas_respond_error(c, 400, "query 'since': must be a byte offset");
        return;
    }
    if (faas_server_find(c->s, name, strlen(name)) == NULL) {
        faas_respond_error(c, 404, "no such function");
        return;
    }
    struct faas_admin_job *j = faas_admin_job(c, logs_run, logs_done);
    j->name = faas_log_path(c->s, name);
    j->version = (int64_t)since;
    faas_work_submit(c->s, &j->work);
}

static void
metrics(struct faas_route_ctx *c)
{
    size_t len;
    cleanup_free char *text = faas_metrics_text(c->s, &len);
    faas_conn_respond(c->s, c->conn, 200, c->rid, "text/plain; version=0.0.4", text, len, NULL);
}

static void
health(struct faas_route_ctx *c)
{
    faas_conn_respond(c->s, c->conn, c->s->stopping ? 503 : 200, c->rid, NULL, "OK\n", 3, NULL);
}

static void
versions(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    faas_versions_list(c, f);
}

static void
aliases(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    faas_aliases_list(c, f);
}

static void
alias_put(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    faas_alias_put(c, f, arg);
}

static void
alias_rm(struct faas_route_ctx *c, struct faas_function *f, const char *arg)
{
    faas_alias_rm(c, f, arg);
}

/* /system/functions/NAME[/SUB[/ARG]]: what one function has. */
static const struct {
    const char *method, *sub; /* sub ending in '/': an argument follows */
    void (*handler)(struct faas_route_ctx *c, struct faas_function *f, const char *arg);
} function_routes[] = {
    {"GET", "", get},
    {"DELETE", "", rm},
    {"PATCH", "", update},
    {"GET", "versions", versions},
    {"GET", "aliases", aliases},
    {"PUT", "aliases/", alias_put},
    {"DELETE", "aliases/", alias_rm},
    {"POST", "rollback", rollback},
};

/* Whether a sub-path matches a route's: exactly, or "PREFIX/ARG" with one segment of ARG. */
static bool
sub_matches(const char *have, const char *want, const char **arg)
{
    size_t wl = strlen(want);
    *arg = NULL;
    if (wl == 0 || want[wl - 1] != '/')
        return strcmp(have, want) == 0;
    if (strncmp(have, want, wl) != 0 || have[wl] == '\0' || strchr(have + wl, '/'))
        return false;
    *arg = have + wl;
    return true;
}

static void
function_admin(struct faas_route_ctx *c)
{
    cleanup_free char *path = xstrndup(c->rest, c->rest_len);
    char *sub = strchr(path, '/');
    if (sub)
        *sub++ = '\0';
    struct faas_function *f = faas_server_find(c->s, path, strlen(path));
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(function_routes); i++) {
        const char *arg;
        if (!sub_matches(sub ? sub : "", function_routes[i].sub, &arg))
            continue;
        known = true;
        if (strcmp(c->req->method, function_routes[i].method) != 0)
            continue;
        if (f == NULL) {
            cleanup_free char *msg = xasprintf("function '%s' not found", path);
            faas_respond_error(c, 404, msg);
            return;
        }
        function_routes[i].handler(c, f, arg);
        return;
    }
    faas_respond_error(c, known ? 405 : 404,
                       known ? "method not allowed" : "no route for this path");
}

struct route {
    const char *methods; /* space-separated, with spaces around */
    const char *prefix;
    bool exact;   /* the path is exactly the prefix */
    bool admin;   /* the admin API: the admin socket, or TCP with the bearer token */
    bool fn_body; /* a call: the function's max_body limits the body, the handler says 413 */
    void (*handler)(struct faas_route_ctx *c);
};

#define CALL_METHODS " GET HEAD POST PUT PATCH DELETE OPTIONS "

static const struct route routes[] = {
    {" POST ", "/system/functions", true, true, false, deploy},
    {" GET ", "/system/functions", true, true, false, list},
    {" GET PUT POST PATCH DELETE ", "/system/functions/", false, true, false, function_admin},
    {" GET ", "/system/logs/", false, true, false, logs},
    {" GET ", "/system/calls", true, true, false, faas_route_calls},
    {" GET ", "/system/calls/", false, true, false, faas_route_calls},
    {CALL_METHODS, "/function/", false, false, true, invoke},
    {CALL_METHODS, "/async-function/", false, false, true, invoke_async},
    {" POST ", "/2015-03-31/functions/", false, false, true, faas_route_lambda_invoke},
    {" POST ", "/2021-11-15/functions/", false, false, true, faas_route_lambda_stream},
    {" GET ", "/metrics", true, false, false, metrics},
    {" GET ", "/", true, false, false, faas_route_status},
    {" GET ", "/_/health", true, false, false, health},
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
admin_allowed(struct faas_route_ctx *c)
{
    const struct faas_request *req = c->req;
    const char *ct = faas_request_header(req, "Content-Type");
    if (!c->conn->admin) {
        const char *auth = faas_request_header(req, "Authorization");
        if (c->s->opts->token == NULL) {
            faas_respond_error(
                c, 403,
                "the admin API is not served on the front door: use the admin socket "
                "(husk fn --url unix:PATH), or start husk serve with "
                "--admin-token-file");
            return false;
        }
        if (faas_request_header(req, "Origin")) {
            faas_respond_error(c, 403, "cross-origin requests to the admin API are refused");
            return false;
        }
        if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 ||
            !token_equal(auth + 7, c->s->opts->token)) {
            faas_respond_error_headers(c, 401,
                                       auth ? "the admin token is wrong"
                                            : "the admin API needs 'Authorization: Bearer TOKEN'",
                                       "WWW-Authenticate: Bearer realm=\"husk\"\r\n");
            return false;
        }
    }
    bool has_body = strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
                    strcmp(req->method, "PATCH") == 0;
    if (has_body && (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)) {
        faas_respond_error(c, 415, "the admin API takes 'Content-Type: application/json'");
        return false;
    }
    return true;
}

/* The body limit of a request, known from its head: a call's is its function's, and its body
 * streams to the function when its contract reads a stream. */
void
faas_route_head(struct faas_request *req, void *data)
{
    struct faas_server *s = data;
    static const char *const call_prefixes[] = {"/function/", "/async-function/"};
    req->max_body = FAAS_ADMIN_MAX_BODY;
    for (size_t i = 0; i < ARRAY_SIZE(call_prefixes); i++) {
        if (!str_has_prefix(req->url, call_prefixes[i]))
            continue;
        const char *p = req->url + strlen(call_prefixes[i]);
        size_t n = strcspn(p, "/?@");
        struct faas_function *f = faas_server_find(s, p, n);
        if (f == NULL)
            return;
        /* a version not in memory yet is loaded first: its call takes the body whole */
        req->max_body = (uint64_t)f->max_body;
        req->may_stream = i == 0 && p[n] != '@' && f->contract->streams_body && !prefers_async(req);
        return;
    }
    if (str_has_prefix(req->url, "/2015-03-31/functions/") ||
        str_has_prefix(req->url, "/2021-11-15/functions/"))
        req->max_body = faas_lambda_body_limit(s, req->url + strlen("/2015-03-31/functions/"));
}

static void
route(struct faas_route_ctx *c_)
{
    struct faas_route_ctx c = *c_;
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
        if (req->too_large && !r->fn_body) {
            c.conn->keep_alive = false; /* the rest of the body was not read */
            faas_respond_error(&c, 413, "request body over the limit of 1 MiB");
            return;
        }
        r->handler(&c);
        return;
    }
    if (path_known)
        faas_respond_error(&c, 405, "method not allowed");
    else
        faas_respond_error(&c, 404, "no route for this path");
}

void
faas_route(struct faas_server *s, struct faas_conn *conn, struct faas_request *req, const char *rid)
{
    struct faas_route_ctx c = {.s = s, .conn = conn, .req = req, .rid = rid};
    route(&c);
}
