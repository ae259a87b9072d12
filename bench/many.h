/* The many-process workloads of issue 18 in ravel-bench: processes of one
 * party on one directory, all active at once — M1 (puts) and M2 (gets)
 * with 4 and 8 processes, M3 (4 writers and a reader) — beside raw LevelDB
 * with as many threads in one process, and Node rave-level with as many
 * processes, all in the same run. */
#ifndef RAVEL_BENCH_MANY_H
#define RAVEL_BENCH_MANY_H

#include <stdint.h>

#define MANY_SETS 2 /* M1 and M2 with 4, then 8 processes (M3: set 0 only) */
#define MANY_MAX_RUNS 15

enum { M_PUTS, M_GETS, M_MIX, M_COUNT };     /* M1, M2, M3 */
enum { MV_RAW, MV_RAVEL, MV_NODE, MV_COUNT }; /* raw LevelDB threads, ravel party, Node party */

typedef struct many_figures {
    double ops_per_s; /* the workload's operations (M3: the writers' puts) over the time
                         from the release to the end of the last of them */
    double cpu_us;    /* CPU time of all the processes (raw: of the process) per operation,
                         M3 counting the reader's gets as operations too */
    double switches;  /* voluntary + involuntary context switches per operation, the same way */
    double lag_us;    /* from the release to the latest start of a process (thread) */
    double reader_ops_per_s, reader_p50_us, reader_p99_us; /* M3's reader, over its own time */
    double reader_found; /* M3: the share of the reader's gets that found their key */
    double lo, hi;       /* the slowest and fastest run's ops_per_s */
} many_figures;

/* The floors beside M1 and M2: P processes, one request at a time each, to
 * one server process that answers at once (no database), the two ways a
 * follower reaches its leader. */
enum { MF_SOCKET, MF_RING, MF_COUNT };

typedef struct many_result {
    int parties, mix; /* which ran: M1 and M2, M3 */
    double floor[MF_COUNT][MANY_SETS]; /* round trips/s, the median run's */
    int node;         /* the Node variant ran */
    int runs;         /* of raw LevelDB and of ravel, interleaved; the figures are the median's */
    many_figures w[M_COUNT][MV_COUNT][MANY_SETS];
} many_result;

/* Run M1 and M2 (parties), M3 (mix) under g_root: n operations in each,
 * `runs` times each of raw LevelDB and ravel, interleaved, and once Node
 * (node). Fails the run (die) on an error. */
void many_run(uint64_t n, int runs, int parties, int mix, int node, many_result *out);

/* The tables of what ran, as markdown. */
void many_print(uint64_t n, const many_result *m);

/* The rows of the targets table for what ran (the header is the caller's). */
void many_print_targets(const many_result *m);

#endif
