/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capabilities in the child, without the heap: drop the bounding set while still privileged,
 * keep the permitted set across the uid change, then set the three sets and the ambient set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caps.h"

static int
last_cap(void)
{
    static int cached = -1;
    if (cached < 0) {
        /* PR_CAPBSET_READ fails with EINVAL past the last capability the kernel knows: a binary
         * search takes 6 calls where counting up took 42 (each one a trip into the kernel). */
        int lo = 0, hi = 63; /* capability 0 always exists */
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (prctl(PR_CAPBSET_READ, mid, 0, 0, 0) >= 0)
                lo = mid;
            else
                hi = mid - 1;
        }
        cached = lo;
    }
    return cached;
}

int
sbx_caps_before_setuid(const struct sbx_caps *c)
{
    int last = last_cap();
    for (int cap = 0; cap <= last; cap++) {
        if (c->set && (c->bounding & (1ull << cap)))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return -errno;
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}

int
sbx_caps_after_setuid(const struct sbx_caps *c)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{0}};
    uint64_t eff = c->set ? c->effective : 0, perm = c->set ? c->permitted : 0;
    uint64_t inh = c->set ? c->inheritable : 0;

    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(eff >> (32 * i));
        data[i].permitted = (uint32_t)(perm >> (32 * i));
        data[i].inheritable = (uint32_t)(inh >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    int last = last_cap();
    for (int cap = 0; c->set && cap <= last; cap++) {
        if (!(c->ambient & (1ull << cap)))
            continue;
        /* The kernel needs the cap in permitted and inheritable; the spec says to skip quietly. */
        if (!(perm & inh & (1ull << cap)))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return -errno;
    }
    return 0;
}
