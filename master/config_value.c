/*
 * config_value.c: the value syntax of sockd.conf(5) (see config_value.h),
 * with no knowledge of keys or sections: which key takes which kind of
 * value, and its bounds, are config_keys.c's.
 */
#include "config_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"

int
config_fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Decimal digits at *s, advancing it; no sign, no overflow. */
static int
parse_digits(const char **s, uint64_t *v)
{
    const char *p = *s;
    uint64_t n = 0;

    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');

        if (n > (UINT64_MAX - d) / 10)
            return -EINVAL;
        n = n * 10 + d;
    }
    *s = p;
    *v = n;
    return 0;
}

int
config_parse_uint(const char *s, uint64_t *v)
{
    if (parse_digits(&s, v) != 0 || *s != '\0')
        return -EINVAL;
    return 0;
}

struct unit {
    const char *name;
    uint64_t mult;
};

/* digits followed by one of the units (case-insensitive), checked */
static int
parse_with_unit(const char *s, const struct unit *u, size_t n, uint64_t *v)
{
    uint64_t x;

    if (parse_digits(&s, &x) != 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(s, u[i].name) != 0)
            continue;
        if (x > UINT64_MAX / u[i].mult)
            return -EINVAL;
        *v = x * u[i].mult;
        return 0;
    }
    return -EINVAL;
}

int
config_parse_duration(const char *s, uint32_t *ms)
{
    static const struct unit units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 },
    };
    uint64_t v;

    if (parse_with_unit(s, units, ARRAY_SIZE(units), &v) != 0 ||
        v > UINT32_MAX)
        return -EINVAL;
    *ms = (uint32_t)v;
    return 0;
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit units[] = {
        { "", 1 }, { "k", KIB }, { "kib", KIB }, { "m", MIB },
        { "mib", MIB }, { "g", GIB }, { "gib", GIB }, { "t", TIB },
        { "tib", TIB },
    };

    return parse_with_unit(s, units, ARRAY_SIZE(units), bytes);
}

int
config_parse_switch(const char *s, bool *on)
{
    static const char *const yes[] = { "on", "yes", "true", "1" };
    static const char *const no[] = { "off", "no", "false", "0" };

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *on = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *on = false;
            return 0;
        }
    }
    return -EINVAL;
}

static bool
fill_sockaddr(int family, const char *host, uint16_t port,
              struct listener_cfg *l)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;

    if (family == AF_INET6) {
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return false;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        l->addrlen = sizeof(*in6);
        return true;
    }
    if (strcmp(host, "*") == 0)
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
        return false;
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    l->addrlen = sizeof(*in4);
    return true;
}

/*
 * Fills l->addr and l->addrlen from "IPV4:PORT", "[IPV6]:PORT" or
 * "*:PORT". Returns NULL, or why s is not an address (addrlen is then 0).
 * Names are not resolved: the master binds before anything else runs.
 */
const char *
config_parse_address_why(const char *s, struct listener_cfg *l)
{
    char host[INET6_ADDRSTRLEN];
    const char *h = s, *end;
    int family = AF_INET;
    uint64_t port;

    memset(&l->addr, 0, sizeof(l->addr));
    l->addrlen = 0;
    if (*s == '[') {
        family = AF_INET6;
        h = s + 1;
        end = strchr(h, ']');
        if (end == NULL || end[1] != ':')
            return "expected [IPV6]:PORT, as in [::1]:8080";
    } else {
        end = strrchr(s, ':');
        if (end == NULL)
            return "expected HOST:PORT, as in 127.0.0.1:8080";
        if (memchr(s, ':', (size_t)(end - s)) != NULL)
            return "an IPv6 address needs brackets, as in [::1]:8080";
    }
    if (config_parse_uint(end + (family == AF_INET6 ? 2 : 1), &port) != 0 ||
        port > 65535)
        return "the port must be a number from 0 to 65535";
    if ((size_t)(end - h) >= sizeof(host))
        return "the host is not a numeric IP address";
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    if (!fill_sockaddr(family, host, (uint16_t)port, l))
        return family == AF_INET6 ? "not a numeric IPv6 address" :
               "the host must be a numeric IPv4 address, [IPv6] or *; "
               "names such as localhost are not resolved";
    return NULL;
}

int
config_parse_address(const char *s, struct listener_cfg *l)
{
    return config_parse_address_why(s, l) == NULL ? 0 : -EINVAL;
}

size_t
config_list_len(char **l)
{
    size_t n = 0;

    while (l != NULL && l[n] != NULL)
        n++;
    return n;
}

void
config_list_free(char **l)
{
    for (size_t i = 0; l != NULL && l[i] != NULL; i++)
        free(l[i]);
    free(l);
}

/* The next item of a list separated by spaces, tabs or commas. */
const char *
config_list_next(const char *s, size_t *len)
{
    s += strspn(s, " \t,");
    *len = strcspn(s, " \t,");
    return *len > 0 ? s : NULL;
}

/* Appends copies of the items of v; *list stays NULL-terminated. */
int
config_list_append(char ***list, const char *v)
{
    size_t n = config_list_len(*list), add = 0, len;
    const char *s;
    char **l;

    for (s = v; (s = config_list_next(s, &len)) != NULL; s += len)
        add++;
    l = reallocarray(*list, n + add + 1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    *list = l;
    l[n] = NULL;
    for (s = v; (s = config_list_next(s, &len)) != NULL; s += len) {
        l[n] = strndup(s, len);
        if (l[n] == NULL)
            return -ENOMEM;
        l[++n] = NULL;
    }
    return 0;
}

int
config_list_dup(char **src, char ***dst)
{
    size_t n = config_list_len(src);
    char **l;

    *dst = NULL;
    if (src == NULL)
        return 0;
    l = calloc(n + 1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    *dst = l;
    for (size_t i = 0; i < n; i++) {
        l[i] = strdup(src[i]);
        if (l[i] == NULL)
            return -ENOMEM;
    }
    return 0;
}

/* RFC 6455 §4.1: a subprotocol is an RFC 7230 token. */
bool
config_is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!isalnum(c) && (c == '\0' || !strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

/*
 * RFC 6454 §6.2: browsers send "scheme://host[:port]" or "null", never a
 * path, so "example.com" or "https://example.com/" could never match.
 */
bool
config_is_origin(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 4 && strncmp(s, "null", 4) == 0)
        return true;
    if (!isalpha((unsigned char)s[0]))
        return false;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' ||
                     s[i] == '-' || s[i] == '.'))
        i++;
    if (n - i <= 3 || strncmp(s + i, "://", 3) != 0)
        return false;
    for (i += 3; i < n; i++)
        if (strchr("/?#@", s[i]) != NULL)
            return false;
    return true;
}

bool
config_is_close_code(uint64_t c)
{
    /* RFC 6455 §7.4: 1004-1006 and 1015 must never be sent. */
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
           (c >= 3000 && c <= 4999);
}

static void
format_units(uint64_t v, const struct unit *u, char *buf, size_t n)
{
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    while (v % u->mult != 0)
        u++;
    snprintf(buf, n, "%llu%s", (unsigned long long)(v / u->mult), u->name);
}

void
config_format_duration(uint64_t ms, char *buf, size_t n)
{
    static const struct unit units[] = {
        { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
    };

    format_units(ms, units, buf, n);
}

void
config_format_size(uint64_t bytes, char *buf, size_t n)
{
    static const struct unit units[] = {
        { "GiB", GIB }, { "MiB", MIB }, { "KiB", KIB }, { "", 1 },
    };

    format_units(bytes, units, buf, n);
}
