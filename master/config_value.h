/*
 * config_value.h: the value syntax of sockd.conf(5), apart from any key:
 * whole numbers, durations, sizes, switches, listen addresses, lists of
 * words, subprotocol tokens, origins and close codes. Parsers return 0 or
 * -EINVAL and leave the message to the caller.
 */
#ifndef SOCK_CONFIG_VALUE_H
#define SOCK_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)
/* RFC 6455 §5.2: a 64-bit payload length has its top bit clear. */
#define SIZE63 ((1ULL << 63) - 1)
#define MS_MAX ((uint64_t)UINT32_MAX)

/* "500ms", "30s", "5m", "1h"; a bare number is seconds. */
int config_parse_duration(const char *s, uint32_t *ms);
/* "65536", "64KiB", "8MiB", "1GiB", "64k", "8m" (powers of 1024). */
int config_parse_size(const char *s, uint64_t *bytes);
/* on/off, yes/no, true/false, 1/0. */
int config_parse_switch(const char *s, bool *on);
/* "127.0.0.1:8080", "[::1]:8080", "*:8080" or "0.0.0.0:8080"; port 0..65535. */
int config_parse_address(const char *s, struct listener_cfg *l);
/* The same, returning NULL or why s is not an address (l->addrlen is
   then 0). Names are not resolved: the master binds before anything. */
const char *config_parse_address_why(const char *s, struct listener_cfg *l);
/* Decimal digits only, no sign, no overflow. */
int config_parse_uint(const char *s, uint64_t *v);

/* ms as written in the file: the largest unit that divides it ("90s"). */
void config_format_duration(uint64_t ms, char *buf, size_t n);
/* bytes the same way ("64KiB"). */
void config_format_size(uint64_t bytes, char *buf, size_t n);

/* Writes the reason a value is bad into why; returns -EINVAL. */
int config_fail(char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Lists: NULL-terminated arrays of malloc'd strings; NULL is the empty
 * list. Items are separated by spaces, tabs or commas.
 */
size_t config_list_len(char **l);
void config_list_free(char **l);
/* The next item at or after s and its length in *len; NULL at the end. */
const char *config_list_next(const char *s, size_t *len);
/* Appends copies of the items of v; 0 or -ENOMEM (*list stays valid). */
int config_list_append(char ***list, const char *v);
/* *dst = a deep copy of src; 0 or -ENOMEM (*dst is then partial). */
int config_list_dup(char **src, char ***dst);

/* RFC 6455 §4.1: a subprotocol is an RFC 7230 token. */
bool config_is_token(const char *s, size_t n);
/* RFC 6454 §6.2: "scheme://host[:port]" or "null". */
bool config_is_origin(const char *s, size_t n);
/* RFC 6455 §7.4: a close code an endpoint may send. */
bool config_is_close_code(uint64_t c);

#endif
