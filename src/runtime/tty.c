/* SPDX-License-Identifier: Apache-2.0 */
/* Terminals for the CLI: the console socket, and the relay of a foreground `run -t` / `exec -t`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "tty.h"
#include "util.h"

int
unix_connect(const char *path, const char *what, struct husk_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return husk_err(err, ENAMETOOLONG, "%s '%s'", what, path);
    strcpy(sa.sun_path, path);
    cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return husk_err(err, errno, "connect to %s '%s'", what, path);
    return steal_fd(&fd);
}

static void
copy_winsize(int from, int to)
{
    struct winsize ws;
    /* A caller without a size (0x0) keeps the size the config asked for. */
    if (ioctl(from, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
        ioctl(to, TIOCSWINSZ, &ws);
}

/* Read what is there and write it all; false on EOF or a dead peer. */
static bool
pump(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    return write_all(to, buf, (size_t)n) == 0;
}

int
tty_relay(int master, int pidfd, struct husk_error **err)
{
    struct termios saved, raw;
    bool is_tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    sigset_t mask;

    /* The caller's terminal goes raw: keys reach the container's line discipline unchanged. */
    if (is_tty) {
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        copy_winsize(STDIN_FILENO, master);
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    cleanup_fd int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    struct pollfd p[4] = {{.fd = STDIN_FILENO, .events = POLLIN},
                          {.fd = master, .events = POLLIN},
                          {.fd = pidfd, .events = POLLIN},
                          {.fd = sfd, .events = POLLIN}};
    bool out_open = true;
    while (out_open) {
        if (poll(p, 4, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (!pump(STDIN_FILENO, master)) {
                p[0].fd = -1; /* stdin ended: tell the program with the EOF character */
                if (!is_tty)
                    write_all(master, "\x04", 1);
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
            out_open = pump(master, STDOUT_FILENO);
        if (p[3].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) > 0)
                ;
            copy_winsize(STDIN_FILENO, master);
        }
        if (p[2].revents & POLLIN) {
            /* The process is gone: take what it wrote last, then stop. */
            char buf[16384];
            ssize_t n;
            fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
            while ((n = read(master, buf, sizeof(buf))) > 0)
                write_all(STDOUT_FILENO, buf, (size_t)n);
            break;
        }
    }
    if (is_tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    sigprocmask(SIG_UNBLOCK, &mask, NULL);
    (void)err;
    return 0;
}
