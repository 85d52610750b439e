/*
 * config.c: the INI configuration file (DESIGN §6, sockd.conf(5)): its
 * sections, keys, value syntax, defaults and cross-checks. Every problem is
 * collected and reported as "FILE:LINE: message", in file order; a config
 * is returned only when there is none.
 *
 * libinih splits "key = value" lines. Our line reader in front of it counts
 * lines (libinih is built without line numbers for the handler), strips
 * '#' comments, and parses section headers itself, because libinih cuts
 * "[listen [::1]:8080]" at the first ']', truncates long section names and
 * never reports a section that has no keys. Indented lines continue the
 * list of the key above them, so long lists fit libinih's line buffer.
 *
 * Opening sockets, reading TLS files and resolving apps is the master's.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "common.h"
#include "log.h"
#include "redis_wire.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)
/* RFC 6455 §5.2: a 64-bit payload length has its top bit clear. */
#define SIZE63 ((1ULL << 63) - 1)
#define MS_MAX ((uint64_t)UINT32_MAX)

enum key_type {
    KT_DURATION,    /* uint32_t milliseconds */
    KT_DURATION_OFF, /* the same, where 0 means off and min applies above */
    KT_SIZE32,      /* uint32_t bytes */
    KT_SIZE64,      /* uint64_t bytes */
    KT_U32,         /* uint32_t count */
    KT_U16,         /* uint16_t */
    KT_INT,         /* int */
    KT_WBITS,       /* int, 8..15; zlib cannot do 8, so 8 is stored as 9 */
    KT_CLOSE_CODE,  /* uint16_t, a code an endpoint may send */
    KT_SWITCH,      /* bool */
    KT_OVERFLOW,    /* bool: "drop" or "close" */
    KT_WORKERS,     /* int, "auto" = -1 */
    KT_LOG_LEVEL,   /* int, LOG_LVL_* */
    KT_STRING,      /* char *, not empty */
    KT_ORIGINS,     /* char **, scheme://host[:port] or null */
    KT_TOKENS,      /* char **, RFC 7230 tokens */
    KT_PATHS,       /* char **, file paths */
};

static const struct type_info {
    size_t size;        /* of the struct member */
    uint64_t top;       /* maxima from here up are not worth quoting */
    const char *expect; /* what a value looks like, for messages */
} types[] = {
    [KT_DURATION] = { sizeof(uint32_t), MS_MAX,
                      "a duration such as 500ms, 30s, 5m or 1h, "
                      "under 49 days" },
    [KT_DURATION_OFF] = { sizeof(uint32_t), MS_MAX,
                          "0 (off) or a duration such as 500ms, 30s, 5m "
                          "or 1h, under 49 days" },
    [KT_SIZE32] = { sizeof(uint32_t), UINT32_MAX,
                    "a size such as 65536, 64KiB or 8MiB" },
    [KT_SIZE64] = { sizeof(uint64_t), SIZE63,
                    "a size such as 65536, 64KiB or 8MiB" },
    [KT_U32] = { sizeof(uint32_t), UINT32_MAX, "a whole number" },
    [KT_U16] = { sizeof(uint16_t), UINT64_MAX, "a whole number" },
    [KT_INT] = { sizeof(int), INT_MAX, "a whole number" },
    [KT_WBITS] = { sizeof(int), INT_MAX, "a whole number" },
    [KT_CLOSE_CODE] = { sizeof(uint16_t), 4999,
                        "a close code: 1000-1003, 1007-1014 or 3000-4999" },
    [KT_SWITCH] = { sizeof(bool), 1,
                    "on or off (also yes/no, true/false, 1/0)" },
    [KT_OVERFLOW] = { sizeof(bool), 1, "drop or close" },
    [KT_WORKERS] = { sizeof(int), INT_MAX,
                     "auto or a number of workers from 0 to 256" },
    [KT_LOG_LEVEL] = { sizeof(int), LOG_LVL_DEBUG,
                       "err, warn, info or debug" },
    [KT_STRING] = { sizeof(char *), 0, "a value" },
    [KT_ORIGINS] = { sizeof(char **), 0, "a list of origins" },
    [KT_TOKENS] = { sizeof(char **), 0, "a list of subprotocol names" },
    [KT_PATHS] = { sizeof(char **), 0, "a list of file paths" },
};

/* Where a key may stand, and which struct its offset is into. */
enum key_scope {
    SC_SERVER = 1,  /* [server]: struct server_cfg */
    SC_LISTEN = 2,  /* [listen]: struct listener_cfg */
    SC_ROUTE = 4,   /* [route]: struct route */
    SC_OPTS = 8,    /* [route], or [server] as a default: struct route_opts */
    SC_ADMIN = 16,  /* [admin]: struct admin_cfg */
    SC_REDIS = 32,  /* [redis]: struct redis_cfg */
};

struct key {
    const char *name;
    enum key_type type;
    unsigned scope;
    size_t off;
    uint64_t min, max;  /* for numbers, as written (8 window bits is 8) */
};

#define K(sc, st, name, member, type, lo, hi) \
    { name, type, sc, offsetof(st, member), lo, hi }
#define SRV(n, m, t, lo, hi) K(SC_SERVER, struct server_cfg, n, m, t, lo, hi)
#define LSN(n, m, t, lo, hi) K(SC_LISTEN, struct listener_cfg, n, m, t, lo, hi)
#define RTE(n, m, t, lo, hi) K(SC_ROUTE, struct route, n, m, t, lo, hi)
#define OPT(n, m, t, lo, hi) K(SC_OPTS, struct route_opts, n, m, t, lo, hi)
#define ADM(n, m, t, lo, hi) K(SC_ADMIN, struct admin_cfg, n, m, t, lo, hi)
#define RDS(n, m, t, lo, hi) K(SC_REDIS, struct redis_cfg, n, m, t, lo, hi)

