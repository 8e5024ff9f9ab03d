/* SPDX-License-Identifier: Apache-2.0 */
/* Client connections: read and parse requests, write responses without blocking, keep-alive. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

/* A client gets --read-timeout seconds (30) to send a whole request, and an idle keep-alive
 * connection twice that to send the next. */
#define READ_TIMEOUT_NS(s) ((uint64_t)(s)->opts->read_timeout * NS_PER_SEC)
#define IDLE_TIMEOUT_NS(s) (2 * READ_TIMEOUT_NS(s))

static void conn_event(struct faas_server *s, struct faas_watch *w, uint32_t events);
static void conn_read(struct faas_server *s, struct faas_conn *c);
static bool reading(const struct faas_conn *c);

const char *
faas_status_text(int status)
{
    static const struct {
        int code;
        const char *text;
    } texts[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
        if (texts[i].code == status)
            return texts[i].text;
    return "Unknown";
}

/* The body broke off (the client went, or sent something malformed): its taker hears it. */
static void
body_broken(struct faas_conn *c)
{
    const struct faas_body_sink_ops *ops = c->sink_ops;
    c->body_open = false;
    c->sink_ops = NULL;
    c->close_after = true;
    if (ops)
        ops->end(c->sink, 400, NULL);
}

static void
unlink_conn(struct faas_server *s, struct faas_conn *c)
{
    struct faas_conn **head = c->from ? &c->from->api_conns : &faas_loop_cur()->conns;
    if (c->from && c->from->api_next == c)
        c->from->api_next = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void
conn_close(struct faas_server *s, struct faas_conn *c)
{
    if (c->call)
        faas_call_detach(c->call);
    if (c->body_open)
        body_broken(c);
    if (c->waiter)
        *c->waiter = NULL;
    faas_watch_del(s, c->fd);
    close(c->fd);
    unlink_conn(s, c);
    faas_parser_free(c->parser);
    faas_buf_free(&c->in);
    faas_buf_free(&c->out);
    faas_timer_cancel(s, &c->deadline);
    faas_timer_cancel(s, &c->t_resume);
    faas_lock(s);
    faas_client_release(s, c->client);
    faas_unlock(s);
    c->w.dead = true;
    faas_server_bury(s, c);
    if (c->from == NULL)
        __atomic_fetch_sub(&s->n_conns, 1, __ATOMIC_RELAXED);
    faas_listeners_wake(s);
}

void
faas_conn_release(struct faas_server *s, struct faas_conn *c)
{
    faas_watch_del(s, c->fd);
    unlink_conn(s, c);
    faas_timer_cancel(s, &c->deadline);
    faas_timer_cancel(s, &c->t_resume);
    c->w.dead = true; /* this batch's events for it are dropped */
}

void
faas_conn_read_on(struct faas_server *s, struct faas_conn *c)
{
    if (!c->w.dead && reading(c))
        conn_read(s, c);
}

int
faas_conn_adopt(struct faas_server *s, struct faas_conn *c)
{
    struct faas_loop *l = faas_loop_cur();
    c->w.dead = false;
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    faas_parser_set_head_fn(c->parser, faas_on_front() ? faas_front_route_head : faas_route_head,
                            s);
    if (faas_watch_add(s, c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->w) < 0) {
        conn_close(s, c);
        return -1;
    }
    if (!c->busy) /* idle, between requests (back at its front loop) */
        faas_timer_set(s, &c->deadline, now_ns() + IDLE_TIMEOUT_NS(s));
    return 0;
}

/* Write what is queued. 0 all written, 1 more to write (an EPOLLOUT edge comes when the
 * socket has room), -1 the client is gone. */
static int
conn_flush(struct faas_conn *c)
{
    c->writable = true; /* called when it is, or to try */
    int r = faas_buf_send(&c->out, c->fd, &c->writable);
    if (r == 0)
        c->out.off = c->out.len = 0;
    return r;
}

/* After a response: close, or go back to reading (a pipelined request may be buffered). */
static void
conn_next(struct faas_server *s, struct faas_conn *c)
{
    if (c->close_after || !c->keep_alive || faas_stopping(s) || c->peer_closed) {
        conn_close(s, c);
        return;
    }
    c->busy = c->done = false;
    c->got_bytes = false;
    if (c->home && !faas_on_front()) { /* its next request is its front loop's to read */
        faas_conn_go_home(s, c);
        return;
    }
    faas_timer_set(s, &c->deadline, now_ns() + IDLE_TIMEOUT_NS(s));
    if (faas_buf_pending(&c->in) || c->readable)
        conn_read(s, c);
}

void
faas_conn_send(struct faas_server *s, struct faas_conn *c, const void *data, size_t len)
{
    faas_buf_add(&c->out, data, len); /* written by faas_conn_flush: one send for many pieces */
}

/* The client is gone (a send failed): closed on the next turn of the loop, not under the
 * caller, which may still hold the call. */
static void
conn_broken(struct faas_server *s, struct faas_conn *c)
{
    c->broken = c->close_after = true;
    faas_timer_set(s, &c->deadline, 0);
}

void
faas_conn_broken(struct faas_server *s, struct faas_conn *c)
{
    conn_broken(s, c);
}

void
faas_conn_flush(struct faas_server *s, struct faas_conn *c)
{
    if (c->writable && !c->broken && conn_flush(c) < 0)
        conn_broken(s, c);
}

void
faas_conn_done(struct faas_server *s, struct faas_conn *c)
{
    if (c->body_open) /* answered before the body ended: the rest is not read */
        faas_conn_body_drop(c);
    c->call = NULL;
    c->done = true;
    faas_conn_flush(s, c);
    if (faas_buf_pending(&c->out) == 0 && !c->broken)
        conn_next(s, c);
}

const char *
faas_conn_connection_header(const struct faas_conn *c)
{
    return c->keep_alive && !c->close_after ? "keep-alive" : "close";
}

void
faas_conn_respond(struct faas_server *s, struct faas_conn *c, int status, const char *rid,
                  const char *content_type, const char *body, size_t len, const char *extra_headers)
{
    if (faas_stopping(s))
        c->close_after = true;
    faas_buf_addf(&c->out,
                  "HTTP/1.1 %d %s\r\nX-Request-Id: %s\r\nX-Call-Id: %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                  status, faas_status_text(status), rid, rid,
                  content_type ? content_type : "text/plain", len,
                  extra_headers ? extra_headers : "", faas_conn_connection_header(c));
    faas_buf_add(&c->out, body, len);
    faas_conn_done(s, c);
}

/* A caller's X-Request-Id is kept when it is short and plain (it ends up in logs and names). */
static bool
valid_request_id(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789-_") == n;
}

void
faas_conn_body_take(struct faas_conn *c, const struct faas_body_sink_ops *ops, void *sink)
{
    c->sink_ops = ops;
    c->sink = sink;
}

void
faas_conn_body_drop(struct faas_conn *c)
{
    c->sink_ops = NULL;
    c->sink = NULL;
    c->close_after = true;
}

static void
body_resume_now(struct faas_server *s, struct faas_timer *t)
{
    struct faas_conn *c = container_of(t, struct faas_conn, t_resume);
    c->body_paused = false;
    conn_read(s, c);
}

/* On the next turn of the loop, not under the taker (which may be in the middle of its own
 * work when it finds room). */
void
faas_conn_body_resume(struct faas_server *s, struct faas_conn *c)
{
    if (c->body_paused && c->t_resume.slot == 0)
        faas_timer_set(s, &c->t_resume, 0);
}

/* The end of a streamed body: its trailers, and the parser ready for the next request. */
static void
body_end(struct faas_conn *c)
{
    struct faas_request tr;
    faas_parser_take(c->parser, &tr);
    const struct faas_body_sink_ops *ops = c->sink_ops;
    c->body_open = c->body_paused = false;
    c->sink_ops = NULL;
    if (tr.too_large)
        c->close_after = true; /* the rest was not read */
    if (ops)
        ops->end(c->sink, tr.too_large ? 413 : 0, &tr);
    faas_request_reset(&tr);
}

/* "100 Continue" to a client that waits for it before sending its body: said once, as the
 * body is about to be read, unless the final answer has begun (a function that answers before
 * it reads). A request refused on its head alone (a declared body over the limit) gets its
 * final answer instead, and the client never sends the body. */
static void
send_continue(struct faas_server *s, struct faas_conn *c)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->continue_due = false;
    if (c->call && c->call->head_done)
        return;
    faas_buf_add(&c->out, line, sizeof(line) - 1);
    faas_conn_flush(s, c);
}

/* Body bytes parsed: to the taker. false: stop reading (no room, or no taker any more). */
static bool
body_pass(struct faas_conn *c)
{
    size_t n;
    const char *p = faas_parser_body(c->parser, &n);
    if (n && c->sink_ops)
        c->sink_ops->data(c->sink, p, n);
    if (c->sink_ops == NULL || !c->body_open)
        return false;
    c->body_paused = !c->sink_ops->room(c->sink);
    return !c->body_paused;
}

/* false: the connection went to the main loop with its request (a front loop's). */
static bool
conn_request(struct faas_server *s, struct faas_conn *c)
{
    struct faas_request req;
    char rid[72];
    faas_parser_take(c->parser, &req);
    c->body_open = req.body_streams;
    c->continue_due = req.body_streams && req.expect_continue; /* owed once it is taken */
    c->busy = true;
    faas_timer_cancel(s, &c->deadline); /* answering: the call has its own deadline */
    c->keep_alive = req.keep_alive;
    faas_random_hex(s, rid, 16);
    const char *given = faas_request_header(&req, "X-Request-Id");
    if (given && valid_request_id(given))
        snprintf(rid, sizeof(rid), "%s", given); /* a caller's id carries through */
    struct faas_loop *l = faas_loop_cur();
    faas_server_log(s, "debug", "%s %s request %s (loop %u)", req.method, req.url, rid, l->index);
    l->gave_away = false;
    if (c->from) /* the instance's program talking to the daemon */
        c->from->fn->contract->instance_request(s, c, &req, rid);
    else if (l->index) /* a front loop */
        faas_front_route(s, c, &req, rid);
    else
        faas_route(s, c, &req, rid); /* takes the request */
    faas_request_reset(&req);
    return !l->gave_away;
}

static void
conn_malformed(struct faas_server *s, struct faas_conn *c, const char *why, bool said_something)
{
    char rid[72];
    if (!said_something) {
        conn_close(s, c);
        return;
    }
    faas_random_hex(s, rid, 16);
    int status = faas_parser_status(c->parser);
    cleanup_free char *body = xasprintf("{\"error\":\"%s HTTP request: %s\"}\n",
                                        status == 400 ? "malformed" : "refused", why);
    c->busy = true;
    c->keep_alive = false;
    faas_conn_respond(s, c, status, rid, "application/json", body, strlen(body), NULL);
}

/* Whether to read now: for the next request, or for the body of the current one. */
static bool
reading(const struct faas_conn *c)
{
    return !c->busy || (c->body_open && c->sink_ops && !c->body_paused && !c->w.dead);
}

/* Parse what is buffered in c->in (a pipelined request) and then what the socket has. */
static void
conn_read(struct faas_server *s, struct faas_conn *c)
{
    char buf[256 << 10]; /* fewer reads per MiB of a body: a syscall costs more than a copy */
    const char *why = NULL;
    while (reading(c)) {
        const char *p = buf;
        ssize_t n;
        if (c->continue_due && c->body_open) /* the streamed body's taker reads it now */
            send_continue(s, c);
        if (faas_buf_pending(&c->in)) {
            p = c->in.p + c->in.off;
            n = (ssize_t)faas_buf_pending(&c->in);
        } else {
            n = c->readable || c->peer_closed ? read(c->fd, buf, sizeof(buf))
                                              : (errno = EAGAIN, -1);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                c->readable = errno == EINTR;
                return;
            }
            if (n >= 0 && (size_t)n < sizeof(buf))
                c->readable = false; /* drained: the next data is a new edge */
            if (n <= 0 && !c->got_bytes) {
                conn_close(s, c); /* an idle keep-alive connection closed */
                return;
            }
        }
        bool body = c->body_open;
        if (n > 0 && !c->got_bytes) /* a request begins: it must be complete in time */
            faas_timer_set(s, &c->deadline, now_ns() + READ_TIMEOUT_NS(s));
        c->got_bytes |= n > 0;
        int r = n < 0 ? -1 : faas_parser_feed(c->parser, p, (size_t)n, &why);
        if (r < 0 && body) {
            body_broken(c);
            return;
        }
        if (r < 0) {
            conn_malformed(s, c, why ? why : "read error", n > 0);
            return;
        }
        size_t used = r == 1 ? faas_parser_consumed(c->parser) : (size_t)n;
        if (p == buf) {
            if (used < (size_t)n)
                faas_buf_add(&c->in, buf + used, (size_t)n - used);
        } else {
            c->in.off += used;
        }
        struct faas_request *head = faas_parser_request(c->parser);
        if (!body && head->expect_continue && head->headers_done && !head->complete &&
            !faas_parser_streaming(c->parser)) { /* a body read whole, here, before routing */
            head->expect_continue = false;
            send_continue(s, c);
        }
        bool more = body ? body_pass(c) : true;
        if (body && r == 1 && c->body_open)
            body_end(c);
        else if (r == 1 && !body && !conn_request(s, c))
            return; /* no longer this loop's */
        if (!more)
            return;
    }
}

