/*
 * wsl_hist.h: a log-linear latency histogram in nanoseconds (after
 * HdrHistogram): exact below 128 ns, then 64 buckets per power of two, so
 * any reported value is within 1.6 % of a recorded one. Fixed size and
 * flat, so a worker can write it down a pipe and the parent add them up.
 */
#ifndef WSL_HIST_H
#define WSL_HIST_H

#include <stdint.h>

#define WSL_HIST_SUB_BITS 6
#define WSL_HIST_SUB (1u << WSL_HIST_SUB_BITS)
#define WSL_HIST_MAX_BITS 40    /* 2^40 ns, 18 minutes: larger is clamped */
#define WSL_HIST_BUCKETS \
    (2 * WSL_HIST_SUB + (WSL_HIST_MAX_BITS - WSL_HIST_SUB_BITS - 1) * \
     WSL_HIST_SUB)

struct wsl_hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t bucket[WSL_HIST_BUCKETS];
};

void wsl_hist_reset(struct wsl_hist *h);
void wsl_hist_add(struct wsl_hist *h, uint64_t ns);
void wsl_hist_merge(struct wsl_hist *into, const struct wsl_hist *from);

/* The value at quantile q (0..1) in ns, a bucket's midpoint; 0 if empty. */
double wsl_hist_quantile(const struct wsl_hist *h, double q);

#endif
