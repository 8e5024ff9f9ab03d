/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Responses from a function's server, through llhttp: the head is parsed whole (bounded) and
 * handed over as fields, the body as it arrives, and the end of the message is found by its
 * framing (Content-Length, chunked, or the server closing). Nothing the server sends is ever
 * relayed as bytes of a head, and nothing past the end of a response is taken as part of it:
 * a second response appended to the first cannot reach the next caller.
 */
#define _GNU_SOURCE
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "util.h"

#define RESP_MAX_HEAD    (64u * 1024u)
#define RESP_MAX_REASON  64
#define RESP_MAX_HEADERS 100

struct faas_resp_parser {
    llhttp_t http;
    llhttp_settings_t settings;
    const struct faas_resp_ops *ops;
    void *data;
    struct faas_resp_head head;
    size_t cap_headers, head_bytes;
    bool in_value, head_only, done, failed;
    bool upgrade_ok, upgraded; /* a 101 ends the response: the request asked for it */
    const char *why;
};

static struct faas_resp_parser *
resp_of(llhttp_t *h)
{
    return container_of(h, struct faas_resp_parser, http);
}

static int
fail(llhttp_t *h, const char *why)
{
    resp_of(h)->why = why;
    llhttp_set_error_reason(h, why);
    return HPE_USER;
}

/* Append n bytes to *dst, counting them against the head's limit. */
static int
head_append(llhttp_t *h, char **dst, const char *at, size_t n)
{
    struct faas_resp_parser *p = resp_of(h);
    size_t len = *dst ? strlen(*dst) : 0;
    if ((p->head_bytes += n) > RESP_MAX_HEAD)
        return fail(h, "the response head is over 64 KiB");
    *dst = xrealloc(*dst, len + n + 1);
    memcpy(*dst + len, at, n);
    (*dst)[len + n] = '\0';
    return 0;
}

static int
on_status(llhttp_t *h, const char *at, size_t n)
{
    /* RFC 9112: a reason phrase is HTAB, SP, VCHAR and obs-text; a NUL or another control
     * byte there is not HTTP (and would end the phrase early for C string code). */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)at[i] < 0x20 ? at[i] != '\t' : at[i] == 0x7f)
            return fail(h, "a control character in the status line");
    return head_append(h, &resp_of(h)->head.reason, at, n);
}

static int
on_header_field(llhttp_t *h, const char *at, size_t n)
{
    struct faas_resp_parser *p = resp_of(h);
    struct faas_resp_head *r = &p->head;
    if (p->in_value || r->n_headers == 0) {
        if (r->n_headers == RESP_MAX_HEADERS)
            return fail(h, "the response has over 100 headers");
        if (r->n_headers == p->cap_headers) {
            p->cap_headers = p->cap_headers ? 2 * p->cap_headers : 16;
            r->headers = xrealloc(r->headers, p->cap_headers * sizeof(*r->headers));
        }
        r->headers[r->n_headers++] = (struct faas_header){0};
        p->in_value = false;
    }
    return head_append(h, &r->headers[r->n_headers - 1].name, at, n);
}

static int
on_header_value(llhttp_t *h, const char *at, size_t n)
{
    struct faas_resp_parser *p = resp_of(h);
    p->in_value = true;
    return head_append(h, &p->head.headers[p->head.n_headers - 1].value, at, n);
}

static void
head_clear(struct faas_resp_head *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->reason);
    r->reason = NULL;
    r->n_headers = 0;
}

/* Only what a status line may carry: printable ASCII, cut short. */
static void
clean_reason(char *s)
{
    size_t n = 0;
    for (char *p = s; *p && n < RESP_MAX_REASON; p++)
        if ((*p >= 0x20 && *p < 0x7f) || *p == '\t')
            s[n++] = *p;
    s[n] = '\0';
}

