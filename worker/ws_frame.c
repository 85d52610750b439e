/*
 * ws_frame.c: RFC 6455 §5 frame codec: parses client frame headers, writes
 * server frame headers, unmasks payloads and reads and writes close
 * payloads (§5.5.1, §7.4). Pure functions on memory. Fragmentation, size
 * limits, RSV bits and what a violation costs belong to the connection
 * layer (conn.c).
 */
#include "ws_frame.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "utf8.h"

#define WS_LEN16 126 /* 7-bit length value announcing a 16-bit length */
#define WS_LEN64 127 /* ... and a 64-bit one */

static bool
opcode_is_reserved(uint8_t op)
{
    return (op >= 0x3 && op <= 0x7) || op >= 0xB;
}

/* Big-endian reads and writes of the extended length. */
static uint64_t
load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void
store_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
}

/*
 * Everything the first two bytes can violate is judged as soon as they are
 * there, and the top bit of a 64-bit length as soon as its first byte is:
 * a bad header is refused without waiting for bytes a hostile client may
 * never send. *f is written only when a whole header is returned.
 * Non-minimal length encodings are accepted: §5.2's "minimal number of
 * bytes" binds the sender, and refusing them would protect nothing (the
 * length is judged against the limits by conn.c either way).
 */
ssize_t
ws_frame_parse_header(struct ws_frame *f, const uint8_t *p, size_t len)
{
    if (len < 2)
        return 0;

    uint8_t opcode = p[0] & 0x0f;
    bool fin = (p[0] & 0x80) != 0;
    bool masked = (p[1] & 0x80) != 0;
    uint8_t len7 = p[1] & 0x7f;

    if (opcode_is_reserved(opcode))
        return -EPROTO;
    /* §5.1: a server MUST close on an unmasked client frame. */
    if (!masked)
        return -EPROTO;
    /* §5.5: control frames are ≤ 125 bytes and never fragmented. */
    if (ws_opcode_is_control(opcode) && (!fin || len7 > WS_MAX_CONTROL))
        return -EPROTO;
    /* §5.2: the most significant bit of a 64-bit length MUST be 0. */
    if (len7 == WS_LEN64 && len >= 3 && (p[2] & 0x80))
        return -EPROTO;

    size_t ext = len7 == WS_LEN16 ? 2 : len7 == WS_LEN64 ? 8 : 0;
    size_t hdr = 2 + ext + 4;

    if (len < hdr)
        return 0;
    f->fin = fin;
    f->rsv = (p[0] >> 4) & 0x7;
    f->opcode = opcode;
    f->masked = true;
    f->len = ext == 0 ? len7 : load_be(p + 2, ext);
    memcpy(f->mask, p + 2 + ext, 4);
    return (ssize_t)hdr;
}

/*
 * The 4-byte mask repeats every 4 bytes, so an 8-byte word of it, started
 * at phase pos % 4, fits every aligned-to-p word of the payload. Building
 * the word bytewise and moving it with memcpy keeps it endian-neutral and
 * free of unaligned casts; compilers turn the memcpys into plain loads.
 */
void
ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t pos)
{
    uint8_t m[8];
    uint64_t m64, w;
    size_t i = 0;

    for (size_t k = 0; k < 8; k++)
        m[k] = mask[(pos + k) & 3];
    memcpy(&m64, m, sizeof(m64));

    for (; len - i >= 32; i += 32) {
        for (size_t k = 0; k < 32; k += 8) {
            memcpy(&w, p + i + k, sizeof(w));
            w ^= m64;
            memcpy(p + i + k, &w, sizeof(w));
        }
    }
    for (; len - i >= 8; i += 8) {
        memcpy(&w, p + i, sizeof(w));
        w ^= m64;
        memcpy(p + i, &w, sizeof(w));
    }
    for (size_t k = 0; i < len; i++, k++)
        p[i] ^= m[k];
}

size_t
ws_frame_header_write(uint8_t out[WS_MAX_SERVER_HEADER], bool fin,
                      uint8_t rsv, uint8_t opcode, uint64_t len)
{
    /* Our own callers' bugs, not peer input. */
    assert((rsv & ~0x7) == 0 && (opcode & ~0xf) == 0);
    assert(len >> 63 == 0);

    out[0] = (uint8_t)((fin ? 0x80 : 0) | rsv << 4 | opcode);
    if (len <= WS_MAX_CONTROL) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = WS_LEN16;
        store_be(out + 2, len, 2);
        return 4;
    }
    out[1] = WS_LEN64;
    store_be(out + 2, len, 8);
    return 10;
}

/*
 * §7.4.1 plus the IANA registry: 1004 is reserved, 1005 and 1006 must not
 * be sent, 1015 is for TLS failures reported locally; 1012-1014 were
 * registered after the RFC (service restart, try again later, bad
 * gateway). 3000-3999 are registered, 4000-4999 private; 0-999 and
 * 5000+ are unused.
 */
bool
ws_close_code_is_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) ||
           (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/*
 * On success *reason points into p (to p itself for an empty payload) and
 * is not NUL-terminated. Nothing is written on failure. A payload over 125
 * bytes cannot pass ws_frame_parse_header; it is refused with 1002 here
 * too rather than trusted.
 */
int
ws_close_parse(const uint8_t *p, size_t len, uint16_t *code,
               const uint8_t **reason, size_t *reason_len)
{
    if (len == 0) {
        *code = 1005;   /* §7.1.5: no status code was present */
        *reason = p;
        *reason_len = 0;
        return 0;
    }
    if (len == 1 || len > WS_MAX_CONTROL)
        return 1002;

    uint16_t c = (uint16_t)(p[0] << 8 | p[1]);

    if (!ws_close_code_is_valid(c))
        return 1002;
    /* §5.5.1: the reason is UTF-8; §8.1: else fail with 1007. */
    if (utf8_validate(UTF8_ACCEPT, p + 2, len - 2) != UTF8_ACCEPT)
        return 1007;
    *code = c;
    *reason = p + 2;
    *reason_len = len - 2;
    return 0;
}

/*
 * Cutting at byte 123 may split a character; backing up over continuation
 * bytes (10xxxxxx) to the start of that character drops it whole. Assumes
 * the reason is UTF-8; the caller checks app-supplied reasons.
 */
size_t
ws_close_payload_write(uint8_t out[WS_MAX_CONTROL], uint16_t code,
                       const char *reason, size_t len)
{
    const uint8_t *r = (const uint8_t *)reason;
    size_t n = len;

    if (n > WS_MAX_CONTROL - 2) {
        n = WS_MAX_CONTROL - 2;
        while (n > 0 && (r[n] & 0xc0) == 0x80)
            n--;
    }
    store_be(out, code, 2);
    if (n > 0)
        memcpy(out + 2, r, n);
    return 2 + n;
}
