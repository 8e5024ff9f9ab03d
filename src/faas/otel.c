/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Traces: one span per call (kind SERVER, named after the function), and a child span for the
 * cold start when the call waited for a new instance. The W3C traceparent a caller sends is
 * continued (its trace, the span as parent); an http function gets a traceparent naming the
 * call's span, so what it traces hangs below. Spans are exported over OTLP/HTTP as JSON to the
 * collector `husk serve --otlp-endpoint` names, in batches (every second, or 256 spans), from
 * a network thread; an unreachable collector is reported once, not per call, and its spans are
 * dropped (at most a batch is held).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faas-internal.h"
#include "util.h"

#define BATCH_SPANS 256
#define BATCH_NS    NS_PER_SEC

struct faas_tracer {
    const char *endpoint;
    json_t *spans; /* the batch */
    struct faas_timer t_flush;
    bool failing; /* the last export failed: said once */
    size_t n_out; /* exports on the network threads */
};

struct export_job {
    struct faas_work work;
    struct faas_server *s;
    char *body;
    char error[CURL_ERROR_SIZE];
    long status;
    bool ok;
};

static bool
hex_of(const char *p, size_t n)
{
    return strspn(p, "0123456789abcdef") >= n;
}

/* "00-TRACE(32)-SPAN(16)-FLAGS(2)", neither id all zeros. */
static bool
parse_traceparent(const char *tp, char trace[33], char parent[17])
{
    if (tp == NULL || strlen(tp) < 55 || strncmp(tp, "00-", 3) || tp[35] != '-' || tp[52] != '-' ||
        !hex_of(tp + 3, 32) || !hex_of(tp + 36, 16) || !hex_of(tp + 53, 2))
        return false;
    if (strspn(tp + 3, "0") >= 32 || strspn(tp + 36, "0") >= 16)
        return false;
    memcpy(trace, tp + 3, 32);
    trace[32] = '\0';
    memcpy(parent, tp + 36, 16);
    parent[16] = '\0';
    return true;
}

void
faas_trace_start(struct faas_call *c)
{
    if (!parse_traceparent(faas_request_header(&c->req, "traceparent"), c->trace_id,
                           c->parent_span))
        faas_random_hex(c->s, c->trace_id, 16), c->parent_span[0] = '\0';
    faas_random_hex(c->s, c->span_id, 8);
}

void
faas_traceparent(const struct faas_call *c, char out[56])
{
    snprintf(out, 56, "00-%s-%s-01", c->trace_id, c->span_id);
}

/* ---- export */

static uint64_t
unix_ns(uint64_t mono)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t real = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec, now = now_ns();
    return real - (now - mono);
}

static json_t *
attr(const char *key, json_t *value, const char *type)
{
    return json_pack("{s:s, s:{s:o}}", "key", key, "value", type, value);
}

static json_t *
span(const struct faas_call *c, const char *name, const char *id, const char *parent,
     uint64_t start, uint64_t end, json_t *attrs, bool error)
{
    char ts[2][24];
    snprintf(ts[0], sizeof(ts[0]), "%llu", (unsigned long long)unix_ns(start));
    snprintf(ts[1], sizeof(ts[1]), "%llu", (unsigned long long)unix_ns(end));
    json_t *sp =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:{s:i}}", "traceId", c->trace_id, "spanId",
                  id, "name", name, "kind", 2, "startTimeUnixNano", ts[0], "endTimeUnixNano", ts[1],
                  "attributes", attrs, "status", "code", error ? 2 : 1);
    if (parent && *parent)
        json_object_set_new(sp, "parentSpanId", json_string(parent));
    return sp;
}

static void
export_run(struct faas_work *w)
{
    struct export_job *j = container_of(w, struct export_job, work);
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (h == NULL) {
        snprintf(j->error, sizeof(j->error), "out of memory");
        curl_slist_free_all(hd);
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, j->s->tracer->endpoint);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, faas_curl_discard);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->status);
    j->ok = rc == CURLE_OK && j->status >= 200 && j->status < 300;
    if (rc != CURLE_OK && j->error[0] == '\0')
        snprintf(j->error, sizeof(j->error), "%s", curl_easy_strerror(rc));
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
}

