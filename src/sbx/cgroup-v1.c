/* SPDX-License-Identifier: Apache-2.0 */
/* The cgroup v1 backend: one hierarchy per controller (or group), OCI values written as they are.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "util.h"

static int
write_num(struct sbx_cgroup *cg, struct cg_hier *h, const char *file, const struct sbx_cg_num *n,
          struct husk_error **err)
{
    if (!n->set)
        return 0;
    return cg_writef(cg, h, file, err, "%lld", (long long)n->v);
}

/* ---- memory ---- */

static int
v1_memory_limit(struct sbx_cgroup *cg, struct cg_hier *h, int64_t limit, struct husk_error **err)
{
    struct husk_error *e = NULL;
    int r = cg_writef(cg, h, "memory.limit_in_bytes", &e, "%lld", (long long)limit);
    if (r == -EBUSY) {
        uint64_t usage = 0;
        cg_read_u64(h, "memory.usage_in_bytes", &usage);
        husk_error_free(e);
        return cg_errf(cg, h, err, 0,
                       "memory.limit %lld is below the current usage of %llu bytes, and the "
                       "kernel could not reclaim enough",
                       (long long)limit, (unsigned long long)usage);
    }
    if (r < 0 && err && *err == NULL)
        *err = e;
    else
        husk_error_free(e);
    return r;
}

static int
v1_memory_swap(struct sbx_cgroup *cg, struct cg_hier *h, int64_t swap, struct husk_error **err)
{
    if (!cg_has(h, "memory.memsw.limit_in_bytes")) {
        if (swap == -1)
            return 0; /* no swap accounting: unlimited is all there is */
        return cg_errf(cg, h, err, 0,
                       "memory.swap: this kernel does not account swap "
                       "(no memory.memsw.limit_in_bytes; boot with swapaccount=1)");
    }
    return cg_writef(cg, h, "memory.memsw.limit_in_bytes", err, "%lld", (long long)swap);
}

/* memsw must stay >= the limit at every step, so the order of the two writes depends on
 * whether the limits grow or shrink (as runc). -1 memory with no swap given: both unlimited. */
static int
v1_memory_and_swap(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cg_memory *m,
                   struct husk_error **err)
{
    struct sbx_cg_num limit = m->limit, swap = m->swap;
    if (limit.set && limit.v == -1 && !swap.set && cg_has(h, "memory.memsw.limit_in_bytes"))
        swap = (struct sbx_cg_num){true, -1};
    if (limit.set && swap.set) {
        uint64_t cur = 0;
        cg_read_u64(h, "memory.limit_in_bytes", &cur);
        if (swap.v == -1 || cur < (uint64_t)swap.v) {
            int r = v1_memory_swap(cg, h, swap.v, err);
            return r < 0 ? r : v1_memory_limit(cg, h, limit.v, err);
        }
        int r = v1_memory_limit(cg, h, limit.v, err);
        return r < 0 ? r : v1_memory_swap(cg, h, swap.v, err);
    }
    if (limit.set)
        return v1_memory_limit(cg, h, limit.v, err);
    if (swap.set)
        return v1_memory_swap(cg, h, swap.v, err);
    return 0;
}

/* Kernel memory limits went away in 5.16 (writes fail) and the files later: skipped, noted. */
static int
v1_kmem(struct sbx_cgroup *cg, struct cg_hier *h, const char *file, const char *field,
        const struct sbx_cg_num *n, struct husk_error **err)
{
    if (!n->set)
        return 0;
    if (!cg_has(h, file)) {
        cg_warn(cg, "%s: this kernel has no %s; ignored", field, file);
        return 0;
    }
    struct husk_error *e = NULL;
    int r = cg_writef(cg, h, file, &e, "%lld", (long long)n->v);
    husk_error_free(e);
    if (r == -EOPNOTSUPP || r == -524 /* ENOTSUPP */ || r == -EINVAL) {
        cg_warn(cg, "%s: this kernel no longer limits kernel memory; ignored", field);
        return 0;
    }
    return r < 0 ? cg_errf(cg, h, err, -r, "write %lld to %s", (long long)n->v, file) : 0;
}

