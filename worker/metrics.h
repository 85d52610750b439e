/*
 * metrics.h: the text GET /metrics answers with.
 */
#ifndef SOCK_METRICS_H
#define SOCK_METRICS_H

#include <stddef.h>

struct worker;

/* Writes the metrics of every worker w can see (its shared stats page)
   into buf; the bytes written, at most size (cut short if it is full). */
size_t metrics_render(struct worker *w, char *buf, size_t size);

#endif
