/*
 * upgrade.c: the sock_upgrade side of the upgrade hook: what the app may
 * decide about a valid upgrade request (subprotocol, extra headers,
 * refusal body, per-connection options, the arg handed to init).
 */
#include "sock_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_handshake.h"

void
sock_upgrade_init(struct sock_upgrade *u, const struct sock_request *r)
{
    memset(u, 0, sizeof(*u));
    u->req = r;
}

void
sock_upgrade_destroy(struct sock_upgrade *u, bool arg_consumed)
{
    if (!arg_consumed && u->free_arg != NULL && u->arg != NULL)
        u->free_arg(u->arg);
    free(u->subprotocol);
    free(u->extra_headers);
    free(u->refuse_body);
    memset(u, 0, sizeof(*u));
}

int
sock_upgrade_run(const sock_app *app, const struct sock_request *r,
                 struct sock_upgrade *u)
{
    int status;

    if (app->upgrade == NULL)
        return 0;
    status = app->upgrade(r, u);
    if (status == 0)
        return 0;
    if (status == SOCK_UPGRADE_LATER)
        return u->pending != NULL ? SOCK_UPGRADE_LATER : 500;
    if (status < 400 || status > 599)
        return 500;
    return status;
}

int
sock_extra_subprotocol(char **sub, const struct sock_request *r,
                       const char *proto)
{
    char *copy;

    if (!ws_request_has_token(r, "Sec-WebSocket-Protocol", proto, false))
        return -EINVAL;
    copy = strdup(proto);
    if (copy == NULL)
        return -ENOMEM;
    free(*sub);
    *sub = copy;
    return 0;
}

int
sock_upgrade_subprotocol(sock_upgrade *u, const char *proto)
{
    return sock_extra_subprotocol(&u->subprotocol, u->req, proto);
}

static bool
is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s))
            return false;
    return true;
}

static bool
is_field_value(const char *s)
{
    for (; *s; s++)
        if ((*s < ' ' && *s != '\t') || *s == 127)
            return false;
    return true;
}

bool
sock_header_is_valid(const char *name, const char *value)
{
    return name != NULL && value != NULL && is_token(name) &&
           is_field_value(value);
}

int
sock_extra_append(char **lines, size_t *len, const char *lines2,
                  size_t len2)
{
    char *p = realloc(*lines, *len + len2 + 1);

    if (p == NULL)
        return -ENOMEM;
    memcpy(p + *len, lines2, len2);
    p[*len + len2] = '\0';
    *lines = p;
    *len += len2;
    return 0;
}

int
sock_extra_header(char **lines, size_t *len, const char *name,
                  const char *value)
{
    size_t add;
    char *p;

    if (!sock_header_is_valid(name, value))
        return -EINVAL;
    add = strlen(name) + strlen(value) + 4;
    p = realloc(*lines, *len + add + 1);
    if (p == NULL)
        return -ENOMEM;
    *lines = p;
    snprintf(p + *len, add + 1, "%s: %s\r\n", name, value);
    *len += add;
    return 0;
}

int
sock_upgrade_header(sock_upgrade *u, const char *name, const char *value)
{
    return sock_extra_header(&u->extra_headers, &u->extra_len, name, value);
}

void
sock_upgrade_set_arg(sock_upgrade *u, void *arg, void (*free_arg)(void *))
{
    u->arg = arg;
    u->free_arg = free_arg;
}

int
sock_upgrade_refuse_body(sock_upgrade *u, const char *body)
{
    char *copy = strdup(body);

    if (copy == NULL)
        return -ENOMEM;
    free(u->refuse_body);
    u->refuse_body = copy;
    return 0;
}

int
sock_upgrade_set_idle_timeout(sock_upgrade *u, uint32_t ms)
{
    u->idle_timeout_ms = ms;
    u->has_idle_timeout = true;
    return 0;
}

int
sock_upgrade_set_max_message_size(sock_upgrade *u, size_t bytes)
{
    if (bytes == 0)
        return -EINVAL;
    u->max_message_size = bytes;
    u->has_max_message_size = true;
    return 0;
}

int
sock_pending_subprotocol(sock_pending *p, const char *proto)
{
    if (p == NULL || proto == NULL)
        return -EINVAL;
    return p->ops->set(p, 1, proto, NULL);
}

int
sock_pending_header(sock_pending *p, const char *name, const char *value)
{
    if (p == NULL || !sock_header_is_valid(name, value))
        return -EINVAL;
    return p->ops->set(p, 2, name, value);
}
