/*
 * sendbatch.h: the writes of one flush pass made with one system call.
 *
 * Before each poll the worker writes every connection that queued output
 * (worker.c). One send(2) each costs a kernel entry each, and where entries
 * are dear (a virtual machine: about 1 us each) that is most of the cost of
 * a fan-out. A batch puts those sends, each nonblocking (MSG_DONTWAIT),
 * on an io_uring submission queue and makes them with one io_uring_enter;
 * every result is what send(2) would have returned. Nothing is left in the
 * kernel after sendbatch_run, so the queues' bytes need only live that long.
 *
 * Where the kernel has no io_uring, or refuses it (a seccomp filter), or
 * [server] io_uring = off, sendbatch_new returns NULL and the worker makes
 * one send per connection as before.
 */
#ifndef SOCK_SENDBATCH_H
#define SOCK_SENDBATCH_H

#include <stddef.h>
#include <sys/types.h>

#include "sendq.h"

struct sendbatch;

/* A batch of at most max sends; NULL when io_uring is not to be had, with
   *err set to why (a negative errno: -ENOSYS, -EPERM, -EINVAL for a
   kernel before 6.0, -ENOMEM). */
struct sendbatch *sendbatch_new(unsigned max, int *err);
void sendbatch_free(struct sendbatch *b);
/* Adds the write sendq_flush would make next from q to fd. Returns its
   slot, or -ENOSPC when the batch is full. q's bytes must stay as they
   are until sendbatch_run has returned. */
int sendbatch_add(struct sendbatch *b, int fd, const struct sendq *q);
/* Makes the sends added since the last run, in one system call, and
   returns how many the kernel took (all, unless it failed: the rest
   answer -ECANCELED). The batch is empty again afterwards. */
unsigned sendbatch_run(struct sendbatch *b);
/* Slot i's result, as from send(2) but -errno: bytes written (at most
   *offered, set to the bytes the slot offered), -EAGAIN, or another error.
   -ECANCELED means the send was not made (the caller writes it itself). */
ssize_t sendbatch_result(const struct sendbatch *b, unsigned i,
                         size_t *offered);

#endif
