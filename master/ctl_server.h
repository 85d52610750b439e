/*
 * ctl_server.h: the master's side of the control socket (ctl.h has the
 * protocol and the client).
 */
#ifndef SOCK_CTL_SERVER_H
#define SOCK_CTL_SERVER_H

#include <stddef.h>

struct master;

/*
 * Prepares runtime_dir (created 0750, or checked: no symbolic link, no
 * directory others own or can write to; given to user when run as root)
 * and listens on its ctl.sock (0600), unless a live master answers there.
 * 0, or -1 with a message in err.
 */
int ctl_server_listen(struct master *m, const char *runtime_dir,
                      const char *user, char *err, size_t errlen);
/* Answers every client waiting for a reload with line (several lines
   may be in it) and closes it. */
void ctl_server_reply_reloads(struct master *m, const char *line);
/* The master exits: clients waiting for the stop get "OK stopped", every
   client is closed, and the socket is closed and unlinked. */
void ctl_server_close(struct master *m);

#endif
