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
#include "fn-table.h"
#include "pack-bundle.h"
#include "oci.h"
#include "util.h"

#define DEFAULT_URL "unix:/run/husk/serve.sock"

struct fn_opts {
    const char *url, *token_file, *bundle, *image, *dir, *wasm, *contract, *memory, *cpus, *handler,
        *on_failure, *callback;
    int timeout, max_body, max_response, port, pids, concurrency, min, max, idle, freeze, queue,
        init_timeout;
    bool follow, no_landlock, async, zygote;
    const char *version, *weight;         /* invoke --version, alias --weight */
    const char *format;                   /* table (default) or json */
    const char *method, *subpath, *query; /* invoke */
    const char *network, *egress_dns;     /* deploy */
    const char *publish, *publish_mode;   /* deploy */
    struct strlist egress;
    struct strlist headers;
    int to;             /* rollback --to */
    const char *pos[3]; /* NAME and what follows it */
    size_t n_pos;
    struct strlist env, wasm_dirs;
    char *token; /* read from token_file */
};

/* The groups of flags: those of no group (--url, --token-file, --format) go with every
 * subcommand; fn_subs says which groups each takes. */
enum {
    FN_DEPLOY = 1 << 0, /* deploy, update */
    FN_INVOKE = 1 << 1,
    FN_LOGS = 1 << 2,
    FN_ALIAS = 1 << 3,
    FN_ROLLBACK = 1 << 4,
};

#define FN_OPT(f) offsetof(struct fn_opts, f)
#define DEPLOY_FLAG(n, t, f, h)                                                                    \
    {                                                                                              \
        n, 0, t, FN_OPT(f), h, FN_DEPLOY                                                           \
    }
