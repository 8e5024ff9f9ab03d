/* SPDX-License-Identifier: Apache-2.0 */
/* Flag parsing from tables, logging at the boundary, container id rules. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "util.h"

bool
cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

#define HELP_WIDTH 80

/* Text filled to HELP_WIDTH columns, starting at column col (where the cursor is), further
 * lines indented so. */
static void
print_wrapped(FILE *to, const char *text, size_t col, size_t indent)
{
    bool first = true;
    for (const char *p = text + strspn(text, " "); *p; p += strspn(p, " ")) {
        size_t word = strcspn(p, " ");
        if (!first && col + 1 + word > HELP_WIDTH) {
            fprintf(to, "\n%*s", (int)indent, "");
            col = indent;
        } else if (!first) {
            fputc(' ', to);
            col++;
        }
        fwrite(p, 1, word, to);
        col += word;
        p += word;
        first = false;
    }
    fputc('\n', to);
}

static void
print_paragraphs(FILE *to, const char *text)
{
    if (text && *text) {
        fputc('\n', to);
        print_wrapped(to, text, 0, 0);
    }
}

static void
print_flags(FILE *to, const char *title, const struct flag *flags, size_t n, bool common_only)
{
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (common_only && flags[i].groups)
            continue;
        char left[64];
        cli_flag_synopsis(&flags[i], left, sizeof(left));
        if (strlen(left) < 26) /* else the help starts on a line of its own */
            fprintf(to, "%s  %-26s ", first ? title : "", left);
        else
            fprintf(to, "%s  %s\n%29s", first ? title : "", left, "");
        print_wrapped(to, flags[i].help, 29, 29);
        first = false;
    }
}

static void
print_item(FILE *to, const char *name, const char *summary)
{
    int col = fprintf(to, "  %-11s ", name);
    print_wrapped(to, summary, (size_t)col, 14);
}

void
cli_print_help(FILE *to, const struct verb *v)
{
    fprintf(to, "usage: husk %s%s%s\n", v->name, *v->usage ? " " : "", v->usage);
    print_paragraphs(to, v->summary);
    print_paragraphs(to, v->description);
    if (v->subs == NULL) {
        print_flags(to, "\nflags:\n", v->flags, v->n_flags, false);
        return;
    }
    fprintf(to, "\nsubcommands:\n");
    for (size_t i = 0; i < v->n_subs; i++)
        print_item(to, cli_sub_at(v, i)->name, cli_sub_at(v, i)->summary);
    print_flags(to, "\nflags of every subcommand:\n", v->flags, v->n_flags, true);
    fprintf(to, "\n`husk %s SUBCOMMAND --help` shows a subcommand's arguments and flags.\n",
            v->name);
}

/* The titles of the verbs' families, in `husk --help` and husk(1). */
const char *const cli_verb_kind_titles[] = {
    [VERB_OCI] = "container commands (runc's)",
    [VERB_HUSK] = "packing and serving",
};

void
cli_print_program_help(FILE *to, const struct cli_program *p)
{
    fprintf(to, "usage: husk %s\n", p->global->usage);
    print_paragraphs(to, p->global->summary);
    for (size_t k = 0; k < ARRAY_SIZE(cli_verb_kind_titles); k++) {
        fprintf(to, "\n%s:\n", cli_verb_kind_titles[k]);
        for (size_t i = 0; i < p->n_verbs; i++)
            if (p->verbs[i]->kind == k)
                print_item(to, p->verbs[i]->name, p->verbs[i]->summary);
    }
    print_flags(to, "\nglobal flags:\n", p->global->flags, p->global->n_flags, false);
    fputc('\n', to);
    print_wrapped(to,
                  "`husk COMMAND --help` (or `husk help COMMAND`) shows a command's arguments "
                  "and flags; `man husk` the manual.",
                  0, 0);
}

void
cli_flag_synopsis(const struct flag *f, char *buf, size_t len)
{
    static const char *const values[] = {
        [FLAG_BOOL] = "", [FLAG_STRING] = " VALUE", [FLAG_INT] = " N", [FLAG_STRINGS] = " VALUE"};
    if (f->short_name)
        snprintf(buf, len, "-%c, --%s%s", f->short_name, f->name, values[f->type]);
    else
        snprintf(buf, len, "    --%s%s", f->name, values[f->type]);
}

void
cli_sub_verb_init(struct cli_sub_verb *sv, const struct verb *v, const struct cli_sub *s)
{
    *sv = (struct cli_sub_verb){.flags = xcalloc(v->n_flags + 1, sizeof(struct flag))};
    snprintf(sv->name, sizeof(sv->name), "%s %s", v->name, s->name);
    size_t n = 0;
    for (size_t i = 0; i < v->n_flags; i++)
        if (cli_sub_takes(s, &v->flags[i]))
            sv->flags[n++] = v->flags[i];
    sv->verb = (struct verb){.name = sv->name,
                             .usage = s->usage,
                             .summary = s->summary,
                             .flags = sv->flags,
                             .n_flags = n,
                             .kind = v->kind,
                             .arg = s->arg};
}

void
cli_sub_verb_clear(struct cli_sub_verb *sv)
{
    free(sv->flags);
    sv->flags = NULL;
}

