/*
 * fuzz.h: what every libFuzzer harness in fuzz/ shares: the entry point
 * libFuzzer calls, and CHECK, which traps (a crash libFuzzer reports with
 * the input) when a contract of the code under test does not hold.
 */
#ifndef SOCK_FUZZ_H
#define SOCK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) \
    do { \
        if (!(cond)) \
            __builtin_trap(); \
    } while (0)

#endif
