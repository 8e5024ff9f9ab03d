/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seccomp user notification: system calls of a sandbox handed to a supervisor, which answers
 * them in the sandbox's place (Linux >= 5.0; installing fds >= 5.9). The engine's side: a
 * filter that notifies chosen calls, loaded last before execve and stacked on the process's own
 * filters (sbx_spawn_opts.notify_filter), its listener fd handed back through the spawn protocol
 * (sbx_child.notify_fd), and helpers for a supervisor that watches that fd in its event loop.
 *
 * What a supervisor reads of a notification (the arguments, the caller's memory, its fds) may
 * change under it: another thread of the caller can rewrite the memory or swap the fd right
 * after the read. A decision therefore only ever gives the caller what it could have been given
 * anyway, never grants anything because of what was read, and is made on a notification still
 * alive (the helpers that read check sbx_notify_alive after reading). See docs/notify.md.
 */
#ifndef HUSK_NOTIFY_H
#define HUSK_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "husk/error.h"
#include "husk/sandbox.h"

/* One notification: a system call waiting for its answer. */
struct sbx_notify_req {
    uint64_t id;
    pid_t pid; /* the calling thread, as the supervisor's pid namespace sees it */
    int nr;    /* the system call number (native architecture) */
    uint64_t args[6];
};

/*
 * A filter that returns SECCOMP_RET_USER_NOTIF for the native system calls nrs[] and allows
 * everything else (the process's other filters still apply: the kernel takes the strictest
 * answer of all). Calls of another architecture (x32, i386) pass untouched, so a notification
 * is a service to the program, never a boundary. The calls must not be ones the engine itself
 * makes between loading the filters and execve. out->bpf is allocated; the caller frees it.
 */
int sbx_notify_filter(const int *nrs, size_t n, struct sbx_seccomp *out, struct husk_error **err);

/* The next notification: 0, -ENOENT when its caller went away meanwhile (a fatal signal), or
 * -errno. Call it once per readable event: it does not block then. */
int sbx_notify_recv(int fd, struct sbx_notify_req *req);
/* The notification still waits for its answer: the caller is blocked in that very call (so its
 * pid was not reused). */
bool sbx_notify_alive(int fd, uint64_t id);
/* Answer the call: it returns val, or fails with `error` (an errno) when error is not 0. */
int sbx_notify_return(int fd, uint64_t id, int64_t val, int error);
/* Let the kernel run the call as asked. Only for calls the supervisor merely watches: what the
 * caller passed may have changed since it was read. */
int sbx_notify_continue(int fd, uint64_t id);
/* Put our src_fd into the caller's fd table at number target_fd (replacing what is there, as
 * dup2 does), close-on-exec when asked; the call still waits for its answer. */
int sbx_notify_setfd(int fd, uint64_t id, int src_fd, int target_fd, bool cloexec);
/* Read len bytes at addr of the caller's memory (process_vm_readv), then check the notification
 * is still alive: -ESRCH when it is not, -EFAULT for memory it does not have. */
int sbx_notify_read(int fd, const struct sbx_notify_req *req, uint64_t addr, void *buf, size_t len);
/* A copy (CLOEXEC) of the caller's file descriptor target_fd (pidfd_getfd, Linux >= 5.6), taken
 * while the notification is alive: the fd, or -errno. */
int sbx_notify_getfd(int fd, const struct sbx_notify_req *req, int target_fd);

#endif
