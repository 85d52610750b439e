/*
 * lws_server.c: the libwebsockets reference for bench/compare: the same
 * routes as sockd's benchmark config, written the way libwebsockets'
 * own minimal examples are (lws-minimal-ws-server-echo, -pmd-bulk):
 * messages queue per connection and go out one lws_write per WRITEABLE
 * callback, the rule lws documents.
 *
 *   /echo, /z   every message back, text or binary; permessage-deflate
 *               whenever the client offers it (lws's built-in extension,
 *               at its defaults: zlib level 1, memLevel 8)
 *   /probe      the part of tests/apps/probe.c the benchmark uses:
 *               "sub TOPIC" pushes "ok"; "rpub TOPIC TEXT" pushes TEXT
 *               to every subscriber of TOPIC (one shared buffer);
 *               "echo TEXT" pushes TEXT; binary is echoed; anything else
 *               pushes "unknown". A connection has one topic at a time.
 *
 *   lws_server --port PORT
 *
 * One process, one service thread: Debian's libwebsockets is built with
 * LWS_MAX_SMP = 1. It runs lws's default poll() loop: the libev plugin
 * (libwebsockets-evlib-ev) used more CPU per message in a trial, and
 * ignored SIGTERM. Text is UTF-8 checked, as
 * sockd and Node's ws do. Built by bench/compare against
 * libwebsockets-dev; not part of the CMake build.
 */
#include <libwebsockets.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#define QUEUE_START 16
#define QUEUE_MAX 65536         /* past this a broadcast is dropped */
#define FLOW_OFF_AT 64          /* echo: stop reading with this many queued */
#define FLOW_ON_AT 16
#define MAX_TOPICS 64

/* A message to send, shared by every queue it is on. */
struct msg {
    int refs;
    bool binary;
    size_t len;
    unsigned char buf[];        /* LWS_PRE bytes of room, then the payload */
};

struct topic;

struct pss {
    struct lws *wsi;
    struct pss *next_sub, *prev_sub;
    struct topic *topic;
    struct msg **q;
    unsigned qhead, qlen, qcap;
    unsigned char *rx;          /* a message arriving in pieces */
    size_t rx_len, rx_cap;
    bool probe, flow_off;
};

struct topic {
    char name[64];
    struct pss *subs;
};

struct server {
    struct topic topics[MAX_TOPICS];
    unsigned ntopics;
    unsigned long dropped;
};

static struct server srv;
static struct lws_context *context;
static volatile sig_atomic_t interrupted;

static struct msg *
msg_new(const void *p, size_t len, bool binary)
{
    struct msg *m = malloc(sizeof(*m) + LWS_PRE + len);

    if (m == NULL)
        return NULL;
    m->refs = 0;
    m->binary = binary;
    m->len = len;
    if (len > 0)
        memcpy(m->buf + LWS_PRE, p, len);
    return m;
}

static void
msg_unref(struct msg *m)
{
    if (--m->refs <= 0)
        free(m);
}

/* Queues m on pss; false if the queue is full or memory ran out. */
static bool
enqueue(struct pss *pss, struct msg *m)
{
    if (pss->qlen == pss->qcap) {
        unsigned ncap = pss->qcap ? pss->qcap * 2 : QUEUE_START;
        struct msg **nq;

        if (pss->qcap >= QUEUE_MAX)
            return false;
        nq = malloc(ncap * sizeof(*nq));
        if (nq == NULL)
            return false;
        for (unsigned i = 0; i < pss->qlen; i++)
            nq[i] = pss->q[(pss->qhead + i) % pss->qcap];
        free(pss->q);
        pss->q = nq;
        pss->qcap = ncap;
        pss->qhead = 0;
    }
    pss->q[(pss->qhead + pss->qlen) % pss->qcap] = m;
    pss->qlen++;
    m->refs++;
    if (pss->qlen == 1)
        lws_callback_on_writable(pss->wsi);
    return true;
}

static void
push(struct pss *pss, const void *p, size_t len, bool binary)
{
    struct msg *m = msg_new(p, len, binary);

    if (m == NULL)
        return;
    if (!enqueue(pss, m))
        srv.dropped++;
    if (m->refs == 0)
        free(m);
}

static struct topic *
topic_get(const char *name, size_t len, bool create)
{
    for (unsigned i = 0; i < srv.ntopics; i++) {
        if (strlen(srv.topics[i].name) == len &&
            memcmp(srv.topics[i].name, name, len) == 0)
            return &srv.topics[i];
    }
    if (!create || srv.ntopics == MAX_TOPICS ||
        len >= sizeof(srv.topics[0].name))
        return NULL;
    memcpy(srv.topics[srv.ntopics].name, name, len);
    srv.topics[srv.ntopics].name[len] = '\0';
    return &srv.topics[srv.ntopics++];
}

static void
unsubscribe(struct pss *pss)
{
    if (pss->topic == NULL)
        return;
    if (pss->prev_sub != NULL)
        pss->prev_sub->next_sub = pss->next_sub;
    else
        pss->topic->subs = pss->next_sub;
    if (pss->next_sub != NULL)
        pss->next_sub->prev_sub = pss->prev_sub;
    pss->next_sub = pss->prev_sub = NULL;
    pss->topic = NULL;
}

