/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cgroup layer: detect the host layout (pure v2, pure v1, hybrid), place one container's
 * cgroup in the hierarchies its limits need, and dispatch each controller to its backend.
 *
 * Only the hierarchies a config needs are joined, plus one that tracks the processes for
 * ps/kill/pause: cgroup2 when mounted (hybrid included: cgroup.procs, cgroup.kill and
 * cgroup.freeze work there without any controller), else the v1 freezer.
 *
 * husk changes only cgroups on its own path: controllers are enabled in the subtree_control of
 * the directories it walks through, never in the root of a hierarchy, which belongs to the host.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "util.h"

#define CG_DEFAULT_ROOT "/sys/fs/cgroup"

const char *
sbx_cgroup_mode_name(enum sbx_cgroup_mode m)
{
    return m == SBX_CGROUP_V2 ? "v2" : m == SBX_CGROUP_HYBRID ? "hybrid" : "v1";
}

/* ---- layout ---- */

unsigned
cg_ctrls_from_list(const char *list, bool v2, char sep)
{
    unsigned bits = 0;
    cleanup_free char *copy = xstrdup(list);
    char delim[3] = {sep, '\n', '\0'};
    char *save = NULL;
    for (char *t = strtok_r(copy, delim, &save); t; t = strtok_r(NULL, delim, &save)) {
        int c = cg_ctrl_from_name(t, v2);
        if (c >= 0)
            bits |= CG_BIT(c);
    }
    return bits;
}

static bool
kernel_at_least(const struct utsname *u, int major, int minor)
{
    int ma = 0, mi = 0;
    if (sscanf(u->release, "%d.%d", &ma, &mi) != 2)
        return false;
    return ma > major || (ma == major && mi >= minor);
}

static void
add_hier(struct sbx_cgroup *cg, const char *dir, unsigned ctrls, bool v2)
{
    if (cg->n_h == CG_MAX_HIER)
        return;
    /* A controller lives in one hierarchy; a second mount of it is the same hierarchy. */
    for (size_t i = 0; i < cg->n_h; i++)
        if (!v2 && !cg->h[i].v2 && (cg->h[i].ctrls & ctrls))
            return;
    if (v2)
        cg->v2 = (int)cg->n_h;
    cg->h[cg->n_h++] = (struct cg_hier){.dir = xstrdup(dir), .ctrls = ctrls, .v2 = v2, .fd = -1};
}

static unsigned
v2_root_ctrls(int dirfd)
{
    cleanup_free char *text = NULL;
    if (read_file_at(dirfd, "cgroup.controllers", &text, NULL) < 0)
        return CG_V2_CORE;
    return cg_ctrls_from_list(text, true, ' ') | CG_V2_CORE;
}

/*
 * What kind of hierarchy ROOT/NAME is: statfs says cgroup or cgroup2 on a real host, where a v1
 * hierarchy is named after its controllers ("cpu,cpuacct", as systemd and cgroupfs-mount mount
 * them; crun relies on the same). Test roots are plain directories: a v1 hierarchy there is a
 * directory with cgroup.procs, cgroup2 one with cgroup.controllers.
 */
static int
hier_kind(int root_fd, const char *root, const char *name)
{
    struct statfs sf;
    cleanup_free char *path = xasprintf("%s/%s", root, name);
    if (statfs(path, &sf) == 0) {
        if ((unsigned long)sf.f_type == CGROUP2_SUPER_MAGIC)
            return 2;
        if ((unsigned long)sf.f_type == CGROUP_SUPER_MAGIC)
            return 1;
    }
    cleanup_fd int sub = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub >= 0 && faccessat(sub, "cgroup.controllers", F_OK, 0) == 0)
        return 2;
    if (sub >= 0 && faccessat(sub, "cgroup.procs", F_OK, 0) == 0)
        return 1;
    return 0;
}

