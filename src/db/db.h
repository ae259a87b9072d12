/* What every kind of handle (local, remote, and later party) implements:
 * the public API in api.c checks arguments and dispatches here. */
#ifndef RAVEL_DB_DB_H
#define RAVEL_DB_DB_H

#include "ravel.h"
#include "util/buf.h"

typedef struct rv_db_ops {
    int (*put)(ravel_db *db, const void *key, size_t klen, const void *val, size_t vlen);
    int (*get)(ravel_db *db, const void *key, size_t klen, char **val, size_t *vlen);
    int (*del)(ravel_db *db, const void *key, size_t klen);
    int (*get_many)(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                    char **vals, size_t *vlens);
    int (*write)(ravel_db *db, const ravel_batch *b);
    int (*clear)(ravel_db *db, const ravel_range *r);
    int (*iter_new)(ravel_db *db, const ravel_range *r, ravel_iter **out);
    /* Asynchronous forms; NULL means "run the synchronous one and call back
     * before returning" (local handles). */
    int (*put_async)(ravel_db *db, const void *key, size_t klen, const void *val, size_t vlen,
                     ravel_done_cb cb, void *ud);
    int (*get_async)(ravel_db *db, const void *key, size_t klen, ravel_value_cb cb, void *ud);
    int (*del_async)(ravel_db *db, const void *key, size_t klen, ravel_done_cb cb, void *ud);
    int (*write_async)(ravel_db *db, const ravel_batch *b, ravel_done_cb cb, void *ud);
    int (*clear_async)(ravel_db *db, const ravel_range *r, ravel_done_cb cb, void *ud);
    int (*get_many_async)(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                          ravel_values_cb cb, void *ud);
    int (*role)(ravel_db *db);
    void (*close)(ravel_db *db);
} rv_db_ops;

struct ravel_db {
    const rv_db_ops *ops;
};

typedef struct rv_iter_ops {
    int (*next)(ravel_iter *it, const char **key, size_t *klen, const char **val, size_t *vlen);
    int (*seek)(ravel_iter *it, const void *target, size_t len);
    /* NULL: run next and call back before returning. */
    int (*next_async)(ravel_iter *it, ravel_entry_cb cb, void *ud);
    void (*free)(ravel_iter *it);
} rv_iter_ops;

struct ravel_iter {
    const rv_iter_ops *ops;
};

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