/* Edge-triggered: each event says what changed; what it allows is done until the socket
 * says EAGAIN (or a short read or write says the same without the extra syscall). */
static void
conn_event(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_conn *c = (struct faas_conn *)w;
    if (events & EPOLLERR) {
        conn_close(s, c);
        return;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP))
        c->peer_closed = true; /* a half-close still gets its answer; a write tells the rest */
    if (events & EPOLLIN)
        c->readable = true;
    if (c->call && c->call->tunnel) { /* upgraded: no HTTP, bytes both ways (tunnel.c) */
        c->writable |= (events & EPOLLOUT) != 0;
        faas_tunnel_pump(c->call);
        return;
    }
    if (events & EPOLLOUT) {
        c->writable = true;
        int r = conn_flush(c);
        if (r < 0) {
            conn_close(s, c);
            return;
        }
        if (r == 0 && c->done) {
            conn_next(s, c);
            return;
        }
        if (r == 0 && c->call)
            faas_call_drained(c->call);
    }
    if (reading(c) && (c->readable || c->peer_closed))
        conn_read(s, c);
}

/* Past its deadline while sending a request, idle too long between requests, or broken. */
static void
conn_expired(struct faas_server *s, struct faas_timer *t)
{
    struct faas_conn *c = container_of(t, struct faas_conn, deadline);
    if (!c->busy || c->broken)
        conn_close(s, c);
}

