/* SPDX-License-Identifier: Apache-2.0 */
/* Logs (a file per function under the state directory) and Prometheus metrics. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

#define LOG_ROTATE_BYTES (16u << 20)
#define MAX_STATUSES     32

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
#define N_BUCKETS ARRAY_SIZE(buckets)
/* faas.mem_usage, bytes: 1 MiB to 4 GiB (the same number of buckets) */
static const double mem_buckets[N_BUCKETS] = {1 << 20,
                                              2 << 20,
                                              4 << 20,
                                              8 << 20,
                                              16 << 20,
                                              32 << 20,
                                              64 << 20,
                                              128 << 20,
                                              256 << 20,
                                              512 << 20,
                                              768 << 20,
                                              1024 << 20,
                                              1536 << 20,
                                              2048.0 * (1 << 20),
                                              3072.0 * (1 << 20),
                                              4096.0 * (1 << 20)};

static const char *const trigger_names[FAAS_N_TRIGGERS] = {"http", "other"};

struct histogram {
    uint64_t counts[N_BUCKETS + 1]; /* the last: +Inf */
    double sum;
    uint64_t n;
};

struct faas_stats {
    char *name;
    int log_fd;
    uint64_t log_size;   /* of the file, as written so far */
    struct faas_buf log; /* lines not written yet: one write per turn of the loop */
    bool dirty;          /* on s->dirty_stats */
    struct faas_stats *next_dirty;
    struct {
        int code;
        uint64_t n;
    } statuses[MAX_STATUSES];
    size_t n_statuses;
    uint64_t cold_starts;
    struct histogram duration, init, thaw;
    /* OpenTelemetry's FaaS instruments, by trigger */
    struct {
        uint64_t invocations, coldstarts, errors, timeouts;
        struct histogram duration, mem;
    } otel[FAAS_N_TRIGGERS];
    struct faas_stats *next;
};

static int
stats_cmp(const void *a, const void *b)
{
    return strcmp(((const struct faas_stats *)a)->name, ((const struct faas_stats *)b)->name);
}

/* A function's stats, by name (they outlive versions): found in a tree, made on first use. */
static struct faas_stats *
stats_of(struct faas_server *s, const char *fn)
{
    struct faas_stats probe = {.name = (char *)fn};
    void **hit = tfind(&probe, &s->stats_index, stats_cmp);
    if (hit)
        return *hit;
    struct faas_stats *st = xcalloc(1, sizeof(*st));
    st->name = xstrdup(fn);
    st->log_fd = -1;
    st->next = s->stats;
    s->stats = st;
    tsearch(st, &s->stats_index, stats_cmp);
    return st;
}

static int
log_fd(struct faas_server *s, struct faas_stats *st)
{
    cleanup_free char *path = xasprintf("%s/%s.log", s->log_dir, st->name);
    if (st->log_fd >= 0 && st->log_size > LOG_ROTATE_BYTES) {
        cleanup_free char *old = xasprintf("%s.1", path);
        rename(path, old);
        close(st->log_fd);
        st->log_fd = -1;
    }
    if (st->log_fd < 0) {
        struct stat sb;
        st->log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        st->log_size = st->log_fd >= 0 && fstat(st->log_fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    }
    return st->log_fd;
}

static void
log_flush(struct faas_server *s, struct faas_stats *st)
{
    size_t n = faas_buf_pending(&st->log);
    int fd = n ? log_fd(s, st) : -1;
    if (fd >= 0 && write_all(fd, st->log.p + st->log.off, n) < 0)
        faas_server_log(s, "warning", "log of '%s': %s", st->name, strerror(errno));
    st->log_size += n;
    st->log.off = st->log.len = 0;
}

/* The lines logged since the last flush, one write each log: by a timer at most LOG_FLUSH_NS
 * after the first (a call logs two or three lines, in different turns of the loop: one write per
 * turn would be two or three per call), before a log is read, and at the stop. */
#define LOG_FLUSH_NS (10ull * 1000000ull)

static void
flush_now(struct faas_server *s, struct faas_timer *t)
{
    faas_logs_flush(s);
}

void
faas_logs_flush(struct faas_server *s)
{
    if (!s->timers_gone)
        faas_timer_cancel(s, &s->t_logs);
    while (s->dirty_stats) {
        struct faas_stats *st = s->dirty_stats;
        s->dirty_stats = st->next_dirty;
        st->dirty = false;
        log_flush(s, st);
    }
}

/* A log line's time, "2026-01-02T03:04:05.678Z" (24 bytes): the seconds formatted once per
 * second per thread (two lines a call; strftime's cost showed in profiles). */
static void
log_stamp(char out[32])
{
    static __thread time_t sec = -1;
    static __thread char text[24];
    static __thread size_t len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        len = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
        sec = ts.tv_sec;
    }
    memcpy(out, text, len);
    long ms = ts.tv_nsec / 1000000;
    out[len] = '.';
    out[len + 1] = (char)('0' + ms / 100);
    out[len + 2] = (char)('0' + ms / 10 % 10);
    out[len + 3] = (char)('0' + ms % 10);
    out[len + 4] = 'Z';
    out[len + 5] = '\0';
}

