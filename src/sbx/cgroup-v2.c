/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cgroup v2 backend: one tree, controllers enabled through subtree_control, OCI (v1-shaped)
 * values converted as runc and crun convert them:
 *
 *   cpu.shares 2..262144       -> cpu.weight 1 + (shares - 2) * 9999 / 262142
 *   cpu.quota + cpu.period     -> cpu.max "QUOTA PERIOD" ("max" for -1)
 *   memory.limit               -> memory.max;  memory.reservation -> memory.low
 *   memory.swap (memory+swap)  -> memory.swap.max = swap - limit (-1: max)
 *   blockIO.weight 10..1000    -> io.bfq.weight as is, else io.weight 1 + (w - 10) * 9999 / 990
 *   blockIO.throttle*          -> io.max "MAJ:MIN rbps=|wbps=|riops=|wiops=N"
 *   hugepageLimits             -> hugetlb.SIZE.max
 *   devices                    -> an eBPF program attached to the cgroup (cgroup-bpf.c)
 *
 * Without an equivalent: kernel memory, swappiness and disableOOMKiller are skipped with a
 * warning; realtime runtime, leaf weights, net_cls and net_prio are errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "util.h"

static void
fmt_max(char *buf, size_t len, int64_t v)
{
    if (v < 0)
        snprintf(buf, len, "max");
    else
        snprintf(buf, len, "%lld", (long long)v);
}

/* ---- subtree_control ---- */

static int
v2_prepare(struct sbx_cgroup *cg, struct cg_hier *h, int parent_fd, int dir_fd, unsigned ctrls,
           bool is_root_parent, struct husk_error **err)
{
    cleanup_free char *have = NULL, *want = xstrdup("");
    if (ctrls == 0)
        return 0;
    if (read_file_at(parent_fd, "cgroup.subtree_control", &have, NULL) < 0)
        return cg_errf(cg, h, err, errno, "read the parent's cgroup.subtree_control");
    for (int c = 0; c < CG_COUNT; c++) {
        if (!(ctrls & CG_BIT(c)))
            continue;
        const char *name = cg_ctrl_name(c, true);
        bool on = false;
        cleanup_free char *copy = xstrdup(have);
        char *save = NULL;
        for (char *t = strtok_r(copy, " \n", &save); t && !on; t = strtok_r(NULL, " \n", &save))
            on = strcmp(t, name) == 0;
        if (on)
            continue;
        /* The root of the hierarchy is the host's: husk does not change it. */
        if (is_root_parent)
            return husk_err(
                err, 0,
                "cgroup2: controller '%s' is not enabled in %s/%s/cgroup.subtree_control "
                "(husk enables controllers only below the root)",
                name, cg->root, h->dir);
        char *next = xasprintf("%s%s+%s", want, want[0] ? " " : "", name);
        free(want);
        want = next;
    }
    if (want[0] == '\0')
        return 0;
    int r = write_file_at(parent_fd, "cgroup.subtree_control", want); /* one write, all of them */
    if (r < 0)
        return cg_errf(cg, h, err, -r, "enable '%s' in the parent's cgroup.subtree_control", want);
    return 0;
}

/* ---- memory ---- */

/* OCI swap is memory+swap (v1); cgroup2 limits swap alone: swap.max = swap - limit, as runc's
 * ConvertMemorySwapToCgroupV2Value. 0 in *out: leave memory.swap.max alone. */
static int
v2_swap_value(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cg_memory *m, int64_t *out,
              struct husk_error **err)
{
    int64_t limit = m->limit.set ? m->limit.v : 0, swap = m->swap.set ? m->swap.v : 0;
    if (!m->limit.set) { /* an update of swap alone: against the limit in force */
        uint64_t cur = 0;
        if (cg_read_u64(h, "memory.max", &cur) == 0)
            limit = cur == UINT64_MAX ? -1 : (int64_t)cur;
    }
    if (m->limit.set && limit == -1 && !m->swap.set)
        *out = -1; /* unlimited memory, swap not given: both unlimited */
    else if (swap == -1 || swap == 0)
        *out = swap;
    else if (limit <= 0)
        return cg_errf(cg, h, err, 0, "memory.swap: a swap limit needs a memory limit");
    else if (swap < limit)
        return cg_errf(cg, h, err, 0, "memory.swap: %lld is below memory.limit %lld",
                       (long long)swap, (long long)limit);
    else
        *out = swap - limit;
    return 0;
}

