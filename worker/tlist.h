/*
 * tlist.h: timeouts by class, libev's "lazy" technique for many timers
 * of one duration: members sit in a list ordered by their last stamp, so
 * refreshing a member is an O(1) move to the tail, and one ev_timer per
 * list fires for the oldest. A worker keeps one list per distinct
 * duration in use (handshake, idle, ping, pong, close).
 */
#ifndef SOCK_TLIST_H
#define SOCK_TLIST_H

#include <ev.h>
#include <stdint.h>

#include "common.h"

struct tlist;

/* Embedded in the timed object. */
struct tnode {
    struct list link;
    struct tlist *owner; /* NULL when in no list */
    ev_tstamp stamp;     /* when its timeout started */
};

/* Called for each expired member (already removed from its list). */
typedef void (*tlist_expire_fn)(struct tnode *n, void *ctx);

struct tlist_set;

struct tlist_set *tlist_set_new(struct ev_loop *loop, tlist_expire_fn fn,
                                void *ctx);
void tlist_set_free(struct tlist_set *s);

/*
 * Puts n in the list of timeout ms (moving it from any other), stamped now.
 * ms == 0 removes it. Returns 0 or -ENOMEM.
 */
int tlist_arm(struct tlist_set *s, struct tnode *n, uint32_t ms);
/* Restamps n now, keeping its list (O(1)). */
void tlist_touch(struct tlist_set *s, struct tnode *n);
void tlist_disarm(struct tnode *n);

static inline void
tnode_init(struct tnode *n)
{
    list_init(&n->link);
    n->owner = NULL;
    n->stamp = 0;
}

#endif
