/* SPDX-License-Identifier: Apache-2.0 */
/* The limits struct: ownership, validation, default device rules and v1 <-> v2 conversions. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "cgroup-internal.h"
#include "util.h"

void
sbx_cgroup_limits_clear(struct sbx_cgroup_limits *l)
{
    if (l == NULL)
        return;
    free(l->cpu.cpus);
    free(l->cpu.mems);
    free(l->blkio.devices);
    for (int k = 0; k < SBX_CG_THROTTLE_COUNT; k++)
        free(l->blkio.throttle[k]);
    for (size_t i = 0; i < l->n_hugepages; i++)
        free(l->hugepages[i].page_size);
    free(l->hugepages);
    for (size_t i = 0; i < l->n_net_prio; i++)
        free(l->net_prio[i].ifname);
    free(l->net_prio);
    for (size_t i = 0; i < l->n_rdma; i++)
        free(l->rdma[i].device);
    free(l->rdma);
    free(l->devices);
    for (size_t i = 0; i < l->n_unified; i++) {
        free(l->unified[i].key);
        free(l->unified[i].value);
    }
    free(l->unified);
    memset(l, 0, sizeof(*l));
}

unsigned
cg_limits_ctrls(const struct sbx_cgroup_limits *l)
{
    const struct sbx_cg_memory *m = &l->memory;
    const struct sbx_cg_cpu *c = &l->cpu;
    const struct sbx_cg_blkio *b = &l->blkio;
    unsigned bits = 0;
    if (m->limit.set || m->reservation.set || m->swap.set || m->kernel.set || m->kernel_tcp.set ||
        m->swappiness.set || m->disable_oom_killer.set || m->use_hierarchy.set)
        bits |= CG_BIT(CG_MEMORY);
    if (c->shares.set || c->quota.set || c->period.set || c->burst.set || c->rt_runtime.set ||
        c->rt_period.set || c->idle.set)
        bits |= CG_BIT(CG_CPU);
    if (c->cpus || c->mems)
        bits |= CG_BIT(CG_CPUSET);
    if (l->pids.set)
        bits |= CG_BIT(CG_PIDS);
    bool io = b->weight.set || b->leaf_weight.set || b->n_devices;
    for (int k = 0; k < SBX_CG_THROTTLE_COUNT; k++)
        io = io || b->n_throttle[k];
    if (io)
        bits |= CG_BIT(CG_BLKIO);
    if (l->n_hugepages)
        bits |= CG_BIT(CG_HUGETLB);
    if (l->net_classid.set)
        bits |= CG_BIT(CG_NET_CLS);
    if (l->n_net_prio)
        bits |= CG_BIT(CG_NET_PRIO);
    if (l->n_rdma)
        bits |= CG_BIT(CG_RDMA);
    if (l->devices_set)
        bits |= CG_BIT(CG_DEVICES);
    return bits;
}

/* Anything but device rules, from cg_limits_ctrls, the one list of limit fields: a second list
 * kept in step by hand could miss one, and a rootless container then ran without that limit. */
bool
sbx_cgroup_limits_any(const struct sbx_cgroup_limits *l)
{
    return (cg_limits_ctrls(l) & ~CG_BIT(CG_DEVICES)) != 0 || l->n_unified > 0;
}

/* runc's AllowedDevices: mknod of anything, and the nodes every container gets. */
const struct sbx_cg_device_rule sbx_cg_default_devices[] = {
    {true, 'c', -1, -1, "m"},    {true, 'b', -1, -1, "m"}, {true, 'c', 1, 3, "rwm"},
    {true, 'c', 1, 8, "rwm"},    {true, 'c', 1, 7, "rwm"}, {true, 'c', 5, 0, "rwm"},
    {true, 'c', 1, 5, "rwm"},    {true, 'c', 1, 9, "rwm"}, {true, 'c', 5, 1, "rwm"},
    {true, 'c', 136, -1, "rwm"}, {true, 'c', 5, 2, "rwm"},
};
const size_t sbx_cg_n_default_devices = ARRAY_SIZE(sbx_cg_default_devices);

