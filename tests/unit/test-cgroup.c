/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cgroup layer against fake cgroup roots: temp dirs laid out like /sys/fs/cgroup on v1,
 * hybrid and v2 hosts. mkdirat, unlinkat and write are wrapped to act as the kernel does there:
 * a new cgroup directory gets its controller files, rmdir removes them, and each write(2)
 * replaces a single-value file or appends a line to a multi-value one (devices.allow, io.max...).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "husk/cgroup.h"

/* ---- the fake kernel ---- */

int __real_mkdirat(int dirfd, const char *path, mode_t mode);
int __real_unlinkat(int dirfd, const char *path, int flags);
ssize_t __real_write(int fd, const void *buf, size_t n);
int __wrap_mkdirat(int dirfd, const char *path, mode_t mode);
int __wrap_unlinkat(int dirfd, const char *path, int flags);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

static char root[PATH_MAX];   /* the fake /sys/fs/cgroup of the current test */
static const char *fail_file; /* a write to a file of this name fails... */
static int fail_errno;        /* ...with this errno */
static unsigned procs_writes; /* writes to cgroup.procs */

static const char *const v1_files[][12] = {
    {"memory", "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes",
     "memory.swappiness", "memory.oom_control", "memory.kmem.limit_in_bytes",
     "memory.use_hierarchy", "memory.usage_in_bytes", "cgroup.event_control", NULL},
    {"cpu,cpuacct", "cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.rt_runtime_us",
     "cpu.rt_period_us", "cpu.stat", "cpuacct.usage", "cpu.idle", NULL},
    {"cpuset", "cpuset.cpus", "cpuset.mems", NULL},
    {"pids", "pids.max", "pids.current", NULL},
    {"freezer", "freezer.state", NULL},
    {"devices", "devices.allow", "devices.deny", "devices.list", NULL},
    {"blkio", "blkio.weight", "blkio.weight_device", "blkio.throttle.read_bps_device",
     "blkio.throttle.write_iops_device", NULL},
    {"hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.1GB.limit_in_bytes", NULL},
    {"net_cls,net_prio", "net_cls.classid", "net_prio.ifpriomap", NULL},
};

static const char *const v2_files[] = {"cgroup.controllers",
                                       "cgroup.subtree_control",
                                       "cgroup.freeze",
                                       "cgroup.events",
                                       "cgroup.kill",
                                       "memory.max",
                                       "memory.low",
                                       "memory.swap.max",
                                       "memory.current",
                                       "memory.events",
                                       "cpu.weight",
                                       "cpu.max",
                                       "cpu.max.burst",
                                       "cpu.idle",
                                       "cpu.stat",
                                       "pids.max",
                                       "pids.current",
                                       "io.weight",
                                       "io.max",
                                       "cpuset.cpus",
                                       "cpuset.mems",
                                       "hugetlb.2MB.max",
                                       NULL};

/* Files that take one line per write (the kernel keeps a list); the rest hold one value. */
static const char *const multi_files[] = {"cgroup.procs",
                                          "devices.allow",
                                          "devices.deny",
                                          "io.max",
                                          "blkio.weight_device",
                                          "blkio.throttle.read_bps_device",
                                          "blkio.throttle.write_iops_device",
                                          "net_prio.ifpriomap",
                                          NULL};

static void
put(const char *dir, const char *file, const char *text)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, file) > 0);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static bool
in_fake(const char *path)
{
    size_t n = strlen(root);
    return root[0] && strncmp(path, root, n) == 0 && path[n] == '/';
}

static void
at_path(int dirfd, const char *path, char *out)
{
    char link[64], base[PATH_MAX] = "";
    if (path[0] == '/') {
        snprintf(out, PATH_MAX, "%s", path);
        return;
    }
    snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
    ssize_t n = dirfd == AT_FDCWD ? -1 : readlink(link, base, sizeof(base) - 1);
    if (n < 0)
        getcwd(base, sizeof(base));
    else
        base[n] = '\0';
    snprintf(out, PATH_MAX, "%s/%s", base, path);
}

