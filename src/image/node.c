/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node.js: what a script loads, found as Node's resolver finds it (lib/internal/modules): each
 * require()/import/import()/export-from of the script and of the files beside it that it loads;
 * relative names as files (X, X.js, .json, .node, .mjs, .cjs) or directories (package.json
 * "main", index.*); bare names in node_modules of each parent directory, then the global
 * folders. A package found is taken whole (its files are what it may load, under names it
 * may compute) with its package.json "dependencies", "optionalDependencies" and
 * "peerDependencies", resolved from it in turn. Addons (.node) get their ELF closure.
 *
 * A package must stay inside its tree: one reached through a symlink that leaves the
 * directory holding its node_modules, or whose "main"/"exports" leave the package, is an error
 * naming it, as is a symlink loop.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

/* Node 20's built-in modules (require('fs') is never a file). */
static const char *const builtins[] = {
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "sys",
    "timers",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
    "test",
};

struct node {
    struct img_tree *t;
    char *prefix;         /* the interpreter's prefix: PREFIX/lib/node is a global folder */
    struct img_map files; /* scanned files */
    struct img_map pkgs;  /* packages added (by real directory) */
    int depth;
};

static bool
host_is(struct node *n, const char *path, mode_t type)
{
    struct stat st;
    return img_host_stat(n->t, path, true, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static bool
is_builtin(const char *spec)
{
    if (str_has_prefix(spec, "node:"))
        return true;
    size_t l = strcspn(spec, "/");
    for (size_t i = 0; i < ARRAY_SIZE(builtins); i++)
        if (strlen(builtins[i]) == l && strncmp(spec, builtins[i], l) == 0)
            return true;
    return false;
}

/* ---- the specifiers a file names ---- */

static const char *
skip_space_comments(const char *p)
{
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (p[0] == '/' && p[1] == '/')
            p = strchrnul(p, '\n');
        else if (p[0] == '/' && p[1] == '*')
            p = strstr(p + 2, "*/") ? strstr(p + 2, "*/") + 2 : p + strlen(p);
        else
            return p;
    }
}

/* A string literal at p: its text (no escapes) and what follows; NULL if none. */
static char *
literal(const char **p)
{
    char q = **p;
    if (q != '\'' && q != '"' && q != '`')
        return NULL;
    const char *s = *p + 1, *e = s;
    while (*e && *e != q && *e != '\n' && *e != '\\' && !(q == '`' && *e == '$'))
        e++;
    if (*e != q)
        return NULL;
    *p = e + 1;
    return xstrndup(s, (size_t)(e - s));
}

static bool
ident_at(const char *text, const char *p, const char *word)
{
    size_t l = strlen(word);
    if (strncmp(p, word, l) != 0 || isalnum((unsigned char)p[l]) || p[l] == '_' || p[l] == '$')
        return false;
    return p == text ||
           !(isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '$' || p[-1] == '.');
}

/* require("x"), import("x"), import "x", import ... from "x", export ... from "x". Comments
 * and strings are skipped; a computed name is not seen (that is for --trace). */
void
img_js_specifiers(const char *text, char ***out, size_t *n)
{
    for (const char *p = text; *p;) {
        if (p[0] == '/' && (p[1] == '/' || p[1] == '*')) {
            p = skip_space_comments(p);
            continue;
        }
        if (*p == '\'' || *p == '"' || *p == '`') {
            char q = *p++;
            while (*p && *p != q)
                p += (*p == '\\' && p[1]) ? 2 : 1;
            p += *p ? 1 : 0;
            continue;
        }
        const char *q = NULL;
        if (ident_at(text, p, "require") || ident_at(text, p, "import")) {
            q = skip_space_comments(p + (p[0] == 'r' ? 7 : 6));
            if (*q == '(')
                q = skip_space_comments(q + 1);
        } else if (ident_at(text, p, "from")) {
            q = skip_space_comments(p + 4);
        }
        char *spec = q ? literal(&q) : NULL;
        if (spec && spec[0] == '\0') {
            free(spec);
            spec = NULL;
        }
        if (spec) {
            img_strv_push(out, n, spec);
            p = q;
        } else {
            p++;
        }
    }
}

/* ---- resolution ---- */

static int add_file(struct node *n, const char *path, const char *reason, struct husk_error **err);
static int add_package(struct node *n, const char *nm, const char *top, const char *name,
                       const char *reason, struct husk_error **err);

static int
read_package_json(struct node *n, const char *dir, json_t **out, struct husk_error **err)
{
    cleanup_free char *file = img_path_join(dir, "package.json");
    cleanup_fd int fd = img_host_open(n->t, file, O_RDONLY);
    cleanup_free char *text = NULL;
    size_t len = 0;
    *out = NULL;
    if (fd == -ENOENT)
        return 0;
    int r = fd < 0 ? fd : read_fd_all(fd, 16 << 20, &text, &len);
    if (r < 0)
        return husk_err(err, -r, "read '%s'", file);
    return img_json_parse(text, len, file, out, err);
}

/* X, X.js, X.json, X.node, X.mjs, X.cjs: the first that is a file. */
static char *
as_file(struct node *n, const char *base)
{
    static const char *const ext[] = {"", ".js", ".json", ".node", ".mjs", ".cjs"};
    for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
        cleanup_free char *p = xasprintf("%s%s", base, ext[i]);
        if (host_is(n, p, S_IFREG))
            return steal_ptr(&p);
    }
    return NULL;
}

