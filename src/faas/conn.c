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

/* A client gets this long to send a whole request, and an idle keep-alive connection this long
 * to send the next. */
#define READ_TIMEOUT_NS (30ull * NS_PER_SEC)
#define IDLE_TIMEOUT_NS (60ull * NS_PER_SEC)

static void conn_event(struct faas_server *s, struct faas_watch *w, uint32_t events);
static void conn_read(struct faas_server *s, struct faas_conn *c);

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

static void
conn_close(struct faas_server *s, struct faas_conn *c)
{
    if (c->call)
        faas_call_detach(c->call);
    faas_watch_del(s, c->fd);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    faas_parser_free(c->parser);
    faas_buf_free(&c->in);
    faas_buf_free(&c->out);
    faas_timer_cancel(s, &c->deadline);
    faas_client_release(s, c->client);
    c->w.dead = true;
    faas_server_bury(s, c);
    s->n_conns--;
    faas_listeners_wake(s);
}

static void
conn_interest(struct faas_server *s, struct faas_conn *c)
{
    uint32_t ev = EPOLLRDHUP;
    if (!c->busy)
        ev |= EPOLLIN;
    if (faas_buf_pending(&c->out))
        ev |= EPOLLOUT;
    faas_watch_mod(s, c->fd, ev, &c->w);
}

/* Write what is queued. 0 all written, 1 more to write, -1 the client is gone. */
static int
conn_flush(struct faas_conn *c)
{
    while (faas_buf_pending(&c->out)) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, faas_buf_pending(&c->out), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 1 : -1;
        c->out.off += (size_t)n;
    }
    c->out.off = c->out.len = 0;
    return 0;
}

/* After a response: close, or go back to reading (a pipelined request may be buffered). */
static void
conn_next(struct faas_server *s, struct faas_conn *c)
{
    if (c->close_after || !c->keep_alive || s->stopping) {
        conn_close(s, c);
        return;
    }
    c->busy = c->done = false;
    c->got_bytes = false;
    faas_timer_set(s, &c->deadline, now_ns() + IDLE_TIMEOUT_NS);
    conn_interest(s, c);
    if (faas_buf_pending(&c->in))
        conn_read(s, c);
}

void
faas_conn_send(struct faas_server *s, struct faas_conn *c, const void *data, size_t len)
{
    bool was_pending = faas_buf_pending(&c->out) > 0;
    faas_buf_add(&c->out, data, len);
    if (was_pending)
        return;
    int r = conn_flush(c);
    if (r > 0)
        conn_interest(s, c);
    else if (r < 0)
        c->close_after = true; /* noticed on the next event */
}

void
faas_conn_done(struct faas_server *s, struct faas_conn *c)
{
    c->call = NULL;
    c->done = true;
    if (faas_buf_pending(&c->out) == 0)
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
    struct faas_buf b = {0};
    if (s->stopping)
        c->close_after = true;
    faas_buf_addf(&b,
                  "HTTP/1.1 %d %s\r\nX-Request-Id: %s\r\nX-Call-Id: %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                  status, faas_status_text(status), rid, rid,
                  content_type ? content_type : "text/plain", len,
                  extra_headers ? extra_headers : "", faas_conn_connection_header(c));
    faas_buf_add(&b, body, len);
    faas_conn_send(s, c, b.p, b.len);
    faas_buf_free(&b);
    faas_conn_done(s, c);
}

