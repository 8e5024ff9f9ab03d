/* SPDX-License-Identifier: Apache-2.0 */
/* The serverless daemon: `husk serve` runs functions behind an HTTP gateway. */
#ifndef HUSK_FAAS_H
#define HUSK_FAAS_H

#include "husk/error.h"

struct faas_serve_opts {
    const char *listen;      /* "HOST:PORT", loopback by default */
    const char *state_dir;   /* the registry lives here */
    const char *cgroup_root; /* where cgroup hierarchies are mounted; NULL: /sys/fs/cgroup */
    /* A signalfd for SIGTERM, SIGINT and SIGCHLD (blocked by the caller): SIGTERM and SIGINT stop
     * accepting, finish the requests in flight and return 0. */
    int signal_fd;
    void (*log)(const char *level, const char *msg, void *data);
    void *log_data;
};

/* Serve until told to stop. 0, or -errno with *err set when the daemon could not start. */
int faas_serve(const struct faas_serve_opts *opts, struct husk_error **err);

#endif
