/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Joining: a container's first process is born in its cgroups instead of being moved there.
 *
 * cgroup2 has CLONE_INTO_CGROUP (5.7). On v1 hierarchies, writing a pid to cgroup.procs takes
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period: 5-15 ms per
 * container start on the dev VM, more than all the rest of the cgroup work. A thread moving
 * itself through `tasks` ("0") skips that lock (Linux 6.3), so the spawning thread steps into
 * the v1 cgroups, clones (the child inherits them) and steps back in on_created. Not the memory
 * hierarchy: see may_enter().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "util.h"

int
sbx_cgroup_spawn_fd(const struct sbx_cgroup *cg)
{
    if (cg == NULL || cg->v2 < 0 || !cg->clone_into)
        return -1;
    return cg->h[cg->v2].fd;
}

int
cg_join_pid(struct sbx_cgroup *cg, struct cg_hier *h, pid_t pid, struct husk_error **err)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", pid);
    return cg_write(cg, h, "cgroup.procs", buf, err);
}

int
sbx_cgroup_enter(struct sbx_cgroup *cg, pid_t pid, struct husk_error **err)
{
    for (size_t i = 0; i < cg->n_h; i++) {
        int r = cg->h[i].fd < 0 ? 0 : cg_join_pid(cg, &cg->h[i], pid, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Where the calling thread sits in v1 hierarchy h, from /proc/thread-self/cgroup. */
static char *
self_path(const struct cg_hier *h)
{
    cleanup_free char *text = NULL;
    if (read_file_at(AT_FDCWD, "/proc/thread-self/cgroup", &text, NULL) < 0)
        return NULL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *list = strchr(line, ':'), *path = list ? strchr(list + 1, ':') : NULL;
        if (path == NULL || path[1] != '/')
            continue;
        *path = '\0';
        if (cg_ctrls_from_list(list + 1, false, ',') == h->ctrls)
            return xstrdup(path + 1);
    }
    return NULL;
}

static int
write_tasks(int dirfd, const char *rel)
{
    cleanup_fd int fd = openat(dirfd, rel, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
        return -errno;
    return 0;
}

/* The caller and the child are both in a pids cgroup for a moment: pids.max 1 has no room. */
static bool
room_for_two(struct cg_hier *h)
{
    uint64_t max = UINT64_MAX;
    return !(h->ctrls & CG_BIT(CG_PIDS)) || cg_read_u64(h, "pids.max", &max) < 0 || max >= 2;
}

/*
 * Never the memory controller's hierarchy (crun never joins it either): the clone is charged
 * there, and under a small limit (below about 1 MiB) the OOM killer picks the caller, which
 * then leaves a state dir and cgroups behind. The child is joined by pid instead; a
 * cgroup.procs write costs about 0.1 ms on Linux 6.18.
 */
static bool
may_enter(struct cg_hier *h)
{
    return !(h->ctrls & CG_BIT(CG_MEMORY)) && room_for_two(h);
}

void
sbx_cgroup_enter_self(struct sbx_cgroup *cg)
{
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (h->fd < 0 || h->v2 || h->self_from || !may_enter(h))
            continue;
        char *from = self_path(h);
        if (from == NULL || write_tasks(h->fd, "tasks") < 0) {
            free(from); /* on_created joins this one by pid */
            continue;
        }
        h->self_from = from;
        h->born_in = true;
    }
}

int
sbx_cgroup_leave_self(struct sbx_cgroup *cg, struct husk_error **err)
{
    int ret = 0;
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (h->self_from == NULL)
            continue;
        cleanup_free char *rel =
            xasprintf("%s%s/tasks", h->dir, strcmp(h->self_from, "/") == 0 ? "" : h->self_from);
        int r = write_tasks(cg->root_fd, rel);
        if (r < 0 && ret == 0)
            ret = husk_err(err, -r, "move back to cgroup '%s:%s'", h->dir, h->self_from);
        free(h->self_from);
        h->self_from = NULL;
    }
    return ret;
}

int
sbx_cgroup_on_created(pid_t pid, void *data, struct husk_error **err)
{
    struct sbx_cgroup *cg = data;
    int r = sbx_cgroup_leave_self(cg, err);
    for (size_t i = 0; r == 0 && i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        bool born = h->born_in || (h->v2 && sbx_cgroup_spawn_fd(cg) >= 0);
        h->born_in = false;
        if (h->fd >= 0 && !born)
            r = cg_join_pid(cg, h, pid, err);
    }
    return r;
}
