/*
 * test_utf8.c: unit tests for common/utf8.c: Markus Kuhn's UTF-8 decoder
 * stress test, the Unicode Table 3-7 ranges checked exhaustively against
 * an independent reference, every split of the input, the ASCII fast path
 * around a bad byte at every offset, and fail-fast rejection.
 */
#include "utf8.h"

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* What a whole input leaves the validator in. */
enum verdict { V_ACCEPT, V_REJECT, V_PARTIAL };

static enum verdict
verdict_of(uint32_t state)
{
    if (state == UTF8_ACCEPT)
        return V_ACCEPT;
    if (state == UTF8_REJECT)
        return V_REJECT;
    return V_PARTIAL;
}

/* Validates a guard-page copy, so the fast path cannot read past len. */
static uint32_t
check_bytes(const uint8_t *p, size_t len)
{
    return utf8_validate(UTF8_ACCEPT, guard_copy(p, len), len);
}

/*
 * Reference, written differently from the DFA on purpose: decode each
 * sequence by its lead byte, then judge the code point (Table 3-7's rules
 * restated as "shortest form, not a surrogate, at most U+10FFFF").
 */
static enum verdict
ref_verdict(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t b = p[i];
        size_t n;
        uint32_t cp, min;

        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xe0) == 0xc0)
            n = 2;
        else if ((b & 0xf0) == 0xe0)
            n = 3;
        else if ((b & 0xf8) == 0xf0)
            n = 4;
        else
            return V_REJECT;
        cp = b & (0x7fu >> n);
        min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
        for (size_t k = 1; k < n; k++) {
            if (i + k == len) {
                /* Truncated: partial only if no completion is refused. */
                uint32_t lo = cp, hi = cp;

                for (size_t r = k; r < n; r++) {
                    lo = lo << 6;
                    hi = hi << 6 | 0x3f;
                }
                if (hi < min || lo > 0x10ffff ||
                    (lo >= 0xd800 && hi <= 0xdfff))
                    return V_REJECT;
                return V_PARTIAL;
            }
            if ((p[i + k] & 0xc0) != 0x80)
                return V_REJECT;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return V_REJECT;
        i += n;
    }
    return V_ACCEPT;
}

static size_t
encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

#define ck_valid(lit) \
    ck_assert_uint_eq(check_bytes(S(lit)), UTF8_ACCEPT)
#define ck_invalid(lit) \
    ck_assert_uint_eq(check_bytes(S(lit)), UTF8_REJECT)

/* Kuhn 1: correct text ("kosme" in Greek). */
START_TEST(test_kuhn_correct_text)
{
    ck_valid("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5");
    ck_valid("");
    ck_valid("plain ASCII, longer than one 8-byte word");
}
END_TEST

/* Kuhn 2.1-2.2 and Table 3-7's boundary code points. */
START_TEST(test_kuhn_boundaries)
{
    ck_valid("\x00");                   /* U+0000 */
    ck_valid("\x7f");                   /* U+007F */
    ck_valid("\xc2\x80");               /* U+0080 */
    ck_valid("\xdf\xbf");               /* U+07FF */
    ck_valid("\xe0\xa0\x80");           /* U+0800 */
    ck_valid("\xef\xbf\xbf");           /* U+FFFF */
    ck_valid("\xf0\x90\x80\x80");       /* U+10000 */
    ck_valid("\xf4\x8f\xbf\xbf");       /* U+10FFFF */
    ck_invalid("\xf4\x90\x80\x80");     /* U+110000 */
    ck_invalid("\xf7\xbf\xbf\xbf");     /* U+1FFFFF */
    ck_invalid("\xf8\x88\x80\x80\x80"); /* 5 bytes, U+200000 */
    ck_invalid("\xfb\xbf\xbf\xbf\xbf"); /* 5 bytes, U+3FFFFFF */
    ck_invalid("\xfc\x84\x80\x80\x80\x80");     /* 6 bytes */
    ck_invalid("\xfd\xbf\xbf\xbf\xbf\xbf");     /* 6 bytes, U+7FFFFFFF */
}
END_TEST

/* Kuhn 2.3: other boundaries; 5.3: noncharacters are well-formed. */
START_TEST(test_kuhn_other_boundaries)
{
    ck_valid("\xed\x9f\xbf");           /* U+D7FF */
    ck_valid("\xee\x80\x80");           /* U+E000 */
    ck_valid("\xef\xbf\xbd");           /* U+FFFD */
    ck_valid("\xef\xbf\xbe");           /* U+FFFE */
    ck_valid("\xef\xb7\x90");           /* U+FDD0 */
    ck_valid("\xef\xb7\xaf");           /* U+FDEF */
    ck_valid("\xf0\x9f\xbf\xbe");       /* U+1FFFE */
    ck_valid("\xf4\x8f\xbf\xbe");       /* U+10FFFE */
}
END_TEST

