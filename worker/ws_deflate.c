/*
 * ws_deflate.c: permessage-deflate (RFC 7692). Parses the client's
 * Sec-WebSocket-Extensions offers (RFC 6455 §9.1 grammar) and answers the
 * first acceptable one; compresses messages with zlib's raw deflate and
 * inflates them under the route's size and ratio limits, counting every
 * byte zlib allocates. Frames, RSV1, UTF-8 and close codes are conn.c's.
 */
#include "ws_deflate.h"

#define ZLIB_CONST
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"

/* ---- Negotiation --------------------------------------------------------- */

#define EXT_NAME "permessage-deflate"
/* Longer values are never valid here; only their length is kept. */
#define VALUE_MAX 15

/* One permessage-deflate offer's parameters. */
struct offer {
    bool snct, cnct;  /* server_/client_no_context_takeover */
    int smwb;         /* server_max_window_bits: 0 absent, else 8..15 */
    int cmwb;         /* client_max_window_bits: 0 absent, -1 no value */
};

enum elem {
    ELEM_BAD,    /* ours with a bad parameter, or a syntax error */
    ELEM_OTHER,  /* a well-formed offer of another extension */
    ELEM_OK,
};

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 7230 §3.2.6 tchar. */
static bool
is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 7230 §3.2.6 qdtext, and what may follow a backslash. */
static bool
is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static bool
is_quoted_pair_char(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/* s[0..n) equals lower (lowercase ASCII), ignoring ASCII case. */
static bool
eq_ci(const char *s, size_t n, const char *lower)
{
    size_t i;

    for (i = 0; i < n && lower[i] != '\0'; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lower[i])
            return false;
    }
    return i == n && lower[i] == '\0';
}

static void
skip_ows(const char **s)
{
    while (is_ows(**s))
        (*s)++;
}

static size_t
token_len(const char *s)
{
    size_t n = 0;

    while (is_tchar((unsigned char)s[n]))
        n++;
    return n;
}

/*
 * A parameter value at *sp: a token, or a quoted-string unescaped into val.
 * *vlen gets the full length; val keeps the first VALUE_MAX bytes. A broken
 * quoted-string gives up the rest of the header (no way to resynchronise
 * inside quotes).
 */
static bool
read_value(const char **sp, char val[VALUE_MAX], size_t *vlen)
{
    const char *s = *sp;
    size_t n = 0;

    if (*s != '"') {
        n = token_len(s);
        memcpy(val, s, MIN(n, (size_t)VALUE_MAX));
        *vlen = n;
        *sp = s + n;
        return n > 0;
    }
    for (s++; *s != '"'; s++) {
        unsigned char c = (unsigned char)*s;
        bool escaped = c == '\\';

        if (escaped)
            c = (unsigned char)*++s;
        if (c == '\0' || !(escaped ? is_quoted_pair_char(c) : is_qdtext(c))) {
            *sp = s + strlen(s);
            return false;
        }
        if (n < VALUE_MAX)
            val[n] = (char)c;
        n++;
    }
    *vlen = n;
    *sp = s + 1;
    return true;
}

/* RFC 7692 §7.1.2: "8".."15", decimal without leading zeros; else 0. */
static int
window_value(const char *v, size_t n)
{
    if (n == 1 && (v[0] == '8' || v[0] == '9'))
        return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return 0;
}

/*
 * §7.1: records one parameter of our offer; false if it is unknown,
 * repeated or has a bad value, which declines the offer.
 */
static bool
apply_param(struct offer *o, const char *name, size_t nlen, const char *val,
            size_t vlen)
{
    if (eq_ci(name, nlen, "server_no_context_takeover")) {
        if (o->snct || val != NULL)
            return false;
        o->snct = true;
    } else if (eq_ci(name, nlen, "client_no_context_takeover")) {
        if (o->cnct || val != NULL)
            return false;
        o->cnct = true;
    } else if (eq_ci(name, nlen, "server_max_window_bits")) {
        if (o->smwb != 0 || val == NULL)
            return false;
        o->smwb = window_value(val, vlen);
        return o->smwb != 0;
    } else if (eq_ci(name, nlen, "client_max_window_bits")) {
        if (o->cmwb != 0)
            return false;
        o->cmwb = val == NULL ? -1 : window_value(val, vlen);
        return o->cmwb != 0;
    } else {
        return false;
    }
    return true;
}

