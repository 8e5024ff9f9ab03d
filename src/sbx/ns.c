/* SPDX-License-Identifier: Apache-2.0 */
/* Namespace types: their OCI names, /proc names and clone flags; loopback in a new netns. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "child.h"
#include "husk/sandbox.h"
#include "syscalls.h"
#include "util.h"

static const struct {
    const char *oci, *proc;
    int flag;
} ns_table[SBX_NS_COUNT] = {
    [SBX_NS_USER] = {"user", "user", CLONE_NEWUSER},
    [SBX_NS_MNT] = {"mount", "mnt", CLONE_NEWNS},
    [SBX_NS_PID] = {"pid", "pid", CLONE_NEWPID},
    [SBX_NS_NET] = {"network", "net", CLONE_NEWNET},
    [SBX_NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [SBX_NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},
    [SBX_NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP},
    [SBX_NS_TIME] = {"time", "time", CLONE_NEWTIME},
};

const char *
sbx_ns_name(enum sbx_ns_type t)
{
    return t < SBX_NS_COUNT ? ns_table[t].oci : "unknown";
}

const char *
sbx_ns_proc_name(enum sbx_ns_type t)
{
    return t < SBX_NS_COUNT ? ns_table[t].proc : "unknown";
}

int
sbx_ns_from_name(const char *name)
{
    for (int i = 0; i < SBX_NS_COUNT; i++)
        if (strcmp(name, ns_table[i].oci) == 0)
            return i;
    return -1;
}

int
sbx_ns_clone_flag(enum sbx_ns_type t)
{
    return t < SBX_NS_COUNT ? ns_table[t].flag : 0;
}

int
child_loopback_up(void)
{
    struct ifreq ifr = {.ifr_name = "lo"};
    cleanup_fd int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        return -errno;
    if (ifr.ifr_flags & IFF_UP)
        return 0;
    ifr.ifr_flags |= IFF_UP;
    return ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}