/* cpu.shares [2, 262144] onto cpu.weight [1, 10000], linearly, as runc and crun (< 1.15). */
uint64_t
sbx_cg_shares_to_weight(uint64_t shares)
{
    if (shares < 2)
        return shares == 0 ? 0 : 1;
    if (shares > 262144)
        shares = 262144;
    return 1 + ((shares - 2) * 9999) / 262142;
}

/* The inverse, for `unified` cpu.weight on a v1 host: rounded to land back on the same weight. */
uint64_t
sbx_cg_weight_to_shares(uint64_t weight)
{
    if (weight < 1)
        weight = 1;
    if (weight > 10000)
        weight = 10000;
    return 2 + ((weight - 1) * 262142 + 9998) / 9999;
}

/* blkio.weight [10, 1000] onto io.weight [1, 10000], as runc. */
uint64_t
sbx_cg_blkio_to_io_weight(uint64_t weight)
{
    if (weight < 10)
        weight = 10;
    if (weight > 1000)
        weight = 1000;
    return 1 + (weight - 10) * 9999 / 990;
}

uint64_t
sbx_cg_io_to_blkio_weight(uint64_t weight)
{
    if (weight < 1)
        weight = 1;
    if (weight > 10000)
        weight = 10000;
    return 10 + ((weight - 1) * 990 + 9998) / 9999;
}

/* ---- validation ---- */

static int bad(char **field, struct husk_error **err, char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
bad(char **field, struct husk_error **err, char *name, const char *fmt, ...)
{
    va_list ap;
    *field = name;
    va_start(ap, fmt);
    int r = husk_errv(err, 0, fmt, ap);
    va_end(ap);
    return r;
}

static int
range(const struct sbx_cg_num *n, int64_t min, int64_t max, const char *name, char **field,
      struct husk_error **err)
{
    if (!n->set || (n->v >= min && n->v <= max))
        return 0;
    return bad(field, err, xstrdup(name), "%lld is out of range [%lld, %lld]", (long long)n->v,
               (long long)min, (long long)max);
}

/* A cpuset list: "0-3,5,7-8". The kernel checks the numbers against the host. */
static bool
cpuset_list_ok(const char *s)
{
    if (*s == '\0')
        return true; /* empty: inherit, as the kernel treats it */
    for (const char *p = s; *p;) {
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9')
                return false;
            while (*p >= '0' && *p <= '9')
                p++;
        }
        if (*p == ',') {
            p++;
            if (*p == '\0')
                return false;
        } else if (*p) {
            return false;
        }
    }
    return true;
}

static int
check_memory(const struct sbx_cg_memory *m, char **field, struct husk_error **err)
{
    int r;
    if ((r = range(&m->limit, -1, INT64_MAX, "memory.limit", field, err)) < 0 ||
        (r = range(&m->reservation, -1, INT64_MAX, "memory.reservation", field, err)) < 0 ||
        (r = range(&m->swap, -1, INT64_MAX, "memory.swap", field, err)) < 0 ||
        (r = range(&m->kernel, -1, INT64_MAX, "memory.kernel", field, err)) < 0 ||
        (r = range(&m->kernel_tcp, -1, INT64_MAX, "memory.kernelTCP", field, err)) < 0 ||
        (r = range(&m->swappiness, 0, 100, "memory.swappiness", field, err)) < 0)
        return r;
    if (m->limit.set && m->limit.v == 0)
        return bad(field, err, xstrdup("memory.limit"), "0 bytes leave no room for a process");
    if (m->swap.set && m->swap.v > 0 && m->limit.set && m->limit.v > 0 && m->swap.v < m->limit.v)
        return bad(field, err, xstrdup("memory.swap"),
                   "%lld is below memory.limit %lld (swap is the limit of memory + swap)",
                   (long long)m->swap.v, (long long)m->limit.v);
    return 0;
}