static const struct key keys[] = {
    SRV("workers", workers, KT_WORKERS, 0, 256),
    SRV("runtime_dir", runtime_dir, KT_STRING, 0, 0),
    SRV("user", user, KT_STRING, 0, 0),
    SRV("log_file", log_file, KT_STRING, 0, 0),
    SRV("log_level", log_level, KT_LOG_LEVEL, 0, 0),
    SRV("node_id", node_id, KT_U16, 1, 65535),
    SRV("handshake_timeout", handshake_timeout_ms, KT_DURATION, 1, MS_MAX),
    SRV("max_request_head", max_request_head, KT_SIZE32, KIB, MIB),
    SRV("max_headers", max_headers, KT_U32, 1, 1000),
    SRV("max_connections", max_connections, KT_U32, 0, UINT32_MAX),
    SRV("max_partial_bytes", max_partial_bytes, KT_SIZE64, 1, SIZE63),
    SRV("shutdown_timeout", shutdown_timeout_ms, KT_DURATION, 0, MS_MAX),
    SRV("drain_timeout", drain_timeout_ms, KT_DURATION, 0, MS_MAX),
    SRV("drain_spread", drain_spread_ms, KT_DURATION, 0, MS_MAX),
    SRV("worker_shutdown_timeout", worker_shutdown_timeout_ms, KT_DURATION,
        1, MS_MAX),
    /* Below 1s a busy but healthy worker could be taken for a hung one. */
    SRV("worker_heartbeat_timeout", worker_heartbeat_timeout_ms,
        KT_DURATION_OFF, 1000, MS_MAX),
    LSN("backlog", backlog, KT_INT, 1, 65535),
    LSN("reuseport", reuseport, KT_SWITCH, 0, 1),
    LSN("tls_certificate", tls_certificate, KT_STRING, 0, 0),
    LSN("tls_key", tls_key, KT_STRING, 0, 0),
    LSN("tls_sni_certificates", tls_sni_certificates, KT_PATHS, 0, 0),
    LSN("tls_sni_keys", tls_sni_keys, KT_PATHS, 0, 0),
    RTE("app", app, KT_STRING, 0, 0),
    RTE("static_dir", static_dir, KT_STRING, 0, 0),
    OPT("idle_timeout", idle_timeout_ms, KT_DURATION, 0, MS_MAX),
    OPT("close_timeout", close_timeout_ms, KT_DURATION, 1, MS_MAX),
    /* Control frames carry up to 125 bytes and must always fit. */
    OPT("max_frame_size", max_frame_size, KT_SIZE64, 125, SIZE63),
    OPT("max_message_size", max_message_size, KT_SIZE64, 1, SIZE63),
    OPT("message_timeout", message_timeout_ms, KT_DURATION_OFF, 1, MS_MAX),
    OPT("max_inflate_ratio", max_inflate_ratio, KT_U32, 1, UINT32_MAX),
    OPT("send_low_watermark", send_low_watermark, KT_SIZE64, 0, SIZE63),
    OPT("send_high_watermark", send_high_watermark, KT_SIZE64, 1, SIZE63),
    OPT("send_hard_limit", send_hard_limit, KT_SIZE64, 1, SIZE63),
    OPT("max_info_queue", max_info_queue, KT_U32, 1, UINT32_MAX),
    OPT("info_overflow", info_overflow_close, KT_OVERFLOW, 0, 1),
    OPT("ping_interval", ping_interval_ms, KT_DURATION, 0, MS_MAX),
    OPT("pong_timeout", pong_timeout_ms, KT_DURATION, 1, MS_MAX),
    OPT("idle_close_code", idle_close_code, KT_CLOSE_CODE, 1000, 4999),
    OPT("shutdown_close_code", shutdown_close_code, KT_CLOSE_CODE,
        1000, 4999),
    OPT("compress", compress, KT_SWITCH, 0, 1),
    OPT("compress_level", compress_level, KT_INT, 0, 9),
    OPT("compress_mem_level", compress_mem_level, KT_INT, 1, 9),
    OPT("server_max_window_bits", server_max_window_bits, KT_WBITS, 8, 15),
    OPT("client_max_window_bits", client_max_window_bits, KT_INT, 8, 15),
    OPT("server_no_context_takeover", server_no_context_takeover, KT_SWITCH,
        0, 1),
    OPT("client_no_context_takeover", client_no_context_takeover, KT_SWITCH,
        0, 1),
    OPT("compress_threshold", compress_threshold, KT_SIZE32, 0, UINT32_MAX),
    OPT("allowed_origins", allowed_origins, KT_ORIGINS, 0, 0),
    OPT("subprotocols", subprotocols, KT_TOKENS, 0, 0),
    ADM("listen", listen, KT_STRING, 0, 0),
    RDS("address", address, KT_STRING, 0, 0),
    RDS("prefix", prefix, KT_STRING, 0, 0),
    RDS("password", password, KT_STRING, 0, 0),
};

#define N_KEYS ARRAY_SIZE(keys)

enum section {
    SEC_NONE, SEC_SKIP, SEC_SERVER, SEC_LISTEN, SEC_ROUTE, SEC_ADMIN,
    SEC_REDIS,
};

/* Whether an indented line without '=' continues the key above it. */
enum cont {
    CONT_NO,    /* no key above: a syntax error */
    CONT_YES,   /* continues p->cont_key */
    CONT_SKIP,  /* the key above was reported already: ignore quietly */
};

/* Where each key was set in one section, 0 = not set. */
struct seen {
    int line[N_KEYS];
};

struct perr {
    int line;       /* 0: about the whole file */
    size_t seq;     /* keeps the sort stable */
    char *msg;
};

union value {
    int64_t n;      /* numbers, switches, levels */
    char *s;
    char **list;
};

struct parser {
    struct config *cfg;
    const char *name;           /* the file, in messages */
    FILE *fp;                   /* the source: a file, */
    const char *text;           /* or the rest of a string */
    char *buf;                  /* the current raw line */
    size_t bufcap;
    int read_errno;
    int line;                   /* of the line libinih has now */
    enum section sec;
    size_t cur;                 /* index of the current listener or route */
    enum cont cont;
    bool cont_line;             /* the current line is a continuation */
    const struct key *cont_key;
    int server_line;            /* of the first [server], 0 if none */
    struct seen server_seen;
    struct seen admin_seen;
    struct seen redis_seen;
    struct seen *listen_seen;   /* parallel to cfg->listeners */
    struct seen *route_seen;    /* parallel to cfg->routes */
    struct perr *errs;
    size_t n_errs;
    bool oom;
};

/* Messages */

static void
report(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
report(struct parser *p, int line, const char *fmt, ...)
{
    struct perr *e;
    va_list ap;
    char *msg;
    int n;

    e = reallocarray(p->errs, p->n_errs + 1, sizeof(*e));
    if (e == NULL) {
        p->oom = true;
        return;
    }
    p->errs = e;
    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        p->oom = true;
        return;
    }
    e[p->n_errs] = (struct perr){ line, p->n_errs, msg };
    p->n_errs++;
}

