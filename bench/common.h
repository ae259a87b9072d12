/*
 * Helpers shared by the benchmark programs (ravel-bench, ravel-failover):
 * clocks, percentiles, and scratch directories under $TMPDIR.
 */
#ifndef RAVEL_BENCH_COMMON_H
#define RAVEL_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* A clock's reading in seconds (for CPU-time clocks as well). */
double clock_seconds(clockid_t clock);

/* Sort v ascending. */
void sort_doubles(double *v, size_t n);

/* The p-quantile (0 <= p <= 1) of n >= 1 sorted values, interpolating
 * linearly between the two nearest ranks, so that p = 0.5 of an even count
 * is the mean of the middle two. */
double percentile(const double *sorted, size_t n, double p);

/* Wait for child pid to end (through EINTR); returns its wait status. */
int reap(pid_t pid);

/* Make a fresh directory "$TMPDIR/<prefix>.XXXXXX" (/tmp without TMPDIR)
 * and write its path to out. Returns 0, or -1 with a message on stderr. */
int make_scratch_dir(char *out, size_t size, const char *prefix);

/* Remove a directory tree; reports what it cannot remove on stderr. */
void remove_tree(const char *path);

#endif
