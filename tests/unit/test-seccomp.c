/* SPDX-License-Identifier: Apache-2.0 */
/* The default seccomp profile, compiled as husk compiles it and run on system calls of every
 * architecture it lists: what it promises to block stays blocked, multiplexers included. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/net.h>
#include <sched.h>
#include <seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "bpf-eval.h"
#include "oci.h"
#include "util.h"

#define ALLOW     SECCOMP_RET_ALLOW
#define EPERM_RET (SECCOMP_RET_ERRNO | EPERM)
#define KILLED    SECCOMP_RET_KILL_THREAD /* libseccomp's action for an architecture not listed */

struct arch {
    const char *name;
    uint32_t scmp, audit;
};

static const struct arch arches[] = {
    {"x86_64", SCMP_ARCH_X86_64, AUDIT_ARCH_X86_64},
    {"x86", SCMP_ARCH_X86, AUDIT_ARCH_I386},
    {"x32", SCMP_ARCH_X32, AUDIT_ARCH_X86_64},
};

static struct sbx_seccomp prog;

static int
setup(void **state)
{
    struct husk_error *err = NULL;
    cleanup_json json_t *profile = oci_seccomp_default();
    (void)state;
    if (oci_seccomp_compile(profile, "default profile", NULL, &prog, &err) < 0) {
        husk_error_free(err);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    free(prog.bpf);
    free(prog.listener_msg);
    return 0;
}

/* i386 numbers libseccomp resolves to pseudo-syscalls (socket is also reachable through
 * socketcall there), from arch/x86/entry/syscalls/syscall_32.tbl. */
static const struct {
    const char *name;
    int nr;
} i386_direct[] = {{"socket", 359}, {"socketcall", 102}};

/* What the filter answers to NAME(args...) on an architecture; the name must exist there. */
static uint32_t
decide(const struct arch *a, const char *name, uint64_t a0, uint64_t a1)
{
    int nr = seccomp_syscall_resolve_name_arch(a->scmp, name);
    for (size_t i = 0; a->scmp == SCMP_ARCH_X86 && i < ARRAY_SIZE(i386_direct); i++)
        if (strcmp(name, i386_direct[i].name) == 0)
            nr = i386_direct[i].nr;
    if (nr == __NR_SCMP_ERROR || nr < 0)
        fail_msg("%s has no system call '%s'", a->name, name);
    struct seccomp_data d = {.nr = nr, .arch = a->audit, .args = {a0, a1}};
    bool bad;
    uint32_t r = bpf_eval(prog.bpf, prog.len / sizeof(struct sock_filter), &d, &bad);
    if (bad)
        fail_msg("the compiled filter is not a valid seccomp program");
    return r;
}

#define assert_decides(arch_, want_, call_, a0_, a1_)                                              \
    do {                                                                                           \
        uint32_t got_ = decide(arch_, call_, a0_, a1_);                                            \
        if (got_ != (uint32_t)(want_))                                                             \
            fail_msg("%s: %s(%#llx, %#llx): filter returns %#x, want %#x", (arch_)->name, call_,   \
                     (unsigned long long)(a0_), (unsigned long long)(a1_), got_,                   \
                     (uint32_t)(want_));                                                           \
    } while (0)

/* socket(AF_VSOCK) is blocked on every architecture the profile allows. i386's socketcall takes
 * the arguments in memory, where seccomp cannot see them, and libseccomp lets
 * socketcall(SYS_SOCKET, {AF_VSOCK, ...}) through for the socket rule: i386 is not allowed at
 * all. */
static void
test_vsock_blocked_through_every_entry(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(arches); i++) {
        if (arches[i].scmp == SCMP_ARCH_X86)
            continue;
        assert_decides(&arches[i], EPERM_RET, "socket", AF_VSOCK, SOCK_STREAM);
        assert_decides(&arches[i], ALLOW, "socket", AF_INET, SOCK_STREAM);
        assert_decides(&arches[i], ALLOW, "socket", AF_UNIX, SOCK_STREAM);
    }
    for (uint64_t call = SYS_SOCKET; call <= SYS_SENDMMSG; call++)
        assert_decides(&arches[1], KILLED, "socketcall", call, 0);
    assert_decides(&arches[1], KILLED, "socket", AF_VSOCK, SOCK_STREAM);
}

/* Every rule that looks at an argument, on every architecture: its other entry points (a
 * multiplexer taking its arguments in memory) must not let the blocked values through. */
static void
test_argument_rules_hold_on_every_architecture(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(arches); i++) {
        const struct arch *a = &arches[i];
        if (a->scmp == SCMP_ARCH_X86)
            continue;
        assert_decides(a, EPERM_RET, "clone", CLONE_NEWUSER, 0);
        assert_decides(a, EPERM_RET, "clone", CLONE_NEWNS | SIGCHLD, 0);
        assert_decides(a, ALLOW, "clone", CLONE_VM | CLONE_THREAD | CLONE_SIGHAND, 0);
        assert_decides(a, SECCOMP_RET_ERRNO | ENOSYS, "clone3", 0, 0);
        assert_decides(a, EPERM_RET, "personality", 0x0006, 0);
        assert_decides(a, ALLOW, "personality", 0xffffffff, 0);
        assert_decides(a, EPERM_RET, "unshare", 0, 0);
        assert_decides(a, EPERM_RET, "setns", 0, 0);
    }
    assert_decides(&arches[1], KILLED, "ipc", 1, 0);
    assert_decides(&arches[1], KILLED, "clone", 0, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vsock_blocked_through_every_entry),
        cmocka_unit_test(test_argument_rules_hold_on_every_architecture),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
