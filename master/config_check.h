/*
 * config_check.h: the checks of sockd.conf(5) that span keys and sections.
 */
#ifndef SOCK_CONFIG_CHECK_H
#define SOCK_CONFIG_CHECK_H

struct parser;

/*
 * Once the file is read: reports what is missing or inconsistent, fills
 * each route's unset options from [server]'s, and defaults [redis]
 * prefix.
 */
void config_check(struct parser *p);

#endif
