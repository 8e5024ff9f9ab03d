/* SPDX-License-Identifier: Apache-2.0 */
/* Shared types of the faas layer: requests, functions, instances, calls and the daemon. */
#ifndef HUSK_FAAS_INTERNAL_H
#define HUSK_FAAS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "husk/cgroup.h"
#include "husk/error.h"
#include "faas.h"
#include "husk/net.h"
#include "oci.h"

#define FAAS_ADMIN_MAX_BODY       (1u << 20)
#define FAAS_DEFAULT_MAX_BODY     (6u << 20)
#define FAAS_DEFAULT_TIMEOUT      300
#define FAAS_DEFAULT_IDLE         300
#define FAAS_DEFAULT_INIT         10
#define FAAS_DEFAULT_MAX          10
#define FAAS_DEFAULT_PORT         8080
#define FAAS_MAX_HEADERS          64
#define FAAS_DEFAULT_MAX_RESPONSE (6u << 20) /* a buffered response, as Lambda's limit */
#define FAAS_USERNS_SIZE          65536u     /* host ids of each function: 0..65535 inside */
#define NS_PER_SEC                1000000000ull

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- HTTP requests (http-parse.c) */

struct faas_header {
    char *name, *value;
};

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
    bool may_stream;   /* set with max_body: the route takes the body as it comes */
    bool body_streams; /* handed over with its head: the body follows (faas_conn_body_take) */
    bool headers_done, complete;
    bool keep_alive; /* the client may send another request on the connection */
    bool http10;     /* an HTTP/1.0 client: no chunked responses */
    /* Expect: 100-continue from an HTTP/1.1 client with a body: it waits for "100 Continue"
     * before sending the body (RFC 9110 10.1.1), which the connection says as it reads it */
    bool expect_continue;
    /* A streamed body the client sized (Content-Length, not chunked): its length, passed on as
     * it is to an http function (many servers take no chunked request body) */
    bool stream_sized;
    uint64_t stream_length;
};

struct faas_parser;
struct faas_parser *faas_parser_new(void);
void faas_parser_free(struct faas_parser *p);
/* Once a request's headers are in: fn sets its max_body and may_stream (from its method and
 * path). */
void faas_parser_set_head_fn(struct faas_parser *p, void (*fn)(struct faas_request *r, void *data),
                             void *data);
/* Feed bytes: 0 (need more), 1 (request complete), -1 (malformed: *why says what). */
int faas_parser_feed(struct faas_parser *p, const char *buf, size_t len, const char **why);
/* The status for a request feed refused: 400, 414 or 431. */
int faas_parser_status(const struct faas_parser *p);
/* Bytes of the last fed buffer the request used (the rest belongs to the next request). */
size_t faas_parser_consumed(const struct faas_parser *p);
/* Move the complete request out and get ready for the next one on the same connection. For a
 * body that streams: first the head (body_streams set), then, at the end of the body, its
 * trailers (complete set; too_large when it went over the limit). */
void faas_parser_take(struct faas_parser *p, struct faas_request *out);
/* A streamed body is being read (its head was taken). */
bool faas_parser_streaming(const struct faas_parser *p);
/* The streamed body bytes parsed since the last look (valid until the next feed). */
const char *faas_parser_body(struct faas_parser *p, size_t *len);
struct faas_request *faas_parser_request(struct faas_parser *p);
const char *faas_request_header(const struct faas_request *r, const char *name);
void faas_request_reset(struct faas_request *r);

struct faas_server;
/* ---- timers (timer.c): a min-heap of deadlines, embedded in their objects */

struct faas_timer {
    uint64_t when; /* now_ns() clock */
    size_t slot;   /* 1 + its index in the heap; 0: not armed */
    void (*fn)(struct faas_server *s, struct faas_timer *t);
};
/* Arm (or move) t to fire at `when`. */
void faas_timer_set(struct faas_server *s, struct faas_timer *t, uint64_t when);
void faas_timer_cancel(struct faas_server *s, struct faas_timer *t);
/* Ids (not secrets): 64 random bits, or 2 x bytes hex digits and a NUL into out. */
uint64_t faas_random(struct faas_server *s);
void faas_random_hex(struct faas_server *s, char *out, size_t bytes);

/* Responses of a function's server (http-response.c), framed by their own headers. */
struct faas_resp_head {
    int status;   /* 200..599: interim 1xx responses are skipped */
    char *reason; /* printable ASCII only */
    struct faas_header *headers;
    size_t n_headers;
    bool chunked, has_length, no_body, keep_alive;
    uint64_t length;
};
struct faas_resp_ops {
    void (*head)(void *data, const struct faas_resp_head *h);
    void (*body)(void *data, const char *p, size_t n); /* de-chunked */
};
struct faas_resp_parser;
struct faas_resp_parser *faas_resp_parser_new(const struct faas_resp_ops *ops, void *data);
/* Ready for the next response; head_only: it answers a HEAD request (no body). */
void faas_resp_parser_reset(struct faas_resp_parser *p, bool head_only);
void faas_resp_parser_free(struct faas_resp_parser *p);
/* Feed bytes (len 0: the server closed). 0 need more, 1 the response is complete (*used:
 * bytes of buf it took; the rest is not part of it), -1 malformed (*why says what). */
int faas_resp_feed(struct faas_resp_parser *p, const char *buf, size_t len, size_t *used,
                   const char **why);
const char *faas_resp_header(const struct faas_resp_head *r, const char *name);
/* A 101 answer may end the response (the request asked for an upgrade): the parser stops
 * after its head, and faas_resp_upgraded says so. */
void faas_resp_allow_upgrade(struct faas_resp_parser *p);
bool faas_resp_upgraded(const struct faas_resp_parser *p);
/* The complete response left the connection open for another (its framing and headers). */
bool faas_resp_keep_alive(const struct faas_resp_parser *p);
/* Bytes of a sized body still to come once its head is parsed (0: none, unsized or over). */
uint64_t faas_resp_body_left(const struct faas_resp_parser *p);
/* n of them were taken past the parser (spliced): the response is complete at 0. */
void faas_resp_body_skip(struct faas_resp_parser *p, uint64_t n);

/* ---- functions (spec.c) and their registry (registry.c) */

#define FAAS_NAME_MAX 63

struct faas_instance;
struct faas_call;

/* What a deploy may ask for (policy.c): set by the operator, the same for every deployer. */
struct faas_policy {
    char **allow_bind; /* directories (canonical) whose subtrees a bundle may bind */
    size_t n_allow_bind;
    uint32_t userns_base;                   /* the first host uid/gid of the functions' ranges */
    uint32_t userns_slots;                  /* ranges of FAAS_USERNS_SIZE ids from there */
    struct faas_fn_limits defaults, maxima; /* the operator's, for every function */
    const char *runtime_dir; /* /run/husk-functions/serve-HASH: files functions read */
};

/* Who deploys, and under which rules. */
struct faas_deploy_ctx {
    const char *state_dir;
    const struct faas_policy *policy;
    uid_t owner; /* the deployer (the admin socket's peer): files may be theirs, or root's */
};

