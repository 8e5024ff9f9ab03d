/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 requests through llhttp into a struct faas_request, with a body limit. A request
 * whose route takes its body as it comes (a call of a function that reads a stream) is handed
 * over once its head is in, when its body is chunked or large; the body then comes out piece
 * by piece (faas_parser_body), its trailer fields at the end.
 */
#define _GNU_SOURCE
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "faas-internal.h"
#include "util.h"

#define FAAS_MAX_URL    8192
#define FAAS_MAX_HEADER 16384
#define FAAS_MAX_HEAD   (64u * 1024u) /* the request line and all headers */
#define STREAM_FROM     (64u * 1024u) /* a body this long or chunked streams, if it may */

struct faas_parser {
    llhttp_t http;
    llhttp_settings_t settings;
    struct faas_request req;
    bool in_value;
    void (*head)(struct faas_request *r, void *data);
    void *head_data;
    bool streaming;    /* the head was handed over: the body comes out in pieces */
    uint64_t streamed; /* body bytes so far, against the limit */
    uint64_t max_streamed;
    size_t consumed;   /* of the last buffer fed */
    size_t head_bytes; /* of the request line and headers so far */
    bool bad_name;     /* a header name that is empty or not an RFC 9110 token */
    int status;        /* the answer to a refused request: 400, or 431 for a head too large */
};

static struct faas_parser *
parser_of(llhttp_t *h)
{
    return (struct faas_parser *)((char *)h - offsetof(struct faas_parser, http));
}

/* The head as a whole is bounded too: many headers each under their own limit add up. */
static int
head_limit(llhttp_t *h, size_t n)
{
    struct faas_parser *p = parser_of(h);
    if ((p->head_bytes += n) <= FAAS_MAX_HEAD)
        return 0;
    p->status = 431;
    llhttp_set_error_reason(h, "request head over 64 KiB");
    return HPE_USER;
}

static int
append(char **dst, size_t *len, const char *at, size_t n, size_t max)
{
    if (*len + n > max)
        return -1;
    *dst = xrealloc(*dst, *len + n + 1);
    memcpy(*dst + *len, at, n);
    *len += n;
    (*dst)[*len] = 0;
    return 0;
}

static int
on_url(llhttp_t *h, const char *at, size_t n)
{
    struct faas_request *r = &parser_of(h)->req;
    if (append(&r->url, &r->url_len, at, n, FAAS_MAX_URL) < 0) {
        parser_of(h)->status = 414;
        llhttp_set_error_reason(h, "request line too long");
        return HPE_USER;
    }
    return head_limit(h, n);
}

static int
on_header_field(llhttp_t *h, const char *at, size_t n)
{
    struct faas_parser *p = parser_of(h);
    struct faas_request *r = &p->req;
    if (r->headers_done && !p->streaming)
        return 0; /* a trailer: the body limit and the headers were settled before the body */
    if (p->in_value || r->n_headers == 0) {
        if (r->n_headers == FAAS_MAX_HEADERS) {
            p->status = 431;
            llhttp_set_error_reason(h, "too many headers");
            return HPE_USER;
        }
        r->n_headers++;
        p->in_value = false;
    }
    struct faas_header *hd = &r->headers[r->n_headers - 1];
    size_t len = hd->name ? strlen(hd->name) : 0;
    if (append(&hd->name, &len, at, n, FAAS_MAX_HEADER) < 0) {
        p->status = 431;
        llhttp_set_error_reason(h, "header name too long");
        return HPE_USER;
    }
    return head_limit(h, n);
}

static int
on_header_value(llhttp_t *h, const char *at, size_t n)
{
    struct faas_parser *p = parser_of(h);
    if (p->req.headers_done && !p->streaming)
        return 0;
    struct faas_header *hd = &p->req.headers[p->req.n_headers - 1];
    size_t len = hd->value ? strlen(hd->value) : 0;
    p->in_value = true;
    if (append(&hd->value, &len, at, n, FAAS_MAX_HEADER) < 0) {
        p->status = 431;
        llhttp_set_error_reason(h, "header value too long");
        return HPE_USER;
    }
    return head_limit(h, n);
}

