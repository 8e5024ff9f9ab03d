/* SPDX-License-Identifier: Apache-2.0 */
/* `husk start`: release a created container's process into its program. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "container.h"
#include "hooks.h"
#include "util.h"

static int
connect_start(struct container *c, struct husk_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cleanup_fd int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return husk_err(err, errno, "socket");
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", c->dir_fd, CTR_START_SOCK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return husk_err(err, errno, "connect to container '%s'", c->id);
    return steal_fd(&fd);
}

static int
cmd_start(struct cli *cli, int argc, char **argv)
{
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    int code;
    if (ctr_verb_open(cli, cli_find_verb("start"), NULL, 0, NULL, argc, argv, 0, &c, &code) < 0)
        return code;
    enum ctr_status st = ctr_status(c);
    if (st != CTR_CREATED) {
        husk_err(&err, 0, "cannot start container '%s': it is %s, not created", c->id,
                 ctr_status_name(st));
        return cli_fail(cli, err);
    }
    cleanup_fd int conn = connect_start(c, &err);
    if (conn < 0)
        return cli_fail(cli, err);
    /* From here the container counts as running, whatever the exec brings. */
    unlinkat(c->dir_fd, CTR_START_SOCK, 0);
    cleanup_(oci_config_freep) struct oci_config *cfg = ctr_config(cli, c);
    if (cfg)
        hooks_prepare_start(cfg, c->state); /* so a failing startContainer hook is named */
    if (sbx_start_conn(conn, cfg ? cfg->sbx : NULL, &err) < 0) {
        husk_err_prefix(&err, "start container '%s': ", c->id);
        return cli_fail(cli, err);
    }
    ctr_hooks_warn(cli, cfg, OCI_HOOK_POSTSTART, c->state, "running");
    return 0;
}

const struct verb verb_start = {
    .name = "start",
    .usage = "ID",
    .summary = "Run the process of a created container.",
    .run = cmd_start,
    .arg = CLI_ARG_CONTAINER,
};
