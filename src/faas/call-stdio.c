/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stdio contract (OpenFaaS classic watchdog: body on stdin, stdout is the response, exit
 * != 0 is a 500) and its CGI variant (RFC 3875 environment; stdout starts with a header block
 * that sets status and headers). The instance's agent forks the program per call with pipes
 * the daemon made; the daemon feeds stdin, reads stdout, logs stderr line by line.
 *
 * The answer is held back a little: a program that ends within 50 ms of its first output, or
 * before writing 64 KiB, is answered whole, with a length and its exit status deciding 200 or
 * 500 as the watchdog does. Past that the answer streams (chunked) as the program writes it,
 * at the pace the client reads; a program that then fails cuts the body off (no last chunk),
 * so the client never takes a broken answer for a whole one. Front doors that shape the
 * answer themselves (the Lambda invoke API, asynchronous calls) take it whole, up to the
 * function's max_response.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

#define HOLD_BYTES (64u << 10)
#define HOLD_NS    (50 * NS_PER_SEC / 1000)

static void finish(struct faas_call *c);

static void
stdin_close(struct faas_call *c)
{
    faas_watch_del(c->s, c->in_fd);
    close(c->in_fd);
    c->in_fd = -1;
}

/* Feed the program's stdin what came of the body; EOF at its end. */
static void
feed_stdin(struct faas_call *c)
{
    struct faas_buf *b = &c->body_in;
    while (c->in_fd >= 0 && faas_buf_pending(b)) {
        ssize_t n = write(c->in_fd, b->p + b->off, faas_buf_pending(b));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) { /* the pipe is full: on when it has room */
            faas_watch_mod(c->s, c->in_fd, EPOLLOUT, &c->w_in);
            return;
        }
        if (n < 0) /* the program stopped reading: the rest goes nowhere */
            stdin_close(c);
        else
            b->off += (size_t)n;
    }
    if (c->in_fd < 0)
        b->off = b->len;
    faas_call_body_consumed(c);
    if (c->in_fd >= 0 && !c->body_open)
        stdin_close(c);
    else if (c->in_fd >= 0) /* all written; more comes with call_body */
        faas_watch_mod(c->s, c->in_fd, 0, &c->w_in);
}

static void
on_in(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    feed_stdin(container_of(w, struct faas_call, w_in));
}

/* The client reads slower than the program writes: stop reading its output (the pipe fills,
 * the program waits) until the client's socket drains. */
static void
hold_back(struct faas_call *c)
{
    if (c->conn && !faas_reply_room(c) && !c->out_paused && c->out_fd >= 0) {
        c->out_paused = true;
        faas_watch_mod(c->s, c->out_fd, 0, &c->w_out);
    }
}

static void
stdio_drained(struct faas_call *c)
{
    if (c->out_paused && c->out_fd >= 0 && faas_reply_room(c)) {
        c->out_paused = false;
        faas_watch_mod(c->s, c->out_fd, EPOLLIN, &c->w_out);
    }
}

/* The head of the answer: the CGI header block, or 200 and the Content-Type. 0 (*body: where
 * the body starts in c->out), 1 when a CGI block is not complete yet, -1 when the call failed
 * (answered). */
static int
answer_head(struct faas_call *c, bool complete, size_t *body)
{
    const char *ct = faas_request_header(&c->req, "Content-Type");
    for (char **e = c->fn->env; e && *e; e++)
        if (str_has_prefix(*e, "content_type="))
            ct = *e + strlen("content_type=");
    int status = 200, r = 0;
    *body = 0;
    cleanup_free char *ctype = NULL;
    struct faas_buf lines = {0};
    faas_buf_addf(&lines, "X-Duration-Seconds: %.6f\r\n", (now_ns() - c->received_ns) / 1e9);
    if (c->fn->contract == &faas_contract_cgi)
        r = faas_cgi_head(&c->out, &status, &ctype, &lines, body);
    if (r == 1 && !complete && c->out.len < HOLD_BYTES) {
        faas_buf_free(&lines);
        return 1;
    }
    if (r != 0) {
        cleanup_free char *msg = xasprintf(
            "function '%s' wrote no CGI header block (\"Status: 200\", \"Content-Type: ...\", then "
            "an empty line) before its body",
            c->fn->name);
        faas_buf_free(&lines);
        faas_call_fail(c, 502, msg, NULL);
        return -1;
    }
    faas_buf_addf(&lines, "Content-Type: %s\r\n", ctype ? ctype : ct ? ct : "text/plain");
    faas_reply_head(c, status, NULL, lines.p, lines.len,
                    complete ? (int64_t)(c->out.len - *body) : -1);
    faas_buf_free(&lines);
    return 0;
}

/* From here on the answer streams: what was held back goes first. */
static void
stream_start(struct faas_call *c)
{
    size_t body;
    faas_timer_cancel(c->s, &c->t_hold);
    if (answer_head(c, false, &body) != 0)
        return;
    c->streaming = true;
    faas_reply_body(c, c->out.p + body, c->out.len - body);
    faas_buf_free(&c->out);
    if (c->conn)
        faas_conn_flush(c->s, c->conn);
    hold_back(c);
}

