/* SPDX-License-Identifier: Apache-2.0 */
/* rtnetlink through libmnl: the bridge, veth pairs, addresses, routes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net-internal.h"
#include "util.h"

/* Open the socket inside NETNS_FD: a socket keeps the namespace it was made in, so the thread
 * steps in for socket(2) only and comes straight back. */
int
nl_open(struct nl *nl, int netns_fd, struct husk_error **err)
{
    cleanup_fd int self = -1;
    memset(nl, 0, sizeof(*nl));
    if (netns_fd >= 0) {
        self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self < 0)
            return husk_err(err, errno, "open our network namespace");
        if (setns(netns_fd, CLONE_NEWNET) < 0)
            return husk_err(err, errno, "enter the sandbox's network namespace");
    }
    nl->s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    int e = errno;
    if (self >= 0 && setns(self, CLONE_NEWNET) < 0)
        abort(); /* we would go on in the sandbox's namespace: never */
    if (nl->s == NULL)
        return husk_err(err, e, "open a netlink socket");
    if (mnl_socket_bind(nl->s, 0, MNL_SOCKET_AUTOPID) < 0) {
        e = errno;
        nl_close(nl);
        return husk_err(err, e, "bind a netlink socket");
    }
    nl->portid = mnl_socket_get_portid(nl->s);
    nl->seq = (unsigned)time(NULL);
    return 0;
}

void
nl_close(struct nl *nl)
{
    if (nl->s)
        mnl_socket_close(nl->s);
    nl->s = NULL;
}

/* Send one request and read until its ACK (or the end of a dump). 0 or -errno. */
static int
nl_talk(struct nl *nl, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    h->nlmsg_seq = ++nl->seq;
    h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    if (mnl_socket_sendto(nl->s, h, h->nlmsg_len) < 0)
        return -errno;
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl->s, buf, sizeof(buf));
        if (n < 0)
            return errno == EINTR ? -EINTR : -errno;
        int r = mnl_cb_run(buf, (size_t)n, h->nlmsg_seq, nl->portid, cb, data);
        if (r < 0)
            return -errno;
        if (r == MNL_CB_STOP)
            return 0;
    }
}

static struct nlmsghdr *
put_link(char *buf, uint16_t type, uint16_t flags, int index)
{
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = index;
    return h;
}

static int
link_index_cb(const struct nlmsghdr *h, void *data)
{
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
    *(int *)data = ifi->ifi_index;
    return MNL_CB_OK;
}

int
nl_link_index(struct nl *nl, const char *name)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = put_link(buf, RTM_GETLINK, 0, 0);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    int index = 0;
    int r = nl_talk(nl, h, link_index_cb, &index);
    if (r < 0)
        return r;
    return index > 0 ? index : -ENODEV;
}

int
nl_bridge_add(struct nl *nl, const char *name, const uint8_t mac[6])
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = put_link(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    /* A MAC of its own: otherwise the bridge takes its lowest port's and changes it as sandboxes
     * come and go, which invalidates every neighbour cache that knows the gateway. */
    mnl_attr_put(h, IFLA_ADDRESS, 6, mac);
    struct nlattr *info = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(h, info);
    return nl_talk(nl, h, NULL, NULL);
}

int
nl_veth_add(struct nl *nl, const char *host, int master, const char *peer,
            const uint8_t peer_mac[6], int netns_fd)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = put_link(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    mnl_attr_put_strz(h, IFLA_IFNAME, host);
    mnl_attr_put_u32(h, IFLA_MASTER, (uint32_t)master);
    struct nlattr *info = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(h, IFLA_INFO_DATA);
    struct nlattr *p = mnl_attr_nest_start(h, VETH_INFO_PEER);
    /* The peer's struct ifinfomsg sits in the attribute before its own attributes. */
    struct ifinfomsg *pifi = mnl_nlmsg_get_payload_tail(h);
    mnl_nlmsg_put_extra_header(h, sizeof(*pifi));
    memset(pifi, 0, sizeof(*pifi));
    mnl_attr_put_strz(h, IFLA_IFNAME, peer);
    mnl_attr_put(h, IFLA_ADDRESS, 6, peer_mac);
    mnl_attr_put_u32(h, IFLA_NET_NS_FD, (uint32_t)netns_fd);
    mnl_attr_nest_end(h, p);
    mnl_attr_nest_end(h, data);
    mnl_attr_nest_end(h, info);
    return nl_talk(nl, h, NULL, NULL);
}

int
nl_link_up(struct nl *nl, int index)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = put_link(buf, RTM_NEWLINK, 0, index);
    struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    return nl_talk(nl, h, NULL, NULL);
}

int
nl_addr_add(struct nl *nl, int index, struct in_addr a, uint8_t prefix)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_NEWADDR;
    h->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = prefix;
    ifa->ifa_index = (unsigned)index;
    mnl_attr_put(h, IFA_LOCAL, 4, &a);
    mnl_attr_put(h, IFA_ADDRESS, 4, &a);
    uint32_t host_mask = prefix >= 32 ? 0 : (0xffffffffu >> prefix);
    struct in_addr brd = {.s_addr = a.s_addr | htonl(host_mask)};
    if (prefix < 31)
        mnl_attr_put(h, IFA_BROADCAST, 4, &brd);
    return nl_talk(nl, h, NULL, NULL);
}

int
nl_route_default(struct nl *nl, struct in_addr gw)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_NEWROUTE;
    h->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
    rt->rtm_family = AF_INET;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    mnl_attr_put(h, RTA_GATEWAY, 4, &gw);
    return nl_talk(nl, h, NULL, NULL);
}

int
nl_link_del(struct nl *nl, const char *name)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = put_link(buf, RTM_DELLINK, 0, 0);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    return nl_talk(nl, h, NULL, NULL);
}

struct route_walk {
    int (*fn)(const struct sbx_cidr *dst, int oif, void *data);
    void *data;
    int stopped;
};

static int
route_attr_cb(const struct nlattr *a, void *data)
{
    const struct nlattr **tb = data;
    int type = mnl_attr_get_type(a);
    if (mnl_attr_type_valid(a, RTA_MAX) >= 0)
        tb[type] = a;
    return MNL_CB_OK;
}

static int
route_cb(const struct nlmsghdr *h, void *data)
{
    struct route_walk *w = data;
    const struct rtmsg *rt = mnl_nlmsg_get_payload(h);
    const struct nlattr *tb[RTA_MAX + 1] = {0};
    if (rt->rtm_family != AF_INET || rt->rtm_table != RT_TABLE_MAIN || w->stopped)
        return MNL_CB_OK;
    mnl_attr_parse(h, sizeof(*rt), route_attr_cb, tb);
    struct sbx_cidr dst = {.family = AF_INET, .prefix = rt->rtm_dst_len};
    if (tb[RTA_DST] && mnl_attr_get_payload_len(tb[RTA_DST]) == 4)
        memcpy(dst.addr, mnl_attr_get_payload(tb[RTA_DST]), 4);
    int oif = tb[RTA_OIF] ? (int)mnl_attr_get_u32(tb[RTA_OIF]) : 0;
    w->stopped = w->fn(&dst, oif, w->data);
    return MNL_CB_OK;
}

int
nl_routes_v4(struct nl *nl, int (*fn)(const struct sbx_cidr *dst, int oif, void *data), void *data)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_GETROUTE;
    h->nlmsg_flags = NLM_F_DUMP;
    struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
    rt->rtm_family = AF_INET;
    struct route_walk w = {.fn = fn, .data = data};
    return nl_talk(nl, h, route_cb, &w);
}
