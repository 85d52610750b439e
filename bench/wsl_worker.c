/*
 * wsl_worker.c: one wsload worker process (see wsl_worker.h). Its
 * timeline: open the connections at a paced rate, report ready, wait for
 * go, warm up, measure, (drain,) close, report. The scenarios differ only
 * in what a connection does on open, on data and on release. Connection
 * mechanics are wsl_conn.c's; the parent does the arithmetic.
 */
#include "wsl_worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsl_common.h"
#include "wsl_proc.h"

#define PACE_PERIOD 0.01        /* connect in batches every 10 ms */
#define SWEEP_PERIOD 0.1        /* connect and close timeouts, lazily */
#define ECHO_HEAD_MAX 16        /* hex digits of the sequence number */
#define MARK_SCAN_MAX 512       /* how far into a message to look */
#define PUB_QUEUE_MAX (4u << 20)
#define PUB_BURST_MAX 10000u

enum phase {
    PH_CONNECT,
    PH_READY,       /* waiting for go */
    PH_WARMUP,
    PH_MEASURE,
    PH_DRAIN,       /* broadcast: publishing stopped, deliveries counted */
    PH_CLOSE,
    PH_DONE,
};

enum mark_state {
    MK_SEEK,
    MK_SEQ,
    MK_TS,
    MK_DONE,
};

/* A resumable matcher for "#wsl:SEQ:TIME:" anywhere in a message's
   first MARK_SCAN_MAX bytes, so any server prefix or wrapper will do. */
struct mark {
    uint64_t seq, ts;
    uint8_t st;     /* enum mark_state */
    uint8_t n;      /* characters matched in this state */
};

struct worker;

struct wconn {
    struct wsl_conn conn;
    struct worker *w;
    uint64_t send_seq;      /* echo: next to send */
    uint64_t recv_seq;      /* echo: next expected back */
    uint64_t next_pub_seq;  /* broadcast: next expected */
    struct mark mk;
    uint32_t index;
    uint32_t unstamped;     /* echo: queued, not yet given a send time */
    bool bad;               /* echo: the reply so far differs */
    bool settled;           /* open or failed, for readiness */
    bool is_pub;
};

struct worker {
    struct ev_loop *loop;
    const struct wsl_opts *o;
    struct wsl_net net;
    struct wconn *conns;
    uint32_t n_conns;       /* o->conns, plus the publisher */
    uint32_t n_started, n_settled, n_live;
    uint32_t pace_batch;
    uint64_t *ring;         /* echo: send times, inflight per connection */
    uint8_t *pattern;       /* payload bytes after the head */
    ev_timer pace_t, phase_t, sweep_t, pub_t, hard_t;
    ev_io go_w;
    int go_fd, report_fd;
    enum phase phase;
    bool running;           /* replies and ticks send more */
    bool measuring;
    uint64_t t_begin_ns;    /* worker start */
    uint64_t t0_ns;         /* window start */
    double cpu0;
    uint64_t wire_in0, wire_out0;   /* net's byte counts at window start */
    uint64_t pub_start_ns, pub_seq;
    uint64_t win_delivered; /* --pub-window: deliveries, whole run */
    struct wsl_stats st;
};

static const char hexdig[] = "0123456789abcdef";

static void w_done(struct worker *w);
static void w_close_all(struct worker *w);

static uint8_t
data_opcode(const struct worker *w)
{
    return w->o->binary ? WSL_OP_BINARY : WSL_OP_TEXT;
}

