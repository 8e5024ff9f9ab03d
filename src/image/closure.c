/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A program's dependency closure, found the way ld.so finds it (elf/dl-load.c), from the files
 * alone: PT_INTERP; each DT_NEEDED searched in DT_RPATH (when there is no DT_RUNPATH, the
 * object's then the executable's), DT_RUNPATH, ld.so.cache, then the default directories. A
 * candidate of another ELF class or machine is skipped, as ld.so skips it. Never runs `ldd`:
 * ldd runs the program's own loader, which can run the program's code.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

#define MAX_DEPTH 16 /* interpreters of interpreters, and library chains */

struct closure {
    struct img_tree *t;
    const struct img_elf *exe;
    const char *exe_origin;
};

/* Same class and machine as want? Reads only the ELF header. */
static bool
elf_matches(int fd, const struct img_elf *want)
{
    unsigned char h[20];
    if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, ELFMAG, SELFMAG) != 0)
        return false;
    int machine = h[EI_DATA] == ELFDATA2MSB ? (h[18] << 8) | h[19] : h[18] | (h[19] << 8);
    return h[EI_CLASS] == want->cls && machine == want->machine;
}

static char *
try_dir(const struct closure *c, const char *dir, const char *name)
{
    if (dir == NULL || dir[0] != '/')
        return NULL; /* relative search dirs depend on the cwd at run time: not followed */
    cleanup_free char *path = img_path_join(dir, name);
    cleanup_fd int fd = img_host_open(c->t, path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !elf_matches(fd, c->exe))
        return NULL;
    return steal_ptr(&path);
}

/* A colon-separated DT_RPATH/DT_RUNPATH list. */
static char *
try_list(const struct closure *c, const char *list, const char *origin, const struct img_elf *owner,
         const char *name)
{
    if (list == NULL)
        return NULL;
    cleanup_free char *copy = xstrdup(list);
    for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        cleanup_free char *dir = img_elf_expand(d, origin, owner);
        char *found = try_dir(c, dir, name);
        if (found)
            return found;
    }
    return NULL;
}

static char *
try_defaults(struct closure *c, const char *name, struct husk_error **err)
{
    const struct img_ldcache *cache = img_tree_ldcache(c->t, err);
    if (cache == NULL)
        return NULL;
    for (size_t i = 0; i < cache->n; i++) {
        if (strcmp(cache->v[i].soname, name) != 0)
            continue;
        cleanup_free char *dir = img_path_dirname(cache->v[i].path);
        char *found = try_dir(c, dir, img_path_basename(cache->v[i].path));
        if (found)
            return found;
    }
    const char *triplet = img_elf_triplet(c->exe);
    cleanup_free char *lib_t = triplet ? xasprintf("/lib/%s", triplet) : NULL;
    cleanup_free char *usr_t = triplet ? xasprintf("/usr/lib/%s", triplet) : NULL;
    bool is64 = c->exe->cls == ELFCLASS64;
    const char *dirs[] = {lib_t,  usr_t,     is64 ? "/lib64" : NULL, is64 ? "/usr/lib64" : NULL,
                          "/lib", "/usr/lib"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        char *found = dirs[i] ? try_dir(c, dirs[i], name) : NULL;
        if (found)
            return found;
    }
    return NULL;
}

static char *
find_library(struct closure *c, const char *name, const struct img_elf *obj, const char *origin,
             struct husk_error **err)
{
    char *found = NULL;
    if (strchr(name, '/'))
        return name[0] == '/' ? xstrdup(name) : NULL;
    if (!obj->runpath)
        found = try_list(c, obj->rpath, origin, obj, name);
    if (!found && obj != c->exe && !c->exe->runpath)
        found = try_list(c, c->exe->rpath, c->exe_origin, c->exe, name);
    if (!found)
        found = try_list(c, obj->runpath, origin, obj, name);
    if (!found && !obj->nodeflib)
        found = try_defaults(c, name, err);
    return found;
}

static int add_object(struct closure *c, const char *path, const char *reason, int depth,
                      struct husk_error **err);

