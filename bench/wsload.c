/*
 * wsload.c: the wsload command: options, the target URL (loopback only),
 * the worker processes and their common clock, the server's CPU and
 * memory from /proc, and the report, whose last line is machine-readable.
 * What a worker does is wsl_worker.c's; README.md has the usage.
 *
 * The parent never touches a WebSocket: it forks the workers, waits until
 * each has its connections up ("R" on its pipe), says go to all at once by
 * closing the go pipe, samples the server at the start and the end of the
 * measured window, and adds up the reports the workers write at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wsl_common.h"
#include "wsl_deflate.h"
#include "wsl_proc.h"
#include "wsl_worker.h"

#define MAX_PROCS 64
#define MAX_CONNS 1000000u
#define MAX_SIZE (16u << 20)
#define MAX_INFLIGHT_BYTES (1ull << 30)
#define FD_MARGIN 32            /* pipes, loop, stdio: beyond the sockets */

struct args {
    enum wsl_scenario scenario;
    const char *scenario_name;
    const char *url;
    uint32_t conns, inflight, size, procs, src_ips, max_pending;
    double duration, warmup, settle, drain, connect_timeout, close_wait;
    double conn_rate, pub_rate;
    uint32_t pub_window;
    bool binary, deflate, words;
    int deflate_level;
    pid_t server_pid;
    const char *sub_msg, *pub_fmt;
};

struct child {
    pid_t pid;
    int fd;                 /* report pipe, read end */
    bool ready, done, eof;
    size_t got;
    struct wsl_stats st;
};

struct sample {
    bool ok;
    struct wsl_proc_sample s;
    bool mach_ok;           /* the machine's CPU counters */
    double mach_busy_s, mach_steal_s;
};

static void
usage(FILE *f)
{
    fputs(
"usage: wsload SCENARIO --url ws[s]://HOST[:PORT]/PATH [options]\n"
"\n"
"A WebSocket (RFC 6455) load generator. HOST must be a loopback address\n"
"(127.0.0.0/8, ::1, localhost). The last line of output starts with RESULT\n"
"and holds key=value pairs (see bench/README.md). A tcp://HOST:PORT URL\n"
"runs echo over raw TCP instead (no handshake, no frames): the ceiling a\n"
"plain TCP echo server sets.\n"
"\n"
"Scenarios:\n"
"  echo       N connections, each keeping K messages of S bytes in flight;\n"
"             every reply is checked byte for byte; round-trip latency\n"
"  idle       open N connections (paced), hold them for the duration;\n"
"             server RSS before and after, bytes per connection\n"
"  connect    keep N connect-handshake-close cycles going; handshakes/s\n"
"  broadcast  N subscribers and one publisher; deliveries/s at all\n"
"             subscribers, publish-to-delivery latency\n"
"\n"
"Options:\n"
"  -u, --url URL          ws[s]://HOST[:PORT]/PATH[?QUERY] (required)\n"
"  -c, --conns N          connections, cycles or subscribers [100]\n"
"  -k, --inflight K       echo: messages in flight per connection [1]\n"
"  -s, --size S           echo: payload bytes; broadcast: payload bytes\n"
"                         after --pub-fmt, at least 39 are sent [32]\n"
"  -d, --duration SECS    measured window [10]\n"
"  -w, --warmup SECS      traffic before the window [1; idle: 0]\n"
"      --text, --binary   message type [text]\n"
"      --payload KIND     text payload: abc (a-z repeated) or words\n"
"                         (compresses like real text, about 2-3x) [abc]\n"
"      --deflate          offer permessage-deflate (no context takeover\n"
"                         either way); our messages at zlib level 1\n"
"  -p, --server-pid PID   report CPU and RSS of PID and its descendants\n"
"  -P, --procs P          worker processes sharing the connections [1]\n"
"      --pub-rate R       broadcast: messages per second [1000]\n"
"      --pub-window K     broadcast: also keep at most K messages in flight\n"
"                         (published, not yet delivered to every\n"
"                         subscriber of the publisher's process; use\n"
"                         with -P 1 and a high --pub-rate) [off]\n"
"      --sub-msg TEXT     broadcast: text each subscriber sends once open\n"
"                         [\"sub t\"]; \"\" sends nothing\n"
"      --pub-fmt TEXT     broadcast: put before each payload [\"pub t \"]\n"
"      --settle SECS      broadcast: pause after go before publishing [0.2]\n"
"      --drain SECS       broadcast: deliveries still counted (not in the\n"
"                         window) after publishing stops [0.5]\n"
"      --conn-rate N      connections opened per second, all workers\n"
"                         [50000, i.e. 500 every 10 ms]\n"
"      --max-pending N    handshakes under way at once, all workers; keep\n"
"                         it under the server's listen backlog [256]\n"
"      --connect-timeout SECS  per connection and for the connect phase [5]\n"
"      --close-wait SECS  time allowed for each close handshake [1]\n"
"      --src-ips N        bind to 127.0.0.1..N when one port range is not\n"
"                         enough (IPv4) [auto: 1 unless N > ports]\n"
"  -h, --help\n"
"\n"
"wss:// URLs run over TLS (the server's certificate is not checked).\n"
"Every run ends by itself: connect phase + warm-up + duration + close,\n"
"and a hard deadline after which workers are killed.\n", f);
}

