/* SPDX-License-Identifier: Apache-2.0 */
/* Deploy specs: validated field by field, then turned into a sandbox plan. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faas-internal.h"
#include "syscalls.h"
#include "util.h"

static const char *const contract_names[] = {
    [FAAS_STDIO] = "stdio", [FAAS_CGI] = "cgi", [FAAS_HTTP] = "http"};

const char *
faas_contract_name(enum faas_contract c)
{
    return contract_names[c];
}

void
faas_function_free(struct faas_function *f)
{
    if (f == NULL)
        return;
    free(f->name);
    json_decref(f->spec);
    strv_freep(&f->env);
    oci_config_free(f->cfg);
    free(f);
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
                        json_pack("{s:I, s:I, s:I}", "starting", (json_int_t)starting, "idle",
                                  (json_int_t)idle, "busy", (json_int_t)busy));
    json_object_set_new(j, "queued", json_integer((json_int_t)f->n_queued));
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

static int
limits(json_t *root, struct faas_function *f, struct husk_error **err)
{
    json_t *cpus = json_object_get(root, "cpus");
    f->timeout = FAAS_DEFAULT_TIMEOUT;
    f->max_body = FAAS_DEFAULT_MAX_BODY;
    f->port = FAAS_DEFAULT_PORT;
    f->concurrency = f->contract == FAAS_HTTP ? 100 : 1;
    f->max = FAAS_DEFAULT_MAX;
    f->idle = FAAS_DEFAULT_IDLE;
    f->init_timeout = FAAS_DEFAULT_INIT;
    if (int_field(root, "timeout", 1, 3600, &f->timeout, err) < 0 ||
        int_field(root, "max_body", 0, 1ll << 30, &f->max_body, err) < 0 ||
        int_field(root, "memory", 0, 1ll << 40, &f->memory, err) < 0 ||
        int_field(root, "pids", 0, 1 << 22, &f->pids, err) < 0 ||
        int_field(root, "port", 1, 65535, &f->port, err) < 0 ||
        int_field(root, "concurrency", 1, 10000, &f->concurrency, err) < 0 ||
        int_field(root, "min", 0, 1000, &f->min, err) < 0 ||
        int_field(root, "max", 1, 1000, &f->max, err) < 0 ||
        int_field(root, "idle", 1, 86400, &f->idle, err) < 0 ||
        int_field(root, "init_timeout", 1, 600, &f->init_timeout, err) < 0)
        return -EINVAL;
    f->queue = 10 * f->concurrency * f->max;
    if (int_field(root, "queue", 0, 1000000, &f->queue, err) < 0)
        return -EINVAL;
    if (f->memory != 0 && f->memory < (4 << 20))
        return husk_err(err, 0, "field 'memory': must be 0 (no limit) or at least 4 MiB");
    if (f->min > f->max)
        return husk_err(err, 0, "field 'min': must not be over 'max' (%lld)", (long long)f->max);
    if (cpus && (!json_is_number(cpus) || json_number_value(cpus) < 0 ||
                 (json_number_value(cpus) > 0 && json_number_value(cpus) < 0.01) ||
                 json_number_value(cpus) > 1024))
        return husk_err(err, 0, "field 'cpus': must be 0 (no limit) or a number from 0.01 to 1024");
    f->cpus = cpus ? json_number_value(cpus) : 0;
    return 0;
}

/* For "image" and "dir": `husk spec`'s defaults, read-only, with a tmpfs on /tmp. */
static json_t *
generated_config(json_t *root, const char *state_dir, struct husk_error **err)
{
    const char *image = json_string_value(json_object_get(root, "image"));
    const char *dir = json_string_value(json_object_get(root, "dir"));
    const char *field = image ? "image" : "dir";
    const char *path = image ? image : dir;
    struct stat st;
    if (path[0] != '/')
        return husk_err(err, 0, "field '%s': must be an absolute path", field), NULL;
    if (stat(path, &st) < 0)
        return husk_err(err, errno, "field '%s': '%s'", field, path), NULL;
    if (image ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
        return husk_err(err, 0, "field '%s': '%s' is not a %s", field, path,
                        image ? "file (an erofs or squashfs image)" : "directory"),
               NULL;
    if (!json_is_array(json_object_get(root, "command")))
        return husk_err(err, 0, "field 'command': required with '%s'", field), NULL;
    json_t *spec = oci_spec_default(false);
    json_t *r = json_object_get(spec, "root");
    json_t *mounts = json_object_get(spec, "mounts");
    if (image) {
        cleanup_free char *empty = xasprintf("%s/image-root", state_dir);
        mkdir(empty, 0755);
        json_object_set_new(r, "path", json_string(empty));
        json_t *ann = json_object_get(spec, "annotations");
        if (!json_is_object(ann))
            json_object_set_new(spec, "annotations", ann = json_object());
        json_object_set_new(ann, OCI_ANN_ROOTFS_IMAGE, json_string(image));
    } else {
        json_object_set_new(r, "path", json_string(dir));
    }
    json_object_set_new(r, "readonly", json_true());
    json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s,s,s,s]}", "destination", "/tmp",
                                            "type", "tmpfs", "source", "tmpfs", "options", "nosuid",
                                            "nodev", "mode=1777", "size=64m"));
    return spec;
}

/* A missing program is the deployer's mistake, found now for a directory root (an image's
 * content is checked when its first instance starts). */
