/*
 * config_keys.c: the key table of sockd.conf(5) (see config_keys.h), the
 * reading of one value into its member by the table, and the writing of
 * a whole config back out key by key (sockd -T). The value syntax itself
 * is config_value.c's; sections, lines and messages are config.c's.
 */
#include "config_keys.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config_value.h"
#include "settings.h"
#include "log.h"

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
    [KT_DURATION_AUTO] = { sizeof(uint32_t), MS_MAX,
                           "auto, 0 (off) or a duration such as 10ms" },
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

#define K(sc, st, name, member, type, lo, hi) \
    { name, type, sc, offsetof(st, member), lo, hi }
#define SRV(n, m, t, lo, hi) K(SC_SERVER, struct server_cfg, n, m, t, lo, hi)
#define LSN(n, m, t, lo, hi) K(SC_LISTEN, struct listener_cfg, n, m, t, lo, hi)
#define RTE(n, m, t, lo, hi) K(SC_ROUTE, struct route, n, m, t, lo, hi)
#define OPT(n, m, t, lo, hi) K(SC_OPTS, struct route_opts, n, m, t, lo, hi)
#define ADM(n, m, t, lo, hi) K(SC_ADMIN, struct admin_cfg, n, m, t, lo, hi)
#define RDS(n, m, t, lo, hi) K(SC_REDIS, struct redis_cfg, n, m, t, lo, hi)

