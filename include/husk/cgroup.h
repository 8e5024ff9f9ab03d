/* SPDX-License-Identifier: Apache-2.0 */
/* Resource control: one container's cgroup on cgroup v1, v2 and hybrid hosts, in plain structs. */
#ifndef HUSK_CGROUP_H
#define HUSK_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "husk/error.h"

/*
 * Units follow the OCI runtime spec (bytes, microseconds, cgroup v1 ranges such as cpu shares
 * 2..262144 and blkio weight 10..1000); the v2 backend converts them (see cgroup-v2.c).
 * A zero-initialised struct asks for nothing.
 */

/* An optional number: `set` false means "leave as is". */
struct sbx_cg_num {
    bool set;
    int64_t v;
};

struct sbx_cg_memory {
    struct sbx_cg_num limit;       /* bytes; -1: unlimited */
    struct sbx_cg_num reservation; /* soft limit (v2: memory.low) */
    struct sbx_cg_num swap;        /* memory + swap, as v1's memsw; -1: unlimited */
    struct sbx_cg_num kernel, kernel_tcp;
    struct sbx_cg_num swappiness;                        /* 0..100 */
    struct sbx_cg_num disable_oom_killer, use_hierarchy; /* 0 or 1 */
    bool check_before_update; /* refuse a limit below the current usage (always done by update) */
};

struct sbx_cg_cpu {
    struct sbx_cg_num shares;                /* 2..262144 (v2: converted to cpu.weight) */
    struct sbx_cg_num quota, period;         /* microseconds; quota -1: no limit */
    struct sbx_cg_num burst;                 /* microseconds */
    struct sbx_cg_num rt_runtime, rt_period; /* v1 only */
    struct sbx_cg_num idle;                  /* 0 or 1 */
    char *cpus, *mems;                       /* cpuset lists "0-3,5"; NULL: leave as is */
};

struct sbx_cg_blkio_device {
    int64_t major, minor;
    struct sbx_cg_num weight, leaf_weight;
};

struct sbx_cg_throttle {
    int64_t major, minor;
    uint64_t rate;
};

enum sbx_cg_throttle_kind {
    SBX_CG_READ_BPS,
    SBX_CG_WRITE_BPS,
    SBX_CG_READ_IOPS,
    SBX_CG_WRITE_IOPS,
    SBX_CG_THROTTLE_COUNT
};

struct sbx_cg_blkio {
    struct sbx_cg_num weight, leaf_weight; /* 10..1000 */
    struct sbx_cg_blkio_device *devices;
    size_t n_devices;
    struct sbx_cg_throttle *throttle[SBX_CG_THROTTLE_COUNT];
    size_t n_throttle[SBX_CG_THROTTLE_COUNT];
};

struct sbx_cg_hugepage {
    char *page_size; /* "2MB", "1GB", as the hugetlb file names spell it */
    uint64_t limit;  /* bytes */
};

struct sbx_cg_net_prio {
    char *ifname;
    uint32_t priority;
};

struct sbx_cg_rdma {
    char *device;
    struct sbx_cg_num hca_handles, hca_objects;
};

/* One device cgroup rule; rules are evaluated in order and the last match wins. */
struct sbx_cg_device_rule {
    bool allow;
    char type;            /* 'a' (all), 'c' or 'b' */
    int64_t major, minor; /* -1: any */
    char access[4];       /* subset of "rwm" */
};

struct sbx_cg_kv {
    char *key, *value;
};

struct sbx_cgroup_limits {
    struct sbx_cg_memory memory;
    struct sbx_cg_cpu cpu;
    struct sbx_cg_num pids; /* <= 0: unlimited, as runc */
    struct sbx_cg_blkio blkio;
    struct sbx_cg_hugepage *hugepages;
    size_t n_hugepages;
    struct sbx_cg_num net_classid;
    struct sbx_cg_net_prio *net_prio;
    size_t n_net_prio;
    struct sbx_cg_rdma *rdma;
    size_t n_rdma;
    /* When set, the rules below replace the cgroup's device access; default deny. */
    bool devices_set;
    struct sbx_cg_device_rule *devices;
    size_t n_devices;
    struct sbx_cg_kv *unified; /* cgroup v2 file -> value */
    size_t n_unified;
};

/* Frees what the struct points to (not the struct). */
void sbx_cgroup_limits_clear(struct sbx_cgroup_limits *l);
/* True when anything but device rules is asked for. */
bool sbx_cgroup_limits_any(const struct sbx_cgroup_limits *l);
/* Check values and their relations before anything is written. On error *field names the
 * offending item as the OCI spec spells it under linux.resources ("memory.swap"); caller frees. */
