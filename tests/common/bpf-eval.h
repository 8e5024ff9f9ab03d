/* SPDX-License-Identifier: Apache-2.0 */
/* Run a seccomp filter (classic BPF) on a system call in user space, as the kernel would: for
 * tests and fuzzers that check what a compiled profile decides without making the call. */
#ifndef HUSK_TEST_BPF_EVAL_H
#define HUSK_TEST_BPF_EVAL_H

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The filter's return value for data, or *bad set when the program is not one the kernel's
 * checker accepts (a jump or load out of bounds, an instruction seccomp does not allow). */
static inline uint32_t
bpf_eval(const struct sock_filter *prog, size_t n, const struct seccomp_data *data, bool *bad)
{
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
    *bad = false;
    for (size_t pc = 0; pc < n; pc++) {
        const struct sock_filter *f = &prog[pc];
        uint32_t k = f->k, src = BPF_SRC(f->code) == BPF_X ? x : k;
        switch (BPF_CLASS(f->code)) {
        case BPF_LD:
            if (f->code == (BPF_LD | BPF_W | BPF_ABS) && k % 4 == 0 && k + 4 <= sizeof(*data))
                memcpy(&a, (const char *)data + k, 4);
            else if (f->code == (BPF_LD | BPF_IMM))
                a = k;
            else if (f->code == (BPF_LD | BPF_MEM) && k < BPF_MEMWORDS)
                a = mem[k];
            else
                goto bad;
            break;
        case BPF_LDX:
            if (f->code == (BPF_LDX | BPF_IMM))
                x = k;
            else if (f->code == (BPF_LDX | BPF_MEM) && k < BPF_MEMWORDS)
                x = mem[k];
            else
                goto bad;
            break;
        case BPF_ST:
        case BPF_STX:
            if (k >= BPF_MEMWORDS)
                goto bad;
            mem[k] = BPF_CLASS(f->code) == BPF_ST ? a : x;
            break;
        case BPF_ALU:
            switch (BPF_OP(f->code)) {
            case BPF_ADD:
                a += src;
                break;
            case BPF_SUB:
                a -= src;
                break;
            case BPF_MUL:
                a *= src;
                break;
            case BPF_DIV:
                if (src == 0)
                    return 0;
                a /= src;
                break;
            case BPF_AND:
                a &= src;
                break;
            case BPF_OR:
                a |= src;
                break;
            case BPF_XOR:
                a ^= src;
                break;
            case BPF_LSH:
                a = src < 32 ? a << src : 0;
                break;
            case BPF_RSH:
                a = src < 32 ? a >> src : 0;
                break;
            case BPF_NEG:
                a = -a;
                break;
            default:
                goto bad;
            }
            break;
        case BPF_JMP: {
            size_t to_t, to_f;
            bool cond;
            if (BPF_OP(f->code) == BPF_JA) {
                if (pc + 1 + k >= n)
                    goto bad;
                pc += k;
                break;
            }
            switch (BPF_OP(f->code)) {
            case BPF_JEQ:
                cond = a == src;
                break;
            case BPF_JGT:
                cond = a > src;
                break;
            case BPF_JGE:
                cond = a >= src;
                break;
            case BPF_JSET:
                cond = (a & src) != 0;
                break;
            default:
                goto bad;
            }
            to_t = pc + 1 + f->jt;
            to_f = pc + 1 + f->jf;
            if (to_t >= n || to_f >= n)
                goto bad;
            pc = (cond ? to_t : to_f) - 1;
            break;
        }
        case BPF_RET:
            return BPF_RVAL(f->code) == BPF_A ? a : k;
        case BPF_MISC:
            if (BPF_MISCOP(f->code) == BPF_TAX)
                x = a;
            else
                a = x;
            break;
        default:
            goto bad;
        }
    }
bad:
    *bad = true;
    return 0;
}

#endif