static void
hold_expired(struct faas_server *s, struct faas_timer *t)
{
    struct faas_call *c = container_of(t, struct faas_call, t_hold);
    c->hold_over = true;
    stream_start(c);
}

static void
take_output(struct faas_call *c, const char *p, size_t n)
{
    if (c->streaming) {
        faas_reply_body(c, p, n);
        if (c->conn)
            faas_conn_flush(c->s, c->conn);
        hold_back(c);
        return;
    }
    bool captured = faas_reply_captured(c);
    if (!captured && c->conn == NULL)
        return; /* the client left: the program runs on, its answer goes nowhere */
    if (captured && c->out.len + n > (uint64_t)c->fn->max_response) {
        /* A captured answer is held whole: not more than the function may send. Closing the
         * pipe ends the program with EPIPE. */
        cleanup_free char *msg = xasprintf("function '%s' wrote a response over its max_response "
                                           "of %lld bytes",
                                           c->fn->name, (long long)c->fn->max_response);
        c->reply_overflow = true;
        faas_call_fail(c, 502, msg, NULL);
        return;
    }
    faas_buf_add(&c->out, p, n);
    if (captured)
        return;
    if (c->hold_over || c->out.len >= HOLD_BYTES)
        stream_start(c);
    else if (c->t_hold.slot == 0)
        faas_timer_set(c->s, &c->t_hold, now_ns() + HOLD_NS);
}

static void
on_out(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_call *c = container_of(w, struct faas_call, w_out);
    char buf[65536];
    ssize_t n = read(c->out_fd, buf, sizeof(buf));
    if (n > 0) {
        take_output(c, buf, (size_t)n);
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
        faas_log_call(c, "stderr", start, n);
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

static int
stdio_start(struct faas_call *c, struct husk_error **err)
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
    if (c->fn->contract == &faas_contract_cgi)
        faas_cgi_env(c, &env);
    else
        faas_stdio_env(c, &env);
    c->t_hold.fn = hold_expired;
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
    if (!c->req.body_streams) { /* the whole body, taken as the first piece */
        c->body_in = (struct faas_buf){
            .p = steal_ptr(&c->req.body), .len = c->req.body_len, .cap = c->req.body_len};
    }
    faas_watch_add(s, c->in_fd, 0, &c->w_in);
    feed_stdin(c);
    return 0;
}

static void
stdio_close(struct faas_call *c)
{
    faas_timer_cancel(c->s, &c->t_hold);
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

/* Why the program failed, or NULL. */
static char *
failure(struct faas_call *c)
{
    int code = c->wait_status < 0 ? 127 : sbx_status_to_exit_code(c->wait_status);
    if (c->oom)
        return xasprintf("function '%s' ran out of memory: it exceeded its memory limit of %lld "
                         "bytes",
                         c->fn->name, (long long)c->fn->memory);
    if (c->wait_status < 0)
        return xasprintf("function '%s' could not be run: %s", c->fn->name,
                         strerror(-c->wait_status));
    if (code != 0)
        return xasprintf("function '%s' exited with status %d%s%.*s", c->fn->name, code,
                         c->streaming ? "" : "\n", c->streaming ? 0 : (int)c->out.len,
                         c->out.p ? c->out.p : "");
    return NULL;
}

static void
finish(struct faas_call *c)
{
    if (!c->exited || !c->out_eof)
        return;
    /* An OOM kill during the call marks it: looked for when the program failed, or when the
     * instance's memory peak reached its limit (a killed child need not fail the program). */
    if (c->wait_status != 0 || faas_instance_near_limit(c->inst))
        faas_instance_oom_check(c->s, c->inst);
    cleanup_free char *msg = failure(c);
    size_t body;
    if (c->streaming) {
        if (msg) { /* the client has a 200 and part of a body: cut it off */
            faas_log_call(c, "report", msg, strlen(msg));
            c->function_error = true;
        }
        faas_reply_end(c, msg == NULL);
        faas_call_end(c);
    } else if (msg) {
        faas_call_fail(c, 500, msg, NULL);
    } else if (answer_head(c, true, &body) == 0) {
        faas_reply_body(c, c->out.p + body, c->out.len - body);
        faas_reply_end(c, true);
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

static void
ready_at_once(struct faas_server *s, struct faas_instance *in)
{
    faas_instance_ready(s, in); /* the agent takes calls from the start */
}

/* The client went away: the program runs on, its answer is not sent anywhere. */
static void
stdio_detach(struct faas_call *c)
{
}

const struct faas_contract_ops faas_contract_stdio = {
    .name = "stdio",
    .default_concurrency = 1,
    .await_ready = ready_at_once,
    .call_start = stdio_start,
    .call_close = stdio_close,
    .call_detach = stdio_detach,
    .call_drained = stdio_drained,
    .call_body = feed_stdin,
    .streams_body = true,
};

const struct faas_contract_ops faas_contract_cgi = {
    .name = "cgi",
    .default_concurrency = 1,
    .await_ready = ready_at_once,
    .call_start = stdio_start,
    .call_close = stdio_close,
    .call_detach = stdio_detach,
    .call_drained = stdio_drained,
};
