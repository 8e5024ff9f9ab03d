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
    if (lib->handle == NULL)
        lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    void *p = lib->handle ? dlsym(lib->handle, name) : NULL;
    if (p == NULL) {
        fprintf(stderr, "husk: %s: %s\n", lib->soname, dlerror());
        abort();
    }
    return p;
}
