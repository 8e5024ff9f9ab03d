/* SPDX-License-Identifier: Apache-2.0 */
/*
 * linux.seccomp -> a BPF program, compiled with libseccomp and cached by the SHA-256 of the
 * profile (compiling costs about 0.3 ms, loading a cached program 0.14 ms on the development VM).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sha2.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json-get.h"
#include "oci.h"
#include "util.h"

static const struct {
    const char *name;
    uint32_t action; /* with errno or trace value filled in later */
    bool takes_ret;
} actions[] = {
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, false},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), true},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG, false},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY, false},
};

static const struct {
    const char *name;
    enum scmp_compare op;
} ops[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

static const struct {
    const char *name;
    unsigned flag;
} filter_flags[] = {
    {"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
    {"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 1U << 5},
};

static int
parse_action(const struct jctx *c, json_t *obj, const char *key, const char *path,
             const char *ret_key, int64_t default_ret, uint32_t *out, struct husk_error **err)
{
    cleanup_free char *name = NULL;
    cleanup_free char *ret_path = xasprintf("%s.%s", path, ret_key);
    int64_t ret = default_ret;
    int r = jget_string(c, obj, key, path, true, &name, err);
    if (r < 0)
        return r;
    if ((r = jget_int(c, obj, ret_key, ret_path, false, 0, 4095, &ret, err)) < 0)
        return r;
    bool has_ret = r > 0;
    for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
        if (strcmp(name, actions[i].name) != 0)
            continue;
        if (has_ret && !actions[i].takes_ret && strcmp(ret_key, "errnoRet") == 0)
            return jerr(c, ret_path, err, "is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE");
        *out = actions[i].takes_ret ? (actions[i].action | (uint32_t)ret) : actions[i].action;
        return 0;
    }
    return jerr(c, path, err, "unknown seccomp action '%s'", name);
}

static int
parse_args(const struct jctx *c, json_t *arr, const char *path, struct scmp_arg_cmp *out, size_t *n,
           struct husk_error **err)
{
    size_t i;
    json_t *a;
    *n = 0;
    json_array_foreach(arr, i, a)
    {
        cleanup_free char *base = xasprintf("%s[%zu]", path, i);
        cleanup_free char *ip = xasprintf("%s.index", base), *vp = xasprintf("%s.value", base);
        cleanup_free char *v2 = xasprintf("%s.valueTwo", base), *op = xasprintf("%s.op", base);
        cleanup_free char *opname = NULL;
        int64_t index = 0, value = 0, value2 = 0;
        int r;
        if (i >= 6)
            return jerr(c, path, err, "at most 6 arguments can be compared");
        if ((r = jget_int(c, a, "index", ip, true, 0, 5, &index, err)) < 0 ||
            (r = jget_int(c, a, "value", vp, true, INT64_MIN, INT64_MAX, &value, err)) < 0 ||
            (r = jget_int(c, a, "valueTwo", v2, false, INT64_MIN, INT64_MAX, &value2, err)) < 0 ||
            (r = jget_string(c, a, "op", op, true, &opname, err)) < 0)
            return r;
        size_t k;
        for (k = 0; k < ARRAY_SIZE(ops); k++)
            if (strcmp(opname, ops[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(ops))
            return jerr(c, op, err, "unknown seccomp operator '%s'", opname);
        out[(*n)++] = (struct scmp_arg_cmp){.arg = (unsigned)index,
                                            .op = ops[k].op,
                                            .datum_a = (scmp_datum_t)value,
                                            .datum_b = (scmp_datum_t)value2};
    }
    return 0;
}

/* As runc: comparisons on distinct arguments are ANDed in one rule; several comparisons of the
 * same argument make one rule each (ORed), since libseccomp cannot AND them. */
static int
add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, const struct scmp_arg_cmp *args, size_t n)
{
    bool dup = false;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            dup |= args[i].arg == args[j].arg;
    if (!dup)
        return seccomp_rule_add_array(ctx, action, nr, (unsigned)n, args);
    for (size_t i = 0; i < n; i++) {
        int r = seccomp_rule_add_array(ctx, action, nr, 1, &args[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
add_syscalls(const struct jctx *c, scmp_filter_ctx ctx, json_t *sec, uint32_t default_action,
             int64_t default_ret, struct husk_error **err)
{
    json_t *arr = NULL, *e;
    size_t i;
    int r = jget_array(c, sec, "syscalls", "linux.seccomp.syscalls", false, &arr, err);
    if (r <= 0)
        return r;
    json_array_foreach(arr, i, e)
    {
        cleanup_free char *base = xasprintf("linux.seccomp.syscalls[%zu]", i);
        cleanup_free char *np = xasprintf("%s.names", base), *ap = xasprintf("%s.action", base);
        cleanup_free char *argp = xasprintf("%s.args", base);
        cleanup_strv char **names = NULL;
        json_t *args = NULL;
        struct scmp_arg_cmp cmp[6];
        size_t n_cmp = 0;
        uint32_t action;
        if ((r = jget_strv(c, e, "names", np, true, &names, err)) < 0 ||
            (r = parse_action(c, e, "action", ap, "errnoRet", EPERM, &action, err)) < 0 ||
            (r = jget_array(c, e, "args", argp, false, &args, err)) < 0 ||
            (args && (r = parse_args(c, args, argp, cmp, &n_cmp, err)) < 0))
            return r;
        if (action == default_action)
            continue; /* libseccomp refuses rules that repeat the default */
        for (size_t k = 0; names[k]; k++) {
            int nr = seccomp_syscall_resolve_name(names[k]);
            if (nr == __NR_SCMP_ERROR)
                continue; /* unknown to this libseccomp or arch: ignored, as runc does */
            if ((r = add_rule(ctx, action, nr, cmp, n_cmp)) < 0)
                return husk_err(err, -r, "%s: field '%s': rule for '%s'", c->file, np, names[k]);
        }
    }
    return 0;
}

static int
add_arches(const struct jctx *c, scmp_filter_ctx ctx, json_t *sec, struct husk_error **err)
{
    cleanup_strv char **arches = NULL;
    int r = jget_strv(c, sec, "architectures", "linux.seccomp.architectures", false, &arches, err);
    if (r <= 0)
        return r;
    for (size_t i = 0; arches[i]; i++) {
        char lower[64];
        const char *n = arches[i];
        if (str_has_prefix(n, "SCMP_ARCH_"))
            n += strlen("SCMP_ARCH_");
        size_t k;
        for (k = 0; n[k] && k + 1 < sizeof(lower); k++)
            lower[k] = (char)(n[k] >= 'A' && n[k] <= 'Z' ? n[k] - 'A' + 'a' : n[k]);
        lower[k] = '\0';
        uint32_t token = seccomp_arch_resolve_name(lower);
        if (token == 0)
            return jerr(c, "linux.seccomp.architectures", err, "unknown architecture '%s'",
                        arches[i]);
        r = seccomp_arch_add(ctx, token);
        if (r < 0 && r != -EEXIST)
            return husk_err(err, -r, "%s: add seccomp architecture '%s'", c->file, arches[i]);
    }
    return 0;
}

static int
parse_flags(const struct jctx *c, json_t *sec, unsigned *out, struct husk_error **err)
{
    cleanup_strv char **flags = NULL;
    int r = jget_strv(c, sec, "flags", "linux.seccomp.flags", false, &flags, err);
    *out = 0;
    for (size_t i = 0; r > 0 && flags[i]; i++) {
        size_t k;
        for (k = 0; k < ARRAY_SIZE(filter_flags); k++)
            if (strcmp(flags[i], filter_flags[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(filter_flags))
            return jerr(c, "linux.seccomp.flags", err, "unknown seccomp flag '%s'", flags[i]);
        *out |= filter_flags[k].flag;
    }
    return r < 0 ? r : 0;
}

/* Export the program into memory through a memfd (libseccomp 2.5 writes to an fd). */
static int
export_bpf(scmp_filter_ctx ctx, void **out, size_t *len, struct husk_error **err)
{
    cleanup_fd int fd = memfd_create("husk-seccomp", MFD_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return husk_err(err, errno, "memfd_create");
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0)
        return husk_err(err, -r, "export seccomp filter");
    if (fstat(fd, &st) < 0)
        return husk_err(err, errno, "stat seccomp filter");
    void *buf = xmalloc((size_t)st.st_size);
    if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
        free(buf);
        return husk_err(err, EIO, "read seccomp filter");
    }
    *out = buf;
    *len = (size_t)st.st_size;
    return 0;
}

static int
compile(const struct jctx *c, json_t *sec, struct sbx_seccomp *out, struct husk_error **err)
{
    uint32_t def;
    int64_t def_ret = EPERM;
    int r = jget_int(c, sec, "defaultErrnoRet", "linux.seccomp.defaultErrnoRet", false, 0, 4095,
                     &def_ret, err);
    if (r < 0 || (r = parse_action(c, sec, "defaultAction", "linux.seccomp.defaultAction",
                                   "defaultErrnoRet", EPERM, &def, err)) < 0)
        return r;
    scmp_filter_ctx ctx = seccomp_init(def);
    if (ctx == NULL)
        return husk_err(err, ENOMEM, "seccomp_init");
    /* husk sets no_new_privs itself, as the config says. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if ((r = add_arches(c, ctx, sec, err)) == 0 &&
        (r = add_syscalls(c, ctx, sec, def, def_ret, err)) == 0 &&
        (r = parse_flags(c, sec, &out->flags, err)) == 0)
        r = export_bpf(ctx, &out->bpf, &out->len, err);
    seccomp_release(ctx);
    return r;
}

static void
profile_key(json_t *sec, char hex[65])
{
    cleanup_free char *text = json_dumps(sec, JSON_COMPACT | JSON_SORT_KEYS);
    const struct scmp_version *v = seccomp_version();
    cleanup_free char *keyed = xasprintf("%u.%u.%u %s", v->major, v->minor, v->micro, text);
    /* libmd, not libcrypto: OpenSSL 3 sets up its providers on first use, about 2 ms of every
     * start (nettle's x86-64 build probes the CPU in a constructor at every start, used or not);
     * libmd's SHA-256 is plain code with no global state. */
    SHA256Data((const uint8_t *)keyed, strlen(keyed), hex);
}

/* Ours (the effective uid), of the expected type, and writable by no one else. */
static bool
trusted(int fd, mode_t type)
{
    struct stat st;
    return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == type && st.st_uid == geteuid() &&
           (st.st_mode & 022) == 0;
}

/*
 * The cache directory, created when missing, or -1 when it cannot be trusted: a program read
 * from it runs as the container's filter, so where --root is writable by others, a directory or
 * file planted there (or a symlink to one) must not be used. Everything after the open goes
 * through the fd.
 */
static int
open_cache(const char *dir)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && !trusted(fd, S_IFDIR)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A cached program: a regular file of ours, at most the kernel's BPF_MAXINSNS instructions. */
static int
read_cached(int dfd, const char *name, char **out, size_t *len)
{
    cleanup_fd int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (!trusted(fd, S_IFREG))
        return -EPERM;
    return read_fd_all(fd, BPF_MAXINSNS * sizeof(struct sock_filter), out, len);
}

int
oci_seccomp_compile(json_t *sec, const char *file, const char *cache_dir, struct sbx_seccomp *out,
                    struct husk_error **err)
{
    struct jctx c = {.file = file};
    char key[65];
    cleanup_free char *name = NULL;

    cleanup_free char *listener = NULL;
    if (jget_string(&c, sec, "listenerPath", "linux.seccomp.listenerPath", false, &listener, err) <
            0 ||
        jget_string(&c, sec, "listenerMetadata", "linux.seccomp.listenerMetadata", false,
                    &out->listener_msg, err) < 0)
        return -EINVAL;
    if (listener && listener[0] != '/')
        return jerr(&c, "linux.seccomp.listenerPath", err, "'%s' is not an absolute path",
                    listener);
    /* The message itself is the caller's (it needs the container's state); mark that one is
     * wanted with the metadata, possibly empty. */
    if (listener && out->listener_msg == NULL)
        out->listener_msg = xstrdup("");
    if (!listener) {
        free(out->listener_msg);
        out->listener_msg = NULL;
    }
    cleanup_fd int dfd = cache_dir ? open_cache(cache_dir) : -1;
    if (dfd >= 0) {
        profile_key(sec, key);
        name = xasprintf("%s.bpf", key);
        char *bpf = NULL;
        size_t len = 0;
        /* The flags are part of the profile, and so of the key, but not of the program. */
        if (read_cached(dfd, name, &bpf, &len) == 0 && len > 0 && len % 8 == 0 &&
            parse_flags(&c, sec, &out->flags, NULL) == 0) {
            out->bpf = bpf;
            out->len = len;
            return 0;
        }
        free(bpf);
    }
    int r = compile(&c, sec, out, err);
    if (r < 0)
        return r;
    if (dfd >= 0)
        write_file_atomic(dfd, name, out->bpf, out->len);
    return 0;
}
