/* Every allocation ravel makes itself goes through these (protobuf-c's
 * too, through rv_pb_allocator), so that the allocation-failure tests
 * (tests/failmalloc) can fail the k-th one and check that ravel answers
 * RAVEL_ENOMEM, leaks nothing and stays usable. LevelDB and libuv allocate
 * on their own: LevelDB cannot survive a failed allocation (it throws). */
#ifndef RAVEL_UTIL_ALLOC_H
#define RAVEL_UTIL_ALLOC_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

void *rv_malloc(size_t n);
void *rv_calloc(size_t n, size_t size);
void *rv_realloc(void *p, size_t n);
char *rv_strdup(const char *s);
/* free(), named for symmetry; memory from any of the above. */
void rv_free(void *p);

extern ProtobufCAllocator rv_pb_allocator;

/* Testing: from now on, fail the k-th allocation (1 = the next one) and
 * every one after it while `sticky`, else only that one; k = 0 fails none.
 * Counts allocations from every thread. */
void rv_alloc_fail_at(long k, int sticky);
/* Allocations made since the last rv_alloc_fail_at. */
long rv_alloc_count(void);

#endif
