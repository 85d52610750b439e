/*
 * admin.c: the operators' HTTP endpoint (DESIGN §5.4), served by the
 * workers on the [admin] listen address: POST /publish?topic=T and
 * POST /send?id=ID with the message as the body, each with an optional
 * &type=N (the info's type, default 0; apps see them as infos from id 0),
 * GET /conns (every worker's open connections) and
 * POST /close?id=ID[&code=C], GET /healthz, GET /metrics (Prometheus
 * text, every worker's counters summed, rendered by metrics.c). One
 * request per connection, bounded in size and time.
 *
 * Whichever worker accepts the request answers it. What lives on another
 * worker of this machine is asked for over the bus (BUS_ADMIN, answered
 * with BUS_ADMIN_REPLY); the request waits for every answer, at most
 * ADMIN_FANOUT_TIMEOUT.
 */
#include "admin.h"

#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bus.h"
#include "common.h"
#include "conn.h"
#include "log.h"
#include "messaging.h"
#include "metrics.h"
#include "wstate.h"

#define ADMIN_MAX_URL 2048
#define ADMIN_MAX_BODY (1024 * 1024)
#define ADMIN_TIMEOUT 10.0
#define ADMIN_FANOUT_TIMEOUT 2.0
#define ADMIN_MAX_CONNS_LISTED 100000   /* per worker, per request */

/* What BUS_ADMIN asks another worker to do (its app_type). */
enum admin_cmd {
    ADMIN_CMD_CONNS = 1,    /* list the open connections */
    ADMIN_CMD_CLOSE = 2,    /* topic "ID CODE": close one */
    ADMIN_CMD_SEND = 3,     /* topic "ID TYPE", data: the message */
};

struct admin_conn {
    struct worker *w;
    int fd;
    ev_io io;
    ev_timer timer;
    http_parser parser;
    char url[ADMIN_MAX_URL + 1];
    size_t url_len;
    char *body;
    size_t body_len;
    bool done;
    bool too_big;
    /* While other workers owe answers (w->admin_waiting). */
    struct list wlink;
    uint64_t req;
    int waiting;
    int status;
    char *out;          /* the answer's body so far */
    size_t out_len;
    bool out_failed;    /* out of memory while building it */
};

static void admin_close(struct admin_conn *a);
static void admin_conns(struct admin_conn *a);
static void admin_finish(struct admin_conn *a);
static void out_add(struct admin_conn *a, const void *data, size_t len);
static void admin_one(struct admin_conn *a, enum admin_cmd cmd, sock_id id,
                      uint32_t n);

/* ---- Responses ---------------------------------------------------------- */

static void
admin_reply(struct admin_conn *a, int status, const char *type,
            const char *body, size_t len)
{
    static const struct {
        int code;
        const char *text;
    } texts[] = {
        { 200, "OK" }, { 202, "Accepted" }, { 400, "Bad Request" },
        { 404, "Not Found" }, { 405, "Method Not Allowed" },
        { 413, "Content Too Large" }, { 503, "Service Unavailable" },
    };
    const char *text = "Error";
    char head[256];
    int n;
    struct iovec iov[2];

    for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
        if (texts[i].code == status)
            text = texts[i].text;
    n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n", status,
                 text, type, len);
    iov[0].iov_base = head;
    iov[0].iov_len = (size_t)n;
    iov[1].iov_base = (void *)body;
    iov[1].iov_len = len;
    /* Replies are small; the socket buffer takes them whole. */
    if (writev(a->fd, iov, 2) < 0)
        log_debug("event=admin_write_failed error=\"%s\"", strerror(errno));
}

