/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The trace supervisor, run inside the trace sandbox: the command runs under a seccomp filter
 * that turns open, openat, openat2, execve and execveat into user notifications. For each, we
 * read the path from the caller's memory, make it absolute (its cwd or dirfd from /proc), record
 * it, and let the call continue unchanged (SECCOMP_USER_NOTIF_FLAG_CONTINUE, Linux 5.5).
 *
 * CONTINUE is not a security check (the caller can change the path after we read it); it does
 * not need to be: the sandbox around us is the boundary, this is bookkeeping. Every thread and
 * child inherits the filter, so nothing the command starts escapes the record.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "img-internal.h"
#include "util.h"

enum arg_layout { PATH_ARG0, DIRFD_PATH_FLAGS, DIRFD_PATH_HOW, EXEC_ARG0, EXEC_DIRFD };

static const struct {
    const char *name;
    enum arg_layout layout;
} traced[] = {
    {"open", PATH_ARG0},   {"openat", DIRFD_PATH_FLAGS}, {"openat2", DIRFD_PATH_HOW},
    {"execve", EXEC_ARG0}, {"execveat", EXEC_DIRFD},
};

static void
seccomp_releasep(scmp_filter_ctx *c)
{
    if (*c)
        seccomp_release(*c);
}

/* In the child, before exec: install the filter and hand its listener to the parent. */
static int
install_filter(int sock)
{
    cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL || seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW) < 0)
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_SIZE(traced); i++) {
        int nr = seccomp_syscall_resolve_name(traced[i].name);
        if (nr != __NR_SCMP_ERROR && seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0) < 0)
            return -EINVAL;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    int r = seccomp_load(ctx);
    if (r < 0)
        return r;
    int nfd = seccomp_notify_fd(ctx);
    if (nfd < 0)
        return nfd;
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &nfd, sizeof(int));
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -errno;
}

static int
recv_fd(int sock)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/* A NUL-terminated string from the caller's memory; pages may end anywhere, so read in pieces
 * that never cross a page boundary. */
static int
read_string(int mem, uint64_t addr, char *buf, size_t len)
{
    size_t got = 0;
    long page = sysconf(_SC_PAGESIZE);
    while (got < len - 1) {
        uint64_t a = addr + got;
        size_t chunk = (size_t)(page - (long)(a % (uint64_t)page));
        if (chunk > len - 1 - got)
            chunk = len - 1 - got;
        ssize_t n = pread(mem, buf + got, chunk, (off_t)a);
        if (n <= 0)
            return -EFAULT;
        void *nul = memchr(buf + got, '\0', (size_t)n);
        if (nul)
            return 0;
        got += (size_t)n;
    }
    return -ENAMETOOLONG;
}

/* What a relative path is relative to: the cwd, or the directory behind a dirfd. */
static int
base_dir(pid_t pid, int dirfd, char *buf, size_t len)
{
    char link[64];
    if (dirfd == AT_FDCWD)
        snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
    else
        snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, dirfd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static bool
writes(int mem, const struct seccomp_notif *req, enum arg_layout layout)
{
    uint64_t flags = 0;
    if (layout == DIRFD_PATH_FLAGS)
        flags = req->data.args[2];
    else if (layout == PATH_ARG0)
        flags = req->data.args[1];
    else if (layout == DIRFD_PATH_HOW) {
        struct open_how how;
        if (pread(mem, &how, sizeof(how), (off_t)req->data.args[2]) != (ssize_t)sizeof(how))
            return false;
        flags = how.flags;
    } else {
        return false;
    }
    return (flags & O_ACCMODE) == O_WRONLY || (flags & (O_CREAT | O_TRUNC));
}

/* One notification: record its path (reads and execs; writes are the program's output). */
static void
record(int nfd, int out, const struct seccomp_notif *req)
{
    enum arg_layout layout = PATH_ARG0;
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(traced) && !known; i++) {
        if (seccomp_syscall_resolve_name(traced[i].name) == (int)req->data.nr) {
            layout = traced[i].layout;
            known = true;
        }
    }
    char mempath[64], path[PATH_MAX], base[PATH_MAX];
    snprintf(mempath, sizeof(mempath), "/proc/%d/mem", req->pid);
    cleanup_fd int mem = known ? open(mempath, O_RDONLY | O_CLOEXEC) : -1;
    bool at = layout == DIRFD_PATH_FLAGS || layout == DIRFD_PATH_HOW || layout == EXEC_DIRFD;
    uint64_t addr = at ? req->data.args[1] : req->data.args[0];
    if (mem < 0 || read_string(mem, addr, path, sizeof(path)) < 0 || path[0] == '\0' ||
        writes(mem, req, layout))
        return;
    int dirfd = at ? (int)req->data.args[0] : AT_FDCWD;
    /* Read /proc of the caller while it is still blocked in this very call. */
    if (path[0] != '/' && base_dir(req->pid, dirfd, base, sizeof(base)) < 0)
        return;
    if (seccomp_notify_id_valid(nfd, req->id) < 0)
        return;
    char line[2 * PATH_MAX + 4];
    int n = path[0] == '/' ? snprintf(line, sizeof(line), "%s", path)
                           : snprintf(line, sizeof(line), "%s/%s", base, path);
    if (n > 0 && (size_t)n < sizeof(line))
        write_all(out, line, (size_t)n + 1); /* NUL-terminated records */
}

static int
supervise(int nfd, int out)
{
    cleanup_free struct seccomp_notif *req = NULL;
    cleanup_free struct seccomp_notif_resp *resp = NULL;
    if (seccomp_notify_alloc(&req, &resp) < 0)
        return -ENOMEM;
    for (;;) {
        struct pollfd p = {.fd = nfd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
            return 0; /* every task under the filter is gone */
        memset(req, 0, sizeof(*req));
        if (seccomp_notify_receive(nfd, req) < 0)
            continue; /* the caller died meanwhile */
        record(nfd, out, req);
        memset(resp, 0, sizeof(*resp));
        resp->id = req->id;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        seccomp_notify_respond(nfd, resp);
    }
}

int
img_trace_supervise(const char *out_path, char **argv, struct husk_error **err)
{
    cleanup_fd int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0)
        return husk_err(err, errno, "open trace record '%s'", out_path);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return husk_err(err, errno, "socketpair");
    pid_t pid = fork();
    if (pid < 0)
        return husk_err(err, errno, "fork");
    if (pid == 0) {
        close(sv[0]);
        /* The command's stdout joins stderr: ours carries nothing of it. */
        if (dup2(2, 1) < 0 || install_filter(sv[1]) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(sv[1]);
    cleanup_fd int sock = sv[0];
    cleanup_fd int nfd = recv_fd(sock);
    int r = nfd < 0 ? nfd : supervise(nfd, out);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* We are the sandbox's pid 1: reap whatever the command left. */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    if (r < 0)
        return husk_err(err, -r, "trace '%s'", argv[0]);
    return status;
}
