/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pool of a function version: calls go to a ready instance with room (below the
 * per-instance concurrency), else wait in a bounded queue (429 past it) while instances are
 * started, up to `max`. `min` instances are kept; idle ones beyond that are stopped after
 * `idle` seconds, down to zero. A retired version (redeployed or removed) takes no new calls;
 * its instances finish theirs and go.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "util.h"

void
faas_pool_counts(const struct faas_function *f, size_t *starting, size_t *idle, size_t *busy)
{
    *starting = *idle = *busy = 0;
    for (struct faas_instance *in = f->instances; in; in = in->next) {
        if (in->state == INST_STARTING)
            (*starting)++;
        else if (in->in_flight)
            (*busy)++;
        else
            (*idle)++;
    }
}

/* The ready instance with the fewest calls, if one has room. */
static struct faas_instance *
pick(struct faas_function *f)
{
    struct faas_instance *best = NULL;
    for (struct faas_instance *in = f->instances; in; in = in->next)
        if (in->state == INST_READY && in->in_flight < (size_t)f->concurrency &&
            (best == NULL || in->in_flight < best->in_flight))
            best = in;
    return best;
}

static void
enqueue(struct faas_function *f, struct faas_call *c)
{
    c->queued = true;
    c->next = NULL;
    c->prev = f->queue_tail;
    if (f->queue_tail)
        f->queue_tail->next = c;
    else
        f->queue_head = c;
    f->queue_tail = c;
    f->n_queued++;
}

static void
dequeue(struct faas_function *f, struct faas_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        f->queue_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        f->queue_tail = c->prev;
    c->next = c->prev = NULL;
    c->queued = false;
    f->n_queued--;
}

static void
dispatch(struct faas_function *f)
{
    struct faas_instance *in;
    while (f->queue_head && (in = pick(f))) {
        struct faas_call *c = f->queue_head;
        dequeue(f, c);
        faas_call_start(c, in);
    }
}

static void
fail_queue(struct faas_function *f, int status, const char *msg)
{
    while (f->queue_head) {
        struct faas_call *c = f->queue_head;
        dequeue(f, c);
        faas_call_fail(c, status, msg, NULL);
    }
}

/* 0, or -1 when the instance could not be made (queued calls were failed). */
static int
spawn_one(struct faas_server *s, struct faas_function *f)
{
    struct faas_instance *in = NULL;
    struct husk_error *err = NULL;
    if (faas_instance_spawn(s, f, &in, &err) == 0)
        return 0;
    cleanup_free char *msg = husk_error_string(err);
    cleanup_free char *why = xasprintf("function '%s' could not start: %s", f->name, msg);
    husk_error_free(err);
    faas_server_log(s, "error", "%s", why);
    if (f->n_instances == 0)
        fail_queue(f, 502, why);
    return -1;
}

/* Start instances while the queue is longer than what starting instances will take. */
static void
scale(struct faas_server *s, struct faas_function *f)
{
    while (f->n_queued > f->n_starting * (size_t)f->concurrency &&
           f->n_instances < (size_t)f->max && !s->stopping) {
        if (spawn_one(s, f) < 0)
            break;
        dispatch(f); /* a stdio instance is ready at once */
    }
}

void
faas_pool_submit(struct faas_server *s, struct faas_call *c)
{
    struct faas_function *f = c->fn;
    struct faas_instance *in = f->queue_head ? NULL : pick(f);
    if (in) {
        faas_call_start(c, in);
        return;
    }
    if (f->n_queued >= (size_t)f->queue) {
        cleanup_free char *msg =
            xasprintf("function '%s' is at capacity: %lld instances of %lld calls each, %zu "
                      "waiting (its queue limit)",
                      f->name, (long long)f->max, (long long)f->concurrency, f->n_queued);
        faas_call_fail(c, 429, msg, "Retry-After: 1\r\n");
        return;
    }
    enqueue(f, c);
    scale(s, f);
}

static void
maybe_free_retired(struct faas_server *s, struct faas_function *f)
{
    if (!f->retired || f->n_instances)
        return;
    for (struct faas_function **p = &s->retired; *p; p = &(*p)->next_retired)
        if (*p == f) {
            *p = f->next_retired;
            break;
        }
    faas_function_free(f);
}

void
faas_pool_ready(struct faas_server *s, struct faas_instance *in)
{
    in->fn->start_failures = 0;
    dispatch(in->fn);
}

void
faas_pool_call_ended(struct faas_server *s, struct faas_call *c)
{
    struct faas_instance *in = c->inst;
    struct faas_function *f = in->fn;
    in->in_flight--;
    in->served++;
    if (in->in_flight == 0)
        in->idle_since = now_ns();
    if (f->retired) {
        if (in->in_flight == 0) {
            faas_instance_destroy(s, in);
            maybe_free_retired(s, f);
        }
        return;
    }
    dispatch(f);
}