static void
admin_text(struct admin_conn *a, int status, const char *msg)
{
    admin_reply(a, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

/* ---- Query strings ---------------------------------------------------- */

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * The percent-decoded value of key in query, or -1 if absent or bad: a
 * broken escape, too long, or a control character or NUL once decoded
 * (a topic "room%00junk" must not become "room" further down, where
 * names are C strings).
 */
static int
query_get(const char *query, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);

    for (const char *p = query; p != NULL && *p; p = strchr(p, '&'), p += !!p) {
        size_t o = 0;

        if (strncmp(p, key, klen) != 0 || p[klen] != '=')
            continue;
        for (p += klen + 1; *p && *p != '&'; p++) {
            int ch = (unsigned char)*p;

            if (ch == '%') {
                int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

                if (lo < 0)
                    return -1;
                ch = hi << 4 | lo;
                p += 2;
            } else if (ch == '+') {
                ch = ' ';
            }
            if (ch < 0x20 || ch == 0x7f || o + 1 >= size)
                return -1;
            out[o++] = (char)ch;
        }
        out[o] = '\0';
        return (int)o;
    }
    return -1;
}

/*
 * A connection id as /send takes it: decimal digits, or 0x and 1 to 16
 * hex digits; nothing else (no sign, no space, no octal, nothing after)
 * and no wrap past 2^64-1. 0 is no connection. 0 or -EINVAL.
 */
static int
parse_id(const char *s, uint64_t *id)
{
    bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    unsigned base = hex ? 16 : 10;
    uint64_t v = 0;

    s += hex ? 2 : 0;
    if (*s == '\0')
        return -EINVAL;
    for (; *s != '\0'; s++) {
        int d = hex ? hexval(*s) : (*s >= '0' && *s <= '9' ? *s - '0' : -1);

        if (d < 0 || v > (UINT64_MAX - (unsigned)d) / base)
            return -EINVAL;
        v = v * base + (unsigned)d;
    }
    if (v == 0)
        return -EINVAL;
    *id = v;
    return 0;
}

static void
admin_metrics(struct admin_conn *a)
{
    char buf[32768];
    size_t n = metrics_render(a->w, buf, sizeof(buf));

    admin_reply(a, 200, "text/plain; version=0.0.4", buf, n);
}

/*
 * The optional &type=N of /publish and /send: 0 when absent, else decimal
 * 0..4294967295. 0, or -1 for a bad value.
 */
static int
query_type(const char *query, uint32_t *type)
{
    char v[16], *end;
    unsigned long long n;
    int len = query_get(query, "type", v, sizeof(v));

    *type = 0;
    if (len == -1 && strncmp(query, "type=", 5) != 0 &&
        strstr(query, "&type=") == NULL)
        return 0; /* absent (not merely bad) */
    if (len < 1 || v[0] < '0' || v[0] > '9')
        return -1;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (*end != '\0' || errno != 0 || n > UINT32_MAX)
        return -1;
    *type = (uint32_t)n;
    return 0;
}

/* ---- Requests ----------------------------------------------------------- */

/* Parses ?id= (decimal or 0x hex, not 0) into *id; false if bad. */
static bool
query_id(const char *query, sock_id *id)
{
    char arg[64];
    uint64_t v;

    if (query_get(query, "id", arg, sizeof(arg)) < 1 ||
        parse_id(arg, &v) != 0)
        return false;
    *id = (sock_id)v;
    return true;
}

/* True when a was answered here (the caller closes it); false when it
   went on to admin_conns or admin_one, which answer and close it. */
static bool
admin_handle(struct admin_conn *a)
{
    struct http_parser_url u;
    char path[256] = "", query[ADMIN_MAX_URL + 1] = "", arg[512];
    const char *method = http_method_str((enum http_method)a->parser.method);
    bool post = a->parser.method == HTTP_POST;
    uint32_t type;
    int rc;

    http_parser_url_init(&u);
    if (http_parser_parse_url(a->url, a->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)) ||
        u.field_data[UF_PATH].len >= sizeof(path)) {
        admin_text(a, 400, "bad request target\n");
        return true;
    }
    memcpy(path, a->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    if (u.field_set & (1 << UF_QUERY))
        memcpy(query, a->url + u.field_data[UF_QUERY].off,
               u.field_data[UF_QUERY].len);
    log_debug("event=admin_request method=%s path=%s", method, path);
    if (strcmp(path, "/healthz") == 0) {
        if (a->w->stopping)
            admin_text(a, 503, "stopping\n");
        else
            admin_text(a, 200, "ok\n");
    } else if (strcmp(path, "/metrics") == 0) {
        admin_metrics(a);
    } else if (strcmp(path, "/publish") == 0 && post) {
        if (query_get(query, "topic", arg, sizeof(arg)) < 1 ||
            strlen(arg) > 255) {
            admin_text(a, 400, "need ?topic=NAME (1-255 bytes)\n");
            return true;
        }
        if (query_type(query, &type) != 0) {
            admin_text(a, 400, "type must be a number 0-4294967295\n");
            return true;
        }
        messaging_set_current(a->w, 0);
        rc = sock_publish(arg, type, a->body ? a->body : "", a->body_len);
        admin_text(a, rc == 0 ? 202 : 503, rc == 0 ? "published\n"
                                                   : "publish failed\n");
    } else if (strcmp(path, "/send") == 0 && post) {
        sock_id id;

        if (!query_id(query, &id)) {
            admin_text(a, 400, "need ?id=CONNECTION_ID (decimal or 0x hex)\n");
            return true;
        }
        if (query_type(query, &type) != 0) {
            admin_text(a, 400, "type must be a number 0-4294967295\n");
            return true;
        }
        admin_one(a, ADMIN_CMD_SEND, id, type);
        return false;
    } else if (strcmp(path, "/close") == 0 && post) {
        sock_id id;
        unsigned long code = 1000;
        char *end;

        if (!query_id(query, &id)) {
            admin_text(a, 400, "need ?id=CONNECTION_ID (decimal or 0x hex)\n");
            return true;
        }
        if (query_get(query, "code", arg, sizeof(arg)) >= 0 &&
            (code = strtoul(arg, &end, 10), *end != '\0' || arg[0] == '\0' ||
             code > 4999 || !sock_close_code_is_valid((uint16_t)code))) {
            admin_text(a, 400, "code: 1000-1003, 1007-1014 or 3000-4999\n");
            return true;
        }
        admin_one(a, ADMIN_CMD_CLOSE, id, (uint16_t)code);
        return false;
    } else if (strcmp(path, "/conns") == 0 && !post) {
        admin_conns(a);
        return false;
    } else if (strcmp(path, "/publish") == 0 || strcmp(path, "/send") == 0 ||
               strcmp(path, "/close") == 0) {
        admin_text(a, 405, "use POST\n");
    } else {
        admin_text(a, 404, "unknown path (/publish, /send, /close, /conns, "
                           "/healthz, /metrics)\n");
    }
    return true;
}

/* ---- http-parser callbacks ---------------------------------------------- */

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct admin_conn *a = p->data;

    if (a->url_len + len > ADMIN_MAX_URL)
        return -1;
    memcpy(a->url + a->url_len, at, len);
    a->url_len += len;
    a->url[a->url_len] = '\0';
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct admin_conn *a = p->data;
    char *b;

    if (a->body_len + len > ADMIN_MAX_BODY) {
        a->too_big = true;
        return -1;
    }
    b = realloc(a->body, a->body_len + len);
    if (b == NULL)
        return -1;
    memcpy(b + a->body_len, at, len);
    a->body = b;
    a->body_len += len;
    return 0;
}

