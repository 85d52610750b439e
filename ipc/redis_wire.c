/*
 * redis_wire.c: see redis_wire.h. Everything here works on caller
 * memory; nothing allocates, so the decoder can be fed any bytes Redis
 * hands over (anyone who can PUBLISH to the server can write them).
 */
#include "redis_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC0 's'
#define MAGIC1 'k'
#define TOPIC_MAX 255

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

size_t
redis_wire_header(uint8_t out[REDIS_WIRE_HEADER], uint16_t origin,
                  const struct bus_msg *m)
{
    out[0] = MAGIC0;
    out[1] = MAGIC1;
    out[2] = REDIS_WIRE_VERSION;
    out[3] = m->type;
    put16(out + 4, origin);
    put32(out + 6, m->app_type);
    put64(out + 10, m->from);
    put64(out + 18, m->type == BUS_SEND ? m->to : 0);
    return REDIS_WIRE_HEADER;
}

int
redis_wire_decode(struct bus_msg *m, uint16_t *origin, const uint8_t *p,
                  size_t len)
{
    uint8_t type;
    uint64_t to;

    if (len < REDIS_WIRE_HEADER || p[0] != MAGIC0 || p[1] != MAGIC1 ||
        p[2] != REDIS_WIRE_VERSION)
        return -EPROTO;
    type = p[3];
    if (type != BUS_SEND && type != BUS_PUBLISH && type != BUS_BROADCAST)
        return -EPROTO;
    to = get_le(p + 18, 8);
    /* Canonical: a directed message names its target, no other does. */
    if ((type == BUS_SEND) != (to != 0))
        return -EPROTO;
    if (len - REDIS_WIRE_HEADER > UINT32_MAX)
        return -EPROTO;
    *origin = (uint16_t)get_le(p + 4, 2);
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->app_type = (uint32_t)get_le(p + 6, 4);
    m->from = get_le(p + 10, 8);
    m->to = to;
    m->len = (uint32_t)(len - REDIS_WIRE_HEADER);
    m->data = m->len > 0 ? p + REDIS_WIRE_HEADER : NULL;
    return 0;
}

/* ---- Channels ---------------------------------------------------------- */

static int
joined(char *buf, size_t size, const char *prefix, const char *kind,
       const char *rest, size_t rest_len)
{
    size_t pl = strlen(prefix), kl = strlen(kind);

    if (pl + kl + rest_len + 1 > size)
        return -ENAMETOOLONG;
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, kind, kl);
    memcpy(buf + pl + kl, rest, rest_len);
    buf[pl + kl + rest_len] = '\0';
    return (int)(pl + kl + rest_len);
}

int
redis_wire_topic_channel(char *buf, size_t size, const char *prefix,
                         const char *topic, size_t topic_len)
{
    return joined(buf, size, prefix, "t:", topic, topic_len);
}

int
redis_wire_all_channel(char *buf, size_t size, const char *prefix)
{
    return joined(buf, size, prefix, "all", "", 0);
}

int
redis_wire_inbox_channel(char *buf, size_t size, const char *prefix,
                         uint64_t to)
{
    char rest[32];
    int n;

    /* DESIGN §5.1: node (16) | generation (8) | slot (8) | serial (32). */
    n = snprintf(rest, sizeof(rest), "%u:%u:%u",
                 (unsigned)(uint16_t)(to >> 48), (unsigned)(uint8_t)(to >> 40),
                 (unsigned)(uint8_t)(to >> 32));
    return joined(buf, size, prefix, "w:", rest, (size_t)n);
}

/* True if p[0..len) is a decimal number up to max, without leading 0s. */
static bool
is_decimal(const char *p, size_t len, unsigned max)
{
    unsigned v = 0;

    if (len == 0 || len > 5 || (len > 1 && p[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= max;
}

static bool
is_inbox(const char *p, size_t len)
{
    const unsigned max[3] = { 65535, 255, 255 };

    for (int field = 0; field < 3; field++) {
        const char *colon = memchr(p, ':', len);
        size_t n = colon != NULL ? (size_t)(colon - p) : len;

        if ((colon != NULL) != (field < 2) || !is_decimal(p, n, max[field]))
            return false;
        if (colon != NULL) {
            p += n + 1;
            len -= n + 1;
        }
    }
    return true;
}

enum redis_chan
redis_wire_channel_kind(const char *prefix, const char *ch, size_t len,
                        const char **topic, size_t *topic_len)
{
    size_t pl = strlen(prefix);

    if (len < pl || memcmp(ch, prefix, pl) != 0)
        return REDIS_CHAN_OTHER;
    ch += pl;
    len -= pl;
    if (len == 3 && memcmp(ch, "all", 3) == 0)
        return REDIS_CHAN_ALL;
    if (len > 2 && memcmp(ch, "t:", 2) == 0 && len - 2 <= TOPIC_MAX) {
        *topic = ch + 2;
        *topic_len = len - 2;
        return REDIS_CHAN_TOPIC;
    }
    if (len > 2 && memcmp(ch, "w:", 2) == 0 && is_inbox(ch + 2, len - 2))
        return REDIS_CHAN_INBOX;
    return REDIS_CHAN_OTHER;
}

/* ---- RESP -------------------------------------------------------------- */

static size_t
digits(size_t v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

size_t
redis_wire_publish_size(size_t channel_len, size_t payload_len)
{
    size_t body = REDIS_WIRE_HEADER + payload_len;

    /* "*3\r\n$7\r\nPUBLISH\r\n" "$N\r\nCHANNEL\r\n" "$M\r\nBODY\r\n" */
    return 4 + 13 + (1 + digits(channel_len) + 2 + channel_len + 2) +
           (1 + digits(body) + 2 + body + 2);
}

size_t
redis_wire_publish(char *out, const char *channel, size_t channel_len,
                   const uint8_t hdr[REDIS_WIRE_HEADER], const void *payload,
                   size_t payload_len)
{
    size_t body = REDIS_WIRE_HEADER + payload_len;
    char *p = out;

    memcpy(p, "*3\r\n$7\r\nPUBLISH\r\n", 17);
    p += 17;
    p += sprintf(p, "$%zu\r\n", channel_len);
    memcpy(p, channel, channel_len);
    p += channel_len;
    p += sprintf(p, "\r\n$%zu\r\n", body);
    memcpy(p, hdr, REDIS_WIRE_HEADER);
    p += REDIS_WIRE_HEADER;
    if (payload_len > 0)
        memcpy(p, payload, payload_len);
    p += payload_len;
    memcpy(p, "\r\n", 2);
    return (size_t)(p + 2 - out);
}

/* ---- Address ----------------------------------------------------------- */

int
redis_wire_parse_address(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':'), *h = s;
    size_t n;
    char *end;
    long v;

    if (colon == NULL || colon == s)
        return -EINVAL;
    n = (size_t)(colon - s);
    if (s[0] == '[') {             /* [V6ADDR]:PORT */
        if (n < 3 || s[n - 1] != ']')
            return -EINVAL;
        h = s + 1;
        n -= 2;
    } else if (memchr(s, ':', n) != NULL) {
        return -EINVAL;            /* a bare IPv6 address: ambiguous */
    }
    if (n + 1 > hostlen || memchr(h, ' ', n) != NULL)
        return -EINVAL;
    if (colon[1] < '0' || colon[1] > '9')
        return -EINVAL;
    v = strtol(colon + 1, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)v;
    return 0;
}
