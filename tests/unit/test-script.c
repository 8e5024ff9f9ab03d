/* SPDX-License-Identifier: Apache-2.0 */
/* Scripts: the "#!" line as the kernel reads it, Python import statements, shell commands. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "img-internal.h"
#include "util.h"

static void
test_shebang(void **state)
{
    static const struct {
        const char *text, *interp, *arg;
    } cases[] = {
        {"#!/bin/sh\necho", "/bin/sh", NULL},
        {"#! /usr/bin/env  python3 -u \nx", "/usr/bin/env", "python3 -u"},
        {"#!/bin/bash\r\n", "/bin/bash\r", NULL}, /* as the kernel reads it: "bad interpreter" */
        {"#!/usr/bin/python3", "/usr/bin/python3", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *interp = NULL, *arg = NULL;
        const char *t = cases[i].text;
        assert_int_equal(img_shebang_parse(t, strlen(t), &interp, &arg), 0);
        assert_string_equal(interp, cases[i].interp);
        if (cases[i].arg)
            assert_string_equal(arg, cases[i].arg);
        else
            assert_null(arg);
    }
    char *interp, *arg;
    assert_int_equal(img_shebang_parse("#!\n", 3, &interp, &arg), -ENOEXEC);
    assert_int_equal(img_shebang_parse("\x7f"
                                       "ELF",
                                       4, &interp, &arg),
                     -ENOEXEC);
}

/* The modules a line names, joined with spaces. */
static char *
imports(const char *line)
{
    cleanup_strv char **mods = NULL;
    size_t n = 0;
    img_py_line_imports(line, &mods, &n);
    char *out = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        char *next = xasprintf("%s%s%s", out, i ? " " : "", mods[i]);
        free(out);
        out = next;
    }
    return out;
}

static void
test_python_imports(void **state)
{
    static const struct {
        const char *line, *mods;
    } cases[] = {
        {"import os", "os"},
        {"import a.b as c, d", "a.b d"},
        {"    from x.y import (p, q as r)", "x.y x.y.p x.y.q"},
        {"from . import m", ". .m"},
        {"from ..pkg import z", "..pkg ..pkg.z"},
        {"from json import *", "json"},
        {"x = 1; import y", "y"},
        {"important = 1", ""},
        {"mod = __import__('foo.bar')", "foo.bar"},
        {"importlib.import_module(\"baz\")", "baz"},
        {"import_module(name)", ""},
        {"print('import os')", ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *got = imports(cases[i].line);
        assert_string_equal(got, cases[i].mods);
    }
}

static void
test_shell_commands(void **state)
{
    const char *script = "#!/bin/sh\n"
                         "# rm -rf / is only a comment\n"
                         "set -e\n"
                         "LANG=C sort -u \"$1\" | uniq -c > /tmp/out\n"
                         "x=$(date +%s); echo \"$x\"\n"
                         "if test -f /etc/x; then grep foo /etc/x; fi\n"
                         "for f in a b; do wc -l \"$f\"; done\n"
                         "exec env python3 -c 'print(1)'\n";
    cleanup_strv char **cmds = NULL;
    size_t n = 0;
    assert_int_equal(img_sh_commands(script, &cmds, &n, NULL), 0);
    const char *want[] = {"sort", "uniq", "date", "grep", "wc", "env", "python3"};
    assert_int_equal(n, ARRAY_SIZE(want));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(cmds[i], want[i]);
}

static char *joined(char **v, size_t n);

static char *
sh_commands(const char *script)
{
    cleanup_strv char **cmds = NULL;
    size_t n = 0;
    struct husk_error *err = NULL;
    if (img_sh_commands(script, &cmds, &n, &err) < 0) {
        char *s = husk_error_string(err);
        husk_error_free(err);
        return s;
    }
    return joined(cmds, n);
}

/* Commands inside substitutions, quotes, pipes and here-documents run too. */
static void
test_shell_substitutions(void **state)
{
    static const struct {
        const char *script, *want;
    } cases[] = {
        {"echo \"$(echo abc | tr a-c x-z) $(basename /a/b)\"\n", "tr basename"},
        {"x=`dirname /a/b`; y=\"`head -c1 f` ${z:-$(id -u)}\"\n", "dirname head id"},
        {"a=$(( 1 + (2 * 3) )); seq $a | sed -n 2p | awk '{print $1}'\n", "seq sed awk"},
        {"cat <<EOF | grep x\n$(uname -r) `hostname`\nEOF\nsort f\n",
         "cat grep uname hostname sort"},
        {"cat <<'EOF'\n$(rm -rf /) `reboot`\nEOF\ntac f\n", "cat tac"},
        {"cat <<-END\n\t$(wc -l f)\n\tEND\nnl f\n", "cat wc nl"},
        {"echo '$(not a command)' \"it's $(jq -r .a f)\"\n", "jq"},
        {"f() { ls; }\n( cd /; find . ) && stat x\n", "f ls find stat"},
        {"echo $(date\n", "unterminated $( that starts on line 1"},
        {"ok\necho \"$(date)\nmore", "unterminated double quote (\") that starts on line 2"},
        {"a=`date\n", "unterminated backtick (`) that starts on line 1"},
        {"cat <<EOF\nbody\n", "unterminated here-document that starts on line 2"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *got = sh_commands(cases[i].script);
        assert_string_equal(got, cases[i].want);
    }
}

static char *
joined(char **v, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    char *out = calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        strcat(out, i ? " " : "");
        strcat(out, v[i]);
    }
    return out;
}

/* Literal module names of require/import/export-from, never those in comments or strings. */
static void
test_js_specifiers(void **state)
{
    const char *js = "const a = require('a');\n"
                     "// require('commented')\n"
                     "/* import x from 'block' */\n"
                     "import def, { b } from \"./b.js\";\n"
                     "import './side-effect.mjs';\n"
                     "export * from '@scope/pkg/sub';\n"
                     "const c = await import('c');\n"
                     "const s = \"require('in-a-string')\";\n"
                     "const d = require(name);\n"
                     "obj.require('method-call');\n";
    cleanup_strv char **specs = NULL;
    size_t n = 0;
    img_js_specifiers(js, &specs, &n);
    cleanup_free char *got = joined(specs, n);
    assert_string_equal(got, "a ./b.js ./side-effect.mjs @scope/pkg/sub c");
}

static void
test_perl_modules(void **state)
{
    static const struct {
        const char *line, *mods;
    } cases[] = {
        {"use strict;", "strict.pm"},
        {"  use JSON::PP qw(encode_json);", "JSON/PP.pm"},
        {"use 5.010;", ""},
        {"use v5.36;", ""},
        {"no warnings 'once';", "warnings.pm"},
        {"require File::Temp;", "File/Temp.pm"},
        {"require \"config.pl\";", "config.pl"},
        {"require \"$dir/x.pl\";", ""},
        {"use parent -norequire, 'Foo::Bar';", "parent.pm Foo/Bar.pm"},
        {"use base qw(Exporter Base::Class);", "base.pm Exporter.pm Base/Class.pm"},
        {"my $use = 1;", ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_strv char **mods = NULL;
        size_t n = 0;
        img_perl_line_modules(cases[i].line, &mods, &n);
        cleanup_free char *got = joined(mods, n);
        assert_string_equal(got, cases[i].mods);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shebang),        cmocka_unit_test(test_python_imports),
        cmocka_unit_test(test_shell_commands), cmocka_unit_test(test_shell_substitutions),
        cmocka_unit_test(test_js_specifiers),  cmocka_unit_test(test_perl_modules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