/* A declared body over the limit is refused now, not after the client
   spent the timeout sending it. http-parser itself refuses a
   Content-Length that is not a number, or one given twice. */
static int
on_headers_complete(http_parser *p)
{
    struct admin_conn *a = p->data;

    if (p->content_length != ULLONG_MAX &&
        p->content_length > ADMIN_MAX_BODY) {
        a->too_big = true;
        return -1;
    }
    return 0;
}

static int
on_complete(http_parser *p)
{
    struct admin_conn *a = p->data;

    a->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings admin_settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* ---- Connection -------------------------------------------------------- */

static void
admin_close(struct admin_conn *a)
{
    list_remove(&a->wlink);
    free(a->out);
    ev_io_stop(a->w->loop, &a->io);
    ev_timer_stop(a->w->loop, &a->timer);
    shutdown(a->fd, SHUT_WR);
    close(a->fd);
    free(a->body);
    free(a);
}

static void
admin_on_read(struct ev_loop *loop, ev_io *io, int revents)
{
    struct admin_conn *a = container_of(io, struct admin_conn, io);
    char buf[16384];
    ssize_t n;
    size_t used;

    (void)loop;
    (void)revents;
    n = recv(a->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        admin_close(a);
        return;
    }
    used = http_parser_execute(&a->parser, &admin_settings, buf, (size_t)n);
    if (a->done) {
        if (admin_handle(a))
            admin_close(a);
    } else if (used != (size_t)n || HTTP_PARSER_ERRNO(&a->parser) != HPE_OK) {
        admin_text(a, a->too_big ? 413 : 400, a->too_big
                   ? "body over 1 MiB\n" : "bad request\n");
        admin_close(a);
    }
}

static void
admin_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct admin_conn *a = container_of(t, struct admin_conn, timer);
    char note[128];
    int n;

    (void)loop;
    (void)revents;
    if (a->waiting == 0) {
        admin_close(a);
        return;
    }
    /* A worker that is busy, hung or just gone: say so, keep the rest. */
    n = snprintf(note, sizeof(note), "# %d worker(s) did not answer within "
                 "%.0f s\n", a->waiting, ADMIN_FANOUT_TIMEOUT);
    out_add(a, note, (size_t)n);
    if (a->status != 200)
        a->status = 504;
    admin_finish(a);
}

