/* The public API: argument checks, then each operation described once in
 * a request record and handed to the handle's submit (db/db.h); the
 * synchronous forms wait for its completion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/range.h"
#include "db/reserved.h"
#include "error.h"
#include "util/alloc.h"
#include "util/spin.h"
#include "wire/codec.h"

#define CHECK_KEY(key, klen) \
    if (!(key) && (klen))    \
        return rv_err(RAVEL_EINVAL, "key pointer is NULL but its length is %zu", (size_t)(klen));

int rv_err_reserved(void)
{
    return rv_err(RAVEL_EINVAL, "keys that start with eight 0xff bytes are reserved for ravel's "
                                "own records");
}

/* A range without ravel's records: they are every key from RV_RESERVED
 * on, so an upper bound at or past it becomes lt RV_RESERVED. */
const ravel_range *rv_range_visible(const ravel_range *r, ravel_range *copy)
{
    if (r->has_lte ? rv_keycmp(r->lte.data, r->lte.len, RV_RESERVED, RV_RESERVED_LEN) < 0
        : r->has_lt ? rv_keycmp(r->lt.data, r->lt.len, RV_RESERVED, RV_RESERVED_LEN) <= 0
                    : 0)
        return r;
    *copy = *r;
    copy->has_lte = 0;
    copy->has_lt = 1;
    copy->lt.data = RV_RESERVED;
    copy->lt.len = RV_RESERVED_LEN;
    return copy;
}

void ravel_options_init(ravel_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->retry = -1;
    opts->create_if_missing = 1;
    opts->lock_timeout_ms = 10000;
    opts->max_frame = RV_DEFAULT_MAX_FRAME;
    opts->max_pending = 100000;
    opts->busy_poll_us = RV_BUSY_POLL_DEFAULT_US;
    opts->bloom_bits_per_key = -1; /* the database's record decides */
    opts->compression = -1;
    opts->shared_memory = 1;
}

/* ---- the request path ---- */

void rv_complete(const rv_reply_to *to, int status, const char *msg, rv_result *res)
{
    rv_sync *s = to->sync;
    if (!s) {
        if (status != RAVEL_OK && msg != ravel_errmsg())
            rv_err(status, "%s", msg ? msg : ravel_strerror(status));
        switch (to->op) {
        case RV_GET:
            to->cb.value(to->ud, status, status == RAVEL_OK ? (res->val ? res->val : "") : NULL,
                         status == RAVEL_OK ? res->vlen : 0);
            break;
        case RV_GET_MANY:
            if (status == RAVEL_OK)
                to->cb.values(to->ud, status, res->n, res->vals, res->vlens);
            else
                to->cb.values(to->ud, status, 0, NULL, NULL);
            break;
        default:
            to->cb.done(to->ud, status);
        }
        return;
    }
    if (status == RAVEL_OK && to->op == RV_SNAPSHOT) {
        *s->snap = res->snap;
        res->snap = NULL;
    } else if (status == RAVEL_OK && to->op == RV_SIZES) {
        memcpy(s->sizes, res->sizes, res->n * sizeof *res->sizes);
    } else if (status == RAVEL_OK && (to->op == RV_GET || to->op == RV_PROPERTY)) {
        char *p = res->own;
        res->own = NULL;
        if (!p && (p = rv_malloc(res->vlen + 1)) != NULL) {
            if (res->vlen)
                memcpy(p, res->val, res->vlen);
            p[res->vlen] = '\0';
        }
        if (p) {
            *s->val = p;
            *s->vlen = res->vlen;
        } else {
            status = RAVEL_ENOMEM;
        }
    } else if (status == RAVEL_OK && to->op == RV_GET_MANY) {
        size_t i;
        for (i = 0; i < res->n; i++) {
            if (!res->vals[i])
                continue;
            char *p = res->own_vals ? res->own_vals[i] : rv_malloc(res->vlens[i] + 1);
            if (!p)
                break;
            if (res->own_vals) {
                res->own_vals[i] = NULL;
            } else {
                if (res->vlens[i])
                    memcpy(p, res->vals[i], res->vlens[i]);
                p[res->vlens[i]] = '\0';
            }
            s->vals[i] = p;
            s->vlens[i] = res->vlens[i];
        }
        if (i < res->n) {
            for (size_t j = 0; j < i; j++) {
                free(s->vals[j]);
                s->vals[j] = NULL;
                s->vlens[j] = 0;
            }
            status = RAVEL_ENOMEM;
        }
    }
    s->status = status;
    if (status != RAVEL_OK)
        snprintf(s->msg, sizeof s->msg, "%s",
                 status == RAVEL_ENOMEM && !msg ? "out of memory" : msg ? msg : ravel_strerror(status));
    s->done = 1;
}