void
faas_pool_instance_gone(struct faas_server *s, struct faas_instance *in, const char *why)
{
    struct faas_function *f = in->fn;
    bool never_ready = in->state == INST_STARTING;
    faas_instance_destroy(s, in);
    if (f->retired) {
        maybe_free_retired(s, f);
        return;
    }
    if (never_ready) {
        /* A program that dies at start is not restarted in a tight loop: 100 ms, doubling up
         * to 30 s, until an instance gets ready again. */
        uint64_t backoff = (100ull * 1000000ull) << (f->start_failures < 9 ? f->start_failures : 9);
        f->start_failures++;
        f->retry_at = now_ns() + (backoff < 30 * NS_PER_SEC ? backoff : 30 * NS_PER_SEC);
    }
    if (never_ready && f->n_instances == 0) {
        cleanup_free char *msg = xasprintf("function '%s' could not start: %s", f->name, why);
        fail_queue(f, 502, msg);
        return;
    }
    scale(s, f);
}

/* Build the process environment of the version's instances once. */
static void
instance_env(struct faas_function *f)
{
    struct sbx_process *p = &f->cfg->sbx->process;
    size_t n = strv_len(p->env), k = 0;
    char **env = xcalloc(n + strv_len(f->env) + 8, sizeof(char *));
    for (char **e = p->env; e && *e; e++)
        env[k++] = xstrdup(*e);
    for (char **e = f->env; e && *e; e++)
        env[k++] = xstrdup(*e);
    if (f->contract == FAAS_HTTP) {
        env[k++] = xasprintf("PORT=%lld", (long long)f->port);
        env[k++] = xasprintf("K_SERVICE=%s", f->name);
        env[k++] = xasprintf("K_CONFIGURATION=%s", f->name);
        env[k++] = xasprintf("K_REVISION=%s-v%lld", f->name, (long long)f->version);
    }
    strv_freep(&p->env);
    p->env = env;
}

void
faas_pool_activate(struct faas_server *s, struct faas_function *f)
{
    instance_env(f);
    while (f->n_instances < (size_t)f->min)
        if (spawn_one(s, f) < 0)
            break;
}

void
faas_pool_retire(struct faas_server *s, struct faas_function *f)
{
    f->retired = true;
    fail_queue(f, 503, "the function was removed or replaced while the call waited");
    for (struct faas_instance *in = f->instances, *next; in; in = next) {
        next = in->next;
        if (in->in_flight == 0)
            faas_instance_destroy(s, in);
    }
    f->next_retired = s->retired;
    s->retired = f;
    maybe_free_retired(s, f);
}

/* One expired thing handled per scan: handling it may change the lists. true: one was. */
static bool
expire_one(struct faas_server *s, struct faas_function *f, uint64_t now, uint64_t *next)
{
    for (struct faas_call *c = f->queue_head; c; c = c->next) {
        if (now >= c->deadline) {
            dequeue(f, c);
            cleanup_free char *msg = xasprintf(
                "function '%s' timed out: it exceeded its timeout of %lld seconds waiting for an "
                "instance",
                f->name, (long long)f->timeout);
            faas_call_fail(c, 504, msg, NULL);
            return true;
        }
        *next = *next < c->deadline ? *next : c->deadline;
    }
    for (struct faas_instance *in = f->instances; in; in = in->next) {
        for (struct faas_call *c = in->calls; c; c = c->next) {
            if (now >= c->deadline) {
                cleanup_free char *msg =
                    xasprintf("function '%s' timed out: it exceeded its timeout of %lld seconds",
                              f->name, (long long)f->timeout);
                faas_call_abort(c, 504, msg); /* the whole instance goes: nothing of it lingers */
                faas_pool_instance_gone(s, in, "a call timed out");
                return true;
            }
            *next = *next < c->deadline ? *next : c->deadline;
        }
        if (in->state == INST_STARTING) {
            uint64_t limit = in->spawned_ns + (uint64_t)f->init_timeout * NS_PER_SEC;
            if (now >= limit) {
                cleanup_free char *why = xasprintf(
                    "its server did not accept connections on port %lld within %lld seconds",
                    (long long)f->port, (long long)f->init_timeout);
                faas_server_log(s, "error", "instance %s: %s", in->id, why);
                faas_pool_instance_gone(s, in, why);
                return true;
            }
            faas_instance_probe(s, in);
            *next = now; /* probe again soon */
        } else if (in->in_flight == 0 && !f->retired && f->n_instances > (size_t)f->min) {
            uint64_t reap = in->idle_since + (uint64_t)f->idle * NS_PER_SEC;
            if (now >= reap) {
                faas_server_log(s, "debug", "instance %s idle: stopped", in->id);
                faas_instance_destroy(s, in);
                return true;
            }
            *next = *next < reap ? *next : reap;
        }
    }
    if (!f->retired && !s->stopping && f->n_instances < (size_t)f->min && now >= f->retry_at &&
        spawn_one(s, f) < 0)
        f->retry_at = now + NS_PER_SEC;
    return false;
}

int
faas_pool_tick(struct faas_server *s)
{
    uint64_t now = now_ns(), next = now + NS_PER_SEC;
    for (size_t i = 0; i < s->n_fns; i++)
        while (expire_one(s, s->fns[i], now, &next))
            ;
    for (struct faas_function *f = s->retired, *n; f; f = n) {
        n = f->next_retired;
        while (s->retired && expire_one(s, f, now, &next)) {
            bool alive = false;
            for (struct faas_function *g = s->retired; g; g = g->next_retired)
                alive |= g == f;
            if (!alive)
                break;
        }
    }
    if (next <= now)
        return 1;
    return (int)((next - now + 999999) / 1000000);
}
