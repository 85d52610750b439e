/*
 * ws_handshake.c: the HTTP/1.1 side of the WebSocket upgrade (RFC 6455 §4):
 * finding the end of a request head, parsing it with http-parser into a
 * struct sock_request, the §4.2.1 checks, the accept key, the 101 and error
 * responses. The sock_request_* getters the app's upgrade hook uses are
 * sockapi/sock_request.c's. Routing, origins, subprotocol and extension
 * choice, logging and all I/O are the worker's (conn.c): this file only
 * reports. It depends on nothing but sock.h's types, so libsock (for
 * sock_test.h) and sockd both build it.
 */
#include "ws_handshake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>
#include <openssl/evp.h>

/* RFC 6455 §1.3: appended to the key before hashing. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24 /* base64 of 16 bytes: 22 characters and "==" */
#define SHA1_LEN 20

/* Bytes of the head, kept as pointers until the parse has succeeded. */
struct span {
    const char *p; /* NULL until a callback has set it */
    size_t len;
};

struct hdr_span {
    struct span name, value;
};

/* What http-parser's callbacks collect; r is filled only at the end. */
struct parse_ctx {
    struct span url;
    struct hdr_span *hdrs; /* grown with reallocarray, freed by the parse */
    size_t n_hdrs, cap_hdrs, max_hdrs;
    bool in_value;  /* the last header callback was a value */
    int messages;   /* on_message_begin calls */
    bool head_done;
    int status;     /* set by a callback that stopped the parser */
};

/* ---- ASCII helpers (locale-independent, as HTTP requires) ------------- */

static int
ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool
ascii_eq_n(const char *a, const char *b, size_t n, bool ci)
{
    if (!ci)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)a[i]) !=
            ascii_lower((unsigned char)b[i]))
            return false;
    }
    return true;
}

static bool
ascii_streq_ci(const char *a, const char *b)
{
    size_t n = strlen(a);

    return strlen(b) == n && ascii_eq_n(a, b, n, true);
}

