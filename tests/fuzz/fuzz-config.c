/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for config.json, read as `husk create` reads it: the file in a bundle loaded by
 * oci_config_load, its seccomp profile compiled (and the program run on a few system calls),
 * its cgroup path made and opened under a fake cgroup root, its limits checked. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpf-eval.h"
#include "fuzz.h"
#include "oci.h"
#include "util.h"

static const char *dir; /* fuzz_scratch_dir() */
static char *bundle, *config, *cgroot;
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    dir = fuzz_scratch_dir();
    bundle = xasprintf("%s/bundle", dir);
    config = xasprintf("%s/config.json", bundle);
    cgroot = xasprintf("%s/cgroup", dir);
    cleanup_free char *rootfs = xasprintf("%s/rootfs", bundle);
    if (mkdir(bundle, 0755) < 0 || mkdir(rootfs, 0755) < 0 || mkdir(cgroot, 0755) < 0)
        abort();
    /* A plain directory with cgroup.controllers is a cgroup2 root to the cgroup layer. */
    cleanup_free char *ctrls = xasprintf("%s/cgroup.controllers", cgroot);
    cleanup_fd int fd = open(ctrls, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, "cpu memory pids io\n", 19) < 0)
        abort();
    return 0;
}

/* What config.c allows, said again independently: a sysctl of a namespace the container has. */
static bool
sysctl_allowed(const struct sbx_config *s, const char *key)
{
    static const struct {
        const char *name;
        bool prefix;
        enum sbx_ns_type ns;
    } ok[] = {{"kernel.msg", true, SBX_NS_IPC},
              {"kernel.sem", true, SBX_NS_IPC},
              {"kernel.shm", true, SBX_NS_IPC},
              {"fs.mqueue.", true, SBX_NS_IPC},
              {"net.", true, SBX_NS_NET},
              {"kernel.hostname", false, SBX_NS_UTS},
              {"kernel.domainname", false, SBX_NS_UTS}};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
        if ((ok[i].prefix ? str_has_prefix(key, ok[i].name) : strcmp(key, ok[i].name) == 0))
            return s->ns[ok[i].ns].enabled;
    return false;
}

static void
check_config(const struct oci_config *c)
{
    const struct sbx_config *s = c->sbx;
    fuzz_check(s->rootfs && s->rootfs[0] == '/');
    fuzz_check(s->process.args && s->process.args[0] && s->process.args[0][0]);
    fuzz_check(s->process.cwd && s->process.cwd[0] == '/');
    for (size_t i = 0; s->process.env && s->process.env[i]; i++)
        fuzz_check(strchr(s->process.env[i], '=') != NULL);
    for (size_t i = 0; i < s->n_mounts; i++) {
        const struct sbx_mount *m = &s->mounts[i];
        fuzz_check(m->destination && m->destination[0] == '/');
        fuzz_check(!(m->flags & MS_BIND) || (m->source && m->source[0] == '/'));
    }
    for (size_t i = 0; i < s->n_devices; i++)
        fuzz_check(s->devices[i].path[0] == '/' && !path_has_dot_component(s->devices[i].path));
    for (size_t i = 0; i < s->n_sysctl; i++) {
        fuzz_check(sysctl_allowed(s, s->sysctl[i].key));
        fuzz_check(!strstr(s->sysctl[i].key, "..") && !strchr(s->sysctl[i].key, '/'));
    }
    for (size_t i = 0; i < s->n_uid_map; i++)
        fuzz_check(s->uid_map[i].count >= 1);
    for (size_t i = 0; i < s->n_gid_map; i++)
        fuzz_check(s->gid_map[i].count >= 1);
    fuzz_check(!(s->n_uid_map || s->n_gid_map) || s->ns[SBX_NS_USER].enabled);
    for (int k = 0; k < OCI_HOOK__COUNT; k++)
        for (size_t i = 0; i < c->n_hooks[k]; i++)
            fuzz_check(c->hooks[k][i].path[0] == '/');
    fuzz_check(json_is_object(c->annotations));
}

/* The compiled program is one the kernel would load, and decides every call without error. */
static void
check_program(const struct sbx_seccomp *sc)
{
    static const uint32_t arches[] = {AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64};
    size_t n = sc->len / sizeof(struct sock_filter);
    fuzz_check(sc->bpf != NULL && sc->len > 0 && sc->len % sizeof(struct sock_filter) == 0);
    fuzz_check(n <= BPF_MAXINSNS);
    for (size_t a = 0; a < ARRAY_SIZE(arches); a++)
        for (int nr = 0; nr < 450; nr += 7) {
            struct seccomp_data d = {.nr = nr, .arch = arches[a], .args = {(uint64_t)nr << 20, 40}};
            bool bad;
            bpf_eval(sc->bpf, n, &d, &bad);
            fuzz_check(!bad);
        }
}

static void
check_error(struct husk_error *err, int r, const char *file)
{
    fuzz_check(r < 0 && err != NULL && err->msg[0] != '\0');
    /* A user's mistake names the file (or, for a missing path, the path it could not use). */
    fuzz_check(err->code != 0 || str_has_prefix(err->msg, file));
    if (getenv("HUSK_FUZZ_DEBUG"))
        fprintf(stderr, "refused: %s\n", err->msg);
    husk_error_free(err);
}

