/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Python: the part of the interpreter's standard library a script needs. The interpreter's
 * startup modules, then every module named by an import statement (or a literal
 * __import__/import_module call) of the script and, transitively, of each module found, looked
 * up on the interpreter's default sys.path. Source is read, never run: a module imported under
 * a computed name is only seen by `--trace`.
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

/* What the interpreter imports before the script runs (3.11 freezes some; the files are the
 * landmarks it looks for and cost little). */
static const char *const startup[] = {
    "os",
    "site",
    "encodings",
    "codecs",
    "io",
    "abc",
    "stat",
    "posixpath",
    "genericpath",
    "_collections_abc",
    "_sitebuiltins",
    "sitecustomize",
    "usercustomize",
};

struct py {
    struct img_tree *t;
    char *prefix;   /* "/usr" */
    char *user_dir; /* the script's directory: its modules are the program; NULL for none */
    char *version;  /* "3.11" */
    char *tag;      /* "cpython-311" */
    const char *triplet;
    char *stdlib;
    char **path;
    size_t n_path, n_user; /* n_user: 1 when path[0] is the script's directory */
    struct img_map seen;   /* module names looked up -> the lazy depth they were found at */
    int depth;             /* lazy depth of what is imported now (see scan_file) */
    char **queue;          /* files to scan, as "module\0path" pairs (module "" for scripts) */
    size_t n_queue;
};

static void
py_clear(struct py *py)
{
    free(py->version);
    free(py->prefix);
    free(py->user_dir);
    free(py->tag);
    free(py->stdlib);
    strv_freep(&py->path);
    strv_freep(&py->queue);
    img_map_clear(&py->seen);
}

