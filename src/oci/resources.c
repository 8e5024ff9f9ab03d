/* SPDX-License-Identifier: Apache-2.0 */
/*
 * linux.cgroupsPath and linux.resources -> struct sbx_cgroup_limits. Every error names the field.
 *
 * As runc, 0 means "not set" for the fields whose Go type cannot tell 0 from absent (memory
 * limits, cpu shares/quota/period/realtime, pids.limit, blockIO.weight, network.classID).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "json-get.h"
#include "oci.h"
#include "util.h"

#define HUSK_CGROUP_PARENT "/husk"

struct field_ctx {
    const struct jctx *c;
    const char *prefix; /* "linux.resources." or "" for `update -r` */
};

static char *
fpath(const struct field_ctx *f, const char *a, const char *b)
{
    return xasprintf("%s%s%s%s", f->prefix, a, b ? "." : "", b ? b : "");
}

/* An optional integer into a sbx_cg_num; zero_unset: 0 counts as absent (runc). */
static int
num(const struct field_ctx *f, json_t *obj, const char *obj_name, const char *key, int64_t min,
    int64_t max, bool zero_unset, struct sbx_cg_num *out, struct husk_error **err)
{
    cleanup_free char *p = fpath(f, obj_name, key);
    int64_t v = 0;
    int r = jget_int(f->c, obj, key, p, false, min, max, &v, err);
    if (r <= 0)
        return r;
    if (!(zero_unset && v == 0))
        *out = (struct sbx_cg_num){true, v};
    return 0;
}

static int
flag(const struct field_ctx *f, json_t *obj, const char *obj_name, const char *key,
     struct sbx_cg_num *out, struct husk_error **err)
{
    cleanup_free char *p = fpath(f, obj_name, key);
    bool b = false;
    int r = jget_bool(f->c, obj, key, p, &b, err);
    if (r > 0)
        *out = (struct sbx_cg_num){true, b};
    return r < 0 ? r : 0;
}

static int
parse_memory(const struct field_ctx *f, json_t *res, struct sbx_cg_memory *m,
             struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "memory", NULL);
    json_t *o = NULL;
    bool check = false;
    int r = jget_object(f->c, res, "memory", p, false, &o, err);
    if (r <= 0)
        return r;
    if ((r = num(f, o, "memory", "limit", -1, INT64_MAX, true, &m->limit, err)) < 0 ||
        (r = num(f, o, "memory", "reservation", -1, INT64_MAX, true, &m->reservation, err)) < 0 ||
        (r = num(f, o, "memory", "swap", -1, INT64_MAX, true, &m->swap, err)) < 0 ||
        (r = num(f, o, "memory", "kernel", -1, INT64_MAX, true, &m->kernel, err)) < 0 ||
        (r = num(f, o, "memory", "kernelTCP", -1, INT64_MAX, true, &m->kernel_tcp, err)) < 0 ||
        (r = num(f, o, "memory", "swappiness", 0, 100, false, &m->swappiness, err)) < 0 ||
        (r = flag(f, o, "memory", "disableOOMKiller", &m->disable_oom_killer, err)) < 0 ||
        (r = flag(f, o, "memory", "useHierarchy", &m->use_hierarchy, err)) < 0)
        return r;
    cleanup_free char *cp = fpath(f, "memory", "checkBeforeUpdate");
    if ((r = jget_bool(f->c, o, "checkBeforeUpdate", cp, &check, err)) < 0)
        return r;
    m->check_before_update = check;
    return 0;
}