/* RFC 7230 §3.2.3 OWS. */
static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* RFC 7230 §3.2.6 tchar: what a header name is made of. */
static bool
is_tchar(char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* ---- Head framing ------------------------------------------------------ */

ssize_t
ws_head_len(const uint8_t *p, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    const uint8_t *end = NULL;

    /* memmem reads nothing past n, so a head ending at len is safe. */
    if (n >= 4)
        end = memmem(p, n, "\r\n\r\n", 4);
    if (end != NULL)
        return end - p + 4;
    return len >= max ? -E2BIG : 0;
}

/* ---- http-parser callbacks --------------------------------------------- */

/*
 * Adds a callback's piece to s. The head is one buffer, so pieces of one
 * element touch; one that does not is an obs-fold continuation line, which
 * RFC 7230 §3.2.4 lets a server reject with 400.
 */
static int
span_extend(struct span *s, const char *at, size_t len)
{
    if (s->p == NULL) {
        s->p = at;
        s->len = len;
        return 0;
    }
    if (at != s->p + s->len)
        return -1;
    s->len += len;
    return 0;
}

/* Stops the parser with status for the client. */
static int
stop(struct parse_ctx *ctx, int status)
{
    ctx->status = status;
    return -1;
}

static int
on_message_begin(http_parser *p)
{
    struct parse_ctx *ctx = p->data;

    /* A second request: the first ended early with bare LFs. */
    if (++ctx->messages > 1)
        return stop(ctx, 400);
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;

    if (span_extend(&ctx->url, at, len) != 0)
        return stop(ctx, 400);
    return 0;
}

static int
hdrs_grow(struct parse_ctx *ctx)
{
    size_t cap = ctx->cap_hdrs < 8 ? 8 : ctx->cap_hdrs * 2;
    struct hdr_span *h;

    if (cap > ctx->max_hdrs)
        cap = ctx->max_hdrs;
    h = reallocarray(ctx->hdrs, cap, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    ctx->hdrs = h;
    ctx->cap_hdrs = cap;
    return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;

    /*
     * A non-strict http-parser (Debian's) lets spaces into names. RFC 7230
     * §3.2.4 wants 400 for "Name : v", and "Transfer-Encoding : chunked"
     * is a request-smuggling classic.
     */
    for (size_t i = 0; i < len; i++) {
        if (!is_tchar(at[i]))
            return stop(ctx, 400);
    }
    /* More of the same name: http-parser may split any element. */
    if (ctx->n_hdrs > 0 && !ctx->in_value) {
        if (span_extend(&ctx->hdrs[ctx->n_hdrs - 1].name, at, len) != 0)
            return stop(ctx, 400);
        return 0;
    }
    if (ctx->n_hdrs == ctx->max_hdrs)
        return stop(ctx, 431);
    if (ctx->n_hdrs == ctx->cap_hdrs && hdrs_grow(ctx) != 0)
        return stop(ctx, 500);
    ctx->hdrs[ctx->n_hdrs++] = (struct hdr_span){ .name = { at, len } };
    ctx->in_value = false;
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;

    if (ctx->n_hdrs == 0)
        return stop(ctx, 400);
    ctx->in_value = true;
    if (span_extend(&ctx->hdrs[ctx->n_hdrs - 1].value, at, len) != 0)
        return stop(ctx, 400);
    return 0;
}

static int
on_headers_complete(http_parser *p)
{
    struct parse_ctx *ctx = p->data;

    ctx->head_done = true;
    return 0;
}

static const http_parser_settings parse_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

/* ---- Building the request ---------------------------------------------- */

/* Every field the parser owns; peer and tls are the caller's. */
static void
request_reset(struct sock_request *r)
{
    r->storage = NULL;
    r->storage_len = 0;
    r->method = NULL;
    r->path = NULL;
    r->query = NULL;
    r->http_major = 0;
    r->http_minor = 0;
    r->headers = NULL;
    r->n_headers = 0;
    r->upgrade = false;
    r->opts = NULL;
}

static void
span_trim(struct span *s)
{
    if (s->p == NULL) {
        s->p = "";
        s->len = 0;
    }
    while (s->len > 0 && is_ows(s->p[0])) {
        s->p++;
        s->len--;
    }
    while (s->len > 0 && is_ows(s->p[s->len - 1]))
        s->len--;
}

/*
 * A request head says nothing about a body only without Transfer-Encoding
 * and with no Content-Length or a zero one (RFC 7230 §3.3.3). http-parser
 * has already refused malformed and conflicting lengths.
 */
static bool
has_body(const struct parse_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_hdrs; i++) {
        const struct hdr_span *h = &ctx->hdrs[i];

        if (h->name.len == 17 &&
            ascii_eq_n(h->name.p, "Transfer-Encoding", 17, true))
            return true;
        if (h->name.len == 14 &&
            ascii_eq_n(h->name.p, "Content-Length", 14, true)) {
            for (size_t j = 0; j < h->value.len; j++) {
                if (h->value.p[j] >= '1' && h->value.p[j] <= '9')
                    return true;
            }
        }
    }
    return false;
}

/*
 * Path and query of the request target: origin-form "/p?q", or
 * absolute-form "http://host/p?q" (RFC 7230 §5.3.2), whose empty path
 * means "/". The fragment is dropped. Returns 0 or 400.
 */
static int
split_target(struct span url, struct span *path, struct span *query)
{
    struct http_parser_url u;

    /* http_parser_url keeps 16-bit offsets. */
    if (url.p == NULL || url.len == 0 || url.len > UINT16_MAX)
        return 400;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url.p, url.len, 0, &u) != 0)
        return 400;
    *path = (struct span){ "/", 1 };
    *query = (struct span){ "", 0 };
    if (u.field_set & (1u << UF_PATH)) {
        path->p = url.p + u.field_data[UF_PATH].off;
        path->len = u.field_data[UF_PATH].len;
    }
    if (u.field_set & (1u << UF_QUERY)) {
        query->p = url.p + u.field_data[UF_QUERY].off;
        query->len = u.field_data[UF_QUERY].len;
    }
    return 0;
}

