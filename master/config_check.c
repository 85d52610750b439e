/*
 * config_check.c: what sockd.conf(5) requires across keys and sections,
 * checked once the whole file is read (a [server] may come after the
 * routes it gives defaults to): listeners and routes present, TLS pairs,
 * send watermarks in order, routes' message sizes within the worker's
 * budget, [admin] and [redis] complete. Each problem is reported at the
 * line that set the key at fault.
 */
#include "config_check.h"

#include <string.h>

#include "common.h"
#include "config.h"
#include "config_impl.h"
#include "config_keys.h"
#include "config_value.h"
#include "redis_wire.h"

static void
check_empty_lists(struct parser *p, const struct seen *s,
                  const void *opts)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const char *f = (const char *)opts + config_keys[i].off;

        if (config_keys[i].scope != SC_OPTS ||
            !config_key_is_list(&config_keys[i]) || s->line[i] == 0 ||
            config_list_len(*(char **const *)(const void *)f))
            continue;
        config_report(p, s->line[i], "%s is empty: list at least one value, "
                      "or remove the key", config_keys[i].name);
    }
}

static bool
sets_watermarks(const struct seen *s)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++)
        if (s->line[i] != 0 && strncmp(config_keys[i].name, "send_", 5) == 0)
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
    config_report(p, line,
                  "%s: expected send_low_watermark < send_high_watermark "
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
        config_report(p, r->line,
                      "%s has no app: add app = NAME (a built-in) or "
                      "app = /path/to/module.so", label);
    check_empty_lists(p, s, &r->opts);
    /* [server] may come after the route: fill in its defaults only now. */
    for (size_t k = 0; k < CONFIG_N_KEYS; k++)
        if (config_keys[k].scope == SC_OPTS && s->line[k] == 0 &&
            config_key_copy(&config_keys[k], &r->opts, &p->cfg->defaults) != 0)
            p->oom = true;
    if (sets_watermarks(s))
        check_watermarks(p, &r->opts, r->line, label);
}

