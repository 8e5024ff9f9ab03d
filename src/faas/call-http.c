/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The http contract (Knative / Cloud Run: a server on $PORT). The request goes to
 * 127.0.0.1:$PORT inside the instance's network namespace with Forwarded, X-Forwarded-* and the
 * request id, hop-by-hop headers stripped, the body sized or chunked as the client sent it;
 * the response comes back as the server sends it (chunked and streamed bodies pass through as
 * they arrive), with the request id added and the connection header made the client's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive",     "Proxy-Connection",  "TE",          "Trailer", "Upgrade",
    "Expect",     "Content-Length", "Transfer-Encoding", "X-Request-Id"};

static bool
is_hop_by_hop(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(hop_by_hop); i++)
        if (strlen(hop_by_hop[i]) == len && strncasecmp(name, hop_by_hop[i], len) == 0)
            return true;
    return false;
}

static void
build_request(struct faas_call *c)
{
    const struct faas_request *r = &c->req;
    struct faas_buf *b = &c->up_out;
    const char *q = strchr(r->url, '?');
    const char *host = faas_request_header(r, "Host");
    const char *xff = faas_request_header(r, "X-Forwarded-For");
    const char *peer = c->conn ? c->conn->peer : "unknown";
    faas_buf_addf(b, "%s %s%s%s HTTP/1.1\r\n", r->method, *c->subpath ? "" : "/", c->subpath,
                  q ? q : "");
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *n = r->headers[i].name;
        if (is_hop_by_hop(n, strlen(n)) || strcasecmp(n, "X-Forwarded-For") == 0 ||
            strcasecmp(n, "Forwarded") == 0 || strcasecmp(n, "X-Call-Id") == 0 ||
            strcasecmp(n, "traceparent") == 0)
            continue;
        faas_buf_addf(b, "%s: %s\r\n", n, r->headers[i].value);
    }
    char tp[56]; /* the caller's trace, with the call's span as the parent */
    faas_traceparent(c, tp);
    faas_buf_addf(b, "traceparent: %s\r\n", tp);
    faas_buf_addf(b,
                  "Forwarded: for=%s;proto=http%s%s%s\r\nX-Forwarded-For: %s%s%s\r\n"
                  "X-Forwarded-Proto: http\r\n",
                  peer, host ? ";host=\"" : "", host ? host : "", host ? "\"" : "", xff ? xff : "",
                  xff ? ", " : "", peer);
    if (host)
        faas_buf_addf(b, "X-Forwarded-Host: %s\r\n", host);
    faas_buf_addf(b, "X-Request-Id: %s\r\nX-Call-Id: %s\r\n", c->rid, c->rid);
    if (c->upgrade_asked) /* hop-by-hop, asked of this hop too: passed on (tunnel.c) */
        faas_buf_addf(b, "Connection: Upgrade\r\nUpgrade: %s\r\n",
                      faas_request_header(r, "Upgrade"));
    if (r->body_streams && r->stream_sized) { /* the body follows as it comes, as sized */
        faas_buf_addf(b, "Content-Length: %llu\r\n\r\n", (unsigned long long)r->stream_length);
        return;
    }
    if (r->body_streams) { /* the body follows as it comes, chunked as the client sent it */
        faas_buf_add(b, "Transfer-Encoding: chunked\r\n\r\n", 30);
        return;
    }
    faas_buf_addf(b, "Content-Length: %zu\r\n\r\n", r->body_len);
    faas_buf_add(b, r->body, r->body_len);
}

/* What came of a streamed body goes to the server as it came: the bytes of a sized body, or
 * chunks of a chunked one (trailers are not passed on). */
static void
body_chunks(struct faas_call *c)
{
    struct faas_buf *in = &c->body_in, *b = &c->up_out;
    bool sized = c->req.stream_sized;
    size_t n = faas_buf_pending(in);
    if (n) {
        faas_buf_compact(b, n + 32); /* a streamed body is never sent again (retry_fresh) */
        if (!sized)
            faas_buf_addf(b, "%zx\r\n", n);
        faas_buf_add(b, in->p + in->off, n);
        if (!sized)
            faas_buf_add(b, "\r\n", 2);
        in->off = in->len = 0;
    }
    if (!c->body_open && !c->body_ended) {
        if (!sized)
            faas_buf_add(b, "0\r\n\r\n", 5);
        c->body_ended = true;
    }
}

static const char *const resp_hop_by_hop[] = {
    "Connection", "Keep-Alive",     "Proxy-Connection",  "TE",          "Trailer",
    "Upgrade",    "Content-Length", "Transfer-Encoding", "X-Request-Id"};

