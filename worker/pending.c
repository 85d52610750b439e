/*
 * pending.c: deferred upgrade decisions. A handle has two owners, the app
 * (until it decides) and the server (until the request is gone or
 * decided), counted under one process-wide mutex, since the app may
 * decide on any thread while the loop times the request out. The
 * decision itself travels to the loop through appio's queue and is
 * applied there, outside any callback, only if the request still waits.
 * The request is immutable once parsed and lives as long as the handle,
 * so the app's threads may check a subprotocol against it; what they add
 * (subprotocol, headers) waits under the lock until the decision applies.
 */
#include "pending.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appio.h"
#include "log.h"
#include "wstate.h"
#include "ws_handshake.h"

struct wpending {
    struct sock_pending base;
    int refs;                   /* app + server; under lock */
    bool dead;                  /* the server gave it up; under lock */
    bool decided;               /* the app decided; under lock */
    struct worker *w;
    char *sub;                  /* sock_pending_subprotocol; under lock */
    char *hdrs;                 /* sock_pending_header lines; under lock */
    size_t hdrs_len;
    /* The request: the hook's own until held, then a copy freed with p. */
    const struct sock_request *hook_req;
    struct sock_request *req;
    /* Loop thread only, while held: */
    struct conn *c;
    sock_pending **slot;        /* where c keeps the handle */
    pending_decided_fn *on_decided; /* takes the decision for c */
    struct sock_upgrade *up;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int pending_decide(sock_pending *sp, int status, const char *body,
                          void *arg, void (*free_arg)(void *));

static int pending_set(sock_pending *sp, int what, const char *a,
                       const char *b);

static const struct sock_pending_ops pending_ops = {
    .decide = pending_decide,
    .set = pending_set,
};

static struct wpending *
wp(sock_pending *sp)
{
    return container_of(sp, struct wpending, base);
}

/* Drops one reference (taken under lock); frees on the last. */
static void
unref(struct wpending *p)
{
    int left;

    pthread_mutex_lock(&lock);
    left = --p->refs;
    pthread_mutex_unlock(&lock);
    if (left != 0)
        return;
    if (p->req != NULL) {
        ws_request_destroy(p->req);
        free(p->req);
    }
    free(p->sub);
    free(p->hdrs);
    free(p);
}

sock_pending *
pending_new(void *host, struct sock_upgrade *u)
{
    struct wpending *p = calloc(1, sizeof(*p));

    (void)u;
    if (p == NULL)
        return NULL;
    p->base.ops = &pending_ops;
    p->refs = 2;
    p->w = host;
    p->hook_req = u->req; /* for setters called inside the hook */
    return &p->base;
}

/* Frees what the server kept for the request (the hook's arg too). */
static void
drop_held(struct wpending *p)
{
    if (p->up != NULL) {
        p->up->pending = NULL;
        sock_upgrade_destroy(p->up, false);
        free(p->up);
    }
    p->up = NULL;
    p->c = NULL;
    p->slot = NULL;
}

int
pending_hold(struct conn *c, sock_pending **slot, pending_decided_fn *decided,
             struct sock_request *r, struct sock_upgrade *u)
{
    struct wpending *p = wp(u->pending);
    struct sock_request *rq = malloc(sizeof(*rq));
    struct sock_upgrade *up = malloc(sizeof(*up));

    if (rq == NULL || up == NULL || slot == NULL) {
        free(rq);
        free(up);
        pending_release(u->pending);
        u->pending = NULL;
        return -ENOMEM;
    }
    *rq = *r;
    rq->peer = NULL; /* pointed into the caller's stack */
    *up = *u;
    up->req = rq;
    p->c = c;
    p->slot = slot;
    p->on_decided = decided;
    pthread_mutex_lock(&lock);
    p->req = rq;
    p->hook_req = NULL;
    pthread_mutex_unlock(&lock);
    p->up = up;
    *slot = &p->base;
    return 0;
}

void
pending_release(sock_pending *sp)
{
    struct wpending *p;

    if (sp == NULL)
        return;
    p = wp(sp);
    if (p->slot != NULL)
        *p->slot = NULL;
    drop_held(p);
    pthread_mutex_lock(&lock);
    p->dead = true;
    pthread_mutex_unlock(&lock);
    unref(p);
}

/* sock_pending_subprotocol (what 1) and sock_pending_header (2). */
static int
pending_set(sock_pending *sp, int what, const char *a, const char *b)
{
    struct wpending *p = wp(sp);
    const struct sock_request *r;
    int rc;

    pthread_mutex_lock(&lock);
    r = p->req != NULL ? p->req : p->hook_req;
    if (p->dead || r == NULL)
        rc = -EPIPE;
    else if (what == 1)
        rc = sock_extra_subprotocol(&p->sub, r, a);
    else
        rc = sock_extra_header(&p->hdrs, &p->hdrs_len, a, b);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* What the app's threads added, into up (on the loop). 0 or -ENOMEM. */
static int
merge_additions(struct wpending *p, struct sock_upgrade *up)
{
    int rc = 0;

    pthread_mutex_lock(&lock);
    if (p->sub != NULL) {
        free(up->subprotocol);
        up->subprotocol = p->sub;
        p->sub = NULL;
    }
    if (p->hdrs != NULL)
        rc = sock_extra_append(&up->extra_headers, &up->extra_len, p->hdrs,
                               p->hdrs_len);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* The app's decision, on any thread. */
static int
pending_decide(sock_pending *sp, int status, const char *body, void *arg,
               void (*free_arg)(void *))
{
    struct wpending *p = wp(sp);
    char *copy = NULL;
    int rc = 0;

    if (body != NULL && (copy = strdup(body)) == NULL)
        rc = -ENOMEM;
    pthread_mutex_lock(&lock);
    p->decided = true;
    if (p->dead)
        rc = -EPIPE;
    /* Alive: the request holds the worker, so its queue exists now. */
    if (rc == 0)
        rc = appio_queue_decision(p->w, pending_apply, p, status, copy, arg,
                                  free_arg);
    pthread_mutex_unlock(&lock);
    if (rc != 0) {
        free(copy);
        unref(p); /* the app's reference; the request waits on */
    }
    return rc;
}

void
pending_apply(struct wpending *p, int status, const char *body, void *arg,
              void (*free_arg)(void *))
{
    struct conn *c = p->c;
    struct sock_upgrade *up = p->up;
    bool dead;

    pthread_mutex_lock(&lock);
    dead = p->dead;
    pthread_mutex_unlock(&lock);
    if (dead || c == NULL || status < 0) {
        if (arg != NULL && free_arg != NULL)
            free_arg(arg);
        unref(p);
        return;
    }
    /* The request is answered now: the connection takes up's contents. */
    p->c = NULL;
    p->up = NULL;
    *p->slot = NULL;
    p->slot = NULL;
    up->pending = NULL;
    if (status == 0 && arg != NULL) { /* else the hook's arg stays */
        if (up->arg != NULL && up->free_arg != NULL && up->arg != arg)
            up->free_arg(up->arg); /* the hook's, replaced */
        sock_upgrade_set_arg(up, arg, free_arg);
    }
    if (status == 0 && merge_additions(p, up) != 0)
        status = 500;
    pending_release(&p->base);  /* the server's reference */
    p->on_decided(c, p->req, up, status, body);
    free(up);
    unref(p);                   /* the decision's (the app's); frees req */
}
