/* SPDX-License-Identifier: Apache-2.0 */
/* Creating a container: the shared body of `create` and `run`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container.h"
#include "hooks.h"
#include "tty.h"
#include "util.h"

/* The socket `husk start` connects to. Bound through /proc/self/fd so that a long --root
 * never exceeds sun_path. */
static int
listen_start_socket(int dir_fd, struct husk_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cleanup_fd int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return husk_err(err, errno, "create start socket");
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dir_fd, CTR_START_SOCK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
        return husk_err(err, errno, "bind start socket");
    return steal_fd(&fd);
}

static int
write_pid_file(const char *path, pid_t pid, struct husk_error **err)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d", pid);
    int r = write_file_atomic(AT_FDCWD, path, buf, (size_t)n);
    if (r < 0)
        return husk_err(err, -r, "write pid file '%s'", path);
    return 0;
}

static int
record_state(int dir_fd, const char *id, const struct oci_config *cfg, pid_t pid,
             const struct sbx_cgroup *cg, struct husk_error **err)
{
    char created[64];
    cli_rfc3339_now(created, sizeof(created));
    struct oci_state st = {
        .id = (char *)id,
        .pid = pid,
        .start_time = proc_start_time(pid),
        .bundle = cfg->bundle,
        .rootfs = cfg->sbx->rootfs,
        .created = created,
        .owner = "",
        .annotations = cfg->annotations,
        .cgroup_path = cg ? (char *)sbx_cgroup_path(cg) : NULL,
        .cgroup_owned = cg ? sbx_cgroup_owned(cg) : 0,
    };
    if (st.start_time == 0)
        return husk_err(err, 0, "container process %d exited during creation", pid);
    return oci_state_save(dir_fd, &st, err);
}

/* Later verbs (exec) read the config the container was created with, not today's bundle. */
static int
keep_config(int dir_fd, const struct oci_config *cfg, struct husk_error **err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    int r = read_file_at(AT_FDCWD, cfg->path, &text, &len);
    if (r == 0)
        r = write_file_atomic(dir_fd, CTR_CONFIG, text, len);
    if (r < 0)
        return husk_err(err, -r, "keep a copy of %s", cfg->path);
    return 0;
}

/* runc's rules: a detached terminal needs somewhere to send its master, and a console socket
 * needs a terminal. */
static int
check_supported(const struct oci_config *cfg, const struct create_opts *o, enum create_mode mode,
                struct husk_error **err)
{
    if (cfg->terminal && !o->console_socket && mode != CREATE_RUN_FOREGROUND)
        return husk_err(err, 0,
                        "%s: field 'process.terminal' is true: a detached container needs "
                        "--console-socket to send the terminal to",
                        cfg->path);
    if (o->console_socket && !cfg->terminal)
        return husk_err(err, 0, "--console-socket given but %s has process.terminal false",
                        cfg->path);
    if (o->preserve_fds < 0)
        return husk_err(err, 0, "--preserve-fds: must not be negative");
    return 0;
}

/* What the parent does between clone and the child's setup, once sbx_spawn placed it in its
 * cgroups: attach its network, then run the prestart, createRuntime and createContainer hooks
 * (in the runtime's namespaces, with the container's namespaces already made; a failure fails
 * the create). */
struct created_ctx {
    struct ctr_net *net;
    const struct oci_config *cfg;
    struct oci_state *st;
};

static int
on_created(pid_t pid, void *data, struct husk_error **err)
{
    struct created_ctx *c = data;
    static const enum oci_hook_kind kinds[] = {OCI_HOOK_PRESTART, OCI_HOOK_CREATE_RUNTIME,
                                               OCI_HOOK_CREATE_CONTAINER};
    if (ctr_net_on_created(c->net, pid, err) < 0)
        return -EINVAL;
    c->st->pid = pid;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (hooks_run(c->cfg, kinds[i], c->st, "creating", err) < 0)
            return -EINVAL;
    return 0;
}

/*
 * linux.seccomp.listenerPath: connect now (the path is a host path, out of the container's
 * reach once it pivots) and prepare runc's ContainerProcessState message, which the sandbox
 * process sends with the notify fd once the filter is loaded. -1 without a listener.
 */
