/* SPDX-License-Identifier: Apache-2.0 */
/* config.json -> struct sbx_config. The only file that knows the config's shape. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sys/capability.h>

#include "json-get.h"
#include "oci.h"
#include "util.h"

static const struct {
    const char *name;
    int resource;
} rlimit_table[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

static int
parse_rlimits(const struct jctx *c, json_t *proc, struct sbx_process *p, struct husk_error **err)
{
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(c, proc, "rlimits", "process.rlimits", false, &arr, err);
    if (r <= 0)
        return r;
    p->rlimits = xcalloc(json_array_size(arr), sizeof(*p->rlimits));
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *path = xasprintf("process.rlimits[%zu]", i);
        cleanup_free char *tp = xasprintf("%s.type", path);
        cleanup_free char *hp = xasprintf("%s.hard", path);
        cleanup_free char *sp = xasprintf("%s.soft", path);
        cleanup_free char *type = NULL;
        int64_t hard = 0, soft = 0;
        size_t k;

        if ((r = jget_string(c, e, "type", tp, true, &type, err)) < 0 ||
            (r = jget_int(c, e, "hard", hp, true, 0, INT64_MAX, &hard, err)) < 0 ||
            (r = jget_int(c, e, "soft", sp, true, 0, INT64_MAX, &soft, err)) < 0)
            return r;
        for (k = 0; k < ARRAY_SIZE(rlimit_table); k++)
            if (strcmp(type, rlimit_table[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(rlimit_table))
            return jerr(c, tp, err, "unknown rlimit '%s'", type);
        for (size_t j = 0; j < p->n_rlimits; j++)
            if (p->rlimits[j].resource == rlimit_table[k].resource)
                return jerr(c, tp, err, "rlimit '%s' given twice", type);
        p->rlimits[p->n_rlimits++] = (struct sbx_rlimit){
            .resource = rlimit_table[k].resource, .soft = (uint64_t)soft, .hard = (uint64_t)hard};
    }
    return 0;
}

static int
parse_user(const struct jctx *c, json_t *proc, struct sbx_process *p, struct husk_error **err)
{
    json_t *user = NULL, *gids = NULL, *e;
    int64_t v = 0;
    size_t i;
    int r;

    if ((r = jget_object(c, proc, "user", "process.user", false, &user, err)) <= 0)
        return r;
    if ((r = jget_int(c, user, "uid", "process.user.uid", false, 0, UINT32_MAX - 1, &v, err)) < 0)
        return r;
    p->uid = (uint32_t)v;
    v = 0;
    if ((r = jget_int(c, user, "gid", "process.user.gid", false, 0, UINT32_MAX - 1, &v, err)) < 0)
        return r;
    p->gid = (uint32_t)v;
    if ((r = jget_int(c, user, "umask", "process.user.umask", false, 0, 0777, &v, err)) < 0)
        return r;
    p->umask = r > 0 ? (int)v : -1;
    if (json_object_get(user, "username"))
        return jerr(c, "process.user.username", err, "is for Windows containers only");
    if ((r = jget_array(c, user, "additionalGids", "process.user.additionalGids", false, &gids,
                        err)) <= 0)
        return r;
    p->groups = xcalloc(json_array_size(gids), sizeof(uint32_t));
    json_array_foreach(gids, i, e)
    {
        cleanup_free char *gp = xasprintf("process.user.additionalGids[%zu]", i);
        if ((r = jget_int(c, e, NULL, gp, true, 0, UINT32_MAX - 1, &v, err)) < 0)
            return r;
        p->groups[p->n_groups++] = (uint32_t)v;
    }
    return 0;
}

static void
warn(struct oci_config *oc, char *msg)
{
    size_t n = strv_len(oc->warnings);
    oc->warnings = xrealloc(oc->warnings, (n + 2) * sizeof(char *));
    oc->warnings[n] = msg;
    oc->warnings[n + 1] = NULL;
}

static int
parse_capset(const struct jctx *c, json_t *caps, const char *key, struct oci_config *oc,
             uint64_t *out, struct husk_error **err)
{
    cleanup_free char *path = xasprintf("process.capabilities.%s", key);
    cleanup_strv char **names = NULL;
    int r = jget_strv(c, caps, key, path, false, &names, err);
    for (size_t i = 0; r > 0 && names[i]; i++) {
        cap_value_t v;
        /* Unknown names warn and are skipped, as the runtime spec asks. */
        if (!str_has_prefix(names[i], "CAP_") || cap_from_name(names[i], &v) < 0 || v > 63 ||
            !CAP_IS_SUPPORTED(v)) {
            warn(oc, xasprintf("%s: field '%s': unknown capability '%s' ignored", c->file, path,
                               names[i]));
            continue;
        }
        *out |= 1ull << v;
    }
    return r < 0 ? r : 0;
}

