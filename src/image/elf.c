/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the dynamic loader reads from an ELF file: PT_INTERP, and from PT_DYNAMIC the DT_NEEDED,
 * DT_RPATH, DT_RUNPATH and DT_FLAGS_1 entries. Read through the program headers, as ld.so does,
 * so section-stripped files work too. Nothing is executed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

static void
elf_endp(Elf **e)
{
    if (*e)
        elf_end(*e);
}

void
img_elf_free(struct img_elf *e)
{
    if (e == NULL)
        return;
    free(e->interp);
    strv_freep(&e->needed);
    free(e->rpath);
    free(e->runpath);
    free(e);
}

void
img_elf_freep(struct img_elf **e)
{
    img_elf_free(*e);
    *e = NULL;
}

bool
img_elf_is_elf(int fd)
{
    unsigned char magic[4];
    return pread(fd, magic, sizeof(magic), 0) == 4 && memcmp(magic, ELFMAG, SELFMAG) == 0;
}

/* A string at a file offset, bounded by the file and by limit. */
static char *
raw_string(const char *raw, size_t size, uint64_t off, uint64_t limit)
{
    if (off >= size)
        return NULL;
    uint64_t max = size - off;
    if (limit && limit < max)
        max = limit;
    size_t n = strnlen(raw + off, (size_t)max);
    return n < max ? xstrndup(raw + off, n) : NULL;
}

/* Virtual address to file offset through the PT_LOAD segments. */
static bool
vaddr_to_off(Elf *elf, size_t nph, uint64_t vaddr, uint64_t *off)
{
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && vaddr >= ph.p_vaddr &&
            vaddr - ph.p_vaddr < ph.p_filesz) {
            *off = ph.p_offset + (vaddr - ph.p_vaddr);
            return true;
        }
    }
    return false;
}

static int
read_dynamic(Elf *elf, size_t nph, const GElf_Phdr *dyn_ph, struct img_elf *e, const char *name,
             struct husk_error **err)
{
    size_t size;
    const char *raw = elf_rawfile(elf, &size);
    Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)dyn_ph->p_offset, dyn_ph->p_filesz, ELF_T_DYN);
    if (raw == NULL || d == NULL)
        return husk_err(err, 0, "'%s': unreadable PT_DYNAMIC: %s", name, elf_errmsg(-1));
    size_t n = d->d_size / gelf_fsize(elf, ELF_T_DYN, 1, EV_CURRENT);
    uint64_t strtab = 0, strsz = 0;
    bool have_strtab = false;
    for (size_t i = 0; i < n; i++) {
        GElf_Dyn dyn;
        if (gelf_getdyn(d, (int)i, &dyn) == NULL || dyn.d_tag == DT_NULL)
            break;
        if (dyn.d_tag == DT_STRTAB)
            have_strtab = vaddr_to_off(elf, nph, dyn.d_un.d_ptr, &strtab);
        else if (dyn.d_tag == DT_STRSZ)
            strsz = dyn.d_un.d_val;
        else if (dyn.d_tag == DT_FLAGS_1 && (dyn.d_un.d_val & DF_1_NODEFLIB))
            e->nodeflib = true;
    }
    size_t n_needed = 0;
    for (size_t i = 0; i < n; i++) {
        GElf_Dyn dyn;
        if (gelf_getdyn(d, (int)i, &dyn) == NULL || dyn.d_tag == DT_NULL)
            break;
        if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RPATH && dyn.d_tag != DT_RUNPATH)
            continue;
        if (!have_strtab || (strsz && dyn.d_un.d_val >= strsz))
            return husk_err(err, 0, "'%s': dynamic entry outside the string table", name);
        char *s =
            raw_string(raw, size, strtab + dyn.d_un.d_val, strsz ? strsz - dyn.d_un.d_val : 0);
        if (s == NULL)
            return husk_err(err, 0, "'%s': unterminated dynamic string", name);
        if (dyn.d_tag == DT_NEEDED) {
            img_strv_push(&e->needed, &n_needed, s);
        } else {
            char **slot = dyn.d_tag == DT_RPATH ? &e->rpath : &e->runpath;
            free(*slot);
            *slot = s;
        }
    }
    return 0;
}

