/* SPDX-License-Identifier: Apache-2.0 */
/* husk fn: deploy, list, show, remove and invoke functions through a running `husk serve`. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "pack-bundle.h"
#include "oci.h"
#include "util.h"

struct fn_opts {
    const char *url, *bundle, *image, *dir, *contract, *memory, *cpus;
    int timeout, max_body, port, pids, concurrency, min, max, idle, queue, init_timeout;
    bool follow;
    struct strlist env;
};

#define INT_FLAG(n, f, h)                                                                          \
    {                                                                                              \
        n, 0, FLAG_INT, offsetof(struct fn_opts, f), h                                             \
    }
static const struct flag fn_flags[] = {
    {"url", 0, FLAG_STRING, offsetof(struct fn_opts, url),
     "daemon address (default http://127.0.0.1:8080)"},
    {"bundle", 0, FLAG_STRING, offsetof(struct fn_opts, bundle), "deploy: an OCI bundle"},
    {"image", 0, FLAG_STRING, offsetof(struct fn_opts, image),
     "deploy: an erofs or squashfs image (husk pack -f erofs), with -- COMMAND"},
    {"dir", 0, FLAG_STRING, offsetof(struct fn_opts, dir),
     "deploy: a root filesystem directory, with -- COMMAND"},
    {"contract", 0, FLAG_STRING, offsetof(struct fn_opts, contract),
     "deploy: stdio (default), cgi or http (a server on $PORT)"},
    {"env", 'e', FLAG_STRINGS, offsetof(struct fn_opts, env), "deploy: K=V (repeatable)"},
    {"memory", 0, FLAG_STRING, offsetof(struct fn_opts, memory), "deploy: memory limit (64M)"},
    {"cpus", 0, FLAG_STRING, offsetof(struct fn_opts, cpus), "deploy: CPU limit (0.5)"},
    INT_FLAG("pids", pids, "deploy: process limit"),
    INT_FLAG("port", port, "deploy: the http contract's port (default 8080)"),
    INT_FLAG("timeout", timeout, "deploy: seconds per invocation (default 300)"),
    INT_FLAG("max-body", max_body, "deploy: request body limit in bytes (default 6 MiB)"),
    INT_FLAG("concurrency", concurrency, "deploy: calls per instance (stdio 1, http 100)"),
    INT_FLAG("min", min, "deploy: instances kept ready (default 0)"),
    INT_FLAG("max", max, "deploy: instances at most (default 10)"),
    INT_FLAG("idle", idle, "deploy: seconds before an idle instance stops (default 300)"),
    INT_FLAG("queue", queue, "deploy: calls that may wait (default 10 x concurrency x max)"),
    INT_FLAG("init-timeout", init_timeout, "deploy: seconds for a server to listen (default 10)"),
    {"follow", 'f', FLAG_BOOL, offsetof(struct fn_opts, follow), "logs: keep printing new lines"},
};

/* One request with Connection: close; returns the status, the body in *out. */
static int
http_call(const char *url, const char *method, const char *path, const char *body, size_t len,
          char **out, size_t *out_len, char **log_offset, struct husk_error **err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    unsigned port = 0;
    if (sscanf(url, "http://%63[0-9.]:%u", host, &port) != 2 || port > 65535 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return husk_err(err, 0, "--url '%s': expected http://IPV4:PORT", url);
    sa.sin_port = htons(port);
    cleanup_fd int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return husk_err(err, errno, "connect to %s", url);
    cleanup_free char *head = xasprintf("%s %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Length: %zu\r\n"
                                        "Connection: close\r\n\r\n",
                                        method, path, host, port, len);
    int r = write_all(fd, head, strlen(head));
    if (r == 0 && len)
        r = write_all(fd, body, len);
    if (r < 0 && r != -EPIPE)
        return husk_err(err, -r, "send request to %s", url);
    size_t cap = 65536, n = 0;
    cleanup_free char *resp = xmalloc(cap + 1);
    ssize_t rd;
    while ((rd = read(fd, resp + n, cap - n)) > 0 || (rd < 0 && errno == EINTR)) {
        n += rd > 0 ? rd : 0;
        if (n == cap)
            resp = xrealloc(resp, (cap *= 2) + 1);
    }
    resp[n] = 0;
    int status = 0;
    char *sep = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || sep == NULL)
        return husk_err(err, 0, "%s: malformed response", url);
    *sep = 0;
    char *lo = strcasestr(resp, "\r\nX-Log-Offset: ");
    if (lo && log_offset)
        *log_offset = xstrndup(lo + 16, strcspn(lo + 16, "\r"));
    *out_len = n - (sep + 4 - resp);
    *out = xmalloc(*out_len + 1);
    memcpy(*out, sep + 4, *out_len);
    (*out)[*out_len] = 0;
    return status;
}