static void die_usage(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
die_usage(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "wsload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(wsload --help for usage)\n");
    va_end(ap);
    exit(2);
}

static uint32_t
parse_u32(const char *s, uint32_t min, uint32_t max, const char *opt)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min ||
        v > max) {
        fprintf(stderr, "wsload: %s: expected a whole number from %" PRIu32
                " to %" PRIu32 ", got \"%s\"\n", opt, min, max, s);
        exit(2);
    }
    return (uint32_t)v;
}

static double
parse_secs(const char *s, double min, double max, const char *opt)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
        fprintf(stderr, "wsload: %s: expected a number from %g to %g, "
                "got \"%s\"\n", opt, min, max, s);
        exit(2);
    }
    return v;
}

enum {
    OPT_TEXT = 256, OPT_BINARY, OPT_PUB_RATE, OPT_PUB_WINDOW, OPT_SUB_MSG, OPT_PUB_FMT,
    OPT_SETTLE, OPT_DRAIN, OPT_CONN_RATE, OPT_CONNECT_TIMEOUT,
    OPT_CLOSE_WAIT, OPT_SRC_IPS, OPT_MAX_PENDING, OPT_DEFLATE, OPT_TLS,
    OPT_PAYLOAD,
};

static const struct option long_opts[] = {
    { "url", required_argument, NULL, 'u' },
    { "conns", required_argument, NULL, 'c' },
    { "inflight", required_argument, NULL, 'k' },
    { "size", required_argument, NULL, 's' },
    { "duration", required_argument, NULL, 'd' },
    { "warmup", required_argument, NULL, 'w' },
    { "server-pid", required_argument, NULL, 'p' },
    { "procs", required_argument, NULL, 'P' },
    { "help", no_argument, NULL, 'h' },
    { "text", no_argument, NULL, OPT_TEXT },
    { "binary", no_argument, NULL, OPT_BINARY },
    { "pub-rate", required_argument, NULL, OPT_PUB_RATE },
    { "pub-window", required_argument, NULL, OPT_PUB_WINDOW },
    { "sub-msg", required_argument, NULL, OPT_SUB_MSG },
    { "pub-fmt", required_argument, NULL, OPT_PUB_FMT },
    { "settle", required_argument, NULL, OPT_SETTLE },
    { "drain", required_argument, NULL, OPT_DRAIN },
    { "conn-rate", required_argument, NULL, OPT_CONN_RATE },
    { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
    { "close-wait", required_argument, NULL, OPT_CLOSE_WAIT },
    { "src-ips", required_argument, NULL, OPT_SRC_IPS },
    { "max-pending", required_argument, NULL, OPT_MAX_PENDING },
    { "deflate", no_argument, NULL, OPT_DEFLATE },
    { "payload", required_argument, NULL, OPT_PAYLOAD },
    { "tls", no_argument, NULL, OPT_TLS },
    { NULL, 0, NULL, 0 },
};

static void
parse_scenario(struct args *a, const char *name)
{
    static const struct {
        const char *name;
        enum wsl_scenario s;
    } names[] = {
        { "echo", WSL_ECHO }, { "idle", WSL_IDLE },
        { "connect", WSL_CONNECT }, { "broadcast", WSL_BROADCAST },
    };

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i].name) == 0) {
            a->scenario = names[i].s;
            a->scenario_name = names[i].name;
            return;
        }
    }
    die_usage("unknown scenario \"%s\": echo, idle, connect or broadcast",
              name);
}

