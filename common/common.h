/*
 * common.h: small helpers every part of sock uses: container_of, array
 * sizes, branch hints, an intrusive doubly linked list and monotonic time.
 * Depends on nothing but libc.
 */
#ifndef SOCK_COMMON_H
#define SOCK_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Intrusive circular doubly linked list (after the Linux kernel's). */
struct list {
    struct list *next, *prev;
};

static inline void
list_init(struct list *l)
{
    l->next = l->prev = l;
}

static inline bool
list_empty(const struct list *l)
{
    return l->next == l;
}

static inline void
list_insert_tail(struct list *head, struct list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Unlinks n and leaves it self-linked, so a second remove is harmless. */
static inline void
list_remove(struct list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

#define list_first(head, type, member) \
    (list_empty(head) ? NULL : container_of((head)->next, type, member))

/* Milliseconds on CLOCK_MONOTONIC. */
static inline uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FNV-1a over n bytes: the hash of the small name tables (topics, Redis
   channels). */
static inline uint64_t
hash_fnv1a(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

#endif