/* The synchronous form of every operation: submit, then wait for the
 * completion where the handle that took the request says. */
static int run_sync(ravel_db *db, rv_req *req, rv_sync *s)
{
    s->done = 0;
    req->to.sync = s;
    int rc = db->ops->submit(db, req);
    if (rc != RAVEL_OK)
        return rc;
    /* Always through the handle's wait, never a bare look at s->done: a
     * handle that completes on another thread sets done and then signals
     * s->cond under its lock, and a caller that saw done and returned
     * would leave it signalling a waiter gone from the stack (valgrind
     * caught it in memcheck-test-remote). Its wait takes that lock first. */
    if (req->via->ops->wait)
        req->via->ops->wait(req->via, s);
    if (s->status != RAVEL_OK)
        return rv_err(s->status, "%s", s->msg);
    return RAVEL_OK;
}

int rv_run(ravel_db *db, rv_req *req)
{
    rv_sync s;
    s.val = NULL;
    s.vals = NULL;
    s.sizes = NULL;
    s.snap = NULL;
    return run_sync(db, req, &s);
}

int ravel_put(ravel_db *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    return ravel_put_opt(db, NULL, key, klen, val, vlen);
}

int ravel_put_opt(ravel_db *db, const ravel_writeoptions *wo, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    CHECK_KEY(key, klen);
    CHECK_KEY(val, vlen);
    if (rv_is_reserved(key, klen))
        return rv_err_reserved();
    rv_req req = {.to.op = RV_PUT, .key = key, .klen = klen, .val = val, .vlen = vlen,
                  .sync = wo && wo->sync};
    rv_sync s;
    return run_sync(db, &req, &s);
}

/* Read options a handle need not look at (NULL), or that it must: the
 * snapshot must be one taken through this handle. */
static int check_ro(ravel_db *db, const ravel_readoptions **ro)
{
    const ravel_readoptions *o = *ro;
    if (o && !o->snapshot && !o->verify_checksums && o->fill_cache)
        *ro = NULL;
    else if (o && o->snapshot && o->snapshot->root != db)
        return rv_err(RAVEL_EINVAL, "the snapshot was taken through another handle");
    return RAVEL_OK;
}

void ravel_readoptions_init(ravel_readoptions *ro)
{
    memset(ro, 0, sizeof *ro);
    ro->fill_cache = 1;
}

int ravel_get(ravel_db *db, const void *key, size_t klen, char **val, size_t *vlen)
{
    return ravel_get_opt(db, NULL, key, klen, val, vlen);
}

int ravel_get_opt(ravel_db *db, const ravel_readoptions *ro, const void *key, size_t klen,
                  char **val, size_t *vlen)
{
    if (!db || !val || !vlen)
        return rv_err(RAVEL_EINVAL, "database handle or result pointer is NULL");
    CHECK_KEY(key, klen);
    *val = NULL;
    *vlen = 0;
    int rc = check_ro(db, &ro);
    if (rc)
        return rc;
    if (rv_is_reserved(key, klen))
        return rv_err(RAVEL_ENOTFOUND, "key not found");
    rv_req req = {.to.op = RV_GET, .key = key, .klen = klen, .ro = ro};
    rv_sync s;
    s.val = val;
    s.vlen = vlen;
    return run_sync(db, &req, &s);
}

