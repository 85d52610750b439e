/*
 * sendbatch.c: sends made in one io_uring_enter (sendbatch.h).
 */
#include "sendbatch.h"

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "log.h"

#define SENDBATCH_NOP UINT64_MAX /* user_data of a send turned into a NOP */

struct sendbatch_slot {
    struct msghdr mh;
    size_t offered;
    ssize_t res;
    struct iovec iov[SENDQ_IOV];
};

struct sendbatch {
    struct io_uring ring;
    unsigned max, n;
    uint32_t gen;             /* tags user_data: this run's completions */
    struct sendbatch_slot *slots;
};

/*
 * The ring does sends and nothing else: before it is enabled, it is
 * restricted to the three operations used here, with no SQE flags and no
 * register operation. Whatever else runs in the worker (an app module)
 * cannot make this ring read files or open sockets.
 */
static int
sendbatch_restrict(struct io_uring *ring)
{
    struct io_uring_restriction r[3];
    static const uint8_t ops[3] = { IORING_OP_SEND, IORING_OP_SENDMSG,
                                    IORING_OP_NOP };

    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++) {
        r[i].opcode = IORING_RESTRICTION_SQE_OP;
        r[i].sqe_op = ops[i];
    }
    /* By the system call: Debian's liburing 2.3 declares
       io_uring_register_restrictions and io_uring_enable_rings but its
       library does not export them. */
    if (syscall(__NR_io_uring_register, ring->ring_fd,
                IORING_REGISTER_RESTRICTIONS, r, 3) < 0 ||
        syscall(__NR_io_uring_register, ring->ring_fd,
                IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
        return -errno;
    return 0;
}

struct sendbatch *
sendbatch_new(unsigned max, int *err)
{
    struct sendbatch *b = calloc(1, sizeof(*b));
    struct io_uring_params p;
    int rc;

    *err = -ENOMEM;
    if (b == NULL)
        return NULL;
    b->slots = calloc(max, sizeof(*b->slots));
    if (b->slots == NULL) {
        free(b);
        return NULL;
    }
    b->max = max;
    /* One task submits (SINGLE_ISSUER) and nothing else needs an
       interrupt to learn of a completion (COOP_TASKRUN): both cut the
       kernel's work per batch. They also date the kernel (6.0): one that
       refuses them gets no batch, because the whole design rests on a
       MSG_DONTWAIT send answering -EAGAIN at once, never waiting in the
       kernel for the socket to drain while sendbatch_run waits for it. */
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_R_DISABLED;
    rc = io_uring_queue_init_params(max, &b->ring, &p);
    if (rc == 0 && (rc = sendbatch_restrict(&b->ring)) < 0)
        io_uring_queue_exit(&b->ring);
    if (rc < 0) {
        free(b->slots);
        free(b);
        *err = rc;
        return NULL;
    }
    return b;
}

void
sendbatch_free(struct sendbatch *b)
{
    if (b == NULL)
        return;
    io_uring_queue_exit(&b->ring);
    free(b->slots);
    free(b);
}

int
sendbatch_add(struct sendbatch *b, int fd, const struct sendq *q)
{
    struct sendbatch_slot *s;
    struct io_uring_sqe *sqe;
    int iovcnt;

    if (b->n == b->max || (sqe = io_uring_get_sqe(&b->ring)) == NULL)
        return -ENOSPC;
    s = &b->slots[b->n];
    iovcnt = sendq_peek(q, s->iov, SENDQ_IOV, &s->offered);
    s->res = -ECANCELED;
    /* MSG_DONTWAIT: a full socket answers -EAGAIN at once, as send(2)
       does on a nonblocking one, instead of the kernel keeping the request
       (and the iovecs' bytes) until the socket drains. */
    if (iovcnt == 1) {
        io_uring_prep_send(sqe, fd, s->iov[0].iov_base, s->iov[0].iov_len,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        memset(&s->mh, 0, sizeof(s->mh));
        s->mh.msg_iov = s->iov;
        s->mh.msg_iovlen = (size_t)iovcnt;
        io_uring_prep_sendmsg(sqe, fd, &s->mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    io_uring_sqe_set_data64(sqe, (uint64_t)b->gen << 32 | b->n);
    return (int)b->n++;
}

/* The kernel did not take every send (it should: the queues are sized for
   a full batch and every completion is reaped). Those it did not take
   become NOPs, taken by the next enter, so no stale iovec is ever read. */
static void
sendbatch_cancel_rest(struct sendbatch *b)
{
    struct io_uring_sq *sq = &b->ring.sq;

    for (unsigned i = *sq->khead; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];

        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, SENDBATCH_NOP);
    }
}

unsigned
sendbatch_run(struct sendbatch *b)
{
    unsigned n = b->n, taken, seen = 0;
    int rc;

    if (n == 0)
        return 0;
    b->n = 0;
    do {
        rc = io_uring_submit_and_wait(&b->ring, n);
    } while (rc == -EINTR);
    taken = rc < 0 ? 0 : MIN((unsigned)rc, n);
    if (taken < n) {
        log_err("event=io_uring_submit error=\"%s\" taken=%u of=%u",
                strerror(rc < 0 ? -rc : EAGAIN), taken, n);
        sendbatch_cancel_rest(b);
    }
    /* The kernel takes sends in order: the first `taken` were made (or are
       being made). One whose result never comes is an error, not a send
       to make again: its bytes may be on the wire. */
    for (unsigned i = 0; i < taken; i++)
        b->slots[i].res = -EIO;
    while (seen < taken) {
        struct io_uring_cqe *cqe;
        unsigned head, count = 0;

        rc = io_uring_wait_cqe(&b->ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0) {
            log_err("event=io_uring_wait error=\"%s\"", strerror(-rc));
            break;
        }
        io_uring_for_each_cqe(&b->ring, head, cqe) {
            uint64_t d = io_uring_cqe_get_data64(cqe);

            count++;
            if (d >> 32 != b->gen || (d & 0xffffffffu) >= taken)
                continue; /* a NOP, or a late one of an earlier batch */
            b->slots[d & 0xffffffffu].res = cqe->res;
            seen++;
        }
        io_uring_cq_advance(&b->ring, count);
    }
    b->gen++;
    return taken;
}

ssize_t
sendbatch_result(const struct sendbatch *b, unsigned i, size_t *offered)
{
    *offered = b->slots[i].offered;
    return b->slots[i].res;
}