static int
v1_memory(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
          struct husk_error **err)
{
    const struct sbx_cg_memory *m = &l->memory;
    int r;
    if ((r = write_num(cg, h, "memory.use_hierarchy", &m->use_hierarchy, err)) < 0 ||
        (r = v1_memory_and_swap(cg, h, m, err)) < 0 ||
        (r = write_num(cg, h, "memory.soft_limit_in_bytes", &m->reservation, err)) < 0 ||
        (r = write_num(cg, h, "memory.swappiness", &m->swappiness, err)) < 0 ||
        (r = write_num(cg, h, "memory.oom_control", &m->disable_oom_killer, err)) < 0 ||
        (r = v1_kmem(cg, h, "memory.kmem.limit_in_bytes", "memory.kernel", &m->kernel, err)) < 0 ||
        (r = v1_kmem(cg, h, "memory.kmem.tcp.limit_in_bytes", "memory.kernelTCP", &m->kernel_tcp,
                     err)) < 0)
        return r;
    return 0;
}

/* ---- cpu, cpuset ---- */

/* A group's realtime runtime must fit in its parent's: raise the ancestors on our path first
 * (top down), never the root of the hierarchy. */
static int
v1_rt_ancestors(struct sbx_cgroup *cg, struct cg_hier *h, int64_t runtime, struct husk_error **err)
{
    cleanup_fd int cur = openat(cg->root_fd, h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_free char *copy = xstrdup(cg->path + 1);
    char *slash = strrchr(copy, '/');
    if (slash == NULL || cur < 0)
        return 0;
    *slash = '\0';
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        int next = openat(cur, t, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return cg_errf(cg, h, err, errno, "open ancestor '%s'", t);
        close(cur);
        cur = next;
        struct cg_hier a = {.dir = h->dir, .fd = cur};
        uint64_t have = 0;
        if (cg_read_u64(&a, "cpu.rt_runtime_us", &have) == 0 && have < (uint64_t)runtime &&
            cg_writef(cg, &a, "cpu.rt_runtime_us", err, "%lld", (long long)runtime) < 0)
            return husk_err_prefix(err, "cpu.realtimeRuntime: raise ancestor '%s': ", t);
    }
    return 0;
}

static int
v1_cpu(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
       struct husk_error **err)
{
    const struct sbx_cg_cpu *c = &l->cpu;
    int r;
    if ((r = write_num(cg, h, "cpu.shares", &c->shares, err)) < 0 ||
        (r = write_num(cg, h, "cpu.cfs_period_us", &c->period, err)) < 0 ||
        (r = write_num(cg, h, "cpu.cfs_quota_us", &c->quota, err)) < 0)
        return r;
    if (c->burst.set && !cg_has(h, "cpu.cfs_burst_us"))
        return cg_errf(cg, h, err, 0, "cpu.burst: this kernel has no cpu.cfs_burst_us");
    if (c->idle.set && !cg_has(h, "cpu.idle"))
        return cg_errf(cg, h, err, 0, "cpu.idle: this kernel has no cpu.idle");
    if ((r = write_num(cg, h, "cpu.cfs_burst_us", &c->burst, err)) < 0 ||
        (r = write_num(cg, h, "cpu.idle", &c->idle, err)) < 0)
        return r;
    if ((c->rt_period.set || c->rt_runtime.set) && !cg_has(h, "cpu.rt_runtime_us"))
        return cg_errf(cg, h, err, 0,
                       "cpu.realtimeRuntime: this kernel has no realtime group scheduling");
    if (c->rt_runtime.set && c->rt_runtime.v > 0 &&
        (r = v1_rt_ancestors(cg, h, c->rt_runtime.v, err)) < 0)
        return r;
    if ((r = write_num(cg, h, "cpu.rt_period_us", &c->rt_period, err)) < 0 ||
        (r = write_num(cg, h, "cpu.rt_runtime_us", &c->rt_runtime, err)) < 0)
        return r;
    return 0;
}

static int
v1_cpuset(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
          struct husk_error **err)
{
    int r = 0;
    if (l->cpu.cpus && (r = cg_write(cg, h, "cpuset.cpus", l->cpu.cpus, err)) < 0)
        return r;
    if (l->cpu.mems && (r = cg_write(cg, h, "cpuset.mems", l->cpu.mems, err)) < 0)
        return r;
    return 0;
}

/* A new v1 cpuset starts with no cpus and no mems, and takes no task until it has both. */
static int
v1_prepare(struct sbx_cgroup *cg, struct cg_hier *h, int parent_fd, int dir_fd, unsigned ctrls,
           bool is_root_parent, struct husk_error **err)
{
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    if (!(h->ctrls & CG_BIT(CG_CPUSET)))
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        cleanup_free char *mine = NULL, *parent = NULL;
        if (read_file_at(dir_fd, files[i], &mine, NULL) < 0 || strspn(mine, " \n") != strlen(mine))
            continue;
        if (read_file_at(parent_fd, files[i], &parent, NULL) < 0)
            continue;
        int r = write_file_at(dir_fd, files[i], parent);
        if (r < 0)
            return cg_errf(cg, h, err, -r, "copy %s from the parent", files[i]);
    }
    return 0;
}