/* The hierarchy a path below the root belongs to: its first component ("." for pure v2). */
static void
populate(const char *dir)
{
    const char *rel = dir + strlen(root) + 1;
    bool v2 = strncmp(rel, "unified/", 8) == 0;
    char top[PATH_MAX + 32];
    snprintf(top, sizeof(top), "%s/cgroup.controllers", root);
    if (access(top, F_OK) == 0)
        v2 = true; /* pure v2 */
    put(dir, "cgroup.procs", "");
    if (v2) {
        for (size_t i = 0; v2_files[i]; i++)
            put(dir, v2_files[i], "");
        put(dir, "cgroup.events", "populated 0\nfrozen 0\n");
        put(dir, "cpu.max", "max 100000\n");
        put(dir, "memory.max", "max\n");
        put(dir, "memory.current", "0\n");
        put(dir, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
        return;
    }
    for (size_t h = 0; h < sizeof(v1_files) / sizeof(v1_files[0]); h++) {
        size_t n = strlen(v1_files[h][0]);
        if (strncmp(rel, v1_files[h][0], n) != 0 || rel[n] != '/')
            continue;
        for (size_t i = 1; v1_files[h][i]; i++)
            put(dir, v1_files[h][i], "");
        if (h == 4)
            put(dir, "freezer.state", "THAWED\n");
        if (h == 0)
            put(dir, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
    }
}

int
__wrap_mkdirat(int dirfd, const char *path, mode_t mode)
{
    char full[PATH_MAX];
    int r = __real_mkdirat(dirfd, path, mode);
    at_path(dirfd, path, full);
    if (r == 0 && in_fake(full))
        populate(full);
    return r;
}

static int
rm_file(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)f;
    return type == FTW_F ? unlink(p) : 0;
}

int
__wrap_unlinkat(int dirfd, const char *path, int flags)
{
    char full[PATH_MAX];
    at_path(dirfd, path, full);
    if ((flags & AT_REMOVEDIR) && in_fake(full)) {
        DIR *d = opendir(full);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL)
            if (de->d_type == DT_DIR && de->d_name[0] != '.') {
                closedir(d);
                errno = EBUSY; /* a child cgroup */
                return -1;
            }
        if (d)
            closedir(d);
        nftw(full, rm_file, 8, FTW_PHYS);
    }
    return __real_unlinkat(dirfd, path, flags);
}

static bool
is_multi(const char *name)
{
    for (size_t i = 0; multi_files[i]; i++)
        if (strcmp(name, multi_files[i]) == 0)
            return true;
    return false;
}

