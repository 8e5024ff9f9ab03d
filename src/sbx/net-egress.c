/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress allow-list: cgroup BPF programs built from the rules, raw bpf(2) like the device
 * filter (cgroup-bpf.c). Why cgroup BPF rather than nftables in the sandbox's namespace: it
 * needs no network namespace of the sandbox's own, no libnftables context per sandbox, it
 * fails a denied connect() at once with EPERM instead of dropping packets, and a sandbox that
 * is root in a user namespace owning its network namespace could flush nftables rules there,
 * while cgroup programs can be changed only with CAP_NET_ADMIN/CAP_SYS_ADMIN in the initial
 * user namespace. It needs cgroup2 mounted, which both hybrid (/sys/fs/cgroup/unified, even with
 * no controller) and pure v2 hosts have; on a hybrid host the sandbox's cgroup2 group is the
 * one husk already makes to track its processes.
 *
 * Programs, each: sock_create (only TCP and UDP sockets), connect4 and sendmsg4 (IPv4
 * destination), connect6 and sendmsg6 (IPv6, with IPv4-mapped addresses checked against the
 * IPv4 rules). Per rule, in order, first match decides:
 *
 *     if (proto != RULE.PROTO) goto next; if ((addr & MASK) != NET) goto next;
 *     if (port != RULE.PORT) goto next; return RULE.ALLOW;
 *
 * and at the end `return 0` (deny: the syscall fails with EPERM). Loopback destinations are
 * allowed up front when the socket lives in another network namespace than the caller's
 * (bpf_get_netns_cookie, Linux >= 5.7): the sandbox's own loopback, never the host's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bpf.h"
#include "husk/net.h"
#include "util.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#define MAX_INSNS SBX_BPF_MAX_INSNS
#define MAX_RULES 256

enum { EGRESS_SOCK, EGRESS_CONNECT4, EGRESS_SENDMSG4, EGRESS_CONNECT6, EGRESS_SENDMSG6, EGRESS_N };

static const struct {
    enum bpf_prog_type type;
    enum bpf_attach_type attach;
    const char *name;
} progs[EGRESS_N] = {
    [EGRESS_SOCK] = {BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, "sock_create"},
    [EGRESS_CONNECT4] = {BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, "connect4"},
    [EGRESS_SENDMSG4] = {BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG, "sendmsg4"},
    [EGRESS_CONNECT6] = {BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT, "connect6"},
    [EGRESS_SENDMSG6] = {BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_SENDMSG, "sendmsg6"},
};

struct sbx_egress {
    int cgroup_fd;
    int fd[EGRESS_N];
};

struct prog {
    struct bpf_insn *v;
    size_t n;
    size_t fix[64]; /* jumps to the end of the current block */
    size_t n_fix;
};

static void
emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    sbx_bpf_emit(p->v, &p->n, code, dst, src, off, imm);
}

/* A jump to the end of the current block, patched by block_end. */
static void
jne32_out(struct prog *p, uint8_t reg, uint32_t v)
{
    if (p->n_fix < ARRAY_SIZE(p->fix))
        p->fix[p->n_fix++] = p->n;
    emit(p, BPF_JMP32 | BPF_JNE | BPF_K, reg, 0, 0, (int32_t)v);
}

static void
block_end(struct prog *p)
{
    for (size_t i = 0; i < p->n_fix; i++)
        if (p->fix[i] < MAX_INSNS)
            p->v[p->fix[i]].off = (int16_t)(p->n - p->fix[i] - 1);
    p->n_fix = 0;
}

#define LDX_W(p, dst, src, off) emit(p, BPF_LDX | BPF_MEM | BPF_W, dst, src, (int16_t)(off), 0)
#define MOV64_REG(p, dst, src)  emit(p, BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV32_REG(p, dst, src)  emit(p, BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define AND32_IMM(p, dst, v)    emit(p, BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, (int32_t)(v))
#define RET(p, v)                                                                                  \
    do {                                                                                           \
        emit(p, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, v);                                          \
        emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);                                                   \
    } while (0)

/* Registers of the sock_addr programs: r6 ctx, r7 IPv4 destination, r8 port, r9 protocol. */
enum { R_CTX = 6, R_IP4 = 7, R_PORT = 8, R_PROTO = 9 };
#define IP6_WORD(k) (offsetof(struct bpf_sock_addr, user_ip6) + 4 * (k))

static uint32_t
word(const uint8_t *bytes)
{
    uint32_t w;
    memcpy(&w, bytes, 4); /* as the program loads it: network order in memory */
    return w;
}

