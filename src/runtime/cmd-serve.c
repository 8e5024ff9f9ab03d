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

#include "cli-doc.h"
#include "cli.h"
#include "faas.h"
#include "pack-bundle.h"
#include "serve-config.h"
#include "util.h"

#define DEFAULT_ADMIN_SOCKET "/run/husk/serve.sock"
#define DEFAULT_USERNS_BASE  0x60000000u /* in systemd's range for container ids */
#define USERNS_RANGE         65536u

struct serve_opts {
    const char *listen, *state, *admin_socket, *admin_group, *token_file, *otlp, *config;
    bool check_config;
    /* function defaults and maxima: sizes and CPUs as text */
    const char *def_memory, *max_memory, *def_max_body, *max_max_body, *def_max_response,
        *max_max_response, *def_cpus, *max_cpus;
    int def_timeout, max_timeout, def_pids, max_pids, def_instances, max_instances;
    struct strlist allow_bind, allow_callback;
    char **binds; /* allow_bind resolved (owned) */
    int userns_base, max_connections, max_client_connections, max_deploys, read_timeout, max_async,
        parallel_starts, loops;
};

#define OPT(f) offsetof(struct serve_opts, f)
#define FN_FLAG(n, t, f, h)                                                                        \
    {                                                                                              \
        n, 0, t, OPT(f), h                                                                         \
    }
static const struct flag serve_flags[] = {
    {"config", 0, FLAG_STRING, OPT(config),
     "read settings from this JSON file (keys: these flags' names, '_' for '-'); flags win"},
    {"check-config", 0, FLAG_BOOL, OPT(check_config),
     "check the settings (file and flags), say what is wrong, and exit"},
    FN_FLAG("default-fn-timeout", FLAG_INT, def_timeout,
            "seconds per call when a deploy says none"),
    FN_FLAG("max-fn-timeout", FLAG_INT, max_timeout, "seconds per call a deploy may ask at most"),
    FN_FLAG("default-fn-memory", FLAG_STRING, def_memory, "memory limit when a deploy says none"),
    FN_FLAG("max-fn-memory", FLAG_STRING, max_memory, "memory limit a deploy may ask at most"),
    FN_FLAG("default-fn-max-body", FLAG_STRING, def_max_body, "request body limit by default"),
    FN_FLAG("max-fn-max-body", FLAG_STRING, max_max_body, "request body limit at most"),
    FN_FLAG("default-fn-max-response", FLAG_STRING, def_max_response,
            "buffered response limit by default"),
    FN_FLAG("max-fn-max-response", FLAG_STRING, max_max_response,
            "buffered response limit at most"),
    FN_FLAG("default-fn-cpus", FLAG_STRING, def_cpus, "CPU limit by default (0.5)"),
    FN_FLAG("max-fn-cpus", FLAG_STRING, max_cpus, "CPU limit at most"),
    FN_FLAG("default-fn-pids", FLAG_INT, def_pids, "process limit by default"),
    FN_FLAG("max-fn-pids", FLAG_INT, max_pids, "process limit at most"),
    FN_FLAG("default-fn-instances", FLAG_INT, def_instances, "instances of a function by default"),
    FN_FLAG("max-fn-instances", FLAG_INT, max_instances, "instances of a function at most"),
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
    {"parallel-starts", 0, FLAG_INT, OPT(parallel_starts),
     "instances started at once, at most (default 4; up to 16)"},
    {"loops", 0, FLAG_INT, OPT(loops),
     "event loops serving the front door, one per core by default (1: the main loop alone; up "
     "to 256)"},
    {"max-async-queue", 0, FLAG_INT, OPT(max_async),
     "asynchronous calls accepted and not yet finished, at most (default 10000)"},
    {"read-timeout", 0, FLAG_INT, OPT(read_timeout),
     "seconds a client has to send a request, twice that between requests (default 30)"},
};

