/* SPDX-License-Identifier: Apache-2.0 */
/* husk fn: deploy, list, show, remove and invoke functions through a running `husk serve`. */
#define _GNU_SOURCE
#include <errno.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli.h"
#include "pack-bundle.h"
#include "oci.h"
#include "util.h"

#define DEFAULT_URL "unix:/run/husk/serve.sock"

struct fn_opts {
    const char *url, *token_file, *bundle, *image, *dir, *wasm, *contract, *memory, *cpus, *handler,
        *on_failure, *callback;
    int timeout, max_body, max_response, port, pids, concurrency, min, max, idle, queue,
        init_timeout;
    bool follow, no_landlock, async;
    struct strlist env, wasm_dirs;
    char *token; /* read from token_file */
};

#define INT_FLAG(n, f, h)                                                                          \
    {                                                                                              \
        n, 0, FLAG_INT, offsetof(struct fn_opts, f), h                                             \
    }
static const struct flag fn_flags[] = {
    {"url", 0, FLAG_STRING, offsetof(struct fn_opts, url),
     "the daemon: unix:/PATH or http://HOST:PORT (default $HUSK_URL, else " DEFAULT_URL ")"},
    {"token-file", 0, FLAG_STRING, offsetof(struct fn_opts, token_file),
     "the admin token, for the admin API over http:// (default $HUSK_TOKEN_FILE)"},
    {"bundle", 0, FLAG_STRING, offsetof(struct fn_opts, bundle), "deploy: an OCI bundle"},
    {"image", 0, FLAG_STRING, offsetof(struct fn_opts, image),
     "deploy: an erofs or squashfs image (husk pack -f erofs), with -- COMMAND"},
    {"dir", 0, FLAG_STRING, offsetof(struct fn_opts, dir),
     "deploy: a root filesystem directory, with -- COMMAND"},
    {"wasm", 0, FLAG_STRING, offsetof(struct fn_opts, wasm),
     "deploy: a WebAssembly module (a WASI command), run per call; cgi (WAGI) by default"},
    {"wasm-dir", 0, FLAG_STRINGS, offsetof(struct fn_opts, wasm_dirs),
     "deploy --wasm: HOST:GUEST[:ro], a directory the module may open (repeatable)"},
    {"contract", 0, FLAG_STRING, offsetof(struct fn_opts, contract),
     "deploy: stdio (default), cgi or http (a server on $PORT)"},
    {"env", 'e', FLAG_STRINGS, offsetof(struct fn_opts, env), "deploy: K=V (repeatable)"},
    {"memory", 0, FLAG_STRING, offsetof(struct fn_opts, memory), "deploy: memory limit (64M)"},
    {"cpus", 0, FLAG_STRING, offsetof(struct fn_opts, cpus), "deploy: CPU limit (0.5)"},
    INT_FLAG("pids", pids, "deploy: process limit"),
    INT_FLAG("port", port, "deploy: the http contract's port (default 8080)"),
    INT_FLAG("timeout", timeout, "deploy: seconds per invocation (default 300)"),
    INT_FLAG("max-body", max_body, "deploy: request body limit in bytes (default 6 MiB)"),
    INT_FLAG("max-response", max_response,
             "deploy: buffered response limit in bytes (default 6 MiB)"),
    {"no-landlock", 0, FLAG_BOOL, offsetof(struct fn_opts, no_landlock),
     "deploy: no landlock rules (the function's own root stays its only file system anyway)"},
    INT_FLAG("concurrency", concurrency, "deploy: calls per instance (stdio 1, http 100)"),
    INT_FLAG("min", min, "deploy: instances kept ready (default 0)"),
    INT_FLAG("max", max, "deploy: instances at most (default 10)"),
    INT_FLAG("idle", idle, "deploy: seconds before an idle instance stops (default 300)"),
    INT_FLAG("queue", queue, "deploy: calls that may wait (default 10 x concurrency x max)"),
    INT_FLAG("init-timeout", init_timeout, "deploy: seconds for a server to listen (default 10)"),
    {"handler", 0, FLAG_STRING, offsetof(struct fn_opts, handler),
     "deploy: the lambda contract's _HANDLER (default: the command's last argument)"},
    {"on-failure", 0, FLAG_STRING, offsetof(struct fn_opts, on_failure),
     "deploy: a URL that gets the record of an asynchronous call that failed every attempt"},
    {"follow", 'f', FLAG_BOOL, offsetof(struct fn_opts, follow), "logs: keep printing new lines"},
    {"async", 0, FLAG_BOOL, offsetof(struct fn_opts, async),
     "invoke: asynchronously (202 and the call's id; see `husk fn calls`)"},
    {"callback", 0, FLAG_STRING, offsetof(struct fn_opts, callback),
     "invoke --async: a URL that gets the function's answer"},
};

