/* SPDX-License-Identifier: Apache-2.0 */
/* The messages between `husk serve` and its in-sandbox agent, on a SOCK_SEQPACKET socket that
 * is the agent's fd 0. Both sides are built from this tree, so the layout is the contract. */
#ifndef HUSK_FAAS_AGENT_PROTO_H
#define HUSK_FAAS_AGENT_PROTO_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* The largest message: a run request's environment block. */
#define AGENT_MSG_MAX (256u * 1024u)

enum agent_kind {
    /* daemon -> agent: run the program once. Payload: the environment, NUL-separated
     * "K=V\0K=V\0". SCM_RIGHTS: stdin, stdout, stderr of the run, and optionally a listening
     * socket the program gets as fd 3 with LISTEN_FDS=1 and LISTEN_PID (socket activation).
     * status: seconds the run may go on once the daemon is gone (0: the sandbox ends at once). */
    AGENT_RUN = 1,
    /* agent -> daemon: a run ended; status is the wait status, or -errno when the fork
     * failed. */
    AGENT_EXIT = 2,
    /* zygote -> agent (zygote.c): the run's process exists (status: its pid, now the agent's
     * to reap), or could not be made (status: -errno). */
    AGENT_STARTED = 3,
    /* daemon -> agent in zygote mode: a run forked from the zygote (never the zygote itself)
     * that serves as an instance of its own (an http function's server: zygote-fork.c). As
     * AGENT_RUN with 3 fds, stdin being a gate: the run waits for one byte there before it
     * starts (the daemon moves it into the instance's cgroup first). The agent answers
     * AGENT_STARTED with the run's pid and, by SCM_RIGHTS, a pidfd of it (status -errno and no
     * fd when it could not be made), then AGENT_EXIT as for any run. With status
     * AGENT_FORK_ZYGOTE the fork becomes a zygote of its own instead (a stdio or CGI instance):
     * stdin is its control socket, where it serves runs as the zygote does on fd 3; it forks
     * nothing before the first message there (the daemon sends it once the fork is in the
     * instance's cgroup: the socket is its gate). */
    AGENT_FORK = 4,
};

/* AGENT_RUN's status to a zygote: the run's stdin is its gate (AGENT_FORK): read one byte
 * there before running, and exit with status 70 if it closes instead. */
#define AGENT_RUN_GATED 2
/* AGENT_RUN's status to a zygote: the run becomes a zygote itself, serving runs on its stdin
 * (AGENT_FORK with AGENT_FORK_ZYGOTE). */
#define AGENT_RUN_ZYGOTE 4
/* AGENT_FORK's status from the daemon: the fork is to be a zygote (AGENT_RUN_ZYGOTE). */
#define AGENT_FORK_ZYGOTE 1

/* The agent's argv[1] when it runs its program (argv[2..]) as a zygote that forks each run
 * (fd 3: a socket speaking these messages) instead of executing the program per run. argv[0]
 * is the program too: the spawn looks it up in the root. */
#define AGENT_ZYGOTE_ARG "husk-zygote"
/* The same, with husk's preload library (zygote-preload.c: a fork for Node.js) loaded into the
 * zygote from a memfd whose fd number the zygote finds in AGENT_PRELOAD_ENV. */
#define AGENT_ZYGOTE_PRELOAD_ARG "husk-zygote-preload"
#define AGENT_PRELOAD_ENV        "HUSK_ZYGOTE_PRELOAD"

struct agent_msg {
    uint32_t kind;
    uint32_t id; /* chosen by the daemon, echoed in AGENT_EXIT */
    int32_t status;
    uint32_t len; /* bytes of payload after this header */
};

/* Send a run: m, its payload, and its n_fds fds (3: stdin, stdout, stderr; 4: and a listening
 * socket), by SCM_RIGHTS; or any message with fds (AGENT_STARTED's pidfd). sendmsg's result. */
static inline ssize_t
agent_send_run(int sock, struct agent_msg *m, const void *payload, const int *fds, size_t n_fds)
{
    char cbuf[CMSG_SPACE(4 * sizeof(int))] = {0};
    struct iovec iov[2] = {{m, sizeof(*m)}, {(void *)payload, m->len}};
    struct msghdr mh = {.msg_iov = iov,
                        .msg_iovlen = 2,
                        .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE(n_fds * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
    return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

#endif
