/* SPDX-License-Identifier: Apache-2.0 */
/* Deploy specs: validated field by field, then turned into a sandbox plan. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faas-internal.h"
#include "image.h"
#include "syscalls.h"
#include "util.h"

/* Every contract: a new one is a file with its ops and a row here. */
static const struct faas_contract_ops *const contracts[] = {
    &faas_contract_stdio,
    &faas_contract_cgi,
    &faas_contract_http,
    &faas_contract_lambda,
};

const struct faas_contract_ops *
faas_contract_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(contracts); i++)
        if (strcmp(contracts[i]->name, name) == 0)
            return contracts[i];
    return NULL;
}

void
faas_function_free(struct faas_function *f)
{
    if (f == NULL)
        return;
    free(f->name);
    free(f->handler);
    free(f->root_path);
    free(f->egress);
    free(f->egress_dns);
    faas_publish_release(f);
    free(f->publish);
    if (f->root_fd >= 0)
        close(f->root_fd);
    if (f->image_mnt >= 0)
        close(f->image_mnt);
    pthread_mutex_destroy(&f->image_lock);
    json_decref(f->spec);
    strv_freep(&f->env);
    oci_config_free(f->cfg);
    free(f);
}

/* The memory size Lambda's environment and REPORT lines name: the limit, or Lambda's default
 * of 128 MB for a function without one. */
int64_t
faas_function_memory_mb(const struct faas_function *f)
{
    return f->memory ? f->memory >> 20 : 128;
}

void
faas_function_freep(struct faas_function **f)
{
    faas_function_free(*f);
}

json_t *
faas_function_json(const struct faas_function *f)
{
    json_t *j = json_deep_copy(f->spec);
    size_t starting = 0, idle = 0, busy = 0;
    faas_pool_counts(f, &starting, &idle, &busy);
    json_object_set_new(j, "version", json_integer(f->version));
    json_object_set_new(j, "instances",
                        json_pack("{s:I, s:I, s:I, s:I}", "starting", (json_int_t)starting, "idle",
                                  (json_int_t)idle, "busy", (json_int_t)busy, "frozen",
                                  (json_int_t)f->n_frozen));
    json_object_set_new(j, "queued", json_integer((json_int_t)f->n_queued));
    faas_publish_json(f, j);
    return j;
}

