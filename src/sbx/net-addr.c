/* SPDX-License-Identifier: Apache-2.0 */
/* Network words from users: prefixes, published ports, egress rules; resolv.conf and hosts. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "husk/net.h"
#include "util.h"

int
sbx_cidr_parse(const char *s, struct sbx_cidr *out, struct husk_error **err)
{
    char buf[64];
    struct sbx_cidr c = {0};
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return husk_err(err, 0, "'%s' is not an address or prefix", s);
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, buf, c.addr) == 1)
        c.family = AF_INET6;
    else
        return husk_err(err, 0, "'%s' is not an address or prefix: '%s' is no IP address", s, buf);
    unsigned max = c.family == AF_INET ? 32 : 128;
    uint64_t len = max;
    if (slash && (parse_u64(slash + 1, &len) < 0 || len > max))
        return husk_err(err, 0, "'%s': the prefix length must be 0 to %u", s, max);
    c.prefix = (uint8_t)len;
    for (unsigned bit = c.prefix; bit < max; bit++)
        if (c.addr[bit / 8] & (0x80 >> (bit % 8)))
            return husk_err(err, 0, "'%s' has host bits set (the prefix is /%u)", s, c.prefix);
    *out = c;
    return 0;
}

bool
sbx_cidr_overlaps(const struct sbx_cidr *a, const struct sbx_cidr *b)
{
    if (a->family != b->family)
        return false;
    unsigned p = a->prefix < b->prefix ? a->prefix : b->prefix;
    for (unsigned bit = 0; bit < p; bit++) {
        uint8_t m = (uint8_t)(0x80 >> (bit % 8));
        if ((a->addr[bit / 8] & m) != (b->addr[bit / 8] & m))
            return false;
    }
    return true;
}

void
sbx_cidr_format(const struct sbx_cidr *c, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(c->family, c->addr, a, sizeof(a));
    snprintf(buf, len, "%s/%u", a, c->prefix);
}

static int
parse_port(const char *s, const char *what, const char *spec, uint16_t *out,
           struct husk_error **err)
{
    uint64_t v;
    if (parse_u64(s, &v) < 0 || v == 0 || v > 65535)
        return husk_err(err, 0, "'%s': %s '%s' is not a port (1-65535)", spec, what, s);
    *out = (uint16_t)v;
    return 0;
}

/* "/tcp" or "/udp" at the end of a spec: cut off, *proto set; 0 when there is none. */
static int
cut_proto(char *s, const char *spec, uint8_t *proto, struct husk_error **err)
{
    char *slash = strrchr(s, '/');
    *proto = 0;
    if (slash == NULL || strchr(slash, ':') || strchr(slash, ']'))
        return 0;
    if (strcmp(slash + 1, "tcp") == 0)
        *proto = IPPROTO_TCP;
    else if (strcmp(slash + 1, "udp") == 0)
        *proto = IPPROTO_UDP;
    else if (strspn(slash + 1, "0123456789") == strlen(slash + 1))
        return 0; /* a prefix length, not a protocol */
    else
        return husk_err(err, 0, "'%s': protocol '%s' is neither tcp nor udp", spec, slash + 1);
    *slash = '\0';
    return 0;
}

int
sbx_net_publish_parse(const char *spec, struct sbx_net_publish *out, struct husk_error **err)
{
    cleanup_free char *s = xstrdup(spec);
    struct sbx_net_publish p = {.host_ip.s_addr = INADDR_ANY};
    char *f[3];
    size_t n = 0;
    int r = cut_proto(s, spec, &p.proto, err);
    if (r < 0)
        return r;
    if (p.proto == 0)
        p.proto = IPPROTO_TCP;
    for (char *tok = s, *next; tok && n < 4; tok = next) {
        next = strchr(tok, ':');
        if (next)
            *next++ = '\0';
        if (n == 3)
            return husk_err(err, 0, "'%s' is not [HOSTIP:]HOSTPORT:PORT[/tcp|udp]", spec);
        f[n++] = tok;
    }
    if (n < 2)
        return husk_err(err, 0, "'%s' is not [HOSTIP:]HOSTPORT:PORT[/tcp|udp]", spec);
    if (n == 3 && inet_pton(AF_INET, f[0], &p.host_ip) != 1)
        return husk_err(err, 0, "'%s': host address '%s' is not an IPv4 address", spec, f[0]);
    if ((r = parse_port(f[n - 2], "host port", spec, &p.host_port, err)) < 0 ||
        (r = parse_port(f[n - 1], "port", spec, &p.port, err)) < 0)
        return r;
    *out = p;
    return 0;
}

void
sbx_net_publish_format(const struct sbx_net_publish *p, char *buf, size_t len)
{
    char a[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &p->host_ip, a, sizeof(a));
    snprintf(buf, len, "%s %s:%u -> %u", p->proto == IPPROTO_UDP ? "udp" : "tcp", a, p->host_port,
             p->port);
}

int
sbx_egress_rule_parse(const char *spec, struct sbx_egress_rule *out, struct husk_error **err)
{
    cleanup_free char *s = xstrdup(spec);
    struct sbx_egress_rule r = {0};
    char *addr = s, *port = NULL;
    if (*addr == '!') {
        r.deny = true;
        addr++;
    }
    int e = cut_proto(addr, spec, &r.proto, err);
    if (e < 0)
        return e;
    if (*addr == '[') { /* [v6]:port or [v6/len]:port */
        char *close = strchr(addr, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return husk_err(err, 0, "'%s': expected [IPV6[/LEN]]:PORT", spec);
        *close = '\0';
        port = close[1] == ':' ? close + 2 : NULL;
        addr++;
    } else if (strchr(addr, ':') == strrchr(addr, ':') && strchr(addr, ':')) {
        port = strchr(addr, ':'); /* one colon: IPv4 with a port */
        *port++ = '\0';
    }
    if ((e = sbx_cidr_parse(addr, &r.dst, err)) < 0)
        return husk_err_prefix(err, "egress rule '%s': ", spec);
    if (port && (e = parse_port(port, "port", spec, &r.port, err)) < 0)
        return husk_err_prefix(err, "egress rule: ");
    *out = r;
    return 0;
}

static bool
is_loopback_nameserver(const char *a)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, a, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, a, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

char *
sbx_net_resolv_conf(const char *host_resolv)
{
    size_t cap = strlen(host_resolv ? host_resolv : "") + 128, len = 0;
    char *out = xcalloc(cap, 1);
    len += (size_t)snprintf(out, cap, "# written by husk from the host's resolv.conf\n");
    for (const char *line = host_resolv; line && *line;) {
        const char *end = strchrnul(line, '\n');
        char word[16] = "", value[256] = "";
        cleanup_free char *copy = xstrndup(line, (size_t)(end - line));
        line = *end ? end + 1 : end;
        if (sscanf(copy, "%15s %255s", word, value) < 1)
            continue;
        if (strcmp(word, "nameserver") == 0 && is_loopback_nameserver(value))
            continue;
        if (strcmp(word, "nameserver") && strcmp(word, "search") && strcmp(word, "domain") &&
            strcmp(word, "options"))
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s\n", copy);
    }
    return out;
}

char *
sbx_net_hosts(const char *hostname, const struct in_addr *addr)
{
    char a[INET_ADDRSTRLEN] = "";
    if (addr && hostname && *hostname)
        inet_ntop(AF_INET, addr, a, sizeof(a));
    return xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s%s%s%s", a,
                     *a ? "\t" : "", *a ? hostname : "", *a ? "\n" : "");
}
