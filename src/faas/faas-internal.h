/* SPDX-License-Identifier: Apache-2.0 */
/* Shared types of the faas layer: parsed requests, functions and the registry. */
#ifndef HUSK_FAAS_INTERNAL_H
#define HUSK_FAAS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "husk/error.h"
#include "faas.h"
#include "oci.h"

#define FAAS_ADMIN_MAX_BODY   (1u << 20)
#define FAAS_DEFAULT_MAX_BODY (6u << 20)
#define FAAS_DEFAULT_TIMEOUT  300
#define FAAS_MAX_HEADERS      64

struct faas_header {
    char *name, *value;
};

/* One HTTP request, filled by the llhttp callbacks (http-parse.c). */
struct faas_request {
    char method[16];
    char *url;
    size_t url_len;
    struct faas_header headers[FAAS_MAX_HEADERS];
    size_t n_headers;
    char *body;
    size_t body_len;
    uint64_t max_body; /* set when the headers are complete; over it: 413 */
    bool too_large;    /* the body was over max_body */
    bool headers_done, complete;
};

struct faas_parser;
struct faas_parser *faas_parser_new(void);
void faas_parser_free(struct faas_parser *p);
/* The limit for a request's body, chosen from its method and path once headers are in. */
void faas_parser_set_limit_fn(struct faas_parser *p,
                              uint64_t (*fn)(const struct faas_request *r, void *data), void *data);
/* Feed bytes: 0 (need more), 1 (request complete), -1 (malformed: *why says what). */
int faas_parser_feed(struct faas_parser *p, const char *buf, size_t len, const char **why);
struct faas_request *faas_parser_request(struct faas_parser *p);
const char *faas_request_header(const struct faas_request *r, const char *name);
void faas_request_reset(struct faas_request *r);

/* A deployed function: the spec as given, and the sandbox plan built once from its bundle. */
struct faas_function {
    char *name, *bundle, *contract;
    char **env; /* NULL-terminated K=V */
    int64_t timeout, max_body, memory, version;
    struct oci_config *cfg;
};
void faas_function_free(struct faas_function *f);
void faas_function_freep(struct faas_function **f);
json_t *faas_function_json(const struct faas_function *f);

/* Validate a deploy request. A user's mistake is -EINVAL with a message naming the field. */
int faas_function_parse(const char *body, size_t len, const char *seccomp_cache,
                        struct faas_function **out, struct husk_error **err);
/* Build the sandbox plan of f from its bundle. */
int faas_function_load(struct faas_function *f, const char *seccomp_cache, struct husk_error **err);

struct faas_registry;
int faas_registry_open(const char *state_dir, struct faas_registry **out, struct husk_error **err);
void faas_registry_free(struct faas_registry *r);
/* Functions whose bundle no longer loads are skipped; *warn gets the first reason. */
int faas_registry_load(struct faas_registry *r, const char *seccomp_cache,
                       struct faas_function ***out, size_t *n, char **warn,
                       struct husk_error **err);
/* Insert or replace; sets f->version (1, or the previous version + 1). */
int faas_registry_put(struct faas_registry *r, struct faas_function *f, struct husk_error **err);
/* 1 removed, 0 not there. */
int faas_registry_delete(struct faas_registry *r, const char *name, struct husk_error **err);

/* Run one invocation of f for req and write the whole HTTP response on fd. Runs in a worker
 * process of its own (the daemon forks it); returns the status sent. */
int faas_invoke(const struct faas_function *f, const struct faas_request *req, const char *subpath,
                const char *request_id, const char *cgroup_root, int fd);

/* Write a complete response with Connection: close. */
int faas_respond(int fd, int status, const char *request_id, const char *content_type,
                 const char *body, size_t len, const char *extra_headers);
const char *faas_status_text(int status);

/* The daemon's state (server.c), shared with the routes (routes.c). */
struct conn;
struct faas_server {
    const struct faas_serve_opts *opts;
    struct faas_registry *reg;
    struct faas_function **fns;
    size_t n_fns;
    char *seccomp_cache;
    int listen_fd, epoll_fd;
    struct conn *conns; /* connections still being read */
    size_t n_conns, n_workers;
    bool stopping;
};

struct faas_function *faas_server_find(struct faas_server *s, const char *name, size_t len);
void faas_server_log(struct faas_server *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Run fn(data) in a worker process that owns fd; the daemon goes on at once. */
int faas_server_fork(struct faas_server *s, int fd, void (*fn)(void *data), void *data);

/* Route a complete request; the response is written (or a worker writes it). */
void faas_route(struct faas_server *s, int fd, const struct faas_request *req,
                const char *request_id);
/* The body limit of a request, from its path (a function's max_body, or the admin limit). */
uint64_t faas_route_body_limit(const struct faas_request *req, void *data);

#endif
