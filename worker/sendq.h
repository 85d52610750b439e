/*
 * sendq.h: a connection's outbound queue. Small frames are copied into
 * chunks so that every push of a loop iteration leaves in one writev
 * (corking); shared buffers are queued by reference (zero copy). An empty
 * queue owns no memory.
 */
#ifndef SOCK_SENDQ_H
#define SOCK_SENDQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sock_impl.h"

struct sendq_seg;

#define SENDQ_IOV 64 /* segments gathered per write */

struct sendq {
    struct sendq_seg *head, *tail;
    size_t bytes; /* queued, not yet written */
};

/* Writes to the peer: like writev(2) but returns -errno. TLS plugs in here. */
typedef ssize_t (*sendq_writev_fn)(void *ctx, const struct iovec *iov,
                                   int iovcnt);

void sendq_init(struct sendq *q);
/* Bytes queued in every send queue of this process, not yet written. */
size_t sendq_total_bytes(void);
/* Frees every segment and drops buffer references. */
void sendq_clear(struct sendq *q);
/* Appends hdr then data, copied. 0 or -ENOMEM. */
int sendq_append(struct sendq *q, const void *hdr, size_t hlen,
                 const void *data, size_t len);
/* Appends hdr (copied) then b by reference (a new ref is taken). */
int sendq_append_buf(struct sendq *q, const void *hdr, size_t hlen,
                     sock_buf *b);
/*
 * Writes as much as the peer takes, at most max_calls writev calls.
 * Returns 0 when the queue is empty, 1 when bytes remain (would block or
 * call budget spent), or a negative errno from the write.
 */
int sendq_flush(struct sendq *q, sendq_writev_fn fn, void *ctx,
                int max_calls);
/* The next write sendq_flush would make, without making it: up to max of
   the queue's first segments, as iovecs. Returns how many, and sets
   *bytes to their sum. */
int sendq_peek(const struct sendq *q, struct iovec *iov, int max,
               size_t *bytes);
/* n bytes from the head have been written (n <= q->bytes). */
void sendq_consume(struct sendq *q, size_t n);

#endif
