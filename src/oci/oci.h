/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI layer: config.json into a sandbox description, state.json, the default spec. */
#ifndef HUSK_OCI_H
#define HUSK_OCI_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "husk/cgroup.h"
#include "husk/error.h"
#include "husk/sandbox.h"

#define OCI_VERSION "1.2.0"

/* linux.cgroupsPath + linux.resources (resources.c). */
struct oci_resources {
    char *cgroups_path; /* as given; NULL: the default (see oci_resources_cgroup_path) */
    struct sbx_cgroup_limits limits;
    /* Limits beyond device rules, or a cgroupsPath: without cgroups the container must not run
     * (rootless hosts skip cgroups with a warning otherwise). */
    bool explicit_;
};

enum oci_hook_kind {
    OCI_HOOK_PRESTART,
    OCI_HOOK_CREATE_RUNTIME,
    OCI_HOOK_CREATE_CONTAINER,
    OCI_HOOK_START_CONTAINER,
    OCI_HOOK_POSTSTART,
    OCI_HOOK_POSTSTOP,
    OCI_HOOK__COUNT
};

const char *oci_hook_name(enum oci_hook_kind k);

struct oci_config {
    struct sbx_config *sbx;
    struct oci_resources *resources; /* NULL when the config has neither */
    char *path;                      /* the config.json read */
    char *bundle;                    /* absolute bundle directory */
    char *oci_version;
    bool terminal;
    json_t *annotations; /* object of strings; never NULL */
    json_t *seccomp;     /* linux.seccomp, compiled by oci_seccomp_compile; may be NULL */
    struct sbx_hook *hooks[OCI_HOOK__COUNT];
    size_t n_hooks[OCI_HOOK__COUNT];
    char **warnings; /* things accepted but not honoured (unknown capabilities, ...) */
};

/* Landlock rules come from annotations (no OCI field exists):
 *   run.husk.landlock.read          colon-separated paths: read and execute beneath
 *   run.husk.landlock.write         colon-separated paths: full access beneath
 *   run.husk.landlock.tcp.bind      comma-separated ports the process may bind (ABI 4+)
 *   run.husk.landlock.tcp.connect   comma-separated ports the process may connect to (ABI 4+)
 * Any of them turns landlock on; everything not listed is denied. */
#define OCI_ANN_LANDLOCK_READ    "run.husk.landlock.read"
#define OCI_ANN_LANDLOCK_WRITE   "run.husk.landlock.write"
#define OCI_ANN_LANDLOCK_BIND    "run.husk.landlock.tcp.bind"
#define OCI_ANN_LANDLOCK_CONNECT "run.husk.landlock.tcp.connect"

/* Networking (src/runtime/ctr-net.c, docs/networking.md); `--network` and `--publish` of
 * create/run write the first two:
 *   run.husk.network            none (loopback only) or bridge
 *   run.husk.publish            comma-separated [HOSTIP:]HOSTPORT:PORT[/tcp|udp] (bridge only)
 *   run.husk.network.bridge     the bridge (default husk0)
 *   run.husk.network.subnet     its IPv4 subnet (default 10.77.0.0/16)
 *   run.husk.egress             comma-separated [!]CIDR[:PORT][/tcp|udp]: the only destinations
 *                               the container's processes may connect or send to */
#define OCI_ANN_NETWORK        "run.husk.network"
#define OCI_ANN_PUBLISH        "run.husk.publish"
#define OCI_ANN_NETWORK_BRIDGE "run.husk.network.bridge"
#define OCI_ANN_NETWORK_SUBNET "run.husk.network.subnet"
#define OCI_ANN_EGRESS         "run.husk.egress"

/* run.husk.rootfs.image: an erofs or squashfs image (a path relative to the bundle, or
 * absolute) mounted read-only on root.path inside the container's mount namespace, with a tmpfs
 * overlay for writes unless root.readonly (rootfs-image.c). Written by `husk pack --image`. */
#define OCI_ANN_ROOTFS_IMAGE "run.husk.rootfs.image"
int oci_rootfs_image_parse(struct oci_config *oc, const char *file, struct husk_error **err);
/* "erofs" or "squashfs" from the superblock of an open image, NULL for neither. */
const char *oci_image_type(int fd);

