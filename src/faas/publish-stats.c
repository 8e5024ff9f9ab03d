/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the daemon knows of a published function's connections without handling them (it
 * accepts none and sees none of their bytes), from the kernel's socket diagnostics:
 *
 *   the accept queue: TCP_INFO of the listening socket (tcpi_unacked is the queue's length),
 *     sampled by the scaler (publish.c);
 *   connections as they end: sock_diag's destroy broadcasts, each with the
 *     connection's tcp_info (bytes received and acknowledged). A classic BPF filter on our
 *     netlink socket keeps the published ports only, so the daemon wakes for those alone;
 *   connections open now: a sock_diag dump filtered by the published address, on demand (the
 *     function's JSON and /metrics, and an idle timer asking whether the function still needs
 *     an instance). Which instance holds which connection is read from its processes' fd
 *     tables (socket inodes), only then.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libmnl/libmnl.h>
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* its tcp_info has the byte counts glibc's lacks */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "publish.h"
#include "util.h"

/* TCP states as the kernel numbers them (include/net/tcp_states.h). */
enum {
    ESTABLISHED = 1,
    FIN_WAIT1 = 4,
    FIN_WAIT2 = 5,
    CLOSE_WAIT = 8,
    LAST_ACK = 9,
    LISTEN = 10,
    CLOSING = 11
};
#define MAX_PORTS 200 /* in the netlink socket's filter; past that it takes every port */
#define OPEN_STATES                                                                                \
    ((1u << ESTABLISHED) | (1u << FIN_WAIT1) | (1u << FIN_WAIT2) | (1u << CLOSE_WAIT) |            \
     (1u << LAST_ACK) | (1u << CLOSING))

unsigned
faas_pub_queue(const struct faas_pub *p)
{
    struct tcp_info ti;
    socklen_t l = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    return getsockopt(p->fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 ? ti.tcpi_unacked : 0;
}

/* ---- connections as they end */

/* The published socket a connection of this address and port was accepted from. */
static struct faas_pub *
pub_of(struct faas_publishing *pg, const struct inet_diag_msg *m)
{
    struct faas_pub *found = NULL;
    pthread_mutex_lock(&pg->lock);
    for (struct faas_pub *p = pg->pubs; p && !found; p = p->next) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&p->sa;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&p->sa;
        if (p->sa.ss_family != m->idiag_family || a->sin_port != m->id.idiag_sport)
            continue;
        if (m->idiag_family == AF_INET)
            found =
                a->sin_addr.s_addr == htonl(INADDR_ANY) || a->sin_addr.s_addr == m->id.idiag_src[0]
                    ? p
                    : NULL;
        else
            found = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ||
                            memcmp(&a6->sin6_addr, m->id.idiag_src, 16) == 0
                        ? p
                        : NULL;
    }
    pthread_mutex_unlock(&pg->lock);
    return found;
}

static int
info_attr(const struct nlattr *a, void *data)
{
    if (mnl_attr_get_type(a) == INET_DIAG_INFO) {
        size_t n = mnl_attr_get_payload_len(a);
        memcpy(data, mnl_attr_get_payload(a),
               n < sizeof(struct tcp_info) ? n : sizeof(struct tcp_info));
    }
    return MNL_CB_OK;
}

static int
on_ended(const struct nlmsghdr *h, void *data)
{
    struct faas_publishing *pg = data;
    const struct inet_diag_msg *m = mnl_nlmsg_get_payload(h);
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) ||
        m->idiag_state == LISTEN)
        return MNL_CB_OK;
    struct faas_pub *p = pub_of(pg, m);
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    if (p == NULL)
        return MNL_CB_OK;
    mnl_attr_parse(h, sizeof(*m), info_attr, &ti);
    p->closed++;
    p->bytes_in += ti.tcpi_bytes_received;
    p->bytes_out += ti.tcpi_bytes_acked;
    return MNL_CB_OK;
}

