/*
 * crashy.c: an app module that kills the process loading it, for the
 * master's crash-loop tests (tests/integration/test_master_lifecycle.py).
 * Built as BUILD/crashy.so.
 *
 * Its constructor runs when the module is loaded (in a worker, after
 * fork) and calls _exit(3) when
 *   - the environment has SOCK_CRASHY=1, or
 *   - SOCK_CRASHY_FILE names a file that exists (so a test can make only
 *     the workers started from now on crash).
 * Otherwise it is a plain echo app.
 *
 * sockd's master never loads app modules, so the master must survive
 * this module; `sockd -t` does load it and dies the same way.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

__attribute__((constructor)) static void
crashy_at_load(void)
{
    const char *flag = getenv("SOCK_CRASHY");
    const char *file = getenv("SOCK_CRASHY_FILE");

    if (flag != NULL && strcmp(flag, "1") == 0)
        _exit(3);
    if (file != NULL && file[0] != '\0' && access(file, F_OK) == 0)
        _exit(3);
}

static sock_ret
crashy_handle_in(sock_conn *c, const sock_msg *m, void **state)
{
    (void)state;
    sock_push(c, m->opcode, m->data, m->len);
    return SOCK_CONTINUE;
}

const sock_app sock_app_v1 = {
    .abi = SOCK_ABI_VERSION,
    .name = "crashy",
    .handle_in = crashy_handle_in,
};
