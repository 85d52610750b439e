/*
 * appio.h: the loop integration sock.h gives apps beyond connections:
 * file descriptor watches and timers on the worker's loop
 * (sock_watch_fd, sock_timer_start), and the one thread-safe queue into
 * the loop, behind sock_post and deferred upgrade decisions: other
 * threads append under a mutex and wake the loop with an ev_async; the
 * loop drains it in bounded batches. Delivery itself is messaging.c's
 * (posts) and pending.c's (decisions, through the function it queues
 * with each, since pending.c itself queues into this module).
 */
#ifndef SOCK_APPIO_H
#define SOCK_APPIO_H

#include <stddef.h>
#include <stdint.h>

#include "sock.h"

struct worker;
struct wpending;

/* Most posts and decisions waiting for the loop; more get -ENOBUFS. */
#define APPIO_QUEUE_MAX 65536

/* Creates w->appio and starts its ev_async. 0 or -ENOMEM. */
int appio_init(struct worker *w);
/*
 * Stops every watch and timer the apps left running and drops what is
 * still queued (a decision's arg is freed with its free_arg). After every
 * connection is gone, before the loop goes.
 */
void appio_destroy(struct worker *w);

/* The host calls (host: the worker). */
sock_watch *appio_watch_fd(void *host, int fd, unsigned events,
                           sock_watch_fn cb, void *arg);
int appio_watch_set(void *host, sock_watch *sw, unsigned events);
void appio_watch_stop(void *host, sock_watch *sw);
sock_timer *appio_timer_start(void *host, uint32_t ms, uint32_t repeat_ms,
                              sock_timer_fn cb, void *arg);
void appio_timer_stop(void *host, sock_timer *st);
/* Thread-safe: copies data, queues it for the loop. */
int appio_post(void *host, sock_id to, uint32_t type, const void *data,
               size_t len);
/* Applies a queued decision on the loop (pending_apply's contract); with
   status -EPIPE when the queue goes before it was applied. */
typedef void appio_decision_fn(struct wpending *p, int status,
                               const char *body, void *arg,
                               void (*free_arg)(void *));
/*
 * Thread-safe: queues the app's decision on p for the loop, where apply
 * gets it (pending.c holds its lock). Takes over body (malloc'd or NULL)
 * on success; apply borrows it. 0, -ENOBUFS or -ENOMEM.
 */
int appio_queue_decision(struct worker *w, appio_decision_fn *apply,
                         struct wpending *p, int status, char *body,
                         void *arg, void (*free_arg)(void *));

#endif