void
admin_accept(struct worker *w, int fd)
{
    struct admin_conn *a = calloc(1, sizeof(*a));

    if (a == NULL) {
        close(fd);
        return;
    }
    a->w = w;
    a->fd = fd;
    list_init(&a->wlink);
    http_parser_init(&a->parser, HTTP_REQUEST);
    a->parser.data = a;
    ev_io_init(&a->io, admin_on_read, fd, EV_READ);
    ev_io_start(w->loop, &a->io);
    ev_timer_init(&a->timer, admin_on_timeout, ADMIN_TIMEOUT, 0.);
    ev_timer_start(w->loop, &a->timer);
}

/* ---- Connections: list, close, send (this worker's part) ---------------- */

static void
out_add(struct admin_conn *a, const void *data, size_t len)
{
    char *o;

    if (len == 0 || a->out_failed)
        return;
    o = realloc(a->out, a->out_len + len);
    if (o == NULL) {
        a->out_failed = true;
        return;
    }
    memcpy(o + a->out_len, data, len);
    a->out = o;
    a->out_len += len;
}

/* One line per open connection of w: id, route, peer, age, queued bytes. */
static void
local_conns(struct worker *w, struct admin_conn *a)
{
    ev_tstamp now = ev_now(w->loop);
    struct list *l;
    size_t n = 0;

    for (l = w->conns.next; l != &w->conns; l = l->next) {
        struct conn *c = container_of(l, struct conn, link);
        char peer[CONN_PEER_MAX], line[512];
        int len;

        if (!conn_is_open(c))
            continue;
        if (n++ == ADMIN_MAX_CONNS_LISTED) {
            len = snprintf(line, sizeof(line), "# worker %u.%u: more than "
                           "%d connections, the rest not listed\n",
                           w->generation, w->slot, ADMIN_MAX_CONNS_LISTED);
            out_add(a, line, (size_t)len);
            break;
        }
        len = snprintf(line, sizeof(line), "0x%016llx %s %s %.1f %zu\n",
                       (unsigned long long)c->id, c->route->cfg->path,
                       conn_peer_str(c, peer, sizeof(peer)),
                       now - c->opened_at, c->sq.bytes);
        if (len > 0)
            out_add(a, line, MIN((size_t)len, sizeof(line) - 1));
    }
}