ssize_t
__wrap_write(int fd, const void *buf, size_t n)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, path, sizeof(path) - 1);
    if (k < 0 || (path[k] = '\0', !in_fake(path)))
        return __real_write(fd, buf, n);
    char *name = strrchr(path, '/') + 1;
    if (fail_file && strcmp(name, fail_file) == 0) {
        errno = fail_errno;
        return -1;
    }
    char value[4096];
    size_t len = n;
    while (len > 0 && ((const char *)buf)[len - 1] == '\n')
        len--;
    snprintf(value, sizeof(value), "%.*s\n", (int)len, (const char *)buf);
    name[-1] = '\0'; /* path is now the directory */
    if (strcmp(name, "cgroup.procs") == 0)
        procs_writes++;
    if (strcmp(name, "cgroup.freeze") == 0)
        put(path, "cgroup.events",
            value[0] == '1' ? "populated 1\nfrozen 1\n" : "populated 1\nfrozen 0\n");
    if (strcmp(name, "cgroup.kill") == 0)
        put(path, "cgroup.procs", "");
    if (strcmp(name, "cgroup.subtree_control") == 0) {
        char p[2 * PATH_MAX], *save = NULL;
        snprintf(p, sizeof(p), "%s/%s", path, name);
        FILE *f = fopen(p, "a");
        for (char *t = strtok_r(value, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
            fprintf(f, "%s\n", t + (t[0] == '+'));
        fclose(f);
        return (ssize_t)n;
    }
    if (is_multi(name)) {
        char p[2 * PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", path, name);
        FILE *f = fopen(p, "a");
        fputs(value, f);
        fclose(f);
    } else {
        put(path, name, value);
    }
    return (ssize_t)n;
}

/* ---- fixtures ---- */

static char *
slurp(const char *fmt, ...)
{
    char p[2 * PATH_MAX + 2], rel[PATH_MAX];
    static char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static bool
exists(const char *fmt, ...)
{
    char p[2 * PATH_MAX + 2], rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    return access(p, F_OK) == 0;
}

static void
mkroot_dir(const char *name, bool v2, const char *controllers)
{
    char d[2 * PATH_MAX];
    snprintf(d, sizeof(d), "%s/%s", root, name);
    assert_int_equal(mkdir(d, 0755), 0);
    put(d, "cgroup.procs", "");
    if (v2) {
        put(d, "cgroup.controllers", controllers);
        put(d, "cgroup.subtree_control", "");
    }
}

/* hugetlb: a v1 hierarchy on v1 hosts, on cgroup2 on hybrid ones (as on the dev VM). */
static void
make_v1_but(const char *skip)
{
    for (size_t h = 0; h < sizeof(v1_files) / sizeof(v1_files[0]); h++)
        if (skip == NULL || strcmp(v1_files[h][0], skip) != 0)
            mkroot_dir(v1_files[h][0], false, NULL);
    mkroot_dir("systemd", false, NULL); /* name=systemd: no controller */
    char d[PATH_MAX + 32];
    snprintf(d, sizeof(d), "%s/cpuset", root);
    put(d, "cpuset.cpus", "0-3\n");
    put(d, "cpuset.mems", "0\n");
    snprintf(d, sizeof(d), "%s/cpu", root);
    assert_int_equal(symlink("cpu,cpuacct", d), 0); /* as systemd links them */
}

static void
make_v1(void)
{
    make_v1_but(NULL);
}

static void
make_hybrid(void)
{
    make_v1_but("hugetlb");
    mkroot_dir("unified", true, "hugetlb\n");
}

static void
make_v2(void)
{
    put(root, "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
    put(root, "cgroup.subtree_control", "cpuset cpu io memory pids\n");
    put(root, "cgroup.procs", "");
}

static int
setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/husk-test-cgroup-XXXXXX");
    assert_non_null(mkdtemp(root));
    fail_file = NULL;
    procs_writes = 0;
    return 0;
}

static int
rm_any(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    return remove(p);
}

static int
teardown(void **state)
{
    (void)state;
    nftw(root, rm_any, 16, FTW_DEPTH | FTW_PHYS);
    root[0] = '\0';
    return 0;
}

static struct sbx_cgroup_opts
opts(void)
{
    return (struct sbx_cgroup_opts){.root = root};
}

#define NUM(x) ((struct sbx_cg_num){true, (x)})

static struct sbx_cgroup *
create_ok(const char *path, const struct sbx_cgroup_limits *l)
{
    struct sbx_cgroup_opts o = opts();
    struct sbx_cgroup *cg = NULL;
    struct husk_error *err = NULL;
    int r = sbx_cgroup_create(&o, path, l, &cg, &err);
    if (r < 0)
        fail_msg("create %s: %s", path, err->msg);
    return cg;
}

static struct husk_error *
create_fails(const char *path, const struct sbx_cgroup_limits *l)
{
    struct sbx_cgroup_opts o = opts();
    struct sbx_cgroup *cg = NULL;
    struct husk_error *err = NULL;
    assert_true(sbx_cgroup_create(&o, path, l, &cg, &err) < 0);
    assert_null(cg);
    assert_non_null(err);
    return err;
}

/* ---- detection ---- */

static void
test_detect_modes(void **state)
{
    struct sbx_cgroup_opts o = opts();
    enum sbx_cgroup_mode m = 0;
    struct husk_error *err = NULL;
    assert_true(sbx_cgroup_detect(&o, &m, &err) < 0); /* empty root: nothing mounted */
    assert_int_equal(err->code, ENOENT);
    husk_error_free(err);
    make_v1();
    assert_int_equal(sbx_cgroup_detect(&o, &m, NULL), 0);
    assert_int_equal(m, SBX_CGROUP_V1);
    mkroot_dir("unified", true, "hugetlb\n");
    assert_int_equal(sbx_cgroup_detect(&o, &m, NULL), 0);
    assert_int_equal(m, SBX_CGROUP_HYBRID);
    teardown(state);
    setup(state);
    make_v2();
    assert_int_equal(sbx_cgroup_detect(&o, &m, NULL), 0);
    assert_int_equal(m, SBX_CGROUP_V2);
}

/* ---- v1 ---- */

static void
test_v1_limits_land_in_their_files(void **state)
{
    (void)state;
    make_v1();
    struct sbx_cgroup_limits l = {0};
    l.memory.limit = NUM(64 << 20);
    l.memory.swap = NUM(128 << 20);
    l.memory.reservation = NUM(32 << 20);
    l.memory.swappiness = NUM(10);
    l.memory.disable_oom_killer = NUM(1);
    l.cpu.shares = NUM(512);
    l.cpu.quota = NUM(50000);
    l.cpu.period = NUM(100000);
    l.pids = NUM(64);
    struct sbx_cgroup *cg = create_ok("/husk/c1", &l);
    assert_string_equal(slurp("memory/husk/c1/memory.limit_in_bytes"), "67108864\n");
    assert_string_equal(slurp("memory/husk/c1/memory.memsw.limit_in_bytes"), "134217728\n");
    assert_string_equal(slurp("memory/husk/c1/memory.soft_limit_in_bytes"), "33554432\n");
    assert_string_equal(slurp("memory/husk/c1/memory.swappiness"), "10\n");
    assert_string_equal(slurp("memory/husk/c1/memory.oom_control"), "1\n");
    assert_string_equal(slurp("cpu,cpuacct/husk/c1/cpu.shares"), "512\n");
    assert_string_equal(slurp("cpu,cpuacct/husk/c1/cpu.cfs_quota_us"), "50000\n");
    assert_string_equal(slurp("cpu,cpuacct/husk/c1/cpu.cfs_period_us"), "100000\n");
    assert_string_equal(slurp("pids/husk/c1/pids.max"), "64\n");
    /* Only what the limits need, plus the freezer that tracks and pauses. */
    char *where = sbx_cgroup_describe(cg);
    assert_non_null(strstr(where, "memory"));
    assert_non_null(strstr(where, "cpu,cpuacct"));
    assert_non_null(strstr(where, "pids"));
    assert_non_null(strstr(where, "freezer"));
    assert_int_equal(strlen(where), strlen("memory,cpu,cpuacct,pids,freezer"));
    free(where);
    assert_false(exists("cpuset/husk"));
    assert_false(exists("devices/husk"));
    assert_false(exists("systemd/husk"));
    assert_int_equal(sbx_cgroup_owned(cg), 2); /* husk and c1 were made */
    assert_int_equal(sbx_cgroup_destroy(cg, NULL), 0);
    /* delete removes the leaf in every hierarchy, and /husk once no container uses it */
    assert_false(exists("memory/husk/c1"));
    assert_false(exists("freezer/husk/c1"));
    assert_false(exists("memory/husk"));
    sbx_cgroup_free(cg);
}

static void
test_v1_cpuset_inherits_and_devices_replay(void **state)
{
    (void)state;
    make_v1();
    struct sbx_cgroup_limits l = {0};
    struct sbx_cg_device_rule rules[] = {{false, 'a', -1, -1, "rwm"},
                                         {true, 'c', 1, 3, "rwm"},
                                         {true, 'c', 136, -1, "rw"},
                                         {false, 'c', 1, 3, "w"}};
    l.cpu.mems = strdup("0");
    l.devices_set = true;
    l.devices = rules;
    l.n_devices = 4;
    struct sbx_cgroup *cg = create_ok("/husk/c2", &l);
    /* A new v1 cpuset has no cpus: they come from the parent before anything joins. */
    assert_string_equal(slurp("cpuset/husk/cpuset.cpus"), "0-3\n");
    assert_string_equal(slurp("cpuset/husk/c2/cpuset.cpus"), "0-3\n");
    assert_string_equal(slurp("cpuset/husk/c2/cpuset.mems"), "0\n");
    assert_string_equal(slurp("devices/husk/c2/devices.deny"), "a\na\nc 1:3 w\n");
    assert_string_equal(slurp("devices/husk/c2/devices.allow"), "c 1:3 rwm\nc 136:* rw\n");
    free(l.cpu.mems);
    sbx_cgroup_destroy(cg, NULL);
    sbx_cgroup_free(cg);
}

static void
test_v1_enter_writes_every_hierarchy(void **state)
{
    (void)state;
    make_v1();
    struct sbx_cgroup_limits l = {0};
    l.pids = NUM(10);
    struct sbx_cgroup *cg = create_ok("/husk/c3", &l);
    assert_int_equal(sbx_cgroup_spawn_fd(cg), -1); /* no cgroup2: no CLONE_INTO_CGROUP */
    assert_int_equal(sbx_cgroup_enter(cg, 4242, NULL), 0);
    assert_string_equal(slurp("pids/husk/c3/cgroup.procs"), "4242\n");
    assert_string_equal(slurp("freezer/husk/c3/cgroup.procs"), "4242\n");
    assert_int_equal(procs_writes, 2);
    pid_t *pids = NULL;
    size_t n = 0;
    assert_int_equal(sbx_cgroup_pids(cg, &pids, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(pids[0], 4242);
    free(pids);
    assert_int_equal(sbx_cgroup_freeze(cg, true, NULL), 0);
    assert_int_equal(sbx_cgroup_is_frozen(cg), 1);
    assert_int_equal(sbx_cgroup_freeze(cg, false, NULL), 0);
    assert_int_equal(sbx_cgroup_is_frozen(cg), 0);
    put(root, "pids/husk/c3/cgroup.procs", ""); /* "4242" exited */
    put(root, "freezer/husk/c3/cgroup.procs", "");
    assert_int_equal(sbx_cgroup_destroy(cg, NULL), 0);
    sbx_cgroup_free(cg);
}

static void
test_v1_memory_below_usage_is_a_clear_error(void **state)
{
    (void)state;
    make_v1();
    struct sbx_cgroup_limits l = {0};
    l.memory.limit = NUM(64 << 20);
    struct sbx_cgroup *cg = create_ok("/husk/c4", &l);
    put(root, "memory/husk/c4/memory.usage_in_bytes", "50000000\n");
    fail_file = "memory.limit_in_bytes";
    fail_errno = EBUSY;
    struct husk_error *err = NULL;
    l.memory.limit = NUM(1 << 20);
    assert_true(sbx_cgroup_update(cg, &l, &err) < 0);
    assert_non_null(strstr(err->msg, "below the current usage of 50000000 bytes"));
    husk_error_free(err);
    fail_file = NULL;
    sbx_cgroup_destroy(cg, NULL);
    sbx_cgroup_free(cg);
}

static void
test_v1_update_joins_new_hierarchies_frozen(void **state)
{
    (void)state;
    make_v1();
    struct sbx_cgroup_limits l = {0};
    l.memory.limit = NUM(64 << 20);
    struct sbx_cgroup *cg = create_ok("/husk/c5", &l);
    assert_int_equal(sbx_cgroup_enter(cg, 777, NULL), 0);
    assert_false(exists("pids/husk/c5"));
    struct sbx_cgroup_limits u = {0};
    u.pids = NUM(5);
    assert_int_equal(sbx_cgroup_update(cg, &u, NULL), 0);
    /* The new hierarchy has the limit and every process of the container. */
    assert_string_equal(slurp("pids/husk/c5/pids.max"), "5\n");
    assert_string_equal(slurp("pids/husk/c5/cgroup.procs"), "777\n");
    assert_string_equal(slurp("freezer/husk/c5/freezer.state"), "THAWED\n");
    assert_string_equal(slurp("memory/husk/c5/memory.limit_in_bytes"), "67108864\n");
    put(root, "pids/husk/c5/cgroup.procs", "");
    put(root, "memory/husk/c5/cgroup.procs", "");
    put(root, "freezer/husk/c5/cgroup.procs", "");
    assert_int_equal(sbx_cgroup_destroy(cg, NULL), 0);
    assert_false(exists("pids/husk/c5"));
    sbx_cgroup_free(cg);
}

static void
test_v1_unified_converts_or_refuses(void **state)
{
    (void)state;
    make_v1();
    struct sbx_cg_kv kv[] = {
        {"cpu.weight", "100"}, {"memory.max", "max"}, {"cpu.max", "25000 50000"}};
    struct sbx_cgroup_limits l = {.unified = kv, .n_unified = 3};
    struct sbx_cgroup *cg = create_ok("/husk/c6", &l);
    assert_string_equal(slurp("cpu,cpuacct/husk/c6/cpu.shares"), "2598\n");
    assert_string_equal(slurp("memory/husk/c6/memory.limit_in_bytes"), "-1\n");
    assert_string_equal(slurp("cpu,cpuacct/husk/c6/cpu.cfs_quota_us"), "25000\n");
    assert_string_equal(slurp("cpu,cpuacct/husk/c6/cpu.cfs_period_us"), "50000\n");
    sbx_cgroup_destroy(cg, NULL);
    sbx_cgroup_free(cg);

    struct sbx_cg_kv bad[] = {{"memory.high", "1000"}};
    struct sbx_cgroup_limits l2 = {.unified = bad, .n_unified = 1};
    struct husk_error *err = create_fails("/husk/c7", &l2);
    assert_non_null(strstr(err->msg, "unified 'memory.high'"));
    assert_non_null(strstr(err->msg, "no v1 equivalent"));
    husk_error_free(err);
    assert_false(exists("memory/husk/c7"));
    assert_false(exists("freezer/husk/c7"));
}

/* ---- hybrid ---- */

static void
test_hybrid_tracks_in_cgroup2_and_leaves_its_root_alone(void **state)
{
    (void)state;
    make_hybrid();
    struct sbx_cgroup_limits l = {0};
    l.memory.limit = NUM(1 << 30);
    struct sbx_cgroup *cg = create_ok("/husk/h1", &l);
    char *where = sbx_cgroup_describe(cg);
    /* cgroup2 tracks; the v1 freezer pauses, as runc does and engines read on hybrid hosts. */
    assert_non_null(strstr(where, "memory"));
    assert_non_null(strstr(where, "cgroup2"));
    assert_non_null(strstr(where, "freezer"));
    free(where);
    assert_true(exists("freezer/husk/h1"));
    assert_true(sbx_cgroup_spawn_fd(cg) >= 0);
    assert_int_equal(sbx_cgroup_freeze(cg, true, NULL), 0);
    assert_string_equal(slurp("freezer/husk/h1/freezer.state"), "FROZEN\n");
    assert_int_equal(sbx_cgroup_is_frozen(cg), 1);
    assert_int_equal(sbx_cgroup_freeze(cg, false, NULL), 0);
    assert_int_equal(sbx_cgroup_destroy(cg, NULL), 0);
    sbx_cgroup_free(cg);

    /* hugetlb lives on cgroup2 here, not enabled in the host's root: refused, not enabled. */
    struct sbx_cg_hugepage hp = {"2MB", 4 << 21};
    struct sbx_cgroup_limits l2 = {.hugepages = &hp, .n_hugepages = 1};
    struct husk_error *err = create_fails("/husk/h2", &l2);
    assert_non_null(strstr(err->msg, "'hugetlb' is not enabled"));
    husk_error_free(err);
    assert_string_equal(slurp("unified/cgroup.subtree_control"), "");
    assert_false(exists("unified/husk/h2"));
}

static void
test_hybrid_net_cls_missing_is_an_error(void **state)
{
    (void)state;
    make_hybrid();
    struct sbx_cgroup_limits l = {0};
    l.net_classid = NUM(0x100001);
    struct sbx_cgroup *cg = create_ok("/husk/n1", &l);
    assert_string_equal(slurp("net_cls,net_prio/husk/n1/net_cls.classid"), "1048577\n");
    sbx_cgroup_destroy(cg, NULL);
    sbx_cgroup_free(cg);
    teardown(state);
    setup(state);
    make_v2();
    struct husk_error *err = create_fails("/husk/n2", &l);
    assert_non_null(strstr(err->msg, "network.classID"));
    assert_non_null(strstr(err->msg, "cgroup v1 only"));
    husk_error_free(err);
}

/* ---- v2 ---- */

static void
test_v2_converts_v1_values(void **state)
{
    (void)state;
    make_v2();
    struct sbx_cgroup_limits l = {0};
    l.memory.limit = NUM(256 << 20);
    l.memory.swap = NUM(384 << 20);
    l.memory.reservation = NUM(128 << 20);
    l.cpu.shares = NUM(1024);
    l.cpu.quota = NUM(50000);
    l.pids = NUM(-1);
    l.blkio.weight = NUM(500);
    struct sbx_cg_throttle t = {8, 0, 1048576};
    l.blkio.throttle[SBX_CG_READ_BPS] = &t;
    l.blkio.n_throttle[SBX_CG_READ_BPS] = 1;
    struct sbx_cgroup *cg = create_ok("/husk/v1", &l);
    assert_string_equal(slurp("husk/v1/memory.max"), "268435456\n");
    assert_string_equal(slurp("husk/v1/memory.swap.max"), "134217728\n"); /* swap - limit */
    assert_string_equal(slurp("husk/v1/memory.low"), "134217728\n");
    assert_string_equal(slurp("husk/v1/cpu.weight"), "39\n");
    assert_string_equal(slurp("husk/v1/cpu.max"), "50000 100000\n"); /* period kept */
    assert_string_equal(slurp("husk/v1/pids.max"), "max\n");
    assert_string_equal(slurp("husk/v1/io.weight"), "default 4950\n");
    assert_string_equal(slurp("husk/v1/io.max"), "8:0 rbps=1048576\n");
    /* Enabled in husk's own parent; the host's root is left as it was. */
    assert_string_equal(slurp("husk/cgroup.subtree_control"), "cpu\nmemory\nio\npids\n");
    assert_string_equal(slurp("cgroup.subtree_control"), "cpuset cpu io memory pids\n");
    assert_int_equal(sbx_cgroup_get_mode(cg), SBX_CGROUP_V2);
    assert_int_equal(sbx_cgroup_destroy(cg, NULL), 0);
    assert_false(exists("husk/v1"));
    sbx_cgroup_free(cg);
}

static void
test_v2_no_equivalent(void **state)
{
    (void)state;
    make_v2();
    struct sbx_cgroup_limits l = {0};
    l.cpu.rt_runtime = NUM(1000);
    struct husk_error *err = create_fails("/husk/v2", &l);
    assert_non_null(strstr(err->msg, "no realtime"));
    husk_error_free(err);
    assert_false(exists("husk/v2"));
    struct sbx_cgroup_limits l2 = {0};
    l2.memory.swap = NUM(1 << 20);
    err = create_fails("/husk/v2", &l2);
    assert_non_null(strstr(err->msg, "needs a memory limit"));
    husk_error_free(err);
}

static void
test_v2_unified_and_unknown_keys(void **state)
{
    (void)state;
    make_v2();
    struct sbx_cg_kv kv[] = {{"memory.max", "1000000"}, {"pids.max", "7"}};
    struct sbx_cgroup_limits l = {.unified = kv, .n_unified = 2};
    struct sbx_cgroup *cg = create_ok("/husk/u1", &l);
    assert_string_equal(slurp("husk/u1/memory.max"), "1000000\n");
    assert_string_equal(slurp("husk/u1/pids.max"), "7\n");
    sbx_cgroup_destroy(cg, NULL);
    sbx_cgroup_free(cg);

    struct sbx_cg_kv unknown[] = {{"memory.nonsense", "1"}};
    struct sbx_cgroup_limits l2 = {.unified = unknown, .n_unified = 1};
    struct husk_error *err = create_fails("/husk/u2", &l2);
    assert_non_null(strstr(err->msg, "unified 'memory.nonsense'"));
    husk_error_free(err);
    assert_false(exists("husk/u2"));

    struct sbx_cg_kv nocontroller[] = {{"bogus.key", "1"}};
    struct sbx_cgroup_limits l3 = {.unified = nocontroller, .n_unified = 1};
    err = create_fails("/husk/u3", &l3);
    assert_non_null(strstr(err->msg, "unified.bogus.key"));
    husk_error_free(err);
}

static void
test_v2_update_checks_usage_and_kill_uses_cgroup_kill(void **state)
{
    (void)state;
    make_v2();
    struct sbx_cgroup_limits l = {0};
    l.memory.limit = NUM(100 << 20);
    struct sbx_cgroup *cg = create_ok("/husk/k1", &l);
    put(root, "husk/k1/memory.current", "52428800\n");
    l.memory.limit = NUM(10 << 20);
    struct husk_error *err = NULL;
    assert_true(sbx_cgroup_update(cg, &l, &err) < 0);
    assert_non_null(strstr(err->msg, "below the current usage of 52428800 bytes"));
    husk_error_free(err);
    assert_string_equal(slurp("husk/k1/memory.max"), "104857600\n"); /* unchanged */
    put(root, "husk/k1/cgroup.procs", "999999\n");
    assert_int_equal(sbx_cgroup_kill(cg, SIGKILL, NULL), 0);
    assert_string_equal(slurp("husk/k1/cgroup.kill"), "1\n");
    put(root, "husk/k1/memory.events", "oom 3\noom_kill 2\n");
    assert_int_equal(sbx_cgroup_oom_kills(cg), 2);
    put(root, "husk/k1/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
    struct sbx_cgroup_stats st;
    assert_int_equal(sbx_cgroup_stats(cg, &st, NULL), 0);
    assert_true(st.has_cpu && st.has_memory);
    assert_int_equal(st.cpu_usage_ns, 1500000);
    assert_int_equal(st.mem_usage, 52428800);
    assert_int_equal(st.oom_kills, 2);
    assert_int_equal(sbx_cgroup_destroy(cg, NULL), 0);
    sbx_cgroup_free(cg);
}

static void
test_paths(void **state)
{
    (void)state;
    make_v2();
    struct sbx_cgroup_limits l = {0};
    struct husk_error *err = create_fails("relative", &l);
    assert_non_null(strstr(err->msg, "not absolute"));
    husk_error_free(err);
    err = create_fails("/husk/../etc", &l);
    husk_error_free(err);
    err = create_fails("/", &l);
    assert_non_null(strstr(err->msg, "root cgroup"));
    husk_error_free(err);
    /* Nested: every component made is removed again. */
    struct sbx_cgroup *cg = create_ok("//husk-test/a/b/", &l);
    assert_string_equal(sbx_cgroup_path(cg), "/husk-test/a/b");
    assert_int_equal(sbx_cgroup_owned(cg), 3);
    assert_int_equal(sbx_cgroup_destroy(cg, NULL), 0);
    assert_false(exists("husk-test/a"));
    assert_false(exists("husk-test"));
    sbx_cgroup_free(cg);
    /* An existing leaf with processes belongs to someone else. */
    cg = create_ok("/husk-test/busy", &l);
    put(root, "husk-test/busy/cgroup.procs", "1\n");
    sbx_cgroup_free(cg);
    err = create_fails("/husk-test/busy", &l);
    assert_non_null(strstr(err->msg, "already holds processes"));
    husk_error_free(err);
    assert_true(exists("husk-test/busy"));
}

/* ---- limits ---- */

static void
check_fails(const struct sbx_cgroup_limits *l, const char *field, const char *what)
{
    char *f = NULL;
    struct husk_error *err = NULL;
    assert_true(sbx_cgroup_limits_check(l, &f, &err) < 0);
    assert_string_equal(f, field);
    assert_non_null(strstr(err->msg, what));
    free(f);
    husk_error_free(err);
}

static void
test_limits_check(void **state)
{
    (void)state;
    struct sbx_cgroup_limits l = {0};
    l.memory.limit = NUM(-2);
    check_fails(&l, "memory.limit", "out of range");
    l.memory.limit = NUM(100 << 20);
    l.memory.swap = NUM(50 << 20);
    check_fails(&l, "memory.swap", "below memory.limit");
    memset(&l, 0, sizeof(l));
    l.cpu.cpus = "0-";
    check_fails(&l, "cpu.cpus", "not a cpu list");
    l.cpu.cpus = NULL;
    l.cpu.quota = NUM(10);
    check_fails(&l, "cpu.quota", "minimum of 1000");
    memset(&l, 0, sizeof(l));
    struct sbx_cg_device_rule d = {true, 'c', 1, 3, "rwx"};
    l.devices = &d;
    l.n_devices = 1;
    check_fails(&l, "devices[0].access", "combination of r, w and m");
    memset(&l, 0, sizeof(l));
    struct sbx_cg_kv kv = {"cgroup.procs", "1"};
    l.unified = &kv;
    l.n_unified = 1;
    check_fails(&l, "unified.cgroup.procs", "managed by the runtime");
    memset(&l, 0, sizeof(l));
    l.pids = NUM(-5);
    check_fails(&l, "pids.limit", "out of range");
    memset(&l, 0, sizeof(l));
    struct sbx_cg_hugepage hp = {"2M", 1};
    l.hugepages = &hp;
    l.n_hugepages = 1;
    check_fails(&l, "hugepageLimits[0].pageSize", "not a page size");
}

static void
test_conversions(void **state)
{
    (void)state;
    assert_int_equal(sbx_cg_shares_to_weight(2), 1);
    assert_int_equal(sbx_cg_shares_to_weight(1024), 39);
    assert_int_equal(sbx_cg_shares_to_weight(262144), 10000);
    assert_int_equal(sbx_cg_blkio_to_io_weight(10), 1);
    assert_int_equal(sbx_cg_blkio_to_io_weight(1000), 10000);
    /* v2 -> v1 lands back on the same v2 value. */
    for (uint64_t w = 1; w <= 10000; w++)
        if (sbx_cg_shares_to_weight(sbx_cg_weight_to_shares(w)) != w)
            fail_msg("weight %llu does not survive the round trip", (unsigned long long)w);
    for (uint64_t w = 1; w <= 10000; w += 7) {
        uint64_t b = sbx_cg_io_to_blkio_weight(w);
        assert_true(b >= 10 && b <= 1000);
    }
}

/* Every limit field on its own counts as a limit (a rootless container without cgroups must
 * refuse it); device rules alone do not. */
static void
test_limits_any_covers_every_field(void **state)
{
    (void)state;
    struct sbx_cg_blkio_device dev = {8, 0, {true, 100}, {false, 0}};
    struct sbx_cg_throttle thr = {8, 0, 1000};
    struct sbx_cg_hugepage hp = {"2MB", 1 << 21};
    struct sbx_cg_net_prio np = {"lo", 1};
    struct sbx_cg_rdma rd = {"mlx", {true, 1}, {false, 0}};
    struct sbx_cg_kv kv = {"memory.high", "1M"};
    struct sbx_cg_num on = {true, 1};
    struct sbx_cgroup_limits cases[32];
    size_t n = 0;
#define CASE(stmt)                                                                                 \
    do {                                                                                           \
        struct sbx_cgroup_limits *l = &cases[n++];                                                 \
        memset(l, 0, sizeof(*l));                                                                  \
        stmt;                                                                                      \
    } while (0)
    CASE(l->memory.limit = on);
    CASE(l->memory.reservation = on);
    CASE(l->memory.swap = on);
    CASE(l->memory.kernel = on);
    CASE(l->memory.kernel_tcp = on);
    CASE(l->memory.swappiness = on);
    CASE(l->memory.disable_oom_killer = on);
    CASE(l->memory.use_hierarchy = on);
    CASE(l->cpu.shares = on);
    CASE(l->cpu.quota = on);
    CASE(l->cpu.period = on);
    CASE(l->cpu.burst = on);
    CASE(l->cpu.rt_runtime = on);
    CASE(l->cpu.rt_period = on);
    CASE(l->cpu.idle = on);
    CASE(l->cpu.cpus = "0");
    CASE(l->cpu.mems = "0");
    CASE(l->pids = on);
    CASE(l->blkio.weight = on);
    CASE(l->blkio.leaf_weight = on);
    CASE((l->blkio.devices = &dev, l->blkio.n_devices = 1));
    for (int k = 0; k < SBX_CG_THROTTLE_COUNT; k++)
        CASE((l->blkio.throttle[k] = &thr, l->blkio.n_throttle[k] = 1));
    CASE((l->hugepages = &hp, l->n_hugepages = 1));
    CASE(l->net_classid = on);
    CASE((l->net_prio = &np, l->n_net_prio = 1));
    CASE((l->rdma = &rd, l->n_rdma = 1));
    CASE((l->unified = &kv, l->n_unified = 1));
#undef CASE
    for (size_t i = 0; i < n; i++)
        if (!sbx_cgroup_limits_any(&cases[i]))
            fail_msg("limit case %zu does not count as a limit", i);
    struct sbx_cgroup_limits devices_only = {.devices_set = true};
    assert_false(sbx_cgroup_limits_any(&devices_only));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_any_covers_every_field),
        cmocka_unit_test_setup_teardown(test_detect_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_limits_land_in_their_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_cpuset_inherits_and_devices_replay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_v1_enter_writes_every_hierarchy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_memory_below_usage_is_a_clear_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_v1_update_joins_new_hierarchies_frozen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_v1_unified_converts_or_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hybrid_tracks_in_cgroup2_and_leaves_its_root_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hybrid_net_cls_missing_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_converts_v1_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_no_equivalent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_unified_and_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_update_checks_usage_and_kill_uses_cgroup_kill,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
        cmocka_unit_test(test_limits_check),
        cmocka_unit_test(test_conversions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