static int
write_all(int fd, const void *p, size_t len)
{
    const char *s = p;

    while (len > 0) {
        ssize_t n = write(fd, s, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EPIPE;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

static void
set_phase_timer(struct worker *w, double after)
{
    ev_timer_stop(w->loop, &w->phase_t);
    ev_timer_set(&w->phase_t, after, 0);
    ev_timer_start(w->loop, &w->phase_t);
}

static void
conn_begin(struct worker *w, struct wconn *wc)
{
    wc->send_seq = wc->recv_seq = wc->next_pub_seq = 0;
    wc->unstamped = 0;
    wc->bad = false;
    memset(&wc->mk, 0, sizeof(wc->mk));
    w->n_live++;
    wsl_conn_start(&w->net, &wc->conn, w->o->first_index + wc->index);
}

/* ---- echo ---------------------------------------------------------- */

/* The head is the sequence number in hex, lowest digit first, so a
   payload shorter than 16 bytes still carries its low bits. */
static uint8_t
echo_head_byte(uint64_t seq, uint64_t i)
{
    return (uint8_t)hexdig[(seq >> (4 * i)) & 15];
}

static void
echo_send(struct wconn *wc)
{
    struct worker *w = wc->w;
    size_t size = w->o->size, hlen = MIN(size, (size_t)ECHO_HEAD_MAX);
    uint8_t head[ECHO_HEAD_MAX];
    struct iovec iov[2];

    for (size_t i = 0; i < hlen; i++)
        head[i] = echo_head_byte(wc->send_seq, i);
    iov[0].iov_base = head;
    iov[0].iov_len = hlen;
    iov[1].iov_base = w->pattern + hlen;
    iov[1].iov_len = size - hlen;
    if (wsl_conn_sendv(&wc->conn, data_opcode(w), iov, 2) != 0) {
        wsl_conn_abort(&wc->conn, WSL_ERR_CLOSED);
        return;
    }
    wc->send_seq++;
    wc->unstamped++;
    if (w->measuring)
        w->st.sent++;
}

static void
echo_fill(struct wconn *wc)
{
    for (uint32_t i = 0; i < wc->w->o->inflight; i++) {
        if (wc->conn.state != WSL_CS_OPEN)
            break;
        echo_send(wc);
    }
}

/* Send times are taken when the frames are written, not queued: a reply
   to one connection may queue a request long before the loop writes it. */
static void
echo_stamp(struct wconn *wc, uint64_t now_ns)
{
    uint32_t k = wc->w->o->inflight;
    uint64_t *ring = wc->w->ring + (size_t)wc->index * k;

    for (uint64_t s = wc->send_seq - wc->unstamped; s < wc->send_seq; s++)
        ring[s % k] = now_ns;
    wc->unstamped = 0;
}

static bool
echo_chunk_ok(const struct worker *w, uint64_t seq,
              const struct wsl_rx_event *ev)
{
    const uint8_t *p = ev->data;
    size_t n = ev->len;
    uint64_t off = ev->offset;
    uint64_t hlen = MIN(w->o->size, (uint32_t)ECHO_HEAD_MAX);

    if (off > w->o->size || n > w->o->size - off)
        return false;
    for (; n > 0 && off < hlen; p++, n--, off++) {
        if (*p != echo_head_byte(seq, off))
            return false;
    }
    return n == 0 || memcmp(p, w->pattern + off, n) == 0;
}

/* Replies come back in order, so each is checked against the oldest
   request in flight, byte for byte, as its pieces arrive. */
static void
echo_on_data(struct wconn *wc, const struct wsl_rx_event *ev)
{
    struct worker *w = wc->w;
    uint32_t k = w->o->inflight;

    if (wc->recv_seq == wc->send_seq) {
        if (ev->end)
            wsl_net_count(&w->net, WSL_ERR_MISMATCH, 0,
                          "echo: a message nobody asked for");
        return;
    }
    if (!echo_chunk_ok(w, wc->recv_seq, ev))
        wc->bad = true;
    if (!ev->end)
        return;
    if (wc->bad || ev->offset + ev->len != w->o->size ||
        ev->opcode != data_opcode(w))
        wsl_net_count(&w->net, WSL_ERR_MISMATCH, 0,
                      "echo: reply differs from its request");
    wc->bad = false;
    if (w->measuring) {
        uint64_t sent = w->ring[(size_t)wc->index * k + wc->recv_seq % k];

        w->st.msgs++;
        w->st.bytes += w->o->size;
        wsl_hist_add(&w->st.hist, w->net.now_ns - sent);
    }
    wc->recv_seq++;
    if (w->running && wc->conn.state == WSL_CS_OPEN)
        echo_send(wc);
}

/* ---- broadcast ----------------------------------------------------- */

static int
hex_value(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

static void
mark_restart(struct mark *m, uint8_t ch)
{
    m->st = MK_SEEK;
    m->n = ch == '#';
}

static void
mark_feed(struct mark *m, const uint8_t *p, size_t n)
{
    static const char prefix[] = "#wsl:";

    for (size_t i = 0; i < n && m->st != MK_DONE; i++) {
        uint8_t ch = p[i];
        uint64_t *v = m->st == MK_SEQ ? &m->seq : &m->ts;
        int h;

        if (m->st == MK_SEEK) {
            if (ch != (uint8_t)prefix[m->n]) {
                mark_restart(m, ch);
            } else if (++m->n == sizeof(prefix) - 1) {
                m->st = MK_SEQ;
                m->n = 0;
                m->seq = m->ts = 0;
            }
        } else if (m->n == 16) {
            if (ch != ':') {
                mark_restart(m, ch);
            } else {
                m->st = m->st == MK_SEQ ? MK_TS : MK_DONE;
                m->n = 0;
            }
        } else if ((h = hex_value(ch)) < 0) {
            mark_restart(m, ch);
        } else {
            *v = *v << 4 | (uint64_t)h;
            m->n++;
        }
    }
}

static void pub_more(struct worker *w);

static void
sub_delivery(struct wconn *wc, uint64_t len)
{
    struct worker *w = wc->w;
    uint64_t seq = wc->mk.seq, now = w->net.now_ns;

    w->st.delivered++;
    if (w->o->pub_window > 0 && w->o->publisher) {
        w->win_delivered++;
        pub_more(w);
    }
    if (seq >= wc->next_pub_seq) {
        w->st.gaps += seq - wc->next_pub_seq;
        wc->next_pub_seq = seq + 1;
    } else {
        w->st.reordered++;
    }
    if (w->measuring) {
        w->st.msgs++;
        w->st.bytes += len;
        wsl_hist_add(&w->st.hist, now > wc->mk.ts ? now - wc->mk.ts : 0);
    }
}

static void
sub_on_data(struct wconn *wc, const struct wsl_rx_event *ev)
{
    if (ev->offset < MARK_SCAN_MAX)
        mark_feed(&wc->mk, ev->data,
                  MIN(ev->len, (size_t)(MARK_SCAN_MAX - ev->offset)));
    if (!ev->end)
        return;
    if (wc->mk.st == MK_DONE && !wc->is_pub)
        sub_delivery(wc, ev->offset + ev->len);
    else
        wc->w->st.other++;
    memset(&wc->mk, 0, sizeof(wc->mk));
}

static void
put_hex16(char *dst, uint64_t v)
{
    for (int i = 15; i >= 0; i--, v >>= 4)
        dst[i] = hexdig[v & 15];
}

static int
pub_send(struct worker *w, struct wconn *pc, uint64_t now)
{
    const char *fmt = w->o->pub_fmt != NULL ? w->o->pub_fmt : "";
    size_t size = w->o->size;
    char mark[WSL_MARK_LEN];
    struct iovec iov[3];

    memcpy(mark, "#wsl:", 5);
    put_hex16(mark + 5, w->pub_seq);
    mark[21] = ':';
    put_hex16(mark + 22, now);
    mark[38] = ':';
    iov[0].iov_base = (void *)fmt;
    iov[0].iov_len = strlen(fmt);
    iov[1].iov_base = mark;
    iov[1].iov_len = sizeof(mark);
    iov[2].iov_base = w->pattern;
    iov[2].iov_len = size > WSL_MARK_LEN ? size - WSL_MARK_LEN : 0;
    if (wsl_conn_sendv(&pc->conn, data_opcode(w), iov, 3) != 0)
        return -EPIPE;
    w->pub_seq++;
    w->st.published++;
    if (w->measuring)
        w->st.sent++;
    return 0;
}

/* --pub-window: as many publishes in flight as allowed, counted as not
   yet seen by every subscriber of this process. */
static bool
window_full(const struct worker *w)
{
    uint64_t subs = w->st.subscribers, done;

    if (w->o->pub_window == 0 || subs == 0)
        return false;
    done = w->win_delivered / subs;
    return w->pub_seq >= done + w->o->pub_window;
}

/* Sends what the rate says is due since publishing began; a server that
   stops reading gets skipped ticks, not an unbounded queue. */
static void
w_on_pub(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, pub_t);
    struct wconn *pc = &w->conns[0];
    uint64_t now = wsl_now_ns(), due;
    uint32_t burst = 0;

    (void)loop;
    (void)revents;
    if (!w->running || pc->conn.state != WSL_CS_OPEN)
        return;
    if (w->pub_start_ns == 0)
        w->pub_start_ns = now;
    due = (uint64_t)((double)(now - w->pub_start_ns) / 1e9 *
                     w->o->pub_rate) + 1;
    while (w->pub_seq < due && burst++ < PUB_BURST_MAX) {
        if (window_full(w))
            break;
        if (wsl_conn_queued(&pc->conn) > PUB_QUEUE_MAX) {
            w->st.pub_stalled++;
            break;
        }
        if (pub_send(w, pc, now) != 0)
            break;
    }
}

/* A delivery freed a place in the window: publish at once (the rate
   still caps). */
static void
pub_more(struct worker *w)
{
    if (window_full(w) || w->pub_start_ns == 0)
        return;
    w_on_pub(w->loop, &w->pub_t, 0);
}

/* ---- connection callbacks ------------------------------------------ */

/* Tells the parent this worker's connections are up (or given up on). */
static void
w_ready(struct worker *w)
{
    w->phase = PH_READY;
    w->st.connect_s = (double)(wsl_now_ns() - w->t_begin_ns) / 1e9;
    ev_timer_stop(w->loop, &w->phase_t);
    (void)write_all(w->report_fd, "R", 1);
}

static void
w_settle(struct worker *w, struct wconn *wc)
{
    if (wc->settled)
        return;
    wc->settled = true;
    w->n_settled++;
    if (w->phase == PH_CONNECT && w->n_settled == w->n_conns)
        w_ready(w);
}

static void
w_on_open(struct wsl_conn *c)
{
    struct wconn *wc = container_of(c, struct wconn, conn);
    struct worker *w = wc->w;
    const char *sub = w->o->sub_msg;

    w->st.opened++;
    switch (w->o->scenario) {
    case WSL_ECHO:
        c->keep_out = true;
        if (w->running)
            echo_fill(wc);
        break;
    case WSL_IDLE:
        /* The handshake is all an idle connection does: its latency. */
        wsl_hist_add(&w->st.hist, c->t_open_ns - c->t_start_ns);
        break;
    case WSL_CONNECT:
        if (w->measuring) {
            w->st.msgs++;
            wsl_hist_add(&w->st.hist, c->t_open_ns - c->t_start_ns);
        }
        wsl_conn_close(c, 1000);
        break;
    case WSL_BROADCAST:
        c->keep_out = wc->is_pub;
        if (!wc->is_pub && sub != NULL && sub[0] != '\0') {
            struct iovec iov = { (void *)sub, strlen(sub) };

            (void)wsl_conn_sendv(c, WSL_OP_TEXT, &iov, 1);
        }
        break;
    }
    w_settle(w, wc);
}

static void
w_on_data(struct wsl_conn *c, const struct wsl_rx_event *ev)
{
    struct wconn *wc = container_of(c, struct wconn, conn);

    switch (wc->w->o->scenario) {
    case WSL_ECHO:
        echo_on_data(wc, ev);
        break;
    case WSL_BROADCAST:
        sub_on_data(wc, ev);
        break;
    default:
        if (ev->end)
            wc->w->st.other++;
        break;
    }
}

static void
w_before_flush(struct wsl_conn *c, uint64_t now_ns)
{
    struct wconn *wc = container_of(c, struct wconn, conn);

    if (wc->w->o->scenario == WSL_ECHO && wc->unstamped > 0)
        echo_stamp(wc, now_ns);
}

static void
w_on_dead(struct wsl_conn *c)
{
    struct wconn *wc = container_of(c, struct wconn, conn);
    struct worker *w = wc->w;

    w->n_live--;
    w_settle(w, wc);
    if (w->o->scenario == WSL_CONNECT && w->running) {
        conn_begin(w, wc);
        return;
    }
    if (w->phase == PH_CLOSE && w->n_live == 0)
        w_done(w);
}

static const struct wsl_conn_ops w_ops = {
    .on_open = w_on_open,
    .on_data = w_on_data,
    .before_flush = w_before_flush,
    .on_dead = w_on_dead,
};

/* ---- timeline ------------------------------------------------------ */

static void
w_begin_measure(struct worker *w)
{
    w->phase = PH_MEASURE;
    w->measuring = true;
    w->st.msgs = w->st.bytes = w->st.sent = 0;
    if (w->o->scenario != WSL_IDLE)
        wsl_hist_reset(&w->st.hist);
    w->t0_ns = wsl_now_ns();
    w->cpu0 = wsl_proc_self_cpu();
    w->wire_in0 = w->net.bytes_in;
    w->wire_out0 = w->net.bytes_out;
    set_phase_timer(w, w->o->duration);
}

static void
w_window_end(struct worker *w)
{
    w->st.window_s = (double)(wsl_now_ns() - w->t0_ns) / 1e9;
    w->st.cpu_s = wsl_proc_self_cpu() - w->cpu0;
    w->st.wire_in = w->net.bytes_in - w->wire_in0;
    w->st.wire_out = w->net.bytes_out - w->wire_out0;
    w->measuring = false;
}

static void
w_end_measure(struct worker *w)
{
    w_window_end(w);
    w->running = false;
    ev_timer_stop(w->loop, &w->pub_t);
    w->st.open_at_end = 0;
    for (uint32_t i = 0; i < w->n_started; i++) {
        if (w->conns[i].conn.state == WSL_CS_OPEN && !w->conns[i].is_pub)
            w->st.open_at_end++;
    }
    if (w->o->scenario == WSL_BROADCAST && w->o->drain > 0) {
        w->phase = PH_DRAIN;
        set_phase_timer(w, w->o->drain);
        return;
    }
    w_close_all(w);
}

static void
w_go(struct worker *w)
{
    w->phase = PH_WARMUP;
    w->running = true;
    for (uint32_t i = 0; i < w->n_conns; i++) {
        struct wconn *wc = &w->conns[i];

        if (w->o->scenario == WSL_CONNECT) {
            conn_begin(w, wc);
            w->n_started++;
        } else if (w->o->scenario == WSL_ECHO &&
                   wc->conn.state == WSL_CS_OPEN) {
            echo_fill(wc);
        } else if (w->o->scenario == WSL_BROADCAST && !wc->is_pub &&
                   wc->conn.state == WSL_CS_OPEN) {
            w->st.subscribers++;
        }
    }
    if (w->o->scenario == WSL_BROADCAST && w->o->publisher) {
        double period = MAX(0.001, 1.0 / w->o->pub_rate);

        ev_timer_set(&w->pub_t, w->o->settle, period);
        ev_timer_start(w->loop, &w->pub_t);
    }
    if (w->o->warmup > 0)
        set_phase_timer(w, w->o->warmup);
    else
        w_begin_measure(w);
}

static void
w_abort_all(struct worker *w)
{
    for (uint32_t i = 0; i < w->n_started; i++) {
        if (wsl_conn_is_live(&w->conns[i].conn))
            wsl_conn_abort(&w->conns[i].conn, WSL_ERR_NONE);
    }
}

static void
w_close_all(struct worker *w)
{
    w->phase = PH_CLOSE;
    w->running = false;
    ev_timer_stop(w->loop, &w->pace_t);
    for (uint32_t i = 0; i < w->n_started; i++) {
        if (wsl_conn_is_live(&w->conns[i].conn))
            wsl_conn_close(&w->conns[i].conn, 1000);
    }
    if (w->n_live == 0) {
        w_done(w);
        return;
    }
    /* The sweep times out slow closes; this is the backstop. */
    set_phase_timer(w, w->o->close_wait + 2 * SWEEP_PERIOD);
}

static void
w_done(struct worker *w)
{
    if (w->phase == PH_DONE)
        return;
    if (w->measuring)
        w_window_end(w);
    w->phase = PH_DONE;
    w->st.inflated = w->net.inflated;
    memcpy(w->st.err, w->net.err, sizeof(w->st.err));
    memcpy(w->st.first_errno, w->net.first_errno, sizeof(w->st.first_errno));
    memcpy(w->st.first_failure, w->net.first_failure,
           sizeof(w->st.first_failure));
    (void)write_all(w->report_fd, &w->st, sizeof(w->st));
    ev_break(w->loop, EVBREAK_ALL);
}

static void
w_on_phase(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, phase_t);

    (void)loop;
    (void)revents;
    switch (w->phase) {
    case PH_CONNECT:
        /* Connect phase over: go without the stragglers, which the sweep
           times out. */
        w_ready(w);
        break;
    case PH_WARMUP:
        w_begin_measure(w);
        break;
    case PH_MEASURE:
        w_end_measure(w);
        break;
    case PH_DRAIN:
        w_close_all(w);
        break;
    case PH_CLOSE:
        w_abort_all(w);
        w_done(w);
        break;
    default:
        break;
    }
}

/*
 * Opens the next batch. Both the rate and the handshakes under way are
 * capped: a burst larger than the server's listen backlog is answered by
 * dropped SYNs and a one-second retransmit, which would measure the
 * kernel's timer, not the server.
 */
static void
w_on_pace(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, pace_t);
    uint32_t pending = w->n_started - w->n_settled;
    uint32_t room = pending < w->o->max_pending ?
                    w->o->max_pending - pending : 0;

    (void)revents;
    for (uint32_t i = 0; i < MIN(w->pace_batch, room) &&
         w->n_started < w->n_conns; i++)
        conn_begin(w, &w->conns[w->n_started++]);
    if (w->n_started == w->n_conns)
        ev_timer_stop(loop, t);
}

/* Times out connects and closes that take too long: one timer for all,
   checked lazily, rather than one per connection. */
static void
w_on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, sweep_t);
    uint64_t now = wsl_now_ns();
    uint64_t ct = (uint64_t)(w->o->connect_timeout * 1e9);
    uint64_t cw = (uint64_t)(w->o->close_wait * 1e9);

    (void)loop;
    (void)revents;
    for (uint32_t i = 0; i < w->n_started; i++) {
        struct wsl_conn *c = &w->conns[i].conn;
        const char *what = NULL;

        if ((c->state == WSL_CS_CONNECTING || c->state == WSL_CS_HANDSHAKE) &&
            now - c->t_start_ns > ct)
            what = "timeout: connect or handshake";
        else if ((c->state == WSL_CS_CLOSE_SENT ||
                  c->state == WSL_CS_CLOSE_WAIT) && now - c->t_close_ns > cw)
            what = "timeout: close handshake";
        if (what != NULL) {
            wsl_net_count(&w->net, WSL_ERR_TIMEOUT, 0, what);
            wsl_conn_abort(c, WSL_ERR_NONE);
        }
    }
}

