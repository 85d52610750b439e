/*
 * sock_impl.h: what sits behind the opaque handles of sock.h. A sock_conn
 * is a table of operations, so one set of public functions serves both
 * the worker's real connections and the sock_test.h harness; calls that
 * name no connection (sock_send_info, sock_publish, sock_broadcast) go to
 * the process's host. Not installed: applications never see this.
 */
#ifndef SOCK_IMPL_H
#define SOCK_IMPL_H

#include "sock.h"

struct sock_conn_ops {
    /* b != NULL: zero-copy push of b (the callee takes its own ref). */
    int (*push)(sock_conn *c, sock_opcode op, const void *data, size_t len,
                sock_buf *b, unsigned flags);
    /* Records a stop (first call wins); see sock_stop_code. */
    void (*stop)(sock_conn *c, uint16_t code, const char *reason,
                 size_t len, sock_close_error err);
    bool (*writable)(const sock_conn *c);
    size_t (*queued)(const sock_conn *c);
    int (*set_active)(sock_conn *c, bool active);
    int (*set_option)(sock_conn *c, int opt, uint64_t value);
    sock_id (*self)(const sock_conn *c);
    const char *(*peer)(const sock_conn *c);
    const char *(*subprotocol)(const sock_conn *c);
    const char *(*route)(const sock_conn *c);
    int (*subscribe)(sock_conn *c, const char *topic, bool on);
    int (*send_after)(sock_conn *c, uint32_t ms, uint32_t type,
                      const void *data, size_t len);
    /* The route's option.NAME keys (never NULL). */
    const struct sock_options *(*options)(const sock_conn *c);
    /* Joins topic in frame mode (sock_subscribe_frames): op is TEXT or
       BINARY, already checked. */
    int (*subscribe_frames)(sock_conn *c, const char *topic, sock_opcode op);
};

/* A route's option.NAME = VALUE keys, as the app sees them. */
struct sock_options {
    const char *route;
    char **kv;        /* name, value, name, value, ...; NULL-terminated */
};

enum sock_option {
    SOCK_OPT_IDLE_TIMEOUT = 1,
    SOCK_OPT_MAX_MESSAGE = 2,
    SOCK_OPT_COMPRESS = 3,
};

struct sock_conn {
    const struct sock_conn_ops *ops;
};

/* The process-wide side of the API (a worker or the test harness). */
struct sock_host_ops {
    int (*send_info)(void *host, sock_id to, uint32_t type, const void *data,
                     size_t len);
    int (*publish)(void *host, const char *topic, uint32_t type,
                   const void *data, size_t len);
    int (*broadcast)(void *host, uint32_t type, const void *data, size_t len);
    /* The loop integration of sock.h; see sock_watch_fd & co. */
    sock_watch *(*watch_fd)(void *host, int fd, unsigned events,
                            sock_watch_fn cb, void *arg);
    int (*watch_set)(void *host, sock_watch *w, unsigned events);
    void (*watch_stop)(void *host, sock_watch *w);
    sock_timer *(*timer_start)(void *host, uint32_t ms, uint32_t repeat_ms,
                               sock_timer_fn cb, void *arg);
    void (*timer_stop)(void *host, sock_timer *t);
    /* Thread-safe (see sock_post). */
    int (*post)(void *host, sock_id to, uint32_t type, const void *data,
                size_t len);
    /* A pending decision for the upgrade u (sock_upgrade_defer). */
    sock_pending *(*defer)(void *host, struct sock_upgrade *u);
};

/* Behind sock_pending: the worker's or the harness's. */
struct sock_pending_ops {
    /* Thread-safe; status 0 accepts with arg, else refuses with body.
       Consumes p. 0 or -EPIPE (dead: arg stays the caller's). */
    int (*decide)(sock_pending *p, int status, const char *body, void *arg,
                  void (*free_arg)(void *));
    /* Thread-safe, before decide: what 1 = subprotocol a (checked against
       the offer), 2 = header a: b (checked by the caller). 0, -EINVAL,
       -ENOMEM, -EPIPE. */
    int (*set)(sock_pending *p, int what, const char *a, const char *b);
};

struct sock_pending {
    const struct sock_pending_ops *ops;
};

/* Installs the host; one per process (the worker, or a test harness).
   Serialised against sock_post, so a post racing the worker's exit gets
   -ENOTCONN, never a freed host. */
void sock_host_set(const struct sock_host_ops *ops, void *host);

/* Whether app has the members of ABI 2 (setup, teardown): a module built
   for ABI 1 ends before them, so they must not be read. */
static inline bool
sock_app_has_v2(const sock_app *app)
{
    return app->abi >= 2;
}

struct sock_buf {
    uint32_t refs;
    size_t len;
    uint8_t data[];
};

/* A buffer of len uninitialised bytes, one reference; NULL on ENOMEM. */
sock_buf *sock_buf_alloc(size_t len);

/* What the upgrade hook fills in (sock_upgrade_* setters). */
struct sock_upgrade {
    const struct sock_request *req;
    char *subprotocol;        /* malloc'd; one the client offered */
    char *extra_headers;      /* "Name: value\r\n"..., malloc'd */
    size_t extra_len;
    char *refuse_body;        /* malloc'd */
    void *arg;
    void (*free_arg)(void *);
    uint32_t idle_timeout_ms;
    bool has_idle_timeout;
    uint64_t max_message_size;
    bool has_max_message_size;
    sock_pending *pending;    /* sock_upgrade_defer's, NULL if none */
};

/* The characters RFC 7230 allows in a header name and value. */
bool sock_header_is_valid(const char *name, const char *value);

/*
 * What a hook or a deferred decision adds to the 101, kept by
 * sock_upgrade and by the worker's and the harness's pending requests
 * alike. sock_extra_subprotocol: *sub becomes a copy of proto, one of
 * those r offers (0, -EINVAL, -ENOMEM). sock_extra_header: "name: value"
 * CRLF appended to *lines of *len bytes (0, -EINVAL, -ENOMEM).
 * sock_extra_append: *len2 bytes of lines2 appended likewise (0, -ENOMEM).
 */
int sock_extra_subprotocol(char **sub, const struct sock_request *r,
                           const char *proto);
int sock_extra_header(char **lines, size_t *len, const char *name,
                      const char *value);
int sock_extra_append(char **lines, size_t *len, const char *lines2,
                      size_t len2);

/* The value of name in o, or NULL. */
const char *sock_options_find(const struct sock_options *o, const char *name);

void sock_upgrade_init(struct sock_upgrade *u, const struct sock_request *r);
/* Frees what the hook set; frees arg with free_arg unless consumed. */
void sock_upgrade_destroy(struct sock_upgrade *u, bool arg_consumed);

/*
 * Runs app->upgrade (if any) on r. Returns 0 to accept,
 * SOCK_UPGRADE_LATER when the hook deferred (u->pending is set), else the
 * HTTP status to refuse with (hook results outside 400..599 become 500,
 * also LATER without sock_upgrade_defer). When the hook took a pending
 * handle but did not answer LATER, u->pending stays set for the caller to
 * release (the app's decision then gets -EPIPE).
 */
int sock_upgrade_run(const sock_app *app, const struct sock_request *r,
                     struct sock_upgrade *u);

#endif