int ravel_del(ravel_db *db, const void *key, size_t klen)
{
    return ravel_del_opt(db, NULL, key, klen);
}

int ravel_del_opt(ravel_db *db, const ravel_writeoptions *wo, const void *key, size_t klen)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    CHECK_KEY(key, klen);
    if (rv_is_reserved(key, klen))
        return rv_err_reserved();
    rv_req req = {.to.op = RV_DEL, .key = key, .klen = klen, .sync = wo && wo->sync};
    rv_sync s;
    return run_sync(db, &req, &s);
}

/* Checks the keys; *reserved is set when one of them is ravel's. */
static int check_many(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                      int *reserved)
{
    if (!db || (n && (!keys || !klens)))
        return rv_err(RAVEL_EINVAL, "database handle or key array is NULL");
    *reserved = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_KEY(keys[i], klens[i]);
        *reserved |= rv_is_reserved(keys[i], klens[i]);
    }
    return RAVEL_OK;
}

/* A key list in which ravel's keys are replaced by RV_RESERVED itself,
 * which ravel never writes: they come back absent, the others as asked.
 * (Rare: only a caller who asks for a reserved key pays for the copy.) */
static int hide_many(size_t n, const void *const *keys, const size_t *klens,
                     const void ***kout, size_t **lout)
{
    *kout = rv_malloc((n + 1) * sizeof **kout);
    *lout = rv_malloc((n + 1) * sizeof **lout);
    if (!*kout || !*lout) {
        free(*kout);
        free(*lout);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int r = rv_is_reserved(keys[i], klens[i]);
        (*kout)[i] = r ? RV_RESERVED : keys[i];
        (*lout)[i] = r ? RV_RESERVED_LEN : klens[i];
    }
    return RAVEL_OK;
}

int ravel_get_many(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                   char **vals, size_t *vlens)
{
    return ravel_get_many_opt(db, NULL, n, keys, klens, vals, vlens);
}

int ravel_get_many_opt(ravel_db *db, const ravel_readoptions *ro, size_t n,
                       const void *const *keys, const size_t *klens, char **vals, size_t *vlens)
{
    int reserved;
    int rc = check_many(db, n, keys, klens, &reserved);
    if (rc == RAVEL_OK)
        rc = check_ro(db, &ro);
    if (rc)
        return rc;
    if (n && (!vals || !vlens))
        return rv_err(RAVEL_EINVAL, "result arrays are NULL");
    for (size_t i = 0; i < n; i++) {
        vals[i] = NULL;
        vlens[i] = 0;
    }
    const void **hk = NULL;
    size_t *hl = NULL;
    if (reserved && (rc = hide_many(n, keys, klens, &hk, &hl)) != RAVEL_OK)
        return rc;
    rv_req req = {.to.op = RV_GET_MANY, .n = n, .keys = hk ? hk : keys, .klens = hl ? hl : klens,
                  .ro = ro};
    rv_sync s;
    s.vals = vals;
    s.vlens = vlens;
    rc = run_sync(db, &req, &s);
    free(hk);
    free(hl);
    return rc;
}

int ravel_write(ravel_db *db, const ravel_batch *b)
{
    return ravel_write_opt(db, NULL, b);
}

int ravel_write_opt(ravel_db *db, const ravel_writeoptions *wo, const ravel_batch *b)
{
    if (!db || !b)
        return rv_err(RAVEL_EINVAL, "database handle or batch is NULL");
    rv_req req = {.to.op = RV_WRITE, .batch = b, .sync = wo && wo->sync};
    rv_sync s;
    return run_sync(db, &req, &s);
}

int ravel_clear(ravel_db *db, const ravel_range *r)
{
    return ravel_clear_opt(db, NULL, r);
}

int ravel_clear_opt(ravel_db *db, const ravel_writeoptions *wo, const ravel_range *r)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    ravel_range all, copy;
    if (!r) {
        ravel_range_init(&all);
        r = &all;
    }
    rv_req req = {.to.op = RV_CLEAR, .range = rv_range_visible(r, &copy), .sync = wo && wo->sync};
    rv_sync s;
    return run_sync(db, &req, &s);
}

