/*
 * redis_wire.h: what the Redis bridge between machines (DESIGN §5.3) puts
 * on the wire: channel names, the envelope around each message, and the
 * PUBLISH command in RESP. Pure functions on memory: connections, backoff
 * and subscriptions are redis.c's.
 *
 * Channels (PREFIX is [redis] prefix, "sock:" by default):
 *
 *   PREFIX t:TOPIC            sock_publish to TOPIC
 *   PREFIX all                sock_broadcast
 *   PREFIX w:NODE:GEN:SLOT    sock_send_info to an id of that worker
 *                             (decimal fields of the id, DESIGN §5.1)
 *
 * The envelope is the whole Redis message, all integers little-endian:
 *
 *   u8  magic 's', u8 magic 'k'
 *   u8  version (REDIS_WIRE_VERSION)
 *   u8  type (BUS_SEND, BUS_PUBLISH or BUS_BROADCAST of bus_wire.h)
 *   u16 origin node ([server] node_id of the sending machine)
 *   u32 app type (sock_info type)
 *   u64 from (sock_id of the sender, 0 for the server itself)
 *   u64 to (the target sock_id for BUS_SEND, else 0)
 *   the payload, to the end of the message
 *
 * The topic is not repeated in the envelope: it is the channel's. The
 * format is canonical: an envelope decodes to one message, and encoding
 * that message gives back the same bytes.
 */
#ifndef SOCK_REDIS_WIRE_H
#define SOCK_REDIS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus_wire.h"

#define REDIS_WIRE_VERSION 1
#define REDIS_WIRE_HEADER 26
/* A host name or address, and a decimal port. */
#define REDIS_WIRE_HOST_MAX 256
/* Longest [redis] prefix: channel names stay under 512 bytes. */
#define REDIS_WIRE_PREFIX_MAX 200
/* Room for any channel name under such a prefix, with the NUL. */
#define REDIS_WIRE_CHANNEL_MAX (REDIS_WIRE_PREFIX_MAX + 2 + 255 + 1)

/* What a channel name stands for (redis_wire_channel_kind). */
enum redis_chan {
    REDIS_CHAN_OTHER = 0, /* not ours: another prefix, or not a kind */
    REDIS_CHAN_TOPIC,
    REDIS_CHAN_ALL,
    REDIS_CHAN_INBOX,
};

/*
 * Writes the header of the envelope of m, sent by node origin, to out.
 * m->type is BUS_SEND, BUS_PUBLISH or BUS_BROADCAST; topic and data are
 * not read. Returns REDIS_WIRE_HEADER.
 */
size_t redis_wire_header(uint8_t out[REDIS_WIRE_HEADER], uint16_t origin,
                         const struct bus_msg *m);

/*
 * Decodes the envelope p[0..len) (one whole Redis message) into *m and
 * *origin. m->data points into p, m->topic is left NULL. Returns 0, or
 * -EPROTO when it is shorter than the header, the magic, version or type
 * is wrong, to is 0 for BUS_SEND or not 0 for the others, or the payload
 * is over UINT32_MAX bytes. Never reads past len; *m and *origin are set
 * only on success.
 */
int redis_wire_decode(struct bus_msg *m, uint16_t *origin, const uint8_t *p,
                      size_t len);

/*
 * Channel names, NUL-terminated in buf[0..size). Each returns the length
 * (without the NUL), or -ENAMETOOLONG when buf is too small.
 */
int redis_wire_topic_channel(char *buf, size_t size, const char *prefix,
                             const char *topic, size_t topic_len);
int redis_wire_all_channel(char *buf, size_t size, const char *prefix);
/* The inbox of the worker that owns the connection id `to`. */
int redis_wire_inbox_channel(char *buf, size_t size, const char *prefix,
                             uint64_t to);

/*
 * What channel ch (len bytes, not NUL-terminated) is under prefix. For a
 * topic channel *topic and *topic_len give the topic inside ch (1 to 255
 * bytes; longer or empty topics are REDIS_CHAN_OTHER). An inbox channel
 * must be written exactly as redis_wire_inbox_channel writes it.
 */
enum redis_chan redis_wire_channel_kind(const char *prefix, const char *ch,
                                        size_t len, const char **topic,
                                        size_t *topic_len);

/*
 * The PUBLISH command of an envelope header and payload to channel, in
 * RESP. redis_wire_publish_size gives the bytes it takes;
 * redis_wire_publish writes exactly that many to out and returns it.
 */
size_t redis_wire_publish_size(size_t channel_len, size_t payload_len);
size_t redis_wire_publish(char *out, const char *channel, size_t channel_len,
                          const uint8_t hdr[REDIS_WIRE_HEADER],
                          const void *payload, size_t payload_len);

/*
 * Splits "HOST:PORT" (a name, an IPv4 address, or an IPv6 address in
 * brackets) into host (hostlen bytes with the NUL) and *port (1..65535).
 * Returns 0 or -EINVAL.
 */
int redis_wire_parse_address(const char *s, char *host, size_t hostlen,
                             int *port);

#endif
