/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The http contract (Knative / Cloud Run: a server on $PORT). The request goes to
 * 127.0.0.1:$PORT inside the instance's network namespace with Forwarded, X-Forwarded-* and the
 * request id, hop-by-hop headers stripped; the response comes back as the server sends it
 * (chunked and streamed bodies pass through as they arrive), with the request id added and
 * the connection header made the client's.
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
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

#define MAX_HEAD (64u * 1024u)

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
traceparent(char out[64])
{
    unsigned char b[24] = {0};
    char hex[49];
    if (getrandom(b, sizeof(b), GRND_NONBLOCK) < 0)
        memset(b, 1, sizeof(b));
    for (int i = 0; i < 24; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    snprintf(out, 64, "00-%.32s-%.16s-01", hex, hex + 32);
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
            strcasecmp(n, "Forwarded") == 0 || strcasecmp(n, "X-Call-Id") == 0)
            continue;
        faas_buf_addf(b, "%s: %s\r\n", n, r->headers[i].value);
    }
    if (faas_request_header(r, "traceparent") == NULL) {
        char tp[64];
        traceparent(tp);
        faas_buf_addf(b, "traceparent: %s\r\n", tp);
    }
    faas_buf_addf(b,
                  "Forwarded: for=%s;proto=http%s%s%s\r\nX-Forwarded-For: %s%s%s\r\n"
                  "X-Forwarded-Proto: http\r\n",
                  peer, host ? ";host=\"" : "", host ? host : "", host ? "\"" : "", xff ? xff : "",
                  xff ? ", " : "", peer);
    if (host)
        faas_buf_addf(b, "X-Forwarded-Host: %s\r\n", host);
    faas_buf_addf(b,
                  "X-Request-Id: %s\r\nX-Call-Id: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n",
                  c->rid, c->rid, r->body_len);
    faas_buf_add(b, r->body, r->body_len);
}

/* Whether the response's body ends only when the server closes (no length, not chunked). */
static bool
close_delimited(const struct faas_call *c, int status, bool framed)
{
    if (framed || status < 200 || status == 204 || status == 304)
        return false;
    return strcmp(c->req.method, "HEAD") != 0;
}

/* The response head, complete: rewritten for the client. 0, or -1 when it is not HTTP. */
static int
relay_head(struct faas_call *c, size_t head_len)
{
    char *p = c->head.p, *end = p + head_len;
    int status;
    if (sscanf(p, "HTTP/1.%*1[01] %3d", &status) != 1 || status < 100 || status > 599)
        return -1;
    char *line_end = strstr(p, "\r\n");
    struct faas_buf out = {0};
    bool framed = false;
    faas_buf_add(&out, p, (size_t)(line_end + 2 - p));
    for (p = line_end + 2; p < end - 2;) {
        char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
        char *colon = memchr(p, ':', (size_t)(nl - p));
        size_t nlen = colon ? (size_t)(colon - p) : 0;
        framed |= (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) ||
                  (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0);
        bool drop = colon == NULL || (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) ||
                    (nlen == 10 && strncasecmp(p, "Keep-Alive", 10) == 0) ||
                    (nlen == 12 && strncasecmp(p, "X-Request-Id", 12) == 0);
        if (!drop)
            faas_buf_add(&out, p, (size_t)(nl + 2 - p));
        p = nl + 2;
    }
    c->status = status;
    if (c->conn && (close_delimited(c, status, framed) || c->s->stopping))
        c->conn->close_after = true;
    faas_buf_addf(&out, "X-Request-Id: %s\r\nConnection: %s\r\n\r\n", c->rid,
                  c->conn ? faas_conn_connection_header(c->conn) : "close");
    if (c->conn)
        faas_conn_send(c->s, c->conn, out.p, out.len);
    faas_buf_free(&out);
    return 0;
}

/* false: the call ended (and is freed). */
static bool
relay(struct faas_call *c, const char *data, size_t len)
{
    c->relayed += len;
    if (c->head_done) {
        if (c->conn)
            faas_conn_send(c->s, c->conn, data, len);
        return true;
    }
    faas_buf_add(&c->head, data, len);
    char *sep = memmem(c->head.p, c->head.len, "\r\n\r\n", 4);
    if (sep == NULL) {
        if (c->head.len <= MAX_HEAD)
            return true;
        faas_call_fail(c, 502, "the function's response head is over 64 KiB", NULL);
        return false;
    }
    size_t head_len = (size_t)(sep + 4 - c->head.p);
    if (relay_head(c, head_len) < 0) {
        faas_call_fail(c, 502, "the function's server did not answer with HTTP/1.x", NULL);
        return false;
    }
    c->head_done = true;
    if (c->conn && c->head.len > head_len)
        faas_conn_send(c->s, c->conn, c->head.p + head_len, c->head.len - head_len);
    return true;
}

static void
up_interest(struct faas_call *c)
{
    uint32_t ev = 0;
    if (faas_buf_pending(&c->up_out))
        ev |= EPOLLOUT;
    else if (!c->conn || faas_buf_pending(&c->conn->out) < (1u << 20)) /* backpressure */
        ev |= EPOLLIN;
    faas_watch_mod(c->s, c->up_fd, ev, &c->w_up);
}

static void
on_up(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_call *c = container_of(w, struct faas_call, w_up);
    if (faas_buf_pending(&c->up_out)) {
        ssize_t n =
            send(c->up_fd, c->up_out.p + c->up_out.off, faas_buf_pending(&c->up_out), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR && !c->head_done) {
            cleanup_free char *msg = xasprintf("could not reach the function's server on port "
                                               "%lld: %s",
                                               (long long)c->fn->port, strerror(errno));
            faas_call_fail(c, 502, msg, NULL);
            return;
        }
        if (n > 0)
            c->up_out.off += (size_t)n;
        up_interest(c);
        return;
    }
    char buf[65536];
    ssize_t n = read(c->up_fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        if (relay(c, buf, (size_t)n) && c->conn)
            up_interest(c);
        return;
    }
    if (!c->head_done) { /* closed (or reset) before a whole response */
        faas_call_fail(c, 502, "the function's server closed the connection without a response",
                       NULL);
        return;
    }
    faas_call_end(c); /* the server closed: the response is complete */
}

int
faas_http_start(struct faas_call *c, struct husk_error **err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->fn->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->up_fd = faas_instance_socket(c->s, c->inst);
    if (c->up_fd < 0)
        return husk_err(err, -c->up_fd, "open a connection in instance %s", c->inst->id);
    if (connect(c->up_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        return husk_err(err, errno, "connect to the function's server on port %lld",
                        (long long)c->fn->port);
    build_request(c);
    c->w_up.fn = on_up;
    if (faas_watch_add(c->s, c->up_fd, EPOLLOUT, &c->w_up) < 0)
        return husk_err(err, errno, "watch the connection to instance %s", c->inst->id);
    return 0;
}

void
faas_http_drained(struct faas_call *c)
{
    if (c->up_fd >= 0)
        up_interest(c);
}

void
faas_http_close(struct faas_call *c)
{
    if (c->up_fd >= 0) {
        faas_watch_del(c->s, c->up_fd);
        close(c->up_fd);
        c->up_fd = -1;
    }
}
