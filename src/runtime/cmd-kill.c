/* SPDX-License-Identifier: Apache-2.0 */
/* `husk kill ID [SIGNAL]`. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>

#include "container.h"
#include "util.h"

struct kill_opts {
    bool all;
};

static const struct flag kill_flags[] = {
    {"all", 'a', FLAG_BOOL, offsetof(struct kill_opts, all),
     "signal every process of the container, not just its init"},
};

static int
cmd_kill(struct cli *cli, int argc, char **argv)
{
    struct kill_opts o = {0};
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    int code;
    int i = ctr_verb_args(cli_find_verb("kill"), kill_flags, ARRAY_SIZE(kill_flags), &o, argc, argv,
                          1, &code);
    if (i < 0)
        return code;
    const char *sig_name = argc - i == 2 ? argv[i + 1] : "SIGTERM";
    int sig = parse_signal(sig_name);
    if (sig < 0) {
        husk_err(&err, 0, "unknown signal '%s'", sig_name);
        return cli_fail(cli, err);
    }
    if (ctr_open(cli, argv[i], &c, &err) < 0)
        return cli_fail(cli, err);
    enum ctr_status st = ctr_status(c);
    if (st == CTR_STOPPED) {
        husk_err(&err, 0, "container '%s': container not running", c->id);
        return cli_fail(cli, err);
    }
    if (ctr_kill(c, sig, o.all, &err) < 0)
        return cli_fail(cli, err);
    return 0;
}

const struct verb verb_kill = {
    .name = "kill",
    .usage = "[--all] ID [SIGNAL]",
    .summary = "Send a signal (default SIGTERM) to a container.",
    .run = cmd_kill,
    .flags = kill_flags,
    .n_flags = ARRAY_SIZE(kill_flags),
    .arg = CLI_ARG_CONTAINER,
};
