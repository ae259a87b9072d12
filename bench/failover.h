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

/* F1's floor, what a bare design reaches: a process holding LevelDB open
 * on `dir` (made afresh each round) puts in a loop and is SIGKILLed 20 ms
 * after its 200th put;
 * another process, blocked meanwhile in fcntl(F_SETLKW) on the
 * directory's LOCK, gets it, lets go, opens LevelDB (replaying the log)
 * and makes one put. ms[round]: from the kill to that put, in
 * milliseconds. Same rules as failover_measure. */
int failover_floor(const char *dir, int rounds, double *ms);

#endif