static int
check_cpu(const struct sbx_cg_cpu *c, char **field, struct husk_error **err)
{
    int r;
    if ((r = range(&c->shares, 2, 262144, "cpu.shares", field, err)) < 0 ||
        (r = range(&c->quota, -1, INT64_MAX, "cpu.quota", field, err)) < 0 ||
        (r = range(&c->period, 1000, 1000000, "cpu.period", field, err)) < 0 ||
        (r = range(&c->burst, 0, INT64_MAX, "cpu.burst", field, err)) < 0 ||
        (r = range(&c->rt_runtime, -1, INT64_MAX, "cpu.realtimeRuntime", field, err)) < 0 ||
        (r = range(&c->rt_period, 1, INT64_MAX, "cpu.realtimePeriod", field, err)) < 0 ||
        (r = range(&c->idle, 0, 1, "cpu.idle", field, err)) < 0)
        return r;
    if (c->quota.set && c->quota.v >= 0 && c->quota.v < 1000)
        return bad(field, err, xstrdup("cpu.quota"),
                   "%lld is below the kernel's minimum of 1000 microseconds (or -1 for none)",
                   (long long)c->quota.v);
    if (c->cpus && !cpuset_list_ok(c->cpus))
        return bad(field, err, xstrdup("cpu.cpus"), "'%s' is not a cpu list such as 0-3,5",
                   c->cpus);
    if (c->mems && !cpuset_list_ok(c->mems))
        return bad(field, err, xstrdup("cpu.mems"), "'%s' is not a node list such as 0-1", c->mems);
    return 0;
}

static int
check_blkio(const struct sbx_cg_blkio *b, char **field, struct husk_error **err)
{
    static const char *const names[] = {"throttleReadBpsDevice", "throttleWriteBpsDevice",
                                        "throttleReadIOPSDevice", "throttleWriteIOPSDevice"};
    int r;
    if ((r = range(&b->weight, 10, 1000, "blockIO.weight", field, err)) < 0 ||
        (r = range(&b->leaf_weight, 10, 1000, "blockIO.leafWeight", field, err)) < 0)
        return r;
    for (size_t i = 0; i < b->n_devices; i++) {
        cleanup_free char *w = xasprintf("blockIO.weightDevice[%zu].weight", i);
        cleanup_free char *lw = xasprintf("blockIO.weightDevice[%zu].leafWeight", i);
        if ((r = range(&b->devices[i].weight, 10, 1000, w, field, err)) < 0 ||
            (r = range(&b->devices[i].leaf_weight, 10, 1000, lw, field, err)) < 0)
            return r;
        if (b->devices[i].major < 0 || b->devices[i].minor < 0)
            return bad(field, err, xasprintf("blockIO.weightDevice[%zu]", i),
                       "major and minor must not be negative");
    }
    for (int k = 0; k < SBX_CG_THROTTLE_COUNT; k++)
        for (size_t i = 0; i < b->n_throttle[k]; i++)
            if (b->throttle[k][i].major < 0 || b->throttle[k][i].minor < 0)
                return bad(field, err, xasprintf("blockIO.%s[%zu]", names[k], i),
                           "major and minor must not be negative");
    return 0;
}

static bool
page_size_ok(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 &&
           (strcmp(s + n, "KB") == 0 || strcmp(s + n, "MB") == 0 || strcmp(s + n, "GB") == 0);
}

static int
check_devices(const struct sbx_cgroup_limits *l, char **field, struct husk_error **err)
{
    for (size_t i = 0; i < l->n_devices; i++) {
        const struct sbx_cg_device_rule *d = &l->devices[i];
        if (d->type != 'a' && d->type != 'b' && d->type != 'c')
            return bad(field, err, xasprintf("devices[%zu].type", i), "'%c' is not one of a, b, c",
                       d->type);
        if (d->access[0] == '\0' || strspn(d->access, "rwm") != strlen(d->access))
            return bad(field, err, xasprintf("devices[%zu].access", i),
                       "'%s' is not a combination of r, w and m", d->access);
        if (d->major < -1 || d->minor < -1)
            return bad(field, err, xasprintf("devices[%zu]", i),
                       "major and minor must be -1 (any) or a device number");
    }
    return 0;
}

