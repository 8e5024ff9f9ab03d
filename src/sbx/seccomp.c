/* SPDX-License-Identifier: Apache-2.0 */
/* Load a compiled seccomp filter (compiled by the caller, e.g. from OCI JSON with libseccomp). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"

int
sbx_seccomp_load(const struct sbx_seccomp *s)
{
    struct sock_fprog prog = {
        .len = (unsigned short)(s->len / sizeof(struct sock_filter)),
        .filter = s->bpf,
    };
    if (s->bpf == NULL)
        return 0;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->flags, &prog) < 0)
        return -errno;
    return 0;
}