static int
detect_layout(struct sbx_cgroup *cg, struct husk_error **err)
{
    struct statfs sf;
    if ((fstatfs(cg->root_fd, &sf) == 0 && (unsigned long)sf.f_type == CGROUP2_SUPER_MAGIC) ||
        faccessat(cg->root_fd, "cgroup.controllers", F_OK, 0) == 0) {
        add_hier(cg, ".", v2_root_ctrls(cg->root_fd), true);
        cg->mode = SBX_CGROUP_V2;
        return 0;
    }
    int dfd = openat(cg->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_dir DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (d == NULL)
        return husk_err(err, errno, "read cgroup root '%s'", cg->root);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || de->d_type != DT_DIR) /* symlinks ("cpu" -> "cpu,cpuacct") */
            continue;
        int kind = hier_kind(cg->root_fd, cg->root, de->d_name);
        if (kind == 2 && cg->v2 < 0) {
            cleanup_fd int sub =
                openat(cg->root_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub >= 0)
                add_hier(cg, de->d_name, v2_root_ctrls(sub), true);
        } else if (kind == 1) {
            unsigned ctrls = cg_ctrls_from_list(de->d_name, false, ',');
            if (ctrls) /* name=systemd and friends hold no controller */
                add_hier(cg, de->d_name, ctrls, false);
        }
    }
    if (cg->n_h == 0)
        return husk_err(err, ENOENT, "no cgroup hierarchy is mounted under '%s'", cg->root);
    cg->mode = cg->v2 >= 0 ? SBX_CGROUP_HYBRID : SBX_CGROUP_V1;
    return 0;
}

static int
cg_new(const struct sbx_cgroup_opts *o, struct sbx_cgroup **out, struct husk_error **err)
{
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = xcalloc(1, sizeof(*cg));
    cg->opts = *o;
    cg->root = xstrdup(o->root ? o->root : CG_DEFAULT_ROOT);
    cg->opts.root = cg->root;
    cg->v2 = -1;
    struct utsname u;
    if (uname(&u) < 0)
        memset(&u, 0, sizeof(u));
    cg->clone_into = kernel_at_least(&u, 5, 7);
    cg->root_fd = open(cg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg->root_fd < 0)
        return husk_err(err, errno, "open cgroup root '%s'", cg->root);
    if (detect_layout(cg, err) < 0)
        return -EINVAL;
    /* The v2 freezer (cgroup.freeze) came in 5.2; before it, only a v1 freezer can pause. */
    if (cg->v2 >= 0 && !kernel_at_least(&u, 5, 2))
        cg->h[cg->v2].ctrls &= ~CG_BIT(CG_FREEZER);
    *out = steal_ptr(&cg);
    return 0;
}

int
sbx_cgroup_detect(const struct sbx_cgroup_opts *o, enum sbx_cgroup_mode *mode,
                  struct husk_error **err)
{
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    if (cg_new(o, &cg, err) < 0)
        return -EINVAL;
    *mode = cg->mode;
    return 0;
}

/* A controller's hierarchy: v1 first, so that on hybrid hosts the freezer is the v1 one that
 * runc uses and engines read (freezer.state); cgroup2 where no v1 hierarchy has it. */
struct cg_hier *
cg_where(struct sbx_cgroup *cg, enum cg_ctrl c)
{
    for (size_t i = 0; i < cg->n_h; i++)
        if (!cg->h[i].v2 && (cg->h[i].ctrls & CG_BIT(c)))
            return &cg->h[i];
    if (cg->v2 >= 0 && (cg->h[cg->v2].ctrls & CG_BIT(c)))
        return &cg->h[cg->v2];
    return NULL;
}

/* Where the processes are tracked (ps, kill): cgroup2, else the v1 freezer. */
static struct cg_hier *
cg_tracker(struct sbx_cgroup *cg)
{
    if (cg->v2 >= 0)
        return &cg->h[cg->v2];
    struct cg_hier *h = cg_where(cg, CG_FREEZER);
    return h ? h : &cg->h[0];
}