static bool
host_is(struct py *py, const char *path, mode_t type)
{
    struct stat st;
    return img_host_stat(py->t, path, true, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

/* "python3.11" -> "3.11"; for "python3", the one lib/python3.N with os.py under prefix. */
static char *
find_version(struct py *py, const char *real, const char *prefix)
{
    const char *b = img_path_basename(real);
    int major, minor;
    if (sscanf(b, "python%d.%d", &major, &minor) == 2)
        return xasprintf("%d.%d", major, minor);
    for (minor = 30; minor >= 0; minor--) {
        cleanup_free char *os = xasprintf("%s/lib/python3.%d/os.py", prefix, minor);
        if (host_is(py, os, S_IFREG))
            return xasprintf("3.%d", minor);
    }
    return NULL;
}

static int
py_setup(struct py *py, const char *interp, const char *script, struct husk_error **err)
{
    cleanup_free char *real = NULL;
    cleanup_free char *prefix = NULL;
    int r = img_interp_prefix(py->t, interp, &real, &prefix, err);
    if (r < 0)
        return r;
    py->version = find_version(py, real, prefix);
    if (py->version == NULL)
        return husk_err(err, 0, "%s: no lib/python3.N/os.py under '%s'", real, prefix);
    int major = 0, minor = 0;
    sscanf(py->version, "%d.%d", &major, &minor);
    py->tag = xasprintf("cpython-%d%d", major, minor);
    /* Extension modules carry the interpreter's triplet: read it from its ELF header. */
    cleanup_fd int fd = img_host_open(py->t, real, O_RDONLY);
    cleanup_(img_elf_freep) struct img_elf *elf = NULL;
    if (fd >= 0 && img_elf_read(fd, real, &elf, NULL) == 0)
        py->triplet = img_elf_triplet(elf);
    py->stdlib = xasprintf("%s/lib/python%s", prefix, py->version);
    py->prefix = xstrdup(prefix);
    /* Without a script (the interpreter alone) sys.path[0] is the cwd: nothing to add. */
    py->user_dir = script ? img_path_dirname(script) : NULL;
    if (py->user_dir)
        img_strv_push(&py->path, &py->n_path, xstrdup(py->user_dir));
    py->n_user = py->n_path;
    char *dirs[] = {
        xstrdup(py->stdlib),
        xasprintf("%s/lib-dynload", py->stdlib),
        xasprintf("%s/local/lib/python%s/dist-packages", prefix, py->version),
        xasprintf("%s/lib/python3/dist-packages", prefix),
        xasprintf("%s/lib/python%s/site-packages", prefix, py->version),
    };
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
        img_strv_push(&py->path, &py->n_path, dirs[i]);
    return 0;
}

/* Add a file, plus its cached bytecode when the distribution ships it. */
static int
add_source(struct py *py, const char *file, const char *module, bool scan, const char *reason,
           struct husk_error **err)
{
    cleanup_free char *real = NULL;
    int r = img_tree_add_host(py->t, file, reason, &real, err);
    if (r < 0)
        return r;
    cleanup_free char *dir = img_path_dirname(file);
    cleanup_free char *stem = xstrdup(img_path_basename(file));
    char *dot = strrchr(stem, '.');
    if (dot)
        *dot = '\0';
    cleanup_free char *pyc = xasprintf("%s/__pycache__/%s.%s.pyc", dir, stem, py->tag);
    if (host_is(py, pyc, S_IFREG) &&
        (r = img_tree_add_host(py->t, pyc, "bytecode cache", NULL, err)) < 0)
        return r;
    if (scan) /* "D module\0file": D the lazy depth */
        img_strv_push(&py->queue, &py->n_queue,
                      xasprintf("%c%s%c%s", '0' + py->depth, module, '\0', file));
    return 0;
}

/* An extension module: NAME.cpython-311-x86_64-linux-gnu.so, NAME.abi3.so or NAME.so. */
static int
find_extension(struct py *py, const char *base, const char *reason, bool *found,
               struct husk_error **err)
{
    cleanup_free char *a =
        py->triplet ? xasprintf("%s.%s-%s.so", base, py->tag, py->triplet) : NULL;
    cleanup_free char *b = xasprintf("%s.abi3.so", base);
    cleanup_free char *c = xasprintf("%s.so", base);
    const char *cands[] = {a, b, c};
    for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
        if (cands[i] == NULL || !host_is(py, cands[i], S_IFREG))
            continue;
        *found = true;
        int r = img_add_analysed(py->t, cands[i], reason, 1, err);
        return r == -ENOEXEC ? 0 : r;
    }
    return 0;
}

/* One module by its full dotted name. */
static int
find_module(struct py *py, const char *name, const char *reason, bool *found,
            struct husk_error **err)
{
    cleanup_free char *rel = xstrdup(name);
    for (char *p = rel; *p; p++)
        if (*p == '.')
            *p = '/';
    *found = false;
    for (size_t i = 0; i < py->n_path; i++) {
        cleanup_free char *base = img_path_join(py->path[i], rel);
        cleanup_free char *init = xasprintf("%s/__init__.py", base);
        cleanup_free char *file = xasprintf("%s.py", base);
        if (host_is(py, init, S_IFREG)) {
            *found = true;
            return add_source(py, init, name, true, reason, err);
        }
        if (host_is(py, file, S_IFREG)) {
            *found = true;
            return add_source(py, file, name, true, reason, err);
        }
        int r = find_extension(py, base, reason, found, err);
        if (r < 0 || *found)
            return r;
        if (host_is(py, base, S_IFDIR)) { /* a namespace package */
            *found = true;
            return img_tree_add_host(py->t, base, reason, NULL, err);
        }
    }
    return 0;
}

/* sysconfig imports its data module under a computed name. */
static int
add_sysconfigdata(struct py *py, struct husk_error **err)
{
    cleanup_fd int fd = img_host_open(py->t, py->stdlib, O_RDONLY | O_DIRECTORY);
    cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL)
        return 0;
    fd = -1; /* owned by d now */
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (!str_has_prefix(de->d_name, "_sysconfigdata_") || !strstr(de->d_name, ".py"))
            continue;
        cleanup_free char *file = img_path_join(py->stdlib, de->d_name);
        int r = add_source(py, file, "", false, "imported by sysconfig", err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* six.moves.NAME (six, or a copy vendored as PKG.six) is the Python 3 module six maps it to,
 * imported under a computed name. The names six 1.16 moves, where they differ. */
static char *
six_moved(const char *name)
{
    static const char *const map[][2] = {
        {"http_client", "http.client"},
        {"http_cookiejar", "http.cookiejar"},
        {"http_cookies", "http.cookies"},
        {"html_parser", "html.parser"},
        {"html_entities", "html.entities"},
        {"urllib_parse", "urllib.parse"},
        {"urllib_error", "urllib.error"},
        {"urllib_robotparser", "urllib.robotparser"},
        {"cPickle", "pickle"},
        {"StringIO", "io"},
        {"UserDict", "collections"},
        {"UserList", "collections"},
        {"UserString", "collections"},
        {"email_mime_text", "email.mime.text"},
        {"email_mime_multipart", "email.mime.multipart"},
        {"email_mime_base", "email.mime.base"},
        {"xmlrpc_client", "xmlrpc.client"},
        {"_dummy_thread", "_thread"},
        {"tkinter", "tkinter"},
    };
    const char *moves = strstr(name, "six.moves.");
    if (moves == NULL || (moves != name && moves[-1] != '.'))
        return NULL;
    const char *rest = moves + strlen("six.moves.");
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        size_t l = strlen(map[i][0]);
        if (strncmp(rest, map[i][0], l) == 0 && (rest[l] == '\0' || rest[l] == '.'))
            return xasprintf("%s%s", map[i][1], rest + l);
    }
    return xstrdup(rest); /* queue, urllib.request, configparser, ...: the same name */
}

static int import_one(struct py *py, const char *name, const char *importer,
                      struct husk_error **err);

static int
import_name(struct py *py, const char *name, const char *importer, struct husk_error **err)
{
    cleanup_free char *moved = six_moved(name);
    int r = import_one(py, name, importer, err);
    if (r == 0 && moved)
        r = import_one(py, moved, importer, err);
    return r;
}

/* A name and each of its parents: importing a.b.c imports a and a.b first. */
static int
import_one(struct py *py, const char *name, const char *importer, struct husk_error **err)
{
    cleanup_free char *copy = xstrdup(name);
    for (char *dot = copy;; dot++) {
        dot = strchr(dot, '.');
        if (dot)
            *dot = '\0';
        size_t was;
        /* Again when reached less lazily than before: its own lazy imports may count now. */
        if (!img_map_get(&py->seen, copy, &was) || was > (size_t)py->depth) {
            img_map_put(&py->seen, copy, (size_t)py->depth);
            cleanup_free char *why = xasprintf("Python module %s (imported by %s)", copy, importer);
            bool found;
            int r = find_module(py, copy, why, &found, err);
            if (r < 0)
                return r;
            if (found && strcmp(copy, "sysconfig") == 0 && (r = add_sysconfigdata(py, err)) < 0)
                return r;
        }
        if (dot == NULL)
            return 0;
        *dot = '.';
    }
}

/* ".x" in module a.b.c (package a.b) -> "a.b.x"; NULL when it climbs above the top. */
static char *
absolute_name(const char *rel, const char *package)
{
    size_t level = 0;
    while (rel[level] == '.')
        level++;
    if (level == 0)
        return xstrdup(rel);
    cleanup_free char *base = xstrdup(package);
    for (size_t i = 1; i < level; i++) {
        char *dot = strrchr(base, '.');
        if (dot == NULL && base[0] == '\0')
            return NULL;
        if (dot)
            *dot = '\0';
        else
            base[0] = '\0';
    }
    if (base[0] == '\0')
        return NULL;
    return rel[level] ? xasprintf("%s.%s", base, rel + level) : xstrdup(base);
}

/* A growable string. */
struct buf {
    char *s;
    size_t n, cap;
};

static void
put_char(struct buf *b, char c)
{
    if (b->n + 2 > b->cap)
        b->s = xrealloc(b->s, b->cap = b->cap ? b->cap * 2 : 256);
    b->s[b->n++] = c;
    b->s[b->n] = '\0';
}

/* A string literal starting at p (kept, its newlines as spaces); returns what follows it. */
static const char *
string_literal(const char *p, struct buf *out)
{
    char q = *p;
    bool triple = p[1] == q && p[2] == q;
    size_t ql = triple ? 3 : 1;
    for (size_t i = 0; i < ql; i++)
        put_char(out, *p++);
    while (*p) {
        if (*p == '\\' && p[1]) {
            put_char(out, ' ');
            p += 2;
            continue;
        }
        if (triple ? (p[0] == q && p[1] == q && p[2] == q) : *p == q) {
            for (size_t i = 0; i < ql; i++)
                put_char(out, *p++);
            return p;
        }
        if (!triple && *p == '\n')
            return p; /* unterminated: the line ends it */
        put_char(out, *p == '\n' ? ' ' : *p);
        p++;
    }
    return p;
}

/* One logical line: continuations (backslash, open brackets) joined, comments dropped, string
 * literals kept whole so brackets and newlines inside them do not count. *indent is the
 * indentation of its first line. */
static char *
next_logical_line(const char **cursor, int *indent)
{
    const char *p = *cursor;
    struct buf out = {0};
    int depth = 0;
    if (*p == '\0')
        return NULL;
    *indent = 0;
    for (; *p == ' ' || *p == '\t'; p++)
        *indent = *p == '\t' ? (*indent / 8 + 1) * 8 : *indent + 1;
    put_char(&out, ' ');
    out.n = 0;
    while (*p) {
        char c = *p;
        if (c == '#') {
            while (*p && *p != '\n')
                p++;
        } else if (c == '\'' || c == '"') {
            p = string_literal(p, &out);
        } else if (c == '\\' && p[1] == '\n') {
            put_char(&out, ' ');
            p += 2;
        } else if (c == '\n') {
            p++;
            if (depth <= 0)
                break;
            put_char(&out, ' ');
        } else {
            depth += (c == '(' || c == '[' || c == '{') - (c == ')' || c == ']' || c == '}');
            put_char(&out, c);
            p++;
        }
    }
    *cursor = p;
    return out.s;
}

/* Does this line open a block whose imports run only later, if ever: a function body, or a
 * library module's `if __name__ == "__main__":`? */
static bool
opens_lazy_block(const char *line, bool user)
{
    const char *p = line + strspn(line, " \t");
    if (str_has_prefix(p, "def ") || str_has_prefix(p, "async def "))
        return true;
    return !user && str_has_prefix(p, "if ") && strstr(p, "__name__") && strstr(p, "__main__");
}

/*
 * Imports of one file. In the script and the modules beside it every import counts: their
 * functions are the program. In library modules only the imports that run when the module is
 * imported count (not those inside functions or a __main__ block): the standard library
 * imports lazily in many places, and following all of it would pull in most of it.
 */
/* The string literals of a file that name modules on the path: the names a computed
 * __import__(name) or import_module(name) may be given ("for p in ('urllib3', 'idna')"). */
static int
import_literals(struct py *py, const char *text, const char *who, struct husk_error **err)
{
    for (const char *p = text; (p = strpbrk(p, "'\"")) != NULL;) {
        char q = *p++;
        const char *s = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '.'))
            p++;
        if (*p != q || p == s || isdigit((unsigned char)*s) || *s == '.' || p - s > 64)
            continue;
        cleanup_free char *name = xstrndup(s, (size_t)(p - s));
        p++;
        int r = import_name(py, name, who, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool
computed_import(const char *line)
{
    static const char *const calls[] = {"__import__(", "import_module("};
    for (size_t i = 0; i < ARRAY_SIZE(calls); i++) {
        const char *p = strstr(line, calls[i]);
        if (p && (p += strlen(calls[i]), p += strspn(p, " "), *p != '\'' && *p != '"'))
            return true;
    }
    return false;
}

/*
 * Imports of one file. In the script and the modules beside it every import counts: their
 * functions are the program. In library modules the imports that run when the module is
 * imported count, and those inside functions (or a __main__ block) one level deep: a module
 * found that way has its own lazy imports left out, or the standard library's lazy imports
 * would pull in most of it (gettext imports locale lazily, argparse calls gettext: kept;
 * what locale imports lazily is not). depth: how lazily this file was reached.
 */
static int
scan_file(struct py *py, int depth, const char *module, const char *file, struct husk_error **err)
{
    cleanup_fd int fd = img_host_open(py->t, file, O_RDONLY);
    cleanup_free char *text = NULL;
    int r = fd < 0 ? fd : read_fd_all(fd, 32 << 20, &text, NULL);
    if (r < 0)
        return husk_err(err, -r, "read Python source '%s'", file);
    /* A package's own name is its package; a module's package is its parent. */
    bool is_pkg = strcmp(img_path_basename(file), "__init__.py") == 0;
    cleanup_free char *package = xstrdup(module);
    char *dot = strrchr(package, '.');
    if (!is_pkg && dot)
        *dot = '\0';
    else if (!is_pkg)
        package[0] = '\0';
    cleanup_free char *script_dir = py->user_dir ? xasprintf("%s/", py->user_dir) : NULL;
    bool user = script_dir && str_has_prefix(file, script_dir), computed = false;
    const char *who = module[0] ? module : file;
    const char *cursor = text;
    int indent, lazy = -1; /* indentation of the line that opened the lazy block */
    for (char *line; r == 0 && (line = next_logical_line(&cursor, &indent)) != NULL; free(line)) {
        if (line[strspn(line, " \t")] == '\0')
            continue;
        if (lazy >= 0 && indent <= lazy)
            lazy = -1;
        bool now = lazy < 0 || user;
        if (now || depth < 1) {
            py->depth = now ? depth : depth + 1;
            computed |= now && computed_import(line);
            cleanup_strv char **mods = NULL;
            size_t n = 0;
            img_py_line_imports(line, &mods, &n);
            for (size_t i = 0; r == 0 && i < n; i++) {
                cleanup_free char *abs = absolute_name(mods[i], package);
                if (abs)
                    r = import_name(py, abs, who, err);
            }
        }
        if (lazy < 0 && opens_lazy_block(line, user))
            lazy = indent;
    }
    py->depth = depth;
    if (r == 0 && computed)
        r = import_literals(py, text, who, err);
    return r;
}

/* Every module of a package directory (the encodings package: codecs are looked up by a name
 * computed at run time, and the C code asks for some implicitly, "idna" for host names). */
static int
add_whole_package(struct py *py, const char *package, const char *reason, struct husk_error **err)
{
    cleanup_free char *dir = img_path_join(py->stdlib, package);
    cleanup_fd int fd = img_host_open(py->t, dir, O_RDONLY | O_DIRECTORY);
    cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL)
        return 0;
    fd = -1; /* owned by d now */
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 3, ".py") != 0 || de->d_name[0] == '.')
            continue;
        cleanup_free char *file = img_path_join(dir, de->d_name);
        cleanup_free char *mod = strcmp(de->d_name, "__init__.py") == 0
                                     ? xstrdup(package)
                                     : xasprintf("%s.%.*s", package, (int)(l - 3), de->d_name);
        img_map_put(&py->seen, mod, 0);
        int r = add_source(py, file, mod, true, reason, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Directories of the site directory that an executed .pth line names in a string literal:
 * setuptools' *-nspkg.pth files look their namespace package up there
 * (PathFinder.find_spec('ruamel', [sitedir])) and fail the interpreter's start without it. */
static int
add_pth_dirs(struct py *py, const char *dir, const char *line, struct husk_error **err)
{
    for (const char *p = line; (p = strpbrk(p, "'\"")) != NULL;) {
        const char *e = strchr(p + 1, *p);
        if (e == NULL)
            return 0;
        cleanup_free char *word = xstrndup(p + 1, (size_t)(e - p - 1));
        p = e + 1;
        if (word[0] == '\0' || word[0] == '.' || strpbrk(word, "/ \\"))
            continue;
        cleanup_free char *sub = img_path_join(dir, word);
        if (!host_is(py, sub, S_IFDIR))
            continue;
        int r = img_tree_add_host(py->t, sub, "namespace package named by a .pth file", NULL, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* One .pth file: site.py executes its "import" lines and appends its other lines to sys.path. */
static int
add_pth(struct py *py, const char *dir, const char *name, struct husk_error **err)
{
    cleanup_free char *file = img_path_join(dir, name);
    int r = img_tree_add_host(py->t, file, "Python .pth file (read by site at startup)", NULL, err);
    cleanup_fd int fd = r < 0 ? -1 : img_host_open(py->t, file, O_RDONLY);
    cleanup_free char *text = NULL;
    if (r < 0)
        return r;
    if ((r = fd < 0 ? fd : read_fd_all(fd, 1 << 20, &text, NULL)) < 0)
        return husk_err(err, -r, "read '%s'", file);
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (str_has_prefix(line, "import ") || str_has_prefix(line, "import\t")) {
            cleanup_strv char **mods = NULL;
            size_t n = 0;
            img_py_line_imports(line, &mods, &n);
            for (size_t i = 0; r == 0 && i < n; i++)
                r = import_name(py, mods[i], file, err);
            if (r == 0)
                r = add_pth_dirs(py, dir, line, err);
            if (r < 0)
                return r;
        } else if (line[0] != '#' && line[0] != '\0') {
            cleanup_free char *extra = line[0] == '/' ? xstrdup(line) : img_path_join(dir, line);
            if (host_is(py, extra, S_IFDIR))
                img_strv_push(&py->path, &py->n_path, steal_ptr(&extra));
        }
    }
    return 0;
}

/* The .pth files of the site directories, which site.py reads at every start. */
static int
add_site_pth(struct py *py, struct husk_error **err)
{
    size_t n_site = py->n_path;
    for (size_t i = py->n_user + 2; i < n_site; i++) { /* after the stdlib and lib-dynload */
        cleanup_fd int fd = img_host_open(py->t, py->path[i], O_RDONLY | O_DIRECTORY);
        cleanup_dir DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (d == NULL)
            continue;
        fd = -1;
        for (struct dirent *de; (de = readdir(d)) != NULL;) {
            size_t l = strlen(de->d_name);
            if (l < 5 || strcmp(de->d_name + l - 4, ".pth") != 0)
                continue;
            int r = add_pth(py, py->path[i], de->d_name, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* What the interpreter loads before any script: the landmarks getpath looks for (os.py,
 * lib-dynload), site with its .pth files and sitecustomize, the whole encodings package. */
static int
add_runtime(struct py *py, struct husk_error **err)
{
    cleanup_free char *dynload = xasprintf("%s/lib-dynload", py->stdlib);
    int r = 0;
    if (host_is(py, dynload, S_IFDIR))
        r = img_tree_add_host(py->t, dynload, "Python's platform library landmark", NULL, err);
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(startup); i++)
        r = import_name(py, startup[i], "the interpreter at startup", err);
    if (r == 0)
        r = add_whole_package(py, "encodings", "Python codec (looked up by name at run time)", err);
    if (r == 0)
        r = add_site_pth(py, err);
    return r;
}

static int
scan_queue(struct py *py, struct husk_error **err)
{
    /* The queue grows while it is scanned. */
    for (size_t i = 0; i < py->n_queue; i++) {
        const char *mod = py->queue[i] + 1;
        int r = scan_file(py, py->queue[i][0] - '0', mod, mod + strlen(mod) + 1, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
img_add_python(struct img_tree *t, const char *interp, const char *script, struct husk_error **err)
{
    struct py py = {.t = t};
    int r = py_setup(&py, interp, script, err);
    if (r == 0)
        r = add_runtime(&py, err);
    if (r == 0 && script)
        r = add_source(&py, script, "", true, "Python script", err);
    if (r == 0)
        r = scan_queue(&py, err);
    py_clear(&py);
    return r;
}

int
img_add_python_runtime(struct img_tree *t, const char *interp, struct husk_error **err)
{
    cleanup_free char *real = NULL;
    cleanup_free char *prefix = NULL;
    int r = img_interp_prefix(t, interp, &real, &prefix, err);
    if (r < 0)
        return r;
    struct py probe = {.t = t};
    cleanup_free char *version = find_version(&probe, real, prefix);
    if (version == NULL)
        return 0; /* named python but not CPython with its library here: nothing implicit */
    return img_add_python(t, interp, NULL, err);
}

/* A cached .pyc at dir/__pycache__/NAME.TAG.pyc: its source dir/NAME.py. */
static char *
pyc_source(const char *path)
{
    cleanup_free char *dir = img_path_dirname(path);
    const char *base = img_path_basename(path);
    size_t l = strlen(base);
    if (strcmp(img_path_basename(dir), "__pycache__") != 0 || l < 5 ||
        strcmp(base + l - 4, ".pyc") != 0)
        return NULL;
    const char *dot = strchr(base, '.');
    cleanup_free char *parent = img_path_dirname(dir);
    return xasprintf("%s/%.*s.py", parent, (int)(dot - base), base);
}

int
img_py_bytecode_sources(struct img_tree *t, struct husk_error **err)
{
    size_t n = img_tree_count(t);
    for (size_t i = 0; i < n; i++) {
        const struct img_entry *e = img_tree_at(t, i);
        cleanup_free char *src = e->kind == IMG_FILE ? pyc_source(e->path) : NULL;
        if (src == NULL || img_tree_find(t, src))
            continue;
        struct stat st;
        int r;
        cleanup_free char *pyc = xstrdup(e->path);
        /* Python checks a cached file against its source; a package is a directory only
         * with its __init__.py (else it becomes a namespace package). */
        if (img_host_stat(t, src, true, &st) == 0)
            r = img_tree_add_host(t, src, "source of a cached .pyc", NULL, err);
        else { /* no source: Python loads NAME.pyc from where NAME.py would be */
            cleanup_free char *beside = xasprintf("%sc", src);
            r = img_tree_add_copy(t, pyc, beside, "sourceless bytecode", err);
        }
        if (r < 0)
            return husk_err_prefix(err, "'%s': ", pyc);
    }
    return 0;
}

/* ---- one logical line ---- */

static void
skip_space(const char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
}

/* A dotted name (with leading dots for relative ones). */
static char *
dotted(const char **p)
{
    skip_space(p);
    const char *s = *p;
    while (**p == '.' || isalnum((unsigned char)**p) || **p == '_')
        (*p)++;
    return *p > s ? xstrndup(s, (size_t)(*p - s)) : NULL;
}

static bool
keyword(const char **p, const char *kw)
{
    size_t n = strlen(kw);
    skip_space(p);
    if (strncmp(*p, kw, n) != 0 || isalnum((unsigned char)(*p)[n]) || (*p)[n] == '_')
        return false;
    *p += n;
    return true;
}

/* "a as b, c" or "(a, b as c)": each name; "as" targets skipped. */
static void
name_list(const char *p, const char *base, char ***mods, size_t *n)
{
    skip_space(&p);
    if (*p == '(')
        p++;
    for (;;) {
        cleanup_free char *name = dotted(&p);
        if (name == NULL)
            return;
        if (base == NULL)
            img_strv_push(mods, n, steal_ptr(&name));
        else if (name[0] != '.')
            img_strv_push(
                mods, n, xasprintf("%s%s%s", base, base[strlen(base) - 1] == '.' ? "" : ".", name));
        if (keyword(&p, "as"))
            free(dotted(&p));
        skip_space(&p);
        if (*p != ',')
            return;
        p++;
    }
}

/* __import__("x") and importlib.import_module("x") with a literal name. */
static void
literal_calls(const char *line, char ***mods, size_t *n)
{
    static const char *const calls[] = {"__import__(", "import_module("};
    for (size_t i = 0; i < ARRAY_SIZE(calls); i++) {
        for (const char *p = line; (p = strstr(p, calls[i])) != NULL;) {
            p += strlen(calls[i]);
            skip_space(&p);
            char q = *p;
            if (q != '\'' && q != '"')
                continue;
            const char *s = ++p;
            while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '.'))
                p++;
            if (*p == q && p > s)
                img_strv_push(mods, n, xstrndup(s, (size_t)(p - s)));
        }
    }
}

void
img_py_line_imports(const char *line, char ***mods, size_t *n)
{
    cleanup_free char *copy = xstrdup(line);
    literal_calls(line, mods, n);
    /* Statements separated by ';' (a ';' in a string only costs a wasted lookup). */
    for (char *save = NULL, *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
        const char *p = s;
        if (keyword(&p, "import")) {
            name_list(p, NULL, mods, n);
        } else if (keyword(&p, "from")) {
            cleanup_free char *base = dotted(&p);
            if (base == NULL || !keyword(&p, "import"))
                continue;
            img_strv_push(mods, n, xstrdup(base));
            /* "from a import b": b may be a submodule; a failed lookup costs nothing. */
            name_list(p, base, mods, n);
        }
    }
}
