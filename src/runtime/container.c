/* SPDX-License-Identifier: Apache-2.0 */
/* Container state directories, status and signals. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container.h"
#include "hooks.h"
#include "syscalls.h"
#include "util.h"

const char *
ctr_status_name(enum ctr_status s)
{
    static const char *const names[] = {"creating", "created", "running", "stopped", "paused"};
    return names[s];
}

int
ctr_root_open(const struct cli *cli, bool create, int *out, struct husk_error **err)
{
    int r = create ? mkdir_p(cli->root, 0700) : 0;
    if (r < 0)
        return husk_err(err, -r, "create state directory '%s'", cli->root);
    int fd = open(cli->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return husk_err(err, errno, "open state directory '%s'", cli->root);
    *out = fd;
    return 0;
}

int
ctr_open(const struct cli *cli, const char *id, struct container **out, struct husk_error **err)
{
    cleanup_(ctr_freep) struct container *c = xcalloc(1, sizeof(*c));
    c->root_fd = c->dir_fd = -1;
    c->id = xstrdup(id);

    if (cli_check_id(id, err) < 0)
        return -EINVAL;
    c->root_fd = open(cli->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->root_fd >= 0)
        c->dir_fd = openat(c->root_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (c->dir_fd < 0) {
        /* Worded as runc does: engines match "container does not exist". */
        if (errno == ENOENT)
            return husk_err(err, 0, "container '%s': container does not exist", id);
        return husk_err(err, errno, "open container '%s'", id);
    }
    if (flock(c->dir_fd, LOCK_EX) < 0)
        return husk_err(err, errno, "lock container '%s'", id);
    if (oci_state_load(c->dir_fd, id, &c->state, err) < 0)
        return -EINVAL;
    c->cgroup_root = cli->cgroup_root;
    *out = steal_ptr(&c);
    return 0;
}

int
ctr_verb_args(const struct verb *v, const struct flag *flags, size_t n_flags, void *opts, int argc,
              char **argv, int max_extra, int *code)
{
    int i = cli_parse_flags(v, flags, n_flags, opts, argc, argv);
    if (i < 0) {
        *code = i == -2 ? 0 : 2;
        return -1;
    }
    if (argc - i < 1 || argc - i > 1 + max_extra) {
        fprintf(stderr, "husk %s: expected %s\nusage: husk %s %s\n", v->name,
                max_extra ? "a container id and its arguments" : "exactly one container id",
                v->name, v->usage);
        *code = 2;
        return -1;
    }
    return i;
}

int
ctr_verb_open(struct cli *cli, const struct verb *v, const struct flag *flags, size_t n_flags,
              void *opts, int argc, char **argv, int max_extra, struct container **out, int *code)
{
    struct husk_error *err = NULL;
    int i = ctr_verb_args(v, flags, n_flags, opts, argc, argv, max_extra, code);
    if (i >= 0 && ctr_open(cli, argv[i], out, &err) < 0) {
        *code = cli_fail(cli, err);
        return -1;
    }
    return i;
}

void
ctr_free(struct container *c)
{
    if (c == NULL)
        return;
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    if (c->root_fd >= 0)
        close(c->root_fd);
    oci_state_free(c->state);
    free(c->id);
    free(c);
}

void
ctr_freep(struct container **c)
{
    ctr_free(*c);
    *c = NULL;
}