/* Past the list element at s: to the next ',' outside quotes, or the end. */
static const char *
skip_element(const char *s)
{
    while (*s != '\0' && *s != ',') {
        if (*s++ != '"')
            continue;
        while (*s != '\0' && *s != '"') {
            if (*s == '\\' && s[1] != '\0')
                s++;
            s++;
        }
        if (*s == '"')
            s++;
    }
    return s;
}

/*
 * RFC 6455 §9.1: extension = token *( OWS ";" OWS token [ OWS "=" OWS
 * ( token / quoted-string ) ] ). Parses the element at *sp (not empty),
 * leaving *sp at the ',' or NUL after it.
 */
static enum elem
parse_offer(const char **sp, struct offer *o)
{
    const char *s = *sp;
    size_t n = token_len(s);
    bool ours = eq_ci(s, n, EXT_NAME), ok = true;

    memset(o, 0, sizeof(*o));
    if (n == 0)
        goto syntax;
    s += n;
    skip_ows(&s);
    while (*s == ';') {
        const char *name;
        char val[VALUE_MAX];
        size_t nlen, vlen = 0;
        bool has_val = false;

        s++;
        skip_ows(&s);
        name = s;
        nlen = token_len(s);
        if (nlen == 0)
            goto syntax;
        s += nlen;
        skip_ows(&s);
        if (*s == '=') {
            s++;
            skip_ows(&s);
            if (!read_value(&s, val, &vlen))
                goto syntax;
            has_val = true;
            skip_ows(&s);
        }
        if (ours && ok)
            ok = apply_param(o, name, nlen, has_val ? val : NULL, vlen);
    }
    if (*s != ',' && *s != '\0')
        goto syntax;
    *sp = s;
    return !ours ? ELEM_OTHER : ok ? ELEM_OK : ELEM_BAD;

syntax:
    *sp = skip_element(s);
    return ELEM_BAD;
}

/* The first acceptable offer in one header's list. */
static bool
find_offer(const char *s, struct offer *o)
{
    for (;;) {
        skip_ows(&s);
        if (*s == '\0')
            return false;
        if (*s == ',') {      /* RFC 7230 §7: empty elements are allowed */
            s++;
            continue;
        }
        if (parse_offer(&s, o) == ELEM_OK)
            return true;
    }
}

static int
clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The answer to an acceptable offer; see the header for the rules. */
static int
answer(const struct offer *off, const struct route_opts *o,
       struct ws_deflate_params *p, char *resp, size_t size)
{
    int s_cap = clamp(o->server_max_window_bits, 9, 15);
    int c_cap = clamp(o->client_max_window_bits, 8, 15);
    int s_bits = off->smwb != 0 ? MIN(off->smwb, s_cap) : s_cap;
    int c_bits = off->cmwb > 0 ? MIN(off->cmwb, c_cap) : c_cap;
    char s_param[48] = "", c_param[48] = "";
    int n;

    p->server_no_context_takeover = off->snct || o->server_no_context_takeover;
    p->client_no_context_takeover = off->cnct || o->client_no_context_takeover;
    p->server_max_window_bits = MAX(s_bits, 9);
    p->client_max_window_bits = off->cmwb != 0 ? c_bits : 15;
    if (off->smwb != 0 || s_bits < 15)
        snprintf(s_param, sizeof(s_param), "; server_max_window_bits=%d",
                 s_bits);
    if (off->cmwb > 0 || (off->cmwb < 0 && c_bits < 15))
        snprintf(c_param, sizeof(c_param), "; client_max_window_bits=%d",
                 c_bits);
    n = snprintf(resp, size, "%s%s%s%s%s", EXT_NAME,
                 p->server_no_context_takeover ?
                 "; server_no_context_takeover" : "",
                 p->client_no_context_takeover ?
                 "; client_no_context_takeover" : "",
                 s_param, c_param);
    if (n < 0 || (size_t)n >= size)
        return -ENOSPC;
    return 1;
}

int
ws_deflate_negotiate(const struct sock_request *r, const struct route_opts *o,
                     struct ws_deflate_params *p, char *resp, size_t size)
{
    static const char hdr[] = "sec-websocket-extensions";
    struct offer off;

    if (!o->compress)
        return 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        const struct ws_header *h = &r->headers[i];