static int
parse_caps(const struct jctx *c, json_t *proc, struct oci_config *oc, struct husk_error **err)
{
    struct sbx_caps *caps = &oc->sbx->process.caps;
    json_t *obj = NULL;
    int r = jget_object(c, proc, "capabilities", "process.capabilities", false, &obj, err);
    /* No capabilities object means no capabilities (stricter than runc, which keeps all). */
    caps->set = true;
    if (r <= 0)
        return r;
    if ((r = parse_capset(c, obj, "bounding", oc, &caps->bounding, err)) < 0 ||
        (r = parse_capset(c, obj, "effective", oc, &caps->effective, err)) < 0 ||
        (r = parse_capset(c, obj, "inheritable", oc, &caps->inheritable, err)) < 0 ||
        (r = parse_capset(c, obj, "permitted", oc, &caps->permitted, err)) < 0 ||
        (r = parse_capset(c, obj, "ambient", oc, &caps->ambient, err)) < 0)
        return r;
    return 0;
}

static int
parse_process(const struct jctx *c, json_t *root, struct oci_config *oc, struct husk_error **err)
{
    struct sbx_process *p = &oc->sbx->process;
    json_t *proc = NULL;
    int64_t v = 0;
    int r;

    p->umask = -1;
    if ((r = jget_object(c, root, "process", "process", true, &proc, err)) < 0)
        return r;
    if ((r = jget_strv(c, proc, "args", "process.args", true, &p->args, err)) < 0)
        return r;
    if (p->args[0] == NULL || p->args[0][0] == '\0')
        return jerr(c, "process.args", err, "must name a program");
    if ((r = jget_strv(c, proc, "env", "process.env", false, &p->env, err)) < 0)
        return r;
    if (p->env == NULL)
        p->env = xcalloc(1, sizeof(char *));
    for (size_t i = 0; p->env[i]; i++)
        if (strchr(p->env[i], '=') == NULL) {
            cleanup_free char *ep = xasprintf("process.env[%zu]", i);
            return jerr(c, ep, err, "'%s' is not of the form NAME=value", p->env[i]);
        }
    if ((r = jget_string(c, proc, "cwd", "process.cwd", true, &p->cwd, err)) < 0)
        return r;
    if (p->cwd[0] != '/')
        return jerr(c, "process.cwd", err, "'%s' is not an absolute path", p->cwd);
    if ((r = jget_bool(c, proc, "terminal", "process.terminal", &oc->terminal, err)) < 0 ||
        (r = jget_bool(c, proc, "noNewPrivileges", "process.noNewPrivileges", &p->no_new_privs,
                       err)) < 0)
        return r;
    p->terminal = oc->terminal;
    json_t *size = NULL;
    if ((r = jget_object(c, proc, "consoleSize", "process.consoleSize", false, &size, err)) < 0)
        return r;
    if (size) {
        int64_t h = 0, w = 0;
        if ((r = jget_int(c, size, "height", "process.consoleSize.height", true, 0, 65535, &h,
                          err)) < 0 ||
            (r = jget_int(c, size, "width", "process.consoleSize.width", true, 0, 65535, &w, err)) <
                0)
            return r;
        p->console_rows = (unsigned short)h;
        p->console_cols = (unsigned short)w;
    }
    if ((r = jget_int(c, proc, "oomScoreAdj", "process.oomScoreAdj", false, -1000, 1000, &v, err)) <
        0)
        return r;
    p->has_oom_score_adj = r > 0;
    p->oom_score_adj = (int)v;
    if ((r = parse_user(c, proc, p, err)) < 0 || (r = parse_caps(c, proc, oc, err)) < 0)
        return r;
    return parse_rlimits(c, proc, p, err);
}

