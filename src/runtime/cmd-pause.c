/* SPDX-License-Identifier: Apache-2.0 */
/* `husk pause ID` and `husk resume ID`: freeze and thaw every process (v1 freezer, or
 * cgroup2's cgroup.freeze where no v1 freezer exists). */
#define _GNU_SOURCE
#include <stdio.h>

#include "container.h"
#include "util.h"

static int
set_frozen(struct cli *cli, const char *name, bool frozen, int argc, char **argv)
{
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    enum ctr_status want = frozen ? CTR_RUNNING : CTR_PAUSED;
    int code;
    if (ctr_verb_open(cli, cli_find_verb(name), NULL, 0, NULL, argc, argv, 0, &c, &code) < 0)
        return code;
    enum ctr_status st = ctr_status(c);
    if (st != want) {
        husk_err(&err, 0, "cannot %s container '%s': it is %s, not %s", name, c->id,
                 ctr_status_name(st), ctr_status_name(want));
        return cli_fail(cli, err);
    }
    if (ctr_cgroup_open(cli, c, &cg, &err) < 0 || sbx_cgroup_freeze(cg, frozen, &err) < 0)
        return cli_fail(cli, err);
    return 0;
}

static int
cmd_pause(struct cli *cli, int argc, char **argv)
{
    return set_frozen(cli, "pause", true, argc, argv);
}

static int
cmd_resume(struct cli *cli, int argc, char **argv)
{
    return set_frozen(cli, "resume", false, argc, argv);
}

const struct verb verb_pause = {
    .name = "pause",
    .usage = "ID",
    .summary = "Freeze every process of a container.",
    .run = cmd_pause,
    .arg = CLI_ARG_CONTAINER,
};

const struct verb verb_resume = {
    .name = "resume",
    .usage = "ID",
    .summary = "Thaw a paused container.",
    .run = cmd_resume,
    .arg = CLI_ARG_CONTAINER,
};
