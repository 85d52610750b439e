/*
 * fuzz_ws_session.c: libFuzzer harness for worker/ws_session.c, the receive
 * state machine. The first byte picks the options (deflate, closing, small
 * limits), the rest is a stream of client frames. Checks contracts, not
 * just "no crash": every event in range (text is UTF-8, sizes within the
 * limits, close codes valid), progress on every call, all input used after
 * an error, and the same events whether the stream comes whole, split in
 * two at a point the input picks, or a byte at a time.
 * Built by CMake with -DSOCK_FUZZ=ON (clang), as tools/fuzz does.
 */
#include "ws_session.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "utf8.h"
#include "ws_deflate.h"

static uint64_t
mix(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void
check_event(const struct ws_event *ev, const struct ws_session_opts *o)
{
    switch (ev->type) {
    case WS_EV_MESSAGE:
        CHECK(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
        CHECK(ev->len <= o->max_message);
        CHECK(ev->opcode != WS_OP_TEXT ||
              utf8_validate(UTF8_ACCEPT, ev->data, ev->len) == UTF8_ACCEPT);
        break;
    case WS_EV_PING:
    case WS_EV_PONG:
        CHECK(ev->len <= WS_MAX_CONTROL);
        CHECK(!o->closing);
        break;
    case WS_EV_CLOSE:
        CHECK(ev->code == 1005 || ws_close_code_is_valid(ev->code));
        CHECK(ev->len <= WS_MAX_CONTROL - 2);
        CHECK(utf8_validate(UTF8_ACCEPT, ev->data, ev->len) == UTF8_ACCEPT);
        break;
    case WS_EV_ERROR:
        CHECK(ev->code == 1002 || ev->code == 1007 || ev->code == 1009 ||
              ev->code == 1011 || (ev->code == 0 &&
                                   ev->err == WS_ERR_NOMEM));
        break;
    case WS_EV_NONE:
        break;
    }
}

/* Feeds data in pieces of at most step bytes after a first piece of cut;
   returns a digest of the events. */
static uint64_t
run(const uint8_t *data, size_t size, uint8_t cfg, size_t cut, size_t step)
{
    static const struct ws_deflate_params p = {
        .server_max_window_bits = 15, .client_max_window_bits = 15,
    };
    struct ws_session s;
    struct ws_session_opts o = {
        .max_frame = cfg & 4 ? 64 : 1 << 20,
        .max_message = cfg & 8 ? 100 : 1 << 20,
        .max_inflate_ratio = cfg & 16 ? 10 : 0,
        .deflate = cfg & 1 ? ws_deflate_new(&p, -1, 8) : NULL,
        .closing = (cfg & 2) != 0,
    };
    uint64_t h = 14695981039346656037ull;
    size_t start = 0;

    memset(&s, 0, sizeof(s));
    while (start < size) {
        size_t end = start == 0 && cut > 0 ? cut : start + step;
        uint8_t *piece;
        size_t n, off = 0;

        end = end > size ? size : end;
        n = end - start;
        piece = malloc(n);
        CHECK(piece != NULL);
        memcpy(piece, data + start, n);
        while (off < n) {
            struct ws_event ev;
            size_t r = ws_session_feed(&s, &o, piece + off, n - off, &ev);

            CHECK(r <= n - off);
            CHECK(r > 0 || ev.type != WS_EV_NONE);
            check_event(&ev, &o);
            off += r;
            /* Where an inflated message fails may move with the pieces
               (1007 for its UTF-8 or 1009 for its size before the
               inflater sees corrupt data): only that it fails counts. */
            if (ev.type == WS_EV_ERROR && o.deflate != NULL) {
                h = mix(h, &ev.type, sizeof(ev.type));
            } else if (ev.type != WS_EV_NONE) {
                h = mix(h, &ev.type, sizeof(ev.type));
                h = mix(h, &ev.opcode, sizeof(ev.opcode));
                h = mix(h, &ev.code, sizeof(ev.code));
                h = mix(h, &ev.err, sizeof(ev.err));
                h = mix(h, &ev.len, sizeof(ev.len));
                h = mix(h, ev.data, ev.len);
            }
            ws_session_release(&s);
            if (ev.type == WS_EV_ERROR) {
                CHECK(off == n);
                free(piece);
                goto out;
            }
            if (!ws_session_in_msg(&s) && s.rx == WS_RX_HEADER)
                CHECK(ws_session_held(&s) == 0);
        }
        free(piece);
        start = end;
    }
out:
    ws_session_free(&s);
    ws_deflate_free(o.deflate);
    return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t cfg;
    uint64_t whole;

    if (size < 2)
        return 0;
    cfg = data[0];
    data++;
    size--;
    whole = run(data, size, cfg, 0, size);
    CHECK(run(data, size, cfg, (size_t)data[0] % size + 1, size) == whole);
    if (size <= 4096)
        CHECK(run(data, size, cfg, 0, 1) == whole);
    return 0;
}