static int
parse_cpu(const struct field_ctx *f, json_t *res, struct sbx_cg_cpu *c, struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "cpu", NULL);
    cleanup_free char *cp = fpath(f, "cpu", "cpus"), *mp = fpath(f, "cpu", "mems");
    json_t *o = NULL;
    int r = jget_object(f->c, res, "cpu", p, false, &o, err);
    if (r <= 0)
        return r;
    if ((r = num(f, o, "cpu", "shares", 0, 262144, true, &c->shares, err)) < 0 ||
        (r = num(f, o, "cpu", "quota", -1, INT64_MAX, true, &c->quota, err)) < 0 ||
        (r = num(f, o, "cpu", "period", 0, 1000000, true, &c->period, err)) < 0 ||
        (r = num(f, o, "cpu", "burst", 0, INT64_MAX, false, &c->burst, err)) < 0 ||
        (r = num(f, o, "cpu", "realtimeRuntime", -1, INT64_MAX, true, &c->rt_runtime, err)) < 0 ||
        (r = num(f, o, "cpu", "realtimePeriod", 0, INT64_MAX, true, &c->rt_period, err)) < 0 ||
        (r = num(f, o, "cpu", "idle", 0, 1, false, &c->idle, err)) < 0 ||
        (r = jget_string(f->c, o, "cpus", cp, false, &c->cpus, err)) < 0 ||
        (r = jget_string(f->c, o, "mems", mp, false, &c->mems, err)) < 0)
        return r;
    return 0;
}

static int
parse_major_minor(const struct field_ctx *f, json_t *e, const char *base, int64_t *major,
                  int64_t *minor, struct husk_error **err)
{
    cleanup_free char *ma = fpath(f, base, "major"), *mi = fpath(f, base, "minor");
    int r;
    if ((r = jget_int(f->c, e, "major", ma, true, 0, INT32_MAX, major, err)) < 0 ||
        (r = jget_int(f->c, e, "minor", mi, true, 0, INT32_MAX, minor, err)) < 0)
        return r;
    return 0;
}

static int
parse_throttle(const struct field_ctx *f, json_t *blk, const char *key,
               struct sbx_cg_throttle **out, size_t *n, struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "blockIO", key);
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(f->c, blk, key, p, false, &arr, err);
    if (r <= 0)
        return r;
    *out = xcalloc(json_array_size(arr), sizeof(**out));
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *base = xasprintf("blockIO.%s[%zu]", key, i);
        cleanup_free char *rp = fpath(f, base, "rate");
        struct sbx_cg_throttle *t = &(*out)[(*n)++];
        int64_t rate = 0;
        if ((r = parse_major_minor(f, e, base, &t->major, &t->minor, err)) < 0 ||
            (r = jget_int(f->c, e, "rate", rp, true, 0, INT64_MAX, &rate, err)) < 0)
            return r;
        t->rate = (uint64_t)rate;
    }
    return 0;
}

static int
parse_blkio(const struct field_ctx *f, json_t *res, struct sbx_cg_blkio *b, struct husk_error **err)
{
    static const char *const keys[SBX_CG_THROTTLE_COUNT] = {
        "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
        "throttleWriteIOPSDevice"};
    cleanup_free char *p = fpath(f, "blockIO", NULL), *wp = fpath(f, "blockIO", "weightDevice");
    json_t *o = NULL, *arr = NULL, *e;
    size_t i;
    int r = jget_object(f->c, res, "blockIO", p, false, &o, err);
    if (r <= 0)
        return r;
    if ((r = num(f, o, "blockIO", "weight", 0, 1000, true, &b->weight, err)) < 0 ||
        (r = num(f, o, "blockIO", "leafWeight", 0, 1000, true, &b->leaf_weight, err)) < 0 ||
        (r = jget_array(f->c, o, "weightDevice", wp, false, &arr, err)) < 0)
        return r;
    b->devices = xcalloc(json_array_size(arr), sizeof(*b->devices));
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *base = xasprintf("blockIO.weightDevice[%zu]", i);
        struct sbx_cg_blkio_device *d = &b->devices[b->n_devices++];
        if ((r = parse_major_minor(f, e, base, &d->major, &d->minor, err)) < 0 ||
            (r = num(f, e, base, "weight", 0, 1000, true, &d->weight, err)) < 0 ||
            (r = num(f, e, base, "leafWeight", 0, 1000, true, &d->leaf_weight, err)) < 0)
            return r;
    }
    for (int k = 0; k < SBX_CG_THROTTLE_COUNT; k++)
        if ((r = parse_throttle(f, o, keys[k], &b->throttle[k], &b->n_throttle[k], err)) < 0)
            return r;
    return 0;
}

