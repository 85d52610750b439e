/*
 * bus_in.h: the receiving half of the bus (bus.h): the listening socket,
 * the connections peers open to it (credentials, then the hello that
 * names the sender) and reading frames off them for the owner to
 * deliver. Peers, queues, sending and the public API are bus.c's, which
 * embeds one of these and is its only user.
 */
#ifndef SOCK_BUS_IN_H
#define SOCK_BUS_IN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "bus_wire.h"
#include "common.h"

#define BUS_PATH_MAX sizeof(((struct sockaddr_un *)NULL)->sun_path)

struct bus_in;

/* What the owner decides; both are called from the loop only. */
struct bus_in_hooks {
    /* A message (never a hello), valid during the call only. */
    void (*deliver)(struct bus_in *in, const struct bus_msg *m);
    /* May a connection whose hello names key come from process pid? */
    bool (*pid_ok)(struct bus_in *in, uint32_t key, pid_t pid);
};

struct bus_in {
    struct ev_loop *loop;
    const struct bus_in_hooks *hooks;
    uint32_t self_key;
    size_t max_frame;         /* the owner may change it at any time */
    char path[BUS_PATH_MAX];
    int lfd;
    ev_io lio;
    ev_timer accept_pause;
    struct list conns;        /* struct inconn */
    uint8_t *rbuf;            /* the one read buffer */
    uint64_t received, bytes_in, rejects, errors;
    bool paused;              /* bus_in_pause: nothing is read */
    ev_tstamp log_at;         /* rate limit for per-connection warnings */
    unsigned log_quiet;       /* warnings suppressed since log_at */
};

/*
 * Listens at path (AF_UNIX stream, mode 0600, non-blocking,
 * close-on-exec) and starts accepting on loop. A stale socket file
 * (nobody listening) is unlinked first; a live one, or a file that is
 * not a socket, is an error. hooks must outlive in. Returns 0, or -1
 * with a message in err (errlen bytes, may be 0).
 */
int bus_in_init(struct bus_in *in, struct ev_loop *loop, uint32_t self_key,
                const char *path, const struct bus_in_hooks *hooks,
                char *err, size_t errlen);

/* Closes every connection and the listener, and unlinks the path. */
void bus_in_destroy(struct bus_in *in);

/* Stops or resumes reading every connection (new ones start as set). */
void bus_in_pause(struct bus_in *in, bool paused);

/*
 * Applies the pid check again to connections whose hello named key, for
 * when key was registered after they arrived: the ones hooks->pid_ok now
 * refuses are closed. Safe from inside hooks->deliver.
 */
void bus_in_recheck(struct bus_in *in, uint32_t key);

#endif
