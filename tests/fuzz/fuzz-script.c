/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the scans `husk pack` makes of scripts it packs: shell (with $(...), quotes
 * and here-documents), JavaScript specifiers, Python import lines and Perl module lines. Each
 * either returns names or (shell) refuses with a message; none reads past its input. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "img-internal.h"
#include "util.h"

static void
check_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fuzz_check(v[i] != NULL && v[i][0] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The scanners take NUL-terminated text, as read_fd_all gives it. */
    cleanup_free char *text = xstrndup((const char *)data, size);
    fuzz_set_input(data, size);
    cleanup_strv char **cmds = NULL, **specs = NULL, **mods = NULL, **pl = NULL;
    size_t n = 0, ns = 0, nm = 0, np = 0;
    struct husk_error *err = NULL;
    if (img_sh_commands(text, &cmds, &n, &err) < 0) {
        fuzz_count(1); /* refused */
        cleanup_free char *msg = husk_error_string(err);
        fuzz_check(strstr(msg, "that starts on line") || strstr(msg, "nest too deep"));
        husk_error_free(err);
    } else {
        fuzz_count(0); /* shell scripts scanned */
        fuzz_check(err == NULL);
    }
    img_js_specifiers(text, &specs, &ns);
    check_names(specs, ns);
    img_py_line_imports(text, &mods, &nm);
    check_names(mods, nm);
    img_perl_line_modules(text, &pl, &np);
    check_names(pl, np);
    fuzz_set_input(NULL, 0);
    return 0;
}

/* clang-format off */
static const char *const tokens[] = {
    "$(", "$((", "))", ")", "`", "\"", "'", "${", "}", "<<EOF\n", "<<-EOF\n", "<<'EOF'\n",
    "\nEOF\n", "\tEOF\n", "<<<", "|", "&&", ";", "\n", "\\\n", "#", "case x in a) ;; esac",
    "require('", "import ", " from '", "import(\"", "export * from \"", "//", "/*", "*/",
    "use ", "require ", "no ", "qw(", "use parent ", "::", "from . import ", "__import__('",
};
/* clang-format on */
static const char grammar[] = "$()`\"'{}<>|&;\n\\#-= \t:.";
static const size_t long_runs[] = {64, 4000};

const struct fuzz_target fuzz_target = {
    .name = "script",
    .counted = {"shell scripts scanned", "refused"},
    .tokens = tokens,
    .n_tokens = ARRAY_SIZE(tokens),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .long_runs = long_runs,
    .n_long_runs = ARRAY_SIZE(long_runs),
    .iterations = 20000,
    .max_input = 16384,
};
