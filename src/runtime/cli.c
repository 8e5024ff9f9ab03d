/* SPDX-License-Identifier: Apache-2.0 */
/* Flag parsing from tables, logging at the boundary, container id rules. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "util.h"

static void
print_usage(const struct verb *verb, const struct flag *flags, size_t n)
{
    printf("usage: husk %s %s\n\n%s\n", verb->name, verb->usage, verb->summary);
    if (n)
        printf("\noptions:\n");
    for (size_t i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof(left), "%s%c%s--%s%s", flags[i].short_name ? "-" : "",
                 flags[i].short_name ? flags[i].short_name : ' ', flags[i].short_name ? ", " : "",
                 flags[i].name, flags[i].type == FLAG_BOOL ? "" : " VALUE");
        printf("  %-30s %s\n", left + (flags[i].short_name ? 0 : 1), flags[i].help);
    }
}

static const struct flag *
find_flag(const struct flag *flags, size_t n, const char *name, size_t len, char short_name)
{
    for (size_t i = 0; i < n; i++) {
        if (short_name && flags[i].short_name == short_name)
            return &flags[i];
        if (!short_name && strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    }
    return NULL;
}

int
cli_set_flag(const struct flag *f, void *opts, const char *value)
{
    char *field = (char *)opts + f->offset;
    switch (f->type) {
    case FLAG_BOOL:
        if (value == NULL || strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *(bool *)field = true;
        else if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *(bool *)field = false;
        else
            return -EINVAL;
        return 0;
    case FLAG_STRING:
        *(const char **)field = value;
        return 0;
    case FLAG_INT: {
        int64_t v;
        if (parse_i64(value, &v) < 0 || v < INT_MIN || v > INT_MAX)
            return -EINVAL;
        *(int *)field = (int)v;
        return 0;
    }
    case FLAG_STRINGS: {
        struct strlist *l = (struct strlist *)field;
        l->v = xrealloc(l->v, (l->n + 2) * sizeof(char *));
        l->v[l->n++] = (char *)value;
        l->v[l->n] = NULL;
        return 0;
    }
    }
    return -EINVAL;
}

int
cli_parse_flags(const struct verb *verb, const struct flag *flags, size_t n_flags, void *opts,
                int argc, char **argv)
{
    int i;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            return i + 1;
        if (a[0] != '-' || a[1] == '\0')
            return i;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (verb->name[0]) /* the global flags' caller prints husk's own usage */
                print_usage(verb, flags, n_flags);
            return -2;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag *f = find_flag(flags, n_flags, name, len, 0);
        if (f == NULL && a[1] != '-' && len == 1)
            f = find_flag(flags, n_flags, NULL, 0, name[0]);
        if (f == NULL) {
            fprintf(stderr, "husk %s: unknown flag '%s'\n", verb->name, a);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL && f->type != FLAG_BOOL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "husk %s: flag '%s' needs a value\n", verb->name, a);
                return -1;
            }
            value = argv[++i];
        }
        if (cli_set_flag(f, opts, value) < 0) {
            fprintf(stderr, "husk %s: flag '%s': invalid value '%s'\n", verb->name, a, value);
            return -1;
        }
    }
    return i;
}

void
cli_rfc3339_now(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%09ldZ", ts.tv_nsec);
}

void
cli_log(struct cli *cli, const char *level, const char *fmt, ...)
{
    cleanup_free char *msg = NULL;
    char when[64];
    va_list ap;

    if (strcmp(level, "debug") == 0 && !cli->debug)
        return;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    bool is_error = strcmp(level, "error") == 0;
    if (strcmp(level, "debug") != 0 || cli->log_fd < 0)
        fprintf(stderr, "husk: %s%s%s\n", is_error ? "" : level, is_error ? "" : ": ", msg);
    if (cli->log_fd < 0)
        return;
    cli_rfc3339_now(when, sizeof(when));
    cleanup_free char *line = NULL;
    if (cli->log_json) {
        json_t *j = json_pack("{s:s, s:s, s:s}", "level", level, "msg", msg, "time", when);
        cleanup_free char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        line = xasprintf("%s\n", text);
    } else {
        line = xasprintf("time=\"%s\" level=%s msg=\"%s\"\n", when, level, msg);
    }
    write_all(cli->log_fd, line, strlen(line));
}

int
cli_fail(struct cli *cli, struct husk_error *err)
{
    cleanup_free char *s = husk_error_string(err);
    cli_log(cli, "error", "%s", s);
    husk_error_free(err);
    return 1;
}

int
cli_check_id(const char *id, struct husk_error **err)
{
    if (id == NULL || *id == '\0')
        return husk_err(err, 0, "container id is required");
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0 || strlen(id) > 1024)
        return husk_err(err, 0, "invalid container id '%s'", id);
    for (const char *p = id; *p; p++)
        if (!(*p == '_' || *p == '+' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return husk_err(err, 0, "invalid container id '%s': only [A-Za-z0-9_+.-] allowed", id);
    return 0;
}
