/*
 * fuzz_ipc_wire.c: libFuzzer harness for ipc/bus_wire.c. Treats the
 * input as a stream of bus frames, the way an inbound bus connection
 * reads it, and checks the decoder's contracts rather than just "no
 * crash": results in range; every prefix of a frame needs more and every
 * prefix of a refused stream gives 0 or the same refusal; a decoded frame
 * re-encodes to the same bytes (the format is canonical) and its header
 * alone to the same first BUS_WIRE_HEADER bytes; feeding the stream in
 * two pieces at a data-chosen cut gives the same frames. The first byte
 * picks max_frame so the limit is exercised too.
 * Built by CMake with -DSOCK_FUZZ=ON (clang), as tools/fuzz does.
 */
#include "bus_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

/* Decodes one frame from an exact-size heap copy, so ASan sees over-reads. */
static ssize_t
decode_exact(struct bus_msg *m, const uint8_t *p, size_t len,
             size_t max_frame)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    ssize_t r;

    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, p, len);
    r = bus_wire_decode(m, copy, len, max_frame);
    /* Pointers into the copy are dead after this; callers only look at
       the fields, and re-encode from the original bytes below. */
    if (r > 0) {
        m->topic = (const char *)p + ((const uint8_t *)m->topic - copy);
        m->data = p + (m->data - copy);
    }
    free(copy);
    return r;
}

static void
check_frame(const struct bus_msg *m, const uint8_t *p, size_t n,
            size_t max_frame)
{
    uint8_t hdr[BUS_WIRE_HEADER];
    uint8_t *out = malloc(n);

    CHECK(n >= BUS_WIRE_HEADER && n <= max_frame);
    CHECK(m->type <= BUS_ADMIN_REPLY);
    CHECK(bus_wire_size(m) == n);
    CHECK(bus_wire_frame_len(p, n) == n);
    CHECK(bus_wire_header(hdr, m) == BUS_WIRE_HEADER);
    CHECK(memcmp(hdr, p, BUS_WIRE_HEADER) == 0);
    if (out != NULL) {
        CHECK(bus_wire_encode(out, m) == n);
        CHECK(memcmp(out, p, n) == 0);
        free(out);
    }
}

/* Prefixes of a decoded frame: all "need more". Of a refusal: 0 or it. */
static void
check_prefixes(const uint8_t *p, ssize_t r, size_t len, size_t max_frame)
{
    size_t upto = r > 0 ? (size_t)r : len;
    struct bus_msg m;

    for (size_t cut = 0; cut < upto && cut < 64; cut++) {
        ssize_t q = decode_exact(&m, p, cut, max_frame);

        CHECK(q == 0 || (r == -EPROTO && q == -EPROTO));
    }
}

/* Frames off the stream at once, then again in two pieces: same result. */
static size_t
decode_stream(const uint8_t *p, size_t len, size_t max_frame, size_t cut,
              uint32_t *sum)
{
    uint8_t *buf = malloc(len > 0 ? len : 1);
    size_t have = 0, fed = 0, frames = 0;

    if (buf == NULL)
        return 0;
    *sum = 0;
    for (int piece = 0; piece < 2; piece++) {
        size_t add = piece == 0 ? cut : len - cut;
        struct bus_msg m;
        ssize_t r;

        memcpy(buf + have, p + fed, add);
        have += add;
        fed += add;
        while ((r = bus_wire_decode(&m, buf, have, max_frame)) > 0) {
            *sum = *sum * 31 + m.app_type + m.len + m.topic_len + m.type;
            frames++;
            memmove(buf, buf + r, have - (size_t)r);
            have -= (size_t)r;
        }
        if (r < 0) {
            frames |= (size_t)1 << 62;   /* mark: refused */
            break;
        }
    }
    free(buf);
    return frames;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[] = { 28, 29, 64, 300, 1 << 16, 1 << 20 };
    size_t max_frame, off = 0, whole, split;
    uint32_t sum_whole, sum_split;

    if (size < 2)
        return 0;
    max_frame = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    data++;
    size--;
    whole = decode_stream(data, size, max_frame, size, &sum_whole);
    split = decode_stream(data, size, max_frame, data[0] % (size + 1),
                          &sum_split);
    CHECK(whole == split && sum_whole == sum_split);
    while (off < size) {
        struct bus_msg m;
        ssize_t r = decode_exact(&m, data + off, size - off, max_frame);

        CHECK(r == 0 || r == -EPROTO || r == -ENOMEM ||
              (r >= BUS_WIRE_HEADER && (size_t)r <= size - off));
        if (r == -ENOMEM)
            break;
        check_prefixes(data + off, r, size - off, max_frame);
        if (r <= 0)
            break;
        check_frame(&m, data + off, (size_t)r, max_frame);
        off += (size_t)r;
    }
    return 0;
}
