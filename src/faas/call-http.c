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

static const char *const resp_hop_by_hop[] = {
    "Connection", "Keep-Alive",     "Proxy-Connection",  "TE",          "Trailer",
    "Upgrade",    "Content-Length", "Transfer-Encoding", "X-Request-Id"};

/* The response head, rebuilt for the client from parsed fields (never relayed as bytes), with
 * the framing the client gets: the server's length, or chunks when it gave none (an HTTP/1.0
 * client gets the body until the connection closes). */
static void
on_resp_head(void *data, const struct faas_resp_head *h)
{
    struct faas_call *c = data;
    struct faas_buf out = {0};
    c->status = h->status;
    c->head_done = true;
    if (c->conn == NULL)
        return;
    faas_buf_addf(&out, "HTTP/1.1 %d %s\r\n", h->status,
                  *h->reason ? h->reason : faas_status_text(h->status));
    for (size_t i = 0; i < h->n_headers; i++) {
        bool drop = false;
        for (size_t k = 0; k < ARRAY_SIZE(resp_hop_by_hop) && !drop; k++)
            drop = strcasecmp(h->headers[i].name, resp_hop_by_hop[k]) == 0;
        if (!drop)
            faas_buf_addf(&out, "%s: %s\r\n", h->headers[i].name, h->headers[i].value);
    }
    if (h->has_length)
        faas_buf_addf(&out, "Content-Length: %llu\r\n", (unsigned long long)h->length);
    else if (!h->no_body && !c->req.http10)
        c->chunked_out = true;
    else if (!h->no_body)
        c->conn->close_after = true; /* the body ends when the connection does */
    if (c->chunked_out)
        faas_buf_addf(&out, "Transfer-Encoding: chunked\r\n");
    if (c->s->stopping)
        c->conn->close_after = true;
    faas_buf_addf(&out, "X-Request-Id: %s\r\nConnection: %s\r\n\r\n", c->rid,
                  faas_conn_connection_header(c->conn));
    faas_conn_send(c->s, c->conn, out.p, out.len);
    faas_buf_free(&out);
}

static void
on_resp_body(void *data, const char *p, size_t n)
{
    struct faas_call *c = data;
    c->relayed += n;
    if (c->conn == NULL || n == 0)
        return;
    if (c->chunked_out) {
        char size[24];
        int k = snprintf(size, sizeof(size), "%zx\r\n", n);
        faas_conn_send(c->s, c->conn, size, (size_t)k);
    }
    faas_conn_send(c->s, c->conn, p, n);
    if (c->chunked_out)
        faas_conn_send(c->s, c->conn, "\r\n", 2);
}

static const struct faas_resp_ops resp_ops = {.head = on_resp_head, .body = on_resp_body};

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
        if (c->conn && c->chunked_out)
            faas_conn_send(c->s, c->conn, "0\r\n\r\n", 5);
        faas_call_end(c);
        return false;
    }
    if (!c->head_done) {
        cleanup_free char *msg = xasprintf(
            "function '%s' answered with a malformed HTTP response: %s", c->fn->name, why);
        faas_call_fail(c, 502, msg, NULL);
        return false;
    }
    /* Part of the response is out: the client's connection is cut, never ended cleanly. */
    faas_server_log(c->s, "warning", "function '%s' broke its response to request %s: %s",
                    c->fn->name, c->rid, why);
    if (c->conn)
        c->conn->close_after = true;
    c->status = 502;
    faas_call_end(c);
    return false;
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
    const char *why = n < 0 ? strerror(errno) : NULL; /* reset: never a clean end */
    size_t used = 0;
    int r = n < 0 ? -1 : faas_resp_feed(c->resp, buf, (size_t)n, &used, &why);
    if (resp_outcome(c, r, n > 0 ? (size_t)n - used : 0, why) && c->conn)
        up_interest(c);
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
    c->resp = faas_resp_parser_new(&resp_ops, c);
    faas_resp_parser_reset(c->resp, strcmp(c->req.method, "HEAD") == 0);
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
    faas_resp_parser_free(c->resp);
    c->resp = NULL;
    if (c->up_fd >= 0) {
        faas_watch_del(c->s, c->up_fd);
        close(c->up_fd);
        c->up_fd = -1;
    }
}