static int
check_entrypoint(const struct sbx_config *c, const char *field, struct husk_error **err)
{
    const char *prog = c->process.args ? c->process.args[0] : NULL;
    if (prog == NULL || c->rootfs == NULL || c->rootfs_image)
        return 0;
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (char **e = c->process.env; e && *e; e++)
        if (str_has_prefix(*e, "PATH="))
            path = *e + 5;
    cleanup_fd int root = open(c->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_free char *dirs = xstrdup(strchr(prog, '/') ? "" : path);
    if (root < 0)
        return 0; /* the spawn reports it, naming root.path */
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save);; d = strtok_r(NULL, ":", &save)) {
        if (d == NULL && !strchr(prog, '/'))
            break;
        /* Resolved as inside the sandbox: absolute links stay in the root. */
        cleanup_free char *full = xasprintf("%s%s%s", d ? d : "", d ? "/" : "", prog);
        struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
        cleanup_fd int fd = sys_openat2(root, full, &how);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            return 0;
        if (d == NULL)
            break;
    }
    return husk_err(err, ENOENT, "field '%s': the program '%s' is not in the root filesystem",
                    field, prog);
}

/* The sandbox plan: the bundle's config.json, or one made for an image or a directory. */
static int
load_config(json_t *root, struct faas_function *f, const char *state_dir, struct husk_error **err)
{
    cleanup_(oci_config_freep) struct oci_config *cfg = NULL;
    cleanup_free char *cache = xasprintf("%s/seccomp-cache", state_dir);
    const char *bundle = json_string_value(json_object_get(root, "bundle"));
    const char *field = bundle ? "bundle" : json_object_get(root, "image") ? "image" : "dir";
    int sources = !!bundle + !!json_string_value(json_object_get(root, "image")) +
                  !!json_string_value(json_object_get(root, "dir"));
    if (sources != 1)
        return husk_err(err, 0,
                        "field 'bundle': exactly one of 'bundle', 'image' or 'dir' "
                        "(absolute paths) is required");
    if (bundle && bundle[0] != '/')
        return husk_err(err, 0, "field 'bundle': must be an absolute path to an OCI bundle");
    if (bundle && oci_config_load(bundle, &cfg, err) < 0)
        return husk_err_prefix(err, "field 'bundle': ");
    if (!bundle) {
        cleanup_json json_t *spec = generated_config(root, state_dir, err);
        if (spec == NULL || oci_config_parse(spec, field, state_dir, &cfg, err) < 0)
            return husk_err_prefix(err, spec ? "field '%s': " : "", field);
    }
    if (cfg->terminal)
        return husk_err(err, 0, "field 'bundle': %s: process.terminal must be false", cfg->path);
    if (cfg->seccomp &&
        oci_seccomp_compile(cfg->seccomp, cfg->path, cache, &cfg->sbx->process.seccomp, err) < 0)
        return husk_err_prefix(err, "field '%s': ", field);
    char **command = NULL;
    if (strings_field(root, "command", false, &command, err) < 0)
        return -EINVAL;
    if (command) {
        strv_freep(&cfg->sbx->process.args);
        cfg->sbx->process.args = command;
    }
    if (check_entrypoint(cfg->sbx, command ? "command" : field, err) < 0)
        return -EINVAL;
    /* Killing the sandbox's first process must end all of it, and it gets only a loopback. */
    for (enum sbx_ns_type t = SBX_NS_PID; t <= SBX_NS_NET; t++) {
        if (t != SBX_NS_PID && t != SBX_NS_NET)
            continue;
        free(cfg->sbx->ns[t].path);
        cfg->sbx->ns[t].path = NULL;
        cfg->sbx->ns[t].enabled = true;
    }
    f->cfg = steal_ptr(&cfg);
    return 0;
}

static int
contract_field(json_t *root, struct faas_function *f, struct husk_error **err)
{
    json_t *v = json_object_get(root, "contract");
    f->contract = FAAS_STDIO;
    if (v == NULL)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(contract_names); i++)
        if (json_is_string(v) && strcmp(json_string_value(v), contract_names[i]) == 0) {
            f->contract = (enum faas_contract)i;
            return 0;
        }
    return husk_err(err, 0,
                    "field 'contract': unknown contract (supported: \"stdio\", \"cgi\", "
                    "\"http\")");
}

int
faas_function_parse(const char *body, size_t len, const char *state_dir, struct faas_function **out,
                    struct husk_error **err)
{
    json_error_t je;
    cleanup_json json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (root == NULL)
        return husk_err(err, 0, "body: malformed JSON at line %d column %d: %s", je.line, je.column,
                        je.text);
    if (!json_is_object(root))
        return husk_err(err, 0, "body: must be a JSON object");
    cleanup_(faas_function_freep) struct faas_function *f = xcalloc(1, sizeof(*f));
    const char *name = json_string_value(json_object_get(root, "name"));
    if (name == NULL || !valid_name(name))
        return husk_err(err, 0, "field 'name': must be 1 to 63 of [A-Za-z0-9_.-]");
    f->name = xstrdup(name);
    if (contract_field(root, f, err) < 0 || limits(root, f, err) < 0 ||
        strings_field(root, "env", true, &f->env, err) < 0 ||
        load_config(root, f, state_dir, err) < 0)
        return -EINVAL;
    json_object_del(root, "version");
    json_object_del(root, "instances");
    json_object_del(root, "queued");
    f->spec = json_incref(root);
    *out = steal_ptr(&f);
    return 0;
}