/* Copies n bytes and a NUL at *w; returns the copy. */
static const char *
put_str(char **w, const char *s, size_t n)
{
    char *dst = *w;

    memcpy(dst, s, n);
    dst[n] = '\0';
    *w = dst + n + 1;
    return dst;
}

/*
 * Copies what the parse found into one storage block. Every string is a
 * distinct part of the head (or the short method name), so the total is
 * bounded by a few times len and cannot overflow.
 */
static int
request_fill(struct sock_request *r, struct parse_ctx *ctx,
             const http_parser *p)
{
    const char *method = http_method_str((enum http_method)p->method);
    size_t method_len = strlen(method);
    struct span path, query;
    size_t total;
    char *w;

    if (split_target(ctx->url, &path, &query) != 0)
        return 400;
    total = method_len + 1 + path.len + 1 + query.len + 1;
    for (size_t i = 0; i < ctx->n_hdrs; i++) {
        span_trim(&ctx->hdrs[i].value);
        total += ctx->hdrs[i].name.len + 1 + ctx->hdrs[i].value.len + 1;
    }
    r->storage = malloc(total);
    if (r->storage == NULL)
        return 500;
    if (ctx->n_hdrs > 0) {
        r->headers = calloc(ctx->n_hdrs, sizeof(*r->headers));
        if (r->headers == NULL)
            return 500;
    }
    r->storage_len = total;
    w = r->storage;
    r->method = put_str(&w, method, method_len);
    r->path = put_str(&w, path.p, path.len);
    r->query = put_str(&w, query.p, query.len);
    for (size_t i = 0; i < ctx->n_hdrs; i++) {
        const struct hdr_span *h = &ctx->hdrs[i];

        r->headers[i].name = put_str(&w, h->name.p, h->name.len);
        r->headers[i].value = put_str(&w, h->value.p, h->value.len);
    }
    r->n_headers = ctx->n_hdrs;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->upgrade = p->upgrade;
    return 0;
}

/* Every LF after a CR, and every CR before an LF (or at the end). */
static bool
crlf_only(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            return false;
        if (p[i] == '\r' && i + 1 < len && p[i + 1] != '\n')
            return false;
    }
    return true;
}

int
ws_request_parse(struct sock_request *r, const uint8_t *head, size_t len,
                 size_t max_headers)
{
    struct parse_ctx ctx = { .max_hdrs = max_headers };
    http_parser p;
    size_t done;
    int status;

    request_reset(r);
    /*
     * Exactly one head ending at len: http-parser must never see bytes of
     * a body or of a pipelined request.
     */
    if (len > SSIZE_MAX || ws_head_len(head, len, len) != (ssize_t)len)
        return 400;
    /* http-parser takes a bare LF as a line end; we do not, so that a head
       gets one answer however it is split (ws_head_check_prefix). */
    if (!crlf_only(head, len))
        return 400;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &ctx;
    done = http_parser_execute(&p, &parse_settings, (const char *)head, len);
    if (ctx.status != 0)
        status = ctx.status;
    else if (HTTP_PARSER_ERRNO(&p) == HPE_HEADER_OVERFLOW)
        status = 431;
    else if (HTTP_PARSER_ERRNO(&p) != HPE_OK || done != len ||
             !ctx.head_done)
        status = 400;
    else if (p.http_major != 1)
        status = 505;
    else if (has_body(&ctx))
        status = 400;
    else
        status = request_fill(r, &ctx, &p);
    free(ctx.hdrs);
    return status;
}