/* The default of --loops: one per core this process may run on. */
static int
online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static void
serve_log(const char *level, const char *msg, void *data)
{
    cli_log(data, level, "%s", msg); /* debug ones only with --debug (log_debug) */
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
/* Each allowed directory as a canonical path, into o->binds (owned). */
static int
resolve_binds(struct serve_opts *o, struct husk_error **err)
{
    const struct strlist *l = &o->allow_bind;
    o->binds = xcalloc(l->n + 1, sizeof(char *));
    for (size_t i = 0; i < l->n; i++) {
        char real[PATH_MAX];
        struct stat st;
        if (realpath(l->v[i], real) == NULL || stat(real, &st) < 0)
            return husk_err(err, errno, "--allow-bind '%s'", l->v[i]);
        if (!S_ISDIR(st.st_mode))
            return husk_err(err, 0, "--allow-bind '%s': not a directory", l->v[i]);
        o->binds[i] = xstrdup(real);
    }
    return 0;
}

static int
check_numbers(const struct serve_opts *o, struct husk_error **err)
{
    if (o->max_connections < 1 || o->max_client_connections < 1 || o->max_deploys < 1 ||
        o->max_async < 1 || o->parallel_starts < 1 || o->parallel_starts > 16 || o->loops < 1 ||
        o->loops > 256)
        return husk_err(err, 0,
                        "--max-connections, --max-connections-per-client, "
                        "--max-deploys-per-minute and --max-async-queue must be at least 1, "
                        "--parallel-starts from 1 to 16, --loops from 1 to 256");
    if (o->userns_base < (int)USERNS_RANGE)
        return husk_err(err, 0,
                        "--userns-base %d: must be at least 65536 (above the host's own "
                        "users)",
                        o->userns_base);
    return 0;
}

/* The function defaults and maxima: sizes ("64M") and CPUs ("0.5") from their text. */
static int
fn_limits(const struct serve_opts *o, struct faas_fn_limits *d, struct faas_fn_limits *m,
          struct husk_error **err)
{
    const struct {
        const char *flag, *text;
        int64_t *out;
    } sizes[] = {{"--default-fn-memory", o->def_memory, &d->memory},
                 {"--max-fn-memory", o->max_memory, &m->memory},
                 {"--default-fn-max-body", o->def_max_body, &d->max_body},
                 {"--max-fn-max-body", o->max_max_body, &m->max_body},
                 {"--default-fn-max-response", o->def_max_response, &d->max_response},
                 {"--max-fn-max-response", o->max_max_response, &m->max_response}};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        uint64_t v;
        if (sizes[i].text && (pack_parse_size(sizes[i].text, &v) < 0 || v == 0))
            return husk_err(err, 0, "%s '%s': expected a size like 64M", sizes[i].flag,
                            sizes[i].text);
        if (sizes[i].text)
            *sizes[i].out = (int64_t)v;
    }
    const struct {
        const char *flag, *text;
        double *out;
    } cpus[] = {{"--default-fn-cpus", o->def_cpus, &d->cpus},
                {"--max-fn-cpus", o->max_cpus, &m->cpus}};
    for (size_t i = 0; i < ARRAY_SIZE(cpus); i++) {
        char *end = NULL;
        double v = cpus[i].text ? strtod(cpus[i].text, &end) : 0;
        if (cpus[i].text && (end == cpus[i].text || *end || !(v >= 0.01 && v <= 1024)))
            return husk_err(err, 0, "%s '%s': expected a number of CPUs from 0.01 to 1024",
                            cpus[i].flag, cpus[i].text);
        *cpus[i].out = v;
    }
    const struct {
        const char *flag;
        int v;
        int64_t *out;
    } ints[] = {{"--default-fn-timeout", o->def_timeout, &d->timeout},
                {"--max-fn-timeout", o->max_timeout, &m->timeout},
                {"--default-fn-pids", o->def_pids, &d->pids},
                {"--max-fn-pids", o->max_pids, &m->pids},
                {"--default-fn-instances", o->def_instances, &d->max},
                {"--max-fn-instances", o->max_instances, &m->max}};
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
        if (ints[i].v < 0)
            return husk_err(err, 0, "%s %d: must be at least 1", ints[i].flag, ints[i].v);
        *ints[i].out = ints[i].v;
    }
    if ((m->timeout && d->timeout > m->timeout) || (m->memory && d->memory > m->memory) ||
        (m->max_body && d->max_body > m->max_body) || (m->pids && d->pids > m->pids) ||
        (m->max && d->max > m->max) || (m->cpus && d->cpus > m->cpus) ||
        (m->max_response && d->max_response > m->max_response))
        return husk_err(err, 0, "a --default-fn-* setting is over its --max-fn-* setting");
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
        r = resolve_binds(o, err);
    struct faas_fn_limits defaults = {0}, maxima = {0};
    int listen_fd = -1, admin_fd = -1;
    if (r == 0)
        r = fn_limits(o, &defaults, &maxima, err);
    if (r == 0 && !o->check_config)
        r = serve_listen_fds(&listen_fd, &admin_fd, err);
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
                                   .allow_bind = o->binds,
                                   .n_allow_bind = o->allow_bind.n,
                                   .userns_base = (uint32_t)o->userns_base,
                                   .userns_slots = (uint32_t)(slots > 16384 ? 16384 : slots),
                                   .max_connections = (unsigned)o->max_connections,
                                   .max_client_connections = (unsigned)o->max_client_connections,
                                   .max_deploys_per_minute = (unsigned)o->max_deploys,
                                   .read_timeout = (unsigned)o->read_timeout,
                                   .max_async_queue = (unsigned)o->max_async,
                                   .parallel_starts = (unsigned)o->parallel_starts,
                                   .loops = (unsigned)o->loops,
                                   .allow_callback = o->allow_callback.v,
                                   .n_allow_callback = o->allow_callback.n,
                                   .otlp_endpoint = o->otlp,
                                   .fn_defaults = defaults,
                                   .fn_maxima = maxima,
                                   .listen_fd = listen_fd,
                                   .admin_fd = admin_fd,
                                   .log = serve_log,
                                   .log_data = cli,
                                   .log_debug = cli->debug};
    return 0;
}