static void
w_on_go(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker *w = container_of(io, struct worker, go_w);
    char b;
    ssize_t r = read(io->fd, &b, 1);

    (void)revents;
    /* The parent says go by closing its end: only EOF counts. */
    if (r > 0 || (r < 0 && (errno == EINTR || errno == EAGAIN)))
        return;
    ev_io_stop(loop, io);
    if (w->phase == PH_CONNECT || w->phase == PH_READY)
        w_go(w);
}

static void
w_on_hard(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, hard_t);

    (void)loop;
    (void)revents;
    w->st.deadline_hit = true;
    w_abort_all(w);
    w_done(w);
}

/* ---- setup --------------------------------------------------------- */

/*
 * Text that compresses like chat or JSON traffic (about 2-3x at level 1)
 * rather than a-z repeated (30x and more): words drawn from a fixed list
 * by a fixed-seed PRNG, so every run and every server gets the same bytes.
 */
static void
fill_words(uint8_t *p, size_t len)
{
    static const char *const words[] = {
        "the", "message", "server", "user", "id", "time", "room", "send",
        "status", "online", "hello", "world", "value", "update", "event",
        "price", "quote", "order", "buy", "sell", "chat", "typing", "from",
        "to", "data", "json", "text", "ok", "true", "false", "null", "list",
    };
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t i = 0;

    while (i < len) {
        uint64_t r = wsl_rand(&rng);
        const char *wd = words[r % ARRAY_SIZE(words)];
        char num[24];
        int n;

        /* One token in four is a number, as in real payloads. */
        if ((r >> 8) % 4 == 0) {
            n = snprintf(num, sizeof(num), "%u", (unsigned)(r >> 16) % 100000);
            wd = num;
        } else {
            n = (int)strlen(wd);
        }
        for (int k = 0; k < n && i < len; k++)
            p[i++] = (uint8_t)wd[k];
        if (i < len)
            p[i++] = (r >> 40) % 6 == 0 ? ',' : ' ';
    }
}

