/* SPDX-License-Identifier: Apache-2.0 */
/* Calls: one invocation from the front door to an instance and back, whatever the contract. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

/* Past the function's timeout: waiting for an instance, or on one (which goes with it: nothing
 * of a timed-out call may linger). */
static void
call_expired(struct faas_server *s, struct faas_timer *t)
{
    struct faas_call *c = container_of(t, struct faas_call, t_deadline);
    struct faas_instance *in = c->inst;
    cleanup_free char *msg =
        xasprintf("function '%s' timed out: it exceeded its timeout of %lld seconds%s", c->fn->name,
                  (long long)c->fn->timeout, in ? "" : " waiting for an instance");
    if (in == NULL) {
        faas_pool_unqueue(c);
        faas_call_fail(c, 504, msg, NULL);
        return;
    }
    if (c->lent) { /* a front loop's: its instance goes on the main loop */
        faas_front_condemn(s, in);
        faas_call_abort(c, 504, msg);
        faas_front_instance_gone(s, in, "a call timed out");
        return;
    }
    faas_call_abort(c, 504, msg);
    faas_pool_instance_gone(s, in, "a call timed out");
}

struct faas_call *
faas_call_new(struct faas_server *s, struct faas_conn *conn, struct faas_function *f,
              const char *rid, const char *subpath)
{
    struct faas_call *c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->loop = faas_loop_cur();
    c->conn = conn;
    c->fn = f;
    snprintf(c->rid, sizeof(c->rid), "%s", rid);
    c->subpath = xstrdup(subpath);
    c->received_ns = now_ns();
    c->t_deadline.fn = call_expired;
    faas_timer_set(s, &c->t_deadline, c->received_ns + (uint64_t)f->timeout * NS_PER_SEC);
    c->in_fd = c->out_fd = c->err_fd = -1;
    if (conn)
        conn->call = c;
    c->loop->n_calls++;
    return c;
}

void
faas_call_start(struct faas_call *c, struct faas_instance *in)
{
    struct husk_error *err = NULL;
    c->inst = in;
    c->started_ns = now_ns();
    faas_lock(c->s);
    c->oom_base = in->oom_kills;
    if (!c->lent) { /* a front loop's call was counted by its lease (loops.c) */
        /* Cold: the call came before its instance was ready (not one kept warm for it). */
        c->cold =
            in->served == 0 && in->in_flight == 0 && c->received_ns < in->spawned_ns + in->init_ns;
        if (in->in_flight++ == 0)
            faas_instance_busy(c->s, in, true);
        faas_instance_idle_check(c->s, in);
        c->prev = NULL;
        c->next = in->calls;
        if (in->calls)
            in->calls->prev = c;
        in->calls = c;
    }
    if (c->aws_id[0] == '\0' && c->fn->contract == &faas_contract_lambda)
        faas_lambda_uuid(c->s, c->aws_id);
    char start[128];
    int n = snprintf(start, sizeof(start), "START RequestId: %s Version: %lld",
                     c->aws_id[0] ? c->aws_id : c->rid, (long long)c->fn->version);
    faas_log_call(c, "report", start, (size_t)n);
    if (c->trace_id[0] == '\0')
        faas_trace_start(c);
    faas_unlock(c->s);
    if (c->fn->contract->call_start(c, &err) < 0) {
        cleanup_free char *msg = husk_error_string(err);
        husk_error_free(err);
        faas_call_fail(c, 500, msg, NULL);
    }
}

void
faas_call_fail(struct faas_call *c, int status, const char *msg, const char *extra_headers)
{
    if (c->front && c->fail_status == 0) {
        c->status = c->fail_status = status;
        c->fail_msg = xstrdup(msg);
    } else if (c->front) {
        /* failed again (a timeout after an error): the first reason stands */
    } else if (c->conn && c->status == 0) {
        cleanup_free char *body = xasprintf("%s\n", msg);
        cleanup_free char *extra =
            xasprintf("X-Duration-Seconds: %.6f\r\n%s", (now_ns() - c->received_ns) / 1e9,
                      extra_headers ? extra_headers : "");
        c->status = status;
        faas_conn_respond(c->s, c->conn, status, c->rid, "text/plain", body, strlen(body), extra);
        c->conn = NULL; /* done with it: faas_conn_respond finished the request */
    } else if (c->conn) {
        c->conn->close_after = true; /* a response was under way: cut it */
    }
    if (c->status == 0)
        c->status = status;
    faas_call_end(c);
}

void
faas_call_abort(struct faas_call *c, int status, const char *msg)
{
    faas_call_fail(c, status, msg, NULL);
}

void
faas_log_call(struct faas_call *c, const char *stream, const char *text, size_t len)
{
    faas_log_line(c->s, c->fn->name, c->inst ? c->inst->id : "-", c->rid, stream, text, len);
    if (!c->want_log_tail)
        return;
    struct faas_buf *t = &c->log_tail;
    faas_buf_add(t, text, len);
    faas_buf_add(t, "\n", 1);
    if (faas_buf_pending(t) > 8192) { /* keep about the last 4 KB */
        t->off = t->len - 4096;
        memmove(t->p, t->p + t->off, 4096);
        t->off = 0;
        t->len = 4096;
    }
}