static const struct cli_sub *
lookup_sub(const struct verb *v, const char *name)
{
    for (size_t i = 0; i < v->n_subs; i++)
        if (strcmp(cli_sub_at(v, i)->name, name) == 0)
            return cli_sub_at(v, i);
    fprintf(stderr, "husk %s: unknown subcommand '%s'\n\n", v->name, name);
    cli_print_help(stderr, v);
    return NULL;
}

const struct cli_sub *
cli_find_sub(const struct verb *v, int argc, char **argv, int *code)
{
    *code = 2;
    if (argc < 1) {
        cli_print_help(stderr, v);
        return NULL;
    }
    bool help = strcmp(argv[0], "help") == 0;
    if (!help && !cli_is_help(argv[0]))
        return lookup_sub(v, argv[0]);
    if (!help || argc < 2) {
        cli_print_help(stdout, v);
        *code = 0;
        return NULL;
    }
    const struct cli_sub *s = lookup_sub(v, argv[1]);
    if (s) {
        struct cli_sub_verb sv;
        cli_sub_verb_init(&sv, v, s);
        cli_print_help(stdout, &sv.verb);
        cli_sub_verb_clear(&sv);
        *code = 0;
    }
    return NULL;
}

static const struct flag *
find_flag(const struct flag *flags, size_t n, const char *name, size_t len, char short_name)
{
    for (size_t i = 0; i < n; i++) {
        if (short_name && flags[i].short_name == short_name)
            return &flags[i];
        if (!short_name && strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    }
    return NULL;
}

int
cli_set_flag(const struct flag *f, void *opts, const char *value)
{
    char *field = (char *)opts + f->offset;
    switch (f->type) {
    case FLAG_BOOL:
        if (value == NULL || strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(bool *)field = true;
        else if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(bool *)field = false;
        else
            return -EINVAL;
        return 0;
    case FLAG_STRING:
        *(const char **)field = value;
        return 0;
    case FLAG_INT: {
        int64_t v;
        if (parse_i64(value, &v) < 0 || v < INT_MIN || v > INT_MAX)
            return -EINVAL;
        *(int *)field = (int)v;
        return 0;
    }
    case FLAG_STRINGS: {
        struct strlist *l = (struct strlist *)field;
        l->v = xrealloc(l->v, (l->n + 2) * sizeof(char *));
        l->v[l->n++] = (char *)value;
        l->v[l->n] = NULL;
        return 0;
    }
    }
    return -EINVAL;
}

int
cli_parse_flags(const struct verb *verb, const struct flag *flags, size_t n_flags, void *opts,
                int argc, char **argv)
{
    int i;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            return i + 1;
        if (a[0] != '-' || a[1] == '\0')
            return i;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (verb->name[0]) /* the global flags' caller prints husk's own usage */
                cli_print_help(stdout, verb);
            return -2;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag *f = find_flag(flags, n_flags, name, len, 0);
        if (f == NULL && a[1] != '-' && len == 1)
            f = find_flag(flags, n_flags, NULL, 0, name[0]);
        if (f == NULL) {
            fprintf(stderr, "husk %s: unknown flag '%s'\n", verb->name, a);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL && f->type != FLAG_BOOL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "husk %s: flag '%s' needs a value\n", verb->name, a);
                return -1;
            }
            value = argv[++i];
        }
        if (cli_set_flag(f, opts, value) < 0) {
            fprintf(stderr, "husk %s: flag '%s': invalid value '%s'\n", verb->name, a, value);
            return -1;
        }
    }
    return i;
}

void
cli_rfc3339_now(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%09ldZ", ts.tv_nsec);
}

void
cli_log(struct cli *cli, const char *level, const char *fmt, ...)
{
    cleanup_free char *msg = NULL;
    char when[64];
    va_list ap;

    if (strcmp(level, "debug") == 0 && !cli->debug)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    bool is_error = strcmp(level, "error") == 0;
    if (strcmp(level, "debug") != 0 || cli->log_fd < 0)
        fprintf(stderr, "husk: %s%s%s\n", is_error ? "" : level, is_error ? "" : ": ", msg);
    if (cli->log_fd < 0)
        return;
    cli_rfc3339_now(when, sizeof(when));
    cleanup_free char *line = NULL;
    if (cli->log_json) {
        json_t *j = json_pack("{s:s, s:s, s:s}", "level", level, "msg", msg, "time", when);
        cleanup_free char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        line = xasprintf("%s\n", text);
    } else {
        line = xasprintf("time=\"%s\" level=%s msg=\"%s\"\n", when, level, msg);
    }
    write_all(cli->log_fd, line, strlen(line));
}

int
cli_fail(struct cli *cli, struct husk_error *err)
{
    cleanup_free char *s = husk_error_string(err);
    cli_log(cli, "error", "%s", s);
    husk_error_free(err);
    return 1;
}

int
cli_check_id(const char *id, struct husk_error **err)
{
    if (id == NULL || *id == '\0')
        return husk_err(err, 0, "container id is required");
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0 || strlen(id) > 1024)
        return husk_err(err, 0, "invalid container id '%s'", id);
    for (const char *p = id; *p; p++)
        if (!(*p == '_' || *p == '+' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return husk_err(err, 0, "invalid container id '%s': only [A-Za-z0-9_+.-] allowed", id);
    return 0;
}
