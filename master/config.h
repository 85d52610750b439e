/*
 * config.h: the INI configuration file (DESIGN §6), parsed with libinih.
 * Every unknown section or key and every bad value is reported as
 * "FILE:LINE: message"; nothing is half-applied.
 */
#ifndef SOCK_CONFIG_H
#define SOCK_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

#include "settings.h"

/*
 * Loads and checks path. Returns the config, or NULL with *errors set to a
 * malloc'd text of one "FILE:LINE: message\n" per problem (FILE alone with
 * no line for a file that cannot be read). The caller frees *errors.
 */
struct config *config_load(const char *path, char **errors);
/* The same from a string; name stands for the file in messages. */
struct config *config_parse_string(const char *text, const char *name,
                                   char **errors);
void config_free(struct config *c);
/* Writes c to out in the file's syntax, every key of every section with
   its effective value, defaults included (sockd -T). */
void config_dump(const struct config *c, FILE *out);

/* The defaults of DESIGN §6, for a route not configured at all. */
void config_route_opts_default(struct route_opts *o);

/* Value parsers, 0 or -EINVAL. "500ms", "30s", "5m", "1h"; a bare number
   is seconds. */
int config_parse_duration(const char *s, uint32_t *ms);
/* "65536", "64KiB", "8MiB", "1GiB", "64k", "8m" (powers of 1024). */
int config_parse_size(const char *s, uint64_t *bytes);
/* on/off, yes/no, true/false, 1/0. */
int config_parse_switch(const char *s, bool *on);
/* "127.0.0.1:8080", "[::1]:8080", "*:8080" or "0.0.0.0:8080"; port 0..65535. */
int config_parse_address(const char *s, struct listener_cfg *l);

#endif
