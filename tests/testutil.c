/*
 * testutil.c: guard-page buffers and a PRNG for the unit tests.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint8_t *guard_base;
static size_t guard_size;

uint8_t *
guard_copy_mut(const void *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t need = (len + page - 1) / page * page + page;

    if (need > guard_size) {
        if (guard_base != NULL)
            munmap(guard_base, guard_size);
        guard_base = mmap(NULL, need, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (guard_base == MAP_FAILED)
            abort();
        guard_size = need;
        if (mprotect(guard_base + need - page, page, PROT_NONE) != 0)
            abort();
    }
    uint8_t *dst = guard_base + guard_size - page - len;
    if (len > 0)
        memcpy(dst, p, len);
    return dst;
}

const uint8_t *
guard_copy(const void *p, size_t len)
{
    return guard_copy_mut(p, len);
}

uint64_t
test_rand(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