struct fn_call {
    const char *method, *path, *body;
    size_t len;
    const char *extra; /* a request header line, or NULL */
    bool stream;       /* a 2xx body goes to stdout as it comes */
    char *out;         /* the response body (owned), unless streamed */
    size_t out_len;
    char *log_offset; /* X-Log-Offset (owned), for logs */
    CURL *h;
};

static size_t
on_body(char *p, size_t size, size_t n, void *data)
{
    struct fn_call *call = data;
    long status = 0;
    curl_easy_getinfo(call->h, CURLINFO_RESPONSE_CODE, &status);
    if (call->stream && status < 300) {
        size_t w = fwrite(p, 1, size * n, stdout);
        fflush(stdout);
        return w;
    }
    call->out = xrealloc(call->out, call->out_len + size * n + 1);
    memcpy(call->out + call->out_len, p, size * n);
    call->out_len += size * n;
    call->out[call->out_len] = '\0';
    return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *data)
{
    struct fn_call *call = data;
    size_t len = size * n;
    if (len > 14 && strncasecmp(p, "X-Log-Offset: ", 14) == 0) {
        free(call->log_offset);
        call->log_offset = xstrndup(p + 14, strcspn(p + 14, "\r\n"));
    }
    return len;
}

/* One request to the daemon: "unix:/PATH" (the admin socket) or "http://HOST:PORT" (the front
 * door, with a token for the admin API). Returns the status, or -errno with *err set. */
