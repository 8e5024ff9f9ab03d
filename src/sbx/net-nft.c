/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bridge's nftables table, through libnftables: one table of husk's own, named after the
 * bridge, replaced whole when the first sandbox arrives and deleted with the last. Sandboxes
 * come and go as elements of its publish maps, never as rules, so nothing else is rewritten.
 *
 * libnftables is loaded on first use: it brings libnftnl, libxtables, libgmp and libjansson
 * with it, about a millisecond of start-up that no verb without a bridge may pay. The resolved
 * pointers are a cache, never reset.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

#include "net-internal.h"
#include "util.h"

#define LIBNFTABLES_SONAME "libnftables.so.1"

struct nft_api {
    struct nft_ctx *(*ctx_new)(uint32_t flags);
    void (*ctx_free)(struct nft_ctx *ctx);
    int (*buffer_output)(struct nft_ctx *ctx);
    int (*buffer_error)(struct nft_ctx *ctx);
    int (*run)(struct nft_ctx *ctx, const char *buf);
    const char *(*error_buffer)(struct nft_ctx *ctx);
};

static const struct nft_api *
nft_api(struct husk_error **err)
{
    static struct nft_api api;
    static void *handle;
    if (handle)
        return &api;
    void *h = dlopen(LIBNFTABLES_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        husk_err(err, ENOENT, "load %s (install libnftables1): %s", LIBNFTABLES_SONAME, dlerror());
        return NULL;
    }
    struct nft_api a = {
        .ctx_new = (struct nft_ctx * (*)(uint32_t)) dlsym(h, "nft_ctx_new"),
        .ctx_free = (void (*)(struct nft_ctx *))dlsym(h, "nft_ctx_free"),
        .buffer_output = (int (*)(struct nft_ctx *))dlsym(h, "nft_ctx_buffer_output"),
        .buffer_error = (int (*)(struct nft_ctx *))dlsym(h, "nft_ctx_buffer_error"),
        .run = (int (*)(struct nft_ctx *, const char *))dlsym(h, "nft_run_cmd_from_buffer"),
        .error_buffer = (const char *(*)(struct nft_ctx *))dlsym(h, "nft_ctx_get_error_buffer"),
    };
    if (!a.ctx_new || !a.ctx_free || !a.buffer_output || !a.buffer_error || !a.run ||
        !a.error_buffer) {
        dlclose(h);
        husk_err(err, ENOSYS, "%s lacks a function husk needs", LIBNFTABLES_SONAME);
        return NULL;
    }
    api = a;
    handle = h;
    return &api;
}

/* The failing command's message, and an errno guessed from its wording. */
static int
nft_fail(const struct nft_api *nft, struct nft_ctx *ctx, const char *what, bool quiet_enoent,
         struct husk_error **err)
{
    const char *text = nft->error_buffer(ctx);
    int code = strstr(text, "File exists")                 ? EEXIST
               : strstr(text, "No such file or directory") ? ENOENT
               : strstr(text, "Operation not permitted")   ? EPERM
                                                           : EINVAL;
    if (code == ENOENT && quiet_enoent)
        return -ENOENT;
    cleanup_free char *line = xstrdup(text);
    line[strcspn(line, "\n")] = '\0';
    return husk_err(err, code, "nftables: %s: %s", what, line);
}

/* Run commands as one transaction; -errno and the error text of the failing command. */
static int
nft_run(const char *cmds, const char *what, bool quiet_enoent, struct husk_error **err)
{
    const struct nft_api *nft = nft_api(err);
    if (nft == NULL)
        return -ENOENT;
    struct nft_ctx *ctx = nft->ctx_new(NFT_CTX_DEFAULT);
    if (ctx == NULL)
        return husk_err(err, ENOMEM, "nftables: %s", what);
    /* Never print: the text comes back in the error object. */
    nft->buffer_output(ctx);
    nft->buffer_error(ctx);
    int r = nft->run(ctx, cmds) == 0 ? 0 : nft_fail(nft, ctx, what, quiet_enoent, err);
    nft->ctx_free(ctx);
    return r;
}

