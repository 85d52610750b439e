/*
 * test_config.c: unit tests for master/config.c: the minimal file of
 * DESIGN §6, every key landing in its struct member, [server] defaults and
 * route overrides, each error message with its "FILE:LINE: " prefix, and
 * the value parsers. Files are only touched by the config_load tests.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config_keys.h"
#include "log.h"
#include "testutil.h"

/* DESIGN §6, verbatim. */
static const char minimal[] =
    "[server]\n"
    "workers = 2                  # 0: no master, one in-process worker "
    "(debugging)\n"
    "runtime_dir = /run/sockd     # control socket, bus sockets\n"
    "\n"
    "[listen 127.0.0.1:8080]\n"
    "\n"
    "[listen 0.0.0.0:8443]\n"
    "tls_certificate = /etc/sockd/cert.pem\n"
    "tls_key = /etc/sockd/key.pem\n"
    "\n"
    "[route /echo]\n"
    "app = echo                   # a built-in, or a path to an app module "
    "(.so)\n"
    "\n"
    "[route /chat]\n"
    "app = chat\n"
    "compress = on\n";

/* Three valid lines that the error cases append to. */
#define HEAD "[listen 127.0.0.1:8080]\n[route /echo]\napp = echo\n"

static struct config *
parse_ok(const char *text)
{
    char *errors = NULL;
    struct config *c = config_parse_string(text, "t.conf", &errors);

    ck_assert_msg(c != NULL, "unexpected errors:\n%s", errors);
    ck_assert_ptr_null(errors);
    return c;
}

/* The error text of a file that must not parse; the caller frees it. */
static char *
parse_bad(const char *text)
{
    char *errors = NULL;
    struct config *c = config_parse_string(text, "t.conf", &errors);

    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(errors);
    return errors;
}

static void
assert_defaults(const struct route_opts *o)
{
    ck_assert_uint_eq(o->idle_timeout_ms, 60000);
    ck_assert_uint_eq(o->close_timeout_ms, 5000);
    ck_assert_uint_eq(o->max_frame_size, 8u << 20);
    ck_assert_uint_eq(o->max_message_size, 8u << 20);
    ck_assert_uint_eq(o->message_timeout_ms, 60000);
    ck_assert_uint_eq(o->max_inflate_ratio, 25);
    ck_assert_uint_eq(o->send_low_watermark, 64u << 10);
    ck_assert_uint_eq(o->send_high_watermark, 1u << 20);
    ck_assert_uint_eq(o->send_hard_limit, 16u << 20);
    ck_assert_uint_eq(o->max_info_queue, 1024);
    ck_assert(!o->info_overflow_close);
    ck_assert_uint_eq(o->ping_interval_ms, 0);
    ck_assert_uint_eq(o->pong_timeout_ms, 30000);
    ck_assert_uint_eq(o->idle_close_code, 1000);
    ck_assert_uint_eq(o->shutdown_close_code, 1001);
    ck_assert_int_eq(o->compress_level, 1);
    ck_assert_int_eq(o->compress_mem_level, 8);
    ck_assert_int_eq(o->server_max_window_bits, 15);
    ck_assert_int_eq(o->client_max_window_bits, 15);
    ck_assert(!o->server_no_context_takeover);
    ck_assert(!o->client_no_context_takeover);
    ck_assert_uint_eq(o->compress_threshold, 64);
    ck_assert_ptr_null(o->allowed_origins);
    ck_assert_ptr_null(o->subprotocols);
}

static void
assert_in4(const struct listener_cfg *l, const char *ip, int port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&l->addr;
    char buf[INET_ADDRSTRLEN];

    ck_assert_uint_eq(l->addrlen, sizeof(*in));
    ck_assert_int_eq(in->sin_family, AF_INET);
    ck_assert_int_eq(ntohs(in->sin_port), port);
    ck_assert_str_eq(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)),
                     ip);
}

START_TEST(test_minimal)
{
    struct config *c = parse_ok(minimal);
    const struct server_cfg *s = &c->server;

    ck_assert_str_eq(c->path, "t.conf");
    ck_assert_int_eq(s->workers, 2);
    ck_assert_str_eq(s->runtime_dir, "/run/sockd");
    ck_assert_ptr_null(s->user);
    ck_assert_ptr_null(s->log_file);
    ck_assert_int_eq(s->log_level, LOG_LVL_INFO);
    ck_assert_uint_eq(s->node_id, 1);
    ck_assert_uint_eq(s->handshake_timeout_ms, 10000);
    ck_assert_uint_eq(s->max_request_head, 8192);
    ck_assert_uint_eq(s->max_headers, 64);
    ck_assert_uint_eq(s->max_connections, 0);
    ck_assert_uint_eq(s->max_partial_bytes, 256u << 20);
    ck_assert_uint_eq(s->fanout_interval_ms, FANOUT_AUTO);
    ck_assert(s->io_uring);
    ck_assert_uint_eq(s->max_fanout_backlog, 8u << 20);
    ck_assert_uint_eq(s->max_send_bytes, 256u << 20);
    ck_assert_uint_eq(s->max_deflate_memory, 256u << 20);
    ck_assert_uint_eq(s->shutdown_timeout_ms, 10000);
    ck_assert_uint_eq(s->drain_timeout_ms, 30000);
    ck_assert_uint_eq(s->drain_spread_ms, 10000);
    ck_assert_uint_eq(s->worker_shutdown_timeout_ms, 60000);
    ck_assert_uint_eq(s->worker_heartbeat_timeout_ms, 10000);

    ck_assert_uint_eq(c->n_listeners, 2);
    ck_assert_str_eq(c->listeners[0].address, "127.0.0.1:8080");
    assert_in4(&c->listeners[0], "127.0.0.1", 8080);
    ck_assert_int_eq(c->listeners[0].backlog, 511);
    ck_assert(!c->listeners[0].reuseport);
    ck_assert_ptr_null(c->listeners[0].tls_certificate);
    ck_assert_ptr_null(c->listeners[0].tls_key);
    ck_assert_int_eq(c->listeners[0].line, 5);
    ck_assert_str_eq(c->listeners[1].address, "0.0.0.0:8443");
    assert_in4(&c->listeners[1], "0.0.0.0", 8443);
    ck_assert_int_eq(c->listeners[1].backlog, 511);
    ck_assert_str_eq(c->listeners[1].tls_certificate, "/etc/sockd/cert.pem");
    ck_assert_str_eq(c->listeners[1].tls_key, "/etc/sockd/key.pem");
    ck_assert_int_eq(c->listeners[1].line, 7);

    ck_assert_uint_eq(c->n_routes, 2);
    ck_assert_str_eq(c->routes[0].path, "/echo");
    ck_assert_str_eq(c->routes[0].app, "echo");
    ck_assert_int_eq(c->routes[0].line, 11);
    ck_assert_int_eq(c->routes[0].app_line, 12);
    ck_assert(!c->routes[0].opts.compress);
    assert_defaults(&c->routes[0].opts);
    ck_assert_str_eq(c->routes[1].path, "/chat");
    ck_assert_str_eq(c->routes[1].app, "chat");
    ck_assert_int_eq(c->routes[1].line, 14);
    ck_assert_int_eq(c->routes[1].app_line, 15);
    ck_assert(c->routes[1].opts.compress);
    assert_defaults(&c->routes[1].opts);
    ck_assert(!c->defaults.compress);
    assert_defaults(&c->defaults);
    config_free(c);
}
END_TEST

