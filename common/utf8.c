/*
 * utf8.c: incremental UTF-8 validation (RFC 3629, Unicode Table 3-7) with a
 * DFA in the style of Bjoern Hoehrmann's decoder: each byte maps to a class,
 * each (state, class) to the next state. Only validates: no decoding, no
 * replacement characters. What a failure costs (close 1007) is decided by
 * the caller.
 */
#include "utf8.h"

#include <string.h>

/*
 * States. ACCEPT and REJECT are fixed by utf8.h; the others say how many
 * continuation bytes are still due and whether the next one is narrowed
 * (Table 3-7: after E0, ED, F0 and F4 the second byte has a smaller range,
 * which is what rejects overlongs, surrogates and code points > U+10FFFF).
 */
enum {
    S_ACCEPT = UTF8_ACCEPT,
    S_REJECT = UTF8_REJECT,
    S_TAIL1,    /* one more 80..BF */
    S_TAIL2,    /* two more 80..BF */
    S_TAIL3,    /* three more 80..BF */
    S_E0,       /* A0..BF, then one more: no 3-byte overlongs */
    S_ED,       /* 80..9F, then one more: no surrogates */
    S_F0,       /* 90..BF, then two more: no 4-byte overlongs */
    S_F4,       /* 80..8F, then two more: nothing above U+10FFFF */
    S_COUNT
};

/*
 * Byte classes:
 *  0: 00..7F        1: 80..8F        2: 90..9F        3: A0..BF
 *  4: C0 C1 F5..FF (never valid)     5: C2..DF        6: E0
 *  7: E1..EC EE EF  8: ED            9: F0           10: F1..F3
 * 11: F4
 */
#define C_COUNT 12

static const uint8_t byte_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F, 90..9F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0 C1 (overlong 2-byte leads), C2..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0, E1..EC, ED, EE..EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0, F1..F3, F4, F5..FF (beyond U+10FFFF or not UTF-8 at all) */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/*
 * The table is flat and holds each next state premultiplied by C_COUNT,
 * i.e. as the offset of its row, so a step is one add and one load: the
 * loop-carried chain is as short as it gets (Hoehrmann's trick). States
 * are converted to and from row offsets once per call.
 */
_Static_assert((S_COUNT - 1) * C_COUNT <= UINT8_MAX,
               "row offsets must fit in the table's bytes");

#define A_ (S_ACCEPT * C_COUNT)
#define R_ (S_REJECT * C_COUNT)
#define T1 (S_TAIL1 * C_COUNT)
#define T2 (S_TAIL2 * C_COUNT)
#define T3 (S_TAIL3 * C_COUNT)
#define E0 (S_E0 * C_COUNT)
#define ED (S_ED * C_COUNT)
#define F0 (S_F0 * C_COUNT)
#define F4 (S_F4 * C_COUNT)

static const uint8_t transition[S_COUNT * C_COUNT] = {
    /* 00  80  90  A0  bad C2  E0  E1  ED  F0  F1  F4 */
    A_, R_, R_, R_, R_, T1, E0, T2, ED, F0, T3, F4,     /* S_ACCEPT */
    R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_REJECT */
    R_, A_, A_, A_, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_TAIL1 */
    R_, T1, T1, T1, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_TAIL2 */
    R_, T2, T2, T2, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_TAIL3 */
    R_, R_, R_, T1, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_E0 */
    R_, T1, T1, R_, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_ED */
    R_, R_, T2, T2, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_F0 */
    R_, T2, R_, R_, R_, R_, R_, R_, R_, R_, R_, R_,     /* S_F4 */
};

#undef A_
#undef R_
#undef T1
#undef T2
#undef T3
#undef E0
#undef ED
#undef F0
#undef F4

/* Skips whole 8-byte words of ASCII; returns the first word that is not. */
static const uint8_t *
skip_ascii(const uint8_t *p, const uint8_t *end)
{
    uint64_t w;

    while (end - p >= 8) {
        memcpy(&w, p, sizeof(w));
        if (w & 0x8080808080808080ull)
            break;
        p += 8;
    }
    return p;
}

/*
 * The fast path runs only at a character boundary (ACCEPT), where ASCII is
 * the only thing that keeps the state. Once a word holds a non-ASCII byte,
 * the DFA takes the next 8 bytes, so a word that is mostly ASCII is not
 * rescanned byte by byte. REJECT is a sink in the table, so checking for it
 * once per chunk still returns it as soon as the call that saw the bad byte.
 */
uint32_t
utf8_validate(uint32_t state, const uint8_t *p, size_t len)
{
    if (state >= S_COUNT)   /* not a state we ever returned */
        return UTF8_REJECT;
    if (state == UTF8_REJECT || len == 0)
        return state;

    const uint8_t *end = p + len;
    uint32_t row = state * C_COUNT;

    while (p < end) {
        if (row == S_ACCEPT * C_COUNT) {
            p = skip_ascii(p, end);
            if (p == end)
                break;
        }
        const uint8_t *stop = end - p > 8 ? p + 8 : end;

        do
            row = transition[row + byte_class[*p++]];
        while (p < stop);
        if (row == S_REJECT * C_COUNT)
            return UTF8_REJECT;
    }
    return row / C_COUNT;
}
