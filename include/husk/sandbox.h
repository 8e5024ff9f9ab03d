/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox library: describe a sandbox in plain structs, spawn it, start it, wait for it. */
#ifndef HUSK_SANDBOX_H
#define HUSK_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "husk/error.h"

enum sbx_ns_type {
    SBX_NS_USER,
    SBX_NS_MNT,
    SBX_NS_PID,
    SBX_NS_NET,
    SBX_NS_UTS,
    SBX_NS_IPC,
    SBX_NS_CGROUP,
    SBX_NS_TIME,
    SBX_NS_COUNT
};

/* Name of a namespace type as the OCI spec and /proc/PID/ns spell it ("mount" and "mnt"). */
const char *sbx_ns_name(enum sbx_ns_type t);
const char *sbx_ns_proc_name(enum sbx_ns_type t);
int sbx_ns_from_name(const char *name); /* -1 if unknown */
int sbx_ns_clone_flag(enum sbx_ns_type t);

struct sbx_ns {
    bool enabled; /* the sandbox gets this namespace... */
    char *path;   /* ...joined from this path, or new when NULL */
};

struct sbx_idmap {
    uint32_t inner, outer, count;
};

struct sbx_mount {
    char *destination;         /* absolute, inside the rootfs */
    char *type;                /* filesystem type; NULL or "bind" with MS_BIND */
    char *source;              /* absolute host path for binds */
    char *data;                /* filesystem options left after flags were taken out */
    unsigned long flags;       /* MS_* as mount(2): MS_BIND, MS_REC, MS_RDONLY, MS_NOSUID, ... */
    unsigned long clear;       /* MS_* explicitly cleared ("rw", "suid", ...) */
    unsigned long propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC) */
    bool allow_on_proc;        /* may cover a file in procfs (lxcfs-style); otherwise refused */
};

struct sbx_device {
    char *path;
    char type; /* 'c', 'b', 'u', 'p' */
    int64_t major, minor;
    uint32_t mode; /* permission bits */
    uint32_t uid, gid;
};

struct sbx_rlimit {
    int resource; /* RLIMIT_* */
    uint64_t soft, hard;
};

struct sbx_sysctl {
    char *key, *value;
};

/* Capability sets as bit masks (bit N = capability N). */
struct sbx_caps {
    bool set; /* false: all sets empty */
    uint64_t bounding, effective, inheritable, permitted, ambient;
};

/* A compiled seccomp filter (struct sock_filter[]), loaded last before execve. */
struct sbx_seccomp {
    void *bpf;      /* NULL: no filter */
    size_t len;     /* bytes */
    unsigned flags; /* SECCOMP_FILTER_FLAG_* */
    /* SECCOMP_RET_USER_NOTIF: when set, the notify fd goes to sbx_spawn_opts.seccomp_listener_fd
     * with this message, every "%PID%" in it replaced by the process's host pid (runc's
     * ContainerProcessState, so existing seccomp agents work). */
    char *listener_msg;
};

/* Landlock rules: paths inside the container and TCP ports (ABI 4+). */
struct sbx_landlock {
    bool enabled;
    char **read_paths;  /* read and execute */
    char **write_paths; /* read, write, create, remove */
    uint16_t *bind_ports, *connect_ports;
    size_t n_bind_ports, n_connect_ports;
    bool restrict_net; /* handle TCP bind/connect: only the listed ports are allowed */
    /* ABI 6+: no signals to, and no abstract unix sockets of, processes outside the domain. */
    bool scoped;
};

/* A program run at a point of the lifecycle, with the state JSON on stdin. */
struct sbx_hook {
    char *path;
    char **args; /* NULL-terminated; may be NULL */
    char **env;  /* NULL-terminated; may be NULL */
    int timeout; /* seconds, 0: none */
};