/* Compile cfg->seccomp into cfg->sbx->process.seccomp, using (and filling) a cache directory
 * of compiled programs keyed by the profile's SHA-256 (cache_dir may be NULL). */
int oci_seccomp_compile(json_t *seccomp, const char *file, const char *cache_dir,
                        struct sbx_seccomp *out, struct husk_error **err);

/* Read BUNDLE/config.json. Errors name the file and the line (syntax) or the field (meaning). */
int oci_config_load(const char *bundle, struct oci_config **out, struct husk_error **err);
/* Read a config file kept elsewhere (the state dir's copy) for a bundle. */
int oci_config_load_file(const char *path, const char *bundle, struct oci_config **out,
                         struct husk_error **err);
/* Parse an already loaded JSON document; path is only for messages. */
int oci_config_parse(json_t *root, const char *path, const char *bundle, struct oci_config **out,
                     struct husk_error **err);
/* The default plan (`husk spec`'s config, with its seccomp profile in ->seccomp) for a root
 * filesystem at an absolute host path. */
int oci_config_default(const char *rootfs, struct oci_config **out, struct husk_error **err);
/* Replace cfg's process with a process object (`exec --process process.json`). */
int oci_process_parse(json_t *proc, const char *file, struct oci_config *oc,
                      struct husk_error **err);
void oci_config_free(struct oci_config *c);
void oci_config_freep(struct oci_config **c);

/* linux.cgroupsPath and linux.resources (resources.c). */
int oci_resources_parse(json_t *linux_, const char *file, struct oci_resources **out,
                        struct husk_error **err);
/* A linux.resources object alone (`update -r FILE`); errors name PREFIX + field. */
int oci_resources_parse_limits(json_t *res, const char *file, const char *prefix,
                               struct sbx_cgroup_limits *l, struct husk_error **err);
/* The container's cgroup: cgroupsPath (a relative one under /husk), or /husk/ID. r may be NULL. */
char *oci_resources_cgroup_path(const struct oci_resources *r, const char *id);
void oci_resources_free(struct oci_resources *r);
void oci_resources_freep(struct oci_resources **r);

/* Mount options: split "ro,nosuid,mode=755" semantics into flags and fs data. */
int oci_mount_options(json_t *options, const char *field, struct sbx_mount *m,
                      struct husk_error **err);

/* The default seccomp profile (seccomp-default.c). */
json_t *oci_seccomp_default(void);

/* `husk spec`: runc's default config, made at least as strict as Docker's. */
json_t *oci_spec_default(bool rootless);

/* What the runtime records about a container in its state directory, in this file. */
#define OCI_STATE_FILE "state.json"
struct oci_state {
    char *id;
    pid_t pid;
    unsigned long long start_time; /* /proc/PID/stat field 22, against pid reuse */
    char *bundle;
    char *rootfs;
    char *created; /* RFC 3339 */
    char *owner;
    json_t *annotations;
    char *cgroup_path; /* the container's cgroup, NULL when it has none (rootless) */
    int cgroup_owned;  /* trailing components of cgroup_path husk created (removed on delete) */
};

int oci_state_save(int dirfd, const struct oci_state *s, struct husk_error **err);
int oci_state_load(int dirfd, const char *id, struct oci_state **out, struct husk_error **err);
void oci_state_free(struct oci_state *s);
void oci_state_freep(struct oci_state **s);
/* The state as the runtime spec defines it, with the given status. */
json_t *oci_state_json(const struct oci_state *s, const char *status);

/* The security modules the host enforces, comma-separated ("capability,landlock,apparmor"):
 * a label for one of them that husk cannot apply must not be dropped silently (lsm.c). */
char *oci_host_lsms(void);
bool oci_lsm_listed(const char *list, const char *name);

/* `husk features`. */
json_t *oci_features(void);

/* jansson (>= 2.9) provides json_decrefp. */
#define cleanup_json __attribute__((cleanup(json_decrefp)))

#endif
