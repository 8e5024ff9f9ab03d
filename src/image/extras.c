/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Run-time files no ELF header names. A TLS library reads the CA bundle; a resolver reads
 * resolv.conf, hosts and nsswitch.conf (glibc 2.34+ has files and dns NSS built in, so no
 * libnss_* module is needed for them). Which libraries are in the tree says which are needed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img-internal.h"
#include "util.h"

static const char *const tls_libs[] = {"libssl.so",  "libgnutls.so",      "libnss3.so",
                                       "libcurl.so", "libcurl-gnutls.so", "_ssl."};
static const char *const net_libs[] = {"libresolv.so",      "_socket.",  "libcurl.so",
                                       "libcurl-gnutls.so", "libssl.so", "libgnutls.so"};

static const char *
holds(const struct img_tree *t, const char *const *prefixes, size_t n)
{
    for (size_t i = 0; i < img_tree_count(t); i++) {
        const struct img_entry *e = img_tree_at(t, i);
        const char *b = img_path_basename(e->path);
        for (size_t k = 0; e->kind == IMG_FILE && k < n; k++)
            if (str_has_prefix(b, prefixes[k]))
                return e->path;
    }
    return NULL;
}

static int
add_if_present(struct img_tree *t, const char *path, bool copy, const char *why,
               struct husk_error **err)
{
    struct stat st;
    if (img_host_stat(t, path, true, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    if (img_tree_find(t, path))
        return 0;
    /* resolv.conf is often a link into /run: what the program needs is its content. */
    return copy ? img_tree_add_copy(t, path, path, why, err)
                : img_tree_add_host(t, path, why, NULL, err);
}

int
img_add_extras(struct img_tree *t, struct husk_error **err)
{
    static const char *const ca[] = {"/etc/ssl/certs/ca-certificates.crt", "/usr/lib/ssl/cert.pem",
                                     "/etc/pki/tls/certs/ca-bundle.crt"};
    static const char *const net[] = {"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf"};
    const char *tls = holds(t, tls_libs, ARRAY_SIZE(tls_libs));
    const char *dns = holds(t, net_libs, ARRAY_SIZE(net_libs));
    int r = 0;
    if (tls) {
        cleanup_free char *why = xasprintf("CA certificates (the image holds %s)", tls);
        for (size_t i = 0; r == 0 && i < ARRAY_SIZE(ca); i++)
            r = add_if_present(t, ca[i], false, why, err);
    }
    if (dns) {
        cleanup_free char *why = xasprintf("name resolution (the image holds %s)", dns);
        for (size_t i = 0; r == 0 && i < ARRAY_SIZE(net); i++)
            r = add_if_present(t, net[i], true, why, err);
    }
    return r;
}

int
img_add_implicit_libs(struct img_tree *t, struct husk_error **err)
{
    static const char *const libc[] = {"libc.so.6"};
    static const char *const gcc_s[] = {"libgcc_s.so.1"};
    const char *c = holds(t, libc, ARRAY_SIZE(libc));
    if (c == NULL || holds(t, gcc_s, ARRAY_SIZE(gcc_s)))
        return 0;
    cleanup_free char *why = xasprintf("loaded by %s for pthread_exit and pthread_cancel", c);
    cleanup_free char *like = xstrdup(c);
    return img_add_library(t, "libgcc_s.so.1", like, why, err);
}