int
ws_head_check_prefix(const uint8_t *p, size_t len, size_t max_headers)
{
    struct parse_ctx ctx = { .max_hdrs = max_headers };
    http_parser hp;
    size_t start = 0;
    int status = 0;

    if (!crlf_only(p, len))
        return 400;
    /* http-parser reads a stream: an error on a prefix is an error on
       every head that begins with it, and no error means some head may
       still follow. */
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = &ctx;
    http_parser_execute(&hp, &parse_settings, (const char *)p, len);
    if (ctx.status == 400 || ctx.status == 431)
        status = ctx.status;
    else if (HTTP_PARSER_ERRNO(&hp) == HPE_HEADER_OVERFLOW)
        status = 431;
    else if (ctx.status == 0 && HTTP_PARSER_ERRNO(&hp) != HPE_OK)
        status = 400;
    free(ctx.hdrs);
    if (status != 0)
        return status;
    /* Empty lines may come first (RFC 9112 §2.2); once the request line
       has ended, its version is known. */
    while (start < len && (p[start] == '\r' || p[start] == '\n'))
        start++;
    if (start < len && memmem(p + start, len - start, "\r\n", 2) != NULL &&
        hp.http_major != 1)
        return 505;
    return 0;
}

void
ws_request_destroy(struct sock_request *r)
{
    if (r == NULL)
        return;
    free(r->storage);
    free(r->headers);
    request_reset(r);
}

/* ---- Looking at the request -------------------------------------------- */

const char *
ws_request_header(const struct sock_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (ascii_streq_ci(r->headers[i].name, name))
            return r->headers[i].value;
    }
    return NULL;
}

/* Headers named name; *first gets the first one's value (or NULL). */
static size_t
header_count(const struct sock_request *r, const char *name,
             const char **first)
{
    size_t n = 0;

    *first = NULL;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (!ascii_streq_ci(r->headers[i].name, name))
            continue;
        if (n++ == 0)
            *first = r->headers[i].value;
    }
    return n;
}

/*
 * True if the comma-separated list v has an element equal to token
 * (tlen > 0). Elements are trimmed of OWS; empty ones (RFC 7230 §7 allows
 * ", ,") match nothing. Connection and Upgrade values are tokens, so no
 * quoted strings need handling.
 */
static bool
list_has(const char *v, const char *token, size_t tlen, bool ci)
{
    for (;;) {
        const char *e = strchrnul(v, ',');
        const char *b = v, *t = e;

        while (b < t && is_ows(*b))
            b++;
        while (t > b && is_ows(t[-1]))
            t--;
        if ((size_t)(t - b) == tlen && ascii_eq_n(b, token, tlen, ci))
            return true;
        if (*e == '\0')
            return false;
        v = e + 1;
    }
}

bool
ws_request_has_token(const struct sock_request *r, const char *name,
                     const char *token, bool ci)
{
    size_t tlen = strlen(token);

    if (tlen == 0)
        return false;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (ascii_streq_ci(r->headers[i].name, name) &&
            list_has(r->headers[i].value, token, tlen, ci))
            return true;
    }
    return false;
}

/*
 * §4.2.1 item 5: the key decodes to 16 bytes. In padded base64 (RFC 4648
 * §4) only 22 alphabet characters and "==" decode to 16 bytes, so checking
 * that shape is the decode. The 4 unused bits of the 22nd character are
 * not checked, as RFC 4648 §3.5 allows and EVP_DecodeBlock does.
 */
static bool
key_is_valid(const char *key)
{
    if (strlen(key) != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        if (!is_base64_char(key[i]))
            return false;
    }
    return true;
}

static int
refuse(const char **why, const char *reason, int status)
{
    *why = reason;
    return status;
}

