/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of the stdio and CGI contracts: the request as environment variables (the
 * OpenFaaS watchdog's Http_* names, or RFC 3875's), and the header block a CGI program writes
 * before its body.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "faas-internal.h"
#include "util.h"

static void env_add(struct faas_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
env_add(struct faas_buf *b, const char *fmt, ...)
{
    va_list ap;
    cleanup_free char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n >= 0 && strchr(s, '\n') == NULL) /* no header may smuggle a variable in */
        faas_buf_add(b, s, (size_t)n + 1);
}

/* "content-type" -> "Content_Type" (Go's canonical names, '-' as '_'); CGI: "CONTENT_TYPE". */
static char *
header_var(const char *name, bool cgi)
{
    char *n = xstrdup(name);
    bool up = true;
    for (char *c = n; *c; c++) {
        *c = up || cgi ? toupper((unsigned char)*c) : tolower((unsigned char)*c);
        up = *c == '-';
        if (*c == '-')
            *c = '_';
    }
    return n;
}

void
faas_stdio_env(struct faas_call *c, struct faas_buf *b)
{
    const struct faas_request *r = &c->req;
    const char *q = strchr(r->url, '?');
    const char *host = faas_request_header(r, "Host");
    const char *cl = faas_request_header(r, "Content-Length");
    const char *te = faas_request_header(r, "Transfer-Encoding");
    for (size_t h = 0; h < r->n_headers; h++) {
        cleanup_free char *n = header_var(r->headers[h].name, false);
        env_add(b, "Http_%s=%s", n, r->headers[h].value);
    }
    env_add(b, "Http_Method=%s", r->method);
    env_add(b, "Http_Query=%s", q ? q + 1 : "");
    env_add(b, "Http_Path=%s", *c->subpath ? c->subpath : "/");
    env_add(b, "Http_Host=%s", host ? host : "");
    env_add(b, "Http_ContentLength=%s", cl ? cl : "-1");
    if (cl == NULL)
        env_add(b, "Http_Content_Length=-1");
    if (te)
        env_add(b, "Http_Transfer_Encoding=%s", te);
}

void
faas_cgi_env(struct faas_call *c, struct faas_buf *b)
{
    const struct faas_request *r = &c->req;
    const char *q = strchr(r->url, '?');
    const char *host = faas_request_header(r, "Host");
    const char *ct = faas_request_header(r, "Content-Type");
    const char *port = host ? strrchr(host, ':') : NULL;
    for (size_t h = 0; h < r->n_headers; h++) {
        const char *name = r->headers[h].name;
        /* Proxy: httpoxy; the two content headers have their own variables. */
        if (strcasecmp(name, "Proxy") == 0 || strcasecmp(name, "Content-Type") == 0 ||
            strcasecmp(name, "Content-Length") == 0)
            continue;
        cleanup_free char *n = header_var(name, true);
        env_add(b, "HTTP_%s=%s", n, r->headers[h].value);
    }
    env_add(b, "GATEWAY_INTERFACE=CGI/1.1");
    env_add(b, "SERVER_PROTOCOL=HTTP/1.1");
    env_add(b, "SERVER_SOFTWARE=husk/%s", HUSK_VERSION);
    env_add(b, "SERVER_NAME=%.*s", host ? (int)(port ? port - host : (long)strlen(host)) : 0,
            host ? host : "");
    env_add(b, "SERVER_PORT=%s", port ? port + 1 : "80");
    env_add(b, "REQUEST_METHOD=%s", r->method);
    env_add(b, "REQUEST_URI=%s", r->url);
    env_add(b, "SCRIPT_NAME=/function/%s", c->fn->name);
    env_add(b, "PATH_INFO=%s", c->subpath);
    env_add(b, "QUERY_STRING=%s", q ? q + 1 : "");
    env_add(b, "REMOTE_ADDR=%s", c->conn ? c->conn->peer : "");
    env_add(b, "CONTENT_LENGTH=%zu", r->body_len);
    if (ct)
        env_add(b, "CONTENT_TYPE=%s", ct);
}

/* Split a CGI response's header block off the output so far: 0 (*body is where the body
 * starts), 1 when the block is not complete yet, -1 when it is not a header block. */
int
faas_cgi_head(const struct faas_buf *out, int *status, char **ctype, struct faas_buf *extra,
              size_t *body)
{
    char *p = out->p ? out->p : "", *end = p + out->len;
    *status = 200;
    bool any = false, location = false;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return 1;
        size_t n = (size_t)(nl - p) - (nl > p && nl[-1] == '\r');
        if (n == 0) {
            *body = (size_t)(nl + 1 - out->p);
            if (location && *status == 200)
                *status = 302;
            return any ? 0 : -1;
        }
        char *colon = memchr(p, ':', n);
        if (colon == NULL || colon == p)
            return -1;
        for (size_t i = 0; i < n; i++) /* a bare CR or NUL could split the response */
            if (((unsigned char)p[i] < ' ' && p[i] != '\t') || p[i] == 0x7f)
                return -1;
        char *v = colon + 1;
        while (v < p + n && (*v == ' ' || *v == '\t'))
            v++;
        size_t nl_len = (size_t)(colon - p), vl = (size_t)(p + n - v);
        any = true;
        if (nl_len == 6 && strncasecmp(p, "Status", 6) == 0) {
            if (vl < 3 || sscanf(v, "%3d", status) != 1 || *status < 100 || *status > 599)
                return -1;
        } else if (nl_len == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
            free(*ctype);
            *ctype = xstrndup(v, vl);
        } else if (!(nl_len == 14 && strncasecmp(p, "Content-Length", 14) == 0) &&
                   !(nl_len == 10 && strncasecmp(p, "Connection", 10) == 0) &&
                   !(nl_len == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)) {
            location |= nl_len == 8 && strncasecmp(p, "Location", 8) == 0;
            faas_buf_add(extra, p, (size_t)(v - p) + vl);
            faas_buf_add(extra, "\r\n", 2);
        }
        p = nl + 1;
    }
    return 1;
}