static char *
read_stdin(size_t *len)
{
    size_t cap = 65536;
    char *buf = xmalloc(cap);
    ssize_t rd;
    *len = 0;
    while ((rd = read(0, buf + *len, cap - *len)) > 0 || (rd < 0 && errno == EINTR)) {
        *len += rd > 0 ? rd : 0;
        if (*len == cap)
            buf = xrealloc(buf, cap *= 2);
    }
    return buf;
}

static int
abs_path(json_t *j, const char *key, const char *path, struct husk_error **err)
{
    char abs[PATH_MAX];
    if (path == NULL)
        return 0;
    if (realpath(path, abs) == NULL)
        return husk_err(err, errno, "--%s '%s'", key, path);
    json_object_set_new(j, key, json_string(abs));
    return 0;
}

static int
deploy_limits(json_t *j, const struct fn_opts *o, struct husk_error **err)
{
    const struct {
        const char *key;
        int v;
    } ints[] = {{"timeout", o->timeout},
                {"max_body", o->max_body},
                {"port", o->port},
                {"pids", o->pids},
                {"concurrency", o->concurrency},
                {"min", o->min},
                {"max", o->max},
                {"idle", o->idle},
                {"queue", o->queue},
                {"init_timeout", o->init_timeout}};
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        if (ints[i].v != -1)
            json_object_set_new(j, ints[i].key, json_integer(ints[i].v));
    uint64_t mem;
    if (o->memory && pack_parse_size(o->memory, &mem) < 0)
        return husk_err(err, 0, "--memory '%s': expected bytes or a size like 64M", o->memory);
    if (o->memory)
        json_object_set_new(j, "memory", json_integer((json_int_t)mem));
    char *end = NULL;
    double cpus = o->cpus ? strtod(o->cpus, &end) : 0;
    if (o->cpus && (end == o->cpus || *end))
        return husk_err(err, 0, "--cpus '%s': expected a number like 0.5", o->cpus);
    if (o->cpus)
        json_object_set_new(j, "cpus", json_real(cpus));
    return 0;
}

static char *
deploy_body(const char *name, const struct fn_opts *o, char **command, struct husk_error **err)
{
    cleanup_json json_t *j = json_pack("{s:s}", "name", name);
    if (!!o->bundle + !!o->image + !!o->dir != 1)
        return husk_err(err, 0, "fn deploy: one of --bundle, --image or --dir is required"), NULL;
    if (abs_path(j, "bundle", o->bundle, err) < 0 || abs_path(j, "image", o->image, err) < 0 ||
        abs_path(j, "dir", o->dir, err) < 0 || deploy_limits(j, o, err) < 0)
        return NULL;
    if (o->contract)
        json_object_set_new(j, "contract", json_string(o->contract));
    json_t *env = json_array();
    for (size_t i = 0; i < o->env.n; i++)
        json_array_append_new(env, json_string(o->env.v[i]));
    json_object_set_new(j, "env", env);
    if (command && *command) {
        json_t *cmd = json_array();
        for (char **c = command; *c; c++)
            json_array_append_new(cmd, json_string(*c));
        json_object_set_new(j, "command", cmd);
    }
    return json_dumps(j, JSON_COMPACT);
}

