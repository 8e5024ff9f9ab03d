/* SPDX-License-Identifier: Apache-2.0 */
/*
 * User namespace id maps. Root writes /proc/PID/{uid,gid}_map itself. An unprivileged caller may
 * map only its own ids, one each, and must deny setgroups first; anything wider goes through
 * the setuid helpers newuidmap/newgidmap (Debian's uidmap), which check /etc/subuid and subgid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "husk/sandbox.h"
#include "idmap.h"
#include "util.h"

#define NEWUIDMAP "/usr/bin/newuidmap"
#define NEWGIDMAP "/usr/bin/newgidmap"

int
sbx_idmap_format(const struct sbx_idmap *map, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(buf + used, len - used, "%u %u %u\n", map[i].inner, map[i].outer,
                         map[i].count);
        if (k < 0 || (size_t)k >= len - used)
            return -E2BIG;
        used += (size_t)k;
    }
    return (int)used;
}

static int
write_proc(pid_t pid, const char *file, const char *data, size_t len, struct husk_error **err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
    cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        return husk_err(err, errno, "write %s", path);
    return 0;
}

static int
run_helper(const char *helper, pid_t pid, const struct sbx_idmap *map, size_t n,
           struct husk_error **err)
{
    char pidbuf[16], num[12];
    char *argv[2 + 64 * 3 + 1];
    size_t a = 0;
    pid_t child;
    int status;

    if (n > 64)
        return husk_err(err, E2BIG, "%s: too many mappings", helper);
    if (access(helper, X_OK) < 0)
        return husk_err(err, errno,
                        "%s (from Debian's uidmap) is needed to map more than your own id", helper);
    snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
    argv[a++] = (char *)helper;
    argv[a++] = pidbuf;
    for (size_t i = 0; i < n; i++) {
        uint32_t v[3] = {map[i].inner, map[i].outer, map[i].count};
        for (int k = 0; k < 3; k++) {
            snprintf(num, sizeof(num), "%u", v[k]);
            argv[a++] = xstrdup(num);
        }
    }
    argv[a] = NULL;
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    int r = posix_spawn(&child, helper, NULL, NULL, argv, envp);
    for (size_t i = 2; i < a; i++)
        free(argv[i]);
    if (r != 0)
        return husk_err(err, r, "run %s", helper);
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return husk_err(err, errno, "wait for %s", helper);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return husk_err(err, 0, "%s %d failed (is the range in /etc/subuid or /etc/subgid?)",
                        helper, pid);
    return 0;
}

static bool
only_self(const struct sbx_idmap *map, size_t n, uint32_t self)
{
    return n == 1 && map[0].count == 1 && map[0].outer == self;
}

int
sbx_idmap_write(pid_t pid, const struct sbx_config *cfg, struct husk_error **err)
{
    char buf[4096];
    int len;
    bool root = geteuid() == 0;

    if (root || only_self(cfg->uid_map, cfg->n_uid_map, geteuid())) {
        if ((len = sbx_idmap_format(cfg->uid_map, cfg->n_uid_map, buf, sizeof(buf))) < 0)
            return husk_err(err, -len, "uid_map: too many entries");
        if (write_proc(pid, "uid_map", buf, (size_t)len, err) < 0)
            return -EPERM;
    } else if (run_helper(NEWUIDMAP, pid, cfg->uid_map, cfg->n_uid_map, err) < 0) {
        return -EPERM;
    }
    if (root || only_self(cfg->gid_map, cfg->n_gid_map, getegid())) {
        /* Without privilege the kernel takes a gid_map only once setgroups is denied. */
        if (!root && write_proc(pid, "setgroups", "deny", 4, err) < 0)
            return -EPERM;
        if ((len = sbx_idmap_format(cfg->gid_map, cfg->n_gid_map, buf, sizeof(buf))) < 0)
            return husk_err(err, -len, "gid_map: too many entries");
        return write_proc(pid, "gid_map", buf, (size_t)len, err);
    }
    return run_helper(NEWGIDMAP, pid, cfg->gid_map, cfg->n_gid_map, err);
}
