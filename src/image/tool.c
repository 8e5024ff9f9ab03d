/* SPDX-License-Identifier: Apache-2.0 */
/* Running a host tool (mkfs.erofs, mksquashfs): looked up in fixed directories, not $PATH. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

char *
img_tool_find(const char *name)
{
    static const char *const dirs[] = {"/usr/bin", "/usr/sbin",      "/bin",
                                       "/sbin",    "/usr/local/bin", "/usr/local/sbin"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        char *p = xasprintf("%s/%s", dirs[i], name);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}

int
img_tool_run(char *const argv[], struct husk_error **err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return husk_err(err, errno, "pipe");
    cleanup_fd int rd = pipefd[0];
    cleanup_fd int wr = pipefd[1];
    pid_t pid = fork();
    if (pid < 0)
        return husk_err(err, errno, "fork for %s", argv[0]);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(wr, 2) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(steal_fd(&wr));
    /* Keep the last part of what it says: the error is usually at the end. */
    char tail[2048];
    size_t used = 0;
    for (;;) {
        char buf[1024];
        ssize_t n = read(rd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (used + (size_t)n >= sizeof(tail)) {
            size_t drop = used + (size_t)n - (sizeof(tail) - 1);
            drop = drop > used ? used : drop;
            memmove(tail, tail + drop, used - drop);
            used -= drop;
        }
        size_t take = (size_t)n < sizeof(tail) - 1 - used ? (size_t)n : sizeof(tail) - 1 - used;
        memcpy(tail + used, buf + (size_t)n - take, take);
        used += take;
    }
    tail[used] = '\0';
    while (used > 0 && (tail[used - 1] == '\n' || tail[used - 1] == ' '))
        tail[--used] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return husk_err(err, errno, "wait for %s", argv[0]);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return husk_err(err, 0, "could not run %s", argv[0]);
    return husk_err(
        err, 0, "%s failed (%s %d)%s%s", argv[0], WIFEXITED(status) ? "exit status" : "signal",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), used ? ": " : "", tail);
}
