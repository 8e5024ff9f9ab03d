/* SPDX-License-Identifier: Apache-2.0 */
/* Ownership of a sandbox description. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "husk/sandbox.h"
#include "util.h"

static void
strv_free(char **v)
{
    strv_freep(&v);
}

void
sbx_config_free(struct sbx_config *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < SBX_NS_COUNT; i++)
        free(c->ns[i].path);
    free(c->uid_map);
    free(c->gid_map);
    free(c->rootfs);
    free(c->rootfs_image);
    free(c->rootfs_image_type);
    free(c->hostname);
    free(c->domainname);
    for (size_t i = 0; i < c->n_mounts; i++) {
        free(c->mounts[i].destination);
        free(c->mounts[i].type);
        free(c->mounts[i].source);
        free(c->mounts[i].data);
    }
    free(c->mounts);
    for (size_t i = 0; i < c->n_devices; i++)
        free(c->devices[i].path);
    free(c->devices);
    strv_free(c->masked_paths);
    strv_free(c->readonly_paths);
    for (size_t i = 0; i < c->n_sysctl; i++) {
        free(c->sysctl[i].key);
        free(c->sysctl[i].value);
    }
    free(c->sysctl);
    strv_free(c->process.args);
    strv_free(c->process.env);
    free(c->process.cwd);
    free(c->process.groups);
    free(c->process.rlimits);
    free(c->process.seccomp.bpf);
    free(c->process.seccomp.listener_msg);
    free(c->process.seccomp_policy.bpf);
    free(c->process.seccomp_policy.listener_msg);
    for (size_t i = 0; i < c->n_start_hooks; i++) {
        free(c->start_hooks[i].path);
        strv_free(c->start_hooks[i].args);
        strv_free(c->start_hooks[i].env);
    }
    free(c->start_hooks);
    free(c->hook_state[0]);
    free(c->hook_state[1]);
    strv_free(c->process.landlock.read_paths);
    strv_free(c->process.landlock.write_paths);
    free(c->process.landlock.bind_ports);
    free(c->process.landlock.connect_ports);
    free(c);
}
