/* SPDX-License-Identifier: Apache-2.0 */
/* `husk pause ID`: freeze every process (v1 freezer, cgroup2's cgroup.freeze). */
#define _GNU_SOURCE
#include <stdio.h>

#include "container.h"
#include "util.h"

int
cmd_pause(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("pause");
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    int i = cli_parse_flags(v, NULL, 0, NULL, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (argc - i != 1) {
        fprintf(stderr, "husk pause: expected exactly one container id\n");
        return 2;
    }
    if (ctr_open(cli, argv[i], &c, &err) < 0)
        return cli_fail(cli, err);
    enum ctr_status st = ctr_status(c);
    if (st != CTR_RUNNING) {
        husk_err(&err, 0, "cannot pause container '%s': it is %s, not running", c->id,
                 ctr_status_name(st));
        return cli_fail(cli, err);
    }
    if (ctr_cgroup_open(cli, c, &cg, &err) < 0 || sbx_cgroup_freeze(cg, true, &err) < 0)
        return cli_fail(cli, err);
    return 0;
}
