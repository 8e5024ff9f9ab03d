/* SPDX-License-Identifier: Apache-2.0 */
/* Raw bpf(2) for the programs husk builds itself: the device filter and the egress allow-list. */
#ifndef HUSK_SBX_BPF_H
#define HUSK_SBX_BPF_H

#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>

#include "husk/error.h"

#define SBX_BPF_MAX_INSNS 4096

/* Append one instruction to v[*n]; past SBX_BPF_MAX_INSNS only *n grows (callers check it). */
static inline void
sbx_bpf_emit(struct bpf_insn *v, size_t *n, uint8_t code, uint8_t dst, uint8_t src, int16_t off,
             int32_t imm)
{
    if (*n < SBX_BPF_MAX_INSNS)
        v[*n] =
            (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
    (*n)++;
}

long sbx_bpf(int cmd, union bpf_attr *attr);

/* Load a program; a refusal carries the verifier's log. Returns a CLOEXEC fd or -errno. */
int sbx_bpf_load(enum bpf_prog_type type, enum bpf_attach_type expected,
                 const struct bpf_insn *insns, size_t n, const char *what, struct husk_error **err);

#endif