static void
finish_listener(struct parser *p, const struct listener_cfg *l)
{
    if (config_list_len(l->tls_sni_certificates) !=
        config_list_len(l->tls_sni_keys))
        config_report(p, l->line,
                      "[listen %s] needs one tls_sni_keys entry per "
                      "tls_sni_certificates entry (%zu certificates, %zu keys)",
                      l->address, config_list_len(l->tls_sni_certificates),
                      config_list_len(l->tls_sni_keys));
    if (l->tls_sni_certificates != NULL && l->tls_certificate == NULL)
        config_report(p, l->line,
                      "[listen %s] sets tls_sni_certificates without "
                      "tls_certificate (the default certificate)", l->address);
    if ((l->tls_certificate == NULL) == (l->tls_key == NULL))
        return;
    config_report(p, l->line, "[listen %s] sets %s without %s", l->address,
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
        config_report(p, c->admin.line, "[admin] needs listen = ADDRESS:PORT");
    if (c->admin.listen != NULL &&
        config_parse_address(c->admin.listen, &c->admin.l) != 0)
        config_report(p, p->admin_seen.line[config_key_index("listen",
                                                             SC_ADMIN)],
                      "bad [admin] listen address '%s': expected IPV4:PORT, "
                      "[IPV6]:PORT or *:PORT", c->admin.listen);
    for (size_t i = 0; c->admin.listen != NULL && i < c->n_listeners; i++)
        if (c->admin.l.addrlen == c->listeners[i].addrlen &&
            memcmp(&c->admin.l.addr, &c->listeners[i].addr,
                   c->admin.l.addrlen) == 0)
            config_report(p, c->admin.line,
                          "[admin] listen %s is also a [listen] "
                          "address", c->admin.listen);
    if (c->redis.line != 0 && c->redis.address == NULL)
        config_report(p, c->redis.line, "[redis] needs address = HOST:PORT");
    if (c->redis.address != NULL &&
        redis_wire_parse_address(c->redis.address, host, sizeof(host),
                                 &port) != 0)
        config_report(p, p->redis_seen.line[config_key_index("address",
                                                             SC_REDIS)],
                      "bad [redis] address '%s': expected HOST:PORT or "
                      "[IPV6]:PORT", c->redis.address);
    if (c->redis.prefix != NULL &&
        strlen(c->redis.prefix) > REDIS_WIRE_PREFIX_MAX)
        config_report(p, p->redis_seen.line[config_key_index("prefix",
                                                             SC_REDIS)],
                      "[redis] prefix is over %d bytes", REDIS_WIRE_PREFIX_MAX);
    if (c->redis.address != NULL && c->redis.prefix == NULL)
        c->redis.prefix = strdup("sock:");
}

/*
 * Route i's key (bytes) is over [server] budget, which bounds what =
 * `bounds`: reported at the route's own line, else the [server] budget's,
 * else a [server] default of the route key.
 */
static void
report_over_budget(struct parser *p, size_t i, const char *key,
                   uint64_t value, const char *budget, uint64_t limit,
                   const char *bounds)
{
    size_t k = config_key_index(key, SC_OPTS);
    size_t b = config_key_index(budget, SC_SERVER);
    int line = p->route_seen[i].line[k] ? p->route_seen[i].line[k]
               : p->server_seen.line[b] ? p->server_seen.line[b]
               : p->server_seen.line[k];

    config_report(p, line,
                  "[route %s] %s (%llu bytes) is over [server] %s (%llu "
                  "bytes), which bounds %s: raise %s or lower %s",
                  p->cfg->routes[i].path, key, (unsigned long long)value,
                  budget, (unsigned long long)limit, bounds, budget, key);
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

    for (size_t i = 0; i < c->n_routes; i++)
        if (c->routes[i].opts.max_message_size > c->server.max_partial_bytes)
            report_over_budget(p, i, "max_message_size",
                               c->routes[i].opts.max_message_size,
                               "max_partial_bytes",
                               c->server.max_partial_bytes,
                               "what a worker holds of unfinished messages");
}

/*
 * One connection at its send_hard_limit must fit in max_send_bytes, or
 * the worker would close clients that are within their own limit. A
 * config that does not set max_send_bytes (older ones) gets the largest
 * send_hard_limit instead when that is over the default.
 */
static void
check_send_budget(struct parser *p)
{
    struct config *c = p->cfg;
    bool set = p->server_seen.line[config_key_index("max_send_bytes",
                                                    SC_SERVER)] != 0;

    for (size_t i = 0; i < c->n_routes; i++) {
        uint64_t hl = c->routes[i].opts.send_hard_limit;

        if (hl <= c->server.max_send_bytes)
            continue;
        if (!set)
            c->server.max_send_bytes = hl;
        else
            report_over_budget(p, i, "send_hard_limit", hl,
                               "max_send_bytes", c->server.max_send_bytes,
                               "what a worker holds in all its send "
                               "queues");
    }
}

void
config_check(struct parser *p)
{
    struct config *c = p->cfg;

    if (p->read_errno != 0)
        config_report(p, 0, "cannot read: %s", strerror(p->read_errno));
    if (c->n_listeners == 0)
        config_report(p, 0,
                      "no [listen ADDRESS] section: nothing to listen on");
    if (c->n_routes == 0)
        config_report(p, 0, "no [route PATH] section: no WebSocket endpoint");
    for (size_t i = 0; i < c->n_listeners; i++)
        finish_listener(p, &c->listeners[i]);
    check_empty_lists(p, &p->server_seen, &c->defaults);
    if (sets_watermarks(&p->server_seen))
        check_watermarks(p, &c->defaults, p->server_line, "[server]");
    for (size_t i = 0; i < c->n_routes; i++)
        finish_route(p, i);
    check_partial_budget(p);
    check_send_budget(p);
    finish_admin_redis(p);
}

