/* SPDX-License-Identifier: Apache-2.0 */
/* The processes of a cgroup: list, signal, freeze, kill and remove; stats and OOM kills. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "syscalls.h"
#include "util.h"

struct pidv {
    pid_t *v;
    size_t n, cap;
};

static void
collect(int dfd, struct pidv *out, int depth)
{
    cleanup_free char *text = NULL;
    if (read_file_at(dfd, "cgroup.procs", &text, NULL) == 0) {
        char *save = NULL;
        for (char *t = strtok_r(text, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
            int64_t pid;
            /* Never the caller: it passes through while spawning (cgroup-join.c). */
            if (parse_i64(t, &pid) < 0 || pid <= 0 || pid == getpid())
                continue;
            if (out->n == out->cap)
                out->v =
                    xrealloc(out->v, (out->cap = out->cap ? out->cap * 2 : 16) * sizeof(pid_t));
            out->v[out->n++] = (pid_t)pid;
        }
    }
    if (depth >= 32)
        return;
    int sub = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_dir DIR *d = sub < 0 ? NULL : fdopendir(sub);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        cleanup_fd int child =
            openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child >= 0)
            collect(child, out, depth + 1);
    }
}

static struct cg_hier *
joined_tracker(struct sbx_cgroup *cg)
{
    if (cg->v2 >= 0 && cg->h[cg->v2].fd >= 0)
        return &cg->h[cg->v2];
    struct cg_hier *h = cg_where(cg, CG_FREEZER);
    if (h && h->fd >= 0)
        return h;
    for (size_t i = 0; i < cg->n_h; i++)
        if (cg->h[i].fd >= 0)
            return &cg->h[i];
    return NULL;
}

/* The same hierarchy of a parked cgroup (its fds closed, its paths kept). */
static struct cg_hier *
parked_tracker(struct sbx_cgroup *cg)
{
    if (cg->v2 >= 0 && cg->h[cg->v2].parked)
        return &cg->h[cg->v2];
    struct cg_hier *h = cg_where(cg, CG_FREEZER);
    if (h && h->parked)
        return h;
    for (size_t i = 0; i < cg->n_h; i++)
        if (cg->h[i].parked)
            return &cg->h[i];
    return NULL;
}

