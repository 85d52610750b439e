/*
 * ctl_server.c: the master's side of the control socket
 * ($runtime_dir/ctl.sock, DESIGN §4.6): it prepares the runtime dir,
 * accepts `sockd -s CMD` and sockctl clients, reads one command line each
 * and answers status, reload, stop/quit and reopen. A reload or stop is
 * answered later, when master.c has an outcome. ctl.c has the client.
 */
#include "ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "channel.h"
#include "common.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "master_impl.h"
#include "wchan.h"

#define CTL_LINE_MAX 256

struct ctl_client {
    struct ctl_client *next;
    struct master *m;
    int fd;
    ev_io io;
    ev_timer timeout;
    char line[CTL_LINE_MAX];
    size_t len;
    enum { CTL_READING, CTL_WAIT_RELOAD, CTL_WAIT_STOP } state;
};

static void
ctl_client_free(struct master *m, struct ctl_client *c)
{
    struct ctl_client **p;

    for (p = &m->clients; *p != NULL; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    ev_io_stop(m->loop, &c->io);
    ev_timer_stop(m->loop, &c->timeout);
    close(c->fd);
    free(c);
}

static void
ctl_write(struct ctl_client *c, const char *s)
{
    size_t len = strlen(s), off = 0;

    /* Answers are small; a client that does not read loses them. */
    while (off < len) {
        ssize_t n = send(c->fd, s + off, len - off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

void
ctl_server_reply_reloads(struct master *m, const char *line)
{
    for (struct ctl_client *c = m->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == CTL_WAIT_RELOAD) {
            ctl_write(c, line);
            ctl_write(c, "\n");
            ctl_client_free(m, c);
        }
    }
}

static void
ctl_status(struct master *m, struct ctl_client *c)
{
    char line[256];

    snprintf(line, sizeof(line), "master pid=%d generation=%u\n",
             (int)getpid(), m->active ? m->active->id : 0);
    ctl_write(c, line);
    for (struct generation *g = m->gens; g != NULL; g = g->next) {
        snprintf(line, sizeof(line), "generation %u %s\n", g->id,
                 g == m->active ? "active"
                 : g == m->pending ? "starting" : "draining");
        ctl_write(c, line);
        for (int i = 0; i < g->n; i++) {
            struct wproc *w = &g->w[i];

            if (w->pid <= 0 && !w->given_up)
                continue;
            snprintf(line, sizeof(line),
                     "  worker slot=%d pid=%d conns=%u state=%s\n", i,
                     (int)w->pid, w->conns,
                     w->given_up ? "crash-loop"
                                 : master_wstate_name(w->state));
            ctl_write(c, line);
        }
    }
    ctl_write(c, "OK\n");
}

static void
ctl_command(struct master *m, struct ctl_client *c, const char *cmd)
{
    if (strcmp(cmd, "status") == 0) {
        ctl_status(m, c);
    } else if (strcmp(cmd, "reload") == 0) {
        int rc;

        log_info("event=reload_requested source=ctl");
        c->state = CTL_WAIT_RELOAD;
        rc = master_reload(m);
        if (rc == -EBUSY) {
            ctl_write(c, m->stopping ? "ERR sockd is stopping\n"
                                     : "ERR a reload is in progress\n");
            ctl_client_free(m, c);
        }
        return; /* answered when the generation is ready or failed */
    } else if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "quit") == 0) {
        c->state = CTL_WAIT_STOP;
        master_stop(m, false);
        return; /* answered as the master exits */
    } else if (strcmp(cmd, "reopen") == 0) {
        log_reopen(m->active ? m->active->cfg->server.log_file : NULL);
        for (struct generation *g = m->gens; g != NULL; g = g->next)
            wchan_send_all(g, CHAN_REOPEN);
        ctl_write(c, "OK logs reopened\n");
    } else {
        ctl_write(c, "ERR unknown command (reload, stop, quit, reopen, "
                     "status)\n");
    }
    ctl_client_free(m, c);
}

static void
ctl_on_client(struct ev_loop *loop, ev_io *io, int revents)
{
    struct ctl_client *c = container_of(io, struct ctl_client, io);
    struct master *m = c->m;
    ssize_t n;
    char *nl;

    (void)loop;
    (void)revents;
    if (c->state != CTL_READING) { /* waiting: only notice a hang-up */
        char b;

        if (recv(c->fd, &b, 1, MSG_DONTWAIT) == 0)
            ctl_client_free(m, c);
        return;
    }
    n = recv(c->fd, c->line + c->len, sizeof(c->line) - 1 - c->len,
             MSG_DONTWAIT);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        ctl_client_free(m, c);
        return;
    }
    c->len += (size_t)n;
    c->line[c->len] = '\0';
    nl = strchr(c->line, '\n');
    if (nl == NULL) {
        if (c->len == sizeof(c->line) - 1) {
            ctl_write(c, "ERR command too long\n");
            ctl_client_free(m, c);
        }
        return;
    }
    *nl = '\0';
    ctl_command(m, c, c->line);
}

