/* SPDX-License-Identifier: Apache-2.0 */
/* Calls: one invocation from the front door to an instance and back, whatever the contract. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

struct faas_call *
faas_call_new(struct faas_server *s, struct faas_conn *conn, struct faas_function *f,
              const char *rid, const char *subpath)
{
    struct faas_call *c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->conn = conn;
    c->fn = f;
    snprintf(c->rid, sizeof(c->rid), "%s", rid);
    c->subpath = xstrdup(subpath);
    c->received_ns = now_ns();
    c->deadline = c->received_ns + (uint64_t)f->timeout * NS_PER_SEC;
    c->in_fd = c->out_fd = c->err_fd = c->up_fd = -1;
    conn->call = c;
    s->n_calls++;
    return c;
}

void
faas_call_start(struct faas_call *c, struct faas_instance *in)
{
    struct husk_error *err = NULL;
    c->inst = in;
    c->started_ns = now_ns();
    /* Cold: the call came before its instance was ready (not one kept warm for it). */
    c->cold =
        in->served == 0 && in->in_flight == 0 && c->received_ns < in->spawned_ns + in->init_ns;
    in->in_flight++;
    c->prev = NULL;
    c->next = in->calls;
    if (in->calls)
        in->calls->prev = c;
    in->calls = c;
    int r = c->fn->contract == FAAS_HTTP ? faas_http_start(c, &err) : faas_stdio_start(c, &err);
    if (r < 0) {
        cleanup_free char *msg = husk_error_string(err);
        husk_error_free(err);
        faas_call_fail(c, 500, msg, NULL);
    }
}

void
faas_call_fail(struct faas_call *c, int status, const char *msg, const char *extra_headers)
{
    if (c->conn && c->status == 0) {
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

static void
report(struct faas_call *c, double secs)
{
    struct faas_instance *in = c->inst;
    char init[64] = "";
    if (c->cold)
        snprintf(init, sizeof(init), " Init Duration: %.2f ms", in->init_ns / 1e6);
    uint64_t mem = faas_instance_max_memory(in);
    cleanup_free char *line =
        xasprintf("REPORT RequestId: %s Duration: %.2f ms%s Max Memory Used: %llu MB Status: %d%s",
                  c->rid, secs * 1e3, init, (unsigned long long)((mem + (1 << 20) - 1) >> 20),
                  c->status, c->oom ? " Error: out of memory" : "");
    faas_log_line(c->s, c->fn->name, in->id, c->rid, "report", line, strlen(line));
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
    if (c->fn->contract == FAAS_HTTP)
        faas_http_close(c);
    else
        faas_stdio_close(c);
    if (c->conn) {
        struct faas_conn *conn = c->conn;
        c->conn = NULL;
        faas_conn_done(s, conn);
    }
    faas_metrics_call(s, c, secs);
    if (c->inst) {
        unlink_from_instance(c);
        report(c, secs);
        faas_pool_call_ended(s, c);
    }
    faas_request_reset(&c->req);
    free(c->subpath);
    faas_buf_free(&c->out);
    faas_buf_free(&c->err);
    faas_buf_free(&c->up_out);
    s->n_calls--;
    c->w_in.dead = c->w_out.dead = c->w_err.dead = c->w_up.dead = true;
    faas_server_bury(s, c);
}

void
faas_call_detach(struct faas_call *c)
{
    c->conn = NULL;
    if (c->fn->contract == FAAS_HTTP && !c->queued) {
        if (c->status == 0)
            c->status = 499; /* the client closed the request (nginx's convention) */
        faas_call_end(c);
    }
}

void
faas_call_drained(struct faas_call *c)
{
    if (c->fn->contract == FAAS_HTTP)
        faas_http_drained(c);
}
