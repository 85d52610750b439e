/*
 * wsl_proc.c: process-tree CPU and memory from /proc/PID/stat, status and
 * smaps_rollup. Scanning /proc for parent links works on every kernel,
 * unlike /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN).
 */
#include "wsl_proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct pinfo {
    pid_t pid, ppid;
    double cpu_s;
    bool in_tree;
};

/* Reads a small /proc file into buf; returns its length or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (f == NULL)
        return -1;
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* ppid and CPU from /proc/PID/stat. The command name may hold spaces and
   parentheses, so fields are counted from the last ')'. */
static int
read_stat(pid_t pid, struct pinfo *pi)
{
    char path[64], buf[1024];
    unsigned long long ut, st;
    long long cut, cst;
    int ppid;
    char *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    p = strrchr(buf, ')');
    /* After ")": state ppid pgrp session tty tpgid flags minflt cminflt
       majflt cmajflt utime stime cutime cstime (fields 3..17). */
    if (p == NULL || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u "
                            "%*u %llu %llu %lld %lld",
                            &ppid, &ut, &st, &cut, &cst) != 5)
        return -1;
    pi->pid = pid;
    pi->ppid = ppid;
    pi->cpu_s = (double)(ut + st + (unsigned long long)cut +
                         (unsigned long long)cst) /
                (double)sysconf(_SC_CLK_TCK);
    pi->in_tree = false;
    return 0;
}

/* The value in kB of "Key:   N kB" in a /proc file, 0 if absent. */
static uint64_t
read_kb(pid_t pid, const char *file, const char *key)
{
    char path[64], buf[4096];
    const char *p;
    size_t klen = strlen(key);

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return 0;
    for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, key, klen) == 0 && p[klen] == ':')
            return strtoull(p + klen + 1, NULL, 10);
    }
    return 0;
}

/* Every process in /proc; *n set, NULL on failure. Caller frees. */
static struct pinfo *
scan_all(size_t *n)
{
    DIR *d = opendir("/proc");
    struct pinfo *all = NULL;
    size_t cap = 0;
    struct dirent *e;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (*n == cap) {
            size_t ncap = cap == 0 ? 512 : cap * 2;
            struct pinfo *p = realloc(all, ncap * sizeof(*p));

            if (p == NULL)
                break;
            all = p;
            cap = ncap;
        }
        if (read_stat((pid_t)atoi(e->d_name), &all[*n]) == 0)
            (*n)++;
    }
    closedir(d);
    return all;
}

int
wsl_proc_sample_tree(pid_t root, struct wsl_proc_sample *s)
{
    size_t n;
    struct pinfo *all = scan_all(&n);
    bool grew = true, found = false;

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        if (all[i].pid == root) {
            all[i].in_tree = true;
            found = true;
        }
    }
    /* Mark descendants until nothing changes: the depth of a server's
       tree is small, and this runs twice per benchmark. */
    while (found && grew) {
        grew = false;
        for (size_t i = 0; i < n; i++) {
            if (all[i].in_tree)
                continue;
            for (size_t j = 0; j < n; j++) {
                if (all[j].in_tree && all[j].pid == all[i].ppid) {
                    all[i].in_tree = grew = true;
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!all[i].in_tree)
            continue;
        s->nprocs++;
        s->cpu_s += all[i].cpu_s;
        s->rss_kb += read_kb(all[i].pid, "status", "VmRSS");
        s->pss_kb += read_kb(all[i].pid, "smaps_rollup", "Pss");
    }
    free(all);
    return found ? 0 : -ESRCH;
}

bool
wsl_proc_exists(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

double
wsl_proc_self_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int
wsl_proc_machine_cpu(double *busy_s, double *steal_s)
{
    char buf[512];
    unsigned long long v[8] = { 0 };
    double hz = (double)sysconf(_SC_CLK_TCK);

    /* "cpu  user nice system idle iowait irq softirq steal ...", ticks */
    if (read_small("/proc/stat", buf, sizeof(buf)) < 0 ||
        sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
               &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 7)
        return -1;
    *busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
    *steal_s = (double)v[7] / hz;
    return 0;
}