static void
subscribe(struct pss *pss, struct topic *t)
{
    unsubscribe(pss);
    pss->topic = t;
    pss->next_sub = t->subs;
    if (t->subs != NULL)
        t->subs->prev_sub = pss;
    t->subs = pss;
}

static void
publish(struct topic *t, const char *text, size_t len)
{
    struct msg *m = msg_new(text, len, false);

    if (m == NULL)
        return;
    m->refs = 1;    /* ours, while we hand it out */
    for (struct pss *s = t != NULL ? t->subs : NULL; s != NULL;
         s = s->next_sub) {
        if (!enqueue(s, m))
            srv.dropped++;
    }
    msg_unref(m);
}

static bool
word_is(const char *p, size_t len, const char *w)
{
    size_t n = strlen(w);

    return len > n && memcmp(p, w, n) == 0 && p[n] == ' ';
}

static void
probe_command(struct pss *pss, const char *p, size_t len)
{
    if (word_is(p, len, "sub")) {
        struct topic *t = topic_get(p + 4, len - 4, true);

        if (t != NULL)
            subscribe(pss, t);
        push(pss, t != NULL ? "ok" : "error", t != NULL ? 2 : 5, false);
    } else if (word_is(p, len, "rpub")) {
        const char *topic = p + 5, *sp = memchr(topic, ' ', len - 5);

        if (sp == NULL) {
            push(pss, "unknown", 7, false);
            return;
        }
        publish(topic_get(topic, (size_t)(sp - topic), false), sp + 1,
                len - (size_t)(sp + 1 - p));
    } else if (word_is(p, len, "echo")) {
        push(pss, p + 5, len - 5, false);
    } else {
        push(pss, "unknown", 7, false);
    }
}

static void
on_message(struct pss *pss, const void *p, size_t len, bool binary)
{
    if (pss->probe && !binary) {
        probe_command(pss, p, len);
        return;
    }
    push(pss, p, len, binary);
    if (!pss->probe && pss->qlen >= FLOW_OFF_AT && !pss->flow_off) {
        pss->flow_off = true;
        lws_rx_flow_control(pss->wsi, 0);
    }
}

/* A piece of a message; whole messages skip the copy. */
static int
on_receive(struct lws *wsi, struct pss *pss, const void *in, size_t len)
{
    bool first = lws_is_first_fragment(wsi), last = lws_is_final_fragment(wsi);
    bool binary = lws_frame_is_binary(wsi);

    if (first && last) {
        on_message(pss, in, len, binary);
        return 0;
    }
    if (first)
        pss->rx_len = 0;
    if (pss->rx_len + len > pss->rx_cap) {
        size_t ncap = (pss->rx_len + len) * 2;
        unsigned char *n = realloc(pss->rx, ncap);

        if (n == NULL)
            return -1;
        pss->rx = n;
        pss->rx_cap = ncap;
    }
    memcpy(pss->rx + pss->rx_len, in, len);
    pss->rx_len += len;
    if (last)
        on_message(pss, pss->rx, pss->rx_len, binary);
    return 0;
}

static int
on_writeable(struct lws *wsi, struct pss *pss)
{
    struct msg *m;
    int n;

    if (pss->qlen == 0)
        return 0;
    m = pss->q[pss->qhead];
    pss->qhead = (pss->qhead + 1) % pss->qcap;
    pss->qlen--;
    /* A short write is buffered by lws itself; only an error is fatal. */
    n = lws_write(wsi, m->buf + LWS_PRE, m->len,
                  m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    msg_unref(m);
    if (n < 0)
        return -1;
    if (pss->qlen > 0)
        lws_callback_on_writable(wsi);
    if (pss->flow_off && pss->qlen <= FLOW_ON_AT) {
        pss->flow_off = false;
        lws_rx_flow_control(wsi, 1);
    }
    return 0;
}

static void
on_closed(struct pss *pss)
{
    unsubscribe(pss);
    while (pss->qlen > 0) {
        msg_unref(pss->q[pss->qhead]);
        pss->qhead = (pss->qhead + 1) % pss->qcap;
        pss->qlen--;
    }
    free(pss->q);
    free(pss->rx);
    pss->q = NULL;
    pss->rx = NULL;
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
         void *in, size_t len)
{
    struct pss *pss = user;
    char uri[128];

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(pss, 0, sizeof(*pss));
        pss->wsi = wsi;
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0)
            pss->probe = strncmp(uri, "/probe", 6) == 0;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED:
        on_closed(pss);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    { "sockbench", callback, sizeof(struct pss), 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const struct lws_extension extensions[] = {
    { "permessage-deflate", lws_extension_callback_pm_deflate,
      "permessage-deflate; client_no_context_takeover; "
      "client_max_window_bits" },
    { NULL, NULL, NULL },
};

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (context != NULL)
        lws_cancel_service(context);
}

int
main(int argc, char **argv)
{
    struct lws_context_creation_info info;
    int port = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: lws_server --port PORT\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.extensions = extensions;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_DISABLE_IPV6;
    context = lws_create_context(&info);
    if (context == NULL) {
        fprintf(stderr, "lws_server: lws_create_context failed\n");
        return 1;
    }
    while (!interrupted && lws_service(context, 0) >= 0)
        ;
    lws_context_destroy(context);
    if (srv.dropped > 0)
        fprintf(stderr, "lws_server: dropped %lu messages (queue full)\n",
                srv.dropped);
    return 0;
}