/* One option; false if it is not one of ours. */
static bool
parse_opt(struct args *a, int ch, const char *arg)
{
    switch (ch) {
    case 'u': a->url = arg; break;
    case 'c': a->conns = parse_u32(arg, 1, MAX_CONNS, "--conns"); break;
    case 'k': a->inflight = parse_u32(arg, 1, 65536, "--inflight"); break;
    case 's': a->size = parse_u32(arg, 0, MAX_SIZE, "--size"); break;
    case 'd': a->duration = parse_secs(arg, 0.1, 3600, "--duration"); break;
    case 'w': a->warmup = parse_secs(arg, 0, 600, "--warmup"); break;
    case 'p':
        a->server_pid = (pid_t)parse_u32(arg, 1, INT32_MAX, "--server-pid");
        break;
    case 'P': a->procs = parse_u32(arg, 1, MAX_PROCS, "--procs"); break;
    case OPT_TEXT: a->binary = false; break;
    case OPT_BINARY: a->binary = true; break;
    case OPT_PUB_RATE:
        a->pub_rate = parse_secs(arg, 0.1, 1e7, "--pub-rate");
        break;
    case OPT_PUB_WINDOW:
        a->pub_window = parse_u32(arg, 1, 1000000, "--pub-window");
        break;
    case OPT_SUB_MSG: a->sub_msg = arg; break;
    case OPT_PUB_FMT: a->pub_fmt = arg; break;
    case OPT_SETTLE: a->settle = parse_secs(arg, 0, 60, "--settle"); break;
    case OPT_DRAIN: a->drain = parse_secs(arg, 0, 60, "--drain"); break;
    case OPT_CONN_RATE:
        a->conn_rate = parse_secs(arg, 1, 1e7, "--conn-rate");
        break;
    case OPT_CONNECT_TIMEOUT:
        a->connect_timeout = parse_secs(arg, 0.1, 60, "--connect-timeout");
        break;
    case OPT_CLOSE_WAIT:
        a->close_wait = parse_secs(arg, 0.1, 30, "--close-wait");
        break;
    case OPT_SRC_IPS: a->src_ips = parse_u32(arg, 1, 254, "--src-ips"); break;
    case OPT_MAX_PENDING:
        a->max_pending = parse_u32(arg, 1, MAX_CONNS, "--max-pending");
        break;
    case OPT_DEFLATE: a->deflate = true; break;
    case OPT_PAYLOAD:
        if (strcmp(arg, "abc") != 0 && strcmp(arg, "words") != 0)
            die_usage("--payload: abc or words, not \"%s\"", arg);
        a->words = strcmp(arg, "words") == 0;
        break;
    case OPT_TLS:
        die_usage("%s: use a wss:// URL for TLS", "--tls");
        break;
    default:
        return false;
    }
    return true;
}

static void
parse_args(struct args *a, int argc, char **argv)
{
    int ch;

    *a = (struct args){
        .conns = 100, .inflight = 1, .size = 32, .procs = 1,
        .duration = 10, .warmup = -1, .settle = 0.2, .drain = 0.5,
        .connect_timeout = 5, .close_wait = 1, .conn_rate = 50000,
        .max_pending = 256, .deflate_level = 1,
        .pub_rate = 1000, .sub_msg = "sub t", .pub_fmt = "pub t ",
    };
    while ((ch = getopt_long(argc, argv, "u:c:k:s:d:w:p:P:h", long_opts,
                             NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            exit(0);
        }
        if (!parse_opt(a, ch, optarg))
            die_usage("%s", "bad option");
    }
    if (optind != argc - 1)
        die_usage("%s", "expected one scenario: echo, idle, connect or "
                  "broadcast");
    parse_scenario(a, argv[optind]);
    if (a->url == NULL)
        die_usage("%s", "--url is required");
    if (a->warmup < 0)
        a->warmup = a->scenario == WSL_IDLE ? 0 : 1;
    if (a->scenario == WSL_ECHO &&
        (uint64_t)a->conns * a->inflight * (a->size + 14u) >
        MAX_INFLIGHT_BYTES)
        die_usage("%s", "conns x inflight x size is over 1 GiB");
}

static bool
is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

        return ntohl(in->sin_addr.s_addr) >> 24 == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
                in6->sin6_addr.s6_addr[12] == 127);
    }
    return false;
}

