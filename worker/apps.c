/*
 * apps.c: the built-in app table and the module loader.
 */
#include "apps.h"

#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

extern const sock_app sock_example_echo;
extern const sock_app sock_example_ticker;
extern const sock_app sock_example_chat;
extern const sock_app sock_example_threadwork;
extern const sock_app sock_example_authredis;

static const struct {
    const char *name;
    const sock_app *app;
} builtins[] = {
    { "echo", &sock_example_echo },
    { "ticker", &sock_example_ticker },
    { "chat", &sock_example_chat },
    { "threadwork", &sock_example_threadwork },
    { "authredis", &sock_example_authredis },
};

/* The built-in of that name, or NULL (err says which exist). */
static const sock_app *
builtin_find(const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (strcmp(builtins[i].name, name) == 0)
            return builtins[i].app;
    snprintf(err, errlen, "unknown app \"%s\" (built-ins: echo, ticker, "
             "chat, threadwork, authredis; a module is given by a path "
             "containing '/')", name);
    return NULL;
}

static int
check_app(const char *spec, const sock_app *app, char *err, size_t errlen)
{
    /* Members are only appended: an older module is read up to its own
       version's end (sock_app_has_v2). */
    if (app->abi < 1 || app->abi > SOCK_ABI_VERSION) {
        snprintf(err, errlen, "app %s: ABI version %u, sockd speaks 1 to %u",
                 spec, app->abi, SOCK_ABI_VERSION);
        return -1;
    }
    if (app->handle_in == NULL) {
        snprintf(err, errlen, "app %s: handle_in is required", spec);
        return -1;
    }
    return 0;
}

int
apps_load(const char *spec, const sock_app **app, void **dl, char *err,
          size_t errlen)
{
    void *h;
    const sock_app *a;

    *dl = NULL;
    if (strchr(spec, '/') == NULL) {
        *app = builtin_find(spec, err, errlen);
        return *app != NULL ? check_app(spec, *app, err, errlen) : -1;
    }
    h = dlopen(spec, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, errlen, "cannot load app module: %s", dlerror());
        return -1;
    }
    a = dlsym(h, SOCK_APP_SYMBOL);
    if (a == NULL) {
        snprintf(err, errlen, "app module %s does not export %s", spec,
                 SOCK_APP_SYMBOL);
        dlclose(h);
        return -1;
    }
    if (check_app(spec, a, err, errlen) != 0) {
        dlclose(h);
        return -1;
    }
    *app = a;
    *dl = h;
    return 0;
}

int
apps_check_spec(const char *spec, char *err, size_t errlen)
{
    struct stat st;

    if (strchr(spec, '/') == NULL)
        return builtin_find(spec, err, errlen) != NULL ? 0 : -1;
    if (stat(spec, &st) != 0 || access(spec, R_OK) != 0) {
        snprintf(err, errlen, "cannot load app module %s: %s", spec,
                 strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "app module %s is not a regular file", spec);
        return -1;
    }
    return 0;
}

void
apps_unload(void *dl)
{
    if (dl != NULL)
        dlclose(dl);
}