int
oci_process_parse(json_t *proc, const char *file, struct oci_config *oc, struct husk_error **err)
{
    struct jctx c = {.file = file};
    struct sbx_process *p = &oc->sbx->process;
    cleanup_json json_t *root = json_pack("{s:O}", "process", proc);

    strv_freep(&p->args);
    strv_freep(&p->env);
    free(p->cwd);
    free(p->groups);
    free(p->rlimits);
    p->cwd = NULL;
    p->groups = NULL;
    p->rlimits = NULL;
    p->n_groups = p->n_rlimits = 0;
    p->caps = (struct sbx_caps){0};
    p->uid = p->gid = 0;
    return parse_process(&c, root, oc, err);
}

static char *
bundle_path(const char *bundle, const char *p)
{
    return p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", bundle, p);
}

static int
parse_root(const struct jctx *c, json_t *root, struct oci_config *oc, struct husk_error **err)
{
    json_t *r_obj = NULL;
    cleanup_free char *path = NULL;
    char real[PATH_MAX];
    int r;

    if ((r = jget_object(c, root, "root", "root", true, &r_obj, err)) < 0 ||
        (r = jget_string(c, r_obj, "path", "root.path", true, &path, err)) < 0 ||
        (r = jget_bool(c, r_obj, "readonly", "root.readonly", &oc->sbx->rootfs_readonly, err)) < 0)
        return r;
    cleanup_free char *full = bundle_path(oc->bundle, path);
    if (realpath(full, real) == NULL)
        return husk_err(err, errno, "%s: field 'root.path': rootfs '%s'", c->file, full);
    oc->sbx->rootfs = xstrdup(real);
    return 0;
}

static int
parse_one_mount(const struct jctx *c, json_t *e, const char *path, struct oci_config *oc,
                struct sbx_mount *m, struct husk_error **err)
{
    cleanup_free char *dp = xasprintf("%s.destination", path);
    cleanup_free char *tp = xasprintf("%s.type", path);
    cleanup_free char *sp = xasprintf("%s.source", path);
    cleanup_free char *op = xasprintf("%s.options", path);
    cleanup_free char *dst = NULL, *src = NULL;
    json_t *opts = NULL;
    int r;

    if (!json_is_object(e))
        return jerr(c, path, err, "expected an object");
    if ((r = jget_string(c, e, "destination", dp, true, &dst, err)) < 0 ||
        (r = jget_string(c, e, "type", tp, false, &m->type, err)) < 0 ||
        (r = jget_string(c, e, "source", sp, false, &src, err)) < 0 ||
        (r = jget_array(c, e, "options", op, false, &opts, err)) < 0)
        return r;
    /* runc accepts a relative destination as relative to "/"; so do we. */
    m->destination = dst[0] == '/' ? xstrdup(dst) : xasprintf("/%s", dst);
    if (opts) {
        struct husk_error *e2 = NULL;
        if (oci_mount_options(opts, op, m, &e2) < 0) {
            r = husk_err(err, 0, "%s: %s", c->file, e2->msg);
            husk_error_free(e2);
            return r;
        }
    }
    if (m->type && strcmp(m->type, "bind") == 0)
        m->flags |= MS_BIND;
    if (m->flags & MS_BIND) {
        if (src == NULL)
            return jerr(c, sp, err, "a bind mount needs a source");
        m->source = bundle_path(oc->bundle, src);
        if (access(m->source, F_OK) < 0)
            return husk_err(err, errno, "%s: field '%s': bind source '%s'", c->file, sp, m->source);
    } else {
        if (m->type == NULL)
            return jerr(c, tp, err, "is required unless the mount is a bind mount");
        m->source = src ? xstrdup(src) : NULL;
    }
    return 0;
}

/* Files under /proc that may be covered (lxcfs and friends), as runc allows. */
static const char *const proc_allowed[] = {
    "/proc/cpuinfo", "/proc/diskstats",
    "/proc/meminfo", "/proc/stat",
    "/proc/swaps",   "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo",
    "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
};