static void
export_done(struct faas_server *s, struct faas_work *w)
{
    struct export_job *j = container_of(w, struct export_job, work);
    struct faas_tracer *t = s->tracer;
    t->n_out--;
    char why[CURL_ERROR_SIZE + 24];
    if (j->error[0])
        snprintf(why, sizeof(why), "%s", j->error);
    else
        snprintf(why, sizeof(why), "HTTP %ld", j->status);
    if (!j->ok && !t->failing)
        faas_server_log(s, "warning",
                        "traces: the collector at %s did not take spans (%s): spans are dropped "
                        "until it does",
                        t->endpoint, why);
    if (j->ok && t->failing)
        faas_server_log(s, "info", "traces: the collector at %s takes spans again", t->endpoint);
    t->failing = !j->ok;
    free(j->body);
    free(j);
}

static void
flush(struct faas_server *s)
{
    struct faas_tracer *t = s->tracer;
    faas_timer_cancel(s, &t->t_flush);
    if (json_array_size(t->spans) == 0)
        return;
    if (t->n_out >= 2) { /* the collector is slow: this batch is dropped, not queued */
        json_array_clear(t->spans);
        return;
    }
    json_t *doc = json_pack("{s:[{s:{s:[o]}, s:[{s:{s:s}, s:o}]}]}", "resourceSpans", "resource",
                            "attributes", attr("service.name", json_string("husk"), "stringValue"),
                            "scopeSpans", "scope", "name", "husk", "spans", t->spans);
    t->spans = json_array();
    struct export_job *j = xcalloc(1, sizeof(*j));
    j->work.run = export_run;
    j->work.done = export_done;
    j->s = s;
    j->body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    t->n_out++;
    faas_workq_submit(s->net, &j->work);
}

static void
flush_timer(struct faas_server *s, struct faas_timer *tm)
{
    flush(s);
}

void
faas_trace_end(struct faas_call *c)
{
    struct faas_tracer *t = c->s->tracer;
    if (t == NULL)
        return;
    uint64_t end = now_ns();
    bool error = c->status >= 500 || c->function_error;
    char vers[24];
    snprintf(vers, sizeof(vers), "%lld", (long long)c->fn->version);
    json_t *attrs = json_pack(
        "[o, o, o, o, o, o]", attr("faas.name", json_string(c->fn->name), "stringValue"),
        attr("faas.version", json_string(vers), "stringValue"),
        attr("faas.trigger", json_string(c->trigger == FAAS_TRIGGER_HTTP ? "http" : "other"),
             "stringValue"),
        attr("faas.invocation_id", json_string(c->aws_id[0] ? c->aws_id : c->rid), "stringValue"),
        attr("faas.coldstart", json_boolean(c->cold), "boolValue"),
        attr("http.response.status_code", json_integer(c->status), "intValue"));
    json_array_append_new(t->spans, span(c, c->fn->name, c->span_id, c->parent_span, c->received_ns,
                                         end, attrs, error));
    if (c->cold && c->inst) { /* the instance's start, below the call */
        char id[17];
        faas_random_hex(c->s, id, 8);
        json_array_append_new(
            t->spans,
            span(c, "cold start", id, c->span_id, c->inst->spawned_ns,
                 c->inst->spawned_ns + c->inst->init_ns,
                 json_pack("[o]", attr("faas.name", json_string(c->fn->name), "stringValue")),
                 false));
    }
    bool full = json_array_size(t->spans) >= BATCH_SPANS;
    if (full && !faas_on_front())
        flush(c->s);
    else if (full || t->t_flush.slot == 0) /* a front loop's: the main loop's timer flushes */
        faas_main_timer_set(c->s, &t->t_flush, full ? 0 : end + BATCH_NS);
}

int
faas_trace_open(struct faas_server *s, const char *endpoint, struct husk_error **err)
{
    if (endpoint == NULL)
        return 0;
    if (!str_has_prefix(endpoint, "http://") && !str_has_prefix(endpoint, "https://"))
        return husk_err(err, 0, "--otlp-endpoint '%s': must be an http:// or https:// URL",
                        endpoint);
    struct faas_tracer *t = xcalloc(1, sizeof(*t));
    t->endpoint = endpoint;
    t->spans = json_array();
    t->t_flush.fn = flush_timer;
    s->tracer = t;
    return 0;
}

/* At stop: what is batched goes out (the network threads finish it before they stop). */
void
faas_trace_flush(struct faas_server *s)
{
    if (s->tracer)
        flush(s);
}

void
faas_trace_close(struct faas_server *s)
{
    struct faas_tracer *t = s->tracer;
    if (t == NULL)
        return;
    faas_timer_cancel(s, &t->t_flush);
    json_decref(t->spans);
    free(t);
    s->tracer = NULL;
}
