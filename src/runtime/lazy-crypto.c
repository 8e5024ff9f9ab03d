/* SPDX-License-Identifier: Apache-2.0 */
/* libcrypto on first use (lazy.h): OCI image digests and the lambda contract's base64 only. */
#include <openssl/evp.h>

#include <stddef.h>

#include "lazy.h"

static struct lazy_lib crypto = {"libcrypto.so.3", NULL};

LAZY_FWD(crypto, const EVP_MD *, EVP_sha256, (void), ())
LAZY_FWD(crypto, EVP_MD_CTX *, EVP_MD_CTX_new, (void), ())
LAZY_FWD_VOID(crypto, EVP_MD_CTX_free, (EVP_MD_CTX * c), (c))
LAZY_FWD(crypto, int, EVP_DigestInit_ex, (EVP_MD_CTX * c, const EVP_MD *t, ENGINE *e), (c, t, e))
LAZY_FWD(crypto, int, EVP_DigestUpdate, (EVP_MD_CTX * c, const void *d, size_t n), (c, d, n))
LAZY_FWD(crypto, int, EVP_DigestFinal_ex, (EVP_MD_CTX * c, unsigned char *md, unsigned int *s),
         (c, md, s))
LAZY_FWD(crypto, int, EVP_Digest,
         (const void *d, size_t n, unsigned char *md, unsigned int *s, const EVP_MD *t, ENGINE *e),
         (d, n, md, s, t, e))
LAZY_FWD(crypto, int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))
LAZY_FWD(crypto, int, EVP_DecodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n))
