/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `husk exec`: a new process in a running container. It joins every namespace the container
 * was given (user first), and keeps the container's seccomp filter, capabilities,
 * no_new_privs, rlimits and landlock rules unless the process says otherwise, as runc does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <unistd.h>

#include "container.h"
#include "tty.h"
#include "util.h"

struct exec_opts {
    const char *process, *cwd, *user, *pid_file, *console_socket, *apparmor, *label, *cgroup;
    struct strlist env, caps, gids;
    bool tty, detach, no_new_privs, ignore_paused;
    int preserve_fds;
};

static const struct flag exec_flags[] = {
    {"process", 'p', FLAG_STRING, offsetof(struct exec_opts, process),
     "process.json with the whole process (other process flags are ignored)"},
    {"cwd", 0, FLAG_STRING, offsetof(struct exec_opts, cwd), "working directory"},
    {"env", 'e', FLAG_STRINGS, offsetof(struct exec_opts, env), "NAME=value (repeatable)"},
    {"user", 'u', FLAG_STRING, offsetof(struct exec_opts, user), "UID[:GID]"},
    {"additional-gids", 'g', FLAG_STRINGS, offsetof(struct exec_opts, gids),
     "additional group id (repeatable)"},
    {"cap", 'c', FLAG_STRINGS, offsetof(struct exec_opts, caps), "add a capability (repeatable)"},
    {"no-new-privs", 0, FLAG_BOOL, offsetof(struct exec_opts, no_new_privs), "set no_new_privs"},
    {"tty", 't', FLAG_BOOL, offsetof(struct exec_opts, tty), "allocate a terminal"},
    {"detach", 'd', FLAG_BOOL, offsetof(struct exec_opts, detach), "do not wait for the process"},
    {"pid-file", 0, FLAG_STRING, offsetof(struct exec_opts, pid_file), "write the host pid here"},
    {"console-socket", 0, FLAG_STRING, offsetof(struct exec_opts, console_socket),
     "unix socket that receives the terminal master"},
    {"preserve-fds", 0, FLAG_INT, offsetof(struct exec_opts, preserve_fds),
     "pass N fds after stdio"},
    {"apparmor", 0, FLAG_STRING, offsetof(struct exec_opts, apparmor),
     "refused where the host enforces AppArmor (husk cannot apply it), else ignored with a "
     "warning"},
    {"process-label", 0, FLAG_STRING, offsetof(struct exec_opts, label),
     "refused where the host enforces SELinux (husk cannot apply it), else ignored with a "
     "warning"},
    {"cgroup", 0, FLAG_STRING, offsetof(struct exec_opts, cgroup), "accepted, not applied"},
    {"ignore-paused", 0, FLAG_BOOL, offsetof(struct exec_opts, ignore_paused), "accepted"},
};

static int
parse_uid_gid(const char *s, uint32_t *uid, uint32_t *gid, struct husk_error **err)
{
    cleanup_free char *copy = xstrdup(s);
    char *colon = strchr(copy, ':');
    uint64_t u, g;
    if (colon)
        *colon = '\0';
    if (parse_u64(copy, &u) < 0 || u >= UINT32_MAX ||
        (colon && (parse_u64(colon + 1, &g) < 0 || g >= UINT32_MAX)))
        return husk_err(err, 0, "--user: '%s' is not UID[:GID] (numbers only)", s);
    *uid = (uint32_t)u;
    if (colon)
        *gid = (uint32_t)g;
    return 0;
}

/* NAME=value entries replace the container's value of NAME or are appended. */
static void
merge_env(struct sbx_process *p, const struct strlist *add)
{
    for (size_t i = 0; i < add->n; i++) {
        const char *eq = strchr(add->v[i], '=');
        size_t name_len = eq ? (size_t)(eq - add->v[i]) : strlen(add->v[i]);
        size_t n = strv_len(p->env), k;
        for (k = 0; k < n; k++)
            if (strncmp(p->env[k], add->v[i], name_len) == 0 && p->env[k][name_len] == '=')
                break;
        if (k == n) {
            p->env = xrealloc(p->env, (n + 2) * sizeof(char *));
            p->env[n + 1] = NULL;
        } else {
            free(p->env[k]);
        }
        p->env[k] = eq ? xstrdup(add->v[i]) : xasprintf("%s=", add->v[i]);
    }
}

static int
apply_flags(const struct exec_opts *o, int argc, char **argv, struct oci_config *cfg,
            struct husk_error **err)
{
    struct sbx_process *p = &cfg->sbx->process;

