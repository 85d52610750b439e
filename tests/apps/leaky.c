/*
 * leaky.c: an app module that leaks on request, to prove that a worker's
 * exit runs LeakSanitizer in the sanitizer build
 * (tests/integration/test_hardening_ops.py). Built as BUILD/leaky.so.
 *
 * The text message "leak" allocates LEAKY_BLOCKS blocks, drops every
 * pointer to them and pushes "leaked". Many blocks, so that a stale copy
 * of a pointer left on the stack cannot hide them all from the check.
 *
 * It also runs its worker out of file descriptors, for the EMFILE tests:
 * "hogfds" opens /dev/null until open fails and pushes "hogged N";
 * "unhog" closes them again and pushes "unhogged N". Anything else is
 * echoed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define LEAKY_MAX_FDS 65536

static int leaky_fds[LEAKY_MAX_FDS];
static int leaky_nfds;

static void
push_count(sock_conn *c, const char *what, int n)
{
    char buf[64];
    int len = snprintf(buf, sizeof(buf), "%s %d", what, n);

    sock_push(c, SOCK_TEXT, buf, (size_t)len);
}

static bool
is_cmd(const sock_msg *m, const char *cmd)
{
    return m->opcode == SOCK_TEXT && m->len == strlen(cmd) &&
           memcmp(m->data, cmd, m->len) == 0;
}

static sock_ret
leaky_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    (void)state;
    if (is_cmd(m, "leak")) {
        leaky_leak_on_purpose();
        sock_push(c, SOCK_TEXT, "leaked", 6);
        return SOCK_CONTINUE;
    }
    if (is_cmd(m, "hogfds")) {
        int fd, n = 0;

        while (leaky_nfds < LEAKY_MAX_FDS &&
               (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
            leaky_fds[leaky_nfds++] = fd;
            n++;
        }
        push_count(c, "hogged", n);
        return SOCK_CONTINUE;
    }
    if (is_cmd(m, "unhog")) {
        int n = leaky_nfds;

        while (leaky_nfds > 0)
            close(leaky_fds[--leaky_nfds]);
        push_count(c, "unhogged", n);
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
