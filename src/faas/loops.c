/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loops: the main loop, and the front loops of `husk serve --loops N` (nginx's workers, as
 * threads). Each front loop accepts on a socket of its own on the front door's address
 * (SO_REUSEPORT; a socket-activated one is shared, EPOLLEXCLUSIVE: one loop is woken per
 * connection), reads its connections' requests and serves the warm calls of http functions
 * itself: an instance leased under the daemon's lock, a kept-alive connection to its server
 * from the loop's own list, the response relayed by the same code as the main loop's. Anything
 * else (admin, other contracts, a cold start, a queue, versions, streams, upgrades) goes to the
 * main loop with its connection, which answers it there and, once the connection is idle,
 * sends it back (faas_conn_go_home).
 *
 * What the main loop owns stays the main loop's: a front loop takes the lock to lease an
 * instance, to log and count a call, and to connect to a server; what would arm a main loop's
 * timer (an instance gone idle, a call timed out, a log to flush) is a message to it. An
 * instance and its version are not freed while a front loop's call or message holds them
 * (faas_instance.lent, faas_function.n_lent).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

struct faas_msg {
    void (*fn)(struct faas_server *s, struct faas_msg *m); /* on the loop it went to; frees m */
    struct faas_msg *next;
};

static __thread struct faas_loop *cur;

struct faas_loop *
faas_loop_cur(void)
{
    return cur;
}

void
faas_loop_set_cur(struct faas_loop *l)
{
    cur = l;
}

bool
faas_on_front(void)
{
    return cur && cur->index > 0;
}

void
faas_lock(struct faas_server *s)
{
    if (faas_on_front())
        pthread_mutex_lock(&s->lock);
}

void
faas_unlock(struct faas_server *s)
{
    if (faas_on_front())
        pthread_mutex_unlock(&s->lock);
}

bool
faas_stopping(struct faas_server *s)
{
    return cur ? cur->stopping : s->stopping;
}

/* ---- messages between loops: a list and an eventfd that says it is not empty */

static void
post(struct faas_loop *l, struct faas_msg *m, void (*fn)(struct faas_server *s, struct faas_msg *m))
{
    m->fn = fn;
    m->next = NULL;
    pthread_mutex_lock(&l->inbox_lock);
    bool wake = l->inbox == NULL;
    if (l->inbox_tail)
        l->inbox_tail->next = m;
    else
        l->inbox = m;
    l->inbox_tail = m;
    pthread_mutex_unlock(&l->inbox_lock);
    uint64_t one = 1;
    if (wake)
        (void)!write(l->inbox_fd, &one, sizeof(one));
}

static void
on_inbox(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_loop *l = container_of(w, struct faas_loop, w_inbox);
    uint64_t n;
    (void)!read(l->inbox_fd, &n, sizeof(n));
    pthread_mutex_lock(&l->inbox_lock);
    struct faas_msg *m = l->inbox;
    l->inbox = l->inbox_tail = NULL;
    pthread_mutex_unlock(&l->inbox_lock);
    while (m) {
        struct faas_msg *next = m->next;
        m->fn(s, m);
        m = next;
    }
}

int
faas_loop_init(struct faas_server *s, struct faas_loop *l, unsigned index, struct husk_error **err)
{
    l->s = s;
    l->index = index;
    l->front.fd = -1;
    l->inbox_fd = -1;
    pthread_mutex_init(&l->inbox_lock, NULL);
    l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epoll_fd < 0)
        return husk_err(err, errno, "create an event loop");
    l->inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->w_inbox.fn = on_inbox;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->w_inbox};
    if (l->inbox_fd < 0 || epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->inbox_fd, &ev) < 0)
        return husk_err(err, errno, "create an event loop's inbox");
    return 0;
}

static void
free_graves(struct faas_loop *l)
{
    for (size_t i = 0; i < l->n_graves; i++)
        free(l->graves[i]);
    l->n_graves = 0;
}

void
faas_server_bury(struct faas_server *s, void *p)
{
    struct faas_loop *l = faas_loop_cur();
    l->graves = xrealloc(l->graves, (l->n_graves + 1) * sizeof(*l->graves));
    l->graves[l->n_graves++] = p;
}

static void flush_outgoing(struct faas_server *s);

void
faas_loop_events(struct faas_server *s, struct faas_loop *l, const struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        struct faas_watch *w = evs[i].data.ptr;
        if (!w->dead)
            w->fn(s, w, evs[i].events);
    }
    free_graves(l);
    flush_outgoing(s);
}