/* ---- pids, blkio, hugetlb, network, rdma ---- */

static int
v1_pids(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
        struct husk_error **err)
{
    if (l->pids.v <= 0)
        return cg_write(cg, h, "pids.max", "max", err);
    return cg_writef(cg, h, "pids.max", err, "%lld", (long long)l->pids.v);
}

static int
v1_blkio_devices(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cg_blkio *b,
                 const char *weight_file, struct husk_error **err)
{
    static const char *const throttle_files[] = {
        "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
        "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"};
    cleanup_free char *wdev = xasprintf("%s_device", weight_file ? weight_file : "blkio.weight");
    int r;
    for (size_t i = 0; i < b->n_devices; i++) {
        const struct sbx_cg_blkio_device *d = &b->devices[i];
        if (d->weight.set && (r = cg_writef(cg, h, wdev, err, "%lld:%lld %lld", (long long)d->major,
                                            (long long)d->minor, (long long)d->weight.v)) < 0)
            return r;
        if (d->leaf_weight.set &&
            (r = cg_writef(cg, h, "blkio.leaf_weight_device", err, "%lld:%lld %lld",
                           (long long)d->major, (long long)d->minor, (long long)d->leaf_weight.v)) <
                0)
            return r;
    }
    for (int k = 0; k < SBX_CG_THROTTLE_COUNT; k++)
        for (size_t i = 0; i < b->n_throttle[k]; i++) {
            const struct sbx_cg_throttle *t = &b->throttle[k][i];
            if ((r = cg_writef(cg, h, throttle_files[k], err, "%lld:%lld %llu", (long long)t->major,
                               (long long)t->minor, (unsigned long long)t->rate)) < 0)
                return r;
        }
    return 0;
}

static int
v1_blkio(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
         struct husk_error **err)
{
    const struct sbx_cg_blkio *b = &l->blkio;
    /* CFQ's blkio.weight left with 5.0; BFQ has blkio.bfq.weight with the same range. */
    const char *weight_file = cg_has(h, "blkio.weight")       ? "blkio.weight"
                              : cg_has(h, "blkio.bfq.weight") ? "blkio.bfq.weight"
                                                              : NULL;
    bool any_weight = b->weight.set;
    for (size_t i = 0; i < b->n_devices; i++)
        any_weight = any_weight || b->devices[i].weight.set;
    if (any_weight && weight_file == NULL)
        return cg_errf(cg, h, err, 0,
                       "blockIO.weight: no blkio.weight or blkio.bfq.weight (weights need the "
                       "BFQ I/O scheduler)");
    bool any_leaf = b->leaf_weight.set;
    for (size_t i = 0; i < b->n_devices; i++)
        any_leaf = any_leaf || b->devices[i].leaf_weight.set;
    if (any_leaf && !cg_has(h, "blkio.leaf_weight"))
        return cg_errf(cg, h, err, 0,
                       "blockIO.leafWeight: this kernel has no blkio.leaf_weight (CFQ only)");
    int r;
    if ((b->weight.set && (r = write_num(cg, h, weight_file, &b->weight, err)) < 0) ||
        (r = write_num(cg, h, "blkio.leaf_weight", &b->leaf_weight, err)) < 0)
        return r;
    return v1_blkio_devices(cg, h, b, weight_file, err);
}