/* --config FILE (or --config=FILE) from the arguments, before the flags are parsed: its
 * settings come first, so that flags win. */
static const char *
config_path(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i] + (argv[i][0] == '-' && argv[i][1] == '-');
        if (strcmp(a, "-config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (str_has_prefix(a, "-config="))
            return a + strlen("-config=");
    }
    return NULL;
}

static void
free_binds(struct serve_opts *o)
{
    for (size_t k = 0; o->binds && o->binds[k]; k++)
        free(o->binds[k]);
    free(o->binds);
    free(o->allow_bind.v);
    free(o->allow_callback.v);
}

static int
cmd_serve(struct cli *cli, int argc, char **argv)
{
    struct serve_opts o = {.listen = "127.0.0.1:8080",
                           .state = "/var/lib/husk",
                           .admin_socket = DEFAULT_ADMIN_SOCKET,
                           .userns_base = (int)DEFAULT_USERNS_BASE,
                           .max_connections = 10000,
                           .max_client_connections = 512,
                           .max_deploys = 60,
                           .read_timeout = 30,
                           .max_async = 10000,
                           .parallel_starts = 4,
                           .loops = online_cpus()};
    struct husk_error *err = NULL;
    struct serve_config config = {0};
    const char *path = config_path(argc, argv);
    if (path &&
        serve_config_load(path, serve_flags, ARRAY_SIZE(serve_flags), &o, &config, &err) < 0) {
        free_binds(&o);
        serve_config_free(&config);
        return cli_fail(cli, err);
    }
    if (config.log_json)
        cli->log_json = true;
    int i = cli_parse_flags(&verb_serve, serve_flags, ARRAY_SIZE(serve_flags), &o, argc, argv);
    if (i == -2 || i < 0 || i < argc) {
        if (i >= 0 && i < argc)
            fprintf(stderr, "husk serve: unexpected argument '%s'\n", argv[i]);
        free_binds(&o);
        serve_config_free(&config);
        return i == -2 ? 0 : 2;
    }
    struct faas_serve_opts so = {.listen_fd = -1, .admin_fd = -1};
    cleanup_free char *token = NULL;
    int r = build_opts(cli, &o, &so, &token, &err);
    if (r == 0 && o.check_config)
        r = faas_serve_check(&so, &err);
    if (r < 0 || o.check_config) {
        free_binds(&o);
        serve_config_free(&config);
        if (r < 0)
            return cli_fail(cli, err);
        if (path)
            printf("husk serve: the settings are valid (%s)\n", path);
        else
            printf("husk serve: the settings are valid\n");
        return 0;
    }
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
    r = faas_serve(&so, &err);
    free_binds(&o);
    serve_config_free(&config);
    if (r < 0)
        return cli_fail(cli, err);
    return 0;
}

