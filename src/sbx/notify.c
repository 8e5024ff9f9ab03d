/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seccomp user notification (husk/notify.h): the filter, its loading in the child, and the
 * supervisor's helpers, as raw ioctls on the listener fd (libseccomp 2.5 has no addfd, and the
 * filter is a handful of instructions the child loads without a heap).
 *
 * The filter, for the native architecture only:
 *
 *     A = arch; if (A != NATIVE) return ALLOW;
 *     A = nr; [x86_64: if (A >= X32_BIT) return ALLOW;]
 *     if (A == NR_0) return USER_NOTIF; ... if (A == NR_n) return USER_NOTIF;
 *     return ALLOW;
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "caps.h"
#include "husk/notify.h"
#include "sync.h"
#include "syscalls.h"
#include "tty.h"
#include "util.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH AUDIT_ARCH_RISCV64
#endif

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5) /* Linux 5.19 */
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9: a pidfd of a thread that is not the leader */
#endif
#define X32_SYSCALL_BIT 0x40000000u
#define MAX_NOTIFIED    32

int
sbx_notify_filter(const int *nrs, size_t n, struct sbx_seccomp *out, struct husk_error **err)
{
#ifndef NATIVE_ARCH
    return husk_err(err, ENOSYS, "seccomp notification: no filter for this architecture");
#else
    if (n == 0 || n > MAX_NOTIFIED)
        return husk_err(err, EINVAL, "seccomp notification: 1 to %d system calls", MAX_NOTIFIED);
    struct sock_filter *p = xcalloc(n + 7, sizeof(*p));
    size_t k = 0;
    p[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    p[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
    p[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    p[k++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    /* x32 calls share the numbers' low bits: they go to the other filters alone. */
    p[k++] =
        (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, (uint8_t)n, 0);
#endif
    for (size_t i = 0; i < n; i++) /* to the USER_NOTIF after the ALLOW below */
        p[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nrs[i],
                                              (uint8_t)(n - i), 0);
    p[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    p[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    *out = (struct sbx_seccomp){.bpf = p,
                                .len = k * sizeof(*p),
                                .flags = SECCOMP_FILTER_FLAG_NEW_LISTENER |
                                         SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV};
    return 0;
#endif
}

/* In the child, no heap: load the filter and send its listener on sock (SBX_MSG_NOTIFY). A
 * kernel before 5.19 takes it without the killable wait (a signal then restarts the call). */
int
sbx_notify_load(const struct sbx_seccomp *s, int sock)
{
    struct sock_fprog prog = {.len = (unsigned short)(s->len / sizeof(struct sock_filter)),
                              .filter = s->bpf};
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->flags, &prog);
    if (fd < 0 && errno == EINVAL && (s->flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV))
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                     s->flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
    if (fd < 0)
        return -errno;
    int r = sbx_send_fd(sock, (int)fd, NULL, SBX_MSG_NOTIFY);
    close((int)fd); /* the supervisor's alone: nothing under the filter may hold it */
    return r;
}

int
sbx_notify_recv(int fd, struct sbx_notify_req *req)
{
    struct seccomp_notif n;
    memset(&n, 0, sizeof(n)); /* the kernel refuses a request that is not zeroed */
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
        return -errno;
    *req = (struct sbx_notify_req){.id = n.id, .pid = (pid_t)n.pid, .nr = n.data.nr};
    memcpy(req->args, n.data.args, sizeof(req->args));
    return 0;
}

bool
sbx_notify_alive(int fd, uint64_t id)
{
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

static int
respond(int fd, struct seccomp_notif_resp *r)
{
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, r) < 0 ? -errno : 0;
}

int
sbx_notify_return(int fd, uint64_t id, int64_t val, int error)
{
    struct seccomp_notif_resp r = {.id = id, .val = error ? 0 : val, .error = -error};
    return respond(fd, &r);
}

int
sbx_notify_continue(int fd, uint64_t id)
{
    struct seccomp_notif_resp r = {.id = id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
    return respond(fd, &r);
}

int
sbx_notify_setfd(int fd, uint64_t id, int src_fd, int target_fd, bool cloexec)
{
    struct seccomp_notif_addfd a = {.id = id,
                                    .flags = SECCOMP_ADDFD_FLAG_SETFD,
                                    .srcfd = (uint32_t)src_fd,
                                    .newfd = (uint32_t)target_fd,
                                    .newfd_flags = cloexec ? O_CLOEXEC : 0};
    return ioctl(fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a) < 0 ? -errno : 0;
}

int
sbx_notify_read(int fd, const struct sbx_notify_req *req, uint64_t addr, void *buf, size_t len)
{
    struct iovec local = {.iov_base = buf, .iov_len = len};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
    ssize_t n = process_vm_readv(req->pid, &local, 1, &remote, 1, 0);
    if (n < 0 && errno != EFAULT)
        return -errno;
    /* Alive after the read: the pid was the caller's all along, not a reused one. */
    if (!sbx_notify_alive(fd, req->id))
        return -ESRCH;
    return n == (ssize_t)len ? 0 : -EFAULT;
}

int
sbx_notify_getfd(int fd, const struct sbx_notify_req *req, int target_fd)
{
    cleanup_fd int pidfd = sys_pidfd_open(req->pid, 0);
    if (pidfd < 0 && errno == EINVAL) /* a thread other than the leader */
        pidfd = sys_pidfd_open(req->pid, PIDFD_THREAD);
    if (pidfd < 0)
        return -errno;
    /* The pidfd pins the process from here on: alive now, it is the caller's. */
    if (!sbx_notify_alive(fd, req->id))
        return -ESRCH;
    int r = (int)syscall(SYS_pidfd_getfd, pidfd, target_fd, 0);
    return r < 0 ? -errno : r;
}
