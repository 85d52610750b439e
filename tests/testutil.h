/*
 * testutil.h: helpers shared by the Check tests: guard-page copies so a
 * parser that reads past its input crashes, and a seeded PRNG.
 */
#ifndef SOCK_TESTUTIL_H
#define SOCK_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Copies len bytes of p to the end of a buffer whose next page is
 * PROT_NONE, so reading p[len] faults. The copy stays valid until the
 * next call (one buffer is reused).
 */
const uint8_t *guard_copy(const void *p, size_t len);
/* Same, but writable (for in-place unmasking). */
uint8_t *guard_copy_mut(const void *p, size_t len);

/* xorshift64*, deterministic for a seed. */
uint64_t test_rand(uint64_t *state);

#endif