/* Where the container's cgroup would go, opened under the fake root: refused or missing. */
static void
check_cgroup(const struct oci_config *c)
{
    cleanup_free char *path = oci_resources_cgroup_path(c->resources, "fuzz-id");
    struct sbx_cgroup_opts o = {.root = cgroot};
    struct sbx_cgroup *cg = NULL;
    struct husk_error *err = NULL;
    fuzz_check(path && path[0] == '/');
    int r = sbx_cgroup_open(&o, path, 1, &cg, &err);
    fuzz_check(r < 0 && cg == NULL && err != NULL); /* nothing was created under the root */
    husk_error_free(err);
    if (c->resources) {
        char *field = NULL;
        err = NULL;
        if (sbx_cgroup_limits_check(&c->resources->limits, &field, &err) < 0) {
            fuzz_check(field != NULL && err != NULL);
            husk_error_free(err);
        }
        free(field);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oci_config *c = NULL;
    struct husk_error *err = NULL;
    fuzz_set_input(data, size);
    {
        cleanup_fd int fd = open(config, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        fuzz_check(fd >= 0 && write_all(fd, data, size) == 0);
    }
    int r = oci_config_load(bundle, &c, &err);
    if (r < 0) {
        fuzz_count(0); /* refused */
        fuzz_check(c == NULL);
        check_error(err, r, config);
        fuzz_set_input(NULL, 0);
        return 0;
    }
    fuzz_check(err == NULL);
    fuzz_count(1); /* configs loaded */
    check_config(c);
    if (c->seccomp) {
        struct sbx_seccomp sc = {0};
        r = oci_seccomp_compile(c->seccomp, c->path, NULL, &sc, &err);
        if (r == 0) {
            fuzz_count(2); /* seccomp programs compiled */
            check_program(&sc);
        } else
            check_error(err, r, config);
        free(sc.bpf);
        free(sc.listener_msg);
    }
    check_cgroup(c);
    oci_config_free(c);
    fuzz_set_input(NULL, 0);
    return 0;
}

/* clang-format off */
static const char *const words[] = {
    "ociVersion", "root", "path", "readonly", "rootfs", "process", "args", "cwd", "env", "PATH=/bin",
    "terminal", "user", "uid", "gid", "umask", "additionalGids", "capabilities", "bounding",
    "effective", "CAP_SYS_ADMIN", "CAP_NET_RAW", "rlimits", "RLIMIT_NOFILE", "soft", "hard",
    "noNewPrivileges", "oomScoreAdj", "apparmorProfile", "selinuxLabel", "consoleSize", "height",
    "mounts", "destination", "source", "type", "options", "bind", "rbind", "ro", "rw", "nosuid",
    "mode=1777", "size=64k", "tmpfs", "proc", "cgroup", "/proc", "/proc/sys", "/proc/cpuinfo",
    "/dev", "/sys", "hostname", "domainname", "linux", "namespaces", "pid", "network", "mount",
    "user", "uts", "ipc", "time", "/proc/self/ns/net", "uidMappings", "gidMappings",
    "containerID", "hostID", "size", "sysctl", "kernel.core_pattern", "net.ipv4.ip_forward",
    "kernel.shmmax", "fs.mqueue.msg_max", "kernel.domainname", "devices", "/dev/fuse",
    "/dev/../etc/x", "major", "minor", "fileMode", "seccomp", "defaultAction", "defaultErrnoRet",
    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
    "architectures", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64", "syscalls",
    "names", "socket", "clone", "getpriority", "socketcall", "index", "value", "valueTwo", "op",
    "SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_GT", "errnoRet", "flags",
    "SECCOMP_FILTER_FLAG_LOG", "listenerPath", "listenerMetadata", "resources", "memory",
    "limit", "reservation", "swap", "swappiness", "cpu", "shares", "quota", "period", "cpus",
    "0-3", "mems", "pids", "blockIO", "weight", "leafWeight", "weightDevice",
    "throttleReadBpsDevice", "rate", "hugepageLimits", "pageSize", "2MB", "unified",
    "memory.high", "cpu.weight", "allow", "access", "rwm", "cgroupsPath", "/husk/x", "../x",
    "rootfsPropagation", "rshared", "runbindable", "maskedPaths", "readonlyPaths", "mountLabel",
    "hooks", "prestart", "createRuntime", "poststart", "poststop", "timeout", "/bin/sh",
    "annotations", "run.husk.landlock.read", "run.husk.landlock.tcp.bind",
    "run.husk.rootfs.image", "rootfs.erofs",
};
/* clang-format on */
static const char grammar[] = "{}[]\",:\\ \n0-./";
static const size_t long_runs[] = {4096, 65536};

const struct fuzz_target fuzz_target = {
    .name = "config",
    .counted = {"refused", "configs loaded", "seccomp programs compiled"},
    .tokens = words,
    .n_tokens = ARRAY_SIZE(words),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .long_runs = long_runs,
    .n_long_runs = ARRAY_SIZE(long_runs),
    .iterations = 3000,
    .max_input = 1 << 18,
    .mutate = fuzz_json_mutate,
    .mutate_share = 3,
};
