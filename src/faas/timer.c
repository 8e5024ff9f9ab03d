/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Timers: a binary min-heap of deadlines (as redis's and nginx's loops keep theirs ordered),
 * so the loop learns the next deadline in O(1) and never scans connections or calls to find
 * what expired. A timer is embedded in its object; arming it again moves it. Each loop has its
 * own heap: a timer is armed by the loop that owns its object (faas_main_timer_set for the main
 * loop's, from a front loop).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/random.h>

#include "faas-internal.h"
#include "util.h"

static void
place(struct faas_loop *lp, size_t i, struct faas_timer *t)
{
    lp->timers[i] = t;
    t->slot = i + 1;
}

static void
sift_up(struct faas_loop *lp, size_t i)
{
    struct faas_timer *t = lp->timers[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (lp->timers[up]->when <= t->when)
            break;
        place(lp, i, lp->timers[up]);
        i = up;
    }
    place(lp, i, t);
}

static void
sift_down(struct faas_loop *lp, size_t i)
{
    struct faas_timer *t = lp->timers[i];
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        uint64_t when = t->when;
        if (l < lp->n_timers && lp->timers[l]->when < when)
            best = l, when = lp->timers[l]->when;
        if (l + 1 < lp->n_timers && lp->timers[l + 1]->when < when)
            best = l + 1;
        if (best == i)
            break;
        place(lp, i, lp->timers[best]);
        i = best;
    }
    place(lp, i, t);
}

/* On the heap of the loop this thread runs (the timer's owner's). */
void
faas_timer_cancel(struct faas_server *s, struct faas_timer *t)
{
    struct faas_loop *lp = faas_loop_cur();
    (void)s;
    if (t->slot == 0)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct faas_timer *last = lp->timers[--lp->n_timers];
    if (i == lp->n_timers)
        return;
    place(lp, i, last);
    sift_up(lp, i);
    sift_down(lp, last->slot - 1);
}

void
faas_timer_set(struct faas_server *s, struct faas_timer *t, uint64_t when)
{
    struct faas_loop *lp = faas_loop_cur();
    faas_timer_cancel(s, t);
    if (lp->n_timers == lp->cap_timers) {
        lp->cap_timers = lp->cap_timers ? 2 * lp->cap_timers : 64;
        lp->timers = xrealloc(lp->timers, lp->cap_timers * sizeof(*lp->timers));
    }
    t->when = when;
    place(lp, lp->n_timers++, t);
    sift_up(lp, lp->n_timers - 1);
}

int
faas_loop_timers(struct faas_loop *lp)
{
    uint64_t now = now_ns();
    while (lp->n_timers && lp->timers[0]->when <= now) {
        struct faas_timer *t = lp->timers[0];
        faas_timer_cancel(lp->s, t);
        t->fn(lp->s, t); /* may arm timers, this one too */
    }
    if (lp->n_timers == 0)
        return -1;
    uint64_t ms = (lp->timers[0]->when - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

/* Request ids and trace ids: unique, not secret (they are echoed to anyone who sends one),
 * so xoshiro256** seeded once from getrandom, not a syscall per request. */
static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t
faas_random(struct faas_server *s)
{
    uint64_t *r = faas_loop_cur()->rng; /* each loop its own */
    (void)s;
    if ((r[0] | r[1] | r[2] | r[3]) == 0 && getrandom(r, 4 * sizeof(uint64_t), 0) < 0)
        r[0] = now_ns() | 1;
    uint64_t out = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = rotl(r[3], 45);
    return out;
}

void
faas_random_hex(struct faas_server *s, char *out, size_t bytes)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t v = faas_random(s);
        for (size_t k = 0; k < 8 && i + k < bytes; k++, v >>= 8) {
            out[2 * (i + k)] = digits[(v >> 4) & 15];
            out[2 * (i + k) + 1] = digits[v & 15];
        }
    }
    out[2 * bytes] = '\0';
}
