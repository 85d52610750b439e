/*
 * probe.c: the app module the integration tests (tests/integration) load
 * as BUILD/probe.so. Written only against sock.h, like any third-party
 * app, so the tests also check that a module resolves the API from sockd.
 *
 * Text messages are commands, one per message, words separated by single
 * spaces (the last argument runs to the end of the message):
 *   echo TEXT            push TEXT as text
 *   id                   push sock_self in decimal
 *   close CODE [REASON]  sock_stop_code
 *   stop | restart | error
 *                        sock_stop, sock_stop_restart, sock_stop_error(42)
 *   garbage              return 7 (not a sock_ret): the server sends 1011
 *   push N SIZE          push N binary messages of SIZE bytes of 'x'
 *   after MS TEXT        timer info (type 1) in MS ms; pushes "timer:TEXT"
 *   send ID TEXT         info (type 2) to ID; it pushes "info:FROM:TEXT"
 *   self TEXT            info (type 3) to itself, then push "sent"
 *   sub TOPIC | unsub TOPIC          push "ok"
 *   subf TOPIC | subfb TOPIC         sock_subscribe_frames with TEXT or
 *                        BINARY: publishes arrive as frames of exactly the
 *                        published bytes, without handle_info; push "ok"
 *   pub TOPIC TEXT       subscribers push "topic:TOPIC:TEXT"
 *   rpub TOPIC TEXT      subscribers push TEXT itself (the shared payload,
 *                        so a compressing server can build its frame once)
 *   bcast TEXT           every connection pushes "bcast:TEXT"
 *   pause MS             stop reading for MS ms, then push "resumed"
 *   hang MS              TEST ONLY: sleep MS ms (at most 60000) inside
 *                        handle_in, blocking the worker's whole loop as a
 *                        stuck app would (for the master's heartbeat
 *                        tests), then push "woke"
 *   subproto | route | writable      push what the getter says
 *   sendn ID N           N infos (type 2) to ID from this one handler, the
 *                        texts "0".."N-1" (so the recipient pushes
 *                        "info:FROM:0" ... in order), then push "sent:N"
 *   quietn ID N          N infos (type 7) to ID carrying an 8-byte sequence
 *                        number 0..N-1 (continuing across calls); the
 *                        recipient only counts them (see count). Pushes
 *                        "sent:N"
 *   pubn TOPIC N         N publishes (type 7) to TOPIC, counted silently by
 *                        the subscribers like quietn. Pushes "sent:N"
 *   count                push "count:RECEIVED:REORDERED:GAPS:FIRST_NS:LAST_NS"
 *                        for the type-7 infos this connection got: a
 *                        sequence number not above the previous one counts
 *                        as reordered, one past the next expected as a gap
 *                        (meaningful for a single sender; the first one
 *                        sets the start); FIRST/LAST_NS are
 *                        CLOCK_MONOTONIC at the first and last one
 *   count reset          zero those counters (and this sender's sequence),
 *                        push "ok"
 * Anything else pushes "unknown". Binary messages are echoed as binary. A
 * ping whose payload is "count" pushes "ping-seen"; one whose payload is
 * "pause MS" pauses like the command (a ping may come inside a fragmented
 * message, so this pauses reading mid-message).
 *
 * The upgrade hook refuses when the query has refuse=STATUS, picks the
 * subprotocol "probe.v1" when offered, adds "X-Probe: 1", and hands init a
 * malloc'd arg that init checks and frees: a connection whose init did not
 * get it is closed with 4099 "no upgrade arg", which the tests would see.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sock.h"

#define PROBE_MAGIC 0x70726f62u /* "prob" */
#define PROBE_PROTO "probe.v1"

/* Info and timer types of this app. */
enum {
    T_TIMER = 1,
    T_SEND = 2,
    T_SELF = 3,
    T_PUB = 4,
    T_BCAST = 5,
    T_RAW_PUB = 6,
    T_COUNT = 7,
    T_RESUME = 9,
};

struct probe_arg {
    uint32_t magic;
};

/* Per connection: the counters of quietn / pubn (type T_COUNT infos). */
struct probe_state {
    uint64_t count;     /* received */
    uint64_t next;      /* the sequence number expected next */
    uint64_t reordered; /* not above the previous one */
    uint64_t gaps;      /* past the expected one */
    uint64_t first_ns, last_ns;
    uint64_t out_seq;   /* next sequence number this one sends */
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Decimal digits only; false on anything else or overflow. */
static bool
parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* True if the comma-separated list holds token exactly (spaces trimmed). */
static bool
list_has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;