static const struct flag fn_flags[] = {
    {"url", 0, FLAG_STRING, FN_OPT(url),
     "the daemon: unix:/PATH or http://HOST:PORT (default $HUSK_URL, else " DEFAULT_URL ")"},
    {"token-file", 0, FLAG_STRING, FN_OPT(token_file),
     "the admin token, for the admin API over http:// (default $HUSK_TOKEN_FILE)"},
    {"format", 0, FLAG_STRING, FN_OPT(format),
     "table (default: aligned columns) or json (the admin API's answer as it is)"},
    DEPLOY_FLAG("bundle", FLAG_STRING, bundle, "an OCI bundle"),
    DEPLOY_FLAG("image", FLAG_STRING, image,
                "an erofs or squashfs image (husk pack -f erofs), with -- COMMAND"),
    DEPLOY_FLAG("dir", FLAG_STRING, dir, "a root filesystem directory, with -- COMMAND"),
    DEPLOY_FLAG("wasm", FLAG_STRING, wasm,
                "a WebAssembly module (a WASI command), run per call; cgi (WAGI) by default"),
    DEPLOY_FLAG("wasm-dir", FLAG_STRINGS, wasm_dirs,
                "with --wasm: HOST:GUEST[:ro], a directory the module may open (repeatable)"),
    DEPLOY_FLAG("contract", FLAG_STRING, contract,
                "stdio (default), cgi, http (a server on $PORT) or lambda (the Runtime API)"),
    {"env", 'e', FLAG_STRINGS, FN_OPT(env), "K=V (repeatable)", FN_DEPLOY},
    DEPLOY_FLAG("memory", FLAG_STRING, memory, "memory limit (64M)"),
    DEPLOY_FLAG("cpus", FLAG_STRING, cpus, "CPU limit (0.5)"),
    DEPLOY_FLAG("pids", FLAG_INT, pids, "process limit"),
    DEPLOY_FLAG("port", FLAG_INT, port, "the http contract's port (default 8080)"),
    DEPLOY_FLAG("timeout", FLAG_INT, timeout, "seconds per invocation (default 300)"),
    DEPLOY_FLAG("max-body", FLAG_INT, max_body, "request body limit in bytes (default 6 MiB)"),
    DEPLOY_FLAG("max-response", FLAG_INT, max_response,
                "buffered response limit in bytes (default 6 MiB)"),
    DEPLOY_FLAG("network", FLAG_STRING, network,
                "none (loopback only, the default) or egress (the bridge, with --egress rules)"),
    DEPLOY_FLAG("egress", FLAG_STRINGS, egress,
                "a destination the function may reach, CIDR[:PORT][/tcp|/udp] (repeatable)"),
    DEPLOY_FLAG("egress-dns", FLAG_STRING, egress_dns,
                "a resolver the function may use for names (its port 53)"),
    DEPLOY_FLAG("publish", FLAG_STRING, publish,
                "http: [HOSTIP:]PORT, a socket on the host its instances' server accepts from "
                "(default host 127.0.0.1)"),
    DEPLOY_FLAG("publish-mode", FLAG_STRING, publish_mode,
                "with --publish: bind (its bind() on $PORT gets the socket, the default) or "
                "listen_fds (fd 3, LISTEN_FDS)"),
    DEPLOY_FLAG("no-landlock", FLAG_BOOL, no_landlock,
                "no landlock rules (the function's own root stays its only file system anyway)"),
    DEPLOY_FLAG("zygote", FLAG_BOOL, zygote,
                "Python or Node.js: load the interpreter and the code once per version, fork "
                "each instance from it (and each stdio or cgi call from its instance's)"),
    DEPLOY_FLAG("concurrency", FLAG_INT, concurrency,
                "calls per instance (stdio, cgi, lambda 1; http 100)"),
    DEPLOY_FLAG("min", FLAG_INT, min, "instances kept ready (default 0)"),
    DEPLOY_FLAG("max", FLAG_INT, max, "instances at most (default 10)"),
    DEPLOY_FLAG("idle", FLAG_INT, idle, "seconds before an idle instance stops (default 300)"),
    DEPLOY_FLAG(
        "freeze", FLAG_INT, freeze,
        "seconds before an idle instance is frozen (the cgroup freezer), thawed by the next "
        "call (default 0: never)"),
    DEPLOY_FLAG("queue", FLAG_INT, queue, "calls that may wait (default 10 x concurrency x max)"),
    DEPLOY_FLAG("init-timeout", FLAG_INT, init_timeout,
                "seconds for a server to listen (default 10)"),
    DEPLOY_FLAG("handler", FLAG_STRING, handler,
                "the lambda contract's _HANDLER (default: the command's last argument)"),
    DEPLOY_FLAG("on-failure", FLAG_STRING, on_failure,
                "a URL that gets the record of an asynchronous call that failed every attempt"),
    {"follow", 'f', FLAG_BOOL, FN_OPT(follow), "keep printing new lines", FN_LOGS},
    {"async", 0, FLAG_BOOL, FN_OPT(async),
     "asynchronously (202 and the call's id; see `husk fn calls`)", FN_INVOKE},
    {"callback", 0, FLAG_STRING, FN_OPT(callback), "with --async: a URL that gets the answer",
     FN_INVOKE},
    {"version", 0, FLAG_STRING, FN_OPT(version),
     "a version number or an alias (default: the latest)", FN_INVOKE},
    {"method", 'X', FLAG_STRING, FN_OPT(method),
     "the HTTP method (default POST; GET and HEAD send no body)", FN_INVOKE},
    {"path", 0, FLAG_STRING, FN_OPT(subpath), "the path after /function/NAME (/items/7)",
     FN_INVOKE},
    {"query", 0, FLAG_STRING, FN_OPT(query), "the query (a=1&b=2)", FN_INVOKE},
    {"header", 'H', FLAG_STRINGS, FN_OPT(headers), "a request header 'K: V' (repeatable)",
     FN_INVOKE},
    {"weight", 0, FLAG_STRING, FN_OPT(weight),
     "VERSION=SHARE: another version for a share of the calls (a canary: 4=0.1)", FN_ALIAS},
    {"to", 0, FLAG_INT, FN_OPT(to), "the version to go back to (default: the one before)",
     FN_ROLLBACK},
};