static int
seccomp_listener(struct oci_config *cfg, const struct oci_state *st, struct husk_error **err)
{
    struct sbx_seccomp *sc = &cfg->sbx->process.seccomp;
    const char *path = json_string_value(json_object_get(cfg->seccomp, "listenerPath"));
    if (path == NULL || sc->listener_msg == NULL)
        return -1;
    struct oci_state copy = *st;
    copy.pid = 2147483646; /* a marker for the pid only the sandbox process will know */
    cleanup_json json_t *msg = json_pack(
        "{s:s, s:[s], s:i, s:s, s:o}", "ociVersion", OCI_VERSION, "fds", "seccompFd", "pid",
        copy.pid, "metadata", sc->listener_msg, "state", oci_state_json(&copy, "creating"));
    cleanup_free char *text = json_dumps(msg, JSON_COMPACT);
    cleanup_free char *out = xcalloc(strlen(text) * 2 + 1, 1);
    for (const char *p = text; *p;) {
        if (str_has_prefix(p, "2147483646")) {
            strcat(out, "%PID%");
            p += 10;
        } else {
            strncat(out, p++, 1);
        }
    }
    free(sc->listener_msg);
    sc->listener_msg = steal_ptr(&out);
    int fd = unix_connect(path, "linux.seccomp.listenerPath", err);
    return fd < 0 ? -EINVAL : fd;
}

/* Everything after the state directory exists; on failure the caller removes it. */
static int
spawn_container(struct cli *cli, const char *id, struct oci_config *cfg, struct sbx_cgroup *cg,
                struct ctr_net *net, int dir_fd, const struct create_opts *o, enum create_mode mode,
                int *exit_code, struct husk_error **err)
{
    cleanup_fd int listen_fd = -1;
    cleanup_fd int console_fd = -1;
    cleanup_(sbx_child_freep) struct sbx_child *child = NULL;
    int status = 0;

    if (mode == CREATE_WAIT_START && (listen_fd = listen_start_socket(dir_fd, err)) < 0)
        return listen_fd;
    if (o->console_socket &&
        (console_fd = unix_connect(o->console_socket, "--console-socket", err)) < 0)
        return console_fd;
    char created[64];
    cli_rfc3339_now(created, sizeof(created));
    struct oci_state st = {.id = (char *)id,
                           .bundle = cfg->bundle,
                           .rootfs = cfg->sbx->rootfs,
                           .created = created,
                           .owner = "",
                           .annotations = cfg->annotations};
    hooks_prepare_start(cfg, &st);
    struct created_ctx cc = {.net = net, .cfg = cfg, .st = &st};
    struct sbx_spawn_opts so = sbx_spawn_opts_init();
    so.preserve_fds = o->preserve_fds;
    so.start_listen_fd = listen_fd;
    so.console_fd = console_fd;
    so.cgroup = cg; /* born in it */
    so.on_created = on_created;
    so.data = &cc;
    cleanup_fd int listener_fd = seccomp_listener(cfg, &st, err);
    if (listener_fd == -EINVAL)
        return -EINVAL;
    so.seccomp_listener_fd = listener_fd;
    int spawned = sbx_spawn(cfg->sbx, &so, &child, err);
    if (spawned < 0) {
        ctr_cgroup_report_oom(cli, id, cg, cfg); /* a memory limit too small to set up in */
        return -EINVAL;
    }
    if (record_state(dir_fd, id, cfg, child->pid, cg, err) < 0 ||
        (o->pid_file && write_pid_file(o->pid_file, child->pid, err) < 0))
        goto kill;
    if (mode == CREATE_WAIT_START)
        return 0;
    /* Before the process runs: a signal that comes once it has started is its own. */
    if (mode != CREATE_RUN_DETACHED)
        ctr_forward_signals(child->pid);
    if (sbx_child_start(child, cfg->sbx, err) < 0)
        goto kill;
    ctr_hooks_warn(cli, cfg, OCI_HOOK_POSTSTART, &st, "running");
    if (mode == CREATE_RUN_DETACHED)
        return 0;
    if (child->pty_master >= 0)
        tty_relay(child->pty_master, child->pidfd, err);
    if (sbx_child_wait(child, &status, err) < 0)
        return -EINVAL;
    *exit_code = sbx_status_to_exit_code(status);
    ctr_hooks_warn(cli, cfg, OCI_HOOK_POSTSTOP, &st, "stopped");
    ctr_cgroup_report_oom(cli, id, cg, cfg);
    cli_log(cli, "debug", "container '%s' exited with %d", id, *exit_code);
    return 0;
kill:
    kill(child->pid, SIGKILL);
    sbx_child_wait(child, &status, NULL);
    return -EINVAL;
}