    while (*p != '\0') {
        const char *end;
        size_t n;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        end = p;
        while (*end != '\0' && *end != ',')
            end++;
        n = (size_t)(end - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == tlen && n > 0 && memcmp(p, token, n) == 0)
            return true;
        p = end;
    }
    return false;
}

static bool
offered_protocol(const sock_request *r, const char *proto)
{
    size_t n = sock_request_header_count(r);

    for (size_t i = 0; i < n; i++) {
        const char *name, *value;

        if (!sock_request_header_at(r, i, &name, &value))
            break;
        if (strcasecmp(name, "Sec-WebSocket-Protocol") == 0 &&
            list_has_token(value, proto))
            return true;
    }
    return false;
}

static int
probe_upgrade(const sock_request *r, sock_upgrade *up)
{
    char buf[16];
    struct probe_arg *arg;
    int n = sock_request_query_param(r, "refuse", buf, sizeof(buf));

    if (n >= 0) {
        uint64_t status;

        if (!parse_u64(buf, (size_t)n, &status) || status < 400 ||
            status > 599)
            status = 400;
        sock_upgrade_refuse_body(up, "refused\n");
        return (int)status;
    }
    /* A failure leaves the 101 without the header, which the tests see. */
    if (offered_protocol(r, PROBE_PROTO))
        (void)sock_upgrade_subprotocol(up, PROBE_PROTO);
    if (sock_upgrade_header(up, "X-Probe", "1") != 0)
        return 500;
    arg = malloc(sizeof(*arg));
    if (arg == NULL)
        return 503;
    arg->magic = PROBE_MAGIC;
    sock_upgrade_set_arg(up, arg, free);
    return 0;
}

static sock_ret
probe_init(sock_conn *c, void *upgrade_arg, void **state)
{
    struct probe_arg *arg = upgrade_arg;
    bool ok = arg != NULL && arg->magic == PROBE_MAGIC;

    free(arg);
    if (!ok)
        return sock_stop_code(c, 4099, "no upgrade arg", 14);
    *state = calloc(1, sizeof(struct probe_state));
    if (*state == NULL)
        return sock_stop_error(c, -ENOMEM);
    return SOCK_CONTINUE;
}

static void
push_text(sock_conn *c, const char *s, size_t len)
{
    sock_push(c, SOCK_TEXT, s, len);
}

static void
push_str(sock_conn *c, const char *s)
{
    push_text(c, s, strlen(s));
}

/* Pushes PREFIX A ':' B, e.g. "topic:" "t" ":" "m". */
static void
push_joined(sock_conn *c, const char *prefix, const char *a, size_t alen,
            const void *b, size_t blen)
{
    size_t plen = strlen(prefix);
    size_t len = plen + alen + 1 + blen;
    char *out = malloc(len + 1);

    if (out == NULL)
        return;
    memcpy(out, prefix, plen);
    memcpy(out + plen, a, alen);
    out[plen + alen] = ':';
    if (blen > 0)
        memcpy(out + plen + alen + 1, b, blen);
    push_text(c, out, len);
    free(out);
}

static void
push_binary_run(sock_conn *c, uint64_t count, uint64_t size)
{
    char *data;

    if (size > 64u * 1024 * 1024)
        return;
    data = malloc(size > 0 ? size : 1);
    if (data == NULL)
        return;
    memset(data, 'x', size);
    /* Stops at the first failure: -ENOBUFS when the hard limit closed
       the connection, -EPIPE once it is closing. */
    for (uint64_t i = 0; i < count; i++) {
        if (sock_push(c, SOCK_BINARY, data, size) != 0)
            break;
    }
    free(data);
}

/* A command split into its first word, and the rest after one space. */
struct cmd {
    const char *name;
    size_t name_len;
    const char *rest; /* NUL-terminated (the message copy is) */
    size_t rest_len;
};

static bool
cmd_is(const struct cmd *k, const char *name)
{
    return k->name_len == strlen(name) &&
           memcmp(k->name, name, k->name_len) == 0;
}

/* Splits s (NUL-terminated, len bytes) at its first space. */
static void
split_word(const char *s, size_t len, const char **word, size_t *wlen,
           const char **rest, size_t *rlen)
{
    const char *sp = memchr(s, ' ', len);

    *word = s;
    if (sp == NULL) {
        *wlen = len;
        *rest = s + len;
        *rlen = 0;
    } else {
        *wlen = (size_t)(sp - s);
        *rest = sp + 1;
        *rlen = len - *wlen - 1;
    }
}

