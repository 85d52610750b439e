/*
 * wsl_deflate.c: permessage-deflate for wsload (see wsl_deflate.h).
 *
 * zlib is loaded with dlopen: wsload's link line lives in CMakeLists.txt,
 * outside bench/, and links only libev, libcrypto and libm. The nine zlib
 * calls go through a table in struct wsl_deflate; if CMakeLists.txt links
 * ZLIB::ZLIB into wsload one day, zfn_load can take their addresses
 * directly instead.
 */
#include "wsl_deflate.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "wsl_common.h"

#define OBUF_SIZE (64u * 1024)  /* inflated bytes handed out at a time */
#define WINDOW_BITS 15          /* we inflate anything the server picks */

struct zfn {
    void *lib;
    int (*deflate_init2)(z_streamp, int, int, int, int, int, const char *,
                         int);
    int (*deflate)(z_streamp, int);
    int (*deflate_reset)(z_streamp);
    int (*deflate_end)(z_streamp);
    uLong (*deflate_bound)(z_streamp, uLong);
    int (*inflate_init2)(z_streamp, int, const char *, int);
    int (*inflate)(z_streamp, int);
    int (*inflate_reset)(z_streamp);
    int (*inflate_end)(z_streamp);
};

struct wsl_inflater {
    z_stream zs;
    struct wsl_inflater *next;  /* in the pool */
    uint64_t off;               /* inflated bytes of this message so far */
};

struct wsl_deflate {
    struct zfn z;
    z_stream dz;
    bool dz_ok;
    uint8_t *dbuf;              /* the last compressed message */
    size_t dcap;
    uint8_t *obuf;              /* inflate output */
    struct wsl_inflater *pool;
};

/* Looks up one symbol; false if missing. */
static bool
zfn_sym(void *lib, const char *name, void *fnp)
{
    void *sym = dlsym(lib, name);

    if (sym == NULL)
        return false;
    /* POSIX guarantees object and function pointers convert. */
    memcpy(fnp, &sym, sizeof(sym));
    return true;
}

static int
zfn_load(struct zfn *z)
{
    z->lib = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (z->lib == NULL)
        return -ELIBACC;
    if (zfn_sym(z->lib, "deflateInit2_", &z->deflate_init2) &&
        zfn_sym(z->lib, "deflate", &z->deflate) &&
        zfn_sym(z->lib, "deflateReset", &z->deflate_reset) &&
        zfn_sym(z->lib, "deflateEnd", &z->deflate_end) &&
        zfn_sym(z->lib, "deflateBound", &z->deflate_bound) &&
        zfn_sym(z->lib, "inflateInit2_", &z->inflate_init2) &&
        zfn_sym(z->lib, "inflate", &z->inflate) &&
        zfn_sym(z->lib, "inflateReset", &z->inflate_reset) &&
        zfn_sym(z->lib, "inflateEnd", &z->inflate_end))
        return 0;
    dlclose(z->lib);
    z->lib = NULL;
    return -ELIBACC;
}

void
wsl_deflate_free(struct wsl_deflate *d)
{
    if (d == NULL)
        return;
    while (d->pool != NULL) {
        struct wsl_inflater *next = d->pool->next;

        d->z.inflate_end(&d->pool->zs);
        free(d->pool);
        d->pool = next;
    }
    if (d->dz_ok)
        d->z.deflate_end(&d->dz);
    if (d->z.lib != NULL)
        dlclose(d->z.lib);
    free(d->dbuf);
    free(d->obuf);
    free(d);
}

struct wsl_deflate *
wsl_deflate_new(int level, int *err)
{
    struct wsl_deflate *d = calloc(1, sizeof(*d));

    *err = -ENOMEM;
    if (d == NULL)
        return NULL;
    *err = zfn_load(&d->z);
    if (*err != 0) {
        free(d);
        return NULL;
    }
    *err = -ENOMEM;
    d->obuf = malloc(OBUF_SIZE);
    /* Negative window bits: raw deflate, no zlib header (§7.2.1). */
    if (d->obuf == NULL ||
        d->z.deflate_init2(&d->dz, level, Z_DEFLATED, -WINDOW_BITS, 8,
                           Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                           (int)sizeof(z_stream)) != Z_OK) {
        wsl_deflate_free(d);
        return NULL;
    }
    d->dz_ok = true;
    *err = 0;
    return d;
}

