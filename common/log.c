/*
 * log.c: formatting and writing of log lines. One write(2) per line so
 * lines from several processes sharing stderr never interleave. Lines to
 * a log_file start with a UTC timestamp (journald stamps stderr itself).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level_current = LOG_LVL_INFO;
static const char *log_role = "sockd";
static int log_slot = -1;
static bool log_stamp;      /* stderr is a log_file: stamp each line */

void
log_set_role(const char *role, int slot)
{
    log_role = role;
    log_slot = slot;
}

void
log_set_level(int level)
{
    log_level_current = level;
}

int
log_level_parse(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {
        { "err", LOG_LVL_ERR }, { "error", LOG_LVL_ERR },
        { "warn", LOG_LVL_WARN }, { "warning", LOG_LVL_WARN },
        { "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG },
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].level;
    return -1;
}

int
log_reopen(const char *path)
{
    int fd;

    if (path == NULL)
        return 0;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    if (dup2(fd, STDERR_FILENO) < 0) {
        int err = errno;

        close(fd);
        return -err;
    }
    close(fd);
    log_stamp = true;
    return 0;
}

/* "2026-01-31T12:00:00.123Z " into buf; its length, 0 if it cannot. */
static int
log_timestamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
        gmtime_r(&ts.tv_sec, &tm) == NULL)
        return 0;
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0)
        return 0;
    return (int)n + snprintf(buf + n, size - n, ".%03ldZ ",
                             ts.tv_nsec / 1000000);
}

void
log_write(int level, const char *fmt, ...)
{
    char line[2048];
    int n = 0, m;
    va_list ap;

    if (log_stamp)
        n = log_timestamp(line, sizeof(line));
    if (log_slot >= 0)
        m = snprintf(line + n, sizeof(line) - (size_t)n,
                     "<%d>%s pid=%d slot=%d ", level, log_role,
                     (int)getpid(), log_slot);
    else
        m = snprintf(line + n, sizeof(line) - (size_t)n, "<%d>%s pid=%d ",
                     level, log_role, (int)getpid());
    if (m < 0 || (size_t)(n + m) >= sizeof(line))
        return;
    n += m;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
        ;
}