/* The response head, rebuilt for the caller from parsed fields (never relayed as bytes). */
static void
on_resp_head(void *data, const struct faas_resp_head *h)
{
    struct faas_call *c = data;
    struct faas_buf lines = {0};
    for (size_t i = 0; i < h->n_headers; i++) {
        bool drop = false;
        for (size_t k = 0; k < ARRAY_SIZE(resp_hop_by_hop) && !drop; k++)
            drop = strcasecmp(h->headers[i].name, resp_hop_by_hop[k]) == 0;
        if (h->status == 101 && strcasecmp(h->headers[i].name, "Upgrade") == 0)
            drop = false; /* the protocol switched to, which the client asked for */
        if (!drop)
            faas_buf_addf(&lines, "%s: %s\r\n", h->headers[i].name, h->headers[i].value);
    }
    if (c->upgrade_asked && h->status != 101 && c->conn)
        c->conn->close_after = true; /* not switched: what the client sent ahead is not HTTP */
    faas_reply_head(c, h->status, h->reason, lines.p, lines.len,
                    h->has_length ? (int64_t)h->length : -1);
    faas_buf_free(&lines);
}

static void
on_resp_body(void *data, const char *p, size_t n)
{
    faas_reply_body(data, p, n);
}

static const struct faas_resp_ops resp_ops = {.head = on_resp_head, .body = on_resp_body};

static void up_release(struct faas_call *c, bool reusable);

/* The server failed the call (502). Its instance may have been OOM-killed: the kernel's count
 * says so (read only on this failure path), and so does the answer. */
static void
fail_server(struct faas_call *c, const char *msg)
{
    faas_lock(c->s);
    /* since the call started: the main loop may have looked first (the server's end) */
    bool killed =
        c->inst && (faas_instance_oom_check(c->s, c->inst) || c->inst->oom_kills > c->oom_base);
    faas_unlock(c->s);
    c->oom |= killed; /* a front loop's call is not among the instance's own (loops.c) */
    if (killed) {
        cleanup_free char *oom =
            xasprintf("%s: it ran out of memory (limit %lld bytes)", msg, (long long)c->fn->memory);
        faas_call_fail(c, 502, oom, NULL);
        return;
    }
    faas_call_fail(c, 502, msg, NULL);
}

/* The response ended (r 1) or broke (r -1). false: the call ended (and is freed). */
static bool
resp_outcome(struct faas_call *c, int r, size_t extra, const char *why)
{
    if (r == 0)
        return true;
    if (r > 0) {
        if (extra)
            faas_server_log(c->s, "warning",
                            "function '%s' instance %s sent %zu bytes after its response to "
                            "request %s: dropped",
                            c->fn->name, c->inst->id, extra, c->rid);
        faas_reply_end(c, true);
        /* The connection serves the next call only if the server keeps it and said no more. */
        up_release(c, extra == 0 && faas_resp_keep_alive(c->resp));
        faas_call_end(c);
        return false;
    }
    if (!c->head_done) {
        cleanup_free char *msg = xasprintf(
            "function '%s' answered with a malformed HTTP response: %s", c->fn->name, why);
        fail_server(c, msg);
        return false;
    }
    /* Part of the response is out: the client's connection is cut, never ended cleanly. */
    faas_server_log(c->s, "warning", "function '%s' broke its response to request %s: %s",
                    c->fn->name, c->rid, why);
    faas_reply_end(c, false);
    c->status = 502;
    faas_call_end(c);
    return false;
}

/* ---- connections to the instance's server, kept alive and reused */

static void on_up(struct faas_server *s, struct faas_watch *w, uint32_t events);
static void pump(struct faas_call *c);

static void
up_close(struct faas_server *s, struct faas_upstream *u)
{
    faas_watch_del(s, u->fd);
    close(u->fd);
    u->w.dead = true;
    faas_server_bury(s, u);
}

/* An idle connection the server closed (or wrote to, out of turn): gone. Registered once,
 * edge-triggered: an edge that only says "writable" is no news for an idle connection. */
static void
on_idle_up(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_upstream *u = container_of(w, struct faas_upstream, w);
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    for (struct faas_upstream **p = u->home; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            break;
        }
    up_close(s, u);
}

static void
up_release(struct faas_call *c, bool reusable)
{
    struct faas_upstream *u = c->up;
    struct faas_instance *in = c->inst;
    c->up = NULL;
    if (u == NULL)
        return;
    /* A front loop's list is its own: an instance on its way out closes its side, and the
     * connection goes then (on_idle_up); its state is the main loop's to read. */
    if (!reusable || u->server_closed || (!c->lent && in->state != INST_READY) ||
        faas_stopping(c->s)) {
        up_close(c->s, u);
        return;
    }
    u->call = NULL;
    u->w.fn = on_idle_up;
    u->next = *u->home;
    *u->home = u;
}

void
faas_http_drop_idle(struct faas_server *s, struct faas_instance *in)
{
    while (in->idle_up) {
        struct faas_upstream *u = in->idle_up;
        in->idle_up = u->next;
        up_close(s, u);
    }
}

