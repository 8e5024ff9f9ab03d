/* SPDX-License-Identifier: Apache-2.0 */
/* Manual pages (roff) and bash completion, made from the verbs' own tables at build time. */
#ifndef HUSK_RUNTIME_CLI_DOC_H
#define HUSK_RUNTIME_CLI_DOC_H

#include <stdio.h>

#include "cli.h"

/* `husk __doc man-pages | man PAGE | bash WALK`: the names of the manual pages, one page as
 * roff, or the bash completion script (its tables, then the file WALK), on stdout. */
int cli_doc_main(const struct cli_program *p, int argc, char **argv);

/* For a verb's own sections of its page (struct verb's man_sections); text is plain (escaped
 * here). An item is a tag in bold, a note after it, and a paragraph under it. */
void man_section(FILE *out, const char *title);
void man_paragraph(FILE *out, const char *text);
void man_item(FILE *out, const char *tag, const char *note, const char *text);
void man_example(FILE *out, const char *title, const char *text);

/* The bash completion script (cli-complete.c): 0, or 1 when WALK cannot be read. */
int cli_complete_bash(FILE *out, const struct cli_program *p, const char *walk);

#endif
