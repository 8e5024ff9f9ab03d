/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox networking: a bridge with NAT and published ports, prepared network namespaces for
 * pools, and an egress allow-list enforced in the kernel (docs/networking.md). */
#ifndef HUSK_NET_H
#define HUSK_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "husk/error.h"

#define SBX_NET_BRIDGE "husk0"        /* the default bridge; also the name of its nft table */
#define SBX_NET_SUBNET "10.77.0.0/16" /* its default subnet; the bridge takes the first host */

/* An IPv4 or IPv6 prefix. */
struct sbx_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes; host bits zero */
    uint8_t prefix;   /* 0..32 or 0..128 */
};

/* "10.0.0.0/8", "10.1.2.3" (a /32), "fd00::/8", "::1". Host bits set are an error. */
int sbx_cidr_parse(const char *s, struct sbx_cidr *out, struct husk_error **err);
bool sbx_cidr_overlaps(const struct sbx_cidr *a, const struct sbx_cidr *b);
/* "10.0.0.0/8"; buf of at least 64 bytes. */
void sbx_cidr_format(const struct sbx_cidr *c, char *buf, size_t len);

/* A published port: HOST_IP:HOST_PORT on the host forwards to PORT of the sandbox. */
struct sbx_net_publish {
    uint8_t proto;          /* IPPROTO_TCP or IPPROTO_UDP */
    struct in_addr host_ip; /* INADDR_ANY: every local address of the host, loopback included */
    uint16_t host_port, port;
};

/* "[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]" (tcp when not said). */
int sbx_net_publish_parse(const char *spec, struct sbx_net_publish *out, struct husk_error **err);
/* "tcp 0.0.0.0:8080 -> 80"; buf of at least 64 bytes. */
void sbx_net_publish_format(const struct sbx_net_publish *p, char *buf, size_t len);

/* ---- the bridge network ---- */

struct sbx_net_opts {
    /* The lease store lives in STATE_DIR/.network/BRIDGE; one state dir per network namespace. */
    const char *state_dir;
    const char *bridge; /* NULL: SBX_NET_BRIDGE; must be "husk" + up to 11 of [a-z0-9_-] */
    const char *subnet; /* NULL: SBX_NET_SUBNET; IPv4, /8 to /30 */
    /* Told about what may not work as the user expects (forwarding off on this host). */
    void (*warn)(void *data, const char *msg);
    void *warn_data;
};

/* An open network: its parsed options and the lease store. Opening changes nothing. */
struct sbx_net;

int sbx_net_open(const struct sbx_net_opts *o, struct sbx_net **out, struct husk_error **err);
void sbx_net_free(struct sbx_net *n);
void sbx_net_freep(struct sbx_net **n);

/* What one sandbox holds: an address on the bridge and the ports published to it. */
struct sbx_net_lease {
    char *owner;            /* a name unique in the store (the container id) */
    struct in_addr addr;    /* the sandbox's address */
    struct in_addr gateway; /* the bridge's address: the default route */
    uint8_t prefix;         /* of the subnet */
    char host_ifname[16];   /* host end of the veth pair: "hk" + the address in hex */
    struct sbx_net_publish *publish;
    size_t n_publish;
};

void sbx_net_lease_free(struct sbx_net_lease *l);
void sbx_net_lease_freep(struct sbx_net_lease **l);

/*
 * Take an address for OWNER and publish its ports (DNAT rules in place from here on). The first
 * lease of a store creates the bridge and the nft table; stale leases (their veth gone and the
 * process that took them dead) are reclaimed first. Refused with nothing changed: an owner that
 * holds a lease already, a port published already or bound by a host program, a subnet that
 * overlaps a route of the host, a full subnet.
 */
int sbx_net_acquire(struct sbx_net *n, const char *owner, const struct sbx_net_publish *pub,
                    size_t n_pub, struct sbx_net_lease **out, struct husk_error **err);

/* Put a network namespace on the bridge under a lease: a veth pair created with its "eth0" end
 * already in NETNS_FD (so a crash leaves no veth in the host once the namespace is gone),
 * loopback and eth0 up, the address, a default route via the bridge. */
int sbx_net_attach(struct sbx_net *n, const struct sbx_net_lease *l, int netns_fd,
                   struct husk_error **err);