int sbx_cgroup_limits_check(const struct sbx_cgroup_limits *l, char **field,
                            struct husk_error **err);

/* The device nodes every container may use (runc's list): append after the config's rules. */
extern const struct sbx_cg_device_rule sbx_cg_default_devices[];
extern const size_t sbx_cg_n_default_devices;

/* v1 <-> v2 conversions, as runc and crun do them. */
uint64_t sbx_cg_shares_to_weight(uint64_t shares);
uint64_t sbx_cg_weight_to_shares(uint64_t weight);
uint64_t sbx_cg_blkio_to_io_weight(uint64_t weight);
uint64_t sbx_cg_io_to_blkio_weight(uint64_t weight);

enum sbx_cgroup_mode {
    SBX_CGROUP_V1 = 1, /* every controller on a v1 hierarchy */
    SBX_CGROUP_HYBRID, /* v1 controllers, plus cgroup2 at ROOT/unified */
    SBX_CGROUP_V2,     /* cgroup2 at ROOT */
};

const char *sbx_cgroup_mode_name(enum sbx_cgroup_mode m);

struct sbx_cgroup_opts {
    const char *root; /* where the hierarchies are mounted; NULL: /sys/fs/cgroup */
    /* Told about settings the kernel cannot honour and that are skipped (kernel memory, ...). */
    void (*warn)(void *data, const char *msg);
    void *warn_data;
};

/* Detect the host layout: pure v2, pure v1 or hybrid. */
int sbx_cgroup_detect(const struct sbx_cgroup_opts *o, enum sbx_cgroup_mode *mode,
                      struct husk_error **err);

/* One container's cgroup: the same path in every hierarchy it uses. */
struct sbx_cgroup;

/*
 * Create PATH (absolute, "/husk/ID") in the hierarchies the limits need, plus one to track the
 * processes (cgroup2 when mounted, else the v1 freezer), and apply the limits. An existing leaf
 * is used only when empty. Fails with -EACCES (or -EPERM, -EROFS) when we may not manage
 * cgroups: the caller decides whether that is fatal (rootless).
 */
int sbx_cgroup_create(const struct sbx_cgroup_opts *o, const char *path,
                      const struct sbx_cgroup_limits *l, struct sbx_cgroup **out,
                      struct husk_error **err);
/* An existing cgroup made by sbx_cgroup_create (see sbx_cgroup_owned). */
int sbx_cgroup_open(const struct sbx_cgroup_opts *o, const char *path, int owned,
                    struct sbx_cgroup **out, struct husk_error **err);
/* Park: close the cgroup's directory fds (it stays as it is; the object keeps its paths), for a
 * caller that holds many idle sandboxes. Every call but sbx_cgroup_memory_peak_fd and
 * sbx_cgroup_free needs sbx_cgroup_unpark first, which opens them again. */
void sbx_cgroup_park(struct sbx_cgroup *cg);
int sbx_cgroup_unpark(struct sbx_cgroup *cg, struct husk_error **err);
void sbx_cgroup_free(struct sbx_cgroup *cg);
void sbx_cgroup_freep(struct sbx_cgroup **cg);

const char *sbx_cgroup_path(const struct sbx_cgroup *cg);
/* How many trailing path components the cgroup made (removed again by destroy). */
int sbx_cgroup_owned(const struct sbx_cgroup *cg);
enum sbx_cgroup_mode sbx_cgroup_get_mode(const struct sbx_cgroup *cg);
/* The hierarchies it lives in, "cpu,memory,unified": for messages and benchmarks. */
char *sbx_cgroup_describe(const struct sbx_cgroup *cg);

/*
 * Joining: set sbx_spawn_opts.cgroup and sbx_spawn() does it all. What it does, in the steps a
 * caller of the first options layout (abi 0) still takes itself around sbx_spawn():
 *
 *   sbx_cgroup_enter_self(cg);              the caller's thread moves into the v1 hierarchies
 *   opts.cgroup_fd = sbx_cgroup_spawn_fd(cg);   cgroup2: CLONE_INTO_CGROUP
 *   opts.on_created = sbx_cgroup_on_created;    the caller moves back; the child stays, and
 *   sbx_spawn(...);                             joins whatever the first two did not cover
 *   sbx_cgroup_leave_self(cg);              in case the clone failed before on_created
 *
 * The child is born in its cgroups, and no process is migrated by pid: a v1 cgroup.procs write
 * waits for an RCU grace period (5-15 ms here), while the calling thread moving itself through
 * `tasks` ("0") does not (Linux >= 6.3). The caller must be single-threaded.
 */
