/*
 * idmap.h: connection serial -> pointer, open addressing with linear
 * probing and backward-shift deletion (no tombstones), so lookups of a
 * message's destination are O(1) and a stale serial finds nothing.
 */
#ifndef SOCK_IDMAP_H
#define SOCK_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
    uint32_t *keys;  /* 0 = empty; serials start at 1 */
    void **vals;
    size_t cap;      /* power of two */
    size_t n;
};

void idmap_init(struct idmap *m);
void idmap_destroy(struct idmap *m);
/* 0 or -ENOMEM. key must be non-zero and not present. */
int idmap_put(struct idmap *m, uint32_t key, void *val);
void *idmap_get(const struct idmap *m, uint32_t key);
void idmap_del(struct idmap *m, uint32_t key);

#endif
