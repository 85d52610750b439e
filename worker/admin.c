/*
 * admin.c: the operators' HTTP endpoint (DESIGN §5.4), served by the
 * workers on the [admin] listen address: POST /publish?topic=T and
 * POST /send?id=ID with the message as the body, and an optional &type=N
 * (the info's type, default 0; apps see them as infos from id 0), GET /healthz, GET /metrics (Prometheus text, every worker's
 * counters summed). One request per connection, bounded in size and time.
 */
#include "admin.h"

#include <errno.h>
#include <http_parser.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "messaging.h"
#include "worker.h"

#define ADMIN_MAX_URL 2048
#define ADMIN_MAX_BODY (1024 * 1024)
#define ADMIN_TIMEOUT 10.0

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
};

static void admin_close(struct admin_conn *a);

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

/* The percent-decoded value of key in query, or -1 if absent/bad. */
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
            if (o + 1 >= size)
                return -1;
            out[o++] = (char)ch;
        }
        out[o] = '\0';
        return (int)o;
    }
    return -1;
}

/* ---- Metrics ----------------------------------------------------------- */

static size_t
metric(char *buf, size_t size, size_t off, const char *name,
       const char *type, const char *help, uint64_t value)
{
    int n;

    if (off >= size)
        return off;
    n = snprintf(buf + off, size - off, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n",
                 name, help, name, type, name, (unsigned long long)value);
    return n < 0 ? off : off + (size_t)n;
}

/* What /metrics shows of the workers' summed counters, in this order. */
struct stat_metric {
    const char *name, *type, *help;
    size_t off;     /* of a uint64_t in struct worker_stats */
    bool redis;     /* only with [redis]: the bridge (DESIGN §5.3) */
};

#define STAT(f) offsetof(struct worker_stats, f), false
#define REDIS(f) offsetof(struct worker_stats, redis.f), true

static const struct stat_metric stat_metrics[] = {
    { "sock_connections_open", "gauge",
      "Open WebSocket connections.", STAT(open) },
    { "sock_connections_accepted_total", "counter",
      "TCP connections accepted.", STAT(accepted) },
    { "sock_connections_opened_total", "counter",
      "WebSocket upgrades completed.", STAT(opened) },
    { "sock_connections_closed_total", "counter",
      "WebSocket connections closed.", STAT(closed) },
    { "sock_connections_refused_full_total", "counter",
      "Connections refused with 503 at max_connections.",
      STAT(refused_full) },
    { "sock_handshake_failures_total", "counter",
      "Upgrades refused with an HTTP error.", STAT(handshake_failed) },
    { "sock_messages_in_total", "counter",
      "Messages received from clients.", STAT(msgs_in) },
    { "sock_frames_out_total", "counter",
      "Frames queued to clients.", STAT(msgs_out) },
    { "sock_bytes_in_total", "counter",
      "Bytes read from clients.", STAT(bytes_in) },
    { "sock_bytes_out_total", "counter",
      "Bytes written to clients.", STAT(bytes_out) },
    { "sock_infos_sent_total", "counter",
      "Directed infos sent.", STAT(infos_sent) },
    { "sock_infos_dropped_total", "counter",
      "Infos dropped at a full inbox.", STAT(infos_dropped) },
    { "sock_infos_stale_total", "counter",
      "Infos to ids that are gone.", STAT(infos_stale) },
    { "sock_deflate_messages_total", "counter",
      "Messages compressed (permessage-deflate).", STAT(deflate_msgs) },
    { "sock_deflate_shared_total", "counter",
      "Of those, compressed once and shared by every recipient.",
      STAT(deflate_shared) },
    { "sock_deflate_bytes_in_total", "counter",
      "Bytes given to the compressor.", STAT(deflate_in) },
    { "sock_deflate_bytes_out_total", "counter",
      "Compressed bytes it made.", STAT(deflate_out) },
    { "sock_worker_deaths_total", "counter",
      "Workers that exited abnormally (crash, signal, kill); the "
      "master replaces them.", STAT(workers_died) },
    { "sock_workers_hung_total", "counter",
      "Workers killed for not answering heartbeats.", STAT(workers_hung) },
    { "sock_redis_connected", "gauge",
      "Workers whose Redis bridge is up.", REDIS(connected) },
    { "sock_redis_connects_total", "counter",
      "Times a worker's Redis bridge came up.", REDIS(connects) },
    { "sock_redis_published_total", "counter",
      "Messages published to Redis for other machines.",
      REDIS(published) },
    { "sock_redis_received_total", "counter",
      "Messages from other machines delivered.", REDIS(received) },
    { "sock_redis_dropped_total", "counter",
      "Messages for other machines dropped: bridge down or over its cap.",
      REDIS(dropped) },
    { "sock_redis_malformed_total", "counter",
      "Messages from Redis rejected as malformed.", REDIS(malformed) },
    { "sock_redis_unrouted_total", "counter",
      "Directed messages no worker of another machine took.",
      REDIS(unrouted) },
};