static int
fail(char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the reason a value is bad into why; returns -EINVAL. */
static int
fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int
cmp_err(const void *a, const void *b)
{
    const struct perr *x = a, *y = b;
    /* Whole-file problems (line 0) come after the numbered ones. */
    unsigned lx = x->line > 0 ? (unsigned)x->line : UINT_MAX;
    unsigned ly = y->line > 0 ? (unsigned)y->line : UINT_MAX;

    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One "NAME:LINE: message\n" per problem, in file order; NULL if OOM. */
static char *
format_errors(struct parser *p)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    if (f == NULL)
        return NULL;
    qsort(p->errs, p->n_errs, sizeof(*p->errs), cmp_err);
    for (size_t i = 0; i < p->n_errs; i++) {
        if (p->errs[i].line > 0)
            fprintf(f, "%s:%d: %s\n", p->name, p->errs[i].line,
                    p->errs[i].msg);
        else
            fprintf(f, "%s: %s\n", p->name, p->errs[i].msg);
    }
    if (p->oom)
        fprintf(f, "%s: out of memory\n", p->name);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Value parsers */

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

static int
parse_uint(const char *s, uint64_t *v)
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
static const char *
parse_address(const char *s, struct listener_cfg *l)
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
    if (parse_uint(end + (family == AF_INET6 ? 2 : 1), &port) != 0 ||
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
    return parse_address(s, l) == NULL ? 0 : -EINVAL;
}

/* String lists */

static size_t
list_len(char **l)
{
    size_t n = 0;

    while (l != NULL && l[n] != NULL)
        n++;
    return n;
}

static void
list_free(char **l)
{
    for (size_t i = 0; l != NULL && l[i] != NULL; i++)
        free(l[i]);
    free(l);
}

/* The next item of a list separated by spaces, tabs or commas. */
static const char *
next_item(const char *s, size_t *len)
{
    s += strspn(s, " \t,");
    *len = strcspn(s, " \t,");
    return *len > 0 ? s : NULL;
}

/* Appends copies of the items of v; *list stays NULL-terminated. */
static int
list_append(char ***list, const char *v)
{
    size_t n = list_len(*list), add = 0, len;
    const char *s;
    char **l;

    for (s = v; (s = next_item(s, &len)) != NULL; s += len)
        add++;
    l = reallocarray(*list, n + add + 1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    *list = l;
    l[n] = NULL;
    for (s = v; (s = next_item(s, &len)) != NULL; s += len) {
        l[n] = strndup(s, len);
        if (l[n] == NULL)
            return -ENOMEM;
        l[++n] = NULL;
    }
    return 0;
}

static int
list_dup(char **src, char ***dst)
{
    size_t n = list_len(src);
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
static bool
is_token(const char *s, size_t n)
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
static bool
is_origin(const char *s, size_t n)
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

static int
check_items(const struct key *k, const char *v, char *why, size_t n)
{
    const char *s;
    size_t len;

    for (s = v; (s = next_item(s, &len)) != NULL; s += len) {
        if (k->type == KT_ORIGINS && !is_origin(s, len))
            return fail(why, n, "'%.*s' is not an origin; expected "
                        "scheme://host[:port] as in https://example.com, "
                        "or null", (int)len, s);
        if (k->type == KT_TOKENS && !is_token(s, len))
            return fail(why, n, "'%.*s' is not a valid subprotocol name "
                        "(an RFC 7230 token)", (int)len, s);
    }
    return 0;
}

/* Values of keys */

static bool
is_close_code(uint64_t c)
{
    /* RFC 6455 §7.4: 1004-1006 and 1015 must never be sent. */
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
           (c >= 3000 && c <= 4999);
}

static void
format_bound(enum key_type t, uint64_t v, char *buf, size_t n)
{
    static const struct unit ms[] = {
        { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
    };
    static const struct unit bytes[] = {
        { "GiB", GIB }, { "MiB", MIB }, { "KiB", KIB }, { "", 1 },
    };
    bool is_ms = t == KT_DURATION || t == KT_DURATION_OFF;
    const struct unit *u = is_ms ? ms : bytes;

    if (v == 0 || (!is_ms && t != KT_SIZE32 && t != KT_SIZE64)) {
        snprintf(buf, n, "%llu", (unsigned long long)v);
        return;
    }
    while (v % u->mult != 0)
        u++;
    snprintf(buf, n, "%llu%s", (unsigned long long)(v / u->mult), u->name);
}

static int
fail_range(const struct key *k, uint64_t v, char *why, size_t n)
{
    char lo[32], hi[32];

    format_bound(k->type, k->min, lo, sizeof(lo));
    format_bound(k->type, k->max, hi, sizeof(hi));
    if (k->type == KT_DURATION_OFF && k->max >= types[k->type].top)
        return fail(why, n, "must be 0 (off) or at least %s", lo);
    /* No point in quoting a maximum that only the type imposes. */
    if (v < k->min && k->max >= types[k->type].top)
        return fail(why, n, "must be at least %s", lo);
    return fail(why, n, "allowed %s to %s", lo, hi);
}

static int
parse_number(const struct key *k, const char *v, union value *out,
             char *why, size_t n)
{
    uint64_t u = 0;
    uint32_t ms = 0;
    int r;

    if (k->type == KT_DURATION || k->type == KT_DURATION_OFF) {
        r = config_parse_duration(v, &ms);
        u = ms;
    } else if (k->type == KT_SIZE32 || k->type == KT_SIZE64) {
        r = config_parse_size(v, &u);
    } else {
        r = parse_uint(v, &u);
    }
    if (r != 0 || (k->type == KT_CLOSE_CODE && !is_close_code(u)))
        return fail(why, n, "expected %s", types[k->type].expect);
    if ((u < k->min || u > k->max) &&
        !(k->type == KT_DURATION_OFF && u == 0))
        return fail_range(k, u, why, n);
    if (k->type == KT_WBITS && u == 8)
        u = 9;
    out->n = (int64_t)u;
    return 0;
}

/* Reads v as the value of k into *out; -EINVAL with why, or -ENOMEM. */
static int
parse_value(const struct key *k, const char *v, union value *out,
            char *why, size_t n)
{
    bool on;

    switch (k->type) {
    case KT_STRING:
        if (*v == '\0')
            return fail(why, n, "expected a value; remove the key to keep "
                        "the default");
        out->s = strdup(v);
        return out->s != NULL ? 0 : -ENOMEM;
    case KT_ORIGINS:
    case KT_TOKENS:
    case KT_PATHS:
        out->list = NULL;
        if (check_items(k, v, why, n) != 0)
            return -EINVAL;
        if (list_append(&out->list, v) == 0)
            return 0;
        list_free(out->list);
        return -ENOMEM;
    case KT_SWITCH:
        if (config_parse_switch(v, &on) != 0)
            break;
        out->n = on;
        return 0;
    case KT_OVERFLOW:
        if (strcmp(v, "drop") != 0 && strcmp(v, "close") != 0)
            break;
        out->n = strcmp(v, "close") == 0;
        return 0;
    case KT_LOG_LEVEL:
        out->n = log_level_parse(v);
        return out->n >= 0 ? 0 : fail(why, n, "expected %s",
                                      types[k->type].expect);
    case KT_WORKERS:
        if (strcmp(v, "auto") != 0)
            return parse_number(k, v, out, why, n);
        out->n = -1;
        return 0;
    default:
        return parse_number(k, v, out, why, n);
    }
    return fail(why, n, "expected %s", types[k->type].expect);
}

static bool
is_list(const struct key *k)
{
    return k->type == KT_ORIGINS || k->type == KT_TOKENS ||
           k->type == KT_PATHS;
}

/* Moves v into the member of base that k names. */
static void
store(const struct key *k, void *base, union value *v)
{
    char *f = (char *)base + k->off;
    uint64_t u64 = (uint64_t)v->n;
    uint32_t u32 = (uint32_t)v->n;
    uint16_t u16 = (uint16_t)v->n;
    bool b = v->n != 0;
    int i = (int)v->n;

    switch (k->type) {
    case KT_SIZE64:
        memcpy(f, &u64, sizeof(u64));
        break;
    case KT_DURATION:
    case KT_DURATION_OFF:
    case KT_SIZE32:
    case KT_U32:
        memcpy(f, &u32, sizeof(u32));
        break;
    case KT_U16:
    case KT_CLOSE_CODE:
        memcpy(f, &u16, sizeof(u16));
        break;
    case KT_SWITCH:
    case KT_OVERFLOW:
        memcpy(f, &b, sizeof(b));
        break;
    case KT_STRING:
        free(*(char **)(void *)f);
        memcpy(f, &v->s, sizeof(v->s));
        break;
    case KT_ORIGINS:
    case KT_TOKENS:
    case KT_PATHS:
        list_free(*(char ***)(void *)f);
        memcpy(f, &v->list, sizeof(v->list));
        break;
    default:
        memcpy(f, &i, sizeof(i));
        break;
    }
}

/* Copies the member k names from src to dst, which holds nothing yet. */
static int
copy_field(const struct key *k, void *dst, const void *src)
{
    char *d = (char *)dst + k->off;
    const char *s = (const char *)src + k->off;

    if (is_list(k))
        return list_dup(*(char **const *)(const void *)s,
                        (char ***)(void *)d);
    memcpy(d, s, types[k->type].size);
    return 0;
}

/* Sections */

static char *
trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static const char *
section_label(struct parser *p, char *buf, size_t n)
{
    if (p->sec == SEC_LISTEN)
        snprintf(buf, n, "[listen %s]", p->cfg->listeners[p->cur].address);
    else if (p->sec == SEC_ROUTE)
        snprintf(buf, n, "[route %s]", p->cfg->routes[p->cur].path);
    else if (p->sec == SEC_ADMIN)
        snprintf(buf, n, "[admin]");
    else if (p->sec == SEC_REDIS)
        snprintf(buf, n, "[redis]");
    else
        snprintf(buf, n, "[server]");
    return buf;
}

static void
open_server(struct parser *p, const char *arg)
{
    if (*arg != '\0') {
        report(p, p->line, "[server] takes no argument, found '%s'", arg);
        return;
    }
    p->sec = SEC_SERVER;
    if (p->server_line == 0)
        p->server_line = p->line;
}

/* [admin] and [redis]: no argument, once. */
static void
open_single(struct parser *p, const char *arg, enum section sec,
            const char *label, int *line)
{
    if (*arg != '\0') {
        report(p, p->line, "%s takes no argument, found '%s'", label, arg);
        return;
    }
    if (*line != 0) {
        report(p, p->line, "duplicate %s section (first at line %d)", label,
               *line);
        return;
    }
    *line = p->line;
    p->sec = sec;
}

/* "*:80" is "0.0.0.0:80"; unparsable addresses compare as written. */
static bool
same_address(const struct listener_cfg *a, const struct listener_cfg *b,
             const char *b_address)
{
    if (a->addrlen != 0 && b->addrlen != 0)
        return a->addrlen == b->addrlen &&
               memcmp(&a->addr, &b->addr, a->addrlen) == 0;
    return strcmp(a->address, b_address) == 0;
}

static void
add_listener(struct parser *p, struct listener_cfg *l)
{
    struct config *c = p->cfg;
    size_t n = c->n_listeners;
    struct listener_cfg *ls;
    struct seen *ss;

    ss = reallocarray(p->listen_seen, n + 1, sizeof(*ss));
    if (ss != NULL)
        p->listen_seen = ss;
    ls = reallocarray(c->listeners, n + 1, sizeof(*ls));
    if (ls != NULL)
        c->listeners = ls;
    if (ss == NULL || ls == NULL || l->address == NULL) {
        free(l->address);
        p->oom = true;
        return;
    }
    memset(&ss[n], 0, sizeof(ss[n]));
    ls[n] = *l;
    c->n_listeners++;
    p->sec = SEC_LISTEN;
    p->cur = n;
}

static void
open_listen(struct parser *p, const char *arg)
{
    struct listener_cfg l = { .backlog = 511, .line = p->line };
    const char *why;

    if (*arg == '\0') {
        report(p, p->line, "[listen] needs an address, as in "
               "[listen 127.0.0.1:8080]");
        return;
    }
    why = parse_address(arg, &l);
    if (why != NULL)
        report(p, p->line, "bad address '%s' in [listen]: %s", arg, why);
    for (size_t i = 0; i < p->cfg->n_listeners; i++) {
        if (same_address(&p->cfg->listeners[i], &l, arg)) {
            report(p, p->line, "duplicate [listen %s]: the address is "
                   "already on line %d", arg, p->cfg->listeners[i].line);
            return;
        }
    }
    l.address = strdup(arg);
    add_listener(p, &l);
}

static void
add_route(struct parser *p, const char *path)
{
    struct config *c = p->cfg;
    size_t n = c->n_routes;
    struct route *rs;
    struct seen *ss;
    char *copy = strdup(path);

    ss = reallocarray(p->route_seen, n + 1, sizeof(*ss));
    if (ss != NULL)
        p->route_seen = ss;
    rs = reallocarray(c->routes, n + 1, sizeof(*rs));
    if (rs != NULL)
        c->routes = rs;
    if (ss == NULL || rs == NULL || copy == NULL) {
        free(copy);
        p->oom = true;
        return;
    }
    memset(&ss[n], 0, sizeof(ss[n]));
    memset(&rs[n], 0, sizeof(rs[n]));
    rs[n].path = copy;
    rs[n].line = p->line;
    c->n_routes++;
    p->sec = SEC_ROUTE;
    p->cur = n;
}

static void
open_route(struct parser *p, const char *arg)
{
    if (*arg == '\0') {
        report(p, p->line, "[route] needs a path, as in [route /echo]");
        return;
    }
    if (*arg != '/')
        report(p, p->line, "route path '%s' must start with '/'", arg);
    else if (strpbrk(arg, " \t?#") != NULL)
        report(p, p->line, "route path '%s' must not contain spaces, '?' "
               "or '#': it matches the request path exactly", arg);
    for (size_t i = 0; i < p->cfg->n_routes; i++) {
        if (strcmp(p->cfg->routes[i].path, arg) == 0) {
            report(p, p->line, "duplicate [route %s]: the path is already "
                   "on line %d", arg, p->cfg->routes[i].line);
            return;
        }
    }
    add_route(p, arg);
}

/* "[name]" or "[name argument]"; keys of a bad section are ignored. */
static void
section_header(struct parser *p, char *s)
{
    size_t len = strlen(s);
    char *name, *arg;

    p->sec = SEC_SKIP;
    if (len < 2 || s[len - 1] != ']') {
        report(p, p->line, "bad section header '%s': expected [NAME] or "
               "[NAME ARGUMENT]", s);
        return;
    }
    s[len - 1] = '\0';
    name = trim(s + 1);
    arg = name + strcspn(name, " \t");
    if (*arg != '\0') {
        *arg++ = '\0';
        arg = trim(arg);
    }
    if (strcmp(name, "server") == 0)
        open_server(p, arg);
    else if (strcmp(name, "listen") == 0)
        open_listen(p, arg);
    else if (strcmp(name, "route") == 0)
        open_route(p, arg);
    else if (strcmp(name, "admin") == 0)
        open_single(p, arg, SEC_ADMIN, "[admin]", &p->cfg->admin.line);
    else if (strcmp(name, "redis") == 0)
        open_single(p, arg, SEC_REDIS, "[redis]", &p->cfg->redis.line);
    else
        report(p, p->line, "unknown section [%s]: expected [server], "
               "[listen ADDRESS], [route PATH], [admin] or [redis]", name);
}

/* Keys */

static unsigned
section_scope(enum section s)
{
    switch (s) {
    case SEC_SERVER:
        return SC_SERVER | SC_OPTS;
    case SEC_LISTEN:
        return SC_LISTEN;
    case SEC_ROUTE:
        return SC_ROUTE | SC_OPTS;
    case SEC_ADMIN:
        return SC_ADMIN;
    case SEC_REDIS:
        return SC_REDIS;
    default:
        return 0;
    }
}

static size_t
key_index(const char *name, unsigned scope)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if ((keys[i].scope & scope) && strcmp(keys[i].name, name) == 0)
            return i;
    return 0;
}

static const struct key *
find_key(const char *name, unsigned scope)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if ((keys[i].scope & scope) && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* The struct the current section's key k is stored in. */
static void *
key_base(struct parser *p, const struct key *k)
{
    struct config *c = p->cfg;

    if (p->sec == SEC_LISTEN)
        return &c->listeners[p->cur];
    if (p->sec == SEC_ROUTE)
        return k->scope == SC_ROUTE ? (void *)&c->routes[p->cur] :
               (void *)&c->routes[p->cur].opts;
    if (p->sec == SEC_ADMIN)
        return &c->admin;
    if (p->sec == SEC_REDIS)
        return &c->redis;
    return k->scope == SC_SERVER ? (void *)&c->server : (void *)&c->defaults;
}

static struct seen *
current_seen(struct parser *p)
{
    if (p->sec == SEC_LISTEN)
        return &p->listen_seen[p->cur];
    if (p->sec == SEC_ROUTE)
        return &p->route_seen[p->cur];
    if (p->sec == SEC_ADMIN)
        return &p->admin_seen;
    if (p->sec == SEC_REDIS)
        return &p->redis_seen;
    return &p->server_seen;
}

static void
unknown_key(struct parser *p, const char *name)
{
    static const char *const homes[] = {
        [SC_SERVER] = "[server]", [SC_LISTEN] = "[listen ADDRESS]",
        [SC_ROUTE] = "[route PATH]", [SC_OPTS] = "[route PATH] or [server]",
        [SC_ADMIN] = "[admin]", [SC_REDIS] = "[redis]",
    };
    const struct key *k = find_key(name, SC_SERVER | SC_LISTEN | SC_ROUTE |
                                   SC_OPTS | SC_ADMIN | SC_REDIS);
    char label[256];

    section_label(p, label, sizeof(label));
    if (k != NULL)
        report(p, p->line, "unknown key '%s' in %s: it belongs in %s", name,
               label, homes[k->scope]);
    else
        report(p, p->line, "unknown key '%s' in %s", name, label);
}

/* Checks and stores one key = value of the current section. */
static int
set_key(struct parser *p, const struct key *k, const char *value)
{
    struct seen *seen = current_seen(p);
    size_t idx = (size_t)(k - keys);
    union value v;
    char why[256], label[256];
    int r;

    if (seen->line[idx] != 0) {
        report(p, p->line, "duplicate key '%s' in %s (first set on line %d)",
               k->name, section_label(p, label, sizeof(label)),
               seen->line[idx]);
        return -EINVAL;
    }
    r = parse_value(k, value, &v, why, sizeof(why));
    if (r == -ENOMEM)
        p->oom = true;
    if (r == -EINVAL)
        report(p, p->line, "bad value '%s' for %s: %s", value, k->name, why);
    if (r != 0)
        return r;
    seen->line[idx] = p->line;
    if (k->scope == SC_ROUTE)
        p->cfg->routes[p->cur].app_line = p->line;
    store(k, key_base(p, k), &v);
    return 0;
}

/* An indented line after "key = value": more items of a list. */
static void
continue_key(struct parser *p, const char *value)
{
    const struct key *k = p->cont_key;
    char why[256];
    char ***list;

    if (!is_list(k)) {
        report(p, p->line, "indented line continues '%s', which takes one "
               "value; only lists continue on indented lines", k->name);
        p->cont = CONT_SKIP;
        return;
    }
    if (check_items(k, value, why, sizeof(why)) != 0) {
        report(p, p->line, "bad value '%s' for %s: %s", value, k->name, why);
        p->cont = CONT_SKIP;
        return;
    }
    list = (char ***)(void *)((char *)key_base(p, k) + k->off);
    if (list_append(list, value) != 0)
        p->oom = true;
}

#define APP_OPTION_PREFIX "option."
#define APP_OPTION_NAME_MAX 64

/*
 * option.NAME = VALUE in a [route]: handed to the route's app as is
 * (sock_option, setup's options). NAME is 1..64 of [A-Za-z0-9_.-]; the
 * value is any text, "" allowed; each NAME once per route.
 */
static void
set_app_option(struct parser *p, const char *key, const char *value)
{
    const char *name = key + strlen(APP_OPTION_PREFIX);
    size_t len = strlen(name), n;
    char label[256];
    char ***kv;
    char **l;

    if (p->sec != SEC_ROUTE) {
        report(p, p->line, "'%s' in %s: app options belong in [route PATH]",
               key, section_label(p, label, sizeof(label)));
        return;
    }
    if (len == 0 || len > APP_OPTION_NAME_MAX ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_.-") != len) {
        report(p, p->line, "bad app option name '%s': option.NAME takes "
               "1-%d letters, digits, '_', '.' or '-'", key,
               APP_OPTION_NAME_MAX);
        return;
    }
    kv = &p->cfg->routes[p->cur].app_options;
    n = list_len(*kv);
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (strcmp((*kv)[i], name) == 0) {
            report(p, p->line, "duplicate key '%s' in %s", key,
                   section_label(p, label, sizeof(label)));
            return;
        }
    }
    l = reallocarray(*kv, n + 3, sizeof(*l));
    if (l == NULL) {
        p->oom = true;
        return;
    }
    *kv = l;
    l[n] = strdup(name);
    l[n + 1] = strdup(value);
    l[n + 2] = NULL;
    if (l[n] == NULL || l[n + 1] == NULL) {
        free(l[n]);
        free(l[n + 1]);
        l[n] = NULL;
        p->oom = true;
    }
}

/* libinih's handler; the section it passes is ignored (see the top). */
static int
on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    const struct key *k;

    (void)section;
    if (p->cont_line) {
        continue_key(p, value);
        return 1;
    }
    p->cont = CONT_SKIP;
    if (p->sec == SEC_SKIP)
        return 1;
    if (p->sec == SEC_NONE) {
        report(p, p->line, "key '%s' outside any section: put it under "
               "[server], [listen ADDRESS] or [route PATH]", name);
        return 1;
    }
    if (strncmp(name, APP_OPTION_PREFIX, strlen(APP_OPTION_PREFIX)) == 0) {
        set_app_option(p, name, value);
        return 1;
    }
    k = find_key(name, section_scope(p->sec));
    if (k == NULL)
        unknown_key(p, name);
    else if (set_key(p, k, value) == 0) {
        p->cont = CONT_YES;
        p->cont_key = k;
    }
    return 1;
}

/* Reading lines */

static char *
next_text_line(struct parser *p)
{
    const char *s = p->text, *nl;
    size_t n;
    char *b;

    if (s == NULL || *s == '\0')
        return NULL;
    nl = strchr(s, '\n');
    n = nl != NULL ? (size_t)(nl - s) : strlen(s);
    if (n + 1 > p->bufcap) {
        b = realloc(p->buf, n + 1);
        if (b == NULL) {
            p->oom = true;
            return NULL;
        }
        p->buf = b;
        p->bufcap = n + 1;
    }
    memcpy(p->buf, s, n);
    p->buf[n] = '\0';
    p->text = nl != NULL ? nl + 1 : s + n;
    return p->buf;
}

/* The next line without its '\n', of any length; NULL at the end. */
static char *
next_raw_line(struct parser *p)
{
    ssize_t n;

    if (p->fp == NULL)
        return next_text_line(p);
    n = getline(&p->buf, &p->bufcap, p->fp);
    if (n < 0) {
        if (ferror(p->fp))
            p->read_errno = errno != 0 ? errno : EIO;
        return NULL;
    }
    if (n > 0 && p->buf[n - 1] == '\n')
        p->buf[n - 1] = '\0';
    return p->buf;
}

/* A '#' or ';' after whitespace starts a comment (DESIGN §6's example). */
static void
strip_comment(char *s)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        if ((s[i] == '#' || s[i] == ';') && i > 0 &&
            isspace((unsigned char)s[i - 1])) {
            s[i] = '\0';
            return;
        }
    }
}

/* "key = value": the key must be a name libinih splits the same way. */
static const char *
key_line(struct parser *p, char *s)
{
    size_t n = strcspn(s, "=");

    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
            report(p, p->line, "bad key name '%.*s': expected letters, "
                   "digits and '_'", (int)n, s);
            p->cont = CONT_SKIP;
            return "";
        }
    }
    if (n == 0) {
        report(p, p->line, "missing key name before '='");
        p->cont = CONT_SKIP;
        return "";
    }
    return s;
}

