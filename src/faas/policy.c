/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The deploy policy: what any function may ask of its sandbox, whoever deploys it. A deploy
 * names files on the host (a bundle, an image, a root directory) that the daemon, as root,
 * will turn into a sandbox, so each is opened once here, checked (owned by root or by the
 * deployer, writable by no one else, reached without symlinks) and used by fd from then on.
 * The sandbox plan built from it is then held to the policy in one place, faas_policy_apply():
 * refusals name the field and the rule; what every function gets is forced.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faas-internal.h"
#include "util.h"

/* Docker's default capability set: a bundle may ask for these, and nothing else. */
#define POLICY_CAPS                                                                                \
    ((1ull << CAP_CHOWN) | (1ull << CAP_DAC_OVERRIDE) | (1ull << CAP_FSETID) |                     \
     (1ull << CAP_FOWNER) | (1ull << CAP_MKNOD) | (1ull << CAP_NET_RAW) | (1ull << CAP_SETGID) |   \
     (1ull << CAP_SETUID) | (1ull << CAP_SETFCAP) | (1ull << CAP_SETPCAP) |                        \
     (1ull << CAP_NET_BIND_SERVICE) | (1ull << CAP_SYS_CHROOT) | (1ull << CAP_KILL) |              \
     (1ull << CAP_AUDIT_WRITE))

/* Filesystems a bundle may mount: each is private to the sandbox's namespaces. */
static const char *const policy_fs_types[] = {"proc",   "sysfs",  "tmpfs",  "devpts",
                                              "mqueue", "cgroup", "cgroup2"};

/* ---- trusted files */

/* Whether st may be trusted as an entry that `owner` (or root) controls alone. */
static const char *
untrusted_why(const struct stat *st, uid_t owner)
{
    if (st->st_uid != 0 && st->st_uid != owner)
        return "is owned by another user";
    if ((st->st_mode & S_IWOTH) || ((st->st_mode & S_IWGRP) && st->st_gid != 0))
        return "is writable by other users";
    return NULL;
}

/* A directory others may write to lets them swap its entries, unless it is sticky (then only
 * an entry's owner may rename it, and the entry itself is checked). */
static bool
dir_lets_others_swap(const struct stat *st)
{
    bool others = (st->st_mode & S_IWOTH) || ((st->st_mode & S_IWGRP) && st->st_gid != 0);
    return others && !(st->st_mode & S_ISVTX);
}

int
faas_open_trusted(const char *path, uid_t owner, bool want_dir, const char *field, int *out,
                  struct husk_error **err)
{
    if (path[0] != '/')
        return husk_err(err, 0, "field '%s': '%s' must be an absolute path", field, path);
    cleanup_free char *copy = xstrdup(path);
    cleanup_fd int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat parent, st;
    if (fd < 0 || fstat(fd, &parent) < 0)
        return husk_err(err, errno, "open '/'");
    st = parent; /* the path "/" itself */
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0)
            return husk_err(err, 0, "field '%s': '%s' must be a canonical path (no '%s')", field,
                            path, c);
        int next = openat(fd, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return husk_err(err, errno, "field '%s': '%s'", field, path);
        close(fd);
        fd = next;
        if (fstat(fd, &st) < 0)
            return husk_err(err, errno, "field '%s': '%s'", field, path);
        if (S_ISLNK(st.st_mode))
            return husk_err(err, 0,
                            "field '%s': '%s': '%s' is a symlink (deploy policy: give the path "
                            "without symlinks)",
                            field, path, c);
        if (dir_lets_others_swap(&parent))
            return husk_err(err, 0,
                            "field '%s': '%s': a parent directory of '%s' is writable by other "
                            "users (deploy policy)",
                            field, path, c);
        /* Each directory on the way is its owner's to change (checked as the next one's
         * parent); the target itself must be writable by no one else either. */
        bool last = save == NULL || save[strspn(save, "/")] == '\0';
        const char *why = last                                   ? untrusted_why(&st, owner)
                          : st.st_uid != 0 && st.st_uid != owner ? "is owned by another user"
                                                                 : NULL;
        if (why)
            return husk_err(err, 0, "field '%s': '%s': '%s' %s (deploy policy)", field, path, c,
                            why);
        parent = st;
    }
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return husk_err(err, 0, "field '%s': '%s' is not a %s", field, path,
                        want_dir ? "directory" : "regular file");
    if (!want_dir) { /* a file is read through this fd: reopen it for reading */
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        int rd = open(proc, O_RDONLY | O_CLOEXEC);
        if (rd < 0)
            return husk_err(err, errno, "field '%s': '%s'", field, path);
        close(fd);
        fd = rd;
    }
    *out = steal_fd(&fd);
    return 0;
}

int
faas_recheck_trusted(int fd, uid_t owner, const char *what, struct husk_error **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return husk_err(err, errno, "%s", what);
    const char *why = untrusted_why(&st, owner);
    if (why)
        return husk_err(err, 0, "%s %s since it was deployed (deploy policy)", what, why);
    return 0;
}

