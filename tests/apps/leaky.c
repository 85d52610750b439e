/*
 * leaky.c: an app module that leaks on request, to prove that a worker's
 * exit runs LeakSanitizer in the sanitizer build
 * (tests/integration/test_hardening_ops.py). Built as BUILD/leaky.so.
 *
 * The text message "leak" allocates LEAKY_BLOCKS blocks, drops every
 * pointer to them and pushes "leaked"; anything else is echoed. Many
 * blocks, so that a stale copy of a pointer left on the stack cannot hide
 * them all from the check.
 */
#include <stdlib.h>
#include <string.h>

#include "sock.h"

#define LEAKY_BLOCKS 64

static void *volatile leaky_sink;

/* Not static, and never inlined: its name is in the leak report. */
__attribute__((noinline)) void
leaky_leak_on_purpose(void)
{
    for (size_t i = 0; i < LEAKY_BLOCKS; i++) {
        leaky_sink = malloc(1000 + i);
        if (leaky_sink != NULL)
            memset(leaky_sink, 0x5a, 1000 + i);
    }
    leaky_sink = NULL;
}

static sock_ret
leaky_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    (void)state;
    if (m->opcode == SOCK_TEXT && m->len == 4 &&
        memcmp(m->data, "leak", 4) == 0) {
        leaky_leak_on_purpose();
        sock_push(c, SOCK_TEXT, "leaked", 6);
        return SOCK_CONTINUE;
    }
    sock_push(c, m->opcode, m->data, m->len);
    return SOCK_CONTINUE;
}

const sock_app sock_app_v1 = {
    .abi = SOCK_ABI_VERSION,
    .name = "leaky",
    .handle_in = leaky_handle_in,
};