/*
 * Decides what libinih gets for one raw line: "" for what we handle here
 * (blank lines, comments, section headers, syntax errors), the key line
 * unindented, or an indented continuation.
 */
static const char *
classify_line(struct parser *p, char *line)
{
    char *s;
    bool indented;

    if (p->line == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0)
        line += 3;  /* UTF-8 byte order mark */
    strip_comment(line);
    s = trim(line);
    indented = s != line;
    if (*s == '\0' || *s == '#' || *s == ';')
        return "";
    if (*s == '[') {
        p->cont = CONT_NO;
        section_header(p, s);
        return "";
    }
    if (strchr(s, '=') != NULL)
        return key_line(p, s);
    if (indented && p->cont == CONT_YES) {
        p->cont_line = true;
        return s;
    }
    if (!indented || p->cont != CONT_SKIP)
        report(p, p->line, "expected 'key = value' or a [section], found "
               "'%s'", s);
    p->cont = CONT_SKIP;
    return "";
}

/* libinih's reader: called once per line, so it counts them. */
static char *
read_line(char *str, int num, void *stream)
{
    struct parser *p = stream;
    char *line = next_raw_line(p);
    const char *out;

    if (line == NULL)
        return NULL;
    p->line++;
    p->cont_line = false;
    out = classify_line(p, line);
    /* Room for the continuation's leading space and the NUL. */
    if (strlen(out) + 2 > (size_t)num) {
        report(p, p->line, "line too long: %zu characters without "
               "comments, at most %d; continue a long list on indented "
               "lines", strlen(out), num - 2);
        out = "";
        p->cont_line = false;
        p->cont = CONT_SKIP;
    }
    snprintf(str, (size_t)num, "%s%s", p->cont_line ? " " : "", out);
    return str;
}