void
faas_loop_free(struct faas_loop *l)
{
    free_graves(l);
    free(l->graves);
    l->graves = NULL;
    free(l->timers);
    l->timers = NULL;
    l->n_timers = l->cap_timers = 0;
    while (l->inbox) {
        struct faas_msg *m = l->inbox;
        l->inbox = m->next;
        free(m);
    }
    if (l->inbox_fd >= 0)
        close(l->inbox_fd);
    if (l->epoll_fd >= 0)
        close(l->epoll_fd);
    l->inbox_fd = l->epoll_fd = -1;
    pthread_mutex_destroy(&l->inbox_lock);
}

/* ---- what front loops ask of the main loop */

struct timer_msg {
    struct faas_msg m;
    struct faas_timer *t;
    uint64_t when;
};

static void
timer_arrived(struct faas_server *s, struct faas_msg *m)
{
    struct timer_msg *tm = container_of(m, struct timer_msg, m);
    if (!tm->t->slot || tm->when < tm->t->when)
        faas_timer_set(s, tm->t, tm->when);
    free(tm);
}

void
faas_main_timer_set(struct faas_server *s, struct faas_timer *t, uint64_t when)
{
    if (!faas_on_front()) {
        faas_timer_set(s, t, when);
        return;
    }
    struct timer_msg *tm = xcalloc(1, sizeof(*tm));
    tm->t = t;
    tm->when = when;
    post(&s->main, &tm->m, timer_arrived);
}

/* A lease of an instance by a front loop (a call, or a message about it) is given back. */
static void
unlend(struct faas_server *s, struct faas_instance *in)
{
    struct faas_function *f = in->fn;
    in->lent--;
    f->n_lent--;
    if (in->lent == 0)
        faas_instance_released(s, in); /* freed if it was waiting for that */
    if (f->n_lent == 0)
        faas_pool_maybe_free(s, f);
}

struct inst_msg {
    struct faas_msg m;
    struct faas_instance *in;
    char *why; /* gone: why */
};

/* A front loop's call on the instance ended, and the pool has something to do about it: the
 * instance is idle now, calls wait, or it is on its way out. */
static void
settle_arrived(struct faas_server *s, struct faas_msg *m)
{
    struct inst_msg *im = container_of(m, struct inst_msg, m);
    if (im->in->state != INST_DYING) /* else the call outlived it: nothing to settle */
        faas_pool_settle(s, im->in);
    unlend(s, im->in);
    free(im);
}

static void
gone_arrived(struct faas_server *s, struct faas_msg *m)
{
    struct inst_msg *im = container_of(m, struct inst_msg, m);
    if (im->in->state == INST_READY)
        faas_pool_instance_gone(s, im->in, im->why);
    unlend(s, im->in);
    free(im->why);
    free(im);
}

static void
post_instance(struct faas_server *s, struct faas_instance *in, const char *why,
              void (*fn)(struct faas_server *s, struct faas_msg *m))
{
    struct inst_msg *im = xcalloc(1, sizeof(*im));
    im->in = in;
    im->why = why ? xstrdup(why) : NULL;
    post(&s->main, &im->m, fn);
}

void
faas_front_call_ended(struct faas_server *s, struct faas_call *c)
{
    struct faas_instance *in = c->inst;
    struct faas_function *f = in->fn;
    in->in_flight--;
    in->served++;
    in->last_end_ns = now_ns();
    /* The lease goes with a message when the main loop has work from it: calls wait, the
     * instance is on its way out, or it is idle now without its timers armed (they look at
     * last_end_ns when they fire: calls in a row need no message). */
    if (f->queue_head || f->retired || in->state != INST_READY ||
        (in->in_flight == 0 && !faas_instance_idle_armed(in))) {
        post_instance(s, in, NULL, settle_arrived);
        return;
    }
    in->lent--; /* a ready instance of a version in service: nothing waits for this */
    f->n_lent--;
}

void
faas_front_instance_gone(struct faas_server *s, struct faas_instance *in, const char *why)
{
    post_instance(s, in, why, gone_arrived); /* the caller's hold goes with it */
}

void
faas_front_condemn(struct faas_server *s, struct faas_instance *in)
{
    faas_lock(s);
    in->condemned = true; /* until the main loop ends it, a caller's next request waits */
    in->lent++;
    in->fn->n_lent++;
    faas_unlock(s);
}