/* Runs cmd on this worker; the HTTP status, with the text added to a.
   n is the close code of a close, the info type of a send. */
static int
local_cmd(struct worker *w, struct admin_conn *a, enum admin_cmd cmd,
          sock_id id, uint32_t n, const void *data, size_t len)
{
    struct conn *c;
    static const char unknown[] = "unknown connection id\n";

    if (cmd == ADMIN_CMD_CONNS) {
        local_conns(w, a);
        return 200;
    }
    c = conn_find(w, id);
    if (c == NULL) {
        if (cmd == ADMIN_CMD_SEND)
            w->stats->infos_stale++;    /* as sock_send_info counts it */
        out_add(a, unknown, sizeof(unknown) - 1);
        return 404;
    }
    if (cmd == ADMIN_CMD_CLOSE) {
        log_info("event=admin_close id=%llx code=%u",
                 (unsigned long long)id, n);
        conn_shutdown(c, (uint16_t)n);
        out_add(a, "closed\n", 7);
        return 200;
    }
    messaging_set_current(w, 0);
    if (sock_send_info(id, n, data ? data : "", len) != 0) {
        out_add(a, "send failed\n", 12);
        return 503;
    }
    out_add(a, "sent\n", 5);
    return 202;
}

/* ---- Connections: asking the other workers ------------------------------ */

static uint32_t
peer_key(uint32_t generation, uint32_t slot)
{
    return (generation & 0xff) << 8 | (slot & 0xff);
}

/* Sends cmd to the worker that key names (every other one: key 0 and
   all true). How many will answer. */
static int
ask_peers(struct admin_conn *a, bool all, uint32_t key, enum admin_cmd cmd,
          const char *arg)
{
    struct worker *w = a->w;
    struct bus_msg m = {
        .type = BUS_ADMIN, .to = a->req,
        .from = peer_key(w->generation, w->slot), .app_type = cmd,
        .topic = arg, .topic_len = (uint16_t)strlen(arg),
        .data = (const uint8_t *)a->body, .len = (uint32_t)a->body_len,
    };
    int n = 0;

    if (w->bus == NULL)
        return 0;
    for (size_t i = 0; i < w->stats_n; i++) {
        const struct worker_stats *s = &w->stats_all[i];
        uint32_t k = peer_key(s->generation, s->slot);

        if (s->pid == 0 || k == m.from || (!all && k != key))
            continue;
        if (bus_send(w->bus, k, &m) == 0)
            n++;
    }
    return n;
}

static void
admin_finish(struct admin_conn *a)
{
    list_remove(&a->wlink);
    if (a->out_failed)
        admin_text(a, 500, "out of memory\n");
    else
        admin_reply(a, a->status, "text/plain; charset=utf-8",
                    a->out ? a->out : "", a->out_len);
    admin_close(a);
}

/* Waits for the workers asked, or answers now if none was. */
static void
admin_wait(struct admin_conn *a)
{
    if (a->waiting == 0) {
        admin_finish(a);
        return;
    }
    list_insert_tail(&a->w->admin_waiting, &a->wlink);
    ev_io_stop(a->w->loop, &a->io);
    ev_timer_stop(a->w->loop, &a->timer);
    ev_timer_set(&a->timer, ADMIN_FANOUT_TIMEOUT, 0.);
    ev_timer_start(a->w->loop, &a->timer);
}