/* One deployed version of a function: the spec as given, and the sandbox plan built from it. */
struct faas_function {
    char *name;
    json_t *spec; /* the deploy request as validated (stored in the registry) */
    const struct faas_contract_ops *contract;
    int64_t timeout, max_body, max_response, memory, pids, port, concurrency, min, max, idle,
        freeze, init_timeout, queue, version;
    double cpus;
    char **env;    /* NULL-terminated K=V, added to the process's */
    char *handler; /* lambda: _HANDLER */
    struct oci_config *cfg;
    /* The root (a directory as O_PATH, or an image file), opened and checked at deploy and
     * used through this fd ever since; checked again at each instance start. */
    int root_fd;
    bool root_is_image;
    /* An image's read-only root, mounted once (by the first spawn) and cloned for each
     * instance: one superblock and one page cache for all of them. */
    int image_mnt;
    pthread_mutex_t image_lock;
    char *root_path; /* for messages */
    uid_t owner;
    uint32_t userns_base; /* host id of the function's uid 0 (the registry allocates it) */
    /* run time (pool.c) */
    struct faas_instance *instances;
    struct faas_call *queue_head, *queue_tail;
    size_t n_queued, n_instances, n_starting, next_instance;
    struct faas_timer t_min; /* start `min` instances again after a failure, with backoff */
    unsigned start_failures; /* instances in a row that died before they were ready */
    size_t n_spawning;       /* on the work threads: the version is not freed under them */
    size_t n_dying;          /* stopped, their processes or cgroup not gone yet */
    size_t n_frozen;         /* idle instances frozen (--freeze) */
    bool retired;            /* an older version or removed: no new calls, freed once idle */
    struct faas_function *next_retired;
    /* egress.c: "network": "egress", its allow-list and resolver */
    bool egress_on;
    struct sbx_egress_rule *egress;
    size_t n_egress;
    char *egress_dns;
    /* versions.c: on the latest, the older versions loaded for calls by version or alias */
    struct faas_function *pinned, *pinned_next;
    /* publish.c: "publish": a listening socket on the host that the instances accept from */
    char *publish;        /* the address as deployed, "HOST:PORT"; NULL: not published */
    bool publish_fds;     /* "publish_mode": "listen_fds" (else "bind") */
    struct faas_pub *pub; /* the socket, held by the deployed version (not a pinned one) */
    /* zygote-fork.c: a function with "zygote": its instances are forks of the zygote in
     * one template sandbox, kept while the version is deployed */
    bool fork_instances;
    struct faas_instance *tmpl;
    size_t n_tmpl; /* template sandboxes not released yet: the version is not freed under them */
    size_t n_lent; /* its instances' lent counts: the version is not freed under front loops */
};

void faas_function_free(struct faas_function *f);
void faas_function_freep(struct faas_function **f);
int64_t faas_function_memory_mb(const struct faas_function *f);
json_t *faas_function_json(const struct faas_function *f);
/* Validate a deploy request and build the function's sandbox under the deploy policy. A
 * user's mistake or a refusal is -EINVAL/-EPERM/-errno with a message naming the field. */
int faas_function_parse(const char *body, size_t len, const struct faas_deploy_ctx *dc,
                        struct faas_function **out, struct husk_error **err);
/* A tmpfs on /tmp (for a read-only root). */
void faas_add_tmp(struct sbx_config *c);
/* The function's host id range is known (after the registry allocated it). */
void faas_function_set_userns(struct faas_function *f, uint32_t base);

/* ---- WebAssembly functions (wasm.c, wasm-module.c) */

/* What a deploy learns of a module from its binary (wasm-module.c). */
struct faas_wasm_info {
    uint32_t n_imports; /* all from wasi_snapshot_preview1 */
    uint32_t min_pages; /* of its memory, 64 KiB each */
    bool has_start, has_memory, exports_memory;
};
/* 0 for a WASI preview1 command module whose framing is sound; -1 with *why naming the
 * problem. */
int faas_wasm_module_check(const uint8_t *p, size_t len, struct faas_wasm_info *info, char *why,
                           size_t why_len);
/* The plan of a "wasm" deploy: the module read under the deploy policy, the function's root
 * (the engine's, with the module) built under the state directory, the per-call program and
 * the directories granted. */
int faas_wasm_plan(struct faas_function *f, json_t *spec, const struct faas_deploy_ctx *dc,
                   struct husk_error **err);

/* Zygotes (zygote.c): with "zygote": true, the plan's command becomes the agent's zygote
 * command line; a program or contract without a zygote is the deployer's mistake. */
int faas_zygote_plan(struct faas_function *f, json_t *spec, struct husk_error **err);

/* ---- the deploy policy (policy.c) */

/* Open an absolute path for a deploy: no symlinks on the way, each directory owned by root or
 * `owner` and not open to swaps by others, the target owned so and writable by no one else.
 * *out: an O_PATH fd (want_dir) or an O_RDONLY one (a file). */
int faas_open_trusted(const char *path, uid_t owner, bool want_dir, const char *field, int *out,
                      struct husk_error **err);
/* The fd's file still has a trusted owner and mode (what: names it in the message). */
int faas_recheck_trusted(int fd, uid_t owner, const char *what, struct husk_error **err);
/* A bind source the operator allows (husk serve --allow-bind DIR): canonical, beneath one of
 * the allowed directories. field names it in the refusal. */
int faas_policy_check_bind(const struct faas_policy *p, const char *source, const char *field,
                           struct husk_error **err);
/* Hold the plan to the policy (a bundle's config is checked field by field) and force what
 * every function gets: its own namespaces, no_new_privs, landlock unless opted out. */
int faas_policy_apply(const struct faas_policy *p, struct oci_config *oc, bool from_bundle,
                      bool landlock, struct husk_error **err);
/* Map the function's ids 0..65535 to its host range. */
void faas_policy_idmap(struct sbx_config *c, uint32_t base);

struct faas_registry;
int faas_registry_open(const char *state_dir, const struct faas_policy *p,
                       struct faas_registry **out, struct husk_error **err);
void faas_registry_free(struct faas_registry *r);
/* Functions whose bundle no longer loads are skipped; *warn gets the first reason. */
int faas_registry_load(struct faas_registry *r, const struct faas_deploy_ctx *dc,
                       struct faas_function ***out, size_t *n, char **warn,
                       struct husk_error **err);
/* Insert or replace; sets f->version (1, or the previous version + 1) and, for a new function,
 * allocates its host id range (kept across versions, freed on delete). */
int faas_registry_put(struct faas_registry *r, struct faas_function *f, struct husk_error **err);
/* 1 removed, 0 not there (its versions and aliases go with it). */
int faas_registry_delete(struct faas_registry *r, const char *name, struct husk_error **err);
/* Versions (registry-versions.c): every deploy is kept. A version as a function (-ENOENT when
 * there is none), its spec (NULL: none), and the list [{version, created_ms, spec}]. */
int faas_registry_version_get(struct faas_registry *r, const char *name, int64_t version,
                              const struct faas_deploy_ctx *dc, struct faas_function **out,
                              struct husk_error **err);
json_t *faas_registry_version_spec(struct faas_registry *r, const char *name, int64_t version);
json_t *faas_registry_versions(struct faas_registry *r, const char *name);
/* An alias: NAME@ALIAS calls `version`, or `version2` for a share `weight2` of the calls. */
struct faas_alias {
    char *fn, *name;
    int64_t version, version2; /* version2 0: none */
    double weight2;
    struct faas_alias *next;
};
void faas_alias_free(struct faas_alias *a);
int faas_registry_alias_put(struct faas_registry *r, const struct faas_alias *a,
                            struct husk_error **err);
/* 1 removed, 0 not there. */
int faas_registry_alias_delete(struct faas_registry *r, const char *fn, const char *alias,
                               struct husk_error **err);
int faas_registry_aliases_load(struct faas_registry *r, struct faas_alias **list,
                               struct husk_error **err);

/* ---- the event loop's watches: epoll's data.ptr points to one */

struct faas_server;
struct faas_watch {
    void (*fn)(struct faas_server *s, struct faas_watch *w, uint32_t events);
    bool dead; /* its object was torn down: events already fetched are dropped */
};
int faas_watch_add(struct faas_server *s, int fd, uint32_t events, struct faas_watch *w);
int faas_watch_mod(struct faas_server *s, int fd, uint32_t events, struct faas_watch *w);
void faas_watch_del(struct faas_server *s, int fd);

/* ---- listening sockets (listen.c) */