int
img_elf_read(int fd, const char *name, struct img_elf **out, struct husk_error **err)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        return husk_err(err, 0, "libelf is too old: %s", elf_errmsg(-1));
    if (!img_elf_is_elf(fd))
        return husk_err(err, ENOEXEC, "'%s' is not an ELF file", name);
    cleanup_(elf_endp) Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    GElf_Ehdr eh;
    if (elf == NULL || elf_kind(elf) != ELF_K_ELF || gelf_getehdr(elf, &eh) == NULL)
        return husk_err(err, ENOEXEC, "'%s' is not a valid ELF file: %s", name, elf_errmsg(-1));
    cleanup_(img_elf_freep) struct img_elf *e = xcalloc(1, sizeof(*e));
    e->cls = gelf_getclass(elf);
    e->machine = eh.e_machine;
    e->type = eh.e_type;
    size_t nph = 0, size = 0;
    const char *raw = elf_rawfile(elf, &size);
    if (elf_getphdrnum(elf, &nph) < 0 || raw == NULL)
        return husk_err(err, 0, "'%s': program headers: %s", name, elf_errmsg(-1));
    /* libelf reports no program headers, not an error, when the table is cut off. */
    uint64_t want = eh.e_phnum == PN_XNUM ? nph : eh.e_phnum;
    if (nph < want || eh.e_phoff > size || want * eh.e_phentsize > size - eh.e_phoff)
        return husk_err(err, ENOEXEC, "'%s' is truncated: its program headers end past the file",
                        name);
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(elf, (int)i, &ph) == NULL)
            return husk_err(err, 0, "'%s': program header %zu: %s", name, i, elf_errmsg(-1));
        if (ph.p_type == PT_INTERP) {
            free(e->interp);
            e->interp = raw_string(raw, size, ph.p_offset, ph.p_filesz);
            if (e->interp == NULL)
                return husk_err(err, 0, "'%s': PT_INTERP is not a string inside the file", name);
        } else if (ph.p_type == PT_DYNAMIC) {
            int r = read_dynamic(elf, nph, &ph, e, name, err);
            if (r < 0)
                return r;
        }
    }
    *out = steal_ptr(&e);
    return 0;
}

static const struct {
    int machine, cls;
    const char *triplet, *platform;
} arches[] = {
    {EM_X86_64, ELFCLASS64, "x86_64-linux-gnu", "x86_64"},
    {EM_X86_64, ELFCLASS32, "x86_64-linux-gnux32", "x86_64"},
    {EM_386, ELFCLASS32, "i386-linux-gnu", "i686"},
    {EM_AARCH64, ELFCLASS64, "aarch64-linux-gnu", "aarch64"},
    {EM_ARM, ELFCLASS32, "arm-linux-gnueabihf", "v7l"},
    {EM_RISCV, ELFCLASS64, "riscv64-linux-gnu", "riscv64"},
    {EM_PPC64, ELFCLASS64, "powerpc64le-linux-gnu", "powerpc64le"},
    {EM_S390, ELFCLASS64, "s390x-linux-gnu", "s390x"},
};

const char *
img_elf_triplet(const struct img_elf *e)
{
    for (size_t i = 0; i < ARRAY_SIZE(arches); i++)
        if (arches[i].machine == e->machine && arches[i].cls == e->cls)
            return arches[i].triplet;
    return NULL;
}

const char *
img_elf_platform(const struct img_elf *e)
{
    for (size_t i = 0; i < ARRAY_SIZE(arches); i++)
        if (arches[i].machine == e->machine && arches[i].cls == e->cls)
            return arches[i].platform;
    return NULL;
}

/* Does s start with the token $NAME or ${NAME}? Returns its length, 0 if not. */
static size_t
token(const char *s, const char *name)
{
    size_t n = strlen(name);
    if (s[0] != '$')
        return 0;
    if (s[1] == '{')
        return strncmp(s + 2, name, n) == 0 && s[2 + n] == '}' ? n + 3 : 0;
    if (strncmp(s + 1, name, n) != 0)
        return 0;
    char c = s[1 + n];
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
               ? 0
               : n + 1;
}

char *
img_elf_expand(const char *dir, const char *origin, const struct img_elf *e)
{
    const char *triplet = img_elf_triplet(e), *platform = img_elf_platform(e);
    cleanup_free char *lib = triplet ? xasprintf("lib/%s", triplet) : xstrdup("lib");
    size_t cap = strlen(dir) + 1, n = 0;
    char *out = xmalloc(cap);

    for (const char *p = dir; *p;) {
        const char *value = NULL;
        size_t len = 0;
        if ((len = token(p, "ORIGIN")))
            value = origin;
        else if ((len = token(p, "LIB")))
            value = lib;
        else if ((len = token(p, "PLATFORM")))
            value = platform;
        if (*p == '$' && (len == 0 || value == NULL)) {
            free(out); /* an unknown token: ld.so skips the whole element */
            return NULL;
        }
        const char *add = len ? value : p;
        size_t add_len = len ? strlen(value) : 1;
        if (n + add_len + 1 > cap)
            out = xrealloc(out, cap = (n + add_len + 1) * 2);
        memcpy(out + n, add, add_len);
        n += add_len;
        p += len ? len : 1;
    }
    out[n] = '\0';
    return out;
}
