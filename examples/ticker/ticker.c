/*
 * ticker.c: a timer-driven app. After the upgrade it pushes
 * "tick N" every interval (default 1000 ms) using sock_send_after, so no
 * libev or thread is needed in the app. A client may send "interval MS"
 * (10..60000) to change the pace, or "stop" to be closed with 1000.
 * Built in as `app = ticker`, and as a module (ticker.so).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sock.h"

#define TICK_INFO 1

struct ticker {
    unsigned interval_ms;
    unsigned long count;
};

static sock_ret
ticker_init(sock_conn *c, void *arg, void **state)
{
    struct ticker *t = calloc(1, sizeof(*t));

    (void)arg;
    if (t == NULL)
        return sock_stop_error(c, 12);
    t->interval_ms = 1000;
    *state = t;
    if (sock_send_after(c, t->interval_ms, TICK_INFO, NULL, 0) != 0)
        return sock_stop_error(c, 12);
    return SOCK_CONTINUE;
}

static sock_ret
ticker_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    struct ticker *t = *state;
    char cmd[32];
    unsigned ms;

    if (m->opcode != SOCK_TEXT || m->len >= sizeof(cmd))
        return sock_stop_code(c, 1003, "text commands only", 18);
    memcpy(cmd, m->data, m->len);
    cmd[m->len] = '\0';
    if (strcmp(cmd, "stop") == 0)
        return sock_stop(c);
    if (sscanf(cmd, "interval %u", &ms) == 1 && ms >= 10 && ms <= 60000) {
        t->interval_ms = ms;
        return SOCK_CONTINUE;
    }
    sock_push(c, SOCK_TEXT, "unknown command", 15);
    return SOCK_CONTINUE;
}

static sock_ret
ticker_handle_info(sock_conn *c, const sock_info *i, void **state)
{
    struct ticker *t = *state;
    char line[32];
    int n;

    if (i->kind != SOCK_INFO_TIMER || i->type != TICK_INFO)
        return SOCK_CONTINUE;
    n = snprintf(line, sizeof(line), "tick %lu", ++t->count);
    sock_push(c, SOCK_TEXT, line, (size_t)n);
    if (sock_send_after(c, t->interval_ms, TICK_INFO, NULL, 0) != 0)
        return sock_stop_error(c, 12);
    return SOCK_CONTINUE;
}

static void
ticker_terminate(sock_conn *c, const sock_close_info *why, void *state)
{
    (void)c;
    (void)why;
    free(state);
}

#ifdef SOCK_APP_MODULE
#define TICKER_APP sock_app_v1
#else
#define TICKER_APP sock_example_ticker
#endif

extern const sock_app TICKER_APP;
const sock_app TICKER_APP = {
    .abi = SOCK_ABI_VERSION,
    .name = "ticker",
    .init = ticker_init,
    .handle_in = ticker_handle_in,
    .handle_info = ticker_handle_info,
    .terminate = ticker_terminate,
};