/* Kuhn 3.1: unexpected continuation bytes. */
START_TEST(test_kuhn_lone_continuation)
{
    uint8_t b[1];

    for (unsigned c = 0x80; c <= 0xbf; c++) {
        b[0] = (uint8_t)c;
        ck_assert_uint_eq(check_bytes(b, 1), UTF8_REJECT);
    }
    ck_invalid("\x80\xbf");
    ck_invalid("\x80\xbf\x80");
    ck_invalid("\x80\xbf\x80\xbf");
    ck_invalid("\x80\xbf\x80\xbf\x80");
    ck_invalid("\x80\xbf\x80\xbf\x80\xbf");
    ck_invalid("\x80\xbf\x80\xbf\x80\xbf\x80");
    ck_invalid("a\x80");
    ck_invalid("\xc2\x80\x80");         /* one continuation too many */
}
END_TEST

/* Kuhn 3.2: every lead byte followed by a space. */
START_TEST(test_kuhn_lonely_start)
{
    uint8_t b[2] = { 0, ' ' };

    for (unsigned c = 0xc0; c <= 0xff; c++) {
        b[0] = (uint8_t)c;
        ck_assert_uint_eq(check_bytes(b, 2), UTF8_REJECT);
    }
}
END_TEST

/*
 * Kuhn 3.3-3.4: sequences missing their last byte. At the end of the
 * input a valid prefix is "partial", neither accepted nor rejected; what
 * follows it, or an impossible prefix, is rejected.
 */
START_TEST(test_kuhn_truncated)
{
    static const struct {
        const char *s;
        size_t len;
        enum verdict v;
    } t[] = {
        { "\xc0", 1, V_REJECT },            /* overlong U+0000 forms */
        { "\xe0\x80", 2, V_REJECT },
        { "\xf0\x80\x80", 3, V_REJECT },
        { "\xf8\x80\x80\x80", 4, V_REJECT },
        { "\xfc\x80\x80\x80\x80", 5, V_REJECT },
        { "\xdf", 1, V_PARTIAL },           /* U+07FF ... */
        { "\xef\xbf", 2, V_PARTIAL },       /* U+FFFF ... */
        { "\xf7\xbf\xbf", 3, V_REJECT },    /* U+1FFFFF: too big */
        { "\xfb\xbf\xbf\xbf", 4, V_REJECT },
        { "\xfd\xbf\xbf\xbf\xbf", 5, V_REJECT },
        { "\xc2", 1, V_PARTIAL },
        { "\xe0", 1, V_PARTIAL },
        { "\xe0\xa0", 2, V_PARTIAL },
        { "\xed", 1, V_PARTIAL },
        { "\xed\x9f", 2, V_PARTIAL },
        { "\xf0", 1, V_PARTIAL },
        { "\xf0\x90", 2, V_PARTIAL },
        { "\xf0\x90\x80", 3, V_PARTIAL },
        { "\xf4\x8f\xbf", 3, V_PARTIAL },
        { "\xf1\x80\x80", 3, V_PARTIAL },
        { "abcdefghij\xf4\x8f\xbf", 13, V_PARTIAL },
    };
    uint8_t b[16];

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint32_t st = check_bytes((const uint8_t *)t[i].s, t[i].len);

        ck_assert_msg(verdict_of(st) == t[i].v, "case %zu state %u",
                      i, (unsigned)st);
        /* Anything ASCII after a partial sequence is an error. */
        memcpy(b, t[i].s, t[i].len);
        b[t[i].len] = ' ';
        ck_assert_uint_eq(check_bytes(b, t[i].len + 1), UTF8_REJECT);
    }
    /* 3.4: all of 3.3 concatenated. */
    ck_invalid("\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80"
               "\x80\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf"
               "\xbf\xbf");
}
END_TEST

/* Kuhn 3.5: bytes that never appear in UTF-8. */
START_TEST(test_kuhn_impossible)
{
    ck_invalid("\xfe");
    ck_invalid("\xff");
    ck_invalid("\xfe\xfe\xff\xff");
    ck_invalid("abc\xfe");
    ck_invalid("\xc0");
    ck_invalid("\xc1");
    ck_invalid("\xf5\x80\x80\x80");
}
END_TEST

