/*
 * chat.c: rooms over topics. A client connects to
 * /chat?room=ROOM&nick=NICK (each 1-32 of [A-Za-z0-9_-], else 400); every
 * text message it sends reaches every member of the room, on any worker,
 * as {"from":NICK,"text":TEXT}; joins and leaves are announced as
 * {"event":"join","nick":NICK} and {"event":"leave","nick":NICK}. The JSON
 * is built once by the sender and shared by every delivery.
 * Messages from outside (admin POST /publish?topic=chat:ROOM or
 * `sockctl publish chat:ROOM MESSAGE`: type 0, from id 0) reach the room
 * too: a JSON object as it is, any other text as
 * {"from":"admin","text":TEXT}; invalid UTF-8 is dropped.
 * Built in as `app = chat`, and as a module (chat.so).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sock.h"

#define CHAT_NAME_MAX 32
#define CHAT_MSG 1

struct chat {
    char topic[6 + CHAT_NAME_MAX + 1]; /* "chat:" ROOM */
    char nick[CHAT_NAME_MAX + 1];
};

static bool
name_ok(const char *s, int len)
{
    if (len < 1 || len > CHAT_NAME_MAX)
        return false;
    for (int i = 0; i < len; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static int
chat_upgrade(const sock_request *r, sock_upgrade *u)
{
    struct chat *ch = calloc(1, sizeof(*ch));
    char room[CHAT_NAME_MAX + 1];
    int rl, nl;

    if (ch == NULL)
        return 503;
    rl = sock_request_query_param(r, "room", room, sizeof(room));
    nl = sock_request_query_param(r, "nick", ch->nick, sizeof(ch->nick));
    if (!name_ok(room, rl) || !name_ok(ch->nick, nl)) {
        free(ch);
        sock_upgrade_refuse_body(u, "room and nick must each be 1-32 "
                                    "letters, digits, '-' or '_'\n");
        return 400;
    }
    snprintf(ch->topic, sizeof(ch->topic), "chat:%s", room);
    sock_upgrade_set_arg(u, ch, free);
    return 0;
}

/* Appends s as a JSON string body (RFC 8259 escapes); returns the length
   written, or 0 if out is too small. */
static size_t
json_escape(char *out, size_t size, const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];

        if (ch == '"')
            esc = "\\\"";
        else if (ch == '\\')
            esc = "\\\\";
        else if (ch == '\n')
            esc = "\\n";
        else if (ch == '\r')
            esc = "\\r";
        else if (ch == '\t')
            esc = "\\t";
        else if (ch < 0x20) {
            snprintf(u, sizeof(u), "\\u%04x", ch);
            esc = u;
        }
        if (esc != NULL) {
            size_t n = strlen(esc);

            if (o + n >= size)
                return 0;
            memcpy(out + o, esc, n);
            o += n;
        } else {
            if (o + 1 >= size)
                return 0;
            out[o++] = (char)ch; /* UTF-8 passes through: it is valid */
        }
    }
    return o;
}

static void
announce(const struct chat *ch, const char *event)
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "{\"event\":\"%s\",\"nick\":\"%s\"}",
                     event, ch->nick);

    sock_publish(ch->topic, CHAT_MSG, msg, (size_t)n);
}

static sock_ret
chat_init(sock_conn *c, void *arg, void **state)
{
    struct chat *ch = arg;

    if (ch == NULL) /* no upgrade hook ran: not reachable through sockd */
        return sock_stop_code(c, 1008, "use /chat?room=R&nick=N", 23);
    *state = ch;
    if (sock_subscribe(c, ch->topic) != 0)
        return sock_stop_error(c, 12);
    announce(ch, "join");
    return SOCK_CONTINUE;
}

static sock_ret
chat_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    struct chat *ch = *state;
    size_t cap = 64 + CHAT_NAME_MAX + m->len * 6, n, e;
    char *json;

    if (m->opcode != SOCK_TEXT)
        return sock_stop_code(c, 1003, "text only", 9);
    json = malloc(cap);
    if (json == NULL)
        return sock_stop_error(c, 12);
    n = (size_t)snprintf(json, cap, "{\"from\":\"%s\",\"text\":\"", ch->nick);
    e = json_escape(json + n, cap - n, m->data, m->len);
    n += e;
    memcpy(json + n, "\"}", 2);
    n += 2;
    sock_publish(ch->topic, CHAT_MSG, json, n);
    free(json);
    return SOCK_CONTINUE;
}

/* An operator's message (type 0 from id 0): shown as chat text. */
static void
push_outside(sock_conn *c, const sock_info *i)
{
    static const char head[] = "{\"from\":\"admin\",\"text\":\"";
    size_t cap = sizeof(head) + i->len * 6 + 2, n = sizeof(head) - 1;
    char *json;

    if (!sock_utf8_valid(i->data, i->len))
        return; /* a text frame must be UTF-8 (RFC 6455 §5.6) */
    if (i->len > 0 && ((const char *)i->data)[0] == '{') {
        sock_push(c, SOCK_TEXT, i->data, i->len); /* already JSON */
        return;
    }
    json = malloc(cap);
    if (json == NULL)
        return;
    memcpy(json, head, n);
    n += json_escape(json + n, cap - n, i->data, i->len);
    memcpy(json + n, "\"}", 2);
    sock_push(c, SOCK_TEXT, json, n + 2);
    free(json);
}

static sock_ret
chat_handle_info(sock_conn *c, const sock_info *i, void **state)
{
    (void)state;
    if (i->kind != SOCK_INFO_PUBLISH)
        return SOCK_CONTINUE;
    if (i->type == CHAT_MSG)
        sock_push(c, SOCK_TEXT, i->data, i->len);
    else if (i->type == 0 && i->from == 0)
        push_outside(c, i);
    return SOCK_CONTINUE;
}

static void
chat_terminate(sock_conn *c, const sock_close_info *why, void *state)
{
    struct chat *ch = state;

    (void)c;
    (void)why;
    if (ch == NULL)
        return;
    announce(ch, "leave"); /* a host call: legal after the connection ends */
    free(ch);
}

#ifdef SOCK_APP_MODULE
#define CHAT_APP sock_app_v1
#else
#define CHAT_APP sock_example_chat
#endif

extern const sock_app CHAT_APP;
const sock_app CHAT_APP = {
    .abi = SOCK_ABI_VERSION,
    .name = "chat",
    .upgrade = chat_upgrade,
    .init = chat_init,
    .handle_in = chat_handle_in,
    .handle_info = chat_handle_info,
    .terminate = chat_terminate,
};
