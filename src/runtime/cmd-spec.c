/* SPDX-License-Identifier: Apache-2.0 */
/* `husk spec`: write a default config.json into the bundle. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "oci.h"
#include "util.h"

struct spec_opts {
    const char *bundle;
    bool rootless;
};

static const struct flag spec_flags[] = {
    {"bundle", 'b', FLAG_STRING, offsetof(struct spec_opts, bundle),
     "directory to write config.json in (default: current directory)"},
    {"rootless", 0, FLAG_BOOL, offsetof(struct spec_opts, rootless),
     "a config for running as an unprivileged user"},
};

static int
cmd_spec(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("spec");
    struct spec_opts o = {.bundle = "."};
    struct husk_error *err = NULL;
    int i = cli_parse_flags(v, spec_flags, ARRAY_SIZE(spec_flags), &o, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (i != argc) {
        fprintf(stderr, "husk spec: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    cleanup_json json_t *spec = oci_spec_default(o.rootless);
    cleanup_free char *text = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    cleanup_free char *path = xasprintf("%s/config.json", o.bundle);
    cleanup_fd int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            husk_err(&err, 0, "%s already exists; remove it first", path);
        else
            husk_err(&err, errno, "create %s", path);
        return cli_fail(cli, err);
    }
    if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0) {
        husk_err(&err, errno, "write %s", path);
        unlink(path);
        return cli_fail(cli, err);
    }
    return 0;
}

const struct verb verb_spec = {
    .name = "spec",
    .usage = "[--bundle DIR] [--rootless]",
    .summary = "Write a default config.json.",
    .run = cmd_spec,
    .flags = spec_flags,
    .n_flags = ARRAY_SIZE(spec_flags),
};