/* Every key, set to something other than its default, lands in its member:
   this checks the offsets and types of the key table. */
START_TEST(test_every_key)
{
    static const char text[] =
        "[server]\n"
        "workers = 0\nruntime_dir = /tmp/rt\nuser = sockd\n"
        "log_file = /var/log/sockd.log\nlog_level = debug\nnode_id = 42\n"
        "handshake_timeout = 3s\nmax_request_head = 16KiB\n"
        "max_headers = 100\nmax_connections = 5000\n"
        "max_partial_bytes = 64MiB\nmessage_timeout = 45s\n"
        "fanout_interval = 15ms\nmax_fanout_backlog = 2MiB\n"
        "max_send_bytes = 64MiB\nmax_deflate_memory = 0\nio_uring = off\n"
        "shutdown_timeout = 4s\ndrain_timeout = 1m\ndrain_spread = 20s\n"
        "worker_shutdown_timeout = 2m\nworker_heartbeat_timeout = 30s\n"
        "idle_timeout = 2m\nclose_timeout = 7s\nmax_frame_size = 1MiB\n"
        "max_message_size = 4MiB\nmax_inflate_ratio = 10\n"
        "send_low_watermark = 32KiB\nsend_high_watermark = 512KiB\n"
        "send_hard_limit = 4MiB\nmax_info_queue = 64\n"
        "info_overflow = close\nping_interval = 20s\npong_timeout = 10s\n"
        "idle_close_code = 4000\nshutdown_close_code = 1012\n"
        "compress = yes\ncompress_level = 6\ncompress_mem_level = 9\n"
        "server_max_window_bits = 8\nclient_max_window_bits = 10\n"
        "server_no_context_takeover = true\n"
        "client_no_context_takeover = 1\ncompress_threshold = 128\n"
        "allowed_origins = https://a.example https://b.example:8443\n"
        "subprotocols = chat.v2, chat.v1\n"
        "[listen 10.0.0.1:80]\nbacklog = 128\nreuseport = on\n"
        "[route /x]\napp = /usr/lib/sock/x.so\n";
    struct config *c = parse_ok(text);
    const struct server_cfg *s = &c->server;
    const struct route_opts *o = &c->routes[0].opts;

    ck_assert_int_eq(s->workers, 0);
    ck_assert_str_eq(s->runtime_dir, "/tmp/rt");
    ck_assert_str_eq(s->user, "sockd");
    ck_assert_str_eq(s->log_file, "/var/log/sockd.log");
    ck_assert_int_eq(s->log_level, LOG_LVL_DEBUG);
    ck_assert_uint_eq(s->node_id, 42);
    ck_assert_uint_eq(s->handshake_timeout_ms, 3000);
    ck_assert_uint_eq(s->max_request_head, 16384);
    ck_assert_uint_eq(s->max_headers, 100);
    ck_assert_uint_eq(s->max_connections, 5000);
    ck_assert_uint_eq(s->max_partial_bytes, 64u << 20);
    ck_assert_uint_eq(s->fanout_interval_ms, 15);
    ck_assert(!s->io_uring);
    ck_assert_uint_eq(s->max_fanout_backlog, 2u << 20);
    ck_assert_uint_eq(s->max_send_bytes, 64u << 20);
    ck_assert_uint_eq(s->max_deflate_memory, 0);
    ck_assert_uint_eq(s->shutdown_timeout_ms, 4000);
    ck_assert_uint_eq(s->drain_timeout_ms, 60000);
    ck_assert_uint_eq(s->drain_spread_ms, 20000);
    ck_assert_uint_eq(s->worker_shutdown_timeout_ms, 120000);
    ck_assert_uint_eq(s->worker_heartbeat_timeout_ms, 30000);
    ck_assert_int_eq(c->listeners[0].backlog, 128);
    ck_assert(c->listeners[0].reuseport);
    ck_assert_str_eq(c->routes[0].app, "/usr/lib/sock/x.so");

    ck_assert_uint_eq(o->idle_timeout_ms, 120000);
    ck_assert_uint_eq(o->close_timeout_ms, 7000);
    ck_assert_uint_eq(o->max_frame_size, 1u << 20);
    ck_assert_uint_eq(o->max_message_size, 4u << 20);
    ck_assert_uint_eq(o->message_timeout_ms, 45000);
    ck_assert_uint_eq(o->max_inflate_ratio, 10);
    ck_assert_uint_eq(o->send_low_watermark, 32768);
    ck_assert_uint_eq(o->send_high_watermark, 524288);
    ck_assert_uint_eq(o->send_hard_limit, 4u << 20);
    ck_assert_uint_eq(o->max_info_queue, 64);
    ck_assert(o->info_overflow_close);
    ck_assert_uint_eq(o->ping_interval_ms, 20000);
    ck_assert_uint_eq(o->pong_timeout_ms, 10000);
    ck_assert_uint_eq(o->idle_close_code, 4000);
    ck_assert_uint_eq(o->shutdown_close_code, 1012);
    ck_assert(o->compress);
    ck_assert_int_eq(o->compress_level, 6);
    ck_assert_int_eq(o->compress_mem_level, 9);
    ck_assert_int_eq(o->server_max_window_bits, 9);   /* 8 reads as 9 */
    ck_assert_int_eq(o->client_max_window_bits, 10);
    ck_assert(o->server_no_context_takeover);
    ck_assert(o->client_no_context_takeover);
    ck_assert_uint_eq(o->compress_threshold, 128);
    ck_assert_str_eq(o->allowed_origins[0], "https://a.example");
    ck_assert_str_eq(o->allowed_origins[1], "https://b.example:8443");
    ck_assert_ptr_null(o->allowed_origins[2]);
    ck_assert_str_eq(o->subprotocols[0], "chat.v2");
    ck_assert_str_eq(o->subprotocols[1], "chat.v1");
    ck_assert_ptr_null(o->subprotocols[2]);
    /* The route owns copies, not the defaults' arrays. */
    ck_assert_ptr_ne(o->allowed_origins, c->defaults.allowed_origins);
    ck_assert_ptr_ne(o->allowed_origins[0], c->defaults.allowed_origins[0]);
    ck_assert_str_eq(c->defaults.subprotocols[1], "chat.v1");
    config_free(c);
}
END_TEST

