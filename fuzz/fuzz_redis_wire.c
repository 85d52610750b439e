/*
 * fuzz_redis_wire.c: libFuzzer harness for ipc/redis_wire.c, the parts
 * that read what arrives from Redis (anyone who can PUBLISH there can
 * send it). The first byte splits the input into a channel name and a
 * message. Checks contracts, not just "no crash":
 * - redis_wire_decode reads only its exact-size copy, sets nothing on
 *   failure, and a decoded envelope re-encodes to the same header bytes
 *   with the payload being the rest of the message (NULL when empty);
 * - redis_wire_channel_kind finds topics inside the channel, of 1 to 255
 *   bytes, that rebuild to the same channel, and "all" only for the exact
 *   all-channel name (inbox names are compared whole by the bridge);
 * - redis_wire_parse_address never overflows host and gives ports in
 *   1..65535.
 * Built by CMake with -DSOCK_FUZZ=ON (clang), as tools/fuzz does.
 */
#include "redis_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static const char prefix[] = "sock:";

static void
check_envelope(const uint8_t *p, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    struct bus_msg m, before;
    uint16_t origin = 0xbeef;
    uint8_t hdr[REDIS_WIRE_HEADER];
    int rc;

    CHECK(copy != NULL);
    memcpy(copy, p, len);
    memset(&m, 0xa5, sizeof(m));
    before = m;
    rc = redis_wire_decode(&m, &origin, copy, len);
    CHECK(rc == 0 || rc == -EPROTO);
    if (rc != 0) {
        CHECK(memcmp(&m, &before, sizeof(m)) == 0);
        CHECK(origin == 0xbeef);
        free(copy);
        return;
    }
    CHECK(len >= REDIS_WIRE_HEADER);
    CHECK(m.data == (len > REDIS_WIRE_HEADER ? copy + REDIS_WIRE_HEADER
                                             : NULL));
    CHECK(m.len == len - REDIS_WIRE_HEADER);
    CHECK(m.topic == NULL);
    CHECK(m.type == BUS_SEND ? m.to != 0 : m.to == 0);
    CHECK(redis_wire_header(hdr, origin, &m) == REDIS_WIRE_HEADER);
    CHECK(memcmp(hdr, copy, REDIS_WIRE_HEADER) == 0);
    free(copy);
}

static void
check_channel(const char *ch, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);
    char again[REDIS_WIRE_CHANNEL_MAX];
    const char *topic = NULL;
    size_t topic_len = 0;
    enum redis_chan kind;

    CHECK(copy != NULL);
    memcpy(copy, ch, len);
    kind = redis_wire_channel_kind(prefix, copy, len, &topic, &topic_len);
    switch (kind) {
    case REDIS_CHAN_TOPIC:
        CHECK(topic >= copy && topic + topic_len == copy + len);
        CHECK(topic_len >= 1 && topic_len <= 255);
        CHECK(redis_wire_topic_channel(again, sizeof(again), prefix, topic,
                                       topic_len) == (int)len);
        CHECK(memcmp(again, copy, len) == 0);
        break;
    case REDIS_CHAN_ALL:
        CHECK(redis_wire_all_channel(again, sizeof(again), prefix) ==
              (int)len);
        CHECK(memcmp(again, copy, len) == 0);
        break;
    case REDIS_CHAN_INBOX:
    case REDIS_CHAN_OTHER:
        break;
    default:
        CHECK(0);
    }
    free(copy);
}

static void
check_address(const uint8_t *p, size_t len)
{
    char *s = malloc(len + 1), host[16];
    int port = -1;

    CHECK(s != NULL);
    memcpy(s, p, len);
    s[len] = '\0';
    if (redis_wire_parse_address(s, host, sizeof(host), &port) == 0) {
        CHECK(memchr(host, '\0', sizeof(host)) != NULL);
        CHECK(port >= 1 && port <= 65535);
    }
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut;

    if (size == 0)
        return 0;
    cut = data[0];
    data++;
    size--;
    if (cut > size)
        cut = size;
    check_channel((const char *)data, cut);
    check_envelope(data + cut, size - cut);
    check_address(data, size < 300 ? size : 300);
    return 0;
}
