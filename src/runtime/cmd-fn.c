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
#include "oci.h"
#include "util.h"

struct fn_opts {
    const char *url, *bundle;
    int timeout, max_body;
    struct strlist env;
};

static const struct flag fn_flags[] = {
    {"url", 0, FLAG_STRING, offsetof(struct fn_opts, url),
     "daemon address (default http://127.0.0.1:8080)"},
    {"bundle", 0, FLAG_STRING, offsetof(struct fn_opts, bundle), "deploy: the OCI bundle"},
    {"timeout", 0, FLAG_INT, offsetof(struct fn_opts, timeout), "deploy: seconds per invocation"},
    {"max-body", 0, FLAG_INT, offsetof(struct fn_opts, max_body), "deploy: request body limit"},
    {"env", 'e', FLAG_STRINGS, offsetof(struct fn_opts, env), "deploy: K=V (repeatable)"},
};

/* One request with Connection: close; returns the status, the body in *out. */
static int
http_call(const char *url, const char *method, const char *path, const char *body, size_t len,
          char **out, size_t *out_len, struct husk_error **err)
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

static char *
deploy_body(const char *name, const struct fn_opts *o, struct husk_error **err)
{
    char abs[PATH_MAX];
    if (o->bundle == NULL)
        return husk_err(err, 0, "fn deploy: --bundle is required"), NULL;
    if (realpath(o->bundle, abs) == NULL)
        return husk_err(err, errno, "--bundle '%s'", o->bundle), NULL;
    cleanup_json json_t *j =
        json_pack("{s:s, s:s, s:s}", "name", name, "bundle", abs, "contract", "stdio");
    if (o->timeout)
        json_object_set_new(j, "timeout", json_integer(o->timeout));
    if (o->max_body)
        json_object_set_new(j, "max_body", json_integer(o->max_body));
    json_t *env = json_array();
    for (size_t i = 0; i < o->env.n; i++)
        json_array_append_new(env, json_string(o->env.v[i]));
    json_object_set_new(j, "env", env);
    return json_dumps(j, JSON_COMPACT);
}

int
cmd_fn(struct cli *cli, int argc, char **argv)
{
    static const struct verb v = {"fn", "deploy|ls|get|rm|invoke [flags] [NAME]", "", NULL};
    struct fn_opts o = {.url = "http://127.0.0.1:8080"};
    struct husk_error *err = NULL;
    if (argc < 1) {
        fprintf(stderr, "usage: husk fn deploy|ls|get|rm|invoke [flags] [NAME]\n");
        return 2;
    }
    const char *sub = argv[0];
    int i = cli_parse_flags(&v, fn_flags, ARRAY_SIZE(fn_flags), &o, argc - 1, argv + 1);
    if (i == -2)
        return 0;
    if (i < 0)
        return 2;
    const char *name = i + 1 < argc ? argv[i + 1] : NULL;
    /* Flags may also follow NAME: `husk fn invoke NAME --url ...`. */
    if (name && i + 2 < argc) {
        int j = cli_parse_flags(&v, fn_flags, ARRAY_SIZE(fn_flags), &o, argc - i - 2, argv + i + 2);
        if (j < 0)
            return j == -2 ? 0 : 2;
        if (j < argc - i - 2) {
            fprintf(stderr, "husk fn %s: unexpected argument '%s'\n", sub, argv[i + 2 + j]);
            return 2;
        }
    }
    bool needs_name = strcmp(sub, "ls") != 0;
    if (needs_name && name == NULL) {
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
        if ((body = deploy_body(name, &o, &err)) == NULL)
            return cli_fail(cli, err);
        len = strlen(body);
    } else if (strcmp(sub, "invoke") == 0) {
        method = "POST";
        path = xasprintf("/function/%s", name);
        body = read_stdin(&len);
    } else {
        fprintf(stderr, "husk fn: unknown subcommand '%s'\n", sub);
        return 2;
    }
    free(o.env.v);
    int status = http_call(o.url, method, path, body, len, &out, &out_len, &err);
    if (status < 0)
        return cli_fail(cli, err);
    fwrite(out, 1, out_len, status < 300 ? stdout : stderr);
    if (status >= 300) {
        fprintf(stderr, "husk fn %s: HTTP %d\n", sub, status);
        return 1;
    }
    return 0;
}