/* Best effort: what cannot be entered this way is joined by on_created. The memory hierarchy
 * never is: under a small limit the clone's charge would make the OOM killer pick the caller. */
void sbx_cgroup_enter_self(struct sbx_cgroup *cg);
int sbx_cgroup_leave_self(struct sbx_cgroup *cg, struct husk_error **err);
/* A cgroup2 directory fd for CLONE_INTO_CGROUP (Linux >= 5.7), or -1. Borrowed. */
int sbx_cgroup_spawn_fd(const struct sbx_cgroup *cg);
/* Move PID into every hierarchy it is not in yet by birth. */
int sbx_cgroup_enter(struct sbx_cgroup *cg, pid_t pid, struct husk_error **err);
/* sbx_spawn_opts.on_created: leave_self, then enter(pid). data is the struct sbx_cgroup. */
int sbx_cgroup_on_created(pid_t pid, void *data, struct husk_error **err);

/* Change limits of a live cgroup; hierarchies it does not use yet are joined (frozen meanwhile). */
int sbx_cgroup_update(struct sbx_cgroup *cg, const struct sbx_cgroup_limits *l,
                      struct husk_error **err);

int sbx_cgroup_freeze(struct sbx_cgroup *cg, bool frozen, struct husk_error **err);
/* Ask for it and return at once (a loop that must not wait): cgroup2's freezer, whose write
 * takes microseconds (a v1 freezer.state write waits for the tasks, milliseconds); -ENOTSUP
 * without one. The kernel stops the tasks as they reach a safe point; a thaw is immediate. */
int sbx_cgroup_freeze_request(struct sbx_cgroup *cg, bool frozen, struct husk_error **err);
/* 1 frozen, 0 not, -errno. */
int sbx_cgroup_is_frozen(struct sbx_cgroup *cg);

/* Every process in the cgroup (and below it), never the caller. Caller frees *pids. */
int sbx_cgroup_pids(struct sbx_cgroup *cg, pid_t **pids, size_t *n, struct husk_error **err);
/* The same from another thread, which must not touch cg while its owner may free it: a
 * directory fd of the cgroup (-errno), then its processes read through that fd (none once the
 * cgroup is removed). The caller closes the fd and frees *pids. */
int sbx_cgroup_procs_dir(struct sbx_cgroup *cg);
void sbx_cgroup_pids_at(int dir_fd, pid_t **pids, size_t *n);
/* Signal every process (SIGKILL through cgroup.kill where the kernel has it). */
int sbx_cgroup_kill(struct sbx_cgroup *cg, int sig, struct husk_error **err);
/* Kill what is left, then remove the directories this cgroup made, retrying while busy. */
int sbx_cgroup_destroy(struct sbx_cgroup *cg, struct husk_error **err);
/* Remove the directories once, never waiting: -EBUSY while a process is still leaving (call
 * again later; what was removed stays removed). For an event loop that learned the cgroup is
 * empty from an event. */
int sbx_cgroup_try_remove(struct sbx_cgroup *cg, struct husk_error **err);

struct sbx_cgroup_stats {
    bool has_cpu, has_memory, has_pids, has_swap;
    uint64_t cpu_usage_ns, cpu_user_ns, cpu_system_ns;
    uint64_t cpu_periods, cpu_throttled_periods, cpu_throttled_ns;
    uint64_t mem_usage, mem_max_usage, mem_limit, mem_failcnt; /* limit UINT64_MAX: none */
    uint64_t swap_usage, swap_limit;
    uint64_t oom_events, oom_kills;
    uint64_t pids_current, pids_limit; /* limit 0: none */
};

int sbx_cgroup_stats(struct sbx_cgroup *cg, struct sbx_cgroup_stats *st, struct husk_error **err);
/* An fd of the cgroup's peak memory (v1 memory.max_usage_in_bytes, v2 memory.peak), to pread
 * as often as wanted for the cost of one syscall; -ENOTSUP without a memory cgroup. */
int sbx_cgroup_memory_peak_fd(struct sbx_cgroup *cg);
/* Processes the kernel OOM-killed in this cgroup so far (0 without a memory controller). */
uint64_t sbx_cgroup_oom_kills(struct sbx_cgroup *cg);
/* An fd that polls readable when the memory controller reports an event (v1 eventfd, v2
 * inotify); read sbx_cgroup_oom_kills after each wake-up. -ENOTSUP without a memory cgroup. */
int sbx_cgroup_oom_watch(struct sbx_cgroup *cg, struct husk_error **err);
/* Drain an fd from sbx_cgroup_oom_watch after it polled readable. */
void sbx_cgroup_oom_watch_ack(int fd);

#endif
