/*
 * admin.h: the operators' HTTP endpoint on the [admin] listen address.
 */
#ifndef SOCK_ADMIN_H
#define SOCK_ADMIN_H

struct worker;
struct bus_msg;

/* Serves one request on an accepted admin connection (fd is taken). */
void admin_accept(struct worker *w, int fd);
/* BUS_ADMIN from another worker: runs the command on this worker's
   connections and answers with BUS_ADMIN_REPLY. */
void admin_bus_request(struct worker *w, const struct bus_msg *m);
/* BUS_ADMIN_REPLY: completes the admin request waiting for it, if any. */
void admin_bus_reply(struct worker *w, const struct bus_msg *m);

#endif