static bool
valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '.')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* An optional integer field within [lo, hi]; absent keeps *out. */
static int
int_field(json_t *root, const char *key, int64_t lo, int64_t hi, int64_t *out,
          struct husk_error **err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return husk_err(err, 0, "field '%s': must be an integer from %lld to %lld", key,
                        (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

static int
strings_field(json_t *root, const char *key, bool kv, char ***out, struct husk_error **err)
{
    json_t *a = json_object_get(root, key);
    if (a == NULL)
        return 0;
    if (!json_is_array(a) || (!kv && json_array_size(a) == 0))
        return husk_err(err, 0, "field '%s': must be an array of %s", key,
                        kv ? "\"KEY=VALUE\" strings" : "strings, not empty");
    cleanup_strv char **v = xcalloc(json_array_size(a) + 1, sizeof(char *));
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *s = json_string_value(e);
        if (s == NULL || (kv && (strchr(s, '=') == NULL || s[0] == '=')) || (!kv && !*s))
            return husk_err(err, 0, "field '%s[%zu]': must be a %s", key, i,
                            kv ? "\"KEY=VALUE\" string" : "non-empty string");
        v[i] = xstrdup(s);
    }
    *out = steal_ptr(&v);
    return 0;
}

/* The operator's defaults (or maxima, where no default is set) over husk's own. */
static void
operator_defaults(struct faas_function *f, const struct faas_policy *p)
{
    const struct faas_fn_limits *d = &p->defaults, *m = &p->maxima;
    const struct {
        int64_t def, max, *out;
    } ints[] = {{d->timeout, m->timeout, &f->timeout},
                {d->memory, m->memory, &f->memory},
                {d->max_body, m->max_body, &f->max_body},
                {d->max_response, m->max_response, &f->max_response},
                {d->pids, m->pids, &f->pids},
                {d->max, m->max, &f->max}};
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        if (ints[i].def || ints[i].max)
            *ints[i].out = ints[i].def ? ints[i].def : ints[i].max;
    f->cpus = d->cpus ? d->cpus : m->cpus;
}

/* What a deploy may not ask for beyond the operator's maxima (0, "no limit", is beyond any). */
static int
operator_maxima(const struct faas_function *f, const struct faas_policy *p, struct husk_error **err)
{
    const struct faas_fn_limits *m = &p->maxima;
    const struct {
        const char *key, *flag;
        int64_t max, v;
        bool zero_is_unlimited;
    } ints[] = {{"timeout", "--max-fn-timeout", m->timeout, f->timeout, false},
                {"memory", "--max-fn-memory", m->memory, f->memory, true},
                {"max_body", "--max-fn-max-body", m->max_body, f->max_body, false},
                {"max_response", "--max-fn-max-response", m->max_response, f->max_response, false},
                {"pids", "--max-fn-pids", m->pids, f->pids, true},
                {"max", "--max-fn-instances", m->max, f->max, false}};
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        if (ints[i].max && (ints[i].v > ints[i].max || (ints[i].zero_is_unlimited && !ints[i].v)))
            return husk_err(err, 0, "field '%s': %lld is over the daemon's maximum of %lld (%s)",
                            ints[i].key, (long long)ints[i].v, (long long)ints[i].max,
                            ints[i].flag);
    if (m->cpus && (f->cpus > m->cpus || f->cpus == 0))
        return husk_err(err, 0,
                        "field 'cpus': %g is over the daemon's maximum of %g "
                        "(--max-fn-cpus)",
                        f->cpus, m->cpus);
    return 0;
}

static int
limits(json_t *root, struct faas_function *f, const struct faas_policy *p, struct husk_error **err)
{
    json_t *cpus = json_object_get(root, "cpus");
    f->timeout = FAAS_DEFAULT_TIMEOUT;
    f->max_body = FAAS_DEFAULT_MAX_BODY;
    f->max_response = FAAS_DEFAULT_MAX_RESPONSE;
    f->port = FAAS_DEFAULT_PORT;
    f->concurrency = f->contract->default_concurrency;
    f->max = FAAS_DEFAULT_MAX;
    f->idle = FAAS_DEFAULT_IDLE;
    f->init_timeout = FAAS_DEFAULT_INIT;
    operator_defaults(f, p);
    const struct {
        const char *key;
        int64_t lo, hi;
        int64_t *out;
    } ints[] = {
        {"timeout", 1, 3600, &f->timeout},
        {"max_body", 0, 1ll << 30, &f->max_body},
        {"max_response", 1, 1ll << 30, &f->max_response},
        {"memory", 0, 1ll << 40, &f->memory},
        {"pids", 0, 1 << 22, &f->pids},
        {"port", 1, 65535, &f->port},
        {"concurrency", 1, 10000, &f->concurrency},
        {"min", 0, 1000, &f->min},
        {"max", 1, 1000, &f->max},
        {"idle", 1, 86400, &f->idle},
        {"freeze", 0, 86400, &f->freeze},
        {"init_timeout", 1, 600, &f->init_timeout},
        {"queue", 0, 1000000, &f->queue},
    };
    f->queue = -1; /* 10 x concurrency x max unless given */
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
        int r = int_field(root, ints[i].key, ints[i].lo, ints[i].hi, ints[i].out, err);
        if (r < 0)
            return r;
    }
    if (f->queue < 0)
        f->queue = 10 * f->concurrency * f->max;
    if (f->memory != 0 && f->memory < (4 << 20))
        return husk_err(err, 0, "field 'memory': must be 0 (no limit) or at least 4 MiB");
    if (f->min > f->max)
        return husk_err(err, 0, "field 'min': must not be over 'max' (%lld)", (long long)f->max);
    if (cpus && (!json_is_number(cpus) || json_number_value(cpus) < 0 ||
                 (json_number_value(cpus) > 0 && json_number_value(cpus) < 0.01) ||
                 json_number_value(cpus) > 1024))
        return husk_err(err, 0, "field 'cpus': must be 0 (no limit) or a number from 0.01 to 1024");
    if (cpus)
        f->cpus = json_number_value(cpus);
    return operator_maxima(f, p, err);
}

void
faas_add_tmp(struct sbx_config *c)
{
    c->mounts = xrealloc(c->mounts, (c->n_mounts + 1) * sizeof(*c->mounts));
    c->mounts[c->n_mounts++] = (struct sbx_mount){.destination = xstrdup("/tmp"),
                                                  .type = xstrdup("tmpfs"),
                                                  .source = xstrdup("tmpfs"),
                                                  .data = xstrdup("mode=1777,size=64m"),
                                                  .flags = MS_NOSUID | MS_NODEV};
}

/* "image" or "dir": `husk spec`'s defaults, read-only, with a tmpfs on /tmp. */
static int
plan_root(struct faas_function *f, const char *field, const char *path, bool have_command,
          uid_t owner, struct oci_config **out, struct husk_error **err)
{
    bool image = strcmp(field, "image") == 0;
    int r = faas_open_trusted(path, owner, !image, field, &f->root_fd, err);
    if (r < 0)
        return r;
    if (!have_command && f->contract->deploy == NULL) /* a contract may find its own */
        return husk_err(err, 0, "field 'command': required with '%s'", field);
    f->root_is_image = image;
    f->root_path = xstrdup(path);
    const char *type = image ? oci_image_type(f->root_fd) : NULL;
    if (image && type == NULL)
        return husk_err(err, 0, "field 'image': '%s' is neither an erofs nor a squashfs image",
                        path);
    if ((r = oci_config_default(path, out, err)) < 0)
        return r;
    struct sbx_config *c = (*out)->sbx;
    if (image) {
        c->rootfs_image = xasprintf("/proc/self/fd/%d", f->root_fd);
        c->rootfs_image_type = xstrdup(type);
    }
    return 0;
}

/* A bundle: its config.json and root, read through fds checked like any deploy's files. */
static int
plan_bundle(struct faas_function *f, const char *bundle, uid_t owner, struct oci_config **out,
            struct husk_error **err)
{
    cleanup_fd int dir = -1;
    int r = faas_open_trusted(bundle, owner, true, "bundle", &dir, err);
    if (r < 0)
        return r;
    cleanup_free char *file = xasprintf("%s/config.json", bundle);
    cleanup_fd int cfd = openat(dir, "config.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0)
        return husk_err(err, errno, "field 'bundle': '%s'", file);
    if ((r = faas_recheck_trusted(cfd, owner, file, err)) < 0)
        return husk_err_prefix(err, "field 'bundle': ");
    json_error_t je;
    cleanup_json json_t *root = json_loadfd(cfd, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return husk_err(err, 0, "field 'bundle': %s: line %d, column %d: %s", file, je.line,
                        je.column, je.text);
    if ((r = oci_config_parse(root, file, bundle, out, err)) < 0)
        return husk_err_prefix(err, "field 'bundle': ");
    struct sbx_config *c = (*out)->sbx;
    bool image = c->rootfs_image != NULL;
    const char *path = image ? c->rootfs_image : c->rootfs;
    if ((r = faas_open_trusted(path, owner, !image, "bundle", &f->root_fd, err)) < 0)
        return r;
    f->root_is_image = image;
    f->root_path = xstrdup(path);
    if (image) {
        free(c->rootfs_image);
        c->rootfs_image = xasprintf("/proc/self/fd/%d", f->root_fd);
    }
    return 0;
}

/* The default profile is always loaded; a bundle's own profile is stacked on it. */
static int
plan_seccomp(struct oci_config *oc, const char *state_dir, const char *field,
             struct husk_error **err)
{
    cleanup_free char *cache = xasprintf("%s/seccomp-cache", state_dir);
    struct sbx_process *p = &oc->sbx->process;
    cleanup_json json_t *def = oci_seccomp_default();
    bool own = oc->seccomp && !json_equal(oc->seccomp, def);
    int r = oci_seccomp_compile(def, "the default seccomp profile", cache,
                                own ? &p->seccomp_policy : &p->seccomp, err);
    if (r == 0 && own)
        r = oci_seccomp_compile(oc->seccomp, oc->path, cache, &p->seccomp, err);
    return r < 0 ? husk_err_prefix(err, "field '%s': ", field) : 0;
}

/* What would fail every call is the deployer's mistake, found now (image/check.c): a missing
 * program, "#!" interpreter or loader, and files under /tmp, which the function's tmpfs hides.
 * An image is mounted (detached, read-only) to look. */
static int
check_entrypoint(const struct faas_function *f, const char *field, struct husk_error **err)
{
    const struct sbx_config *c = f->cfg->sbx;
    const char *prog = c->process.args ? c->process.args[0] : NULL;
    const char *root_field = !str_has_prefix(field, "command") ? field
                             : f->root_is_image                ? "image"
                                                               : "dir";
    cleanup_fd int image = f->root_is_image ? sbx_rootfs_image_mount(c, err) : -1;
    if (f->root_is_image && image < 0)
        return husk_err_prefix(err, "field '%s': ", root_field);
    int root = f->root_is_image ? image : f->root_fd;
    if (img_check_not_hidden(root, "/tmp", "the function's tmpfs on /tmp", err) < 0)
        return husk_err_prefix(err, "field '%s': ", root_field);
    if (prog && img_check_program(root, prog, c->process.env, err) < 0)
        return husk_err_prefix(err, "field '%s': ", field);
    return 0;
}

/* The sandbox plan: the bundle's config.json, or the defaults for an image or a directory,
 * held to the deploy policy. */
static int
load_config(json_t *root, struct faas_function *f, const struct faas_deploy_ctx *dc,
            struct husk_error **err)
{
    const char *bundle = json_string_value(json_object_get(root, "bundle"));
    const char *image = json_string_value(json_object_get(root, "image"));
    const char *dir = json_string_value(json_object_get(root, "dir"));
    const char *wasm = json_string_value(json_object_get(root, "wasm"));
    const char *field = bundle ? "bundle" : image ? "image" : wasm ? "wasm" : "dir";
    json_t *landlock = json_object_get(root, "landlock");
    int r;
    if (!!bundle + !!image + !!dir + !!wasm != 1)
        return husk_err(err, 0,
                        "field 'bundle': exactly one of 'bundle', 'image', 'dir' or 'wasm' "
                        "(absolute paths) is required");
    if (!wasm && json_object_get(root, "wasm_dirs"))
        return husk_err(err, 0, "field 'wasm_dirs': only with 'wasm'");
    if (landlock && !json_is_boolean(landlock))
        return husk_err(err, 0, "field 'landlock': must be true or false");
    cleanup_strv char **command = NULL;
    if ((r = strings_field(root, "command", false, &command, err)) < 0)
        return r;
    r = wasm ? faas_wasm_plan(f, root, dc, err)
        : bundle
            ? plan_bundle(f, bundle, dc->owner, &f->cfg, err)
            : plan_root(f, field, image ? image : dir, command != NULL, dc->owner, &f->cfg, err);
    if (r < 0)
        return r;
    if (f->cfg->terminal)
        return husk_err(err, 0, "field 'bundle': %s: process.terminal must be false", f->cfg->path);
    bool given = command != NULL;
    if (given) {
        strv_freep(&f->cfg->sbx->process.args);
        f->cfg->sbx->process.args = steal_ptr(&command);
    }
    if (f->contract->deploy && (r = f->contract->deploy(f, root, err)) < 0)
        return r;
    if ((r = check_entrypoint(f, given ? "command" : field, err)) < 0 ||
        (r = faas_zygote_plan(f, root, err)) < 0 ||
        (r = faas_policy_apply(dc->policy, f->cfg, bundle != NULL,
                               landlock == NULL || json_is_true(landlock), err)) < 0)
        return r;
    return plan_seccomp(f->cfg, dc->state_dir, field, err);
}

void
faas_function_set_userns(struct faas_function *f, uint32_t base)
{
    f->userns_base = base;
    faas_policy_idmap(f->cfg->sbx, base);
}

static int
contract_field(json_t *root, struct faas_function *f, struct husk_error **err)
{
    json_t *v = json_object_get(root, "contract");
    f->contract = v ? faas_contract_find(json_is_string(v) ? json_string_value(v) : "")
                    : &faas_contract_stdio;
    if (f->contract)
        return 0;
    struct faas_buf names = {0};
    for (size_t i = 0; i < ARRAY_SIZE(contracts); i++)
        faas_buf_addf(&names, "%s\"%s\"", i ? ", " : "", contracts[i]->name);
    faas_buf_add(&names, "", 1);
    int r = husk_err(err, 0, "field 'contract': unknown contract (supported: %s)", names.p);
    faas_buf_free(&names);
    return r;
}

/* Every field a deploy may carry: a typo is a mistake to name, not a default to take. */
static const char *const deploy_fields[] = {
    "name",        "contract", "bundle",       "image",   "dir",    "command",    "env",
    "timeout",     "max_body", "max_response", "memory",  "cpus",   "pids",       "port",
    "concurrency", "min",      "max",          "idle",    "freeze", "queue",      "init_timeout",
    "landlock",    "handler",  "on_failure",   "network", "egress", "egress_dns", "wasm",
    "wasm_dirs",   "publish",  "publish_mode", "zygote"};

static int
known_fields(json_t *root, struct husk_error **err)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < ARRAY_SIZE(deploy_fields) && !known; i++)
            known = strcmp(key, deploy_fields[i]) == 0;
        /* What `get` adds on the way out may come back in (a copied spec). */
        known |= strcmp(key, "version") == 0 || strcmp(key, "instances") == 0 ||
                 strcmp(key, "queued") == 0 || strcmp(key, "published") == 0;
        if (!known)
            return husk_err(err, 0, "field '%s': unknown field", key);
    }
    return 0;
}

