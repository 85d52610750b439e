/*
 * wsl_common.h: the few helpers every part of wsload uses: container_of,
 * MIN/MAX, monotonic nanoseconds and a cheap PRNG. Header only.
 *
 * wsload shares no code with sockd on purpose: it is written from RFC 6455
 * so that a bug in the server's codec cannot hide behind the same bug in
 * its load generator, and so it measures other servers on equal terms.
 */
#ifndef WSL_COMMON_H
#define WSL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define WSL_NS_PER_S 1000000000ull

/* CLOCK_MONOTONIC in ns: one clock for every worker process, so a
   timestamp a publisher puts in a payload means the same to subscribers
   in other processes. */
static inline uint64_t
wsl_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * WSL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/*
 * xorshift64*: masking keys and handshake nonces. RFC 6455 §5.3 wants
 * masking keys unpredictable to scripts in a browser; a load generator
 * with no untrusted code aboard only needs them to vary per frame, and a
 * few ns per key keeps the client from being the bottleneck. Seeded from
 * getrandom per worker. The state must never be 0.
 */
static inline uint64_t
wsl_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