struct fn_call {
    const char *method, *path, *body;
    size_t len;
    const char *extra;             /* a request header line, or NULL */
    const struct strlist *headers; /* more, or NULL */
    bool stream;                   /* a 2xx body goes to stdout as it comes */
    char *out;                     /* the response body (owned), unless streamed */
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
    if (call->body && str_has_prefix(call->path, "/system/"))
        headers = curl_slist_append(headers, "Content-Type: application/json");
    else if (call->body)
        headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    if (call->extra)
        headers = curl_slist_append(headers, call->extra);
    for (size_t i = 0; call->headers && i < call->headers->n; i++)
        headers = curl_slist_append(headers, call->headers->v[i]);
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
    } ints[] = {
        {"timeout", o->timeout}, {"max_body", o->max_body}, {"max_response", o->max_response},
        {"port", o->port},       {"pids", o->pids},         {"concurrency", o->concurrency},
        {"min", o->min},         {"max", o->max},           {"idle", o->idle},
        {"freeze", o->freeze},   {"queue", o->queue},       {"init_timeout", o->init_timeout}};
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

/* The deploy fields given as flags (besides the root and the limits). */
static void
deploy_extras(json_t *j, const struct fn_opts *o, char **command)
{
    const struct {
        const char *key, *value;
    } strs[] = {{"contract", o->contract},        {"handler", o->handler},
                {"on_failure", o->on_failure},    {"network", o->network},
                {"egress_dns", o->egress_dns},    {"publish", o->publish},
                {"publish_mode", o->publish_mode}};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
        if (strs[i].value)
            json_object_set_new(j, strs[i].key, json_string(strs[i].value));
    if (o->no_landlock)
        json_object_set_new(j, "landlock", json_false());
    if (o->zygote)
        json_object_set_new(j, "zygote", json_true());
    if (o->egress.n) {
        json_t *rules = json_array();
        for (size_t i = 0; i < o->egress.n; i++)
            json_array_append_new(rules, json_string(o->egress.v[i]));
        json_object_set_new(j, "egress", rules);
    }
    if (o->env.n) {
        json_t *env = json_array();
        for (size_t i = 0; i < o->env.n; i++)
            json_array_append_new(env, json_string(o->env.v[i]));
        json_object_set_new(j, "env", env);
    }
    if (command && *command) {
        json_t *cmd = json_array();
        for (char **c = command; *c; c++)
            json_array_append_new(cmd, json_string(*c));
        json_object_set_new(j, "command", cmd);
    }
}

/* The root (--bundle, --image, --dir or --wasm with its directories) and the limits. */
static int
deploy_root(json_t *j, const struct fn_opts *o, struct husk_error **err)
{
    const char *const keys[] = {"bundle", "image", "dir", "wasm"};
    const char *const paths[] = {o->bundle, o->image, o->dir, o->wasm};
    int r = 0;
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(keys); i++)
        r = abs_path(j, keys[i], paths[i], err);
    if (r == 0 && o->wasm_dirs.n)
        r = wasm_dirs(j, o, err);
    return r < 0 ? r : deploy_limits(j, o, err);
}

static char *
deploy_body(const char *name, const struct fn_opts *o, char **command, struct husk_error **err)
{
    cleanup_json json_t *j = json_pack("{s:s}", "name", name);
    if (!!o->bundle + !!o->image + !!o->dir + !!o->wasm != 1)
        return husk_err(err, 0, "fn deploy: one of --bundle, --image, --dir or --wasm is required"),
               NULL;
    if (deploy_root(j, o, err) < 0)
        return NULL;
    deploy_extras(j, o, command);
    if (json_object_get(j, "env") == NULL)
        json_object_set_new(j, "env", json_array());
    return json_dumps(j, JSON_COMPACT);
}

static bool json_out; /* --format json */