static int
w_alloc(struct worker *w)
{
    const struct wsl_opts *o = w->o;
    size_t plen = MAX((size_t)o->size, (size_t)1);

    w->n_conns = o->conns + (o->publisher ? 1 : 0);
    w->conns = calloc(MAX(w->n_conns, 1u), sizeof(*w->conns));
    w->pattern = malloc(plen);
    if (w->conns == NULL || w->pattern == NULL)
        return -ENOMEM;
    if (o->words && !o->binary)
        fill_words(w->pattern, plen);
    else
        for (size_t i = 0; i < plen; i++)
            w->pattern[i] = o->binary ? (uint8_t)(i * 131 + 7) :
                            (uint8_t)('a' + i % 26);
    for (uint32_t i = 0; i < w->n_conns; i++) {
        w->conns[i].w = w;
        w->conns[i].index = i;
        w->conns[i].is_pub = o->publisher && i == 0;
    }
    if (o->scenario == WSL_ECHO) {
        w->ring = calloc((size_t)MAX(w->n_conns, 1u) * o->inflight,
                         sizeof(*w->ring));
        if (w->ring == NULL)
            return -ENOMEM;
    }
    return wsl_net_init(&w->net, w->loop, &o->target, &w_ops,
                        MAX(w->n_conns, 1u));
}

