/*
 * test_ws_frame.c: unit tests for worker/ws_frame.c: client header parsing
 * in every length form, every violation and every split (ending at a guard
 * page), unmasking against a bytewise reference, server header bytes, and
 * close payloads both ways.
 */
#include "ws_frame.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "utf8.h"

static const uint8_t test_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

/*
 * Builds a masked client header: b0, the length in the form that len7
 * asks for (126: 16 bits, 127: 64 bits, else len7 itself), then the mask.
 */
static size_t
client_header(uint8_t *out, uint8_t b0, uint8_t len7, uint64_t len)
{
    size_t n = 2;

    out[0] = b0;
    out[1] = 0x80 | len7;
    if (len7 == 126) {
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else if (len7 == 127) {
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(len >> shift);
    }
    memcpy(out + n, test_mask, 4);
    return n + 4;
}

static uint8_t
len7_for(uint64_t len)
{
    return len <= 125 ? (uint8_t)len : len <= 0xffff ? 126 : 127;
}

/* parse(guard_copy(buf, cut), cut) for every cut: 0 until it is whole. */
static void
check_every_split(const uint8_t *buf, size_t hdrlen, size_t extra)
{
    struct ws_frame f;

    for (size_t cut = 0; cut <= hdrlen + extra; cut++) {
        ssize_t r = ws_frame_parse_header(&f, guard_copy(buf, cut), cut);

        ck_assert_msg(r == (cut < hdrlen ? 0 : (ssize_t)hdrlen),
                      "cut %zu of %zu: %zd", cut, hdrlen, r);
    }
}

START_TEST(test_parse_length_forms)
{
    static const struct {
        uint64_t len;
        uint8_t len7;
        size_t hdrlen;
    } t[] = {
        { 0, 0, 6 },
        { 1, 1, 6 },
        { 125, 125, 6 },
        { 126, 126, 8 },
        { 65535, 126, 8 },
        { 65536, 127, 14 },
        { 1ull << 32, 127, 14 },
        { (1ull << 63) - 1, 127, 14 },
        /* Non-minimal forms are accepted (see ws_frame.c). */
        { 0, 126, 8 },
        { 125, 126, 8 },
        { 5, 127, 14 },
        { 65535, 127, 14 },
    };
    uint8_t buf[WS_MAX_HEADER + 4];

    for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
        struct ws_frame f;
        size_t n = client_header(buf, 0x82, t[i].len7, t[i].len);

        ck_assert_uint_eq(n, t[i].hdrlen);
        /* Payload bytes after the header are not consumed. */
        memset(buf + n, 0xaa, 4);
        memset(&f, 0x55, sizeof(f));
        ck_assert_int_eq(ws_frame_parse_header(&f, guard_copy(buf, n + 4),
                                               n + 4), (ssize_t)n);
        ck_assert(f.fin);
        ck_assert_uint_eq(f.rsv, 0);
        ck_assert_uint_eq(f.opcode, WS_OP_BINARY);
        ck_assert(f.masked);
        ck_assert_mem_eq(f.mask, test_mask, 4);
        ck_assert_msg(f.len == t[i].len, "case %zu: len %llu", i,
                      (unsigned long long)f.len);
        check_every_split(buf, n, 4);
    }
}
END_TEST

/* RFC 6455 §5.7: a masked "Hello". */
START_TEST(test_parse_rfc_example)
{
    static const uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    struct ws_frame f;
    uint8_t payload[5];

    ck_assert_int_eq(ws_frame_parse_header(&f, guard_copy(hello, 11), 11),
                     6);
    ck_assert(f.fin);
    ck_assert_uint_eq(f.opcode, WS_OP_TEXT);
    ck_assert_uint_eq(f.len, 5);
    memcpy(payload, hello + 6, 5);
    ws_unmask(payload, 5, f.mask, 0);
    ck_assert_mem_eq(payload, "Hello", 5);
}
END_TEST