/* ---- what the limits need ---- */

static const char *const ctrl_fields[CG_COUNT] = {
    [CG_MEMORY] = "memory",
    [CG_CPU] = "cpu",
    [CG_CPUSET] = "cpu.cpus/mems",
    [CG_PIDS] = "pids",
    [CG_BLKIO] = "blockIO",
    [CG_HUGETLB] = "hugepageLimits",
    [CG_NET_CLS] = "network.classID",
    [CG_NET_PRIO] = "network.priorities",
    [CG_RDMA] = "rdma",
    [CG_DEVICES] = "devices",
};

/* The controllers these limits need, each checked to exist on this host. */
static int
needed_ctrls(struct sbx_cgroup *cg, const struct sbx_cgroup_limits *l, unsigned *out,
             struct husk_error **err)
{
    unsigned bits = cg_limits_ctrls(l);
    for (size_t i = 0; i < l->n_unified; i++) {
        int c = cg_unified_ctrl(l->unified[i].key);
        if (c >= 0)
            bits |= CG_BIT(c);
        else if (cg->v2 < 0)
            return husk_err(err, 0, "unified '%s': cgroup v2 is not mounted on this host",
                            l->unified[i].key);
        if (c >= 0 && cg_where(cg, c) == NULL)
            return husk_err(err, 0, "unified '%s': controller '%s' is not available on this host",
                            l->unified[i].key, cg_ctrl_name(c, true));
    }
    for (int c = 0; c < CG_COUNT; c++) {
        if (!(bits & CG_BIT(c)) || cg_where(cg, c))
            continue;
        const char *why = cg->mode == SBX_CGROUP_V2 && (c == CG_NET_CLS || c == CG_NET_PRIO)
                              ? " (it exists on cgroup v1 only)"
                              : "";
        return husk_err(err, 0, "%s: the %s controller is not available on this host%s",
                        ctrl_fields[c] ? ctrl_fields[c] : cg_ctrl_name(c, false),
                        cg_ctrl_name(c, cg->mode == SBX_CGROUP_V2), why);
    }
    *out = bits;
    return 0;
}

/* ---- the path in each hierarchy ---- */

static int
normalise_path(const char *path, char **out, struct husk_error **err)
{
    if (path == NULL || path[0] != '/')
        return husk_err(err, 0, "cgroup path '%s' is not absolute", path ? path : "");
    cleanup_free char *copy = xstrdup(path);
    cleanup_free char *norm = xstrdup("");
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
            return husk_err(err, 0, "cgroup path '%s' must not contain '.' or '..'", path);
        char *next = xasprintf("%s/%s", norm, t);
        free(norm);
        norm = next;
    }
    if (norm[0] == '\0')
        return husk_err(err, 0, "cgroup path '%s' is the root cgroup", path);
    *out = steal_ptr(&norm);
    return 0;
}

static size_t
path_depth(const char *path)
{
    size_t n = 0;
    for (const char *p = path; *p; p++)
        n += *p == '/';
    return n;
}

/* rmdir the last `count` components of the path in one hierarchy, leaf first. Never the first
 * of several components: "/husk" is shared by every container. */
static int
remove_dirs(struct sbx_cgroup *cg, struct cg_hier *h, int count, bool retry_busy)
{
    cleanup_free char *rel = xasprintf("%s%s", h->dir, cg->path);
    int depth = (int)path_depth(cg->path);
    int r = 0;
    /* What we made, and every ancestor below a top-level "/husk", which is husk's whoever made
     * it: one still used by another container is busy or not empty and stays; an empty one
     * goes, so nothing of husk's outlives its containers. make_dirs() retries when a
     * concurrent delete takes a parent away under it. */
    if (str_has_prefix(cg->path, "/husk/"))
        count = depth;
    if (count > depth)
        count = depth;
    for (int i = 0; i < count; i++) {
        for (int tries = 0;; tries++) {
            if (unlinkat(cg->root_fd, rel, AT_REMOVEDIR) == 0 || errno == ENOENT)
                break;
            /* A killed process leaves its cgroup only once it is reaped: wait a little. */
            if (errno == EBUSY && retry_busy && i == 0 && tries < 500) {
                usleep(10000);
                continue;
            }
            return i == 0 ? -errno : r; /* a busy ancestor belongs to someone else too */
        }
        *strrchr(rel, '/') = '\0';
    }
    return r;
}

