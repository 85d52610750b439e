/*
 * admin.h: the operators' HTTP endpoint on the [admin] listen address.
 */
#ifndef SOCK_ADMIN_H
#define SOCK_ADMIN_H

struct worker;

/* Serves one request on an accepted admin connection (fd is taken). */
void admin_accept(struct worker *w, int fd);

#endif
