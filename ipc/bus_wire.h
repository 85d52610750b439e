/*
 * bus_wire.h: the frame format of the bus between workers on one machine
 * (DESIGN §5.2). Encoding and a resumable decoder, nothing else: sockets,
 * queues and who may talk to whom are bus.c's.
 *
 * A frame, all integers little-endian:
 *
 *   u32 total length (header + topic + payload)
 *   u8  version (BUS_WIRE_VERSION)
 *   u8  type (enum bus_type)
 *   u16 topic length
 *   u32 app type (sock_info type)
 *   u64 to (sock_id; 0 for publish and broadcast)
 *   u64 from (sock_id of the sender, 0 for the server itself)
 *   topic bytes (not NUL-terminated), then the payload
 *
 * The format is canonical: a frame decodes to exactly one bus_msg, and
 * encoding that bus_msg gives back the same bytes.
 */
#ifndef SOCK_BUS_WIRE_H
#define SOCK_BUS_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BUS_WIRE_VERSION 1
#define BUS_WIRE_HEADER 28

enum bus_type {
    BUS_HELLO = 0,      /* first frame of a connection: from = peer key */
    BUS_SEND = 1,       /* directed at one sock_id */
    BUS_PUBLISH = 2,    /* to the subscribers of a topic */
    BUS_BROADCAST = 3,  /* to every connection */
    BUS_ADMIN = 4,      /* an operator's request (worker/admin.c): to =
                           request id, from = the asker's peer key,
                           app_type = the command, topic = its argument */
    BUS_ADMIN_REPLY = 5, /* its answer: to = request id, app_type = an
                            HTTP status, data = text */
};

/*
 * One message. When decoded, topic and data point into the input buffer
 * and live as long as it does.
 */
struct bus_msg {
    uint8_t type;           /* enum bus_type */
    uint64_t to, from;
    uint32_t app_type;
    const char *topic;      /* topic_len bytes, may be NULL when 0 */
    uint16_t topic_len;
    const uint8_t *data;    /* len bytes, may be NULL when 0 */
    uint32_t len;
};

/*
 * Bytes the whole frame of m takes. Computed in 64 bits so that the
 * caller can compare it with its limit (and with UINT32_MAX) before
 * encoding.
 */
uint64_t bus_wire_size(const struct bus_msg *m);

/*
 * Writes the BUS_WIRE_HEADER header bytes of m's frame to out, so that
 * the topic and payload can follow by writev without being copied.
 * The caller has checked bus_wire_size(m) <= UINT32_MAX. Returns
 * BUS_WIRE_HEADER.
 */
size_t bus_wire_header(uint8_t out[BUS_WIRE_HEADER], const struct bus_msg *m);

/*
 * Writes the whole frame (header, topic, payload) to out, which has room
 * for bus_wire_size(m) bytes; same precondition. Returns the size.
 */
size_t bus_wire_encode(uint8_t *out, const struct bus_msg *m);

/*
 * Decodes the frame at the start of p[0..len). Returns the bytes it
 * takes, 0 if more input is needed, or -EPROTO for a bad version or type,
 * a length that cannot hold the header and topic, or a frame longer than
 * max_frame. Fields are checked as soon as they are in: a prefix of a
 * frame gives 0 or the same -EPROTO as the whole, and for any split the
 * caller just calls again with more bytes. Never reads past len. *m is
 * set only when a frame is returned.
 */
ssize_t bus_wire_decode(struct bus_msg *m, const uint8_t *p, size_t len,
                        size_t max_frame);

/*
 * The total length announced by a frame that starts at p, or 0 when
 * fewer than 4 bytes are in. Meant for sizing a buffer after
 * bus_wire_decode returned 0 on the same bytes (which checked it).
 */
size_t bus_wire_frame_len(const uint8_t *p, size_t len);

#endif
