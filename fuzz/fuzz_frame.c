/*
 * fuzz_frame.c: libFuzzer harness for worker/ws_frame.c (and the UTF-8
 * validator it uses). Treats the input as a stream of client frames and
 * checks the codec's contracts rather than just "no crash": parse results
 * in range and stable under any split, unmasking in pieces equal to
 * unmasking whole, close payloads judged consistently.
 * Built by CMake with -DSOCK_FUZZ=ON (clang), as tools/fuzz does.
 */
#include "ws_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "utf8.h"

/* Any shorter prefix of a header parses as "need more". */
static ssize_t
parse_checked(struct ws_frame *f, const uint8_t *p, size_t len)
{
    ssize_t r = ws_frame_parse_header(f, p, len);
    struct ws_frame g;

    CHECK(r == 0 || r == -EPROTO || (r >= 2 && r <= WS_MAX_HEADER));
    CHECK(r != 0 || len < WS_MAX_HEADER);
    for (size_t cut = 0; r > 0 && cut < (size_t)r; cut++)
        CHECK(ws_frame_parse_header(&g, p, cut) == 0);
    if (r > 0) {
        CHECK(f->masked);
        CHECK(f->len >> 63 == 0);
        CHECK(!ws_opcode_is_control(f->opcode) ||
              (f->fin && f->len <= WS_MAX_CONTROL));
    }
    return r;
}

/* Server header for the same frame: shortest form, right size. */
static void
check_header_write(const struct ws_frame *f)
{
    uint8_t out[WS_MAX_SERVER_HEADER];
    size_t n = ws_frame_header_write(out, f->fin, f->rsv, f->opcode, f->len);

    CHECK(n == (f->len <= 125 ? 2u : f->len <= 0xffff ? 4u : 10u));
    CHECK(out[0] == ((f->fin ? 0x80 : 0) | f->rsv << 4 | f->opcode));
}

static void
check_close(const uint8_t *p, size_t len)
{
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    int r = ws_close_parse(p, len, &code, &reason, &rlen);

    CHECK(r == 0 || r == 1002 || r == 1007);
    if (r == 0 && len == 0)
        CHECK(code == 1005 && rlen == 0);
    if (r == 0 && len > 0) {
        CHECK(ws_close_code_is_valid(code) && reason == p + 2 &&
              rlen == len - 2);
        /* What we parsed, we can write back unchanged. */
        uint8_t out[WS_MAX_CONTROL];

        CHECK(ws_close_payload_write(out, code, (const char *)reason,
                                     rlen) == len);
        CHECK(memcmp(out, p, len) == 0);
    }
}

/* Whole vs. split at a data-chosen point. */
static void
check_unmask(const uint8_t *p, size_t len, const uint8_t mask[4],
             uint64_t pos, size_t cut)
{
    uint8_t *a = malloc(len + 1), *b = malloc(len + 1);

    if (a == NULL || b == NULL)
        goto out;
    memcpy(a, p, len);
    memcpy(b, p, len);
    ws_unmask(a, len, mask, pos);
    cut = len == 0 ? 0 : cut % (len + 1);
    ws_unmask(b, cut, mask, pos);
    ws_unmask(b + cut, len - cut, mask, pos + cut);
    CHECK(memcmp(a, b, len) == 0);
    for (size_t i = 0; i < len; i++)
        CHECK((a[i] ^ mask[(pos + i) & 3]) == p[i]);
out:
    free(a);
    free(b);
}

static void
check_utf8(const uint8_t *p, size_t len, size_t cut)
{
    uint32_t whole = utf8_validate(UTF8_ACCEPT, p, len);
    uint32_t st;

    cut = len == 0 ? 0 : cut % (len + 1);
    st = utf8_validate(UTF8_ACCEPT, p, cut);
    st = utf8_validate(st, p + cut, len - cut);
    CHECK(st == whole);
}

/*
 * Frames back to back: header, then as much payload as there is. The
 * payload is unmasked like conn.c would (in two reads) and close payloads
 * are judged after unmasking, as they arrive.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t payload_pos = 0;

    check_utf8(data, size, size / 2);
    check_close(data, size < 128 ? size : 128);
    while (size > 0) {
        struct ws_frame f;
        ssize_t r = parse_checked(&f, data, size);

        if (r <= 0)
            break;
        check_header_write(&f);
        data += r;
        size -= (size_t)r;

        size_t plen = f.len < size ? (size_t)f.len : size;
        size_t cut = plen > 0 ? data[0] : 0;

        check_unmask(data, plen, f.mask, payload_pos, cut);
        if (f.opcode == WS_OP_CLOSE && plen == f.len) {
            uint8_t buf[WS_MAX_CONTROL];

            memcpy(buf, data, plen);
            ws_unmask(buf, plen, f.mask, 0);
            check_close(buf, plen);
            check_utf8(buf, plen, cut);
        }
        payload_pos += plen;
        data += plen;
        size -= plen;
    }
    return 0;
}
