/*
 * conn_upgrade.c: a connection's HTTP upgrade (RFC 6455 §4): collects the
 * request head, answers static files, routes, checks origin and
 * subprotocols, asks the app's upgrade hook, negotiates
 * permessage-deflate, gives the connection its id and sends the 101 or an
 * HTTP error. Parsing and the response bytes are left to ws_handshake.c,
 * static files to static.c, deferred decisions to pending.c, and
 * everything after the 101 (init, frames, closing) to conn.c.
 */
#include "conn_upgrade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn_impl.h"
#include "log.h"
#include "pending.h"
#include "static.h"
#include "wstate.h"
#include "ws_deflate.h"
#include "ws_handshake.h"


void
conn_http_error(struct conn *c, int status, const char *why)
{
    char body[256];
    size_t len;
    char *resp;

    /* Reasons are log-friendly single lines; the body ends with \n. */
    if (why != NULL)
        snprintf(body, sizeof(body), "%s%s", why,
                 why[0] && why[strlen(why) - 1] == '\n' ? "" : "\n");
    resp = ws_response_error(status, why ? body : NULL, &len);

    c->w->stats->handshake_failed++;
    log_debug("event=handshake_refused peer=%s status=%d reason=\"%s\"",
              PEER(c), status, why ? why : "");
    if (resp != NULL) {
        sendq_append(&c->sq, NULL, 0, resp, len);
        free(resp);
    }
    conn_finish(c);
}

static bool
origin_allowed(const struct route_opts *o, const struct sock_request *r)
{
    const char *origin;

    if (o->allowed_origins == NULL)
        return true;
    origin = ws_request_header(r, "Origin");
    if (origin == NULL)
        return false;
    for (char **a = o->allowed_origins; *a != NULL; a++)
        if (strcasecmp(*a, origin) == 0)
            return true;
    return false;
}

/* The route's configured subprotocols, in server order: first offered. */
static const char *
pick_subprotocol(const struct route_opts *o, const struct sock_request *r)
{
    if (o->subprotocols == NULL)
        return NULL;
    for (char **s = o->subprotocols; *s != NULL; s++)
        if (ws_request_has_token(r, "Sec-WebSocket-Protocol", *s, false))
            return *s;
    return NULL;
}

static int
conn_register(struct conn *c)
{
    struct worker *w = c->w;
    uint32_t serial;

    do {
        serial = ++w->next_serial;
    } while (serial == 0 || idmap_get(&w->ids, serial) != NULL);
    c->id = (sock_id)w->node << 48 | (sock_id)w->generation << 40 |
            (sock_id)w->slot << 32 | serial;
    return idmap_put(&w->ids, serial, c);
}

/* Accepts the upgrade: 101, then init. */
static void
conn_open(struct conn *c, const struct sock_request *r,
          struct sock_upgrade *u)
{
    const struct route_opts *o = conn_opts(c);
    const char *proto = u->subprotocol ? u->subprotocol
                                       : pick_subprotocol(o, r);
    char accept[29], *resp;
    size_t len;

    struct ws_deflate_params dp;
    char ext[WS_DEFLATE_RESP_MAX];
    struct route_opts lean;
    bool deflate;

    /* Context takeover keeps ~300 KB of zlib state per connection for its
       whole life; over the worker's budget new connections agree to
       reset every message (RFC 7692 §7.1.1 lets the server ask both), so
       their streams live only while a message is under way. */
    if (o->compress &&
        ws_deflate_total_memory() >= c->w->cfg->server.max_deflate_memory &&
        !(o->server_no_context_takeover && o->client_no_context_takeover)) {
        lean = *o;
        lean.server_no_context_takeover = true;
        lean.client_no_context_takeover = true;
        o = &lean;
    }
    deflate = ws_deflate_negotiate(r, o, &dp, ext, sizeof(ext)) == 1;
    if (deflate && o == &lean)
        c->w->stats->deflate_no_takeover++;

    if (deflate) {
        c->deflate = ws_deflate_new(&dp, o->compress_level,
                                    o->compress_mem_level);
        deflate = c->deflate != NULL;
        c->deflate_wbits = (uint8_t)dp.server_max_window_bits;
        c->deflate_shared_ok = dp.server_no_context_takeover;
        c->compress_on = true;
    }
    ws_accept_key(ws_request_header(r, "Sec-WebSocket-Key"), accept);
    resp = ws_response_101(accept, proto, deflate ? ext : NULL,
                           u->extra_headers, &len);
    if (resp == NULL || conn_register(c) != 0 ||
        (proto != NULL && (conn_cold(c) == NULL ||
                           (c->x->subprotocol = strdup(proto)) == NULL))) {
        free(resp);
        sock_upgrade_destroy(u, false);
        conn_http_error(c, 500, NULL);
        return;
    }
    conn_send_now(c, resp, len);
    free(resp);
    conn_opened(c, u);
}

/*
 * A plain (non-upgrade) request for a route's static files: PATH itself
 * serves index.html, PATH/NAME serves NAME. Returns true if answered.
 */