static int
report(struct cli *cli, const char *sub, struct fn_call *call, int status, struct husk_error *err)
{
    if (status >= 300 || (status >= 0 && (json_out || call->stream ||
                                          !fn_table_render(sub, call->out, call->out_len, stdout))))
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
fn_deploy(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    struct husk_error *err = NULL;
    cleanup_free char *body = deploy_body(name, o, command, &err);
    if (body == NULL)
        return cli_fail(cli, err);
    return fn_simple(cli, o, "deploy", "POST", "/system/functions", body, strlen(body));
}

/* The call's path: /function/NAME[@VERSION][/PATH][?QUERY], or /async-function/... */
static char *
invoke_path(const struct fn_opts *o, const char *name)
{
    const char *sub = o->subpath ? o->subpath : "";
    return xasprintf("/%sfunction/%s%s%s%s%s%s%s", o->async ? "async-" : "", name,
                     o->version ? "@" : "", o->version ? o->version : "",
                     *sub && *sub != '/' ? "/" : "", sub, o->query ? "?" : "",
                     o->query ? o->query : "");
}

/* `husk fn invoke NAME`: stdin is the body, the answer is printed as it comes; with --async,
 * the call is queued and its id printed. */
static int
fn_invoke(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    struct husk_error *err = NULL;
    const char *method = o->method ? o->method : "POST";
    if (o->callback && !o->async)
        return husk_err(&err, 0, "fn invoke: --callback needs --async"), cli_fail(cli, err);
    for (size_t i = 0; i < o->headers.n; i++)
        if (strchr(o->headers.v[i], ':') == NULL || strpbrk(o->headers.v[i], "\r\n"))
            return husk_err(&err, 0, "fn invoke: --header '%s': expected 'Name: value'",
                            o->headers.v[i]),
                   cli_fail(cli, err);
    if (strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method) || !*method)
        return husk_err(&err, 0, "fn invoke: --method '%s': expected GET, POST, ...", method),
               cli_fail(cli, err);
    cleanup_free char *path = invoke_path(o, name);
    cleanup_free char *body = NULL;
    cleanup_free char *extra = o->callback ? xasprintf("X-Callback-Url: %s", o->callback) : NULL;
    size_t len = 0;
    bool bodyless = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int r = bodyless ? 0 : read_fd_all(0, SIZE_MAX, &body, &len);
    if (r < 0) {
        husk_err(&err, -r, "read the request body from stdin");
        return cli_fail(cli, err);
    }
    struct fn_call call = {.method = method,
                           .path = path,
                           .body = bodyless ? NULL
                                   : body   ? body
                                            : "",
                           .len = len,
                           .extra = extra,
                           .headers = &o->headers,
                           .stream = !o->async};
    int status = http_call(o, &call, &err);
    return report(cli, "invoke", &call, status, err);
}

/* `husk fn alias NAME ALIAS VERSION [--weight V=SHARE]`: point ALIAS at VERSION (and V for a
 * share of the calls); `husk fn alias NAME ALIAS --delete`... is `fn unalias NAME ALIAS`. */
static int
fn_alias(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    struct husk_error *err = NULL;
    char *end = NULL;
    long long v = o->n_pos == 3 ? strtoll(o->pos[2], &end, 10) : 0;
    if (o->n_pos != 3 || *end || v < 1)
        return husk_err(&err, 0, "fn alias: expected NAME ALIAS VERSION (a number)"),
               cli_fail(cli, err);
    cleanup_json json_t *j = json_pack("{s:I}", "version", (json_int_t)v);
    if (o->weight) {
        char other[24];
        double share = 0;
        if (sscanf(o->weight, "%23[0-9]=%lf", other, &share) != 2)
            return husk_err(&err, 0, "--weight '%s': expected VERSION=SHARE, like 4=0.1",
                            o->weight),
                   cli_fail(cli, err);
        json_object_set_new(j, "weights", json_pack("{s:f}", other, share));
    }
    cleanup_free char *body = json_dumps(j, JSON_COMPACT);
    cleanup_free char *path = xasprintf("/system/functions/%s/aliases/%s", name, o->pos[1]);
    return fn_simple(cli, o, "alias", "PUT", path, body, strlen(body));
}

static int
fn_unalias(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    struct husk_error *err = NULL;
    if (o->n_pos != 2)
        return husk_err(&err, 0, "fn unalias: expected NAME ALIAS"), cli_fail(cli, err);
    cleanup_free char *path = xasprintf("/system/functions/%s/aliases/%s", name, o->pos[1]);
    return fn_simple(cli, o, "unalias", "DELETE", path, NULL, 0);
}

/* `husk fn rollback NAME [--to N]`: version N (the one before the latest) again, as a new one. */
static int
fn_rollback(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    cleanup_free char *body = o->to > 0 ? xasprintf("{\"version\":%d}", o->to) : xstrdup("{}");
    cleanup_free char *path = xasprintf("/system/functions/%s/rollback", name);
    return fn_simple(cli, o, "rollback", "POST", path, body, strlen(body));
}

