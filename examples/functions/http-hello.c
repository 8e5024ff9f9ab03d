/* SPDX-License-Identifier: Apache-2.0 */
/* A function on the HTTP contract: an HTTP/1.1 server on 127.0.0.1:$PORT that answers every
 * request with 200 and a short text body naming the method, path, X-Request-Id and body length. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The request line and headers must fit in this; a body of any length is read and dropped. */
#define HELLO_HEAD_MAX 16384
#define HELLO_PATH_MAX 1024
#define HELLO_ID_MAX   128
#define HELLO_EVENTS   64
/* Past this much unsent output, stop reading until the client catches up. */
#define HELLO_OUT_LIMIT 65536

struct hello_request {
    char method[16];
    char path[HELLO_PATH_MAX];
    char id[HELLO_ID_MAX];
    unsigned long long length;
    bool keep_alive;
};

struct hello_conn {
    int fd;
    char in[HELLO_HEAD_MAX];
    size_t in_len;
    bool in_body;                 /* the head of req is parsed; its body is being skipped */
    unsigned long long body_left; /* bytes of that body not read yet */
    struct hello_request req;
    char *out;
    size_t out_len, out_off, out_cap;
    bool closing; /* no more requests: close once out is sent */
    unsigned events;
};

static volatile sig_atomic_t hello_stop;

static void
hello_on_signal(int sig)
{
    hello_stop = sig;
}

static void
hello_out_append(struct hello_conn *c, const char *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (p == NULL) {
            fprintf(stderr, "http-hello: out of memory\n");
            exit(1);
        }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void
hello_respond(struct hello_conn *c, int status, const char *reason, const char *body)
{
    char head[256];
    size_t blen = strlen(body);
    bool head_only = status == 200 && strcmp(c->req.method, "HEAD") == 0;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n",
                     status, reason, blen, c->req.keep_alive ? "keep-alive" : "close");

    hello_out_append(c, head, (size_t)n);
    if (!head_only)
        hello_out_append(c, body, blen);
    if (!c->req.keep_alive)
        c->closing = true;
    fprintf(stderr, "http-hello: %s %s %d body=%llu id=%s\n",
            c->req.method[0] ? c->req.method : "-", c->req.path[0] ? c->req.path : "-", status,
            c->req.length, c->req.id[0] ? c->req.id : "-");
}

/* A protocol error: answer it and close, since the rest of the stream cannot be trusted. */
static void
hello_fail(struct hello_conn *c, int status, const char *reason)
{
    char body[64];

    snprintf(body, sizeof(body), "%d %s\n", status, reason);
    c->req.keep_alive = false;
    hello_respond(c, status, reason, body);
}

static bool
hello_token_in(const char *value, const char *token)
{
    size_t tlen = strlen(token);

    for (const char *p = value; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t len = n;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
        p += n;
    }
    return false;
}

static void
hello_copy(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Parse the head in c->in[0..len) (terminated by the blank line, NUL-terminated here) into
 * c->req. Returns 0, or an HTTP status for a request that cannot be served. */
static int
hello_parse_head(struct hello_conn *c, char *head)
{
    struct hello_request *r = &c->req;
    bool have_length = false;
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);

    memset(r, 0, sizeof(*r));
    if (line == NULL)
        return 400;
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == line || (size_t)(sp1 - line) >= sizeof(r->method))
        return 400;
    hello_copy(r->method, sizeof(r->method), line, (size_t)(sp1 - line));
    if ((size_t)(sp2 - sp1 - 1) >= sizeof(r->path))
        return 414;
    hello_copy(r->path, sizeof(r->path), sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if (strcmp(sp2 + 1, "HTTP/1.1") == 0)
        r->keep_alive = true;
    else if (strcmp(sp2 + 1, "HTTP/1.0") != 0)
        return 505;

    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line)
            return 400;
        *colon = '\0';
        char *value = colon + 1 + strspn(colon + 1, " \t");
        size_t vlen = strlen(value);
        while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
            value[--vlen] = '\0';

        if (strcasecmp(line, "Content-Length") == 0) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(value, &end, 10);
            if (vlen == 0 || *end || errno || value[0] == '-' || (have_length && n != r->length))
                return 400;
            r->length = n;
            have_length = true;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            /* Content-Length bodies only; a chunked body would desynchronise the stream. */
            return 501;
        } else if (strcasecmp(line, "Connection") == 0) {
            if (hello_token_in(value, "close"))
                r->keep_alive = false;
            else if (hello_token_in(value, "keep-alive"))
                r->keep_alive = true;
        } else if (strcasecmp(line, "X-Request-Id") == 0) {
            hello_copy(r->id, sizeof(r->id), value, vlen);
        }
    }
    return 0;
}