/* Kuhn 4: overlong forms of '/', the largest overlongs, and NUL. */
START_TEST(test_kuhn_overlong)
{
    ck_invalid("\xc0\xaf");
    ck_invalid("\xe0\x80\xaf");
    ck_invalid("\xf0\x80\x80\xaf");
    ck_invalid("\xf8\x80\x80\x80\xaf");
    ck_invalid("\xfc\x80\x80\x80\x80\xaf");

    ck_invalid("\xc1\xbf");
    ck_invalid("\xe0\x9f\xbf");
    ck_invalid("\xf0\x8f\xbf\xbf");
    ck_invalid("\xf8\x87\xbf\xbf\xbf");
    ck_invalid("\xfc\x83\xbf\xbf\xbf\xbf");

    ck_invalid("\xc0\x80");
    ck_invalid("\xe0\x80\x80");
    ck_invalid("\xf0\x80\x80\x80");
    ck_invalid("\xf8\x80\x80\x80\x80");
    ck_invalid("\xfc\x80\x80\x80\x80\x80");
}
END_TEST

/* Kuhn 5.1-5.2: UTF-16 surrogates, single and paired (CESU-8). */
START_TEST(test_kuhn_surrogates)
{
    ck_invalid("\xed\xa0\x80");         /* U+D800 */
    ck_invalid("\xed\xad\xbf");         /* U+DB7F */
    ck_invalid("\xed\xae\x80");         /* U+DB80 */
    ck_invalid("\xed\xaf\xbf");         /* U+DBFF */
    ck_invalid("\xed\xb0\x80");         /* U+DC00 */
    ck_invalid("\xed\xbe\x80");         /* U+DF80 */
    ck_invalid("\xed\xbf\xbf");         /* U+DFFF */

    ck_invalid("\xed\xa0\x80\xed\xb0\x80");
    ck_invalid("\xed\xa0\x80\xed\xbf\xbf");
    ck_invalid("\xed\xad\xbf\xed\xb0\x80");
    ck_invalid("\xed\xad\xbf\xed\xbf\xbf");
    ck_invalid("\xed\xae\x80\xed\xb0\x80");
    ck_invalid("\xed\xae\x80\xed\xbf\xbf");
    ck_invalid("\xed\xaf\xbf\xed\xb0\x80");
    ck_invalid("\xed\xaf\xbf\xed\xbf\xbf");
}
END_TEST

/* Every scalar value is accepted; every surrogate, encoded, is not. */
START_TEST(test_all_code_points)
{
    uint8_t b[4];

    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        size_t n = encode(cp, b);
        uint32_t want = cp >= 0xd800 && cp <= 0xdfff ? UTF8_REJECT
                                                     : UTF8_ACCEPT;

        if (utf8_validate(UTF8_ACCEPT, b, n) != want)
            ck_abort_msg("U+%04X", (unsigned)cp);
    }
    /* U+110000 up to the old 4-byte limit. */
    for (uint32_t cp = 0x110000; cp <= 0x1fffff; cp += 0x1001) {
        size_t n = encode(cp, b);

        ck_assert_uint_eq(utf8_validate(UTF8_ACCEPT, b, n), UTF8_REJECT);
    }
}
END_TEST

/*
 * Table 3-7 exhaustively for 1 to 3 bytes, and for 4 bytes every lead and
 * second byte with edge values after them, against the reference.
 */
START_TEST(test_table_3_7)
{
    static const uint8_t edge[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                    0xa0, 0xbf, 0xc0, 0xff };
    uint8_t b[4];

    for (unsigned x = 0; x < 1u << 24; x++) {
        for (size_t n = 1; n <= 3; n++) {
            if (n < 3 && (x >> (8 * n)) != 0)
                continue;
            for (size_t k = 0; k < n; k++)
                b[k] = (uint8_t)(x >> (8 * (n - 1 - k)));
            if (verdict_of(utf8_validate(UTF8_ACCEPT, b, n)) !=
                ref_verdict(b, n))
                ck_abort_msg("n=%zu bytes=%06X", n, x);
        }
    }
    for (unsigned lead = 0xf0; lead <= 0xff; lead++)
        for (unsigned b1 = 0; b1 <= 0xff; b1++)
            for (size_t i = 0; i < sizeof(edge); i++)
                for (size_t j = 0; j < sizeof(edge); j++) {
                    b[0] = (uint8_t)lead;
                    b[1] = (uint8_t)b1;
                    b[2] = edge[i];
                    b[3] = edge[j];
                    ck_assert_int_eq(
                        verdict_of(utf8_validate(UTF8_ACCEPT, b, 4)),
                        ref_verdict(b, 4));
                }
}
END_TEST