/* ---- the sandbox plan */

static int
refuse(struct husk_error **err, const char *field, const char *rule)
{
    return husk_err(err, 0, "field '%s': refused by the deploy policy: %s", field, rule);
}

static bool
beneath(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0' || n == 1);
}

int
faas_policy_check_bind(const struct faas_policy *p, const char *source, const char *field,
                       struct husk_error **err)
{
    char real[PATH_MAX];
    if (source == NULL || realpath(source, real) == NULL)
        return husk_err(err, errno ? errno : EINVAL, "field '%s': '%s'", field,
                        source ? source : "");
    if (strcmp(real, source) != 0)
        return refuse(err, field, "a bind source must be a canonical path without symlinks");
    for (size_t k = 0; k < p->n_allow_bind; k++)
        if (beneath(real, p->allow_bind[k]))
            return 0;
    cleanup_free char *rule = xasprintf("'%s' is not beneath a directory the operator allows "
                                        "(husk serve --allow-bind DIR)",
                                        source);
    return refuse(err, field, rule);
}

static int
check_bind(const struct faas_policy *p, const struct sbx_mount *m, size_t i,
           struct husk_error **err)
{
    cleanup_free char *field = xasprintf("mounts[%zu].source", i);
    return faas_policy_check_bind(p, m->source, field, err);
}

static int
check_mounts(const struct faas_policy *p, const struct sbx_config *c, struct husk_error **err)
{
    for (size_t i = 0; i < c->n_mounts; i++) {
        const struct sbx_mount *m = &c->mounts[i];
        if (m->flags & MS_BIND) {
            int r = check_bind(p, m, i, err);
            if (r < 0)
                return r;
            continue;
        }
        bool ok = false;
        for (size_t k = 0; k < ARRAY_SIZE(policy_fs_types); k++)
            ok |= m->type && strcmp(m->type, policy_fs_types[k]) == 0;
        if (!ok) {
            cleanup_free char *field = xasprintf("mounts[%zu].type", i);
            cleanup_free char *rule =
                xasprintf("filesystem '%s' (allowed: proc, sysfs, tmpfs, devpts, mqueue, "
                          "cgroup, cgroup2 and binds of allowed directories)",
                          m->type ? m->type : "");
            return refuse(err, field, rule);
        }
    }
    return 0;
}

static int
check_caps(const struct sbx_caps *caps, struct husk_error **err)
{
    const uint64_t *sets[] = {&caps->bounding, &caps->effective, &caps->inheritable,
                              &caps->permitted, &caps->ambient};
    static const char *const names[] = {"bounding", "effective", "inheritable", "permitted",
                                        "ambient"};
    if (!caps->set)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
        uint64_t extra = *sets[i] & ~POLICY_CAPS;
        if (extra == 0)
            continue;
        int cap = __builtin_ctzll(extra);
        char *name = cap_to_name(cap); /* libcap's: freed with cap_free */
        for (char *p = name; p && *p; p++)
            *p = (char)toupper((unsigned char)*p); /* as OCI configs spell it */
        cleanup_free char *field = xasprintf("process.capabilities.%s", names[i]);
        cleanup_free char *rule = xasprintf("%s is beyond the default capability set", name);
        cap_free(name);
        return refuse(err, field, rule);
    }
    return 0;
}

static int
check_process(const struct sbx_process *pr, struct husk_error **err)
{
    if (pr->uid >= FAAS_USERNS_SIZE || pr->gid >= FAAS_USERNS_SIZE)
        return refuse(err, "process.user",
                      "uid and gid must be below 65536 (the function's range)");
    for (size_t i = 0; i < pr->n_groups; i++)
        if (pr->groups[i] >= FAAS_USERNS_SIZE)
            return refuse(err, "process.user.additionalGids",
                          "group ids must be below 65536 (the function's range)");
    if (pr->has_oom_score_adj && pr->oom_score_adj < 0)
        return refuse(err, "process.oomScoreAdj", "a negative score needs host privilege");
    return check_caps(&pr->caps, err);
}

static bool
default_device(const struct sbx_cg_device_rule *d)
{
    for (size_t k = 0; k < sbx_cg_n_default_devices; k++) {
        const struct sbx_cg_device_rule *e = &sbx_cg_default_devices[k];
        if (e->allow && e->type == d->type && e->major == d->major && e->minor == d->minor &&
            strcmp(e->access, d->access) == 0)
            return true;
    }
    return false;
}

