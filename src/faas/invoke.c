/* SPDX-License-Identifier: Apache-2.0 */
/* The stdio contract (OpenFaaS classic watchdog): body on stdin, stdout is the response. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faas-internal.h"
#include "husk/cgroup.h"
#include "util.h"

const char *
faas_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

int
faas_respond(int fd, int status, const char *request_id, const char *content_type, const char *body,
             size_t len, const char *extra_headers)
{
    cleanup_free char *head = xasprintf("HTTP/1.1 %d %s\r\nX-Request-Id: %s\r\nX-Call-Id: %s\r\n"
                                        "Content-Type: %s\r\nContent-Length: %zu\r\n%s"
                                        "Connection: close\r\n\r\n",
                                        status, faas_status_text(status), request_id, request_id,
                                        content_type ? content_type : "text/plain", len,
                                        extra_headers ? extra_headers : "");
    /* Responses are written whole; the socket blocks for a bounded time. */
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int r = write_all(fd, head, strlen(head));
    if (r == 0 && len)
        r = write_all(fd, body, len);
    return r;
}

/* "content-type" -> "Content_Type", as Go's canonical header names with '-' made '_'. */
static char *
env_header(const char *name, const char *value)
{
    cleanup_free char *n = xstrdup(name);
    bool up = true;
    for (char *c = n; *c; c++) {
        *c = up ? toupper((unsigned char)*c) : tolower((unsigned char)*c);
        up = *c == '-';
        if (*c == '-')
            *c = '_';
    }
    return xasprintf("Http_%s=%s", n, value);
}

static char **
request_env(const struct faas_function *f, const struct faas_request *req, const char *subpath)
{
    char **base = f->cfg->sbx->process.env;
    size_t n = strv_len(base) + strv_len(f->env) + req->n_headers + 8;
    char **env = xcalloc(n + 1, sizeof(char *));
    size_t i = 0;
    for (char **e = base; e && *e; e++)
        env[i++] = xstrdup(*e);
    for (char **e = f->env; e && *e; e++)
        env[i++] = xstrdup(*e);
    for (size_t h = 0; h < req->n_headers; h++)
        env[i++] = env_header(req->headers[h].name, req->headers[h].value);
    const char *q = strchr(req->url, '?');
    const char *host = faas_request_header(req, "Host");
    const char *cl = faas_request_header(req, "Content-Length");
    env[i++] = xasprintf("Http_Method=%s", req->method);
    env[i++] = xasprintf("Http_Query=%s", q ? q + 1 : "");
    env[i++] = xasprintf("Http_Path=%s", subpath && *subpath ? subpath : "/");
    env[i++] = xasprintf("Http_Host=%s", host ? host : "");
    env[i++] = xasprintf("Http_ContentLength=%s", cl ? cl : "-1");
    if (faas_request_header(req, "Content-Length") == NULL)
        env[i++] = xstrdup("Http_Content_Length=-1");
    return env;
}

/* Feed the body, collect stdout, until the child closes stdout or the deadline passes.
 * 0 done, 1 timed out. */
static int
pump(int in_fd, int out_fd, const char *body, size_t len, uint64_t deadline, char **out,
     size_t *out_len)
{
    size_t off = 0, cap = 0;
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
    if (len == 0) {
        close(in_fd);
        in_fd = -1;
    }
    for (;;) {
        struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = in_fd, .events = POLLOUT}};
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        int r = poll(p, in_fd >= 0 ? 2 : 1, (int)((deadline - now) / 1000000) + 1);
        if (r < 0 && errno != EINTR)
            break;
        if (in_fd >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in_fd, body + off, len - off);
            if (w > 0)
                off += w;
            if ((w < 0 && errno != EAGAIN) || off == len) {
                close(in_fd); /* EOF on the function's stdin */
                in_fd = -1;
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (cap - *out_len < 65536)
                *out = xrealloc(*out, cap = cap * 2 + 65536);
            ssize_t rd = read(out_fd, *out + *out_len, cap - *out_len);
            if (rd == 0) {
                if (in_fd >= 0)
                    close(in_fd);
                return 0;
            }
            if (rd > 0)
                *out_len += rd;
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    return 1;
}

