/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Versions and aliases, as Lambda has them. Every deploy is an immutable version; NAME calls
 * the latest, NAME@3 (or the Lambda Qualifier 3) version 3, NAME@live the version the alias
 * "live" points to, or, for a share of the calls (a canary), its second version. An older
 * version is loaded from the registry when first called (off the loop) and then served like
 * the latest, with instances of its own, until the function is removed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faas-internal.h"
#include "util.h"

static bool
all_digits(const char *p)
{
    return *p && strspn(p, "0123456789") == strlen(p) && strlen(p) < 18;
}

/* An alias name: a letter, then letters, digits, '-' and '_' (never a version number). */
bool
faas_alias_name_valid(const char *p)
{
    size_t n = strlen(p);
    return n > 0 && n <= 63 && strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", *p) &&
           strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n;
}

static int
alias_cmp(const void *x, const void *y)
{
    const struct faas_alias *a = x, *b = y;
    int r = strcmp(a->fn, b->fn);
    return r ? r : strcmp(a->name, b->name);
}

/* The aliases: a list (to show them) and a tree by function and name (to call through one
 * without a scan). */
struct faas_alias *
faas_alias_find(struct faas_server *s, const char *fn, const char *name)
{
    struct faas_alias probe = {.fn = (char *)fn, .name = (char *)name};
    void **hit = tfind(&probe, &s->alias_index, alias_cmp);
    return hit ? *hit : NULL;
}

void
faas_aliases_index(struct faas_server *s)
{
    for (struct faas_alias *a = s->aliases; a; a = a->next)
        tsearch(a, &s->alias_index, alias_cmp);
}

static void
no_free(void *p)
{
}

void
faas_aliases_free(struct faas_server *s)
{
    tdestroy(s->alias_index, no_free);
    s->alias_index = NULL;
    while (s->aliases) {
        struct faas_alias *a = s->aliases;
        s->aliases = a->next;
        faas_alias_free(a);
    }
}

static void
alias_unlink(struct faas_server *s, struct faas_alias **p)
{
    struct faas_alias *gone = *p;
    *p = gone->next;
    tdelete(gone, &s->alias_index, alias_cmp);
    faas_alias_free(gone);
}

/* The version an alias sends this call to. */
static int64_t
alias_pick(struct faas_server *s, const struct faas_alias *a)
{
    double u = (double)(faas_random(s) >> 11) * 0x1.0p-53;
    return a->version2 && u < a->weight2 ? a->version2 : a->version;
}

static struct faas_function *
pinned_find(struct faas_function *latest, int64_t version)
{
    for (struct faas_function *f = latest->pinned; f; f = f->pinned_next)
        if (f->version == version)
            return f;
    return NULL;
}

/* The latest version takes over the older ones in service (a deploy replaced old). */
void
faas_versions_carry(struct faas_function *old, struct faas_function *latest)
{
    latest->pinned = old->pinned;
    old->pinned = NULL;
}

/* The function is removed, or the daemon stops: its older versions go too. */
void
faas_versions_retire(struct faas_server *s, struct faas_function *latest)
{
    while (latest->pinned) {
        struct faas_function *f = latest->pinned;
        latest->pinned = f->pinned_next;
        faas_pool_retire(s, f);
    }
}

static void
not_found(struct faas_route_ctx *c, const char *msg)
{
    if (c->not_found)
        c->not_found(c, msg);
    else
        faas_respond_error(c, 404, msg);
}

/* ---- an older version, loaded for a call */

struct load {
    faas_resolved_fn cont;
    void (*not_found)(struct faas_route_ctx *c, const char *msg);
    char *rest; /* the call's path after the prefix */
    size_t rest_len;
};

static void
load_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    j->r = faas_registry_version_get(j->s->reg, j->name, j->version, &j->dc, &j->f, &j->err);
}

static void
load_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct load *l = j->data;
    struct faas_route_ctx c;
    bool answer = faas_admin_job_ctx(j, &c);
    c.rest = l->rest;
    c.rest_len = l->rest_len;
    c.not_found = l->not_found;
    struct faas_function *latest = faas_server_find(s, j->name, strlen(j->name));
    struct faas_function *f = latest ? pinned_find(latest, j->version) : NULL;
    if (j->r == 0 && latest && f == NULL) { /* the first to load it: in service from now */
        f = steal_ptr(&j->f);
        f->pinned_next = latest->pinned;
        latest->pinned = f;
        faas_pool_activate(s, f);
    }
    if (answer && f) {
        l->cont(&c, f);
    } else if (answer) {
        cleanup_free char *msg =
            j->err ? husk_error_string(j->err) : xasprintf("function '%s' not found", j->name);
        if (j->r == -ENOENT || latest == NULL)
            not_found(&c, msg);
        else
            faas_respond_error(&c, 500, msg);
    }
    faas_function_free(j->f);
    free(l->rest);
    free(l);
    faas_admin_job_free(j);
}

