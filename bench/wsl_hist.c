/*
 * wsl_hist.c: the log-linear latency histogram of wsl_hist.h. Recording
 * is a count-leading-zeros and an increment, cheap enough for every
 * message.
 */
#include "wsl_hist.h"

#include <math.h>
#include <string.h>

void
wsl_hist_reset(struct wsl_hist *h)
{
    memset(h, 0, sizeof(*h));
}

/* Values below 2 * SUB map to themselves; above, 64 buckets per octave. */
static uint32_t
bucket_of(uint64_t v)
{
    unsigned msb, shift;

    if (v < 2 * WSL_HIST_SUB)
        return (uint32_t)v;
    if (v >> WSL_HIST_MAX_BITS != 0)
        v = (1ull << WSL_HIST_MAX_BITS) - 1;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - WSL_HIST_SUB_BITS;
    return 2 * WSL_HIST_SUB + (shift - 1) * WSL_HIST_SUB +
           (uint32_t)((v >> shift) - WSL_HIST_SUB);
}

/* Lowest value of bucket i, and its width. */
static void
bucket_range(uint32_t i, uint64_t *low, uint64_t *width)
{
    uint32_t shift;

    if (i < 2 * WSL_HIST_SUB) {
        *low = i;
        *width = 1;
        return;
    }
    shift = (i - 2 * WSL_HIST_SUB) / WSL_HIST_SUB + 1;
    *low = (uint64_t)((i - 2 * WSL_HIST_SUB) % WSL_HIST_SUB +
                      WSL_HIST_SUB) << shift;
    *width = 1ull << shift;
}

void
wsl_hist_add(struct wsl_hist *h, uint64_t ns)
{
    h->bucket[bucket_of(ns)]++;
    h->count++;
    h->sum_ns += ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void
wsl_hist_merge(struct wsl_hist *into, const struct wsl_hist *from)
{
    for (uint32_t i = 0; i < WSL_HIST_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->sum_ns += from->sum_ns;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

double
wsl_hist_quantile(const struct wsl_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->count == 0)
        return 0;
    rank = (uint64_t)ceil(q * (double)h->count);
    if (rank == 0)
        rank = 1;
    for (uint32_t i = 0; i < WSL_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t low, width;

            bucket_range(i, &low, &width);
            return (double)low + (double)(width - 1) / 2.0;
        }
    }
    return (double)h->max_ns;
}
