/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Perl: the modules a script loads (`use`, `no`, `require`, `use parent`/`use base`, and
 * require of a literal file), looked up on the interpreter's default @INC (Debian's layout,
 * derived from the interpreter's prefix and triplet), transitively, with each XS module's
 * shared object (auto/Foo/Bar/Bar.so) and its ELF closure. Source is read, never run: a
 * module loaded under a computed name is for `--trace`.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

struct perl {
    struct img_tree *t;
    char **inc;
    size_t n_inc;
    struct img_map seen;
    char **queue; /* files to scan */
    size_t n_queue;
};

static bool
host_is(struct perl *pl, const char *path, mode_t type)
{
    struct stat st;
    return img_host_stat(pl->t, path, true, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

/* The newest "5.N" directory in dir, or NULL. */
static char *
newest_version(struct perl *pl, const char *dir)
{
    cleanup_fd int fd = img_host_open(pl->t, dir, O_RDONLY | O_DIRECTORY);
    cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    int best = -1;
    if (d == NULL)
        return NULL;
    fd = -1;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        int minor;
        char tail;
        if (sscanf(de->d_name, "5.%d%c", &minor, &tail) == 1 && minor > best)
            best = minor;
    }
    return best >= 0 ? xasprintf("5.%d", best) : NULL;
}

/* Debian's @INC (perl -V), from the interpreter's prefix and its ELF triplet. */
static int
perl_setup(struct perl *pl, const char *interp, struct husk_error **err)
{
    cleanup_free char *real = NULL;
    cleanup_free char *prefix = NULL;
    int r = img_interp_prefix(pl->t, interp, &real, &prefix, err);
    if (r < 0)
        return r;
    cleanup_fd int fd = img_host_open(pl->t, real, O_RDONLY);
    cleanup_(img_elf_freep) struct img_elf *elf = NULL;
    const char *triplet = NULL;
    if (fd >= 0 && img_elf_read(fd, real, &elf, NULL) == 0)
        triplet = img_elf_triplet(elf);
    if (triplet == NULL)
        return husk_err(err, 0, "%s: not an ELF interpreter of a known architecture", real);
    cleanup_free char *archdir = xasprintf("%s/lib/%s/perl", prefix, triplet);
    cleanup_free char *v = newest_version(pl, archdir);
    if (v == NULL)
        return husk_err(err, 0, "%s: no Perl library under '%s'", real, archdir);
    char *dirs[] = {
        xstrdup("/etc/perl"),
        xasprintf("%s/local/lib/%s/perl/%s.0", prefix, triplet, v),
        xasprintf("%s/local/share/perl/%s.0", prefix, v),
        xasprintf("%s/lib/%s/perl5/%s", prefix, triplet, v),
        xasprintf("%s/share/perl5", prefix),
        xasprintf("%s/lib/%s/perl-base", prefix, triplet),
        xasprintf("%s/lib/%s/perl/%s", prefix, triplet, v),
        xasprintf("%s/share/perl/%s", prefix, v),
        xasprintf("%s/local/lib/site_perl", prefix),
    };
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
        img_strv_push(&pl->inc, &pl->n_inc, dirs[i]);
    return 0;
}

/* A module by file name relative to @INC ("Foo/Bar.pm"), with its XS object. */
static int
find_module(struct perl *pl, const char *rel, const char *reason, struct husk_error **err)
{
    if (img_map_get(&pl->seen, rel, NULL))
        return 0;
    img_map_put(&pl->seen, rel, 0);
    for (size_t i = 0; i < pl->n_inc; i++) {
        cleanup_free char *file = img_path_join(pl->inc[i], rel);
        if (!host_is(pl, file, S_IFREG))
            continue;
        int r = img_tree_add_host(pl->t, file, reason, NULL, err);
        if (r < 0)
            return r;
        img_strv_push(&pl->queue, &pl->n_queue, steal_ptr(&file));
        break;
    }
    size_t l = strlen(rel);
    if (l < 4 || strcmp(rel + l - 3, ".pm") != 0)
        return 0;
    /* XSLoader/DynaLoader: auto/Foo/Bar/Bar.so */
    cleanup_free char *stem = xstrndup(rel, l - 3);
    cleanup_free char *so = xasprintf("auto/%s/%s.so", stem, img_path_basename(stem));
    for (size_t i = 0; i < pl->n_inc; i++) {
        cleanup_free char *file = img_path_join(pl->inc[i], so);
        if (!host_is(pl, file, S_IFREG))
            continue;
        int r = img_add_analysed(pl->t, file, reason, 1, err);
        return r == -ENOEXEC ? 0 : r;
    }
    return 0;
}

/* "Foo::Bar" -> "Foo/Bar.pm"; NULL for a version ("5.010", "v5.36") or a bad name. */
static char *
module_file(const char *name, size_t len)
{
    if (len == 0 || isdigit((unsigned char)name[0]) ||
        (name[0] == 'v' && len > 1 && isdigit((unsigned char)name[1])))
        return NULL;
    char *out = xmalloc(len * 2 + 4);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == ':' && name[i + 1] == ':') {
            out[o++] = '/';
            i++;
        } else {
            out[o++] = name[i];
        }
    }
    memcpy(out + o, ".pm", 4);
    return out;
}

