/* SPDX-License-Identifier: Apache-2.0 */
/* husk serve: run functions behind an HTTP gateway (the faas layer does the work). */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "faas.h"
#include "util.h"

struct serve_opts {
    const char *listen, *state;
};

static const struct flag serve_flags[] = {
    {"listen", 0, FLAG_STRING, offsetof(struct serve_opts, listen),
     "address to listen on (default 127.0.0.1:8080)"},
    {"state", 0, FLAG_STRING, offsetof(struct serve_opts, state),
     "registry directory (default /var/lib/husk)"},
};

static void
serve_log(const char *level, const char *msg, void *data)
{
    struct cli *cli = data;
    if (cli->debug || level[0] != 'd')
        cli_log(cli, level, "%s", msg);
}

int
cmd_serve(struct cli *cli, int argc, char **argv)
{
    static const struct verb v = {"serve", "[--listen HOST:PORT] [--state DIR]", "", NULL};
    struct serve_opts o = {.listen = "127.0.0.1:8080", .state = "/var/lib/husk"};
    int i = cli_parse_flags(&v, serve_flags, ARRAY_SIZE(serve_flags), &o, argc, argv);
    if (i == -2)
        return 0;
    if (i < 0)
        return 2;
    if (i < argc) {
        fprintf(stderr, "husk serve: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    cleanup_fd int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    struct husk_error *err = NULL;
    if (sfd < 0) {
        perror("husk serve: signalfd");
        return 1;
    }
    struct faas_serve_opts so = {.listen = o.listen,
                                 .state_dir = o.state,
                                 .cgroup_root = cli->cgroup_root,
                                 .signal_fd = sfd,
                                 .log = serve_log,
                                 .log_data = cli};
    if (faas_serve(&so, &err) < 0)
        return cli_fail(cli, err);
    return 0;
}
