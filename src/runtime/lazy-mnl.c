/* SPDX-License-Identifier: Apache-2.0 */
/* libmnl on first use (lazy.h): netlink for bridge networking only, always in the parent. */
#include <libmnl/libmnl.h>
#include <stddef.h>

#include "lazy.h"

static struct lazy_lib mnl = {"libmnl.so.0", NULL};

LAZY_FWD(mnl, struct mnl_socket *, mnl_socket_open2, (int bus, int flags), (bus, flags))
LAZY_FWD(mnl, int, mnl_socket_bind, (struct mnl_socket * nl, unsigned int groups, pid_t pid),
         (nl, groups, pid))
LAZY_FWD(mnl, int, mnl_socket_close, (struct mnl_socket * nl), (nl))
LAZY_FWD(mnl, unsigned int, mnl_socket_get_portid, (const struct mnl_socket *nl), (nl))
LAZY_FWD(mnl, ssize_t, mnl_socket_recvfrom, (const struct mnl_socket *nl, void *buf, size_t n),
         (nl, buf, n))
LAZY_FWD(mnl, ssize_t, mnl_socket_sendto, (const struct mnl_socket *nl, const void *req, size_t n),
         (nl, req, n))
LAZY_FWD(mnl, struct nlmsghdr *, mnl_nlmsg_put_header, (void *buf), (buf))
LAZY_FWD(mnl, void *, mnl_nlmsg_put_extra_header, (struct nlmsghdr * nlh, size_t size), (nlh, size))
LAZY_FWD(mnl, void *, mnl_nlmsg_get_payload, (const struct nlmsghdr *nlh), (nlh))
LAZY_FWD(mnl, void *, mnl_nlmsg_get_payload_tail, (const struct nlmsghdr *nlh), (nlh))
LAZY_FWD(mnl, int, mnl_cb_run,
         (const void *buf, size_t n, unsigned int seq, unsigned int portid, mnl_cb_t cb,
          void *data),
         (buf, n, seq, portid, cb, data))
LAZY_FWD(mnl, int, mnl_attr_parse,
         (const struct nlmsghdr *nlh, unsigned int offset, mnl_attr_cb_t cb, void *data),
         (nlh, offset, cb, data))
LAZY_FWD(mnl, int, mnl_attr_type_valid, (const struct nlattr *attr, uint16_t maxtype),
         (attr, maxtype))
LAZY_FWD(mnl, uint16_t, mnl_attr_get_type, (const struct nlattr *attr), (attr))
LAZY_FWD(mnl, void *, mnl_attr_get_payload, (const struct nlattr *attr), (attr))
LAZY_FWD(mnl, uint16_t, mnl_attr_get_payload_len, (const struct nlattr *attr), (attr))
LAZY_FWD(mnl, uint32_t, mnl_attr_get_u32, (const struct nlattr *attr), (attr))
LAZY_FWD(mnl, struct nlattr *, mnl_attr_nest_start, (struct nlmsghdr * nlh, uint16_t type),
         (nlh, type))
LAZY_FWD_VOID(mnl, mnl_attr_nest_end, (struct nlmsghdr * nlh, struct nlattr *start), (nlh, start))
LAZY_FWD_VOID(mnl, mnl_attr_put, (struct nlmsghdr * nlh, uint16_t type, size_t len, const void *d),
              (nlh, type, len, d))
LAZY_FWD_VOID(mnl, mnl_attr_put_strz, (struct nlmsghdr * nlh, uint16_t type, const char *d),
              (nlh, type, d))
LAZY_FWD_VOID(mnl, mnl_attr_put_u32, (struct nlmsghdr * nlh, uint16_t type, uint32_t d),
              (nlh, type, d))