START_TEST(test_workers_auto)
{
    struct config *c = parse_ok("[server]\nworkers = auto\n" HEAD);

    ck_assert_int_eq(c->server.workers, -1);
    config_free(c);
    c = parse_ok("[server]\nworkers = 256\n" HEAD);
    ck_assert_int_eq(c->server.workers, 256);
    config_free(c);
}
END_TEST

/* fanout_interval: auto (the default), 0 or off-by-zero, or 1ms to 1s. */
START_TEST(test_fanout_interval_auto)
{
    struct config *c = parse_ok("[server]\nfanout_interval = auto\n" HEAD);

    ck_assert_uint_eq(c->server.fanout_interval_ms, FANOUT_AUTO);
    config_free(c);
    c = parse_ok("[server]\nfanout_interval = 0\n" HEAD);
    ck_assert_uint_eq(c->server.fanout_interval_ms, 0);
    config_free(c);
    c = parse_ok("[server]\nfanout_interval = 1s\n" HEAD);
    ck_assert_uint_eq(c->server.fanout_interval_ms, 1000);
    config_free(c);
}
END_TEST

/* 0 turns the heartbeat off; otherwise 1s is the least, with no maximum
   but the type's. */
START_TEST(test_heartbeat_timeout)
{
    static const struct {
        const char *value;
        uint32_t ms;
    } ok[] = {
        { "0", 0 }, { "0s", 0 }, { "1s", 1000 }, { "1000ms", 1000 },
        { "1001ms", 1001 }, { "10s", 10000 }, { "1h", 3600000 },
        { "4294967295ms", 4294967295u },
    };
    char text[256];

    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        struct config *c;

        snprintf(text, sizeof(text),
                 "[server]\nworker_heartbeat_timeout = %s\n" HEAD,
                 ok[i].value);
        c = parse_ok(text);
        ck_assert_msg(c->server.worker_heartbeat_timeout_ms == ok[i].ms,
                      "%s: got %u", ok[i].value,
                      c->server.worker_heartbeat_timeout_ms);
        config_free(c);
    }
}
END_TEST

/* [server] comes after the route it applies to; the route's own value
   wins; a route after [server] gets the defaults too. */
START_TEST(test_message_timeout_off)
{
    struct config *c = parse_ok(HEAD "message_timeout = 0\n");

    ck_assert_uint_eq(c->routes[0].opts.message_timeout_ms, 0);
    ck_assert_uint_eq(c->defaults.message_timeout_ms, 60000);
    config_free(c);
}
END_TEST

/* A config from before max_send_bytes keeps working: the budget grows to
   fit its largest send_hard_limit. */
START_TEST(test_send_budget_fits_hard_limit)
{
    struct config *c = parse_ok(HEAD "send_hard_limit = 512MiB\n"
                                "[route /b]\napp = b\n"
                                "send_hard_limit = 300MiB\n");

    ck_assert_uint_eq(c->server.max_send_bytes, 512u << 20);
    config_free(c);
    c = parse_ok(HEAD "send_hard_limit = 1MiB\n");
    ck_assert_uint_eq(c->server.max_send_bytes, 256u << 20);
    config_free(c);
}
END_TEST

START_TEST(test_server_defaults_any_order)
{
    static const char text[] =
        "[listen 127.0.0.1:8080]\n"
        "[route /a]\n"
        "app = a\n"
        "idle_timeout = 5s\n"
        "subprotocols = mine\n"
        "[server]\n"
        "idle_timeout = 90s\n"
        "compress = on\n"
        "max_frame_size = 64k\n"
        "subprotocols = v2 v1\n"
        "[route /b]\n"
        "app = b\n"
        "compress = off\n";
    struct config *c = parse_ok(text);
    const struct route_opts *a = &c->routes[0].opts;
    const struct route_opts *b = &c->routes[1].opts;

    ck_assert_uint_eq(a->idle_timeout_ms, 5000);
    ck_assert(a->compress);
    ck_assert_uint_eq(a->max_frame_size, 65536);
    ck_assert_str_eq(a->subprotocols[0], "mine");
    ck_assert_ptr_null(a->subprotocols[1]);
    ck_assert_uint_eq(b->idle_timeout_ms, 90000);
    ck_assert(!b->compress);
    ck_assert_uint_eq(b->max_frame_size, 65536);
    ck_assert_str_eq(b->subprotocols[0], "v2");
    ck_assert_str_eq(b->subprotocols[1], "v1");
    ck_assert_ptr_null(b->subprotocols[2]);
    ck_assert_uint_eq(c->defaults.idle_timeout_ms, 90000);
    /* Options not set anywhere keep DESIGN's defaults. */
    ck_assert_uint_eq(a->pong_timeout_ms, 30000);
    ck_assert_uint_eq(b->send_hard_limit, 16u << 20);
    config_free(c);
}
END_TEST

