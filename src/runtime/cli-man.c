/* SPDX-License-Identifier: Apache-2.0 */
/* The manual pages, written as roff from the same tables the flags are parsed with. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "cli-doc.h"
#include "util.h"

/* Text as roff: a backslash is \e, every '-' a minus sign (\-, what options are written with), and
 * a line may not start with a control character. */
static void
man_text(FILE *out, const char *text)
{
    bool line_start = true;
    for (const char *c = text; *c; c++) {
        if (line_start && (*c == '.' || *c == '\''))
            fputs("\\&", out);
        if (*c == '\\')
            fputs("\\e", out);
        else if (*c == '-')
            fputs("\\-", out);
        else
            fputc(*c, out);
        line_start = *c == '\n';
    }
}

void
man_section(FILE *out, const char *title)
{
    fprintf(out, ".SH %s\n", title);
}

void
man_paragraph(FILE *out, const char *text)
{
    fputs(".PP\n", out);
    man_text(out, text);
    fputc('\n', out);
}

void
man_item(FILE *out, const char *tag, const char *note, const char *text)
{
    fputs(".TP\n\\fB", out);
    man_text(out, tag);
    fputs("\\fR", out);
    if (note && *note) {
        fputs(" (", out);
        man_text(out, note);
        fputc(')', out);
    }
    fputs("\n.br\n", out); /* the text under the tag, even when the tag is short */
    man_text(out, text);
    fputc('\n', out);
}

void
man_example(FILE *out, const char *title, const char *text)
{
    man_paragraph(out, title);
    fputs(".PP\n.RS 4\n.nf\n", out);
    man_text(out, text);
    fputs("\n.fi\n.RE\n", out);
}

/* "-e, --env VALUE" as roff (the names bold, the value italic), and a note after it. */
static void
man_flag(FILE *out, const struct flag *f, const char *note)
{
    fputs(".TP\n", out);
    if (f->short_name)
        fprintf(out, "\\fB\\-%c\\fR, ", f->short_name);
    fputs("\\fB\\-\\-", out);
    man_text(out, f->name);
    fputs("\\fR", out);
    if (f->type != FLAG_BOOL)
        fputs(f->type == FLAG_INT ? " \\fIN\\fR" : " \\fIVALUE\\fR", out);
    if (note) {
        fputs(" (", out);
        man_text(out, note);
        fputc(')', out);
    }
    fputs("\n.br\n", out);
    man_text(out, f->help);
    fputc('\n', out);
}

/* A section whose title is text made upper case ("GLOBAL FLAGS"). */
static void
man_section_upper(FILE *out, const char *text)
{
    cleanup_free char *title = xstrdup(text);
    for (char *c = title; *c; c++)
        *c = *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
    fputs(".SH \"", out);
    man_text(out, title);
    fputs("\"\n", out);
}

/* The page's header and NAME: "husk-fn \- manage and invoke ...", from the summary. */
static void
man_head(FILE *out, const char *page, const char *summary)
{
    cleanup_free char *title = xstrdup(page);
    for (char *c = title; *c; c++)
        *c = *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
    fputs(".TH ", out);
    man_text(out, title);
    fprintf(out, " 1 \"\" \"husk %s\" \"husk manual\"\n.nh\n.ad l\n", HUSK_VERSION);
    man_section(out, "NAME");
    man_text(out, page);
    fputs(" \\- ", out);
    size_t n = strlen(summary);
    if (n && summary[n - 1] == '.')
        n--;
    cleanup_free char *what = xstrndup(summary, n);
    if (n > 1 && what[0] >= 'A' && what[0] <= 'Z' && what[1] >= 'a' && what[1] <= 'z')
        what[0] = (char)(what[0] - 'A' + 'a');
    man_text(out, what);
    fputc('\n', out);
}

