/*
 * request.c: the sock_request_* getters of sock.h, what an upgrade hook
 * may read of the request. The request itself is parsed and owned by the
 * HTTP side of the handshake (http/ws_handshake.c), in the worker or in
 * the sock_test.h harness; these calls only read it.
 */
#include "sock_impl.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "ws_handshake.h"

/* The getters return "" rather than NULL for a request never parsed. */
static const char *
or_empty(const char *s)
{
    return s != NULL ? s : "";
}

const char *
sock_request_method(const sock_request *r)
{
    return or_empty(r->method);
}

const char *
sock_request_path(const sock_request *r)
{
    return or_empty(r->path);
}

const char *
sock_request_query(const sock_request *r)
{
    return or_empty(r->query);
}

const char *
sock_request_header(const sock_request *r, const char *name)
{
    return ws_request_header(r, name);
}

size_t
sock_request_header_count(const sock_request *r)
{
    return r->n_headers;
}

bool
sock_request_header_at(const sock_request *r, size_t i, const char **name,
                       const char **value)
{
    if (i >= r->n_headers)
        return false;
    if (name != NULL)
        *name = r->headers[i].name;
    if (value != NULL)
        *value = r->headers[i].value;
    return true;
}

const char *
sock_request_peer(const sock_request *r)
{
    return or_empty(r->peer);
}

bool
sock_request_tls(const sock_request *r)
{
    return r->tls;
}

/*
 * The first '&'-separated pair whose key is exactly key wins; "key" alone
 * has the value "". On -ENOSPC buf is left as it was.
 */
int
sock_request_query_param(const sock_request *r, const char *key, char *buf,
                         size_t size)
{
    size_t klen = strlen(key);
    const char *s = or_empty(r->query);

    while (*s != '\0') {
        const char *e = strchrnul(s, '&');
        const char *eq = memchr(s, '=', (size_t)(e - s));
        const char *kend = eq != NULL ? eq : e;

        if (e > s && (size_t)(kend - s) == klen &&
            memcmp(s, key, klen) == 0) {
            const char *v = eq != NULL ? eq + 1 : e;
            size_t vlen = (size_t)(e - v);

            if (vlen >= size || vlen > INT_MAX)
                return -ENOSPC;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return (int)vlen;
        }
        if (*e == '\0')
            break;
        s = e + 1;
    }
    return -1;
}

const char *
sock_request_option(const sock_request *r, const char *name)
{
    return sock_options_find(r->opts, name);
}