START_TEST(test_comments_and_syntax)
{
    static const char text[] =
        "\xef\xbb\xbf# a comment\n"
        "; another\n"
        "  [server]   ; trailing\n"
        "\tuser = web#1   # '#' inside a value stays\n"
        "log_file=/var/log/a;b ; but ' ;' starts a comment\n"
        "runtime_dir = /run/x\r\n"
        "[listen [::1]:8080]   # IPv6 needs a reader-side header parser\n"
        "[listen *:9000]\n"
        "[route /echo]\n"
        "app = echo";   /* no final newline */
    struct config *c = parse_ok(text);
    const struct sockaddr_in6 *in6 =
        (const struct sockaddr_in6 *)&c->listeners[0].addr;

    ck_assert_str_eq(c->server.user, "web#1");
    ck_assert_str_eq(c->server.log_file, "/var/log/a;b");
    ck_assert_str_eq(c->server.runtime_dir, "/run/x");
    ck_assert_str_eq(c->listeners[0].address, "[::1]:8080");
    ck_assert_int_eq(in6->sin6_family, AF_INET6);
    ck_assert_int_eq(ntohs(in6->sin6_port), 8080);
    ck_assert(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
    ck_assert_uint_eq(c->listeners[0].addrlen, sizeof(*in6));
    assert_in4(&c->listeners[1], "0.0.0.0", 9000);
    ck_assert_str_eq(c->routes[0].app, "echo");
    config_free(c);
}
END_TEST

/* Lists: commas and spaces, and indented continuation lines. */
START_TEST(test_list_continuation)
{
    static const char text[] =
        HEAD
        "allowed_origins =\n"
        "    https://a.example,https://b.example\n"
        "\n"
        "    # comment lines do not end the list\n"
        "    null\n"
        "  subprotocols = x  \n";
    struct config *c = parse_ok(text);
    char **o = c->routes[0].opts.allowed_origins;

    ck_assert_str_eq(o[0], "https://a.example");
    ck_assert_str_eq(o[1], "https://b.example");
    ck_assert_str_eq(o[2], "null");
    ck_assert_ptr_null(o[3]);
    ck_assert_str_eq(c->routes[0].opts.subprotocols[0], "x");
    ck_assert_ptr_null(c->routes[0].opts.subprotocols[1]);
    config_free(c);
}
END_TEST

START_TEST(test_close_codes_accepted)
{
    static const unsigned ok[] = { 1000, 1003, 1007, 1014, 3000, 4999 };
    char text[256];

    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        snprintf(text, sizeof(text), HEAD "idle_close_code = %u\n", ok[i]);
        struct config *c = parse_ok(text);

        ck_assert_uint_eq(c->routes[0].opts.idle_close_code, ok[i]);
        config_free(c);
    }
}
END_TEST