int
ctr_create(struct cli *cli, const char *id, const struct create_opts *o, enum create_mode mode,
           int *exit_code, struct husk_error **err)
{
    cleanup_(oci_config_freep) struct oci_config *cfg = NULL;
    cleanup_fd int root_fd = -1;
    cleanup_fd int dir_fd = -1;
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    cleanup_(ctr_net_freep) struct ctr_net *net = NULL;

    if (cli_check_id(id, err) < 0)
        return -EINVAL;
    if (oci_config_load(o->bundle ? o->bundle : ".", &cfg, err) < 0)
        return -EINVAL;
    if (check_supported(cfg, o, mode, err) < 0)
        return -EINVAL;
    /* Joining another container's pid namespace puts the sandbox process in its processes'
     * sight while it sets up. */
    const struct sbx_ns *pidns = &cfg->sbx->ns[SBX_NS_PID];
    int r = pidns->enabled && pidns->path ? cli_run_from_readonly_exe(cli, err) : 0;
    if (r < 0)
        return r;
    if (ctr_net_plan(cli, id, cfg, o, &net, err) < 0)
        return -EINVAL;
    for (size_t i = 0; cfg->warnings && cfg->warnings[i]; i++)
        cli_log(cli, "warning", "%s", cfg->warnings[i]);
    cfg->sbx->no_pivot = o->no_pivot;
    if (cfg->seccomp) {
        cleanup_free char *cache = xasprintf("%s/.seccomp-cache", cli->root);
        if ((r = mkdir_p(cli->root, 0700)) < 0)
            return husk_err(err, -r, "create state directory '%s'", cli->root);
        if (oci_seccomp_compile(cfg->seccomp, cfg->path, cache, &cfg->sbx->process.seccomp, err) <
            0)
            return -EINVAL;
    }
    if (ctr_root_open(cli, true, &root_fd, err) < 0)
        return -EINVAL;
    if (mkdirat(root_fd, id, 0700) < 0) {
        if (errno == EEXIST)
            return husk_err(err, 0, "container '%s' already exists", id);
        return husk_err(err, errno, "create state of container '%s'", id);
    }
    dir_fd = openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* No flock here: the sandbox process would inherit it and hold it until `start`.
     * mkdirat above already made us the only creator of this id. */
    r = dir_fd < 0 ? husk_err(err, errno, "open state of container '%s'", id) : 0;
    /* First: should we be killed before the state is recorded, `delete --force` finds the
     * cgroup path in it (ctr_remove_incomplete). */
    if (r == 0)
        r = keep_config(dir_fd, cfg, err);
    if (r == 0)
        r = ctr_cgroup_create(cli, id, cfg, &cg, err);
    if (r == 0)
        r = ctr_net_setup(cli, net, cfg, dir_fd, cg, err);
    if (r == 0)
        r = spawn_container(cli, id, cfg, cg, net, dir_fd, o, mode, exit_code, err);
    if (r < 0 || mode == CREATE_RUN_FOREGROUND)
        ctr_net_release(cli, net);
    if (cg && (r < 0 || mode == CREATE_RUN_FOREGROUND))
        sbx_cgroup_destroy(cg, NULL);
    if (r < 0 || mode == CREATE_RUN_FOREGROUND)
        rm_rf_at(root_fd, id);
    return r;
}