static int
on_headers_complete(llhttp_t *h)
{
    struct faas_resp_parser *p = resp_of(h);
    struct faas_resp_head *r = &p->head;
    r->status = h->status_code;
    if (r->status < 100 || r->status > 599)
        return fail(h, "the response status is not from 100 to 599");
    if (r->status == 101 && !p->upgrade_ok)
        return fail(h, "the server switched protocols, which the request did not ask for");
    if (r->status < 200 && r->status != 101) { /* 100 Continue and the like: wait for more */
        head_clear(r);
        p->head_bytes = 0;
        p->in_value = false;
        return 0;
    }
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].value == NULL)
            r->headers[i].value = xstrdup("");
    if (r->reason == NULL)
        r->reason = xstrdup("");
    clean_reason(r->reason);
    r->chunked = (h->flags & F_CHUNKED) != 0;
    r->has_length = (h->flags & F_CONTENT_LENGTH) != 0 && !r->chunked;
    r->length = r->has_length ? h->content_length : 0;
    r->no_body = p->head_only || r->status == 204 || r->status == 304;
    r->keep_alive = llhttp_should_keep_alive(h);
    if (r->status == 101) { /* the head ends the response: what follows is the new protocol */
        r->no_body = true;
        p->upgraded = p->done = true;
        p->ops->head(p->data, r);
        return 2; /* llhttp: no body, and HPE_PAUSED_UPGRADE */
    }
    p->ops->head(p->data, r);
    return r->no_body ? 1 : 0;
}

static int
on_body(llhttp_t *h, const char *at, size_t n)
{
    struct faas_resp_parser *p = resp_of(h);
    p->ops->body(p->data, at, n);
    return 0;
}

static int
on_message_complete(llhttp_t *h)
{
    struct faas_resp_parser *p = resp_of(h);
    if (p->head.status < 200 && !p->upgraded)
        return 0; /* an interim response ended; the real one follows */
    p->head.keep_alive = llhttp_should_keep_alive(h);
    p->done = true;
    return HPE_PAUSED; /* stop exactly at the end: what follows is not this response's */
}

struct faas_resp_parser *
faas_resp_parser_new(const struct faas_resp_ops *ops, void *data)
{
    struct faas_resp_parser *p = xcalloc(1, sizeof(*p));
    llhttp_settings_init(&p->settings);
    p->settings.on_status = on_status;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_value = on_header_value;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    p->ops = ops;
    p->data = data;
    llhttp_init(&p->http, HTTP_RESPONSE, &p->settings);
    return p;
}

void
faas_resp_parser_reset(struct faas_resp_parser *p, bool head_only)
{
    head_clear(&p->head);
    p->head_bytes = 0;
    p->in_value = p->done = p->failed = p->upgrade_ok = p->upgraded = false;
    p->why = NULL;
    p->head_only = head_only;
    llhttp_init(&p->http, HTTP_RESPONSE, &p->settings);
}

void
faas_resp_parser_free(struct faas_resp_parser *p)
{
    if (p == NULL)
        return;
    head_clear(&p->head);
    free(p->head.headers);
    free(p);
}

int
faas_resp_feed(struct faas_resp_parser *p, const char *buf, size_t len, size_t *used,
               const char **why)
{
    *used = 0;
    if (p->done)
        return 1;
    if (p->failed) {
        *why = p->why ? p->why : "malformed response";
        return -1;
    }
    llhttp_errno_t e = len ? llhttp_execute(&p->http, buf, len) : llhttp_finish(&p->http);
    *used = len;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&p->http);
        if (pos >= buf && pos <= buf + len)
            *used = (size_t)(pos - buf);
        return 1;
    }
    if (p->done) /* llhttp_finish of a body that ends with the connection */
        return 1;
    if (e != HPE_OK) {
        p->failed = true;
        p->why = p->why ? p->why : llhttp_get_error_reason(&p->http);
        *why = p->why ? p->why : llhttp_errno_name(e);
        return -1;
    }
    if (len == 0) {
        p->failed = true;
        *why = p->why = "the connection closed before the response was complete";
        return -1;
    }
    return 0;
}

bool
faas_resp_keep_alive(const struct faas_resp_parser *p)
{
    return p->done && p->head.keep_alive;
}

void
faas_resp_allow_upgrade(struct faas_resp_parser *p)
{
    p->upgrade_ok = true;
}

bool
faas_resp_upgraded(const struct faas_resp_parser *p)
{
    return p->upgraded;
}

uint64_t
faas_resp_body_left(const struct faas_resp_parser *p)
{
    const struct faas_resp_head *r = &p->head;
    if (p->done || p->failed || r->status < 200 || r->no_body || !r->has_length)
        return 0;
    return p->http.content_length; /* llhttp counts it down as the body passes */
}

void
faas_resp_body_skip(struct faas_resp_parser *p, uint64_t n)
{
    p->http.content_length -= n < p->http.content_length ? n : p->http.content_length;
    p->done = p->http.content_length == 0;
}

const char *
faas_resp_header(const struct faas_resp_head *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}
