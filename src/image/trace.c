/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `husk pack --trace`: run the command once in a husk sandbox and record what it opens, to
 * find what static analysis cannot (dlopen, plugins, data files, Python's computed imports).
 *
 * The sandbox: new mount, pid, ipc, uts and network namespaces; its root is an empty scratch
 * directory with each of the host's top-level directories bound read-only (recursively) at
 * the same path and the host's top-level symlinks copied, so the command sees the files it
 * would see on the host but can change none of them; its own /proc, /dev and read-only /sys;
 * no capabilities, no_new_privs. Killing its pid 1 ends everything it started.
 *
 * Inside, the husk binary itself (opts->helper) runs img_trace_supervise(), which records
 * through a seccomp user-notification filter into a file in a writable scratch directory.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "husk/sandbox.h"
#include "img-internal.h"
#include "syscalls.h"
#include "util.h"

#define RECORD_DIR "/.husk-trace"

static void
sbx_config_freep(struct sbx_config **c)
{
    sbx_config_free(*c);
    *c = NULL;
}

static struct sbx_mount *
add_mount(struct sbx_config *c, const char *dst, const char *type, const char *src,
          unsigned long flags, const char *data)
{
    c->mounts = xrealloc(c->mounts, (c->n_mounts + 1) * sizeof(*c->mounts));
    struct sbx_mount *m = &c->mounts[c->n_mounts++];
    *m = (struct sbx_mount){
        .destination = xstrdup(dst),
        .type = type ? xstrdup(type) : NULL,
        .source = src ? xstrdup(src) : NULL,
        .data = data ? xstrdup(data) : NULL,
        .flags = flags,
    };
    return m;
}

/* The host's top level: directories bound read-only, symlinks recreated in the scratch root. */
static int
mirror_host(struct sbx_config *c, int rootfd, struct husk_error **err)
{
    static const char *const own[] = {"proc", "sys", "dev"};
    cleanup_dir DIR *d = opendir("/");
    if (d == NULL)
        return husk_err(err, errno, "read /");
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.')
            continue;
        bool skip = false;
        for (size_t i = 0; i < ARRAY_SIZE(own); i++)
            skip |= strcmp(de->d_name, own[i]) == 0;
        struct stat st;
        if (skip || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        cleanup_free char *path = xasprintf("/%s", de->d_name);
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
            if (n < 0)
                return husk_err(err, errno, "readlink '%s'", path);
            target[n] = '\0';
            if (symlinkat(target, rootfd, de->d_name) < 0)
                return husk_err(err, errno, "symlink '%s' in the trace root", path);
        } else if (S_ISDIR(st.st_mode)) {
            add_mount(c, path, NULL, path, MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV,
                      NULL);
        }
    }
    return 0;
}