START_TEST(test_parse_fields)
{
    static const uint8_t ops[] = { WS_OP_CONT, WS_OP_TEXT, WS_OP_BINARY,
                                   WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
    uint8_t buf[WS_MAX_HEADER];
    struct ws_frame f;

    for (size_t i = 0; i < sizeof(ops); i++) {
        for (unsigned rsv = 0; rsv < 8; rsv++) {
            for (unsigned fin = 0; fin < 2; fin++) {
                uint8_t b0 = (uint8_t)(fin << 7 | rsv << 4 | ops[i]);
                size_t n = client_header(buf, b0, 3, 3);

                if (!fin && ws_opcode_is_control(ops[i]))
                    continue;
                ck_assert_int_eq(ws_frame_parse_header(&f, buf, n), 6);
                ck_assert_uint_eq(f.fin, fin);
                /* RSV bits are reported, not judged. */
                ck_assert_uint_eq(f.rsv, rsv);
                ck_assert_uint_eq(f.opcode, ops[i]);
                ck_assert_uint_eq(f.len, 3);
            }
        }
    }
    /* Control frames at the limit are fine. */
    client_header(buf, 0x89, 125, 125);
    ck_assert_int_eq(ws_frame_parse_header(&f, buf, 6), 6);
    ck_assert_uint_eq(f.len, 125);
    client_header(buf, 0x88, 0, 0);
    ck_assert_int_eq(ws_frame_parse_header(&f, buf, 6), 6);
}
END_TEST

/*
 * A violation is refused as soon as the bytes that show it are there
 * (from byte `at` on), and never by reading past len.
 */
static void
check_violation(const uint8_t *buf, size_t n, size_t at)
{
    struct ws_frame f;

    for (size_t cut = 0; cut <= n; cut++) {
        ssize_t r = ws_frame_parse_header(&f, guard_copy(buf, cut), cut);

        ck_assert_msg(r == (cut < at ? 0 : -EPROTO), "cut %zu: %zd", cut,
                      r);
    }
}

START_TEST(test_parse_violations)
{
    uint8_t buf[WS_MAX_HEADER];
    size_t n;

    /* §5.1: unmasked client frames, in every length form. */
    static const uint8_t unmasked[][4] = {
        { 0x81, 0x00 }, { 0x81, 0x05 }, { 0x82, 0x7e, 0x01, 0x00 },
        { 0x82, 0x7f, 0x00, 0x00 }, { 0x89, 0x00 },
    };
    for (size_t i = 0; i < sizeof(unmasked) / sizeof(*unmasked); i++)
        check_violation(unmasked[i], 4, 2);

    /* Reserved opcodes 3-7 and 0xB-0xF, with or without FIN. */
    for (unsigned op = 0; op < 16; op++) {
        if (op <= 2 || (op >= 8 && op <= 0xa))
            continue;
        n = client_header(buf, (uint8_t)(0x80 | op), 1, 1);
        check_violation(buf, n, 2);
        n = client_header(buf, (uint8_t)op, 1, 1);
        check_violation(buf, n, 2);
    }

    /* §5.5: fragmented control frames. */
    for (unsigned op = 0x8; op <= 0xa; op++) {
        n = client_header(buf, (uint8_t)op, 0, 0);
        check_violation(buf, n, 2);
        /* Control frames over 125 bytes, in any length form. */
        n = client_header(buf, (uint8_t)(0x80 | op), 126, 126);
        check_violation(buf, n, 2);
        n = client_header(buf, (uint8_t)(0x80 | op), 126, 5);
        check_violation(buf, n, 2);
        n = client_header(buf, (uint8_t)(0x80 | op), 127, 5);
        check_violation(buf, n, 2);
    }

    /* §5.2: 64-bit length with the top bit set, known from byte 3. */
    n = client_header(buf, 0x82, 127, 1ull << 63);
    check_violation(buf, n, 3);
    n = client_header(buf, 0x82, 127, UINT64_MAX);
    check_violation(buf, n, 3);
    n = client_header(buf, 0x00, 127, 0x8000000000000001ull);
    check_violation(buf, n, 3);
}
END_TEST

/* Reference: one byte at a time. */
static void
unmask_ref(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t pos)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[(pos + i) % 4];
}

