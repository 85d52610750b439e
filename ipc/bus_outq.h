/*
 * bus_outq.h: the outbound queue of one bus peer. Whole frames only:
 * small frames are encoded straight into packing chunks (the one copy of
 * a bus_send), shared frames (bus_send_all) are queued by reference. A
 * frame never straddles two segments, so when a connection breaks the
 * queue can drop the one frame that was half written and keep the rest
 * intact for the next connection. Sockets, caps and counters are bus.c's.
 */
#ifndef SOCK_BUS_OUTQ_H
#define SOCK_BUS_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bus_wire.h"

/* An encoded frame shared by several queues; reference-counted. */
struct bus_frame;

struct bus_outq_seg;

struct bus_outq {
    struct bus_outq_seg *head, *tail;
    size_t bytes;   /* queued, not yet written */
};

/*
 * Encodes m once into a new frame with one reference, which the caller
 * owns. The caller has checked bus_wire_size(m) <= UINT32_MAX. NULL when
 * out of memory.
 */
struct bus_frame *bus_frame_new(const struct bus_msg *m);
void bus_frame_unref(struct bus_frame *f);   /* NULL: no-op */
size_t bus_frame_len(const struct bus_frame *f);
const uint8_t *bus_frame_data(const struct bus_frame *f);

void bus_outq_init(struct bus_outq *q);
/* Frees everything. Returns the frames dropped unwritten (whole or part). */
size_t bus_outq_clear(struct bus_outq *q);
/*
 * Appends m's frame, encoded in place: header, topic and payload are
 * copied once. Same precondition as bus_frame_new. 0 or -ENOMEM.
 */
int bus_outq_append_msg(struct bus_outq *q, const struct bus_msg *m);
/* Appends an already encoded frame of len bytes, copied. 0 or -ENOMEM. */
int bus_outq_append_bytes(struct bus_outq *q, const uint8_t *frame,
                          size_t len);
/* Appends f by reference; the queue takes its own. 0 or -ENOMEM. */
int bus_outq_append_frame(struct bus_outq *q, struct bus_frame *f);
/*
 * Fills at most max iovecs with the queued bytes from the front. Returns
 * how many it filled (0 when the queue is empty).
 */
int bus_outq_iov(const struct bus_outq *q, struct iovec *iov, int max);
/* Drops the first n written bytes (n <= q->bytes). */
void bus_outq_consume(struct bus_outq *q, size_t n);
/*
 * For a new connection: if the front frame was partly written on the old
 * one, drops the rest of it, since the next receiver would read it as a
 * frame start. Returns true if a frame was dropped.
 */
bool bus_outq_trim(struct bus_outq *q);

#endif