/* One bad file each; the line prefix and a phrase of the message. */
static const struct {
    const char *text;
    const char *prefix;
    const char *phrase;
} bad[] = {
    { HEAD "[admin]\n", "t.conf:4: ", "[admin] needs listen = ADDRESS:PORT" },
    { HEAD "[redis]\naddress = 127.0.0.1:6379\nurl = x\n", "t.conf:6: ",
      "unknown key 'url' in [redis]" },
    { HEAD "[redis]\n", "t.conf:4: ", "[redis] needs address = HOST:PORT" },
    { HEAD "[redis]\naddress = localhost\n", "t.conf:5: ",
      "bad [redis] address 'localhost'" },
    { HEAD "[redis]\naddress = [::1]6379\n", "t.conf:5: ",
      "expected HOST:PORT or [IPV6]:PORT" },
    { HEAD "[admin]\nlisten = nowhere\n", "t.conf:5: ",
      "bad [admin] listen address 'nowhere'" },
    { HEAD "[admin]\nlisten = 127.0.0.1:1\n[admin]\n", "t.conf:6: ",
      "duplicate [admin] section (first at line 4)" },
    { HEAD "[admin x]\n", "t.conf:4: ", "[admin] takes no argument" },
    { HEAD "[nosuch]\n", "t.conf:4: ", "unknown section [nosuch]: expected" },
    { "[listen 127.0.0.1:1]\ntls_certificate = a\ntls_key = b\n"
      "tls_sni_certificates = c d\ntls_sni_keys = e\n[route /echo]\n"
      "app = echo\n", "t.conf:1: ", "needs one tls_sni_keys entry per "
      "tls_sni_certificates entry (2 certificates, 1 keys)" },
    { "[listen 127.0.0.1:1]\ntls_sni_certificates = c\ntls_sni_keys = e\n"
      "[route /echo]\napp = echo\n", "t.conf:1: ",
      "sets tls_sni_certificates without tls_certificate" },
    { HEAD "[server]\nwrkers = 2\n", "t.conf:5: ",
      "unknown key 'wrkers' in [server]" },
    { HEAD "backlog = 5\n", "t.conf:4: ",
      "unknown key 'backlog' in [route /echo]: it belongs in [listen" },
    { HEAD "[listen 127.0.0.2:1]\nidle_timeout = 1s\n", "t.conf:5: ",
      "it belongs in [route PATH] or [server]" },
    { "workers = 2\n" HEAD, "t.conf:1: ",
      "key 'workers' outside any section" },
    { HEAD "[server]\nworkers = lots\n", "t.conf:5: ",
      "bad value 'lots' for workers: expected auto or a number" },
    { HEAD "[server]\nworkers = 257\n", "t.conf:5: ",
      "bad value '257' for workers: allowed 0 to 256" },
    { HEAD "[server]\nworkers = 2\nworkers = 3\n", "t.conf:6: ",
      "duplicate key 'workers' in [server] (first set on line 5)" },
    { "[server]\nuser = a\n" HEAD "[server]\nuser = b\n", "t.conf:7: ",
      "duplicate key 'user' in [server] (first set on line 2)" },
    { HEAD "idle_timeout = 1s\nidle_timeout = 2s\n", "t.conf:5: ",
      "duplicate key 'idle_timeout' in [route /echo] (first set on line 4)" },
    { HEAD "[listen 127.0.0.1:8080]\n", "t.conf:4: ",
      "duplicate [listen 127.0.0.1:8080]: the address is already on line 1" },
    { HEAD "[listen *:9000]\n[listen 0.0.0.0:9000]\n", "t.conf:5: ",
      "duplicate [listen 0.0.0.0:9000]" },
    { HEAD "[route /echo]\napp = x\n", "t.conf:4: ",
      "duplicate [route /echo]: the path is already on line 2" },
    { HEAD "[route echo2]\napp = x\n", "t.conf:4: ",
      "route path 'echo2' must start with '/'" },
    { HEAD "[route /a?b]\napp = x\n", "t.conf:4: ",
      "route path '/a?b' must not contain" },
    { HEAD "[route]\n", "t.conf:4: ", "[route] needs a path" },
    { HEAD "[route /chat]\ncompress = on\n", "t.conf:4: ",
      "[route /chat] has no app" },
    { "[route /echo]\napp = echo\n", "t.conf: ",
      "no [listen ADDRESS] section" },
    { "[listen 127.0.0.1:8080]\n", "t.conf: ", "no [route PATH] section" },
    { HEAD "[route /w]\napp = w\nsend_low_watermark = 2MiB\n", "t.conf:4: ",
      "[route /w]: expected send_low_watermark < send_high_watermark <= "
      "send_hard_limit, got 2097152, 1048576 and 16777216 bytes" },
    { HEAD "[route /w]\napp = w\nsend_high_watermark = 32MiB\n",
      "t.conf:4: ", "send_high_watermark <= send_hard_limit" },
    { HEAD "send_low_watermark = 1MiB\n", "t.conf:2: ",
      "[route /echo]: expected send_low_watermark" },
    { HEAD "[server]\nmax_partial_bytes = 4MiB\n", "t.conf:5: ",
      "[route /echo] max_message_size (8388608 bytes) is over [server] "
      "max_partial_bytes (4194304 bytes)" },
    { HEAD "max_message_size = 512MiB\n", "t.conf:4: ",
      "[route /echo] max_message_size (536870912 bytes) is over" },
    { HEAD "[server]\nmax_message_size = 300MiB\n", "t.conf:5: ",
      "max_partial_bytes (268435456 bytes)" },
    { HEAD "[server]\nmax_partial_bytes = 0\n", "t.conf:5: ",
      "bad value '0' for max_partial_bytes" },
    { HEAD "[server]\nfanout_interval = 2s\n", "t.conf:5: ",
      "bad value '2s' for fanout_interval: allowed 1ms to 1s" },
    { HEAD "[server]\nfanout_interval = soon\n", "t.conf:5: ",
      "bad value 'soon' for fanout_interval: expected auto, 0 (off) or a "
      "duration" },
    { HEAD "[server]\nfanout_interval = Auto\n", "t.conf:5: ",
      "bad value 'Auto' for fanout_interval" },
    { HEAD "[server]\nmax_send_bytes = 8MiB\n", "t.conf:5: ",
      "[route /echo] send_hard_limit (16777216 bytes) is over [server] "
      "max_send_bytes (8388608 bytes)" },
    { HEAD "send_hard_limit = 512MiB\n[server]\nmax_send_bytes = 300MiB\n",
      "t.conf:4: ",
      "send_hard_limit (536870912 bytes) is over [server] max_send_bytes" },
    { HEAD "[server]\nmax_deflate_memory = much\n", "t.conf:5: ",
      "bad value 'much' for max_deflate_memory" },
    { HEAD "[server]\nmax_send_bytes = 0\n", "t.conf:5: ",
      "bad value '0' for max_send_bytes" },
    { HEAD "[server]\nmax_fanout_backlog = 1KiB\n", "t.conf:5: ",
      "bad value '1KiB' for max_fanout_backlog" },
    { HEAD "[server]\nmax_fanout_backlog = lots\n", "t.conf:5: ",
      "bad value 'lots' for max_fanout_backlog" },
    { HEAD "message_timeout = soon\n", "t.conf:4: ",
      "bad value 'soon' for message_timeout" },
    { HEAD "[server]\nsend_hard_limit = 512KiB\n", "t.conf:4: ",
      "[server]: expected send_low_watermark" },
    { HEAD "idle_close_code = 1005\n", "t.conf:4: ",
      "bad value '1005' for idle_close_code: expected a close code: "
      "1000-1003, 1007-1014 or 3000-4999" },
    { HEAD "shutdown_close_code = 2000\n", "t.conf:4: ",
      "bad value '2000' for shutdown_close_code" },
    { HEAD "shutdown_close_code = 5000\n", "t.conf:4: ",
      "bad value '5000' for shutdown_close_code" },
    { HEAD "idle_close_code = 1015\n", "t.conf:4: ", "1007-1014" },
    { "[listen localhost:8080]\n[route /echo]\napp = echo\n", "t.conf:1: ",
      "bad address 'localhost:8080' in [listen]: the host must be a numeric "
      "IPv4 address, [IPv6] or *; names such as localhost are not resolved" },
    { HEAD "[listen ::1:80]\n", "t.conf:4: ", "needs brackets" },
    { HEAD "[listen 1.2.3.4:70000]\n", "t.conf:4: ",
      "the port must be a number from 0 to 65535" },
    { HEAD "[listen]\n", "t.conf:4: ", "[listen] needs an address" },
    { HEAD "[server\n", "t.conf:4: ", "bad section header '[server'" },
    { HEAD "[server main]\n", "t.conf:4: ", "[server] takes no argument" },
    { HEAD "just words\n", "t.conf:4: ",
      "expected 'key = value' or a [section], found 'just words'" },
    { HEAD "= 5\n", "t.conf:4: ", "missing key name" },
    { HEAD "max frame = 5\n", "t.conf:4: ", "bad key name 'max frame'" },
    { HEAD "info_overflow = panic\n", "t.conf:4: ",
      "bad value 'panic' for info_overflow: expected drop or close" },
    { HEAD "[server]\nlog_level = loud\n", "t.conf:5: ",
      "expected err, warn, info or debug" },
    { HEAD "compress_level = 10\n", "t.conf:4: ",
      "bad value '10' for compress_level: allowed 0 to 9" },
    { HEAD "compress_mem_level = 0\n", "t.conf:4: ", "allowed 1 to 9" },
    { HEAD "server_max_window_bits = 7\n", "t.conf:4: ", "allowed 8 to 15" },
    { HEAD "client_max_window_bits = 16\n", "t.conf:4: ",
      "allowed 8 to 15" },
    { HEAD "[server]\nmax_request_head = 512\n", "t.conf:5: ",
      "bad value '512' for max_request_head: allowed 1KiB to 1MiB" },
    { HEAD "[server]\nmax_request_head = 2m\n", "t.conf:5: ",
      "allowed 1KiB to 1MiB" },
    { HEAD "[server]\nnode_id = 0\n", "t.conf:5: ", "allowed 1 to 65535" },
    { HEAD "[server]\nmax_headers = 1001\n", "t.conf:5: ",
      "allowed 1 to 1000" },
    { HEAD "[server]\nworker_heartbeat_timeout = 999ms\n", "t.conf:5: ",
      "bad value '999ms' for worker_heartbeat_timeout: must be 0 (off) or "
      "at least 1s" },
    { HEAD "[server]\nworker_heartbeat_timeout = 1ms\n", "t.conf:5: ",
      "must be 0 (off) or at least 1s" },
    { HEAD "[server]\nworker_heartbeat_timeout = off\n", "t.conf:5: ",
      "bad value 'off' for worker_heartbeat_timeout: expected 0 (off) or a "
      "duration" },
    { HEAD "[server]\nworker_heartbeat_timeout = -1s\n", "t.conf:5: ",
      "expected 0 (off) or a duration" },
    { HEAD "[server]\nworker_heartbeat_timeout = 4294967296ms\n",
      "t.conf:5: ", "expected 0 (off) or a duration" },
    { HEAD "worker_heartbeat_timeout = 5s\n", "t.conf:4: ",
      "unknown key 'worker_heartbeat_timeout' in [route /echo]: it belongs "
      "in [server]" },
    { HEAD "[server]\nworker_heartbeat_timeout = 5s\n"
      "worker_heartbeat_timeout = 6s\n", "t.conf:6: ",
      "duplicate key 'worker_heartbeat_timeout' in [server] (first set on "
      "line 5)" },
    { HEAD "[server]\nhandshake_timeout = 0\n", "t.conf:5: ",
      "bad value '0' for handshake_timeout: must be at least 1ms" },
    { HEAD "max_frame_size = 100\n", "t.conf:4: ",
      "bad value '100' for max_frame_size: must be at least 125" },
    { HEAD "max_message_size = 9223372036854775808\n", "t.conf:4: ",
      "allowed 1 to 9223372036854775807" },
    { HEAD "idle_timeout = 99999999999999999999s\n", "t.conf:4: ",
      "bad value '99999999999999999999s' for idle_timeout: expected a "
      "duration" },
    { HEAD "idle_timeout = 10x\n", "t.conf:4: ", "expected a duration" },
    { HEAD "idle_timeout = -1s\n", "t.conf:4: ", "expected a duration" },
    { HEAD "max_frame_size = 10x\n", "t.conf:4: ", "expected a size" },
    { HEAD "compress = maybe\n", "t.conf:4: ",
      "bad value 'maybe' for compress: expected on or off" },
    { HEAD "[listen 127.0.0.1:8443]\ntls_certificate = /c.pem\n",
      "t.conf:4: ",
      "[listen 127.0.0.1:8443] sets tls_certificate without tls_key" },
    { HEAD "[listen 127.0.0.1:8443]\ntls_key = /k.pem\n", "t.conf:4: ",
      "sets tls_key without tls_certificate" },
    { HEAD "[server]\nuser =\n", "t.conf:5: ",
      "bad value '' for user: expected a value" },
    { HEAD "allowed_origins = https://a.example example.com\n", "t.conf:4: ",
      "'example.com' is not an origin" },
    { HEAD "allowed_origins = https://a.example/\n", "t.conf:4: ",
      "is not an origin" },
    { HEAD "subprotocols = a/b\n", "t.conf:4: ",
      "'a/b' is not a valid subprotocol name" },
    { HEAD "subprotocols = a\n  b c/d\n", "t.conf:5: ",
      "bad value 'b c/d' for subprotocols" },
    { HEAD "subprotocols = ,\n", "t.conf:4: ",
      "subprotocols is empty" },
    { HEAD "idle_timeout = 5s\n  10s\n", "t.conf:5: ",
      "indented line continues 'idle_timeout', which takes one value" },
    { HEAD "[server]\n  stray\n", "t.conf:5: ",
      "expected 'key = value' or a [section], found 'stray'" },
    { HEAD "  stray\n", "t.conf:4: ",
      "indented line continues 'app', which takes one value" },
};