static void
v2_memory_ignored(struct sbx_cgroup *cg, const struct sbx_cg_memory *m)
{
    if (m->kernel.set || m->kernel_tcp.set)
        cg_warn(cg, "memory.kernel: cgroup v2 has no separate kernel memory limit (it counts in "
                    "memory.max); ignored");
    if (m->swappiness.set)
        cg_warn(cg, "memory.swappiness: cgroup v2 has no per-cgroup swappiness; ignored");
    if (m->disable_oom_killer.set && m->disable_oom_killer.v)
        cg_warn(cg, "memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer; ignored");
}

static int
v2_memory(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
          struct husk_error **err)
{
    const struct sbx_cg_memory *m = &l->memory;
    char buf[32];
    int r;
    /* cgroup2 accepts a limit below the usage and OOM-kills to meet it: refuse instead. */
    if (m->limit.set && m->limit.v > 0 && (update || m->check_before_update)) {
        uint64_t cur = 0;
        if (cg_read_u64(h, "memory.current", &cur) == 0 && cur > (uint64_t)m->limit.v)
            return cg_errf(cg, h, err, 0,
                           "memory.limit %lld is below the current usage of %llu bytes",
                           (long long)m->limit.v, (unsigned long long)cur);
    }
    int64_t swap = 0;
    if ((r = v2_swap_value(cg, h, m, &swap, err)) < 0)
        return r;
    if (swap != 0 && !cg_has(h, "memory.swap.max") && swap != -1)
        return cg_errf(cg, h, err, 0, "memory.swap: this kernel does not account swap");
    if (swap != 0 && cg_has(h, "memory.swap.max")) {
        fmt_max(buf, sizeof(buf), swap);
        if ((r = cg_write(cg, h, "memory.swap.max", buf, err)) < 0)
            return r;
    }
    if (m->limit.set) {
        fmt_max(buf, sizeof(buf), m->limit.v);
        if ((r = cg_write(cg, h, "memory.max", buf, err)) < 0)
            return r;
    }
    if (m->reservation.set) {
        fmt_max(buf, sizeof(buf), m->reservation.v);
        if ((r = cg_write(cg, h, "memory.low", buf, err)) < 0)
            return r;
    }
    v2_memory_ignored(cg, m);
    return 0;
}

/* ---- cpu, cpuset, pids ---- */

static int
v2_cpu_max(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cg_cpu *c,
           struct husk_error **err)
{
    cleanup_free char *cur = NULL;
    char quota[32] = "max";
    long long period = 100000;
    /* cpu.max holds both: keep the half that is not being changed. */
    if (cg_read(h, "cpu.max", &cur) == 0)
        sscanf(cur, "%31s %lld", quota, &period);
    if (c->quota.set)
        fmt_max(quota, sizeof(quota), c->quota.v);
    if (c->period.set)
        period = c->period.v;
    return cg_writef(cg, h, "cpu.max", err, "%s %lld", quota, period);
}

static int
v2_cpu(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
       struct husk_error **err)
{
    const struct sbx_cg_cpu *c = &l->cpu;
    int r;
    if (c->rt_runtime.set || c->rt_period.set)
        return cg_errf(cg, h, err, 0,
                       "cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime group "
                       "scheduling");
    if (c->shares.set &&
        (r = cg_writef(cg, h, "cpu.weight", err, "%llu",
                       (unsigned long long)sbx_cg_shares_to_weight((uint64_t)c->shares.v))) < 0)
        return r;
    if ((c->quota.set || c->period.set) && (r = v2_cpu_max(cg, h, c, err)) < 0)
        return r;
    if (c->burst.set) {
        if (!cg_has(h, "cpu.max.burst"))
            return cg_errf(cg, h, err, 0, "cpu.burst: this kernel has no cpu.max.burst");
        if ((r = cg_writef(cg, h, "cpu.max.burst", err, "%lld", (long long)c->burst.v)) < 0)
            return r;
    }
    if (c->idle.set) {
        if (!cg_has(h, "cpu.idle"))
            return cg_errf(cg, h, err, 0, "cpu.idle: this kernel has no cpu.idle");
        if ((r = cg_writef(cg, h, "cpu.idle", err, "%lld", (long long)c->idle.v)) < 0)
            return r;
    }
    return 0;
}