static void
request_id(char out[33])
{
    unsigned char b[16] = {0};
    if (getrandom(b, sizeof(b), GRND_NONBLOCK) < 0) {
        uint64_t t = now_ns();
        memcpy(b, &t, sizeof(t));
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
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

static void
conn_request(struct faas_server *s, struct faas_conn *c)
{
    struct faas_request req;
    char rid[72];
    faas_parser_take(c->parser, &req);
    c->busy = true;
    faas_timer_cancel(s, &c->deadline); /* answering: the call has its own deadline */
    c->keep_alive = req.keep_alive;
    conn_interest(s, c);
    request_id(rid);
    const char *given = faas_request_header(&req, "X-Request-Id");
    if (given && valid_request_id(given))
        snprintf(rid, sizeof(rid), "%s", given); /* a caller's id carries through */
    faas_server_log(s, "debug", "%s %s request %s", req.method, req.url, rid);
    faas_route(s, c, &req, rid); /* takes the request */
}

static void
conn_malformed(struct faas_server *s, struct faas_conn *c, const char *why, bool said_something)
{
    char rid[72];
    if (!said_something) {
        conn_close(s, c);
        return;
    }
    request_id(rid);
    int status = faas_parser_status(c->parser);
    cleanup_free char *body = xasprintf("{\"error\":\"%s HTTP request: %s\"}\n",
                                        status == 400 ? "malformed" : "refused", why);
    c->busy = true;
    c->keep_alive = false;
    faas_conn_respond(s, c, status, rid, "application/json", body, strlen(body), NULL);
}

/* Parse what is buffered in c->in (a pipelined request) and then what the socket has. */
static void
conn_read(struct faas_server *s, struct faas_conn *c)
{
    char buf[65536];
    const char *why = NULL;
    while (!c->busy) {
        const char *p = buf;
        ssize_t n;
        if (faas_buf_pending(&c->in)) {
            p = c->in.p + c->in.off;
            n = (ssize_t)faas_buf_pending(&c->in);
        } else {
            n = read(c->fd, buf, sizeof(buf));
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            if (n <= 0 && !c->got_bytes) {
                conn_close(s, c); /* an idle keep-alive connection closed */
                return;
            }
        }
        if (n > 0 && !c->got_bytes) /* a request begins: it must be complete in time */
            faas_timer_set(s, &c->deadline, now_ns() + READ_TIMEOUT_NS);
        c->got_bytes |= n > 0;
        int r = n < 0 ? -1 : faas_parser_feed(c->parser, p, (size_t)n, &why);
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
        if (r == 1)
            conn_request(s, c);
    }
}

static void
conn_event(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_conn *c = (struct faas_conn *)w;
    if (events & EPOLLOUT) {
        int r = conn_flush(c);
        if (r < 0) {
            conn_close(s, c);
            return;
        }
        if (r == 0) {
            if (c->done) {
                conn_next(s, c);
                return;
            }
            conn_interest(s, c);
            if (c->call)
                faas_call_drained(c->call);
            return;
        }
    }
    if (c->busy && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        conn_close(s, c); /* the client gave up on its request */
        return;
    }
    if (!c->busy && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        conn_read(s, c);
}

/* Past its deadline while sending a request, or idle too long between requests. */
static void
conn_expired(struct faas_server *s, struct faas_timer *t)
{
    struct faas_conn *c = container_of(t, struct faas_conn, deadline);
    if (!c->busy)
        conn_close(s, c);
}

struct faas_conn *
faas_conn_new(struct faas_server *s, int fd, const char *peer, bool admin, uid_t uid,
              struct faas_client *client)
{
    struct faas_conn *c = xcalloc(1, sizeof(*c));
    c->w.fn = conn_event;
    c->deadline.fn = conn_expired;
    c->fd = fd;
    c->admin = admin;
    c->peer_uid = uid;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->parser = faas_parser_new();
    faas_parser_set_limit_fn(c->parser, faas_route_body_limit, s);
    if (faas_watch_add(s, fd, EPOLLIN | EPOLLRDHUP, &c->w) < 0) {
        faas_parser_free(c->parser);
        free(c);
        return NULL;
    }
    c->client = client;
    faas_timer_set(s, &c->deadline, now_ns() + READ_TIMEOUT_NS);
    s->n_conns++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    return c;
}

/* idle_only: those not being answered (shutdown); else all. */
void
faas_conn_close_all(struct faas_server *s, bool idle_only)
{
    for (struct faas_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!idle_only || !c->busy)
            conn_close(s, c);
        else
            c->close_after = true;
    }
}
