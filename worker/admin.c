/*
 * admin.c: the operators' HTTP endpoint (DESIGN §5.4), served by the
 * workers on the [admin] listen address: POST /publish?topic=T and
 * POST /send?id=ID with the message as the body, each with an optional
 * &type=N (the info's type, default 0; apps see them as infos from id 0),
 * GET /conns (every worker's open connections) and
 * POST /close?id=ID[&code=C], GET /healthz, GET /metrics (Prometheus
 * text, every worker's counters summed). One request per connection,
 * bounded in size and time.
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
#include "idmap.h"
#include "log.h"
#include "messaging.h"
#include "procstat.h"
#include "worker.h"

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
    { "sock_partial_bytes", "gauge",
      "Bytes held for unfinished client input: messages still arriving "
      "and input kept while an app paused reading.", STAT(partial_bytes) },
    { "sock_partial_budget_closes_total", "counter",
      "Connections closed with 1009 to keep that under max_partial_bytes.",
      STAT(partial_closes) },
    { "sock_message_timeouts_total", "counter",
      "Connections closed with 1008 for a message unfinished after "
      "message_timeout.", STAT(message_timeouts) },
    { "sock_pongs_coalesced_total", "counter",
      "Pings answered only by the pong of a later ping (a ping flood).",
      STAT(pongs_coalesced) },
    { "sock_worker_deaths_total", "counter",
      "Workers that exited abnormally (crash, signal, kill); the "
      "master replaces them.", STAT(workers_died) },
    { "sock_workers_hung_total", "counter",
      "Workers killed for not answering heartbeats.", STAT(workers_hung) },
    { "sock_reloads_total", "counter",
      "Reloads that replaced the active generation.", STAT(reloads) },
    { "sock_reload_failures_total", "counter",
      "Reloads refused or failed; the old generation kept serving.",
      STAT(reloads_failed) },
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
    { "sock_redis_node_id_clashes_total", "counter",
      "Node registry checks that found this node_id held by another sockd.",
      REDIS(node_clashes) },
};

/*
 * The standard process_* metrics for sockd as a whole: the master and
 * every live worker summed (CPU, memory, descriptors), and the start time
 * of the oldest, the master. Processes /proc will not show are skipped.
 */
static size_t
process_metrics(struct worker *w, char *buf, size_t size, size_t off)
{
    pid_t pids[w->stats_n + 2];
    size_t n = 0;
    struct procstat sum = { 0 }, st;
    int len;

    if (w->cfg->server.workers != 0)
        pids[n++] = getppid();
    pids[n++] = getpid();
    for (size_t i = 0; i < w->stats_n; i++)
        if (w->stats_all[i].pid != 0 &&
            (pid_t)w->stats_all[i].pid != getpid())
            pids[n++] = (pid_t)w->stats_all[i].pid;
    for (size_t i = 0; i < n; i++) {
        if (procstat_read(pids[i], &st) != 0)
            continue;
        sum.cpu_seconds += st.cpu_seconds;
        sum.rss_bytes += st.rss_bytes;
        sum.open_fds += st.open_fds;
        if (sum.start_time == 0 || st.start_time < sum.start_time)
            sum.start_time = st.start_time;
    }
    if (off >= size)
        return off;
    len = snprintf(buf + off, size - off,
                   "# HELP process_cpu_seconds_total User and system CPU "
                   "time of sockd's processes, in seconds.\n"
                   "# TYPE process_cpu_seconds_total counter\n"
                   "process_cpu_seconds_total %.2f\n"
                   "# HELP process_resident_memory_bytes Resident memory "
                   "of sockd's processes, in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\n"
                   "process_resident_memory_bytes %llu\n"
                   "# HELP process_open_fds Open file descriptors of "
                   "sockd's processes.\n"
                   "# TYPE process_open_fds gauge\n"
                   "process_open_fds %llu\n"
                   "# HELP process_start_time_seconds Start time of the "
                   "sockd master since the epoch, in seconds.\n"
                   "# TYPE process_start_time_seconds gauge\n"
                   "process_start_time_seconds %.2f\n",
                   sum.cpu_seconds, (unsigned long long)sum.rss_bytes,
                   (unsigned long long)sum.open_fds, sum.start_time);
    return len < 0 ? off : off + (size_t)len;
}

/* Closed connections by kind and by error detail (sock.h's enums). */
static size_t
close_metrics(const struct worker_stats *sum, char *buf, size_t size,
              size_t off)
{
    static const char *const kinds[WORKER_CLOSE_KINDS] = {
        "unknown", "normal", "remote", "shutdown", "timeout", "error",
    };
    static const char *const errors[WORKER_CLOSE_ERRORS] = {
        "none", "no_close", "protocol", "utf8", "too_big", "inflate", "io",
        "backpressure", "app", "inbox",
    };
    int n;

    if (off >= size)
        return off;
    n = snprintf(buf + off, size - off, "# HELP sock_connections_closed_"
                 "by_kind_total WebSocket connections closed, by who or what "
                 "ended them.\n# TYPE sock_connections_closed_by_kind_total "
                 "counter\n");
    off = n < 0 ? off : off + (size_t)n;
    for (size_t i = 1; i < WORKER_CLOSE_KINDS && off < size; i++) {
        n = snprintf(buf + off, size - off, "sock_connections_closed_by_"
                     "kind_total{kind=\"%s\"} %llu\n", kinds[i],
                     (unsigned long long)sum->closed_kind[i]);
        off = n < 0 ? off : off + (size_t)n;
    }
    if (off >= size)
        return off;
    n = snprintf(buf + off, size - off, "# HELP sock_connections_closed_"
                 "by_error_total WebSocket connections closed, by error "
                 "detail (none: no error).\n# TYPE sock_connections_closed_"
                 "by_error_total counter\n");
    off = n < 0 ? off : off + (size_t)n;
    for (size_t i = 0; i < WORKER_CLOSE_ERRORS && off < size; i++) {
        n = snprintf(buf + off, size - off, "sock_connections_closed_by_"
                     "error_total{error=\"%s\"} %llu\n", errors[i],
                     (unsigned long long)sum->closed_error[i]);
        off = n < 0 ? off : off + (size_t)n;
    }
    return MIN(off, size);
}

