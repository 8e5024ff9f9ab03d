/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stdio contract (OpenFaaS classic watchdog: body on stdin, stdout is the response, exit
 * != 0 is a 500) and its CGI variant (RFC 3875 environment; stdout starts with a header block
 * that sets status and headers). The instance's agent forks the program per call with pipes
 * the daemon made; the daemon feeds stdin, collects stdout, logs stderr line by line.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-proto.h"
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

static void
stdio_env(struct faas_call *c, struct faas_buf *b)
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

static void
cgi_env(struct faas_call *c, struct faas_buf *b)
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

static void finish(struct faas_call *c);

static void
on_in(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_call *c = container_of(w, struct faas_call, w_in);
    ssize_t n = write(c->in_fd, c->req.body + c->in_off, c->req.body_len - c->in_off);
    if (n > 0)
        c->in_off += (size_t)n;
    if ((n < 0 && errno != EAGAIN && errno != EINTR) || c->in_off == c->req.body_len) {
        faas_watch_del(s, c->in_fd); /* EOF on the program's stdin (or it stopped reading) */
        close(c->in_fd);
        c->in_fd = -1;
    }
}

static void
on_out(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_call *c = container_of(w, struct faas_call, w_out);
    char buf[65536];
    ssize_t n = read(c->out_fd, buf, sizeof(buf));
    if (n > 0 && c->out.len + (size_t)n > (uint64_t)c->fn->max_response) {
        /* The daemon holds a buffered response whole: not more than the function may send.
         * Closing the pipe ends the program with EPIPE. */
        cleanup_free char *msg = xasprintf("function '%s' wrote a response over its max_response "
                                           "of %lld bytes",
                                           c->fn->name, (long long)c->fn->max_response);
        faas_call_fail(c, 502, msg, NULL);
        return;
    }
    if (n > 0) {
        faas_buf_add(&c->out, buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    faas_watch_del(s, c->out_fd);
    close(c->out_fd);
    c->out_fd = -1;
    c->out_eof = true;
    finish(c);
}

static void
err_lines(struct faas_call *c, bool flush)
{
    struct faas_buf *b = &c->err;
    while (faas_buf_pending(b)) {
        char *start = b->p + b->off;
        char *nl = memchr(start, '\n', faas_buf_pending(b));
        size_t n = nl ? (size_t)(nl - start) : faas_buf_pending(b);
        if (!nl && !flush && n < 16384)
            break;
        faas_log_line(c->s, c->fn->name, c->inst->id, c->rid, "stderr", start, n);
        b->off += n + (nl != NULL);
    }
}

static void
on_err(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_call *c = container_of(w, struct faas_call, w_err);
    char buf[16384];
    ssize_t n = read(c->err_fd, buf, sizeof(buf));
    if (n > 0) {
        faas_buf_add(&c->err, buf, (size_t)n);
        err_lines(c, false);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        err_lines(c, true);
        faas_watch_del(s, c->err_fd);
        close(c->err_fd);
        c->err_fd = -1;
    }
}

int
faas_stdio_start(struct faas_call *c, struct husk_error **err)
{
    struct faas_server *s = c->s;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0) {
        int e = errno;
        int all[] = {in[0], in[1], out[0], out[1]};
        for (size_t i = 0; i < ARRAY_SIZE(all); i++)
            if (all[i] >= 0)
                close(all[i]);
        return husk_err(err, e, "create the call's pipes");
    }
    struct faas_buf env = {0};
    for (char **e = c->fn->cfg->sbx->process.env; e && *e; e++)
        faas_buf_add(&env, *e, strlen(*e) + 1);
    if (c->fn->contract == FAAS_CGI)
        cgi_env(c, &env);
    else
        stdio_env(c, &env);
    c->agent_id = ++s->next_agent_id;
    int fds[3] = {in[0], out[1], er[1]};
    int r = faas_instance_send_run(c->inst, c->agent_id, &env, fds, err);
    faas_buf_free(&env);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->err_fd = er[0];
    c->w_in.fn = on_in;
    c->w_out.fn = on_out;
    c->w_err.fn = on_err;
    int all[] = {c->in_fd, c->out_fd, c->err_fd};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        fcntl(all[i], F_SETFL, O_NONBLOCK);
    if (r < 0)
        return r;
    faas_watch_add(s, c->out_fd, EPOLLIN, &c->w_out);
    faas_watch_add(s, c->err_fd, EPOLLIN, &c->w_err);
    if (c->req.body_len)
        faas_watch_add(s, c->in_fd, EPOLLOUT, &c->w_in);
    else
        close(c->in_fd), c->in_fd = -1;
    return 0;
}

void
faas_stdio_close(struct faas_call *c)
{
    char buf[16384];
    ssize_t n;
    while (c->err_fd >= 0 && c->inst && (n = read(c->err_fd, buf, sizeof(buf))) > 0)
        faas_buf_add(&c->err, buf, (size_t)n);
    if (c->inst)
        err_lines(c, true);
    int *fds[] = {&c->in_fd, &c->out_fd, &c->err_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (*fds[i] >= 0) {
            faas_watch_del(c->s, *fds[i]);
            close(*fds[i]);
            *fds[i] = -1;
        }
}

/* Split a CGI response's header block off. 0, or -1 when it has none. */
static int
cgi_head(struct faas_call *c, int *status, char **ctype, struct faas_buf *extra, size_t *body)
{
    char *p = c->out.p ? c->out.p : "", *end = p + c->out.len;
    *status = 200;
    bool any = false, location = false;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return -1;
        size_t n = (size_t)(nl - p) - (nl > p && nl[-1] == '\r');
        if (n == 0) {
            *body = (size_t)(nl + 1 - c->out.p);
            if (location && *status == 200)
                *status = 302;
            return any ? 0 : -1;
        }
        char *colon = memchr(p, ':', n);
        if (colon == NULL || colon == p)
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
    return -1;
}

static void
respond_ok(struct faas_call *c, const char *duration)
{
    struct faas_server *s = c->s;
    struct faas_conn *conn = c->conn;
    const char *ct = faas_request_header(&c->req, "Content-Type");
    for (char **e = c->fn->env; e && *e; e++)
        if (str_has_prefix(*e, "content_type="))
            ct = *e + strlen("content_type=");
    if (c->fn->contract == FAAS_STDIO) {
        c->status = 200;
        faas_conn_respond(s, conn, 200, c->rid, ct, c->out.p, c->out.len, duration);
        return;
    }
    cleanup_free char *ctype = NULL;
    struct faas_buf extra = {0};
    size_t body = 0;
    faas_buf_add(&extra, duration, strlen(duration));
    if (cgi_head(c, &c->status, &ctype, &extra, &body) < 0) {
        cleanup_free char *msg = xasprintf(
            "function '%s' wrote no CGI header block (\"Status: 200\", \"Content-Type: ...\", then "
            "an empty line) before its body\n",
            c->fn->name);
        c->status = 502;
        faas_conn_respond(s, conn, 502, c->rid, NULL, msg, strlen(msg), duration);
    } else {
        faas_buf_add(&extra, "", 1);
        faas_conn_respond(s, conn, c->status, c->rid, ctype ? ctype : "text/plain", c->out.p + body,
                          c->out.len - body, extra.p);
    }
    faas_buf_free(&extra);
}

static void
finish(struct faas_call *c)
{
    if (!c->exited || !c->out_eof)
        return;
    struct faas_instance *in = c->inst;
    uint64_t kills = in->cg ? sbx_cgroup_oom_kills(in->cg) : 0;
    c->oom = kills > in->oom_kills;
    in->oom_kills = kills;
    cleanup_free char *duration =
        xasprintf("X-Duration-Seconds: %.6f\r\n", (now_ns() - c->received_ns) / 1e9);
    int code = c->wait_status < 0 ? 127 : sbx_status_to_exit_code(c->wait_status);
    cleanup_free char *msg = NULL;
    if (c->oom)
        msg = xasprintf("function '%s' ran out of memory: it exceeded its memory limit of %lld "
                        "bytes",
                        c->fn->name, (long long)c->fn->memory);
    else if (c->wait_status < 0)
        msg =
            xasprintf("function '%s' could not be run: %s", c->fn->name, strerror(-c->wait_status));
    else if (code != 0)
        msg = xasprintf("function '%s' exited with status %d\n%.*s", c->fn->name, code,
                        (int)c->out.len, c->out.p ? c->out.p : "");
    if (msg)
        faas_call_fail(c, 500, msg, NULL);
    else {
        if (c->conn)
            respond_ok(c, duration);
        c->conn = NULL;
        faas_call_end(c);
    }
}

void
faas_stdio_exited(struct faas_instance *in, uint32_t id, int status)
{
    for (struct faas_call *c = in->calls; c; c = c->next)
        if (c->agent_id == id) {
            c->exited = true;
            c->wait_status = status;
            finish(c);
            return;
        }
}
