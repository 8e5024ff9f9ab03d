/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Zygotes (deploy field "zygote", `husk fn deploy --zygote`): an interpreted function whose
 * instances keep one process of its interpreter with the function's code loaded, forked per
 * call, instead of starting the interpreter for each call.
 *
 * What it takes is one row per interpreter: how its program is recognised, the contracts it
 * serves, and how its command line becomes the zygote's. Python (stdio and CGI) runs husk's
 * zygote.py with `-c`; Node.js (stdio and CGI) runs zygote-node.js with `-e`, V8 single-
 * threaded, and the agent preloads husk's library that forks it (agent/zygote-preload.c). The
 * instance's agent starts the zygote and hands it the runs (agent/zygote.c).
 *
 * The calls stay in the instance's cgroup, with the zygote: its limits are the function's as
 * before (the zygote counts in them), and no cgroup is made per call (CLONE_INTO_CGROUP would
 * only help for one that is, and only with cgroup2 controllers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"
#include "faas-internal.h"
#include "util.h"

extern const char faas_zygote_py_bin[], faas_zygote_py_end[];
extern const char faas_zygote_node_bin[], faas_zygote_node_end[];

struct zygote_kind {
    const char *name;
    bool (*matches)(const char *base); /* the program's file name */
    int (*plan)(struct faas_function *f, struct husk_error **err);
    const struct faas_contract_ops *const contracts[4];
};

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* python, python3, python3.N */
static bool
is_python(const char *base)
{
    if (strcmp(base, "python") == 0 || strcmp(base, "python3") == 0)
        return true;
    if (!str_has_prefix(base, "python3."))
        return false;
    const char *v = base + strlen("python3.");
    return *v && strspn(v, "0123456789") == strlen(v);
}

static bool
is_node(const char *base)
{
    return strcmp(base, "node") == 0 || strcmp(base, "nodejs") == 0;
}

/* Interpreter options that take no value; -X and -W take one. */
static const char PY_FLAGS[] = "bBdEIOqsSuvP";

/* The index of the script in `python3 [OPTIONS] SCRIPT [ARG...]`, or -1 (*bad: the argument
 * that is no script). */
static ssize_t
python_script(char **args, const char **bad)
{
    size_t i = 1;
    for (; args[i] && args[i][0] == '-'; i++) {
        const char *a = args[i];
        if (strcmp(a, "--") == 0)
            return args[i + 1] ? (ssize_t)i + 1 : -1;
        if ((strcmp(a, "-X") == 0 || strcmp(a, "-W") == 0) && args[i + 1]) {
            i++;
            continue;
        }
        if (str_has_prefix(a, "-X") || str_has_prefix(a, "-W"))
            continue;
        if (a[1] == '\0' || strspn(a + 1, PY_FLAGS) != strlen(a + 1)) {
            *bad = a;
            return -1;
        }
    }
    return args[i] ? (ssize_t)i : -1;
}

/* Node options that take the next argument as their value, and those that run something other
 * than a script (--name=value counts as --name). */
static const char *const NODE_VALUED[] = {
    "-r", "--require",    "--import", "--loader", "--experimental-loader",
    "-C", "--conditions", "--title",  NULL};
static const char *const NODE_NO_SCRIPT[] = {
    "-e",      "--eval",       "-p", "--print",   "-i", "--interactive", "-c", "--check", "--test",
    "--watch", "--watch-path", "-v", "--version", "-h", "--help",        NULL};

static bool
option_in(const char *a, const char *const *list)
{
    size_t n = strcspn(a, "=");
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == n && strncmp(a, list[i], n) == 0)
            return true;
    return false;
}

/* The index of the script in `node [OPTIONS] SCRIPT [ARG...]`, or -1 (*bad: the argument that
 * is no script's option). */
static ssize_t
node_script(char **args, const char **bad)
{
    size_t i = 1;
    for (; args[i] && args[i][0] == '-'; i++) {
        const char *a = args[i];
        if (strcmp(a, "--") == 0)
            return args[i + 1] ? (ssize_t)i + 1 : -1;
        if (option_in(a, NODE_NO_SCRIPT) || (a[1] != '-' && !option_in(a, NODE_VALUED))) {
            *bad = a;
            return -1;
        }
        if (option_in(a, NODE_VALUED) && strchr(a, '=') == NULL && args[i + 1])
            i++;
    }
    return args[i] ? (ssize_t)i : -1;
}

/* The agent's argv: the interpreter, agent_arg, the interpreter, extra, its options (a "--"
 * before the script dropped), flag CODE, the script and its arguments. */
static void
rewrite(struct sbx_process *p, size_t script, const char *agent_arg, const char *extra,
        const char *flag, const char *code, const char *code_end)
{
    size_t n = strv_len(p->args), k = 0;
    char **v = xcalloc(n + 7, sizeof(char *));
    v[k++] = xstrdup(p->args[0]);
    v[k++] = xstrdup(agent_arg);
    v[k++] = xstrdup(p->args[0]);
    if (extra)
        v[k++] = xstrdup(extra);
    for (size_t i = 1; i < script; i++)
        if (i + 1 < script || strcmp(p->args[i], "--") != 0)
            v[k++] = xstrdup(p->args[i]);
    v[k++] = xstrdup(flag);
    v[k++] = xstrndup(code, (size_t)(code_end - code));
    for (size_t i = script; i < n; i++)
        v[k++] = xstrdup(p->args[i]);
    strv_freep(&p->args);
    p->args = v;
}