static void
admin_conns(struct admin_conn *a)
{
    static const char head[] = "# id route peer age_s send_queue_bytes\n";

    a->req = ++a->w->admin_next_req;
    a->status = 200;
    out_add(a, head, sizeof(head) - 1);
    local_cmd(a->w, a, ADMIN_CMD_CONNS, 0, 0, NULL, 0);
    a->waiting = ask_peers(a, true, 0, ADMIN_CMD_CONNS, "");
    admin_wait(a);
}

/*
 * close or send to one connection: here if it is ours, else on the worker
 * of this machine its id names (404 if there is none); a send to another
 * node goes through the Redis bridge, unconfirmed.
 */
static void
admin_one(struct admin_conn *a, enum admin_cmd cmd, sock_id id,
          uint32_t n)
{
    struct worker *w = a->w;
    char arg[64];

    a->req = ++w->admin_next_req;
    if (worker_id_is_local(w, id)) {
        a->status = local_cmd(w, a, cmd, id, n, a->body, a->body_len);
        admin_finish(a);
        return;
    }
    if (SOCK_ID_NODE(id) != w->node) {
        int rc;

        if (cmd != ADMIN_CMD_SEND || w->redis == NULL) {
            admin_text(a, 404, "unknown connection id (another node)\n");
            admin_close(a);
            return;
        }
        messaging_set_current(w, 0);
        rc = sock_send_info(id, n, a->body ? a->body : "", a->body_len);
        admin_text(a, rc == 0 ? 202 : 503, rc == 0
                   ? "sent to another node (delivery not confirmed)\n"
                   : "send failed\n");
        admin_close(a);
        return;
    }
    snprintf(arg, sizeof(arg), "%llu %u", (unsigned long long)id, n);
    a->status = 404;
    a->waiting = ask_peers(a, false, peer_key(SOCK_ID_GENERATION(id),
                                              SOCK_ID_SLOT(id)), cmd, arg);
    if (a->waiting == 0) {
        if (cmd == ADMIN_CMD_SEND)
            w->stats->infos_stale++;
        out_add(a, "unknown connection id (no such worker)\n", 39);
    }
    admin_wait(a);
}

void
admin_bus_request(struct worker *w, const struct bus_msg *m)
{
    struct admin_conn a = { .w = w };
    char arg[64] = "";
    unsigned long long id = 0;
    unsigned code = 0;
    struct bus_msg r = {
        .type = BUS_ADMIN_REPLY, .to = m->to,
    };

    if (m->topic_len < sizeof(arg))
        memcpy(arg, m->topic, m->topic_len);
    if (m->app_type != ADMIN_CMD_CONNS &&
        sscanf(arg, "%llu %u", &id, &code) != 2) {
        log_warn("event=admin_bad_request from=%llx",
                 (unsigned long long)m->from);
        return;
    }
    r.app_type = (uint32_t)local_cmd(w, &a, (enum admin_cmd)m->app_type,
                                     (sock_id)id, code, m->data,
                                     m->len);
    if (a.out_failed) {
        r.app_type = 500;
        a.out_len = 0;
    }
    r.data = (const uint8_t *)a.out;
    r.len = (uint32_t)a.out_len;
    if (w->bus == NULL || bus_send(w->bus, (uint32_t)m->from, &r) != 0)
        log_warn("event=admin_reply_failed to=%llx",
                 (unsigned long long)m->from);
    free(a.out);
}

void
admin_bus_reply(struct worker *w, const struct bus_msg *m)
{
    struct list *l;

    for (l = w->admin_waiting.next; l != &w->admin_waiting; l = l->next) {
        struct admin_conn *a = container_of(l, struct admin_conn, wlink);

        if (a->req != m->to)
            continue;
        out_add(a, m->data, m->len);
        /* conns: 200 whatever each says; one id: the owner's answer. */
        if (a->status != 200)
            a->status = (int)m->app_type;
        if (--a->waiting == 0)
            admin_finish(a);
        return;
    }
}
