/* SPDX-License-Identifier: Apache-2.0 */
/* A mutation that knows JSON: pick a node of the document and change it (another value, a key
 * of the format added or removed, an element repeated), so that inputs stay documents and
 * reach the parsers' checks instead of stopping at a syntax error. The target's tokens are its
 * words: keys, enum values, paths. */
#define _GNU_SOURCE
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "util.h"

/* The n-th node in document order (0 is the root), and its parent. */
static json_t *
nth(json_t *j, size_t *n, json_t **parent, json_t *up)
{
    if ((*n)-- == 0) {
        *parent = up;
        return j;
    }
    json_t *v, *found = NULL;
    size_t i;
    const char *k;
    if (json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            if ((found = nth(v, n, parent, j)) != NULL)
                return found;
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            if ((found = nth(v, n, parent, j)) != NULL)
                return found;
        }
    }
    return NULL;
}

static size_t
count(json_t *j)
{
    size_t n = 1, i;
    json_t *v;
    const char *k;
    if (json_is_object(j)) {
        json_object_foreach(j, k, v) n += count(v);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) n += count(v);
    }
    return n;
}

static const char *
word(uint64_t *rng)
{
    static const char *const generic[] = {"",        ".",  "..",   "/", "/..", "../../x",
                                          "a/../..", "//", "\xff", "0", "-1"};
    size_t n = fuzz_target.n_tokens + ARRAY_SIZE(generic);
    size_t k = fuzz_below(rng, n);
    return k < fuzz_target.n_tokens ? fuzz_target.tokens[k] : generic[k - fuzz_target.n_tokens];
}

static const json_int_t ints[] = {0,          1,
                                  -1,         2,
                                  7,          40,
                                  255,        256,
                                  0777,       01777,
                                  65535,      65536,
                                  INT32_MAX,  (json_int_t)INT32_MAX + 1,
                                  UINT32_MAX, (json_int_t)UINT32_MAX + 1,
                                  INT64_MAX,  INT64_MIN};

/* Another value of the same kind: a document that stays valid more often gets deeper. */
static json_t *
same_kind(json_t *node, uint64_t *rng)
{
    if (json_is_integer(node))
        return json_integer(ints[fuzz_below(rng, ARRAY_SIZE(ints))]);
    if (json_is_boolean(node))
        return json_boolean(!json_is_true(node));
    if (json_is_string(node)) {
        json_t *s = json_string(word(rng));
        return s ? s : json_string("");
    }
    return NULL;
}

/* A value of any type, small. */
static json_t *
value(uint64_t *rng)
{
    switch (fuzz_below(rng, 9)) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(fuzz_rng_next(rng) & 1);
    case 2:
    case 3:
        return json_integer(ints[fuzz_below(rng, ARRAY_SIZE(ints))]);
    case 4:
        return json_real(fuzz_below(rng, 2) ? 0.5 : 1e300);
    case 5:
        return json_object();
    case 6:
        return json_pack("[s]", word(rng));
    default: {
        json_t *s = json_string(word(rng)); /* NULL for one that is not UTF-8 */
        return s ? s : json_string("");
    }
    }
}

static void
edit(json_t *node, json_t *parent, uint64_t *rng)
{
    size_t r = fuzz_below(rng, 6);
    if (json_is_object(node) && r < 2) { /* add a key of the format, or remove one */
        if (r == 0 || json_object_size(node) == 0) {
            json_object_set_new(node, word(rng), value(rng));
        } else {
            void *it = json_object_iter(node);
            for (size_t k = fuzz_below(rng, json_object_size(node)); k > 0 && it; k--)
                it = json_object_iter_next(node, it);
            if (it)
                json_object_del(node, json_object_iter_key(it));
        }
        return;
    }
    if (json_is_array(node) && r < 2) { /* repeat an element, or drop one */
        size_t n = json_array_size(node);
        if (r == 0 && n > 0)
            json_array_append(node, json_array_get(node, fuzz_below(rng, n)));
        else if (n > 0)
            json_array_remove(node, fuzz_below(rng, n));
        else
            json_array_append_new(node, value(rng));
        return;
    }
    if (json_is_string(node) && r < 3) { /* grow a string with a word */
        const char *w = word(rng);
        cleanup_free char *s = r == 0 ? xasprintf("%s%s", json_string_value(node), w)
                                      : xasprintf("%s%s", w, json_string_value(node));
        json_string_set(node, s); /* refused (kept) when not UTF-8 */
        return;
    }
    json_t *v = fuzz_below(rng, 3) ? same_kind(node, rng) : NULL; /* replace it */
    if (v == NULL)
        v = value(rng);
    if (json_is_object(parent)) {
        const char *k;
        json_t *e;
        json_object_foreach(parent, k, e)
        {
            if (e == node) {
                json_object_set_new(parent, k, v);
                return;
            }
        }
    } else if (json_is_array(parent)) {
        for (size_t i = 0; i < json_array_size(parent); i++)
            if (json_array_get(parent, i) == node) {
                json_array_set_new(parent, i, v);
                return;
            }
    }
    json_decref(v);
}

bool
fuzz_json_mutate(struct fuzz_input *in, uint64_t *rng)
{
    json_t *doc = json_loadb((const char *)in->data, in->len, JSON_DECODE_ANY, NULL);
    if (doc == NULL)
        return false;
    for (size_t k = 1 + fuzz_below(rng, 3); k > 0; k--) {
        size_t n = fuzz_below(rng, count(doc));
        json_t *parent = NULL, *node = nth(doc, &n, &parent, NULL);
        if (node)
            edit(node, parent, rng);
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    if (text == NULL)
        return false;
    fuzz_input_set(in, text, strlen(text));
    free(text);
    return true;
}
