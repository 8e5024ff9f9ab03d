/* SPDX-License-Identifier: Apache-2.0 */
/* `husk spec`: the default config.json, runc's shape with Docker-strength defaults. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "oci.h"
#include "util.h"

static const char default_spec[] =
    "{"
    "\"ociVersion\": \"" OCI_VERSION "\","
    "\"process\": {"
    "  \"terminal\": false,"
    "  \"user\": {\"uid\": 0, \"gid\": 0},"
    "  \"args\": [\"sh\"],"
    "  \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
    "            \"TERM=xterm\"],"
    "  \"cwd\": \"/\","
    "  \"capabilities\": {"
    "    \"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
    "    \"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
    "    \"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
    "    \"ambient\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]"
    "  },"
    "  \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],"
    "  \"noNewPrivileges\": true"
    "},"
    "\"root\": {\"path\": \"rootfs\", \"readonly\": true},"
    "\"hostname\": \"husk\","
    "\"mounts\": ["
    "  {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\","
    "   \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},"
    "  {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
    "   \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},"
    "  {\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\","
    "   \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\","
    "                 \"gid=5\"]},"
    "  {\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\","
    "   \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"]},"
    "  {\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\","
    "   \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},"
    "  {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\","
    "   \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]},"
    "  {\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": \"cgroup\","
    "   \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", \"ro\"]}"
    "],"
    "\"linux\": {"
    "  \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"}]},"
    "  \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"},"
    "                   {\"type\": \"uts\"}, {\"type\": \"mount\"}, {\"type\": \"cgroup\"}],"
    "  \"maskedPaths\": [\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\","
    "    \"/proc/latency_stats\", \"/proc/timer_list\", \"/proc/timer_stats\","
    "    \"/proc/sched_debug\", \"/sys/firmware\", \"/sys/devices/virtual/powercap\","
    "    \"/proc/scsi\"],"
    "  \"readonlyPaths\": [\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\","
    "    \"/proc/sysrq-trigger\"]"
    "}"
    "}";

/* runc's rootless edits: a user namespace mapping us to root, no network namespace of its
 * own, /sys bound from the host, and no devpts gid the map cannot express. */
static void
make_rootless(json_t *spec)
{
    json_t *linux_ = json_object_get(spec, "linux");
    json_t *ns = json_object_get(linux_, "namespaces");
    size_t i;
    json_t *e;

    for (i = 0; i < json_array_size(ns); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(ns, i), "type"));
        if (t && strcmp(t, "network") == 0)
            json_array_remove(ns, i--);
    }
    json_array_append_new(ns, json_pack("{s:s}", "type", "user"));
    json_object_set_new(
        linux_, "uidMappings",
        json_pack("[{s:i, s:i, s:i}]", "containerID", 0, "hostID", (int)geteuid(), "size", 1));
    json_object_set_new(
        linux_, "gidMappings",
        json_pack("[{s:i, s:i, s:i}]", "containerID", 0, "hostID", (int)getegid(), "size", 1));
    json_object_del(linux_, "resources");
    json_t *mounts = json_object_get(spec, "mounts");
    for (i = 0; i < json_array_size(mounts); i++) {
        e = json_array_get(mounts, i);
        const char *dst = json_string_value(json_object_get(e, "destination"));
        /* A user namespace cannot mount cgroupfs; the /sys bind below carries it, read-only. */
        if (strcmp(dst, "/sys/fs/cgroup") == 0) {
            json_array_remove(mounts, i--);
            continue;
        }
        if (strcmp(dst, "/sys") == 0) {
            json_object_set_new(e, "type", json_string("none"));
            json_object_set_new(e, "source", json_string("/sys"));
            json_object_set_new(
                e, "options", json_pack("[s,s,s,s,s]", "rbind", "nosuid", "noexec", "nodev", "ro"));
        } else if (strcmp(dst, "/dev/pts") == 0) {
            json_object_set_new(e, "options",
                                json_pack("[s,s,s,s,s]", "nosuid", "noexec", "newinstance",
                                          "ptmxmode=0666", "mode=0620"));
        }
    }
}

json_t *
oci_spec_default(bool rootless)
{
    json_error_t je;
    json_t *spec = json_loads(default_spec, 0, &je);
    if (spec == NULL)
        abort(); /* the literal above is part of the program */
    json_object_set_new(json_object_get(spec, "linux"), "seccomp", oci_seccomp_default());
    if (rootless)
        make_rootless(spec);
    return spec;
}
