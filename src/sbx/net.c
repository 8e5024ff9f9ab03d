/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bridge network: leases (net-lease.c), the bridge and veth pairs (net-link.c) and the nft
 * table (net-nft.c) kept in step. Order matters for crashes: a lease is written before anything
 * it accounts for exists, and a veth is born with one end in the sandbox's namespace, so
 * whatever a killed husk leaves is either gone with the namespace or named by a stale lease
 * that the next acquire, release or gc reclaims.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net-internal.h"
#include "util.h"

static bool
valid_bridge(const char *b)
{
    size_t n = strlen(b);
    return str_has_prefix(b, "husk") && n <= 15 &&
           strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int
sbx_net_open(const struct sbx_net_opts *o, struct sbx_net **out, struct husk_error **err)
{
    const char *bridge = o->bridge ? o->bridge : SBX_NET_BRIDGE;
    const char *subnet = o->subnet ? o->subnet : SBX_NET_SUBNET;
    if (!valid_bridge(bridge))
        return husk_err(
            err, 0, "bridge name '%s': must be 'husk' and up to 11 of a-z, 0-9, '_', '-'", bridge);
    struct sbx_net *n = xcalloc(1, sizeof(*n));
    int r = sbx_cidr_parse(subnet, &n->subnet, err);
    if (r == 0 && (n->subnet.family != AF_INET || n->subnet.prefix < 8 || n->subnet.prefix > 30))
        r = husk_err(err, 0, "subnet '%s': must be IPv4, /8 to /30", subnet);
    if (r < 0) {
        free(n);
        return husk_err_prefix(err, "network '%s': ", bridge);
    }
    uint32_t base;
    memcpy(&base, n->subnet.addr, 4);
    n->gateway.s_addr = htonl(ntohl(base) + 1);
    n->bridge = xstrdup(bridge);
    n->network_dir = xasprintf("%s/.network", o->state_dir);
    n->store = xasprintf("%s/%s", n->network_dir, bridge);
    n->warn = o->warn;
    n->warn_data = o->warn_data;
    *out = n;
    return 0;
}

void
sbx_net_free(struct sbx_net *n)
{
    if (n == NULL)
        return;
    free(n->store);
    free(n->network_dir);
    free(n->bridge);
    free(n);
}

void
sbx_net_freep(struct sbx_net **n)
{
    sbx_net_free(*n);
    *n = NULL;
}

void
sbx_net_lease_free(struct sbx_net_lease *l)
{
    if (l == NULL)
        return;
    free(l->owner);
    free(l->publish);
    free(l);
}

void
sbx_net_lease_freep(struct sbx_net_lease **l)
{
    sbx_net_lease_free(*l);
    *l = NULL;
}

static void
warn(const struct sbx_net *n, const char *msg)
{
    if (n->warn)
        n->warn(n->warn_data, msg);
}

static void
lock_cleanup(struct lease_store *st)
{
    lease_store_unlock(st);
}

#define cleanup_store cleanup_(lock_cleanup)

/* Undo one lease: its ports, its veth, its file. */
static void
drop_lease(struct sbx_net *n, struct lease_store *st, struct nl *nl, const struct sbx_net_lease *l)
{
    for (size_t i = 0; i < l->n_publish; i++)
        nft_publish(n, &l->publish[i], l->addr, false, NULL);
    if (nl->s)
        nl_link_del(nl, l->host_ifname);
    lease_remove(st, l);
}

/* Reclaim stale leases; the live ones are left in *live (may be NULL). */
static int
reclaim(struct sbx_net *n, struct lease_store *st, struct nl *nl, struct sbx_net_lease ***live,
        size_t *n_live, struct husk_error **err)
{
    struct sbx_net_lease **v = NULL;
    size_t count = 0, kept = 0;
    int r = lease_list(st, &v, &count, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < count; i++) {
        if (lease_live(st, v[i])) {
            v[kept++] = v[i];
            continue;
        }
        drop_lease(n, st, nl, v[i]);
        sbx_net_lease_free(v[i]);
    }
    if (live) {
        *live = v;
        *n_live = kept;
    } else {
        lease_list_free(v, kept);
    }
    return 0;
}

/* The last lease went: the bridge, the table and the store go too. */
static void
teardown(struct sbx_net *n, struct lease_store *st, struct nl *nl)
{
    nft_table_delete(n, NULL);
    if (nl->s)
        nl_link_del(nl, n->bridge);
    lease_store_remove(n, st);
}

struct overlap {
    const struct sbx_net *n;
    int bridge_index;
    struct sbx_cidr hit;
};

static int
route_overlaps(const struct sbx_cidr *dst, int oif, void *data)
{
    struct overlap *o = data;
    if (dst->prefix == 0 || (o->bridge_index > 0 && oif == o->bridge_index))
        return 0;
    if (!sbx_cidr_overlaps(dst, &o->n->subnet))
        return 0;
    o->hit = *dst;
    return 1;
}

/* Before the first lease: the subnet must be free on the host, then the bridge and table. */
static int
make_bridge(struct sbx_net *n, struct nl *nl, struct husk_error **err)
{
    char sub[64], hit[64];
    struct overlap o = {.n = n, .bridge_index = nl_link_index(nl, n->bridge)};
    int r = nl_routes_v4(nl, route_overlaps, &o);
    if (r < 0)
        return husk_err(err, -r, "list the host's routes");
    sbx_cidr_format(&n->subnet, sub, sizeof(sub));
    if (o.hit.family) {
        sbx_cidr_format(&o.hit, hit, sizeof(hit));
        return husk_err(err, 0,
                        "network '%s': subnet %s overlaps the host's route to %s; choose another "
                        "subnet",
                        n->bridge, sub, hit);
    }
    if (o.bridge_index < 0) {
        uint8_t mac[6];
        if (getrandom(mac, sizeof(mac), 0) != sizeof(mac))
            memset(mac, 0x5a, sizeof(mac));
        mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02);
        if ((r = nl_bridge_add(nl, n->bridge, mac)) < 0)
            return husk_err(err, -r, "create bridge '%s'", n->bridge);
        o.bridge_index = nl_link_index(nl, n->bridge);
        if (o.bridge_index < 0)
            return husk_err(err, -o.bridge_index, "find bridge '%s'", n->bridge);
        if ((r = nl_addr_add(nl, o.bridge_index, n->gateway, n->subnet.prefix)) < 0)
            return husk_err(err, -r, "give bridge '%s' address %s", n->bridge, sub);
    }
    if ((r = nl_link_up(nl, o.bridge_index)) < 0)
        return husk_err(err, -r, "bring bridge '%s' up", n->bridge);
    /* Our own interface's setting, not the host's: lets DNAT'ed 127.0.0.1 clients out through
     * the bridge (masqueraded; the table drops 127/8 coming in from sandboxes). */
    cleanup_free char *rl = xasprintf("/proc/sys/net/ipv4/conf/%s/route_localnet", n->bridge);
    if ((r = write_file_at(AT_FDCWD, rl, "1")) < 0)
        return husk_err(err, -r, "write %s", rl);
    if ((r = nft_table_create(n, err)) < 0)
        return r;
    cleanup_free char *fwd = NULL;
    if (read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", &fwd, NULL) == 0 && fwd[0] == '0')
        warn(n, "net.ipv4.ip_forward is 0 in this network namespace: sandboxes on the bridge "
                "reach the host and each other but nothing beyond (husk does not change it)");
    return 0;
}

static bool
same_binding(const struct sbx_net_publish *a, const struct sbx_net_publish *b)
{
    return a->proto == b->proto && a->host_port == b->host_port &&
           (a->host_ip.s_addr == b->host_ip.s_addr || a->host_ip.s_addr == INADDR_ANY ||
            b->host_ip.s_addr == INADDR_ANY);
}

/* A host program listening there would be shadowed by the DNAT: refuse instead. */
static int
check_port_free(const struct sbx_net_publish *p, struct husk_error **err)
{
    char what[64];
    cleanup_fd int fd =
        socket(AF_INET, (p->proto == IPPROTO_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(p->host_port), .sin_addr = p->host_ip};
    int one = 1;
    if (fd < 0)
        return husk_err(err, errno, "check host port %u", p->host_port);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return 0;
    sbx_net_publish_format(p, what, sizeof(what));
    if (errno == EADDRINUSE)
        return husk_err(err, 0, "publish %s: the host port is in use by a program on the host",
                        what);
    if (errno == EADDRNOTAVAIL)
        return husk_err(err, 0, "publish %s: the host has no such address", what);
    return husk_err(err, errno, "publish %s: check the host port", what);
}

static int
check_publish(struct sbx_net_lease **live, size_t n_live, const struct sbx_net_publish *pub,
              size_t n_pub, struct husk_error **err)
{
    char what[64];
    for (size_t i = 0; i < n_pub; i++) {
        sbx_net_publish_format(&pub[i], what, sizeof(what));
        for (size_t j = 0; j < i; j++)
            if (same_binding(&pub[i], &pub[j]))
                return husk_err(err, 0, "publish %s: given twice", what);
        for (size_t k = 0; k < n_live; k++)
            for (size_t j = 0; j < live[k]->n_publish; j++)
                if (same_binding(&pub[i], &live[k]->publish[j]))
                    return husk_err(err, 0,
                                    "publish %s: the host port is already published by '%s'", what,
                                    live[k]->owner);
        int r = check_port_free(&pub[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The next free address after the highest in use, wrapping: freed addresses rest a while. */
static int
pick_address(struct sbx_net *n, struct sbx_net_lease **live, size_t n_live, struct in_addr *out)
{
    uint32_t base, size = 1u << (32 - n->subnet.prefix);
    memcpy(&base, n->subnet.addr, 4);
    base = ntohl(base);
    uint32_t start = 2; /* .0 the network, .1 the bridge */
    for (size_t i = 0; i < n_live; i++) {
        uint32_t off = ntohl(live[i]->addr.s_addr) - base;
        if (off + 1 > start && off + 1 < size - 1)
            start = off + 1;
    }
    for (uint32_t k = 0; k < size - 3; k++) {
        uint32_t off = 2 + (start - 2 + k) % (size - 3);
        bool used = false;
        for (size_t i = 0; i < n_live && !used; i++)
            used = ntohl(live[i]->addr.s_addr) - base == off;
        if (!used) {
            out->s_addr = htonl(base + off);
            return 0;
        }
    }
    return -ENOSPC;
}

static bool
valid_owner(const char *o)
{
    size_t n = strlen(o);
    return n > 0 && n < 200 && strcspn(o, " \t\n/") == n && o[0] != '.';
}

static int
publish_all(struct sbx_net *n, const struct sbx_net_lease *l, size_t from, struct husk_error **err)
{
    for (size_t i = from; i < l->n_publish; i++) {
        int r = nft_publish(n, &l->publish[i], l->addr, true, err);
        if (r < 0) {
            while (i-- > from)
                nft_publish(n, &l->publish[i], l->addr, false, NULL);
            return r;
        }
    }
    return 0;
}

int
sbx_net_acquire(struct sbx_net *n, const char *owner, const struct sbx_net_publish *pub,
                size_t n_pub, struct sbx_net_lease **out, struct husk_error **err)
{
    cleanup_store struct lease_store st = {.dir_fd = -1, .lock_fd = -1};
    struct nl nl = {0};
    struct sbx_net_lease **live = NULL;
    size_t n_live = 0;
    char sub[64], had[64];
    if (!valid_owner(owner))
        return husk_err(err, 0, "network owner '%s': no spaces or '/', not empty", owner);
    int r = lease_store_lock(n, true, &st, err);
    if (r == 0)
        r = nl_open(&nl, -1, err);
    if (r == 0)
        r = reclaim(n, &st, &nl, &live, &n_live, err);
    if (r < 0)
        goto out;
    sbx_cidr_format(&n->subnet, sub, sizeof(sub));
    if ((r = lease_store_subnet(&st, had, sizeof(had))) < 0) {
        r = husk_err(err, -r, "read network state '%s'", n->store);
        goto out;
    }
    if (n_live && *had && strcmp(had, sub) != 0) {
        r = husk_err(err, 0, "network '%s' has subnet %s, not %s", n->bridge, had, sub);
        goto out;
    }
    for (size_t i = 0; i < n_live; i++)
        if (strcmp(live[i]->owner, owner) == 0) {
            r = husk_err(err, 0, "network '%s': '%s' holds an address already", n->bridge, owner);
            goto out;
        }
    if ((r = check_publish(live, n_live, pub, n_pub, err)) < 0)
        goto out;
    struct sbx_net_lease *l = xcalloc(1, sizeof(*l));
    l->owner = xstrdup(owner);
    l->gateway = n->gateway;
    l->prefix = n->subnet.prefix;
    l->publish = n_pub ? xcalloc(n_pub, sizeof(*pub)) : NULL;
    if (n_pub)
        memcpy(l->publish, pub, n_pub * sizeof(*pub));
    l->n_publish = n_pub;
    if (pick_address(n, live, n_live, &l->addr) < 0) {
        sbx_net_lease_free(l);
        r = husk_err(err, 0, "network '%s': no free address left in %s", n->bridge, sub);
        goto out;
    }
    net_ifname(l->addr, l->host_ifname);
    /* The lease first: whatever follows is accounted for if we die. */
    r = lease_write(&st, l, true, err);
    bool written = r == 0;
    if (r == -EEXIST) /* a file there that is no lease we can read: leave it be */
        r = husk_err(err, EEXIST, "network '%s': lease file of %s is unreadable", n->bridge,
                     l->host_ifname);
    else if (r == 0 && n_live == 0 && (r = make_bridge(n, &nl, err)) == 0)
        r = lease_store_set_subnet(&st, sub, err);
    if (r == 0)
        r = publish_all(n, l, 0, err);
    if (r < 0) {
        if (written)
            drop_lease(n, &st, &nl, l);
        if (n_live == 0)
            teardown(n, &st, &nl);
        sbx_net_lease_free(l);
        goto out;
    }
    *out = l;
out:
    lease_list_free(live, n_live);
    nl_close(&nl);
    return r;
}

int
sbx_net_attach(struct sbx_net *n, const struct sbx_net_lease *l, int netns_fd,
               struct husk_error **err)
{
    struct nl host = {0}, in = {0};
    uint8_t mac[6];
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &l->addr, a, sizeof(a));
    net_mac(l->addr, mac);
    int r = nl_open(&host, -1, err);
    if (r < 0)
        return r;
    int br = nl_link_index(&host, n->bridge);
    if (br < 0) {
        nl_close(&host);
        return husk_err(err, -br, "network '%s': find the bridge", n->bridge);
    }
    r = nl_veth_add(&host, l->host_ifname, br, "eth0", mac, netns_fd);
    if (r < 0) {
        nl_close(&host);
        return husk_err(err, -r, "create veth pair %s/eth0", l->host_ifname);
    }
    const char *step = "open a netlink socket";
    r = nl_open(&in, netns_fd, NULL);
    int lo = 0, eth = 0;
    if (r == 0 && (step = "find lo", lo = nl_link_index(&in, "lo")) < 0)
        r = lo;
    if (r == 0 && (step = "bring lo up", r = nl_link_up(&in, lo)) == 0 &&
        (step = "find eth0", eth = nl_link_index(&in, "eth0")) < 0)
        r = eth;
    if (r == 0 && (step = "set the address", r = nl_addr_add(&in, eth, l->addr, l->prefix)) == 0 &&
        (step = "bring eth0 up", r = nl_link_up(&in, eth)) == 0)
        step = "add the default route", r = nl_route_default(&in, l->gateway);
    if (r < 0) {
        husk_err(err, -r, "sandbox %s (%s): %s", a, l->owner, step);
        nl_link_del(&host, l->host_ifname);
    }
    nl_close(&in);
    nl_close(&host);
    return r;
}

int
sbx_net_publish_add(struct sbx_net *n, const char *owner, const struct sbx_net_publish *pub,
                    size_t n_pub, struct husk_error **err)
{
    cleanup_store struct lease_store st = {.dir_fd = -1, .lock_fd = -1};
    cleanup_(sbx_net_lease_freep) struct sbx_net_lease *l = NULL;
    struct nl nl = {0};
    struct sbx_net_lease **live = NULL;
    size_t n_live = 0;
    int r = lease_store_lock(n, false, &st, err);
    if (r == -ENOENT || (r == 0 && lease_find(&st, owner, &l) < 0))
        return husk_err(err, 0, "network '%s': '%s' holds no address", n->bridge, owner);
    if (r == 0 && (r = nl_open(&nl, -1, err)) == 0)
        r = reclaim(n, &st, &nl, &live, &n_live, err);
    if (r == 0)
        r = check_publish(live, n_live, pub, n_pub, err);
    lease_list_free(live, n_live);
    nl_close(&nl);
    if (r < 0)
        return r;
    size_t from = l->n_publish;
    l->publish = xrealloc(l->publish, (from + n_pub) * sizeof(*pub));
    memcpy(l->publish + from, pub, n_pub * sizeof(*pub));
    l->n_publish += n_pub;
    if ((r = lease_write(&st, l, false, err)) < 0)
        return r;
    return publish_all(n, l, from, err);
}

static int
release_locked(struct sbx_net *n, struct lease_store *st, const char *owner,
               struct husk_error **err)
{
    cleanup_(sbx_net_lease_freep) struct sbx_net_lease *l = NULL;
    struct nl nl = {0};
    size_t n_live = 0;
    struct sbx_net_lease **live = NULL;
    int r = nl_open(&nl, -1, err);
    if (r < 0)
        return r;
    if (owner && lease_find(st, owner, &l) == 0)
        drop_lease(n, st, &nl, l);
    r = reclaim(n, st, &nl, &live, &n_live, err);
    lease_list_free(live, n_live);
    if (r == 0 && n_live == 0)
        teardown(n, st, &nl);
    nl_close(&nl);
    return r;
}

int
sbx_net_release(struct sbx_net *n, const char *owner, struct husk_error **err)
{
    cleanup_store struct lease_store st = {.dir_fd = -1, .lock_fd = -1};
    int r = lease_store_lock(n, false, &st, err);
    if (r == -ENOENT)
        return 0;
    return r < 0 ? r : release_locked(n, &st, owner, err);
}

int
sbx_net_gc(struct sbx_net *n, struct husk_error **err)
{
    return sbx_net_release(n, NULL, err);
}

int
sbx_net_loopback_up(int netns_fd, struct husk_error **err)
{
    struct nl nl = {0};
    int r = nl_open(&nl, netns_fd, err);
    if (r < 0)
        return r;
    int lo = nl_link_index(&nl, "lo");
    r = lo < 0 ? lo : nl_link_up(&nl, lo);
    nl_close(&nl);
    return r < 0 ? husk_err(err, -r, "bring loopback up") : 0;
}

/* ---- prepared namespaces ---- */

/* A new network namespace, made by this thread stepping into it and back. */
static int
new_netns(struct husk_error **err)
{
    cleanup_fd int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return husk_err(err, errno, "open our network namespace");
    if (unshare(CLONE_NEWNET) < 0)
        return husk_err(err, errno, "create a network namespace");
    int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int e = errno;
    if (setns(self, CLONE_NEWNET) < 0)
        abort(); /* never go on in the new namespace */
    return fd < 0 ? husk_err(err, e, "open the new network namespace") : fd;
}

int
sbx_netns_prepare(struct sbx_net *n, const char *owner, struct sbx_netns **out,
                  struct husk_error **err)
{
    cleanup_(sbx_netns_freep) struct sbx_netns *ns = xcalloc(1, sizeof(*ns));
    ns->fd = new_netns(err);
    if (ns->fd < 0)
        return ns->fd;
    int r = sbx_net_acquire(n, owner, NULL, 0, &ns->lease, err);
    if (r == 0 && (r = sbx_net_attach(n, ns->lease, ns->fd, err)) < 0)
        sbx_net_release(n, owner, NULL);
    if (r < 0)
        return r;
    snprintf(ns->path, sizeof(ns->path), "/proc/%d/fd/%d", getpid(), ns->fd);
    *out = steal_ptr(&ns);
    return 0;
}

void
sbx_netns_free(struct sbx_netns *ns)
{
    if (ns == NULL)
        return;
    if (ns->fd >= 0)
        close(ns->fd);
    sbx_net_lease_free(ns->lease);
    free(ns);
}

void
sbx_netns_freep(struct sbx_netns **ns)
{
    sbx_netns_free(*ns);
    *ns = NULL;
}
