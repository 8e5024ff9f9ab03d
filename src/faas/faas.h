/* SPDX-License-Identifier: Apache-2.0 */
/* The serverless daemon: `husk serve` runs functions behind an HTTP gateway. */
#ifndef HUSK_FAAS_H
#define HUSK_FAAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "husk/error.h"

/* Function settings the daemon fills in when a deploy leaves them out (defaults), and the most
 * a deploy may ask for (maxima); 0: not set. A maximum with no default is also the default. */
struct faas_fn_limits {
    int64_t timeout, memory, max_body, max_response, pids, max;
    double cpus;
};

struct faas_serve_opts {
    const char *listen;       /* the front door, "HOST:PORT" or "[V6]:PORT"; NULL: none */
    const char *admin_socket; /* the admin API's unix socket (0600, or 0660 for admin_gid) */
    bool admin_group_set;
    gid_t admin_gid;   /* members may use the admin socket (their files may be deployed) */
    const char *token; /* the admin API over TCP needs "Authorization: Bearer TOKEN"; NULL: no */
    const char *state_dir;   /* the registry lives here */
    const char *cgroup_root; /* where cgroup hierarchies are mounted; NULL: /sys/fs/cgroup */
    /* The deploy policy: directories a bundle may bind from; host id ranges of functions. */
    char **allow_bind;
    size_t n_allow_bind;
    uint32_t userns_base, userns_slots;
    /* Limits on what callers can make the daemon hold. */
    unsigned max_connections, max_client_connections, max_deploys_per_minute;
    unsigned read_timeout;    /* seconds a client has to send a request (twice that idle) */
    unsigned max_async_queue; /* asynchronous calls accepted and not finished, at most */
    unsigned parallel_starts; /* instances started at once, at most (0: 4) */
    unsigned loops;           /* event loops serving the front door (0, 1: the main loop's) */
    char **allow_callback;    /* CIDRs callbacks may reach though loopback or link-local */
    size_t n_allow_callback;
    const char *otlp_endpoint; /* traces go here (OTLP/HTTP JSON); NULL: none */
    struct faas_fn_limits fn_defaults, fn_maxima;
    /* Listening sockets handed over by a service manager (socket activation); -1: none. */
    int listen_fd, admin_fd;
    /* A signalfd for SIGTERM, SIGINT and SIGCHLD (blocked by the caller): SIGTERM and SIGINT stop
     * accepting, finish the requests in flight and return 0. */
    int signal_fd;
    void (*log)(const char *level, const char *msg, void *data);
    void *log_data;
    bool log_debug; /* debug messages are wanted (else not even formatted: some come per call) */
};

/* Check the options as faas_serve would, changing nothing (husk serve --check-config). */
int faas_serve_check(const struct faas_serve_opts *opts, struct husk_error **err);

/* Serve until told to stop. 0, or -errno with *err set when the daemon could not start. */
int faas_serve(const struct faas_serve_opts *opts, struct husk_error **err);

#endif