/* Lambda's END and REPORT lines, for every contract (and the HTTP status husk answered). */
static void
report(struct faas_call *c, double secs)
{
    struct faas_instance *in = c->inst;
    char init[64] = "";
    if (c->cold)
        snprintf(init, sizeof(init), "\tInit Duration: %.2f ms", in->init_ns / 1e6);
    uint64_t mem = faas_instance_max_memory(in);
    const char *id = c->aws_id[0] ? c->aws_id : c->rid;
    char line[400];
    int n = snprintf(line, sizeof(line), "END RequestId: %s", id);
    faas_log_call(c, "report", line, (size_t)n);
    n = snprintf(line, sizeof(line),
                 "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %.0f ms\tMemory "
                 "Size: %lld MB\tMax Memory Used: %llu MB%s\tStatus: %d%s",
                 id, secs * 1e3, secs * 1e3 + 0.5 > 1 ? secs * 1e3 + 0.5 : 1,
                 (long long)faas_function_memory_mb(c->fn),
                 (unsigned long long)((mem + (1 << 20) - 1) >> 20), init, c->status,
                 c->oom ? "\tError: out of memory" : "");
    faas_log_call(c, "report", line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void
unlink_from_instance(struct faas_call *c)
{
    struct faas_instance *in = c->inst;
    if (c->prev)
        c->prev->next = c->next;
    else
        in->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

void
faas_call_end(struct faas_call *c)
{
    struct faas_server *s = c->s;
    double secs = (now_ns() - c->received_ns) / 1e9;
    faas_timer_cancel(s, &c->t_deadline);
    if (c->inst)
        c->fn->contract->call_close(c);
    faas_lock(s);
    if (c->inst && !c->lent)
        unlink_from_instance(c);
    if (c->inst)
        report(c, secs);
    if (c->front)
        c->front->finish(c); /* after END and REPORT: a log tail has them */
    faas_metrics_call(s, c, secs);
    if (s->tracer && c->trace_id[0] == '\0')
        faas_trace_start(c);
    faas_trace_end(c);
    if (c->lent) /* its pool hears of it now: the connection's next request may lease again */
        faas_front_call_ended(s, c);
    faas_unlock(s);
    if (c->conn) {
        struct faas_conn *conn = c->conn;
        c->conn = NULL;
        faas_conn_done(s, conn);
    }
    if (c->inst && !c->lent)
        faas_pool_call_ended(s, c);
    faas_request_reset(&c->req);
    free(c->subpath);
    faas_buf_free(&c->out);
    faas_buf_free(&c->err);
    faas_buf_free(&c->up_out);
    faas_buf_free(&c->body_in);
    faas_buf_free(&c->reply_headers);
    faas_buf_free(&c->reply_body);
    faas_buf_free(&c->log_tail);
    free(c->fail_msg);
    c->loop->n_calls--;
    c->w_in.dead = c->w_out.dead = c->w_err.dead = true;
    faas_server_bury(s, c);
}

void
faas_call_detach(struct faas_call *c)
{
    c->conn = NULL;
    if (c->inst)
        c->fn->contract->call_detach(c);
}

void
faas_call_drained(struct faas_call *c)
{
    if (c->inst && c->fn->contract->call_drained)
        c->fn->contract->call_drained(c);
}

/* ---- a request body that streams in */

#define BODY_ROOM (1u << 20) /* held for the function at most; the client waits for more room */

static void
body_data(void *sink, const char *p, size_t n)
{
    struct faas_call *c = sink;
    faas_buf_compact(&c->body_in, n); /* held at most BODY_ROOM: the buffer stays that size */
    faas_buf_add(&c->body_in, p, n);
    if (c->inst && c->fn->contract->call_body)
        c->fn->contract->call_body(c);
}

static void
body_end(void *sink, int status, const struct faas_request *trailers)
{
    struct faas_call *c = sink;
    c->body_open = false;
    if (status == 0) {
        if (c->inst && c->fn->contract->call_body)
            c->fn->contract->call_body(c);
        return;
    }
    cleanup_free char *msg =
        status == 413 ? xasprintf("request body over the function's max_body of %lld bytes",
                                  (long long)c->fn->max_body)
                      : xstrdup("the client broke off the request body");
    if (c->queued)
        faas_pool_unqueue(c);
    faas_call_fail(c, status, msg, NULL);
}

static bool
body_room(void *sink)
{
    struct faas_call *c = sink;
    return faas_buf_pending(&c->body_in) + faas_buf_pending(&c->up_out) < BODY_ROOM;
}

static const struct faas_body_sink_ops body_sink = {
    .data = body_data, .end = body_end, .room = body_room};

void
faas_call_take_body(struct faas_call *c)
{
    if (!c->req.body_streams || c->conn == NULL)
        return;
    c->body_open = true;
    faas_conn_body_take(c->conn, &body_sink, c);
}

void
faas_call_body_consumed(struct faas_call *c)
{
    if (c->conn && c->body_open && body_room(c))
        faas_conn_body_resume(c->s, c->conn);
}
