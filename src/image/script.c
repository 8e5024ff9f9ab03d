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
    if ((r = img_sh_commands(text, &cmds, &n, err)) < 0)
        return husk_err_prefix(err, "shell script '%s': ", file->path);
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
    if (img_is_node(run))
        return img_add_node(t, run, path, err);
    if (img_is_perl(run))
        return img_add_perl(t, run, path, err);
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

/*
 * The scanner. One pass over the text, recursing into what runs commands of its own: $( ... ),
 * backticks, double quotes (which may hold either), ${...}, unquoted here-document bodies. A
 * construct the shell would refuse (an unterminated $(, backtick or quote) is an error naming
 * the line it starts on, since such a script fails when run anyway.
 */
struct sh_scan {
    const char *p;
    int line;
    char ***cmds;
    size_t *n;
    char **heredocs; /* delimiters whose bodies start after the current line, in order */
    size_t n_heredocs;
    struct husk_error **err;
};

static int sh_list(struct sh_scan *s, char end, int depth);

static int
sh_unterminated(struct sh_scan *s, const char *what, int line)
{
    return husk_err(s->err, 0, "unterminated %s that starts on line %d", what, line);
}

static void
sh_advance(struct sh_scan *s, size_t k)
{
    for (size_t i = 0; i < k && *s->p; i++, s->p++)
        s->line += *s->p == '\n';
}

/* $( ... ), $(( ... )) or ` ... `; s->p is at the '$' or the backtick. */
static int
sh_substitution(struct sh_scan *s, int depth)
{
    int line = s->line;
    if (depth > 64)
        return husk_err(s->err, 0, "substitutions nest too deep on line %d", line);
    if (*s->p == '`') {
        sh_advance(s, 1);
        int r = sh_list(s, '`', depth + 1);
        if (r < 0)
            return r;
        if (*s->p != '`')
            return sh_unterminated(s, "backtick (`)", line);
        sh_advance(s, 1);
        return 0;
    }
    if (s->p[2] == '(') { /* arithmetic: no commands, but it must end */
        int parens = 0;
        for (sh_advance(s, 1); *s->p; sh_advance(s, 1)) {
            parens += (*s->p == '(') - (*s->p == ')');
            if (parens == 0) {
                sh_advance(s, 1);
                return 0;
            }
        }
        return sh_unterminated(s, "$((", line);
    }
    sh_advance(s, 2);
    int r = sh_list(s, ')', depth + 1);
    if (r < 0)
        return r;
    if (*s->p != ')')
        return sh_unterminated(s, "$(", line);
    sh_advance(s, 1);
    return 0;
}

/* Inside "..." or an unquoted here-document: only substitutions run commands. stop: the
 * closing quote, or '\0' for a here-document body. */
static int
sh_expansions(struct sh_scan *s, char stop, int depth)
{
    int line = s->line;
    while (*s->p && *s->p != stop) {
        if (*s->p == '\\' && s->p[1]) {
            sh_advance(s, 2);
        } else if (*s->p == '`' || (s->p[0] == '$' && s->p[1] == '(')) {
            int r = sh_substitution(s, depth);
            if (r < 0)
                return r;
        } else {
            sh_advance(s, 1);
        }
    }
    if (stop && *s->p != stop)
        return sh_unterminated(s, "double quote (\")", line);
    sh_advance(s, stop ? 1 : 0);
    return 0;
}

/* <<DELIM, <<-DELIM, <<'DELIM', <<"DELIM": remember the delimiter (a quoted one: no
 * expansions in the body, marked by a leading '\''). s->p is past the "<<". */
static void
sh_heredoc_start(struct sh_scan *s)
{
    if (*s->p == '<') { /* <<< here-string: an ordinary word follows */
        sh_advance(s, 1);
        return;
    }
    bool strip = *s->p == '-';
    sh_advance(s, strip ? 1 : 0);
    while (*s->p == ' ' || *s->p == '\t')
        sh_advance(s, 1);
    bool quoted = false;
    char word[256];
    size_t w = 0;
    while (*s->p && !strchr(" \t\n;|&<>()", *s->p)) {
        if (*s->p == '\'' || *s->p == '"' || *s->p == '\\')
            quoted = true;
        else if (w + 1 < sizeof(word))
            word[w++] = *s->p;
        sh_advance(s, 1);
    }
    word[w] = '\0';
    img_strv_push(&s->heredocs, &s->n_heredocs,
                  xasprintf("%c%c%s", quoted ? '\'' : ' ', strip ? '-' : ' ', word));
}

