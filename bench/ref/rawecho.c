/*
 * rawecho.c: the ceiling for bench/compare's echo scenario: a TCP echo
 * server that does the least any echo server can, one epoll_wait, one
 * read and one write per batch of ready bytes, and nothing else: no
 * framing, no masking, no per-connection buffers unless a write comes up
 * short. wsload drives it with tcp:// URLs (same message sizes, same
 * byte-for-byte check, same accounting as over WebSocket).
 *
 * Like sockd it forks workers (--workers, default 2), each with its own
 * SO_REUSEPORT listening socket and level-triggered epoll loop; the
 * parent only waits and passes SIGTERM on. Workers die with the parent.
 *
 *   rawecho --port PORT [--workers N] [--host 127.0.0.1]
 *
 * Built by bench/compare (gcc -O2); not part of the CMake build, whose
 * glob of the .c files directly in bench/ makes up wsload.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define BUF_SIZE (256 * 1024)
#define MAX_EVENTS 256

/* Bytes a short write left behind, per fd (NULL for nearly all). */
struct pending {
    size_t len, off;
    char data[];
};

struct loop {
    int ep, lfd;
    char *buf;
    struct pending **pend;  /* indexed by fd */
    size_t npend;
};

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int
listen_on(const char *host, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 4096) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
drop(struct loop *l, int fd)
{
    if ((size_t)fd < l->npend) {
        free(l->pend[fd]);
        l->pend[fd] = NULL;
    }
    close(fd);
}

static void
accept_all(struct loop *l)
{
    for (int i = 0; i < 64; i++) {
        int one = 1, fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN };

        if (fd < 0)
            return;
        if ((size_t)fd >= l->npend) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ev.data.fd = fd;
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            close(fd);
    }
}

/* Keeps what a write left, and waits for room instead of reading. */
static int
park(struct loop *l, int fd, const char *p, size_t len)
{
    struct pending *pd = malloc(sizeof(*pd) + len);
    struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };

    if (pd == NULL)
        return -1;
    pd->len = len;
    pd->off = 0;
    memcpy(pd->data, p, len);
    l->pend[fd] = pd;
    return epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev);
}

static void
on_writable(struct loop *l, int fd)
{
    struct pending *pd = l->pend[fd];
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    ssize_t w = write(fd, pd->data + pd->off, pd->len - pd->off);

    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(l, fd);
        return;
    }
    pd->off += (size_t)w;
    if (pd->off < pd->len)
        return;
    free(pd);
    l->pend[fd] = NULL;
    if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) != 0)
        drop(l, fd);
}

static void
on_readable(struct loop *l, int fd)
{
    ssize_t r = read(fd, l->buf, BUF_SIZE), w;

    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(l, fd);
        return;
    }
    if (r < 0)
        return;
    w = write(fd, l->buf, (size_t)r);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            drop(l, fd);
            return;
        }
        w = 0;
    }
    if (w < r && park(l, fd, l->buf + w, (size_t)(r - w)) != 0)
        drop(l, fd);
}

static int
worker(int lfd)
{
    struct epoll_event evs[MAX_EVENTS], lev = { .events = EPOLLIN };
    struct loop l = { .lfd = lfd };

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    l.npend = (size_t)sysconf(_SC_OPEN_MAX);
    l.ep = epoll_create1(0);
    l.buf = malloc(BUF_SIZE);
    l.pend = calloc(l.npend, sizeof(*l.pend));
    if (l.ep < 0 || l.buf == NULL || l.pend == NULL)
        return 1;
    lev.data.fd = lfd;
    if (epoll_ctl(l.ep, EPOLL_CTL_ADD, lfd, &lev) != 0)
        return 1;
    while (!stop) {
        int n = epoll_wait(l.ep, evs, MAX_EVENTS, 500);

        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;

            if (fd == lfd)
                accept_all(&l);
            else if ((evs[i].events & EPOLLOUT) && l.pend[fd] != NULL)
                on_writable(&l, fd);
            else
                on_readable(&l, fd);
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, nworkers = 2;
    pid_t pids[MAX_WORKERS];
    struct sigaction sa = { .sa_handler = on_term };

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--workers") == 0)
            nworkers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
    }
    if (port <= 0 || port > 65535 || nworkers < 1 || nworkers > MAX_WORKERS) {
        fprintf(stderr, "usage: rawecho --port PORT [--workers N] "
                "[--host ADDR]\n");
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < nworkers; i++) {
        int lfd = listen_on(host, port);

        if (lfd < 0) {
            perror("rawecho: listen");
            return 1;
        }
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(worker(lfd));
        close(lfd);
    }
    while (!stop)
        pause();
    for (int i = 0; i < nworkers; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < nworkers; i++)
        waitpid(pids[i], NULL, 0);
    return 0;
}