/* Fills the address from a literal (or "localhost"), no DNS. */
static int
set_addr(struct wsl_target *t, const char *host, uint16_t port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->addr;

    memset(&t->addr, 0, sizeof(t->addr));
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        t->addrlen = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        t->addrlen = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

/* Splits "HOST[:PORT]" or "[V6][:PORT]"; host gets the bare address. */
static int
split_authority(const char *auth, char *host, size_t cap, uint16_t *port,
                uint16_t dflt)
{
    const char *h = auth, *colon;
    size_t hlen;

    if (auth[0] == '[') {
        const char *rb = strchr(auth, ']');

        if (rb == NULL)
            return -EINVAL;
        h = auth + 1;
        hlen = (size_t)(rb - h);
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (rb[1] != '\0' && colon == NULL)
            return -EINVAL;
    } else {
        colon = strchr(auth, ':');
        hlen = colon != NULL ? (size_t)(colon - auth) : strlen(auth);
    }
    if (hlen == 0 || hlen >= cap)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = dflt;
    if (colon != NULL) {
        char *end;
        unsigned long v = strtoul(colon + 1, &end, 10);

        if (end == colon + 1 || *end != '\0' || v == 0 || v > 65535)
            return -EINVAL;
        *port = (uint16_t)v;
    }
    return 0;
}

static void
parse_url(const char *url, struct wsl_target *t)
{
    const char *p, *slash;
    char host[256];
    size_t alen;
    uint16_t port;

    if (strncmp(url, "wss://", 6) == 0) {
        p = url + 6;
        t->tls = true;
    } else if (strncmp(url, "tcp://", 6) == 0) {
        p = url + 6;
        t->raw_msg_size = 1;    /* the real size is set once args are in */
    } else if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else {
        die_usage("%s: the URL must start with ws:// (or tcp:// for raw "
                  "TCP echo)", url);
    }
    slash = p + strcspn(p, "/?");
    alen = (size_t)(slash - p);
    if (alen == 0 || alen >= sizeof(t->host))
        die_usage("%s: no host, or a host too long", url);
    memcpy(t->host, p, alen);
    t->host[alen] = '\0';
    snprintf(t->path, sizeof(t->path), "%s%s", *slash == '?' ? "/" : "",
             *slash != '\0' ? slash : "/");
    /* The path goes into the request line: no spaces or controls. */
    for (const char *c = t->path; *c != '\0'; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            die_usage("%s: spaces or control characters in the path", url);
    }
    if (split_authority(t->host, host, sizeof(host), &port,
                        t->tls ? 443 : 80) != 0)
        die_usage("%s: bad HOST[:PORT]", url);
    if (set_addr(t, host, port) != 0)
        die_usage("%s: HOST must be an address literal (127.x.x.x, ::1) or "
                  "localhost; names are not resolved", url);
    if (!is_loopback(&t->addr))
        die_usage("%s: refused: wsload only connects to loopback addresses "
                  "(127.0.0.0/8, ::1)", url);
}

/* The largest number of connections one worker opens at a time. */
static uint32_t
per_worker(const struct args *a)
{
    return (a->conns + a->procs - 1) / a->procs;
}

static void
raise_nofile(const struct args *a)
{
    struct rlimit rl;
    uint64_t need = (uint64_t)per_worker(a) + 1 + FD_MARGIN;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        fprintf(stderr, "wsload: each worker needs %" PRIu64 " file "
                "descriptors but the hard limit is %llu: use more --procs "
                "or raise the limit\n", need,
                (unsigned long long)rl.rlim_max);
        exit(2);
    }
}

/* Source addresses needed so that conns fit in the ephemeral port range
   towards one server address; 1 for everything else. */
static uint32_t
auto_src_ips(const struct args *a, const struct wsl_target *t)
{
    FILE *f;
    unsigned lo = 32768, hi = 60999;
    double ports;

    if (t->addr.ss_family != AF_INET || a->scenario == WSL_CONNECT)
        return 1;
    f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (f != NULL) {
        if (fscanf(f, "%u %u", &lo, &hi) != 2 || hi < lo)
            lo = 32768, hi = 60999;
        fclose(f);
    }
    ports = 0.9 * (double)(hi - lo + 1);
    return (uint32_t)MIN(254.0, MAX(1.0, ceil((double)a->conns / ports)));
}

static struct wsl_opts
worker_opts(const struct args *a, const struct wsl_target *t, uint32_t i)
{
    uint32_t base = a->conns / a->procs, extra = a->conns % a->procs;
    struct wsl_opts o = {
        .scenario = a->scenario,
        .target = *t,
        .conns = base + (i < extra ? 1 : 0),
        .first_index = i * base + MIN(i, extra),
        .worker_index = i,
        .inflight = a->inflight,
        .size = a->size,
        .binary = a->binary,
        .words = a->words,
        .publisher = a->scenario == WSL_BROADCAST && i == 0,
        .pub_rate = a->pub_rate,
        .pub_window = a->pub_window,
        .sub_msg = a->sub_msg,
        .pub_fmt = a->pub_fmt,
        .conn_rate = a->conn_rate / a->procs,
        .max_pending = MAX(1u, a->max_pending / a->procs),
        .connect_timeout = a->connect_timeout,
        .warmup = a->warmup,
        .duration = a->duration,
        .settle = a->scenario == WSL_BROADCAST ? a->settle : 0,
        .drain = a->scenario == WSL_BROADCAST ? a->drain : 0,
        .close_wait = a->close_wait,
    };

    /* Connect phase, then the clock the parent runs, then closing. */
    o.deadline = 2 * a->connect_timeout + 2 + o.warmup + o.settle +
                 o.duration + o.drain + 2 * a->close_wait + 5;
    return o;
}