START_TEST(test_error)
{
    char *e = parse_bad(bad[_i].text);
    size_t len = strlen(e);

    ck_assert_msg(strncmp(e, bad[_i].prefix, strlen(bad[_i].prefix)) == 0,
                  "case %d: want prefix '%s', got: %s", _i, bad[_i].prefix, e);
    ck_assert_msg(strstr(e, bad[_i].phrase) != NULL,
                  "case %d: want '%s', got: %s", _i, bad[_i].phrase, e);
    ck_assert_msg(len > 0 && strchr(e, '\n') == e + len - 1,
                  "case %d: want one line, got: %s", _i, e);
    free(e);
}
END_TEST

/* option.NAME = VALUE: the app's, per route, kept in order as written. */
START_TEST(test_app_options)
{
    struct config *c = parse_ok(HEAD "option.redis = 127.0.0.1:6379\n"
                                "option.key-prefix.v2 = tok: x  # note\n"
                                "option.empty =\n"
                                "[route /b]\napp = echo\n");
    char **kv = c->routes[0].app_options;

    ck_assert_ptr_nonnull(kv);
    ck_assert_str_eq(kv[0], "redis");
    ck_assert_str_eq(kv[1], "127.0.0.1:6379");
    ck_assert_str_eq(kv[2], "key-prefix.v2");
    ck_assert_str_eq(kv[3], "tok: x");
    ck_assert_str_eq(kv[4], "empty");
    ck_assert_str_eq(kv[5], "");
    ck_assert_ptr_null(kv[6]);
    ck_assert_ptr_null(c->routes[1].app_options);
    config_free(c);
}
END_TEST

static const struct {
    const char *text, *want;
} bad_options[] = {
    { HEAD "option.a = 1\noption.a = 2\n",
      "t.conf:5: duplicate key 'option.a' in [route /echo]\n" },
    { HEAD "option. = 1\n",
      "t.conf:4: bad app option name 'option.': option.NAME takes 1-64 "
      "letters, digits, '_', '.' or '-'\n" },
    { HEAD "option.a b = 1\n",
      "t.conf:4: bad key name 'option.a b'" },
    { HEAD "option.x12345678901234567890123456789012345678901234567890"
      "12345678901234 = 1\n",
      "t.conf:4: bad app option name 'option.x1234567890" },
    { "[server]\noption.a = 1\n" HEAD,
      "t.conf:2: 'option.a' in [server]: app options belong in [route PATH]"
      "\n" },
};

START_TEST(test_app_option_errors)
{
    char *e = parse_bad(bad_options[_i].text);

    ck_assert_msg(strncmp(e, bad_options[_i].want,
                          strlen(bad_options[_i].want)) == 0,
                  "case %d: want '%s', got: %s", _i, bad_options[_i].want, e);
    free(e);
}
END_TEST

START_TEST(test_line_too_long)
{
    static const char want[] = "t.conf:4: line too long: 265 characters "
                               "without comments, at most 198; continue a "
                               "long list on indented lines\n";
    char text[512], item[300];
    char *e;

    memset(item, 'a', 250);
    item[250] = '\0';
    snprintf(text, sizeof(text), HEAD "subprotocols = %s\n  more\n", item);
    e = parse_bad(text);
    /* The continuation of the refused line is not reported again. */
    ck_assert_str_eq(e, want);
    free(e);
}
END_TEST

/* All problems, one line each, in file order, whole-file ones last. */
START_TEST(test_several_errors)
{
    static const char text[] =
        "[server]\n"                  /* 1 */
        "workers = many\n"            /* 2 */
        "bogus = 1\n"                 /* 3 */
        "[route /a]\n"                /* 4: no app, reported at the end */
        "compress = sometimes\n"      /* 5 */
        "[nosuch]\n"                  /* 6 */
        "port = 1\n"                  /* 7: ignored in an unknown section */
        "[route /a]\n"                /* 8 */
        "[server]\n"                  /* 9 */
        "workers = 4\n";              /* 10 */
    static const char want[] =
        "t.conf:2: bad value 'many' for workers: expected auto or a number "
        "of workers from 0 to 256\n"
        "t.conf:3: unknown key 'bogus' in [server]\n"
        "t.conf:4: [route /a] has no app: add app = NAME (a built-in) or "
        "app = /path/to/module.so\n"
        "t.conf:5: bad value 'sometimes' for compress: expected on or off "
        "(also yes/no, true/false, 1/0)\n"
        "t.conf:6: unknown section [nosuch]: expected [server], "
        "[listen ADDRESS], [route PATH], [admin] or [redis]\n"
        "t.conf:8: duplicate [route /a]: the path is already on line 4\n"
        "t.conf: no [listen ADDRESS] section: nothing to listen on\n";
    char *e = parse_bad(text);

    /* workers = many was not stored, so line 10 is no duplicate. */
    ck_assert_str_eq(e, want);
    free(e);
}
END_TEST

