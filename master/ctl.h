/*
 * ctl.h: the control socket ($runtime_dir/ctl.sock, mode 0600) between
 * `sockd -s CMD` / sockctl and the master. A client sends one command
 * line; the master answers with lines and closes: the last line is
 * "OK text" or "ERR text", other lines are shown as they are.
 */
#ifndef SOCK_CTL_H
#define SOCK_CTL_H

#include <stddef.h>

/* The socket path for a runtime dir. */
void ctl_path(const char *runtime_dir, char *buf, size_t size);
/*
 * Client: sends cmd, prints the answer (OK lines and plain lines to
 * stdout, ERR lines to stderr) and returns the exit status: 0 for OK,
 * 1 for ERR or a broken answer, 2 if the master cannot be reached.
 * timeout_s bounds the wait (a reload waits for the new generation).
 */
int ctl_client(const char *path, const char *cmd, int timeout_s);
/*
 * Finds the runtime dir for a client: from the config if it parses,
 * else from a `runtime_dir =` line in it, else /run/sockd. The master
 * re-reads the file itself, so a bad config is still reported by it.
 */
char *ctl_runtime_dir(const char *config_path);

#endif
