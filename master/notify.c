/*
 * notify.c: the datagram client of systemd's notify protocol. Abstract
 * socket names ('@' first) are supported; sends never block.
 */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

void
notify_scrub_env(const char *name)
{
    char *v = getenv(name);

    if (v == NULL)
        return;
    /* unsetenv only drops the pointer; /proc/PID/environ shows the
       original block, which workers inherit. Blank the bytes too. */
    memset(v, 0, strlen(v));
    memset(v - strlen(name) - 1, 'X', strlen(name));
    unsetenv(name);
}

uint64_t
notify_open(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    const char *wd = getenv("WATCHDOG_USEC");
    const char *wpid = getenv("WATCHDOG_PID");
    uint64_t usec = 0;
    size_t n;

    if (wd != NULL && (wpid == NULL || atol(wpid) == (long)getpid()))
        usec = strtoull(wd, NULL, 10);
    if (path != NULL && (n = strlen(path)) > 0 &&
        n < sizeof(notify_addr.sun_path) && (path[0] == '/' || path[0] == '@')) {
        memset(&notify_addr, 0, sizeof(notify_addr));
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, path, n);
        if (path[0] == '@')
            notify_addr.sun_path[0] = '\0';
        notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                           0);
        if (notify_fd < 0)
            log_warn("event=notify_socket_failed error=\"%s\"",
                     strerror(errno));
    }
    notify_scrub_env("NOTIFY_SOCKET");
    notify_scrub_env("WATCHDOG_USEC");
    notify_scrub_env("WATCHDOG_PID");
    return usec;
}

void
notify_send(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n;

    if (notify_fd < 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return;
    if (sendto(notify_fd, msg, (size_t)n, MSG_NOSIGNAL,
               (struct sockaddr *)&notify_addr, notify_len) < 0)
        log_debug("event=notify_failed error=\"%s\"", strerror(errno));
}

uint64_t
notify_monotonic_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void
notify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}
