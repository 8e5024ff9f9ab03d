/* SPDX-License-Identifier: Apache-2.0 */
/* What the agent's files share: the runs it reaps, and its zygote mode (zygote.c). */
#ifndef HUSK_FAAS_AGENT_H
#define HUSK_FAAS_AGENT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent-proto.h"

/* agent.c: report a run's end to the daemon; reap pid as run id; forget run id (false: it
 * was not tracked). */
void agent_send_exit(uint32_t id, int32_t status);
/* A run to reap and report; hold: seconds it may go on once the daemon is gone. */
void agent_track(pid_t pid, uint32_t id, int32_t hold);
bool agent_untrack(uint32_t id);

/* zygote.c. init: argv is the zygote's command line (after AGENT_ZYGOTE_ARG); preload: load
 * husk's preload library into it (AGENT_ZYGOTE_PRELOAD_ARG). */
void zygote_init(char **argv, const sigset_t *old, bool preload);
/* Hand the run to the zygote (it takes the fds). */
void zygote_run(struct agent_msg *m, const char *payload, const int fds[3]);
/* The zygote's socket (-1: none), and what to do when it is readable. */
int zygote_fd(void);
void zygote_on_message(void);
/* A process the agent reaped that is not one of its runs: the zygote, or another. */
void zygote_reaped(pid_t pid, int status);

#endif
