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
};

/* Installs the host; one per process (the worker, or a test harness). */
void sock_host_set(const struct sock_host_ops *ops, void *host);

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
};

void sock_upgrade_init(struct sock_upgrade *u, const struct sock_request *r);
/* Frees what the hook set; frees arg with free_arg unless consumed. */
void sock_upgrade_destroy(struct sock_upgrade *u, bool arg_consumed);

/*
 * Runs app->upgrade (if any) on r. Returns 0 to accept, else the HTTP
 * status to refuse with (hook results outside 400..599 become 500).
 */
int sock_upgrade_run(const sock_app *app, const struct sock_request *r,
                     struct sock_upgrade *u);

#endif
