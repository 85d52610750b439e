/*
 * echo.c: the smallest Sock app: every text or binary message goes back
 * to its sender unchanged. Built into sockd as `app = echo`, and as a
 * module (echo.so) to show the module entry point.
 */
#include "sock.h"

static sock_ret
echo_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    (void)state;
    /* A failed push (queue over its hard limit) already closes with 1008. */
    sock_push(c, m->opcode, m->data, m->len);
    return SOCK_CONTINUE;
}

#ifdef SOCK_APP_MODULE
#define ECHO_APP sock_app_v1
#else
#define ECHO_APP sock_example_echo
#endif

extern const sock_app ECHO_APP;
const sock_app ECHO_APP = {
    .abi = SOCK_ABI_VERSION,
    .name = "echo",
    .handle_in = echo_handle_in,
};
