/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Landlock: allow-list the container's file system (and TCP ports on ABI 4+). Debian 12's
 * headers stop at ABI 2, so the newer constants are defined here. No heap: runs in the child.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"
#include "husk/sandbox.h"

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#define HUSK_LANDLOCK_ACCESS_FS_TRUNCATE     (1ULL << 14) /* ABI 3, Linux 6.2 */
#define HUSK_LANDLOCK_ACCESS_FS_IOCTL_DEV    (1ULL << 15) /* ABI 5, Linux 6.10 */
#define HUSK_LANDLOCK_ACCESS_NET_BIND_TCP    (1ULL << 0)  /* ABI 4, Linux 6.7 */
#define HUSK_LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#define HUSK_LANDLOCK_RULE_NET_PORT          2
#define HUSK_LANDLOCK_SCOPE_ABSTRACT_UNIX    (1ULL << 0) /* ABI 6, Linux 6.12 */
#define HUSK_LANDLOCK_SCOPE_SIGNAL           (1ULL << 1)

struct husk_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};

struct husk_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
} __attribute__((packed));

#define FS_READ                                                                                    \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_FILE_ONLY                                                                               \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     HUSK_LANDLOCK_ACCESS_FS_TRUNCATE | HUSK_LANDLOCK_ACCESS_FS_IOCTL_DEV)

int
sbx_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

static uint64_t
fs_rights(int abi)
{
    uint64_t all = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
    if (abi >= 2)
        all |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        all |= HUSK_LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        all |= HUSK_LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return all;
}

static int
add_path(int ruleset, const char *path, uint64_t access, uint64_t handled)
{
    struct stat st;
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno; /* a missing path grants nothing */
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
        access &= FS_FILE_ONLY;
    struct landlock_path_beneath_attr attr = {.allowed_access = access & handled, .parent_fd = fd};
    long r = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

static int
add_ports(int ruleset, const uint16_t *ports, size_t n, uint64_t access)
{
    for (size_t i = 0; i < n; i++) {
        struct husk_net_port_attr attr = {.allowed_access = access, .port = ports[i]};
        if (syscall(SYS_landlock_add_rule, ruleset, HUSK_LANDLOCK_RULE_NET_PORT, &attr, 0) < 0)
            return -errno;
    }
    return 0;
}

int
sbx_landlock_apply(const struct sbx_landlock *l, int *abi_out)
{
    int abi = sbx_landlock_abi();
    *abi_out = abi;
    if (!l->enabled)
        return 0;
    if (abi < 1)
        return 1; /* no landlock in this kernel: the caller warned when it planned the sandbox */
    struct husk_ruleset_attr attr = {.handled_access_fs = fs_rights(abi)};
    size_t size = sizeof(uint64_t);
    if (abi >= 4 && l->restrict_net) {
        attr.handled_access_net =
            HUSK_LANDLOCK_ACCESS_NET_BIND_TCP | HUSK_LANDLOCK_ACCESS_NET_CONNECT_TCP;
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6 && l->scoped) {
        attr.scoped = HUSK_LANDLOCK_SCOPE_ABSTRACT_UNIX | HUSK_LANDLOCK_SCOPE_SIGNAL;
        size = sizeof(attr);
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0)
        return -errno;
    int r = 0;
    for (size_t i = 0; r == 0 && l->read_paths && l->read_paths[i]; i++)
        r = add_path(rs, l->read_paths[i], FS_READ, attr.handled_access_fs);
    for (size_t i = 0; r == 0 && l->write_paths && l->write_paths[i]; i++)
        r = add_path(rs, l->write_paths[i], attr.handled_access_fs, attr.handled_access_fs);
    if (r == 0 && attr.handled_access_net) {
        r = add_ports(rs, l->bind_ports, l->n_bind_ports, HUSK_LANDLOCK_ACCESS_NET_BIND_TCP);
        if (r == 0)
            r = add_ports(rs, l->connect_ports, l->n_connect_ports,
                          HUSK_LANDLOCK_ACCESS_NET_CONNECT_TCP);
    }
    if (r == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
        r = -errno;
    close(rs);
    return r;
}