/* Where a failed asynchronous call is reported (Lambda's on-failure destination). */
static int
url_field(json_t *root, const char *key, struct husk_error **err)
{
    json_t *v = json_object_get(root, key);
    const char *url = json_string_value(v);
    if (v == NULL)
        return 0;
    if (url == NULL || (!str_has_prefix(url, "http://") && !str_has_prefix(url, "https://")) ||
        strlen(url) > 2048)
        return husk_err(err, 0, "field '%s': must be an http:// or https:// URL", key);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return husk_err(err, 0, "field '%s': spaces and control characters are not allowed",
                            key);
    return 0;
}

int
faas_function_parse(const char *body, size_t len, const struct faas_deploy_ctx *dc,
                    struct faas_function **out, struct husk_error **err)
{
    json_error_t je;
    int r;
    cleanup_json json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (root == NULL)
        return husk_err(err, 0, "body: malformed JSON at line %d column %d: %s", je.line, je.column,
                        je.text);
    if (!json_is_object(root))
        return husk_err(err, 0, "body: must be a JSON object");
    cleanup_(faas_function_freep) struct faas_function *f = xcalloc(1, sizeof(*f));
    f->root_fd = f->image_mnt = -1;
    pthread_mutex_init(&f->image_lock, NULL);
    f->owner = dc->owner;
    const char *name = json_string_value(json_object_get(root, "name"));
    if (name == NULL || !valid_name(name))
        return husk_err(err, 0, "field 'name': must be 1 to 63 of [A-Za-z0-9_.-]");
    f->name = xstrdup(name);
    if ((r = known_fields(root, err)) < 0 || (r = contract_field(root, f, err)) < 0 ||
        (r = limits(root, f, dc->policy, err)) < 0 ||
        (r = strings_field(root, "env", true, &f->env, err)) < 0 ||
        (r = url_field(root, "on_failure", err)) < 0 || (r = load_config(root, f, dc, err)) < 0 ||
        (r = faas_egress_parse(root, f, dc, err)) < 0 ||
        (r = faas_publish_parse(root, f, dc, err)) < 0)
        return r;
    json_object_del(root, "version");
    json_object_del(root, "instances");
    json_object_del(root, "queued");
    json_object_del(root, "published");
    f->spec = json_incref(root);
    *out = steal_ptr(&f);
    return 0;
}
