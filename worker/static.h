/*
 * static.h: small static files next to a WebSocket route (the chat page),
 * like websocketd's --staticdir: a plain GET of the route's path serves
 * index.html, PATH/NAME serves NAME from the route's static_dir. Only
 * regular files of at most 1 MiB, names of [A-Za-z0-9._-] segments with
 * no leading dot; anything else is 404.
 */
#ifndef SOCK_STATIC_H
#define SOCK_STATIC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Builds the whole HTTP response for rel ("" for index.html) under root:
 * 200 with the file (no body for HEAD), 404, 405 (not GET/HEAD) or 500.
 * Returns the malloc'd response and its length, NULL on ENOMEM.
 */
char *static_response(const char *root, const char *rel, const char *method,
                      size_t *len, int *status);

#endif