/* The common case in one mkdirat: the parent exists and needs nothing enabled. 1: done. */
static int
make_leaf(struct sbx_cgroup *cg, struct cg_hier *h, struct husk_error **err)
{
    cleanup_free char *rel = xasprintf("%s%s", h->dir, cg->path);
    if (mkdirat(cg->root_fd, rel, 0755) < 0) {
        if (errno == ENOENT || errno == EEXIST)
            return 0; /* the walk below makes the parents, or checks the existing leaf */
        return cg_errf(cg, h, err, errno, "create directory");
    }
    h->fd = openat(cg->root_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (h->fd < 0) {
        int e = errno;
        unlinkat(cg->root_fd, rel, AT_REMOVEDIR);
        return cg_errf(cg, h, err, e, "open directory");
    }
    h->created = 1;
    return 1;
}

/* mkdir -p PATH in hierarchy h; each directory on the way gets the controllers enabled. */
static int make_dirs_once(struct sbx_cgroup *cg, struct cg_hier *h, unsigned ctrls,
                          struct husk_error **err);

/* A concurrent delete may remove a shared parent between our mkdir and openat: try again. */
static int
make_dirs(struct sbx_cgroup *cg, struct cg_hier *h, unsigned ctrls, struct husk_error **err)
{
    for (int tries = 0;; tries++) {
        struct husk_error *e = NULL;
        int r = make_dirs_once(cg, h, ctrls, &e);
        if (r == -ENOENT && tries < 5) {
            husk_error_free(e);
            continue;
        }
        if (r < 0 && err && *err == NULL)
            *err = e;
        else
            husk_error_free(e);
        return r;
    }
}

static int
make_dirs_once(struct sbx_cgroup *cg, struct cg_hier *h, unsigned ctrls, struct husk_error **err)
{
    bool prepare = h->v2 ? ctrls != 0 : (h->ctrls & CG_BIT(CG_CPUSET)) != 0;
    int fast = prepare ? 0 : make_leaf(cg, h, err);
    if (fast != 0)
        return fast < 0 ? fast : 0;
    cleanup_fd int cur = openat(cg->root_fd, h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_free char *copy = xstrdup(cg->path + 1);
    size_t depth = path_depth(cg->path), i = 0;
    int first_new = -1, r = 0;
    char *save = NULL;

    if (cur < 0)
        return husk_err(err, errno, "open cgroup hierarchy '%s/%s'", cg->root, h->dir);
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save), i++) {
        bool fresh = mkdirat(cur, t, 0755) == 0;
        if (!fresh && errno != EEXIST) {
            r = cg_errf(cg, h, err, errno, "create directory '%s'", t);
            break;
        }
        if (fresh && first_new < 0)
            first_new = (int)i;
        int next = openat(cur, t, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            r = cg_errf(cg, h, err, errno, "open directory '%s'", t);
            break;
        }
        r = cg_ops(h)->prepare(cg, h, cur, next, ctrls, i == 0, err);
        close(cur);
        cur = next;
        if (r < 0)
            break;
    }
    int made = first_new < 0 ? 0 : (int)(depth - (size_t)first_new);
    if (r < 0) {
        remove_dirs(cg, h, made, false);
        return r;
    }
    h->created = made;
    h->fd = steal_fd(&cur);
    return 0;
}

