/* Watches in ravel-bench: the latency from an acknowledged put to its
 * change at a watcher in another process, and what watches and the change
 * log cost a follower's writes (W1, W6), all measured in the same run. */
#ifndef RAVEL_BENCH_WATCH_H
#define RAVEL_BENCH_WATCH_H

#include <stdint.h>

/* Writer configurations, measured in turn within each run. */
enum { WC_PLAIN, WC_LOG_ONLY, WC_WATCHED, WC_LOGGED, WC_COUNT };

typedef struct watch_bench {
    uint64_t lat_n;              /* puts timed */
    double ack_p50_us, ack_p99_us;   /* acknowledged put -> change at the watcher */
    double put_p50_us, put_p99_us;   /* put issued -> change at the watcher */
    double w1[WC_COUNT], w6[WC_COUNT];   /* a follower's ops/s: median of the runs */
    double w1_lo[WC_COUNT], w1_hi[WC_COUNT], w6_lo[WC_COUNT], w6_hi[WC_COUNT];
    int runs;
} watch_bench;

/* Fork the processes (never opens a database in this one) under `root`;
 * n puts for W1, n/100 batches of 100 for W6. 0, or -1 after a message. */
int watch_bench_run(const char *root, uint64_t n, int runs, watch_bench *out);

/* The report's section, as markdown. */
void watch_bench_print(const watch_bench *wb, uint64_t n);

#endif
