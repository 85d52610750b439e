/*
 * log.h: the one logger. Lines go to stderr with a syslog priority prefix
 * ("<6>") that journald understands, then key=value fields. The level is
 * tested before anything is formatted.
 */
#ifndef SOCK_LOG_H
#define SOCK_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LVL_ERR = 3,
    LOG_LVL_WARN = 4,
    LOG_LVL_INFO = 6,
    LOG_LVL_DEBUG = 7,
};

extern int log_level_current;

/* Role ("master", "worker") and slot printed on every line. */
void log_set_role(const char *role, int slot);
void log_set_level(int level);
/* Parses "err", "warn", "info", "debug"; returns -1 for anything else. */
int log_level_parse(const char *s);
/* Reopens stderr onto path (for USR1); no-op when path is NULL. */
int log_reopen(const char *path);

void log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                   \
    do {                                                   \
        if ((lvl) <= log_level_current)                    \
            log_write((lvl), __VA_ARGS__);                 \
    } while (0)

#define log_err(...) LOG_AT(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