static int
v2_cpuset(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
          struct husk_error **err)
{
    int r = 0;
    if (l->cpu.cpus && (r = cg_write(cg, h, "cpuset.cpus", l->cpu.cpus, err)) < 0)
        return r;
    if (l->cpu.mems && (r = cg_write(cg, h, "cpuset.mems", l->cpu.mems, err)) < 0)
        return r;
    return 0;
}

static int
v2_pids(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
        struct husk_error **err)
{
    if (l->pids.v <= 0)
        return cg_write(cg, h, "pids.max", "max", err);
    return cg_writef(cg, h, "pids.max", err, "%lld", (long long)l->pids.v);
}

/* ---- io ---- */

static int
v2_io_weight(struct sbx_cgroup *cg, struct cg_hier *h, const char *dev, int64_t weight,
             struct husk_error **err)
{
    /* BFQ takes the v1 range as is; io.weight needs the conversion. */
    if (cg_has(h, "io.bfq.weight"))
        return cg_writef(cg, h, "io.bfq.weight", err, "%s%lld", dev, (long long)weight);
    if (cg_has(h, "io.weight"))
        return cg_writef(cg, h, "io.weight", err, "%s%llu", dev[0] ? dev : "default ",
                         (unsigned long long)sbx_cg_blkio_to_io_weight((uint64_t)weight));
    return cg_errf(cg, h, err, 0, "blockIO.weight: no io.weight or io.bfq.weight on this host");
}

static int
v2_io(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
      struct husk_error **err)
{
    static const char *const keys[] = {"rbps", "wbps", "riops", "wiops"};
    const struct sbx_cg_blkio *b = &l->blkio;
    int r;
    bool leaf = b->leaf_weight.set;
    for (size_t i = 0; i < b->n_devices; i++)
        leaf = leaf || b->devices[i].leaf_weight.set;
    if (leaf)
        return cg_errf(cg, h, err, 0, "blockIO.leafWeight: cgroup v2 has no leaf weights");
    if (b->weight.set && (r = v2_io_weight(cg, h, "", b->weight.v, err)) < 0)
        return r;
    for (size_t i = 0; i < b->n_devices; i++) {
        char dev[48];
        if (!b->devices[i].weight.set)
            continue;
        snprintf(dev, sizeof(dev), "%lld:%lld ", (long long)b->devices[i].major,
                 (long long)b->devices[i].minor);
        if ((r = v2_io_weight(cg, h, dev, b->devices[i].weight.v, err)) < 0)
            return r;
    }
    for (int k = 0; k < SBX_CG_THROTTLE_COUNT; k++)
        for (size_t i = 0; i < b->n_throttle[k]; i++) {
            const struct sbx_cg_throttle *t = &b->throttle[k][i];
            if ((r = cg_writef(cg, h, "io.max", err, "%lld:%lld %s=%llu", (long long)t->major,
                               (long long)t->minor, keys[k], (unsigned long long)t->rate)) < 0)
                return r;
        }
    return 0;
}

/* ---- hugetlb, devices, unified ---- */

static int
v2_hugetlb(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
           struct husk_error **err)
{
    return cg_write_hugepages(cg, h, l, "max", err);
}

static int
v2_devices(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
           struct husk_error **err)
{
    int r = cg_bpf_devices(h->fd, l->devices, l->n_devices, err);
    return r < 0 ? husk_err_prefix(err, "cgroup '%s': devices: ", cg->path) : 0;
}

static int
v2_unified(struct sbx_cgroup *cg, const struct sbx_cg_kv *kv, bool update, struct husk_error **err)
{
    struct cg_hier *h = &cg->h[cg->v2];
    if (!cg_has(h, kv->key))
        return cg_errf(cg, h, err, 0, "unified '%s': no such cgroup v2 file on this host", kv->key);
    return cg_write(cg, h, kv->key, kv->value, err);
}

/* ---- freezer ---- */

static int
v2_is_frozen(struct cg_hier *h)
{
    uint64_t v = 0;
    int r = cg_read_u64(h, "cgroup.freeze", &v);
    return r < 0 ? r : v == 1;
}

