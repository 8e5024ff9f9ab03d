/* SPDX-License-Identifier: Apache-2.0 */
/* A container's cgroup as the CLI uses it: create (rootless rules), open, OOM report. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "container.h"
#include "util.h"

static void
warn_cb(void *data, const char *msg)
{
    cli_log(data, "warning", "%s", msg);
}

struct sbx_cgroup_opts
ctr_cgroup_opts(struct cli *cli)
{
    return (struct sbx_cgroup_opts){.root = cli->cgroup_root, .warn = warn_cb, .warn_data = cli};
}

/* No permission to manage cgroups (rootless, a read-only /sys/fs/cgroup) or none mounted. */
static bool
cannot_manage(int r, const struct husk_error *e)
{
    return r == -EACCES || r == -EPERM || r == -EROFS || (e && e->code == ENOENT && r == -ENOENT);
}

int
ctr_cgroup_create(struct cli *cli, const char *id, const struct oci_config *cfg,
                  struct sbx_cgroup **out, struct husk_error **err)
{
    static const struct sbx_cgroup_limits none;
    const struct oci_resources *res = cfg->resources;
    cleanup_free char *path = oci_resources_cgroup_path(res, id);
    struct sbx_cgroup_opts o = ctr_cgroup_opts(cli);
    struct husk_error *e = NULL;
    uint64_t t0 = now_ns();

    *out = NULL;
    int r = sbx_cgroup_create(&o, path, res ? &res->limits : &none, out, &e);
    if (r == 0) {
        cleanup_free char *where = sbx_cgroup_describe(*out);
        cli_log(cli, "debug", "cgroup %s in %s (%s) in %" PRIu64 " us", path, where,
                sbx_cgroup_mode_name(sbx_cgroup_get_mode(*out)), (now_ns() - t0) / 1000);
        return 0;
    }
    if (!cannot_manage(r, e)) {
        *err = e;
        return e->code == 0 ? husk_err_prefix(err, "%s: ", cfg->path) : r;
    }
    cleanup_free char *why = husk_error_string(e);
    husk_error_free(e);
    /* Asked for explicitly: running without them would break a promise. */
    if (res && res->explicit_)
        return husk_err(err, 0,
                        "%s: linux.resources/cgroupsPath need cgroups, but husk cannot manage "
                        "them here (%s)",
                        cfg->path, why);
    cli_log(cli, "warning", "container '%s' runs without a cgroup: %s", id, why);
    return 0;
}

int
ctr_cgroup_open(struct cli *cli, const struct container *c, struct sbx_cgroup **out,
                struct husk_error **err)
{
    *out = NULL;
    if (c->state->cgroup_path == NULL)
        return husk_err(err, 0,
                        "container '%s' has no cgroup (created without permission to "
                        "manage cgroups)",
                        c->id);
    struct sbx_cgroup_opts o = ctr_cgroup_opts(cli);
    int r = sbx_cgroup_open(&o, c->state->cgroup_path, c->state->cgroup_owned, out, err);
    return r < 0 ? husk_err_prefix(err, "container '%s': ", c->id) : 0;
}

void
ctr_cgroup_report_oom(struct cli *cli, const char *id, struct sbx_cgroup *cg,
                      const struct oci_config *cfg)
{
    uint64_t n = cg ? sbx_cgroup_oom_kills(cg) : 0;
    const struct sbx_cg_num *limit = cfg->resources ? &cfg->resources->limits.memory.limit : NULL;
    char lim[64] = "";
    if (n == 0)
        return;
    if (limit && limit->set && limit->v > 0)
        snprintf(lim, sizeof(lim), " of %lld bytes", (long long)limit->v);
    cli_log(cli, "warning",
            "container '%s' ran out of memory: the kernel OOM killer killed %" PRIu64
            " process%s at its memory limit%s",
            id, n, n == 1 ? "" : "es", lim);
}
