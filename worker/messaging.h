/*
 * messaging.h: infos between connections of this worker (DESIGN §5):
 * each connection's bounded inbox, topics, broadcast, sock_send_after
 * timers, and the process-wide host calls of sock.h. Delivery always
 * happens from the worker's idle watcher, never inside another callback.
 * Messages for other workers go to the bus, for other machines to the
 * Redis bridge (ipc/).
 */
#ifndef SOCK_MESSAGING_H
#define SOCK_MESSAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "sock_impl.h"

struct conn;
struct worker;

struct info {
    struct list link;
    uint8_t kind;    /* sock_info_kind */
    bool held;       /* a fan-out gathered for the next tick: what
                        handle_info pushes waits for it too */
    uint32_t type;
    sock_id from;
    sock_buf *topic; /* NUL-terminated name, or NULL */
    sock_buf *data;
};

/* Installs the host calls (send_info, publish, broadcast) for w. */
void messaging_init(struct worker *w);
void messaging_destroy(struct worker *w);

/*
 * Queues an info for c (taking new references to topic and data). Over
 * max_info_queue it is dropped and counted, or the connection is closed
 * with 1008 under the close policy. Returns 0 or -errno.
 */
int messaging_enqueue(struct conn *c, sock_info_kind kind, uint32_t type,
                      sock_id from, sock_buf *topic, sock_buf *data);
/* Takes the oldest info (caller frees it with messaging_info_free). */
struct info *messaging_pop(struct conn *c);
void messaging_info_free(struct info *i);

/* Connection ops behind sock_subscribe / sock_subscribe_frames (frame_op
   TEXT or BINARY; 0 for infos) / sock_send_after. Joining a topic c is
   in already switches its mode. */
int messaging_subscribe(struct conn *c, const char *topic, bool on,
                        uint8_t frame_op);
int messaging_send_after(struct conn *c, uint32_t ms, uint32_t type,
                         const void *data, size_t len);
/* Drops the inbox, cancels timers, leaves every topic. */
void messaging_conn_cleanup(struct conn *c);

struct bus_msg;
/* The bus's and the Redis bridge's deliver callback: a message from
   another worker or machine, for this worker's own connections only
   (ctx: the worker). */
void messaging_bus_deliver(void *ctx, const struct bus_msg *m);

/* A sock_post, on the loop: to c on this worker as SOCK_INFO_POST, or
   over the bus or Redis like sock_send_info from 0; stale ids counted. */
void messaging_post_deliver(struct worker *w, sock_id to, uint32_t type,
                            const void *data, size_t len);

/* The connection whose callback is running, for the "from" of infos. */
void messaging_set_current(struct worker *w, struct conn *c);

#endif