START_TEST(test_unmask_every_pos_len)
{
    static const uint64_t bases[] = { 0, 4, 1ull << 40, UINT64_MAX - 7 };
    uint64_t seed = 0x6d61736b;
    uint8_t data[64], want[64];
    uint8_t mask[4];

    for (size_t b = 0; b < sizeof(bases) / sizeof(*bases); b++) {
        for (uint64_t pos = 0; pos < 8; pos++) {
            for (size_t len = 0; len <= 40; len++) {
                uint64_t r = test_rand(&seed);

                memcpy(mask, &r, 4);
                for (size_t i = 0; i < len; i++)
                    data[i] = (uint8_t)test_rand(&seed);
                memcpy(want, data, len);
                unmask_ref(want, len, mask, bases[b] + pos);
                /* Ends at the guard page: no write past len. */
                uint8_t *p = guard_copy_mut(data, len);

                ws_unmask(p, len, mask, bases[b] + pos);
                ck_assert_msg(memcmp(p, want, len) == 0,
                              "base %zu pos %llu len %zu", b,
                              (unsigned long long)pos, len);
            }
        }
    }
}
END_TEST

/* Unmasking in random pieces equals unmasking whole, and undoes itself. */
START_TEST(test_unmask_pieces)
{
    enum { N = 1000 };
    uint64_t seed = 0x9151ece5;
    uint8_t orig[N], whole[N], pieces[N];
    uint8_t mask[4];

    for (int iter = 0; iter < 200; iter++) {
        uint64_t r = test_rand(&seed);
        size_t len = test_rand(&seed) % N;
        uint64_t start = test_rand(&seed) % 16;

        memcpy(mask, &r, 4);
        for (size_t i = 0; i < len; i++)
            orig[i] = (uint8_t)test_rand(&seed);
        memcpy(whole, orig, len);
        memcpy(pieces, orig, len);
        ws_unmask(whole, len, mask, start);
        unmask_ref(orig, len, mask, start);
        ck_assert_mem_eq(whole, orig, len);
        for (size_t i = 0; i < len;) {
            size_t k = 1 + test_rand(&seed) % 37;

            if (k > len - i)
                k = len - i;
            ws_unmask(pieces + i, k, mask, start + i);
            i += k;
        }
        ck_assert_mem_eq(pieces, whole, len);
        /* XOR twice restores the input. */
        ws_unmask(pieces, len, mask, start);
        unmask_ref(orig, len, mask, start);
        ck_assert_mem_eq(pieces, orig, len);
    }
}
END_TEST

START_TEST(test_header_write_bytes)
{
    static const struct {
        uint64_t len;
        size_t n;
        uint8_t bytes[WS_MAX_SERVER_HEADER];
    } t[] = {
        { 0, 2, { 0x81, 0x00 } },
        { 125, 2, { 0x81, 0x7d } },
        { 126, 4, { 0x81, 0x7e, 0x00, 0x7e } },
        { 65535, 4, { 0x81, 0x7e, 0xff, 0xff } },
        { 65536, 10, { 0x81, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 } },
        { 1ull << 32, 10, { 0x81, 0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0 } },
        { (1ull << 63) - 1, 10, { 0x81, 0x7f, 0x7f, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff } },
    };
    uint8_t out[WS_MAX_SERVER_HEADER];

    for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
        memset(out, 0xee, sizeof(out));
        ck_assert_uint_eq(ws_frame_header_write(out, true, 0, WS_OP_TEXT,
                                                t[i].len), t[i].n);
        ck_assert_mem_eq(out, t[i].bytes, t[i].n);
    }
    ck_assert_uint_eq(ws_frame_header_write(out, true, WS_RSV1, WS_OP_TEXT,
                                            5), 2);
    ck_assert_mem_eq(out, "\xc1\x05", 2);
    ck_assert_uint_eq(ws_frame_header_write(out, false, 0, WS_OP_CONT, 0),
                      2);
    ck_assert_mem_eq(out, "\x00\x00", 2);
    ck_assert_uint_eq(ws_frame_header_write(out, true,
                                            WS_RSV1 | WS_RSV2 | WS_RSV3,
                                            WS_OP_PONG, 0), 2);
    ck_assert_mem_eq(out, "\xfa\x00", 2);
}
END_TEST

