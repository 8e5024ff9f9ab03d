/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upgraded connections (WebSocket, h2c) of the http contract: the client asked for an upgrade,
 * the function's server answered 101 Switching Protocols, and from then on the two connections
 * are one byte stream each way, relayed as they come with backpressure (a side that does not
 * read holds the other side back, 1 MiB queued at most), a half-close passed on as a shutdown,
 * and no HTTP on either side any more. The call lasts as long as the tunnel and keeps its slot
 * of the instance's concurrency (Knative counts an open WebSocket as a request in flight); the
 * function's timeout becomes an idle timeout: a tunnel silent that long both ways is closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

#define TUNNEL_QUEUE (1u << 20) /* queued for one side before the other is read again */

struct faas_tunnel {
    struct faas_call *call;
    bool client_eof, server_eof; /* each side ended what it sends */
    bool server_shut, client_shut;
    struct faas_tunnel *prev, *next; /* in s->tunnels */
};

bool
faas_tunnel_asked(const struct faas_call *c)
{
    const struct faas_request *r = &c->req;
    if (c->conn == NULL || c->front || r->body_streams || r->body_len)
        return false;
    const char *upgrade = faas_request_header(r, "Upgrade"); /* most calls end here */
    const char *conn = upgrade && *upgrade ? faas_request_header(r, "Connection") : NULL;
    if (conn == NULL)
        return false;
    /* "Connection: keep-alive, Upgrade": a token of the list */
    cleanup_free char *list = xstrdup(conn);
    char *save = NULL;
    for (char *t = strtok_r(list, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
        if (strcasecmp(t, "upgrade") == 0)
            return true;
    return false;
}

static void
idle_expired(struct faas_server *s, struct faas_timer *t)
{
    struct faas_call *c = container_of(t, struct faas_call, t_deadline);
    faas_server_log(s, "debug", "request %s: upgraded connection idle for %lld seconds: closed",
                    c->rid, (long long)c->fn->timeout);
    faas_tunnel_end(c);
}

static void
active(struct faas_call *c)
{
    faas_timer_set(c->s, &c->t_deadline, now_ns() + (uint64_t)c->fn->timeout * NS_PER_SEC);
}

void
faas_tunnel_start(struct faas_call *c, const char *from_server, size_t n)
{
    struct faas_conn *conn = c->conn;
    struct faas_tunnel *t = c->tunnel = xcalloc(1, sizeof(*c->tunnel));
    t->call = c;
    t->next = c->s->tunnels;
    if (t->next)
        t->next->prev = t;
    c->s->tunnels = t;
    c->t_deadline.fn = idle_expired;
    active(c);
    faas_timer_cancel(c->s, &conn->deadline);
    faas_buf_add(&conn->out, from_server, n); /* after the 101's head */
    /* What the client sent past its request is the tunnel's first bytes. */
    size_t early = faas_buf_pending(&conn->in);
    c->up_out.off = c->up_out.len = 0;
    faas_buf_add(&c->up_out, conn->in.p + conn->in.off, early);
    conn->in.off = conn->in.len = 0;
    conn->close_after = true; /* no HTTP after it */
    faas_tunnel_pump(c);
}

/* Read from fd into q while it has room. 1 read something, 0 nothing now, -1 error (errno). */
static int
take(int fd, bool *readable, bool *eof, struct faas_buf *q)
{
    char buf[64 << 10];
    int got = 0;
    while (*readable && !*eof && faas_buf_pending(q) < TUNNEL_QUEUE) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            *readable = false;
            break;
        }
        if (n < 0)
            return -1;
        if (n == 0)
            *eof = true;
        faas_buf_compact(q, (size_t)n);
        faas_buf_add(q, buf, (size_t)n);
        got = 1;
    }
    return got;
}

/* Send what q holds while fd takes it; emptied, it starts again at its front. */
static int
sent(struct faas_buf *q, int fd, bool *writable)
{
    int r = faas_buf_send(q, fd, writable);
    if (r == 0)
        q->off = q->len = 0;
    return r;
}

void
faas_tunnel_pump(struct faas_call *c)
{
    struct faas_tunnel *t = c->tunnel;
    struct faas_conn *conn = c->conn;
    struct faas_upstream *u = c->up;
    if (conn == NULL || u == NULL) { /* either side went: the call ends with it */
        faas_tunnel_end(c);
        return;
    }
    for (bool moved = true; moved;) {
        int a = take(conn->fd, &conn->readable, &t->client_eof, &c->up_out);
        int b = take(u->fd, &u->readable, &t->server_eof, &conn->out);
        if (a < 0 || b < 0 || sent(&c->up_out, u->fd, &u->writable) < 0 ||
            sent(&conn->out, conn->fd, &conn->writable) < 0) {
            faas_tunnel_end(c);
            return;
        }
        moved = a > 0 || b > 0;
        if (moved)
            active(c);
    }
    /* A side's end, once what it sent before has left. */
    if (t->client_eof && !t->server_shut && faas_buf_pending(&c->up_out) == 0) {
        shutdown(u->fd, SHUT_WR);
        t->server_shut = true;
    }
    if (t->server_eof && !t->client_shut && faas_buf_pending(&conn->out) == 0) {
        shutdown(conn->fd, SHUT_WR);
        t->client_shut = true;
    }
    if (t->server_shut && t->client_shut)
        faas_tunnel_end(c);
}

void
faas_tunnel_end(struct faas_call *c)
{
    if (c->conn)
        c->conn->close_after = true;
    faas_call_end(c);
}

void
faas_tunnel_free(struct faas_call *c)
{
    struct faas_tunnel *t = c->tunnel;
    if (t == NULL)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        c->s->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
    c->tunnel = NULL;
}

void
faas_tunnel_stop_all(struct faas_server *s)
{
    while (s->tunnels) /* each end unlinks its tunnel (faas_tunnel_free, by call_close) */
        faas_tunnel_end(s->tunnels->call);
}
