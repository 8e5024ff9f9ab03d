/* SPDX-License-Identifier: Apache-2.0 */
/* Reading and writing cgroup files relative to a hierarchy's directory fd, with named errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "util.h"

static const struct {
    const char *v1, *v2;
} ctrl_names[CG_COUNT] = {
    [CG_CPU] = {"cpu", "cpu"},
    [CG_CPUACCT] = {"cpuacct", NULL},
    [CG_CPUSET] = {"cpuset", "cpuset"},
    [CG_MEMORY] = {"memory", "memory"},
    [CG_DEVICES] = {"devices", "devices"},
    [CG_FREEZER] = {"freezer", "freezer"},
    [CG_NET_CLS] = {"net_cls", NULL},
    [CG_NET_PRIO] = {"net_prio", NULL},
    [CG_BLKIO] = {"blkio", "io"},
    [CG_PERF_EVENT] = {"perf_event", "perf_event"},
    [CG_HUGETLB] = {"hugetlb", "hugetlb"},
    [CG_PIDS] = {"pids", "pids"},
    [CG_RDMA] = {"rdma", "rdma"},
    [CG_MISC] = {"misc", "misc"},
};

const char *
cg_ctrl_name(enum cg_ctrl c, bool v2)
{
    const char *n = v2 ? ctrl_names[c].v2 : ctrl_names[c].v1;
    return n ? n : ctrl_names[c].v1;
}

int
cg_ctrl_from_name(const char *name, bool v2)
{
    for (int c = 0; c < CG_COUNT; c++) {
        const char *n = v2 ? ctrl_names[c].v2 : ctrl_names[c].v1;
        if (n && strcmp(n, name) == 0)
            return c;
    }
    return -1;
}

int
cg_unified_ctrl(const char *key)
{
    const char *dot = strchr(key, '.');
    if (dot == NULL || dot == key || dot[1] == '\0' || strchr(key, '/') || strstr(key, ".."))
        return -2;
    cleanup_free char *prefix = xstrndup(key, (size_t)(dot - key));
    if (strcmp(prefix, "cgroup") == 0)
        return -1;
    int c = cg_ctrl_from_name(prefix, true);
    return c < 0 || c == CG_FREEZER || c == CG_DEVICES ? -2 : c;
}

int
cg_errf(struct sbx_cgroup *cg, struct cg_hier *h, struct husk_error **err, int errnum,
        const char *fmt, ...)
{
    cleanup_free char *what = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        abort();
    va_end(ap);
    return husk_err(err, errnum, "cgroup '%s:%s': %s", h->v2 ? "cgroup2" : h->dir, cg->path, what);
}

int
cg_write(struct sbx_cgroup *cg, struct cg_hier *h, const char *file, const char *value,
         struct husk_error **err)
{
    cleanup_fd int fd = openat(h->fd, file, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return cg_errf(cg, h, err, errno, "open %s", file);
    /* One write(2): cgroup files take one value per call. */
    ssize_t n = write(fd, value, strlen(value));
    if (n < 0)
        return cg_errf(cg, h, err, errno, "write '%s' to %s", value, file);
    return 0;
}

int
cg_writef(struct sbx_cgroup *cg, struct cg_hier *h, const char *file, struct husk_error **err,
          const char *fmt, ...)
{
    cleanup_free char *value = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&value, fmt, ap) < 0)
        abort();
    va_end(ap);
    return cg_write(cg, h, file, value, err);
}

int
cg_read(struct cg_hier *h, const char *file, char **out)
{
    int r = read_file_at(h->fd, file, out, NULL);
    if (r == 0) {
        size_t n = strlen(*out);
        while (n > 0 && ((*out)[n - 1] == '\n' || (*out)[n - 1] == ' '))
            (*out)[--n] = '\0';
    }
    return r;
}

int
cg_read_u64(struct cg_hier *h, const char *file, uint64_t *out)
{
    cleanup_free char *text = NULL;
    int r = cg_read(h, file, &text);
    if (r < 0)
        return r;
    if (strcmp(text, "max") == 0 || strcmp(text, "-1") == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    return parse_u64(text, out);
}

int
cg_read_keyed(struct cg_hier *h, const char *file, const char *key, uint64_t *out)
{
    cleanup_free char *text = NULL;
    size_t klen = strlen(key);
    int r = cg_read(h, file, &text);
    if (r < 0)
        return r;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return parse_u64(line + klen + 1, out) < 0 ? -EINVAL : 0;
        line = nl ? nl + 1 : NULL;
    }
    return -ENOENT;
}

bool
cg_has(struct cg_hier *h, const char *file)
{
    return faccessat(h->fd, file, F_OK, 0) == 0;
}

void
cg_warn(struct sbx_cgroup *cg, const char *fmt, ...)
{
    cleanup_free char *msg = NULL;
    va_list ap;
    if (cg->opts.warn == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    cg->opts.warn(cg->opts.warn_data, msg);
}