/* Cross-checks */

static void
check_empty_lists(struct parser *p, const struct seen *s,
                  const void *opts)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *f = (const char *)opts + keys[i].off;

        if (keys[i].scope != SC_OPTS || !is_list(&keys[i]) ||
            s->line[i] == 0 || list_len(*(char **const *)(const void *)f))
            continue;
        report(p, s->line[i], "%s is empty: list at least one value, or "
               "remove the key", keys[i].name);
    }
}

static bool
sets_watermarks(const struct seen *s)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (s->line[i] != 0 && strncmp(keys[i].name, "send_", 5) == 0)
            return true;
    return false;
}

static void
check_watermarks(struct parser *p, const struct route_opts *o, int line,
                 const char *label)
{
    if (o->send_low_watermark < o->send_high_watermark &&
        o->send_high_watermark <= o->send_hard_limit)
        return;
    report(p, line, "%s: expected send_low_watermark < send_high_watermark "
           "<= send_hard_limit, got %llu, %llu and %llu bytes", label,
           (unsigned long long)o->send_low_watermark,
           (unsigned long long)o->send_high_watermark,
           (unsigned long long)o->send_hard_limit);
}

static void
finish_route(struct parser *p, size_t i)
{
    struct route *r = &p->cfg->routes[i];
    struct seen *s = &p->route_seen[i];
    char label[256];

    snprintf(label, sizeof(label), "[route %s]", r->path);
    if (r->app == NULL)
        report(p, r->line, "%s has no app: add app = NAME (a built-in) or "
               "app = /path/to/module.so", label);
    check_empty_lists(p, s, &r->opts);
    /* [server] may come after the route: fill in its defaults only now. */
    for (size_t k = 0; k < N_KEYS; k++)
        if (keys[k].scope == SC_OPTS && s->line[k] == 0 &&
            copy_field(&keys[k], &r->opts, &p->cfg->defaults) != 0)
            p->oom = true;
    if (sets_watermarks(s))
        check_watermarks(p, &r->opts, r->line, label);
}

