/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `husk events [--stats] [--interval 5s] ID`: runc's event stream, one JSON object per line:
 * {"type":"stats","id":ID,"data":{cpu, memory, pids}} every interval and {"type":"oom","id":ID}
 * as soon as the kernel OOM-kills a process of the container. Ends when the container stops.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "container.h"
#include "util.h"

struct events_opts {
    bool stats;
    const char *interval;
};

static const struct flag events_flags[] = {
    {"stats", 0, FLAG_BOOL, offsetof(struct events_opts, stats), "print one stats object and exit"},
    {"interval", 0, FLAG_STRING, offsetof(struct events_opts, interval),
     "time between stats (default 5s; 500ms, 2s, 1m)"},
};

/* "5s", "500ms", "1m", "2" (seconds) -> milliseconds. */
static int
parse_interval(const char *s, uint64_t *ms)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return -EINVAL;
    if (*end == '\0' || strcmp(end, "s") == 0)
        *ms = v * 1000;
    else if (strcmp(end, "ms") == 0)
        *ms = v;
    else if (strcmp(end, "m") == 0)
        *ms = v * 60000;
    else
        return -EINVAL;
    return *ms > 0 ? 0 : -EINVAL;
}

static json_t *
stats_json(const struct sbx_cgroup_stats *st)
{
    json_t *data = json_object();
    if (st->has_cpu || st->cpu_periods)
        json_object_set_new(data, "cpu",
                            json_pack("{s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}", "usage", "total",
                                      (json_int_t)st->cpu_usage_ns, "kernel",
                                      (json_int_t)st->cpu_system_ns, "user",
                                      (json_int_t)st->cpu_user_ns, "throttling", "periods",
                                      (json_int_t)st->cpu_periods, "throttledPeriods",
                                      (json_int_t)st->cpu_throttled_periods, "throttledTime",
                                      (json_int_t)st->cpu_throttled_ns));
    if (st->has_memory) {
        json_t *mem = json_pack("{s:{s:I, s:I, s:I, s:I}, s:I, s:I}", "usage", "limit",
                                (json_int_t)st->mem_limit, "usage", (json_int_t)st->mem_usage,
                                "max", (json_int_t)st->mem_max_usage, "failcnt",
                                (json_int_t)st->mem_failcnt, "oomEvents",
                                (json_int_t)st->oom_events, "oomKills", (json_int_t)st->oom_kills);
        if (st->has_swap)
            json_object_set_new(mem, "swap",
                                json_pack("{s:I, s:I}", "limit", (json_int_t)st->swap_limit,
                                          "usage", (json_int_t)st->swap_usage));
        json_object_set_new(data, "memory", mem);
    }
    if (st->has_pids)
        json_object_set_new(data, "pids",
                            json_pack("{s:I, s:I}", "current", (json_int_t)st->pids_current,
                                      "limit", (json_int_t)st->pids_limit));
    return data;
}

static void
emit(const char *type, const char *id, json_t *data)
{
    cleanup_json json_t *j = json_pack("{s:s, s:s}", "type", type, "id", id);
    if (data)
        json_object_set_new(j, "data", data);
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    printf("%s\n", text);
    fflush(stdout);
}

static int
emit_stats(struct sbx_cgroup *cg, const char *id, struct husk_error **err)
{
    struct sbx_cgroup_stats st;
    if (sbx_cgroup_stats(cg, &st, err) < 0)
        return -EINVAL;
    emit("stats", id, stats_json(&st));
    return 0;
}

/* Until the container stops: stats every interval, an "oom" line per OOM kill. */
static int
stream(struct container *c, struct sbx_cgroup *cg, uint64_t interval_ms, struct husk_error **err)
{
    cleanup_fd int watch = sbx_cgroup_oom_watch(cg, NULL); /* -1: counters only */
    uint64_t ooms = sbx_cgroup_oom_kills(cg);
    uint64_t next = now_ns();
    for (;;) {
        bool gone = ctr_status(c) == CTR_STOPPED;
        uint64_t now = now_ns(), n = sbx_cgroup_oom_kills(cg);
        for (; ooms < n; ooms++)
            emit("oom", c->id, NULL);
        if (gone)
            return 0;
        if (now >= next) {
            if (emit_stats(cg, c->id, err) < 0)
                return -EINVAL;
            next = now + interval_ms * 1000000ull;
        }
        /* Wake for the kernel's notification, and at least every 200 ms to see an exit. */
        uint64_t left = (next - now_ns()) / 1000000ull;
        struct pollfd p = {.fd = watch, .events = POLLIN};
        if (poll(&p, 1, (int)(left < 200 ? left : 200)) > 0)
            sbx_cgroup_oom_watch_ack(watch);
    }
}

static int
cmd_events(struct cli *cli, int argc, char **argv)
{
    struct events_opts o = {0};
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    uint64_t interval = 5000;
    int code;
    int i = ctr_verb_args(cli_find_verb("events"), events_flags, ARRAY_SIZE(events_flags), &o, argc,
                          argv, 0, &code);
    if (i < 0)
        return code;
    if (o.interval && parse_interval(o.interval, &interval) < 0) {
        fprintf(stderr, "husk events: --interval: '%s' is not a duration such as 5s\n", o.interval);
        return 2;
    }
    if (ctr_open(cli, argv[i], &c, &err) < 0)
        return cli_fail(cli, err);
    if (ctr_status(c) == CTR_STOPPED) {
        husk_err(&err, 0, "container '%s': container not running", c->id);
        return cli_fail(cli, err);
    }
    if (ctr_cgroup_open(cli, c, &cg, &err) < 0)
        return cli_fail(cli, err);
    /* A stream lasts as long as the container: let kill and delete take the lock meanwhile. */
    flock(c->dir_fd, LOCK_UN);
    int r = o.stats ? emit_stats(cg, c->id, &err) : stream(c, cg, interval, &err);
    return r < 0 ? cli_fail(cli, err) : 0;
}

const struct verb verb_events = {
    .name = "events",
    .usage = "[--stats] [--interval 5s] ID",
    .summary = "Print resource stats and OOM events as JSON.",
    .run = cmd_events,
    .flags = events_flags,
    .n_flags = ARRAY_SIZE(events_flags),
    .arg = CLI_ARG_CONTAINER,
};
