/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for layer entries: names, whiteouts, opaque markers, symlinks and hardlinks, as
 * img_layer_apply unpacks them. An input is a short text, one entry a line, turned into tar
 * layers with libarchive (so the fuzzing goes into husk's checks, not into tar checksums):
 *
 *   f NAME [DATA]     a regular file        d NAME          a directory
 *   l NAME TARGET     a symlink             h NAME TARGET   a hardlink
 *   c NAME            a character device    p NAME          a fifo
 *   z NAME SIZE       SIZE bytes of zeros   --              the next layer
 *
 * Whatever the layers say, nothing appears or goes outside the root (a canary beside it), no
 * device node is made, no whiteout marker stays, and every symlink left in the root stays inside
 * it read from where it really is.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fuzz.h"
#include "img-internal.h"
#include "util.h"

#define MAX_LAYERS 4

static const char *dir; /* fuzz_scratch_dir() */
static int dirfd_;
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    dir = fuzz_scratch_dir();
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd_ < 0 || mkdirat(dirfd_, "canary", 0755) < 0)
        abort();
    cleanup_fd int fd = openat(dirfd_, "canary/keep", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        abort();
    return 0;
}

/* One line as an entry of the archive being written; false for a line that is none. */
static bool
add_entry(struct archive *a, char *line)
{
    char *save = NULL, *type = strtok_r(line, " ", &save), *name = strtok_r(NULL, " ", &save);
    char *arg = strtok_r(NULL, "", &save);
    if (type == NULL || name == NULL || type[1] != '\0')
        return false;
    struct archive_entry *e = archive_entry_new();
    int64_t size = 0;
    archive_entry_set_pathname(e, name);
    archive_entry_set_perm(e, type[0] == 'd' ? 0755 : 0644);
    archive_entry_set_mtime(e, 1700000000, 0);
    switch (type[0]) {
    case 'f':
        size = arg ? (int64_t)strlen(arg) : 0;
        /* fallthrough */
    case 'z':
        if (type[0] == 'z')
            size = arg ? strtoll(arg, NULL, 10) % ((1 << 20) + 4096) : 0;
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, size < 0 ? 0 : size);
        break;
    case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        break;
    case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, arg ? arg : "");
        break;
    case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_hardlink(e, arg ? arg : "");
        break;
    case 'c':
        archive_entry_set_filetype(e, AE_IFCHR);
        archive_entry_set_rdev(e, makedev(1, 3));
        break;
    case 'p':
        archive_entry_set_filetype(e, AE_IFIFO);
        break;
    default:
        archive_entry_free(e);
        return false;
    }
    archive_write_header(a, e);
    if (type[0] == 'f' && size > 0)
        archive_write_data(a, arg, (size_t)size);
    static const char zeros[65536];
    for (int64_t left = type[0] == 'z' ? size : 0; left > 0;) {
        size_t k = left < (int64_t)sizeof(zeros) ? (size_t)left : sizeof(zeros);
        archive_write_data(a, zeros, k);
        left -= (int64_t)k;
    }
    archive_entry_free(e);
    return true;
}

/* The layers of an input, each a tar in a memfd at offset 0. */
static size_t
make_layers(const uint8_t *data, size_t size, int fds[MAX_LAYERS])
{
    cleanup_free char *text = xstrndup((const char *)data, size);
    size_t n = 0;
    struct archive *a = NULL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
        if (line == NULL || strcmp(line, "--") == 0) {
            if (a) {
                archive_write_close(a);
                archive_write_free(a);
                lseek(fds[n - 1], 0, SEEK_SET);
                a = NULL;
            }
            if (line == NULL || n == MAX_LAYERS)
                break;
            continue;
        }
        if (a == NULL) {
            fds[n++] = memfd_create("layer", MFD_CLOEXEC);
            a = archive_write_new();
            archive_write_set_format_pax_restricted(a);
            fuzz_check(fds[n - 1] >= 0 && archive_write_open_fd(a, fds[n - 1]) == ARCHIVE_OK);
        }
        add_entry(a, line);
    }
    return n;
}

/* Walk the root as it is on disk (nothing followed): no device, no marker, no link out. */
static void
check_tree(int fd, const char *rel)
{
    cleanup_dir DIR *d = fdopendir(fd);
    fuzz_check(d != NULL);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cleanup_free char *path =
            rel[0] ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
        fuzz_check(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
        fuzz_check(!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISSOCK(st.st_mode));
        fuzz_check(!str_has_prefix(de->d_name, ".wh."));
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
            fuzz_check(n >= 0);
            target[n] = '\0';
            fuzz_check(img_link_stays_inside(path, target));
        } else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            fuzz_check(sub >= 0);
            check_tree(sub, path);
        }
    }
}

/* Beside the root, only the canary, as it was. */
static void
check_outside(void)
{
    struct stat st;
    int n = 0;
    fuzz_check(fstatat(dirfd_, "canary/keep", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_size == 0);
    cleanup_fd int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_dir DIR *d = fdopendir(steal_fd(&fd));
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    fuzz_check(n == 2); /* canary and root */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct img_limits lim = {.max_file = 1 << 20,
                             .max_total = 4 << 20,
                             .max_entries = 1000,
                             .max_ratio = 100,
                             .ratio_floor = 1 << 20};
    int fds[MAX_LAYERS];
    uint64_t total = 0;
    int r = 0;
    fuzz_set_input(data, size);
    fuzz_check(mkdirat(dirfd_, "root", 0755) == 0);
    cleanup_fd int root = openat(dirfd_, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    fuzz_check(root >= 0);
    size_t n = make_layers(data, size, fds);
    for (size_t i = 0; i < n; i++) {
        struct husk_error *err = NULL;
        if (r == 0) {
            r = img_layer_apply(root, fds[i], IMG_COMP_NONE, "layer", &lim, &total, NULL, &err);
            fuzz_check(r == 0 ? err == NULL : err != NULL && err->msg[0] != '\0');
            if (r < 0 && getenv("HUSK_FUZZ_DEBUG"))
                fprintf(stderr, "refused: %s\n", err->msg);
            husk_error_free(err);
        }
        close(fds[i]);
    }
    if (r == 0)
        fuzz_count(0); /* inputs applied whole */
    else
        fuzz_count(1); /* refused */
    check_outside();
    check_tree(openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), "");
    fuzz_check(rm_rf_at(dirfd_, "root") == 0);
    fuzz_set_input(NULL, 0);
    return 0;
}

/* clang-format off */
static const char *const tokens[] = {
    "\nf ", "\nd ", "\nl ", "\nh ", "\nc ", "\np ", "\nz ", "\n--\n", ".wh.", ".wh..wh..opq",
    ".wh...", "..", "../", "/", "./", "a/", "a/b/", "etc", "/etc/passwd", "../../x", "a/../..",
    " .", " ..", " /", " x", "//", "\\", "\xff",
};
/* clang-format on */
static const char grammar[] = "\n /.-afdlhcpz";
static const size_t long_runs[] = {255, 4096};

const struct fuzz_target fuzz_target = {
    .name = "tar",
    .counted = {"inputs applied whole", "refused"},
    .tokens = tokens,
    .n_tokens = ARRAY_SIZE(tokens),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .long_runs = long_runs,
    .n_long_runs = ARRAY_SIZE(long_runs),
    .iterations = 1000,
    .max_input = 8192,
};
