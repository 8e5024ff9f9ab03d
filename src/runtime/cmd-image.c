/* SPDX-License-Identifier: Apache-2.0 */
/* `husk image`: OCI image layouts into husk's content store, and bundles or images out of it. */
#define _GNU_SOURCE
#include <stdio.h>

#include "cli.h"

int
cmd_image(struct cli *cli, int argc, char **argv)
{
    fprintf(stderr, "husk image: not yet\n");
    return 2;
}
