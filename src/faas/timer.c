/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Timers: a binary min-heap of deadlines (as redis's and nginx's loops keep theirs ordered),
 * so the loop learns the next deadline in O(1) and never scans connections or calls to find
 * what expired. A timer is embedded in its object; arming it again moves it.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "faas-internal.h"
#include "util.h"

static void
place(struct faas_server *s, size_t i, struct faas_timer *t)
{
    s->timers[i] = t;
    t->slot = i + 1;
}

static void
sift_up(struct faas_server *s, size_t i)
{
    struct faas_timer *t = s->timers[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (s->timers[up]->when <= t->when)
            break;
        place(s, i, s->timers[up]);
        i = up;
    }
    place(s, i, t);
}

static void
sift_down(struct faas_server *s, size_t i)
{
    struct faas_timer *t = s->timers[i];
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        uint64_t when = t->when;
        if (l < s->n_timers && s->timers[l]->when < when)
            best = l, when = s->timers[l]->when;
        if (l + 1 < s->n_timers && s->timers[l + 1]->when < when)
            best = l + 1;
        if (best == i)
            break;
        place(s, i, s->timers[best]);
        i = best;
    }
    place(s, i, t);
}

void
faas_timer_cancel(struct faas_server *s, struct faas_timer *t)
{
    if (t->slot == 0)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct faas_timer *last = s->timers[--s->n_timers];
    if (i == s->n_timers)
        return;
    place(s, i, last);
    sift_up(s, i);
    sift_down(s, last->slot - 1);
}

void
faas_timer_set(struct faas_server *s, struct faas_timer *t, uint64_t when)
{
    faas_timer_cancel(s, t);
    if (s->n_timers == s->cap_timers) {
        s->cap_timers = s->cap_timers ? 2 * s->cap_timers : 64;
        s->timers = xrealloc(s->timers, s->cap_timers * sizeof(*s->timers));
    }
    t->when = when;
    place(s, s->n_timers++, t);
    sift_up(s, s->n_timers - 1);
}

int
faas_timers_run(struct faas_server *s)
{
    uint64_t now = now_ns();
    while (s->n_timers && s->timers[0]->when <= now) {
        struct faas_timer *t = s->timers[0];
        faas_timer_cancel(s, t);
        t->fn(s, t); /* may arm timers, this one too */
    }
    if (s->n_timers == 0)
        return -1;
    uint64_t ms = (s->timers[0]->when - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}
