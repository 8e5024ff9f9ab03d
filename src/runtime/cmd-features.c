/* SPDX-License-Identifier: Apache-2.0 */
/* `husk features`. */
#define _GNU_SOURCE
#include <stdio.h>

#include "cli.h"
#include "oci.h"
#include "util.h"

static int
cmd_features(struct cli *cli, int argc, char **argv)
{
    (void)cli;
    int i = cli_parse_flags(cli_find_verb("features"), NULL, 0, NULL, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    cleanup_json json_t *f = oci_features();
    cleanup_free char *text = json_dumps(f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    return 0;
}

const struct verb verb_features = {
    .name = "features",
    .usage = "",
    .summary = "Print what this runtime supports, as JSON.",
    .run = cmd_features,
};