static void
add_field(struct faas_buf *b, const char *text)
{
    faas_buf_add(b, text, strlen(text));
    faas_buf_add(b, " ", 1);
}

void
faas_log_line(struct faas_server *s, const char *fn, const char *instance, const char *rid,
              const char *stream, const char *text, size_t len)
{
    struct faas_stats *st = stats_of(s, fn);
    char when[32];
    log_stamp(when);
    add_field(&st->log, when);
    add_field(&st->log, instance);
    add_field(&st->log, rid);
    add_field(&st->log, stream);
    if (len && text[len - 1] == '\r')
        len--;
    faas_buf_add(&st->log, text, len);
    faas_buf_add(&st->log, "\n", 1);
    if (faas_buf_pending(&st->log) > (64u << 10) || s->timers_gone) {
        log_flush(s, st);
    } else if (!st->dirty) {
        st->dirty = true;
        st->next_dirty = s->dirty_stats;
        s->dirty_stats = st;
        if (!s->t_logs.slot) {
            s->t_logs.fn = flush_now;
            faas_main_timer_set(s, &s->t_logs, now_ns() + LOG_FLUSH_NS);
        }
    }
}

char *
faas_log_path(struct faas_server *s, const char *fn)
{
    faas_logs_flush(s); /* what this turn logged is in the file */
    return xasprintf("%s/%s.log", s->log_dir, fn);
}

char *
faas_log_read(const char *path, uint64_t since, size_t max, size_t *len, uint64_t *next)
{
    cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    *len = 0;
    *next = 0;
    if (fd < 0 || fstat(fd, &sb) < 0)
        return xstrdup("");
    if (since > (uint64_t)sb.st_size) /* rotated since: from the start of the new file */
        since = 0;
    size_t want = (uint64_t)sb.st_size - since < max ? (size_t)((uint64_t)sb.st_size - since) : max;
    char *buf = xmalloc(want + 1);
    ssize_t n = pread(fd, buf, want, (off_t)since);
    *len = n > 0 ? (size_t)n : 0;
    buf[*len] = 0;
    *next = since + *len;
    return buf;
}

void
faas_log_remove(struct faas_server *s, const char *fn)
{
    faas_logs_flush(s);
    struct faas_stats *st = stats_of(s, fn);
    cleanup_free char *path = xasprintf("%s/%s.log", s->log_dir, fn);
    cleanup_free char *old = xasprintf("%s.1", path);
    if (st->log_fd >= 0)
        close(st->log_fd);
    st->log_fd = -1;
    unlink(path);
    unlink(old);
}

static void
observe_in(struct histogram *h, const double *bounds, double v)
{
    size_t i = 0;
    while (i < N_BUCKETS && v > bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->n++;
}

static void
observe(struct histogram *h, double v)
{
    observe_in(h, buckets, v);
}

void
faas_metrics_call(struct faas_server *s, const struct faas_call *c, double secs)
{
    struct faas_stats *st = stats_of(s, c->fn->name);
    size_t i = 0;
    while (i < st->n_statuses && st->statuses[i].code != c->status)
        i++;
    if (i == st->n_statuses && i < MAX_STATUSES)
        st->statuses[st->n_statuses++].code = c->status;
    if (i < MAX_STATUSES)
        st->statuses[i].n++;
    observe(&st->duration, secs);
    faas_status_record(s, c, secs);
    typeof(st->otel[0]) *o = &st->otel[c->trigger];
    o->invocations++;
    o->coldstarts += c->cold;
    o->timeouts += c->status == 504;
    o->errors += c->status >= 500 || c->function_error;
    observe(&o->duration, secs);
    if (c->inst)
        observe_in(&o->mem, mem_buckets, (double)faas_instance_max_memory(c->inst));
}

void
faas_metrics_cold_start(struct faas_server *s, const char *fn, double init_secs)
{
    struct faas_stats *st = stats_of(s, fn);
    st->cold_starts++;
    observe(&st->init, init_secs);
}

void
faas_metrics_thaw(struct faas_server *s, const char *fn, double secs)
{
    observe(&stats_of(s, fn)->thaw, secs);
}

/* labels: the series' labels without braces ("function=\"f\""). */
static void
histogram_series(struct faas_buf *b, const char *metric, const char *labels, const double *bounds,
                 const struct histogram *h)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += h->counts[i];
        faas_buf_addf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", metric, labels, bounds[i],
                      (unsigned long long)cum);
    }
    cum += h->counts[N_BUCKETS];
    faas_buf_addf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", metric, labels, (unsigned long long)cum);
    faas_buf_addf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", metric, labels, h->sum, metric, labels,
                  (unsigned long long)h->n);
}

