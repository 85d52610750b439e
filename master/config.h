/*
 * config.h: the INI configuration file (DESIGN §6), parsed with libinih.
 * Every unknown section or key and every bad value is reported as
 * "FILE:LINE: message"; nothing is half-applied. config.c reads the file,
 * config_keys.c holds the key table (and config_dump, declared in
 * config_keys.h next to the table it walks), config_value.c the value
 * syntax, config_check.c the checks across keys.
 */
#ifndef SOCK_CONFIG_H
#define SOCK_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

#include "config_value.h" /* the value parsers, for tests and tools */
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

/* The defaults of DESIGN §6, for a route not configured at all. */
void config_route_opts_default(struct route_opts *o);

#endif