/* `husk fn logs NAME [-f]`: the log from the start; with -f, new lines as they come. */
static int
logs(struct cli *cli, const struct fn_opts *o, const char *name)
{
    uint64_t since = 0;
    for (;;) {
        struct husk_error *err = NULL;
        cleanup_free char *path =
            xasprintf("/system/logs/%s?since=%llu", name, (unsigned long long)since);
        cleanup_free char *out = NULL, *next = NULL;
        size_t out_len = 0;
        int status = http_call(o->url, "GET", path, NULL, 0, &out, &out_len, &next, &err);
        if (status < 0)
            return cli_fail(cli, err);
        if (status != 200) {
            fprintf(stderr, "husk fn logs: HTTP %d: %s", status, out);
            return 1;
        }
        fwrite(out, 1, out_len, stdout);
        fflush(stdout);
        if (!o->follow)
            return 0;
        if (next)
            parse_u64(next, &since);
        if (out_len == 0)
            usleep(250000);
    }
}

/* Flags before and after NAME; what follows "--" is the command (deploy). */
static int
parse_args(int argc, char **argv, struct fn_opts *o, const char **name, char ***command)
{
    static const struct verb v = {
        "fn", "deploy|ls|get|rm|invoke|logs [flags] [NAME] [-- COMMAND [ARG...]]", "", NULL};
    for (int k = 1; k < argc; k++)
        if (strcmp(argv[k], "--") == 0) {
            *command = argv + k + 1;
            argc = k;
            break;
        }
    int i = cli_parse_flags(&v, fn_flags, ARRAY_SIZE(fn_flags), o, argc - 1, argv + 1);
    if (i < 0)
        return i;
    *name = i + 1 < argc ? argv[i + 1] : NULL;
    if (*name && i + 2 < argc) {
        int j = cli_parse_flags(&v, fn_flags, ARRAY_SIZE(fn_flags), o, argc - i - 2, argv + i + 2);
        if (j < 0)
            return j;
        if (j < argc - i - 2) {
            fprintf(stderr, "husk fn %s: unexpected argument '%s'\n", argv[0], argv[i + 2 + j]);
            return -1;
        }
    }
    return 0;
}

int
cmd_fn(struct cli *cli, int argc, char **argv)
{
    struct fn_opts o = {.url = "http://127.0.0.1:8080"};
    int *ints[] = {&o.timeout, &o.max_body, &o.port, &o.pids,  &o.concurrency,
                   &o.min,     &o.max,      &o.idle, &o.queue, &o.init_timeout};
    for (size_t k = 0; k < ARRAY_SIZE(ints); k++)
        *ints[k] = -1; /* not given: the daemon's default */
    struct husk_error *err = NULL;
    const char *name = NULL;
    char **command = NULL;
    if (argc < 1) {
        fprintf(stderr, "usage: husk fn deploy|ls|get|rm|invoke|logs [flags] [NAME]\n");
        return 2;
    }
    const char *sub = argv[0];
    int r = parse_args(argc, argv, &o, &name, &command);
    if (r < 0)
        return r == -2 ? 0 : 2;
    if (strcmp(sub, "ls") != 0 && name == NULL) {
        fprintf(stderr, "husk fn %s: NAME is required\n", sub);
        return 2;
    }
    cleanup_free char *path = NULL, *body = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    const char *method = "GET";
    if (strcmp(sub, "ls") == 0) {
        path = xstrdup("/system/functions");
    } else if (strcmp(sub, "get") == 0) {
        path = xasprintf("/system/functions/%s", name);
    } else if (strcmp(sub, "rm") == 0) {
        method = "DELETE";
        path = xasprintf("/system/functions/%s", name);
    } else if (strcmp(sub, "deploy") == 0) {
        method = "POST";
        path = xstrdup("/system/functions");
        body = deploy_body(name, &o, command, &err);
        free(o.env.v);
        if (body == NULL)
            return cli_fail(cli, err);
        len = strlen(body);
    } else if (strcmp(sub, "invoke") == 0) {
        method = "POST";
        path = xasprintf("/function/%s", name);
        body = read_stdin(&len);
    } else if (strcmp(sub, "logs") == 0) {
        return logs(cli, &o, name);
    } else {
        fprintf(stderr, "husk fn: unknown subcommand '%s'\n", sub);
        return 2;
    }
    int status = http_call(o.url, method, path, body, len, &out, &out_len, NULL, &err);
    if (status < 0)
        return cli_fail(cli, err);
    fwrite(out, 1, out_len, status < 300 ? stdout : stderr);
    if (status >= 300) {
        fprintf(stderr, "husk fn %s: HTTP %d\n", sub, status);
        return 1;
    }
    return 0;
}