static int
check_empty(struct sbx_cgroup *cg, struct cg_hier *h, struct husk_error **err)
{
    cleanup_free char *procs = NULL;
    if (cg_read(h, "cgroup.procs", &procs) == 0 && procs[0] != '\0')
        return cg_errf(cg, h, err, EBUSY,
                       "already holds processes (is it another container's cgroup?)");
    return 0;
}

/* ---- applying limits ---- */

static int
apply_limits(struct sbx_cgroup *cg, const struct sbx_cgroup_limits *l, bool update,
             struct husk_error **err)
{
    /* Memory first: on update it is the limit most likely to be refused, before others change. */
    static const enum cg_ctrl order[] = {CG_MEMORY,  CG_CPU,     CG_CPUSET,   CG_PIDS, CG_BLKIO,
                                         CG_HUGETLB, CG_NET_CLS, CG_NET_PRIO, CG_RDMA, CG_DEVICES};
    unsigned bits = cg_limits_ctrls(l);
    for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
        enum cg_ctrl c = order[i];
        struct cg_hier *h = cg_where(cg, c);
        if (!(bits & CG_BIT(c)) || h == NULL || h->fd < 0 || cg_ops(h)->apply[c] == NULL)
            continue;
        int r = cg_ops(h)->apply[c](cg, h, l, update, err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < l->n_unified; i++) {
        int c = cg_unified_ctrl(l->unified[i].key);
        struct cg_hier *h = c >= 0 ? cg_where(cg, (enum cg_ctrl)c) : &cg->h[cg->v2];
        int r = cg_ops(h)->unified(cg, &l->unified[i], update, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool
joins(struct sbx_cgroup *cg, struct cg_hier *h, unsigned need)
{
    /* The v1 freezer too, where there is one: pause uses it, as runc does and engines expect
     * (they read freezer.state on v1 and hybrid hosts). */
    if (h == cg_tracker(cg) || (!h->v2 && (h->ctrls & CG_BIT(CG_FREEZER))))
        return true;
    for (int c = 0; c < CG_COUNT; c++)
        if ((need & CG_BIT(c)) && cg_where(cg, (enum cg_ctrl)c) == h)
            return true;
    return false;
}

/* The v2 controllers to enable on the way down: the real ones among `need`. */
static unsigned
v2_enable(struct sbx_cgroup *cg, unsigned need)
{
    unsigned bits = 0;
    for (int c = 0; c < CG_COUNT; c++)
        if ((need & CG_BIT(c)) && cg_where(cg, (enum cg_ctrl)c) == &cg->h[cg->v2])
            bits |= CG_BIT(c);
    return bits & ~CG_V2_CORE;
}

static int
create_in(struct sbx_cgroup *cg, unsigned need, struct husk_error **err)
{
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (h->fd >= 0 || !joins(cg, h, need))
            continue;
        unsigned ctrls = h->v2 ? v2_enable(cg, need) : h->ctrls;
        int r = make_dirs(cg, h, ctrls, err);
        if (r == 0 && h->created == 0)
            r = check_empty(cg, h, err);
        if (r < 0)
            return r;
        /* The leaf is the container's, even when an earlier run left it behind empty. */
        if (h->created == 0)
            h->created = 1;
        if (h->created > cg->owned)
            cg->owned = h->created;
    }
    return 0;
}

static void
undo_create(struct sbx_cgroup *cg)
{
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (h->fd < 0)
            continue;
        close(h->fd);
        h->fd = -1;
        remove_dirs(cg, h, h->created, false);
    }
}

int
sbx_cgroup_create(const struct sbx_cgroup_opts *o, const char *path,
                  const struct sbx_cgroup_limits *l, struct sbx_cgroup **out,
                  struct husk_error **err)
{
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    cleanup_free char *field = NULL;
    unsigned need = 0;
    int r;

