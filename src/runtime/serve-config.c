/* SPDX-License-Identifier: Apache-2.0 */
/*
 * husk serve's settings from outside its command line: a configuration file (--config), whose
 * keys are the flags' names with '_' for '-' (flags given on the command line win), and
 * listening sockets handed over by a service manager (LISTEN_FDS, systemd's socket activation).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve-config.h"
#include "util.h"

/* The line a key first appears on, for messages (0 when not found). */
static int
key_line(const char *text, const char *key)
{
    cleanup_free char *quoted = xasprintf("\"%s\"", key);
    const char *at = strstr(text, quoted);
    if (at == NULL)
        return 0;
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

static const struct flag *
flag_for_key(const struct flag *flags, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        const char *a = flags[i].name, *b = key;
        while (*a && (*a == *b || (*a == '-' && *b == '_')))
            a++, b++;
        if (*a == '\0' && *b == '\0')
            return &flags[i];
    }
    return NULL;
}

const char *const serve_config_types[] = {
    [FLAG_BOOL] = "true or false",
    [FLAG_STRING] = "a string",
    [FLAG_INT] = "an integer",
    [FLAG_STRINGS] = "a list of strings",
};

/* One key's value into opts, as its flag would take it. */
static int
set_key(const struct flag *f, void *opts, json_t *v)
{
    char num[32];
    size_t i;
    json_t *item;
    switch (f->type) {
    case FLAG_BOOL:
        return json_is_boolean(v) ? cli_set_flag(f, opts, json_is_true(v) ? "true" : "false")
                                  : -EINVAL;
    case FLAG_STRING:
        return json_is_string(v) ? cli_set_flag(f, opts, json_string_value(v)) : -EINVAL;
    case FLAG_INT:
        if (!json_is_integer(v))
            return -EINVAL;
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return cli_set_flag(f, opts, num);
    case FLAG_STRINGS:
        if (!json_is_array(v))
            return -EINVAL;
        json_array_foreach(v, i, item)
        {
            if (!json_is_string(item))
                return -EINVAL;
            cli_set_flag(f, opts, json_string_value(item));
        }
        return 0;
    }
    return -EINVAL;
}

bool
serve_config_is_key(const struct flag *f)
{
    return strcmp(f->name, "config") != 0 && strcmp(f->name, "check-config") != 0;
}

int
serve_config_load(const char *path, const struct flag *flags, size_t n_flags, void *opts,
                  struct serve_config *out, struct husk_error **err)
{
    cleanup_free char *text = NULL;
    size_t len;
    int r = read_file_at(AT_FDCWD, path, &text, &len);
    if (r < 0)
        return husk_err(err, -r, "--config '%s'", path);
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (root == NULL)
        return husk_err(err, 0, "--config '%s': line %d column %d: %s", path, je.line, je.column,
                        je.text);
    out->root = root; /* the values' strings live as long as it does */
    if (!json_is_object(root))
        return husk_err(err, 0, "--config '%s': must be a JSON object of settings", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "log_format") == 0) {
            const char *fmt = json_string_value(v);
            if (fmt == NULL || (strcmp(fmt, "text") && strcmp(fmt, "json")))
                return husk_err(err, 0,
                                "--config '%s' line %d: key 'log_format': expected "
                                "\"text\" or \"json\"",
                                path, key_line(text, key));
            out->log_json = strcmp(fmt, "json") == 0;
            continue;
        }
        const struct flag *f = flag_for_key(flags, n_flags, key);
        if (f == NULL || !serve_config_is_key(f))
            return husk_err(err, 0, "--config '%s' line %d: unknown setting '%s'", path,
                            key_line(text, key), key);
        if (set_key(f, opts, v) < 0)
            return husk_err(err, 0, "--config '%s' line %d: key '%s': expected %s", path,
                            key_line(text, key), key, serve_config_types[f->type]);
    }
    return 0;
}

void
serve_config_free(struct serve_config *c)
{
    json_decref(c->root);
    c->root = NULL;
}

/* sd_listen_fds(3)'s protocol: LISTEN_PID is us, LISTEN_FDS sockets from fd 3, named by
 * LISTEN_FDNAMES (':'-separated). The one named "admin" is the admin socket; the other, the
 * front door. */
int
serve_listen_fds(int *listen_fd, int *admin_fd, struct husk_error **err)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    uint64_t p = 0, n = 0;
    *listen_fd = *admin_fd = -1;
    if (pid == NULL || fds == NULL || parse_u64(pid, &p) < 0 || p != (uint64_t)getpid())
        return 0;
    if (parse_u64(fds, &n) < 0 || n == 0 || n > 2)
        return husk_err(err, 0,
                        "socket activation: LISTEN_FDS=%s: expected 1 or 2 sockets (the "
                        "front door, and one named \"admin\")",
                        fds);
    cleanup_free char *list = xstrdup(names ? names : "");
    char *save = NULL, *name = strtok_r(list, ":", &save);
    for (int fd = 3; fd < 3 + (int)n; fd++, name = name ? strtok_r(NULL, ":", &save) : NULL) {
        int *slot = name && strcmp(name, "admin") == 0 ? admin_fd : listen_fd;
        if (*slot >= 0)
            return husk_err(err, 0,
                            "socket activation: two sockets for %s; name the admin "
                            "socket \"admin\" (FileDescriptorName=admin)",
                            slot == admin_fd ? "the admin API" : "the front door");
        *slot = fd;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return 0;
}
