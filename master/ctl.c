/*
 * ctl.c: the client side of the control socket, shared by `sockd -s` and
 * sockctl. The server side lives in master.c, next to the state it reports.
 */
#include "ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

void
ctl_path(const char *runtime_dir, char *buf, size_t size)
{
    snprintf(buf, size, "%s/ctl.sock", runtime_dir);
}

char *
ctl_runtime_dir(const char *config_path)
{
    char *errors = NULL, line[512], *dir = NULL;
    struct config *cfg = config_load(config_path, &errors);
    FILE *f;

    free(errors);
    if (cfg != NULL) {
        dir = strdup(cfg->server.runtime_dir);
        config_free(cfg);
        return dir;
    }
    f = fopen(config_path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char key[64], val[400];

        if (sscanf(line, " %63[a-z_] = %399[^ \t\r\n#;]", key, val) == 2 &&
            strcmp(key, "runtime_dir") == 0) {
            free(dir);
            dir = strdup(val);
        }
    }
    if (f != NULL)
        fclose(f);
    return dir != NULL ? dir : strdup("/run/sockd");
}

static int
ctl_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int err = errno;

        close(fd);
        return -err;
    }
    return fd;
}

/* Prints one answer line; returns 0 for OK, 1 for ERR, -1 otherwise. */
static int
ctl_print(const char *line)
{
    if (strncmp(line, "OK", 2) == 0 && (line[2] == ' ' || line[2] == '\0')) {
        if (line[2] == ' ')
            printf("%s\n", line + 3);
        return 0;
    }
    if (strncmp(line, "ERR ", 4) == 0) {
        fprintf(stderr, "%s\n", line + 4);
        return 1;
    }
    printf("%s\n", line);
    return -1;
}

int
ctl_client(const char *path, const char *cmd, int timeout_s)
{
    char buf[65536];
    size_t have = 0;
    int fd = ctl_connect(path), status = 1;
    time_t deadline = time(NULL) + timeout_s;

    if (fd < 0) {
        fprintf(stderr, "sockd: cannot reach the master at %s: %s "
                "(is sockd running with this runtime_dir?)\n", path,
                strerror(-fd));
        return 2;
    }
    dprintf(fd, "%s\n", cmd);
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int left = (int)(deadline - time(NULL));
        ssize_t n;
        char *nl;

        if (left <= 0 || poll(&p, 1, left * 1000) <= 0) {
            fprintf(stderr, "sockd: no answer from the master within %d s\n",
                    timeout_s);
            status = 1;
            break;
        }
        n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        while ((nl = strchr(buf, '\n')) != NULL) {
            int rc;

            *nl = '\0';
            rc = ctl_print(buf);
            if (rc >= 0)
                status = rc;
            have -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have + 1);
        }
        if (have == sizeof(buf) - 1)
            have = 0;
    }
    close(fd);
    return status;
}