/* ---- the server's answer ------------------------------------------- */

/* s[0..n) with spaces and tabs trimmed at both ends. */
static void
trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static bool
word_is(const char *s, size_t n, const char *w)
{
    return n == strlen(w) && strncasecmp(s, w, n) == 0;
}

/* One "name[=value]" parameter of permessage-deflate. */
static int
pmd_param(const char *s, size_t n, struct wsl_pmd_params *pp,
          unsigned *seen)
{
    const char *eq = memchr(s, '=', n);
    size_t nlen = eq != NULL ? (size_t)(eq - s) : n;
    const char *v = eq != NULL ? eq + 1 : NULL;
    size_t vlen = eq != NULL ? n - nlen - 1 : 0;
    unsigned bit;

    trim(&s, &nlen);
    if (v != NULL) {
        trim(&v, &vlen);
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }
    }
    if (word_is(s, nlen, "server_no_context_takeover") && v == NULL) {
        bit = 1;
        pp->server_no_context_takeover = true;
    } else if (word_is(s, nlen, "client_no_context_takeover") && v == NULL) {
        bit = 2;
        pp->client_no_context_takeover = true;
    } else if (word_is(s, nlen, "server_max_window_bits") && v != NULL &&
               vlen >= 1 && vlen <= 2) {
        unsigned bits = 0;

        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -EPROTO;
            bits = bits * 10 + (unsigned)(v[i] - '0');
        }
        if (bits < 8 || bits > 15 || (vlen == 2 && v[0] == '0'))
            return -EPROTO;
        bit = 4;
        pp->server_max_window_bits = (uint8_t)bits;
    } else {
        /* Unknown, valueless window size, or client_max_window_bits,
           which we did not offer. */
        return -EPROTO;
    }
    if ((*seen & bit) != 0)
        return -EPROTO;
    *seen |= bit;
    return 0;
}

/* The header's value: exactly one element, permessage-deflate. */
static int
pmd_value(const char *v, size_t n, struct wsl_pmd_params *pp)
{
    unsigned seen = 0;
    const char *semi;
    size_t len;

    if (memchr(v, ',', n) != NULL)
        return -EPROTO;
    semi = memchr(v, ';', n);
    len = semi != NULL ? (size_t)(semi - v) : n;
    {
        const char *name = v;
        size_t nlen = len;

        trim(&name, &nlen);
        if (!word_is(name, nlen, "permessage-deflate"))
            return -EPROTO;
    }
    while (semi != NULL) {
        const char *s = semi + 1;
        size_t rest = n - (size_t)(s - v);

        semi = memchr(s, ';', rest);
        len = semi != NULL ? (size_t)(semi - s) : rest;
        if (pmd_param(s, len, pp, &seen) != 0)
            return -EPROTO;
    }
    return 1;
}

int
wsl_deflate_response(const char *p, size_t len,
                     struct wsl_pmd_params *params)
{
    static const char name[] = "Sec-WebSocket-Extensions:";
    const char *line = memchr(p, '\n', len), *end = p + len;
    int found = 0;

    memset(params, 0, sizeof(*params));
    while (line != NULL && ++line < end) {
        const char *eol = memchr(line, '\r', (size_t)(end - line));
        size_t n = eol != NULL ? (size_t)(eol - line) : (size_t)(end - line);

        if (n >= sizeof(name) - 1 &&
            strncasecmp(line, name, sizeof(name) - 1) == 0) {
            /* Two headers would be two extensions: one too many. */
            if (found != 0)
                return -EPROTO;
            found = pmd_value(line + sizeof(name) - 1,
                              n - (sizeof(name) - 1), params);
            if (found < 0)
                return found;
        }
        line = memchr(line, '\n', (size_t)(end - line));
    }
    return found;
}

/* ---- out ------------------------------------------------------------ */

