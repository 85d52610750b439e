/*
 * bus_wire.c: encoding and decoding of bus frames (see bus_wire.h for the
 * layout). Byte order is converted explicitly so the format does not
 * depend on the host.
 */
#include "bus_wire.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

/*
 * memcpy of a value in little-endian order: one unaligned load or store
 * on the usual hosts (the byte-by-byte form did not fold into one, and
 * showed in profiles of the bus at a few M messages/s).
 */
static void
put_u16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof(v));
}

static void
put_u32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

static uint16_t
get_u16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static uint32_t
get_u32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static uint64_t
get_u64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

uint64_t
bus_wire_size(const struct bus_msg *m)
{
    return (uint64_t)BUS_WIRE_HEADER + m->topic_len + m->len;
}

size_t
bus_wire_header(uint8_t out[BUS_WIRE_HEADER], const struct bus_msg *m)
{
    put_u32(out, (uint32_t)bus_wire_size(m));
    out[4] = BUS_WIRE_VERSION;
    out[5] = m->type;
    put_u16(out + 6, m->topic_len);
    put_u32(out + 8, m->app_type);
    put_u64(out + 12, m->to);
    put_u64(out + 20, m->from);
    return BUS_WIRE_HEADER;
}

size_t
bus_wire_encode(uint8_t *out, const struct bus_msg *m)
{
    size_t n = bus_wire_header(out, m);

    if (m->topic_len > 0)
        memcpy(out + n, m->topic, m->topic_len);
    n += m->topic_len;
    if (m->len > 0)
        memcpy(out + n, m->data, m->len);
    return n + m->len;
}

size_t
bus_wire_frame_len(const uint8_t *p, size_t len)
{
    return len < 4 ? 0 : get_u32(p);
}

/*
 * The checks that only need a prefix, each as soon as its field is in, so
 * that a garbage stream is refused at once rather than after we have
 * waited for (and buffered) the length it claims.
 */
static int
check_prefix(const uint8_t *p, size_t len, size_t max_frame)
{
    uint32_t total;

    if (len < 4)
        return 0;
    total = get_u32(p);
    if (total < BUS_WIRE_HEADER || total > max_frame)
        return -EPROTO;
    if (len >= 5 && p[4] != BUS_WIRE_VERSION)
        return -EPROTO;
    if (len >= 6 && p[5] > BUS_ADMIN_REPLY)
        return -EPROTO;
    if (len >= 8 && get_u16(p + 6) > total - BUS_WIRE_HEADER)
        return -EPROTO;
    return 0;
}

ssize_t
bus_wire_decode(struct bus_msg *m, const uint8_t *p, size_t len,
                size_t max_frame)
{
    int rc = check_prefix(p, len, max_frame);
    uint32_t total;

    if (rc < 0)
        return rc;
    if (len < BUS_WIRE_HEADER)
        return 0;
    total = get_u32(p);
    if (len < total)
        return 0;
    m->type = p[5];
    m->topic_len = get_u16(p + 6);
    m->app_type = get_u32(p + 8);
    m->to = get_u64(p + 12);
    m->from = get_u64(p + 20);
    m->topic = (const char *)p + BUS_WIRE_HEADER;
    m->data = p + BUS_WIRE_HEADER + m->topic_len;
    m->len = total - BUS_WIRE_HEADER - m->topic_len;
    return (ssize_t)total;
}