/* ---- connections handed to the main loop */

struct conn_msg {
    struct faas_msg m;
    struct faas_conn *conn;
    struct faas_request req;
    char rid[72];
    struct faas_loop *to;
    struct conn_msg *next_out; /* posted once the loop's batch of events is done */
};

static void
conn_arrived(struct faas_server *s, struct faas_msg *m)
{
    struct conn_msg *cm = container_of(m, struct conn_msg, m);
    if (faas_conn_adopt(s, cm->conn) == 0) {
        faas_route(s, cm->conn, &cm->req, cm->rid);
        faas_conn_read_on(s, cm->conn); /* as the front loop would have, for a body */
    }
    faas_request_reset(&cm->req);
    free(cm);
}

/* An idle connection this loop takes: it reads on (a pipelined request may be buffered), or
 * goes with the other idle ones when the loop is stopping. */
static void
adopt_idle(struct faas_server *s, struct faas_conn *c)
{
    if (faas_conn_adopt(s, c) < 0)
        return;
    if (faas_stopping(s))
        faas_conn_close_all(s, true);
    else
        faas_conn_read_on(s, c);
}

/* Back at its front loop. */
static void
conn_home(struct faas_server *s, struct faas_msg *m)
{
    struct conn_msg *cm = container_of(m, struct conn_msg, m);
    adopt_idle(s, cm->conn);
    free(cm);
}

/* The batch's hand-overs: its events may still name the connections (marked dead for it). */
static __thread struct conn_msg *outgoing;

static void
flush_outgoing(struct faas_server *s)
{
    while (outgoing) {
        struct conn_msg *cm = outgoing;
        outgoing = cm->next_out;
        if (cm->to != &s->main && faas_stopping(s)) { /* it stays here, and goes */
            adopt_idle(s, cm->conn);
            free(cm);
            continue;
        }
        post(cm->to, &cm->m, cm->to == &s->main ? conn_arrived : conn_home);
    }
}

static struct conn_msg *
send_conn(struct faas_server *s, struct faas_conn *c, struct faas_loop *to)
{
    struct conn_msg *cm = xcalloc(1, sizeof(*cm));
    faas_conn_release(s, c);
    cm->conn = c;
    cm->to = to;
    cm->next_out = outgoing;
    outgoing = cm;
    cur->gave_away = true;
    return cm;
}

static void
hand_over(struct faas_server *s, struct faas_conn *c, struct faas_request *req, const char *rid)
{
    struct conn_msg *cm = send_conn(s, c, &s->main);
    c->home = cur;
    cm->req = *req;
    memset(req, 0, sizeof(*req));
    snprintf(cm->rid, sizeof(cm->rid), "%s", rid);
}

void
faas_conn_go_home(struct faas_server *s, struct faas_conn *c)
{
    send_conn(s, c, c->home);
}

/* ---- a front loop's requests */

/* An http function's instance for a call, if one is ready with room and nothing waits
 * before this call (the main loop's queue keeps its order); a frozen one is the main loop's
 * to thaw. */
static struct faas_instance *
lease(struct faas_function *f)
{
    if (f->queue_head || f->retired || f->contract != &faas_contract_http)
        return NULL;
    return faas_pool_pick(f, true);
}

/* NAME in /function/NAME[/SUBPATH][?QUERY], for a call a front loop may serve itself: the
 * latest version, its body whole, no upgrade, not asynchronous. */
static bool
served_here(const struct faas_request *req, const char **name, size_t *len)
{
    static const char prefix[] = "/function/";
    if (strncmp(req->url, prefix, sizeof(prefix) - 1) != 0 || req->body_streams || req->too_large ||
        faas_request_header(req, "Upgrade") || faas_request_header(req, "Prefer"))
        return false;
    *name = req->url + sizeof(prefix) - 1;
    *len = strcspn(*name, "/?@");
    return *len > 0 && (*name)[*len] != '@';
}