unsigned long long
proc_start_time(pid_t pid)
{
    char path[64];
    cleanup_free char *text = NULL;
    unsigned long long start = 0;
    char state = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (pid <= 0 || read_file_at(AT_FDCWD, path, &text, NULL) < 0)
        return 0;
    /* comm may hold spaces and parens: fields start after the last ')'. */
    const char *p = strrchr(text, ')');
    if (p == NULL || sscanf(p + 2, "%c", &state) != 1 || state == 'Z' || state == 'X')
        return 0;
    for (int field = 3; field <= 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
        return 0;
    return start;
}

/* The container's cgroup, without a CLI to warn through (status, kill). */
static int
open_cgroup(const struct container *c, struct sbx_cgroup **cg)
{
    struct sbx_cgroup_opts o = {.root = c->cgroup_root};
    if (c->state->cgroup_path == NULL)
        return -ENOENT;
    return sbx_cgroup_open(&o, c->state->cgroup_path, c->state->cgroup_owned, cg, NULL);
}

static bool
frozen(const struct container *c)
{
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    return open_cgroup(c, &cg) == 0 && sbx_cgroup_is_frozen(cg) == 1;
}

enum ctr_status
ctr_status(const struct container *c)
{
    unsigned long long st = proc_start_time(c->state->pid);
    if (st == 0 || st != c->state->start_time)
        return CTR_STOPPED;
    if (faccessat(c->dir_fd, CTR_START_SOCK, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return CTR_CREATED;
    return frozen(c) ? CTR_PAUSED : CTR_RUNNING;
}

int
ctr_destroy(struct container *c, struct husk_error **err)
{
    int r = rm_rf_at(c->root_fd, c->id);
    if (r < 0)
        return husk_err(err, -r, "remove state of container '%s'", c->id);
    return 0;
}

/* The cgroup path the kept config names (its linux.cgroupsPath), or the default one. */
static char *
incomplete_cgroup_path(int dir_fd, const char *id)
{
    cleanup_free char *text = NULL;
    cleanup_(oci_resources_freep) struct oci_resources *res = NULL;
    size_t len = 0;
    if (read_file_at(dir_fd, CTR_CONFIG, &text, &len) == 0) {
        cleanup_json json_t *j = json_loadb(text, len, 0, NULL);
        json_t *linux_ = json_object_get(j, "linux");
        if (linux_ && oci_resources_parse(linux_, CTR_CONFIG, &res, NULL) < 0)
            res = NULL;
    }
    return oci_resources_cgroup_path(res, id);
}

int
ctr_remove_incomplete(const struct cli *cli, const char *id, struct husk_error **err)
{
    cleanup_fd int root_fd = open(cli->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_fd int dir_fd =
        root_fd < 0 ? -1 : openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd < 0)
        return husk_err(err, errno, "open container '%s'", id);
    if (flock(dir_fd, LOCK_EX) < 0)
        return husk_err(err, errno, "lock container '%s'", id);
    if (faccessat(dir_fd, OCI_STATE_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return husk_err(err, EEXIST, "container '%s' has a state now", id);
    cleanup_free char *path = incomplete_cgroup_path(dir_fd, id);
    struct sbx_cgroup_opts o = {.root = cli->cgroup_root};
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    struct husk_error *e = NULL;
    int r = sbx_cgroup_open(&o, path, 1, &cg, &e);
    if (r == 0)
        r = sbx_cgroup_destroy(cg, &e);
    if (r < 0 && e->code != ENOENT) {
        *err = e;
        return husk_err_prefix(err, "container '%s': ", id);
    }
    husk_error_free(e);
    r = rm_rf_at(root_fd, id);
    return r < 0 ? husk_err(err, -r, "remove state of container '%s'", id) : 0;
}

/* A pidfd for the init, checked against the recorded start time so a reused pid is never hit. */
int
ctr_open_init(const struct container *c)
{
    int fd = sys_pidfd_open(c->state->pid, 0);
    if (fd < 0)
        return -errno;
    if (proc_start_time(c->state->pid) != c->state->start_time) {
        close(fd);
        return -ESRCH;
    }
    return fd;
}

/* Every process in the init's pid namespace, when it has one of its own. */
static void
kill_pidns_members(struct container *c, int sig)
{
    char path[64];
    struct stat init_ns, self_ns, st;

    snprintf(path, sizeof(path), "/proc/%d/ns/pid", c->state->pid);
    if (stat(path, &init_ns) < 0 || stat("/proc/self/ns/pid", &self_ns) < 0 ||
        init_ns.st_ino == self_ns.st_ino)
        return;
    cleanup_dir DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        int64_t pid;
        if (parse_i64(de->d_name, &pid) < 0 || pid == c->state->pid)
            continue;
        snprintf(path, sizeof(path), "/proc/%lld/ns/pid", (long long)pid);
        if (stat(path, &st) == 0 && st.st_ino == init_ns.st_ino && st.st_dev == init_ns.st_dev) {
            int fd = sys_pidfd_open((pid_t)pid, 0);
            if (fd >= 0) {
                sys_pidfd_send_signal(fd, sig, NULL, 0);
                close(fd);
            }
        }
    }
}

int
ctr_kill(struct container *c, int sig, bool all, struct husk_error **err)
{
    cleanup_fd int fd = ctr_open_init(c);
    if (fd < 0)
        return husk_err(err, 0, "container '%s': container not running", c->id); /* as runc */
    /* --all: the cgroup holds every process of the container, pid namespace or not. */
    cleanup_(sbx_cgroup_freep) struct sbx_cgroup *cg = NULL;
    if (all && (open_cgroup(c, &cg) < 0 || sbx_cgroup_kill(cg, sig, NULL) < 0))
        kill_pidns_members(c, sig);
    if (sys_pidfd_send_signal(fd, sig, NULL, 0) < 0 && errno != ESRCH)
        return husk_err(err, errno, "signal container '%s'", c->id);
    return 0;
}

int
ctr_wait_gone(struct container *c, int timeout_ms)
{
    cleanup_fd int fd = ctr_open_init(c);
    if (fd < 0)
        return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        int left = (int)((end - now_ns()) / 1000000ull);
        int r = poll(&p, 1, left > 0 ? left : 0);
        if (r > 0)
            break;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
    /* The pidfd is readable once the process exited; it may stay a zombie for its reaper. */
    return 0;
}

struct oci_config *
ctr_config(const struct cli *cli, const struct container *c)
{
    struct oci_config *cfg = NULL;
    struct husk_error *err = NULL;
    cleanup_free char *path = xasprintf("%s/%s/%s", cli->root, c->id, CTR_CONFIG);
    if (oci_config_load_file(path, c->state->bundle, &cfg, &err) < 0)
        husk_error_free(err);
    return cfg;
}

static void
hook_warning(void *data, struct husk_error *e)
{
    cleanup_free char *msg = husk_error_string(e);
    cli_log(data, "warning", "%s", msg);
    husk_error_free(e);
}

void
ctr_hooks_warn(struct cli *cli, const struct oci_config *cfg, enum oci_hook_kind kind,
               const struct oci_state *st, const char *status)
{
    if (cfg)
        hooks_run_all(cfg, kind, st, status, hook_warning, cli);
}

static pid_t forward_pid;

static void
forward_signal(int sig)
{
    if (forward_pid > 0)
        kill(forward_pid, sig);
}

void
ctr_forward_signals(pid_t pid)
{
    static const int sigs[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
                               SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGALRM, SIGPIPE};
    struct sigaction sa = {.sa_handler = forward_signal};
    forward_pid = pid;
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        sigaction(sigs[i], &sa, NULL);
}

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

int
parse_signal(const char *s)
{
    int64_t n;
    if (parse_i64(s, &n) == 0)
        return n > 0 && n < _NSIG ? (int)n : -1;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (strcasecmp(s, signals[i].name) == 0)
            return signals[i].sig;
    if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
        int64_t off = 0;
        if (s[5] && (s[5] != '+' && s[5] != '-'))
            return -1;
        if (s[5] && parse_i64(s + 6, &off) < 0)
            return -1;
        int sig = (s[3] == 'I' || s[3] == 'i') ? SIGRTMIN + (s[5] == '-' ? -off : off)
                                               : SIGRTMAX + (s[5] == '+' ? off : -off);
        return sig >= SIGRTMIN && sig <= SIGRTMAX ? sig : -1;
    }
    return -1;
}