static int
no_script(const struct sbx_process *p, const char *bad, struct husk_error **err)
{
    return husk_err(err, 0,
                    "field 'zygote': %s%s%sthe zygote runs a script: the command must be "
                    "%s [OPTIONS] SCRIPT [ARG...]",
                    bad ? "'" : "", bad ? bad : "", bad ? "' is not supported: " : "", p->args[0]);
}

static int
plan_python(struct faas_function *f, struct husk_error **err)
{
    struct sbx_process *p = &f->cfg->sbx->process;
    const char *bad = NULL;
    ssize_t script = python_script(p->args, &bad);
    if (script < 0)
        return no_script(p, bad, err);
    rewrite(p, (size_t)script, AGENT_ZYGOTE_ARG, NULL, "-c", faas_zygote_py_bin,
            faas_zygote_py_end);
    return 0;
}

static int
plan_node(struct faas_function *f, struct husk_error **err)
{
    struct sbx_process *p = &f->cfg->sbx->process;
    const char *bad = NULL;
    ssize_t script = node_script(p->args, &bad);
    if (script < 0)
        return no_script(p, bad, err);
    rewrite(p, (size_t)script, AGENT_ZYGOTE_PRELOAD_ARG, "--single-threaded", "-e",
            faas_zygote_node_bin, faas_zygote_node_end);
    return 0;
}

static const struct zygote_kind kinds[] = {
    {"Python",
     is_python,
     plan_python,
     {&faas_contract_stdio, &faas_contract_cgi, &faas_contract_http}},
    {"Node.js",
     is_node,
     plan_node,
     {&faas_contract_stdio, &faas_contract_cgi, &faas_contract_http}},
};

static int
refuse_contract(const struct faas_function *f, const struct zygote_kind *k, struct husk_error **err)
{
    struct faas_buf names = {0};
    for (size_t i = 0; k->contracts[i]; i++)
        faas_buf_addf(&names, "%s%s", i ? ", " : "", k->contracts[i]->name);
    faas_buf_add(&names, "", 1);
    int r = husk_err(err, 0,
                     "field 'zygote': a %s function's zygote serves the %s contracts, not %s "
                     "(its runtime is not forked per call)",
                     k->name, names.p, f->contract->name);
    faas_buf_free(&names);
    return r;
}

/* The instances are forks in one sandbox (zygote-fork.c): they share its network, where
 * neither a published socket's handover nor egress per instance applies. */
static int
forks_only(json_t *spec, struct husk_error **err)
{
    json_t *net = json_object_get(spec, "network");
    if (json_object_get(spec, "publish"))
        return husk_err(err, 0,
                        "field 'zygote': not with 'publish' (the function's instances are forks "
                        "in one sandbox; its published socket is handed to each instance by its "
                        "own sandbox)");
    if (net && json_is_string(net) && strcmp(json_string_value(net), "egress") == 0)
        return husk_err(err, 0,
                        "field 'zygote': not with \"network\": \"egress\" (the function's "
                        "instances are forks that share one sandbox's network; egress is set up "
                        "per sandbox)");
    return 0;
}

int
faas_zygote_plan(struct faas_function *f, json_t *spec, struct husk_error **err)
{
    int r;
    json_t *v = json_object_get(spec, "zygote");
    char **args = f->cfg->sbx->process.args;
    if (v && !json_is_boolean(v))
        return husk_err(err, 0, "field 'zygote': must be true or false");
    if (!json_is_true(v)) {
        if (args && args[0] && args[1] &&
            (strcmp(args[1], AGENT_ZYGOTE_ARG) == 0 ||
             strcmp(args[1], AGENT_ZYGOTE_PRELOAD_ARG) == 0))
            return husk_err(err, 0, "field 'command': '%s' as the first argument is husk's",
                            args[1]);
        return 0;
    }
    if (json_object_get(spec, "wasm"))
        return husk_err(err, 0,
                        "field 'zygote': not with 'wasm' (its engine keeps the compiled "
                        "module across calls already)");
    if (args == NULL || args[0] == NULL)
        return husk_err(err, 0, "field 'zygote': the function has no command");
    const char *base = base_name(args[0]);
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        const struct zygote_kind *k = &kinds[i];
        if (!k->matches(base))
            continue;
        bool served = false;
        for (size_t c = 0; k->contracts[c]; c++)
            served |= k->contracts[c] == f->contract;
        if (!served)
            return refuse_contract(f, k, err);
        if ((r = forks_only(spec, err)) < 0)
            return r;
        f->fork_instances = true;
        return k->plan(f, err);
    }
    return husk_err(err, 0,
                    "field 'zygote': the program '%s' is not a Python or Node.js interpreter "
                    "(python3, python3.N, node): only their functions start from a zygote",
                    args[0]);
}
