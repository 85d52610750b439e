/*
 * listen.c: the listening sockets the master opens (or takes over from
 * systemd) and hands to each generation's workers. They outlive
 * generations, so a reload never drops a queued connection; with
 * reuseport there is one socket per worker slot. Accepting is the
 * workers' (worker_listen makes a socket; the workers accept on it).
 */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master_impl.h"
#include "worker.h"

/* A listening socket the master holds, reused across reloads. */
struct mlisten {
    struct mlisten *next;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool reuseport;
    int *fds;                 /* 1, or one per slot with reuseport */
    int nfds;
    int backlog;
    bool used;                /* by the newest config */
};

static bool
same_addr(const struct sockaddr_storage *a, socklen_t al,
          const struct sockaddr_storage *b, socklen_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

/* A socket systemd passed for this address, taken over (-1 if none). */
static int
take_activated(struct master *m, const struct listener_cfg *l)
{
    for (int i = 0; i < m->n_activated; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        if (m->activated[i] < 0)
            continue;
        memset(&ss, 0, sizeof(ss));
        if (getsockname(m->activated[i], (struct sockaddr *)&ss, &sl) == 0 &&
            same_addr(&ss, sl, &l->addr, l->addrlen)) {
            int fd = m->activated[i];

            m->activated[i] = -1;
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
    }
    return -1;
}

static struct mlisten *
mlisten_find(struct master *m, const struct listener_cfg *l)
{
    for (struct mlisten *ml = m->listens; ml != NULL; ml = ml->next)
        if (ml->reuseport == l->reuseport &&
            same_addr(&ml->addr, ml->addrlen, &l->addr, l->addrlen))
            return ml;
    return NULL;
}

/* Opens l's socket(s) if not open yet (want of them); marks it used. */
static int
listen_prepare_one(struct master *m, const struct config *cfg,
                   const struct listener_cfg *l, int want, int line,
                   const char *address, char *err, size_t errlen)
{
    struct mlisten *ml = mlisten_find(m, l);

    if (ml == NULL) {
        ml = calloc(1, sizeof(*ml));
        if (ml == NULL)
            return -ENOMEM;
        ml->addr = l->addr;
        ml->addrlen = l->addrlen;
        ml->reuseport = l->reuseport;
        ml->next = m->listens;
        m->listens = ml;
    }
    ml->used = true;
    /* Fewer workers: sockets of slots that no longer exist would keep
       receiving connections nobody accepts; the old workers close their
       copies as they drain. */
    while (ml->reuseport && ml->nfds > want)
        close(ml->fds[--ml->nfds]);
    if (ml->nfds >= want)
        return 0;
    int *fds = realloc(ml->fds, (size_t)want * sizeof(int));

    if (fds == NULL)
        return -ENOMEM;
    ml->fds = fds;
    for (; ml->nfds < want; ml->nfds++) {
        int fd = l->reuseport ? -1 : take_activated(m, l);
        char name[80];

        if (fd < 0)
            fd = worker_listen(l);
        if (fd < 0) {
            snprintf(err, errlen, "%s:%d: cannot listen on %s: %s",
                     cfg->path, line, address, strerror(-fd));
            return fd;
        }
        ml->fds[ml->nfds] = fd;
        if (ml->nfds == 0) {
            worker_sockname(fd, name, sizeof(name));
            log_info("event=listening addr=%s reuseport=%s", name,
                     l->reuseport ? "on" : "off");
        }
    }
    return 0;
}

int
listen_prepare(struct master *m, const struct config *cfg, int nworkers,
               char *err, size_t errlen)
{
    int rc;

    for (struct mlisten *ml = m->listens; ml != NULL; ml = ml->next)
        ml->used = false;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct listener_cfg *l = &cfg->listeners[i];

        rc = listen_prepare_one(m, cfg, l, l->reuseport ? nworkers : 1,
                                l->line, l->address, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (cfg->admin.listen != NULL)
        return listen_prepare_one(m, cfg, &cfg->admin.l, 1, cfg->admin.line,
                                  cfg->admin.listen, err, errlen);
    return 0;
}

void
listen_prune(struct master *m)
{
    struct mlisten **p = &m->listens;

    while (*p != NULL) {
        struct mlisten *ml = *p;

        if (ml->used) {
            p = &ml->next;
            continue;
        }
        for (int i = 0; i < ml->nfds; i++)
            close(ml->fds[i]);
        *p = ml->next;
        free(ml->fds);
        free(ml);
    }
}

void
listen_close_all(struct master *m)
{
    for (struct mlisten *ml = m->listens; ml != NULL; ml = ml->next)
        ml->used = false;
    listen_prune(m);
}

size_t
listen_fds_for_slot(struct master *m, const struct generation *g, int slot,
                    int *out)
{
    size_t n = 0;

    for (size_t i = 0; i < g->cfg->n_listeners; i++) {
        struct mlisten *ml = mlisten_find(m, &g->cfg->listeners[i]);

        out[n++] = ml->reuseport ? ml->fds[slot % ml->nfds] : ml->fds[0];
    }
    if (g->cfg->admin.listen != NULL)
        out[n++] = mlisten_find(m, &g->cfg->admin.l)->fds[0];
    return n;
}


void
listen_take_activated(struct master *m)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int n;

    if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
        return;
    n = atoi(fds);
    if (n <= 0 || n > 1024)
        return;
    m->activated = calloc((size_t)n, sizeof(int));
    if (m->activated == NULL)
        return;
    for (int i = 0; i < n; i++)
        m->activated[i] = 3 + i; /* SD_LISTEN_FDS_START */
    m->n_activated = n;
    log_info("event=socket_activation fds=%d", n);
}

void
listen_drop_unused_activated(struct master *m)
{
    for (int i = 0; i < m->n_activated; i++)
        if (m->activated[i] >= 0) {
            log_warn("event=activated_socket_unused fd=%d (no [listen] "
                     "matches it)", m->activated[i]);
            close(m->activated[i]);
            m->activated[i] = -1;
        }
}

