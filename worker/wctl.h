/*
 * wctl.h: the worker's end of its control channel to the master (a
 * SOCK_SEQPACKET socketpair, one word of channel.h per packet): it takes
 * quit (drain for a reload), stop (graceful, 1001), fast, reopen, peer,
 * unpeer, and "ping N", answered "pong N" from the loop (the master's
 * heartbeat); it reports ready and its connection count. If the master
 * goes away the worker stops gracefully. Also the reload drain itself (DESIGN §4.3).
 */
#ifndef SOCK_WCTL_H
#define SOCK_WCTL_H

#include <stdint.h>

struct worker;

/* Attaches the channel fd (owned from now on) and reports "ready". */
void wctl_attach(struct worker *w, int fd);
void wctl_detach(struct worker *w);
/* The connection count changed: reported to the master shortly. */
void wctl_conns_changed(struct worker *w);
/*
 * Reload drain: stop accepting now, give every app a SOCK_INFO_DRAIN,
 * after drain_timeout close the rest with 1012 spread over drain_spread,
 * exit by worker_shutdown_timeout at the latest.
 */
void worker_drain(struct worker *w);

#endif
