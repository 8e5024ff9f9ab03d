/* SPDX-License-Identifier: Apache-2.0 */
/* `husk features`: what this runtime implements, in the runtime spec's features format. */
#define _GNU_SOURCE
#include "oci.h"
#include "util.h"

json_t *
oci_features(void)
{
    json_t *mount_opts = json_array();
    static const char *const opts[] = {
        "async",         "atime",      "bind",       "defaults",  "dev",
        "diratime",      "dirsync",    "exec",       "iversion",  "lazytime",
        "loud",          "mand",       "noatime",    "nodev",     "nodiratime",
        "noexec",        "noiversion", "nolazytime", "nomand",    "norelatime",
        "nostrictatime", "nosuid",     "private",    "rbind",     "relatime",
        "remount",       "ro",         "rprivate",   "rshared",   "rslave",
        "runbindable",   "rw",         "shared",     "silent",    "slave",
        "strictatime",   "suid",       "sync",       "tmpcopyup", "unbindable"};
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
        json_array_append_new(mount_opts, json_string(opts[i]));

    json_t *ns = json_array();
    for (int t = 0; t < SBX_NS_COUNT; t++)
        json_array_append_new(ns, json_string(sbx_ns_name(t)));

    return json_pack("{s:s, s:s, s:[], s:o, s:{s:o, s:{s:b, s:b, s:b, s:b}, s:{s:b}, s:{s:b}, "
                     "s:{s:b}}, s:{}}",
                     "ociVersionMin", "1.0.0", "ociVersionMax", OCI_VERSION, "hooks",
                     "mountOptions", mount_opts, "linux", "namespaces", ns, "cgroup", "v1", 0, "v2",
                     0, "systemd", 0, "systemdUser", 0, "seccomp", "enabled", 0, "apparmor",
                     "enabled", 0, "selinux", "enabled", 0, "annotations");
}