static void
finish_listener(struct parser *p, const struct listener_cfg *l)
{
    if (list_len(l->tls_sni_certificates) != list_len(l->tls_sni_keys))
        report(p, l->line, "[listen %s] needs one tls_sni_keys entry per "
               "tls_sni_certificates entry (%zu certificates, %zu keys)",
               l->address, list_len(l->tls_sni_certificates),
               list_len(l->tls_sni_keys));
    if (l->tls_sni_certificates != NULL && l->tls_certificate == NULL)
        report(p, l->line, "[listen %s] sets tls_sni_certificates without "
               "tls_certificate (the default certificate)", l->address);
    if ((l->tls_certificate == NULL) == (l->tls_key == NULL))
        return;
    report(p, l->line, "[listen %s] sets %s without %s", l->address,
           l->tls_key == NULL ? "tls_certificate" : "tls_key",
           l->tls_key == NULL ? "tls_key" : "tls_certificate");
}

static void
finish_admin_redis(struct parser *p)
{
    struct config *c = p->cfg;
    char host[REDIS_WIRE_HOST_MAX];
    int port;

    if (c->admin.line != 0 && c->admin.listen == NULL)
        report(p, c->admin.line, "[admin] needs listen = ADDRESS:PORT");
    if (c->admin.listen != NULL &&
        config_parse_address(c->admin.listen, &c->admin.l) != 0)
        report(p, p->admin_seen.line[key_index("listen", SC_ADMIN)],
               "bad [admin] listen address '%s': expected IPV4:PORT, "
               "[IPV6]:PORT or *:PORT", c->admin.listen);
    for (size_t i = 0; c->admin.listen != NULL && i < c->n_listeners; i++)
        if (c->admin.l.addrlen == c->listeners[i].addrlen &&
            memcmp(&c->admin.l.addr, &c->listeners[i].addr,
                   c->admin.l.addrlen) == 0)
            report(p, c->admin.line, "[admin] listen %s is also a [listen] "
                   "address", c->admin.listen);
    if (c->redis.line != 0 && c->redis.address == NULL)
        report(p, c->redis.line, "[redis] needs address = HOST:PORT");
    if (c->redis.address != NULL &&
        redis_wire_parse_address(c->redis.address, host, sizeof(host),
                                 &port) != 0)
        report(p, p->redis_seen.line[key_index("address", SC_REDIS)],
               "bad [redis] address '%s': expected HOST:PORT or "
               "[IPV6]:PORT", c->redis.address);
    if (c->redis.prefix != NULL &&
        strlen(c->redis.prefix) > REDIS_WIRE_PREFIX_MAX)
        report(p, p->redis_seen.line[key_index("prefix", SC_REDIS)],
               "[redis] prefix is over %d bytes", REDIS_WIRE_PREFIX_MAX);
    if (c->redis.address != NULL && c->redis.prefix == NULL)
        c->redis.prefix = strdup("sock:");
}