static void
sleep_until(uint64_t t_ns)
{
    struct timespec ts = {
        .tv_sec = (time_t)(t_ns / WSL_NS_PER_S),
        .tv_nsec = (long)(t_ns % WSL_NS_PER_S),
    };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR)
        ;
}

/* Runs in the child: never returns. */
static void
child_main(const struct wsl_opts *o, struct child *ch, uint32_t i,
           pid_t parent, int go_rd, int go_wr, int rep_wr)
{
    int rc;

    /* Die with the parent, even if it is killed. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    /* The hard deadline is a libev timer; this is the backstop if the
       loop itself is stuck: SIGALRM's default action ends the process. */
    alarm((unsigned)ceil(o->deadline) + 5);
    close(go_wr);
    for (uint32_t j = 0; j < i; j++)
        close(ch[j].fd);
    rc = wsl_worker_run(o, go_rd, rep_wr);
    if (rc != 0)
        fprintf(stderr, "wsload: worker %u: %s\n", i, strerror(-rc));
    _exit(rc == 0 ? 0 : 1);
}

/* Forks the workers; returns the go pipe's write end, or -1. */
static int
spawn(const struct args *a, const struct wsl_target *t, struct child *ch)
{
    int go[2];
    pid_t parent = getpid();

    if (pipe2(go, O_CLOEXEC) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    for (uint32_t i = 0; i < a->procs; i++) {
        int rep[2];
        struct wsl_opts o = worker_opts(a, t, i);

        if (pipe2(rep, O_CLOEXEC) != 0)
            return -1;
        ch[i].pid = fork();
        if (ch[i].pid < 0)
            return -1;
        if (ch[i].pid == 0) {
            close(rep[0]);
            child_main(&o, ch, i, parent, go[0], go[1], rep[1]);
        }
        close(rep[1]);
        ch[i].fd = rep[0];
    }
    close(go[0]);
    return go[1];
}

/* Reads what a worker has written: "R", then its struct wsl_stats. */
static void
read_child(struct child *ch)
{
    ssize_t n;

    if (!ch->ready) {
        char b;

        n = read(ch->fd, &b, 1);
        if (n == 1)
            ch->ready = b == 'R';
    } else {
        n = read(ch->fd, (char *)&ch->st + ch->got,
                 sizeof(ch->st) - ch->got);
        if (n > 0)
            ch->got += (size_t)n;
        ch->done = ch->got == sizeof(ch->st);
    }
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        ch->eof = true;
}

/* Waits until every worker is ready (or done), gone, or the deadline. */
static void
wait_children(struct child *ch, uint32_t n, bool want_done,
              uint64_t deadline_ns)
{
    struct pollfd pfd[MAX_PROCS];
    uint32_t idx[MAX_PROCS];

    for (;;) {
        uint64_t now = wsl_now_ns();
        nfds_t np = 0;

        for (uint32_t i = 0; i < n; i++) {
            if (ch[i].eof || (want_done ? ch[i].done : ch[i].ready))
                continue;
            pfd[np] = (struct pollfd){ .fd = ch[i].fd, .events = POLLIN };
            idx[np++] = i;
        }
        if (np == 0 || now >= deadline_ns)
            return;
        if (poll(pfd, np, (int)MIN((deadline_ns - now) / 1000000 + 1,
                                   (uint64_t)60000)) < 0 && errno != EINTR)
            return;
        for (nfds_t j = 0; j < np; j++) {
            if (pfd[j].revents != 0)
                read_child(&ch[idx[j]]);
        }
    }
}

static void
reap(struct child *ch, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int status;

        if (ch[i].pid <= 0)
            continue;
        if (!ch[i].done)
            kill(ch[i].pid, SIGKILL);
        (void)waitpid(ch[i].pid, &status, 0);
        close(ch[i].fd);
    }
}

static void
take_sample(pid_t pid, struct sample *s)
{
    s->ok = pid > 0 && wsl_proc_sample_tree(pid, &s->s) == 0;
    s->mach_ok = wsl_proc_machine_cpu(&s->mach_busy_s,
                                      &s->mach_steal_s) == 0;
}

/* ---- report -------------------------------------------------------- */

struct totals {
    struct wsl_stats st;    /* sums; hist merged */
    uint32_t reported;
    double window_s;        /* mean over workers */
    double cpu_max_pct;     /* busiest worker's share of one core */
};

