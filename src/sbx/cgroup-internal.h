/* SPDX-License-Identifier: Apache-2.0 */
/* Inside the cgroup layer: hierarchies, controllers and the v1/v2 backend ops tables. */
#ifndef HUSK_SBX_CGROUP_INTERNAL_H
#define HUSK_SBX_CGROUP_INTERNAL_H

#include <stdarg.h>

#include "husk/cgroup.h"

enum cg_ctrl {
    CG_CPU,
    CG_CPUACCT,
    CG_CPUSET,
    CG_MEMORY,
    CG_DEVICES,
    CG_FREEZER,
    CG_NET_CLS,
    CG_NET_PRIO,
    CG_BLKIO, /* "io" on cgroup v2 */
    CG_PERF_EVENT,
    CG_HUGETLB,
    CG_PIDS,
    CG_RDMA,
    CG_MISC,
    CG_COUNT
};

#define CG_BIT(c) (1u << (c))
/* Kernel features, not controllers, on cgroup2: the freezer (5.2) and eBPF device filters. */
#define CG_V2_CORE  (CG_BIT(CG_FREEZER) | CG_BIT(CG_DEVICES))
#define CG_MAX_HIER 16

const char *cg_ctrl_name(enum cg_ctrl c, bool v2);
/* The controllers a set of limits needs (CG_BIT()s): the one list of limit fields. */
struct sbx_cgroup_limits;
unsigned cg_limits_ctrls(const struct sbx_cgroup_limits *l);
/* "cpu,cpuacct" (v1, sep ',') or "cpu memory" (v2, sep ' ') -> CG_BIT()s. */
unsigned cg_ctrls_from_list(const char *list, bool v2, char sep);
int cg_ctrl_from_name(const char *name, bool v2); /* -1 if unknown */

/* One mounted hierarchy, and the container's cgroup in it. */
struct cg_hier {
    char *dir;      /* relative to the root: "memory", "cpu,cpuacct", "unified"; "." for pure v2 */
    unsigned ctrls; /* CG_BIT()s; on cgroup2 those of its root cgroup.controllers + CG_V2_CORE */
    bool v2;
    int fd;          /* O_RDONLY|O_DIRECTORY fd of the container's cgroup; -1: not joined */
    int created;     /* trailing components of the path this cgroup made here */
    char *self_from; /* sbx_cgroup_enter_self: where the caller was; NULL when not moved */
    bool born_in;    /* the child is born here (it inherits the caller's cgroup) */
    bool parked;     /* joined, its fd closed by sbx_cgroup_park */
};

struct sbx_cgroup {
    struct sbx_cgroup_opts opts;
    enum sbx_cgroup_mode mode;
    int root_fd;
    char *root;
    char *path; /* "/husk/ID": normalised, absolute */
    int owned;
    bool clone_into; /* the kernel has CLONE_INTO_CGROUP (5.7) */
    struct cg_hier h[CG_MAX_HIER];
    size_t n_h;
    int v2; /* index of the cgroup2 hierarchy, -1 without one */
};

/* The hierarchy that holds a controller for this cgroup (v1 first; the freezer prefers cgroup2),
 * or NULL when the host has no such controller. */
struct cg_hier *cg_where(struct sbx_cgroup *cg, enum cg_ctrl c);

/* ---- file access relative to a joined hierarchy; errors name the cgroup and file ---- */

int cg_write(struct sbx_cgroup *cg, struct cg_hier *h, const char *file, const char *value,
             struct husk_error **err);
int cg_writef(struct sbx_cgroup *cg, struct cg_hier *h, const char *file, struct husk_error **err,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* -errno, no error object: callers decide what a missing file means. */
int cg_read(struct cg_hier *h, const char *file, char **out);
int cg_read_u64(struct cg_hier *h, const char *file, uint64_t *out); /* "max" -> UINT64_MAX */
/* "key value" lines (memory.stat, memory.events, cpu.stat): 0 and *out, or -ENOENT. */
int cg_read_keyed(struct cg_hier *h, const char *file, const char *key, uint64_t *out);
bool cg_has(struct cg_hier *h, const char *file);
void cg_warn(struct sbx_cgroup *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Which of the cgroup's hierarchies, for messages: "memory:/husk/x". */
int cg_errf(struct sbx_cgroup *cg, struct cg_hier *h, struct husk_error **err, int errnum,
            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- backends ---- */

struct cgroup_ops {
    const char *name;
    /* Apply one controller's part of the limits; update: the cgroup has processes. */
    int (*apply[CG_COUNT])(struct sbx_cgroup *cg, struct cg_hier *h,
                           const struct sbx_cgroup_limits *l, bool update, struct husk_error **err);
    /* After mkdir of a directory in this hierarchy (dir_fd), parent_fd its parent. */
    int (*prepare)(struct sbx_cgroup *cg, struct cg_hier *h, int parent_fd, int dir_fd,
                   unsigned ctrls, bool is_root_parent, struct husk_error **err);
    /* One `unified` key/value: v2 writes it, v1 converts it or refuses. */
    int (*unified)(struct sbx_cgroup *cg, const struct sbx_cg_kv *kv, bool update,
                   struct husk_error **err);
    int (*freeze)(struct sbx_cgroup *cg, struct cg_hier *h, bool frozen, struct husk_error **err);
    /* The freezer's file and what it takes: [0] thaws, [1] freezes. */
    const char *freeze_file, *freeze_value[2];
    int (*is_frozen)(struct cg_hier *h);
    void (*stats)(struct sbx_cgroup *cg, struct cg_hier *h, enum cg_ctrl c,
                  struct sbx_cgroup_stats *st);
    uint64_t (*oom_kills)(struct cg_hier *h);
    int (*oom_watch)(struct sbx_cgroup *cg, struct cg_hier *h, struct husk_error **err);
};

extern const struct cgroup_ops cgroup_v1_ops;
extern const struct cgroup_ops cgroup_v2_ops;

static inline const struct cgroup_ops *
cg_ops(const struct cg_hier *h)
{
    return h->v2 ? &cgroup_v2_ops : &cgroup_v1_ops;
}

/* Write PID to the hierarchy's cgroup.procs (cgroup-join.c). */
int cg_join_pid(struct sbx_cgroup *cg, struct cg_hier *h, pid_t pid, struct husk_error **err);

/* rmdir the cgroup in every hierarchy it joined, and the ancestors it made (cgroup.c). */
int cg_remove_all(struct sbx_cgroup *cg, struct husk_error **err);

/* The controller a `unified` key belongs to on cgroup2 ("memory.max" -> CG_MEMORY), -1 for
 * the core "cgroup.*" files, -2 for keys that are not controller files. */
int cg_unified_ctrl(const char *key);

/* rdma.max, the same on v1 and v2 (cgroup-v1.c). */
int cg_rdma(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l,
            bool update, struct husk_error **err);

/* cgroup-bpf.c: replace the device filter of a cgroup2 directory with one for these rules. */
int cg_bpf_devices(int dir_fd, const struct sbx_cg_device_rule *rules, size_t n,
                   struct husk_error **err);

/* hugetlb.<size>.<suffix> for each hugepage limit (cgroup-limits.c). */
int cg_write_hugepages(struct sbx_cgroup *cg, struct cg_hier *h, const struct sbx_cgroup_limits *l,
                       const char *suffix, struct husk_error **err);

#endif
