/* A batch's layout, shared by the public batch functions, the handles and
 * the host session that fills one from a Batch message. */
#ifndef RAVEL_DB_BATCH_H
#define RAVEL_DB_BATCH_H

#include "ravel.h"
#include "util/buf.h"

/* Batches keep their operations in one buffer; ops[i] is an offset. */
enum { RV_OP_PUT = 1, RV_OP_DEL = 2 };

struct ravel_batch {
    rv_buf data; /* per op: type byte, u32 klen, u32 vlen, key, value */
    size_t *ops;
    size_t count, cap;
};

/* The i-th operation of a batch (i < count). */
void rv_batch_op(const ravel_batch *b, size_t i, int *type, const char **key, size_t *klen,
                 const char **val, size_t *vlen);

#endif