static void
ctl_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct ctl_client *c = container_of(t, struct ctl_client, timeout);

    (void)loop;
    (void)revents;
    if (c->state == CTL_READING)
        ctl_client_free(c->m, c);
}

static void
ctl_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *m = ev_userdata(loop);
    int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct ctl_client *c;

    (void)revents;
    if (fd < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->m = m;
    c->fd = fd;
    c->next = m->clients;
    m->clients = c;
    ev_io_init(&c->io, ctl_on_client, fd, EV_READ);
    ev_io_start(loop, &c->io);
    ev_timer_init(&c->timeout, ctl_on_timeout, 5., 0.);
    ev_timer_start(loop, &c->timeout);
}

/* Why an existing runtime_dir of owner uid and mode may not be used, or
   NULL: only root, we or the workers' user may own it, and nobody else
   may write to it (they could plant sockets and links in it). */
static const char *
runtime_dir_unsafe(const struct stat *st, const struct passwd *pw)
{
    if (!S_ISDIR(st->st_mode))
        return "not a directory";
    if (st->st_uid != 0 && st->st_uid != geteuid() &&
        (pw == NULL || st->st_uid != pw->pw_uid))
        return "owned by another user";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return "writable by group or others";
    return NULL;
}

/*
 * Creates runtime_dir (0750), or checks the one that exists: never a
 * symbolic link, never a directory someone else owns or can write to.
 * The directory is opened without following links and changed through
 * that fd, so nothing swapped in after the check is chowned. With
 * `user =` (as root) it goes to that user: the workers create their bus
 * sockets in it. 0, or -1 with a message in err.
 */
static int
runtime_dir_prepare(const char *dir, const char *user, char *err,
                    size_t errlen)
{
    struct passwd *pw = NULL;
    const char *why;
    struct stat st;
    bool created;
    int fd;

    if (user != NULL && geteuid() == 0 && (pw = getpwnam(user)) == NULL) {
        snprintf(err, errlen, "user %s does not exist", user);
        return -1;
    }
    created = mkdir(dir, 0750) == 0;
    if (!created && errno != EEXIST) {
        snprintf(err, errlen, "cannot create runtime_dir %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
        snprintf(err, errlen, "runtime_dir %s is a symbolic link: refusing "
                 "it (make it a directory owned by root or the service "
                 "user)", dir);
        return -1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot open runtime_dir %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    if (created) {
        if (fchmod(fd, 0750) != 0) /* whatever the umask took */
            log_warn("event=chmod_failed path=%s error=\"%s\"", dir,
                     strerror(errno));
    } else if ((why = runtime_dir_unsafe(&st, pw)) != NULL) {
        snprintf(err, errlen, "runtime_dir %s is unsafe: %s (uid %u, mode "
                 "%04o); refusing it", dir, why, (unsigned)st.st_uid,
                 (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    if (pw != NULL && fchown(fd, pw->pw_uid, pw->pw_gid) != 0)
        log_warn("event=chown_failed path=%s error=\"%s\"", dir,
                 strerror(errno));
    close(fd);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

int
ctl_server_listen(struct master *m, const char *runtime_dir,
                  const char *user, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, probe;
    mode_t old;

    if (runtime_dir_prepare(runtime_dir, user, err, errlen) != 0)
        return -1;
    ctl_path(runtime_dir, m->ctl_sock, sizeof(m->ctl_sock));
    if (strlen(m->ctl_sock) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "runtime_dir path too long: %s", runtime_dir);
        m->ctl_sock[0] = '\0'; /* not ours to unlink */
        return -1;
    }
    strcpy(sa.sun_path, m->ctl_sock);
    /* A live master answers on the socket: never steal it. */
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(probe);
        snprintf(err, errlen, "another sockd is running with runtime_dir %s",
                 runtime_dir);
        m->ctl_sock[0] = '\0';
        return -1;
    }
    if (probe >= 0)
        close(probe);
    unlink(m->ctl_sock);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    old = umask(0077);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 16) != 0) {
        umask(old);
        snprintf(err, errlen, "cannot listen on %s: %s", m->ctl_sock,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        m->ctl_sock[0] = '\0';
        return -1;
    }
    umask(old);
    chmod(m->ctl_sock, 0600);
    m->ctl_fd = fd;
    ev_io_init(&m->ctl_io, ctl_on_accept, fd, EV_READ);
    ev_io_start(m->loop, &m->ctl_io);
    return 0;
}


void
ctl_server_close(struct master *m)
{
    while (m->clients != NULL) {
        if (m->clients->state == CTL_WAIT_STOP)
            ctl_write(m->clients, "OK stopped\n");
        ctl_client_free(m, m->clients);
    }
    if (m->ctl_sock[0] != '\0') {
        unlink(m->ctl_sock);
        close(m->ctl_fd);
    }
}