static void
add_up(const struct child *ch, uint32_t n, struct totals *t)
{
    struct wsl_stats *s = &t->st;

    memset(t, 0, sizeof(*t));
    for (uint32_t i = 0; i < n; i++) {
        const struct wsl_stats *c = &ch[i].st;

        if (!ch[i].done)
            continue;
        t->reported++;
        s->msgs += c->msgs;
        s->bytes += c->bytes;
        s->sent += c->sent;
        s->opened += c->opened;
        s->open_at_end += c->open_at_end;
        s->published += c->published;
        s->delivered += c->delivered;
        s->subscribers += c->subscribers;
        s->gaps += c->gaps;
        s->reordered += c->reordered;
        s->other += c->other;
        s->pub_stalled += c->pub_stalled;
        s->wire_in += c->wire_in;
        s->wire_out += c->wire_out;
        s->inflated += c->inflated;
        s->cpu_s += c->cpu_s;
        s->connect_s = MAX(s->connect_s, c->connect_s);
        s->deadline_hit |= c->deadline_hit;
        for (int e = 0; e < WSL_ERR_COUNT; e++) {
            s->err[e] += c->err[e];
            if (s->first_errno[e] == 0)
                s->first_errno[e] = c->first_errno[e];
        }
        if (s->first_failure[0] == '\0')
            memcpy(s->first_failure, c->first_failure,
                   sizeof(s->first_failure));
        wsl_hist_merge(&s->hist, &c->hist);
        t->window_s += c->window_s;
        if (c->window_s > 0)
            t->cpu_max_pct = MAX(t->cpu_max_pct,
                                 100.0 * c->cpu_s / c->window_s);
    }
    if (t->reported > 0)
        t->window_s /= t->reported;
}

static uint64_t
total_errors(const struct wsl_stats *s)
{
    uint64_t sum = 0;

    for (int e = WSL_ERR_NONE + 1; e < WSL_ERR_COUNT; e++)
        sum += s->err[e];
    return sum;
}

static void
print_errors(const struct wsl_stats *s)
{
    static const char *const names[WSL_ERR_COUNT] = {
        "", "connect", "handshake", "protocol", "closed", "mismatch",
        "timeout",
    };

    printf("  errors     %" PRIu64, total_errors(s));
    for (int e = WSL_ERR_NONE + 1; e < WSL_ERR_COUNT; e++) {
        if (s->err[e] == 0)
            continue;
        printf(" %s=%" PRIu64, names[e], s->err[e]);
        if (s->first_errno[e] != 0)
            printf(" (%s)", strerror(s->first_errno[e]));
    }
    if (s->first_failure[0] != '\0')
        printf("; first: %s", s->first_failure);
    printf("\n");
    if (s->err[WSL_ERR_CONNECT] > 0 &&
        s->first_errno[WSL_ERR_CONNECT] == EADDRNOTAVAIL)
        printf("  hint       out of local ports: try --src-ips 4\n");
}

/* A number with %.1f, or "na"; buf must hold 32 bytes. */
static const char *
fmt_or_na(char *buf, bool ok, double v)
{
    if (!ok)
        return "na";
    snprintf(buf, 32, "%.1f", v);
    return buf;
}

