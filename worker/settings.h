/*
 * settings.h: the configuration the worker runs with: server-wide values,
 * listeners and routes with their per-route options (DESIGN §6). Filled by
 * master/config.c from the INI file; read-only once a worker runs.
 */
#ifndef SOCK_SETTINGS_H
#define SOCK_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Per-route options; [server] holds the defaults for every route. */
struct route_opts {
    uint32_t idle_timeout_ms;      /* 60 s; 0 = off */
    uint32_t close_timeout_ms;     /* 5 s */
    uint64_t max_frame_size;       /* 8 MiB payload */
    uint64_t max_message_size;     /* 8 MiB, after reassembly and inflation */
    uint32_t message_timeout_ms;   /* 60 s from a message's first frame to
                                      its last; 0 = off */
    uint32_t max_inflate_ratio;    /* 25 */
    uint64_t send_low_watermark;   /* 64 KiB */
    uint64_t send_high_watermark;  /* 1 MiB */
    uint64_t send_hard_limit;      /* 16 MiB */
    uint32_t max_info_queue;       /* 1024 messages */
    bool info_overflow_close;      /* "info_overflow = close": 1008; default drop */
    uint32_t ping_interval_ms;     /* 0 = off */
    uint32_t pong_timeout_ms;      /* 30 s */
    uint16_t idle_close_code;      /* 1000 */
    uint16_t shutdown_close_code;  /* 1001 */
    bool compress;                 /* off */
    int compress_level;            /* 1 */
    int compress_mem_level;        /* 8 */
    int server_max_window_bits;    /* 15 (9..15; 8 is read as 9) */
    int client_max_window_bits;    /* 15 */
    bool server_no_context_takeover; /* false: force it when true */
    bool client_no_context_takeover; /* false: request it when true */
    uint32_t compress_threshold;   /* 64 bytes */
    char **allowed_origins;        /* NULL-terminated; NULL = any origin */
    char **subprotocols;           /* NULL-terminated; server preference order */
};

struct route {
    char *path;      /* "/echo": exact match on the request path */
    char *app;       /* built-in name, or a path to a module (contains '/') */
    char *static_dir; /* plain GETs of PATH and PATH/FILE serve files here */
    int line;        /* where [route ...] stood, for messages */
    int app_line;    /* where app = stood */
    char **app_options; /* option.NAME = VALUE: NAME, VALUE, ...; NULL-
                           terminated, NULL when none */
    struct route_opts opts;
};

struct listener_cfg {
    char *address;   /* as written: "127.0.0.1:8080", "[::1]:8080", "*:8080" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int backlog;     /* 511 */
    bool reuseport;
    char *tls_certificate; /* NULL for plain TCP */
    char *tls_key;
    char **tls_sni_certificates; /* more certificates, picked by SNI */
    char **tls_sni_keys;         /* their keys, in the same order */
    int line;
};

/* fanout_interval = auto: the hold follows the worker's load. */
#define FANOUT_AUTO UINT32_MAX

struct server_cfg {
    int workers;                   /* -1 = number of CPUs; 0 = no master */
    char *runtime_dir;             /* /run/sockd */
    char *user;                    /* NULL = do not switch */
    char *log_file;                /* NULL = stderr */
    int log_level;                 /* LOG_LVL_INFO */
    uint16_t node_id;              /* 1 */
    uint32_t handshake_timeout_ms; /* 10 s */
    uint32_t max_request_head;     /* 8 KiB */
    uint32_t max_headers;          /* 64 */
    uint32_t max_connections;      /* per worker; 0 = from RLIMIT_NOFILE */
    uint64_t max_partial_bytes;    /* 256 MiB per worker: unfinished input */
    uint32_t fanout_interval_ms;   /* 0: fan-out leaves every iteration;
                                      FANOUT_AUTO: held while the worker
                                      is busy (wstate.c) */
    bool io_uring;                 /* on: a flush's sends in one call */
    uint64_t max_send_bytes;       /* 256 MiB per worker: every send queue */
    uint64_t max_deflate_memory;   /* 256 MiB per worker: zlib streams; over
                                      it, no context takeover is agreed */
    uint64_t max_fanout_backlog;   /* 8 MiB per worker: fan-out queued and
                                      not yet written; over it the client
                                      that published stops being read */
    uint32_t shutdown_timeout_ms;  /* 10 s */
    uint32_t drain_timeout_ms;     /* 30 s */
    uint32_t drain_spread_ms;      /* 10 s */
    uint32_t worker_shutdown_timeout_ms; /* 60 s */
    uint32_t worker_heartbeat_timeout_ms; /* 10 s; 0 = off */
};

/* [admin]: the operators' HTTP endpoint (off unless listen is set). */
struct admin_cfg {
    char *listen;                  /* "127.0.0.1:9090" */
    struct listener_cfg l;         /* listen, parsed */
    int line;
};

/* [redis]: the bridge between machines (off unless address is set). */
struct redis_cfg {
    char *address;                 /* "127.0.0.1:6379" */
    char *prefix;                  /* channel prefix, "sock:" */
    char *password;                /* AUTH on connect; NULL: none */
    int line;
};

struct config {
    char *path;
    struct admin_cfg admin;
    struct redis_cfg redis;
    struct server_cfg server;
    struct route_opts defaults;    /* [server]-level route options */
    struct listener_cfg *listeners;
    size_t n_listeners;
    struct route *routes;
    size_t n_routes;
};

#endif
