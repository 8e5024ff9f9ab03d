/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pool of a function version: calls go to a ready instance with room (below the
 * per-instance concurrency), else wait in a bounded queue (429 past it) while instances are
 * started, up to `max`. `min` instances are kept; idle ones beyond that are stopped after
 * `idle` seconds, down to zero. A retired version (redeployed or removed) takes no new calls;
 * its instances finish theirs and go. Every deadline is a timer: nothing here scans.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "util.h"

#define MIN_BACKOFF_NS (100ull * 1000000ull) /* a failing start: 100 ms, doubling ... */
#define MAX_BACKOFF_NS (30ull * NS_PER_SEC)  /* ... up to 30 s */

void
faas_pool_counts(const struct faas_function *f, size_t *starting, size_t *idle, size_t *busy)
{
    *starting = *idle = *busy = 0;
    for (struct faas_instance *in = f->instances; in; in = in->next) {
        if (in->state != INST_READY)
            (*starting)++;
        else if (in->in_flight)
            (*busy)++;
        else
            (*idle)++;
    }
}

/* The ready instance with the fewest calls, if one has room. */
struct faas_instance *
faas_pool_pick(struct faas_function *f, bool thawed)
{
    struct faas_instance *best = NULL;
    for (struct faas_instance *in = f->instances; in; in = in->next)
        if (in->state == INST_READY && !in->condemned && in->in_flight < (size_t)f->concurrency &&
            !(thawed && in->frozen) && (best == NULL || in->in_flight < best->in_flight)) {
            best = in;
            if (in->in_flight == 0)
                break;
        }
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

/* A queued call went away (its deadline, or its version retired). */
void
faas_pool_unqueue(struct faas_call *c)
{
    if (c->queued)
        dequeue(c->fn, c);
}

static void
dispatch(struct faas_function *f)
{
    struct faas_instance *in;
    while (f->queue_head && (in = faas_pool_pick(f, false))) {
        struct faas_call *c = f->queue_head;
        dequeue(f, c);
        faas_call_start(c, in);
    }
}

static void
fail_queue(struct faas_function *f, int status, const char *msg, bool exited)
{
    while (f->queue_head) {
        struct faas_call *c = f->queue_head;
        dequeue(f, c);
        c->runtime_exited = exited;
        faas_call_fail(c, status, msg, NULL);
    }
}

/* Start instances while the queue is longer than what starting instances will take. */
static void
scale(struct faas_server *s, struct faas_function *f)
{
    while (f->n_queued > f->n_starting * (size_t)f->concurrency &&
           f->n_instances < (size_t)f->max && !s->stopping && !f->retired)
        faas_instance_spawn(s, f);
}

static void
keep_min(struct faas_server *s, struct faas_function *f)
{
    if (f->retired || s->stopping || f->t_min.slot)
        return;
    while (f->n_instances < (size_t)f->min)
        faas_instance_spawn(s, f);
}

static void
min_retry(struct faas_server *s, struct faas_timer *t)
{
    keep_min(s, container_of(t, struct faas_function, t_min));
}

void
faas_pool_submit(struct faas_server *s, struct faas_call *c)
{
    struct faas_function *f = c->fn;
    struct faas_instance *in = f->queue_head ? NULL : faas_pool_pick(f, false);
    if (in) {
        faas_call_start(c, in);
        return;
    }
    /* The queue limit counts calls beyond those the starting instances will take. */
    if (f->n_queued >= (size_t)f->queue + f->n_starting * (size_t)f->concurrency) {
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

void
faas_pool_maybe_free(struct faas_server *s, struct faas_function *f)
{
    if (f->retired && f->n_instances == 0)
        faas_fork_template_stop(s, f); /* its last instance went */
    if (!f->retired || f->n_instances || f->n_spawning || f->n_dying || f->n_tmpl || f->n_lent)
        return;
    for (struct faas_function **p = &s->retired; *p; p = &(*p)->next_retired)
        if (*p == f) {
            *p = f->next_retired;
            faas_timer_cancel(s, &f->t_min);
            faas_function_free(f);
            return;
        }
}

void
faas_pool_spawned(struct faas_server *s, struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    if (in->spawn_r < 0) {
        cleanup_free char *msg = husk_error_string(in->spawn_err);
        faas_server_log(s, "error", "function '%s' could not start: %s", f->name, msg);
        faas_pool_instance_gone(s, in, msg);
        return;
    }
    if (f->retired) {
        faas_instance_destroy(s, in); /* its calls went to the version that replaced it */
        return;
    }
    faas_timer_set(s, &in->t_init, in->spawned_ns + (uint64_t)f->init_timeout * NS_PER_SEC);
    f->contract->await_ready(s, in);
}

void
faas_pool_ready(struct faas_server *s, struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    f->start_failures = 0;
    if (f->retired && in->in_flight == 0) {
        faas_instance_destroy(s, in);
        return;
    }
    dispatch(f);
}

void
faas_pool_call_ended(struct faas_server *s, struct faas_call *c)
{
    struct faas_instance *in = c->inst;
    in->in_flight--;
    in->served++;
    in->last_end_ns = now_ns();
    faas_pool_settle(s, in);
}

void
faas_pool_settle(struct faas_server *s, struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    if (in->in_flight == 0)
        faas_instance_busy(s, in, false);
    if (f->retired) {
        if (in->in_flight == 0)
            faas_instance_destroy(s, in);
        return;
    }
    dispatch(f);
    faas_instance_idle_check(s, in);
}

void
faas_pool_instance_gone(struct faas_server *s, struct faas_instance *in, const char *why)
{
    struct faas_function *f = in->fn;
    bool never_ready = in->state != INST_READY, exited = in->program_exited;
    faas_instance_destroy(s, in);
    if (f->retired)
        return;
    if (never_ready) {
        /* A program that dies at start is not restarted in a tight loop: `min` instances come
         * back after 100 ms, doubling up to 30 s, until one gets ready again. */
        uint64_t backoff = MIN_BACKOFF_NS << (f->start_failures < 9 ? f->start_failures : 9);
        f->start_failures++;
        faas_timer_set(s, &f->t_min,
                       now_ns() + (backoff < MAX_BACKOFF_NS ? backoff : MAX_BACKOFF_NS));
        if (f->n_instances == 0) {
            cleanup_free char *msg = xasprintf("function '%s' could not start: %s", f->name, why);
            fail_queue(f, 502, msg, exited);
            return;
        }
    }
    scale(s, f);
    keep_min(s, f);
}

/* Build the process environment of the version's instances once. */
static void
instance_env(struct faas_function *f)
{
    struct sbx_process *p = &f->cfg->sbx->process;
    size_t n = strv_len(p->env), k = 0;
    char **env = xcalloc(n + strv_len(f->env) + f->contract->env_size + 1, sizeof(char *));
    for (char **e = p->env; e && *e; e++)
        env[k++] = xstrdup(*e);
    for (char **e = f->env; e && *e; e++)
        env[k++] = xstrdup(*e);
    if (f->contract->env)
        f->contract->env(f, &env, &k);
    strv_freep(&p->env);
    p->env = env;
}

void
faas_pool_activate(struct faas_server *s, struct faas_function *f)
{
    f->t_min.fn = min_retry;
    instance_env(f);
    faas_publish_activate(s, f);
    if (f->fork_instances) /* its zygote loads now: the first call's start is a fork */
        faas_fork_template(s, f);
    keep_min(s, f);
}

void
faas_pool_retire(struct faas_server *s, struct faas_function *f)
{
    f->retired = true;
    faas_publish_retire(s, f);
    faas_timer_cancel(s, &f->t_min);
    fail_queue(f, 503, "the function was removed or replaced while the call waited", false);
    for (struct faas_instance *in = f->instances, *next; in; in = next) {
        next = in->next;
        if (in->in_flight == 0)
            faas_instance_destroy(s, in);
    }
    f->next_retired = s->retired;
    s->retired = f;
    faas_pool_maybe_free(s, f);
}