struct faas_client;
struct faas_listener {
    struct faas_watch w;
    struct faas_timer resume; /* after running out of fds */
    int fd;
    bool admin;  /* the unix socket: its (checked) peers may use the admin API */
    bool paused; /* out of fds: not accepting until `resume` or a connection closes */
    bool shared; /* one socket, many loops: each woken alone (EPOLLEXCLUSIVE) */
    char *path;  /* the socket file, removed at exit while it is still this one */
    dev_t dev;
    ino_t ino;
};
int faas_listeners_open(struct faas_server *s, struct husk_error **err);
/* A front loop watches the front door too (its own listener on the same socket). */
struct faas_loop;
int faas_listener_share(struct faas_server *s, struct faas_loop *l);
void faas_listeners_close(struct faas_server *s);
int faas_listen_check(const struct faas_serve_opts *o, struct husk_error **err);
/* "IPV4:PORT" or "[IPV6]:PORT" (what: the flag or field, for the message). */
int faas_parse_address(const char *spec, const char *what, struct sockaddr_storage *ss,
                       socklen_t *len, struct husk_error **err);
bool faas_address_is_loopback(const struct sockaddr_storage *ss);
/* A connection closed: resume a listener paused for want of fds. */
void faas_listeners_wake(struct faas_server *s);
/* One connection of this client address fewer (NULL: none counted). */
void faas_client_release(struct faas_server *s, struct faas_client *c);
void faas_clients_free(struct faas_server *s);

/* A growable byte buffer with a read offset. */
struct faas_buf {
    char *p;
    size_t len, off, cap;
};
void faas_buf_add(struct faas_buf *b, const void *data, size_t len);
/* Move what is pending to the front, when len more bytes would otherwise grow the buffer: for
 * a buffer consumed from the front while it is filled (a streamed body), whose holders keep no
 * offsets into it. */