static void
mask_words(const struct sbx_cidr *c, uint32_t mask[4], uint32_t net[4])
{
    uint8_t m[16] = {0};
    for (unsigned bit = 0; bit < c->prefix; bit++)
        m[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
    for (int k = 0; k < 4; k++) {
        mask[k] = word(m + 4 * k);
        net[k] = word(c->addr + 4 * k);
    }
}

/* Returns true when the rule matches everything: nothing after it is reachable (the verifier
 * refuses unreachable instructions). */
static bool
rule_tail(struct prog *p, const struct sbx_egress_rule *r)
{
    if (r->port)
        jne32_out(p, R_PORT, (uint32_t)htons(r->port));
    bool total = p->n_fix == 0;
    RET(p, r->deny ? 0 : 1);
    block_end(p);
    return total;
}

static void
rule_head(struct prog *p, const struct sbx_egress_rule *r)
{
    if (r->proto)
        jne32_out(p, R_PROTO, r->proto);
}

/* Loopback in another namespace than the caller's: allowed. r1..r5 are clobbered. */
static void
loopback_allow(struct prog *p, uint64_t host_cookie)
{
    MOV64_REG(p, 1, R_CTX);
    emit(p, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_netns_cookie);
    emit(p, BPF_LD | BPF_DW | BPF_IMM, 1, 0, 0, (int32_t)(uint32_t)host_cookie);
    emit(p, 0, 0, 0, 0, (int32_t)(uint32_t)(host_cookie >> 32));
    emit(p, BPF_JMP | BPF_JEQ | BPF_X, 0, 1, 2, 0); /* our own namespace: go on to the rules */
    RET(p, 1);
}

/* The IPv4 part: the destination in R_IP4. */
static void
emit_v4(struct prog *p, const struct sbx_egress_rule *rules, size_t n, uint64_t cookie)
{
    static const uint8_t lo[4] = {127, 0, 0, 0}, lo_mask[4] = {255, 0, 0, 0};
    MOV32_REG(p, 2, R_IP4);
    AND32_IMM(p, 2, word(lo_mask));
    jne32_out(p, 2, word(lo));
    loopback_allow(p, cookie);
    block_end(p);
    for (size_t i = 0; i < n; i++) {
        uint32_t mask[4], net[4];
        if (rules[i].dst.family != AF_INET)
            continue;
        mask_words(&rules[i].dst, mask, net);
        rule_head(p, &rules[i]);
        if (rules[i].dst.prefix) {
            MOV32_REG(p, 2, R_IP4);
            AND32_IMM(p, 2, mask[0]);
            jne32_out(p, 2, net[0]);
        }
        if (rule_tail(p, &rules[i]))
            return;
    }
    RET(p, 0);
}

static void
prologue(struct prog *p)
{
    MOV64_REG(p, R_CTX, 1);
    LDX_W(p, R_PORT, R_CTX, offsetof(struct bpf_sock_addr, user_port));
    LDX_W(p, R_PROTO, R_CTX, offsetof(struct bpf_sock_addr, protocol));
}

static void
build_v4(struct prog *p, const struct sbx_egress_rule *rules, size_t n, uint64_t cookie)
{
    prologue(p);
    LDX_W(p, R_IP4, R_CTX, offsetof(struct bpf_sock_addr, user_ip4));
    emit_v4(p, rules, n, cookie);
}

static void
build_v6(struct prog *p, const struct sbx_egress_rule *rules, size_t n, uint64_t cookie)
{
    static const uint8_t mapped[4] = {0, 0, 0xff, 0xff}, one[4] = {0, 0, 0, 1};
    prologue(p);
    /* ::ffff:a.b.c.d is IPv4 on the wire: the IPv4 rules decide. */
    size_t not_mapped[3];
    for (int k = 0; k < 3; k++) {
        LDX_W(p, 2, R_CTX, IP6_WORD(k));
        not_mapped[k] = p->n;
        emit(p, BPF_JMP32 | BPF_JNE | BPF_K, 2, 0, 0, (int32_t)(k == 2 ? word(mapped) : 0));
    }
    LDX_W(p, R_IP4, R_CTX, IP6_WORD(3));
    emit_v4(p, rules, n, cookie); /* ends in a return */
    for (int k = 0; k < 3; k++)
        if (not_mapped[k] < MAX_INSNS)
            p->v[not_mapped[k]].off = (int16_t)(p->n - not_mapped[k] - 1);
    for (int k = 0; k < 4; k++) { /* ::1 */
        LDX_W(p, 2, R_CTX, IP6_WORD(k));
        jne32_out(p, 2, k == 3 ? word(one) : 0);
    }
    loopback_allow(p, cookie);
    block_end(p);
    for (size_t i = 0; i < n; i++) {
        uint32_t mask[4], net[4];
        if (rules[i].dst.family != AF_INET6)
            continue;
        mask_words(&rules[i].dst, mask, net);
        rule_head(p, &rules[i]);
        for (int k = 0; k < 4; k++) {
            if (mask[k] == 0)
                continue;
            LDX_W(p, 2, R_CTX, IP6_WORD(k));
            if (mask[k] != 0xffffffffu)
                AND32_IMM(p, 2, mask[k]);
            jne32_out(p, 2, net[k]);
        }
        if (rule_tail(p, &rules[i]))
            return;
    }
    RET(p, 0);
}

/* Only TCP and UDP sockets: raw and ICMP sockets would go around the connect/sendmsg hooks. */
static void
build_sock(struct prog *p)
{
    LDX_W(p, 2, 1, offsetof(struct bpf_sock, type));
    LDX_W(p, 3, 1, offsetof(struct bpf_sock, protocol));
    jne32_out(p, 2, SOCK_STREAM);
    jne32_out(p, 3, IPPROTO_TCP);
    RET(p, 1);
    block_end(p);
    jne32_out(p, 2, SOCK_DGRAM);
    jne32_out(p, 3, IPPROTO_UDP);
    RET(p, 1);
    block_end(p);
    RET(p, 0);
}

static int
load(int which, const struct prog *p, struct husk_error **err)
{
    char what[32];
    snprintf(what, sizeof(what), "egress %s program", progs[which].name);
    return sbx_bpf_load(progs[which].type, progs[which].attach, p->v, p->n, what, err);
}

static int
attach_one(int cgroup_fd, int which, int prog_fd, bool detach)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)cgroup_fd;
    a.attach_bpf_fd = (uint32_t)prog_fd;
    a.attach_type = progs[which].attach;
    a.attach_flags = detach ? 0 : BPF_F_ALLOW_MULTI;
    return sbx_bpf(detach ? BPF_PROG_DETACH : BPF_PROG_ATTACH, &a) < 0 ? -errno : 0;
}