/* Publish more ports for an owner's lease (a prepared namespace handed to a sandbox). */
int sbx_net_publish_add(struct sbx_net *n, const char *owner, const struct sbx_net_publish *pub,
                        size_t n_pub, struct husk_error **err);

/* Undo everything of OWNER: published ports, the veth, the lease; the last lease takes the
 * bridge, the nft table and the store with it. Nothing to release is not an error. */
int sbx_net_release(struct sbx_net *n, const char *owner, struct husk_error **err);

/* Reclaim stale leases; with nothing left, remove the bridge, table and store. */
int sbx_net_gc(struct sbx_net *n, struct husk_error **err);

/* Bring loopback up in a network namespace (-1: the caller's). */
int sbx_net_loopback_up(int netns_fd, struct husk_error **err);

/* /etc/resolv.conf for a sandbox from the host's: nameserver, search and options lines, with
 * loopback resolvers dropped (unreachable from the sandbox). Caller frees. */
char *sbx_net_resolv_conf(const char *host_resolv);
/* /etc/hosts naming the sandbox's address (addr may be NULL: loopback only). Caller frees. */
char *sbx_net_hosts(const char *hostname, const struct in_addr *addr);

/* ---- prepared network namespaces (for pools) ---- */

/* A network namespace on the bridge, made ahead of the sandbox that will join it. */
struct sbx_netns {
    int fd;        /* the namespace, CLOEXEC; pins it */
    char path[64]; /* "/proc/PID/fd/N": sbx_config.ns[SBX_NS_NET].path of the sandbox */
    struct sbx_net_lease *lease;
};

/* A new network namespace with loopback up, attached under a new lease of OWNER. The sandbox
 * joins it by path; it must not make a user namespace of its own (the namespace belongs to the
 * caller's). Costs what sbx_net_acquire + sbx_net_attach cost, plus the namespace. */
int sbx_netns_prepare(struct sbx_net *n, const char *owner, struct sbx_netns **out,
                      struct husk_error **err);
/* Closes the fd: the namespace and its veth go once no sandbox uses it. The lease stays until
 * sbx_net_release (or a later acquire reclaims it). */
void sbx_netns_free(struct sbx_netns *ns);
void sbx_netns_freep(struct sbx_netns **ns);

/* ---- egress allow-list (cgroup BPF) ---- */

/* One rule: destination prefix, port and protocol; the first rule that matches decides. */
struct sbx_egress_rule {
    bool deny;           /* "!CIDR...": refuse what matches (before a broader allow) */
    struct sbx_cidr dst; /* IPv4-mapped IPv6 destinations are matched as IPv4 */
    uint16_t port;       /* 0: any */
    uint8_t proto;       /* 0: tcp and udp; IPPROTO_TCP or IPPROTO_UDP */
};

/* "[!]CIDR[:PORT][/tcp|/udp]", IPv6 in brackets when a port follows: "[fd00::/64]:443". */
int sbx_egress_rule_parse(const char *spec, struct sbx_egress_rule *out, struct husk_error **err);

/*
 * Enforce the rules for every process in a cgroup2 directory and below it (pass
 * sbx_cgroup_spawn_fd(cg) before the sandbox starts, so its first instruction is covered):
 *   - connect() and sendmsg() to a destination no rule allows fail with EPERM, TCP and UDP,
 *     IPv4 and IPv6 (IPv4-mapped addresses included);
 *   - socket() of anything but TCP and UDP over IPv4/IPv6 (raw, ICMP, SCTP, MPTCP) fails with
 *     EPERM, so nothing goes around the two hooks above;
 *   - loopback is allowed only inside a network namespace other than the caller's: a sandbox
 *     in its own namespace reaches its own 127.0.0.1, never the host's unless a rule says so.
 * Works wherever cgroup2 is mounted (pure v2, or hybrid with cgroup2 at /sys/fs/cgroup/unified
 * and no controllers). The programs stay attached until the cgroup is removed or
 * sbx_egress_detach is called.
 */
struct sbx_egress;
int sbx_egress_attach(int cgroup2_fd, const struct sbx_egress_rule *rules, size_t n,
                      struct sbx_egress **out, struct husk_error **err);
/* Take the programs off the cgroup (it may be reused by another sandbox). */
int sbx_egress_detach(struct sbx_egress *e, struct husk_error **err);
/* Frees the handle; attached programs stay attached. */
void sbx_egress_free(struct sbx_egress *e);
void sbx_egress_freep(struct sbx_egress **e);

#endif