START_TEST(test_parse_duration)
{
    static const struct {
        const char *s;
        uint32_t ms;
    } good[] = {
        { "500ms", 500 }, { "30s", 30000 }, { "5m", 300000 },
        { "1h", 3600000 }, { "10", 10000 }, { "0", 0 }, { "0ms", 0 },
        { "4294967295ms", 4294967295u }, { "4294967s", 4294967000u },
        { "1193h", 4294800000u },
    };
    static const char *const no[] = {
        "", "10x", "-1s", "+1s", "99999999999999999999s", "4294968s",
        "1194h", "1.5s", " 5s", "5 s", "5s ", "ms", "s", "0x10", "5sec",
        "18446744073709551615h",
    };
    uint32_t ms;

    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        ms = 7;
        ck_assert_int_eq(config_parse_duration(good[i].s, &ms), 0);
        ck_assert_uint_eq(ms, good[i].ms);
    }
    for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
        ms = 7;
        ck_assert_msg(config_parse_duration(no[i], &ms) == -EINVAL,
                      "'%s' accepted", no[i]);
        ck_assert_uint_eq(ms, 7);
    }
}
END_TEST

START_TEST(test_parse_size)
{
    static const struct {
        const char *s;
        uint64_t n;
    } good[] = {
        { "65536", 65536 }, { "64KiB", 65536 }, { "8MiB", 8u << 20 },
        { "1GiB", 1u << 30 }, { "64k", 65536 }, { "8m", 8u << 20 },
        { "2K", 2048 }, { "3G", 3ULL << 30 }, { "1TiB", 1ULL << 40 },
        { "0", 0 }, { "18446744073709551615", UINT64_MAX },
        { "16777215TiB", 16777215ULL << 40 },
    };
    static const char *const no[] = {
        "", "10x", "-1", "99999999999999999999", "18446744073709551616",
        "16777216TiB", "1.5k", "64KB", "64 KiB", "KiB", "1e6", " 1",
    };
    uint64_t n;

    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        n = 7;
        ck_assert_int_eq(config_parse_size(good[i].s, &n), 0);
        ck_assert_uint_eq(n, good[i].n);
    }
    for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
        n = 7;
        ck_assert_msg(config_parse_size(no[i], &n) == -EINVAL,
                      "'%s' accepted", no[i]);
        ck_assert_uint_eq(n, 7);
    }
}
END_TEST

START_TEST(test_parse_switch)
{
    static const char *const on[] = { "on", "yes", "true", "1", "ON" };
    static const char *const off[] = { "off", "no", "false", "0", "Off" };
    static const char *const no[] = { "", "2", "onn", "enabled", " on" };
    bool b;

    for (size_t i = 0; i < ARRAY_SIZE(on); i++) {
        b = false;
        ck_assert_int_eq(config_parse_switch(on[i], &b), 0);
        ck_assert(b);
        b = true;
        ck_assert_int_eq(config_parse_switch(off[i], &b), 0);
        ck_assert(!b);
    }
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        ck_assert_int_eq(config_parse_switch(no[i], &b), -EINVAL);
}
END_TEST

START_TEST(test_parse_address)
{
    static const char *const no[] = {
        "", "localhost:8080", "127.0.0.1", "127.0.0.1:65536",
        "127.0.0.1:-1", "127.0.0.1:", "127.0.0.1:80x", "::1:8080",
        "[::1]8080", "[::1]:", "[::1", "[zz]:80", ":8080", "1.2.3.4.5:80",
        "[127.0.0.1]:80", "*", "[*]:80", "127.0.0.1:99999999999999999999",
    };
    struct listener_cfg l;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&l.addr;
    struct in6_addr any6 = IN6ADDR_ANY_INIT;

    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(config_parse_address("127.0.0.1:8080", &l), 0);
    assert_in4(&l, "127.0.0.1", 8080);
    ck_assert_int_eq(config_parse_address("*:8080", &l), 0);
    assert_in4(&l, "0.0.0.0", 8080);
    ck_assert_int_eq(config_parse_address("0.0.0.0:0", &l), 0);
    assert_in4(&l, "0.0.0.0", 0);
    ck_assert_int_eq(config_parse_address("10.1.2.3:65535", &l), 0);
    assert_in4(&l, "10.1.2.3", 65535);
    ck_assert_int_eq(config_parse_address("[::1]:8080", &l), 0);
    ck_assert_uint_eq(l.addrlen, sizeof(*in6));
    ck_assert_int_eq(in6->sin6_family, AF_INET6);
    ck_assert_int_eq(ntohs(in6->sin6_port), 8080);
    ck_assert(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
    ck_assert_int_eq(config_parse_address("[::]:443", &l), 0);
    ck_assert_mem_eq(&in6->sin6_addr, &any6, sizeof(any6));
    for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
        l.addrlen = 1;
        ck_assert_msg(config_parse_address(no[i], &l) == -EINVAL,
                      "'%s' accepted", no[i]);
        ck_assert_uint_eq(l.addrlen, 0);
    }
}
END_TEST

