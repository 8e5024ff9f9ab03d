/* SPDX-License-Identifier: Apache-2.0 */
/* A container as the CLI sees it: its state directory, its status, its process. */
#ifndef HUSK_RUNTIME_CONTAINER_H
#define HUSK_RUNTIME_CONTAINER_H

#include <stdbool.h>
#include <sys/types.h>

#include "cli.h"
#include "oci.h"

enum ctr_status { CTR_CREATING, CTR_CREATED, CTR_RUNNING, CTR_STOPPED, CTR_PAUSED };

#define CTR_START_SOCK "start.sock"
#define CTR_CONFIG     "config.json" /* the config the container was created with */

struct container {
    char *id;
    int root_fd; /* the --root directory */
    int dir_fd;  /* ROOT/ID, flock'ed while we work on it */
    struct oci_state *state;
    const char *cgroup_root; /* cli->cgroup_root, for the paused status */
};

const char *ctr_status_name(enum ctr_status s);

/* Open the --root directory, creating it (0700) if needed. */
int ctr_root_open(const struct cli *cli, bool create, int *out, struct husk_error **err);
/* Open and lock an existing container and load its state. */
int ctr_open(const struct cli *cli, const char *id, struct container **out,
             struct husk_error **err);
/* How a verb on one container starts: its flags, then the id and up to max_extra more
 * arguments. The index of the id in argv, or -1 with *code the exit code: 0 after --help, 2 for
 * a usage error (said on stderr). */
int ctr_verb_args(const struct verb *v, const struct flag *flags, size_t n_flags, void *opts,
                  int argc, char **argv, int max_extra, int *code);
/* ctr_verb_args, then the container opened and locked (*out); -1 with *code 1 when it cannot
 * be (said through cli_fail). */
int ctr_verb_open(struct cli *cli, const struct verb *v, const struct flag *flags, size_t n_flags,
                  void *opts, int argc, char **argv, int max_extra, struct container **out,
                  int *code);
void ctr_free(struct container *c);
void ctr_freep(struct container **c);

enum ctr_status ctr_status(const struct container *c);
/* A container directory without a state (its `create` was killed before it recorded one):
 * kill what is in the cgroup its kept config names (or the default one), remove that cgroup
 * and the directory. */
int ctr_remove_incomplete(const struct cli *cli, const char *id, struct husk_error **err);
/* Remove the state directory. */
int ctr_destroy(struct container *c, struct husk_error **err);

/* /proc/PID/stat start time, 0 if the process is gone or a zombie. */
unsigned long long proc_start_time(pid_t pid);

/* A pidfd of the container's init, opened before its start time is checked against the state,
 * so that it names that process whatever happens to its pid later. -ESRCH when it is gone. */
int ctr_open_init(const struct container *c);
/* Send a signal to the container's init (all == also every other process it holds). */
int ctr_kill(struct container *c, int sig, bool all, struct husk_error **err);
/* Wait up to timeout_ms for the init to be gone. */
int ctr_wait_gone(struct container *c, int timeout_ms);

/* The config the container was created with (NULL if it cannot be read: hooks are then
 * skipped, which the caller may report). */
struct oci_config *ctr_config(const struct cli *cli, const struct container *c);
/* Run poststart/poststop hooks of the container; each failure is a warning, and the hooks
 * after it still run. */
void ctr_hooks_warn(struct cli *cli, const struct oci_config *cfg, enum oci_hook_kind kind,
                    const struct oci_state *st, const char *status);

/* A foreground `run` or `exec`: the process is in a session of its own, so the signals a
 * terminal or supervisor sends us are passed on to it. */
void ctr_forward_signals(pid_t pid);

/* Signal names and numbers: "KILL", "SIGKILL", "9". -1 if unknown. */
int parse_signal(const char *s);

/* ctr-cgroup.c: the container's cgroup. */
struct sbx_cgroup_opts ctr_cgroup_opts(struct cli *cli);
/* The cgroup of a new container; *out stays NULL when husk may not manage cgroups and the
 * config asks for no limits (a warning says so). */
int ctr_cgroup_create(struct cli *cli, const char *id, const struct oci_config *cfg,
                      struct sbx_cgroup **out, struct husk_error **err);
/* The cgroup recorded in the state; an error when the container has none. */
int ctr_cgroup_open(struct cli *cli, const struct container *c, struct sbx_cgroup **out,
                    struct husk_error **err);
/* After `run`: say so when the kernel OOM-killed processes of the container. */
void ctr_cgroup_report_oom(struct cli *cli, const char *id, struct sbx_cgroup *cg,
                           const struct oci_config *cfg);

/* The shared body of `create` and `run`. */
struct create_opts {
    const char *bundle;
    const char *pid_file;
    const char *console_socket;
    bool no_pivot;
    bool no_new_keyring;
    int preserve_fds;
    bool detach;
    const char *network;    /* --network none|bridge */
    struct strlist publish; /* --publish, repeatable */
};
enum create_mode { CREATE_WAIT_START, CREATE_RUN_FOREGROUND, CREATE_RUN_DETACHED };
int ctr_create(struct cli *cli, const char *id, const struct create_opts *o, enum create_mode mode,
               int *exit_code, struct husk_error **err);

/* ctr-net.c: the container's network (--network, --publish, egress annotations). */
struct ctr_net;
/* Read the flags and annotations; changes the config's network namespace as asked. */
int ctr_net_plan(struct cli *cli, const char *id, struct oci_config *cfg,
                 const struct create_opts *o, struct ctr_net **out, struct husk_error **err);
/* Before spawn: egress programs on the cgroup, the lease, resolv.conf and hosts mounts. */
int ctr_net_setup(struct cli *cli, struct ctr_net *n, struct oci_config *cfg, int dir_fd,
                  struct sbx_cgroup *cg, struct husk_error **err);
/* From on_created: the veth into the container's namespace (or loopback up). */
int ctr_net_on_created(struct ctr_net *n, pid_t pid, struct husk_error **err);
/* After a failed create or a finished foreground run. */
void ctr_net_release(struct cli *cli, struct ctr_net *n);
void ctr_net_free(struct ctr_net *n);
void ctr_net_freep(struct ctr_net **n);
/* `delete`: release what network.json says the container holds. */
int ctr_net_delete(struct cli *cli, const struct container *c, struct husk_error **err);
/* `state`: add "network" (address, gateway, published ports). */
void ctr_net_state(const struct container *c, json_t *state);

#endif