/* A directory's entry: package.json "main", else index.*. */
static char *
as_directory(struct node *n, const char *dir, struct husk_error **err)
{
    cleanup_json json_t *pkg = NULL;
    if (read_package_json(n, dir, &pkg, err) < 0)
        return NULL;
    const char *main = json_string_value(json_object_get(pkg, "main"));
    if (main) {
        cleanup_free char *m = img_path_join(dir, main);
        char *f = as_file(n, m);
        if (f)
            return f;
        cleanup_free char *idx = img_path_join(m, "index");
        if ((f = as_file(n, idx)) != NULL)
            return f;
    }
    cleanup_free char *idx = img_path_join(dir, "index");
    return as_file(n, idx);
}

/* A relative or absolute name from a file in `from`: add what it names (if it exists). */
static int
add_path_spec(struct node *n, const char *from, const char *spec, const char *reason,
              struct husk_error **err)
{
    cleanup_free char *joined = spec[0] == '/' ? xstrdup(spec) : img_path_join(from, spec);
    cleanup_free char *base = img_path_resolve_dots(joined);
    cleanup_free char *file = as_file(n, base);
    if (file == NULL && host_is(n, base, S_IFDIR))
        file = as_directory(n, base, err);
    if (file == NULL)
        return err && *err ? -EINVAL : 0; /* optional, or computed: --trace can tell */
    return add_file(n, file, reason, err);
}

/* "@scope/name/sub" -> "@scope/name"; "name/sub" -> "name". */
static char *
package_name(const char *spec)
{
    const char *slash = strchr(spec, '/');
    if (spec[0] == '@' && slash)
        slash = strchr(slash + 1, '/');
    return slash ? xstrndup(spec, (size_t)(slash - spec)) : xstrdup(spec);
}

/* node_modules of `from` and each parent, then the global folders. */
static int
add_bare(struct node *n, const char *from, const char *spec, const char *reason,
         struct husk_error **err)
{
    cleanup_free char *name = package_name(spec);
    if (name[0] == '.' || strstr(name, "..") || name[strlen(name) - 1] == '/')
        return 0;
    cleanup_free char *dir = xstrdup(from);
    for (;;) {
        if (strcmp(img_path_basename(dir), "node_modules") != 0) {
            cleanup_free char *nm = img_path_join(dir, "node_modules");
            cleanup_free char *pkg = img_path_join(nm, name);
            if (host_is(n, pkg, S_IFDIR) || access(pkg, F_OK) == 0 || errno == ELOOP)
                return add_package(n, nm, dir, name, reason, err);
        }
        if (strcmp(dir, "/") == 0)
            break;
        char *up = img_path_dirname(dir);
        free(dir);
        dir = up;
    }
    cleanup_free char *global = xasprintf("%s/lib/node", n->prefix);
    const char *globals[] = {global, "/usr/local/lib/nodejs", "/usr/local/share/nodejs",
                             "/usr/share/nodejs", "/usr/lib/nodejs"};
    for (size_t i = 0; i < ARRAY_SIZE(globals); i++) {
        cleanup_free char *pkg = img_path_join(globals[i], name);
        if (host_is(n, pkg, S_IFDIR))
            return add_package(n, globals[i], globals[i], name, reason, err);
    }
    return 0; /* not installed: an optional require, or a mistake the program reports */
}