/*
 * A message can only complete while the worker may hold it: a route whose
 * max_message_size is over max_partial_bytes would close every client
 * that sends one that big, whatever else is going on.
 */
static void
check_partial_budget(struct parser *p)
{
    const struct config *c = p->cfg;
    size_t mm = key_index("max_message_size", SC_OPTS);
    size_t pb = key_index("max_partial_bytes", SC_SERVER);
    int line;

    for (size_t i = 0; i < c->n_routes; i++) {
        const struct route *r = &c->routes[i];

        if (r->opts.max_message_size <= c->server.max_partial_bytes)
            continue;
        line = p->route_seen[i].line[mm] ? p->route_seen[i].line[mm]
               : p->server_seen.line[pb] ? p->server_seen.line[pb]
               : p->server_seen.line[mm];
        report(p, line, "[route %s] max_message_size (%llu bytes) is over "
               "[server] max_partial_bytes (%llu bytes), which bounds what "
               "a worker holds of unfinished messages: raise "
               "max_partial_bytes or lower max_message_size", r->path,
               (unsigned long long)r->opts.max_message_size,
               (unsigned long long)c->server.max_partial_bytes);
    }
}

static void
finish(struct parser *p)
{
    struct config *c = p->cfg;

    if (p->read_errno != 0)
        report(p, 0, "cannot read: %s", strerror(p->read_errno));
    if (c->n_listeners == 0)
        report(p, 0, "no [listen ADDRESS] section: nothing to listen on");
    if (c->n_routes == 0)
        report(p, 0, "no [route PATH] section: no WebSocket endpoint");
    for (size_t i = 0; i < c->n_listeners; i++)
        finish_listener(p, &c->listeners[i]);
    check_empty_lists(p, &p->server_seen, &c->defaults);
    if (sets_watermarks(&p->server_seen))
        check_watermarks(p, &c->defaults, p->server_line, "[server]");
    for (size_t i = 0; i < c->n_routes; i++)
        finish_route(p, i);
    check_partial_budget(p);
    finish_admin_redis(p);
}

/* Entry points */

void
config_route_opts_default(struct route_opts *o)
{
    *o = (struct route_opts){
        .idle_timeout_ms = 60000,
        .close_timeout_ms = 5000,
        .max_frame_size = 8 * MIB,
        .max_message_size = 8 * MIB,
        .message_timeout_ms = 60000,
        .max_inflate_ratio = 25,
        .send_low_watermark = 64 * KIB,
        .send_high_watermark = 1 * MIB,
        .send_hard_limit = 16 * MIB,
        .max_info_queue = 1024,
        .ping_interval_ms = 0,
        .pong_timeout_ms = 30000,
        .idle_close_code = 1000,
        .shutdown_close_code = 1001,
        .compress_level = 1,
        .compress_mem_level = 8,
        .server_max_window_bits = 15,
        .client_max_window_bits = 15,
        .compress_threshold = 64,
    };
}

static struct config *
config_new(const char *name)
{
    struct config *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->path = strdup(name);
    c->server = (struct server_cfg){
        .workers = -1,
        .runtime_dir = strdup("/run/sockd"),
        .log_level = LOG_LVL_INFO,
        .node_id = 1,
        .handshake_timeout_ms = 10000,
        .max_request_head = 8 * KIB,
        .max_headers = 64,
        .max_partial_bytes = 256 * MIB,
        .shutdown_timeout_ms = 10000,
        .drain_timeout_ms = 30000,
        .drain_spread_ms = 10000,
        .worker_shutdown_timeout_ms = 60000,
        .worker_heartbeat_timeout_ms = 10000,
    };
    config_route_opts_default(&c->defaults);
    c->admin.l.backlog = 511; /* [listen]'s default: a burst of scrapes */
    if (c->path == NULL || c->server.runtime_dir == NULL) {
        config_free(c);
        return NULL;
    }
    return c;
}

static void
route_opts_destroy(struct route_opts *o)
{
    list_free(o->allowed_origins);
    list_free(o->subprotocols);
}

