/* The handle table: what every kind of handle (local, remote, party)
 * implements; the public API in api.c checks arguments and dispatches
 * here. */
#ifndef RAVEL_DB_DB_H
#define RAVEL_DB_DB_H

#include "ravel.h"

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

#endif
