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

    json_t *hooks = json_array();
    for (int k = 0; k < OCI_HOOK__COUNT; k++)
        json_array_append_new(hooks, json_string(oci_hook_name((enum oci_hook_kind)k)));
    json_t *seccomp =
        json_pack("{s:b, s:[s,s,s,s,s,s,s,s,s], s:[s,s,s,s,s,s,s], s:[s,s,s], s:[s,s,s,s]}",
                  "enabled", 1, "actions", "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                  "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP", "operators", "SCMP_CMP_EQ",
                  "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
                  "SCMP_CMP_NE", "archs", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",
                  "knownFlags", "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    return json_pack("{s:s, s:s, s:o, s:o, s:{s:o, s:{s:b, s:b, s:b, s:b}, s:o, s:{s:b}, "
                     "s:{s:b}}, s:{s:s, s:s, s:s, s:s}}",
                     "ociVersionMin", "1.0.0", "ociVersionMax", OCI_VERSION, "hooks", hooks,
                     "mountOptions", mount_opts, "linux", "namespaces", ns, "cgroup", "v1", 1, "v2",
                     1, "systemd", 0, "systemdUser", 0, "seccomp", seccomp, "apparmor", "enabled",
                     0, "selinux", "enabled", 0, "annotations", OCI_ANN_LANDLOCK_READ,
                     "paths: read and execute beneath", OCI_ANN_LANDLOCK_WRITE,
                     "paths: full access beneath", OCI_ANN_LANDLOCK_BIND,
                     "TCP ports the process may bind", OCI_ANN_LANDLOCK_CONNECT,
                     "TCP ports the process may connect to");
}
