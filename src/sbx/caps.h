/* SPDX-License-Identifier: Apache-2.0 */
/* Capabilities and seccomp as the child applies them, no heap. */
#ifndef HUSK_SBX_CAPS_H
#define HUSK_SBX_CAPS_H

#include "husk/sandbox.h"

/* Drop the bounding set and keep caps across setresuid. 0 or -errno. */
int sbx_caps_before_setuid(const struct sbx_caps *c);
/* Set effective, permitted, inheritable, then raise the ambient set. 0 or -errno. */
int sbx_caps_after_setuid(const struct sbx_caps *c);
/* Load a compiled filter; with a listener, send it the notify fd. 0 or -errno. */
int sbx_seccomp_load(const struct sbx_seccomp *s, int listener_sock, int host_pid);
/* A notify filter (husk/notify.h); its listener goes to sock as an SBX_MSG_NOTIFY record. */
int sbx_notify_load(const struct sbx_seccomp *s, int sock);
/* The kernel's landlock ABI version, 0 without landlock. */
int sbx_landlock_abi(void);
/* Restrict the process with landlock. Returns 0, -errno, or 1 if the kernel has no landlock. */
int sbx_landlock_apply(const struct sbx_landlock *l, int *abi);

#endif
