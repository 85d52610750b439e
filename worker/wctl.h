/*
 * wctl.h: the worker's end of its control channel to the master (a
 * SOCK_SEQPACKET socketpair, one word of channel.h per packet): it takes
 * quit (drain for a reload), stop (graceful, 1001), fast, reopen, peer,
 * unpeer, and "ping N", answered "pong N" from the loop (the master's
 * heartbeat); it reports ready and its connection count. If the master
 * goes away the worker stops gracefully. What quit (the reload drain,
 * DESIGN §4.3), stop and fast do is worker.c's, through the callbacks it
 * registers in w->ctl_ops, so this module needs nothing above wstate.h.
 */
#ifndef SOCK_WCTL_H
#define SOCK_WCTL_H

#include <stdint.h>

struct worker;

/* What the master's commands do to the worker; each runs on the loop. */
struct wctl_ops {
    void (*drain)(struct worker *w); /* quit: the reload drain */
    void (*stop)(struct worker *w);  /* stop, or the master gone: graceful
                                        (each route's shutdown code) */
    void (*fast)(struct worker *w);  /* fast: drop every connection */
};

/* Attaches the channel fd (owned from now on) and reports "ready";
   w->ctl_ops must be set. */
void wctl_attach(struct worker *w, int fd);
void wctl_detach(struct worker *w);
/* The connection count changed: reported to the master shortly. */
void wctl_conns_changed(struct worker *w);
/* Sends one word of channel.h to the master, best effort (none without
   a channel). */
void wctl_send(struct worker *w, const char *msg);

#endif
