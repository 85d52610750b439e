/*
 * channel.h: the words of the master-worker channel (a SOCK_SEQPACKET
 * socketpair, one short ASCII message per packet), shared by the master
 * (master/wchan.c, master/spawn.c) and the worker (worker/wctl.c) so the
 * two sides cannot drift. A name ending in a space takes arguments after
 * it. Unknown words are logged and ignored, so a newer master can talk to
 * an older worker. Here, not in master/, because nothing includes master.
 */
#ifndef SOCK_CHANNEL_H
#define SOCK_CHANNEL_H

#include <string.h>

/* Master to worker. */
#define CHAN_QUIT "quit"      /* reload: stop accepting, drain */
#define CHAN_STOP "stop"      /* graceful stop: 1001 to every client */
#define CHAN_FAST "fast"      /* stop now */
#define CHAN_REOPEN "reopen"  /* reopen the log file */
#define CHAN_PING "ping "     /* SEQ: answer CHAN_PONG SEQ from the loop */
#define CHAN_PEER "peer "     /* KEY PID PATH: another worker's bus end */
#define CHAN_UNPEER "unpeer " /* KEY: that worker is gone */

/* Worker to master. */
#define CHAN_READY "ready"        /* its loop runs and it accepts */
#define CHAN_DRAINING "draining"  /* after CHAN_QUIT: accepts no more */
#define CHAN_PONG "pong "         /* SEQ */
#define CHAN_ERROR "error "       /* TEXT: why it failed to start */
#define CHAN_CONNS "conns "       /* N: its connection count */

/* The arguments after word (one of the names above ending in a space)
   if msg starts with it, else NULL. */
static inline const char *
chan_args(const char *msg, const char *word)
{
    size_t n = strlen(word);

    return strncmp(msg, word, n) == 0 ? msg + n : NULL;
}

#endif