void
config_free(struct config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].address);
        free(c->listeners[i].tls_certificate);
        free(c->listeners[i].tls_key);
        list_free(c->listeners[i].tls_sni_certificates);
        list_free(c->listeners[i].tls_sni_keys);
    }
    for (size_t i = 0; i < c->n_routes; i++) {
        free(c->routes[i].path);
        free(c->routes[i].app);
        free(c->routes[i].static_dir);
        list_free(c->routes[i].app_options);
        route_opts_destroy(&c->routes[i].opts);
    }
    free(c->listeners);
    free(c->routes);
    route_opts_destroy(&c->defaults);
    free(c->admin.listen);
    free(c->redis.address);
    free(c->redis.prefix);
    free(c->redis.password);
    free(c->server.runtime_dir);
    free(c->server.user);
    free(c->server.log_file);
    free(c->path);
    free(c);
}

static void
parser_destroy(struct parser *p)
{
    for (size_t i = 0; i < p->n_errs; i++)
        free(p->errs[i].msg);
    free(p->errs);
    free(p->listen_seen);
    free(p->route_seen);
    free(p->buf);
}

/* Runs libinih over p's source; the config, or NULL and *errors. */
static struct config *
parse(struct parser *p, char **errors)
{
    struct config *c = config_new(p->name);
    int r;

    if (c == NULL) {
        *errors = NULL;
        if (asprintf(errors, "%s: out of memory\n", p->name) < 0)
            *errors = NULL;
        return NULL;
    }
    p->cfg = c;
    r = ini_parse_stream(read_line, p, on_key, p);
    /* We pass libinih only lines it accepts; anything else is a bug. */
    if (r > 0)
        report(p, r, "syntax error");
    else if (r < 0)
        p->oom = true;
    finish(p);
    if (p->n_errs == 0 && !p->oom) {
        *errors = NULL;
        parser_destroy(p);
        return c;
    }
    *errors = format_errors(p);
    parser_destroy(p);
    config_free(c);
    return NULL;
}

struct config *
config_parse_string(const char *text, const char *name, char **errors)
{
    struct parser p = {
        .name = name != NULL ? name : "<string>",
        .text = text != NULL ? text : "",
    };

    return parse(&p, errors);
}

struct config *
config_load(const char *path, char **errors)
{
    struct parser p = { .name = path };
    struct config *c;

    p.fp = fopen(path, "re");
    if (p.fp == NULL) {
        int err = errno;

        if (asprintf(errors, "%s: cannot open: %s\n", path,
                     strerror(err)) < 0)
            *errors = NULL;
        return NULL;
    }
    c = parse(&p, errors);
    fclose(p.fp);
    return c;
}

/* The effective configuration (sockd -T) */

/* One key's value as it would be written in the file. */
static void
format_value(const struct key *k, const void *base, char *buf, size_t n)
{
    static const char *const levels[] = {
        [LOG_LVL_ERR] = "err", [LOG_LVL_WARN] = "warn",
        [LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug",
    };
    const char *f = (const char *)base + k->off;
    uint64_t v = 0;
    uint32_t u32;
    uint16_t u16;
    bool b;
    int i;

    switch (k->type) {
    case KT_SIZE64:
        memcpy(&v, f, sizeof(v));
        break;
    case KT_DURATION:
    case KT_DURATION_OFF:
    case KT_SIZE32:
    case KT_U32:
        memcpy(&u32, f, sizeof(u32));
        v = u32;
        break;
    case KT_U16:
    case KT_CLOSE_CODE:
        memcpy(&u16, f, sizeof(u16));
        v = u16;
        break;
    case KT_SWITCH:
    case KT_OVERFLOW:
        memcpy(&b, f, sizeof(b));
        snprintf(buf, n, "%s", k->type == KT_SWITCH ? (b ? "on" : "off") :
                 (b ? "close" : "drop"));
        return;
    case KT_STRING:
        snprintf(buf, n, "%s", *(char *const *)(const void *)f);
        return;
    case KT_ORIGINS:
    case KT_TOKENS:
    case KT_PATHS: {
        char *const *l = *(char **const *)(const void *)f;
        size_t o = 0;

        buf[0] = '\0';
        for (size_t j = 0; l != NULL && l[j] != NULL && o < n; j++)
            o += (size_t)snprintf(buf + o, n - o, "%s%s", j ? ", " : "",
                                  l[j]);
        return;
    }
    default:
        memcpy(&i, f, sizeof(i));
        if (k->type == KT_WORKERS && i < 0)
            snprintf(buf, n, "auto");
        else if (k->type == KT_LOG_LEVEL && i >= 0 &&
                 (size_t)i < ARRAY_SIZE(levels) && levels[i] != NULL)
            snprintf(buf, n, "%s", levels[i]);
        else
            snprintf(buf, n, "%d", i);
        return;
    }
    format_bound(k->type, v, buf, n);
}

/* Every key of scope in base, unset strings and lists as comments; all
   of them as comments in a section that is off. */
static void
dump_keys(FILE *out, unsigned scope, const void *base, bool off)
{
    char val[4096];

    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        const void *p = (const char *)base + k->off;

        if (!(k->scope & scope))
            continue;
        if ((k->type == KT_STRING || is_list(k)) &&
            *(void *const *)p == NULL) {
            fprintf(out, "# %s: not set\n", k->name);
            continue;
        }
        if (k->scope == SC_REDIS && strcmp(k->name, "password") == 0) {
            fprintf(out, "# %s: set, not shown\n", k->name);
            continue;
        }
        format_value(k, base, val, sizeof(val));
        fprintf(out, "%s%s = %s\n", off ? "# " : "", k->name, val);
    }
}

void
config_dump(const struct config *c, FILE *out)
{
    fprintf(out, "# effective configuration of %s: every key, defaults "
            "included\n[server]\n", c->path);
    dump_keys(out, SC_SERVER, &c->server, false);
    dump_keys(out, SC_OPTS, &c->defaults, false);
    for (size_t i = 0; i < c->n_listeners; i++) {
        fprintf(out, "\n[listen %s]\n", c->listeners[i].address);
        dump_keys(out, SC_LISTEN, &c->listeners[i], false);
    }
    for (size_t i = 0; i < c->n_routes; i++) {
        fprintf(out, "\n[route %s]\n", c->routes[i].path);
        dump_keys(out, SC_ROUTE, &c->routes[i], false);
        dump_keys(out, SC_OPTS, &c->routes[i].opts, false);
    }
    /* A section without its address is off, and may not stand empty. */
    fprintf(out, "\n%s[admin]\n", c->admin.listen ? "" : "# off: ");
    dump_keys(out, SC_ADMIN, &c->admin, c->admin.listen == NULL);
    fprintf(out, "\n%s[redis]\n", c->redis.address ? "" : "# off: ");
    dump_keys(out, SC_REDIS, &c->redis, c->redis.address == NULL);
}
