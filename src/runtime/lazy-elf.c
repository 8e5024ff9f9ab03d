/* SPDX-License-Identifier: Apache-2.0 */
/* libelf on first use (lazy.h): `husk pack` reads programs' dependencies with it. */
#include <gelf.h>
#include <libelf.h>

#include <stddef.h>

#include "lazy.h"

static struct lazy_lib elf = {"libelf.so.1", NULL};

LAZY_FWD(elf, unsigned int, elf_version, (unsigned int v), (v))
LAZY_FWD(elf, Elf *, elf_begin, (int fd, Elf_Cmd cmd, Elf *ref), (fd, cmd, ref))
LAZY_FWD(elf, int, elf_end, (Elf * e), (e))
LAZY_FWD(elf, const char *, elf_errmsg, (int error), (error))
LAZY_FWD(elf, Elf_Data *, elf_getdata_rawchunk, (Elf * e, int64_t off, size_t n, Elf_Type t),
         (e, off, n, t))
LAZY_FWD(elf, int, elf_getphdrnum, (Elf * e, size_t *n), (e, n))
LAZY_FWD(elf, Elf_Kind, elf_kind, (Elf * e), (e))
LAZY_FWD(elf, char *, elf_rawfile, (Elf * e, size_t *n), (e, n))
LAZY_FWD(elf, size_t, gelf_fsize, (Elf * e, Elf_Type t, size_t n, unsigned int v), (e, t, n, v))
LAZY_FWD(elf, int, gelf_getclass, (Elf * e), (e))
LAZY_FWD(elf, GElf_Dyn *, gelf_getdyn, (Elf_Data * d, int i, GElf_Dyn *dst), (d, i, dst))
LAZY_FWD(elf, GElf_Ehdr *, gelf_getehdr, (Elf * e, GElf_Ehdr *dst), (e, dst))
LAZY_FWD(elf, GElf_Phdr *, gelf_getphdr, (Elf * e, int i, GElf_Phdr *dst), (e, i, dst))