/* Random near-UTF-8 strings, whole and in random pieces, vs reference. */
START_TEST(test_random_vs_reference)
{
    static const uint8_t pick[] = { 'a', 0x00, 0x7f, 0x80, 0x8f, 0x90,
                                    0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
                                    0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                    0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5,
                                    0xfe, 0xff };
    uint64_t seed = 0x5eed0001;
    uint8_t b[48];

    for (int iter = 0; iter < 200000; iter++) {
        size_t n = test_rand(&seed) % sizeof(b);

        for (size_t i = 0; i < n; i++) {
            uint64_t r = test_rand(&seed);

            b[i] = r & 1 ? pick[(r >> 8) % sizeof(pick)] : (uint8_t)(r >> 8);
        }
        enum verdict want = ref_verdict(b, n);
        uint32_t st = UTF8_ACCEPT;

        ck_assert_int_eq(verdict_of(check_bytes(b, n)), want);
        for (size_t i = 0; i < n;) {
            size_t k = 1 + test_rand(&seed) % (n - i);

            st = utf8_validate(st, guard_copy(b + i, k), k);
            i += k;
        }
        ck_assert_int_eq(verdict_of(st), want);
    }
}
END_TEST

static const char *const valid_multi[] = {
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
    "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80"
    "\xf4\x8f\xbf\xbf",
    "ascii then \xe2\x82\xac and \xf0\x9f\x98\x80 then more ascii text",
    "\xed\x9f\xbf\xee\x80\x80\xf3\xbf\xbf\xbf\xe1\x80\x80",
    "0123456\xc3\xa9" "01234567\xe2\x82\xac" "89abcdef\xf0\x9f\x98\x80",
};

/* Feeding in two pieces, at every cut, ends where feeding whole does. */
START_TEST(test_split_every_offset)
{
    for (size_t t = 0; t < sizeof(valid_multi) / sizeof(*valid_multi);
         t++) {
        const uint8_t *s = (const uint8_t *)valid_multi[t];
        size_t n = strlen(valid_multi[t]);
        uint32_t whole = check_bytes(s, n);

        ck_assert_uint_eq(whole, UTF8_ACCEPT);
        for (size_t cut = 0; cut <= n; cut++) {
            uint32_t st = check_bytes(s, cut);

            ck_assert_uint_ne(st, UTF8_REJECT);
            ck_assert_uint_eq(st == UTF8_ACCEPT, ref_verdict(s, cut) ==
                              V_ACCEPT);
            st = utf8_validate(st, guard_copy(s + cut, n - cut), n - cut);
            ck_assert_msg(st == whole, "string %zu cut %zu", t, cut);
        }
        /* One byte per call. */
        uint32_t st = UTF8_ACCEPT;

        for (size_t i = 0; i < n; i++)
            st = utf8_validate(st, guard_copy(s + i, 1), 1);
        ck_assert_uint_eq(st, whole);
    }
}
END_TEST

/* Every proper prefix of a character is partial; the rest completes it. */
START_TEST(test_prefix_states)
{
    static const uint32_t cps[] = { 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000,
                                    0xffff, 0x10000, 0x10ffff, 0x20ac };
    uint8_t b[4];

    for (size_t i = 0; i < sizeof(cps) / sizeof(*cps); i++) {
        size_t n = encode(cps[i], b);

        for (size_t k = 1; k < n; k++) {
            uint32_t st = check_bytes(b, k);

            ck_assert_uint_ne(st, UTF8_ACCEPT);
            ck_assert_uint_ne(st, UTF8_REJECT);
            ck_assert_uint_eq(utf8_validate(st, b + k, n - k), UTF8_ACCEPT);
        }
    }
}
END_TEST

/*
 * The fast path reads 8 bytes at a time: put one bad byte at every offset
 * of a long ASCII run (so at every lane of every word, and in the tail),
 * and likewise a good multi-byte character, which must not be mistaken.
 */
