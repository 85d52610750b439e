/*
 * wsl_proc.h: what a server process tree costs, read from /proc: CPU time
 * and resident memory of a pid and all its descendants (a preforking
 * server's master and workers). Linux only.
 */
#ifndef WSL_PROC_H
#define WSL_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct wsl_proc_sample {
    double cpu_s;       /* utime+stime, plus reaped children's, summed */
    uint64_t rss_kb;    /* VmRSS summed: shared pages count once per process */
    uint64_t pss_kb;    /* Pss summed (smaps_rollup), 0 if unreadable */
    uint32_t nprocs;    /* processes in the tree */
};

/*
 * Samples root and every process whose parent chain leads to it, by one
 * scan of /proc. Returns 0, or -ESRCH if root is gone. A process that
 * exits during the scan is skipped; its CPU time reaches its parent's
 * cutime/cstime once reaped, which is why those are summed too.
 */
int wsl_proc_sample_tree(pid_t root, struct wsl_proc_sample *s);

/* True if pid exists (signal 0 says so, even for another user's). */
bool wsl_proc_exists(pid_t pid);

/* This process's user+system CPU time so far, in seconds. */
double wsl_proc_self_cpu(void);

/*
 * The whole machine's CPU time so far from /proc/stat, in seconds summed
 * over CPUs: busy (user, nice, system, irq, softirq) and steal (taken by
 * the hypervisor). Returns 0, or -1 if /proc/stat is unreadable. Busy time
 * minus the server's and the client's is what other processes used.
 */
int wsl_proc_machine_cpu(double *busy_s, double *steal_s);

#endif