        if (eq_ci(h->name, strlen(h->name), hdr) && find_offer(h->value, &off))
            return answer(&off, o, p, resp, size);
    }
    return 0;
}

/* ---- zlib memory --------------------------------------------------------- */

/* Each zlib allocation carries its size, so frees can be counted. */
union zhdr {
    size_t size;
    max_align_t align;
};

/* What every stream of the process (one worker) holds: the worker's
   max_deflate_memory (ws_deflate_total_memory). */
static size_t zmem_total;

size_t
ws_deflate_total_memory(void)
{
    return zmem_total;
}

/* zalloc with opaque = the owner's byte counter (a size_t). */
static voidpf
zcount_alloc(voidpf opaque, uInt items, uInt size)
{
    size_t *used = opaque;
    union zhdr *h;

    if (size != 0 && items > (SIZE_MAX - sizeof(*h)) / size)
        return Z_NULL;
    h = malloc(sizeof(*h) + (size_t)items * size);
    if (h == NULL)
        return Z_NULL;
    h->size = (size_t)items * size;
    *used += h->size;
    zmem_total += h->size;
    return h + 1;
}

static void
zcount_free(voidpf opaque, voidpf ptr)
{
    size_t *used = opaque;
    union zhdr *h;

    if (ptr == NULL)
        return;
    h = (union zhdr *)ptr - 1;
    *used -= h->size;
    zmem_total -= h->size;
    free(h);
}

/* A zeroed z_stream, itself counted, allocating through the counter. */
static z_stream *
zstream_new(size_t *used)
{
    z_stream *z = zcount_alloc(used, 1, sizeof(*z));

    if (z == NULL)
        return NULL;
    memset(z, 0, sizeof(*z));
    z->zalloc = zcount_alloc;
    z->zfree = zcount_free;
    z->opaque = used;
    return z;
}

/* ---- Output buffers ------------------------------------------------------ */

/*
 * Room for want more bytes in b. Grows by doubling, but not past limit
 * unless len + want itself is larger.
 */