    if (sbx_cgroup_limits_check(l, &field, err) < 0)
        return husk_err_prefix(err, "%s: ", field);
    if ((r = cg_new(o, &cg, err)) < 0)
        return r;
    if ((r = normalise_path(path, &cg->path, err)) < 0 || (r = needed_ctrls(cg, l, &need, err)) < 0)
        return r;
    r = create_in(cg, need, err);
    if (r == 0)
        r = apply_limits(cg, l, false, err);
    if (r < 0) {
        undo_create(cg);
        return r;
    }
    *out = steal_ptr(&cg);
    return 0;
}

int
sbx_cgroup_open(const struct sbx_cgroup_opts *o, const char *path, int owned,
                struct sbx_cgroup **out, struct husk_error **err)
{
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    int r;
    if ((r = cg_new(o, &cg, err)) < 0 || (r = normalise_path(path, &cg->path, err)) < 0)
        return r;
    cg->owned = owned;
    bool any = false;
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        cleanup_free char *rel = xasprintf("%s%s", h->dir, cg->path);
        h->fd = openat(cg->root_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (h->fd < 0 && errno != ENOENT)
            return husk_err(err, errno, "open cgroup '%s/%s'", cg->root, rel);
        h->created = owned;
        any = any || h->fd >= 0;
    }
    if (!any)
        return husk_err(err, ENOENT, "cgroup '%s' does not exist under '%s'", cg->path, cg->root);
    *out = steal_ptr(&cg);
    return 0;
}

/* Thousands of idle sandboxes each holding a directory fd per hierarchy would run a daemon out
 * of fds: a parked cgroup keeps its paths and holds none. */
void
sbx_cgroup_park(struct sbx_cgroup *cg)
{
    for (size_t i = 0; i < cg->n_h; i++)
        if (cg->h[i].fd >= 0) {
            close(cg->h[i].fd);
            cg->h[i].fd = -1;
            cg->h[i].parked = true;
        }
    if (cg->root_fd >= 0)
        close(cg->root_fd);
    cg->root_fd = -1;
}

int
sbx_cgroup_unpark(struct sbx_cgroup *cg, struct husk_error **err)
{
    if (cg->root_fd < 0 && (cg->root_fd = open(cg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return husk_err(err, errno, "open cgroup root '%s'", cg->root);
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (!h->parked)
            continue;
        cleanup_free char *rel = xasprintf("%s%s", h->dir, cg->path);
        h->fd = openat(cg->root_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (h->fd < 0)
            return cg_errf(cg, h, err, errno, "open directory again");
        h->parked = false;
    }
    return 0;
}

void
sbx_cgroup_free(struct sbx_cgroup *cg)
{
    if (cg == NULL)
        return;
    for (size_t i = 0; i < cg->n_h; i++) {
        if (cg->h[i].fd >= 0)
            close(cg->h[i].fd);
        free(cg->h[i].dir);
        free(cg->h[i].self_from);
    }
    if (cg->root_fd >= 0)
        close(cg->root_fd);
    free(cg->root);
    free(cg->path);
    free(cg);
}

void
sbx_cgroup_freep(struct sbx_cgroup **cg)
{
    sbx_cgroup_free(*cg);
    *cg = NULL;
}

const char *
sbx_cgroup_path(const struct sbx_cgroup *cg)
{
    return cg->path;
}

int
sbx_cgroup_owned(const struct sbx_cgroup *cg)
{
    return cg->owned;
}

enum sbx_cgroup_mode
sbx_cgroup_get_mode(const struct sbx_cgroup *cg)
{
    return cg->mode;
}

char *
sbx_cgroup_describe(const struct sbx_cgroup *cg)
{
    char *s = xstrdup("");
    for (size_t i = 0; i < cg->n_h; i++) {
        if (cg->h[i].fd < 0)
            continue;
        const char *name = cg->h[i].v2 ? "cgroup2" : cg->h[i].dir;
        char *next = xasprintf("%s%s%s", s, s[0] ? "," : "", name);
        free(s);
        s = next;
    }
    return s;
}

/* ---- update ---- */

/* Hierarchies joined after the start get every process, moved while the cgroup is frozen so
 * that no fork slips through. */
static int
move_into(struct sbx_cgroup *cg, const bool *fresh, struct husk_error **err)
{
    cleanup_free pid_t *pids = NULL;
    size_t n = 0;
    int was = sbx_cgroup_is_frozen(cg);
    int r = was == 0 ? sbx_cgroup_freeze(cg, true, err) : 0;
    if (r == 0)
        r = sbx_cgroup_pids(cg, &pids, &n, err);
    for (size_t i = 0; r == 0 && i < cg->n_h; i++) {
        if (!fresh[i])
            continue;
        for (size_t k = 0; r == 0 && k < n; k++) {
            struct husk_error *e = NULL;
            r = cg_join_pid(cg, &cg->h[i], pids[k], &e);
            if (r == -ESRCH) /* exited meanwhile */
                r = 0;
            if (r < 0 && err && *err == NULL)
                *err = e;
            else
                husk_error_free(e);
        }
    }
    if (was == 0)
        sbx_cgroup_freeze(cg, false, r < 0 ? NULL : err);
    return r;
}

int
sbx_cgroup_update(struct sbx_cgroup *cg, const struct sbx_cgroup_limits *l, struct husk_error **err)
{
    cleanup_free char *field = NULL;
    bool fresh[CG_MAX_HIER] = {false}, any_fresh = false;
    unsigned need = 0;
    int r;

    if (sbx_cgroup_limits_check(l, &field, err) < 0)
        return husk_err_prefix(err, "%s: ", field);
    if ((r = needed_ctrls(cg, l, &need, err)) < 0)
        return r;
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (h->v2 && h->fd >= 0 && v2_enable(cg, need)) {
            /* The same directories: enable what the new limits need on the way down. */
            int fd = steal_fd(&h->fd);
            r = make_dirs(cg, h, v2_enable(cg, need), err);
            h->created = cg->owned;
            if (r < 0) {
                h->fd = fd;
                return r;
            }
            close(fd);
        } else if (h->fd < 0 && joins(cg, h, need)) {
            if ((r = make_dirs(cg, h, h->ctrls, err)) < 0)
                goto undo;
            fresh[i] = any_fresh = true;
            if (h->created > cg->owned)
                cg->owned = h->created;
        }
    }
    if ((r = apply_limits(cg, l, true, err)) < 0 ||
        (any_fresh && (r = move_into(cg, fresh, err)) < 0))
        goto undo;
    return 0;
undo:
    for (size_t i = 0; i < cg->n_h; i++) {
        if (!fresh[i])
            continue;
        close(cg->h[i].fd);
        cg->h[i].fd = -1;
        remove_dirs(cg, &cg->h[i], cg->h[i].created, false);
    }
    return r;
}

int
sbx_cgroup_try_remove(struct sbx_cgroup *cg, struct husk_error **err)
{
    int ret = 0;
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (h->fd < 0)
            continue;
        int r = remove_dirs(cg, h, h->created > 0 ? h->created : 1, false);
        if (r == -EBUSY) {
            ret = -EBUSY; /* kept: the next call tries again */
            continue;
        }
        close(h->fd);
        h->fd = -1;
        if (r < 0 && ret == 0)
            ret = cg_errf(cg, h, err, -r, "remove");
    }
    return ret;
}

int
cg_remove_all(struct sbx_cgroup *cg, struct husk_error **err)
{
    int ret = 0;
    for (size_t i = 0; i < cg->n_h; i++) {
        struct cg_hier *h = &cg->h[i];
        if (h->fd < 0)
            continue;
        close(h->fd);
        h->fd = -1;
        int r = remove_dirs(cg, h, h->created > 0 ? h->created : 1, true);
        if (r < 0 && ret == 0)
            ret = cg_errf(cg, h, err, -r, "remove");
    }
    return ret;
}