static void
print_human(const struct args *a, const struct totals *t,
            const struct sample *s0, const struct sample *s1,
            const struct sample *before)
{
    const struct wsl_stats *s = &t->st;
    const struct wsl_hist *h = &s->hist;
    double secs = t->window_s > 0 ? t->window_s : a->duration;

    printf("wsload %s %s: %" PRIu32 " %s, %" PRIu32 " process%s\n",
           a->scenario_name, a->url, a->conns,
           a->scenario == WSL_CONNECT ? "concurrent cycles" :
           a->scenario == WSL_BROADCAST ? "subscribers" : "connections",
           a->procs, a->procs == 1 ? "" : "es");
    if (a->scenario != WSL_CONNECT)
        printf("  connect    %" PRIu64 " open after %.2f s\n", s->opened,
               s->connect_s);
    printf("  window     %.2f s after %.1f s warm-up; %" PRIu64
           " open at its end, %" PRIu64 " handshakes in all\n",
           secs, a->warmup, s->open_at_end, s->opened);
    if (a->scenario == WSL_ECHO)
        printf("  messages   %" PRIu64 " echoes (%.0f/s), %" PRIu32
               " in flight of %" PRIu32 " B %s, %.1f MB/s payload each way\n",
               s->msgs, (double)s->msgs / secs, a->inflight, a->size,
               a->binary ? "binary" : "text", (double)s->bytes / secs / 1e6);
    else if (a->scenario == WSL_CONNECT)
        printf("  handshakes %" PRIu64 " (%.0f/s)\n", s->msgs,
               (double)s->msgs / secs);
    else if (a->scenario == WSL_BROADCAST)
        printf("  deliveries %" PRIu64 " (%.0f/s) to %" PRIu64 " subscribers;"
               " published %" PRIu64 " in the window, %" PRIu64 " in all; "
               "gaps %" PRIu64 ", reordered %" PRIu64 ", stalled ticks %"
               PRIu64 "\n", s->msgs, (double)s->msgs / secs, s->subscribers,
               s->sent, s->published, s->gaps, s->reordered, s->pub_stalled);
    if (h->count > 0)
        printf("  latency    %s: p50 %.1f us  p99 %.1f us  p99.9 %.1f us  "
               "max %.1f us  mean %.1f us  (n=%" PRIu64 ")\n",
               a->scenario == WSL_ECHO ? "round trip" :
               a->scenario == WSL_BROADCAST ? "publish to delivery" :
               "handshake", wsl_hist_quantile(h, 0.5) / 1e3,
               wsl_hist_quantile(h, 0.99) / 1e3,
               wsl_hist_quantile(h, 0.999) / 1e3, (double)h->max_ns / 1e3,
               (double)h->sum_ns / (double)h->count / 1e3, h->count);
    print_errors(s);
    printf("  client     cpu %.2f s in the window; busiest worker %.0f%% of "
           "a core\n", s->cpu_s, t->cpu_max_pct);
    if (s0->ok && s1->ok)
        printf("  server     cpu %.2f s in the window; rss %" PRIu64 " kB, "
               "pss %" PRIu64 " kB in %" PRIu32 " process%s\n",
               s1->s.cpu_s - s0->s.cpu_s, s1->s.rss_kb, s1->s.pss_kb,
               s1->s.nprocs, s1->s.nprocs == 1 ? "" : "es");
    if (a->scenario == WSL_IDLE && before->ok && s1->ok &&
        s->open_at_end > 0)
        printf("  memory     rss %" PRIu64 " -> %" PRIu64 " kB with %" PRIu64
               " open: %.0f bytes per connection (pss: %.0f)\n",
               before->s.rss_kb, s1->s.rss_kb, s->open_at_end,
               ((double)s1->s.rss_kb - (double)before->s.rss_kb) * 1024 /
               (double)s->open_at_end,
               ((double)s1->s.pss_kb - (double)before->s.pss_kb) * 1024 /
               (double)s->open_at_end);
    if (t->cpu_max_pct > 90)
        printf("  warning    a worker was busy %.0f%% of the window: the "
               "client may be the bottleneck; add --procs\n",
               t->cpu_max_pct);
    if (s->deadline_hit)
        printf("  warning    a worker hit its hard deadline\n");
    if (t->reported < a->procs)
        printf("  warning    %" PRIu32 " of %" PRIu32 " workers did not "
               "report\n", a->procs - t->reported, a->procs);
}

static void
print_result(const struct args *a, const struct totals *t,
             const struct sample *s0, const struct sample *s1,
             const struct sample *before)
{
    const struct wsl_stats *s = &t->st;
    const struct wsl_hist *h = &s->hist;
    double secs = t->window_s > 0 ? t->window_s : a->duration;
    bool srv = s0->ok && s1->ok;
    double scpu = srv ? s1->s.cpu_s - s0->s.cpu_s : 0;
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];

    printf("RESULT scenario=%s conns=%" PRIu32 " msgs=%" PRIu64
           " secs=%.3f msgs_per_sec=%.1f p50_us=%s p99_us=%s p999_us=%s"
           " errors=%" PRIu64 " client_cpu_s=%.3f server_cpu_s=%s"
           " server_rss_kb=%s msgs_per_server_cpu_s=%s",
           a->scenario_name, a->conns, s->msgs, secs,
           (double)s->msgs / secs,
           fmt_or_na(b1, h->count > 0, wsl_hist_quantile(h, 0.5) / 1e3),
           fmt_or_na(b2, h->count > 0, wsl_hist_quantile(h, 0.99) / 1e3),
           fmt_or_na(b3, h->count > 0, wsl_hist_quantile(h, 0.999) / 1e3),
           total_errors(s), s->cpu_s,
           srv ? (snprintf(b4, sizeof(b4), "%.3f", scpu), b4) : "na",
           srv ? (snprintf(b5, sizeof(b5), "%" PRIu64, s1->s.rss_kb), b5)
               : "na",
           fmt_or_na(b6, srv && scpu > 0, (double)s->msgs / scpu));
    printf(" procs=%" PRIu32 " open=%" PRIu64 " connect_s=%.3f max_us=%.1f"
           " client_cpu_max_pct=%.1f server_pss_kb=%s",
           a->procs, s->open_at_end, s->connect_s, (double)h->max_ns / 1e3,
           t->cpu_max_pct,
           srv ? (snprintf(b1, sizeof(b1), "%" PRIu64, s1->s.pss_kb), b1)
               : "na");
    printf(" wire_in_bytes=%" PRIu64 " wire_out_bytes=%" PRIu64,
           s->wire_in, s->wire_out);
    /* All processes' CPU in the window: what neither the server nor the
       client used was other load on the machine. */
    if (s0->mach_ok && s1->mach_ok)
        printf(" machine_cpu_s=%.3f steal_cpu_s=%.3f",
               s1->mach_busy_s - s0->mach_busy_s,
               s1->mach_steal_s - s0->mach_steal_s);
    if (a->scenario == WSL_ECHO)
        printf(" inflight=%" PRIu32 " size=%" PRIu32 " transport=%s",
               a->inflight, a->size,
               strncmp(a->url, "tcp://", 6) == 0 ? "tcp" : "ws");
    /* Inflated payload over the bytes that carried it, headers included:
       what the server's compression saved on the way back. */
    if (a->deflate)
        printf(" deflate=on inflated=%" PRIu64 " compression_ratio=%s",
               s->inflated,
               fmt_or_na(b4, s->wire_in > 0 && s->bytes > 0,
                         (double)s->bytes / (double)s->wire_in));
    if (a->scenario == WSL_IDLE)
        printf(" rss_before_kb=%s bytes_per_conn=%s",
               before->ok ? (snprintf(b2, sizeof(b2), "%" PRIu64,
                                      before->s.rss_kb), b2) : "na",
               fmt_or_na(b3, before->ok && srv && s->open_at_end > 0,
                         ((double)s1->s.rss_kb - (double)before->s.rss_kb) *
                         1024 / (double)(s->open_at_end ? s->open_at_end
                                                        : 1)));
    if (a->scenario == WSL_BROADCAST) {
        uint64_t expect = s->published * s->subscribers;

        printf(" subscribers=%" PRIu64 " published=%" PRIu64
               " delivered=%" PRIu64 " lost=%" PRIu64, s->subscribers,
               s->published, s->delivered,
               expect > s->delivered ? expect - s->delivered : 0);
    }
    printf("\n");
}

