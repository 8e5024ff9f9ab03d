/* SPDX-License-Identifier: Apache-2.0 */
/* Loading a library on first use (lazy.h). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "lazy.h"

void *
lazy_sym(struct lazy_lib *lib, const char *name)
{
    void *h = __atomic_load_n(&lib->handle, __ATOMIC_ACQUIRE);
    if (h == NULL) { /* a second dlopen of it only counts a reference */
        h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        __atomic_store_n(&lib->handle, h, __ATOMIC_RELEASE);
    }
    void *p = h ? dlsym(h, name) : NULL;
    if (p == NULL) {
        fprintf(stderr, "husk: %s: %s\n", lib->soname, dlerror());
        abort();
    }
    return p;
}
