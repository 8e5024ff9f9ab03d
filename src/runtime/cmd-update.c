/* SPDX-License-Identifier: Apache-2.0 */
/* `husk update [flags] [-r resources.json] ID`: change limits of a live container (runc's flags).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "container.h"
#include "util.h"

struct update_opts {
    const char *resources;
    const char *blkio_weight, *cpu_period, *cpu_quota, *cpu_share, *cpu_rt_period, *cpu_rt_runtime,
        *cpu_idle, *cpuset_cpus, *cpuset_mems, *memory, *memory_reservation, *memory_swap,
        *kernel_memory, *kernel_memory_tcp, *pids_limit, *l3_cache, *mem_bw;
};

#define OPT(f) offsetof(struct update_opts, f)
static const struct flag update_flags[] = {
    {"resources", 'r', FLAG_STRING, OPT(resources),
     "a linux.resources JSON file ('-': stdin); flags given too override it"},
    {"blkio-weight", 0, FLAG_STRING, OPT(blkio_weight), "block I/O weight, 10..1000"},
    {"cpu-period", 0, FLAG_STRING, OPT(cpu_period), "CFS period in microseconds"},
    {"cpu-quota", 0, FLAG_STRING, OPT(cpu_quota),
     "CFS quota in microseconds per period (-1: none)"},
    {"cpu-share", 0, FLAG_STRING, OPT(cpu_share), "CPU shares (relative weight)"},
    {"cpu-rt-period", 0, FLAG_STRING, OPT(cpu_rt_period), "realtime period in microseconds"},
    {"cpu-rt-runtime", 0, FLAG_STRING, OPT(cpu_rt_runtime), "realtime runtime in microseconds"},
    {"cpu-idle", 0, FLAG_STRING, OPT(cpu_idle), "1: SCHED_IDLE for the cgroup, 0: normal"},
    {"cpuset-cpus", 0, FLAG_STRING, OPT(cpuset_cpus), "CPUs to run on (0-3,5)"},
    {"cpuset-mems", 0, FLAG_STRING, OPT(cpuset_mems), "memory nodes to use (0-1)"},
    {"memory", 0, FLAG_STRING, OPT(memory), "memory limit (bytes, or 512m, 2g; -1: none)"},
    {"memory-reservation", 0, FLAG_STRING, OPT(memory_reservation), "memory soft limit"},
    {"memory-swap", 0, FLAG_STRING, OPT(memory_swap), "memory + swap limit (-1: unlimited swap)"},
    {"kernel-memory", 0, FLAG_STRING, OPT(kernel_memory), "kernel memory limit (v1, old kernels)"},
    {"kernel-memory-tcp", 0, FLAG_STRING, OPT(kernel_memory_tcp), "kernel TCP buffer limit"},
    {"pids-limit", 0, FLAG_STRING, OPT(pids_limit), "maximum number of processes (-1: none)"},
    {"l3-cache-schema", 0, FLAG_STRING, OPT(l3_cache), "Intel RDT (not supported)"},
    {"mem-bw-schema", 0, FLAG_STRING, OPT(mem_bw), "Intel RDT (not supported)"},
};

/* "1024", "512k", "64m", "2g", "1GB", "-1": as runc's units.RAMInBytes, integers only. */
static int
parse_bytes(const char *s, int64_t *out)
{
    static const char units[] = "bkmgtp";
    char *end = NULL;
    if (strcmp(s, "-1") == 0) {
        *out = -1;
        return 0;
    }
    if (!isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -errno;
    int shift = 0;
    if (*end) {
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (u == NULL)
            return -EINVAL;
        shift = (int)(u - units) * 10;
        end++;
        if (shift && (*end == 'b' || *end == 'B'))
            end++;
        if (shift && (*end == 'i' || *end == 'I')) /* "MiB" */
            end += (end[1] == 'b' || end[1] == 'B') ? 2 : 1;
    }
    if (*end || (shift && v > (unsigned long long)(INT64_MAX >> shift)))
        return -EINVAL;
    *out = (int64_t)(v << shift);
    return 0;
}

struct num_flag {
    const char *name;
    size_t opt;
    bool bytes;
    size_t field; /* offset in struct sbx_cgroup_limits */
};

#define LIM(f) offsetof(struct sbx_cgroup_limits, f)
static const struct num_flag num_flags[] = {
    {"blkio-weight", OPT(blkio_weight), false, LIM(blkio.weight)},
    {"cpu-period", OPT(cpu_period), false, LIM(cpu.period)},
    {"cpu-quota", OPT(cpu_quota), false, LIM(cpu.quota)},
    {"cpu-share", OPT(cpu_share), false, LIM(cpu.shares)},
    {"cpu-rt-period", OPT(cpu_rt_period), false, LIM(cpu.rt_period)},
    {"cpu-rt-runtime", OPT(cpu_rt_runtime), false, LIM(cpu.rt_runtime)},
    {"cpu-idle", OPT(cpu_idle), false, LIM(cpu.idle)},
    {"memory", OPT(memory), true, LIM(memory.limit)},
    {"memory-reservation", OPT(memory_reservation), true, LIM(memory.reservation)},
    {"memory-swap", OPT(memory_swap), true, LIM(memory.swap)},
    {"kernel-memory", OPT(kernel_memory), true, LIM(memory.kernel)},
    {"kernel-memory-tcp", OPT(kernel_memory_tcp), true, LIM(memory.kernel_tcp)},
    {"pids-limit", OPT(pids_limit), false, LIM(pids)},
};

static int
apply_flags(const struct update_opts *o, struct sbx_cgroup_limits *l, struct husk_error **err)
{
    for (size_t i = 0; i < ARRAY_SIZE(num_flags); i++) {
        const char *s = *(const char *const *)((const char *)o + num_flags[i].opt);
        struct sbx_cg_num *n = (struct sbx_cg_num *)((char *)l + num_flags[i].field);
        int64_t v;
        if (s == NULL)
            continue;
        if ((num_flags[i].bytes ? parse_bytes(s, &v) : parse_i64(s, &v)) < 0)
            return husk_err(err, 0, "--%s: '%s' is not %s", num_flags[i].name, s,
                            num_flags[i].bytes ? "a size such as 1048576, 512m or 2g"
                                               : "an integer");
        /* runc: 0 leaves the value alone (cpu-idle 0 means "normal"). */
        if (v != 0 || strcmp(num_flags[i].name, "cpu-idle") == 0)
            *n = (struct sbx_cg_num){true, v};
    }
    if (o->cpuset_cpus) {
        free(l->cpu.cpus);
        l->cpu.cpus = xstrdup(o->cpuset_cpus);
    }
    if (o->cpuset_mems) {
        free(l->cpu.mems);
        l->cpu.mems = xstrdup(o->cpuset_mems);
    }
    if (o->l3_cache || o->mem_bw)
        return husk_err(err, 0, "Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported");
    return 0;
}

static int
read_resources(const char *path, struct sbx_cgroup_limits *l, struct husk_error **err)
{
    json_error_t je;
    bool in = strcmp(path, "-") == 0;
    const char *name = in ? "<stdin>" : path;
    cleanup_json json_t *j =
        in ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &je) : json_load_file(path, 0, &je);
    if (j == NULL)
        return husk_err(err, 0, "%s: line %d, column %d: %s", name, je.line, je.column, je.text);
    return oci_resources_parse_limits(j, name, "", l, err);
}