static void
histogram_text(struct faas_buf *b, const char *metric, const char *fn, const struct histogram *h)
{
    cleanup_free char *labels = xasprintf("function=\"%s\"", fn);
    histogram_series(b, metric, labels, buckets, h);
}

/* OpenTelemetry's FaaS semantic conventions (faas.invocations, ...), in Prometheus naming:
 * dots become underscores, counters end in _total, units are suffixes. */
static void
otel_text(struct faas_server *s, struct faas_buf *b)
{
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"faas_invocations_total", "faas.invocations: calls",
         offsetof(struct faas_stats, otel[0].invocations)},
        {"faas_coldstarts_total", "faas.coldstarts: calls that waited for a new instance",
         offsetof(struct faas_stats, otel[0].coldstarts)},
        {"faas_errors_total", "faas.errors: calls that failed",
         offsetof(struct faas_stats, otel[0].errors)},
        {"faas_timeouts_total", "faas.timeouts: calls past their timeout",
         offsetof(struct faas_stats, otel[0].timeouts)},
    };
    size_t stride = sizeof(((struct faas_stats *)0)->otel[0]);
    for (size_t k = 0; k < ARRAY_SIZE(counters); k++) {
        faas_buf_addf(b, "# HELP %s %s.\n# TYPE %s counter\n", counters[k].name, counters[k].help,
                      counters[k].name);
        for (struct faas_stats *st = s->stats; st; st = st->next)
            for (int t = 0; t < FAAS_N_TRIGGERS; t++)
                faas_buf_addf(b, "%s{faas_name=\"%s\",faas_trigger=\"%s\"} %llu\n",
                              counters[k].name, st->name, trigger_names[t],
                              (unsigned long long)*(const uint64_t *)((const char *)st +
                                                                      counters[k].offset +
                                                                      (size_t)t * stride));
    }
    faas_buf_addf(b, "# HELP faas_invoke_duration_seconds faas.invoke_duration.\n"
                     "# TYPE faas_invoke_duration_seconds histogram\n");
    for (struct faas_stats *st = s->stats; st; st = st->next)
        for (int t = 0; t < FAAS_N_TRIGGERS; t++) {
            cleanup_free char *l =
                xasprintf("faas_name=\"%s\",faas_trigger=\"%s\"", st->name, trigger_names[t]);
            histogram_series(b, "faas_invoke_duration_seconds", l, buckets, &st->otel[t].duration);
        }
    faas_buf_addf(b, "# HELP faas_init_duration_seconds faas.init_duration.\n"
                     "# TYPE faas_init_duration_seconds histogram\n");
    for (struct faas_stats *st = s->stats; st; st = st->next) {
        cleanup_free char *l = xasprintf("faas_name=\"%s\"", st->name);
        histogram_series(b, "faas_init_duration_seconds", l, buckets, &st->init);
    }
    faas_buf_addf(b, "# HELP faas_mem_usage_bytes faas.mem_usage: peak memory of the instance "
                     "at the end of each call.\n# TYPE faas_mem_usage_bytes histogram\n");
    for (struct faas_stats *st = s->stats; st; st = st->next)
        for (int t = 0; t < FAAS_N_TRIGGERS; t++) {
            cleanup_free char *l =
                xasprintf("faas_name=\"%s\",faas_trigger=\"%s\"", st->name, trigger_names[t]);
            histogram_series(b, "faas_mem_usage_bytes", l, mem_buckets, &st->otel[t].mem);
        }
}