static int
check_unified(const struct sbx_cgroup_limits *l, char **field, struct husk_error **err)
{
    static const char *const forbidden[] = {
        "cgroup.procs", "cgroup.threads", "cgroup.subtree_control",
        "cgroup.type",  "cgroup.kill",    "cgroup.freeze"};
    for (size_t i = 0; i < l->n_unified; i++) {
        const char *k = l->unified[i].key;
        if (cg_unified_ctrl(k) == -2)
            return bad(field, err, xasprintf("unified.%s", k),
                       "'%s' is not a cgroup v2 file name such as memory.high", k);
        for (size_t j = 0; j < ARRAY_SIZE(forbidden); j++)
            if (strcmp(k, forbidden[j]) == 0)
                return bad(field, err, xasprintf("unified.%s", k),
                           "'%s' is managed by the runtime, not a resource", k);
        if (strchr(l->unified[i].value, '\n'))
            return bad(field, err, xasprintf("unified.%s", k), "values are one line");
    }
    return 0;
}

int
sbx_cgroup_limits_check(const struct sbx_cgroup_limits *l, char **field, struct husk_error **err)
{
    int r;
    *field = NULL;
    if ((r = check_memory(&l->memory, field, err)) < 0 ||
        (r = check_cpu(&l->cpu, field, err)) < 0 ||
        (r = range(&l->pids, -1, INT64_MAX, "pids.limit", field, err)) < 0 ||
        (r = check_blkio(&l->blkio, field, err)) < 0 || (r = check_devices(l, field, err)) < 0 ||
        (r = check_unified(l, field, err)) < 0 ||
        (r = range(&l->net_classid, 0, UINT32_MAX, "network.classID", field, err)) < 0)
        return r;
    for (size_t i = 0; i < l->n_hugepages; i++)
        if (!page_size_ok(l->hugepages[i].page_size))
            return bad(field, err, xasprintf("hugepageLimits[%zu].pageSize", i),
                       "'%s' is not a page size such as 2MB or 1GB", l->hugepages[i].page_size);
    for (size_t i = 0; i < l->n_net_prio; i++)
        if (l->net_prio[i].ifname[0] == '\0' || strpbrk(l->net_prio[i].ifname, " \n/"))
            return bad(field, err, xasprintf("network.priorities[%zu].name", i),
                       "'%s' is not an interface name", l->net_prio[i].ifname);
    for (size_t i = 0; i < l->n_rdma; i++)
        if (l->rdma[i].device[0] == '\0' || strpbrk(l->rdma[i].device, " \n"))
            return bad(field, err, xasprintf("rdma.%s", l->rdma[i].device),
                       "'%s' is not an rdma device name", l->rdma[i].device);
    return 0;
}

/* hugetlb.<size>.<suffix> and its .rsvd. twin where the kernel has it; the two versions differ
 * only in the suffix (limit_in_bytes on v1, max on v2). */
int
cg_write_hugepages(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l,
                   const char *suffix, struct husk_error **err)
{
    for (size_t i = 0; i < l->n_hugepages; i++) {
        const struct sbx_cg_hugepage *p = &l->hugepages[i];
        cleanup_free char *file = xasprintf("hugetlb.%s.%s", p->page_size, suffix);
        cleanup_free char *rsvd = xasprintf("hugetlb.%s.rsvd.%s", p->page_size, suffix);
        if (!cg_has(h, file))
            return cg_errf(cg, h, err, 0, "hugepageLimits: page size %s is not supported here",
                           p->page_size);
        int r = cg_writef(cg, h, file, err, "%llu", (unsigned long long)p->limit);
        if (r == 0 && cg_has(h, rsvd))
            r = cg_writef(cg, h, rsvd, err, "%llu", (unsigned long long)p->limit);
        if (r < 0)
            return r;
    }
    return 0;
}