    if (o->process) {
        json_error_t je;
        cleanup_json json_t *proc = json_load_file(o->process, 0, &je);
        if (proc == NULL)
            return husk_err(err, 0, "%s: line %d, column %d: %s", o->process, je.line, je.column,
                            je.text);
        return oci_process_parse(proc, o->process, cfg, err);
    }
    if (argc == 0)
        return husk_err(err, 0, "exec needs a command (or --process FILE)");
    strv_freep(&p->args);
    p->args = strv_dup(argv);
    if (o->cwd) {
        free(p->cwd);
        p->cwd = xstrdup(o->cwd);
    }
    merge_env(p, &o->env);
    if (o->user && parse_uid_gid(o->user, &p->uid, &p->gid, err) < 0)
        return -EINVAL;
    if (o->gids.n) {
        p->groups = xrealloc(p->groups, o->gids.n * sizeof(uint32_t));
        p->n_groups = 0;
        for (size_t i = 0; i < o->gids.n; i++) {
            uint64_t g;
            if (parse_u64(o->gids.v[i], &g) < 0 || g >= UINT32_MAX)
                return husk_err(err, 0, "--additional-gids: '%s' is not a group id", o->gids.v[i]);
            p->groups[p->n_groups++] = (uint32_t)g;
        }
    }
    for (size_t i = 0; i < o->caps.n; i++) {
        cap_value_t v;
        if (cap_from_name(o->caps.v[i], &v) < 0 || v > 63)
            return husk_err(err, 0, "--cap: unknown capability '%s'", o->caps.v[i]);
        uint64_t bit = 1ull << v;
        p->caps.bounding |= bit;
        p->caps.effective |= bit;
        p->caps.permitted |= bit;
    }
    if (o->no_new_privs)
        p->no_new_privs = true;
    return 0;
}

/* --apparmor and --process-label, as the config's labels are treated (oci/config.c). */
static int
check_labels(struct cli *cli, const struct exec_opts *o, struct husk_error **err)
{
    const struct {
        const char *flag, *value, *lsm;
    } labels[] = {{"--apparmor", o->apparmor, "apparmor"},
                  {"--process-label", o->label, "selinux"}};
    cleanup_free char *host = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(labels); i++) {
        if (labels[i].value == NULL || labels[i].value[0] == '\0')
            continue;
        if (host == NULL)
            host = oci_host_lsms();
        if (oci_lsm_listed(host, labels[i].lsm))
            return husk_err(err, 0, "%s '%s': this host enforces %s, and husk cannot apply it",
                            labels[i].flag, labels[i].value, labels[i].lsm);
        cli_log(cli, "warning", "%s '%s' ignored: the host does not enforce %s", labels[i].flag,
                labels[i].value, labels[i].lsm);
    }
    return 0;
}

/* The container's process settings, its namespaces to join, and nothing to set up. */
static void
join_container(struct oci_config *cfg, pid_t pid)
{
    struct sbx_config *s = cfg->sbx;
    for (int t = 0; t < SBX_NS_COUNT; t++) {
        free(s->ns[t].path);
        s->ns[t].path = s->ns[t].enabled ? xasprintf("/proc/%d/ns/%s", pid,
                                                     sbx_ns_proc_name((enum sbx_ns_type)t))
                                         : NULL;
    }
    free(s->rootfs);
    s->rootfs = NULL;
    free(s->hostname);
    free(s->domainname);
    s->hostname = s->domainname = NULL;
    s->n_sysctl = 0;
    s->n_devices = 0;
    strv_freep(&s->masked_paths);
    strv_freep(&s->readonly_paths);
    s->process.has_oom_score_adj = false;
}