int
wsl_deflate_message(struct wsl_deflate *d, const struct iovec *iov,
                    int iovcnt, const uint8_t **out, size_t *out_len)
{
    z_stream *zs = &d->dz;
    size_t total = 0, need;
    int rc = Z_OK;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    /* deflateBound covers one finished stream; a sync flush adds a few
       bytes more, and the stored-block overhead a few more per 16 KiB. */
    need = (size_t)d->z.deflate_bound(zs, (uLong)total) + 64;
    if (need > d->dcap) {
        uint8_t *b = realloc(d->dbuf, need);

        if (b == NULL)
            return -ENOMEM;
        d->dbuf = b;
        d->dcap = need;
    }
    zs->next_out = d->dbuf;
    zs->avail_out = (uInt)d->dcap;
    for (int i = 0; i < iovcnt || iovcnt == 0; i++) {
        bool last = i + 1 >= iovcnt;

        zs->next_in = iovcnt > 0 ? iov[i].iov_base : NULL;
        zs->avail_in = iovcnt > 0 ? (uInt)iov[i].iov_len : 0;
        rc = d->z.deflate(zs, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
        if ((rc != Z_OK && rc != Z_BUF_ERROR) || zs->avail_in != 0)
            break;
        if (last)
            break;
    }
    *out_len = d->dcap - zs->avail_out;
    /* client_no_context_takeover: the next message starts afresh. */
    d->z.deflate_reset(zs);
    if (rc != Z_OK || *out_len < 4 ||
        memcmp(d->dbuf + *out_len - 4, "\x00\x00\xff\xff", 4) != 0)
        return -ENOMEM;
    *out_len -= 4;
    *out = d->dbuf;
    return 0;
}

/* ---- in ------------------------------------------------------------- */

struct wsl_inflater *
wsl_inflater_get(struct wsl_deflate *d)
{
    struct wsl_inflater *inf = d->pool;

    if (inf != NULL) {
        d->pool = inf->next;
        inf->next = NULL;
        return inf;
    }
    inf = calloc(1, sizeof(*inf));
    if (inf == NULL)
        return NULL;
    if (d->z.inflate_init2(&inf->zs, -WINDOW_BITS, ZLIB_VERSION,
                           (int)sizeof(z_stream)) != Z_OK) {
        free(inf);
        return NULL;
    }
    return inf;
}

void
wsl_inflater_put(struct wsl_deflate *d, struct wsl_inflater *inf)
{
    if (inf == NULL)
        return;
    d->z.inflate_reset(&inf->zs);
    inf->off = 0;
    inf->next = d->pool;
    d->pool = inf;
}

/* Feeds p[0..len) through inf; output collects in d->obuf from *have and
   is handed out whenever the buffer fills. */
static int
inflate_feed(struct wsl_deflate *d, struct wsl_inflater *inf,
             const uint8_t *p, size_t len, size_t *have,
             wsl_inflate_emit_fn emit, void *arg)
{
    z_stream *zs = &inf->zs;

    zs->next_in = (Bytef *)(uintptr_t)p;
    zs->avail_in = (uInt)len;
    for (;;) {
        uInt in0 = zs->avail_in;
        int rc;

        zs->next_out = d->obuf + *have;
        zs->avail_out = (uInt)(OBUF_SIZE - *have);
        rc = d->z.inflate(zs, Z_SYNC_FLUSH);
        if (rc == Z_STREAM_END) {
            /* A final block (BFINAL) ends the stream; what follows in
               this message, the tail at least, is ignored. */
            d->z.inflate_reset(zs);
            zs->avail_in = 0;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return -EPROTO;
        }
        *have = OBUF_SIZE - zs->avail_out;
        if (inf->off + *have > WSL_INFLATE_MAX)
            return -EMSGSIZE;
        if (*have == OBUF_SIZE) {
            if (!emit(arg, d->obuf, *have, inf->off, false))
                return 1;
            inf->off += *have;
            *have = 0;
            continue;
        }
        if (zs->avail_in == 0 || zs->avail_in == in0)
            return zs->avail_in == 0 ? 0 : -EPROTO;
    }
}

int
wsl_inflate(struct wsl_deflate *d, struct wsl_inflater *inf,
            const uint8_t *p, size_t len, bool end, wsl_inflate_emit_fn emit,
            void *arg)
{
    static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
    size_t have = 0;
    uint64_t off;
    int rc;

    rc = inflate_feed(d, inf, p, len, &have, emit, arg);
    if (rc == 0 && end)
        rc = inflate_feed(d, inf, tail, sizeof(tail), &have, emit, arg);
    if (rc != 0)
        return rc;
    if (have == 0 && !end)
        return 0;
    off = inf->off;
    inf->off = end ? 0 : inf->off + have;
    return emit(arg, d->obuf, have, off, end) ? 0 : 1;
}