static sock_ret
cmd_close(sock_conn *c, const struct cmd *k)
{
    const char *code_s, *reason;
    size_t code_len, reason_len;
    uint64_t code;

    split_word(k->rest, k->rest_len, &code_s, &code_len, &reason,
               &reason_len);
    if (!parse_u64(code_s, code_len, &code) || code > 65535)
        code = 0; /* invalid on purpose: the server must send 1011 */
    return sock_stop_code(c, (uint16_t)code, reason, reason_len);
}

static sock_ret
cmd_push(sock_conn *c, const struct cmd *k)
{
    const char *a, *b;
    size_t alen, blen;
    uint64_t count, size;

    split_word(k->rest, k->rest_len, &a, &alen, &b, &blen);
    if (!parse_u64(a, alen, &count) || !parse_u64(b, blen, &size)) {
        push_str(c, "unknown");
        return SOCK_CONTINUE;
    }
    push_binary_run(c, count, size);
    return SOCK_CONTINUE;
}

static sock_ret
cmd_after(sock_conn *c, const struct cmd *k)
{
    const char *a, *text;
    size_t alen, tlen;
    uint64_t ms;

    split_word(k->rest, k->rest_len, &a, &alen, &text, &tlen);
    if (!parse_u64(a, alen, &ms) || ms > UINT32_MAX) {
        push_str(c, "unknown");
        return SOCK_CONTINUE;
    }
    sock_send_after(c, (uint32_t)ms, T_TIMER, text, tlen);
    return SOCK_CONTINUE;
}

static sock_ret
cmd_send(sock_conn *c, const struct cmd *k)
{
    const char *a, *text;
    size_t alen, tlen;
    uint64_t id;

    split_word(k->rest, k->rest_len, &a, &alen, &text, &tlen);
    if (!parse_u64(a, alen, &id)) {
        push_str(c, "unknown");
        return SOCK_CONTINUE;
    }
    sock_send_info((sock_id)id, T_SEND, text, tlen);
    return SOCK_CONTINUE;
}

static sock_ret
cmd_pub_type(sock_conn *c, const struct cmd *k, uint32_t type)
{
    const char *topic, *text;
    size_t topic_len, tlen;
    char name[256];

    split_word(k->rest, k->rest_len, &topic, &topic_len, &text, &tlen);
    if (topic_len == 0 || topic_len >= sizeof(name)) {
        push_str(c, "unknown");
        return SOCK_CONTINUE;
    }
    memcpy(name, topic, topic_len);
    name[topic_len] = '\0';
    sock_publish(name, type, text, tlen);
    return SOCK_CONTINUE;
}

static sock_ret
cmd_pub(sock_conn *c, const struct cmd *k)
{
    return cmd_pub_type(c, k, T_PUB);
}

static sock_ret
cmd_pause(sock_conn *c, const struct cmd *k)
{
    uint64_t ms;

    if (!parse_u64(k->rest, k->rest_len, &ms) || ms > UINT32_MAX) {
        push_str(c, "unknown");
        return SOCK_CONTINUE;
    }
    sock_set_active(c, false);
    sock_send_after(c, (uint32_t)ms, T_RESUME, "", 0);
    return SOCK_CONTINUE;
}

/* Blocks the loop on purpose: what the master's heartbeat must catch. */
static sock_ret
cmd_hang(sock_conn *c, const struct cmd *k)
{
    uint64_t ms;
    struct timespec left;

    if (!parse_u64(k->rest, k->rest_len, &ms) || ms > 60000) {
        push_str(c, "unknown");
        return SOCK_CONTINUE;
    }
    left.tv_sec = (time_t)(ms / 1000);
    left.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    push_str(c, "woke");
    return SOCK_CONTINUE;
}