/* v as a Prometheus label value: backslash, quote and newline escaped. */
static void
label_escape(char *out, size_t size, const char *v)
{
    size_t o = 0;

    for (; *v != '\0' && o + 3 < size; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n')
            out[o++] = '\\';
        out[o++] = *v == '\n' ? 'n' : *v;
    }
    out[o] = '\0';
}

/* Per-route connections and messages, labelled by the route's path. */
static size_t
route_metrics(const struct worker_stats *sum, char *buf, size_t size,
              size_t off)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } ms[] = {
#define RS(f) offsetof(struct worker_route_stats, f)
        { "sock_route_connections_open", "gauge",
          "Open WebSocket connections, by route.", RS(open) },
        { "sock_route_connections_opened_total", "counter",
          "WebSocket connections opened, by route.", RS(opened) },
        { "sock_route_connections_closed_total", "counter",
          "WebSocket connections closed, by route.", RS(closed) },
        { "sock_route_messages_in_total", "counter",
          "Messages received from clients, by route.", RS(msgs_in) },
        { "sock_route_messages_out_total", "counter",
          "Messages queued to clients, by route.", RS(msgs_out) },
#undef RS
    };
    char label[2 * WORKER_ROUTE_PATH + 1];
    int n;

    for (size_t k = 0; k < ARRAY_SIZE(ms) && off < size; k++) {
        n = snprintf(buf + off, size - off, "# HELP %s %s\n# TYPE %s %s\n",
                     ms[k].name, ms[k].help, ms[k].name, ms[k].type);
        off = n < 0 ? off : off + (size_t)n;
        for (size_t i = 0; i < WORKER_ROUTE_STATS && off < size; i++) {
            const struct worker_route_stats *r = &sum->route[i];
            uint64_t v;

            if (r->path[0] == '\0')
                continue;
            memcpy(&v, (const char *)r + ms[k].off, sizeof(v));
            label_escape(label, sizeof(label), r->path);
            n = snprintf(buf + off, size - off, "%s{route=\"%s\"} %llu\n",
                         ms[k].name, label, (unsigned long long)v);
            off = n < 0 ? off : off + (size_t)n;
        }
    }
    return MIN(off, size);
}

/* sock_build_info and sock_generation: labels and gauges, no sums. */
static size_t
build_metrics(struct worker *w, char *buf, size_t size, size_t off)
{
    uint32_t gen = 0;
    int len;

    for (size_t i = 0; i < w->stats_n; i++)
        if (w->stats_all[i].pid != 0)
            gen = MAX(gen, w->stats_all[i].generation);
    if (off >= size)
        return off;
    len = snprintf(buf + off, size - off,
                   "# HELP sock_build_info The sockd build serving this.\n"
                   "# TYPE sock_build_info gauge\n"
                   "sock_build_info{version=\"%s\"} 1\n"
                   "# HELP sock_generation The newest generation of "
                   "workers (1 at start, +1 per reload).\n"
                   "# TYPE sock_generation gauge\n"
                   "sock_generation %u\n", SOCK_VERSION, gen);
    return len < 0 ? off : off + (size_t)len;
}

static void
admin_metrics(struct admin_conn *a)
{
    struct worker *w = a->w;
    struct worker_stats sum = { 0 };
    uint64_t workers = 0;
    char buf[32768];
    size_t o = 0;

    for (size_t i = 0; i < w->stats_n; i++) {
        const struct worker_stats *s = &w->stats_all[i];

        if (s->generation == 0)
            continue;
        workers += s->pid != 0; /* not the retired counters */
        worker_stats_add(&sum, s);
        sum.open += s->open;
        for (size_t r = 0; r < WORKER_ROUTE_STATS && s->route[r].path[0];
             r++)
            worker_route_stats_for(&sum, s->route[r].path)->open +=
                s->route[r].open;
        sum.partial_bytes += s->partial_bytes;
        sum.redis.connected += s->redis.connected;
    }
    o = build_metrics(w, buf, sizeof(buf), o);
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
    o = close_metrics(&sum, buf, sizeof(buf), o);
    o = route_metrics(&sum, buf, sizeof(buf), o);
    o = process_metrics(w, buf, sizeof(buf), o);
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
        messaging_set_current(a->w, NULL);
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

/* The open connection id on this worker, or NULL. */
static struct conn *
local_conn(struct worker *w, sock_id id)
{
    struct conn *c;

    if (SOCK_ID_NODE(id) != w->node || SOCK_ID_GENERATION(id) !=
        w->generation || SOCK_ID_SLOT(id) != w->slot)
        return NULL;
    c = idmap_get(&w->ids, SOCK_ID_SERIAL(id));
    return c != NULL && conn_is_open(c) ? c : NULL;
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
    c = local_conn(w, id);
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
    messaging_set_current(w, NULL);
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
    if (SOCK_ID_NODE(id) == w->node &&
        SOCK_ID_GENERATION(id) == w->generation &&
        SOCK_ID_SLOT(id) == w->slot) {
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
        messaging_set_current(w, NULL);
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