int
nft_table_create(const struct sbx_net *n, struct husk_error **err)
{
    char sub[64];
    sbx_cidr_format(&n->subnet, sub, sizeof(sub));
    const char *t = n->bridge;
    /*
     * prerouting/output: DNAT of published ports for every local destination address (output
     * covers the host's own clients, loopback included). postrouting: outbound masquerade,
     * host loopback clients (route_localnet on the bridge lets 127.0.0.1 leave through it) and
     * hairpin DNAT between sandboxes. forward: from outside, only published or answering
     * traffic reaches the sandboxes. guard: nothing from a sandbox to the host's 127/8, which
     * route_localnet would otherwise accept on the bridge (CVE-2020-8558).
     */
    cleanup_free char *cmds = xasprintf(
        "add table ip %1$s\n"
        "delete table ip %1$s\n"
        "table ip %1$s {\n"
        "  map pub_tcp { type inet_service : ipv4_addr . inet_service; }\n"
        "  map pub_udp { type inet_service : ipv4_addr . inet_service; }\n"
        "  map pub_tcp_ip { type ipv4_addr . inet_service : ipv4_addr . inet_service; }\n"
        "  map pub_udp_ip { type ipv4_addr . inet_service : ipv4_addr . inet_service; }\n"
        "  chain publish {\n"
        "    dnat ip addr . port to ip daddr . tcp dport map @pub_tcp_ip\n"
        "    dnat ip addr . port to ip daddr . udp dport map @pub_udp_ip\n"
        "    dnat ip addr . port to tcp dport map @pub_tcp\n"
        "    dnat ip addr . port to udp dport map @pub_udp\n"
        "  }\n"
        "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;\n"
        "    fib daddr type local jump publish\n"
        "  }\n"
        "  chain output { type nat hook output priority -100; policy accept;\n"
        "    fib daddr type local jump publish\n"
        "  }\n"
        "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"
        "    ip saddr %2$s ip daddr != %2$s masquerade\n"
        "    ip saddr 127.0.0.0/8 oifname \"%1$s\" masquerade\n"
        "    ct status dnat ip saddr %2$s oifname \"%1$s\" masquerade\n"
        "  }\n"
        "  chain forward { type filter hook forward priority filter; policy accept;\n"
        "    oifname \"%1$s\" iifname != \"%1$s\" ct state established,related accept\n"
        "    oifname \"%1$s\" iifname != \"%1$s\" ct status dnat accept\n"
        "    oifname \"%1$s\" iifname != \"%1$s\" drop\n"
        "  }\n"
        "  chain guard { type filter hook prerouting priority raw; policy accept;\n"
        "    iifname \"%1$s\" ip daddr 127.0.0.0/8 drop\n"
        "  }\n"
        "}\n",
        t, sub);
    return nft_run(cmds, "create table", false, err);
}

int
nft_table_delete(const struct sbx_net *n, struct husk_error **err)
{
    cleanup_free char *cmd = xasprintf("delete table ip %s\n", n->bridge);
    int r = nft_run(cmd, "delete table", true, err);
    return r == -ENOENT ? 0 : r;
}

int
nft_publish(const struct sbx_net *n, const struct sbx_net_publish *p, struct in_addr dst, bool add,
            struct husk_error **err)
{
    char host[INET_ADDRSTRLEN], to[INET_ADDRSTRLEN], key[64];
    const char *proto = p->proto == IPPROTO_UDP ? "udp" : "tcp";
    bool any = p->host_ip.s_addr == INADDR_ANY;
    inet_ntop(AF_INET, &p->host_ip, host, sizeof(host));
    inet_ntop(AF_INET, &dst, to, sizeof(to));
    if (any)
        snprintf(key, sizeof(key), "%u", p->host_port);
    else
        snprintf(key, sizeof(key), "%s . %u", host, p->host_port);
    cleanup_free char *cmd = add ? xasprintf("create element ip %s pub_%s%s { %s : %s . %u }\n",
                                             n->bridge, proto, any ? "" : "_ip", key, to, p->port)
                                 : xasprintf("delete element ip %s pub_%s%s { %s }\n", n->bridge,
                                             proto, any ? "" : "_ip", key);
    int r = nft_run(cmd, add ? "publish port" : "unpublish port", !add, err);
    return !add && r == -ENOENT ? 0 : r;
}