/* Lexically clean an absolute path: no "//", ".", "..", or trailing "/". */
static char *
clean_path(const char *in)
{
    size_t len = strlen(in);
    char *out = xcalloc(len + 2, 1);
    size_t o = 0;
    for (const char *p = in; *p;) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

/*
 * Nothing but procfs goes on /proc, and nothing goes over its files but the few that lxcfs
 * covers (CVE-2019-16884 class). The child checks the resolved target again with fstatfs, so
 * a symlink that leads into /proc is caught too.
 */
static int
check_proc_mount(const struct jctx *c, const char *path, struct sbx_mount *m,
                 struct husk_error **err)
{
    cleanup_free char *dst = clean_path(m->destination);
    bool is_proc = m->type && strcmp(m->type, "proc") == 0;

    if (strcmp(dst, "/proc") == 0) {
        if (!is_proc)
            return jerr(c, path, err, "only procfs may be mounted on /proc");
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(proc_allowed); i++)
        if (strcmp(dst, proc_allowed[i]) == 0)
            m->allow_on_proc = true;
    if (str_has_prefix(dst, "/proc/") && !m->allow_on_proc)
        return jerr(c, path, err, "mounting over '%s' inside /proc is not allowed", dst);
    return 0;
}

static int
parse_mounts(const struct jctx *c, json_t *root, struct oci_config *oc, struct husk_error **err)
{
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(c, root, "mounts", "mounts", false, &arr, err);
    if (r <= 0)
        return r;
    struct sbx_config *s = oc->sbx;
    s->mounts = xcalloc(json_array_size(arr), sizeof(*s->mounts));
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *path = xasprintf("mounts[%zu]", i);
        r = parse_one_mount(c, e, path, oc, &s->mounts[s->n_mounts++], err);
        if (r < 0 || (r = check_proc_mount(c, path, &s->mounts[s->n_mounts - 1], err)) < 0)
            return r;
    }
    return 0;
}

static int
parse_namespaces(const struct jctx *c, json_t *linux_, struct sbx_config *s,
                 struct husk_error **err)
{
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(c, linux_, "namespaces", "linux.namespaces", false, &arr, err);
    if (r <= 0)
        return r;
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *tp = xasprintf("linux.namespaces[%zu].type", i);
        cleanup_free char *pp = xasprintf("linux.namespaces[%zu].path", i);
        cleanup_free char *type = NULL, *path = NULL;
        if ((r = jget_string(c, e, "type", tp, true, &type, err)) < 0 ||
            (r = jget_string(c, e, "path", pp, false, &path, err)) < 0)
            return r;
        int t = sbx_ns_from_name(type);
        if (t < 0)
            return jerr(c, tp, err, "unknown namespace type '%s'", type);
        if (s->ns[t].enabled)
            return jerr(c, tp, err, "namespace '%s' given twice", type);
        if (path && access(path, F_OK) < 0)
            return husk_err(err, errno, "%s: field '%s': namespace path '%s'", c->file, pp, path);
        s->ns[t].enabled = true;
        s->ns[t].path = steal_ptr(&path);
    }
    return 0;
}

static int
parse_idmap(const struct jctx *c, json_t *linux_, const char *key, struct sbx_idmap **out,
            size_t *n, struct husk_error **err)
{
    static const char *const fields[] = {"containerID", "hostID", "size"};
    cleanup_free char *ap = xasprintf("linux.%s", key);
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(c, linux_, key, ap, false, &arr, err);
    if (r <= 0)
        return r;
    *out = xcalloc(json_array_size(arr), sizeof(**out));
    json_array_foreach(arr, i, e)
    {
        int64_t v[3];
        for (int k = 0; k < 3; k++) {
            cleanup_free char *fp = xasprintf("%s[%zu].%s", ap, i, fields[k]);
            if ((r = jget_int(c, e, fields[k], fp, true, k == 2 ? 1 : 0, UINT32_MAX, &v[k], err)) <
                0)
                return r;
        }
        (*out)[(*n)++] = (struct sbx_idmap){(uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2]};
    }
    return 0;
}