int ravel_iter_new(ravel_db *db, const ravel_range *r, ravel_iter **out)
{
    return ravel_iter_new_opt(db, NULL, r, out);
}

int ravel_iter_new_opt(ravel_db *db, const ravel_readoptions *ro, const ravel_range *r,
                       ravel_iter **out)
{
    if (!db || !out)
        return rv_err(RAVEL_EINVAL, "database handle or result pointer is NULL");
    *out = NULL;
    int rc = check_ro(db, &ro);
    if (rc)
        return rc;
    ravel_range all, copy;
    if (!r) {
        ravel_range_init(&all);
        r = &all;
    }
    return db->ops->iter_new(db, rv_range_visible(r, &copy), ro, out);
}

/* ---- snapshots and maintenance ---- */

int ravel_snapshot_create(ravel_db *db, ravel_snapshot **out)
{
    if (!db || !out)
        return rv_err(RAVEL_EINVAL, "database handle or result pointer is NULL");
    *out = NULL;
    rv_req req = {.to.op = RV_SNAPSHOT};
    rv_sync s;
    s.snap = out;
    int rc = run_sync(db, &req, &s);
    if (rc == RAVEL_OK)
        (*out)->root = db;
    return rc;
}

void ravel_snapshot_release(ravel_db *db, ravel_snapshot *snap)
{
    if (snap && snap->root == db)
        snap->owner->ops->snapshot_release(snap->owner, snap);
}

int ravel_compact_range(ravel_db *db, const void *start, size_t slen, const void *limit,
                        size_t llen)
{
    if (!db)
        return rv_err(RAVEL_EINVAL, "database handle is NULL");
    ravel_bound lo = {start, slen}, hi = {limit, llen};
    rv_req req = {.to.op = RV_COMPACT, .start = start ? &lo : NULL, .limit = limit ? &hi : NULL};
    rv_sync s;
    return run_sync(db, &req, &s);
}

int ravel_property_value(ravel_db *db, const char *name, char **val)
{
    if (!db || !name || !val)
        return rv_err(RAVEL_EINVAL, "database handle, property name or result pointer is NULL");
    *val = NULL;
    size_t vlen;
    rv_req req = {.to.op = RV_PROPERTY, .name = name};
    rv_sync s;
    s.val = val;
    s.vlen = &vlen;
    return run_sync(db, &req, &s);
}

int ravel_approximate_sizes(ravel_db *db, size_t n, const void *const *starts,
                            const size_t *slens, const void *const *limits, const size_t *llens,
                            uint64_t *sizes)
{
    if (!db || (n && (!starts || !slens || !limits || !llens || !sizes)))
        return rv_err(RAVEL_EINVAL, "database handle or an array is NULL");
    for (size_t i = 0; i < n; i++) {
        CHECK_KEY(starts[i], slens[i]);
        CHECK_KEY(limits[i], llens[i]);
        sizes[i] = 0;
    }
    rv_req req = {.to.op = RV_SIZES, .n = n, .keys = starts, .klens = slens, .limits = limits,
                  .llens = llens};
    rv_sync s;
    s.sizes = sizes;
    return run_sync(db, &req, &s);
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
    return ravel_put_opt_async(db, NULL, key, klen, val, vlen, cb, ud);
}

int ravel_put_opt_async(ravel_db *db, const ravel_writeoptions *wo, const void *key, size_t klen,
                        const void *val, size_t vlen, ravel_done_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    CHECK_KEY(key, klen);
    CHECK_KEY(val, vlen);
    if (rv_is_reserved(key, klen))
        return rv_err_reserved();
    rv_req req = {.to = {.op = RV_PUT, .cb.done = cb, .ud = ud},
                  .key = key, .klen = klen, .val = val, .vlen = vlen, .sync = wo && wo->sync};
    return db->ops->submit(db, &req);
}

int ravel_get_async(ravel_db *db, const void *key, size_t klen, ravel_value_cb cb, void *ud)
{
    return ravel_get_opt_async(db, NULL, key, klen, cb, ud);
}