static void
w_start(struct worker *w)
{
    ev_timer_init(&w->pace_t, w_on_pace, 0, PACE_PERIOD);
    ev_timer_init(&w->phase_t, w_on_phase, 0, 0);
    ev_timer_init(&w->sweep_t, w_on_sweep, SWEEP_PERIOD, SWEEP_PERIOD);
    ev_timer_init(&w->pub_t, w_on_pub, 0, 0);
    ev_timer_init(&w->hard_t, w_on_hard, w->o->deadline, 0);
    ev_io_init(&w->go_w, w_on_go, w->go_fd, EV_READ);
    ev_timer_start(w->loop, &w->sweep_t);
    ev_timer_start(w->loop, &w->hard_t);
    ev_io_start(w->loop, &w->go_w);
    w->phase = PH_CONNECT;
    w->t_begin_ns = wsl_now_ns();
    /* connect opens its connections at go; others first, then ready. */
    if (w->o->scenario == WSL_CONNECT || w->n_conns == 0) {
        w_ready(w);
        return;
    }
    w->pace_batch = (uint32_t)MAX(1.0, w->o->conn_rate * PACE_PERIOD);
    ev_timer_start(w->loop, &w->pace_t);
    set_phase_timer(w, w->o->connect_timeout);
}

int
wsl_worker_run(const struct wsl_opts *o, int go_fd, int report_fd)
{
    struct worker *w = calloc(1, sizeof(*w));
    int rc;

    if (w == NULL)
        return -ENOMEM;
    w->o = o;
    w->report_fd = report_fd;
    w->go_fd = go_fd;
    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (w->loop == NULL) {
        free(w);
        return -ENOMEM;
    }
    rc = w_alloc(w);
    if (rc == 0) {
        w_start(w);
        ev_run(w->loop, 0);
        w_abort_all(w);
        wsl_net_destroy(&w->net);
    }
    ev_loop_destroy(w->loop);
    free(w->ring);
    free(w->pattern);
    free(w->conns);
    free(w);
    return rc;
}
