/* SPDX-License-Identifier: Apache-2.0 */
/* husk serve: run functions behind an HTTP gateway (the faas layer does the work). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "faas.h"
#include "util.h"

#define DEFAULT_ADMIN_SOCKET "/run/husk/serve.sock"
#define DEFAULT_USERNS_BASE  0x60000000u /* in systemd's range for container ids */
#define USERNS_RANGE         65536u

struct serve_opts {
    const char *listen, *state, *admin_socket, *admin_group, *token_file, *otlp;
    struct strlist allow_bind, allow_callback;
    int userns_base, max_connections, max_client_connections, max_deploys, read_timeout, max_async;
};

#define OPT(f) offsetof(struct serve_opts, f)
static const struct flag serve_flags[] = {
    {"listen", 0, FLAG_STRING, OPT(listen),
     "the front door, HOST:PORT or [V6]:PORT (default 127.0.0.1:8080; 'none': no TCP)"},
    {"state", 0, FLAG_STRING, OPT(state), "registry directory (default /var/lib/husk)"},
    {"admin-socket", 0, FLAG_STRING, OPT(admin_socket),
     "the admin API's unix socket (default " DEFAULT_ADMIN_SOCKET ", mode 0600)"},
    {"admin-group", 0, FLAG_STRING, OPT(admin_group),
     "a group whose members may use the admin socket (mode 0660) and deploy their own files"},
    {"admin-token-file", 0, FLAG_STRING, OPT(token_file),
     "serve the admin API on the front door too, to 'Authorization: Bearer' this file's token"},
    {"allow-bind", 0, FLAG_STRINGS, OPT(allow_bind),
     "a directory whose subtrees bundles may bind-mount (repeatable; default none)"},
    {"userns-base", 0, FLAG_INT, OPT(userns_base),
     "first host uid/gid of the functions' id ranges (65536 each; default 1610612736)"},
    {"max-connections", 0, FLAG_INT, OPT(max_connections),
     "client connections at most (default 10000)"},
    {"max-connections-per-client", 0, FLAG_INT, OPT(max_client_connections),
     "connections at most from one client address (default 512)"},
    {"max-deploys-per-minute", 0, FLAG_INT, OPT(max_deploys), "deploys at most (default 60)"},
    {"allow-callback", 0, FLAG_STRINGS, OPT(allow_callback),
     "a CIDR asynchronous calls' callbacks may reach though it is loopback or link-local "
     "(repeatable)"},
    {"otlp-endpoint", 0, FLAG_STRING, OPT(otlp),
     "export a span per call to this OTLP/HTTP collector URL (JSON, e.g. "
     "http://127.0.0.1:4318/v1/traces)"},
    {"max-async-queue", 0, FLAG_INT, OPT(max_async),
     "asynchronous calls accepted and not yet finished, at most (default 10000)"},
    {"read-timeout", 0, FLAG_INT, OPT(read_timeout),
     "seconds a client has to send a request, twice that between requests (default 30)"},
};

static void
serve_log(const char *level, const char *msg, void *data)
{
    struct cli *cli = data;
    if (cli->debug || level[0] != 'd')
        cli_log(cli, level, "%s", msg);
}

/* The token: a root-owned file no one else may read, at least 16 characters. */
static int
read_token(const char *path, char **out, struct husk_error **err)
{
    cleanup_fd int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return husk_err(err, errno, "--admin-token-file '%s'", path);
    if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077))
        return husk_err(err, 0,
                        "--admin-token-file '%s': must be a regular file owned by root that no "
                        "one else may read or write (chmod 600)",
                        path);
    cleanup_free char *text = NULL;
    size_t len;
    cleanup_free char *self = xasprintf("/proc/self/fd/%d", fd); /* the file checked above */
    int r = read_file_at(AT_FDCWD, self, &text, &len);
    if (r < 0)
        return husk_err(err, -r, "--admin-token-file '%s'", path);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    if (len < 16 || strpbrk(text, "\r\n\t "))
        return husk_err(err, 0,
                        "--admin-token-file '%s': the token must be one line of at least 16 "
                        "characters without spaces",
                        path);
    *out = steal_ptr(&text);
    return 0;
}

static int
resolve_group(const char *name, gid_t *gid, struct husk_error **err)
{
    uint64_t n;
    struct group *g = getgrnam(name);
    if (g) {
        *gid = g->gr_gid;
        return 0;
    }
    if (parse_u64(name, &n) == 0 && n < UINT32_MAX) {
        *gid = (gid_t)n;
        return 0;
    }
    return husk_err(err, 0, "--admin-group '%s': no such group", name);
}