/* A request that may be sent twice (RFC 9110's idempotent methods). */
static bool
idempotent(const struct faas_call *c)
{
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
        if (strcmp(c->req.method, methods[i]) == 0)
            return true;
    return false;
}

/* Still open and quiet: a kept-alive connection the server has not closed or written to since
 * the loop last looked (bytes nobody asked for would be taken for this call's answer). Asked
 * of every reuse, whatever the method: a closed one would be retried, those bytes not. */
static bool
up_alive(int fd)
{
    char b;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
           (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The idle list a call's connection comes from: its instance's, or its front loop's bucket
 * for the instance (each connection says whose it is). */
static struct faas_upstream **
idle_list(struct faas_call *c)
{
    return c->lent ? &c->loop->idle_up[c->inst->serial % FAAS_LOOP_IDLE_BUCKETS]
                   : &c->inst->idle_up;
}

/* A new connection to the server; a front loop's under the lock, to an instance that is
 * still ready (its network's fd is the main loop's, closed when it goes). */
static int
up_connect(struct faas_call *c, int *fd)
{
    faas_lock(c->s);
    int r = c->lent && c->inst->state != INST_READY ? -ECONNREFUSED
                                                    : faas_instance_connect(c->s, c->inst, fd);
    faas_unlock(c->s);
    return r;
}

static int
up_open(struct faas_call *c, struct husk_error **err)
{
    struct faas_instance *in = c->inst;
    for (struct faas_upstream **p = idle_list(c); *p;) {
        struct faas_upstream *u = *p;
        if (u->serial != in->serial) {
            p = &u->next;
            continue;
        }
        *p = u->next;
        /* Closed by the server, or holding bytes nobody asked for (a response appended to the
         * last one, still unseen by the loop): never handed to this call. */
        if (!up_alive(u->fd)) {
            up_close(c->s, u);
            continue;
        }
        u->call = c;
        u->w.fn = on_up;
        u->readable = false; /* idle until now: any byte would have closed it */
        c->up = u;
        c->fresh_up = false;
        return 0;
    }
    int fd = -1;
    int r = up_connect(c, &fd);
    if (r < 0)
        return husk_err(err, -r, "connect to the function's server on port %lld (instance %s)",
                        (long long)in->port, in->id);
    struct faas_upstream *u = xcalloc(1, sizeof(*u));
    u->fd = fd;
    u->in = in;
    u->serial = in->serial;
    u->home = idle_list(c);
    u->call = c;
    u->w.fn = on_up;
    u->writable = r == 0;
    c->up = u;
    c->fresh_up = true;
    /* Registered once, edge-triggered, for its whole life (reused by later calls). */
    if (faas_watch_add(c->s, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &u->w) < 0) {
        c->up = NULL;
        close(fd);
        free(u);
        return husk_err(err, errno, "watch the connection to instance %s", in->id);
    }
    return 0;
}

/* For the call's response: a HEAD's has no body; a 101 ends an upgrade's. */
static void
parser_ready(struct faas_call *c)
{
    faas_resp_parser_reset(c->resp, strcmp(c->req.method, "HEAD") == 0);
    if (c->upgrade_asked)
        faas_resp_allow_upgrade(c->resp);
}

/* A reused connection the server closed before it answered: the request goes again on a new
 * one, when it may be repeated. true: it went. */
static bool
retry_fresh(struct faas_call *c)
{
    if (c->fresh_up || c->head_done || c->relayed || !idempotent(c) || c->req.body_streams)
        return false;
    up_release(c, false);
    c->up_out.off = 0;
    parser_ready(c);
    if (up_open(c, NULL) < 0)
        return false;
    pump(c);
    return true;
}

static void
up_failed(struct faas_call *c, const char *what, int e)
{
    if (retry_fresh(c))
        return;
    cleanup_free char *msg = xasprintf("%s the function's server on port %lld: %s", what,
                                       (long long)c->inst->port, strerror(e));
    fail_server(c, msg);
}

/* Send the request as far as the socket takes it. false: the call ended. */
static bool
pump_out(struct faas_call *c)
{
    /* Kept whole until answered: a retry on a fresh connection sends it again (off = 0). */
    if (faas_buf_send(&c->up_out, c->up->fd, &c->up->writable) < 0) {
        up_failed(c, "could not reach", errno);
        return false;
    }
    faas_call_body_consumed(c);
    return true;
}

/* Read the response while the client takes it (backpressure past 1 MiB queued for it), then
 * send the client what came in one go. false: the call ended. */
static bool
pump_in(struct faas_call *c)
{
    char buf[256 << 10]; /* fewer reads per MiB: a syscall costs more than a copy here */
    struct faas_server *s = c->s;
    struct faas_conn *conn = c->conn;
    while (c->up->readable && faas_reply_room(c)) {
        if (faas_splice_wanted(c)) /* the rest of a large sized body: socket to socket */
            return true;
        ssize_t n = read(c->up->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->up->readable = false;
            break;
        }
        if (n >= 0 && (size_t)n < sizeof(buf))
            c->up->readable = false; /* drained: more is a new edge */
        if (n <= 0 && !c->head_done && c->relayed == 0 && !c->fresh_up && retry_fresh(c))
            return false;
        const char *why = n < 0 ? strerror(errno) : NULL; /* reset: never a clean end */
        size_t used = 0;
        int r = n < 0 ? -1 : faas_resp_feed(c->resp, buf, (size_t)n, &used, &why);
        if (r == 1 && faas_resp_upgraded(c->resp)) {
            faas_tunnel_start(c, buf + used, (size_t)n - used);
            return false; /* the tunnel goes on from here: pump() hands it the events */
        }
        if (!resp_outcome(c, r, n > 0 ? (size_t)n - used : 0, why)) {
            if (conn && !conn->w.dead)
                faas_conn_flush(s, conn);
            return false;
        }
        if (n == 0)
            break;
    }
    if (conn)
        faas_conn_flush(s, conn);
    return true;
}

/* Until the server has nothing more to read or the client no room: a send that emptied the
 * client's queue made room that no event will report (only a full socket gets EPOLLOUT). */
static void
pump(struct faas_call *c)
{
    if (c->tunnel) {
        faas_tunnel_pump(c);
        return;
    }
    if (!pump_out(c))
        return;
    bool alive = true;
    while (!c->splice && (alive = pump_in(c)) && c->up->readable && faas_reply_room(c))
        ;
    if (!alive || c->splice == NULL)
        return;
    const char *why = NULL;
    int r = faas_splice_pump(c, &why), extra = 0;
    /* Bytes already waiting past the body are another response: the connection is not reused
     * (later ones: on_idle_up). */
    if (r == 1 && ioctl(c->up->fd, FIONREAD, &extra) < 0)
        extra = 0;
    if (r == 1 || r == -1) /* -2: the client is gone, and its connection's close ends the call */
        resp_outcome(c, r, extra > 0 ? (size_t)extra : 0, why);
}

static void
on_up(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_upstream *u = container_of(w, struct faas_upstream, w);
    if (events & EPOLLOUT)
        u->writable = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        u->readable = true;
    /* a server that closes after its answer: its FIN may come with the answer's last bytes,
     * and no edge after it would tell an idle connection */
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        u->server_closed = true;
    pump(u->call);
}

static int
http_start(struct faas_call *c, struct husk_error **err)
{
    c->upgrade_asked = faas_tunnel_asked(c);
    build_request(c);
    if (c->req.body_streams)
        body_chunks(c);
    c->resp = faas_resp_parser_new(&resp_ops, c);
    parser_ready(c);
    int r = up_open(c, err);
    if (r == 0)
        pump(c); /* a kept-alive connection takes the request now, no event needed */
    return r;
}

static void
http_drained(struct faas_call *c)
{
    if (c->up)
        pump(c);
}

static void
http_body(struct faas_call *c)
{
    body_chunks(c);
    if (c->up)
        pump(c);
}

static void
http_close(struct faas_call *c)
{
    up_release(c, false); /* a call that ended otherwise left its connection mid-exchange */
    faas_splice_free(c);
    faas_tunnel_free(c);
    faas_resp_parser_free(c->resp);
    c->resp = NULL;
}

/* The client closed the request (nginx's 499): the exchange with the server is cut too. */
static void
http_detach(struct faas_call *c)
{
    if (c->status == 0)
        c->status = 499;
    faas_call_end(c);
}

static void
http_env(const struct faas_function *f, char ***env, size_t *n)
{
    (*env)[(*n)++] = xasprintf("PORT=%lld", (long long)f->port);
    (*env)[(*n)++] = xasprintf("K_SERVICE=%s", f->name);
    (*env)[(*n)++] = xasprintf("K_CONFIGURATION=%s", f->name);
    (*env)[(*n)++] = xasprintf("K_REVISION=%s-v%lld", f->name, (long long)f->version);
}

static char *
http_not_ready(const struct faas_function *f)
{
    return xasprintf("its server did not accept connections on port %lld", (long long)f->port);
}

const struct faas_contract_ops faas_contract_http = {
    .not_ready = http_not_ready,
    .name = "http",
    .default_concurrency = 100,
    .server = true,
    .await_ready = faas_instance_probe_start,
    .env = http_env,
    .env_size = 4,
    .call_start = http_start,
    .call_close = http_close,
    .call_detach = http_detach,
    .call_drained = http_drained,
    .call_body = http_body,
    .streams_body = true,
};