/*
 * Written headers read back through the client parser once a mask is
 * added: same fields, shortest form.
 */
START_TEST(test_header_write_round_trip)
{
    static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
                                     (1ull << 32) - 1, 1ull << 32,
                                     (1ull << 63) - 1 };
    uint64_t seed = 0x7277;
    uint8_t out[WS_MAX_SERVER_HEADER], in[WS_MAX_HEADER];
    struct ws_frame f;

    for (size_t i = 0; i < sizeof(lens) / sizeof(*lens) + 200; i++) {
        uint64_t len = i < sizeof(lens) / sizeof(*lens)
                       ? lens[i] : test_rand(&seed) >> (1 + i % 63);
        uint8_t op = i % 2 ? WS_OP_BINARY : WS_OP_CONT;
        uint8_t rsv = (uint8_t)(i % 8);
        bool fin = i % 3 != 0;
        size_t n = ws_frame_header_write(out, fin, rsv, op, len);

        ck_assert_uint_eq(n, len <= 125 ? 2 : len <= 0xffff ? 4 : 10);
        ck_assert_uint_eq(len7_for(len), out[1]);
        memcpy(in, out, n);
        in[1] |= 0x80;
        memcpy(in + n, test_mask, 4);
        ck_assert_int_eq(ws_frame_parse_header(&f, in, n + 4),
                         (ssize_t)(n + 4));
        ck_assert_int_eq(f.fin, fin);
        ck_assert_uint_eq(f.rsv, rsv);
        ck_assert_uint_eq(f.opcode, op);
        ck_assert_msg(f.len == len, "len %llu", (unsigned long long)len);
    }
}
END_TEST

START_TEST(test_close_code_validity)
{
    static const uint16_t valid[] = { 1000, 1001, 1002, 1003, 1007, 1008,
                                      1009, 1010, 1011, 1012, 1013, 1014,
                                      3000, 3999, 4000, 4999 };
    static const uint16_t invalid[] = { 0, 999, 1004, 1005, 1006, 1015,
                                        1016, 1100, 2000, 2999, 5000,
                                        65535 };

    for (size_t i = 0; i < sizeof(valid) / sizeof(*valid); i++)
        ck_assert_msg(ws_close_code_is_valid(valid[i]), "%u", valid[i]);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(*invalid); i++)
        ck_assert_msg(!ws_close_code_is_valid(invalid[i]), "%u",
                      invalid[i]);
}
END_TEST

/* Autobahn 7.7.x (valid codes echoed) and 7.9.x (invalid: 1002). */
START_TEST(test_close_parse_codes)
{
    static const uint16_t valid[] = { 1000, 1001, 1002, 1003, 1007, 1008,
                                      1009, 1010, 1011, 3000, 3999, 4000,
                                      4999 };
    static const uint16_t invalid[] = { 0, 999, 1004, 1005, 1006, 1015,
                                        1016, 1100, 2000, 2999, 5000,
                                        65535 };
    uint8_t buf[4];
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;

    for (size_t i = 0; i < sizeof(valid) / sizeof(*valid); i++) {
        buf[0] = (uint8_t)(valid[i] >> 8);
        buf[1] = (uint8_t)valid[i];
        memcpy(buf + 2, "ok", 2);
        const uint8_t *p = guard_copy(buf, 4);

        ck_assert_int_eq(ws_close_parse(p, 4, &code, &reason, &rlen), 0);
        ck_assert_uint_eq(code, valid[i]);
        ck_assert_ptr_eq(reason, p + 2);
        ck_assert_uint_eq(rlen, 2);

        ck_assert_int_eq(ws_close_parse(guard_copy(buf, 2), 2, &code,
                                        &reason, &rlen), 0);
        ck_assert_uint_eq(code, valid[i]);
        ck_assert_uint_eq(rlen, 0);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(*invalid); i++) {
        buf[0] = (uint8_t)(invalid[i] >> 8);
        buf[1] = (uint8_t)invalid[i];
        ck_assert_int_eq(ws_close_parse(guard_copy(buf, 2), 2, &code,
                                        &reason, &rlen), 1002);
        ck_assert_int_eq(ws_close_parse(guard_copy(buf, 4), 4, &code,
                                        &reason, &rlen), 1002);
    }
}
END_TEST

