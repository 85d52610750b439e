/*
 * idmap.c: see idmap.h. Kept at most half full.
 */
#include "idmap.h"

#include <errno.h>
#include <stdlib.h>

/* Fibonacci hashing: the high bits of the product, so keys that differ
   by a multiple of the table size still spread. */
static size_t
slot_of(uint32_t key, size_t cap)
{
    uint64_t h = (uint64_t)key * 11400714819323198485ULL;

    return (size_t)(h >> (64 - __builtin_ctzll(cap)));
}

void
idmap_init(struct idmap *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
    m->n = 0;
}

void
idmap_destroy(struct idmap *m)
{
    free(m->keys);
    free(m->vals);
    idmap_init(m);
}

static int
idmap_grow(struct idmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct idmap bigger = { calloc(cap, sizeof(uint32_t)),
                            calloc(cap, sizeof(void *)), cap, 0 };

    if (bigger.keys == NULL || bigger.vals == NULL) {
        idmap_destroy(&bigger);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != 0)
            idmap_put(&bigger, m->keys[i], m->vals[i]);
    idmap_destroy(m);
    *m = bigger;
    return 0;
}

int
idmap_put(struct idmap *m, uint32_t key, void *val)
{
    size_t i;

    if ((m->n + 1) * 2 > m->cap && idmap_grow(m) != 0)
        return -ENOMEM;
    for (i = slot_of(key, m->cap); m->keys[i] != 0; i = (i + 1) & (m->cap - 1))
        ;
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return 0;
}

void *
idmap_get(const struct idmap *m, uint32_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    for (size_t i = slot_of(key, m->cap); m->keys[i] != 0;
         i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == key)
            return m->vals[i];
    return NULL;
}

void
idmap_del(struct idmap *m, uint32_t key)
{
    size_t mask = m->cap - 1, i, j;

    if (m->cap == 0 || key == 0)
        return;
    for (i = slot_of(key, m->cap); m->keys[i] != key; i = (i + 1) & mask)
        if (m->keys[i] == 0)
            return;
    /* Backward shift: pull later members of the run into the hole. */
    for (j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);

        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->n--;
}
