#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "util/spin.h"

static atomic_int pollers;

static int max_pollers(void)
{
    static atomic_int cached = -1;
    int n = atomic_load(&cached);
    if (n < 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 1 ? (int)(cpus - 1) : 0;
        atomic_store(&cached, n);
    }
    return n;
}

uint64_t rv_spin_budget_ns(int option_us)
{
    if (option_us <= 0 || max_pollers() == 0)
        return 0;
    return (uint64_t)option_us * 1000u;
}

int rv_spin_enter(void)
{
    int limit = max_pollers();
    int n = atomic_load_explicit(&pollers, memory_order_relaxed);
    while (n < limit) {
        if (atomic_compare_exchange_weak(&pollers, &n, n + 1))
            return 1;
    }
    return 0;
}

void rv_spin_leave(void)
{
    atomic_fetch_sub(&pollers, 1);
}

uint64_t rv_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
