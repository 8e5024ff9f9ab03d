/* SPDX-License-Identifier: Apache-2.0 */
/* `husk delete [--force] ID`. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "container.h"
#include "util.h"

struct delete_opts {
    bool force;
};

static const struct flag delete_flags[] = {
    {"force", 'f', FLAG_BOOL, offsetof(struct delete_opts, force),
     "kill the container first if it is still running"},
};

/* Kill what is left in the cgroup and remove it; the state stays if that fails, so that a
 * second delete can retry. */
static int
remove_cgroup(struct cli *cli, struct container *c, struct husk_error **err)
{
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    struct husk_error *e = NULL;
    if (c->state->cgroup_path == NULL)
        return 0;
    if (ctr_cgroup_open(cli, c, &cg, &e) < 0) {
        int gone = e->code == ENOENT;
        if (gone) {
            husk_error_free(e);
            return 0;
        }
        *err = e;
        return -EINVAL;
    }
    if (sbx_cgroup_destroy(cg, err) < 0)
        return husk_err_prefix(err, "container '%s': ", c->id);
    return 0;
}

static int
cmd_delete(struct cli *cli, int argc, char **argv)
{
    struct delete_opts o = {0};
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    int code;
    int i = ctr_verb_args(cli_find_verb("delete"), delete_flags, ARRAY_SIZE(delete_flags), &o, argc,
                          argv, 0, &code);
    if (i < 0)
        return code;
    if (ctr_open(cli, argv[i], &c, &err) < 0) {
        /* runc: deleting what is not there with --force is not an error. */
        if (o.force && err && err->code == 0) {
            husk_error_free(err);
            return 0;
        }
        /* A directory without state.json: a `create` killed before it wrote one. */
        if (o.force && err && err->code == ENOENT) {
            husk_error_freep(&err);
            if (ctr_remove_incomplete(cli, argv[i], &err) < 0)
                return cli_fail(cli, err);
            return 0;
        }
        return cli_fail(cli, err);
    }
    enum ctr_status st = ctr_status(c);
    /* A created container never ran user code: runc deletes it without --force too. */
    if ((st == CTR_RUNNING || st == CTR_PAUSED) && !o.force) {
        husk_err(&err, 0, "cannot delete container '%s' that is not stopped: %s (use --force)",
                 c->id, ctr_status_name(st));
        return cli_fail(cli, err);
    }
    if (st != CTR_STOPPED) {
        ctr_kill(c, SIGKILL, true, NULL);
        if (ctr_wait_gone(c, 10000) < 0) {
            husk_err(&err, 0, "container '%s' did not exit after SIGKILL", c->id);
            return cli_fail(cli, err);
        }
    }
    cleanup_(oci_config_freep) struct oci_config *cfg = ctr_config(cli, c);
    if (remove_cgroup(cli, c, &err) < 0 || ctr_net_delete(cli, c, &err) < 0 ||
        ctr_destroy(c, &err) < 0)
        return cli_fail(cli, err);
    ctr_hooks_warn(cli, cfg, OCI_HOOK_POSTSTOP, c->state, "stopped");
    return 0;
}

const struct verb verb_delete = {
    .name = "delete",
    .usage = "[--force] ID",
    .summary = "Delete a stopped container (--force: any container).",
    .run = cmd_delete,
    .flags = delete_flags,
    .n_flags = ARRAY_SIZE(delete_flags),
    .arg = CLI_ARG_CONTAINER,
};