static const char *
hello_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* Serve every complete request in the input buffer, in order (pipelining included). */
static void
hello_process(struct hello_conn *c)
{
    while (!c->closing && c->out_len - c->out_off < HELLO_OUT_LIMIT) {
        if (!c->in_body) {
            char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
            if (end == NULL) {
                if (c->in_len == sizeof(c->in)) {
                    memset(&c->req, 0, sizeof(c->req));
                    hello_fail(c, 431, hello_reason(431));
                }
                return;
            }
            size_t head_len = (size_t)(end - c->in) + 4;
            end[2] = '\0'; /* keep the last header's CRLF for strtok_r, drop the blank line */
            int status = hello_parse_head(c, c->in);
            memmove(c->in, c->in + head_len, c->in_len - head_len);
            c->in_len -= head_len;
            if (status != 0) {
                hello_fail(c, status, hello_reason(status));
                return;
            }
            c->in_body = true;
            c->body_left = c->req.length;
        }
        size_t take = c->body_left < c->in_len ? (size_t)c->body_left : c->in_len;
        memmove(c->in, c->in + take, c->in_len - take);
        c->in_len -= take;
        c->body_left -= take;
        if (c->body_left > 0)
            return;

        char body[HELLO_PATH_MAX + HELLO_ID_MAX + 128];
        snprintf(body, sizeof(body), "method: %s\npath: %s\nx-request-id: %s\nbody-length: %llu\n",
                 c->req.method, c->req.path, c->req.id, c->req.length);
        hello_respond(c, 200, "OK", body);
        c->in_body = false;
    }
}

static void
hello_close(int ep, struct hello_conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Send what is queued; 0 if the connection lives on, -1 if it was closed. */
static int
hello_flush(int ep, struct hello_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            hello_close(ep, c);
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->closing) {
            hello_close(ep, c);
            return -1;
        }
    }
    /* Level-triggered: wait for writability only while output is pending, and stop reading
     * while too much of it is, so a client that never reads cannot grow our buffer. */
    unsigned want = 0;
    if (c->out_len - c->out_off < HELLO_OUT_LIMIT && !c->closing)
        want |= EPOLLIN;
    if (c->out_len > c->out_off)
        want |= EPOLLOUT;
    if (want != c->events) {
        struct epoll_event ev = {.events = want, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
            hello_close(ep, c);
            return -1;
        }
        c->events = want;
    }
    return 0;
}

static void
hello_on_readable(int ep, struct hello_conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        hello_close(ep, c);
        return;
    }
    if (n == 0) {
        /* The client is done sending; what it sent in full has been answered, and a request
         * cut short gets nothing. Close once the answers are out. */
        c->closing = true;
        hello_flush(ep, c);
        return;
    }
    c->in_len += (size_t)n;
    hello_process(c);
    hello_flush(ep, c);
}

static void
hello_accept(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("http-hello: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct hello_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("http-hello: epoll_ctl");
            close(fd);
            free(c);
        }
    }
}

static int
hello_listen(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((unsigned short)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int
main(void)
{
    const char *env = getenv("PORT");
    unsigned long port = 8080;

    if (env && *env) {
        char *end;
        port = strtoul(env, &end, 10);
        if (*end || port == 0 || port > 65535) {
            fprintf(stderr, "http-hello: PORT '%s': expected 1-65535\n", env);
            return 2;
        }
    }
    /* No SA_RESTART: SIGTERM must interrupt epoll_wait so the loop can end. */
    struct sigaction sa = {.sa_handler = hello_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = hello_listen((unsigned)port);
    if (lfd < 0) {
        fprintf(stderr, "http-hello: listen on 127.0.0.1:%lu: %s\n", port, strerror(errno));
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        perror("http-hello: epoll");
        return 1;
    }
    fprintf(stderr, "http-hello: listening on 127.0.0.1:%lu\n", port);

    while (!hello_stop) {
        struct epoll_event evs[HELLO_EVENTS];
        int n = epoll_wait(ep, evs, HELLO_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("http-hello: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct hello_conn *c = evs[i].data.ptr;
            if (c == NULL) {
                hello_accept(ep, lfd);
            } else if (evs[i].events & (EPOLLERR | EPOLLHUP) &&
                       !(evs[i].events & (EPOLLIN | EPOLLOUT))) {
                hello_close(ep, c);
            } else if (evs[i].events & EPOLLIN) {
                hello_on_readable(ep, c);
            } else if (evs[i].events & EPOLLOUT) {
                /* Room again: serve requests that waited in the input buffer. */
                if (hello_flush(ep, c) == 0) {
                    hello_process(c);
                    hello_flush(ep, c);
                }
            }
        }
    }
    fprintf(stderr, "http-hello: stopping on signal %d\n", (int)hello_stop);
    return 0;
}
