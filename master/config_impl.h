/*
 * config_impl.h: the state of one parse of sockd.conf(5), shared by
 * config.c (sections, lines, keys as they come) and config_check.c (the
 * checks across keys and sections once the file is read).
 */
#ifndef SOCK_CONFIG_IMPL_H
#define SOCK_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config_keys.h"

enum section {
    SEC_NONE, SEC_SKIP, SEC_SERVER, SEC_LISTEN, SEC_ROUTE, SEC_ADMIN,
    SEC_REDIS,
};

/* Whether an indented line without '=' continues the key above it. */
enum cont {
    CONT_NO,    /* no key above: a syntax error */
    CONT_YES,   /* continues p->cont_key */
    CONT_SKIP,  /* the key above was reported already: ignore quietly */
};

/* Where each key was set in one section, 0 = not set. */
struct seen {
    int line[CONFIG_N_KEYS];
};

struct perr {
    int line;       /* 0: about the whole file */
    size_t seq;     /* keeps the sort stable */
    char *msg;
};


struct parser {
    struct config *cfg;
    const char *name;           /* the file, in messages */
    FILE *fp;                   /* the source: a file, */
    const char *text;           /* or the rest of a string */
    char *buf;                  /* the current raw line */
    size_t bufcap;
    int read_errno;
    int line;                   /* of the line libinih has now */
    enum section sec;
    size_t cur;                 /* index of the current listener or route */
    enum cont cont;
    bool cont_line;             /* the current line is a continuation */
    const struct key *cont_key;
    int server_line;            /* of the first [server], 0 if none */
    struct seen server_seen;
    struct seen admin_seen;
    struct seen redis_seen;
    struct seen *listen_seen;   /* parallel to cfg->listeners */
    struct seen *route_seen;    /* parallel to cfg->routes */
    struct perr *errs;
    size_t n_errs;
    bool oom;
};

/* Records "FILE:LINE: message" (line 0: about the whole file); messages
   are sorted by line when the parse ends. */
void config_report(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