static int
update(struct cli *cli, const struct update_opts *o, const char *id, struct husk_error **err)
{
    cleanup_(ctr_freep) struct container *c = NULL;
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    struct sbx_cgroup_limits l = {0};
    int r = o->resources ? read_resources(o->resources, &l, err) : 0;
    if (r == 0)
        r = apply_flags(o, &l, err);
    if (r == 0)
        r = ctr_open(cli, id, &c, err);
    if (r == 0 && ctr_status(c) == CTR_STOPPED)
        r = husk_err(err, 0, "cannot update container '%s': it is stopped", id);
    if (r == 0)
        r = ctr_cgroup_open(cli, c, &cg, err);
    int owned = cg ? sbx_cgroup_owned(cg) : 0;
    if (r == 0 && (r = sbx_cgroup_update(cg, &l, err)) < 0)
        husk_err_prefix(err, "update container '%s': ", id);
    /* A hierarchy joined just now may have made directories delete must remove. */
    if (r == 0 && sbx_cgroup_owned(cg) != owned) {
        c->state->cgroup_owned = sbx_cgroup_owned(cg);
        r = oci_state_save(c->dir_fd, c->state, err);
    }
    sbx_cgroup_limits_clear(&l);
    return r;
}

static int
cmd_update(struct cli *cli, int argc, char **argv)
{
    struct update_opts o = {0};
    struct husk_error *err = NULL;
    int code;
    int i = ctr_verb_args(cli_find_verb("update"), update_flags, ARRAY_SIZE(update_flags), &o, argc,
                          argv, 0, &code);
    if (i < 0)
        return code;
    if (update(cli, &o, argv[i], &err) < 0)
        return cli_fail(cli, err);
    return 0;
}

const struct verb verb_update = {
    .name = "update",
    .usage = "[flags] [-r resources.json] ID",
    .summary = "Change a container's resource limits.",
    .run = cmd_update,
    .flags = update_flags,
    .n_flags = ARRAY_SIZE(update_flags),
    .arg = CLI_ARG_CONTAINER,
};