const struct key config_keys[] = {
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
    SRV("fanout_interval", fanout_interval_ms, KT_DURATION_AUTO, 1, 1000),
    SRV("io_uring", io_uring, KT_SWITCH, 0, 1),
    SRV("max_send_bytes", max_send_bytes, KT_SIZE64, 1, SIZE63),
    SRV("max_deflate_memory", max_deflate_memory, KT_SIZE64, 0, SIZE63),
    SRV("max_fanout_backlog", max_fanout_backlog, KT_SIZE64, 64 * KIB,
        SIZE63),
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

_Static_assert(ARRAY_SIZE(config_keys) == CONFIG_N_KEYS,
               "CONFIG_N_KEYS in config_keys.h must count config_keys[]");

int
config_key_check_items(const struct key *k, const char *v, char *why,
                       size_t n)
{
    const char *s;
    size_t len;

    for (s = v; (s = config_list_next(s, &len)) != NULL; s += len) {
        if (k->type == KT_ORIGINS && !config_is_origin(s, len))
            return config_fail(why, n, "'%.*s' is not an origin; "
                               "expected scheme://host[:port] as in "
                               "https://example.com, or null", (int)len, s);
        if (k->type == KT_TOKENS && !config_is_token(s, len))
            return config_fail(why, n, "'%.*s' is not a valid subprotocol "
                               "name (an RFC 7230 token)", (int)len, s);
    }
    return 0;
}

/* A duration where 0 means off (and "auto" may be allowed too). */
static bool
is_duration_off(enum key_type t)
{
    return t == KT_DURATION_OFF || t == KT_DURATION_AUTO;
}

static void
format_bound(enum key_type t, uint64_t v, char *buf, size_t n)
{
    if (t == KT_DURATION || is_duration_off(t))
        config_format_duration(v, buf, n);
    else if (t == KT_SIZE32 || t == KT_SIZE64)
        config_format_size(v, buf, n);
    else
        snprintf(buf, n, "%llu", (unsigned long long)v);
}

static int
fail_range(const struct key *k, uint64_t v, char *why, size_t n)
{
    char lo[32], hi[32];

    format_bound(k->type, k->min, lo, sizeof(lo));
    format_bound(k->type, k->max, hi, sizeof(hi));
    if (is_duration_off(k->type) && k->max >= types[k->type].top)
        return config_fail(why, n, "must be 0 (off) or at least %s", lo);
    /* No point in quoting a maximum that only the type imposes. */
    if (v < k->min && k->max >= types[k->type].top)
        return config_fail(why, n, "must be at least %s", lo);
    return config_fail(why, n, "allowed %s to %s", lo, hi);
}

static int
parse_number(const struct key *k, const char *v, union value *out,
             char *why, size_t n)
{
    uint64_t u = 0;
    uint32_t ms = 0;
    int r;

    if (k->type == KT_DURATION || is_duration_off(k->type)) {
        r = config_parse_duration(v, &ms);
        u = ms;
    } else if (k->type == KT_SIZE32 || k->type == KT_SIZE64) {
        r = config_parse_size(v, &u);
    } else {
        r = config_parse_uint(v, &u);
    }
    if (r != 0 || (k->type == KT_CLOSE_CODE && !config_is_close_code(u)))
        return config_fail(why, n, "expected %s", types[k->type].expect);
    if ((u < k->min || u > k->max) && !(is_duration_off(k->type) && u == 0))
        return fail_range(k, u, why, n);
    if (k->type == KT_WBITS && u == 8)
        u = 9;
    out->n = (int64_t)u;
    return 0;
}

/* Reads v as the value of k into *out; -EINVAL with why, or -ENOMEM. */
int
config_key_parse(const struct key *k, const char *v, union value *out,
                 char *why, size_t n)
{
    bool on;

    switch (k->type) {
    case KT_STRING:
        if (*v == '\0')
            return config_fail(why, n,
                               "expected a value; remove the key to keep "
                               "the default");
        out->s = strdup(v);
        return out->s != NULL ? 0 : -ENOMEM;
    case KT_ORIGINS:
    case KT_TOKENS:
    case KT_PATHS:
        out->list = NULL;
        if (config_key_check_items(k, v, why, n) != 0)
            return -EINVAL;
        if (config_list_append(&out->list, v) == 0)
            return 0;
        config_list_free(out->list);
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
        return out->n >= 0 ? 0 : config_fail(why, n, "expected %s",
                                             types[k->type].expect);
    case KT_WORKERS:
        if (strcmp(v, "auto") != 0)
            return parse_number(k, v, out, why, n);
        out->n = -1;
        return 0;
    case KT_DURATION_AUTO:
        if (strcmp(v, "auto") != 0)
            return parse_number(k, v, out, why, n);
        out->n = FANOUT_AUTO;
        return 0;
    default:
        return parse_number(k, v, out, why, n);
    }
    return config_fail(why, n, "expected %s", types[k->type].expect);
}

bool
config_key_is_list(const struct key *k)
{
    return k->type == KT_ORIGINS || k->type == KT_TOKENS ||
           k->type == KT_PATHS;
}

/* Moves v into the member of base that k names. */
void
config_key_store(const struct key *k, void *base, union value *v)
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
    case KT_DURATION_AUTO:
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
        config_list_free(*(char ***)(void *)f);
        memcpy(f, &v->list, sizeof(v->list));
        break;
    default:
        memcpy(f, &i, sizeof(i));
        break;
    }
}

/* Copies the member k names from src to dst, which holds nothing yet. */
int
config_key_copy(const struct key *k, void *dst, const void *src)
{
    char *d = (char *)dst + k->off;
    const char *s = (const char *)src + k->off;

    if (config_key_is_list(k))
        return config_list_dup(*(char **const *)(const void *)s,
                               (char ***)(void *)d);
    memcpy(d, s, types[k->type].size);
    return 0;
}

size_t
config_key_index(const char *name, unsigned scope)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++)
        if ((config_keys[i].scope & scope) && strcmp(config_keys[i].name,
                                                     name) == 0)
            return i;
    return 0;
}

const struct key *
config_key_find(const char *name, unsigned scope)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++)
        if ((config_keys[i].scope & scope) && strcmp(config_keys[i].name,
                                                     name) == 0)
            return &config_keys[i];
    return NULL;
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
    case KT_DURATION_AUTO:
    case KT_SIZE32:
    case KT_U32:
        memcpy(&u32, f, sizeof(u32));
        if (k->type == KT_DURATION_AUTO && u32 == FANOUT_AUTO) {
            snprintf(buf, n, "auto");
            return;
        }
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

    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const struct key *k = &config_keys[i];
        const void *p = (const char *)base + k->off;

        if (!(k->scope & scope))
            continue;
        if ((k->type == KT_STRING || config_key_is_list(k)) &&
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

