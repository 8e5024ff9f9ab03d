/* SPDX-License-Identifier: Apache-2.0 */
/* husk: global flags, then one verb from the table. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli-doc.h"
#include "cli.h"
#include "oci.h"
#include "util.h"

static const struct verb *const verbs[] = {
    &verb_spec,  &verb_create, &verb_start,  &verb_exec,     &verb_run,        &verb_state,
    &verb_kill,  &verb_delete, &verb_list,   &verb_features, &verb_checkpoint, &verb_restore,
    &verb_pause, &verb_resume, &verb_update, &verb_ps,       &verb_events,     &verb_pack,
    &verb_image, &verb_serve,  &verb_fn,
};

const struct verb *
cli_find_verb(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (strcmp(verbs[i]->name, name) == 0)
            return verbs[i];
    return NULL;
}

struct global_opts {
    const char *root, *log, *log_format, *criu, *rootless;
    bool debug, systemd_cgroup, version;
};

static const struct flag global_flags[] = {
    {"root", 0, FLAG_STRING, offsetof(struct global_opts, root),
     "state directory (default /run/husk)"},
    {"log", 0, FLAG_STRING, offsetof(struct global_opts, log), "also log to this file"},
    {"log-format", 0, FLAG_STRING, offsetof(struct global_opts, log_format), "text or json"},
    {"debug", 0, FLAG_BOOL, offsetof(struct global_opts, debug), "log debug messages"},
    {"systemd-cgroup", 0, FLAG_BOOL, offsetof(struct global_opts, systemd_cgroup),
     "use systemd for cgroups (needs a running systemd)"},
    {"criu", 0, FLAG_STRING, offsetof(struct global_opts, criu), "accepted for runc compatibility"},
    {"rootless", 0, FLAG_STRING, offsetof(struct global_opts, rootless),
     "accepted for runc compatibility"},
    {"version", 'v', FLAG_BOOL, offsetof(struct global_opts, version), "print the version"},
};

/* The global flags, as the flags of a verb with no name. */
static const struct verb global = {
    .name = "",
    .usage = "[global flags] COMMAND [flags] [args]",
    .summary = "Run OCI containers (runc's verbs and flags), pack programs with just what they "
               "need, and serve them as functions.",
    .flags = global_flags,
    .n_flags = ARRAY_SIZE(global_flags),
};

static const struct cli_program program = {&global, verbs, ARRAY_SIZE(verbs)};

/* `husk help [COMMAND [SUBCOMMAND]]`. */
static int
help(int argc, char **argv)
{
    const struct verb *v = argc ? cli_find_verb(argv[0]) : NULL;
    if (argc == 0) {
        cli_print_program_help(stdout, &program);
        return 0;
    }
    if (v == NULL) {
        fprintf(stderr, "husk help: unknown command '%s' (see husk --help)\n", argv[0]);
        return 2;
    }
    if (argc == 1 || v->subs == NULL) {
        cli_print_help(stdout, v);
        return 0;
    }
    int code;
    char *args[] = {"help", argv[1], NULL};
    cli_find_sub(v, 2, args, &code);
    return code;
}

static int
setup_cli(struct cli *cli, const struct global_opts *g)
{
    /* Unprivileged users keep their state in their runtime dir, as rootless runc does; so does
     * "root" inside a user namespace (rootless podman runs us that way). */
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (g->root)
        cli->root = g->root;
    else if ((geteuid() != 0 || !in_initial_userns()) && xdg && *xdg)
        cli->root = cli->default_root = xasprintf("%s/husk", xdg);
    else
        cli->root = "/run/husk";
    cli->debug = g->debug;
    cli->log_fd = -1;
    cli->cgroup_root = getenv("HUSK_CGROUP_ROOT"); /* tests point it at a fake tree */
    if (g->log_format && strcmp(g->log_format, "json") != 0 && strcmp(g->log_format, "text") != 0) {
        fprintf(stderr, "husk: --log-format must be text or json, not '%s'\n", g->log_format);
        return 2;
    }
    cli->log_json = g->log_format && strcmp(g->log_format, "json") == 0;
    if (g->log) {
        cli->log_path = g->log;
        cli->log_fd = open(g->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (cli->log_fd < 0) {
            fprintf(stderr, "husk: open log file '%s': %s\n", g->log, strerror(errno));
            return 1;
        }
    }
    if (g->systemd_cgroup) {
        struct stat st;
        if (stat("/run/systemd/system", &st) < 0) {
            struct husk_error *err = NULL;
            husk_err(&err, 0,
                     "--systemd-cgroup: systemd is not running on this host; "
                     "drop the flag to use cgroupfs");
            return cli_fail(cli, err);
        }
        cli->systemd_cgroup = true;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct global_opts g = {0};
    struct cli cli = {.log_fd = -1, .argv = argv};

    /* After a re-execution through an fd (readonly-exe.c) the kernel names us after the fd. */
    prctl(PR_SET_NAME, "husk");

    int i =
        cli_parse_flags(&global, global_flags, ARRAY_SIZE(global_flags), &g, argc - 1, argv + 1);
    if (i == -2 || (i >= 0 && i + 1 >= argc && !g.version)) {
        cli_print_program_help(i == -2 ? stdout : stderr, &program);
        return i == -2 ? 0 : 2;
    }
    if (i < 0)
        return 2;
    if (g.version) {
        printf("husk version %s\nspec: %s\n", HUSK_VERSION, OCI_VERSION);
        return 0;
    }
    const char *name = argv[i + 1];
    int rest = argc - i - 2;
    char **args = argv + i + 2;
    if (strcmp(name, "help") == 0)
        return help(rest, args);
    if (strcmp(name, "__doc") == 0) /* what the build makes manual pages and completion of */
        return cli_doc_main(&program, rest, args);
    const struct verb *v = cli_find_verb(name);
    if (v == NULL) {
        fprintf(stderr, "husk: unknown command '%s' (see husk --help)\n", name);
        return 2;
    }
    if (rest >= 1 && cli_is_help(args[0])) {
        cli_print_help(stdout, v);
        return 0;
    }
    int code = setup_cli(&cli, &g);
    if (code == 0)
        code = v->run(&cli, rest, args);
    if (cli.log_fd >= 0)
        close(cli.log_fd);
    free(cli.default_root);
    return code;
}