static int
parse_devices(const struct jctx *c, json_t *linux_, struct sbx_config *s, struct husk_error **err)
{
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(c, linux_, "devices", "linux.devices", false, &arr, err);
    if (r <= 0)
        return r;
    s->devices = xcalloc(json_array_size(arr), sizeof(*s->devices));
    json_array_foreach(arr, i, e)
    {
        struct sbx_device *d = &s->devices[s->n_devices++];
        cleanup_free char *base = xasprintf("linux.devices[%zu]", i);
        cleanup_free char *pp = xasprintf("%s.path", base), *tp = xasprintf("%s.type", base);
        cleanup_free char *mj = xasprintf("%s.major", base), *mn = xasprintf("%s.minor", base);
        cleanup_free char *mp = xasprintf("%s.fileMode", base);
        cleanup_free char *up = xasprintf("%s.uid", base), *gp = xasprintf("%s.gid", base);
        cleanup_free char *type = NULL;
        int64_t mode = 0666, uid = 0, gid = 0;
        if ((r = jget_string(c, e, "path", pp, true, &d->path, err)) < 0 ||
            (r = jget_string(c, e, "type", tp, true, &type, err)) < 0)
            return r;
        if (strlen(type) != 1 || !strchr("cbup", type[0]))
            return jerr(c, tp, err, "'%s' is not one of c, b, u, p", type);
        d->type = type[0] == 'u' ? 'c' : type[0];
        bool need_nums = d->type != 'p';
        if ((r = jget_int(c, e, "major", mj, need_nums, 0, INT32_MAX, &d->major, err)) < 0 ||
            (r = jget_int(c, e, "minor", mn, need_nums, 0, INT32_MAX, &d->minor, err)) < 0 ||
            (r = jget_int(c, e, "fileMode", mp, false, 0, 0177777, &mode, err)) < 0 ||
            (r = jget_int(c, e, "uid", up, false, 0, UINT32_MAX - 1, &uid, err)) < 0 ||
            (r = jget_int(c, e, "gid", gp, false, 0, UINT32_MAX - 1, &gid, err)) < 0)
            return r;
        if (d->path[0] != '/')
            return jerr(c, pp, err, "'%s' is not an absolute path", d->path);
        d->mode = (uint32_t)mode & 07777; /* engines pass st_mode, type bits included */
        d->uid = (uint32_t)uid;
        d->gid = (uint32_t)gid;
    }
    return 0;
}

static int
parse_sysctl(const struct jctx *c, json_t *linux_, struct sbx_config *s, struct husk_error **err)
{
    json_t *obj = NULL, *v;
    const char *k;
    int r = jget_object(c, linux_, "sysctl", "linux.sysctl", false, &obj, err);
    if (r <= 0)
        return r;
    s->sysctl = xcalloc(json_object_size(obj), sizeof(*s->sysctl));
    json_object_foreach(obj, k, v)
    {
        cleanup_free char *kp = xasprintf("linux.sysctl.%s", k);
        if (!json_is_string(v))
            return jerr(c, kp, err, "expected a string");
        if (strstr(k, "..") || strchr(k, '/') || k[0] == '.' || k[0] == '\0')
            return jerr(c, kp, err, "'%s' is not a sysctl name", k);
        s->sysctl[s->n_sysctl].key = xstrdup(k);
        s->sysctl[s->n_sysctl++].value = xstrdup(json_string_value(v));
    }
    return 0;
}