static int
build_config(const struct img_trace_opts *o, const char *root, const char *records,
             struct sbx_config **out, struct husk_error **err)
{
    cleanup_(sbx_config_freep) struct sbx_config *c = xcalloc(1, sizeof(*c));
    static const enum sbx_ns_type ns[] = {SBX_NS_MNT, SBX_NS_PID, SBX_NS_IPC, SBX_NS_UTS,
                                          SBX_NS_NET};
    for (size_t i = 0; i < ARRAY_SIZE(ns); i++)
        c->ns[ns[i]].enabled = true;
    c->rootfs = xstrdup(root);
    c->rootfs_readonly = true;
    c->hostname = xstrdup("husk-trace");
    cleanup_fd int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return husk_err(err, errno, "open '%s'", root);
    int r = mirror_host(c, rootfd, err);
    if (r < 0)
        return r;
    add_mount(c, "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    add_mount(c, "/dev", "tmpfs", "tmpfs", MS_NOSUID, "mode=755,size=1m");
    add_mount(c, "/sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
    add_mount(c, RECORD_DIR, NULL, records, MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

    struct sbx_process *p = &c->process;
    size_t n_helper = strv_len(o->helper), n_argv = strv_len(o->argv);
    p->args = xcalloc(n_helper + n_argv + 3, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n_helper; i++)
        p->args[k++] = xstrdup(o->helper[i]);
    p->args[k++] = xstrdup(RECORD_DIR "/opened");
    p->args[k++] = xstrdup("--");
    for (size_t i = 0; i < n_argv; i++)
        p->args[k++] = xstrdup(o->argv[i]);
    p->env = strv_dup(o->env);
    p->cwd = xstrdup(o->cwd ? o->cwd : "/");
    p->umask = -1;
    p->no_new_privs = true;
    p->caps.set = true; /* every set empty */
    *out = steal_ptr(&c);
    return 0;
}

/* Wait for the sandbox's end, killing it at the deadline. */
static int
wait_deadline(struct sbx_child *child, int timeout_ms, int *status, bool *timed_out,
              struct husk_error **err)
{
    struct pollfd p = {.fd = child->pidfd, .events = POLLIN};
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    *timed_out = false;
    for (;;) {
        uint64_t now = now_ns();
        int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000ull);
        int n = poll(&p, 1, timeout_ms > 0 ? left : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return husk_err(err, errno, "wait for the trace sandbox");
        if (n == 0) {
            *timed_out = true;
            sys_pidfd_send_signal(child->pidfd, SIGKILL, NULL, 0);
        }
        return sbx_child_wait(child, status, err);
    }
}

/* The NUL-separated records, unique, in order. */
static int
read_records(const char *file, struct img_trace_result *res, struct husk_error **err)
{
    cleanup_fd int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    cleanup_free char *buf = NULL;
    size_t len = 0;
    if (fd < 0 && errno == ENOENT)
        return husk_err(err, 0, "the trace helper recorded nothing (it did not start)");
    int r = fd < 0 ? -errno : read_fd_all(fd, 256 << 20, &buf, &len);
    if (r < 0)
        return husk_err(err, -r, "read trace record '%s'", file);
    struct img_map seen = {0};
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        const char *s = buf + off;
        size_t l = strnlen(s, len - off);
        off += l + 1;
        cleanup_free char *clean = img_path_resolve_dots(s);
        if (l == 0 || img_map_get(&seen, clean, NULL))
            continue;
        img_map_put(&seen, clean, 0);
        img_strv_push(&res->opened, &n, steal_ptr(&clean));
    }
    img_map_clear(&seen);
    return 0;
}

int
img_trace_run(const struct img_trace_opts *o, struct img_trace_result *res, struct husk_error **err)
{
    memset(res, 0, sizeof(*res));
    res->exit_status = -1;
    cleanup_free char *root = xasprintf("%s/root", o->workdir);
    cleanup_free char *records = xasprintf("%s/records", o->workdir);
    if (mkdir(root, 0755) < 0 || mkdir(records, 0700) < 0)
        return husk_err(err, errno, "create trace directories in '%s'", o->workdir);
    cleanup_(sbx_config_freep) struct sbx_config *cfg = NULL;
    int r = build_config(o, root, records, &cfg, err);
    if (r < 0)
        return r;
    struct sbx_spawn_opts so = {.start_listen_fd = -1, .console_fd = -1, .cgroup_fd = -1};
    cleanup_(sbx_child_freep) struct sbx_child *child = NULL;
    if ((r = sbx_spawn(cfg, &so, &child, err)) < 0 || (r = sbx_child_start(child, cfg, err)) < 0)
        return husk_err_prefix(err, "trace sandbox: ");
    int status = 0;
    if ((r = wait_deadline(child, o->timeout_ms, &status, &res->timed_out, err)) < 0)
        return r;
    /* The helper's own exit code: 126 means the filter could not be installed. */
    if (!res->timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 126)
        return husk_err(err, 0, "trace: the helper could not install its seccomp filter");
    res->exit_status = res->timed_out ? -1 : status;
    cleanup_free char *file = xasprintf("%s/opened", records);
    return read_records(file, res, err);
}

void
img_trace_result_clear(struct img_trace_result *r)
{
    strv_freep(&r->opened);
}

static bool
traceable(const char *path)
{
    static const char *const skip[] = {"/proc/", "/sys/", "/dev/", RECORD_DIR "/"};
    for (size_t i = 0; i < ARRAY_SIZE(skip); i++)
        if (str_has_prefix(path, skip[i]))
            return false;
    return path[0] == '/';
}

int
img_trace_add(struct img_tree *t, const struct img_trace_result *r, const char *what,
              struct husk_error **err)
{
    for (char **p = r->opened; p && *p; p++) {
        struct stat st;
        if (!traceable(*p) || img_host_stat(t, *p, true, &st) < 0 || !S_ISREG(st.st_mode))
            continue; /* directories listed, files probed but absent, pseudo-files */
        cleanup_free char *why = xasprintf("opened while tracing %s", what);
        int rr = img_add_analysed(t, *p, why, 0, err);
        if (rr < 0 && rr != -ENOEXEC)
            return husk_err_prefix(err, "traced file '%s': ", *p);
    }
    /* Python opens a package's cached __init__ bytecode but only stat()s its __init__.py. */
    return img_py_bytecode_sources(t, err);
}
