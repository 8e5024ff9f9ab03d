/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exec stub: what a sandbox process executes last, instead of running the container's
 * program straight from the husk process it was cloned from.
 *
 * Why (CVE-2019-5736): during the final execve, /proc/self/exe is still the husk binary on the
 * host. A program such as "#!/proc/self/exe" (or an ELF whose interpreter is that path) would
 * make the kernel run husk itself inside the container, where the container can open it through
 * /proc/PID/exe and write to it once it exits. Executed through the stub, /proc/self/exe at
 * that moment is the stub: a few kilobytes in a sealed memfd (exec-stub.c) that refuses every
 * write, so nothing of husk is ever reachable from the container.
 *
 * argv: REPORT_FD FILE ARGV0 ARGV1 ...; the environment is passed on as it is. REPORT_FD (the
 * spawn protocol's socket) is marked close-on-exec, so the parent sees EOF once FILE runs; if
 * execve fails, one SBX_MSG_ERROR record with its errno goes there instead, and the stub exits
 * with 127. REPORT_FD "-" (a startContainer hook): nothing to report, only the exit code. Anything
 * else on the command line (the stub run by hand, or as an interpreter) only makes it exit with
 * 127.
 *
 * No libc: a static program of a few raw system calls, no heap, no relocations.
 */
#include <asm/unistd.h>
#include <linux/fcntl.h>
#include <stddef.h>

#include "sync.h"

static long
sys3(long nr, long a, long b, long c)
{
    long ret;
#if defined(__x86_64__)
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    ret = x0;
#else
#error "the exec stub supports x86_64 and aarch64"
#endif
    return ret;
}

static _Noreturn void
stub_exit(int code)
{
    for (;;)
        sys3(__NR_exit, code, 0, 0);
}

/* A decimal fd number, or -1. */
static int
parse_fd(const char *s)
{
    long v = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 1000000)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return (int)v;
}

/* Called from _start with the initial stack: argc, argv[], NULL, envp[], NULL. */
__attribute__((used)) _Noreturn void stub_main(long *sp);

__attribute__((used)) _Noreturn void
stub_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    bool no_report = argc >= 3 && argv[0][0] == '-' && argv[0][1] == '\0';
    int report = argc >= 3 && !no_report ? parse_fd(argv[0]) : -1;

    if (report < 0 && !no_report)
        stub_exit(127);
    long r = no_report ? 0 : sys3(__NR_fcntl, report, F_SETFD, FD_CLOEXEC);
    if (r == 0)
        r = sys3(__NR_execve, (long)argv[1], (long)(argv + 2), (long)envp);
    if (report >= 0) {
        struct sbx_msg m = {.kind = SBX_MSG_ERROR, .step = SBX_STEP_EXEC, .err = (int)-r};
        sys3(__NR_write, report, (long)&m, sizeof(m));
    }
    stub_exit(127);
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n"
        "\tand $-16, %rsp\n\tcall stub_main\n\thlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n\tmov x29, #0\n\tmov x30, #0\n\tmov x0, sp\n"
        "\tand sp, x0, #-16\n\tbl stub_main\n");
#endif
