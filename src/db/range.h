/* Key order and ranges, as LevelDB's default comparator and abstract-level
 * define them; shared by the handles and both protocol sessions. */
#ifndef RAVEL_DB_RANGE_H
#define RAVEL_DB_RANGE_H

#include "ravel.h"
#include "util/buf.h"

/* Bytewise order, as LevelDB's default comparator. */
int rv_keycmp(const void *a, size_t alen, const void *b, size_t blen);

/* Where a key lies against a range's bounds: -1 below the lower bound (gt,
 * gte), 1 above the upper bound (lt, lte), 0 inside. */
int rv_range_side(const ravel_range *r, const char *key, size_t klen);

/* A range whose bounds are owned copies. */
typedef struct rv_range_copy {
    ravel_range r;
    rv_buf bytes;
} rv_range_copy;

int rv_range_copy_init(rv_range_copy *c, const ravel_range *r);
void rv_range_copy_free(rv_range_copy *c);

#endif