static int
parse_hugepages(const struct field_ctx *f, json_t *res, struct sbx_cgroup_limits *l,
                struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "hugepageLimits", NULL);
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(f->c, res, "hugepageLimits", p, false, &arr, err);
    if (r <= 0)
        return r;
    l->hugepages = xcalloc(json_array_size(arr), sizeof(*l->hugepages));
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *base = xasprintf("hugepageLimits[%zu]", i);
        cleanup_free char *pp = fpath(f, base, "pageSize"), *lp = fpath(f, base, "limit");
        struct sbx_cg_hugepage *h = &l->hugepages[l->n_hugepages++];
        int64_t limit = 0;
        if ((r = jget_string(f->c, e, "pageSize", pp, true, &h->page_size, err)) < 0 ||
            (r = jget_int(f->c, e, "limit", lp, true, 0, INT64_MAX, &limit, err)) < 0)
            return r;
        h->limit = (uint64_t)limit;
    }
    return 0;
}

static int
parse_network(const struct field_ctx *f, json_t *res, struct sbx_cgroup_limits *l,
              struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "network", NULL), *pp = fpath(f, "network", "priorities");
    json_t *o = NULL, *arr = NULL, *e;
    size_t i;
    int r = jget_object(f->c, res, "network", p, false, &o, err);
    if (r <= 0)
        return r;
    if ((r = num(f, o, "network", "classID", 0, UINT32_MAX, true, &l->net_classid, err)) < 0 ||
        (r = jget_array(f->c, o, "priorities", pp, false, &arr, err)) < 0)
        return r;
    l->net_prio = xcalloc(json_array_size(arr), sizeof(*l->net_prio));
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *base = xasprintf("network.priorities[%zu]", i);
        cleanup_free char *np = fpath(f, base, "name"), *vp = fpath(f, base, "priority");
        struct sbx_cg_net_prio *n = &l->net_prio[l->n_net_prio++];
        int64_t prio = 0;
        if ((r = jget_string(f->c, e, "name", np, true, &n->ifname, err)) < 0 ||
            (r = jget_int(f->c, e, "priority", vp, true, 0, UINT32_MAX, &prio, err)) < 0)
            return r;
        n->priority = (uint32_t)prio;
    }
    return 0;
}

static int
parse_rdma(const struct field_ctx *f, json_t *res, struct sbx_cgroup_limits *l,
           struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "rdma", NULL);
    json_t *o = NULL, *v;
    const char *dev;
    int r = jget_object(f->c, res, "rdma", p, false, &o, err);
    if (r <= 0)
        return r;
    l->rdma = xcalloc(json_object_size(o), sizeof(*l->rdma));
    json_object_foreach(o, dev, v)
    {
        cleanup_free char *base = xasprintf("rdma.%s", dev);
        struct sbx_cg_rdma *d = &l->rdma[l->n_rdma++];
        d->device = xstrdup(dev);
        if ((r = num(f, v, base, "hcaHandles", 0, UINT32_MAX, false, &d->hca_handles, err)) < 0 ||
            (r = num(f, v, base, "hcaObjects", 0, UINT32_MAX, false, &d->hca_objects, err)) < 0)
            return r;
    }
    return 0;
}

static int
parse_unified(const struct field_ctx *f, json_t *res, struct sbx_cgroup_limits *l,
              struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "unified", NULL);
    json_t *o = NULL, *v;
    const char *k;
    int r = jget_object(f->c, res, "unified", p, false, &o, err);
    if (r <= 0)
        return r;
    l->unified = xcalloc(json_object_size(o), sizeof(*l->unified));
    json_object_foreach(o, k, v)
    {
        if (!json_is_string(v)) {
            cleanup_free char *kp = fpath(f, "unified", k);
            return jerr(f->c, kp, err, "expected a string");
        }
        l->unified[l->n_unified].key = xstrdup(k);
        l->unified[l->n_unified++].value = xstrdup(json_string_value(v));
    }
    return 0;
}