static int
v1_hugetlb(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
           struct husk_error **err)
{
    return cg_write_hugepages(cg, h, l, "limit_in_bytes", err);
}

static int
v1_net_cls(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
           struct husk_error **err)
{
    return write_num(cg, h, "net_cls.classid", &l->net_classid, err);
}

static int
v1_net_prio(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l,
            bool update, struct husk_error **err)
{
    for (size_t i = 0; i < l->n_net_prio; i++) {
        int r = cg_writef(cg, h, "net_prio.ifpriomap", err, "%s %u", l->net_prio[i].ifname,
                          l->net_prio[i].priority);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Shared with v2: rdma.max has the same format in both. */
int
cg_rdma(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
        struct husk_error **err)
{
    for (size_t i = 0; i < l->n_rdma; i++) {
        const struct sbx_cg_rdma *d = &l->rdma[i];
        char handles[40] = "", objects[40] = "";
        if (d->hca_handles.set)
            snprintf(handles, sizeof(handles), " hca_handle=%lld", (long long)d->hca_handles.v);
        if (d->hca_objects.set)
            snprintf(objects, sizeof(objects), " hca_object=%lld", (long long)d->hca_objects.v);
        if (handles[0] == '\0' && objects[0] == '\0')
            continue;
        int r = cg_writef(cg, h, "rdma.max", err, "%s%s%s", d->device, handles, objects);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- devices ---- */

static void
format_rule(const struct sbx_cg_device_rule *d, char *buf, size_t len)
{
    char ma[24] = "*", mi[24] = "*";
    if (d->type == 'a') {
        snprintf(buf, len, "a");
        return;
    }
    if (d->major >= 0)
        snprintf(ma, sizeof(ma), "%lld", (long long)d->major);
    if (d->minor >= 0)
        snprintf(mi, sizeof(mi), "%lld", (long long)d->minor);
    snprintf(buf, len, "%c %s:%s %s", d->type, ma, mi, d->access);
}

/* Reset to deny-all, then replay the rules in order: the kernel's exception list then holds the
 * OCI semantics (the last matching rule wins). Each write(2) is one rule: two fds serve all. */
static int
v1_devices(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l, bool update,
           struct husk_error **err)
{
    cleanup_fd int allow = openat(h->fd, "devices.allow", O_WRONLY | O_CLOEXEC);
    cleanup_fd int deny = openat(h->fd, "devices.deny", O_WRONLY | O_CLOEXEC);
    if (allow < 0 || deny < 0)
        return cg_errf(cg, h, err, errno, "open devices.allow and devices.deny");
    if (write(deny, "a", 1) < 0)
        return cg_errf(cg, h, err, errno, "write 'a' to devices.deny");
    for (size_t i = 0; i < l->n_devices; i++) {
        char rule[80];
        format_rule(&l->devices[i], rule, sizeof(rule));
        if (write(l->devices[i].allow ? allow : deny, rule, strlen(rule)) < 0)
            return cg_errf(cg, h, err, errno, "write '%s' to devices.%s", rule,
                           l->devices[i].allow ? "allow" : "deny");
    }
    return 0;
}

/* ---- unified keys on a v1 controller: converted where a v1 file means the same ---- */

static int
parse_max(const char *s, int64_t *out)
{
    if (strcmp(s, "max") == 0) {
        *out = -1;
        return 0;
    }
    uint64_t v;
    if (parse_u64(s, &v) < 0 || v > INT64_MAX)
        return -EINVAL;
    *out = (int64_t)v;
    return 0;
}

static int
v1_unified(struct sbx_cgroup *cg, const struct sbx_cg_kv *kv, bool update, struct husk_error **err)
{
    struct cg_hier *h = cg_where(cg, (enum cg_ctrl)cg_unified_ctrl(kv->key));
    const char *k = kv->key, *v = kv->value;
    int64_t n = 0, p = 0;
    char q[32] = "";

    if (strcmp(k, "memory.max") == 0 || strcmp(k, "memory.low") == 0 ||
        strcmp(k, "pids.max") == 0) {
        if (parse_max(v, &n) < 0)
            return husk_err(err, 0, "unified '%s': '%s' is not a number or max", k, v);
        if (strcmp(k, "pids.max") == 0)
            return cg_write(cg, h, "pids.max", v, err);
        const char *file =
            strcmp(k, "memory.max") == 0 ? "memory.limit_in_bytes" : "memory.soft_limit_in_bytes";
        return cg_writef(cg, h, file, err, "%lld", (long long)n);
    }
    if (strcmp(k, "cpu.weight") == 0) {
        if (parse_max(v, &n) < 0 || n < 1 || n > 10000)
            return husk_err(err, 0, "unified '%s': '%s' is not a weight in [1, 10000]", k, v);
        return cg_writef(cg, h, "cpu.shares", err, "%llu",
                         (unsigned long long)sbx_cg_weight_to_shares((uint64_t)n));
    }
    if (strcmp(k, "cpu.max") == 0) {
        int fields = sscanf(v, "%31s %lld", q, (long long *)&p);
        if (fields < 1 || parse_max(q, &n) < 0 || (fields == 2 && p <= 0))
            return husk_err(err, 0, "unified '%s': '%s' is not \"QUOTA|max [PERIOD]\"", k, v);
        int r = fields == 2 ? cg_writef(cg, h, "cpu.cfs_period_us", err, "%lld", (long long)p) : 0;
        return r < 0 ? r : cg_writef(cg, h, "cpu.cfs_quota_us", err, "%lld", (long long)n);
    }
    if (strcmp(k, "cpuset.cpus") == 0 || strcmp(k, "cpuset.mems") == 0)
        return cg_write(cg, h, k, v, err);
    if (strcmp(k, "io.weight") == 0) {
        const char *w = str_has_prefix(v, "default ") ? v + 8 : v;
        const char *file = cg_has(h, "blkio.weight") ? "blkio.weight" : "blkio.bfq.weight";
        if (parse_max(w, &n) < 0 || n < 1 || n > 10000)
            return husk_err(err, 0, "unified '%s': '%s' is not a weight in [1, 10000]", k, v);
        return cg_writef(cg, h, file, err, "%llu",
                         (unsigned long long)sbx_cg_io_to_blkio_weight((uint64_t)n));
    }
    return husk_err(err, 0,
                    "unified '%s': controller '%s' is on cgroup v1 on this host, and the key "
                    "has no v1 equivalent",
                    k, cg_ctrl_name((enum cg_ctrl)cg_unified_ctrl(k), true));
}

/* ---- freezer ---- */

static int
v1_is_frozen(struct cg_hier *h)
{
    cleanup_free char *s = NULL;
    int r = cg_read(h, "freezer.state", &s);
    if (r < 0)
        return r;
    return strcmp(s, "THAWED") != 0;
}

static int
v1_freeze(struct sbx_cgroup *cg, struct cg_hier *h, bool frozen, struct husk_error **err)
{
    const char *want = frozen ? "FROZEN" : "THAWED";
    for (int i = 0; i < 2000; i++) {
        /* A task stuck in FREEZING (vfork, uninterruptible sleep) is retried by thawing and
         * freezing again, as runc does. */
        if (i % 100 == 0) {
            if (frozen && i > 0)
                cg_write(cg, h, "freezer.state", "THAWED", NULL);
            int r = cg_write(cg, h, "freezer.state", want, err);
            if (r < 0)
                return r;
        }
        cleanup_free char *s = NULL;
        if (cg_read(h, "freezer.state", &s) == 0 && strcmp(s, want) == 0)
            return 0;
        usleep(1000);
    }
    if (frozen)
        cg_write(cg, h, "freezer.state", "THAWED", NULL);
    return cg_errf(cg, h, err, ETIMEDOUT, "freezer.state did not become %s", want);
}

/* ---- stats, OOM ---- */

static void
v1_stats(struct sbx_cgroup *cg, struct cg_hier *h, enum cg_ctrl c, struct sbx_cgroup_stats *st)
{
    uint64_t v = 0;
    switch (c) {
    case CG_CPU:
        cg_read_keyed(h, "cpu.stat", "nr_periods", &st->cpu_periods);
        cg_read_keyed(h, "cpu.stat", "nr_throttled", &st->cpu_throttled_periods);
        cg_read_keyed(h, "cpu.stat", "throttled_time", &st->cpu_throttled_ns);
        break;
    case CG_CPUACCT:
        if (cg_read_u64(h, "cpuacct.usage", &st->cpu_usage_ns) == 0)
            st->has_cpu = true;
        /* cpuacct.stat counts USER_HZ (100/s) ticks. */
        if (cg_read_keyed(h, "cpuacct.stat", "user", &v) == 0)
            st->cpu_user_ns = v * 10000000ull;
        if (cg_read_keyed(h, "cpuacct.stat", "system", &v) == 0)
            st->cpu_system_ns = v * 10000000ull;
        break;
    case CG_MEMORY:
        st->has_memory = cg_read_u64(h, "memory.usage_in_bytes", &st->mem_usage) == 0;
        cg_read_u64(h, "memory.max_usage_in_bytes", &st->mem_max_usage);
        cg_read_u64(h, "memory.limit_in_bytes", &st->mem_limit);
        cg_read_u64(h, "memory.failcnt", &st->mem_failcnt);
        /* v1 reports memory+swap, as runc's stats do. */
        st->has_swap = cg_read_u64(h, "memory.memsw.usage_in_bytes", &st->swap_usage) == 0;
        cg_read_u64(h, "memory.memsw.limit_in_bytes", &st->swap_limit);
        cg_read_keyed(h, "memory.oom_control", "oom_kill", &st->oom_events);
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
v1_oom_kills(struct cg_hier *h)
{
    uint64_t n = 0;
    cg_read_keyed(h, "memory.oom_control", "oom_kill", &n); /* Linux >= 4.13 */
    return n;
}

/* An eventfd the memory controller signals on each OOM (and when the cgroup goes away). */
static int
v1_oom_watch(struct sbx_cgroup *cg, struct cg_hier *h, struct husk_error **err)
{
    cleanup_fd int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cleanup_fd int ofd = openat(h->fd, "memory.oom_control", O_RDONLY | O_CLOEXEC);
    if (efd < 0 || ofd < 0)
        return cg_errf(cg, h, err, errno, "set up OOM notification");
    int r = cg_writef(cg, h, "cgroup.event_control", err, "%d %d", efd, ofd);
    return r < 0 ? r : steal_fd(&efd);
}

const struct cgroup_ops cgroup_v1_ops = {
    .name = "v1",
    .apply =
        {
            [CG_MEMORY] = v1_memory,
            [CG_CPU] = v1_cpu,
            [CG_CPUSET] = v1_cpuset,
            [CG_PIDS] = v1_pids,
            [CG_BLKIO] = v1_blkio,
            [CG_HUGETLB] = v1_hugetlb,
            [CG_NET_CLS] = v1_net_cls,
            [CG_NET_PRIO] = v1_net_prio,
            [CG_RDMA] = cg_rdma,
            [CG_DEVICES] = v1_devices,
        },
    .prepare = v1_prepare,
    .unified = v1_unified,
    .freeze = v1_freeze,
    .freeze_file = "freezer.state",
    .freeze_value = {"THAWED", "FROZEN"},
    .is_frozen = v1_is_frozen,
    .stats = v1_stats,
    .oom_kills = v1_oom_kills,
    .oom_watch = v1_oom_watch,
};