void faas_buf_compact(struct faas_buf *b, size_t len);
void faas_buf_addf(struct faas_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void faas_buf_free(struct faas_buf *b);
size_t faas_buf_pending(const struct faas_buf *b);
/* Send what is pending to a non-blocking socket while it takes it (*writable: what the last
 * edge said; false once it is full). 0 all sent (the bytes stay, before off), 1 more to send,
 * -1 the peer is gone (errno). */
int faas_buf_send(struct faas_buf *b, int fd, bool *writable);

/* ---- client connections (conn.c) */

struct faas_conn {
    struct faas_watch w;
    struct faas_timer deadline; /* to finish sending a request (or, idle, to send the next) */
    int fd;
    char peer[96];
    bool admin;                 /* came through the admin socket (its peer was checked) */
    uid_t peer_uid;             /* the admin socket's peer; -1 over TCP */
    struct faas_client *client; /* counted against the per-client cap (TCP) */
    struct faas_parser *parser;
    struct faas_buf in;  /* bytes read but not parsed yet (a pipelined request) */
    struct faas_buf out; /* response bytes not written yet */
    bool busy;           /* a request is being answered: nothing more is read */
    bool got_bytes, keep_alive, close_after, done;
    bool readable, writable;    /* what the last edges said (EPOLLET) */
    bool peer_closed;           /* the client shut down its side: answer, then close */
    bool broken;                /* a send failed: closed on the next turn */
    struct faas_call *call;     /* the invocation answering the current request */
    struct faas_instance *from; /* a connection an instance's program made, or NULL */
    struct faas_conn **waiter;  /* admin work waiting to answer: cleared when the client goes */
    /* the body of the request being answered, when it streams to whoever took it */
    const struct faas_body_sink_ops *sink_ops;
    void *sink;
    bool body_open;    /* more of it to come */
    bool body_paused;  /* its taker has no room now: not reading */
    bool continue_due; /* "100 Continue" is owed before the body is read */
    struct faas_timer t_resume;
    struct faas_loop *home; /* the front loop it came from, when the main loop answers it */
    struct faas_conn *prev, *next;
};

/* Where a request body that streams goes: pieces as they come, then the end (status 0: whole;
 * 413 over the limit; 400 the client broke off; trailers: a chunked body's trailer fields, or
 * NULL). room: whether more may come now; after a no, the taker calls faas_conn_body_resume. */
struct faas_body_sink_ops {
    void (*data)(void *sink, const char *p, size_t n);
    void (*end)(void *sink, int status, const struct faas_request *trailers);
    bool (*room)(void *sink);
};
/* Take the rest of the current request's body (req->body_streams). A body no one takes is
 * not read: the connection closes after the answer. */
void faas_conn_body_take(struct faas_conn *c, const struct faas_body_sink_ops *ops, void *sink);
/* The taker goes away before the end: the rest is not read. */
void faas_conn_body_drop(struct faas_conn *c);
void faas_conn_body_resume(struct faas_server *s, struct faas_conn *c);

/* A connection an instance's program made to the daemon (non-blocking fd). */
struct faas_conn *faas_conn_new_from(struct faas_server *s, int fd, struct faas_instance *in,
                                     void (*head)(struct faas_request *r, void *data));
/* Close every connection the instance made. */
void faas_conn_close_from(struct faas_server *s, struct faas_instance *in);
/* A new client connection (fd non-blocking); NULL when it cannot be watched. */
struct faas_conn *faas_conn_new(struct faas_server *s, int fd, const char *peer, bool admin,
                                uid_t uid, struct faas_client *client);
/* Queue bytes of the response; faas_conn_flush writes what the socket takes (pieces queued
 * in one turn go out in one send). */
void faas_conn_send(struct faas_server *s, struct faas_conn *c, const void *data, size_t len);
void faas_conn_flush(struct faas_server *s, struct faas_conn *c);
/* http-splice.c: a large sized body of an http function's answer, socket to socket. Whether
 * the call's body goes that way from now on (its head has left for the client). */
bool faas_splice_wanted(struct faas_call *c);
/* Move what the sockets take: 0 blocked (an edge of either resumes it), 1 the body is whole,
 * -1 the server's side failed (*why), -2 the client is gone (its connection closes). */
int faas_splice_pump(struct faas_call *c, const char **why);
void faas_splice_free(struct faas_call *c);
/* tunnel.c: upgraded connections of the http contract (WebSocket, h2c). Whether the request
 * asks for an upgrade that can be relayed (a client of the front door, no body). */
bool faas_tunnel_asked(const struct faas_call *c);
/* The server answered 101 (its head is queued for the client; from_server: what it sent
 * after it): the two connections become one stream each way until both ends close. */
void faas_tunnel_start(struct faas_call *c, const char *from_server, size_t n);
void faas_tunnel_pump(struct faas_call *c);
void faas_tunnel_end(struct faas_call *c);
void faas_tunnel_free(struct faas_call *c);
/* The daemon stops: every tunnel closes now (an open WebSocket would hold it forever). */
void faas_tunnel_stop_all(struct faas_server *s);
/* A write to the client failed: it is closed on the next turn of the loop. */
void faas_conn_broken(struct faas_server *s, struct faas_conn *c);
/* A complete response with Content-Length, then the request is done. */
void faas_conn_respond(struct faas_server *s, struct faas_conn *c, int status, const char *rid,
                       const char *content_type, const char *body, size_t len,
                       const char *extra_headers);
/* The response is all queued: close when written, or read the next request (keep-alive). */
void faas_conn_done(struct faas_server *s, struct faas_conn *c);
const char *faas_status_text(int status);
/* idle_only: those not being answered (shutdown; the others close after their response). */
void faas_conn_close_all(struct faas_server *s, bool idle_only);
/* "Connection: keep-alive|close" for the current request. */
const char *faas_conn_connection_header(const struct faas_conn *c);

/* ---- work off the loop (work.c): spawns, deploys, registry writes on a few threads */

struct faas_work {
    void (*run)(struct faas_work *w); /* on a worker thread: touches nothing the loop owns */
    void (*done)(struct faas_server *s, struct faas_work *w); /* back on the loop */
    struct faas_work *next;
};
struct faas_workq;
int faas_workq_new(struct faas_server *s, unsigned threads, struct faas_workq **out,
                   struct husk_error **err);
void faas_workq_submit(struct faas_workq *q, struct faas_work *w);
/* Wait for everything submitted, running each done (shutdown), and stop the threads. */
void faas_workq_stop(struct faas_server *s, struct faas_workq **q);
/* The daemon's queue for spawns, deploys and registry work. */
void faas_work_submit(struct faas_server *s, struct faas_work *w);

/* ---- contracts: how a function is called (one ops row and one file each) */

struct faas_contract_ops {
    const char *name;
    unsigned default_concurrency;
    /* The agent runs the program once as the instance's server (http), not once per call. */
    bool server;
    /* On the work thread, once the sandbox exists and before its program starts (lambda: the
     * Runtime API's socket in the instance's network). May be NULL. */
    int (*prepare)(struct faas_instance *in, struct husk_error **err);
    /* What an instance that is not ready within init_timeout failed to do (owned). */
    char *(*not_ready)(const struct faas_function *f);
    /* Ready when spawned, or told so (http: a connect to $PORT succeeds). */
    void (*await_ready)(struct faas_server *s, struct faas_instance *in);
    /* A request the instance's program made to the daemon (lambda: the Runtime API). */
    void (*instance_request)(struct faas_server *s, struct faas_conn *c, struct faas_request *req,
                             const char *rid);
    /* Variables the contract adds to the process environment of every instance (at most
     * env_size of them). */
    void (*env)(const struct faas_function *f, char ***env, size_t *n);
    size_t env_size;
    /* At deploy, after the plan is built: the contract's own fields and entrypoint. */
    int (*deploy)(struct faas_function *f, json_t *spec, struct husk_error **err);
    int (*call_start)(struct faas_call *c, struct husk_error **err);
    void (*call_close)(struct faas_call *c);
    /* The client went away, or its socket has room again (backpressure). */
    void (*call_detach)(struct faas_call *c);
    void (*call_drained)(struct faas_call *c);
    /* More of a streamed request body is in c->body_in, or it ended (c->body_open false). */
    void (*call_body)(struct faas_call *c);
    bool streams_body; /* request bodies may stream to it (faas_route_head) */
};
extern const struct faas_contract_ops faas_contract_stdio, faas_contract_cgi, faas_contract_http,
    faas_contract_lambda;
const struct faas_contract_ops *faas_contract_find(const char *name);

/* ---- instances (instance.c) and the pool that schedules calls on them (pool.c) */

/* Where a fork of a zygote (zygote-fork.c) is on its way to be an instance. */
enum faas_fork_phase {
    FORK_PREPARING,     /* its cgroup and pipes (a zygote's: its socket), on a work thread */
    FORK_AWAIT_TMPL,    /* the template sandbox is being made */
    FORK_AWAIT_STARTED, /* asked of the template's agent */
    FORK_ENTERING,      /* being moved into its cgroup, on a work thread */
    FORK_RUNNING,       /* through its gate */
};

enum faas_instance_state {
    INST_SPAWNING, /* the sandbox is being made, off the loop */
    INST_STARTING, /* made; its server is not answering yet */
    INST_READY,
    INST_DYING, /* killed: waiting for its pid 1 to be gone, then for its cgroup to go */
};

/* A kept-alive connection to an http instance's server. */
struct faas_upstream {
    struct faas_watch w;
    int fd;
    struct faas_instance *in;
    uint64_t serial;             /* its instance's (a front loop's list outlives instances) */
    struct faas_upstream **home; /* the idle list it goes back to */
    struct faas_call *call;      /* NULL while idle in the list */
    bool server_closed;          /* its edges said so: never kept for another call */
    bool readable, writable;     /* what the last edges said (EPOLLET) */
    struct faas_upstream *next;
};

struct faas_instance {
    struct faas_work work; /* the spawn */
    struct faas_watch w_pid, w_log, w_ctl, w_probe;
    struct faas_timer t_init, t_idle, t_probe, t_remove, t_slim, t_reap, t_freeze;
    struct faas_timer t_log; /* a published instance's log, read in batches */
    uint64_t reap_delay;
    bool agent_reaped;    /* waited for by pid (an instance without a pidfd) */
    bool program_exited;  /* its program (the agent, the server) ended by itself */
    bool frozen;          /* idle for --freeze seconds: its cgroup is frozen */
    bool pub_checking;    /* its idle check is off the loop (publish.c): not freed until back */
    bool bury_later;      /* released during that check */
    char answered[8][40]; /* lambda: the last request ids answered (a second answer: 403) */
    unsigned n_answered;
    struct faas_server *s;
    struct faas_function *fn;
    char id[96];
    uint64_t serial; /* unique in the daemon's life (an address may be reused) */
    /* Calls of front loops on it, and their messages not handled yet (loops.c): the instance
     * is not freed before they are done with it. */
    size_t lent;
    char lent_rid[72]; /* the request id of the front loop's call that runs alone on it, or "" */
    enum faas_instance_state state;
    bool doomed;    /* destroyed while spawning: ended when the spawn returns */
    bool condemned; /* a front loop's call on it timed out: picked by no call, ended soon */
    struct sbx_child *child;
    struct sbx_cgroup *cg;
    int ctl_fd, log_fd, netns_fd, probe_fd, peak_fd;
    bool leased; /* holds an address on the bridge (egress.c) */
    int spawn_r; /* the spawn's result, and its error */
    struct husk_error *spawn_err;
    struct faas_buf log;          /* a partial line */
    uint64_t spawned_ns, init_ns; /* when it was spawned; how long until ready */
    uint64_t probe_delay;         /* the next readiness probe's backoff */
    unsigned remove_tries;
    size_t in_flight, served;
    uint64_t last_end_ns;        /* when its last call ended */
    uint64_t oom_kills;          /* seen so far */
    uint64_t peak, peak_read_ns; /* memory peak, as last read */
    uint32_t server_run;         /* the agent's run of an http instance's server, 0: none */
    struct faas_call *calls;
    struct faas_upstream *idle_up; /* kept-alive connections to its server */
    /* lambda: the Runtime API, served inside the instance's network */
    struct faas_watch w_api;
    int api_fd;
    struct faas_conn *api_conns;                  /* the runtime's connections */
    struct faas_conn *api_next;                   /* a runtime waiting in invocation/next */
    struct faas_call *api_queue, *api_queue_tail; /* assigned, not handed to the runtime yet */
    /* publish.c: the seccomp listener of its bind() and listen() calls */
    struct faas_watch w_notify;
    int notify_fd;
    int64_t port; /* http: its server's $PORT in its network */
    /* zygote-fork.c: a template (the zygote's sandbox, in no pool), or a fork of one */
    bool is_template, is_fork;
    enum faas_fork_phase phase;
    struct faas_instance *tmpl; /* a fork's template; NULL once that is gone */
    struct faas_instance *forks, *fork_next;
    int gate_fd, run_pidfd; /* the fork's gate (write end), its process */
    int hand[2]; /* for the agent: the gate's read end (a zygote's socket), the log's write end */
    int32_t early_status; /* it ended while it was being moved into its cgroup */
    bool ended_early;
    struct faas_instance *next;
};

/* Make an instance of f: the spawn runs off the loop; the pool hears back. */
void faas_instance_spawn(struct faas_server *s, struct faas_function *f);
/* Ask the instance's agent to run its program with this environment block ("K=V\0...") and
 * stdio; it reports the end with the same id. */
int faas_instance_send_run(struct faas_instance *in, uint32_t id, const struct faas_buf *env,
                           const int fds[3], struct husk_error **err);
/* Kill the whole instance and release it once its processes and cgroup are gone. */
void faas_instance_destroy(struct faas_server *s, struct faas_instance *in);
/* The instance is ready: calls may go to it. */
void faas_instance_ready(struct faas_server *s, struct faas_instance *in);
/* A socket created in the instance's network namespace (CLOEXEC, non-blocking). */
int faas_instance_socket(struct faas_server *s, struct faas_instance *in);
/* Whether the kernel OOM-killed anything in the instance since the last look (asked when
 * something failed); calls in flight are marked. */
bool faas_instance_oom_check(struct faas_server *s, struct faas_instance *in);
/* The instance's memory peak is within 1 MiB of its limit (an OOM kill may have happened). */
bool faas_instance_near_limit(struct faas_instance *in);
/* Calls begin to run on the instance (busy), or none is left: the memory peak's fd is held
 * only meanwhile. */
void faas_instance_busy(struct faas_server *s, struct faas_instance *in, bool busy);
/* Peak memory of the instance so far (bytes; one pread), 0 when unknown. */
uint64_t faas_instance_max_memory(struct faas_instance *in);
/* Calls in flight changed: the idle timer starts or stops. */
void faas_instance_idle_check(struct faas_server *s, struct faas_instance *in);
/* A published instance's idle check is back: keep it (its idle timer again) or stop it. */
void faas_instance_idle_decided(struct faas_server *s, struct faas_instance *in, bool keep);
/* Its idle check is back, or its last front loop's lease: whether it was released meanwhile
 * (then it is buried now, if nothing else still holds it). */
bool faas_instance_released(struct faas_server *s, struct faas_instance *in);
/* http: wait for the server to accept connections (a connect with backoff, never a poll). */
void faas_instance_probe_start(struct faas_server *s, struct faas_instance *in);

/* What instance.c shares with zygote-fork.c. */
struct faas_instance *faas_instance_new(struct faas_server *s, struct faas_function *f);
int faas_instance_make_cgroup(struct faas_server *s, struct faas_function *f,
                              struct faas_instance *in, struct husk_error **err);
int faas_instance_watch_log(struct faas_server *s, struct faas_instance *in);
/* Its program ended (why: owned by the caller): its calls fail, the pool replaces it. */
void faas_instance_end(struct faas_server *s, struct faas_instance *in, const char *why);
/* Its processes are gone: the cgroup goes, then the instance. */
void faas_instance_reaped(struct faas_server *s, struct faas_instance *in);
/* The message of a program's end by its wait status (or -errno). Owned. */
char *faas_instance_end_reason(struct faas_server *s, struct faas_instance *in, int status);

/* ---- functions from a zygote (zygote-fork.c) */

/* Start the version's template sandbox, when it has none (at deploy, and for an instance). */
void faas_fork_template(struct faas_server *s, struct faas_function *f);
/* Make instance in as a fork of the template's zygote. */
void faas_fork_spawn(struct faas_server *s, struct faas_instance *in);
/* The template's sandbox exists (or could not be made: spawn_r), or ended. */
void faas_fork_template_spawned(struct faas_server *s, struct faas_instance *t);
void faas_fork_template_ended(struct faas_server *s, struct faas_instance *t, const char *why);
/* Kill a fork that is stopping; faas_instance_reaped once its processes are gone. */
void faas_fork_kill(struct faas_server *s, struct faas_instance *in);
/* The retired version's last instance went: its template goes too. */
void faas_fork_template_stop(struct faas_server *s, struct faas_function *f);
/* The template's agent's messages (its forks' starts and ends). */
void faas_fork_on_ctl(struct faas_server *s, struct faas_watch *w, uint32_t events);

/* A non-blocking connection to the instance's server (socket and connect): to $PORT in its
 * network, or to its function's published socket. 0 or -errno. */
int faas_instance_connect(struct faas_server *s, struct faas_instance *in, int *fd);

/* ---- published functions (publish.c, publish-notify.c, publish-stats.c): the kernel as the
 * activator. The daemon owns a listening socket on the host per published function, watches
 * it while the function has no instance, and hands it to the instances' own servers: their
 * bind() on $PORT (seccomp user notification), or fd 3 with LISTEN_FDS. */

struct faas_pub;
struct faas_publishing;
void faas_publish_open(struct faas_server *s);
void faas_publish_close(struct faas_server *s);
/* The deploy fields "publish" and "publish_mode". */
int faas_publish_parse(json_t *root, struct faas_function *f, const struct faas_deploy_ctx *dc,
                       struct husk_error **err);
/* The socket for a version about to be deployed (any thread): the function's own if it has
 * one at that address, else a new one bound there. A refusal names the field. */
int faas_publish_acquire(struct faas_server *s, struct faas_function *f, struct husk_error **err);
/* The version lets go of its socket (from faas_function_free, on the loop). */
void faas_publish_release(struct faas_function *f);
/* The version is put in service (its socket acquired now if it has none) or retired. */
void faas_publish_activate(struct faas_server *s, struct faas_function *f);
void faas_publish_retire(struct faas_server *s, struct faas_function *f);
/* Instances: one is being made (the activator steps aside); its spawn is back (its listener is
 * watched); it is gone (with the last one the activator watches again). */
void faas_publish_starting(struct faas_server *s, struct faas_function *f);
void faas_publish_spawned(struct faas_server *s, struct faas_instance *in);
void faas_publish_instance_gone(struct faas_server *s, struct faas_instance *in);
/* On a work thread, for the spawn: the notify filter a bind-mode instance gets (NULL: none),
 * and the socket a listen_fds-mode server gets as fd 3 (-1: none). */
const struct sbx_seccomp *faas_publish_filter(struct faas_server *s, const struct faas_function *f);
int faas_publish_listen_fd(const struct faas_function *f);
/* Readiness of a published instance: true when handled here (ready once its server listens on
 * the socket, or at once with LISTEN_FDS). */
bool faas_publish_await(struct faas_server *s, struct faas_instance *in);
/* Its idle timer ran out: true to keep it (the function needs it, or it holds connections). */
/* An idle published instance: whether its function's open connections still need it is
 * decided off the loop, then faas_instance_idle_decided. false: not published (stop it). */
bool faas_publish_idle_check(struct faas_server *s, struct faas_instance *in);
/* Where the proxied path connects: the published address, as the daemon reaches it. */
bool faas_publish_dial(const struct faas_function *f, struct sockaddr_storage *sa, socklen_t *len);
/* "published" in the function's JSON, and the lines of /metrics. */
void faas_publish_json(const struct faas_function *f, json_t *j);
void faas_publish_metrics(struct faas_server *s, struct faas_buf *b);

/* The ready instance with the fewest calls, if one has room (thawed: not a frozen one). */
struct faas_instance *faas_pool_pick(struct faas_function *f, bool thawed);
/* Route a call to an instance of its function: now, after a queue, or refuse it (429). */
void faas_pool_submit(struct faas_server *s, struct faas_call *c);
/* Take a call out of its function's queue (when it ends before it started). */
void faas_pool_unqueue(struct faas_call *c);
/* The spawn returned: the instance is made (or r < 0 and it is gone). */
void faas_pool_spawned(struct faas_server *s, struct faas_instance *in);
/* The instance became ready, or a call on it ended: give it queued calls; scale. */
void faas_pool_ready(struct faas_server *s, struct faas_instance *in);
void faas_pool_call_ended(struct faas_server *s, struct faas_call *c);
/* The instance died or failed to start (why: for queued calls when nothing else can run them). */
void faas_pool_instance_gone(struct faas_server *s, struct faas_instance *in, const char *why);
/* Put f in service (min instances) or retire it (no new calls; freed when idle). */
void faas_pool_activate(struct faas_server *s, struct faas_function *f);
void faas_pool_retire(struct faas_server *s, struct faas_function *f);
/* A retired version with no instance left is freed. */
void faas_pool_maybe_free(struct faas_server *s, struct faas_function *f);
void faas_pool_counts(const struct faas_function *f, size_t *starting, size_t *idle, size_t *busy);

/* ---- calls: one invocation (call.c, call-stdio.c, call-http.c) */

struct faas_call {
    struct faas_server *s;
    struct faas_loop *loop; /* where it runs: the main loop, or a front loop (lent) */
    bool lent;              /* a front loop's call on an instance of the main loop's pools */
    struct faas_conn *conn; /* NULL once the client is gone */
    struct faas_function *fn;
    struct faas_instance *inst;
    struct faas_request req;
    struct faas_timer t_deadline;
    char rid[72];
    char *subpath; /* after /function/NAME, without the query; "" for none */
    uint64_t received_ns, started_ns;
    bool cold;                     /* it waited for an instance that was started for it */
    int status;                    /* the HTTP status sent, once known */
    bool oom;                      /* the instance's memory limit was hit during the call */
    uint64_t oom_base;             /* the instance's OOM kills when the call started */
    bool queued;                   /* in fn's queue */
    struct faas_call *next, *prev; /* in the queue, or in the instance's calls */
    /* stdio and cgi */
    struct faas_watch w_in, w_out, w_err;
    int in_fd, out_fd, err_fd;
    size_t in_off;
    struct faas_buf out, err;
    uint32_t agent_id;
    bool exited, out_eof;
    int wait_status;
    struct faas_timer t_hold; /* the answer streams from here on, unless the program ended */
    bool hold_over, streaming, out_paused;
    /* the request body as it comes, when it streams (faas_call_take_body); else the
     * contract may move req.body here */
    struct faas_buf body_in;
    bool body_open; /* more of it to come */
    /* the reply, when a front door other than an HTTP client takes it (reply.c) */
    const struct faas_front_ops *front; /* NULL: the client on conn */
    struct faas_buf reply_headers, reply_body;
    bool reply_overflow;           /* the body was over the function's max_response */
    bool reply_ok;                 /* the reply ended whole */
    struct faas_async_call *async; /* an asynchronous call's record (async.c) */
    int trigger;                   /* FAAS_TRIGGER_*: how the call came */
    char trace_id[33], span_id[17], parent_span[17]; /* otel.c; parent "" for a root span */
    int fail_status; /* the call failed before or instead of a reply: status, why */
    char *fail_msg;
    bool function_error;      /* the function reported an error (Lambda's X-Amz-Function-Error) */
    bool runtime_exited;      /* it failed because the instance's program exited */
    struct faas_buf log_tail; /* the call's log lines, for X-Amz-Log-Type: Tail (last 4 KB) */
    bool want_log_tail;
    /* http */
    struct faas_upstream *up;
    struct faas_buf up_out; /* the request for the instance */
    bool body_ended;        /* a streamed body's last chunk is in up_out */
    /* lambda */
    char aws_id[40];              /* the Lambda request id (a UUID) */
    struct faas_call *api_next_q; /* in the instance's api_queue */
    bool api_delivered, api_answered;
    struct faas_lambda_stream *api_stream; /* its response streaming in (lambda-stream.c) */
    struct faas_resp_parser *resp;
    bool head_done, chunked_out; /* the client's body is re-chunked (no length given) */
    bool no_body;                /* HEAD, 204, 304: the head only */
    bool fresh_up;               /* the upstream connection is new: no retry on a closed one */
    uint64_t relayed;
    struct faas_splice *splice; /* a large sized body moving socket to socket (call-http.c) */
    bool upgrade_asked;         /* the client asked for an upgrade, and the server is told so */
    struct faas_tunnel *tunnel; /* the server said 101: bytes both ways (tunnel.c) */
};

struct faas_call *faas_call_new(struct faas_server *s, struct faas_conn *conn,
                                struct faas_function *f, const char *rid, const char *subpath);
/* Start the call on in (in->in_flight counts it). */
void faas_call_start(struct faas_call *c, struct faas_instance *in);
/* Send a complete error response (if the client is still there and nothing was sent yet), then
 * end the call. */
void faas_call_fail(struct faas_call *c, int status, const char *msg, const char *extra_headers);
/* The response is complete (or the client gone): account, log, free. */
void faas_call_end(struct faas_call *c);
/* The client went away. */
void faas_call_detach(struct faas_call *c);
/* The client's socket has room again (backpressure). */
void faas_call_drained(struct faas_call *c);
/* The request's body streams in (req.body_streams): the call takes it from the connection,
 * into body_in; the contract hears of each piece and of the end (call_body). */
void faas_call_take_body(struct faas_call *c);
/* The contract took from body_in (the client may send more). */
void faas_call_body_consumed(struct faas_call *c);
/* The instance is going away under the call. */
void faas_call_abort(struct faas_call *c, int status, const char *msg);

/* The reply (reply.c): a head with header lines ("K: V\r\n", hlen bytes) and the body's
 * length (-1: unknown, streamed), body pieces, and the end (ok false: the body broke off). */
void faas_reply_head(struct faas_call *c, int status, const char *reason, const char *headers,
                     size_t hlen, int64_t length);
void faas_reply_body(struct faas_call *c, const void *p, size_t n);
void faas_reply_end(struct faas_call *c, bool ok);
/* Room for more of a streamed body now (the caller reads fast enough). */
bool faas_reply_room(const struct faas_call *c);

/* A front door other than an HTTP client: when the call ends (its END and REPORT lines
 * logged), it shapes what was captured (reply_*, or fail_*) its way. */
struct faas_front_ops {
    void (*finish)(struct faas_call *c);
    /* A front door that streams instead of capturing: each piece, framed its way. */
    void (*head)(struct faas_call *c, int status, const char *headers, size_t hlen);
    void (*body)(struct faas_call *c, const void *p, size_t n);
};
/* The answer is taken whole (a front door without body): up to max_response. */
bool faas_reply_captured(const struct faas_call *c);
extern const struct faas_front_ops faas_eventstream_front;

void faas_stdio_exited(struct faas_instance *in, uint32_t id, int status);
/* The request as environment variables ("K=V\0" each): stdio's Http_*, CGI's RFC 3875 ones. */
void faas_stdio_env(struct faas_call *c, struct faas_buf *b);
void faas_cgi_env(struct faas_call *c, struct faas_buf *b);
/* A CGI program's header block in out: 0 (the body starts at *body), 1 not complete yet, -1
 * not a header block. Status and Content-Type come out; other headers go to extra as lines. */
int faas_cgi_head(const struct faas_buf *out, int *status, char **ctype, struct faas_buf *extra,
                  size_t *body);
/* lambda (call-lambda.c): ids, names and base64 shared with the Lambda front door. */
void faas_lambda_uuid(struct faas_server *s, char out[37]);
const char *faas_lambda_env(const struct faas_function *f, const char *key, const char *dflt);
char *faas_lambda_arn(const struct faas_function *f);
char *faas_base64(const void *p, size_t n);
/* An API Gateway answer's status and header lines; -1 when it has no valid statusCode. */
int faas_lambda_http_head(const json_t *j, struct faas_buf *lines);
/* A runtime's streamed response (lambda-stream.c): the rest of conn's request body goes to c's
 * caller as it comes; drop: the call ended first; drained: the caller has room again. */
void faas_lambda_stream(struct faas_server *s, struct faas_conn *conn, struct faas_call *c,
                        const struct faas_request *req, const char *rid);
void faas_lambda_stream_drop(struct faas_call *c);
void faas_lambda_stream_drained(struct faas_call *c);
ssize_t faas_unbase64(const char *s, char **out);

/* An http instance's kept-alive connections are closed (it is going away). */
void faas_http_drop_idle(struct faas_server *s, struct faas_instance *in);

/* ---- logs and metrics (telemetry.c) */

/* A log line of a call (its request id; kept for the call's log tail when asked). */
void faas_log_call(struct faas_call *c, const char *stream, const char *text, size_t len);
/* Append a line to the function's log: "TIME INSTANCE REQUEST STREAM TEXT" (buffered: written
 * by faas_logs_flush before the loop sleeps). */
void faas_log_line(struct faas_server *s, const char *fn, const char *instance, const char *rid,
                   const char *stream, const char *text, size_t len);
/* Bytes of NAME's log from offset `since`; *next is where the next read starts. */
/* The function's log file (what is pending written first), and a piece of it from an offset
 * (a file read: for a work thread). */
char *faas_log_path(struct faas_server *s, const char *fn);
char *faas_log_read(const char *path, uint64_t since, size_t max, size_t *len, uint64_t *next);
void faas_log_remove(struct faas_server *s, const char *fn);
void faas_logs_flush(struct faas_server *s);
void faas_metrics_call(struct faas_server *s, const struct faas_call *c, double secs);
void faas_metrics_cold_start(struct faas_server *s, const char *fn, double init_secs);
void faas_metrics_thaw(struct faas_server *s, const char *fn, double secs);
char *faas_metrics_text(struct faas_server *s, size_t *len);
void faas_metrics_free(struct faas_server *s);

/* ---- the daemon (server.c), shared with the routes (routes.c) */

struct faas_stats;
/* Functions on the network (egress.c): the deploy fields; on a work thread, the allow-list on
 * the instance's cgroup before its spawn and its address after; the lease's release. */
struct faas_egress;
int faas_egress_parse(json_t *root, struct faas_function *f, const struct faas_deploy_ctx *dc,
                      struct husk_error **err);
int faas_egress_attach(struct faas_server *s, struct faas_instance *in, struct husk_error **err);
int faas_egress_connect(struct faas_server *s, struct faas_instance *in, struct husk_error **err);
void faas_egress_release(struct faas_server *s, struct faas_instance *in);
void faas_egress_open(struct faas_server *s);
void faas_egress_close(struct faas_server *s);

/* Traces (otel.c): a span per call, exported over OTLP/HTTP JSON when the daemon has an
 * endpoint. start: the call's trace context (from its traceparent); traceparent: what an http
 * function gets; end: the span (and the cold start's) into the batch. */
struct faas_tracer;
int faas_trace_open(struct faas_server *s, const char *endpoint, struct husk_error **err);
void faas_trace_start(struct faas_call *c);
void faas_traceparent(const struct faas_call *c, char out[56]);
void faas_trace_end(struct faas_call *c);
void faas_trace_flush(struct faas_server *s);
void faas_trace_close(struct faas_server *s);
/* A libcurl write callback that drops what it is given. */
size_t faas_curl_discard(char *p, size_t size, size_t n, void *data);

/* The status page (status.c): GET /, and the latest calls it shows. */
struct faas_recent;
struct faas_route_ctx;
void faas_status_record(struct faas_server *s, const struct faas_call *c, double secs);
void faas_route_status(struct faas_route_ctx *c);
void faas_metrics_init_counts(struct faas_server *s, uint64_t *counts, size_t n,
                              const double **bounds, size_t *n_bounds);

/* ---- loops (loops.c): the main loop, and the front loops that serve the front door on every
 * core. The main loop owns the functions, pools, instances and telemetry, and holds the
 * daemon's lock while it handles events; a front loop owns its connections, its calls and its
 * connections to instances' servers, and takes the lock only where a call meets what the
 * main loop owns (its route, its instance's lease, its end's accounting). What else a front
 * loop's call asks of the main loop goes as a message. */

struct faas_msg;
#define FAAS_LOOP_IDLE_BUCKETS 64
struct faas_loop {
    struct faas_server *s;
    unsigned index; /* 0: the main loop */
    int epoll_fd;
    struct faas_timer **timers; /* the heap (timer.c) */
    size_t n_timers, cap_timers;
    void **graves; /* objects torn down during this batch of events, freed after it */
    size_t n_graves;
    uint64_t rng[4];
    struct faas_conn *conns;
    size_t n_calls;
    bool stopping;
    bool gave_away; /* the request just routed went to the main loop with its connection */
    /* What the loop is told by the others: messages, and an eventfd that wakes it. */
    int inbox_fd;
    struct faas_watch w_inbox;
    pthread_mutex_t inbox_lock;
    struct faas_msg *inbox, *inbox_tail;
    /* a front loop */
    struct faas_listener front;
    /* kept-alive connections to instances' servers, by the instance's serial */
    struct faas_upstream *idle_up[FAAS_LOOP_IDLE_BUCKETS];
    pthread_t thread;
    bool started;
};
/* The loop this thread runs (the main loop's on work threads' callers too). */
struct faas_loop *faas_loop_cur(void);
void faas_loop_set_cur(struct faas_loop *l);
/* Whether this thread is a front loop, whose crossings into the main loop's state take the
 * lock (the main loop holds it throughout). */
bool faas_on_front(void);
void faas_lock(struct faas_server *s);
void faas_unlock(struct faas_server *s);
/* The daemon is stopping, as this loop knows it. */
bool faas_stopping(struct faas_server *s);
/* Start and stop the front loops (--loops N, N > 1). */
int faas_loops_start(struct faas_server *s, struct husk_error **err);
void faas_loops_stop(struct faas_server *s);
void faas_loops_join(struct faas_server *s);
int faas_loop_init(struct faas_server *s, struct faas_loop *l, unsigned index,
                   struct husk_error **err);
void faas_loop_free(struct faas_loop *l);
/* Fire the loop's due timers; ms until its next deadline, -1 for none (at most a minute). */
int faas_loop_timers(struct faas_loop *l);
/* Handle a batch of events; what they tore down is freed after it. */
void faas_loop_events(struct faas_server *s, struct faas_loop *l, const struct epoll_event *evs,
                      int n);
/* A front loop's request: a warm call of an http function it serves itself; anything else
 * goes to the main loop with its connection. */
void faas_front_route(struct faas_server *s, struct faas_conn *c, struct faas_request *req,
                      const char *rid);
void faas_front_route_head(struct faas_request *req, void *data);
/* A front loop's call ended (under the lock): the pool hears of it. */
void faas_front_call_ended(struct faas_server *s, struct faas_call *c);
/* A front loop's call timed out: its instance goes (on the main loop). The caller condemned it
 * first (faas_front_condemn: held, and no call picks it from then on), and the hold goes with
 * the message. */
void faas_front_condemn(struct faas_server *s, struct faas_instance *in);
void faas_front_instance_gone(struct faas_server *s, struct faas_instance *in, const char *why);
/* A connection leaves its loop (its watch and timers), and another takes it: the main loop for
 * a request a front loop does not serve, its front loop again once it is idle. */
void faas_conn_release(struct faas_server *s, struct faas_conn *c);
int faas_conn_adopt(struct faas_server *s, struct faas_conn *c);
/* The main loop answered a front loop's connection, which is idle now: it goes back there
 * after this batch of events (a stopping daemon closes it instead). */
void faas_conn_go_home(struct faas_server *s, struct faas_conn *c);
/* After its request was routed: read on, for a body that streams to the route's taker. */
void faas_conn_read_on(struct faas_server *s, struct faas_conn *c);
/* What the pool does when a front loop's call on the instance ended and it had work from it. */
void faas_pool_settle(struct faas_server *s, struct faas_instance *in);
/* The memory peak's fd, held while calls run (a front loop's lease opens it). */
void faas_instance_peak_open(struct faas_instance *in);
/* The timers an idle instance needs are armed (its idle stop, its peak's fd, its freeze): a
 * front loop's call that leaves it idle need not tell the main loop. */
bool faas_instance_idle_armed(const struct faas_instance *in);
/* Arm a timer of the main loop's from any loop (under the lock on a front loop). */
void faas_main_timer_set(struct faas_server *s, struct faas_timer *t, uint64_t when);

/* OpenTelemetry's faas.trigger: calls from HTTP clients, and the others (asynchronous). */
enum { FAAS_TRIGGER_HTTP, FAAS_TRIGGER_OTHER, FAAS_N_TRIGGERS };
struct faas_server {
    const struct faas_serve_opts *opts;
    struct faas_loop main;    /* the main loop */
    struct faas_loop *fronts; /* --loops N > 1: N front loops on their own threads */
    unsigned n_fronts;
    pthread_mutex_t lock;    /* held by the main loop while it works, by front loops briefly */
    size_t n_conns;          /* client connections, every loop's (atomic) */
    unsigned fronts_running; /* front loops that have not said they are done */
    uint64_t next_serial;
    struct faas_policy policy;
    struct faas_registry *reg;
    struct faas_function **fns;
    size_t n_fns;
    void *fn_index; /* tsearch(3) tree of fns by name */
    struct faas_alias *aliases;
    void *alias_index;             /* tsearch(3) tree of aliases by function and name */
    struct faas_function *retired; /* older versions still finishing calls */
    char *log_dir, *instance_dir;
    char cgroup_parent[64]; /* "/husk/serve-HASH": instances are cgroups below it */
    char *runtime_dir;      /* /run/husk-functions/serve-HASH (egress.c) */
    int agent_fd, self_netns;
    struct faas_workq *work;           /* threads for slow work (work.c) */
    struct faas_workq *spawns;         /* threads that start instances (--parallel-starts) */
    struct faas_workq *net;            /* threads for requests to other hosts (callbacks) */
    struct faas_tunnel *tunnels;       /* upgraded connections open (tunnel.c) */
    struct faas_asyncq *async;         /* asynchronous calls (async.c) */
    struct faas_listener listeners[2]; /* the front door (TCP), the admin socket */
    struct faas_watch w_signal;
    bool timers_gone;             /* stopped: log lines are written as they come */
    struct faas_client **clients; /* connections per client address */
    uint64_t deploy_window;       /* the minute deploys are counted in */
    unsigned deploys_in_window;
    size_t n_instances; /* made and not released yet, dying ones too */
    uint32_t next_agent_id;
    struct faas_stats *stats;
    struct faas_stats *dirty_stats;     /* with log lines to write (t_logs) */
    struct faas_timer t_logs;           /* writes them: at most every LOG_FLUSH_NS */
    void *stats_index;                  /* tsearch(3) tree of stats by function name */
    struct faas_tracer *tracer;         /* NULL: no traces exported */
    struct faas_egress *egress;         /* the bridge for functions on the network (egress.c) */
    struct faas_publishing *publishing; /* published functions' sockets (publish.c) */
    struct faas_recent *recent;         /* the latest calls, a ring (status.c) */
    size_t recent_next;
    bool stopping;
};

/* Free p once the current batch of events is handled (its watches marked dead). */
void faas_server_bury(struct faas_server *s, void *p);
struct faas_function *faas_server_find(struct faas_server *s, const char *name, size_t len);
void faas_server_add(struct faas_server *s, struct faas_function *f);
void faas_server_remove(struct faas_server *s, struct faas_function *f);
void faas_server_replace(struct faas_server *s, struct faas_function *old, struct faas_function *f);
void faas_server_log(struct faas_server *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A request being routed (routes.c), and the answers of its handlers. */
struct faas_route_ctx {
    struct faas_server *s;
    struct faas_conn *conn;
    struct faas_request *req;
    const char *rid;
    const char *rest; /* the path after the route's prefix, without the query */
    size_t rest_len;
    /* how this door says "no such function or version" (NULL: a JSON 404) */
    void (*not_found)(struct faas_route_ctx *c, const char *msg);
};
/* Versions and aliases (versions.c). resolve: the version a call names (qualifier: NULL or
 * "$LATEST", a number, an alias); cont gets it now, or once loaded from the registry (c->req
 * and c->rest then live in a job); a name or version that does not exist is answered 404. */
typedef void (*faas_resolved_fn)(struct faas_route_ctx *c, struct faas_function *f);
void faas_versions_resolve(struct faas_route_ctx *c, const char *name, const char *qualifier,
                           faas_resolved_fn cont);
void faas_versions_carry(struct faas_function *old, struct faas_function *latest);
void faas_versions_retire(struct faas_server *s, struct faas_function *latest);
void faas_versions_list(struct faas_route_ctx *c, struct faas_function *latest);
bool faas_alias_name_valid(const char *p);
struct faas_alias *faas_alias_find(struct faas_server *s, const char *fn, const char *name);
void faas_aliases_list(struct faas_route_ctx *c, struct faas_function *latest);
void faas_alias_put(struct faas_route_ctx *c, struct faas_function *latest, const char *alias);
void faas_alias_rm(struct faas_route_ctx *c, struct faas_function *latest, const char *alias);
void faas_aliases_drop(struct faas_server *s, const char *fn);
void faas_aliases_index(struct faas_server *s);
void faas_aliases_free(struct faas_server *s);

/* Admin work off the loop (routes.c): run on a work thread, done on the loop, where the
 * request is answered if its client is still there (faas_admin_job_ctx). */
struct faas_admin_job {
    struct faas_work work;
    struct faas_server *s;
    struct faas_conn *conn; /* NULL once the client is gone */
    char rid[72];
    struct faas_request req; /* a request kept for later (moved in by the route) */
    char *name, *body;
    size_t len;
    struct faas_deploy_ctx dc;
    struct faas_function *f;
    json_t *json;
    int64_t version;
    void *data;
    struct husk_error *err;
    int r, status;
};
struct faas_admin_job *faas_admin_job(struct faas_route_ctx *c, void (*run)(struct faas_work *w),
                                      void (*done)(struct faas_server *s, struct faas_work *w));
bool faas_admin_job_ctx(struct faas_admin_job *j, struct faas_route_ctx *c);
void faas_admin_job_free(struct faas_admin_job *j);
void faas_respond_json(struct faas_route_ctx *c, int status, json_t *j); /* takes j */
void faas_respond_error(struct faas_route_ctx *c, int status, const char *msg);
void faas_respond_error_headers(struct faas_route_ctx *c, int status, const char *msg,
                                const char *extra);
/* A JSON string of any bytes: what is not UTF-8 becomes U+FFFD. */
json_t *faas_json_string_lossy(const char *msg);
/* The Lambda Invoke API (front-lambda.c): POST /2015-03-31/functions/NAME/invocations. */
void faas_route_lambda_invoke(struct faas_route_ctx *c);
void faas_route_lambda_stream(struct faas_route_ctx *c);
/* Shared by the Lambda fronts: a throttle or unavailability answered in Lambda's shape (true);
 * whether the call is a function error (*error: the document when the function gave none);
 * the last 4 KB of the call's log in base64. */
bool faas_lambda_service_error(struct faas_call *c);
bool faas_lambda_function_error(struct faas_call *c, char **error);
char *faas_lambda_log_tail(const struct faas_call *c);
/* The body limit of a Lambda Invoke: path is what follows "/2015-03-31/functions/". */
uint64_t faas_lambda_body_limit(struct faas_server *s, const char *path);

/* Asynchronous calls (async.c): accepted (202) once written to STATE/calls.db. */
struct faas_async_call;
int faas_async_open(struct faas_server *s, unsigned max_waiting, struct husk_error **err);
void faas_async_start(struct faas_server *s);
/* The daemon is going: callbacks in flight give up (a silent receiver holds no stop). */
void faas_async_stop(struct faas_server *s);
void faas_async_close(struct faas_server *s);
/* Take the request of c for an asynchronous call of f (X-Callback-Url: callback, may be NULL);
 * answers 202 with X-Call-Id (and a body naming the call unless for the Lambda front), or 429
 * when the queue is full. */
void faas_async_submit(struct faas_route_ctx *c, struct faas_function *f, const char *callback,
                       const char *subpath, bool lambda);
/* GET /system/calls/ID, GET /system/calls?function=NAME. */
void faas_route_calls(struct faas_route_ctx *c);

/* Route a complete request; the response is written now or by the call it starts. */
void faas_route(struct faas_server *s, struct faas_conn *c, struct faas_request *req,
                const char *request_id);
/* The body limit of a request, from its path (a function's max_body, or the admin limit). */
/* A request's head is in: its body limit, and whether its route takes the body as it comes. */
void faas_route_head(struct faas_request *req, void *data);

#endif