static int
http_call(const struct fn_opts *o, struct fn_call *call, struct husk_error **err)
{
    bool unix_socket = str_has_prefix(o->url, "unix:");
    if (unix_socket ? o->url[5] != '/'
                    : !str_has_prefix(o->url, "http://") && !str_has_prefix(o->url, "https://"))
        return husk_err(err, 0, "--url '%s': expected unix:/PATH or http://HOST:PORT", o->url);
    cleanup_free char *url =
        xasprintf("%s%s", unix_socket ? "http://localhost" : o->url, call->path);
    cleanup_free char *auth = o->token ? xasprintf("Authorization: Bearer %s", o->token) : NULL;
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    if (auth)
        headers = curl_slist_append(headers, auth);
    if (strcmp(call->method, "POST") == 0 && str_has_prefix(call->path, "/system/"))
        headers = curl_slist_append(headers, "Content-Type: application/json");
    else if (call->body)
        headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    if (call->extra)
        headers = curl_slist_append(headers, call->extra);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = call->h = curl_easy_init();
    if (h == NULL)
        return husk_err(err, ENOMEM, "set up an HTTP client");
    if (unix_socket)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, o->url + 5);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call->method);
    if (strcmp(call->method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (call->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    CURLcode rc = curl_easy_perform(h);
    long status = 0, os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    call->h = NULL;
    if (call->out == NULL)
        call->out = xstrdup("");
    if (rc == CURLE_COULDNT_CONNECT)
        return husk_err(err, os_errno ? (int)os_errno : ECONNREFUSED, "connect to %s", o->url);
    if (rc != CURLE_OK)
        return husk_err(err, os_errno ? (int)os_errno : EIO, "%s: %s", o->url,
                        curl_easy_strerror(rc));
    return (int)status;
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
                {"max_response", o->max_response},
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

/* --wasm-dir HOST:GUEST[:ro] with HOST made absolute and canonical, as the policy wants it. */
static int
wasm_dirs(json_t *j, const struct fn_opts *o, struct husk_error **err)
{
    json_t *a = json_array();
    json_object_set_new(j, "wasm_dirs", a);
    for (size_t i = 0; i < o->wasm_dirs.n; i++) {
        const char *spec = o->wasm_dirs.v[i], *colon = strchr(spec, ':');
        char abs[PATH_MAX];
        cleanup_free char *host = colon ? xstrndup(spec, (size_t)(colon - spec)) : xstrdup(spec);
        if (colon == NULL)
            return husk_err(err, 0, "--wasm-dir '%s': expected HOST:GUEST[:ro]", spec);
        if (realpath(host, abs) == NULL)
            return husk_err(err, errno, "--wasm-dir '%s': '%s'", spec, host);
        json_array_append_new(a, json_sprintf("%s%s", abs, colon));
    }
    return 0;
}

static char *
deploy_body(const char *name, const struct fn_opts *o, char **command, struct husk_error **err)
{
    cleanup_json json_t *j = json_pack("{s:s}", "name", name);
    if (!!o->bundle + !!o->image + !!o->dir + !!o->wasm != 1)
        return husk_err(err, 0, "fn deploy: one of --bundle, --image, --dir or --wasm is required"),
               NULL;
    if (abs_path(j, "bundle", o->bundle, err) < 0 || abs_path(j, "image", o->image, err) < 0 ||
        abs_path(j, "dir", o->dir, err) < 0 || abs_path(j, "wasm", o->wasm, err) < 0 ||
        deploy_limits(j, o, err) < 0 || (o->wasm_dirs.n && wasm_dirs(j, o, err) < 0))
        return NULL;
    if (o->contract)
        json_object_set_new(j, "contract", json_string(o->contract));
    if (o->no_landlock)
        json_object_set_new(j, "landlock", json_false());
    if (o->handler)
        json_object_set_new(j, "handler", json_string(o->handler));
    if (o->on_failure)
        json_object_set_new(j, "on_failure", json_string(o->on_failure));
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

static int
report(struct cli *cli, const char *sub, struct fn_call *call, int status, struct husk_error *err)
{
    if (status >= 0)
        fwrite(call->out, 1, call->out_len, status < 300 ? stdout : stderr);
    free(call->out);
    free(call->log_offset);
    if (status < 0)
        return cli_fail(cli, err);
    if (status >= 300) {
        fprintf(stderr, "husk fn %s: HTTP %d\n", sub, status);
        return 1;
    }
    return 0;
}

/* `husk fn logs NAME [-f]`: the log from the start; with -f, new lines as they come. */
static int
fn_logs(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    uint64_t since = 0;
    for (;;) {
        struct husk_error *err = NULL;
        cleanup_free char *path =
            xasprintf("/system/logs/%s?since=%llu", name, (unsigned long long)since);
        struct fn_call call = {.method = "GET", .path = path};
        int status = http_call(o, &call, &err);
        if (status != 200)
            return report(cli, "logs", &call, status, err);
        fwrite(call.out, 1, call.out_len, stdout);
        fflush(stdout);
        if (call.log_offset)
            parse_u64(call.log_offset, &since);
        size_t got = call.out_len;
        free(call.out);
        free(call.log_offset);
        if (!o->follow)
            return 0;
        if (got == 0)
            usleep(250000);
    }
}

static int
fn_simple(struct cli *cli, struct fn_opts *o, const char *sub, const char *method, const char *path,
          const char *body, size_t len)
{
    struct husk_error *err = NULL;
    struct fn_call call = {.method = method, .path = path, .body = body, .len = len};
    int status = http_call(o, &call, &err);
    return report(cli, sub, &call, status, err);
}

static int
fn_ls(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    return fn_simple(cli, o, "ls", "GET", "/system/functions", NULL, 0);
}

static int
fn_get(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    cleanup_free char *path = xasprintf("/system/functions/%s", name);
    return fn_simple(cli, o, "get", "GET", path, NULL, 0);
}

static int
fn_rm(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    cleanup_free char *path = xasprintf("/system/functions/%s", name);
    return fn_simple(cli, o, "rm", "DELETE", path, NULL, 0);
}

static int
fn_deploy(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    struct husk_error *err = NULL;
    cleanup_free char *body = deploy_body(name, o, command, &err);
    if (body == NULL)
        return cli_fail(cli, err);
    return fn_simple(cli, o, "deploy", "POST", "/system/functions", body, strlen(body));
}

/* `husk fn invoke NAME`: stdin is the body, the answer is printed as it comes; with --async,
 * the call is queued and its id printed. */
static int
fn_invoke(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    struct husk_error *err = NULL;
    if (o->callback && !o->async)
        return husk_err(&err, 0, "fn invoke: --callback needs --async"), cli_fail(cli, err);
    cleanup_free char *path = xasprintf("/%sfunction/%s", o->async ? "async-" : "", name);
    cleanup_free char *body = NULL;
    cleanup_free char *extra = o->callback ? xasprintf("X-Callback-Url: %s", o->callback) : NULL;
    size_t len = 0;
    int r = read_fd_all(0, SIZE_MAX, &body, &len);
    if (r < 0) {
        husk_err(&err, -r, "read the request body from stdin");
        return cli_fail(cli, err);
    }
    struct fn_call call = {.method = "POST",
                           .path = path,
                           .body = body ? body : "",
                           .len = len,
                           .extra = extra,
                           .stream = !o->async};
    int status = http_call(o, &call, &err);
    return report(cli, "invoke", &call, status, err);
}

/* `husk fn calls NAME`: its latest asynchronous calls; `husk fn call ID`: one of them. */
static int
fn_calls(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    cleanup_free char *path = xasprintf("/system/calls?function=%s", name);
    return fn_simple(cli, o, "calls", "GET", path, NULL, 0);
}

static int
fn_call(struct cli *cli, struct fn_opts *o, const char *id, char **command)
{
    cleanup_free char *path = xasprintf("/system/calls/%s", id);
    return fn_simple(cli, o, "call", "GET", path, NULL, 0);
}

static const struct fn_sub {
    const char *name;
    bool needs_name;
    const char *summary;
    int (*run)(struct cli *cli, struct fn_opts *o, const char *name, char **command);
} fn_subs[] = {
    {"deploy", true, "deploy NAME (--bundle|--image|--dir|--wasm) [flags] [-- COMMAND...]",
     fn_deploy},
    {"ls", false, "ls: the functions", fn_ls},
    {"get", true, "get NAME: one function", fn_get},
    {"rm", true, "rm NAME: remove a function", fn_rm},
    {"invoke", true, "invoke NAME [--async [--callback URL]]: call it with stdin as the body",
     fn_invoke},
    {"logs", true, "logs NAME [-f]: its log", fn_logs},
    {"calls", true, "calls NAME: its latest asynchronous calls", fn_calls},
    {"call", true, "call ID: one asynchronous call, its state and result", fn_call},
};

static const struct verb fn_verb = {
    "fn", "deploy|ls|get|rm|invoke|logs|calls|call [flags] [NAME] [-- COMMAND [ARG...]]",
    "Manage the functions of a running `husk serve` through its admin socket.", NULL};

/* Flags before and after NAME; what follows "--" is the command (deploy). */
static int
parse_args(int argc, char **argv, struct fn_opts *o, const char **name, char ***command)
{
    for (int k = 1; k < argc; k++)
        if (strcmp(argv[k], "--") == 0) {
            *command = argv + k + 1;
            argc = k;
            break;
        }
    int i = cli_parse_flags(&fn_verb, fn_flags, ARRAY_SIZE(fn_flags), o, argc - 1, argv + 1);
    if (i < 0)
        return i;
    *name = i + 1 < argc ? argv[i + 1] : NULL;
    if (*name && i + 2 < argc) {
        int j = cli_parse_flags(&fn_verb, fn_flags, ARRAY_SIZE(fn_flags), o, argc - i - 2,
                                argv + i + 2);
        if (j < 0)
            return j;
        if (j < argc - i - 2) {
            fprintf(stderr, "husk fn %s: unexpected argument '%s'\n", argv[0], argv[i + 2 + j]);
            return -1;
        }
    }
    return 0;
}

static void
fn_usage(FILE *to)
{
    fprintf(to, "usage: husk fn SUBCOMMAND [flags] [NAME]\n\nsubcommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(fn_subs); i++)
        fprintf(to, "  %s\n", fn_subs[i].summary);
    fprintf(to, "\n`husk fn SUBCOMMAND --help` lists the flags.\n");
}

/* The token for the admin API over TCP: from --token-file or $HUSK_TOKEN_FILE. */
static int
load_token(struct fn_opts *o, struct husk_error **err)
{
    const char *path = o->token_file ? o->token_file : getenv("HUSK_TOKEN_FILE");
    size_t len = 0;
    if (path == NULL)
        return 0;
    int r = read_file_at(AT_FDCWD, path, &o->token, &len);
    if (r < 0)
        return husk_err(err, -r, "--token-file '%s'", path);
    o->token[strcspn(o->token, "\r\n")] = '\0';
    return 0;
}

int
cmd_fn(struct cli *cli, int argc, char **argv)
{
    struct fn_opts o = {.url = getenv("HUSK_URL") ? getenv("HUSK_URL") : DEFAULT_URL};
    int *ints[] = {&o.timeout, &o.max_body,    &o.max_response, &o.port,
                   &o.pids,    &o.concurrency, &o.min,          &o.max,
                   &o.idle,    &o.queue,       &o.init_timeout};
    for (size_t k = 0; k < ARRAY_SIZE(ints); k++)
        *ints[k] = -1; /* not given: the daemon's default */
    struct husk_error *err = NULL;
    const char *name = NULL;
    char **command = NULL;
    if (argc < 1 || strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0 ||
        strcmp(argv[0], "-h") == 0) {
        fn_usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    const struct fn_sub *sub = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(fn_subs) && !sub; i++)
        if (strcmp(argv[0], fn_subs[i].name) == 0)
            sub = &fn_subs[i];
    if (sub == NULL) {
        fprintf(stderr, "husk fn: unknown subcommand '%s'\n", argv[0]);
        fn_usage(stderr);
        return 2;
    }
    int r = parse_args(argc, argv, &o, &name, &command);
    if (r < 0)
        return r == -2 ? 0 : 2;
    if (sub->needs_name && name == NULL) {
        fprintf(stderr, "husk fn %s: NAME is required\n", sub->name);
        return 2;
    }
    if (load_token(&o, &err) < 0)
        r = cli_fail(cli, err);
    else
        r = sub->run(cli, &o, name, command);
    free(o.env.v);
    free(o.wasm_dirs.v);
    free(o.token);
    return r;
}