/* `husk fn update NAME [deploy flags]`: a new version, the latest with these settings changed. */
static int
fn_update(struct cli *cli, struct fn_opts *o, const char *name, char **command)
{
    struct husk_error *err = NULL;
    cleanup_json json_t *j = json_object();
    if (deploy_root(j, o, &err) < 0)
        return cli_fail(cli, err);
    deploy_extras(j, o, command);
    if (json_object_size(j) == 0)
        return husk_err(&err, 0, "fn update: nothing to change (give deploy flags)"),
               cli_fail(cli, err);
    cleanup_free char *body = json_dumps(j, JSON_COMPACT);
    cleanup_free char *path = xasprintf("/system/functions/%s", name);
    return fn_simple(cli, o, "update", "PATCH", path, body, strlen(body));
}

static const struct fn_sub {
    struct cli_sub sub;        /* first: verb_fn describes fn_subs as a table of these */
    size_t min_args, max_args; /* NAME and what follows it */
    int (*run)(struct cli *cli, struct fn_opts *o, const char *name, char **command);
    /* Without run: one request, METHOD PATH_PRE[NAME]PATH_POST, its answer printed. */
    const char *method, *path_pre, *path_post;
} fn_subs[] = {
    {{"deploy",
      "NAME (--bundle DIR|--image FILE|--dir DIR|--wasm FILE) [flags] [-- COMMAND [ARG...]]",
      "Deploy a function: a bundle, a WebAssembly module, or an image or a directory with the "
      "command to run.",
      FN_DEPLOY},
     1,
     1,
     fn_deploy},
    {{"update", "NAME [flags] [-- COMMAND [ARG...]]",
      "Deploy a new version: the latest with the settings given changed.", FN_DEPLOY,
      CLI_ARG_FUNCTION},
     1,
     1,
     fn_update},
    {{"ls", "", "List the functions."}, 0, 0, NULL, "GET", "/system/functions", ""},
    {{"get", "NAME", "Show a function.", 0, CLI_ARG_FUNCTION},
     1,
     1,
     NULL,
     "GET",
     "/system/functions/",
     ""},
    {{"rm", "NAME", "Remove a function, its versions and aliases.", 0, CLI_ARG_FUNCTION},
     1,
     1,
     NULL,
     "DELETE",
     "/system/functions/",
     ""},
    {{"invoke", "NAME [flags] < BODY",
      "Call a function: stdin is the request's body, the answer is printed as it comes.", FN_INVOKE,
      CLI_ARG_FUNCTION},
     1,
     1,
     fn_invoke},
    {{"logs", "NAME [-f]", "Print a function's log.", FN_LOGS, CLI_ARG_FUNCTION}, 1, 1, fn_logs},
    {{"calls", "NAME", "List a function's latest asynchronous calls.", 0, CLI_ARG_FUNCTION},
     1,
     1,
     NULL,
     "GET",
     "/system/calls?function=",
     ""},
    {{"call", "ID", "Show an asynchronous call: its state and result."},
     1,
     1,
     NULL,
     "GET",
     "/system/calls/",
     ""},
    {{"versions", "NAME", "List every version of a function deployed.", 0, CLI_ARG_FUNCTION},
     1,
     1,
     NULL,
     "GET",
     "/system/functions/",
     "/versions"},
    {{"rollback", "NAME [--to N]", "Deploy an earlier version again, as the latest.", FN_ROLLBACK,
      CLI_ARG_FUNCTION},
     1,
     1,
     fn_rollback},
    {{"aliases", "NAME", "List a function's aliases.", 0, CLI_ARG_FUNCTION},
     1,
     1,
     NULL,
     "GET",
     "/system/functions/",
     "/aliases"},
    {{"alias", "NAME ALIAS VERSION [--weight V=SHARE]",
      "Point an alias at a version (NAME@ALIAS calls it), and another for a share of the calls.",
      FN_ALIAS, CLI_ARG_FUNCTION},
     3,
     3,
     fn_alias},
    {{"unalias", "NAME ALIAS", "Remove an alias.", 0, CLI_ARG_FUNCTION}, 2, 2, fn_unalias},
};

static int
fn_request(struct cli *cli, struct fn_opts *o, const struct fn_sub *sub, const char *name)
{
    cleanup_free char *path = xasprintf("%s%s%s", sub->path_pre, name ? name : "", sub->path_post);
    return fn_simple(cli, o, sub->sub.name, sub->method, path, NULL, 0);
}