static int
host_netns_cookie(uint64_t *out, struct husk_error **err)
{
    cleanup_fd int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof(*out);
    if (s < 0 || getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, out, &len) < 0)
        return husk_err(err, errno, "egress: read the network namespace cookie (Linux >= 5.14)");
    return 0;
}

static void
build(int which, struct prog *p, const struct sbx_egress_rule *rules, size_t n, uint64_t cookie)
{
    p->n = p->n_fix = 0;
    if (which == EGRESS_SOCK)
        build_sock(p);
    else if (which == EGRESS_CONNECT4 || which == EGRESS_SENDMSG4)
        build_v4(p, rules, n, cookie);
    else
        build_v6(p, rules, n, cookie);
}

int
sbx_egress_attach(int cgroup2_fd, const struct sbx_egress_rule *rules, size_t n,
                  struct sbx_egress **out, struct husk_error **err)
{
    cleanup_free struct bpf_insn *insns = xcalloc(MAX_INSNS, sizeof(*insns));
    cleanup_(sbx_egress_freep) struct sbx_egress *e = xcalloc(1, sizeof(*e));
    struct prog p = {.v = insns};
    uint64_t cookie;
    e->cgroup_fd = -1;
    for (int i = 0; i < EGRESS_N; i++)
        e->fd[i] = -1;
    if (cgroup2_fd < 0)
        return husk_err(err, ENOTSUP, "egress: the sandbox has no cgroup2 group (none mounted?)");
    if (n > MAX_RULES)
        return husk_err(err, 0, "egress: %zu rules, at most %d", n, MAX_RULES);
    int r = host_netns_cookie(&cookie, err);
    if (r < 0)
        return r;
    e->cgroup_fd = fcntl(cgroup2_fd, F_DUPFD_CLOEXEC, 3);
    if (e->cgroup_fd < 0)
        return husk_err(err, errno, "egress: dup the cgroup fd");
    for (int i = 0; i < EGRESS_N; i++) {
        build(i, &p, rules, n, cookie);
        if (p.n > MAX_INSNS || p.n_fix)
            return husk_err(err, E2BIG, "egress: %zu rules make too large a program", n);
        e->fd[i] = load(i, &p, err);
        if (e->fd[i] < 0)
            return e->fd[i];
    }
    /* Attached only once all loaded, sock_create last: until it is on, a socket made in the
     * meantime could only be a TCP/UDP one checked by the others anyway. */
    for (int i = EGRESS_N - 1; i >= 0; i--) {
        r = attach_one(e->cgroup_fd, i, e->fd[i], false);
        if (r < 0) {
            for (int j = EGRESS_N - 1; j > i; j--)
                attach_one(e->cgroup_fd, j, e->fd[j], true);
            return husk_err(err, -r, "egress: attach %s program to the cgroup", progs[i].name);
        }
    }
    *out = steal_ptr(&e);
    return 0;
}

int
sbx_egress_detach(struct sbx_egress *e, struct husk_error **err)
{
    int first = 0;
    for (int i = 0; i < EGRESS_N; i++) {
        int r = e->fd[i] >= 0 ? attach_one(e->cgroup_fd, i, e->fd[i], true) : 0;
        if (r < 0 && r != -ENOENT && first == 0)
            first = husk_err(err, -r, "egress: detach %s program", progs[i].name);
    }
    return first;
}

void
sbx_egress_free(struct sbx_egress *e)
{
    if (e == NULL)
        return;
    for (int i = 0; i < EGRESS_N; i++)
        if (e->fd[i] >= 0)
            close(e->fd[i]);
    if (e->cgroup_fd >= 0)
        close(e->cgroup_fd);
    free(e);
}

void
sbx_egress_freep(struct sbx_egress **e)
{
    sbx_egress_free(*e);
    *e = NULL;
}