static void
on_diag(struct faas_server *s, struct faas_watch *w, uint32_t events)
{
    struct faas_publishing *pg = container_of(w, struct faas_publishing, w_diag);
    char buf[16384];
    for (;;) {
        ssize_t n = recv(pg->diag_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == ENOBUFS && !pg->diag_warned) {
            pg->diag_warned = true;
            faas_server_log(s, "warning",
                            "published functions: connections ended faster than "
                            "counted; their counts are short");
        }
        if (n < 0 && (errno == ENOBUFS || errno == EINTR))
            continue;
        if (n <= 0)
            return;
        mnl_cb_run(buf, (size_t)n, 0, 0, on_ended, pg);
    }
}

/* Only the published ports reach us: the source port of an inet_diag_msg, in network order
 * (a BPF_H load reads it so). */
static void
filter_ports(int fd, const uint16_t *ports, size_t n)
{
    struct sock_filter prog[MAX_PORTS + 3];
    size_t k = 0;
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_H | BPF_ABS,
                                             NLMSG_HDRLEN + offsetof(struct inet_diag_msg, id) +
                                                 offsetof(struct inet_diag_sockid, idiag_sport));
    for (size_t i = 0; i < n; i++)
        prog[k++] =
            (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ports[i], (uint8_t)(n - i), 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
    struct sock_fprog fp = {.len = (unsigned short)k, .filter = prog};
    if (n <= MAX_PORTS)
        setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp));
    else
        setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, NULL, 0);
}

static int
diag_open(struct faas_publishing *pg)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
                             .nl_groups = (1u << (SKNLGRP_INET_TCP_DESTROY - 1)) |
                                          (1u << (SKNLGRP_INET6_TCP_DESTROY - 1))};
    int big = 1 << 20;
    if (fd < 0)
        return -errno;
    /* Filtered before it is bound: no message of another port is ever queued. */
    filter_ports(fd, NULL, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        faas_watch_add(pg->s, fd, EPOLLIN, &pg->w_diag) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    pg->diag_fd = fd;
    return 0;
}

void
faas_pubstats_close(struct faas_publishing *pg)
{
    if (pg->diag_fd < 0)
        return;
    faas_watch_del(pg->s, pg->diag_fd);
    close(pg->diag_fd);
    pg->diag_fd = -1;
}

/* The sockets in service changed: the filter follows (no socket left, no subscription). */
void
faas_pubstats_update(struct faas_server *s)
{
    struct faas_publishing *pg = s->publishing;
    uint16_t ports[MAX_PORTS + 1];
    size_t n = 0;
    pthread_mutex_lock(&pg->lock);
    for (struct faas_pub *p = pg->pubs; p; p = p->next)
        if (p->active && n <= MAX_PORTS)
            ports[n++] = ntohs(((const struct sockaddr_in *)&p->sa)->sin_port);
    pthread_mutex_unlock(&pg->lock);
    if (n == 0) {
        faas_pubstats_close(pg);
        return;
    }
    pg->w_diag.fn = on_diag;
    int r = pg->diag_fd < 0 ? diag_open(pg) : 0;
    if (r < 0) {
        faas_server_log(s, "warning", "published functions: no count of ended connections: %s",
                        strerror(-r));
        return;
    }
    filter_ports(pg->diag_fd, ports, n);
}

/* ---- connections open now */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct open_conns {
    size_t n;
    uint64_t *inodes;
    size_t n_inodes, cap;
};

static int
on_open(const struct nlmsghdr *h, void *data)
{
    struct open_conns *oc = data;
    const struct inet_diag_msg *m = mnl_nlmsg_get_payload(h);
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
        return MNL_CB_OK;
    if (m->idiag_inode == 0) /* still in the accept queue: no instance has it */
        return MNL_CB_OK;
    oc->n++;
    if (oc->n_inodes == oc->cap) {
        oc->cap = oc->cap ? 2 * oc->cap : 64;
        oc->inodes = xrealloc(oc->inodes, oc->cap * sizeof(*oc->inodes));
    }
    oc->inodes[oc->n_inodes++] = m->idiag_inode;
    return MNL_CB_OK;
}