int
ws_request_validate(const struct sock_request *r, const char **why)
{
    const char *unused, *v;
    size_t n;

    if (why == NULL)
        why = &unused;
    *why = NULL;
    if (r->method == NULL || strcmp(r->method, "GET") != 0)
        return refuse(why, "method is not GET", 400);
    if (r->http_major < 1 || (r->http_major == 1 && r->http_minor < 1))
        return refuse(why, "HTTP version before 1.1", 400);
    /* RFC 7230 §5.4: also 400 for more than one Host. */
    n = header_count(r, "Host", &v);
    if (n != 1)
        return refuse(why, n == 0 ? "no Host header" :
                      "more than one Host header", 400);
    if (!ws_request_has_token(r, "Upgrade", "websocket", true))
        return refuse(why, "no Upgrade: websocket", 426);
    if (!ws_request_has_token(r, "Connection", "upgrade", true))
        return refuse(why, "no Connection: upgrade", 426);
    n = header_count(r, "Sec-WebSocket-Key", &v);
    if (n != 1)
        return refuse(why, n == 0 ? "no Sec-WebSocket-Key" :
                      "more than one Sec-WebSocket-Key", 400);
    if (!key_is_valid(v))
        return refuse(why, "Sec-WebSocket-Key is not 16 bytes of base64",
                      400);
    /* RFC 6455 §11.3.5: sent once in a request. */
    n = header_count(r, "Sec-WebSocket-Version", &v);
    if (n == 0)
        return refuse(why, "no Sec-WebSocket-Version", 426);
    if (n > 1 || strcmp(v, "13") != 0)
        return refuse(why, "Sec-WebSocket-Version is not 13", 426);
    return 0;
}

/* ---- Accept key and responses ------------------------------------------ */

/*
 * On an OpenSSL failure (only allocation can fail) out is "", which the
 * caller can test; the contract has no error return.
 */
void
ws_accept_key(const char *key, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL &&
              EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
              EVP_DigestUpdate(ctx, WS_GUID, strlen(WS_GUID)) == 1 &&
              EVP_DigestFinal_ex(ctx, md, &md_len) == 1;

    EVP_MD_CTX_free(ctx);
    if (!ok || md_len != SHA1_LEN) {
        out[0] = '\0';
        return;
    }
    /* 20 bytes give 28 characters and a NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, SHA1_LEN);
}

/*
 * Concatenates the non-NULL strings of parts into a malloc'd,
 * NUL-terminated buffer; its length (without the NUL) goes to *len.
 */
static char *
concat(const char *const *parts, size_t n, size_t *len)
{
    size_t total = 0;
    char *buf, *w;

    for (size_t i = 0; i < n; i++)
        total += parts[i] != NULL ? strlen(parts[i]) : 0;
    buf = malloc(total + 1);
    if (buf == NULL)
        return NULL;
    w = buf;
    for (size_t i = 0; i < n; i++) {
        if (parts[i] != NULL) {
            size_t l = strlen(parts[i]);

            memcpy(w, parts[i], l);
            w += l;
        }
    }
    *w = '\0';
    *len = total;
    return buf;
}

char *
ws_response_101(const char *accept, const char *subprotocol,
                const char *extensions, const char *extra, size_t *len)
{
    const char *const parts[] = {
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ", accept, "\r\n",
        subprotocol != NULL ? "Sec-WebSocket-Protocol: " : NULL,
        subprotocol, subprotocol != NULL ? "\r\n" : NULL,
        extensions != NULL ? "Sec-WebSocket-Extensions: " : NULL,
        extensions, extensions != NULL ? "\r\n" : NULL,
        extra,
        "\r\n",
    };

    return concat(parts, sizeof(parts) / sizeof(parts[0]), len);
}

char *
ws_response_error(int status, const char *body, size_t *len)
{
    char status_line[64], length[32];
    const char *text;
    size_t body_len;

    /* Anything but three digits would corrupt the status line. */
    if (status < 100 || status > 999)
        status = 500;
    text = ws_status_text(status);
    body_len = body != NULL ? strlen(body) : strlen(text) + 1;
    snprintf(status_line, sizeof(status_line), "HTTP/1.1 %d %s\r\n",
             status, text);
    snprintf(length, sizeof(length), "%zu", body_len);

    const char *const parts[] = {
        status_line,
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: ", length, "\r\n",
        /* RFC 6455 §4.4: tell the client which version we speak. */
        status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL,
        status == 405 ? "Allow: GET\r\n" : NULL,
        "\r\n",
        body != NULL ? body : text,
        body != NULL ? NULL : "\n",
    };

    return concat(parts, sizeof(parts) / sizeof(parts[0]), len);
}

const char *
ws_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}
