/* SPDX-License-Identifier: Apache-2.0 */
/* Seccomp user notification (husk/notify.h): the filter's bounds, and a supervisor answering a
 * child's calls: a value of its own, an fd put in place of the caller's, a call let run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "caps.h"
#include "husk/notify.h"
#include "sync.h"
#include "tty.h"
#include "util.h"

#define PORT 4242

static void
test_filter_bounds(void **state)
{
    (void)state;
    struct sbx_seccomp f = {0};
    struct husk_error *err = NULL;
    int nrs[33] = {SYS_bind};
    assert_int_equal(sbx_notify_filter(nrs, 0, &f, &err), -EINVAL);
    cleanup_free char *msg = husk_error_string(err);
    assert_non_null(strstr(msg, "1 to 32 system calls"));
    husk_error_free(err);
    err = NULL;
    assert_int_equal(sbx_notify_filter(nrs, 33, &f, &err), -EINVAL);
    husk_error_free(err);
    assert_int_equal(sbx_notify_filter(nrs, 1, &f, NULL), 0);
    assert_non_null(f.bpf);
    free(f.bpf);
}

/* The child, under the filter: each check that fails is its exit status. */
static _Noreturn void
child(int sock)
{
    static const int nrs[] = {SYS_getppid, SYS_bind, SYS_listen};
    struct sbx_seccomp f;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sbx_notify_filter(nrs, 3, &f, NULL) < 0 ||
        sbx_notify_load(&f, sock) < 0)
        _exit(10);
    /* 1: the supervisor's value */
    if (syscall(SYS_getppid) != 777)
        _exit(11);
    /* 2: bind(PORT) gets the supervisor's fd (a pipe) at the socket's number */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    struct stat st;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || fstat(fd, &st) < 0 ||
        !S_ISFIFO(st.st_mode))
        _exit(12);
    if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
        _exit(13);
    /* 3: listen() runs as asked: on a datagram socket the kernel refuses it */
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (listen(udp, 1) != -1 || errno != EOPNOTSUPP)
        _exit(14);
    _exit(0);
}

static void
answer(int nfd, int want_nr, struct sbx_notify_req *req)
{
    struct pollfd p = {.fd = nfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(sbx_notify_recv(nfd, req), 0);
    assert_int_equal(req->nr, want_nr);
    assert_true(sbx_notify_alive(nfd, req->id));
}

static void
test_supervise(void **state)
{
    (void)state;
    int sv[2], pipes[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(pipes, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child(sv[1]);
    close(sv[1]);
    struct sbx_msg m;
    int nfd = -1;
    assert_int_equal(sbx_recv_fd(sv[0], &m, sizeof(m), &nfd), (int)sizeof(m));
    assert_int_equal(m.kind, SBX_MSG_NOTIFY);
    assert_true(nfd >= 0);

    struct sbx_notify_req req;
    answer(nfd, SYS_getppid, &req);
    assert_int_equal(sbx_notify_return(nfd, req.id, 777, 0), 0);

    answer(nfd, SYS_bind, &req);
    struct sockaddr_in sa;
    assert_int_equal(sbx_notify_read(nfd, &req, req.args[1], &sa, sizeof(sa)), 0);
    assert_int_equal(ntohs(sa.sin_port), PORT);
    int theirs = sbx_notify_getfd(nfd, &req, (int)req.args[0]);
    int type = 0;
    socklen_t tl = sizeof(type);
    assert_true(theirs >= 0);
    assert_int_equal(getsockopt(theirs, SOL_SOCKET, SO_TYPE, &type, &tl), 0);
    assert_int_equal(type, SOCK_DGRAM);
    close(theirs);
    assert_int_equal(sbx_notify_setfd(nfd, req.id, pipes[0], (int)req.args[0], true), 0);
    assert_int_equal(sbx_notify_return(nfd, req.id, 0, 0), 0);

    answer(nfd, SYS_listen, &req);
    assert_int_equal(sbx_notify_continue(nfd, req.id), 0);

    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Its caller gone, a notification is neither alive nor answerable. */
    assert_false(sbx_notify_alive(nfd, req.id));
    assert_int_equal(sbx_notify_return(nfd, req.id, 0, 0), -ENOENT);
    close(nfd);
    close(sv[0]);
    close(pipes[0]);
    close(pipes[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_bounds),
        cmocka_unit_test(test_supervise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
