/* SPDX-License-Identifier: Apache-2.0 */
/* `husk create` and `husk run`. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>

#include "container.h"
#include "util.h"

#define CREATE_FLAGS                                                                               \
    {"bundle", 'b', FLAG_STRING, offsetof(struct create_opts, bundle),                             \
     "bundle directory (default: current directory)"},                                             \
        {"pid-file", 0, FLAG_STRING, offsetof(struct create_opts, pid_file),                       \
         "write the container's host pid to this file"},                                           \
        {"console-socket", 0, FLAG_STRING, offsetof(struct create_opts, console_socket),           \
         "unix socket that receives the terminal master"},                                         \
        {"no-pivot", 0, FLAG_BOOL, offsetof(struct create_opts, no_pivot),                         \
         "chroot instead of pivot_root"},                                                          \
        {"no-new-keyring", 0, FLAG_BOOL, offsetof(struct create_opts, no_new_keyring),             \
         "accepted for runc compatibility"},                                                       \
        {"network", 0, FLAG_STRING, offsetof(struct create_opts, network),                         \
         "none (loopback only) or bridge (an address, NAT, --publish)"},                           \
        {"publish", 'p', FLAG_STRINGS, offsetof(struct create_opts, publish),                      \
         "[HOSTIP:]HOSTPORT:PORT[/tcp|udp] to the container (repeatable; bridge)"},                \
    {                                                                                              \
        "preserve-fds", 0, FLAG_INT, offsetof(struct create_opts, preserve_fds),                   \
            "pass N fds after stdio (3..3+N-1) to the process"                                     \
    }

static const struct flag create_flags[] = {CREATE_FLAGS};

static const struct flag run_flags[] = {
    CREATE_FLAGS,
    {"detach", 'd', FLAG_BOOL, offsetof(struct create_opts, detach),
     "do not wait for the container"},
    {"keep", 0, FLAG_BOOL, offsetof(struct create_opts, no_new_keyring),
     "accepted for runc compatibility"},
    {"no-subreaper", 0, FLAG_BOOL, offsetof(struct create_opts, no_new_keyring),
     "accepted for runc compatibility"},
};

static int
one_id(const struct verb *v, int argc, char **argv, int i, const char **id)
{
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (argc - i != 1) {
        fprintf(stderr, "husk %s: expected exactly one container id\nusage: husk %s %s\n", v->name,
                v->name, v->usage);
        return 2;
    }
    *id = argv[i];
    return -1;
}

static int
cmd_create(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("create");
    struct create_opts o = {0};
    const char *id = NULL;
    struct husk_error *err = NULL;
    int code =
        one_id(v, argc, argv,
               cli_parse_flags(v, create_flags, ARRAY_SIZE(create_flags), &o, argc, argv), &id);
    if (code >= 0) {
        free(o.publish.v);
        return code;
    }
    int r = ctr_create(cli, id, &o, CREATE_WAIT_START, NULL, &err);
    free(o.publish.v);
    return r < 0 ? cli_fail(cli, err) : 0;
}

static int
cmd_run(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("run");
    struct create_opts o = {0};
    const char *id = NULL;
    struct husk_error *err = NULL;
    int exit_code = 0;
    int code = one_id(v, argc, argv,
                      cli_parse_flags(v, run_flags, ARRAY_SIZE(run_flags), &o, argc, argv), &id);
    if (code >= 0) {
        free(o.publish.v);
        return code;
    }
    int r = ctr_create(cli, id, &o, o.detach ? CREATE_RUN_DETACHED : CREATE_RUN_FOREGROUND,
                       &exit_code, &err);
    free(o.publish.v);
    return r < 0 ? cli_fail(cli, err) : exit_code;
}

const struct verb verb_create = {
    .name = "create",
    .usage = "[flags] ID",
    .summary = "Create a container; its process waits for `start`.",
    .run = cmd_create,
    .flags = create_flags,
    .n_flags = ARRAY_SIZE(create_flags),
};

const struct verb verb_run = {
    .name = "run",
    .usage = "[flags] ID",
    .summary = "Create and start a container and wait for it.",
    .run = cmd_run,
    .flags = run_flags,
    .n_flags = ARRAY_SIZE(run_flags),
};