static int
exec_in(struct cli *cli, struct container *c, const struct exec_opts *o, int argc, char **argv,
        int *exit_code, struct husk_error **err)
{
    cleanup_(oci_config_freep) struct oci_config *cfg = NULL;
    cleanup_free char *path = xasprintf("%s/%s/%s", cli->root, c->id, CTR_CONFIG);
    cleanup_(sbx_child_freep) struct sbx_child *child = NULL;
    int status;

    if (oci_config_load_file(path, c->state->bundle, &cfg, err) < 0)
        return -EINVAL;
    size_t n_warn = strv_len(cfg->warnings); /* the container's own were shown by create */
    if (check_labels(cli, o, err) < 0 || apply_flags(o, argc, argv, cfg, err) < 0)
        return -EINVAL;
    for (size_t i = n_warn; cfg->warnings && cfg->warnings[i]; i++)
        cli_log(cli, "warning", "%s", cfg->warnings[i]);
    if (o->tty)
        cfg->terminal = cfg->sbx->process.terminal = true;
    if (cfg->terminal && o->detach && !o->console_socket)
        return husk_err(err, 0, "exec: a detached terminal needs --console-socket");
    cleanup_fd int console_fd = -1;
    if (cfg->terminal && o->console_socket &&
        (console_fd = unix_connect(o->console_socket, "--console-socket", err)) < 0)
        return -EINVAL;
    /* The namespaces are joined through a pidfd of the init checked against its start time:
     * by /proc/PID/ns paths, a pid reused since the status check would lead elsewhere. */
    cleanup_fd int init_fd = ctr_open_init(c);
    if (init_fd < 0)
        return husk_err(err, 0, "container '%s': container not running", c->id);
    join_container(cfg, c->state->pid);
    if (cfg->seccomp) {
        cleanup_free char *cache = xasprintf("%s/.seccomp-cache", cli->root);
        if (oci_seccomp_compile(cfg->seccomp, cfg->path, cache, &cfg->sbx->process.seccomp, err) <
            0)
            return -EINVAL;
    }
    /* The process joins the container's cgroups, so it is held to the same limits. */
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    if (c->state->cgroup_path && ctr_cgroup_open(cli, c, &cg, err) < 0)
        return -EINVAL;
    struct sbx_spawn_opts so = sbx_spawn_opts_init();
    so.preserve_fds = o->preserve_fds;
    so.cgroup = cg;
    so.console_fd = console_fd;
    so.join_pidfd = init_fd;
    int spawned = sbx_spawn(cfg->sbx, &so, &child, err);
    if (spawned < 0)
        return -EINVAL;
    /* Before the process runs: a signal that comes once it has started (its first output may
     * already be read) is the process's, not ours to die of. */
    if (!o->detach)
        ctr_forward_signals(child->pid);
    if (sbx_child_start(child, cfg->sbx, err) < 0)
        return -EINVAL;
    if (o->pid_file) {
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "%d", child->pid);
        int r = write_file_atomic(AT_FDCWD, o->pid_file, buf, (size_t)n);
        if (r < 0)
            return husk_err(err, -r, "write pid file '%s'", o->pid_file);
    }
    if (o->detach)
        return 0;
    if (child->pty_master >= 0)
        tty_relay(child->pty_master, child->pidfd, err);
    if (sbx_child_wait(child, &status, err) < 0)
        return -EINVAL;
    *exit_code = sbx_status_to_exit_code(status);
    return 0;
}

static int
cmd_exec(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("exec");
    struct exec_opts o = {0};
    struct husk_error *err = NULL;
    cleanup_(ctr_freep) struct container *c = NULL;
    int exit_code = 0;
    int i = cli_parse_flags(v, exec_flags, ARRAY_SIZE(exec_flags), &o, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (i >= argc) {
        fprintf(stderr, "husk exec: expected a container id\n");
        free(o.env.v), free(o.caps.v), free(o.gids.v);
        return 2;
    }
    /* The process enters the container's pid namespace, in its processes' sight. */
    int r = cli_run_from_readonly_exe(cli, &err);
    if (r == 0)
        r = ctr_open(cli, argv[i], &c, &err);
    if (r == 0) {
        enum ctr_status st = ctr_status(c);
        if (st != CTR_RUNNING && st != CTR_CREATED)
            r = husk_err(&err, 0, "cannot exec in container '%s': it is %s", c->id,
                         ctr_status_name(st));
    }
    /* The lock is not needed while the process runs: other verbs must not wait for it. */
    if (r == 0 && c->dir_fd >= 0) {
        close(c->dir_fd);
        c->dir_fd = -1;
    }
    if (r == 0)
        r = exec_in(cli, c, &o, argc - i - 1, argv + i + 1, &exit_code, &err);
    free(o.env.v), free(o.caps.v), free(o.gids.v);
    if (r < 0)
        return cli_fail(cli, err);
    return exit_code;
}

const struct verb verb_exec = {
    .name = "exec",
    .usage = "[flags] ID [COMMAND [ARG...]]",
    .summary = "Run a new process in a running container.",
    .run = cmd_exec,
    .flags = exec_flags,
    .n_flags = ARRAY_SIZE(exec_flags),
    .arg = CLI_ARG_CONTAINER,
};