/* Flags anywhere; NAME and up to max_args - 1 more words; what follows "--" is the command
 * (deploy, update). */
static int
parse_args(int argc, char **argv, const struct fn_sub *sub, const struct verb *v, struct fn_opts *o,
           char ***command)
{
    for (int k = 1; k < argc; k++)
        if (strcmp(argv[k], "--") == 0) {
            *command = argv + k + 1;
            argc = k;
            break;
        }
    char **rest = argv + 1;
    int left = argc - 1;
    while (left > 0) {
        int i = cli_parse_flags(v, v->flags, v->n_flags, o, left, rest);
        if (i < 0)
            return i;
        rest += i;
        left -= i;
        if (left == 0)
            break;
        if (o->n_pos == sub->max_args || o->n_pos == ARRAY_SIZE(o->pos)) {
            fprintf(stderr, "husk fn %s: unexpected argument '%s'\n", argv[0], rest[0]);
            return -1;
        }
        o->pos[o->n_pos++] = rest[0];
        rest++;
        left--;
    }
    return 0;
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

static void
fn_opts_clear(struct fn_opts *o)
{
    free(o->env.v);
    free(o->wasm_dirs.v);
    free(o->headers.v);
    free(o->egress.v);
    free(o->token);
}

static int
cmd_fn(struct cli *cli, int argc, char **argv)
{
    struct fn_opts o = {.url = getenv("HUSK_URL") ? getenv("HUSK_URL") : DEFAULT_URL};
    int *ints[] = {&o.timeout, &o.max_body, &o.max_response, &o.port,   &o.pids,  &o.concurrency,
                   &o.min,     &o.max,      &o.idle,         &o.freeze, &o.queue, &o.init_timeout};
    for (size_t k = 0; k < ARRAY_SIZE(ints); k++)
        *ints[k] = -1; /* not given: the daemon's default */
    struct husk_error *err = NULL;
    const char *name = NULL;
    char **command = NULL;
    int code;
    const struct fn_sub *sub = (const struct fn_sub *)cli_find_sub(&verb_fn, argc, argv, &code);
    if (sub == NULL)
        return code;
    struct cli_sub_verb sv;
    cli_sub_verb_init(&sv, &verb_fn, &sub->sub);
    int r = parse_args(argc, argv, sub, &sv.verb, &o, &command);
    cli_sub_verb_clear(&sv);
    if (r == 0 && o.n_pos < sub->min_args) {
        fprintf(stderr, "usage: husk fn %s %s\n", sub->sub.name, sub->sub.usage);
        r = -1;
    }
    if (r == 0 && o.format && strcmp(o.format, "json") && strcmp(o.format, "table")) {
        fprintf(stderr, "husk fn %s: --format '%s': expected table or json\n", sub->sub.name,
                o.format);
        r = -1;
    }
    if (r < 0) {
        fn_opts_clear(&o);
        return r == -2 ? 0 : 2;
    }
    name = o.n_pos ? o.pos[0] : NULL;
    json_out = o.format && strcmp(o.format, "json") == 0;
    if (load_token(&o, &err) < 0)
        r = cli_fail(cli, err);
    else
        r = sub->run ? sub->run(cli, &o, name, command) : fn_request(cli, &o, sub, name);
    fn_opts_clear(&o);
    return r;
}

const struct verb verb_fn = {
    .name = "fn",
    .usage = "SUBCOMMAND [flags] [NAME] [-- COMMAND [ARG...]]",
    .summary = "Manage and invoke the functions of a running `husk serve`.",
    .run = cmd_fn,
    .flags = fn_flags,
    .n_flags = ARRAY_SIZE(fn_flags),
    .subs = &fn_subs[0].sub,
    .n_subs = ARRAY_SIZE(fn_subs),
    .sub_size = sizeof(fn_subs[0]),
    .kind = VERB_HUSK,
    .description =
        "husk fn talks to the daemon's admin API at --url: its unix socket by default, or its "
        "front door over http:// with the token of --token-file. Flags may come anywhere after "
        "the subcommand; those of deploy and update are the function's settings (the ones not "
        "given are the daemon's defaults).",
};
