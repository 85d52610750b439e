/*
 * procstat.c: reads /proc/PID/stat and /proc/PID/fd for the process_*
 * metrics (CPU time, resident memory, start time, open descriptors), the
 * way Prometheus' client libraries do. Only Linux's /proc; what to sum
 * and how to show it is the admin endpoint's.
 */
#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The whole of a small /proc file into buf, NUL-terminated. */
static int
read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, buf, size - 1);
    if (n < 0) {
        int err = errno;

        close(fd);
        return -err;
    }
    close(fd);
    buf[n] = '\0';
    return 0;
}

/* Boot time, seconds since the epoch (btime of /proc/stat); 0 unknown. */
static double
boot_time(void)
{
    static double btime;
    char buf[8192], *p;

    if (btime > 0 || read_small("/proc/stat", buf, sizeof(buf)) != 0)
        return btime;
    p = strstr(buf, "\nbtime ");
    if (p != NULL)
        btime = strtod(p + 7, NULL);
    return btime;
}

static uint64_t
count_fds(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    uint64_t n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int
procstat_read(pid_t pid, struct procstat *st)
{
    char path[64], buf[1024], *p;
    unsigned long utime, stime;
    unsigned long long start;
    long rss, tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    int rc;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    rc = read_small(path, buf, sizeof(buf));
    if (rc != 0)
        return rc;
    /* proc(5): the name (field 2) may hold spaces and ')'; skip past the
       last ')' to field 3. utime, stime: 14, 15; starttime: 22; rss: 24. */
    p = strrchr(buf, ')');
    if (p == NULL || tick <= 0 || page <= 0 ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
               "%*d %*d %*d %*d %*d %*d %llu %*u %ld", &utime, &stime,
               &start, &rss) != 4)
        return -EPROTO;
    st->cpu_seconds = (double)(utime + stime) / (double)tick;
    st->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
    st->start_time = boot_time() + (double)start / (double)tick;
    st->open_fds = count_fds(pid);
    return 0;
}