/* Writes text to a new temporary file; its path is in path. */
static void
write_temp(char *path, size_t n, const char *text)
{
    int fd;

    snprintf(path, n, "%s/test_config.XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

START_TEST(test_load)
{
    char path[512], want[600];
    char *errors = (char *)"unchanged";
    struct config *c;

    write_temp(path, sizeof(path), minimal);
    c = config_load(path, &errors);
    unlink(path);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(errors);
    ck_assert_str_eq(c->path, path);
    ck_assert_int_eq(c->server.workers, 2);
    ck_assert_uint_eq(c->n_routes, 2);
    ck_assert(c->routes[1].opts.compress);
    config_free(c);

    write_temp(path, sizeof(path), HEAD "\n[server]\nworkers = x\n");
    c = config_load(path, &errors);
    unlink(path);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s:6: bad value 'x' for workers", path);
    ck_assert_msg(strncmp(errors, want, strlen(want)) == 0, "got: %s",
                  errors);
    free(errors);
}
END_TEST

START_TEST(test_load_missing)
{
    char *errors = NULL;
    struct config *c = config_load("/nonexistent/sockd.conf", &errors);

    ck_assert_ptr_null(c);
    ck_assert_str_eq(errors, "/nonexistent/sockd.conf: cannot open: "
                     "No such file or directory\n");
    free(errors);
}
END_TEST

START_TEST(test_load_directory)
{
    char *errors = NULL;
    struct config *c = config_load("/", &errors);

    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(errors, "/: cannot read: Is a directory\n"));
    free(errors);
}
END_TEST

/* config_dump into a string (open_memstream); the caller frees it. */
static char *
dump_string(const struct config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(f);
    config_dump(c, f);
    ck_assert_int_eq(fclose(f), 0);
    return text;
}

/* sockd -T: every key with its value, defaults included; the dump parses
   back to a config that dumps the same (but for the name in line 1 and
   the password, which is never shown). */
START_TEST(test_dump_round_trip)
{
    static const char text[] =
        "[server]\nworkers = 3\nidle_timeout = 90s\nlog_level = debug\n"
        "[listen 127.0.0.1:8080]\nbacklog = 100\n"
        "[route /chat]\napp = chat\ncompress = on\n"
        "allowed_origins = https://a.example, https://b.example\n"
        "server_max_window_bits = 10\ninfo_overflow = close\n"
        "[admin]\nlisten = 127.0.0.1:9090\n"
        "[redis]\naddress = 127.0.0.1:6379\npassword = hunter2\n";
    char *errors = NULL, *d1, *d2;
    struct config *c = config_parse_string(text, "a.conf", &errors), *c2;

    ck_assert_msg(c != NULL, "%s", errors ? errors : "");
    d1 = dump_string(c);
    ck_assert_ptr_nonnull(strstr(d1, "[server]\nworkers = 3\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nidle_timeout = 90s\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nlog_level = debug\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nhandshake_timeout = 10s\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nworker_shutdown_timeout = 1m\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nsend_hard_limit = 16MiB\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\n# log_file: not set\n"));
    ck_assert_ptr_nonnull(strstr(d1, "[listen 127.0.0.1:8080]\n"
                                     "backlog = 100\nreuseport = off\n"));
    ck_assert_ptr_nonnull(strstr(d1, "[route /chat]\napp = chat\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nallowed_origins = https://a.example,"
                                     " https://b.example\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\ninfo_overflow = close\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nfanout_interval = auto\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\nio_uring = on\n"));
    ck_assert_ptr_nonnull(strstr(d1, "[admin]\nlisten = 127.0.0.1:9090\n"));
    ck_assert_ptr_nonnull(strstr(d1, "\n# password: set, not shown\n"));
    ck_assert_ptr_null(strstr(d1, "hunter2"));
    /* Without the password the dump is a config of its own. */
    c2 = config_parse_string(d1, "b.conf", &errors);
    ck_assert_msg(c2 != NULL, "%s", errors ? errors : "");
    d2 = dump_string(c2);
    ck_assert_str_eq(strstr(d2, "\n# password: not set\n"),
                     "\n# password: not set\n");
    *strstr(d1, "# password") = '\0';
    *strstr(d2, "# password") = '\0';
    ck_assert_str_eq(strchr(d2, '\n'), strchr(d1, '\n'));
    free(d1);
    free(d2);
    config_free(c);
    config_free(c2);
}
END_TEST

START_TEST(test_free_null)
{
    config_free(NULL);
}
END_TEST

/* Random lines from plausible pieces: never a crash or a leak (run under
   ASan), and always either a config or error lines naming the file. */
START_TEST(test_random_files)
{
    static const char *const pieces[] = {
        "[server]", "[listen 127.0.0.1:80]", "[listen [::1]:81]",
        "[route /a]", "[route /b]", "[admin]", "[route", "app = x",
        "workers = 3", "compress = on", "allowed_origins = https://x.y",
        "  https://z.w", "subprotocols = a, b", "  c", "idle_timeout = 9s",
        "send_low_watermark = 2MiB", "= 1", "junk", "; c", "# c", "",
        "   ", "tls_key = /k", "tls_certificate = /c", "backlog = 0",
        "x y = 1", "[server] # c", "app = y ; c", "\xef\xbb\xbf",
    };
    uint64_t seed = 0x5eed;
    char text[2048];

    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0, lines = test_rand(&seed) % 12;
        char *errors = NULL;
        struct config *c;

        for (size_t i = 0; i < lines; i++) {
            const char *piece = pieces[test_rand(&seed) % ARRAY_SIZE(pieces)];

            len += (size_t)snprintf(text + len, sizeof(text) - len, "%s\n",
                                    piece);
        }
        text[len] = '\0';
        c = config_parse_string(text, "r.conf", &errors);
        ck_assert((c == NULL) != (errors == NULL));
        if (errors != NULL)
            ck_assert_msg(strncmp(errors, "r.conf", 6) == 0, "%s", errors);
        config_free(c);
        free(errors);
    }
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("file");
    TCase *tv = tcase_create("values");

    tcase_add_test(tc, test_minimal);
    tcase_add_test(tc, test_every_key);
    tcase_add_test(tc, test_workers_auto);
    tcase_add_test(tc, test_fanout_interval_auto);
    tcase_add_test(tc, test_heartbeat_timeout);
    tcase_add_test(tc, test_message_timeout_off);
    tcase_add_test(tc, test_send_budget_fits_hard_limit);
    tcase_add_test(tc, test_server_defaults_any_order);
    tcase_add_test(tc, test_comments_and_syntax);
    tcase_add_test(tc, test_list_continuation);
    tcase_add_test(tc, test_close_codes_accepted);
    tcase_add_loop_test(tc, test_error, 0, (int)ARRAY_SIZE(bad));
    tcase_add_test(tc, test_app_options);
    tcase_add_loop_test(tc, test_app_option_errors, 0,
                        (int)ARRAY_SIZE(bad_options));
    tcase_add_test(tc, test_line_too_long);
    tcase_add_test(tc, test_several_errors);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_load_missing);
    tcase_add_test(tc, test_load_directory);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_dump_round_trip);
    tcase_add_test(tc, test_random_files);
    suite_add_tcase(s, tc);
    tcase_add_test(tv, test_parse_duration);
    tcase_add_test(tv, test_parse_size);
    tcase_add_test(tv, test_parse_switch);
    tcase_add_test(tv, test_parse_address);
    suite_add_tcase(s, tv);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