/* The quoted names after `use parent`/`use base`: 'A', "B", qw(C D). */
static void
parent_names(const char *p, char ***out, size_t *n)
{
    for (; *p && *p != ';'; p++) {
        if (*p == '\'' || *p == '"' || (p[0] == 'q' && p[1] == 'w')) {
            char close = *p == 'q' ? ')' : *p;
            p += *p == 'q' ? 3 : 1;
            while (*p && *p != close) {
                while (isspace((unsigned char)*p))
                    p++;
                const char *s = p;
                while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
                    p++;
                char *file = p > s ? module_file(s, (size_t)(p - s)) : NULL;
                if (file)
                    img_strv_push(out, n, file);
                if (p == s && *p && *p != close)
                    p++;
            }
            if (*p == '\0')
                return;
        }
    }
}

/* The module files one line loads. */
void
img_perl_line_modules(const char *line, char ***out, size_t *n)
{
    const char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    size_t kw = str_has_prefix(p, "use ")       ? 4
                : str_has_prefix(p, "no ")      ? 3
                : str_has_prefix(p, "require ") ? 8
                                                : 0;
    if (kw == 0)
        return;
    p += kw;
    while (isspace((unsigned char)*p))
        p++;
    if (kw == 8 && (*p == '\'' || *p == '"')) { /* require "file.pl" */
        const char *e = strchr(p + 1, *p);
        if (e && e > p + 1 && memchr(p + 1, '$', (size_t)(e - p - 1)) == NULL)
            img_strv_push(out, n, xstrndup(p + 1, (size_t)(e - p - 1)));
        return;
    }
    const char *s = p;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
        p++;
    char *file = module_file(s, (size_t)(p - s));
    if (file == NULL)
        return;
    bool parent = strcmp(file, "parent.pm") == 0 || strcmp(file, "base.pm") == 0;
    img_strv_push(out, n, file);
    if (parent)
        parent_names(p, out, n);
}

static int
scan_file(struct perl *pl, const char *file, struct husk_error **err)
{
    cleanup_fd int fd = img_host_open(pl->t, file, O_RDONLY);
    cleanup_free char *text = NULL;
    int r = fd < 0 ? fd : read_fd_all(fd, 32 << 20, &text, NULL);
    if (r < 0)
        return husk_err(err, -r, "read Perl source '%s'", file);
    bool pod = false;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '=') { /* POD runs from any =word to =cut */
            pod = !str_has_prefix(line, "=cut");
            continue;
        }
        if (pod)
            continue;
        if (str_has_prefix(line, "__END__") || str_has_prefix(line, "__DATA__"))
            break;
        cleanup_strv char **mods = NULL;
        size_t n = 0;
        img_perl_line_modules(line, &mods, &n);
        for (size_t i = 0; i < n; i++) {
            cleanup_free char *why = xasprintf("Perl module %s (loaded by %s)", mods[i], file);
            if ((r = find_module(pl, mods[i], why, err)) < 0)
                return r;
        }
    }
    return 0;
}

bool
img_is_perl(const char *interp_path)
{
    return str_has_prefix(img_path_basename(interp_path), "perl");
}

int
img_add_perl(struct img_tree *t, const char *interp, const char *script, struct husk_error **err)
{
    struct perl pl = {.t = t};
    int r = perl_setup(&pl, interp, err);
    if (r == 0)
        img_strv_push(&pl.queue, &pl.n_queue, xstrdup(script));
    for (size_t i = 0; r == 0 && i < pl.n_queue; i++) {
        cleanup_free char *file = xstrdup(pl.queue[i]); /* the queue may move */
        r = scan_file(&pl, file, err);
    }
    strv_freep(&pl.inc);
    strv_freep(&pl.queue);
    img_map_clear(&pl.seen);
    return r;
}