static int
dbuf_reserve(struct ws_dbuf *b, size_t want, size_t limit)
{
    size_t need, cap;
    uint8_t *p;

    if (b->cap - b->len >= want)
        return 0;
    if (want > SIZE_MAX - b->len)
        return -ENOMEM;
    need = b->len + want;
    cap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
    cap = MAX(MIN(cap, limit), need);
    p = realloc(b->p, cap);
    if (p == NULL)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ---- Compression --------------------------------------------------------- */

/* zlib counts in uInt; longer inputs go in pieces. */
#define PIECE_MAX (1u << 30)

static const uint8_t sync_tail[4] = { 0x00, 0x00, 0xff, 0xff };

/* §7.2.3.6: the empty message is one empty stored block's first byte. */
static int
append_empty(struct ws_dbuf *out)
{
    if (dbuf_reserve(out, 1, SIZE_MAX) != 0)
        return -ENOMEM;
    out->p[out->len++] = 0x00;
    return 0;
}

/*
 * §7.2.1: deflates len > 0 bytes with Z_SYNC_FLUSH onto out, minus the
 * 00 00 FF FF that flush ends with. On ENOMEM out is as it was and z is
 * reset, since the client never sees what z consumed.
 */
static int
deflate_message(z_stream *z, const uint8_t *in, size_t len,
                struct ws_dbuf *out)
{
    size_t start = out->len;

    z->next_in = in;
    do {
        size_t piece = MIN(len, (size_t)PIECE_MAX);
        int flush = piece == len ? Z_SYNC_FLUSH : Z_NO_FLUSH;

        z->avail_in = (uInt)piece;
        len -= piece;
        do {
            /*
             * deflateBound plus the flush marker nearly always suffices, so
             * deflate rarely ends with avail_out == 0, which zlib answers
             * with a second marker on the next call.
             */
            size_t room;
            int rc;

            if (dbuf_reserve(out, deflateBound(z, z->avail_in) + 16,
                             SIZE_MAX) != 0)
                goto fail;
            room = MIN(out->cap - out->len, (size_t)UINT_MAX);
            z->next_out = out->p + out->len;
            z->avail_out = (uInt)room;
            rc = deflate(z, flush);
            out->len += room - z->avail_out;
            /* Z_STREAM_ERROR would be our bug; deflate allocates nothing. */
            assert(rc == Z_OK || rc == Z_BUF_ERROR);
            (void)rc;
        } while (z->avail_in > 0 || z->avail_out == 0);
    } while (len > 0);
    assert(out->len - start >= sizeof(sync_tail) &&
           memcmp(out->p + out->len - 4, sync_tail, 4) == 0);
    out->len -= sizeof(sync_tail);
    return 0;

fail:
    out->len = start;
    deflateReset(z);
    return -ENOMEM;
}

/* ---- Per-connection state ------------------------------------------------ */

enum rx_state {
    RX_IDLE,        /* between messages, or nothing received in this one */
    RX_BODY,        /* inside a DEFLATE stream */
    RX_STREAM_END,  /* a BFINAL block ended the input received so far */
};

struct ws_deflate {
    struct ws_deflate_params p;
    int level, mem_level;
    size_t mem;              /* bytes held through zcount_alloc */
    z_stream *tx, *rx;       /* NULL until first needed */
    uint64_t rx_in, rx_out;  /* this message: received, inflated */
    enum rx_state rx_state;
    int rx_err;              /* sticky: the inflate side is unusable */
};

static bool
args_valid(int level, int mem_level)
{
    return level >= Z_DEFAULT_COMPRESSION && level <= 9 && mem_level >= 1 &&
           mem_level <= MAX_MEM_LEVEL;
}

struct ws_deflate *
ws_deflate_new(const struct ws_deflate_params *p, int level, int mem_level)
{
    struct ws_deflate *d;

    if (!args_valid(level, mem_level))
        return NULL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->p = *p;
    /* zlib deflates with 9..15 and inflates with 8..15 (see negotiate). */
    d->p.server_max_window_bits = clamp(p->server_max_window_bits, 9, 15);
    d->p.client_max_window_bits = clamp(p->client_max_window_bits, 8, 15);
    d->level = level;
    d->mem_level = mem_level;
    return d;
}

static void
tx_end(struct ws_deflate *d)
{
    if (d->tx == NULL)
        return;
    deflateEnd(d->tx);
    zcount_free(&d->mem, d->tx);
    d->tx = NULL;
}

static void
rx_end(struct ws_deflate *d)
{
    if (d->rx == NULL)
        return;
    inflateEnd(d->rx);
    zcount_free(&d->mem, d->rx);
    d->rx = NULL;
}

void
ws_deflate_free(struct ws_deflate *d)
{
    if (d == NULL)
        return;
    tx_end(d);
    rx_end(d);
    free(d);
}

size_t
ws_deflate_memory(const struct ws_deflate *d)
{
    return d->mem;
}

void
ws_deflate_trim(struct ws_deflate *d)
{
    if (d->p.server_no_context_takeover)
        tx_end(d);
    if (d->p.client_no_context_takeover && d->rx_state == RX_IDLE &&
        d->rx_err == 0)
        rx_end(d);
}

/* ---- Compressing --------------------------------------------------------- */

static int
tx_start(struct ws_deflate *d)
{
    z_stream *z;

    if (d->tx != NULL)
        return 0;
    z = zstream_new(&d->mem);
    if (z == NULL)
        return -ENOMEM;
    /* Arguments were checked in new: only allocation can fail. */
    if (deflateInit2(z, d->level, Z_DEFLATED, -d->p.server_max_window_bits,
                     d->mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        zcount_free(&d->mem, z);
        return -ENOMEM;
    }
    d->tx = z;
    return 0;
}

int
ws_deflate_compress(struct ws_deflate *d, const uint8_t *in, size_t len,
                    struct ws_dbuf *out)
{
    int rc;

    /* Not through zlib: a repeated sync flush with no input emits nothing. */
    if (len == 0)
        return append_empty(out);
    rc = tx_start(d);
    if (rc != 0)
        return rc;
    rc = deflate_message(d->tx, in, len, out);
    if (rc == 0 && d->p.server_no_context_takeover)
        deflateReset(d->tx);
    return rc;
}

void
ws_deflate_tx_reset(struct ws_deflate *d)
{
    if (d->tx != NULL)
        deflateReset(d->tx);
}

/* ---- Inflating ----------------------------------------------------------- */

/* Output is made in steps of this much at most, then limits are checked. */
#define INFLATE_STEP (16 * 1024)

static int
rx_start(struct ws_deflate *d)
{
    z_stream *z;

    if (d->rx != NULL)
        return 0;
    z = zstream_new(&d->mem);
    if (z == NULL)
        return -ENOMEM;
    if (inflateInit2(z, -d->p.client_max_window_bits) != Z_OK) {
        zcount_free(&d->mem, z);
        return -ENOMEM;
    }
    d->rx = z;
    return 0;
}

/* Bytes this message may still add to out before passing a limit. */
static uint64_t
rx_allowance(const struct ws_deflate *d, const struct ws_dbuf *out,
             uint64_t max_out, uint32_t ratio)
{
    uint64_t left = out->len < max_out ? max_out - out->len : 0;

    if (ratio != 0) {
        uint64_t cap = d->rx_in > UINT64_MAX / ratio ? UINT64_MAX :
                       d->rx_in * ratio;

        cap = MAX(cap, (uint64_t)WS_DEFLATE_RATIO_FLOOR);
        left = MIN(left, cap > d->rx_out ? cap - d->rx_out : 0);
    }
    return left;
}

/*
 * Inflates all of z's avail_in. Output goes in steps no larger than what
 * the limits still allow plus one byte, so a bomb costs at most one step
 * past the limit, and the limit is found at its first byte over.
 */
static int
inflate_avail(struct ws_deflate *d, struct ws_dbuf *out, uint64_t max_out,
              uint32_t ratio)
{
    z_stream *z = d->rx;
    size_t limit = max_out < SIZE_MAX ? (size_t)max_out + 1 : SIZE_MAX;

    for (;;) {
        uint64_t allow = rx_allowance(d, out, max_out, ratio);
        size_t want = allow < INFLATE_STEP ? (size_t)allow + 1 : INFLATE_STEP;
        size_t room, made;
        int rc;

        if (dbuf_reserve(out, want, limit) != 0)
            return -ENOMEM;
        room = out->cap - out->len;
        if (allow < room)
            room = (size_t)allow + 1;
        room = MIN(room, (size_t)UINT_MAX);
        z->next_out = out->p + out->len;
        z->avail_out = (uInt)room;
        /* Z_BLOCK: stop at block ends, so data_type tells boundaries. */
        rc = inflate(z, Z_BLOCK);
        made = room - z->avail_out;
        out->len += made;
        d->rx_out += made;
        if (made > allow)
            return -EMSGSIZE;
        if (rc == Z_MEM_ERROR)
            return -ENOMEM;
        if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
            return -EBADMSG;   /* Z_DATA_ERROR; Z_NEED_DICT (not raw) */
        /* data_type 64 + 128: stopped after the last block (BFINAL). */
        if (rc == Z_STREAM_END || (z->data_type & 192) == 192) {
            /*
             * §7.2.3.4: a BFINAL block may end a flush; what follows is a
             * new stream over the same window. Not inflateReset, which
             * would drop the window (exported since zlib 1.2.5.2). The
             * bits it drops are the final block's padding.
             */
            inflateResetKeep(z);
            d->rx_state = RX_STREAM_END;
        } else {
            d->rx_state = RX_BODY;
        }
        if (z->avail_in == 0 && z->avail_out > 0)
            return 0;
    }
}

static int
inflate_bytes(struct ws_deflate *d, const uint8_t *in, size_t len,
              struct ws_dbuf *out, uint64_t max_out, uint32_t ratio)
{
    while (len > 0) {
        size_t piece = MIN(len, (size_t)PIECE_MAX);
        int rc;

        d->rx->next_in = in;
        d->rx->avail_in = (uInt)piece;
        in += piece;
        len -= piece;
        rc = inflate_avail(d, out, max_out, ratio);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * §7.2.2: the message ends with the 00 00 FF FF its sender removed, which
 * must complete an empty stored block: anything else is a truncated or
 * corrupt message. Skipped when a BFINAL block ended the payload, and for
 * a payload of zero bytes, which some senders use for the empty message.
 */
static int
rx_finish(struct ws_deflate *d, struct ws_dbuf *out, uint64_t max_out,
          uint32_t ratio)
{
    if (d->rx_state == RX_BODY) {
        int rc = inflate_bytes(d, sync_tail, sizeof(sync_tail), out, max_out,
                               ratio);

        if (rc != 0)
            return rc;
        /* data_type 128: inflate stopped at a block boundary. */
        if (d->rx_state == RX_BODY && (d->rx->data_type & 128) == 0)
            return -EBADMSG;
    }
    if (d->rx != NULL && d->p.client_no_context_takeover)
        inflateReset(d->rx);
    d->rx_in = 0;
    d->rx_out = 0;
    d->rx_state = RX_IDLE;
    return 0;
}

/*
 * Under client_no_context_takeover a message that arrives whole needs no
 * stream of its own: it borrows the process's stream for its window size
 * and leaves it reset. Connections then hold no inflate state (about 40
 * KiB each) between messages, and the one stream in use stays in the
 * cache. A worker is one thread; the streams live as long as it does.
 */
static z_stream *rx_pool[16]; /* by window bits, 8..15 */
static size_t rx_pool_mem;

static z_stream *
rx_pool_get(int window_bits)
{
    z_stream *z = rx_pool[window_bits];

    if (z != NULL)
        return z;
    z = zstream_new(&rx_pool_mem);
    if (z == NULL)
        return NULL;
    if (inflateInit2(z, -window_bits) != Z_OK) {
        zcount_free(&rx_pool_mem, z);
        return NULL;
    }
    rx_pool[window_bits] = z;
    return z;
}

/* A whole message with the borrowed stream z; z is left reset. */
static int
inflate_borrowed(struct ws_deflate *d, z_stream *z, const uint8_t *in,
                 size_t len, struct ws_dbuf *out, uint64_t max_out,
                 uint32_t ratio)
{
    int rc;

    d->rx = z;
    d->rx_in = len;
    rc = inflate_bytes(d, in, len, out, max_out, ratio);
    if (rc == 0)
        rc = rx_finish(d, out, max_out, ratio); /* resets z */
    else
        inflateReset(z);
    d->rx = NULL;
    d->rx_in = d->rx_out = 0;
    d->rx_state = RX_IDLE;
    return rc;
}

int
ws_deflate_inflate(struct ws_deflate *d, const uint8_t *in, size_t len,
                   bool fin, struct ws_dbuf *out, uint64_t max_out,
                   uint32_t ratio)
{
    int rc = d->rx_err;
    z_stream *z;

    if (rc == 0 && fin && len > 0 && d->p.client_no_context_takeover &&
        d->rx == NULL && d->rx_state == RX_IDLE && d->rx_in == 0 &&
        (z = rx_pool_get(d->p.client_max_window_bits)) != NULL) {
        rc = inflate_borrowed(d, z, in, len, out, max_out, ratio);
        d->rx_err = rc;
        return rc;
    }
    if (rc == 0 && len > 0) {
        rc = rx_start(d);
        d->rx_in += len;
        if (rc == 0)
            rc = inflate_bytes(d, in, len, out, max_out, ratio);
    }
    if (rc == 0 && fin)
        rc = rx_finish(d, out, max_out, ratio);
    /* Under client_no_context_takeover nothing carries over: a message
       that came in fragments gives its stream back too, so no connection
       holds inflate state between messages (max_deflate_memory). */
    if (rc == 0 && fin && d->p.client_no_context_takeover)
        rx_end(d);
    d->rx_err = rc;
    return rc;
}

/* ---- Shared compressor --------------------------------------------------- */

struct ws_deflate_shared {
    size_t mem;
    z_stream *z;
};

struct ws_deflate_shared *
ws_deflate_shared_new(int level, int mem_level, int window_bits)
{
    struct ws_deflate_shared *s;

    if (!args_valid(level, mem_level) || window_bits < 8 || window_bits > 15)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->z = zstream_new(&s->mem);
    if (s->z == NULL)
        goto fail_free;
    if (deflateInit2(s->z, level, Z_DEFLATED, -MAX(window_bits, 9),
                     mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
        goto fail_free_stream;
    return s;

fail_free_stream:
    zcount_free(&s->mem, s->z);
fail_free:
    free(s);
    return NULL;
}

int
ws_deflate_shared_compress(struct ws_deflate_shared *s, const uint8_t *in,
                           size_t len, struct ws_dbuf *out)
{
    int rc;

    if (len == 0)
        return append_empty(out);
    rc = deflate_message(s->z, in, len, out);
    deflateReset(s->z); /* after a failure too: the next message is new */
    return rc;
}

void
ws_deflate_shared_free(struct ws_deflate_shared *s)
{
    if (s == NULL)
        return;
    deflateEnd(s->z);
    zcount_free(&s->mem, s->z);
    free(s);
}
