/* SPDX-License-Identifier: Apache-2.0 */
/* `husk state`: the runtime spec's state of one container, as JSON. */
#define _GNU_SOURCE
#include <stdio.h>

#include "container.h"
#include "util.h"

static int
cmd_state(struct cli *cli, int argc, char **argv)
{
    cleanup_(ctr_freep) struct container *c = NULL;
    int code;
    if (ctr_verb_open(cli, cli_find_verb("state"), NULL, 0, NULL, argc, argv, 0, &c, &code) < 0)
        return code;
    cleanup_json json_t *j = oci_state_json(c->state, ctr_status_name(ctr_status(c)));
    ctr_net_state(c, j);
    cleanup_free char *text = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", text);
    return 0;
}

const struct verb verb_state = {
    .name = "state",
    .usage = "ID",
    .summary = "Print the state of a container as JSON.",
    .run = cmd_state,
    .arg = CLI_ARG_CONTAINER,
};