static void
admin_metrics(struct admin_conn *a)
{
    struct worker *w = a->w;
    struct worker_stats sum = { 0 };
    uint64_t workers = 0;
    char buf[8192];
    size_t o = 0;

    for (size_t i = 0; i < w->stats_n; i++) {
        const struct worker_stats *s = &w->stats_all[i];

        if (s->generation == 0)
            continue;
        workers += s->pid != 0; /* not the retired counters */
        worker_stats_add(&sum, s);
        sum.open += s->open;
        sum.redis.connected += s->redis.connected;
    }
    o = metric(buf, sizeof(buf), o, "sock_workers", "gauge",
               "Workers whose counters are summed here.", workers);
    for (size_t i = 0; i < ARRAY_SIZE(stat_metrics); i++) {
        const struct stat_metric *m = &stat_metrics[i];
        uint64_t v;

        if (m->redis && w->cfg->redis.address == NULL)
            continue;
        memcpy(&v, (const char *)&sum + m->off, sizeof(v));
        o = metric(buf, sizeof(buf), o, m->name, m->type, m->help, v);
    }
    admin_reply(a, 200, "text/plain; version=0.0.4", buf,
                MIN(o, sizeof(buf)));
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

static void
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
        return;
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
            return;
        }
        if (query_type(query, &type) != 0) {
            admin_text(a, 400, "type must be a number 0-4294967295\n");
            return;
        }
        messaging_set_current(a->w, NULL);
        rc = sock_publish(arg, type, a->body ? a->body : "", a->body_len);
        admin_text(a, rc == 0 ? 202 : 503, rc == 0 ? "published\n"
                                                   : "publish failed\n");
    } else if (strcmp(path, "/send") == 0 && post) {
        char *end;
        unsigned long long id;

        if (query_get(query, "id", arg, sizeof(arg)) < 1 ||
            (id = strtoull(arg, &end, 0), *end != '\0') || id == 0) {
            admin_text(a, 400, "need ?id=CONNECTION_ID (decimal or 0x hex)\n");
            return;
        }
        if (query_type(query, &type) != 0) {
            admin_text(a, 400, "type must be a number 0-4294967295\n");
            return;
        }
        messaging_set_current(a->w, NULL);
        rc = sock_send_info((sock_id)id, type, a->body ? a->body : "",
                            a->body_len);
        admin_text(a, rc == 0 ? 202 : 503, rc == 0 ? "sent\n"
                                                   : "send failed\n");
    } else if (strcmp(path, "/publish") == 0 || strcmp(path, "/send") == 0) {
        admin_text(a, 405, "use POST\n");
    } else {
        admin_text(a, 404, "unknown path (/publish, /send, /healthz, "
                           "/metrics)\n");
    }
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
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* ---- Connection -------------------------------------------------------- */

static void
admin_close(struct admin_conn *a)
{
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
        admin_handle(a);
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
    (void)loop;
    (void)revents;
    admin_close(container_of(t, struct admin_conn, timer));
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
    http_parser_init(&a->parser, HTTP_REQUEST);
    a->parser.data = a;
    ev_io_init(&a->io, admin_on_read, fd, EV_READ);
    ev_io_start(w->loop, &a->io);
    ev_timer_init(&a->timer, admin_on_timeout, ADMIN_TIMEOUT, 0.);
    ev_timer_start(w->loop, &a->timer);
}
