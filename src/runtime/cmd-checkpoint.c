/* SPDX-License-Identifier: Apache-2.0 */
/* `husk checkpoint` and `husk restore`: no engine path the tests drive needs them; say so. */
#include "cli.h"
#include "util.h"

static int
cmd_checkpoint(struct cli *cli, int argc, char **argv)
{
    struct husk_error *err = NULL;
    (void)argc;
    (void)argv;
    husk_err(&err, 0, "checkpoint and restore are not supported by husk");
    return cli_fail(cli, err);
}

const struct verb verb_checkpoint = {
    .name = "checkpoint",
    .usage = "ID",
    .summary = "Not supported (answers with a clear error).",
    .run = cmd_checkpoint,
    .arg = CLI_ARG_CONTAINER,
};

const struct verb verb_restore = {
    .name = "restore",
    .usage = "ID",
    .summary = "Not supported (answers with a clear error).",
    .run = cmd_checkpoint,
    .arg = CLI_ARG_CONTAINER,
};