struct sbx_process {
    char **args; /* NULL-terminated */
    char **env;  /* NULL-terminated */
    char *cwd;
    uint32_t uid, gid;
    uint32_t *groups;
    size_t n_groups;
    int umask; /* -1: leave as is */
    struct sbx_rlimit *rlimits;
    size_t n_rlimits;
    bool no_new_privs;
    bool has_oom_score_adj;
    int oom_score_adj;
    bool terminal; /* a pty from the container's devpts becomes stdio */
    unsigned short console_rows, console_cols;
    struct sbx_caps caps;
    struct sbx_seccomp seccomp;
    /* A filter loaded before `seccomp` by whoever runs the sandbox for someone else (a daemon's
     * default profile under a workload's own): both apply and the kernel answers with the
     * stricter action of the two, so `seccomp` can only tighten it. No notify listener. */
    struct sbx_seccomp seccomp_policy;
    struct sbx_landlock landlock;
};

struct sbx_config {
    struct sbx_ns ns[SBX_NS_COUNT];
    struct sbx_idmap *uid_map, *gid_map;
    size_t n_uid_map, n_gid_map;

    char *rootfs; /* absolute host path */
    bool rootfs_readonly;
    bool no_pivot;                    /* chroot instead of pivot_root */
    unsigned long rootfs_propagation; /* 0: MS_SLAVE|MS_REC as runc does */
    /* An erofs or squashfs image mounted read-only on `rootfs` in the container's mount
     * namespace (with a tmpfs overlay for writes unless rootfs_readonly); NULL: none. */
    char *rootfs_image;
    char *rootfs_image_type; /* "erofs" or "squashfs" */
    /* With a new user namespace: the root is an idmapped mount through it, so files the
     * host's root owns are root's inside (where the filesystem allows idmapped mounts). */
    bool rootfs_idmap;

    char *hostname, *domainname;
    struct sbx_mount *mounts;
    size_t n_mounts;
    struct sbx_device *devices;
    size_t n_devices;
    char **masked_paths, **readonly_paths;
    struct sbx_sysctl *sysctl;
    size_t n_sysctl;

    struct sbx_process process;

    /* Run by the sandbox process inside the container after start, before the program. */
    struct sbx_hook *start_hooks;
    size_t n_start_hooks;
    char *hook_state[2]; /* state JSON before and after the host pid, which only the child knows */
};

void sbx_config_free(struct sbx_config *c);

/* cfg->rootfs_image mounted read-only (and, unless rootfs_readonly, under a tmpfs overlay) as a
 * detached mount, attached nowhere until the child puts it on its rootfs. CLOEXEC fd. */
int sbx_rootfs_image_mount(const struct sbx_config *cfg, struct husk_error **err);

/* The kernel's landlock ABI version (0: none), for planning and warnings. */
int sbx_landlock_abi(void);

struct sbx_cgroup; /* husk/cgroup.h */

/* sbx_spawn_opts.abi as sbx_spawn_opts_init() sets it. */
#define SBX_SPAWN_ABI 2

/*
 * How the sandbox is spawned and how the child waits before exec. Start from
 * sbx_spawn_opts_init(): every fd field is -1 ("none") and every pointer NULL.
 */
