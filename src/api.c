/* The public API: argument checks, then dispatch to the handle's kind. */
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "error.h"
#include "util/alloc.h"
#include "util/spin.h"
#include "wire/codec.h"

#define CHECK_KEY(key, klen) \
    if (!(key) && (klen))    \
        return rv_err(RAVEL_EINVAL, "key pointer is NULL but its length is %zu", (size_t)(klen));

void ravel_options_init(ravel_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->retry = -1;
    opts->create_if_missing = 1;
    opts->lock_timeout_ms = 10000;
    opts->max_frame = RV_DEFAULT_MAX_FRAME;
    opts->max_pending = 100000;
    opts->busy_poll_us = RV_BUSY_POLL_DEFAULT_US;
}

int ravel_put(ravel_db *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    CHECK_KEY(key, klen);
    CHECK_KEY(val, vlen);
    return db->ops->put(db, key, klen, val, vlen);
}

int ravel_get(ravel_db *db, const void *key, size_t klen, char **val, size_t *vlen)
{
    if (!db || !val || !vlen)
        return rv_err(RAVEL_EINVAL, "database handle or result pointer is NULL");
    CHECK_KEY(key, klen);
    *val = NULL;
    *vlen = 0;
    return db->ops->get(db, key, klen, val, vlen);
}

int ravel_del(ravel_db *db, const void *key, size_t klen)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    CHECK_KEY(key, klen);
    return db->ops->del(db, key, klen);
}

static int check_many(ravel_db *db, size_t n, const void *const *keys, const size_t *klens)
{
    if (!db || (n && (!keys || !klens)))
        return rv_err(RAVEL_EINVAL, "database handle or key array is NULL");
    for (size_t i = 0; i < n; i++)
        CHECK_KEY(keys[i], klens[i]);
    return RAVEL_OK;
}

int ravel_get_many(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                   char **vals, size_t *vlens)
{
    int rc = check_many(db, n, keys, klens);
    if (rc)
        return rc;
    if (n && (!vals || !vlens))
        return rv_err(RAVEL_EINVAL, "result arrays are NULL");
    for (size_t i = 0; i < n; i++) {
        vals[i] = NULL;
        vlens[i] = 0;
    }
    return db->ops->get_many(db, n, keys, klens, vals, vlens);
}

int ravel_write(ravel_db *db, const ravel_batch *b)
{
    if (!db || !b)
        return rv_err(RAVEL_EINVAL, "database handle or batch is NULL");
    return db->ops->write(db, b);
}

int ravel_clear(ravel_db *db, const ravel_range *r)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    ravel_range all;
    if (!r) {
        ravel_range_init(&all);
        r = &all;
    }
    return db->ops->clear(db, r);
}

int ravel_iter_new(ravel_db *db, const ravel_range *r, ravel_iter **out)
{
    if (!db || !out)
        return rv_err(RAVEL_EINVAL, "database handle or result pointer is NULL");
    *out = NULL;
    ravel_range all;
    if (!r) {
        ravel_range_init(&all);
        r = &all;
    }
    return db->ops->iter_new(db, r, out);
}

int ravel_iter_next(ravel_iter *it, const char **key, size_t *klen, const char **val, size_t *vlen)
{
    if (!it)
        return rv_err(RAVEL_EINVAL, "iterator is NULL");
    const char *k, *v;
    size_t kl, vl;
    int rc = it->ops->next(it, &k, &kl, &v, &vl);
    if (rc != RAVEL_OK)
        k = v = NULL, kl = vl = 0;
    if (key)
        *key = k;
    if (klen)
        *klen = kl;
    if (val)
        *val = v;
    if (vlen)
        *vlen = vl;
    return rc;
}

int ravel_iter_seek(ravel_iter *it, const void *target, size_t len)
{
    if (!it)
        return rv_err(RAVEL_EINVAL, "iterator is NULL");
    CHECK_KEY(target, len);
    return it->ops->seek(it, target, len);
}

void ravel_iter_free(ravel_iter *it)
{
    if (it)
        it->ops->free(it);
}

int ravel_db_role(ravel_db *db)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    return db->ops->role(db);
}

void ravel_db_close(ravel_db *db)
{
    if (db)
        db->ops->close(db);
}

/* ---- asynchronous ---- */

int ravel_put_async(ravel_db *db, const void *key, size_t klen, const void *val, size_t vlen,
                    ravel_done_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    CHECK_KEY(key, klen);
    CHECK_KEY(val, vlen);
    if (db->ops->put_async)
        return db->ops->put_async(db, key, klen, val, vlen, cb, ud);
    cb(ud, db->ops->put(db, key, klen, val, vlen));
    return RAVEL_OK;
}

int ravel_get_async(ravel_db *db, const void *key, size_t klen, ravel_value_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    CHECK_KEY(key, klen);
    if (db->ops->get_async)
        return db->ops->get_async(db, key, klen, cb, ud);
    char *val = NULL;
    size_t vlen = 0;
    int rc = db->ops->get(db, key, klen, &val, &vlen);
    cb(ud, rc, val, vlen);
    free(val);
    return RAVEL_OK;
}

int ravel_del_async(ravel_db *db, const void *key, size_t klen, ravel_done_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    CHECK_KEY(key, klen);
    if (db->ops->del_async)
        return db->ops->del_async(db, key, klen, cb, ud);
    cb(ud, db->ops->del(db, key, klen));
    return RAVEL_OK;
}

int ravel_write_async(ravel_db *db, const ravel_batch *b, ravel_done_cb cb, void *ud)
{
    if (!db || !b || !cb)
        return rv_err(RAVEL_EINVAL, "database handle, batch or callback is NULL");
    if (db->ops->write_async)
        return db->ops->write_async(db, b, cb, ud);
    cb(ud, db->ops->write(db, b));
    return RAVEL_OK;
}

int ravel_clear_async(ravel_db *db, const ravel_range *r, ravel_done_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    ravel_range all;
    if (!r) {
        ravel_range_init(&all);
        r = &all;
    }
    if (db->ops->clear_async)
        return db->ops->clear_async(db, r, cb, ud);
    cb(ud, db->ops->clear(db, r));
    return RAVEL_OK;
}

int ravel_get_many_async(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                         ravel_values_cb cb, void *ud)
{
    int rc = check_many(db, n, keys, klens);
    if (rc)
        return rc;
    if (!cb)
        return rv_err(RAVEL_EINVAL, "callback is NULL");
    if (db->ops->get_many_async)
        return db->ops->get_many_async(db, n, keys, klens, cb, ud);
    char **vals = rv_calloc(n ? n : 1, sizeof *vals);
    size_t *vlens = rv_calloc(n ? n : 1, sizeof *vlens);
    if (!vals || !vlens) {
        free(vals);
        free(vlens);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    rc = db->ops->get_many(db, n, keys, klens, vals, vlens);
    cb(ud, rc, n, (const char *const *)vals, vlens);
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    free(vlens);
    return RAVEL_OK;
}

int ravel_iter_next_async(ravel_iter *it, ravel_entry_cb cb, void *ud)
{
    if (!it || !cb)
        return rv_err(RAVEL_EINVAL, "iterator or callback is NULL");
    if (it->ops->next_async)
        return it->ops->next_async(it, cb, ud);
    const char *k = NULL, *v = NULL;
    size_t kl = 0, vl = 0;
    int rc = it->ops->next(it, &k, &kl, &v, &vl);
    cb(ud, rc, k, kl, v, vl);
    return RAVEL_OK;
}
