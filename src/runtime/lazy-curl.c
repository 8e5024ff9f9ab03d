/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcurl on first use (lazy.h): `husk fn` and the daemon's callbacks only. Linked, it brings
 * libssl, libcrypto and a dozen more libraries into every start. curl_easy_setopt and
 * curl_easy_getinfo are variadic: their one argument is taken by the type the option's number
 * says (curl.h's CURLOPTTYPE_* ranges; every CURLINFO_* takes a pointer) and passed on.
 */
#define CURL_DISABLE_TYPECHECK /* the header's macros would rename our definitions */
#include <curl/curl.h>
#include <stdarg.h>
#include <stddef.h>

#include "lazy.h"

static struct lazy_lib curl = {"libcurl.so.4", NULL};

LAZY_FWD(curl, CURLcode, curl_global_init, (long flags), (flags))
LAZY_FWD_VOID(curl, curl_global_cleanup, (void), ())
LAZY_FWD(curl, CURL *, curl_easy_init, (void), ())
LAZY_FWD(curl, CURLcode, curl_easy_perform, (CURL * c), (c))
LAZY_FWD_VOID(curl, curl_easy_cleanup, (CURL * c), (c))
LAZY_FWD(curl, const char *, curl_easy_strerror, (CURLcode code), (code))
LAZY_FWD(curl, struct curl_slist *, curl_slist_append, (struct curl_slist * list, const char *s),
         (list, s))
LAZY_FWD_VOID(curl, curl_slist_free_all, (struct curl_slist * list), (list))

CURLcode
curl_easy_setopt(CURL *c, CURLoption option, ...)
{
    LAZY_SYM(curl, curl_easy_setopt)
    va_list ap;
    CURLcode r;

    va_start(ap, option);
    if (option < CURLOPTTYPE_OBJECTPOINT)
        r = fn(c, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_FUNCTIONPOINT)
        r = fn(c, option, va_arg(ap, void *));
    else if (option < CURLOPTTYPE_OFF_T)
        r = fn(c, option, va_arg(ap, void (*)(void)));
    else if (option < CURLOPTTYPE_BLOB)
        r = fn(c, option, va_arg(ap, curl_off_t));
    else
        r = fn(c, option, va_arg(ap, void *));
    va_end(ap);
    return r;
}

CURLcode
curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
    LAZY_SYM(curl, curl_easy_getinfo)
    va_list ap;

    va_start(ap, info);
    void *out = va_arg(ap, void *);
    va_end(ap);
    return fn(c, info, out);
}
