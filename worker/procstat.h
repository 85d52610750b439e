/*
 * procstat.h: what /proc says about a process, for the process_* metrics
 * of the admin endpoint (Prometheus' standard names).
 */
#ifndef SOCK_PROCSTAT_H
#define SOCK_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct procstat {
    double cpu_seconds;     /* user + system */
    uint64_t rss_bytes;
    double start_time;      /* seconds since the epoch */
    uint64_t open_fds;
};

/* Fills st for pid from /proc. 0, or a negative errno (gone, not ours). */
int procstat_read(pid_t pid, struct procstat *st);

#endif
