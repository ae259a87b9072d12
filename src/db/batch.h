/* A batch's layout, shared by the public batch functions, the handles and
 * the host session that fills one from a Batch message. */
#ifndef RAVEL_DB_BATCH_H
#define RAVEL_DB_BATCH_H

#include "ravel.h"
#include "util/buf.h"

/* Batches keep their operations and their checks in one buffer; ops[i]
 * and checks[i] are offsets into it. */
enum { RV_OP_PUT = 1, RV_OP_DEL = 2, RV_OP_CHECK = 3, RV_OP_CHECK_ABSENT = 4 };

struct ravel_batch {
    rv_buf data; /* per entry: type byte, u32 klen, u32 vlen, key, value */
    size_t *ops;
    size_t count, cap;
    size_t *checks; /* conditions: the batch applies only if all hold */
    size_t nchecks, checks_cap;
};

/* The i-th operation of a batch (i < count). */
void rv_batch_op(const ravel_batch *b, size_t i, int *type, const char **key, size_t *klen,
                 const char **val, size_t *vlen);
/* The i-th check of a batch (i < nchecks): *type is RV_OP_CHECK (key holds
 * exactly val) or RV_OP_CHECK_ABSENT. */
void rv_batch_check_at(const ravel_batch *b, size_t i, int *type, const char **key,
                       size_t *klen, const char **val, size_t *vlen);

#endif
