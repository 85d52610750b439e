/*
 * apps.h: finding an application by name: the built-in examples, or a
 * module (.so) exporting sock_app_v1, loaded with dlopen after fork.
 */
#ifndef SOCK_APPS_H
#define SOCK_APPS_H

#include <stddef.h>

#include "sock.h"

/*
 * Resolves spec: a built-in name, or a path (contains '/') to a module.
 * Checks the ABI version and the required callbacks. Returns 0 with *app
 * and *dl (dlclose it with apps_unload; NULL for built-ins), or -1 with a
 * message in err.
 */
int apps_load(const char *spec, const sock_app **app, void **dl, char *err,
              size_t errlen);
void apps_unload(void *dl);
/*
 * Checks spec without loading anything: a known built-in, or a regular
 * file that can be read. 0, or -1 with a message in err.
 */
int apps_check_spec(const char *spec, char *err, size_t errlen);

#endif
