/*
 * redis.h: the Redis pub/sub bridge between machines (DESIGN §5.3). Each
 * worker holds one: a subscriber connection (its inbox, the broadcast
 * channel, and a channel per topic that has local subscribers) and a
 * publisher connection, both hiredis async contexts on the worker's loop.
 * Channel names and the envelope are redis_wire.h's.
 *
 * Messages go out once, from the worker where they started, stamped with
 * the node; what comes back with our own node is dropped, since the
 * local bus delivered it already. What arrives is handed to ops->deliver,
 * which delivers to this worker's own connections only (every worker of
 * a node subscribes for itself).
 *
 * Delivery is at most once. While the bridge is down (connecting, or
 * waiting to reconnect: 100 ms doubling to 5 s) messages to publish are
 * dropped and counted, as are those over the publisher's cap of commands
 * or bytes waiting for Redis. After a reconnect every channel is
 * subscribed again; what was published meanwhile is lost.
 *
 * Everything here runs on the loop given to redis_new, from its thread.
 */
#ifndef SOCK_REDIS_H
#define SOCK_REDIS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus_wire.h"

#define REDIS_MAX_INFLIGHT 10000          /* PUBLISH commands unanswered */
#define REDIS_MAX_INFLIGHT_BYTES (64u << 20)
#define REDIS_BACKOFF_MIN 0.1             /* seconds */
#define REDIS_BACKOFF_MAX 5.0
#define REDIS_CONNECT_TIMEOUT 5.0

struct redis;

/* Counters since redis_new, kept where the caller says (the worker's
   shared stats page). Only this worker's bridge writes them. */
struct redis_stats {
    uint64_t published;  /* PUBLISH commands queued to Redis */
    uint64_t received;   /* messages from other nodes delivered */
    uint64_t dropped;    /* not published: bridge down, or over the cap */
    uint64_t malformed;  /* from Redis, rejected: bad envelope or channel */
    uint64_t unrouted;   /* directed messages no worker was subscribed to */
    uint64_t connects;   /* times the bridge came up */
    uint64_t connected;  /* gauge: 1 while both connections are up */
    uint64_t node_clashes; /* checks that found our node_id held by
                              another sockd (redis.c, "Node registry") */
};

struct redis_ops {
    /*
     * A message from another node for this worker: m->type BUS_SEND (to
     * one of our ids), BUS_PUBLISH (m->topic, m->topic_len: the topic,
     * not NUL-terminated, 1-255 bytes) or BUS_BROADCAST. m and what it
     * points to are valid only during the call. Must not call redis_free.
     */
    void (*deliver)(void *ctx, const struct bus_msg *m);
};

/*
 * Creates the bridge of worker (node, generation, slot) and starts
 * connecting to address ("HOST:PORT") at once; channel names start with
 * prefix (copied). password (copied, NULL for none) is sent with AUTH
 * first on both connections. instance names this sockd (the same in all
 * its workers, different in any other sockd): it is what the node
 * registry holds for node (see redis.c). ops is copied, ctx is passed to
 * its callbacks, stats must outlive the bridge. Returns NULL with a
 * message in err (errlen bytes) for a bad address or no memory; an
 * unreachable server is not an error (the bridge keeps trying).
 */
struct redis *redis_new(struct ev_loop *loop, const char *address,
                        const char *prefix, const char *password,
                        const char *instance, uint16_t node,
                        uint8_t generation, uint8_t slot,
                        const struct redis_ops *ops, void *ctx,
                        struct redis_stats *stats, char *err, size_t errlen);

/*
 * Closes both connections (what is still queued for Redis is lost) and
 * stops every watcher. NULL: no-op. Not from ops->deliver.
 */
void redis_free(struct redis *r);

/*
 * Publishes m to the other nodes: m->type BUS_PUBLISH goes to the topic's
 * channel (m->topic, m->topic_len), BUS_BROADCAST to the broadcast
 * channel, BUS_SEND to the inbox of the worker owning m->to. Returns 0
 * once queued, -ENOTCONN (bridge down) or -ENOBUFS (over the cap), both
 * counted in dropped, -EINVAL (type, or a topic of 0 or over 255 bytes),
 * or -ENOMEM.
 */
int redis_publish(struct redis *r, const struct bus_msg *m);

/*
 * Stops (paused) or resumes reading the subscriber connection: what other
 * nodes publish waits in Redis meanwhile (past its client output buffer
 * limit for pub/sub, Redis closes the connection and the bridge
 * reconnects: those messages are lost, as in an outage). Messages of a
 * read already made are still delivered.
 */
void redis_pause_input(struct redis *r, bool paused);

/*
 * Wants (on) or no longer wants the channel of topic (NUL-terminated,
 * 1-255 bytes). The caller says on at the first local subscriber and off
 * at the last; the bridge remembers the set and subscribes to all of it
 * after every reconnect. Returns 0, -EINVAL or -ENOMEM.
 */
int redis_subscribe(struct redis *r, const char *topic, bool on);

#endif
