/* SPDX-License-Identifier: Apache-2.0 */
/* The exec stub (stub/exec-stub.c), embedded: a sealed memfd of it for each spawn. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exec-stub.h"
#include "util.h"

extern const char sbx_exec_stub_bin[], sbx_exec_stub_end[];

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable even under vm.memfd_noexec=1 */
#endif

static int
stub_memfd(void)
{
    int fd = memfd_create("husk-exec-stub", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* before 6.3 */
        fd = memfd_create("husk-exec-stub", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return fd;
}

/*
 * A few kilobytes are written per spawn (no copy of husk): the stub is the only file of ours a
 * container can reach through /proc/PID/exe, and the seals make it unwritable. Above min_fd, so
 * it stays clear of the fds the process inherits; CLOEXEC.
 */
int
sbx_exec_stub_open(int min_fd, struct husk_error **err)
{
    cleanup_fd int fd = stub_memfd();
    size_t len = (size_t)(sbx_exec_stub_end - sbx_exec_stub_bin);
    if (fd < 0 || write_all(fd, sbx_exec_stub_bin, len) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
        return husk_err(err, errno, "prepare the exec stub");
    if (fd >= min_fd)
        return steal_fd(&fd);
    int high = fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
    return high < 0 ? husk_err(err, errno, "prepare the exec stub") : high;
}
