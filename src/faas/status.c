/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The status page, GET / on the front door (what /metrics tells, for a person): the functions
 * with their versions and instances by state, the latest calls, and how long cold starts take.
 * Plain HTML made on the server, no script; it refreshes itself every 5 seconds.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faas-internal.h"
#include "util.h"

#define RECENT 50

struct faas_recent {
    char fn[FAAS_NAME_MAX + 1];
    int64_t version;
    int status;
    double ms;
    bool cold;
    time_t when;
};

void
faas_status_record(struct faas_server *s, const struct faas_call *c, double secs)
{
    if (s->recent == NULL)
        s->recent = xcalloc(RECENT, sizeof(*s->recent));
    struct faas_recent *r = &s->recent[s->recent_next++ % RECENT];
    snprintf(r->fn, sizeof(r->fn), "%s", c->fn->name);
    r->version = c->fn->version;
    r->status = c->status;
    r->ms = secs * 1e3;
    r->cold = c->cold;
    r->when = time(NULL);
}

/* Names are [A-Za-z0-9_.-] already; this is for anything else that reaches the page. */
static void
html_text(struct faas_buf *b, const char *p)
{
    for (; *p; p++) {
        const char *e = *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '&' ? "&amp;" : NULL;
        if (e == NULL && *p == '"')
            e = "&quot;";
        if (e)
            faas_buf_add(b, e, strlen(e));
        else
            faas_buf_add(b, p, 1);
    }
}

static void
functions_table(struct faas_server *s, struct faas_buf *b)
{
    faas_buf_addf(b, "<h2>Functions</h2>\n<table id=\"functions\">\n<tr><th>function</th>"
                     "<th>contract</th><th>version</th><th>starting</th><th>idle</th><th>busy"
                     "</th><th>queued</th><th>aliases</th></tr>\n");
    for (size_t i = 0; i < s->n_fns; i++) {
        struct faas_function *f = s->fns[i];
        size_t n[3];
        faas_pool_counts(f, &n[0], &n[1], &n[2]);
        faas_buf_add(b, "<tr><td class=\"name\">", 21);
        html_text(b, f->name);
        faas_buf_addf(b,
                      "</td><td>%s</td><td class=\"version\">%lld</td><td>%zu</td><td>%zu</td>"
                      "<td>%zu</td><td>%zu</td><td>",
                      f->contract->name, (long long)f->version, n[0], n[1], n[2], f->n_queued);
        for (struct faas_alias *a = s->aliases; a; a = a->next)
            if (strcmp(a->fn, f->name) == 0) {
                html_text(b, a->name);
                faas_buf_addf(b, "&rarr;%lld ", (long long)a->version);
            }
        faas_buf_add(b, "</td></tr>\n", 11);
    }
    faas_buf_add(b, "</table>\n", 9);
}

static void
recent_table(struct faas_server *s, struct faas_buf *b)
{
    faas_buf_addf(b, "<h2>Latest calls</h2>\n<table id=\"calls\">\n<tr><th>time (UTC)</th>"
                     "<th>function</th><th>version</th><th>status</th><th>ms</th><th>cold</th>"
                     "</tr>\n");
    size_t n = s->recent_next < RECENT ? s->recent_next : RECENT;
    for (size_t k = 0; k < n; k++) { /* newest first */
        const struct faas_recent *r = &s->recent[(s->recent_next - 1 - k) % RECENT];
        struct tm tm;
        char when[32];
        gmtime_r(&r->when, &tm);
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
        faas_buf_addf(b, "<tr><td>%s</td><td class=\"name\">", when);
        html_text(b, r->fn);
        faas_buf_addf(b,
                      "</td><td>%lld</td><td class=\"status\">%d</td><td>%.2f</td><td>%s</td>"
                      "</tr>\n",
                      (long long)r->version, r->status, r->ms, r->cold ? "cold" : "");
    }
    faas_buf_add(b, "</table>\n", 9);
}

static void
cold_histogram(struct faas_server *s, struct faas_buf *b)
{
    const double *bounds;
    size_t n_bounds;
    uint64_t counts[32] = {0}, most = 1, total = 0;
    faas_metrics_init_counts(s, counts, ARRAY_SIZE(counts), &bounds, &n_bounds);
    for (size_t i = 0; i <= n_bounds; i++) {
        most = counts[i] > most ? counts[i] : most;
        total += counts[i];
    }
    faas_buf_addf(b,
                  "<h2>Cold starts</h2>\n<p id=\"coldstarts\">%llu cold starts</p>\n"
                  "<table id=\"cold\">\n",
                  (unsigned long long)total);
    for (size_t i = 0; i <= n_bounds; i++) {
        if (counts[i] == 0)
            continue;
        char label[32];
        if (i < n_bounds)
            snprintf(label, sizeof(label), "&le; %g ms", bounds[i] * 1e3);
        else
            snprintf(label, sizeof(label), "more");
        faas_buf_addf(b,
                      "<tr><td>%s</td><td class=\"count\">%llu</td><td><div class=\"bar\" "
                      "style=\"width:%llupx\"></div></td></tr>\n",
                      label, (unsigned long long)counts[i],
                      (unsigned long long)(counts[i] * 300 / most));
    }
    faas_buf_add(b, "</table>\n", 9);
}

void
faas_route_status(struct faas_route_ctx *c)
{
    struct faas_buf b = {0};
    faas_buf_addf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                      "<meta http-equiv=\"refresh\" content=\"5\"><title>husk serve</title>"
                      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
                      "collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:"
                      "left}.bar{height:.8em;background:#4a7}</style></head><body>\n"
                      "<h1>husk serve</h1>\n");
    functions_table(c->s, &b);
    recent_table(c->s, &b);
    cold_histogram(c->s, &b);
    faas_buf_add(&b, "</body></html>\n", 15);
    faas_conn_respond(c->s, c->conn, 200, c->rid, "text/html; charset=utf-8", b.p, b.len,
                      "Cache-Control: no-store\r\nContent-Security-Policy: default-src 'none'; "
                      "style-src 'unsafe-inline'\r\nX-Frame-Options: DENY\r\n");
    faas_buf_free(&b);
}