START_TEST(test_ascii_fast_path)
{
    static const uint8_t bad[] = { 0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff };
    uint8_t b[72];

    for (size_t len = 64; len <= sizeof(b); len++) {
        for (size_t pos = 0; pos < 64 && pos < len; pos++) {
            for (size_t k = 0; k < sizeof(bad); k++) {
                memset(b, 'x', len);
                b[pos] = bad[k];
                ck_assert_msg(check_bytes(b, len) == UTF8_REJECT,
                              "len %zu pos %zu byte %02x", len, pos, bad[k]);
            }
            if (pos + 3 <= len) {
                memset(b, 'x', len);
                memcpy(b + pos, "\xe2\x82\xac", 3);
                ck_assert_uint_eq(check_bytes(b, len), UTF8_ACCEPT);
            }
        }
        memset(b, 'x', len);
        ck_assert_uint_eq(check_bytes(b, len), UTF8_ACCEPT);
        /* A character cut off by the end of the buffer. */
        memcpy(b + len - 2, "\xe2\x82", 2);
        ck_assert_uint_eq(verdict_of(check_bytes(b, len)), V_PARTIAL);
    }
}
END_TEST

/*
 * RFC 6455 §8.1 fail fast: the call holding the first bad byte returns
 * REJECT, whatever follows; fed one byte at a time, REJECT appears at
 * exactly that byte, and stays for any later input.
 */
START_TEST(test_fail_fast)
{
    static const struct {
        const char *s;
        size_t len;
        size_t bad;     /* index of the first byte that cannot fit */
    } t[] = {
        { "abc\xff" "def", 7, 3 },
        { "\xc0\xaf", 2, 0 },
        { "\xe0\x80\xaf", 3, 1 },
        { "\xf0\x80\x80\xaf", 4, 1 },
        { "\xed\xa0\x80", 3, 1 },
        { "\xf4\x90\x80\x80", 4, 1 },
        { "\xf8\x88\x80\x80\x80", 5, 0 },
        { "ok \xe2\x82" "x", 6, 5 },
        { "\xce\xba\xce\xba\xce\xba\xce\xba\xce\xba\x80 more", 16, 10 },
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
        const uint8_t *s = (const uint8_t *)t[i].s;
        uint32_t st = UTF8_ACCEPT;

        for (size_t k = 0; k < t[i].len; k++) {
            st = utf8_validate(st, guard_copy(s + k, 1), 1);
            ck_assert_msg((st == UTF8_REJECT) == (k >= t[i].bad),
                          "case %zu byte %zu state %u", i, k, (unsigned)st);
        }
        /* The first call alone, ending at the bad byte, rejects. */
        ck_assert_uint_eq(check_bytes(s, t[i].bad + 1), UTF8_REJECT);
        /* Sticky: valid input afterwards changes nothing. */
        ck_assert_uint_eq(utf8_validate(st, S("fine")), UTF8_REJECT);
        ck_assert_uint_eq(utf8_validate(st, S("\xc3\xa9")), UTF8_REJECT);
        ck_assert_uint_eq(utf8_validate(st, NULL, 0), UTF8_REJECT);
    }
}
END_TEST

START_TEST(test_empty_input)
{
    uint32_t st = check_bytes(S("\xe2\x82"));

    ck_assert_uint_eq(utf8_validate(UTF8_ACCEPT, NULL, 0), UTF8_ACCEPT);
    ck_assert_uint_eq(utf8_validate(st, NULL, 0), st);
}
END_TEST

static Suite *
utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *kuhn = tcase_create("kuhn");
    TCase *ranges = tcase_create("ranges");
    TCase *stream = tcase_create("stream");

    tcase_add_test(kuhn, test_kuhn_correct_text);
    tcase_add_test(kuhn, test_kuhn_boundaries);
    tcase_add_test(kuhn, test_kuhn_other_boundaries);
    tcase_add_test(kuhn, test_kuhn_lone_continuation);
    tcase_add_test(kuhn, test_kuhn_lonely_start);
    tcase_add_test(kuhn, test_kuhn_truncated);
    tcase_add_test(kuhn, test_kuhn_impossible);
    tcase_add_test(kuhn, test_kuhn_overlong);
    tcase_add_test(kuhn, test_kuhn_surrogates);
    suite_add_tcase(s, kuhn);

    tcase_add_test(ranges, test_all_code_points);
    tcase_add_test(ranges, test_table_3_7);
    tcase_add_test(ranges, test_random_vs_reference);
    tcase_set_timeout(ranges, 120);
    suite_add_tcase(s, ranges);

    tcase_add_test(stream, test_split_every_offset);
    tcase_add_test(stream, test_prefix_states);
    tcase_add_test(stream, test_ascii_fast_path);
    tcase_add_test(stream, test_fail_fast);
    tcase_add_test(stream, test_empty_input);
    suite_add_tcase(s, stream);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