/* Bytecode: the source address (any, for an unspecified one) and port of the socket. */
static size_t
bytecode(const struct sockaddr_storage *sa, char *out)
{
    bool v6 = sa->ss_family == AF_INET6;
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
    size_t alen = v6 ? 16 : 4,
           len = sizeof(struct inet_diag_bc_op) + sizeof(struct inet_diag_hostcond) + alen;
    bool any = v6 ? IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) : a->sin_addr.s_addr == 0;
    struct inet_diag_bc_op op = {
        .code = INET_DIAG_BC_S_COND, .yes = (unsigned char)len, .no = (unsigned short)(len + 4)};
    struct inet_diag_hostcond c = {.family = (uint8_t)sa->ss_family,
                                   .prefix_len = any ? 0 : (uint8_t)(8 * alen),
                                   .port = ntohs(a->sin_port)};
    memcpy(out, &op, sizeof(op));
    memcpy(out + sizeof(op), &c, sizeof(c));
    memcpy(out + sizeof(op) + sizeof(c), v6 ? (const void *)&a6->sin6_addr : &a->sin_addr, alen);
    return len;
}

static void
mnl_closep(struct mnl_socket **nl)
{
    if (*nl)
        mnl_socket_close(*nl);
}

int
faas_pubstats_open_conns(const struct sockaddr_storage *sa, size_t *n, uint64_t **inodes,
                         size_t *n_inodes)
{
    cleanup_(mnl_closep) struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
    if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
        return -errno;
    char buf[16384], bc[64];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = SOCK_DIAG_BY_FAMILY;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    h->nlmsg_seq = (uint32_t)now_ns();
    struct inet_diag_req_v2 *req = mnl_nlmsg_put_extra_header(h, sizeof(*req));
    req->sdiag_family = (uint8_t)sa->ss_family;
    req->sdiag_protocol = IPPROTO_TCP;
    req->idiag_states = OPEN_STATES;
    mnl_attr_put(h, INET_DIAG_REQ_BYTECODE, bytecode(sa, bc), bc);
    uint32_t seq = h->nlmsg_seq, portid = mnl_socket_get_portid(nl);
    if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0)
        return -errno;
    struct open_conns oc = {0};
    int r;
    ssize_t got;
    do {
        got = mnl_socket_recvfrom(nl, buf, sizeof(buf));
        r = got < 0 ? -1 : mnl_cb_run(buf, (size_t)got, seq, portid, on_open, &oc);
    } while (r > MNL_CB_STOP);
    if (r < 0) {
        int e = errno;
        free(oc.inodes);
        return -e;
    }
    *n = oc.n;
    if (inodes) {
        if (oc.n_inodes) /* qsort of NULL is undefined, even for no element */
            qsort(oc.inodes, oc.n_inodes, sizeof(*oc.inodes), cmp_u64);
        *inodes = steal_ptr(&oc.inodes);
        *n_inodes = oc.n_inodes;
    }
    free(oc.inodes);
    return 0;
}

/* Whether one of the process's fds is one of these sockets ("socket:[INODE]"). */
static bool
pid_holds(pid_t pid, const uint64_t *inodes, size_t n)
{
    char path[64], link[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    cleanup_dir DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        ssize_t l = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
        uint64_t ino;
        if (l <= 0)
            continue;
        link[l] = '\0';
        if (sscanf(link, "socket:[%" SCNu64 "]", &ino) == 1 &&
            bsearch(&ino, inodes, n, sizeof(*inodes), cmp_u64))
            return true;
    }
    return false;
}

bool
faas_pubstats_holds(int procs_dir, const uint64_t *inodes, size_t n)
{
    cleanup_free pid_t *pids = NULL;
    size_t np = 0;
    if (n == 0)
        return false;
    if (procs_dir < 0)
        return true; /* cannot tell: kept */
    sbx_cgroup_pids_at(procs_dir, &pids, &np);
    for (size_t i = 0; i < np; i++)
        if (pid_holds(pids[i], inodes, n))
            return true;
    return false;
}

/* ---- reports */

