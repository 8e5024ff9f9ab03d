/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device access on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program built from the rules and
 * attached to the container's cgroup, as runc's devicefilter does. Raw bpf(2), no libbpf.
 *
 * The program checks the rules from the last to the first (the last match wins) and denies
 * what none of them matches:
 *
 *     r2 = type, r3 = access, r4 = major, r5 = minor          (from struct bpf_cgroup_dev_ctx)
 *     per rule: if (r2 != TYPE) goto next; if (r3 & ~ACCESS) goto next;
 *               if (r4 != MAJOR) goto next; if (r5 != MINOR) goto next; return ALLOW;
 *     return 0;
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bpf.h"
#include "cgroup-internal.h"
#include "util.h"

#define MAX_INSNS SBX_BPF_MAX_INSNS

struct prog {
    struct bpf_insn *v;
    size_t n;
};

static void
emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    sbx_bpf_emit(p->v, &p->n, code, dst, src, off, imm);
}

#define LDX_W(p, dst, off)       emit(p, BPF_LDX | BPF_MEM | BPF_W, dst, 1, off, 0)
#define ALU32_IMM(p, op, dst, v) emit(p, BPF_ALU | (op) | BPF_K, dst, 0, 0, v)
#define MOV32_REG(p, dst, src)   emit(p, BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV64_IMM(p, dst, v)     emit(p, BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, v)
#define JNE_IMM(p, dst, v)       emit(p, BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, v)
#define EXIT(p)                  emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

static int
access_bits(const char *a)
{
    int bits = 0;
    for (; *a; a++)
        bits |= *a == 'r'   ? BPF_DEVCG_ACC_READ
                : *a == 'w' ? BPF_DEVCG_ACC_WRITE
                            : BPF_DEVCG_ACC_MKNOD;
    return bits;
}

/* One rule; returns true when it matches every request (nothing before it can matter). */
static bool
emit_rule(struct prog *p, const struct sbx_cg_device_rule *d)
{
    size_t start = p->n;
    int acc = access_bits(d->access);
    const int all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
    if (d->type != 'a')
        JNE_IMM(p, 2, d->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
    if (acc != all) {
        MOV32_REG(p, 1, 3);
        ALU32_IMM(p, BPF_AND, 1, ~acc);
        JNE_IMM(p, 1, 0);
    }
    if (d->type != 'a' && d->major >= 0)
        JNE_IMM(p, 4, (int32_t)d->major);
    if (d->type != 'a' && d->minor >= 0)
        JNE_IMM(p, 5, (int32_t)d->minor);
    MOV64_IMM(p, 0, d->allow ? 1 : 0);
    EXIT(p);
    /* Every "goto next" jumps past this rule's exit. */
    for (size_t i = start; i < p->n && i < MAX_INSNS; i++)
        if (p->v[i].code == (BPF_JMP | BPF_JNE | BPF_K))
            p->v[i].off = (int16_t)(p->n - i - 1);
    return p->n - start == 2;
}

static int
build(const struct sbx_cg_device_rule *rules, size_t n, struct prog *p)
{
    LDX_W(p, 2, 0);
    ALU32_IMM(p, BPF_AND, 2, 0xffff);
    LDX_W(p, 3, 0);
    ALU32_IMM(p, BPF_RSH, 3, 16);
    LDX_W(p, 4, 4);
    LDX_W(p, 5, 8);
    bool total = false;
    for (size_t i = n; i-- > 0 && !total;)
        total = emit_rule(p, &rules[i]);
    if (!total) {
        MOV64_IMM(p, 0, 0);
        EXIT(p);
    }
    return p->n > MAX_INSNS ? -E2BIG : 0;
}

static int
load(const struct prog *p, struct husk_error **err)
{
    return sbx_bpf_load(BPF_PROG_TYPE_CGROUP_DEVICE, 0, p->v, p->n, "device filter", err);
}

/* The device programs attached to the cgroup now, to detach once the new one is in place. */
static size_t
query(int dir_fd, uint32_t *ids, size_t cap)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.query.target_fd = (uint32_t)dir_fd;
    a.query.attach_type = BPF_CGROUP_DEVICE;
    a.query.prog_ids = (uint64_t)(uintptr_t)ids;
    a.query.prog_cnt = (uint32_t)cap;
    if (sbx_bpf(BPF_PROG_QUERY, &a) < 0)
        return 0;
    return a.query.prog_cnt < cap ? a.query.prog_cnt : cap;
}

static void
detach(int dir_fd, uint32_t id)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;
    cleanup_fd int fd = (int)sbx_bpf(BPF_PROG_GET_FD_BY_ID, &a);
    if (fd < 0)
        return;
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)dir_fd;
    a.attach_bpf_fd = (uint32_t)fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    sbx_bpf(BPF_PROG_DETACH, &a);
}

int
cg_bpf_devices(int dir_fd, const struct sbx_cg_device_rule *rules, size_t n,
               struct husk_error **err)
{
    cleanup_free struct bpf_insn *insns = xcalloc(MAX_INSNS, sizeof(*insns));
    struct prog p = {.v = insns};
    uint32_t old[64];
    if (build(rules, n, &p) < 0)
        return husk_err(err, E2BIG, "%zu rules make too large a device filter", n);
    size_t n_old = query(dir_fd, old, ARRAY_SIZE(old));
    cleanup_fd int prog = load(&p, err);
    if (prog < 0)
        return prog;
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)dir_fd;
    a.attach_bpf_fd = (uint32_t)prog;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = BPF_F_ALLOW_MULTI;
    if (sbx_bpf(BPF_PROG_ATTACH, &a) < 0)
        return husk_err(err, errno, "attach device filter");
    /* New first, then the old ones out: there is no moment without a filter. */
    for (size_t i = 0; i < n_old; i++)
        detach(dir_fd, old[i]);
    return 0;
}