static int
on_headers_complete(llhttp_t *h)
{
    struct faas_parser *p = parser_of(h);
    struct faas_request *r = &p->req;
    for (struct faas_header *hd = r->headers; hd < r->headers + r->n_headers; hd++) {
        if (hd->value == NULL)
            hd->value = xstrdup("");
        /* "X-Forwarded For " must not slip past the headers a proxy strips by name. */
        size_t n = hd->name ? strlen(hd->name) : 0;
        if (n == 0 || strspn(hd->name, "!#$%&'*+-.^_`|~0123456789"
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != n)
            p->bad_name = true;
    }
    snprintf(r->method, sizeof(r->method), "%s", llhttp_method_name(h->method));
    r->http10 = h->http_major == 1 && h->http_minor == 0;
    r->headers_done = true;
    r->max_body = FAAS_ADMIN_MAX_BODY;
    if (p->head)
        p->head(r, p->head_data);
    /* A declared length over the limit is answered (413) before any of the body is read; the
     * rest of the connection is not read again. */
    if ((h->flags & F_CONTENT_LENGTH) && h->content_length > r->max_body) {
        r->too_large = true;
        r->complete = true;
        r->keep_alive = false;
        return HPE_PAUSED;
    }
    bool chunked = h->flags & F_CHUNKED;
    const char *expect = faas_request_header(r, "Expect");
    r->expect_continue = expect && strcasecmp(expect, "100-continue") == 0 && !r->http10 &&
                         (chunked || ((h->flags & F_CONTENT_LENGTH) && h->content_length > 0));
    if (r->may_stream &&
        (chunked || ((h->flags & F_CONTENT_LENGTH) && h->content_length >= STREAM_FROM))) {
        r->body_streams = true;
        r->stream_sized = !chunked;
        r->stream_length = chunked ? 0 : h->content_length;
        r->keep_alive = llhttp_should_keep_alive(h);
        p->streaming = true;
        p->streamed = 0;
        p->max_streamed = r->max_body;
        return HPE_PAUSED; /* handed over now; the body follows */
    }
    return 0;
}

static int
on_body(llhttp_t *h, const char *at, size_t n)
{
    struct faas_parser *p = parser_of(h);
    struct faas_request *r = &p->req;
    if (p->streaming) { /* r is what comes after the head: body pieces, trailers */
        if ((p->streamed += n) > p->max_streamed) {
            r->too_large = true;
            r->complete = true;
            return HPE_PAUSED;
        }
        size_t len = r->body_len;
        append(&r->body, &len, at, n, SIZE_MAX);
        r->body_len = len;
        return 0;
    }
    if (r->too_large || r->body_len + n > r->max_body) {
        r->too_large = true; /* a chunked body over the limit: answered now, not read on */
        r->complete = true;
        r->keep_alive = false;
        return HPE_PAUSED;
    }
    size_t len = r->body_len;
    append(&r->body, &len, at, n, SIZE_MAX);
    r->body_len = len;
    return 0;
}

static int
on_message_complete(llhttp_t *h)
{
    struct faas_request *r = &parser_of(h)->req;
    r->complete = true;
    r->keep_alive = llhttp_should_keep_alive(h);
    return HPE_PAUSED; /* one request at a time: the next waits for this one's response */
}

struct faas_parser *
faas_parser_new(void)
{
    struct faas_parser *p = xcalloc(1, sizeof(*p));
    llhttp_settings_init(&p->settings);
    p->settings.on_url = on_url;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_value = on_header_value;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    llhttp_init(&p->http, HTTP_REQUEST, &p->settings);
    return p;
}

void
faas_request_reset(struct faas_request *r)
{
    free(r->url);
    free(r->body);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    memset(r, 0, sizeof(*r));
}

void
faas_parser_free(struct faas_parser *p)
{
    if (p == NULL)
        return;
    faas_request_reset(&p->req);
    free(p);
}

void
faas_parser_set_head_fn(struct faas_parser *p, void (*fn)(struct faas_request *r, void *data),
                        void *data)
{
    p->head = fn;
    p->head_data = data;
}

int
faas_parser_feed(struct faas_parser *p, const char *buf, size_t len, const char **why)
{
    p->consumed = 0;
    if (p->req.complete)
        return 1;
    llhttp_errno_t e = len ? llhttp_execute(&p->http, buf, len) : llhttp_finish(&p->http);
    p->consumed = len;
    if (e == HPE_PAUSED && len) {
        const char *pos = llhttp_get_error_pos(&p->http);
        if (pos >= buf && pos <= buf + len)
            p->consumed = (size_t)(pos - buf);
    }
    if (p->bad_name) {
        *why = "invalid header name";
        return -1;
    }
    if (e == HPE_PAUSED || p->req.complete)
        return 1;
    if (e != HPE_OK) {
        *why = llhttp_get_error_reason(&p->http);
        if (*why == NULL)
            *why = llhttp_errno_name(e);
        return -1;
    }
    if (len == 0) {
        *why = "connection closed before the request was complete";
        return -1;
    }
    return 0;
}

int
faas_parser_status(const struct faas_parser *p)
{
    return p->status ? p->status : 400;
}

size_t
faas_parser_consumed(const struct faas_parser *p)
{
    return p->consumed;
}

void
faas_parser_take(struct faas_parser *p, struct faas_request *out)
{
    *out = p->req;
    memset(&p->req, 0, sizeof(p->req));
    p->in_value = false;
    p->head_bytes = 0;
    llhttp_resume(&p->http);
    if (p->streaming && out->complete) /* the end of a streamed body: a new request next */
        p->streaming = false;
    else if (p->streaming) /* the head: what follows is body */
        p->req.headers_done = true;
}

bool
faas_parser_streaming(const struct faas_parser *p)
{
    return p->streaming;
}

const char *
faas_parser_body(struct faas_parser *p, size_t *len)
{
    *len = p->req.body_len;
    p->req.body_len = 0; /* the buffer is kept for the next piece */
    return p->req.body;
}

struct faas_request *
faas_parser_request(struct faas_parser *p)
{
    return &p->req;
}

const char *
faas_request_header(const struct faas_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name && strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}