struct sbx_spawn_opts {
    /* SBX_SPAWN_ABI. 0 (a zero-initialised struct): the first layout, where 0 also meant "none"
     * for rootfs_image_fd, join_pidfd, exec_fd and rootfs_fd; sbx_spawn still reads it so. */
    unsigned abi;
    int preserve_fds; /* fds 3 .. 3+N-1 pass to the process */
    /*
     * -1: the caller releases the process with sbx_child_start().
     * Otherwise a listening unix socket: the child accepts one connection (from another
     * process, e.g. `husk start`) and reports the exec result on it (see sbx_start_conn).
     */
    int start_listen_fd;
    /* With process.terminal: a connected unix socket that receives the pty master, or -1 to
     * hand it to the caller (sbx_child.pty_master). */
    int console_fd;
    /* A connected unix socket for the seccomp notify fd (see sbx_seccomp.listener_msg), or -1. */
    int seccomp_listener_fd;
    /*
     * The cgroup the process is born in (borrowed), or NULL. sbx_spawn joins it the cheapest
     * way the host allows (see sbx_cgroup_enter_self): cgroup2 with CLONE_INTO_CGROUP, v1
     * hierarchies by the spawning thread stepping in for the clone, the rest by pid before the
     * child sets anything up. The spawning thread must be the only one using `cgroup`.
     */
    struct sbx_cgroup *cgroup;
    /* Without `cgroup`: a cgroup v2 directory fd to start the child in (CLONE_INTO_CGROUP),
     * or -1. */
    int cgroup_fd;
    /* Called in the parent after the child exists (and joined `cgroup`), before it sets
     * anything up: the caller's own work on the new process (networking, hooks). */
    int (*on_created)(pid_t pid, void *data, struct husk_error **err);
    void *data;
    /* cfg->rootfs_image as sbx_rootfs_image_mount() made it (borrowed), or -1: sbx_spawn mounts
     * it itself. A caller that joins the container's v1 cgroups before spawning mounts it first:
     * their device rules refuse the loop device a squashfs image needs. */
    int rootfs_image_fd;
    /* A pidfd of the process whose namespaces to join (setns on a pidfd, Linux 5.8), or -1:
     * every namespace with a path in the config is joined from it instead, all in one call, so
     * a pid reused after the caller checked it cannot send us elsewhere (cfg->ns[].path names
     * them in messages only). -1: join by path. */
    int join_pidfd;
    /*
     * A program to execute instead of process.args[0] (execveat AT_EMPTY_PATH), e.g. a sealed
     * memfd holding a static helper that runs the process's program itself, or -1. The program
     * named by process.args must still exist in the rootfs: it is looked up as usual. With -1
     * the process's program is executed by the exec stub (exec-stub.c), never by the husk
     * binary itself (CVE-2019-5736).
     */
    int exec_fd;
    /* An O_PATH fd of the rootfs directory to use instead of cfg->rootfs's path (which then
     * only names it in messages), or -1. It is cloned as a detached tree with its submounts
     * (open_tree), so a caller that checked the directory and kept it open is not exposed to
     * the path being swapped since, and the container's user needs no access to the
     * directory's parents (a user namespace's root). Ignored with cfg->rootfs_image. */
    int rootfs_fd;
    /* Three fds that become the process's 0, 1 and 2 (dup2'd in the child, so the caller's own
     * stdio is never touched: a threaded caller may spawn from any thread), or NULL: the
     * caller's 0, 1, 2. */
    const int *stdio;
    /* A filter of the caller's loaded after the process's own, last before execve, whose
     * listener fd comes back as sbx_child.notify_fd (husk/notify.h), or NULL. One listener per
     * process: not with a process.seccomp listener. Only with start_listen_fd -1. */
    const struct sbx_seccomp *notify_filter;
};

/* Options that ask for nothing: abi SBX_SPAWN_ABI, every fd -1, every pointer NULL. */
struct sbx_spawn_opts sbx_spawn_opts_init(void);

struct sbx_child {
    pid_t pid;
    int pidfd;      /* CLOEXEC; -1 once closed */
    int sync_fd;    /* CLOEXEC; -1 once the child was released */
    int pty_master; /* the terminal's master when no console socket took it, else -1 */
    int notify_fd;  /* the notify filter's listener once started (CLOEXEC), else -1 */
};

/* Create the sandbox; returns once everything but the final exec is done. */
int sbx_spawn(const struct sbx_config *cfg, const struct sbx_spawn_opts *opts,
              struct sbx_child **out, struct husk_error **err);
/* Release a child spawned with start_listen_fd -1; returns once it exec'd (or why it could not). */
int sbx_child_start(struct sbx_child *c, const struct sbx_config *cfg, struct husk_error **err);
/* Wait for the child to end; *status as waitpid. */
int sbx_child_wait(struct sbx_child *c, int *status, struct husk_error **err);
void sbx_child_free(struct sbx_child *c);
void sbx_child_freep(struct sbx_child **c);

/* On a connection to a child's start socket: release it and read the exec result. */
/* cfg (may be NULL) names the failing item in the message. */
int sbx_start_conn(int conn_fd, const struct sbx_config *cfg, struct husk_error **err);

/* Exit code of a wait status as shells and runc report it: code, or 128+signal. */
int sbx_status_to_exit_code(int status);

#endif
