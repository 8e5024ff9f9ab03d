/* SPDX-License-Identifier: Apache-2.0 */
/* The exec stub: the program a sandbox process runs its container's program through. */
#ifndef HUSK_SBX_EXEC_STUB_H
#define HUSK_SBX_EXEC_STUB_H

#include "husk/error.h"

/* A sealed memfd of the stub at or above min_fd (CLOEXEC), or -errno. Its command line is
 * REPORT_FD FILE ARGV...: see stub/exec-stub.c. */
int sbx_exec_stub_open(int min_fd, struct husk_error **err);

#endif