static sock_ret
cmd_simple(sock_conn *c, const struct cmd *k)
{
    char num[32];

    if (cmd_is(k, "echo")) {
        push_text(c, k->rest, k->rest_len);
    } else if (cmd_is(k, "id")) {
        snprintf(num, sizeof(num), "%" PRIu64, (uint64_t)sock_self(c));
        push_str(c, num);
    } else if (cmd_is(k, "self")) {
        sock_send_info(sock_self(c), T_SELF, k->rest, k->rest_len);
        push_str(c, "sent");
    } else if (cmd_is(k, "sub") || cmd_is(k, "unsub")) {
        int rc = cmd_is(k, "sub") ? sock_subscribe(c, k->rest)
                                  : sock_unsubscribe(c, k->rest);
        push_str(c, rc == 0 ? "ok" : "error");
    } else if (cmd_is(k, "subf") || cmd_is(k, "subfb")) {
        int rc = sock_subscribe_frames(c, k->rest, cmd_is(k, "subf")
                                                       ? SOCK_TEXT
                                                       : SOCK_BINARY);
        push_str(c, rc == 0 ? "ok" : "error");
    } else if (cmd_is(k, "bcast")) {
        sock_broadcast(T_BCAST, k->rest, k->rest_len);
    } else if (cmd_is(k, "subproto")) {
        const char *p = sock_subprotocol(c);
        push_str(c, p != NULL ? p : "none");
    } else if (cmd_is(k, "route")) {
        push_str(c, sock_route(c));
    } else if (cmd_is(k, "writable")) {
        push_str(c, sock_writable(c) ? "1" : "0");
    } else {
        push_str(c, "unknown");
    }
    return SOCK_CONTINUE;
}

/* Parses "WORD N" (WORD up to 255 bytes, copied NUL-terminated). */
static bool
parse_word_count(const struct cmd *k, char *word, size_t size, uint64_t *n)
{
    const char *a, *b;
    size_t alen, blen;

    split_word(k->rest, k->rest_len, &a, &alen, &b, &blen);
    if (alen == 0 || alen >= size || !parse_u64(b, blen, n) ||
        *n > 100000000u)
        return false;
    memcpy(word, a, alen);
    word[alen] = '\0';
    return true;
}

static void
push_sent(sock_conn *c, uint64_t n)
{
    char out[40];

    snprintf(out, sizeof(out), "sent:%" PRIu64, n);
    push_str(c, out);
}

/* sendn ID N | quietn ID N | pubn TOPIC N */
static sock_ret
cmd_many(sock_conn *c, const struct cmd *k, struct probe_state *st)
{
    char word[256], num[24];
    uint64_t n, id = 0;
    bool pub = cmd_is(k, "pubn"), quiet = cmd_is(k, "quietn");

    if (!parse_word_count(k, word, sizeof(word), &n) ||
        (!pub && !parse_u64(word, strlen(word), &id)) || st == NULL) {
        push_str(c, "unknown");
        return SOCK_CONTINUE;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (pub || quiet) {
            uint64_t seq = st->out_seq++;
            unsigned char b[8];

            for (int j = 0; j < 8; j++)
                b[j] = (unsigned char)(seq >> (8 * j));
            if (pub)
                sock_publish(word, T_COUNT, b, sizeof(b));
            else
                sock_send_info((sock_id)id, T_COUNT, b, sizeof(b));
        } else {
            int len = snprintf(num, sizeof(num), "%" PRIu64, i);

            sock_send_info((sock_id)id, T_SEND, num, (size_t)len);
        }
    }
    push_sent(c, n);
    return SOCK_CONTINUE;
}

static sock_ret
cmd_count(sock_conn *c, const struct cmd *k, struct probe_state *st)
{
    char out[160];

    if (st == NULL) {
        push_str(c, "unknown");
    } else if (k->rest_len == 5 && memcmp(k->rest, "reset", 5) == 0) {
        memset(st, 0, sizeof(*st));
        push_str(c, "ok");
    } else {
        snprintf(out, sizeof(out), "count:%" PRIu64 ":%" PRIu64 ":%" PRIu64
                 ":%" PRIu64 ":%" PRIu64, st->count, st->reordered, st->gaps,
                 st->first_ns, st->last_ns);
        push_str(c, out);
    }
    return SOCK_CONTINUE;
}

/* A T_COUNT info: count it, check its sequence number. */
static void
count_info(struct probe_state *st, const sock_info *i)
{
    uint64_t seq = 0;
    const unsigned char *b = i->data;

    if (st == NULL || i->len != 8)
        return;
    for (int j = 0; j < 8; j++)
        seq |= (uint64_t)b[j] << (8 * j);
    st->last_ns = mono_ns();
    if (st->count++ == 0) {
        st->first_ns = st->last_ns;
        st->next = seq; /* a sender's numbers start where it left off */
    }
    if (seq < st->next) /* duplicates too */
        st->reordered++;
    else if (seq > st->next)
        st->gaps++;
    if (seq >= st->next)
        st->next = seq + 1;
}

