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
 * Here: sections, lines, and each key as it comes. The value syntax is
 * config_value.c's, the key table config_keys.c's, the checks across
 * keys config_check.c's. Opening sockets, reading TLS files and resolving
 * apps is the master's.
 */
#include "config.h"
#include "config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "common.h"
#include "config_check.h"
#include "config_keys.h"
#include "config_value.h"
#include "log.h"

/* Messages */

void
config_report(struct parser *p, int line, const char *fmt, ...)
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
        config_report(p, p->line, "[server] takes no argument, found '%s'",
                      arg);
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
        config_report(p, p->line, "%s takes no argument, found '%s'", label,
                      arg);
        return;
    }
    if (*line != 0) {
        config_report(p, p->line, "duplicate %s section (first at line %d)",
                      label, *line);
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
        config_report(p, p->line, "[listen] needs an address, as in "
                      "[listen 127.0.0.1:8080]");
        return;
    }
    why = config_parse_address_why(arg, &l);
    if (why != NULL)
        config_report(p, p->line, "bad address '%s' in [listen]: %s", arg, why);
    for (size_t i = 0; i < p->cfg->n_listeners; i++) {
        if (same_address(&p->cfg->listeners[i], &l, arg)) {
            config_report(p, p->line, "duplicate [listen %s]: the address is "
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
        config_report(p, p->line, "[route] needs a path, as in [route /echo]");
        return;
    }
    if (*arg != '/')
        config_report(p, p->line, "route path '%s' must start with '/'", arg);
    else if (strpbrk(arg, " \t?#") != NULL)
        config_report(p, p->line,
                      "route path '%s' must not contain spaces, '?' "
                      "or '#': it matches the request path exactly", arg);
    for (size_t i = 0; i < p->cfg->n_routes; i++) {
        if (strcmp(p->cfg->routes[i].path, arg) == 0) {
            config_report(p, p->line,
                          "duplicate [route %s]: the path is already "
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
        config_report(p, p->line, "bad section header '%s': expected [NAME] or "
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
        config_report(p, p->line, "unknown section [%s]: expected "
                      "[server], [listen ADDRESS], [route PATH], [admin] or "
                      "[redis]", name);
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
    const struct key *k = config_key_find(name,
                                          SC_SERVER | SC_LISTEN | SC_ROUTE |
                                          SC_OPTS | SC_ADMIN | SC_REDIS);
    char label[256];

    section_label(p, label, sizeof(label));
    if (k != NULL)
        config_report(p, p->line, "unknown key '%s' in %s: it belongs in %s",
                      name, label, homes[k->scope]);
    else
        config_report(p, p->line, "unknown key '%s' in %s", name, label);
}

/* Checks and stores one key = value of the current section. */
static int
set_key(struct parser *p, const struct key *k, const char *value)
{
    struct seen *seen = current_seen(p);
    size_t idx = (size_t)(k - config_keys);
    union value v;
    char why[256], label[256];
    int r;

    if (seen->line[idx] != 0) {
        config_report(p, p->line,
                      "duplicate key '%s' in %s (first set on line %d)",
                      k->name, section_label(p, label, sizeof(label)),
                      seen->line[idx]);
        return -EINVAL;
    }
    r = config_key_parse(k, value, &v, why, sizeof(why));
    if (r == -ENOMEM)
        p->oom = true;
    if (r == -EINVAL)
        config_report(p, p->line, "bad value '%s' for %s: %s", value, k->name,
                      why);
    if (r != 0)
        return r;
    seen->line[idx] = p->line;
    if (k->scope == SC_ROUTE)
        p->cfg->routes[p->cur].app_line = p->line;
    config_key_store(k, key_base(p, k), &v);
    return 0;
}

/* An indented line after "key = value": more items of a list. */
static void
continue_key(struct parser *p, const char *value)
{
    const struct key *k = p->cont_key;
    char why[256];
    char ***list;

    if (!config_key_is_list(k)) {
        config_report(p, p->line,
                      "indented line continues '%s', which takes one "
                      "value; only lists continue on indented lines", k->name);
        p->cont = CONT_SKIP;
        return;
    }
    if (config_key_check_items(k, value, why, sizeof(why)) != 0) {
        config_report(p, p->line, "bad value '%s' for %s: %s", value, k->name,
                      why);
        p->cont = CONT_SKIP;
        return;
    }
    list = (char ***)(void *)((char *)key_base(p, k) + k->off);
    if (config_list_append(list, value) != 0)
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
        config_report(p, p->line,
                      "'%s' in %s: app options belong in [route PATH]",
                      key, section_label(p, label, sizeof(label)));
        return;
    }
    if (len == 0 || len > APP_OPTION_NAME_MAX ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_.-") != len) {
        config_report(p, p->line, "bad app option name '%s': option.NAME takes "
                      "1-%d letters, digits, '_', '.' or '-'", key,
                      APP_OPTION_NAME_MAX);
        return;
    }
    kv = &p->cfg->routes[p->cur].app_options;
    n = config_list_len(*kv);
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (strcmp((*kv)[i], name) == 0) {
            config_report(p, p->line, "duplicate key '%s' in %s", key,
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
        config_report(p, p->line, "key '%s' outside any section: put it under "
                      "[server], [listen ADDRESS] or [route PATH]", name);
        return 1;
    }
    if (strncmp(name, APP_OPTION_PREFIX, strlen(APP_OPTION_PREFIX)) == 0) {
        set_app_option(p, name, value);
        return 1;
    }
    k = config_key_find(name, section_scope(p->sec));
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
            config_report(p, p->line, "bad key name '%.*s': expected letters, "
                          "digits and '_'", (int)n, s);
            p->cont = CONT_SKIP;
            return "";
        }
    }
    if (n == 0) {
        config_report(p, p->line, "missing key name before '='");
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
        config_report(p, p->line,
                      "expected 'key = value' or a [section], found "
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
        config_report(p, p->line, "line too long: %zu characters without "
                      "comments, at most %d; continue a long list on indented "
                      "lines", strlen(out), num - 2);
        out = "";
        p->cont_line = false;
        p->cont = CONT_SKIP;
    }
    snprintf(str, (size_t)num, "%s%s", p->cont_line ? " " : "", out);
    return str;
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
        .max_fanout_backlog = 8 * MIB,
        .io_uring = true,
        .fanout_interval_ms = FANOUT_AUTO,
        .max_send_bytes = 256 * MIB,
        .max_deflate_memory = 256 * MIB,
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
    config_list_free(o->allowed_origins);
    config_list_free(o->subprotocols);
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
        config_list_free(c->listeners[i].tls_sni_certificates);
        config_list_free(c->listeners[i].tls_sni_keys);
    }
    for (size_t i = 0; i < c->n_routes; i++) {
        free(c->routes[i].path);
        free(c->routes[i].app);
        free(c->routes[i].static_dir);
        config_list_free(c->routes[i].app_options);
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
        config_report(p, r, "syntax error");
    else if (r < 0)
        p->oom = true;
    config_check(p);
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