/* Each allowed directory as a canonical path. */
static int
resolve_binds(struct strlist *l, struct husk_error **err)
{
    for (size_t i = 0; i < l->n; i++) {
        char real[PATH_MAX];
        struct stat st;
        if (realpath(l->v[i], real) == NULL || stat(real, &st) < 0)
            return husk_err(err, errno, "--allow-bind '%s'", l->v[i]);
        if (!S_ISDIR(st.st_mode))
            return husk_err(err, 0, "--allow-bind '%s': not a directory", l->v[i]);
        l->v[i] = xstrdup(real);
    }
    return 0;
}

static int
check_numbers(const struct serve_opts *o, struct husk_error **err)
{
    if (o->max_connections < 1 || o->max_client_connections < 1 || o->max_deploys < 1 ||
        o->max_async < 1)
        return husk_err(err, 0,
                        "--max-connections, --max-connections-per-client, "
                        "--max-deploys-per-minute and --max-async-queue must be at least 1");
    if (o->userns_base < (int)USERNS_RANGE)
        return husk_err(err, 0,
                        "--userns-base %d: must be at least 65536 (above the host's own "
                        "users)",
                        o->userns_base);
    return 0;
}

static int
build_opts(struct cli *cli, struct serve_opts *o, struct faas_serve_opts *so, char **token,
           struct husk_error **err)
{
    int r = check_numbers(o, err);
    if (r == 0 && o->token_file)
        r = read_token(o->token_file, token, err);
    if (r == 0 && o->admin_group)
        r = resolve_group(o->admin_group, &so->admin_gid, err);
    if (r == 0)
        r = resolve_binds(&o->allow_bind, err);
    if (r < 0)
        return r;
    uint64_t slots = (0xffffffffull - (uint64_t)o->userns_base) / USERNS_RANGE;
    *so = (struct faas_serve_opts){.listen = strcmp(o->listen, "none") == 0 ? NULL : o->listen,
                                   .admin_socket = o->admin_socket,
                                   .admin_group_set = o->admin_group != NULL,
                                   .admin_gid = so->admin_gid,
                                   .token = *token,
                                   .state_dir = o->state,
                                   .cgroup_root = cli->cgroup_root,
                                   .allow_bind = o->allow_bind.v,
                                   .n_allow_bind = o->allow_bind.n,
                                   .userns_base = (uint32_t)o->userns_base,
                                   .userns_slots = (uint32_t)(slots > 16384 ? 16384 : slots),
                                   .max_connections = (unsigned)o->max_connections,
                                   .max_client_connections = (unsigned)o->max_client_connections,
                                   .max_deploys_per_minute = (unsigned)o->max_deploys,
                                   .read_timeout = (unsigned)o->read_timeout,
                                   .max_async_queue = (unsigned)o->max_async,
                                   .allow_callback = o->allow_callback.v,
                                   .n_allow_callback = o->allow_callback.n,
                                   .otlp_endpoint = o->otlp,
                                   .log = serve_log,
                                   .log_data = cli};
    return 0;
}

int
cmd_serve(struct cli *cli, int argc, char **argv)
{
    static const struct verb v = {
        "serve", "[--listen HOST:PORT] [--state DIR] [--admin-socket PATH] [flags]",
        "Serve functions: calls on the front door, the admin API on the admin socket.", NULL};
    struct serve_opts o = {.listen = "127.0.0.1:8080",
                           .state = "/var/lib/husk",
                           .admin_socket = DEFAULT_ADMIN_SOCKET,
                           .userns_base = (int)DEFAULT_USERNS_BASE,
                           .max_connections = 10000,
                           .max_client_connections = 512,
                           .max_deploys = 60,
                           .read_timeout = 30,
                           .max_async = 10000};
    int i = cli_parse_flags(&v, serve_flags, ARRAY_SIZE(serve_flags), &o, argc, argv);
    if (i == -2)
        return 0;
    if (i < 0)
        return 2;
    if (i < argc) {
        fprintf(stderr, "husk serve: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    struct husk_error *err = NULL;
    struct faas_serve_opts so = {0};
    cleanup_free char *token = NULL;
    if (build_opts(cli, &o, &so, &token, &err) < 0)
        return cli_fail(cli, err);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    cleanup_fd int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("husk serve: signalfd");
        return 1;
    }
    so.signal_fd = sfd;
    int r = faas_serve(&so, &err);
    for (size_t k = 0; k < o.allow_bind.n; k++)
        free(o.allow_bind.v[k]);
    free(o.allow_bind.v);
    if (r < 0)
        return cli_fail(cli, err);
    return 0;
}