static int
fail(int fd, const char *rid, int status, const char *what, struct husk_error *e)
{
    cleanup_free char *msg = e ? husk_error_string(e) : NULL;
    cleanup_free char *body = xasprintf("%s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
    husk_error_free(e);
    faas_respond(fd, status, rid, NULL, body, strlen(body), NULL);
    return status;
}

/* With a memory limit the invocation gets a cgroup of its own: "/husk-faas/NAME-REQUESTID". */
static int
invocation_cgroup(const struct faas_function *f, const char *request_id, const char *cgroup_root,
                  struct sbx_cgroup **out, struct husk_error **err)
{
    struct sbx_cgroup_limits l = {.memory.limit = {.set = true, .v = f->memory}};
    struct sbx_cgroup_opts o = {.root = cgroup_root};
    cleanup_free char *path = xasprintf("/husk-faas/%s-%s", f->name, request_id);
    if (f->memory <= 0)
        return 0;
    if (sbx_cgroup_create(&o, path, &l, out, err) < 0)
        return husk_err_prefix(err, "field 'memory': ");
    return 0;
}

int
faas_invoke(const struct faas_function *f, const struct faas_request *req, const char *subpath,
            const char *request_id, const char *cgroup_root, int fd)
{
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    struct husk_error *err = NULL;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        return fail(fd, request_id, 500, "create pipes", NULL);
    /* The sandbox inherits fds 0 and 1 (2 stays the daemon's log). */
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
        return fail(fd, request_id, 500, "wire stdio", NULL);
    close(in[0]);
    close(out[1]);
    f->cfg->sbx->process.env = request_env(f, req, subpath); /* this worker's own copy */
    struct sbx_spawn_opts so = {
        .start_listen_fd = -1, .console_fd = -1, .seccomp_listener_fd = -1, .cgroup_fd = -1};
    struct sbx_child *child = NULL;
    uint64_t start = now_ns();
    if (invocation_cgroup(f, request_id, cgroup_root, &cg, &err) < 0)
        return fail(fd, request_id, 500, "create the invocation's cgroup", err);
    if (cg) {
        /* Born in its cgroups: see sbx_cgroup_enter_self (this worker is single-threaded). */
        so.cgroup_fd = sbx_cgroup_spawn_fd(cg);
        so.on_created = sbx_cgroup_on_created;
        so.data = cg;
        sbx_cgroup_enter_self(cg);
    }
    int r = sbx_spawn(f->cfg->sbx, &so, &child, &err);
    if (cg)
        sbx_cgroup_leave_self(cg, NULL);
    signal(SIGPIPE, SIG_IGN); /* the sandbox has its default; a gone client is not our death */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(devnull, 0);
    dup2(devnull, 1);
    if (r < 0) {
        if (cg)
            sbx_cgroup_destroy(cg, NULL);
        return fail(fd, request_id, 500, "start function", err);
    }
    if (sbx_child_start(child, f->cfg->sbx, &err) < 0) {
        kill(child->pid, SIGKILL);
        sbx_child_wait(child, &r, NULL);
        if (cg)
            sbx_cgroup_destroy(cg, NULL);
        return fail(fd, request_id, 500, "start function", err);
    }
    cleanup_free char *output = NULL;
    size_t out_len = 0;
    int timed_out = pump(in[1], out[0], req->body, req->body_len,
                         start + (uint64_t)f->timeout * 1000000000ull, &output, &out_len);
    if (timed_out) {
        kill(child->pid, SIGKILL); /* pid 1 of its pid namespace: the kernel ends the rest */
        if (cg)
            sbx_cgroup_kill(cg, SIGKILL, NULL);
    }
    int status = 0;
    sbx_child_wait(child, &status, NULL);
    sbx_child_free(child);
    if (cg)
        sbx_cgroup_destroy(cg, NULL);
    double secs = (now_ns() - start) / 1e9;
    cleanup_free char *extra = xasprintf("X-Duration-Seconds: %.6f\r\n", secs);
    if (timed_out) {
        cleanup_free char *body =
            xasprintf("function '%s' timed out: it exceeded its timeout of %lld seconds\n", f->name,
                      (long long)f->timeout);
        faas_respond(fd, 504, request_id, NULL, body, strlen(body), extra);
        return 504;
    }
    int code = sbx_status_to_exit_code(status);
    if (code != 0) {
        cleanup_free char *body = xasprintf("function '%s' exited with status %d\n%.*s", f->name,
                                            code, (int)out_len, output ? output : "");
        faas_respond(fd, 500, request_id, NULL, body, strlen(body), extra);
        return 500;
    }
    const char *ct = faas_request_header(req, "Content-Type");
    for (char **e = f->env; e && *e; e++)
        if (str_has_prefix(*e, "content_type="))
            ct = *e + strlen("content_type=");
    faas_respond(fd, 200, request_id, ct, output, out_len, extra);
    return 200;
}