static int
v2_freeze(struct sbx_cgroup *cg, struct cg_hier *h, bool frozen, struct husk_error **err)
{
    int r = cg_write(cg, h, "cgroup.freeze", frozen ? "1" : "0", err);
    if (r < 0)
        return r;
    /* cgroup.events says "frozen 1" once every task stopped. */
    for (int i = 0; i < 2000; i++) {
        uint64_t v = 2;
        if (cg_read_keyed(h, "cgroup.events", "frozen", &v) < 0 || v == (frozen ? 1u : 0u))
            return 0;
        usleep(1000);
    }
    if (frozen)
        cg_write(cg, h, "cgroup.freeze", "0", NULL);
    return cg_errf(cg, h, err, ETIMEDOUT, "cgroup.events did not report frozen %d", frozen);
}

/* ---- stats, OOM ---- */

static void
v2_stats(struct sbx_cgroup *cg, struct cg_hier *h, enum cg_ctrl c, struct sbx_cgroup_stats *st)
{
    uint64_t v = 0;
    switch (c) {
    case CG_CPU:
        if (cg_read_keyed(h, "cpu.stat", "usage_usec", &v) == 0) {
            st->has_cpu = true;
            st->cpu_usage_ns = v * 1000;
        }
        if (cg_read_keyed(h, "cpu.stat", "user_usec", &v) == 0)
            st->cpu_user_ns = v * 1000;
        if (cg_read_keyed(h, "cpu.stat", "system_usec", &v) == 0)
            st->cpu_system_ns = v * 1000;
        cg_read_keyed(h, "cpu.stat", "nr_periods", &st->cpu_periods);
        cg_read_keyed(h, "cpu.stat", "nr_throttled", &st->cpu_throttled_periods);
        if (cg_read_keyed(h, "cpu.stat", "throttled_usec", &v) == 0)
            st->cpu_throttled_ns = v * 1000;
        break;
    case CG_MEMORY:
        st->has_memory = cg_read_u64(h, "memory.current", &st->mem_usage) == 0;
        cg_read_u64(h, "memory.peak", &st->mem_max_usage); /* Linux >= 5.19 */
        cg_read_u64(h, "memory.max", &st->mem_limit);
        cg_read_keyed(h, "memory.events", "max", &st->mem_failcnt);
        cg_read_keyed(h, "memory.events", "oom", &st->oom_events);
        st->has_swap = cg_read_u64(h, "memory.swap.current", &st->swap_usage) == 0;
        cg_read_u64(h, "memory.swap.max", &st->swap_limit);
        break;
    case CG_PIDS:
        st->has_pids = cg_read_u64(h, "pids.current", &st->pids_current) == 0;
        if (cg_read_u64(h, "pids.max", &v) == 0)
            st->pids_limit = v == UINT64_MAX ? 0 : v;
        break;
    default:
        break;
    }
}

static uint64_t
v2_oom_kills(struct cg_hier *h)
{
    uint64_t n = 0;
    cg_read_keyed(h, "memory.events", "oom_kill", &n);
    return n;
}

/* memory.events changes raise an inotify IN_MODIFY. */
static int
v2_oom_watch(struct sbx_cgroup *cg, struct cg_hier *h, struct husk_error **err)
{
    char path[64];
    if (!cg_has(h, "memory.events"))
        return cg_errf(cg, h, err, ENOTSUP, "the memory controller is not enabled");
    cleanup_fd int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    snprintf(path, sizeof(path), "/proc/self/fd/%d/memory.events", h->fd);
    if (fd < 0 || inotify_add_watch(fd, path, IN_MODIFY) < 0)
        return cg_errf(cg, h, err, errno, "watch memory.events");
    return steal_fd(&fd);
}

const struct cgroup_ops cgroup_v2_ops = {
    .name = "v2",
    .apply =
        {
            [CG_MEMORY] = v2_memory,
            [CG_CPU] = v2_cpu,
            [CG_CPUSET] = v2_cpuset,
            [CG_PIDS] = v2_pids,
            [CG_BLKIO] = v2_io,
            [CG_HUGETLB] = v2_hugetlb,
            [CG_RDMA] = cg_rdma,
            [CG_DEVICES] = v2_devices,
        },
    .prepare = v2_prepare,
    .unified = v2_unified,
    .freeze = v2_freeze,
    .freeze_file = "cgroup.freeze",
    .freeze_value = {"0", "1"},
    .is_frozen = v2_is_frozen,
    .stats = v2_stats,
    .oom_kills = v2_oom_kills,
    .oom_watch = v2_oom_watch,
};
