/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI CLI: global options, the verb table, table-driven flag parsing, logging. */
#ifndef HUSK_RUNTIME_CLI_H
#define HUSK_RUNTIME_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "husk/error.h"

struct cli {
    const char *root; /* state directory, default /run/husk */
    const char *log_path;
    bool log_json;
    bool debug;
    bool systemd_cgroup;
    int log_fd;              /* -1: stderr only */
    char *default_root;      /* owned, when root was computed */
    const char *cgroup_root; /* $HUSK_CGROUP_ROOT (tests); NULL: /sys/fs/cgroup */
    char **argv;             /* main's, for cli_run_from_readonly_exe */
};

enum flag_type { FLAG_BOOL, FLAG_STRING, FLAG_INT, FLAG_STRINGS };

/* One flag of a verb: values land in a verb-local options struct at `offset`. */
struct flag {
    const char *name; /* long name; accepted as --name and -name, like runc */
    char short_name;  /* 0 if none */
    enum flag_type type;
    size_t offset;
    const char *help;
};

/* A growable list for repeatable flags (--env A --env B). */
struct strlist {
    char **v;
    size_t n;
};

struct verb {
    const char *name;
    const char *usage;
    const char *summary;
    int (*run)(struct cli *cli, int argc, char **argv);
};

/* Parse flags into opts until the first positional argument; returns its index or -1 after
 * reporting an unknown or malformed flag. "--help" prints usage and returns -2. */
int cli_parse_flags(const struct verb *verb, const struct flag *flags, size_t n_flags, void *opts,
                    int argc, char **argv);

/* Set one flag's value in opts (value NULL: a bool flag given bare). -EINVAL when it does not
 * parse as the flag's type. */
int cli_set_flag(const struct flag *f, void *opts, const char *value);

/* Log an error at the CLI boundary: stderr, and the --log file in the chosen format. */
void cli_log(struct cli *cli, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Report an error object (and free it); returns the exit code 1. */
int cli_fail(struct cli *cli, struct husk_error *err);

/* Unless the husk binary is on a read-only mount already, re-execute it (same argv) from a
 * read-only bind mount of itself; returns 0 (nothing to do, or not privileged to) or an error
 * (readonly-exe.c). For verbs whose sandbox process enters a pid namespace with processes. */
int cli_run_from_readonly_exe(struct cli *cli, struct husk_error **err);

/* The time now as RFC 3339 with nanoseconds, UTC. */
void cli_rfc3339_now(char *buf, size_t len);

/* Check a container id: [A-Za-z0-9_+.-]+, not "." or "..". */
int cli_check_id(const char *id, struct husk_error **err);

/* The verbs, one file each. */
int cmd_spec(struct cli *cli, int argc, char **argv);
int cmd_create(struct cli *cli, int argc, char **argv);
int cmd_start(struct cli *cli, int argc, char **argv);
int cmd_exec(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_state(struct cli *cli, int argc, char **argv);
int cmd_kill(struct cli *cli, int argc, char **argv);
int cmd_delete(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_features(struct cli *cli, int argc, char **argv);
int cmd_checkpoint(struct cli *cli, int argc, char **argv);
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_update(struct cli *cli, int argc, char **argv);
int cmd_ps(struct cli *cli, int argc, char **argv);
int cmd_events(struct cli *cli, int argc, char **argv);
int cmd_pack(struct cli *cli, int argc, char **argv);
int cmd_image(struct cli *cli, int argc, char **argv);
int cmd_serve(struct cli *cli, int argc, char **argv);
int cmd_fn(struct cli *cli, int argc, char **argv);

const struct verb *cli_find_verb(const char *name);

#endif
