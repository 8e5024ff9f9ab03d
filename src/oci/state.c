/* SPDX-License-Identifier: Apache-2.0 */
/* state.json in a container's state directory, and the state the runtime spec defines. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "json-get.h"
#include "oci.h"
#include "util.h"

int
oci_state_save(int dirfd, const struct oci_state *s, struct husk_error **err)
{
    json_t *ann = s->annotations ? json_incref(s->annotations) : json_object();
    cleanup_json json_t *j = json_pack(
        "{s:s, s:i, s:I, s:s, s:s, s:s, s:s, s:o}", "id", s->id, "pid", (int)s->pid, "start_time",
        (json_int_t)s->start_time, "bundle", s->bundle, "rootfs", s->rootfs ? s->rootfs : "",
        "created", s->created, "owner", s->owner ? s->owner : "", "annotations", ann);
    if (j == NULL)
        return husk_err(err, EINVAL, "encode state of '%s'", s->id);
    if (s->cgroup_path)
        json_object_set_new(
            j, "cgroup", json_pack("{s:s, s:i}", "path", s->cgroup_path, "owned", s->cgroup_owned));
    cleanup_free char *text = json_dumps(j, JSON_COMPACT);
    int r = write_file_atomic(dirfd, OCI_STATE_FILE, text, strlen(text));
    if (r < 0)
        return husk_err(err, -r, "write state of '%s'", s->id);
    return 0;
}

/* "cgroup": {"path": "/husk/ID", "owned": N}, absent when the container has no cgroup. */
static int
load_cgroup(const struct jctx *c, json_t *j, struct oci_state *s, struct husk_error **err)
{
    json_t *cg = NULL;
    int64_t owned = 0;
    int r = jget_object(c, j, "cgroup", "cgroup", false, &cg, err);
    if (r <= 0)
        return r;
    if ((r = jget_string(c, cg, "path", "cgroup.path", true, &s->cgroup_path, err)) < 0 ||
        (r = jget_int(c, cg, "owned", "cgroup.owned", false, 0, 4096, &owned, err)) < 0)
        return r;
    s->cgroup_owned = (int)owned;
    return 0;
}

int
oci_state_load(int dirfd, const char *id, struct oci_state **out, struct husk_error **err)
{
    cleanup_free char *text = NULL;
    json_error_t je;
    int r = read_file_at(dirfd, OCI_STATE_FILE, &text, NULL);
    if (r < 0)
        return husk_err(err, -r, "read state of container '%s'", id);
    cleanup_json json_t *j = json_loads(text, 0, &je);
    if (j == NULL)
        return husk_err(err, 0, "state of container '%s' is corrupt: %s", id, je.text);

    struct jctx c = {.file = OCI_STATE_FILE};
    cleanup_(oci_state_freep) struct oci_state *s = xcalloc(1, sizeof(*s));
    int64_t pid = 0, st = 0;
    json_t *ann = NULL;
    if ((r = jget_string(&c, j, "id", "id", true, &s->id, err)) < 0 ||
        (r = jget_int(&c, j, "pid", "pid", true, 0, INT32_MAX, &pid, err)) < 0 ||
        (r = jget_int(&c, j, "start_time", "start_time", true, 0, INT64_MAX, &st, err)) < 0 ||
        (r = jget_string(&c, j, "bundle", "bundle", true, &s->bundle, err)) < 0 ||
        (r = jget_string(&c, j, "rootfs", "rootfs", false, &s->rootfs, err)) < 0 ||
        (r = jget_string(&c, j, "created", "created", true, &s->created, err)) < 0 ||
        (r = jget_string(&c, j, "owner", "owner", false, &s->owner, err)) < 0 ||
        (r = jget_object(&c, j, "annotations", "annotations", false, &ann, err)) < 0 ||
        (r = load_cgroup(&c, j, s, err)) < 0)
        return husk_err_prefix(err, "container '%s': ", id);
    s->pid = (pid_t)pid;
    s->start_time = (unsigned long long)st;
    s->annotations = ann ? json_incref(ann) : json_object();
    *out = steal_ptr(&s);
    return 0;
}

void
oci_state_free(struct oci_state *s)
{
    if (s == NULL)
        return;
    free(s->id);
    free(s->bundle);
    free(s->rootfs);
    free(s->created);
    free(s->owner);
    free(s->cgroup_path);
    if (s->annotations)
        json_decref(s->annotations);
    free(s);
}

void
oci_state_freep(struct oci_state **s)
{
    oci_state_free(*s);
    *s = NULL;
}

json_t *
oci_state_json(const struct oci_state *s, const char *status)
{
    bool stopped = strcmp(status, "stopped") == 0;
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "ociVersion", OCI_VERSION,
                          "id", s->id, "status", status, "pid", stopped ? 0 : (int)s->pid, "bundle",
                          s->bundle, "rootfs", s->rootfs ? s->rootfs : "", "created", s->created,
                          "owner", s->owner ? s->owner : "");
    if (s->annotations && json_object_size(s->annotations))
        json_object_set(j, "annotations", s->annotations);
    return j;
}