static void
load(struct faas_route_ctx *c, const char *name, int64_t version, faas_resolved_fn cont)
{
    struct faas_admin_job *j = faas_admin_job(c, load_run, load_done);
    struct load *l = xcalloc(1, sizeof(*l));
    l->cont = cont;
    l->not_found = c->not_found;
    l->rest = xstrndup(c->rest, c->rest_len);
    l->rest_len = c->rest_len;
    j->data = l;
    j->name = xstrdup(name);
    j->version = version;
    j->dc = (struct faas_deploy_ctx){.state_dir = c->s->opts->state_dir, .policy = &c->s->policy};
    j->req = *c->req; /* the call's request waits with the job */
    memset(c->req, 0, sizeof(*c->req));
    faas_work_submit(c->s, &j->work);
}

void
faas_versions_resolve(struct faas_route_ctx *c, const char *name, const char *qualifier,
                      faas_resolved_fn cont)
{
    struct faas_function *latest = faas_server_find(c->s, name, strlen(name));
    if (latest == NULL) {
        cleanup_free char *msg = xasprintf("function '%s' not found", name);
        not_found(c, msg);
        return;
    }
    if (qualifier == NULL || strcmp(qualifier, "$LATEST") == 0) {
        cont(c, latest);
        return;
    }
    struct faas_alias *a = all_digits(qualifier) ? NULL : faas_alias_find(c->s, name, qualifier);
    int64_t v = a ? alias_pick(c->s, a) : all_digits(qualifier) ? atoll(qualifier) : 0;
    struct faas_function *f = v == latest->version ? latest : pinned_find(latest, v);
    if (f) {
        cont(c, f);
    } else if (v < 1 || v > latest->version) {
        cleanup_free char *msg =
            a || all_digits(qualifier)
                ? xasprintf("function '%s' has no version %s", name, qualifier)
                : xasprintf("function '%s' has no version or alias '%s'", name, qualifier);
        not_found(c, msg);
    } else {
        load(c, name, v, cont);
    }
}

/* ---- the admin API: GET .../versions, GET .../aliases, PUT and DELETE .../aliases/ALIAS */

static void
versions_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    j->json = faas_registry_versions(j->s->reg, j->name);
}

static void
versions_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_route_ctx c;
    if (faas_admin_job_ctx(j, &c))
        faas_respond_json(&c, 200, steal_ptr(&j->json));
    faas_admin_job_free(j);
}

void
faas_versions_list(struct faas_route_ctx *c, struct faas_function *latest)
{
    struct faas_admin_job *j = faas_admin_job(c, versions_run, versions_done);
    j->name = xstrdup(latest->name);
    faas_work_submit(c->s, &j->work);
}

static json_t *
alias_json(const struct faas_alias *a)
{
    json_t *j = json_pack("{s:s, s:I}", "name", a->name, "version", (json_int_t)a->version);
    if (a->version2) {
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)a->version2);
        json_object_set_new(j, "weights", json_pack("{s:f}", v, a->weight2));
    }
    return j;
}

void
faas_aliases_list(struct faas_route_ctx *c, struct faas_function *latest)
{
    json_t *arr = json_array();
    for (struct faas_alias *a = c->s->aliases; a; a = a->next)
        if (strcmp(a->fn, latest->name) == 0)
            json_array_append_new(arr, alias_json(a));
    faas_respond_json(c, 200, arr);
}

/* {"version": N, "weights": {"M": 0.1}}: M gets a tenth of the calls (one extra version, as
 * Lambda's routing config allows). */
static int
alias_parse(const struct faas_request *req, struct faas_alias *a, struct husk_error **err)
{
    json_error_t je;
    cleanup_json json_t *j = json_loadb(req->body ? req->body : "", req->body_len, 0, &je);
    json_t *v = json_object_get(j, "version"), *w = json_object_get(j, "weights");
    if (!json_is_object(j))
        return husk_err(err, 0, "body: must be a JSON object {\"version\": N, \"weights\": ...}");
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return husk_err(err, 0, "field 'version': must be a version number");
    a->version = json_integer_value(v);
    if (w && (!json_is_object(w) || json_object_size(w) > 1))
        return husk_err(err, 0, "field 'weights': at most one {\"VERSION\": WEIGHT}");
    const char *key;
    json_t *weight;
    json_object_foreach(w, key, weight)
    {
        double x = json_number_value(weight);
        if (!all_digits(key) || atoll(key) == a->version || atoll(key) < 1)
            return husk_err(err, 0, "field 'weights': '%s' is not another version", key);
        if (!json_is_number(weight) || !(x > 0 && x < 1))
            return husk_err(err, 0,
                            "field 'weights': the weight of version %s must be above 0 and "
                            "below 1 (the alias's own version takes the rest)",
                            key);
        a->version2 = atoll(key);
        a->weight2 = x;
    }
    return 0;
}

