/*
 * sockctl.c: the operator's client for a running sockd:
 * `sockctl [-c FILE | -S SOCKET] reload|stop|quit|reopen|status` over the
 * control socket (the same as `sockd -s CMD`), and
 * `sockctl [-c FILE] publish TOPIC MESSAGE` / `send ID MESSAGE` /
 * `conns` / `close ID [CODE]` through the [admin] endpoint, so a shell can
 * see and talk to connected clients.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"

#ifndef SOCKD_DEFAULT_CONFIG
#define SOCKD_DEFAULT_CONFIG "/etc/sockd/sockd.conf"
#endif

static void
usage(FILE *out)
{
    fprintf(out, "usage: sockctl [-c FILE | -S SOCKET] "
                 "reload|stop|quit|reopen|status\n"
                 "       sockctl [-c FILE] [-t N] publish TOPIC MESSAGE\n"
                 "       sockctl [-c FILE] [-t N] send ID MESSAGE\n"
                 "       sockctl [-c FILE] conns\n"
                 "       sockctl [-c FILE] close ID [CODE]\n"
                 "  -t, --type N  the info type apps see (0-4294967295; "
                 "default 0)\n"
                 "  -c FILE    sockd's configuration (for its runtime_dir; "
                 "default " SOCKD_DEFAULT_CONFIG ")\n"
                 "  -S SOCKET  the control socket itself\n");
}

/* Percent-encodes s into out (RFC 3986 unreserved characters kept). */
static void
url_encode(const char *s, char *out, size_t size)
{
    size_t o = 0;

    for (; *s && o + 4 < size; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || strchr("-._~", ch))
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, size - o, "%%%02X", ch);
    }
    out[o] = '\0';
}

/* The answer may be a long connection list; past this it is cut. */
#define ADMIN_MAX_ANSWER (64u << 20)

/* Sends method target (with body) to the [admin] endpoint and prints the
   answer's body: stdout for a 2xx, stderr otherwise. 0 on 2xx. */
static int
admin_request(const char *cfg_path, const char *method, const char *target,
              const char *body)
{
    char *errors = NULL, req[1024], *resp = NULL;
    struct config *cfg = config_load(cfg_path, &errors);
    size_t blen = strlen(body), have = 0, cap = 0;
    int fd, status = 0;

    if (cfg == NULL) {
        fputs(errors ? errors : "sockctl: cannot read the configuration\n",
              stderr);
        free(errors);
        return 1;
    }
    if (cfg->admin.listen == NULL) {
        fprintf(stderr, "sockctl: %s has no [admin] listen address; "
                "publish, send, conns and close go through it\n", cfg_path);
        config_free(cfg);
        return 1;
    }
    fd = socket(cfg->admin.l.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&cfg->admin.l.addr,
                          cfg->admin.l.addrlen) != 0) {
        fprintf(stderr, "sockctl: cannot reach the admin endpoint %s: %s\n",
                cfg->admin.listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        config_free(cfg);
        return 2;
    }
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: sockd\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n", method,
             target, blen);
    if (write(fd, req, strlen(req)) < 0 || write(fd, body, blen) < 0)
        status = -1;
    while (status == 0 && have < ADMIN_MAX_ANSWER) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (cap - have < 65536 + 1) {
            char *r = realloc(resp, cap + (1u << 20));

            if (r == NULL)
                break;
            resp = r;
            cap += 1u << 20;
        }
        if (poll(&p, 1, 10000) <= 0)
            break;
        n = read(fd, resp + have, cap - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    config_free(cfg);
    if (resp != NULL)
        resp[have] = '\0';
    if (resp == NULL || sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        fprintf(stderr, "sockctl: no answer from the admin endpoint\n");
        free(resp);
        return 1;
    }
    {
        const char *b = strstr(resp, "\r\n\r\n");

        fputs(b ? b + 4 : "", status / 100 == 2 ? stdout : stderr);
    }
    free(resp);
    return status / 100 == 2 ? 0 : 1;
}

/* A decimal 0..UINT32_MAX, nothing else. */
static bool
type_ok(const char *s)
{
    char *end;
    unsigned long long n;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    n = strtoull(s, &end, 10);
    return *end == '\0' && errno == 0 && n <= UINT32_MAX;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "type", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cfg = SOCKD_DEFAULT_CONFIG, *sock = NULL;
    const char *type = NULL;
    char path[512];
    int opt;

    while ((opt = getopt_long(argc, argv, "c:S:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            if (!type_ok(optarg)) {
                fprintf(stderr, "sockctl: --type takes a number "
                        "0-4294967295, not '%s'\n", optarg);
                return 2;
            }
            type = optarg;
            break;
        case 'c':
            cfg = optarg;
            break;
        case 'S':
            sock = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind + 3 == argc && (strcmp(argv[optind], "publish") == 0 ||
                               strcmp(argv[optind], "send") == 0)) {
        char target[600], enc[512];
        bool pub = strcmp(argv[optind], "publish") == 0;

        url_encode(argv[optind + 1], enc, sizeof(enc));
        snprintf(target, sizeof(target), "/%s?%s=%s%s%s",
                 pub ? "publish" : "send", pub ? "topic" : "id", enc,
                 type ? "&type=" : "", type ? type : "");
        return admin_request(cfg, "POST", target, argv[optind + 2]);
    }
    if (optind + 1 == argc && strcmp(argv[optind], "conns") == 0)
        return admin_request(cfg, "GET", "/conns", "");
    if ((optind + 2 == argc || optind + 3 == argc) &&
        strcmp(argv[optind], "close") == 0) {
        char target[600], enc[256], code[64] = "";

        url_encode(argv[optind + 1], enc, sizeof(enc));
        if (optind + 3 == argc)
            url_encode(argv[optind + 2], code, sizeof(code));
        snprintf(target, sizeof(target), "/close?id=%s%s%s", enc,
                 code[0] ? "&code=" : "", code);
        return admin_request(cfg, "POST", target, "");
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    if (sock == NULL) {
        char *dir = ctl_runtime_dir(cfg);

        ctl_path(dir, path, sizeof(path));
        free(dir);
        sock = path;
    }
    return ctl_client(sock, argv[optind], 120);
}
