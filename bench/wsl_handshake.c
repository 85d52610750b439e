/*
 * wsl_handshake.c: RFC 6455 §4.1 from the client's side: build the
 * request, check the 101. SHA-1 and base64 come from OpenSSL's libcrypto.
 */
#include "wsl_handshake.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* accept = base64(SHA-1(key_b64 + GUID)), §4.2.2 step 5.4. */
static void
compute_accept(const char *key_b64, char accept[WSL_ACCEPT_LEN + 1])
{
    char in[24 + sizeof(WS_GUID)];
    uint8_t digest[SHA_DIGEST_LENGTH];
    int n = snprintf(in, sizeof(in), "%s%s", key_b64, WS_GUID);

    SHA1((const unsigned char *)in, (size_t)n, digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);
}

ssize_t
wsl_handshake_request(char *out, size_t cap, const char *host,
                      const char *path, const uint8_t key[16],
                      const char *extensions,
                      char accept[WSL_ACCEPT_LEN + 1])
{
    char key_b64[25];
    int n;

    EVP_EncodeBlock((unsigned char *)key_b64, key, 16);
    compute_accept(key_b64, accept);
    n = snprintf(out, cap,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s%s%s"
                 "\r\n",
                 path, host, key_b64,
                 extensions != NULL ? "Sec-WebSocket-Extensions: " : "",
                 extensions != NULL ? extensions : "",
                 extensions != NULL ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

/* True if the comma-separated value holds token, case-insensitively. */
static bool
has_token(const char *v, size_t vlen, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;

    while (i < vlen) {
        size_t start, end;

        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        start = i;
        while (i < vlen && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp(v + start, token, tlen) == 0)
            return true;
    }
    return false;
}

struct seen {
    bool upgrade, connection, accept;
};

/* Judges one "Name: value" line (no CRLF). */
static int
check_header(const char *line, size_t len, const char *accept,
             bool offered_extensions, struct seen *s)
{
    const char *colon = memchr(line, ':', len);
    size_t nlen, vlen;
    const char *v;

    if (colon == NULL)
        return -EPROTO;
    nlen = (size_t)(colon - line);
    v = colon + 1;
    vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
#define NAME_IS(s) (nlen == sizeof(s) - 1 && strncasecmp(line, s, nlen) == 0)
    if (NAME_IS("Upgrade"))
        s->upgrade = vlen == 9 && strncasecmp(v, "websocket", 9) == 0;
    else if (NAME_IS("Connection"))
        s->connection = has_token(v, vlen, "upgrade");
    else if (NAME_IS("Sec-WebSocket-Accept"))
        s->accept = vlen == WSL_ACCEPT_LEN &&
                    memcmp(v, accept, WSL_ACCEPT_LEN) == 0;
    /* §4.1: the client MUST fail on an extension or subprotocol that was
       not in its request. */
    else if (NAME_IS("Sec-WebSocket-Extensions") && !offered_extensions)
        return -EPROTO;
    else if (NAME_IS("Sec-WebSocket-Protocol"))
        return -EPROTO;
#undef NAME_IS
    return 0;
}

ssize_t
wsl_handshake_response(const char *p, size_t len, const char *accept,
                       bool offered_extensions)
{
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    const char *line, *eol;
    struct seen s = { false, false, false };

    if (end == NULL)
        return len >= WSL_RESPONSE_MAX ? -EMSGSIZE : 0;
    if ((size_t)(end - p) + 4 > WSL_RESPONSE_MAX)
        return -EMSGSIZE;
    /* §4.1: "HTTP/1.1 101"; any other status fails the connection. */
    if (end - p < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0 ||
        (end - p > 12 && p[12] != ' ' && p[12] != '\r'))
        return -EPROTO;
    line = memchr(p, '\n', (size_t)(end - p));
    while (line != NULL && line < end) {
        line++;
        eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (eol == NULL || eol[1] != '\n')
            return -EPROTO;
        if (check_header(line, (size_t)(eol - line), accept,
                         offered_extensions, &s) != 0)
            return -EPROTO;
        line = eol + 1;
    }
    if (!s.upgrade || !s.connection || !s.accept)
        return -EPROTO;
    return end - p + 4;
}
