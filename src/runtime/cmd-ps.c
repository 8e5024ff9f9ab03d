/* SPDX-License-Identifier: Apache-2.0 */
/* `husk ps [--format table|json] ID [ps options]`: the container's processes, from its cgroup. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container.h"
#include "util.h"

struct ps_opts {
    const char *format;
};

static const struct flag ps_flags[] = {
    {"format", 'f', FLAG_STRING, offsetof(struct ps_opts, format), "table (default) or json"},
};

static bool
has_pid(const pid_t *pids, size_t n, long pid)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* Run ps(1) with the given options (default -ef) and keep the header and the lines whose PID
 * column names a process of the container, as runc does. */
static int
ps_table(char **ps_args, int n_args, const pid_t *pids, size_t n, struct husk_error **err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return husk_err(err, errno, "pipe");
    pid_t child = fork();
    if (child < 0)
        return husk_err(err, errno, "fork");
    if (child == 0) {
        char *argv[64] = {"ps", "-ef"};
        int k = 1;
        for (int i = 0; i < n_args && k < 62; i++)
            argv[k++] = ps_args[i];
        if (n_args == 0)
            k = 2;
        argv[k] = NULL;
        dup2(pipefd[1], STDOUT_FILENO);
        execvp("ps", argv);
        _exit(127);
    }
    close(pipefd[1]);
    cleanup_file FILE *f = fdopen(pipefd[0], "r");
    cleanup_free char *line = NULL;
    size_t cap = 0;
    int col = -1;
    while (f && getline(&line, &cap, f) > 0) {
        cleanup_free char *copy = xstrdup(line);
        char *save = NULL, *t = strtok_r(copy, " \t\n", &save);
        if (col < 0) { /* the header names the PID column */
            for (int i = 0; t; i++, t = strtok_r(NULL, " \t\n", &save))
                if (strcmp(t, "PID") == 0)
                    col = i;
            if (col < 0)
                break;
            fputs(line, stdout);
            continue;
        }
        for (int i = 0; t && i < col; i++)
            t = strtok_r(NULL, " \t\n", &save);
        if (t && has_pid(pids, n, strtol(t, NULL, 10)))
            fputs(line, stdout);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (col < 0)
        return husk_err(err, 0, "ps: no PID column in its output (options %s)",
                        n_args ? ps_args[0] : "-ef");
    return 0;
}

static int
cmd_ps(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("ps");
    struct ps_opts o = {0};
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    cleanup_free pid_t *pids = NULL;
    size_t n = 0;
    int i = cli_parse_flags(v, ps_flags, ARRAY_SIZE(ps_flags), &o, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (argc - i < 1) {
        fprintf(stderr, "husk ps: expected a container id\n");
        return 2;
    }
    bool json = o.format && strcmp(o.format, "json") == 0;
    if (o.format && !json && strcmp(o.format, "table") != 0) {
        fprintf(stderr, "husk ps: --format must be table or json, not '%s'\n", o.format);
        return 2;
    }
    if (json && argc - i > 1) {
        fprintf(stderr, "husk ps: ps options do not apply to --format json\n");
        return 2;
    }
    if (ctr_open(cli, argv[i], &c, &err) < 0 || ctr_cgroup_open(cli, c, &cg, &err) < 0 ||
        sbx_cgroup_pids(cg, &pids, &n, &err) < 0)
        return cli_fail(cli, err);
    if (!json) {
        fflush(stdout);
        return ps_table(argv + i + 1, argc - i - 1, pids, n, &err) < 0 ? cli_fail(cli, err) : 0;
    }
    cleanup_json json_t *arr = json_array();
    for (size_t k = 0; k < n; k++)
        json_array_append_new(arr, json_integer(pids[k]));
    cleanup_free char *text = json_dumps(arr, JSON_COMPACT);
    printf("%s\n", text);
    return 0;
}

const struct verb verb_ps = {
    .name = "ps",
    .usage = "[--format table|json] ID [ps options]",
    .summary = "List the processes of a container.",
    .run = cmd_ps,
    .flags = ps_flags,
    .n_flags = ARRAY_SIZE(ps_flags),
    .arg = CLI_ARG_CONTAINER,
};
