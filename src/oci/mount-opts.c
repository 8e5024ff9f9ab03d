/* SPDX-License-Identifier: Apache-2.0 */
/* OCI mount options: the table of flag names runc accepts; the rest is filesystem data. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mount.h>

#include "json-get.h"
#include "oci.h"
#include "util.h"

enum opt_kind { OPT_SET, OPT_CLEAR, OPT_PROP, OPT_IGNORE };

static const struct {
    const char *name;
    enum opt_kind kind;
    unsigned long flag;
} mount_opts[] = {
    {"defaults", OPT_SET, 0},
    {"ro", OPT_SET, MS_RDONLY},
    {"rw", OPT_CLEAR, MS_RDONLY},
    {"nosuid", OPT_SET, MS_NOSUID},
    {"suid", OPT_CLEAR, MS_NOSUID},
    {"nodev", OPT_SET, MS_NODEV},
    {"dev", OPT_CLEAR, MS_NODEV},
    {"noexec", OPT_SET, MS_NOEXEC},
    {"exec", OPT_CLEAR, MS_NOEXEC},
    {"sync", OPT_SET, MS_SYNCHRONOUS},
    {"async", OPT_CLEAR, MS_SYNCHRONOUS},
    {"dirsync", OPT_SET, MS_DIRSYNC},
    {"remount", OPT_SET, MS_REMOUNT},
    {"mand", OPT_SET, MS_MANDLOCK},
    {"nomand", OPT_CLEAR, MS_MANDLOCK},
    {"atime", OPT_CLEAR, MS_NOATIME},
    {"noatime", OPT_SET, MS_NOATIME},
    {"diratime", OPT_CLEAR, MS_NODIRATIME},
    {"nodiratime", OPT_SET, MS_NODIRATIME},
    {"relatime", OPT_SET, MS_RELATIME},
    {"norelatime", OPT_CLEAR, MS_RELATIME},
    {"strictatime", OPT_SET, MS_STRICTATIME},
    {"nostrictatime", OPT_CLEAR, MS_STRICTATIME},
    {"lazytime", OPT_SET, MS_LAZYTIME},
    {"nolazytime", OPT_CLEAR, MS_LAZYTIME},
    {"iversion", OPT_SET, MS_I_VERSION},
    {"noiversion", OPT_CLEAR, MS_I_VERSION},
    {"silent", OPT_SET, MS_SILENT},
    {"loud", OPT_CLEAR, MS_SILENT},
    {"bind", OPT_SET, MS_BIND},
    {"rbind", OPT_SET, MS_BIND | MS_REC},
    {"private", OPT_PROP, MS_PRIVATE},
    {"rprivate", OPT_PROP, MS_PRIVATE | MS_REC},
    {"shared", OPT_PROP, MS_SHARED},
    {"rshared", OPT_PROP, MS_SHARED | MS_REC},
    {"slave", OPT_PROP, MS_SLAVE},
    {"rslave", OPT_PROP, MS_SLAVE | MS_REC},
    {"unbindable", OPT_PROP, MS_UNBINDABLE},
    {"runbindable", OPT_PROP, MS_UNBINDABLE | MS_REC},
    {"tmpcopyup", OPT_IGNORE, 0}, /* a crun extension, accepted as runc does */
};

int
oci_mount_options(json_t *options, const char *field, struct sbx_mount *m, struct husk_error **err)
{
    size_t i;
    json_t *o;
    char *data = NULL;

    json_array_foreach(options, i, o)
    {
        if (!json_is_string(o)) {
            free(data);
            return husk_err(err, 0, "field '%s[%zu]': expected a string", field, i);
        }
        const char *s = json_string_value(o);
        size_t k;
        for (k = 0; k < ARRAY_SIZE(mount_opts); k++)
            if (strcmp(s, mount_opts[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(mount_opts)) {
            /* Filesystem-specific ("mode=755", "newinstance"): handed to the filesystem. */
            char *d = data ? xasprintf("%s,%s", data, s) : xstrdup(s);
            free(data);
            data = d;
            continue;
        }
        switch (mount_opts[k].kind) {
        case OPT_SET:
            m->flags |= mount_opts[k].flag;
            m->clear &= ~mount_opts[k].flag;
            break;
        case OPT_CLEAR:
            m->flags &= ~mount_opts[k].flag;
            m->clear |= mount_opts[k].flag;
            break;
        case OPT_PROP:
            m->propagation = mount_opts[k].flag;
            break;
        case OPT_IGNORE:
            break;
        }
    }
    free(m->data);
    m->data = data;
    return 0;
}
