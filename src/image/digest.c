/* SPDX-License-Identifier: Apache-2.0 */
/* sha256 digests as OCI writes them ("sha256:<64 lowercase hex>"), through libcrypto's EVP. */
#define _GNU_SOURCE
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "img-internal.h"
#include "util.h"

bool
img_digest_valid(const char *digest)
{
    if (digest == NULL || !str_has_prefix(digest, "sha256:") || strlen(digest) != 7 + 64)
        return false;
    for (const char *p = digest + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

struct img_sha256 *
img_sha256_new(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        abort(); /* allocation failure, as everywhere in husk */
    return (struct img_sha256 *)ctx;
}

void
img_sha256_update(struct img_sha256 *h, const void *buf, size_t len)
{
    EVP_DigestUpdate((EVP_MD_CTX *)h, buf, len);
}

char *
img_sha256_final(struct img_sha256 *h)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex((EVP_MD_CTX *)h, md, &n);
    EVP_MD_CTX_free((EVP_MD_CTX *)h);
    char *out = xmalloc(7 + 2 * n + 1);
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    return out;
}

char *
img_digest_buf(const void *buf, size_t len)
{
    struct img_sha256 *h = img_sha256_new();
    img_sha256_update(h, buf, len);
    return img_sha256_final(h);
}