/* After a newline: the bodies of the here-documents begun on the line just ended. */
static int
sh_heredoc_bodies(struct sh_scan *s, int depth)
{
    for (size_t i = 0; i < s->n_heredocs; i++) {
        const char *d = s->heredocs[i];
        bool quoted = d[0] == '\'', strip = d[1] == '-';
        const char *delim = d + 2;
        int line = s->line;
        for (;;) {
            if (*s->p == '\0')
                return sh_unterminated(s, "here-document", line);
            const char *start = s->p, *eol = strchrnul(s->p, '\n');
            const char *text = start;
            while (strip && *text == '\t')
                text++;
            bool last =
                (size_t)(eol - text) == strlen(delim) && strncmp(text, delim, strlen(delim)) == 0;
            if (!last && !quoted) {
                cleanup_free char *body = xstrndup(start, (size_t)(eol - start));
                struct sh_scan sub = *s;
                sub.p = body;
                sub.heredocs = NULL;
                sub.n_heredocs = 0;
                int r = sh_expansions(&sub, '\0', depth);
                strv_freep(&sub.heredocs); /* a here-document begun inside one: not followed */
                if (r < 0)
                    return r;
            }
            sh_advance(s, (size_t)(eol - start) + (*eol ? 1 : 0));
            if (last)
                break;
        }
    }
    strv_freep(&s->heredocs);
    s->n_heredocs = 0;
    return 0;
}

/* One word, with what it contains; *plain says it is only literal characters. */
static int
sh_word(struct sh_scan *s, char end, char **out, bool *plain, int depth)
{
    const char *start = s->p;
    *plain = true;
    while (*s->p && !strchr(" \t\n;|&()<>", *s->p) && *s->p != end) {
        int r = 0, line = s->line;
        if (*s->p == '`' || (s->p[0] == '$' && s->p[1] == '(')) {
            r = sh_substitution(s, depth);
            *plain = false;
        } else if (*s->p == '"') {
            sh_advance(s, 1);
            r = sh_expansions(s, '"', depth);
            *plain = false;
        } else if (*s->p == '\'') {
            const char *q = strchr(s->p + 1, '\'');
            if (q == NULL)
                return sh_unterminated(s, "single quote (')", line);
            sh_advance(s, (size_t)(q - s->p) + 1);
            *plain = false;
        } else if (s->p[0] == '$' && s->p[1] == '{') {
            sh_advance(s, 2);
            r = sh_expansions(s, '}', depth);
            *plain = false;
        } else {
            *plain &= *s->p != '\\' && *s->p != '$';
            sh_advance(s, *s->p == '\\' && s->p[1] ? 2 : 1);
        }
        if (r < 0)
            return r;
    }
    *out = xstrndup(start, (size_t)(s->p - start));
    return 0;
}

/* Commands up to `end` (')' for $( and subshells' callers, '`', or '\0'). */
static int
sh_list(struct sh_scan *s, char end, int depth)
{
    bool at_cmd = true;
    while (*s->p) {
        char c = *s->p;
        if (c == end && end != '\0')
            return 0;
        if (c == '\n') {
            sh_advance(s, 1);
            at_cmd = true;
            int r = sh_heredoc_bodies(s, depth);
            if (r < 0)
                return r;
            continue;
        }
        if (c == ';' || c == '|' || c == '&' || c == '(' || c == ')') {
            at_cmd = true;
            sh_advance(s, 1);
            continue;
        }
        if (c == ' ' || c == '\t' || (c == '\\' && s->p[1] == '\n')) {
            sh_advance(s, c == '\\' ? 2 : 1);
            continue;
        }
        if (c == '#') { /* a comment runs to the end of the line */
            while (*s->p && *s->p != '\n')
                sh_advance(s, 1);
            continue;
        }
        if (c == '<' && s->p[1] == '<') {
            sh_advance(s, 2);
            sh_heredoc_start(s);
            continue;
        }
        if (c == '<' || c == '>') { /* a redirection: the file name is no command */
            sh_advance(s, 1);
            continue;
        }
        cleanup_free char *w = NULL;
        bool plain;
        int r = sh_word(s, end, &w, &plain, depth);
        if (r < 0)
            return r;
        if (!at_cmd || is_assignment(w) || isdigit((unsigned char)w[0]))
            continue;
        if (is_one_of(w, end_position, ARRAY_SIZE(end_position))) {
            at_cmd = false;
            continue;
        }
        bool keep = is_one_of(w, keep_position, ARRAY_SIZE(keep_position));
        if (plain && plain_word(w) && !is_one_of(w, builtins, ARRAY_SIZE(builtins)))
            push_unique(s->cmds, s->n, w);
        at_cmd = keep;
    }
    return 0;
}

int
img_sh_commands(const char *text, char ***cmds, size_t *n, struct husk_error **err)
{
    struct sh_scan s = {.p = text, .line = 1, .cmds = cmds, .n = n, .err = err};
    int r = sh_list(&s, '\0', 0);
    if (r == 0 && s.n_heredocs)
        r = sh_heredoc_bodies(&s, 0);
    strv_freep(&s.heredocs);
    return r;
}
