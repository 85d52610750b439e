/*
 * fuzz_handshake.c: libFuzzer harness for the HTTP side of the upgrade:
 * ws_head_len, ws_head_check_prefix, ws_request_parse, ws_request_validate
 * and the request getters on arbitrary bytes. Checks that a head length
 * never exceeds the input, that parse and validate only answer with known
 * statuses, and that no prefix of a head the parser takes is refused.
 * Built by CMake with -DSOCK_FUZZ=ON (clang), as tools/fuzz does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_handshake.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sock_request r;
    const char *why;
    char buf[64];
    ssize_t hl = ws_head_len(data, size, 8192);
    int status;

    if (hl > (ssize_t)size)
        abort();
    if (hl <= 0) {
        status = ws_head_check_prefix(data, size, 64);
        if (status != 0 && status != 400 && status != 431 && status != 505)
            abort();
        return 0;
    }
    status = ws_request_parse(&r, data, (size_t)hl, 64);
    /* Any split of an accepted head must wait, not be refused. */
    if (status == 0 && (ws_head_check_prefix(data, (size_t)hl - 1, 64) != 0 ||
                        ws_head_check_prefix(data, (size_t)hl / 2, 64) != 0))
        abort();
    r.peer = "127.0.0.1:1";
    r.tls = false;
    if (status == 0) {
        status = ws_request_validate(&r, &why);
        if (status != 0 && status != 400 && status != 426)
            abort();
        sock_request_query_param(&r, "room", buf, sizeof(buf));
        for (size_t i = 0; i < sock_request_header_count(&r); i++) {
            const char *n, *v;

            if (!sock_request_header_at(&r, i, &n, &v) || strlen(n) == 0)
                abort();
        }
    } else if (status != 400 && status != 431 && status != 505 &&
               status != 500) {
        abort();
    }
    ws_request_destroy(&r);
    return 0;
}