int ravel_get_opt_async(ravel_db *db, const ravel_readoptions *ro, const void *key, size_t klen,
                        ravel_value_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    CHECK_KEY(key, klen);
    int rc = check_ro(db, &ro);
    if (rc)
        return rc;
    if (rv_is_reserved(key, klen)) { /* asked as RV_RESERVED itself: absent */
        key = RV_RESERVED;
        klen = RV_RESERVED_LEN;
    }
    rv_req req = {.to = {.op = RV_GET, .cb.value = cb, .ud = ud}, .key = key, .klen = klen,
                  .ro = ro};
    return db->ops->submit(db, &req);
}

int ravel_del_async(ravel_db *db, const void *key, size_t klen, ravel_done_cb cb, void *ud)
{
    return ravel_del_opt_async(db, NULL, key, klen, cb, ud);
}

int ravel_del_opt_async(ravel_db *db, const ravel_writeoptions *wo, const void *key, size_t klen,
                        ravel_done_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    CHECK_KEY(key, klen);
    if (rv_is_reserved(key, klen))
        return rv_err_reserved();
    rv_req req = {.to = {.op = RV_DEL, .cb.done = cb, .ud = ud}, .key = key, .klen = klen,
                  .sync = wo && wo->sync};
    return db->ops->submit(db, &req);
}

int ravel_write_async(ravel_db *db, const ravel_batch *b, ravel_done_cb cb, void *ud)
{
    return ravel_write_opt_async(db, NULL, b, cb, ud);
}

int ravel_write_opt_async(ravel_db *db, const ravel_writeoptions *wo, const ravel_batch *b,
                          ravel_done_cb cb, void *ud)
{
    if (!db || !b || !cb)
        return rv_err(RAVEL_EINVAL, "database handle, batch or callback is NULL");
    rv_req req = {.to = {.op = RV_WRITE, .cb.done = cb, .ud = ud}, .batch = b,
                  .sync = wo && wo->sync};
    return db->ops->submit(db, &req);
}

int ravel_clear_async(ravel_db *db, const ravel_range *r, ravel_done_cb cb, void *ud)
{
    return ravel_clear_opt_async(db, NULL, r, cb, ud);
}

int ravel_clear_opt_async(ravel_db *db, const ravel_writeoptions *wo, const ravel_range *r,
                          ravel_done_cb cb, void *ud)
{
    if (!db || !cb)
        return rv_err(RAVEL_EINVAL, "database handle or callback is NULL");
    ravel_range all, copy;
    if (!r) {
        ravel_range_init(&all);
        r = &all;
    }
    rv_req req = {.to = {.op = RV_CLEAR, .cb.done = cb, .ud = ud}, .range = rv_range_visible(r, &copy),
                  .sync = wo && wo->sync};
    return db->ops->submit(db, &req);
}

int ravel_get_many_async(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                         ravel_values_cb cb, void *ud)
{
    return ravel_get_many_opt_async(db, NULL, n, keys, klens, cb, ud);
}

int ravel_get_many_opt_async(ravel_db *db, const ravel_readoptions *ro, size_t n,
                             const void *const *keys, const size_t *klens, ravel_values_cb cb,
                             void *ud)
{
    int reserved;
    int rc = check_many(db, n, keys, klens, &reserved);
    if (rc == RAVEL_OK)
        rc = check_ro(db, &ro);
    if (rc)
        return rc;
    if (!cb)
        return rv_err(RAVEL_EINVAL, "callback is NULL");
    const void **hk = NULL;
    size_t *hl = NULL;
    if (reserved && (rc = hide_many(n, keys, klens, &hk, &hl)) != RAVEL_OK)
        return rc;
    rv_req req = {.to = {.op = RV_GET_MANY, .cb.values = cb, .ud = ud},
                  .n = n, .keys = hk ? hk : keys, .klens = hl ? hl : klens, .ro = ro};
    rc = db->ops->submit(db, &req);
    free(hk);
    free(hl);
    return rc;
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