void
faas_publish_json(const struct faas_function *f, json_t *j)
{
    struct faas_pub *p = f->pub;
    if (f->publish == NULL)
        return;
    json_t *pj = json_pack("{s:s, s:s, s:b}", "address", f->publish, "mode",
                           f->publish_fds ? "listen_fds" : "bind", "serving", p && p->active == f);
    size_t open = 0;
    if (p && p->active == f && faas_pubstats_open_conns(&p->sa, &open, NULL, NULL) == 0) {
        size_t ready = 0;
        for (struct faas_instance *in = f->instances; in; in = in->next)
            ready += in->state == INST_READY;
        json_object_set_new(pj, "connections",
                            json_pack("{s:I, s:I, s:I, s:f}", "open", (json_int_t)open, "queued",
                                      (json_int_t)faas_pub_queue(p), "closed",
                                      (json_int_t)p->closed, "per_instance",
                                      ready ? (double)open / (double)ready : 0.0));
        json_object_set_new(pj, "bytes",
                            json_pack("{s:I, s:I}", "in", (json_int_t)p->bytes_in, "out",
                                      (json_int_t)p->bytes_out));
        json_object_set_new(pj, "scaling",
                            json_pack("{s:I, s:I, s:I}", "activated", (json_int_t)p->n_activated,
                                      "queue", (json_int_t)p->n_scaled, "kept_idle",
                                      (json_int_t)p->n_kept));
    }
    json_object_set_new(j, "published", pj);
}

void
faas_publish_metrics(struct faas_server *s, struct faas_buf *b)
{
    struct faas_publishing *pg = s->publishing;
    if (pg == NULL || pg->pubs == NULL)
        return;
    struct faas_buf open = {0}, closed = {0}, bytes = {0}, scaling = {0};
    pthread_mutex_lock(&pg->lock); /* a deploy may add to the list */
    for (struct faas_pub *p = pg->pubs; p; p = p->next) {
        size_t n = 0;
        if (p->active == NULL)
            continue;
        if (faas_pubstats_open_conns(&p->sa, &n, NULL, NULL) == 0)
            faas_buf_addf(&open, "husk_published_connections{function=\"%s\",state=\"open\"} %zu\n",
                          p->fn, n);
        faas_buf_addf(&open, "husk_published_connections{function=\"%s\",state=\"queued\"} %u\n",
                      p->fn, faas_pub_queue(p));
        faas_buf_addf(&closed, "husk_published_connections_closed_total{function=\"%s\"} %llu\n",
                      p->fn, (unsigned long long)p->closed);
        faas_buf_addf(&bytes,
                      "husk_published_bytes_total{function=\"%s\",direction=\"in\"} %llu\n"
                      "husk_published_bytes_total{function=\"%s\",direction=\"out\"} %llu\n",
                      p->fn, (unsigned long long)p->bytes_in, p->fn,
                      (unsigned long long)p->bytes_out);
        faas_buf_addf(&scaling,
                      "husk_published_scaling_total{function=\"%s\",decision=\"activated\"} %llu\n"
                      "husk_published_scaling_total{function=\"%s\",decision=\"queue\"} %llu\n"
                      "husk_published_scaling_total{function=\"%s\",decision=\"kept_idle\"} "
                      "%llu\n",
                      p->fn, (unsigned long long)p->n_activated, p->fn,
                      (unsigned long long)p->n_scaled, p->fn, (unsigned long long)p->n_kept);
    }
    pthread_mutex_unlock(&pg->lock);
    faas_buf_addf(b, "# HELP husk_published_connections Connections of a published function's "
                     "socket: open (an instance has it) or queued.\n"
                     "# TYPE husk_published_connections gauge\n");
    faas_buf_add(b, open.p, open.len);
    faas_buf_addf(b, "# HELP husk_published_connections_closed_total Connections of a published "
                     "function's socket that ended.\n"
                     "# TYPE husk_published_connections_closed_total counter\n");
    faas_buf_add(b, closed.p, closed.len);
    faas_buf_addf(b, "# HELP husk_published_bytes_total Bytes of ended connections of a "
                     "published function's socket, received and sent.\n"
                     "# TYPE husk_published_bytes_total counter\n");
    faas_buf_add(b, bytes.p, bytes.len);
    faas_buf_addf(b, "# HELP husk_published_scaling_total Scaling decisions made from a published "
                     "function's socket: instances started for connections waiting at zero "
                     "(activated) or for a backed-up accept queue (queue), idle instances kept "
                     "for open connections (kept_idle).\n"
                     "# TYPE husk_published_scaling_total counter\n");
    faas_buf_add(b, scaling.p, scaling.len);
    faas_buf_free(&scaling);
    faas_buf_free(&open);
    faas_buf_free(&closed);
    faas_buf_free(&bytes);
}