/* The interpreter and every DT_NEEDED of one object. origin: its $ORIGIN. */
static int
add_deps(struct closure *c, const char *who, const struct img_elf *obj, const char *origin,
         int depth, struct husk_error **err)
{
    if (obj->interp) {
        cleanup_free char *why = xasprintf("interpreter (PT_INTERP) of %s", who);
        int r = add_object(c, obj->interp, why, depth + 1, err);
        if (r < 0)
            return r;
    }
    for (char **n = obj->needed; n && *n; n++) {
        cleanup_free char *path = find_library(c, *n, obj, origin, err);
        if (path == NULL) {
            if (err && *err)
                return -EINVAL;
            return husk_err(err, 0,
                            "%s needs %s, which is in neither its RPATH/RUNPATH, ld.so.cache "
                            "nor the default library directories",
                            who, *n);
        }
        cleanup_free char *why = xasprintf("DT_NEEDED %s of %s", *n, who);
        int r = add_object(c, path, why, depth + 1, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A library (or the loader) at a host path: add it, then what it needs. */
static int
add_object(struct closure *c, const char *path, const char *reason, int depth,
           struct husk_error **err)
{
    cleanup_free char *real = NULL;
    if (depth > MAX_DEPTH)
        return husk_err(err, ELOOP, "'%s': dependencies nest too deep", path);
    int r = img_tree_add_host(c->t, path, reason, &real, err);
    if (r < 0)
        return r;
    struct img_entry *e = img_tree_find(c->t, real);
    if (e == NULL || e->kind != IMG_FILE)
        return husk_err(err, 0, "'%s' is not a file", path);
    if (e->analysed)
        return 0;
    e->analysed = true;
    cleanup_fd int fd = img_host_open(c->t, real, O_RDONLY);
    if (fd < 0)
        return husk_err(err, -fd, "open '%s'", real);
    cleanup_(img_elf_freep) struct img_elf *obj = NULL;
    if ((r = img_elf_read(fd, path, &obj, err)) < 0)
        return r;
    /* ld.so takes $ORIGIN of a library from the name it opened it by. */
    cleanup_free char *origin = img_path_dirname(path);
    return add_deps(c, path, obj, origin, depth, err);
}

int
img_add_elf(struct img_tree *t, const struct img_entry *file, const char *origin,
            const struct img_elf *exe, int depth, struct husk_error **err)
{
    struct closure c = {.t = t, .exe = exe, .exe_origin = origin};
    (void)file;
    return add_deps(&c, file->path, exe, origin, depth, err);
}

int
img_add_library(struct img_tree *t, const char *soname, const char *like, const char *reason,
                struct husk_error **err)
{
    cleanup_fd int fd = img_host_open(t, like, O_RDONLY);
    cleanup_(img_elf_freep) struct img_elf *obj = NULL;
    if (fd < 0)
        return husk_err(err, -fd, "open '%s'", like);
    int r = img_elf_read(fd, like, &obj, err);
    if (r < 0)
        return r;
    cleanup_free char *origin = img_path_dirname(like);
    struct closure c = {.t = t, .exe = obj, .exe_origin = origin};
    cleanup_free char *path = find_library(&c, soname, obj, origin, err);
    if (path == NULL)
        return err && *err ? -EINVAL : 0; /* not on this machine: nothing to add */
    return add_object(&c, path, reason, 1, err);
}

/* Read the start of a file to tell ELF from "#!" (and from neither). */
static int
read_head(int fd, char *buf, size_t len, size_t *got)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    *got = (size_t)n;
    return 0;
}

/* The kernel follows a script's interpreter, and the interpreter's if it is a script too,
 * at most BINPRM_MAX_RECURSION (4) deep: a longer chain, or a loop, fails with ELOOP. */
static int
check_interp_chain(struct img_tree *t, const char *path, struct husk_error **err)
{
    cleanup_free char *cur = xstrdup(path);
    for (int depth = 0;; depth++) {
        cleanup_fd int fd = img_host_open(t, cur, O_RDONLY);
        char head[512];
        size_t got = 0;
        if (fd < 0 || read_head(fd, head, sizeof(head), &got) < 0)
            return 0; /* a missing interpreter is named by the caller */
        cleanup_free char *interp = NULL, *arg = NULL;
        if (img_shebang_parse(head, got, &interp, &arg) < 0)
            return 0;
        if (depth >= 4)
            return husk_err(err, ELOOP,
                            "'%s': its #! interpreters nest deeper than the kernel follows (a "
                            "loop through '%s'?)",
                            path, interp);
        free(cur);
        cur = steal_ptr(&interp);
    }
}

/* Add a file and analyse it: ELF (closure), script (interpreter), else -ENOEXEC, no message. */
int
img_add_analysed(struct img_tree *t, const char *path, const char *reason, int depth,
                 struct husk_error **err)
{
    cleanup_free char *real = NULL;
    if (depth > MAX_DEPTH)
        return husk_err(err, ELOOP, "'%s': interpreters nest too deep", path);
    int r = img_tree_add_host(t, path, reason, &real, err);
    if (r < 0)
        return r;
    struct img_entry *e = img_tree_find(t, real);
    if (e == NULL || e->kind != IMG_FILE)
        return husk_err(err, 0, "'%s' is a directory, not a program", path);
    if (e->analysed)
        return 0;
    cleanup_fd int fd = img_host_open(t, real, O_RDONLY);
    if (fd < 0)
        return husk_err(err, -fd, "open '%s'", real);
    char head[512];
    size_t got = 0;
    if ((r = read_head(fd, head, sizeof(head), &got)) < 0)
        return husk_err(err, -r, "read '%s'", real);
    if (img_elf_is_elf(fd)) {
        e->analysed = true;
        cleanup_(img_elf_freep) struct img_elf *exe = NULL;
        if ((r = img_elf_read(fd, path, &exe, err)) < 0)
            return r;
        /* For the executable, glibc's $ORIGIN is its real directory (/proc/self/exe). */
        cleanup_free char *origin = img_path_dirname(real);
        r = img_add_elf(t, e, origin, exe, depth, err);
        if (r == 0 && img_is_python(real))
            r = img_add_python_runtime(t, real, err);
        return r;
    }
    if (got >= 2 && head[0] == '#' && head[1] == '!') {
        if ((r = check_interp_chain(t, real, err)) < 0)
            return r;
        e->analysed = true;
        return img_add_script(t, e, head, got, depth, err);
    }
    return -ENOEXEC;
}

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__riscv)
#define HOST_MACHINE EM_RISCV
#endif

/* A program for another machine would only fail with ENOEXEC in the sandbox: say so now. */
static int
check_machine(struct img_tree *t, const char *path, struct husk_error **err)
{
#ifdef HOST_MACHINE
    cleanup_fd int fd = img_host_open(t, path, O_RDONLY);
    cleanup_(img_elf_freep) struct img_elf *e = NULL;
    if (fd < 0 || !img_elf_is_elf(fd))
        return 0;
    int r = img_elf_read(fd, path, &e, err);
    if (r < 0)
        return r;
    if (e->machine != HOST_MACHINE)
        return husk_err(err, 0,
                        "'%s' is an ELF program for another architecture (%s, e_machine %d): "
                        "it cannot run on this machine",
                        path, img_elf_triplet(e) ? img_elf_triplet(e) : "unknown", e->machine);
#else
    (void)t, (void)path, (void)err;
#endif
    return 0;
}

int
img_add_program(struct img_tree *t, const char *path, const char *reason, struct husk_error **err)
{
    int r = check_machine(t, path, err);
    if (r < 0)
        return r;
    r = img_add_analysed(t, path, reason, 0, err);
    if (r == -ENOEXEC && (err == NULL || *err == NULL))
        return husk_err(err, 0, "'%s' is not a program: neither an ELF file nor a script (#!)",
                        path);
    return r;
}

int
img_add_argument(struct img_tree *t, const char *path, const char *interp, struct husk_error **err)
{
    cleanup_free char *why = xasprintf("argument of %s", interp);
    int r = img_add_analysed(t, path, why, 0, err);
    if (r != -ENOEXEC || (err && *err))
        return r;
    /* Data, or a script run by the program itself (python3 app.py). */
    cleanup_free char *real = NULL;
    if ((r = img_tree_add_host(t, path, why, &real, err)) < 0)
        return r;
    if (img_is_python(interp))
        return img_add_python(t, interp, real, err);
    if (img_is_node(interp))
        return img_add_node(t, interp, real, err);
    if (img_is_perl(interp))
        return img_add_perl(t, interp, real, err);
    return 0;
}

char *
img_which(const struct img_tree *t, const char *name)
{
    static const char *const path[] = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                       "/usr/bin",        "/sbin",          "/bin"};
    if (strchr(name, '/'))
        return xstrdup(name);
    for (size_t i = 0; i < ARRAY_SIZE(path); i++) {
        cleanup_free char *p = img_path_join(path[i], name);
        struct stat st;
        if (img_host_stat(t, p, true, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
            return steal_ptr(&p);
    }
    return NULL;
}
