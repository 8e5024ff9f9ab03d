/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scripts: the "#!" interpreter (through /usr/bin/env too) with its closure, then what the
 * script names itself: Python modules (python.c) or, for shell, the commands it runs. The shell
 * scan is a best effort over simple commands; `--trace` catches what it cannot see.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

int
img_shebang_parse(const char *buf, size_t len, char **interp, char **arg)
{
    *interp = *arg = NULL;
    if (len < 2 || buf[0] != '#' || buf[1] != '!')
        return -ENOEXEC;
    /* As the kernel reads it (fs/binfmt_script.c): one line, interpreter, one optional arg. */
    size_t end = 2;
    while (end < len && buf[end] != '\n' && buf[end] != '\0')
        end++;
    const char *p = buf + 2, *e = buf + end;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    const char *s = p;
    while (p < e && *p != ' ' && *p != '\t')
        p++;
    if (p == s)
        return -ENOEXEC;
    *interp = xstrndup(s, (size_t)(p - s));
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    if (e > p)
        *arg = xstrndup(p, (size_t)(e - p));
    return 0;
}

static bool
basename_in(const char *path, const char *const *names, size_t n)
{
    const char *b = img_path_basename(path);
    for (size_t i = 0; i < n; i++)
        if (strcmp(b, names[i]) == 0)
            return true;
    return false;
}

bool
img_is_python(const char *interp_path)
{
    return str_has_prefix(img_path_basename(interp_path), "python");
}

bool
img_is_shell(const char *interp_path)
{
    static const char *const shells[] = {"sh",  "bash", "dash", "ash",
                                         "ksh", "mksh", "zsh",  "busybox"};
    return basename_in(interp_path, shells, ARRAY_SIZE(shells));
}

/* The program `env` runs: the first word that is neither an option nor an assignment. */
static char *
env_program(const char *arg)
{
    cleanup_free char *copy = xstrdup(arg ? arg : "");
    for (char *save = NULL, *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
        if (w[0] != '-' && strchr(w, '=') == NULL)
            return xstrdup(w);
    return NULL;
}

static int
add_shell_commands(struct img_tree *t, const struct img_entry *file, int depth,
                   struct husk_error **err)
{
    cleanup_fd int fd = img_host_open(t, file->path, O_RDONLY);
    cleanup_free char *text = NULL;
    int r = fd < 0 ? fd : read_fd_all(fd, 16 << 20, &text, NULL);
    if (r < 0)
        return husk_err(err, -r, "read script '%s'", file->path);
    cleanup_strv char **cmds = NULL;
    size_t n = 0;
    img_sh_commands(text, &cmds, &n);
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *path = img_which(t, cmds[i]);
        if (path == NULL || path[0] != '/')
            continue; /* a function, an alias, or not on this machine: --trace can tell */
        cleanup_free char *why = xasprintf("command '%s' in %s", cmds[i], file->path);
        r = img_add_analysed(t, path, why, depth + 1, err);
        if (r < 0 && r != -ENOEXEC)
            return r;
    }
    return 0;
}

int
img_add_script(struct img_tree *t, const struct img_entry *file, const char *buf, size_t len,
               int depth, struct husk_error **err)
{
    cleanup_free char *interp = NULL, *arg = NULL, *via_env = NULL;
    cleanup_free char *path = xstrdup(file->path);
    if (img_shebang_parse(buf, len, &interp, &arg) < 0)
        return husk_err(err, 0, "'%s': malformed #! line", path);
    cleanup_free char *why = xasprintf("interpreter (#!) of %s", path);
    int r = img_add_analysed(t, interp, why, depth + 1, err);
    if (r == -ENOEXEC)
        return husk_err(err, 0, "'%s': interpreter '%s' is not a program", path, interp);
    if (r < 0)
        return husk_err_prefix(err, "'%s': ", path);
    const char *run = interp;
    if (strcmp(img_path_basename(interp), "env") == 0) {
        cleanup_free char *prog = env_program(arg);
        if (prog == NULL)
            return husk_err(err, 0, "'%s': '#!%s' names no program", path, interp);
        via_env = img_which(t, prog);
        if (via_env == NULL)
            return husk_err(err, 0, "'%s': interpreter '%s' (via env) is not in PATH", path, prog);
        cleanup_free char *why_env = xasprintf("interpreter (#!%s %s) of %s", interp, prog, path);
        r = img_add_analysed(t, via_env, why_env, depth + 1, err);
        if (r == -ENOEXEC)
            return husk_err(err, 0, "'%s': interpreter '%s' is not a program", path, via_env);
        if (r < 0)
            return r;
        run = via_env;
    }
    if (img_is_python(run))
        return img_add_python(t, run, path, err);
    if (img_is_shell(run))
        return add_shell_commands(t, file, depth, err);
    return 0;
}

