/* SPDX-License-Identifier: Apache-2.0 */
/* `husk list`: the containers under --root, as a table or JSON. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "container.h"
#include "util.h"

struct list_opts {
    const char *format;
    bool quiet;
};

static const struct flag list_flags[] = {
    {"format", 'f', FLAG_STRING, offsetof(struct list_opts, format), "table or json"},
    {"quiet", 'q', FLAG_BOOL, offsetof(struct list_opts, quiet), "print only the ids"},
};

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the container directories, sorted. */
static char **
container_ids(const char *root)
{
    cleanup_dir DIR *d = opendir(root);
    struct dirent *de;
    size_t n = 0;
    char **v = xcalloc(1, sizeof(char *));

    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || de->d_type != DT_DIR)
            continue;
        v = xrealloc(v, (n + 2) * sizeof(char *));
        v[n++] = xstrdup(de->d_name);
        v[n] = NULL;
    }
    qsort(v, n, sizeof(char *), cmp_names);
    return v;
}

static void
print_table(json_t *rows)
{
    static const char *const cols[] = {"id", "pid", "status", "bundle", "created", "owner"};
    static const char *const heads[] = {"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"};
    int width[6];
    size_t i;
    json_t *r;

    for (int k = 0; k < 6; k++)
        width[k] = (int)strlen(heads[k]);
    json_array_foreach(rows, i, r)
    {
        for (int k = 0; k < 6; k++) {
            json_t *v = json_object_get(r, cols[k]);
            int w = json_is_integer(v) ? snprintf(NULL, 0, "%lld", json_integer_value(v))
                                       : (int)strlen(json_string_value(v));
            if (w > width[k])
                width[k] = w;
        }
    }
    for (int k = 0; k < 6; k++)
        printf("%-*s%s", k < 5 ? width[k] + 3 : 0, heads[k], k < 5 ? "" : "\n");
    json_array_foreach(rows, i, r)
    {
        for (int k = 0; k < 6; k++) {
            json_t *v = json_object_get(r, cols[k]);
            char num[32];
            const char *s = json_string_value(v);
            if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%lld", json_integer_value(v));
                s = num;
            }
            printf("%-*s%s", k < 5 ? width[k] + 3 : 0, s, k < 5 ? "" : "\n");
        }
    }
}

static int
cmd_list(struct cli *cli, int argc, char **argv)
{
    const struct verb *v = cli_find_verb("list");
    struct list_opts o = {.format = "table"};
    int i = cli_parse_flags(v, list_flags, ARRAY_SIZE(list_flags), &o, argc, argv);
    if (i < 0)
        return i == -2 ? 0 : 2;
    if (strcmp(o.format, "table") != 0 && strcmp(o.format, "json") != 0) {
        fprintf(stderr, "husk list: --format must be table or json, not '%s'\n", o.format);
        return 2;
    }
    cleanup_strv char **ids = container_ids(cli->root);
    cleanup_json json_t *rows = json_array();
    for (size_t k = 0; ids[k]; k++) {
        struct container *c = NULL;
        struct husk_error *err = NULL;
        if (ctr_open(cli, ids[k], &c, &err) < 0) {
            husk_error_free(err); /* being created or removed right now */
            continue;
        }
        json_array_append_new(rows, oci_state_json(c->state, ctr_status_name(ctr_status(c))));
        ctr_free(c);
    }
    if (o.quiet) {
        size_t k;
        json_t *r;
        json_array_foreach(rows, k, r) printf("%s\n", json_string_value(json_object_get(r, "id")));
    } else if (strcmp(o.format, "json") == 0) {
        cleanup_free char *text = json_dumps(rows, JSON_COMPACT);
        printf("%s\n", text);
    } else {
        print_table(rows);
    }
    return 0;
}

const struct verb verb_list = {
    .name = "list",
    .usage = "[--format table|json] [--quiet]",
    .summary = "List containers.",
    .run = cmd_list,
    .flags = list_flags,
    .n_flags = ARRAY_SIZE(list_flags),
};