int
sbx_cgroup_procs_dir(struct sbx_cgroup *cg)
{
    struct cg_hier *h = joined_tracker(cg);
    int fd = h ? fcntl(h->fd, F_DUPFD_CLOEXEC, 3) : -1;
    if (h == NULL && (h = parked_tracker(cg)) != NULL) { /* one open by path */
        cleanup_free char *path = xasprintf("%s/%s%s", cg->root, h->dir, cg->path);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (h == NULL)
        return -ENOENT;
    return fd < 0 ? -errno : fd;
}

void
sbx_cgroup_pids_at(int dir_fd, pid_t **pids, size_t *n)
{
    struct pidv v = {0};
    collect(dir_fd, &v, 0);
    *pids = v.v;
    *n = v.n;
}

int
sbx_cgroup_pids(struct sbx_cgroup *cg, pid_t **pids, size_t *n, struct husk_error **err)
{
    cleanup_fd int fd = sbx_cgroup_procs_dir(cg);
    if (fd == -ENOENT)
        return husk_err(err, ENOENT, "cgroup '%s' is in no hierarchy", cg->path);
    if (fd < 0)
        return husk_err(err, -fd, "open cgroup '%s'", cg->path);
    sbx_cgroup_pids_at(fd, pids, n);
    return 0;
}

static struct cg_hier *
freezer(struct sbx_cgroup *cg)
{
    struct cg_hier *h = cg_where(cg, CG_FREEZER);
    return h && h->fd >= 0 ? h : NULL;
}

int
sbx_cgroup_freeze(struct sbx_cgroup *cg, bool frozen, struct husk_error **err)
{
    struct cg_hier *h = freezer(cg);
    if (h == NULL)
        return husk_err(err, ENOTSUP, "cgroup '%s' has no freezer", cg->path);
    return cg_ops(h)->freeze(cg, h, frozen, err);
}

int
sbx_cgroup_freeze_request(struct sbx_cgroup *cg, bool frozen, struct husk_error **err)
{
    /* cgroup2's, even where a v1 freezer exists: a v1 write waits for the tasks (2-5 ms). */
    struct cg_hier *h = cg->v2 >= 0 ? &cg->h[cg->v2] : NULL;
    if (h == NULL || h->fd < 0 || !(h->ctrls & CG_BIT(CG_FREEZER)))
        return husk_err(err, ENOTSUP,
                        "cgroup '%s': no cgroup2 freezer (a request that does "
                        "not wait needs one)",
                        cg->path);
    const struct cgroup_ops *ops = cg_ops(h);
    return cg_write(cg, h, ops->freeze_file, ops->freeze_value[frozen], err);
}

int
sbx_cgroup_is_frozen(struct sbx_cgroup *cg)
{
    struct cg_hier *h = freezer(cg);
    return h ? cg_ops(h)->is_frozen(h) : 0;
}

static int
signal_all(struct sbx_cgroup *cg, int sig, struct husk_error **err)
{
    cleanup_free pid_t *pids = NULL;
    size_t n = 0;
    int r = sbx_cgroup_pids(cg, &pids, &n, err);
    for (size_t i = 0; r == 0 && i < n; i++) {
        /* Through a pidfd: a pid read from cgroup.procs may be reused before kill(2). */
        cleanup_fd int fd = sys_pidfd_open(pids[i], 0);
        if (fd < 0)
            continue;
        if (sys_pidfd_send_signal(fd, sig, NULL, 0) < 0 && errno != ESRCH)
            r = husk_err(err, errno, "signal process %d of cgroup '%s'", pids[i], cg->path);
    }
    return r;
}

int
sbx_cgroup_kill(struct sbx_cgroup *cg, int sig, struct husk_error **err)
{
    struct cg_hier *v2 = cg->v2 >= 0 && cg->h[cg->v2].fd >= 0 ? &cg->h[cg->v2] : NULL;
    /* cgroup.kill (5.14) kills every process at once, frozen ones and forks in flight too. */
    if (sig == SIGKILL && v2 && cg_has(v2, "cgroup.kill")) {
        int r = cg_write(cg, v2, "cgroup.kill", "1", err);
        /* A task frozen by the v1 freezer (a paused container on a hybrid host) dies only
         * once thawed. */
        struct cg_hier *f = freezer(cg);
        if (r == 0 && f && !f->v2)
            sbx_cgroup_freeze(cg, false, NULL);
        return r;
    }
    if (sig != SIGKILL || freezer(cg) == NULL)
        return signal_all(cg, sig, err);
    /* Freeze so that nothing forks between reading cgroup.procs and the signals; a frozen
     * v1 task dies once thawed. */
    int r = sbx_cgroup_freeze(cg, true, NULL);
    int k = signal_all(cg, sig, err);
    if (r == 0)
        sbx_cgroup_freeze(cg, false, NULL);
    return k;
}

int
sbx_cgroup_destroy(struct sbx_cgroup *cg, struct husk_error **err)
{
    for (int round = 0; round < 100; round++) {
        cleanup_free pid_t *pids = NULL;
        size_t n = 0;
        if (sbx_cgroup_pids(cg, &pids, &n, NULL) < 0 || n == 0)
            break;
        sbx_cgroup_kill(cg, SIGKILL, NULL);
        usleep(round < 10 ? 1000 : 10000);
    }
    return cg_remove_all(cg, err);
}

/* ---- stats and OOM ---- */

int
sbx_cgroup_stats(struct sbx_cgroup *cg, struct sbx_cgroup_stats *st, struct husk_error **err)
{
    static const enum cg_ctrl wanted[] = {CG_CPU, CG_CPUACCT, CG_MEMORY, CG_PIDS};
    memset(st, 0, sizeof(*st));
    if (joined_tracker(cg) == NULL)
        return husk_err(err, ENOENT, "cgroup '%s' is in no hierarchy", cg->path);
    /* cgroup2's cpu.stat counts usage without the cpu controller, hybrid hosts included. */
    if (cg->v2 >= 0 && cg->h[cg->v2].fd >= 0)
        cgroup_v2_ops.stats(cg, &cg->h[cg->v2], CG_CPU, st);
    for (size_t i = 0; i < ARRAY_SIZE(wanted); i++) {
        struct cg_hier *h = cg_where(cg, wanted[i]);
        if (h && h->fd >= 0)
            cg_ops(h)->stats(cg, h, wanted[i], st);
    }
    st->oom_kills = sbx_cgroup_oom_kills(cg);
    return 0;
}

int
sbx_cgroup_memory_peak_fd(struct sbx_cgroup *cg)
{
    struct cg_hier *h = cg_where(cg, CG_MEMORY);
    if (h == NULL || (h->fd < 0 && !h->parked))
        return -ENOTSUP;
    const char *file = h->v2 ? "memory.peak" : "memory.max_usage_in_bytes";
    cleanup_free char *path =
        h->parked ? xasprintf("%s/%s%s/%s", cg->root, h->dir, cg->path, file) : NULL;
    /* parked: one open by path, no directory fd needed */
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : openat(h->fd, file, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

uint64_t
sbx_cgroup_oom_kills(struct sbx_cgroup *cg)
{
    struct cg_hier *h = cg_where(cg, CG_MEMORY);
    if (h == NULL || h->fd < 0)
        return 0;
    return cg_ops(h)->oom_kills(h);
}

int
sbx_cgroup_oom_watch(struct sbx_cgroup *cg, struct husk_error **err)
{
    struct cg_hier *h = cg_where(cg, CG_MEMORY);
    if (h == NULL || h->fd < 0)
        return husk_err(err, ENOTSUP, "cgroup '%s' has no memory controller", cg->path);
    return cg_ops(h)->oom_watch(cg, h, err);
}

void
sbx_cgroup_oom_watch_ack(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}