/* A connection the instance's program opened to the daemon (the Runtime API): no client of
 * the front door, not counted, closed with the instance. */
struct faas_conn *
faas_conn_new_from(struct faas_server *s, int fd, struct faas_instance *in,
                   void (*head)(struct faas_request *r, void *data))
{
    struct faas_conn *c = xcalloc(1, sizeof(*c));
    c->w.fn = conn_event;
    c->deadline.fn = conn_expired;
    c->t_resume.fn = body_resume_now;
    c->fd = fd;
    c->from = in;
    c->writable = true;
    c->peer_uid = (uid_t)-1;
    snprintf(c->peer, sizeof(c->peer), "%s", in->id);
    c->parser = faas_parser_new();
    faas_parser_set_head_fn(c->parser, head, in);
    if (faas_watch_add(s, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->w) < 0) {
        faas_parser_free(c->parser);
        free(c);
        return NULL;
    }
    c->next = in->api_conns;
    if (in->api_conns)
        in->api_conns->prev = c;
    in->api_conns = c;
    return c;
}

struct faas_conn *
faas_conn_new(struct faas_server *s, int fd, const char *peer, bool admin, uid_t uid,
              struct faas_client *client)
{
    struct faas_conn *c = xcalloc(1, sizeof(*c));
    c->w.fn = conn_event;
    c->deadline.fn = conn_expired;
    c->t_resume.fn = body_resume_now;
    c->fd = fd;
    c->admin = admin;
    c->peer_uid = uid;
    c->writable = true;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->parser = faas_parser_new();
    faas_parser_set_head_fn(c->parser, faas_on_front() ? faas_front_route_head : faas_route_head,
                            s);
    /* Registered once, edge-triggered: no epoll_ctl per request. */
    if (faas_watch_add(s, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->w) < 0) {
        faas_parser_free(c->parser);
        free(c);
        return NULL;
    }
    c->client = client;
    faas_timer_set(s, &c->deadline, now_ns() + READ_TIMEOUT_NS(s));
    __atomic_fetch_add(&s->n_conns, 1, __ATOMIC_RELAXED);
    struct faas_loop *l = faas_loop_cur();
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    return c;
}

/* idle_only: those not being answered (shutdown); else all. */
void
faas_conn_close_from(struct faas_server *s, struct faas_instance *in)
{
    while (in->api_conns)
        conn_close(s, in->api_conns);
}

void
faas_conn_close_all(struct faas_server *s, bool idle_only)
{
    for (struct faas_conn *c = faas_loop_cur()->conns, *next; c; c = next) {
        next = c->next;
        if (!idle_only || !c->busy)
            conn_close(s, c);
        else
            c->close_after = true;
    }
}