static int
check_resources(const struct oci_resources *res, struct husk_error **err)
{
    if (res == NULL)
        return 0;
    const struct sbx_cgroup_limits *l = &res->limits;
    for (size_t i = 0; i < l->n_devices; i++)
        if (l->devices[i].allow && !default_device(&l->devices[i]))
            return refuse(err, "linux.resources.devices", "no device access beyond the defaults");
    if (l->cpu.rt_runtime.set || l->cpu.rt_period.set)
        return refuse(err,
                      l->cpu.rt_runtime.set ? "linux.resources.cpu.realtimeRuntime"
                                            : "linux.resources.cpu.realtimePeriod",
                      "no real-time CPU budget");
    for (size_t i = 0; i < l->n_unified; i++)
        if (str_has_prefix(l->unified[i].key, "cgroup."))
            return refuse(err, "linux.resources.unified",
                          "cgroup.* files are the daemon's (only limits may be set)");
    return 0;
}

static int
check_bundle(const struct faas_policy *p, const struct oci_config *oc, struct husk_error **err)
{
    const struct sbx_config *c = oc->sbx;
    for (int t = 0; t < SBX_NS_COUNT; t++)
        if (c->ns[t].path) {
            cleanup_free char *field = xasprintf("linux.namespaces[%s]", sbx_ns_name(t));
            return refuse(err, field, "no joining of existing namespaces");
        }
    if (c->n_uid_map || c->n_gid_map)
        return refuse(err, "linux.uidMappings",
                      "each function gets its own host id range from the daemon");
    if (c->n_devices)
        return refuse(err, "linux.devices", "no devices beyond the defaults");
    if (c->n_sysctl)
        return refuse(err, "linux.sysctl", "no sysctls");
    for (int k = 0; k < OCI_HOOK__COUNT; k++)
        if (oc->n_hooks[k]) {
            cleanup_free char *field = xasprintf("hooks.%s", oci_hook_name(k));
            return refuse(err, field, "no hooks (they would run as root on the host)");
        }
    if (json_object_get(oc->seccomp, "listenerPath"))
        return refuse(err, "linux.seccomp.listenerPath", "no seccomp agents");
    int r = check_mounts(p, c, err);
    if (r == 0)
        r = check_process(&c->process, err);
    if (r == 0)
        r = check_resources(oc->resources, err);
    return r;
}

/* Add each of `add` missing from *v. */
static void
strv_union(char ***v, char *const *add)
{
    for (; add && *add; add++) {
        bool have = false;
        for (char **e = *v; e && *e && !have; e++)
            have = strcmp(*e, *add) == 0;
        if (have)
            continue;
        size_t n = strv_len(*v);
        *v = xrealloc(*v, (n + 2) * sizeof(char *));
        (*v)[n] = xstrdup(*add);
        (*v)[n + 1] = NULL;
    }
}

int
faas_policy_apply(const struct faas_policy *p, struct oci_config *oc, bool from_bundle,
                  bool landlock, struct husk_error **err)
{
    struct sbx_config *c = oc->sbx;
    if (from_bundle) {
        int r = check_bundle(p, oc, err);
        if (r < 0)
            return r;
        /* The default masked and read-only paths stay, whatever the bundle lists. */
        cleanup_(oci_config_freep) struct oci_config *def = NULL;
        if ((r = oci_config_default("/", &def, err)) < 0)
            return r;
        strv_union(&c->masked_paths, def->sbx->masked_paths);
        strv_union(&c->readonly_paths, def->sbx->readonly_paths);
    }
    /* A function's root is read-only (a bundle's too: through the idmapped root its root user
     * owns the host's root-owned files), with a fresh tmpfs on /tmp unless it mounts one. */
    c->rootfs_readonly = true;
    bool has_tmp = false;
    for (size_t i = 0; i < c->n_mounts; i++)
        has_tmp |= strcmp(c->mounts[i].destination, "/tmp") == 0;
    if (!has_tmp)
        faas_add_tmp(c);
    /* Every namespace is the function's own; killing its first process ends all of it. */
    for (int t = 0; t < SBX_NS_COUNT; t++)
        if (t != SBX_NS_TIME)
            c->ns[t].enabled = true;
    c->rootfs_propagation = 0;
    c->process.no_new_privs = true;
    /* A bundle's own landlock rules are its tightening; otherwise the root and nothing else. */
    if (landlock && !c->process.landlock.enabled) {
        c->process.landlock.enabled = true;
        c->process.landlock.scoped = true;
        c->process.landlock.write_paths = xcalloc(2, sizeof(char *));
        c->process.landlock.write_paths[0] = xstrdup("/");
    }
    return 0;
}

void
faas_policy_idmap(struct sbx_config *c, uint32_t base)
{
    free(c->uid_map);
    free(c->gid_map);
    c->uid_map = xcalloc(1, sizeof(*c->uid_map));
    c->gid_map = xcalloc(1, sizeof(*c->gid_map));
    *c->uid_map = (struct sbx_idmap){.inner = 0, .outer = base, .count = FAAS_USERNS_SIZE};
    *c->gid_map = *c->uid_map;
    c->n_uid_map = c->n_gid_map = 1;
    c->rootfs_idmap = true; /* what the host's root owns in the root is the function's root's */
}