/* "husk VERB USAGE", the command bold, as a line of its own. */
static void
man_command(FILE *out, const char *verb, const char *usage)
{
    fprintf(out, "\\fBhusk%s", *verb ? " " : "");
    man_text(out, verb);
    fprintf(out, "\\fR%s", *usage ? " " : "");
    man_text(out, usage);
    fputc('\n', out);
}

/* One line of a SYNOPSIS. */
static void
man_synopsis(FILE *out, const char *verb, const char *usage)
{
    man_command(out, verb, usage);
    fputs(".br\n", out);
}

static void
man_description(FILE *out, const struct verb *v)
{
    man_section(out, "DESCRIPTION");
    man_paragraph(out, v->summary);
    if (v->description)
        man_paragraph(out, v->description);
}

static bool page_name(const struct cli_program *p, size_t k, char *buf, size_t len,
                      const struct verb **verb);

static void
man_see_also(FILE *out, const struct cli_program *p, const char *self)
{
    char page[64];
    const struct verb *v;
    man_section(out, "SEE ALSO");
    for (size_t k = 0; page_name(p, k, page, sizeof(page), &v); k++) {
        if (strcmp(page, self) == 0)
            continue;
        fputs("\\fB", out);
        man_text(out, page);
        fputs("\\fR(1), ", out);
    }
    fputs("\\fBrunc\\fR(8)\n", out);
}

/* husk(1): the synopsis, the commands by family, the global flags. */
static void
page_husk(FILE *out, const struct cli_program *p)
{
    man_head(out, "husk", p->global->summary);
    man_section(out, "SYNOPSIS");
    man_synopsis(out, "", p->global->usage);
    man_section(out, "DESCRIPTION");
    man_paragraph(out, p->global->summary);
    man_paragraph(out, "husk COMMAND --help (or husk help COMMAND) shows a command's arguments "
                       "and flags.");
    for (size_t k = 0; k < ARRAY_SIZE(cli_verb_kind_titles); k++) {
        man_section_upper(out, cli_verb_kind_titles[k]);
        for (size_t i = 0; i < p->n_verbs; i++) {
            const struct verb *v = p->verbs[i];
            if (v->kind != k)
                continue;
            cleanup_free char *see =
                xasprintf("%s See husk-%s(1).", v->summary, k == VERB_OCI ? "oci" : v->name);
            man_item(out, v->name, NULL, see);
        }
    }
    man_section_upper(out, "global flags");
    for (size_t i = 0; i < p->global->n_flags; i++)
        man_flag(out, &p->global->flags[i], NULL);
    man_see_also(out, p, "husk");
}

/* husk-oci(1): runc's verbs, each with its flags. */
static void
page_oci(FILE *out, const struct cli_program *p)
{
    man_head(out, "husk-oci", "the container commands of husk, runc's verbs and flags");
    man_section(out, "SYNOPSIS");
    man_synopsis(out, "[global flags] COMMAND", "[flags] ID [ARGS]");
    man_section(out, "DESCRIPTION");
    man_paragraph(out, "husk takes runc's verbs and flags, so that container engines (podman, "
                       "containerd's ctr and its CRI) drive it unmodified. The global flags are "
                       "in husk(1).");
    man_section(out, "COMMANDS");
    for (size_t i = 0; i < p->n_verbs; i++) {
        const struct verb *v = p->verbs[i];
        if (v->kind != VERB_OCI)
            continue;
        fputs(".SS \"", out);
        man_text(out, v->name);
        fputs("\"\n", out);
        fputs(".PP\n", out);
        man_synopsis(out, v->name, v->usage);
        man_paragraph(out, v->summary);
        for (size_t f = 0; f < v->n_flags; f++)
            man_flag(out, &v->flags[f], NULL);
    }
    man_see_also(out, p, "husk-oci");
}

