/* SPDX-License-Identifier: Apache-2.0 */
/* bpf(2) without libbpf: loading the small programs husk generates. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf.h"

long
sbx_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int
sbx_bpf_load(enum bpf_prog_type type, enum bpf_attach_type expected, const struct bpf_insn *insns,
             size_t n, const char *what, struct husk_error **err)
{
    static const char license[] = "Apache";
    char log[4096] = "";
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = type;
    a.expected_attach_type = expected;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = (uint32_t)n;
    a.license = (uint64_t)(uintptr_t)license;
    int fd = (int)sbx_bpf(BPF_PROG_LOAD, &a);
    if (fd >= 0)
        return fd;
    int e = errno;
    if (e == EINVAL || e == EACCES) { /* ask again for the verifier's reason */
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = sizeof(log);
        a.log_level = 1;
        fd = (int)sbx_bpf(BPF_PROG_LOAD, &a);
        if (fd >= 0)
            return fd;
        e = errno;
    }
    log[sizeof(log) - 1] = '\0';
    return husk_err(err, e, "load %s (%zu instructions)%s%s", what, n, log[0] ? ": " : "", log);
}