static void
gauges(struct faas_server *s, struct faas_buf *b)
{
    faas_buf_addf(b, "# HELP husk_instances Instances of each function by state.\n"
                     "# TYPE husk_instances gauge\n");
    for (size_t i = 0; i < s->n_fns; i++) {
        size_t n[3];
        faas_pool_counts(s->fns[i], &n[0], &n[1], &n[2]);
        for (struct faas_function *f = s->retired; f; f = f->next_retired)
            if (strcmp(f->name, s->fns[i]->name) == 0) {
                size_t m[3];
                faas_pool_counts(f, &m[0], &m[1], &m[2]);
                for (int k = 0; k < 3; k++)
                    n[k] += m[k];
            }
        static const char *const states[] = {"starting", "idle", "busy"};
        for (int k = 0; k < 3; k++)
            faas_buf_addf(b, "husk_instances{function=\"%s\",state=\"%s\"} %zu\n", s->fns[i]->name,
                          states[k], n[k]);
    }
    faas_buf_addf(b, "# HELP husk_instances_frozen Idle instances frozen (--freeze).\n"
                     "# TYPE husk_instances_frozen gauge\n");
    for (size_t i = 0; i < s->n_fns; i++) {
        size_t n = s->fns[i]->n_frozen;
        for (struct faas_function *f = s->retired; f; f = f->next_retired)
            if (strcmp(f->name, s->fns[i]->name) == 0)
                n += f->n_frozen;
        faas_buf_addf(b, "husk_instances_frozen{function=\"%s\"} %zu\n", s->fns[i]->name, n);
    }
    faas_buf_addf(b, "# HELP husk_queue_depth Calls waiting for an instance.\n"
                     "# TYPE husk_queue_depth gauge\n");
    for (size_t i = 0; i < s->n_fns; i++)
        faas_buf_addf(b, "husk_queue_depth{function=\"%s\"} %zu\n", s->fns[i]->name,
                      s->fns[i]->n_queued);
}

char *
faas_metrics_text(struct faas_server *s, size_t *len)
{
    struct faas_buf b = {0};
    faas_buf_addf(&b, "# HELP husk_invocations_total Invocations by function and HTTP status.\n"
                      "# TYPE husk_invocations_total counter\n");
    for (struct faas_stats *st = s->stats; st; st = st->next)
        for (size_t i = 0; i < st->n_statuses; i++)
            faas_buf_addf(&b, "husk_invocations_total{function=\"%s\",status=\"%d\"} %llu\n",
                          st->name, st->statuses[i].code, (unsigned long long)st->statuses[i].n);
    faas_buf_addf(&b, "# HELP husk_cold_starts_total Instances started.\n"
                      "# TYPE husk_cold_starts_total counter\n");
    for (struct faas_stats *st = s->stats; st; st = st->next)
        faas_buf_addf(&b, "husk_cold_starts_total{function=\"%s\"} %llu\n", st->name,
                      (unsigned long long)st->cold_starts);
    faas_buf_addf(&b, "# HELP husk_invocation_duration_seconds Time from request to response.\n"
                      "# TYPE husk_invocation_duration_seconds histogram\n");
    for (struct faas_stats *st = s->stats; st; st = st->next)
        histogram_text(&b, "husk_invocation_duration_seconds", st->name, &st->duration);
    faas_buf_addf(&b, "# HELP husk_init_duration_seconds Time from spawn to ready.\n"
                      "# TYPE husk_init_duration_seconds histogram\n");
    for (struct faas_stats *st = s->stats; st; st = st->next)
        histogram_text(&b, "husk_init_duration_seconds", st->name, &st->init);
    faas_buf_addf(&b, "# HELP husk_thaw_duration_seconds Time to thaw a frozen instance for a "
                      "call.\n# TYPE husk_thaw_duration_seconds histogram\n");
    for (struct faas_stats *st = s->stats; st; st = st->next)
        histogram_text(&b, "husk_thaw_duration_seconds", st->name, &st->thaw);
    gauges(s, &b);
    faas_publish_metrics(s, &b);
    otel_text(s, &b);
    *len = b.len;
    faas_buf_add(&b, "", 1);
    return b.p;
}

/* Cold starts of every function by init duration: counts[i] for bucket i (seconds bounds),
 * counts[n_bounds] past the last. */
void
faas_metrics_init_counts(struct faas_server *s, uint64_t *counts, size_t n, const double **bounds,
                         size_t *n_bounds)
{
    *bounds = buckets;
    *n_bounds = N_BUCKETS < n ? N_BUCKETS : n - 1;
    for (struct faas_stats *st = s->stats; st; st = st->next)
        for (size_t i = 0; i <= *n_bounds; i++)
            counts[i] += st->init.counts[i];
}

static void
no_free(void *p)
{
}

void
faas_metrics_free(struct faas_server *s)
{
    faas_logs_flush(s);
    tdestroy(s->stats_index, no_free);
    s->stats_index = NULL;
    while (s->stats) {
        struct faas_stats *st = s->stats;
        s->stats = st->next;
        if (st->log_fd >= 0)
            close(st->log_fd);
        faas_buf_free(&st->log);
        free(st->name);
        free(st);
    }
}
