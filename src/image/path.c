/* SPDX-License-Identifier: Apache-2.0 */
/* Lexical path helpers, and the checks that keep archive entries inside their root. */
#define _GNU_SOURCE
#include <string.h>

#include "img-internal.h"
#include "util.h"

/* Split on '/', dropping empty and "." parts; with dots, ".." pops (never above the start) and
 * *climbed says whether one tried to. */
static char *
clean(const char *path, bool absolute, bool dots, bool *climbed)
{
    size_t len = strlen(path);
    char *out = xmalloc(len + 2);
    size_t o = 0;

    if (climbed)
        *climbed = false;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (dots && n == 2 && s[0] == '.' && s[1] == '.') {
            if (o == 0 && climbed)
                *climbed = true;
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        if (o > 0 || absolute)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    if (o == 0 && absolute)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

char *
img_path_clean(const char *path)
{
    return clean(path, true, false, NULL);
}

char *
img_path_resolve_dots(const char *path)
{
    return clean(path, true, true, NULL);
}

char *
img_path_join(const char *dir, const char *name)
{
    cleanup_free char *j = xasprintf("%s/%s", dir, name);
    return img_path_clean(j);
}

char *
img_path_dirname(const char *path)
{
    cleanup_free char *c = img_path_clean(path);
    char *slash = strrchr(c, '/');
    if (slash == NULL || slash == c)
        return xstrdup("/");
    return xstrndup(c, (size_t)(slash - c));
}

const char *
img_path_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

char *
img_path_archive(const char *name)
{
    bool climbed;
    /* A ".." anywhere is refused, even one that would stay inside ("a/../b"): archives made by
     * real tools never need it, and refusing is simpler to reason about than resolving. */
    for (const char *p = name; *p;) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        if (p - s == 2 && s[0] == '.' && s[1] == '.')
            return NULL;
    }
    char *c = clean(name, false, true, &climbed);
    if (climbed) {
        free(c);
        return NULL;
    }
    return c;
}

bool
img_link_stays_inside(const char *linkpath, const char *target)
{
    if (target[0] == '/')
        return true;
    /* Depth of the link's directory below the root, then walk the target from there. */
    cleanup_free char *abs = xasprintf("/%s", linkpath);
    cleanup_free char *dir = img_path_dirname(abs);
    long depth = 0;
    if (strcmp(dir, "/") != 0)
        for (const char *p = dir; *p; p++)
            depth += *p == '/';
    for (const char *p = target; *p;) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            if (--depth < 0)
                return false;
        } else if (n > 0 && !(n == 1 && s[0] == '.')) {
            depth++;
        }
    }
    return true;
}
