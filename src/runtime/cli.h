/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI CLI: global options, the verb table, table-driven flag parsing, logging. */
#ifndef HUSK_RUNTIME_CLI_H
#define HUSK_RUNTIME_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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
    unsigned groups; /* the subcommands that take it (struct cli_sub's groups); 0: all */
};

/* A growable list for repeatable flags (--env A --env B). */
struct strlist {
    char **v;
    size_t n;
};

/* What a command's first argument names, for shell completion. */
enum cli_arg {
    CLI_ARG_NONE,
    CLI_ARG_FILE,
    CLI_ARG_CONTAINER, /* a container of `husk list` */
    CLI_ARG_FUNCTION,  /* a function of `husk fn ls` */
};

/* A subcommand (husk fn deploy, husk image import). A verb keeps its subcommands in a table of
 * its own structs, each beginning with this one, sub_size bytes apart (struct fn_sub). */
struct cli_sub {
    const char *name;
    const char *usage; /* its arguments, after "husk VERB NAME" */
    const char *summary;
    unsigned groups; /* it takes the verb's flags whose groups meet these, and those of none */
    enum cli_arg arg;
};

/* husk's commands are in two families: runc's verbs (one manual page, husk-oci(1)) and husk's
 * own (a page each, husk-VERB(1)). */
enum verb_kind { VERB_OCI, VERB_HUSK };
extern const char *const cli_verb_kind_titles[2];

/* A command: its help (cli.c), manual page (cli-man.c) and completion (cli-complete.c) are all
 * made from this. */
struct verb {
    const char *name;
    const char *usage;
    const char *summary;
    int (*run)(struct cli *cli, int argc, char **argv);
    const struct flag *flags; /* every flag it takes, or NULL */
    size_t n_flags;
    const struct cli_sub *subs; /* its subcommands, or NULL */
    size_t n_subs, sub_size;
    enum verb_kind kind;
    enum cli_arg arg;
    const char *description;         /* a paragraph after the summary, or NULL */
    void (*man_sections)(FILE *out); /* the manual's sections of its own, or NULL */
};

static inline const struct cli_sub *
cli_sub_at(const struct verb *v, size_t i)
{
    return (const struct cli_sub *)((const char *)v->subs + i * v->sub_size);
}

/* Whether a flag of v applies to the subcommand s. */
static inline bool
cli_sub_takes(const struct cli_sub *s, const struct flag *f)
{
    return f->groups == 0 || (f->groups & s->groups) != 0;
}

/* A subcommand as a verb of its own ("fn deploy"), with the flags of its verb it takes, for
 * cli_parse_flags. */
struct cli_sub_verb {
    struct verb verb;
    struct flag *flags; /* owned */
    char name[48];
};
void cli_sub_verb_init(struct cli_sub_verb *sv, const struct verb *v, const struct cli_sub *s);
void cli_sub_verb_clear(struct cli_sub_verb *sv);

/* The subcommand argv[0] names, for verbs with subcommands. NULL when there is none to run:
 * *code is then 0 after help was asked for ("help", "--help", "help SUB"; on stdout) or 2 after
 * a usage error (on stderr). */
const struct cli_sub *cli_find_sub(const struct verb *v, int argc, char **argv, int *code);

/* A verb's help: usage, summary, description, then its flags or its subcommands. */
void cli_print_help(FILE *to, const struct verb *v);
bool cli_is_help(const char *arg);
/* "-e, --env VALUE" or "    --url VALUE" (N for a number). */
void cli_flag_synopsis(const struct flag *f, char *buf, size_t len);

/* Parse flags into opts until the first positional argument; returns its index or -1 after
 * reporting an unknown or malformed flag. "--help" prints the verb's help and returns -2. The
 * flags are the verb's (a caller may pass fewer, or none). */
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

/* The command line as a whole: the global flags (those of a verb named "") and the verbs. */
struct cli_program {
    const struct verb *global;
    const struct verb *const *verbs;
    size_t n_verbs;
};
/* `husk --help`: the usage, the commands by family, the global flags. */
void cli_print_program_help(FILE *to, const struct cli_program *p);

/* The verbs, one file each (main.c lists them). */
extern const struct verb verb_spec, verb_create, verb_start, verb_exec, verb_run, verb_state,
    verb_kill, verb_delete, verb_list, verb_features, verb_checkpoint, verb_restore, verb_pause,
    verb_resume, verb_update, verb_ps, verb_events, verb_pack, verb_image, verb_serve, verb_fn;

const struct verb *cli_find_verb(const char *name);

#endif
