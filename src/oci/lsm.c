/* SPDX-License-Identifier: Apache-2.0 */
/* Which Linux security modules the host enforces, for labels husk cannot apply. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "oci.h"
#include "util.h"

static bool
file_starts_with(const char *path, const char *prefix)
{
    cleanup_free char *text = NULL;
    return read_file_at(AT_FDCWD, path, &text, NULL) == 0 && str_has_prefix(text, prefix);
}

/* securityfs's list (Linux 4.15) when it is mounted; else what /sys shows of each module. */
char *
oci_host_lsms(void)
{
    char *text = NULL;
    if (read_file_at(AT_FDCWD, "/sys/kernel/security/lsm", &text, NULL) == 0) {
        text[strcspn(text, "\n")] = '\0';
        return text;
    }
    bool apparmor = file_starts_with("/sys/module/apparmor/parameters/enabled", "Y");
    bool selinux = access("/sys/fs/selinux/enforce", F_OK) == 0;
    return xasprintf("%s%s%s", apparmor ? "apparmor" : "", apparmor && selinux ? "," : "",
                     selinux ? "selinux" : "");
}

bool
oci_lsm_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0)
            return true;
        p += k + (p[k] == ',');
    }
    return false;
}
