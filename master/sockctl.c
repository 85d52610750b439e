/*
 * sockctl.c: the operator's client for a running sockd's control socket:
 * `sockctl [-c FILE | -S SOCKET] reload|stop|quit|reopen|status`.
 * The same as `sockd -s CMD`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void
usage(FILE *out)
{
    fprintf(out, "usage: sockctl [-c FILE | -S SOCKET] "
                 "reload|stop|quit|reopen|status\n"
                 "  -c FILE    sockd's configuration (for its runtime_dir; "
                 "default /etc/sockd/sockd.conf)\n"
                 "  -S SOCKET  the control socket itself\n");
}

int
main(int argc, char **argv)
{
    const char *cfg = "/etc/sockd/sockd.conf", *sock = NULL;
    char path[512];
    int opt;

    while ((opt = getopt(argc, argv, "c:S:h")) != -1) {
        switch (opt) {
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
