/* SPDX-License-Identifier: Apache-2.0 */
/* `husk state`: the runtime spec's state of one container, as JSON. */
#define _GNU_SOURCE
#include <stdio.h>

#include "container.h"
#include "util.h"

int
cmd_state(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("state");
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    int i = cli_parse_flags(v, NULL, 0, NULL, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (argc - i != 1) {
        fprintf(stderr, "husk state: expected exactly one container id\n");
        return 2;
    }
    if (ctr_open(cli, argv[i], &c, &err) < 0)
        return cli_fail(cli, err);
    cleanup_json json_t *j = oci_state_json(c->state, ctr_status_name(ctr_status(c)));
    ctr_net_state(c, j);
    cleanup_free char *text = json_dumps(j, JSON_INDENT(2));
    printf("%s\n", text);
    return 0;
}
