/*
 * messaging.h: infos between connections of this worker (DESIGN §5):
 * each connection's bounded inbox, topics, broadcast, sock_send_after
 * timers, and the host calls of sock.h that send infos. Delivery always
 * happens from the worker's idle watcher, never inside another callback.
 * Messages for other workers go to the bus, for other machines to the
 * Redis bridge (ipc/).
 *
 * Connections are opaque here: messaging keeps each one's mailbox
 * (struct msg_box, held in the connection's cold part) and reaches the
 * connections themselves only through the callbacks worker.c registers
 * (struct messaging_conn_ops), so it depends on nothing of conn.c.
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

/*
 * A connection's mailbox: the infos waiting for delivery, its
 * sock_send_after timers and its topic subscriptions. The connection
 * holds it (in its cold part, made on first use); messaging owns what is
 * in it.
 */
struct msg_box {
    struct conn *c;      /* whose: passed back to messaging_conn_ops */
    struct worker *w;
    uint32_t n;          /* infos in inbox */
    struct list inbox;   /* struct info.link, oldest first */
    struct list timers;  /* sock_send_after */
    struct list subs;    /* topic subscriptions */
};

/* What messaging needs of connections (conn.h's, registered by worker.c). */
struct messaging_conn_ops {
    /* The open connection with that id on this worker, or NULL. */
    struct conn *(*find)(struct worker *w, sock_id id);
    /*
     * Queues an info for c (new references to topic and data; held: see
     * struct info). Over max_info_queue it is dropped and counted, or c
     * fails with 1008 under the close policy. 0, -EPIPE (c not open),
     * -ENOBUFS (dropped) or -ENOMEM.
     */
    int (*enqueue)(struct conn *c, sock_info_kind kind, uint32_t type,
                   sock_id from, sock_buf *topic, sock_buf *data,
                   bool held);
    /* A publish to a frame-mode subscriber (conn_push_frame). */
    int (*push_frame)(struct conn *c, uint8_t op, sock_buf *payload,
                      sock_buf *frame, bool held);
    /* enqueue of a SOCK_INFO_BROADCAST (data, held) to every open
       connection of w. */
    void (*broadcast)(struct worker *w, uint32_t type, sock_id from,
                      sock_buf *data, bool held);
};

/* Sets up w's topics; ops stay referenced while w lives. */
void messaging_init(struct worker *w, const struct messaging_conn_ops *ops);
void messaging_destroy(struct worker *w);

/* The host calls behind sock_send_info, sock_publish and sock_broadcast
   (host: the worker; worker.c installs them with sock_host_set). */
int messaging_send_info(void *host, sock_id to, uint32_t type,
                        const void *data, size_t len);
int messaging_publish(void *host, const char *topic, uint32_t type,
                      const void *data, size_t len);
int messaging_broadcast(void *host, uint32_t type, const void *data,
                        size_t len);

/* An empty mailbox of c on w. */
void messaging_box_init(struct msg_box *b, struct worker *w, struct conn *c);
/*
 * Appends an info to b (taking new references to topic and data), with
 * no limit: the connection checks max_info_queue first. 0 or -ENOMEM.
 */
int messaging_box_put(struct msg_box *b, sock_info_kind kind, uint32_t type,
                      sock_id from, sock_buf *topic, sock_buf *data,
                      bool held);
/* Takes the oldest info of b, or NULL (also for b NULL); the caller frees
   it with messaging_info_free. */
struct info *messaging_pop(struct msg_box *b);
void messaging_info_free(struct info *i);
/* Drops the inbox, cancels the timers, leaves every topic (b may be
   NULL). */
void messaging_box_cleanup(struct msg_box *b);

/* The operations behind sock_subscribe / sock_subscribe_frames (frame_op
   TEXT or BINARY; 0 for infos) / sock_send_after, on the mailbox of an
   open connection. Joining a topic b is in already switches its mode. */
int messaging_subscribe(struct msg_box *b, const char *topic, bool on,
                        uint8_t frame_op);
int messaging_send_after(struct msg_box *b, uint32_t ms, uint32_t type,
                         const void *data, size_t len);

struct bus_msg;
/* Infos from another worker or machine (BUS_SEND, BUS_PUBLISH,
   BUS_BROADCAST), for this worker's own connections only (ctx: the
   worker); other types are ignored (worker.c routes them). */
void messaging_bus_deliver(void *ctx, const struct bus_msg *m);
/* Reads the bus again once the fan-out backlog that paused it (over
   max_fanout_backlog) is down to half (before each poll). */
void messaging_fan_resume(struct worker *w);

/* A sock_post, on the loop: to c on this worker as SOCK_INFO_POST, or
   over the bus or Redis like sock_send_info from 0; stale ids counted. */
void messaging_post_deliver(struct worker *w, sock_id to, uint32_t type,
                            const void *data, size_t len);

/* The id of the connection whose callback is running (0: none), the
   "from" of the infos it sends. */
void messaging_set_current(struct worker *w, sock_id id);

#endif
