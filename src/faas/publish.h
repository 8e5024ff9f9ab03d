/* SPDX-License-Identifier: Apache-2.0 */
/* What publish.c, publish-notify.c and publish-stats.c share: the published sockets. */
#ifndef HUSK_FAAS_PUBLISH_H
#define HUSK_FAAS_PUBLISH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "faas-internal.h"
#include "husk/net.h"

/* One published socket. Versions of its function hold it (refs, under the lock); the one in
 * service drives it from the loop (active): the activator's watch, the queue sampler. */
struct faas_pub {
    struct faas_publishing *pg;
    char *fn;      /* the function it belongs to */
    char text[64]; /* "127.0.0.1:8080", for messages */
    struct sockaddr_storage sa;
    socklen_t sl;
    int fd;
    ino_t ino;     /* the socket's inode: how it is recognised in a caller's fd table */
    unsigned refs; /* versions holding it */
    /* the loop's */
    struct faas_function *active; /* the version in service, or NULL */
    struct faas_watch w;          /* the activator: readable while connections wait */
    bool watching;
    struct faas_timer t_sample, t_retry;
    unsigned queued; /* the accept queue at the last sample */
    /* connections that ended (publish-stats.c) */
    uint64_t closed, bytes_in, bytes_out;
    /* the scaling decisions made from the socket: instances started for connections waiting
     * at zero (the activator) or for a backed-up accept queue, idle instances kept for the
     * connections open */
    uint64_t n_activated, n_scaled, n_kept;
    struct faas_pub *next;
};

struct faas_publishing {
    struct faas_server *s;
    pthread_mutex_t lock; /* pubs, refs, and the cgroup made on first use */
    struct faas_pub *pubs;
    /* The sockets are made in a cgroup of their own whose connect programs refuse everything:
     * a function handed one cannot turn it (or a connection accepted from it) into a way out
     * of its sandbox's network. */
    struct sbx_cgroup *cg;
    struct sbx_egress *deny;
    struct sbx_seccomp filter; /* bind and listen notified (publish-notify.c) */
    /* publish-stats.c: connections of published sockets as they end (sock_diag) */
    int diag_fd;
    struct faas_watch w_diag;
    bool diag_warned;
};

/* publish-stats.c */
void faas_pubstats_update(struct faas_server *s);
void faas_pubstats_close(struct faas_publishing *pg);
/* Connections now open on the socket (queued ones too); with inodes, the sorted socket inodes
 * of those an instance accepted (caller frees). -errno when they cannot be counted. */
int faas_pubstats_open_conns(const struct sockaddr_storage *sa, size_t *n, uint64_t **inodes,
                             size_t *n_inodes);
/* Whether any process of a cgroup (sbx_cgroup_procs_dir) holds one of these sockets. Reads
 * the processes' fd tables: off the loop. */
bool faas_pubstats_holds(int procs_dir, const uint64_t *inodes, size_t n);
/* The accept queue's length now. */
unsigned faas_pub_queue(const struct faas_pub *p);

/* publish-notify.c */
int faas_pubnotify_filter(struct sbx_seccomp *out, struct husk_error **err);
void faas_pubnotify_watch(struct faas_server *s, struct faas_instance *in);
void faas_pubnotify_close(struct faas_server *s, struct faas_instance *in);

#endif