static void
alias_put_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_alias *a = j->data;
    int64_t vs[] = {a->version, a->version2};
    j->status = 404;
    for (size_t i = 0; i < ARRAY_SIZE(vs) && j->r == 0; i++) {
        json_t *spec = vs[i] ? faas_registry_version_spec(j->s->reg, a->fn, vs[i]) : NULL;
        if (vs[i] && spec == NULL)
            j->r =
                husk_err(&j->err, 0, "function '%s' has no version %lld", a->fn, (long long)vs[i]);
        json_decref(spec);
    }
    if (j->r == 0) {
        j->status = 500;
        j->r = faas_registry_alias_put(j->s->reg, a, &j->err);
    }
}

static void
alias_put_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_alias *a = j->data;
    struct faas_route_ctx c;
    bool answer = faas_admin_job_ctx(j, &c);
    if (j->r < 0) {
        cleanup_free char *msg = husk_error_string(j->err);
        if (answer)
            faas_respond_error(&c, j->status, msg);
        faas_alias_free(a);
    } else {
        struct faas_alias *old = faas_alias_find(s, a->fn, a->name);
        if (old) { /* in place: the list keeps its order */
            old->version = a->version;
            old->version2 = a->version2;
            old->weight2 = a->weight2;
            faas_alias_free(a);
            a = old;
        } else {
            a->next = s->aliases;
            s->aliases = a;
            tsearch(a, &s->alias_index, alias_cmp);
        }
        faas_server_log(s, "info", "alias '%s' of '%s' now calls version %lld", a->name, a->fn,
                        (long long)a->version);
        if (answer)
            faas_respond_json(&c, 200, alias_json(a));
    }
    faas_admin_job_free(j);
}

void
faas_alias_put(struct faas_route_ctx *c, struct faas_function *latest, const char *alias)
{
    struct husk_error *err = NULL;
    struct faas_alias *a = xcalloc(1, sizeof(*a));
    a->fn = xstrdup(latest->name);
    a->name = xstrdup(alias);
    if (!faas_alias_name_valid(alias))
        husk_err(&err, 0,
                 "alias '%s': must be a letter, then up to 62 of [A-Za-z0-9_-] (not a version "
                 "number)",
                 alias);
    if (err || alias_parse(c->req, a, &err) < 0) {
        cleanup_free char *msg = husk_error_string(err);
        husk_error_free(err);
        faas_alias_free(a);
        faas_respond_error(c, 400, msg);
        return;
    }
    struct faas_admin_job *j = faas_admin_job(c, alias_put_run, alias_put_done);
    j->data = a;
    faas_work_submit(c->s, &j->work);
}

static void
alias_rm_run(struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_alias *a = j->data;
    j->r = faas_registry_alias_delete(j->s->reg, a->fn, a->name, &j->err);
}

static void
alias_rm_done(struct faas_server *s, struct faas_work *w)
{
    struct faas_admin_job *j = container_of(w, struct faas_admin_job, work);
    struct faas_alias *a = j->data;
    struct faas_route_ctx c;
    bool answer = faas_admin_job_ctx(j, &c);
    for (struct faas_alias **p = &s->aliases; j->r >= 0 && *p; p = &(*p)->next)
        if (strcmp((*p)->fn, a->fn) == 0 && strcmp((*p)->name, a->name) == 0) {
            alias_unlink(s, p);
            break;
        }
    if (answer && j->r < 0) {
        cleanup_free char *msg = husk_error_string(j->err);
        faas_respond_error(&c, 500, msg);
    } else if (answer) {
        faas_conn_respond(s, c.conn, 204, c.rid, NULL, "", 0, NULL);
    }
    faas_alias_free(a);
    faas_admin_job_free(j);
}

void
faas_alias_rm(struct faas_route_ctx *c, struct faas_function *latest, const char *alias)
{
    if (faas_alias_find(c->s, latest->name, alias) == NULL) {
        cleanup_free char *msg = xasprintf("function '%s' has no alias '%s'", latest->name, alias);
        faas_respond_error(c, 404, msg);
        return;
    }
    struct faas_alias *a = xcalloc(1, sizeof(*a));
    a->fn = xstrdup(latest->name);
    a->name = xstrdup(alias);
    struct faas_admin_job *j = faas_admin_job(c, alias_rm_run, alias_rm_done);
    j->data = a;
    faas_work_submit(c->s, &j->work);
}

/* A removed function's aliases go with it. */
void
faas_aliases_drop(struct faas_server *s, const char *fn)
{
    for (struct faas_alias **p = &s->aliases; *p;) {
        if (strcmp((*p)->fn, fn) == 0)
            alias_unlink(s, p);
        else
            p = &(*p)->next;
    }
}