static int
parse_device_rule(const struct field_ctx *f, json_t *e, size_t i, struct sbx_cg_device_rule *d,
                  struct husk_error **err)
{
    cleanup_free char *base = xasprintf("devices[%zu]", i);
    cleanup_free char *ap = fpath(f, base, "allow"), *tp = fpath(f, base, "type");
    cleanup_free char *acp = fpath(f, base, "access"), *mjp = fpath(f, base, "major");
    cleanup_free char *mnp = fpath(f, base, "minor");
    cleanup_free char *type = NULL, *access = NULL;
    int r;
    d->major = d->minor = -1;
    if (!json_is_object(e))
        return jerr(f->c, base, err, "expected an object");
    if (!json_is_boolean(json_object_get(e, "allow")))
        return jerr(f->c, ap, err, "is required (true or false)");
    d->allow = json_is_true(json_object_get(e, "allow"));
    if ((r = jget_string(f->c, e, "type", tp, false, &type, err)) < 0 ||
        (r = jget_string(f->c, e, "access", acp, false, &access, err)) < 0 ||
        (r = jget_int(f->c, e, "major", mjp, false, -1, INT32_MAX, &d->major, err)) < 0 ||
        (r = jget_int(f->c, e, "minor", mnp, false, -1, INT32_MAX, &d->minor, err)) < 0)
        return r;
    if (type && (strlen(type) != 1 || !strchr("abc", type[0])))
        return jerr(f->c, tp, err, "'%s' is not one of a, b, c", type);
    d->type = type ? type[0] : 'a';
    if (access &&
        (access[0] == '\0' || strlen(access) > 3 || strspn(access, "rwm") != strlen(access)))
        return jerr(f->c, acp, err, "'%s' is not a combination of r, w and m", access);
    snprintf(d->access, sizeof(d->access), "%s", access ? access : "rwm");
    return 0;
}

static void
add_rule(struct sbx_cgroup_limits *l, size_t *cap, const struct sbx_cg_device_rule *d)
{
    if (l->n_devices == *cap)
        l->devices = xrealloc(l->devices, (*cap = *cap ? *cap * 2 : 16) * sizeof(*l->devices));
    l->devices[l->n_devices++] = *d;
}

/* The config's rules, then runc's default devices, then an allow rule per linux.devices entry
 * (malformed entries are left for config.c to report). */
static int
parse_devices(const struct field_ctx *f, json_t *res, json_t *linux_, struct sbx_cgroup_limits *l,
              struct husk_error **err)
{
    cleanup_free char *p = fpath(f, "devices", NULL);
    json_t *arr = NULL, *e;
    size_t i, cap = 0;
    int r = jget_array(f->c, res, "devices", p, false, &arr, err);
    if (r <= 0)
        return r;
    l->devices_set = true;
    json_array_foreach(arr, i, e)
    {
        struct sbx_cg_device_rule d = {0};
        if ((r = parse_device_rule(f, e, i, &d, err)) < 0)
            return r;
        add_rule(l, &cap, &d);
    }
    if (linux_ == NULL) /* `update -r`: the rules as given */
        return 0;
    for (size_t k = 0; k < sbx_cg_n_default_devices; k++)
        add_rule(l, &cap, &sbx_cg_default_devices[k]);
    json_array_foreach(json_object_get(linux_, "devices"), i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        json_t *ma = json_object_get(e, "major"), *mi = json_object_get(e, "minor");
        if (t == NULL || strlen(t) != 1 || !strchr("cub", t[0]) || !json_is_integer(ma) ||
            !json_is_integer(mi))
            continue;
        struct sbx_cg_device_rule d = {.allow = true,
                                       .type = t[0] == 'b' ? 'b' : 'c',
                                       .major = json_integer_value(ma),
                                       .minor = json_integer_value(mi),
                                       .access = "rwm"};
        add_rule(l, &cap, &d);
    }
    return 0;
}