START_TEST(test_close_parse_shapes)
{
    uint8_t buf[WS_MAX_CONTROL + 1];
    uint16_t code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 99;

    /* Empty: no status code (§7.1.5). */
    ck_assert_int_eq(ws_close_parse(guard_copy("", 0), 0, &code, &reason,
                                    &rlen), 0);
    ck_assert_uint_eq(code, 1005);
    ck_assert_uint_eq(rlen, 0);

    /* One byte cannot hold a code. */
    ck_assert_int_eq(ws_close_parse(guard_copy("\x03", 1), 1, &code,
                                    &reason, &rlen), 1002);

    /* A UTF-8 reason of the full 123 bytes. */
    buf[0] = 0x03;
    buf[1] = 0xe8;
    memset(buf + 2, 'r', 120);
    memcpy(buf + 122, "\xe2\x82\xac", 3);
    ck_assert_int_eq(ws_close_parse(guard_copy(buf, 125), 125, &code,
                                    &reason, &rlen), 0);
    ck_assert_uint_eq(code, 1000);
    ck_assert_uint_eq(rlen, 123);

    /* Longer than any control frame may be. */
    buf[125] = 'r';
    ck_assert_int_eq(ws_close_parse(guard_copy(buf, 126), 126, &code,
                                    &reason, &rlen), 1002);
}
END_TEST

/* §8.1: a reason that is not UTF-8 fails with 1007. */
START_TEST(test_close_parse_bad_utf8)
{
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        { "\x03\xe8\xff", 3 },
        { "\x03\xe8\x80", 3 },
        { "\x03\xe8" "abc\xce", 6 },          /* cut short at the end */
        { "\x03\xe8\xed\xa0\x80", 5 },       /* surrogate */
        { "\x03\xe8\xc0\xaf", 4 },           /* overlong '/' */
        { "\x03\xe8\xf4\x90\x80\x80", 6 },   /* U+110000 */
        { "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0"
          "\x80\x65\x64\x69\x74\x65\x64", 22 },  /* Autobahn 7.5.1 */
    };
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        ck_assert_int_eq(ws_close_parse(guard_copy(bad[i].s, bad[i].len),
                                        bad[i].len, &code, &reason, &rlen),
                         1007);
    /* An invalid code is reported before the reason is looked at. */
    ck_assert_int_eq(ws_close_parse(guard_copy("\x03\xed\xff", 3), 3, &code,
                                    &reason, &rlen), 1002);
    /* And the good version of the Autobahn reason passes. */
    ck_assert_int_eq(ws_close_parse(guard_copy("\x03\xe8\xce\xba", 4), 4,
                                    &code, &reason, &rlen), 0);
    ck_assert_uint_eq(rlen, 2);
}
END_TEST

