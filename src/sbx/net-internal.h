/* SPDX-License-Identifier: Apache-2.0 */
/* Inside the network layer: netlink (libmnl), nftables (libnftables) and the lease store. */
#ifndef HUSK_SBX_NET_INTERNAL_H
#define HUSK_SBX_NET_INTERNAL_H

#include <sys/types.h>

#include "husk/net.h"

struct sbx_net {
    char *store; /* STATE_DIR/.network/BRIDGE */
    char *network_dir;
    char *bridge; /* also the name of the nft table */
    struct sbx_cidr subnet;
    struct in_addr gateway; /* the subnet's first host, on the bridge */
    void (*warn)(void *data, const char *msg);
    void *warn_data;
};

/* ---- netlink (net-link.c): one NETLINK_ROUTE socket, in a given network namespace ---- */

struct mnl_socket;
struct nl {
    struct mnl_socket *s;
    unsigned portid, seq;
};

/* netns_fd -1: the caller's namespace. */
int nl_open(struct nl *nl, int netns_fd, struct husk_error **err);
void nl_close(struct nl *nl);
/* ifindex (> 0) or -errno (-ENODEV: no such link). */
int nl_link_index(struct nl *nl, const char *name);
int nl_bridge_add(struct nl *nl, const char *name, const uint8_t mac[6]);
/* A veth pair: HOST here (enslaved to MASTER, up), PEER created inside NETNS_FD. */
int nl_veth_add(struct nl *nl, const char *host, int master, const char *peer,
                const uint8_t peer_mac[6], int netns_fd);
int nl_link_up(struct nl *nl, int index);
int nl_addr_add(struct nl *nl, int index, struct in_addr a, uint8_t prefix);
int nl_route_default(struct nl *nl, struct in_addr gw);
/* 0, or -ENODEV when there is no such link. */
int nl_link_del(struct nl *nl, const char *name);
/* Each IPv4 route of the main table: fn(dst, oif, data); a non-zero return stops the walk. */
int nl_routes_v4(struct nl *nl, int (*fn)(const struct sbx_cidr *dst, int oif, void *data),
                 void *data);

/* ---- nftables (net-nft.c): the table named after the bridge ---- */

/* Replace the table: masquerade, publish maps, isolation of the bridge. */
int nft_table_create(const struct sbx_net *n, struct husk_error **err);
/* 0, also when there is no such table. */
int nft_table_delete(const struct sbx_net *n, struct husk_error **err);
/* Add (-EEXIST when the host port is taken) or delete (missing is fine) one published port. */
int nft_publish(const struct sbx_net *n, const struct sbx_net_publish *p, struct in_addr dst,
                bool add, struct husk_error **err);

/* ---- the lease store (net-lease.c) ---- */

struct lease_store {
    int dir_fd;  /* the store directory, flock'ed through lock_fd */
    int lock_fd; /* STORE/.lock */
};

/* Lock the store, creating it when `create`; -ENOENT without one and !create. */
int lease_store_lock(const struct sbx_net *n, bool create, struct lease_store *st,
                     struct husk_error **err);
void lease_store_unlock(struct lease_store *st);
/* Remove the (empty) store while holding its lock; unlocks. */
void lease_store_remove(const struct sbx_net *n, struct lease_store *st);

/* Every lease in the store (file names are the addresses). Caller frees with lease_list_free. */
int lease_list(struct lease_store *st, struct sbx_net_lease ***out, size_t *n,
               struct husk_error **err);
void lease_list_free(struct sbx_net_lease **v, size_t n);
/* The lease of an owner, or -ENOENT. */
int lease_find(struct lease_store *st, const char *owner, struct sbx_net_lease **out);
/* Create (O_EXCL: -EEXIST when the address is taken) or rewrite a lease; the holder is the
 * calling process while the sandbox's veth does not exist yet. */
int lease_write(struct lease_store *st, const struct sbx_net_lease *l, bool create,
                struct husk_error **err);
int lease_remove(struct lease_store *st, const struct sbx_net_lease *l);
/* A lease is live while its veth exists or the process that wrote it is alive. */
bool lease_live(struct lease_store *st, const struct sbx_net_lease *l);
/* STORE/network: the subnet the bridge was made with ("" when none yet). */
int lease_store_subnet(struct lease_store *st, char *buf, size_t len);
int lease_store_set_subnet(struct lease_store *st, const char *subnet, struct husk_error **err);

/* "hk" + the address in hex, and a MAC made of the address, both stable for an address: an
 * address reused by another sandbox keeps its MAC, so neighbour caches stay right. */
void net_ifname(struct in_addr a, char buf[16]);
void net_mac(struct in_addr a, uint8_t mac[6]);

#endif