void
faas_front_route(struct faas_server *s, struct faas_conn *c, struct faas_request *req,
                 const char *rid)
{
    const char *name = NULL;
    size_t len = 0;
    struct faas_function *f = NULL;
    struct faas_instance *in = NULL;
    bool here = served_here(req, &name, &len);
    faas_lock(s);
    if (here && (f = faas_server_find(s, name, len)) && (in = lease(f))) {
        /* the instance's log lines are this call's while it runs alone there */
        snprintf(in->lent_rid, sizeof(in->lent_rid), "%s", in->in_flight++ ? "" : rid);
        in->lent++;
        f->n_lent++;
        faas_instance_peak_open(in);
    }
    faas_unlock(s);
    if (in == NULL) {
        hand_over(s, c, req, rid);
        return;
    }
    const char *rest = name + len;
    cleanup_free char *subpath = xstrndup(rest, strcspn(rest, "?"));
    struct faas_call *call = faas_call_new(s, c, f, rid, subpath);
    call->lent = true;
    call->req = *req;
    memset(req, 0, sizeof(*req));
    faas_call_start(call, in);
}

void
faas_front_route_head(struct faas_request *req, void *data)
{
    struct faas_server *s = data;
    faas_lock(s);
    faas_route_head(req, data);
    faas_unlock(s);
}

/* ---- the front loops' threads */

static void
stop_arrived(struct faas_server *s, struct faas_msg *m)
{
    free(m);
    cur->stopping = true;
    if (cur->front.fd >= 0) {
        faas_timer_cancel(s, &cur->front.resume);
        faas_watch_del(s, cur->front.fd);
        close(cur->front.fd);
        cur->front.fd = -1;
    }
    faas_conn_close_all(s, true);
}

static void
exited_arrived(struct faas_server *s, struct faas_msg *m)
{
    free(m);
    s->fronts_running--;
}

static void *
front_run(void *arg)
{
    struct faas_loop *l = arg;
    struct faas_server *s = l->s;
    struct epoll_event evs[64];
    faas_loop_set_cur(l);
    while (!l->stopping || l->n_calls || l->conns) {
        int timeout = faas_loop_timers(l);
        faas_loop_events(s, l, NULL, 0); /* what the timers tore down or handed over */
        int n = epoll_wait(l->epoll_fd, evs, ARRAY_SIZE(evs), timeout);
        if (n < 0 && errno != EINTR) {
            faas_server_log(s, "error", "front loop %u: wait for events: %s", l->index,
                            strerror(errno));
            break;
        }
        faas_loop_events(s, l, evs, n > 0 ? n : 0);
    }
    for (size_t i = 0; i < ARRAY_SIZE(l->idle_up); i++)
        while (l->idle_up[i]) {
            struct faas_upstream *u = l->idle_up[i];
            l->idle_up[i] = u->next;
            faas_watch_del(s, u->fd);
            close(u->fd);
            free(u);
        }
    free_graves(l);
    post(&s->main, xcalloc(1, sizeof(struct faas_msg)), exited_arrived);
    return NULL;
}

int
faas_loops_start(struct faas_server *s, struct husk_error **err)
{
    unsigned n = s->opts->loops;
    if (n <= 1 || s->listeners[0].fd < 0)
        return 0;
    s->fronts = xcalloc(n, sizeof(*s->fronts));
    for (unsigned i = 0; i < n; i++) {
        struct faas_loop *l = &s->fronts[i];
        int r = faas_loop_init(s, l, i + 1, err);
        if (r == 0)
            r = faas_listener_share(s, l);
        s->n_fronts = i + 1;
        if (r < 0)
            return r == -1 ? husk_err(err, errno, "watch the front door from loop %u", i + 1) : r;
        if ((r = pthread_create(&l->thread, NULL, front_run, l)) != 0)
            return husk_err(err, r, "start front loop %u", i + 1);
        char name[16];
        snprintf(name, sizeof(name), "husk-loop-%u", (i + 1) & 1023); /* at most 256 */
        pthread_setname_np(l->thread, name); /* top -H, /proc/PID/task/TID/comm */
        l->started = true;
        s->fronts_running++;
    }
    return 0;
}

void
faas_loops_stop(struct faas_server *s)
{
    for (unsigned i = 0; i < s->n_fronts; i++)
        if (s->fronts[i].started)
            post(&s->fronts[i], xcalloc(1, sizeof(struct faas_msg)), stop_arrived);
}

void
faas_loops_join(struct faas_server *s)
{
    for (unsigned i = 0; i < s->n_fronts; i++) {
        struct faas_loop *l = &s->fronts[i];
        if (l->started)
            pthread_join(l->thread, NULL);
        if (l->front.fd >= 0)
            close(l->front.fd);
        faas_loop_free(l);
    }
    free(s->fronts);
    s->fronts = NULL;
    s->n_fronts = 0;
}
