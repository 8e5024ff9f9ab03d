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

#include "cli.h"
#include "oci.h"
#include "util.h"

static const struct verb verbs[] = {
    {"spec", "[--bundle DIR] [--rootless]", "Write a default config.json.", cmd_spec},
    {"create", "[flags] ID", "Create a container; its process waits for `start`.", cmd_create},
    {"start", "ID", "Run the process of a created container.", cmd_start},
    {"exec", "[flags] ID [COMMAND [ARG...]]", "Run a new process in a running container.",
     cmd_exec},
    {"run", "[flags] ID", "Create and start a container and wait for it.", cmd_run},
    {"state", "ID", "Print the state of a container as JSON.", cmd_state},
    {"kill", "[--all] ID [SIGNAL]", "Send a signal (default SIGTERM) to a container.", cmd_kill},
    {"delete", "[--force] ID", "Delete a stopped container (--force: any container).", cmd_delete},
    {"list", "[--format table|json] [--quiet]", "List containers.", cmd_list},
    {"features", "", "Print what this runtime supports, as JSON.", cmd_features},
    {"checkpoint", "ID", "Not supported (answers with a clear error).", cmd_checkpoint},
    {"restore", "ID", "Not supported (answers with a clear error).", cmd_checkpoint},
    {"pause", "ID", "Freeze every process of a container.", cmd_pause},
    {"resume", "ID", "Thaw a paused container.", cmd_resume},
    {"update", "[flags] [-r resources.json] ID", "Change a container's resource limits.",
     cmd_update},
    {"ps", "[--format table|json] ID [ps options]", "List the processes of a container.", cmd_ps},
    {"events", "[--stats] [--interval 5s] ID", "Print resource stats and OOM events as JSON.",
     cmd_events},
    {"pack", "[flags] PROGRAM [FILE...] | --trace [flags] -- COMMAND [ARG...]",
     "Package a program and its dependencies as a bundle, rootfs, tar or image.", cmd_pack},
    {"image", "import|ls|inspect|rm|gc|df [flags] ...",
     "Import OCI image layouts; make bundles or images of them.", cmd_image},
    {"serve", "[--listen HOST:PORT] [--state DIR]", "Run functions behind an HTTP gateway.",
     cmd_serve},
    {"fn", "deploy|ls|get|rm|invoke [flags] [NAME]", "Manage and invoke functions of `husk serve`.",
     cmd_fn},
};

const struct verb *
cli_find_verb(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
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

static void
usage(void)
{
    printf("usage: husk [global flags] COMMAND [flags] [args]\n\n"
           "husk runs OCI containers (runc-compatible).\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
        printf("  %-10s %s\n", verbs[i].name, verbs[i].summary);
    printf("\nglobal flags:\n");
    for (size_t i = 0; i < ARRAY_SIZE(global_flags); i++)
        printf("  --%-16s %s\n", global_flags[i].name, global_flags[i].help);
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
    static const struct verb global = {"", "COMMAND", "", NULL};
    struct global_opts g = {0};
    struct cli cli = {.log_fd = -1, .argv = argv};

    /* After a re-execution through an fd (readonly-exe.c) the kernel names us after the fd. */
    prctl(PR_SET_NAME, "husk");

    int i =
        cli_parse_flags(&global, global_flags, ARRAY_SIZE(global_flags), &g, argc - 1, argv + 1);
    if (i == -2 || (i >= 0 && i + 1 >= argc && !g.version)) {
        usage();
        return i == -2 ? 0 : 2;
    }
    if (i < 0)
        return 2;
    if (g.version) {
        printf("husk version %s\nspec: %s\n", HUSK_VERSION, OCI_VERSION);
        return 0;
    }
    const char *name = argv[i + 1];
    if (strcmp(name, "help") == 0) {
        usage();
        return 0;
    }
    const struct verb *v = cli_find_verb(name);
    if (v == NULL) {
        fprintf(stderr, "husk: unknown command '%s' (see husk --help)\n", name);
        return 2;
    }
    int code = setup_cli(&cli, &g);
    if (code == 0)
        code = v->run(&cli, argc - i - 2, argv + i + 2);
    if (cli.log_fd >= 0)
        close(cli.log_fd);
    free(cli.default_root);
    return code;
}
