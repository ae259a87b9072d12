#include "util/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Relaxed atomics: one load per allocation when no test arms a failure. */
static _Atomic long fail_at;
static _Atomic int fail_sticky;
static _Atomic long counted;

static int should_fail(void)
{
    long k = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (k == 0)
        return 0;
    long n = atomic_fetch_add_explicit(&counted, 1, memory_order_relaxed) + 1;
    return n == k || (n > k && atomic_load_explicit(&fail_sticky, memory_order_relaxed));
}

void rv_alloc_fail_at(long k, int sticky)
{
    atomic_store(&counted, 0);
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, k);
}

long rv_alloc_count(void)
{
    return atomic_load(&counted);
}

void *rv_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *rv_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *rv_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

char *rv_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = rv_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void rv_free(void *p)
{
    free(p);
}

static void *pb_alloc(void *ud, size_t n)
{
    (void)ud;
    return rv_malloc(n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

ProtobufCAllocator rv_pb_allocator = {pb_alloc, pb_free, NULL};
