/*
 * bus.h: the bus between worker processes on one machine (DESIGN §5.2).
 * Each worker has one bus: it listens on its own AF_UNIX stream socket
 * and keeps one lazily connected outbound stream per peer, so messages
 * from one sender to one receiver stay in order. Delivery is at most
 * once: what does not fit a peer's bounded queue is dropped and counted,
 * and nothing a peer does can block the sender.
 *
 * The bus carries frames (bus_wire.h) and hands every received message to
 * ops->deliver. It knows nothing of connections, topics or ids: routing
 * to sock_conns is the worker's, membership (which peers exist, their
 * pids and paths) comes from the master through the worker.
 *
 * Everything here runs on the loop given to bus_new, from its thread.
 */
#ifndef SOCK_BUS_H
#define SOCK_BUS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus_wire.h"

#define BUS_PEER_CAP_DEFAULT (8u << 20)    /* outbound bytes per peer */
#define BUS_MAX_FRAME_DEFAULT (16u << 20)  /* 8 MiB messages, with room */

struct bus;

struct bus_ops {
    /*
     * Called for every message received from any peer, in the order each
     * sender sent them (BUS_HELLO frames are the bus's own and never
     * delivered). m and everything it points to (topic, which is not
     * NUL-terminated, and data) are valid only during the call. The
     * callback may call bus_send, bus_send_all, bus_peer_add and
     * bus_peer_remove, but not bus_free.
     */
    void (*deliver)(void *ctx, const struct bus_msg *m);
};

/*
 * Counters since bus_new. A message counts as sent when it is queued;
 * bytes_out counts what the kernel took (hellos included).
 */
struct bus_stats {
    uint64_t sent;            /* messages queued, per peer */
    uint64_t received;        /* messages delivered */
    uint64_t dropped_full;    /* refused: the peer's queue was at its cap */
    uint64_t dropped_unknown; /* refused: no such peer */
    uint64_t dropped_closed;  /* lost: half written when a connection
                                 broke, or still queued at peer removal */
    uint64_t bytes_out, bytes_in;
    uint64_t connects;        /* outbound connections established */
    uint64_t rejects;         /* inbound connections refused: credentials
                                 or hello */
    uint64_t errors;          /* connections closed on a protocol or I/O
                                 error */
    uint64_t writevs;         /* gathered writes (one per peer per loop
                                 iteration when all goes well) */
};

/*
 * Creates the bus of the peer self_key (gen << 8 | slot, as the peers
 * know us) and listens at path: mode 0600, close-on-exec, non-blocking.
 * A stale socket file at path (nobody listening) is unlinked; a live one,
 * or a file that is not a socket, is an error. ops is copied; ctx is
 * passed to its callbacks. Returns NULL with a message in err (errlen
 * bytes, may be 0) on failure.
 */
struct bus *bus_new(struct ev_loop *loop, uint32_t self_key, const char *path,
                    const struct bus_ops *ops, void *ctx, char *err,
                    size_t errlen);

/*
 * Stops every watcher, closes every connection, drops every queued
 * message and unlinks the path. NULL: no-op. Not from ops->deliver.
 */
void bus_free(struct bus *b);

/*
 * Registers a peer. pid is the process inbound connections claiming
 * this key must come from (checked against SO_PEERCRED when their hello
 * arrives, and now for connections that claimed the key before it was
 * registered: they are closed if they fail); 0 checks only the uid.
 * Hellos naming keys not registered yet are accepted, since membership
 * reaches the workers in no particular order. Nothing is connected
 * until the first send. Adding a key again with the same pid and path
 * is a no-op, so membership can be re-announced. Returns 0, -EEXIST (key
 * known with a different pid or path: remove it first), -EINVAL (our own
 * key), -ENAMETOOLONG or -ENOMEM.
 */
int bus_peer_add(struct bus *b, uint32_t peer_key, pid_t pid,
                 const char *path);

/*
 * Forgets a peer: closes its outbound connection and drops what is still
 * queued for it (counted in dropped_closed). Inbound connections from it
 * are left to end by themselves. Unknown keys are ignored.
 */
void bus_peer_remove(struct bus *b, uint32_t peer_key);

/*
 * Queues m for one peer; m (topic and data included) is copied once into
 * the peer's queue and may be reused once this returns. It is written
 * before the loop next polls, in one writev with everything else queued
 * for that peer (the flush is an ev_prepare watcher at EV_MINPRI, so
 * sends from other prepare watchers make the same write); the first send
 * to a peer connects to it, and while it cannot be reached messages wait
 * in its queue. m->type is BUS_SEND, BUS_PUBLISH or BUS_BROADCAST.
 * Returns 0, -ENOENT (unknown peer; counted), -ENOBUFS (the peer's queue
 * would go over its cap: dropped and counted), -EMSGSIZE (the frame is
 * over the bus's max frame), -EINVAL (type) or -ENOMEM.
 *
 * Delivery is at most once: frames the kernel took on a connection that
 * then breaks are lost, and a frame half written when it broke is
 * dropped (counted in dropped_closed) so that the next connection starts
 * on a frame boundary. Order per sender and peer holds across
 * reconnects.
 */
int bus_send(struct bus *b, uint32_t peer_key, const struct bus_msg *m);

/*
 * Queues m for every peer. The frame is encoded once; frames of 256
 * bytes or more are shared by reference between the peers' queues,
 * smaller ones are copied (cheaper than a reference). Returns 0 when
 * every peer got it (also when there are none), -ENOBUFS when at least
 * one peer's queue was full (each such drop counted; the others still
 * got it), or as bus_send for -EMSGSIZE, -EINVAL and -ENOMEM.
 */
int bus_send_all(struct bus *b, const struct bus_msg *m);

/*
 * The per-peer queue cap in bytes, for every peer, present and future.
 * Lowering it drops nothing already queued. Default BUS_PEER_CAP_DEFAULT.
 */
void bus_set_peer_cap(struct bus *b, size_t cap);

/*
 * The largest frame sent or accepted. Every bus of a mesh must use the
 * same value: a receiver closes a connection that carries a larger one.
 * Default BUS_MAX_FRAME_DEFAULT; at most UINT32_MAX.
 */
void bus_set_max_frame(struct bus *b, size_t max_frame);

/*
 * Stops (paused) or resumes reading from every peer, present and future.
 * While paused, what peers send waits in their queues and sockets (and
 * over their caps is dropped there, counted), so a receiver that cannot
 * keep up holds no more than it has decoded. Frames of a read already
 * made are still delivered.
 */
void bus_pause_input(struct bus *b, bool paused);

/* Bytes queued and not yet written for a peer, or -ENOENT. */
ssize_t bus_peer_queued(const struct bus *b, uint32_t peer_key);

struct bus_stats bus_stats(const struct bus *b);

#endif