static sock_ret
run_command(sock_conn *c, const char *msg, size_t len, void **state)
{
    struct cmd k;

    split_word(msg, len, &k.name, &k.name_len, &k.rest, &k.rest_len);
    if (cmd_is(&k, "close"))
        return cmd_close(c, &k);
    if (cmd_is(&k, "stop"))
        return sock_stop(c);
    if (cmd_is(&k, "restart"))
        return sock_stop_restart(c);
    if (cmd_is(&k, "error"))
        return sock_stop_error(c, 42);
    if (cmd_is(&k, "garbage"))
        return (sock_ret)7;
    if (cmd_is(&k, "push"))
        return cmd_push(c, &k);
    if (cmd_is(&k, "after"))
        return cmd_after(c, &k);
    if (cmd_is(&k, "send"))
        return cmd_send(c, &k);
    if (cmd_is(&k, "pub"))
        return cmd_pub(c, &k);
    if (cmd_is(&k, "rpub"))
        return cmd_pub_type(c, &k, T_RAW_PUB);
    if (cmd_is(&k, "pause"))
        return cmd_pause(c, &k);
    if (cmd_is(&k, "hang"))
        return cmd_hang(c, &k);
    if (cmd_is(&k, "sendn") || cmd_is(&k, "quietn") || cmd_is(&k, "pubn"))
        return cmd_many(c, &k, *state);
    if (cmd_is(&k, "count"))
        return cmd_count(c, &k, *state);
    return cmd_simple(c, &k);
}

static sock_ret
probe_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    char *copy;
    sock_ret ret;

    if (m->opcode == SOCK_BINARY) {
        sock_push(c, SOCK_BINARY, m->data, m->len);
        return SOCK_CONTINUE;
    }
    /* A NUL-terminated copy, so topics and the rest can be used as strings. */
    copy = malloc(m->len + 1);
    if (copy == NULL)
        return sock_stop_error(c, -ENOMEM);
    if (m->len > 0)
        memcpy(copy, m->data, m->len);
    copy[m->len] = '\0';
    ret = run_command(c, copy, m->len, state);
    free(copy);
    return ret;
}

static sock_ret
probe_handle_control(sock_conn *c, const sock_msg *m, void **state)
{
    (void)state;
    if (m->opcode == SOCK_PING && m->len == 5 &&
        memcmp(m->data, "count", 5) == 0)
        push_str(c, "ping-seen");
    if (m->opcode == SOCK_PING && m->len > 6 &&
        memcmp(m->data, "pause ", 6) == 0) {
        struct cmd k = { "pause", 5, (const char *)m->data + 6, m->len - 6 };

        return cmd_pause(c, &k);
    }
    return SOCK_CONTINUE;
}

static sock_ret
probe_handle_info(sock_conn *c, const sock_info *i, void **state)
{
    char from[32];

    if (i->type == T_COUNT && (i->kind == SOCK_INFO_SEND ||
                               i->kind == SOCK_INFO_PUBLISH)) {
        count_info(*state, i);
        return SOCK_CONTINUE;
    }
    switch (i->kind) {
    case SOCK_INFO_TIMER:
        if (i->type == T_RESUME) {
            sock_set_active(c, true);
            push_str(c, "resumed");
        } else {
            push_joined(c, "timer", "", 0, i->data, i->len);
        }
        break;
    case SOCK_INFO_SEND:
        snprintf(from, sizeof(from), "%" PRIu64, (uint64_t)i->from);
        push_joined(c, "info:", from, strlen(from), i->data, i->len);
        break;
    case SOCK_INFO_PUBLISH:
        if (i->type == T_RAW_PUB) {
            sock_push(c, SOCK_TEXT, i->data, i->len);
            break;
        }
        push_joined(c, "topic:", i->topic != NULL ? i->topic : "",
                    i->topic != NULL ? strlen(i->topic) : 0, i->data,
                    i->len);
        break;
    case SOCK_INFO_BROADCAST:
        push_joined(c, "bcast", "", 0, i->data, i->len);
        break;
    default:
        break; /* drain: the server closes with 1012 later */
    }
    return SOCK_CONTINUE;
}

static void
probe_terminate(sock_conn *c, const sock_close_info *why, void *state)
{
    (void)c;
    (void)why;
    free(state);
}

const sock_app sock_app_v1 = {
    .abi = SOCK_ABI_VERSION,
    .name = "probe",
    .upgrade = probe_upgrade,
    .init = probe_init,
    .handle_in = probe_handle_in,
    .handle_control = probe_handle_control,
    .handle_info = probe_handle_info,
    .terminate = probe_terminate,
};
