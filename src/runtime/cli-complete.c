/* SPDX-License-Identifier: Apache-2.0 */
/* The bash completion script: the verbs' tables as a case statement (_husk_data), then the code
 * that walks a command line with it (share/completion.bash). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "cli-doc.h"
#include "util.h"

static const char *const arg_kinds[] = {
    [CLI_ARG_NONE] = "",
    [CLI_ARG_FILE] = "file",
    [CLI_ARG_CONTAINER] = "container",
    [CLI_ARG_FUNCTION] = "function",
};

/* A verb's flags: "--env -e --url ..." (all of them, or those taking a value), then --help. A
 * verb with subcommands takes none of its own before the subcommand. */
static void
flag_words(FILE *out, const struct verb *v, bool values_only)
{
    for (size_t i = 0; v->subs == NULL && i < v->n_flags; i++) {
        const struct flag *f = &v->flags[i];
        if (values_only && f->type == FLAG_BOOL)
            continue;
        fprintf(out, " --%s", f->name);
        if (f->short_name)
            fprintf(out, " -%c", f->short_name);
    }
    if (!values_only)
        fputs(" --help", out);
}

/* A verb's (or a subcommand's, as a verb of its own) lines of the case statement. */
static void
case_verb(FILE *out, const char *ctx, const struct verb *v)
{
    fprintf(out, "    flags:%s)\n        echo '", ctx);
    flag_words(out, v, false);
    fprintf(out, "' ;;\n    values:%s)\n        echo '", ctx);
    flag_words(out, v, true);
    fputs("' ;;\n", out);
    if (v->arg != CLI_ARG_NONE)
        fprintf(out, "    arg:%s)\n        echo %s ;;\n", ctx, arg_kinds[v->arg]);
}

int
cli_complete_bash(FILE *out, const struct cli_program *p, const char *walk)
{
    cleanup_free char *code = NULL;
    size_t len;
    int r = read_file_at(AT_FDCWD, walk, &code, &len);
    if (r < 0) {
        fprintf(stderr, "husk __doc bash: read '%s': %s\n", walk, strerror(-r));
        return 1;
    }
    fputs("# bash completion for husk, made by `husk __doc bash` from husk's own tables.\n"
          "# shellcheck shell=bash\n\n"
          "_husk_data()\n{\n    case $1 in\n    verbs)\n        echo '",
          out);
    for (size_t i = 0; i < p->n_verbs; i++)
        fprintf(out, " %s", p->verbs[i]->name);
    fputs("' ;;\n", out);
    case_verb(out, "", p->global);
    for (size_t i = 0; i < p->n_verbs; i++) {
        const struct verb *v = p->verbs[i];
        case_verb(out, v->name, v);
        if (v->subs == NULL)
            continue;
        fprintf(out, "    subs:%s)\n        echo '", v->name);
        for (size_t k = 0; k < v->n_subs; k++)
            fprintf(out, " %s", cli_sub_at(v, k)->name);
        fputs("' ;;\n", out);
        for (size_t k = 0; k < v->n_subs; k++) {
            struct cli_sub_verb sv;
            cli_sub_verb_init(&sv, v, cli_sub_at(v, k));
            cleanup_free char *ctx = xasprintf("%s/%s", v->name, cli_sub_at(v, k)->name);
            case_verb(out, ctx, &sv.verb);
            cli_sub_verb_clear(&sv);
        }
    }
    fputs("    esac\n}\n\n", out);
    fwrite(code, 1, len, out);
    return 0;
}
