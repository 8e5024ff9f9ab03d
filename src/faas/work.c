/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Slow work off the loop, as redis's bio threads do it: a few threads take jobs (sandbox
 * spawns, deploys with their seccomp compile and registry write) from a queue and hand each
 * back through an eventfd, so a cold start of one function never holds up a warm call of
 * another. A job touches nothing the loop owns while it runs; its `done` runs on the loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

#define MAX_THREADS 16

struct faas_workq {
    pthread_mutex_t lock;
    pthread_cond_t more;
    struct faas_work *todo, **todo_tail; /* FIFO */
    struct faas_work *finished;          /* LIFO; reversed when handed to the loop */
    size_t pending;                      /* submitted, done not run yet (loop only) */
    bool stop;
    int event_fd;
    struct faas_watch w;
    pthread_t threads[MAX_THREADS];
    unsigned n_threads;
};

static void *
worker(void *arg)
{
    struct faas_workq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->todo && !q->stop)
            pthread_cond_wait(&q->more, &q->lock);
        if (!q->todo)
            break;
        struct faas_work *w = q->todo;
        q->todo = w->next;
        if (q->todo == NULL)
            q->todo_tail = &q->todo;
        pthread_mutex_unlock(&q->lock);
        w->run(w);
        pthread_mutex_lock(&q->lock);
        w->next = q->finished;
        q->finished = w;
        uint64_t one = 1;
        (void)!write(q->event_fd, &one, sizeof(one));
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* The loop's side: run `done` for what the threads finished, in the order they finished. */
static void
reap(struct faas_server *s, struct faas_workq *q)
{
    uint64_t n;
    (void)!read(q->event_fd, &n, sizeof(n));
    pthread_mutex_lock(&q->lock);
    struct faas_work *list = q->finished, *rev = NULL;
    q->finished = NULL;
    pthread_mutex_unlock(&q->lock);
    while (list) {
        struct faas_work *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        struct faas_work *w = rev;
        rev = w->next;
        q->pending--;
        w->done(s, w); /* may free w */
    }
}

static void
on_event(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    reap(s, container_of(w, struct faas_workq, w));
}

int
faas_workq_new(struct faas_server *s, unsigned threads, struct faas_workq **out,
               struct husk_error **err)
{
    struct faas_workq *q = xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->more, NULL);
    q->todo_tail = &q->todo;
    q->w.fn = on_event;
    *out = q;
    q->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->event_fd < 0 || faas_watch_add(s, q->event_fd, EPOLLIN, &q->w) < 0)
        return husk_err(err, errno, "create the work queue");
    /* The threads take no signal: the loop's signalfd gets them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (; q->n_threads < threads && q->n_threads < MAX_THREADS; q->n_threads++) {
        int r = pthread_create(&q->threads[q->n_threads], NULL, worker, q);
        if (r != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return husk_err(err, r, "start a work thread");
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

void
faas_work_submit(struct faas_server *s, struct faas_work *w)
{
    faas_workq_submit(s->work, w);
}

void
faas_workq_submit(struct faas_workq *q, struct faas_work *w)
{
    w->next = NULL;
    q->pending++;
    pthread_mutex_lock(&q->lock);
    *q->todo_tail = w;
    q->todo_tail = &w->next;
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->lock);
}

void
faas_workq_stop(struct faas_server *s, struct faas_workq **qp)
{
    struct faas_workq *q = *qp;
    if (q == NULL)
        return;
    /* Let what was submitted finish (a spawn half done must be undone by its `done`). */
    while (q->pending && q->n_threads) {
        struct pollfd p = {.fd = q->event_fd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR) /* shutdown may block */
            break;
        reap(s, q);
    }
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->more);
    pthread_mutex_unlock(&q->lock);
    for (unsigned i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    faas_watch_del(s, q->event_fd);
    if (q->event_fd >= 0)
        close(q->event_fd);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->more);
    free(q);
    *qp = NULL;
}
