/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Libraries the husk binary loads on first use instead of at start-up: forwarders that carry a
 * library's own names and signatures (from its header) and resolve them by soname. They are
 * objects of the executable itself, so the layers' references bind to them and the linker
 * (--as-needed) drops the library from the binary's DT_NEEDED: only the verbs that call into
 * it pay for loading it. Other programs built from the layers (tests, fuzzers) link the
 * libraries as usual.
 */
#ifndef HUSK_RUNTIME_LAZY_H
#define HUSK_RUNTIME_LAZY_H

struct lazy_lib {
    const char *soname;
    void *handle; /* a cache, never reset (atomic loads and stores): process-wide state */
};

/* The symbol, or a message on stderr and abort(): as the dynamic loader would have done at
 * start-up for a library the binary was built against. */
void *lazy_sym(struct lazy_lib *lib, const char *name);

/* The forwarder's cached symbol: loaded and stored with acquire/release (the daemon's threads
 * call forwarders at once; two first calls may both resolve it, to the same value). */
#define LAZY_SYM(lib, name)                                                                        \
    static __typeof__(&name) cache_;                                                               \
    __typeof__(&name) fn = __atomic_load_n(&cache_, __ATOMIC_ACQUIRE);                             \
    if (fn == NULL) {                                                                              \
        fn = (__typeof__(&name))lazy_sym(&lib, #name);                                             \
        __atomic_store_n(&cache_, fn, __ATOMIC_RELEASE);                                           \
    }

#define LAZY_FWD(lib, ret, name, params, args)                                                     \
    ret name params                                                                                \
    {                                                                                              \
        LAZY_SYM(lib, name)                                                                        \
        return fn args;                                                                            \
    }

#define LAZY_FWD_VOID(lib, name, params, args)                                                     \
    void name params                                                                               \
    {                                                                                              \
        LAZY_SYM(lib, name)                                                                        \
        fn args;                                                                                   \
    }

#endif
