/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the daemon's deploy request (POST /functions), read by faas_function_parse
 * as the daemon does. "@BUNDLE@", "@DIR@" and "@IMAGE@" in an input become a bundle, a root
 * directory and a file the fuzzer made, so that inputs reach past the paths. What is accepted
 * has its limits in range, a sandbox plan of its own pid and network namespaces, and no
 * terminal; what is refused names the field or the body.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faas-internal.h"
#include "fuzz.h"
#include "util.h"

static const char *dir; /* fuzz_scratch_dir() */
static char *state, *bundle, *root, *image;
static void
put(const char *path, const char *text)
{
    cleanup_fd int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
        abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    dir = fuzz_scratch_dir();
    state = xasprintf("%s/state", dir);
    bundle = xasprintf("%s/bundle", dir);
    root = xasprintf("%s/bundle/rootfs", dir);
    image = xasprintf("%s/rootfs.erofs", dir);
    cleanup_free char *bin = xasprintf("%s/bin", root);
    cleanup_free char *sh = xasprintf("%s/sh", bin);
    cleanup_free char *config = xasprintf("%s/config.json", bundle);
    if (mkdir(state, 0700) < 0 || mkdir(bundle, 0755) < 0 || mkdir(root, 0755) < 0 ||
        mkdir(bin, 0755) < 0)
        abort();
    put(sh, "#!/bin/sh\n");
    put(image, "not an image");
    cleanup_json json_t *spec = oci_spec_default(false);
    json_object_set_new(json_object_get(spec, "process"), "terminal", json_false());
    json_object_set_new(json_object_get(spec, "root"), "path", json_string("rootfs"));
    if (json_dump_file(spec, config, 0) < 0)
        abort();
    return 0;
}

/* The input with the placeholders replaced. */
static char *
expand(const uint8_t *data, size_t size, size_t *len)
{
    static const char *const names[] = {"@BUNDLE@", "@DIR@", "@IMAGE@"};
    const char *values[] = {bundle, root, image};
    char *out = xmalloc(size * 8 + 1);
    size_t o = 0;
    for (size_t i = 0; i < size;) {
        size_t k;
        for (k = 0; k < ARRAY_SIZE(names); k++)
            if (size - i >= strlen(names[k]) && memcmp(data + i, names[k], strlen(names[k])) == 0)
                break;
        if (k == ARRAY_SIZE(names)) {
            out[o++] = (char)data[i++];
            continue;
        }
        size_t n = strlen(values[k]);
        if (o + n > size * 8)
            break;
        memcpy(out + o, values[k], n);
        o += n;
        i += strlen(names[k]);
    }
    out[o] = '\0';
    *len = o;
    return out;
}

static void
check_function(const struct faas_function *f)
{
    size_t n = strlen(f->name);
    fuzz_check(n >= 1 && n <= 63 && f->name[0] != '.');
    fuzz_check(
        strspn(f->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n);
    fuzz_check(f->timeout >= 1 && f->timeout <= 3600);
    fuzz_check(f->max_body >= 0 && f->max_body <= (1ll << 30));
    fuzz_check(f->memory == 0 || (f->memory >= (4 << 20) && f->memory <= (1ll << 40)));
    fuzz_check(f->min >= 0 && f->min <= f->max && f->max <= 1000);
    fuzz_check(f->concurrency >= 1 && f->port >= 1 && f->port <= 65535);
    fuzz_check(f->cpus == 0 || (f->cpus >= 0.01 && f->cpus <= 1024));
    fuzz_check(f->queue >= 0 && f->queue <= 1000000);
    for (char **e = f->env; e && *e; e++)
        fuzz_check(strchr(*e, '=') != NULL && (*e)[0] != '=');
    const struct sbx_config *s = f->cfg ? f->cfg->sbx : NULL;
    fuzz_check(s != NULL && !f->cfg->terminal);
    fuzz_check(s->process.args && s->process.args[0] && s->process.args[0][0]);
    fuzz_check(s->ns[SBX_NS_PID].enabled && s->ns[SBX_NS_PID].path == NULL);
    fuzz_check(s->ns[SBX_NS_NET].enabled && s->ns[SBX_NS_NET].path == NULL);
    fuzz_check(json_is_object(f->spec) && !json_object_get(f->spec, "version") &&
               !json_object_get(f->spec, "instances"));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct faas_function *f = NULL;
    struct husk_error *err = NULL;
    size_t len;
    fuzz_set_input(data, size);
    cleanup_free char *body = expand(data, size, &len);
    struct faas_policy policy = {.userns_base = 1u << 30, .userns_slots = 16};
    struct faas_deploy_ctx dc = {.state_dir = state, .policy = &policy};
    if (faas_function_parse(body, len, &dc, &f, &err) == 0) {
        fuzz_count(0); /* requests accepted */
        fuzz_check(err == NULL);
        check_function(f);
        faas_function_free(f);
    } else {
        fuzz_count(1); /* refused */
        fuzz_check(f == NULL && err != NULL);
        /* A deployer's mistake names the field, or says the body is not an object. */
        fuzz_check(str_has_prefix(err->msg, "field '") || str_has_prefix(err->msg, "body"));
        if (getenv("HUSK_FUZZ_DEBUG"))
            fprintf(stderr, "refused: %s\n", err->msg);
        husk_error_free(err);
    }
    fuzz_set_input(NULL, 0);
    return 0;
}

/* clang-format off */
static const char *const words[] = {
    "name", "fn", "contract", "stdio", "cgi", "http", "lambda", "bundle", "image", "dir",
    "@BUNDLE@", "@DIR@", "@IMAGE@", "command", "/bin/sh", "sh", "-c", "env", "A=b", "=b", "timeout",
    "max_body", "memory", "pids", "port", "concurrency", "min", "max", "idle", "init_timeout",
    "queue", "cpus", "version", "instances", "queued", "4194304", "4194303", "0.01", "0.001",
    "1024", "/", "/nonexistent", "relative/path",
};
/* clang-format on */
static const char grammar[] = "{}[]\",:\\ 0-.@";

const struct fuzz_target fuzz_target = {
    .name = "deploy",
    .counted = {"requests accepted", "refused"},
    .tokens = words,
    .n_tokens = ARRAY_SIZE(words),
    .bytes = grammar,
    .n_bytes = sizeof(grammar) - 1,
    .iterations = 10000,
    .max_input = 1 << 16,
    .mutate = fuzz_json_mutate,
    .mutate_share = 3,
};
