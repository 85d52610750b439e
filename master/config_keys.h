/*
 * config_keys.h: the keys of sockd.conf(5): for each its name, the
 * sections it may stand in, the struct member it sets, its kind of value
 * and its bounds; reading a value into a member by that table, and
 * writing a whole config out by it (sockd -T). Sections and line
 * bookkeeping are config.c's.
 */
#ifndef SOCK_CONFIG_KEYS_H
#define SOCK_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config;

enum key_type {
    KT_DURATION,    /* uint32_t milliseconds */
    KT_DURATION_OFF, /* the same, where 0 means off and min applies above */
    KT_DURATION_AUTO, /* KT_DURATION_OFF, or "auto": FANOUT_AUTO */
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

/* What a value is read into before it is stored. */
union value {
    int64_t n;      /* numbers, switches, levels */
    char *s;
    char **list;
};

/* The number of keys: a static assertion in config_keys.c checks it. */
#define CONFIG_N_KEYS 58

extern const struct key config_keys[];

/* The key of that name in one of the scopes (SC_* bits), or NULL. */
const struct key *config_key_find(const char *name, unsigned scope);
/* Its index in config_keys (0 if there is none: only for known keys). */
size_t config_key_index(const char *name, unsigned scope);
/* Whether k takes a list (continued on indented lines). */
bool config_key_is_list(const struct key *k);
/*
 * Reads v as the value of k into *out: 0, -EINVAL with the reason in why
 * ("expected a size such as ...", "allowed 1 to 1000"), or -ENOMEM.
 */
int config_key_parse(const struct key *k, const char *v, union value *out,
                     char *why, size_t n);
/* Checks each item of a list value v for k; 0 or -EINVAL with why. */
int config_key_check_items(const struct key *k, const char *v, char *why,
                           size_t n);
/* Moves v into the member of base that k names (freeing what was there). */
void config_key_store(const struct key *k, void *base, union value *v);
/* Copies the member k names from src to dst, which holds nothing yet;
   0 or -ENOMEM. */
int config_key_copy(const struct key *k, void *dst, const void *src);
/* Writes c to out in the file's syntax, every key of every section with
   its effective value, defaults included (sockd -T). */
void config_dump(const struct config *c, FILE *out);

#endif