/* An example configuration file for the manual (its test checks that --check-config takes it). */
static const char serve_config_example[] = "{\n"
                                           "  \"listen\": \"127.0.0.1:8080\",\n"
                                           "  \"state\": \"/var/lib/husk\",\n"
                                           "  \"max_connections\": 10000,\n"
                                           "  \"default_fn_timeout\": 300,\n"
                                           "  \"max_fn_timeout\": 900,\n"
                                           "  \"default_fn_memory\": \"128M\",\n"
                                           "  \"max_fn_memory\": \"2G\",\n"
                                           "  \"max_fn_instances\": 100,\n"
                                           "  \"allow_callback\": [\"127.0.0.1/32\"],\n"
                                           "  \"log_format\": \"json\"\n"
                                           "}";

/* husk-serve(1)'s CONFIGURATION: the keys of --config's file, from the flags' table. */
static void
serve_man_sections(FILE *out)
{
    man_section(out, "CONFIGURATION");
    man_paragraph(
        out, "husk serve --config FILE reads the settings from a JSON object whose keys are the "
             "flags' names with '_' for '-' (\"max_connections\" for "
             "--max-connections); a flag given on the command line wins over its key. "
             "A bad file, an unknown key or a value of the wrong type is an error that "
             "names the line; --check-config checks the file and the flags and exits.");
    man_paragraph(out, "Function defaults and maxima: the default_fn_* keys fill in what a deploy "
                       "leaves out, the max_fn_* keys refuse a deploy that asks for more (a "
                       "maximum with no default is the default). Sizes are strings with a k, M or "
                       "G suffix (\"64M\"), CPUs a string (\"0.5\"), times whole seconds.");
    man_paragraph(out, "The keys:");
    for (size_t i = 0; i < ARRAY_SIZE(serve_flags); i++) {
        const struct flag *f = &serve_flags[i];
        if (!serve_config_is_key(f))
            continue;
        cleanup_free char *key = xstrdup(f->name);
        for (char *c = key; *c; c++)
            *c = *c == '-' ? '_' : *c;
        man_item(out, key, serve_config_types[f->type], f->help);
    }
    man_item(out, "log_format", "\"text\" or \"json\"",
             "the log's format, as the global --log-format");
    man_example(out, "For example:", serve_config_example);
}

const struct verb verb_serve = {
    .name = "serve",
    .usage = "[--listen HOST:PORT] [--state DIR] [--admin-socket PATH] [--config FILE] [flags]",
    .summary = "Serve functions: calls on the front door, the admin API on the admin socket.",
    .run = cmd_serve,
    .flags = serve_flags,
    .n_flags = ARRAY_SIZE(serve_flags),
    .kind = VERB_HUSK,
    .description =
        "The front door (--listen) takes calls to functions (/function/NAME), /metrics and "
        "/_/health. The admin API (deploy, list, remove, logs: husk fn) listens on a unix socket "
        "that only root may use, unless --admin-group or --admin-token-file open it to more. "
        "Every function runs in a sandbox as an unprivileged host user of its own. The settings "
        "may come from a JSON file (--config; see CONFIGURATION in husk-serve(1)).",
    .man_sections = serve_man_sections,
};
