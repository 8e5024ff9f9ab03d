/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a root filesystem would fail on at run time, found before anything runs: the program
 * and, as the kernel would follow them, its "#!" interpreters (through /usr/bin/env too) and
 * its ELF loader; and files that the sandbox's own mounts would hide. Every path resolves
 * inside the root (RESOLVE_IN_ROOT), as it will in the sandbox. Nothing is executed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "syscalls.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int
open_in_root(int root_fd, const char *path, int flags)
{
    /* O_NONBLOCK: a FIFO named as the program must not hang the caller. */
    struct open_how how = {.flags =
                               (uint64_t)(flags | O_CLOEXEC | (flags & O_PATH ? 0 : O_NONBLOCK)),
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    while (*path == '/')
        path++;
    int fd = sys_openat2(root_fd, *path ? path : ".", &how);
    return fd < 0 ? -errno : fd;
}

/* A name looked up as execvp would, in the root; NULL when nowhere. */
static char *
lookup(int root_fd, const char *name, const char *path)
{
    if (strchr(name, '/'))
        return xstrdup(name);
    cleanup_free char *dirs = xstrdup(path);
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        cleanup_free char *full = img_path_join(d, name);
        cleanup_fd int fd = open_in_root(root_fd, full, O_PATH);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            return steal_ptr(&full);
    }
    return NULL;
}

static int check_exec(int root_fd, const char *path, const char *search, int depth,
                      struct husk_error **err);

/* "#!" interp [arg]: the interpreter, and for env the program it runs. */
static int
check_script(int root_fd, const char *path, const char *head, size_t len, const char *search,
             int depth, struct husk_error **err)
{
    cleanup_free char *interp = NULL, *arg = NULL;
    if (img_shebang_parse(head, len, &interp, &arg) < 0)
        return husk_err(err, 0, "'%s' has an empty #! line", path);
    cleanup_fd int fd = open_in_root(root_fd, interp, O_PATH);
    if (fd < 0)
        return husk_err(err, 0, "'%s': its interpreter '%s' (#!) is not in the root filesystem",
                        path, interp);
    int r = check_exec(root_fd, interp, search, depth + 1, err);
    if (r < 0 || strcmp(img_path_basename(interp), "env") != 0 || arg == NULL)
        return r < 0 ? husk_err_prefix(err, "'%s': ", path) : 0;
    cleanup_free char *prog = xstrdup(arg);
    prog[strcspn(prog, " \t")] = '\0';
    if (prog[0] == '-' || strchr(prog, '='))
        return 0; /* env options or assignments: not followed */
    cleanup_free char *found = lookup(root_fd, prog, search);
    if (found == NULL)
        return husk_err(err, 0,
                        "'%s': its interpreter '%s' (#!%s %s) is not in the root filesystem's "
                        "PATH",
                        path, prog, interp, arg);
    r = check_exec(root_fd, found, search, depth + 1, err);
    return r < 0 ? husk_err_prefix(err, "'%s': ", path) : 0;
}

static int
check_exec(int root_fd, const char *path, const char *search, int depth, struct husk_error **err)
{
    if (depth > 4) /* the kernel's limit on interpreters of interpreters (BINPRM_MAX_RECURSION) */
        return husk_err(err, ELOOP, "'%s': interpreters nest too deep", path);
    cleanup_fd int fd = open_in_root(root_fd, path, O_RDONLY);
    struct stat st;
    if (fd < 0)
        return husk_err(err, -fd, "'%s' in the root filesystem", path);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return husk_err(err, 0, "'%s' is not a regular file", path);
    if (!(st.st_mode & 0111))
        return husk_err(err, 0, "'%s' is not executable (mode %04o)", path,
                        (unsigned)(st.st_mode & 07777));
    char head[256];
    ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
    if (n < 0)
        return husk_err(err, errno, "read '%s'", path);
    head[n] = '\0';
    if (n >= 2 && head[0] == '#' && head[1] == '!')
        return check_script(root_fd, path, head, (size_t)n, search, depth, err);
    if (!img_elf_is_elf(fd))
        return husk_err(err, 0, "'%s' is neither an ELF program nor a script (#!)", path);
    cleanup_(img_elf_freep) struct img_elf *elf = NULL;
    int r = img_elf_read(fd, path, &elf, err);
    if (r < 0)
        return r;
    if (elf->interp) {
        cleanup_fd int ld = open_in_root(root_fd, elf->interp, O_PATH);
        if (ld < 0)
            return husk_err(err, 0,
                            "'%s': its loader '%s' (PT_INTERP) is not in the root filesystem", path,
                            elf->interp);
    }
    return 0;
}

int
img_check_program(int root_fd, const char *prog, char *const *env, struct husk_error **err)
{
    const char *search = DEFAULT_PATH;
    for (char *const *e = env; e && *e; e++)
        if (str_has_prefix(*e, "PATH="))
            search = *e + 5;
    cleanup_free char *found = lookup(root_fd, prog, search);
    if (found == NULL)
        return husk_err(err, 0, "the program '%s' is not in the root filesystem", prog);
    cleanup_fd int fd = open_in_root(root_fd, found, O_PATH);
    if (fd < 0)
        return husk_err(err, 0, "the program '%s' is not in the root filesystem", prog);
    return check_exec(root_fd, found, search, 0, err);
}

/* The first file under dir (depth-first), or NULL. */
static char *
first_entry(int dirfd, const char *path, int depth)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cleanup_free char *sub = img_path_join(path, de->d_name);
        cleanup_fd int child =
            depth < 16 && de->d_type == DT_DIR
                ? openat(dirfd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                : -1;
        char *deeper = child >= 0 ? first_entry(child, sub, depth + 1) : NULL;
        return deeper ? deeper : steal_ptr(&sub);
    }
    return NULL;
}

int
img_check_not_hidden(int root_fd, const char *mount_point, const char *by, struct husk_error **err)
{
    cleanup_fd int fd = open_in_root(root_fd, mount_point, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0)
        return 0; /* the mount creates it */
    cleanup_free char *file = first_entry(fd, mount_point, 0);
    if (file == NULL)
        return 0;
    return husk_err(err, 0,
                    "the root filesystem has files under %s ('%s'), which %s hides; move them "
                    "elsewhere (pack the program from another directory)",
                    mount_point, file, by);
}
