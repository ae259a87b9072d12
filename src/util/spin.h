/* Busy-polling: a thread that expects an answer within microseconds reads
 * its socket in a short loop instead of sleeping, because waking a sleeping
 * thread costs more than the answer takes. Measured on the 2-core benchmark
 * VM (ravel-bench's floor rows, bench/RESULTS.md): a two-process socketpair
 * ping-pong does 27k-44k round trips/s when both ends sleep in read(),
 * 100k-166k/s when both poll for up to 50 us first.
 *
 * Polling is bounded three ways: by time (the budget), by adaptivity (a
 * thread polls only while its recent waits were shorter than the budget),
 * and by a process-wide count (at most one poller per CPU beyond the
 * first, none on a 1-CPU machine, so polling never starves the thread it
 * waits for). */
#ifndef RAVEL_UTIL_SPIN_H
#define RAVEL_UTIL_SPIN_H

#include <stdint.h>

/* The default of the busy_poll_us options, in microseconds. */
#define RV_BUSY_POLL_DEFAULT_US 50

/* The budget in nanoseconds for an option value in microseconds (0 or
 * less: off); off on a machine with one CPU. */
uint64_t rv_spin_budget_ns(int option_us);

/* Take one of the process's polling slots (1) or learn that all are taken
 * (0); rv_spin_leave gives it back. */
int rv_spin_enter(void);
void rv_spin_leave(void);

uint64_t rv_now_ns(void);

/* A hint to the CPU inside a polling loop. */
static inline void rv_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
