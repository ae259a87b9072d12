/*
 * SPEC workload F1, shared by ravel-failover and ravel-bench.
 */
#ifndef RAVEL_BENCH_FAILOVER_H
#define RAVEL_BENCH_FAILOVER_H

/* Run `rounds` rounds of F1 on directory `dir` (created if missing) with
 * `followers` followers, and store each round's time from the leader's
 * SIGKILL to the writing follower's next acknowledged put in ms[round],
 * in milliseconds. The members are forked from the calling process, which
 * must not have started threads (no ravel or LevelDB handle open) and
 * must not reap children behind our back. Returns 0, or -1 with a message
 * on stderr after ending every member it started. */
int failover_measure(const char *dir, int followers, int rounds, double *ms);

#endif