int
main(int argc, char **argv)
{
    struct args a;
    struct wsl_target target;
    struct child *ch;
    struct sample before = { 0 }, s0 = { 0 }, s1 = { 0 };
    struct totals *t;
    uint64_t t_go;
    int go_wr, rc;

    parse_args(&a, argc, argv);
    memset(&target, 0, sizeof(target));
    parse_url(a.url, &target);
    if (target.raw_msg_size > 0) {
        if (a.scenario != WSL_ECHO || a.deflate || a.size == 0)
            die_usage("%s", "tcp:// runs the echo scenario only, with "
                      "--size 1 or more and without --deflate");
        target.raw_msg_size = a.size;
        target.raw_opcode = a.binary ? 0x2 : 0x1;
    }
    if (a.deflate) {
        target.extensions = WSL_DEFLATE_OFFER;
        target.deflate_level = a.deflate_level;
    }
    target.src_ips = a.src_ips != 0 ? a.src_ips : auto_src_ips(&a, &target);
    if (a.server_pid != 0 && !wsl_proc_exists(a.server_pid)) {
        fprintf(stderr, "wsload: --server-pid %d: no such process\n",
                (int)a.server_pid);
        return 2;
    }
    raise_nofile(&a);
    ch = calloc(a.procs, sizeof(*ch));
    t = calloc(1, sizeof(*t));
    if (ch == NULL || t == NULL) {
        fprintf(stderr, "wsload: out of memory\n");
        return 1;
    }
    take_sample(a.server_pid, &before);
    go_wr = spawn(&a, &target, ch);
    if (go_wr < 0) {
        fprintf(stderr, "wsload: starting workers: %s\n", strerror(errno));
        reap(ch, a.procs);
        return 1;
    }
    wait_children(ch, a.procs, false, wsl_now_ns() +
                  (uint64_t)((a.connect_timeout + 2) * 1e9));
    close(go_wr);
    t_go = wsl_now_ns();
    sleep_until(t_go + (uint64_t)(a.warmup * 1e9));
    take_sample(a.server_pid, &s0);
    sleep_until(t_go + (uint64_t)((a.warmup + a.duration) * 1e9));
    take_sample(a.server_pid, &s1);
    wait_children(ch, a.procs, true, t_go + (uint64_t)((a.warmup +
                  a.duration + a.settle + a.drain + 2 * a.close_wait + 5) *
                  1e9));
    reap(ch, a.procs);
    add_up(ch, a.procs, t);
    print_human(&a, t, &s0, &s1, &before);
    print_result(&a, t, &s0, &s1, &before);
    rc = t->reported == a.procs ? 0 : 1;
    free(ch);
    free(t);
    return rc;
}