static int
parse_all(const struct field_ctx *f, json_t *res, json_t *linux_, struct sbx_cgroup_limits *l,
          struct husk_error **err)
{
    int r;
    cleanup_free char *pp = fpath(f, "pids", NULL);
    json_t *pids = NULL;
    if ((r = parse_memory(f, res, &l->memory, err)) < 0 ||
        (r = parse_cpu(f, res, &l->cpu, err)) < 0 ||
        (r = jget_object(f->c, res, "pids", pp, false, &pids, err)) < 0 ||
        (pids && (r = num(f, pids, "pids", "limit", -1, INT64_MAX, true, &l->pids, err)) < 0) ||
        (r = parse_blkio(f, res, &l->blkio, err)) < 0 ||
        (r = parse_hugepages(f, res, l, err)) < 0 || (r = parse_network(f, res, l, err)) < 0 ||
        (r = parse_rdma(f, res, l, err)) < 0 || (r = parse_unified(f, res, l, err)) < 0 ||
        (r = parse_devices(f, res, linux_, l, err)) < 0)
        return r;
    cleanup_free char *field = NULL;
    struct husk_error *e = NULL;
    if (sbx_cgroup_limits_check(l, &field, &e) < 0) {
        cleanup_free char *fp = xasprintf("%s%s", f->prefix, field);
        r = jerr(f->c, fp, err, "%s", e->msg);
        husk_error_free(e);
        return r;
    }
    return 0;
}

int
oci_resources_parse_limits(json_t *res, const char *file, const char *prefix,
                           struct sbx_cgroup_limits *l, struct husk_error **err)
{
    struct jctx c = {.file = file};
    struct field_ctx f = {.c = &c, .prefix = prefix};
    if (!json_is_object(res))
        return husk_err(err, 0, "%s: expected a JSON object (linux.resources)", file);
    int r = parse_all(&f, res, NULL, l, err);
    if (r < 0)
        sbx_cgroup_limits_clear(l);
    return r;
}

int
oci_resources_parse(json_t *linux_, const char *file, struct oci_resources **out,
                    struct husk_error **err)
{
    struct jctx c = {.file = file};
    struct field_ctx f = {.c = &c, .prefix = "linux.resources."};
    cleanup_(oci_resources_freep) struct oci_resources *r = xcalloc(1, sizeof(*r));
    json_t *res = NULL;
    int k;
    *out = NULL;
    if ((k = jget_string(&c, linux_, "cgroupsPath", "linux.cgroupsPath", false, &r->cgroups_path,
                         err)) < 0 ||
        (k = jget_object(&c, linux_, "resources", "linux.resources", false, &res, err)) < 0)
        return k;
    if (r->cgroups_path && r->cgroups_path[0] == '\0') {
        free(r->cgroups_path);
        r->cgroups_path = NULL;
    }
    if (res && (k = parse_all(&f, res, linux_, &r->limits, err)) < 0)
        return k;
    if (r->cgroups_path == NULL && res == NULL)
        return 0;
    r->explicit_ = r->cgroups_path != NULL || sbx_cgroup_limits_any(&r->limits);
    *out = steal_ptr(&r);
    return 0;
}

char *
oci_resources_cgroup_path(const struct oci_resources *r, const char *id)
{
    const char *p = r ? r->cgroups_path : NULL;
    if (p == NULL)
        return xasprintf(HUSK_CGROUP_PARENT "/%s", id);
    /* Relative paths are relative to husk's parent (the spec leaves the place to the runtime;
     * runc takes its own cgroup, which may be anyone's). */
    if (p[0] != '/')
        return xasprintf(HUSK_CGROUP_PARENT "/%s", p);
    return xstrdup(p);
}

void
oci_resources_free(struct oci_resources *r)
{
    if (r == NULL)
        return;
    sbx_cgroup_limits_clear(&r->limits);
    free(r->cgroups_path);
    free(r);
}

void
oci_resources_freep(struct oci_resources **r)
{
    oci_resources_free(*r);
    *r = NULL;
}