/* ---- shell: command words ---- */

static bool
is_one_of(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}

/* Words after which the next word is a command again. */
static const char *const keep_position[] = {"if",    "then", "else", "elif",  "while",  "until",
                                            "do",    "!",    "time", "{",     "exec",   "command",
                                            "nohup", "env",  "nice", "xargs", "builtin"};
/* Words whose following words are not commands until the next separator. */
static const char *const end_position[] = {
    "for",     "case",    "select", "function", "fi",   "done",  "esac",   "}",
    "in",      "[[",      "]]",     "return",   "exit", "local", "export", "readonly",
    "declare", "typeset", "unset",  "alias",    "set",  "shift", "trap"};
static const char *const builtins[] = {
    "echo",   "printf", "cd",       "test",  "[",    "read",    "true", "false", ":",    ".",
    "source", "eval",   "wait",     "umask", "type", "getopts", "hash", "pwd",   "let",  "ulimit",
    "times",  "break",  "continue", "kill",  "jobs", "fg",      "bg",   "then",  "else", "elif",
    "do",     "if",     "while",    "until", "exec", "command", "time", "!",     "{",    "builtin"};

static bool
plain_word(const char *w)
{
    if (w[0] == '\0' || w[0] == '-')
        return false;
    for (const char *p = w; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_./+-", *p)))
            return false;
    return true;
}

static bool
is_assignment(const char *w)
{
    const char *eq = strchr(w, '=');
    if (eq == NULL || eq == w || !(isalpha((unsigned char)w[0]) || w[0] == '_'))
        return false;
    for (const char *p = w; p < eq; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

static void
push_unique(char ***v, size_t *n, const char *w)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], w) == 0)
            return;
    img_strv_push(v, n, xstrdup(w));
}

void
img_sh_commands(const char *text, char ***cmds, size_t *n)
{
    bool at_cmd = true;
    for (const char *p = text; *p;) {
        char c = *p;
        if (c == '\n' || c == ';' || c == '|' || c == '&' || c == '(' || c == ')' || c == '`') {
            at_cmd = true;
            p++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\\') {
            p++;
            continue;
        }
        if (c == '#') { /* a comment runs to the end of the line */
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (c == '\'' || c == '"') { /* a quoted word: never a command we can name */
            char q = *p++;
            while (*p && *p != q)
                p += (*p == '\\' && q == '"' && p[1]) ? 2 : 1;
            if (*p)
                p++;
            at_cmd = false;
            continue;
        }
        if (c == '$' && p[1] == '(') {
            at_cmd = true;
            p += 2;
            continue;
        }
        const char *s = p;
        while (*p && !strchr(" \t\n;|&()`'\"", *p))
            p++;
        cleanup_free char *w = xstrndup(s, (size_t)(p - s));
        if (!at_cmd || is_assignment(w) || w[0] == '<' || w[0] == '>' ||
            isdigit((unsigned char)w[0]))
            continue;
        if (is_one_of(w, end_position, ARRAY_SIZE(end_position))) {
            at_cmd = false;
            continue;
        }
        bool keep = is_one_of(w, keep_position, ARRAY_SIZE(keep_position));
        if (plain_word(w) && !is_one_of(w, builtins, ARRAY_SIZE(builtins)))
            push_unique(cmds, n, w);
        at_cmd = keep;
    }
}