static bool
conn_static(struct conn *c, const struct sock_request *r)
{
    struct worker *w = c->w;
    const char *rel = NULL, *root = NULL;
    size_t len;
    int status;
    char *resp;

    if (ws_request_has_token(r, "Upgrade", "websocket", true))
        return false;
    for (size_t i = 0; i < w->n_routes && root == NULL; i++) {
        const struct route *rt = w->routes[i].cfg;
        size_t n = strlen(rt->path);

        if (rt->static_dir == NULL || strncmp(r->path, rt->path, n) != 0)
            continue;
        if (r->path[n] == '\0')
            rel = "";
        else if (r->path[n] == '/' || rt->path[n - 1] == '/')
            rel = r->path + n + (r->path[n] == '/');
        else
            continue;
        root = rt->static_dir;
    }
    if (root == NULL)
        return false;
    resp = static_response(root, rel, r->method, &len, &status);
    log_debug("event=static peer=%s path=%s status=%d", PEER(c), r->path,
              status);
    if (resp != NULL) {
        sendq_append(&c->sq, NULL, 0, resp, len);
        free(resp);
    }
    conn_finish(c);
    return true;
}

/* Where c keeps a deferred decision's handle (in its cold part, made
   now), or NULL when out of memory. */
static sock_pending **
conn_pending_slot(struct conn *c)
{
    struct conn_cold *x = conn_cold(c);

    return x != NULL ? &x->pending : NULL;
}

/* Decides a complete request head: an HTTP error or the upgrade. */
static void
conn_upgrade(struct conn *c, const uint8_t *head, size_t len)
{
    struct sock_request r;
    struct sock_upgrade u;
    const char *why = NULL;
    int status;

    char peer[CONN_PEER_MAX];

    status = ws_request_parse(&r, head, len, c->w->cfg->server.max_headers);
    r.peer = conn_peer_str(c, peer, sizeof(peer));
    r.tls = c->tls != NULL;
    if (status == 0 && conn_static(c, &r)) {
        ws_request_destroy(&r);
        return;
    }
    if (status == 0) {
        c->route = worker_route_find(c->w, r.path);
        if (c->route == NULL) {
            status = 404;
            why = "no WebSocket route at this path";
        }
    }
    if (status == 0 && (status = ws_request_validate(&r, &why)) == 0 &&
        !origin_allowed(conn_opts(c), &r)) {
        status = 403;
        why = "origin not allowed";
    }
    if (status != 0) {
        c->route = NULL;
        conn_http_error(c, status, why);
        ws_request_destroy(&r);
        return;
    }
    if (c->route->setup_failed) {
        c->route = NULL;
        conn_http_error(c, 503, "the application failed to start");
        ws_request_destroy(&r);
        return;
    }
    r.opts = &c->route->opts;
    sock_upgrade_init(&u, &r);
    status = sock_upgrade_run(c->route->app, &r, &u);
    if (status == SOCK_UPGRADE_LATER &&
        pending_hold(c, conn_pending_slot(c), conn_upgrade_decided, &r,
                     &u) == 0)
        return; /* r and u wait in pending.c for the app's decision */
    if (status == SOCK_UPGRADE_LATER)
        status = 503;
    pending_release(u.pending); /* deferred, then answered: -EPIPE */
    u.pending = NULL;
    if (status != 0) {
        conn_http_error(c, status, u.refuse_body);
        c->route = NULL;
        sock_upgrade_destroy(&u, false);
    } else {
        conn_open(c, &r, &u);
    }
    ws_request_destroy(&r);
}

/*
 * An unfinished head that can no longer become an HTTP/1.1 request (a TLS
 * ClientHello or an SSH banner on the plain port, bare LFs, random bytes)
 * is answered at once instead of holding the connection until
 * handshake_timeout. True if it was.
 */
static bool
conn_head_hopeless(struct conn *c, const uint8_t *p, size_t n)
{
    int status = ws_head_check_prefix(p, n, c->w->cfg->server.max_headers);

    if (status == 0)
        return false;
    conn_http_error(c, status, status == 400 ? "not an HTTP/1.1 request"
                                             : NULL);
    return true;
}

void
conn_upgrade_decided(struct conn *c, const struct sock_request *r,
                     struct sock_upgrade *u, int status, const char *body)
{
    if (status != 0) {
        conn_http_error(c, status, body != NULL ? body : u->refuse_body);
        c->route = NULL;
        sock_upgrade_destroy(u, false);
    } else {
        conn_open(c, r, u);
        /* What the client sent meanwhile is read as frames now. */
        if (STASHED(c) && c->state == CONN_OPEN)
            conn_want_pending(c);
    }
    conn_settle(c);
}

/* Request bytes: returns how many of p belong to the head. */
size_t
conn_handshake(struct conn *c, const uint8_t *p, size_t n)
{
    size_t max = c->w->cfg->server.max_request_head;
    size_t take, used;
    ssize_t hl;
    uint8_t *grown;
    struct conn_cold *x;

    if (c->x == NULL || c->x->head == NULL) {
        hl = ws_head_len(p, n, max);
        if (hl > 0) {
            conn_upgrade(c, p, (size_t)hl);
            return (size_t)hl;
        }
    }
    if ((x = conn_cold(c)) == NULL) {
        c->want_teardown = true;
        return n;
    }
    take = MIN(n, max - x->head_len);
    grown = realloc(x->head, x->head_len + take);
    if (grown == NULL) {
        c->want_teardown = true;
        return n;
    }
    x->head = grown;
    memcpy(x->head + x->head_len, p, take);
    hl = ws_head_len(x->head, x->head_len + take, max);
    if (hl == 0 && x->head_len + take < max) {
        x->head_len += take;
        conn_head_hopeless(c, x->head, x->head_len); /* or wait for more */
        return n;
    }
    if (hl <= 0) {
        conn_http_error(c, 431, "request head too large");
        return n;
    }
    used = (size_t)hl - x->head_len;
    conn_upgrade(c, x->head, (size_t)hl);
    free(x->head);
    x->head = NULL;
    x->head_len = 0;
    return used;
}
