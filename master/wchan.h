/*
 * wchan.h: the master's end of the worker channels: commands out, reports
 * in, bus membership announcements and heartbeats.
 */
#ifndef SOCK_WCHAN_H
#define SOCK_WCHAN_H

#include <ev.h>

struct generation;
struct master;
struct wproc;

/* Sends one channel message (channel.h) to w, if its channel is open;
   never blocks (a full channel loses it). */
void wchan_send(struct wproc *w, const char *msg);
/* Sends msg to every live worker of g. */
void wchan_send_all(struct generation *g, const char *msg);
/* w's channel watcher: reads one report (ready, draining, pong, error,
   conns); at end of file closes the channel (ev_child tells the rest). */
void wchan_on_read(struct ev_loop *loop, ev_io *io, int revents);
/* Reads what w said before it exited (an error may not be read yet). */
void wchan_read_last(struct master *m, struct wproc *w);
/* w is gone: every other live worker drops it from its bus peers. */
void wchan_announce_gone(struct master *m, const struct wproc *w);
/* (Re)starts the heartbeat tick for the generations alive now, or stops
   it when none has worker_heartbeat_timeout. */
void wchan_heartbeat_arm(struct master *m);
/* The heartbeat tick (m->heartbeat). */
void wchan_on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents);

#endif