START_TEST(test_close_write_basic)
{
    uint8_t out[WS_MAX_CONTROL];
    char reason[200];

    ck_assert_uint_eq(ws_close_payload_write(out, 1000, NULL, 0), 2);
    ck_assert_mem_eq(out, "\x03\xe8", 2);
    ck_assert_uint_eq(ws_close_payload_write(out, 4999, "bye", 3), 5);
    ck_assert_mem_eq(out, "\x13\x87" "bye", 5);

    memset(reason, 'x', sizeof(reason));
    ck_assert_uint_eq(ws_close_payload_write(out, 1001, reason, 123), 125);
    ck_assert_uint_eq(ws_close_payload_write(out, 1001, reason, 124), 125);
    ck_assert_uint_eq(ws_close_payload_write(out, 1001, reason, 200), 125);
    ck_assert_mem_eq(out, "\x03\xe9", 2);
    ck_assert_mem_eq(out + 2, reason, 123);
}
END_TEST

/* Cutting at 123 bytes drops a character it would split, whole. */
START_TEST(test_close_write_truncation)
{
    static const struct {
        size_t pad;         /* ASCII before the character */
        const char *ch;
        size_t want;        /* reason bytes kept */
    } t[] = {
        { 122, "\xc3\xa9", 122 },           /* 2 bytes over the cut */
        { 121, "\xc3\xa9", 123 },           /* ends exactly at 123 */
        { 121, "\xe2\x82\xac", 121 },
        { 122, "\xe2\x82\xac", 122 },
        { 120, "\xe2\x82\xac", 123 },
        { 120, "\xf0\x9f\x98\x80", 120 },
        { 121, "\xf0\x9f\x98\x80", 121 },
        { 122, "\xf0\x9f\x98\x80", 122 },
        { 119, "\xf0\x9f\x98\x80", 123 },
    };
    uint8_t out[WS_MAX_CONTROL];
    char reason[160];

    for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
        size_t chlen = strlen(t[i].ch);
        size_t len = t[i].pad + chlen + 10;

        memset(reason, 'x', sizeof(reason));
        memcpy(reason + t[i].pad, t[i].ch, chlen);
        ck_assert_uint_eq(ws_close_payload_write(out, 1000, reason, len),
                          2 + t[i].want);
        ck_assert_mem_eq(out + 2, reason, t[i].want);
    }

    /* All multi-byte text: every input length gives valid UTF-8. */
    static const char *const chars[] = { "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80" };
    for (size_t c = 0; c < 3; c++) {
        size_t chlen = strlen(chars[c]);

        for (size_t k = 0; k + chlen <= sizeof(reason); k += chlen)
            memcpy(reason + k, chars[c], chlen);
        for (size_t len = 0; len <= sizeof(reason) / chlen * chlen;
             len += chlen) {
            size_t n = ws_close_payload_write(out, 1000, reason, len);
            size_t want = len <= 123 ? len : 123 / chlen * chlen;

            ck_assert_uint_eq(n, 2 + want);
            ck_assert_uint_eq(utf8_validate(UTF8_ACCEPT, out + 2, n - 2),
                              UTF8_ACCEPT);
        }
    }
}
END_TEST

static Suite *
ws_frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *parse = tcase_create("parse");
    TCase *mask = tcase_create("mask");
    TCase *write = tcase_create("write");
    TCase *close = tcase_create("close");

    tcase_add_test(parse, test_parse_length_forms);
    tcase_add_test(parse, test_parse_rfc_example);
    tcase_add_test(parse, test_parse_fields);
    tcase_add_test(parse, test_parse_violations);
    suite_add_tcase(s, parse);

    tcase_add_test(mask, test_unmask_every_pos_len);
    tcase_add_test(mask, test_unmask_pieces);
    suite_add_tcase(s, mask);

    tcase_add_test(write, test_header_write_bytes);
    tcase_add_test(write, test_header_write_round_trip);
    suite_add_tcase(s, write);

    tcase_add_test(close, test_close_code_validity);
    tcase_add_test(close, test_close_parse_codes);
    tcase_add_test(close, test_close_parse_shapes);
    tcase_add_test(close, test_close_parse_bad_utf8);
    tcase_add_test(close, test_close_write_basic);
    tcase_add_test(close, test_close_write_truncation);
    suite_add_tcase(s, close);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ws_frame_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
