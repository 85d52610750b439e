/*
 * notify.h: systemd's notify protocol (sd_notify(3)) written out: one
 * datagram per state change to $NOTIFY_SOCKET, plus the watchdog. No
 * libsystemd. Only the master calls it; notify_open removes the variables
 * from the environment so that workers never inherit them.
 */
#ifndef SOCK_NOTIFY_H
#define SOCK_NOTIFY_H

#include <stdint.h>

/* Reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID. Returns
   the watchdog interval in µs for this process (0: none). */
uint64_t notify_open(void);
/* Sends one datagram of newline-separated assignments; no-op without a
   socket. */
void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in µs, for RELOADING=1's MONOTONIC_USEC. */
uint64_t notify_monotonic_usec(void);
void notify_close(void);
/* Removes name from the environment and blanks its bytes in place, so
   children do not see it even in /proc/PID/environ. */
void notify_scrub_env(const char *name);

#endif