static const struct {
    const char *name;
    unsigned long flags;
} propagations[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

static int
parse_linux(const struct jctx *c, json_t *root, struct oci_config *oc, struct husk_error **err)
{
    struct sbx_config *s = oc->sbx;
    json_t *linux_ = NULL;
    cleanup_free char *prop = NULL;
    int r;

    if ((r = jget_object(c, root, "linux", "linux", false, &linux_, err)) <= 0)
        return r;
    if ((r = oci_resources_parse(linux_, c->file, &oc->resources, err)) < 0)
        return r;
    json_t *sec = NULL;
    if ((r = jget_object(c, linux_, "seccomp", "linux.seccomp", false, &sec, err)) < 0)
        return r;
    oc->seccomp = sec ? json_incref(sec) : NULL;
    if ((r = parse_namespaces(c, linux_, s, err)) < 0 ||
        (r = parse_idmap(c, linux_, "uidMappings", &s->uid_map, &s->n_uid_map, err)) < 0 ||
        (r = parse_idmap(c, linux_, "gidMappings", &s->gid_map, &s->n_gid_map, err)) < 0 ||
        (r = parse_devices(c, linux_, s, err)) < 0 || (r = parse_sysctl(c, linux_, s, err)) < 0 ||
        (r = jget_strv(c, linux_, "maskedPaths", "linux.maskedPaths", false, &s->masked_paths,
                       err)) < 0 ||
        (r = jget_strv(c, linux_, "readonlyPaths", "linux.readonlyPaths", false, &s->readonly_paths,
                       err)) < 0 ||
        (r = jget_string(c, linux_, "rootfsPropagation", "linux.rootfsPropagation", false, &prop,
                         err)) < 0)
        return r;
    if (prop) {
        size_t k;
        for (k = 0; k < ARRAY_SIZE(propagations); k++)
            if (strcmp(prop, propagations[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(propagations))
            return jerr(c, "linux.rootfsPropagation", err, "unknown propagation '%s'", prop);
        s->rootfs_propagation = propagations[k].flags;
    }
    return 0;
}

/* Relations between fields the schema cannot express. */
static int
check_config(const struct jctx *c, struct sbx_config *s, struct husk_error **err)
{
    if (s->ns[SBX_NS_USER].enabled && s->ns[SBX_NS_USER].path == NULL &&
        (s->n_uid_map == 0 || s->n_gid_map == 0))
        return jerr(c, "linux.uidMappings", err,
                    "a new user namespace needs uidMappings and gidMappings");
    if (!s->ns[SBX_NS_USER].enabled && (s->n_uid_map || s->n_gid_map))
        return jerr(c, "linux.uidMappings", err, "id mappings need a user namespace");
    if (s->hostname && s->hostname[0] && !s->ns[SBX_NS_UTS].enabled)
        return jerr(c, "hostname", err, "setting the hostname needs a uts namespace");
    if (s->domainname && s->domainname[0] && !s->ns[SBX_NS_UTS].enabled)
        return jerr(c, "domainname", err, "setting the domainname needs a uts namespace");
    if (s->n_sysctl && !s->ns[SBX_NS_MNT].enabled)
        return jerr(c, "linux.sysctl", err, "sysctls need a mount namespace with /proc");
    if (!s->ns[SBX_NS_MNT].enabled && s->n_mounts)
        return jerr(c, "mounts", err, "mounts need a mount namespace");
    return 0;
}

static int
parse_annotations(const struct jctx *c, json_t *root, struct oci_config *oc,
                  struct husk_error **err)
{
    json_t *obj = NULL, *v;
    const char *k;
    int r = jget_object(c, root, "annotations", "annotations", false, &obj, err);
    if (r < 0)
        return r;
    oc->annotations = r > 0 ? json_deep_copy(obj) : json_object();
    json_object_foreach(oc->annotations, k, v)
    {
        if (!json_is_string(v)) {
            cleanup_free char *ap = xasprintf("annotations.%s", k);
            return jerr(c, ap, err, "expected a string");
        }
    }
    return 0;
}

static int
parse_ports(const struct jctx *c, const char *key, const char *value, uint16_t **out, size_t *n,
            struct husk_error **err)
{
    cleanup_free char *copy = xstrdup(value);
    cleanup_free char *path = xasprintf("annotations.%s", key);
    *out = xcalloc(strlen(value) / 2 + 1, sizeof(uint16_t));
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint64_t port;
        if (parse_u64(t, &port) < 0 || port == 0 || port > 65535)
            return jerr(c, path, err, "'%s' is not a TCP port", t);
        (*out)[(*n)++] = (uint16_t)port;
    }
    return 0;
}

static char **
split_paths(const char *value)
{
    size_t n = 1;
    for (const char *p = value; *p; p++)
        n += *p == ':';
    char **v = xcalloc(n + 1, sizeof(char *));
    cleanup_free char *copy = xstrdup(value);
    size_t k = 0;
    for (char *save = NULL, *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save))
        v[k++] = xstrdup(t);
    return v;
}

static int
parse_landlock(const struct jctx *c, struct oci_config *oc, struct husk_error **err)
{
    struct sbx_landlock *l = &oc->sbx->process.landlock;
    const char *rd = json_string_value(json_object_get(oc->annotations, OCI_ANN_LANDLOCK_READ));
    const char *wr = json_string_value(json_object_get(oc->annotations, OCI_ANN_LANDLOCK_WRITE));
    const char *bd = json_string_value(json_object_get(oc->annotations, OCI_ANN_LANDLOCK_BIND));
    const char *cn = json_string_value(json_object_get(oc->annotations, OCI_ANN_LANDLOCK_CONNECT));
    int r;

    if (!rd && !wr && !bd && !cn)
        return 0;
    l->enabled = true;
    l->read_paths = split_paths(rd ? rd : "");
    l->write_paths = split_paths(wr ? wr : "");
    l->restrict_net = bd || cn;
    if ((bd && (r = parse_ports(c, OCI_ANN_LANDLOCK_BIND, bd, &l->bind_ports, &l->n_bind_ports,
                                err)) < 0) ||
        (cn && (r = parse_ports(c, OCI_ANN_LANDLOCK_CONNECT, cn, &l->connect_ports,
                                &l->n_connect_ports, err)) < 0))
        return r;
    int abi = sbx_landlock_abi();
    if (abi < 1)
        warn(oc, xstrdup("landlock is not available in this kernel: its rules are not applied"));
    else if (abi < 4 && l->restrict_net)
        warn(oc, xasprintf("landlock ABI %d has no TCP rules: %s and %s are not applied", abi,
                           OCI_ANN_LANDLOCK_BIND, OCI_ANN_LANDLOCK_CONNECT));
    return 0;
}

static const char *const hook_names[OCI_HOOK__COUNT] = {
    [OCI_HOOK_PRESTART] = "prestart",
    [OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
    [OCI_HOOK_CREATE_CONTAINER] = "createContainer",
    [OCI_HOOK_START_CONTAINER] = "startContainer",
    [OCI_HOOK_POSTSTART] = "poststart",
    [OCI_HOOK_POSTSTOP] = "poststop",
};

const char *
oci_hook_name(enum oci_hook_kind k)
{
    return k < OCI_HOOK__COUNT ? hook_names[k] : "unknown";
}

static int
parse_hook(const struct jctx *c, json_t *e, const char *path, struct sbx_hook *h,
           struct husk_error **err)
{
    cleanup_free char *pp = xasprintf("%s.path", path), *ap = xasprintf("%s.args", path);
    cleanup_free char *ep = xasprintf("%s.env", path), *tp = xasprintf("%s.timeout", path);
    int64_t timeout = 0;
    int r;
    if ((r = jget_string(c, e, "path", pp, true, &h->path, err)) < 0 ||
        (r = jget_strv(c, e, "args", ap, false, &h->args, err)) < 0 ||
        (r = jget_strv(c, e, "env", ep, false, &h->env, err)) < 0 ||
        (r = jget_int(c, e, "timeout", tp, false, 1, 86400, &timeout, err)) < 0)
        return r;
    if (h->path[0] != '/')
        return jerr(c, pp, err, "'%s' is not an absolute path", h->path);
    h->timeout = (int)timeout;
    return 0;
}

static int
parse_hooks(const struct jctx *c, json_t *root, struct oci_config *oc, struct husk_error **err)
{
    json_t *hooks = NULL;
    int r = jget_object(c, root, "hooks", "hooks", false, &hooks, err);
    for (int k = 0; r > 0 && k < OCI_HOOK__COUNT; k++) {
        cleanup_free char *kp = xasprintf("hooks.%s", hook_names[k]);
        json_t *arr = NULL, *e;
        size_t i;
        int q = jget_array(c, hooks, hook_names[k], kp, false, &arr, err);
        if (q < 0)
            return q;
        if (q == 0)
            continue;
        oc->hooks[k] = xcalloc(json_array_size(arr), sizeof(struct sbx_hook));
        json_array_foreach(arr, i, e)
        {
            cleanup_free char *ip = xasprintf("%s[%zu]", kp, i);
            oc->n_hooks[k]++;
            if ((q = parse_hook(c, e, ip, &oc->hooks[k][i], err)) < 0)
                return q;
        }
    }
    return r < 0 ? r : 0;
}

int
oci_config_parse(json_t *root, const char *path, const char *bundle, struct oci_config **out,
                 struct husk_error **err)
{
    struct jctx c = {.file = path};
    cleanup_(oci_config_freep) struct oci_config *oc = xcalloc(1, sizeof(*oc));
    int r;

    oc->path = xstrdup(path);
    oc->bundle = xstrdup(bundle);
    oc->sbx = xcalloc(1, sizeof(*oc->sbx));
    if (!json_is_object(root))
        return husk_err(err, 0, "%s: expected a JSON object", path);
    if ((r = jget_string(&c, root, "ociVersion", "ociVersion", true, &oc->oci_version, err)) < 0 ||
        (r = jget_string(&c, root, "hostname", "hostname", false, &oc->sbx->hostname, err)) < 0 ||
        (r = jget_string(&c, root, "domainname", "domainname", false, &oc->sbx->domainname, err)) <
            0 ||
        (r = parse_root(&c, root, oc, err)) < 0 || (r = parse_process(&c, root, oc, err)) < 0 ||
        (r = parse_mounts(&c, root, oc, err)) < 0 || (r = parse_linux(&c, root, oc, err)) < 0 ||
        (r = parse_annotations(&c, root, oc, err)) < 0 || (r = parse_landlock(&c, oc, err)) < 0 ||
        (r = oci_rootfs_image_parse(oc, path, err)) < 0 ||
        (r = parse_hooks(&c, root, oc, err)) < 0 || (r = check_config(&c, oc->sbx, err)) < 0)
        return r;
    *out = steal_ptr(&oc);
    return 0;
}

int
oci_config_load_file(const char *path, const char *bundle, struct oci_config **out,
                     struct husk_error **err)
{
    json_error_t jerr_;
    cleanup_json json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr_);
    if (root == NULL) {
        if (access(path, R_OK) < 0)
            return husk_err(err, errno, "%s", path);
        return husk_err(err, 0, "%s: line %d, column %d: %s", path, jerr_.line, jerr_.column,
                        jerr_.text);
    }
    return oci_config_parse(root, path, bundle, out, err);
}

int
oci_config_default(const char *rootfs, struct oci_config **out, struct husk_error **err)
{
    cleanup_json json_t *spec = oci_spec_default(false);
    json_object_set_new(json_object_get(spec, "root"), "path", json_string(rootfs));
    return oci_config_parse(spec, "the default configuration", "/", out, err);
}

int
oci_config_load(const char *bundle, struct oci_config **out, struct husk_error **err)
{
    char real[PATH_MAX];

    if (realpath(bundle, real) == NULL)
        return husk_err(err, errno, "bundle '%s'", bundle);
    cleanup_free char *path = xasprintf("%s/config.json", real);
    return oci_config_load_file(path, real, out, err);
}

void
oci_config_free(struct oci_config *c)
{
    if (c == NULL)
        return;
    sbx_config_free(c->sbx);
    oci_resources_free(c->resources);
    free(c->path);
    free(c->bundle);
    free(c->oci_version);
    if (c->annotations)
        json_decref(c->annotations);
    if (c->seccomp)
        json_decref(c->seccomp);
    strv_freep(&c->warnings);
    for (int k = 0; k < OCI_HOOK__COUNT; k++) {
        for (size_t i = 0; i < c->n_hooks[k]; i++) {
            free(c->hooks[k][i].path);
            strv_freep(&c->hooks[k][i].args);
            strv_freep(&c->hooks[k][i].env);
        }
        free(c->hooks[k]);
    }
    free(c);
}

void
oci_config_freep(struct oci_config **c)
{
    oci_config_free(*c);
    *c = NULL;
}
