/*
 * metrics.c: the text of GET /metrics (Prometheus exposition format 0.0.4):
 * every worker's counters from the shared stats page summed (DESIGN §9),
 * closes by kind and error, per-route counters, build and generation,
 * and the standard process_* metrics of sockd's processes. Serving the
 * request is admin.c's; keeping the counters is each module's own.
 */
#include "metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "common.h"
#include "procstat.h"
#include "wstate.h"

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
    { "sock_deflate_memory_bytes", "gauge",
      "Bytes the zlib streams of permessage-deflate hold.",
      STAT(deflate_memory) },
    { "sock_deflate_no_takeover_total", "counter",
      "Connections that agreed permessage-deflate without context "
      "takeover because that was over max_deflate_memory.",
      STAT(deflate_no_takeover) },
    { "sock_send_queue_bytes", "gauge",
      "Bytes in every connection's send queue, not yet written.",
      STAT(send_bytes) },
    { "sock_send_budget_closes_total", "counter",
      "Connections dropped to keep that under max_send_bytes.",
      STAT(send_budget_closes) },
    { "sock_fanout_backlog_bytes", "gauge",
      "Bytes of publishes and broadcasts queued to connections and not yet "
      "written, not counting those waiting for a slow client.",
      STAT(fanout_backlog) },
    { "sock_fanout_pauses_total", "counter",
      "Times a client's publish took that over max_fanout_backlog, so its "
      "input waited until the worker had written the backlog down.",
      STAT(fanout_pauses) },
    { "sock_fanout_hold_microseconds", "gauge",
      "The fan-out hold fanout_interval = auto chose for the load, summed "
      "over workers: 0 while they are lightly loaded.",
      STAT(fanout_hold_us) },
    { "sock_message_timeouts_total", "counter",
      "Connections closed with 1008 for a message unfinished after "
      "message_timeout.", STAT(message_timeouts) },
    { "sock_pongs_coalesced_total", "counter",
      "Pings answered only by the pong of a later ping (a ping flood).",
      STAT(pongs_coalesced) },
    { "sock_send_batches_total", "counter",
      "io_uring calls that made the writes of a flush together "
      "([server] io_uring).", STAT(send_batches) },
    { "sock_sends_batched_total", "counter",
      "Writes to clients made in those calls; without io_uring, each "
      "write is a send(2) of its own.", STAT(sends_batched) },
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

size_t
metrics_render(struct worker *w, char *buf, size_t size)
{
    struct worker_stats sum = { 0 };
    uint64_t workers = 0;
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
        sum.fanout_backlog += s->fanout_backlog;
        sum.fanout_hold_us += s->fanout_hold_us;
        sum.send_bytes += s->send_bytes;
        sum.deflate_memory += s->deflate_memory;
        sum.redis.connected += s->redis.connected;
    }
    o = build_metrics(w, buf, size, o);
    o = metric(buf, size, o, "sock_workers", "gauge",
               "Workers whose counters are summed here.", workers);
    for (size_t i = 0; i < ARRAY_SIZE(stat_metrics); i++) {
        const struct stat_metric *m = &stat_metrics[i];
        uint64_t v;

        if (m->redis && w->cfg->redis.address == NULL)
            continue;
        memcpy(&v, (const char *)&sum + m->off, sizeof(v));
        o = metric(buf, size, o, m->name, m->type, m->help, v);
    }
    o = close_metrics(&sum, buf, size, o);
    o = route_metrics(&sum, buf, size, o);
    o = process_metrics(w, buf, size, o);
    return MIN(o, size);
}