/* "main" and every "exports" target must stay inside the package. */
static int
check_targets(json_t *j, const char *pkgjson, const char *field, struct husk_error **err)
{
    if (json_is_string(j)) {
        const char *v = json_string_value(j);
        cleanup_free char *clean = img_path_clean(v);
        bool climbs = v[0] == '/' || str_has_prefix(clean, "../") || strcmp(clean, "..") == 0 ||
                      strstr(clean, "/../") != NULL;
        if (climbs)
            return husk_err(err, 0, "'%s': \"%s\" target '%s' points outside the package", pkgjson,
                            field, v);
        return 0;
    }
    const char *k;
    json_t *v;
    size_t i;
    json_object_foreach(j, k, v)
    {
        int r = check_targets(v, pkgjson, field, err);
        if (r < 0)
            return r;
    }
    json_array_foreach(j, i, v)
    {
        int r = check_targets(v, pkgjson, field, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
add_dependencies(struct node *n, const char *real, json_t *pkg, struct husk_error **err)
{
    static const char *const fields[] = {"dependencies", "optionalDependencies",
                                         "peerDependencies"};
    for (size_t f = 0; f < ARRAY_SIZE(fields); f++) {
        const char *dep;
        json_t *v;
        json_object_foreach(json_object_get(pkg, fields[f]), dep, v)
        {
            cleanup_free char *why = xasprintf("%s of %s", fields[f], real);
            int r = add_bare(n, real, dep, why, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* nm/name (nm: a node_modules directory in `dir`, or a global folder): the whole package,
 * then its dependencies. */
static int
add_package(struct node *n, const char *nm, const char *dir, const char *name, const char *reason,
            struct husk_error **err)
{
    cleanup_free char *path = img_path_join(nm, name);
    cleanup_free char *real = NULL, *top = NULL;
    int r = img_host_realpath(n->t, path, &real, err);
    if (r == 0)
        r = img_host_realpath(n->t, dir, &top, err);
    if (r < 0)
        return husk_err_prefix(err, "node package '%s': ", name);
    cleanup_free char *top_slash = xasprintf("%s/", strcmp(top, "/") == 0 ? "" : top);
    if (!str_has_prefix(real, top_slash))
        return husk_err(err, 0, "node package '%s' (%s) points outside its tree '%s', to '%s'",
                        name, path, top, real);
    if (img_map_get(&n->pkgs, real, NULL))
        return 0;
    img_map_put(&n->pkgs, real, 0);
    if (++n->depth > 256)
        return husk_err(err, ELOOP, "node package '%s': dependencies nest too deep", name);
    cleanup_json json_t *pkg = NULL;
    cleanup_free char *pkgjson = img_path_join(real, "package.json");
    if ((r = read_package_json(n, real, &pkg, err)) < 0)
        return r;
    if ((r = check_targets(json_object_get(pkg, "main"), pkgjson, "main", err)) < 0 ||
        (r = check_targets(json_object_get(pkg, "exports"), pkgjson, "exports", err)) < 0)
        return r;
    /* The package at the path Node sees (symlinks on the way kept), its files whole. */
    if ((r = img_tree_add_host(n->t, path, reason, NULL, err)) < 0)
        return r;
    if ((r = img_tree_add_copy(n->t, real, real, reason, err)) < 0)
        return husk_err_prefix(err, "node package '%s': ", name);
    /* Addons in it, with their libraries. */
    size_t count = img_tree_count(n->t);
    for (size_t i = 0; i < count; i++) {
        const struct img_entry *e = img_tree_at(n->t, i);
        size_t l = strlen(e->path);
        if (e->kind == IMG_FILE && l > 5 && strcmp(e->path + l - 5, ".node") == 0 &&
            str_has_prefix(e->path, real) && !e->analysed) {
            cleanup_free char *p = xstrdup(e->path);
            if ((r = img_add_analysed(n->t, p, "Node addon", 1, err)) < 0 && r != -ENOEXEC)
                return r;
        }
    }
    r = add_dependencies(n, real, pkg, err);
    n->depth--;
    return r;
}

/* The package.json that decides how Node reads a file ("type": "module"): the nearest. */
static int
add_scope(struct node *n, const char *file, struct husk_error **err)
{
    cleanup_free char *dir = img_path_dirname(file);
    for (;;) {
        if (strcmp(img_path_basename(dir), "node_modules") == 0)
            return 0;
        cleanup_free char *pj = img_path_join(dir, "package.json");
        if (host_is(n, pj, S_IFREG))
            return img_tree_add_host(n->t, pj, "package scope of a Node module", NULL, err);
        if (strcmp(dir, "/") == 0)
            return 0;
        char *up = img_path_dirname(dir);
        free(dir);
        dir = up;
    }
}

static int
scan(struct node *n, const char *file, struct husk_error **err)
{
    cleanup_fd int fd = img_host_open(n->t, file, O_RDONLY);
    cleanup_free char *text = NULL;
    int r = fd < 0 ? fd : read_fd_all(fd, 64 << 20, &text, NULL);
    if (r < 0)
        return husk_err(err, -r, "read '%s'", file);
    cleanup_strv char **specs = NULL;
    size_t ns = 0;
    img_js_specifiers(text, &specs, &ns);
    cleanup_free char *dir = img_path_dirname(file);
    for (size_t i = 0; i < ns; i++) {
        const char *s = specs[i];
        if (is_builtin(s))
            continue;
        cleanup_free char *why = xasprintf("Node module '%s' (loaded by %s)", s, file);
        bool path = s[0] == '/' || str_has_prefix(s, "./") || str_has_prefix(s, "../") ||
                    strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
        r = path ? add_path_spec(n, dir, s, why, err) : add_bare(n, dir, s, why, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A file the program loads: an addon gets its closure, JavaScript is scanned in turn. */
static int
add_file(struct node *n, const char *path, const char *reason, struct husk_error **err)
{
    cleanup_free char *real = NULL;
    int r = img_tree_add_host(n->t, path, reason, &real, err);
    if (r < 0 || img_map_get(&n->files, real, NULL))
        return r;
    img_map_put(&n->files, real, 0);
    size_t l = strlen(real);
    if (l > 5 && strcmp(real + l - 5, ".node") == 0) {
        r = img_add_analysed(n->t, real, reason, 1, err);
        return r == -ENOEXEC ? husk_err(err, 0, "Node addon '%s' is not ELF", real) : r;
    }
    if (l > 5 && strcmp(real + l - 5, ".json") == 0)
        return 0;
    if ((r = add_scope(n, real, err)) < 0)
        return r;
    return scan(n, real, err);
}

bool
img_is_node(const char *interp_path)
{
    const char *b = img_path_basename(interp_path);
    return strcmp(b, "node") == 0 || strcmp(b, "nodejs") == 0;
}

int
img_add_node(struct img_tree *t, const char *interp, const char *script, struct husk_error **err)
{
    struct node n = {.t = t};
    cleanup_free char *real = NULL;
    int r = img_interp_prefix(t, interp, &real, &n.prefix, err);
    if (r == 0) {
        r = add_file(&n, script, "Node script", err);
    }
    free(n.prefix);
    img_map_clear(&n.files);
    img_map_clear(&n.pkgs);
    return r;
}