/* The subcommands that take a flag, as "deploy, update" (NULL: all of them). */
static char *
flag_subs(const struct verb *v, const struct flag *f)
{
    char *list = NULL;
    if (f->groups == 0)
        return NULL;
    for (size_t i = 0; i < v->n_subs; i++) {
        const struct cli_sub *s = cli_sub_at(v, i);
        if (!cli_sub_takes(s, f))
            continue;
        char *more = xasprintf("%s%s%s", list ? list : "", list ? ", " : "", s->name);
        free(list);
        list = more;
    }
    return list;
}

static void
man_subcommands(FILE *out, const struct verb *v)
{
    man_section(out, "COMMANDS");
    for (size_t i = 0; i < v->n_subs; i++) {
        const struct cli_sub *s = cli_sub_at(v, i);
        cleanup_free char *name = xasprintf("%s %s", v->name, s->name);
        fputs(".TP\n", out);
        man_command(out, name, s->usage);
        fputs(".br\n", out);
        man_text(out, s->summary);
        fputc('\n', out);
    }
}

/* husk-VERB(1) for husk's own verbs: synopsis, description, subcommands, flags, its own. */
static void
page_verb(FILE *out, const struct cli_program *p, const struct verb *v)
{
    cleanup_free char *page = xasprintf("husk-%s", v->name);
    man_head(out, page, v->summary);
    man_section(out, "SYNOPSIS");
    for (size_t i = 0; i < v->n_subs; i++) {
        cleanup_free char *name = xasprintf("%s %s", v->name, cli_sub_at(v, i)->name);
        man_synopsis(out, name, cli_sub_at(v, i)->usage);
    }
    if (v->subs == NULL)
        man_synopsis(out, v->name, v->usage);
    man_description(out, v);
    if (v->subs)
        man_subcommands(out, v);
    if (v->n_flags)
        man_section(out, "FLAGS");
    for (size_t i = 0; i < v->n_flags; i++) {
        cleanup_free char *subs = v->subs ? flag_subs(v, &v->flags[i]) : NULL;
        man_flag(out, &v->flags[i], subs);
    }
    if (v->man_sections)
        v->man_sections(out);
    man_see_also(out, p, page);
}

/* Each page's name, in order; false after the last. */
static bool
page_name(const struct cli_program *p, size_t k, char *buf, size_t len, const struct verb **verb)
{
    *verb = NULL;
    if (k < 2) {
        snprintf(buf, len, "%s", k == 0 ? "husk" : "husk-oci");
        return true;
    }
    for (size_t i = 0, n = 2; i < p->n_verbs; i++)
        if (p->verbs[i]->kind == VERB_HUSK && n++ == k) {
            *verb = p->verbs[i];
            snprintf(buf, len, "husk-%s", p->verbs[i]->name);
            return true;
        }
    return false;
}

static int
write_page(const struct cli_program *p, const char *name)
{
    char page[64];
    const struct verb *v;
    for (size_t k = 0; page_name(p, k, page, sizeof(page), &v); k++) {
        if (strcmp(page, name) != 0)
            continue;
        if (k == 0)
            page_husk(stdout, p);
        else if (k == 1)
            page_oci(stdout, p);
        else
            page_verb(stdout, p, v);
        return 0;
    }
    fprintf(stderr, "husk __doc man: no page '%s' (see husk __doc man-pages)\n", name);
    return 2;
}

int
cli_doc_main(const struct cli_program *p, int argc, char **argv)
{
    char page[64];
    const struct verb *v;
    if (argc == 1 && strcmp(argv[0], "man-pages") == 0) {
        for (size_t k = 0; page_name(p, k, page, sizeof(page), &v); k++)
            printf("%s\n", page);
        return 0;
    }
    if (argc == 2 && strcmp(argv[0], "man") == 0)
        return write_page(p, argv[1]);
    if (argc == 2 && strcmp(argv[0], "bash") == 0)
        return cli_complete_bash(stdout, p, argv[1]);
    fprintf(stderr, "usage: husk __doc man-pages | man PAGE | bash WALK\n");
    return 2;
}
