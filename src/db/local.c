/* A local handle: LevelDB in this process, operations on the caller's
 * thread. */
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "db/batch.h"
#include "db/db.h"
#include "db/options.h"
#include "db/feed.h"
#include "db/range.h"
#include "db/reserved.h"
#include "error.h"
#include "util/alloc.h"

typedef struct local_db {
    ravel_db base;
    leveldb_t *db;     /* NULL while a reopen after a write error failed */
    char *dir;
    size_t write_buffer_size;
    leveldb_options_t *options;
    leveldb_filterpolicy_t *policy; /* a bloom filter, or NULL */
    leveldb_cache_t *cache;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wopts;
    leveldb_writeoptions_t *wopts_sync; /* for a write that asks for sync */
    /* Every write holds it for reading; a batch with checks holds it for
     * writing, so that nothing is written between its checks and its
     * write. Taken before the gate. */
    pthread_rwlock_t order;
    /* Every operation holds the gate for reading; a reopen holds it for
     * writing. After a failed write (a full disk) LevelDB keeps appending
     * to a log that ends in a torn record, and records written after it
     * are dropped when the log is next replayed — acknowledged writes would
     * be lost. So the next write first reopens the database, which replays
     * the log up to the torn record and starts a fresh one. */
    pthread_rwlock_t gate;
    atomic_int broken;
    /* The directory was removed or renamed under us: LevelDB would go on
     * writing into files nobody can find again, so writes fail instead.
     * An inotify watch on the directory, read by a small thread. */
    atomic_int gone;
    int inotify_fd, stop_fd;
    char name[4096];   /* the directory's name within its parent */
    pthread_t watcher;
    int watching;
    /* Iterators not yet freed: LevelDB's must go before the database
     * does, so a close or reopen takes them down and leaves the caller a
     * shell, which stays on this list until it is freed. */
    pthread_mutex_t mu;
    struct local_iter *iters;
    ravel_snapshot *snaps;   /* taken and not released, under mu too */
    /* Exactly-once bookkeeping of the guests that write through a host
     * (below): loaded from the database at its first use. */
    pthread_mutex_t eo_mu;
    struct producer **eo_table; /* EO_BUCKETS chains */
    size_t eo_count;
    int eo_loaded;
    /* Sequence numbers, the buffer of recent changes and the change log
     * (db/feed.h): writes go through it once it is active. */
    rv_feed *feed;
} local_db;

typedef struct local_iter {
    ravel_iter base;
    leveldb_iterator_t *it;    /* NULL once taken down */
    int dead;                  /* why it was taken down: RAVEL_ECLOSED, RAVEL_EIO */
    leveldb_readoptions_t *ropts;
    const leveldb_snapshot_t *snap;
    local_db *db;              /* NULL once the database is closed */
    rv_range_copy range;
    struct local_iter *prev, *next;
    atomic_int down;  /* set once taken down (read without the gate) */
    uint64_t count;   /* entries read from LevelDB, against the limit */
    int pending;      /* the current position has not been read */
    int from_start;   /* positioned at the range's start: skip keys before it */
    int bounded;      /* the range has a gt, gte, lt or lte */
    /* Read-ahead: entries copied out of LevelDB under one hold of the gate
     * and handed out one per call (LevelDB's own memory would not outlive
     * a reopen by another thread). Each is klen, vlen (size_t) and the
     * bytes; the refill size doubles from 1 entry up to AHEAD_ENTRIES or
     * AHEAD_BYTES, and starts again at 1 after a seek. */
    rv_buf ahead;
    size_t ahead_pos;      /* the next entry to hand out */
    size_t ahead_left;     /* entries not handed out yet */
    unsigned ahead_want;   /* entries to read at the next refill */
} local_iter;

#define AHEAD_ENTRIES 128
#define AHEAD_BYTES (16u << 10)

static int reopen(local_db *l);

/* A reopen replays the log into a table and starts a new log and
 * manifest: room for about two write buffers. Until the disk has that
 * much, a broken database stays open for reads and refuses writes. */
static int room_to_reopen(local_db *l)
{
    struct statvfs st;
    if (statvfs(l->dir, &st) != 0)
        return 1; /* cannot tell: let the reopen try */
    unsigned long long avail = (unsigned long long)st.f_bavail * st.f_frsize;
    return avail >= 2ull * l->write_buffer_size + (1u << 20);
}

/* Enter an operation: RAVEL_OK with the gate held for reading, or an
 * error. Writes first repair a database broken by a failed write. */
static int enter(local_db *l, int write)
{
    if (write && atomic_load(&l->gone))
        return rv_err(RAVEL_EIO, "database directory %s was removed or moved away; writes would "
                                 "be lost", l->dir);
    if (write && atomic_load(&l->broken)) {
        if (!room_to_reopen(l))
            return rv_err(RAVEL_EIO, "database %s: the disk is still full after a failed write",
                          l->dir);
        int rc = reopen(l);
        if (rc)
            return rc;
    }
    pthread_rwlock_rdlock(&l->gate);
    if (!l->db) {
        pthread_rwlock_unlock(&l->gate);
        return rv_err(RAVEL_EIO, "database %s could not be reopened after a write error", l->dir);
    }
    return RAVEL_OK;
}

static void leave(local_db *l)
{
    pthread_rwlock_unlock(&l->gate);
}

/* The result of a write. An I/O error marks the database for a reopen. */
static int wrote(local_db *l, char *err)
{
    if (!err)
        return RAVEL_OK;
    int rc = rv_err_leveldb(err);
    if (rc == RAVEL_EIO) {
        atomic_store(&l->broken, 1);
        char msg[600];
        snprintf(msg, sizeof msg, "%s", ravel_errmsg());
        rc = rv_err(rc, "%s (the database is reopened before the next write)", msg);
    }
    return rc;
}

static const leveldb_writeoptions_t *wopts(const local_db *l, int sync)
{
    return sync ? l->wopts_sync : l->wopts;
}

/* Write a batch, with `order` held and the gate entered: through the
 * feed once it is active, which gives it its sequence number. */
static void commit(local_db *l, const leveldb_writeoptions_t *wo, leveldb_writebatch_t *wb,
                   char **err)
{
    if (rv_feed_active(l->feed))
        rv_feed_write(l->feed, l->db, wo, wb, err);
    else
        leveldb_write(l->db, wo, wb, err);
}

/* A put or delete as a batch, when the feed needs one. */
static void commit_one(local_db *l, int sync, const void *key, size_t klen, const void *val,
                       size_t vlen, int is_put, char **err)
{
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    if (is_put)
        leveldb_writebatch_put(wb, key, klen, val, vlen);
    else
        leveldb_writebatch_delete(wb, key, klen);
    commit(l, wopts(l, sync), wb, err);
    leveldb_writebatch_destroy(wb);
}

static int write_batch(local_db *l, leveldb_writebatch_t *wb, int sync)
{
    pthread_rwlock_rdlock(&l->order);
    int rc = enter(l, 1);
    if (rc == RAVEL_OK) {
        char *err = NULL;
        commit(l, wopts(l, sync), wb, &err);
        rc = wrote(l, err);
        leave(l);
    }
    pthread_rwlock_unlock(&l->order);
    return rc;
}

static int lput(local_db *l, const void *key, size_t klen, const void *val, size_t vlen, int sync)
{
    pthread_rwlock_rdlock(&l->order);
    int rc = enter(l, 1);
    if (rc == RAVEL_OK) {
        char *err = NULL;
        if (rv_feed_active(l->feed))
            commit_one(l, sync, key, klen, val, vlen, 1, &err);
        else
            leveldb_put(l->db, wopts(l, sync), key, klen, val, vlen, &err);
        rc = wrote(l, err);
        leave(l);
    }
    pthread_rwlock_unlock(&l->order);
    return rc;
}

/* With the gate held: LevelDB's read options for ro (NULL: the handle's
 * own, else made here: free with ro_done), or NULL with an error when
 * ro names a snapshot that is gone. */
static leveldb_readoptions_t *ro_make(local_db *l, const ravel_readoptions *ro)
{
    if (!ro)
        return l->ropts;
    const ravel_snapshot *snap = ro->snapshot;
    if (snap && snap->owner != &l->base) {
        rv_err(RAVEL_ESNAPSHOT, "the snapshot was taken through a leader that is gone");
        return NULL;
    }
    if (snap && !snap->ldb) {
        rv_err(RAVEL_ESNAPSHOT, "the snapshot is gone: the database was reopened after a write "
                                "error");
        return NULL;
    }
    leveldb_readoptions_t *o = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(o, (unsigned char)(ro->verify_checksums != 0));
    leveldb_readoptions_set_fill_cache(o, (unsigned char)(ro->fill_cache != 0));
    if (snap)
        leveldb_readoptions_set_snapshot(o, snap->ldb);
    return o;
}

static void ro_done(local_db *l, leveldb_readoptions_t *o)
{
    if (o && o != l->ropts)
        leveldb_readoptions_destroy(o);
}

static int lget(local_db *l, const ravel_readoptions *ro, const void *key, size_t klen,
                char **val, size_t *vlen)
{
    int rc = enter(l, 0);
    if (rc)
        return rc;
    leveldb_readoptions_t *o = ro_make(l, ro);
    if (!o) {
        leave(l);
        return RAVEL_ESNAPSHOT;
    }
    char *err = NULL;
    /* leveldb_get answers NULL both for "not found" and for errors; only
     * errptr tells them apart. */
    *val = leveldb_get(l->db, o, key, klen, vlen, &err);
    ro_done(l, o);
    leave(l);
    if (err)
        return rv_err_leveldb(err);
    if (!*val)
        return rv_err(RAVEL_ENOTFOUND, "key not found");
    return RAVEL_OK;
}

static int ldel(local_db *l, const void *key, size_t klen, int sync)
{
    pthread_rwlock_rdlock(&l->order);
    int rc = enter(l, 1);
    if (rc == RAVEL_OK) {
        char *err = NULL;
        if (rv_feed_active(l->feed))
            commit_one(l, sync, key, klen, NULL, 0, 0, &err);
        else
            leveldb_delete(l->db, wopts(l, sync), key, klen, &err);
        rc = wrote(l, err);
        leave(l);
    }
    pthread_rwlock_unlock(&l->order);
    return rc;
}

static int lget_many(local_db *l, const ravel_readoptions *rdo, size_t n,
                     const void *const *keys, const size_t *klens, char **vals, size_t *vlens)
{
    int rc = enter(l, 0);
    if (rc)
        return rc;
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    if (rdo && rdo->snapshot) {
        leveldb_readoptions_destroy(ro);
        if (!(ro = ro_make(l, rdo))) {
            leave(l);
            return RAVEL_ESNAPSHOT;
        }
    } else if (rdo) {
        leveldb_readoptions_set_verify_checksums(ro, (unsigned char)(rdo->verify_checksums != 0));
        leveldb_readoptions_set_fill_cache(ro, (unsigned char)(rdo->fill_cache != 0));
    }
    /* One snapshot, so the answers are consistent with each other (the
     * caller's, if it named one). */
    const leveldb_snapshot_t *snap = NULL;
    if (!rdo || !rdo->snapshot) {
        snap = leveldb_create_snapshot(l->db);
        leveldb_readoptions_set_snapshot(ro, snap);
    }
    for (size_t i = 0; i < n; i++) {
        char *err = NULL;
        vals[i] = leveldb_get(l->db, ro, keys[i], klens[i], &vlens[i], &err);
        if (err) {
            rc = rv_err_leveldb(err);
            for (size_t j = 0; j <= i; j++) {
                free(vals[j]);
                vals[j] = NULL;
            }
            break;
        }
    }
    leveldb_readoptions_destroy(ro);
    if (snap)
        leveldb_release_snapshot(l->db, snap);
    leave(l);
    return rc;
}

/* With the gate held: do the batch's checks hold now? RAVEL_OK,
 * RAVEL_ECONFLICT naming the first that fails, or LevelDB's error. */
static int checks_hold(local_db *l, const ravel_batch *b)
{
    for (size_t i = 0; i < b->nchecks; i++) {
        int type;
        const char *k, *v;
        size_t kl, vl, have_len = 0;
        rv_batch_check_at(b, i, &type, &k, &kl, &v, &vl);
        char *err = NULL;
        char *have = leveldb_get(l->db, l->ropts, k, kl, &have_len, &err);
        if (err)
            return rv_err_leveldb(err);
        int ok = type == RV_OP_CHECK_ABSENT
                     ? have == NULL
                     : have != NULL && have_len == vl && (vl == 0 || memcmp(have, v, vl) == 0);
        leveldb_free(have);
        if (!ok)
            return rv_err(RAVEL_ECONFLICT, "check %zu of the batch failed: the key %s", i,
                          type == RV_OP_CHECK_ABSENT ? "is present" :
                          have ? "holds other bytes" : "is absent");
    }
    return RAVEL_OK;
}

static int lwrite(local_db *l, const ravel_batch *b, int sync)
{
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    for (size_t i = 0; i < b->count; i++) {
        int type;
        const char *k, *v;
        size_t kl, vl;
        rv_batch_op(b, i, &type, &k, &kl, &v, &vl);
        if (type == RV_OP_PUT)
            leveldb_writebatch_put(wb, k, kl, v, vl);
        else
            leveldb_writebatch_delete(wb, k, kl);
    }
    int rc;
    if (!b->nchecks) {
        rc = write_batch(l, wb, sync);
    } else {
        pthread_rwlock_wrlock(&l->order);
        rc = enter(l, 1);
        if (rc == RAVEL_OK) {
            rc = checks_hold(l, b);
            if (rc == RAVEL_OK) {
                char *err = NULL;
                commit(l, wopts(l, sync), wb, &err);
                rc = wrote(l, err);
            }
            leave(l);
        }
        pthread_rwlock_unlock(&l->order);
    }
    leveldb_writebatch_destroy(wb);
    return rc;
}

static const rv_iter_ops local_iter_ops;

static void link_iter(local_db *l, local_iter *it)
{
    pthread_mutex_lock(&l->mu);
    it->prev = NULL;
    it->next = l->iters;
    if (l->iters)
        l->iters->prev = it;
    l->iters = it;
    pthread_mutex_unlock(&l->mu);
}

/* Remove an iterator from the database's list. With l->mu held. */
static void unlink_iter(local_db *l, local_iter *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        l->iters = it->next;
    if (it->next)
        it->next->prev = it->prev;
}

/* Take an iterator's LevelDB objects down; it stays on the list until it
 * is freed. With l->mu held. */
static void take_down(local_db *l, local_iter *it, int why)
{
    leveldb_iter_destroy(it->it);
    leveldb_readoptions_destroy(it->ropts);
    if (it->snap) /* its own, not the caller's */
        leveldb_release_snapshot(l->db, it->snap);
    it->it = NULL;
    it->dead = why;
    atomic_store_explicit(&it->down, 1, memory_order_release);
}

/* Position at the start of the range, in its direction. */
static void seek_start(local_iter *it)
{
    const ravel_range *rg = &it->range.r;
    leveldb_iterator_t *li = it->it;
    if (!rg->reverse) {
        if (rg->has_gte)
            leveldb_iter_seek(li, rg->gte.data, rg->gte.len);
        else if (rg->has_gt)
            leveldb_iter_seek(li, rg->gt.data, rg->gt.len);
        else
            leveldb_iter_seek_to_first(li);
    } else {
        const ravel_bound *hi = rg->has_lte ? &rg->lte : rg->has_lt ? &rg->lt : NULL;
        if (hi) {
            leveldb_iter_seek(li, hi->data, hi->len);
            if (!leveldb_iter_valid(li))
                leveldb_iter_seek_to_last(li);
        } else {
            leveldb_iter_seek_to_last(li);
        }
    }
    it->pending = 1;
    it->from_start = 1;
}

static int liter_open(local_db *l, const ravel_range *r, const ravel_readoptions *ro,
                      local_iter **out)
{
    local_iter *it = rv_calloc(1, sizeof *it);
    if (!it)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    int rc = rv_range_copy_init(&it->range, r);
    if (rc == RAVEL_OK)
        rc = enter(l, 0);
    if (rc) {
        rv_range_copy_free(&it->range);
        free(it);
        return rc;
    }
    it->base.ops = &local_iter_ops;
    it->db = l;
    it->ahead_want = 1;
    it->bounded = r->has_gt || r->has_gte || r->has_lt || r->has_lte;
    /* An explicit snapshot: the iterator reads the database as it was when
     * it was opened, even across seeks; or as the caller's snapshot has
     * it. */
    if (ro && ro->snapshot) {
        if (!(it->ropts = ro_make(l, ro))) {
            leave(l);
            rv_range_copy_free(&it->range);
            free(it);
            return RAVEL_ESNAPSHOT;
        }
    } else {
        it->snap = leveldb_create_snapshot(l->db);
        it->ropts = leveldb_readoptions_create();
        leveldb_readoptions_set_snapshot(it->ropts, it->snap);
        if (ro) {
            leveldb_readoptions_set_verify_checksums(it->ropts,
                                                     (unsigned char)(ro->verify_checksums != 0));
            leveldb_readoptions_set_fill_cache(it->ropts, (unsigned char)(ro->fill_cache != 0));
        }
    }
    it->it = leveldb_create_iterator(l->db, it->ropts);
    link_iter(l, it);
    seek_start(it);
    leave(l);
    *out = it;
    return RAVEL_OK;
}

static int liter_new(ravel_db *d, const ravel_range *r, const ravel_readoptions *ro,
                     ravel_iter **out)
{
    local_iter *it;
    int rc = liter_open((local_db *)d, r, ro, &it);
    if (rc == RAVEL_OK)
        *out = &it->base;
    return rc;
}

static int dead_error(const local_iter *it)
{
    return it->dead == RAVEL_EIO
               ? rv_err(RAVEL_EIO, "the database was reopened after a write error; this "
                                   "iterator is gone")
               : rv_err(RAVEL_ECLOSED, "the database was closed");
}

/* Enter an iterator operation: RAVEL_OK with the gate held, or an error. */
static int iter_enter(local_iter *it)
{
    local_db *l = it->db;
    if (!l)
        return dead_error(it);
    pthread_rwlock_rdlock(&l->gate);
    if (!it->it) {
        pthread_rwlock_unlock(&l->gate);
        return dead_error(it);
    }
    return RAVEL_OK;
}

/* Drop the entries read ahead and not handed out: they do not count
 * against the limit, and the next refill starts small again. */
static void drop_ahead(local_iter *it)
{
    it->count -= it->ahead_left;
    it->ahead.len = it->ahead_pos = it->ahead_left = 0;
    it->ahead_want = 1;
}

/* Move to the next entry of the range and append it to it->ahead. */
static int liter_step(local_iter *it)
{
    const ravel_range *r = &it->range.r;
    leveldb_iterator_t *li = it->it;
    if (r->limit >= 0 && it->count >= (uint64_t)r->limit)
        return RAVEL_END;
    for (;;) {
        if (!it->pending && leveldb_iter_valid(li)) {
            if (r->reverse)
                leveldb_iter_prev(li);
            else
                leveldb_iter_next(li);
        }
        it->pending = 0;
        if (!leveldb_iter_valid(li)) {
            /* At the end, or stopped by an error, which LevelDB keeps:
             * every later call says the same. */
            char *err = NULL;
            leveldb_iter_get_error(li, &err);
            return err ? rv_err_leveldb(err) : RAVEL_END;
        }
        size_t kl;
        const char *k = leveldb_iter_key(li, &kl);
        int side = it->bounded ? rv_range_side(r, k, kl) : 0;
        if (side != 0) {
            /* Keys before the range's start are passed over only while
             * moving to that start; past its end, iteration is over. */
            int before_start = r->reverse ? side > 0 : side < 0;
            if (it->from_start && before_start)
                continue;
            return RAVEL_END;
        }
        it->from_start = 0;
        size_t vl = 0;
        const char *v = r->values ? leveldb_iter_value(li, &vl) : NULL;
        if (!r->keys)
            kl = 0;
        size_t sizes[2] = {kl, vl};
        if (rv_buf_reserve(&it->ahead, sizeof sizes + kl + vl)) {
            it->pending = 1; /* this entry is still to be read */
            return rv_err(RAVEL_ENOMEM, "out of memory");
        }
        char *p = it->ahead.data + it->ahead.len;
        memcpy(p, sizes, sizeof sizes);
        if (kl)
            memcpy(p + sizeof sizes, k, kl);
        if (vl)
            memcpy(p + sizeof sizes + kl, v, vl);
        it->ahead.len += sizeof sizes + kl + vl;
        it->count++;
        it->ahead_left++;
        return RAVEL_OK;
    }
}

/* Read the next entries into it->ahead, under one hold of the gate. An
 * end or error met after some entries is met again by the next refill. */
static int refill(local_iter *it)
{
    int rc = iter_enter(it);
    if (rc)
        return rc;
    it->ahead.len = it->ahead_pos = it->ahead_left = 0;
    while (it->ahead_left < it->ahead_want && it->ahead.len < AHEAD_BYTES)
        if ((rc = liter_step(it)) != RAVEL_OK)
            break;
    leave(it->db);
    if (it->ahead_left == 0)
        return rc;
    if (it->ahead_want < AHEAD_ENTRIES)
        it->ahead_want *= 2;
    return RAVEL_OK;
}

static int liter_next(ravel_iter *i, const char **key, size_t *klen, const char **val, size_t *vlen)
{
    local_iter *it = (local_iter *)i;
    int rc;
    if (it->ahead_left == 0) {
        if ((rc = refill(it)) != RAVEL_OK)
            return rc;
    } else if (atomic_load_explicit(&it->down, memory_order_acquire)) {
        return dead_error(it);
    }
    const char *p = it->ahead.data + it->ahead_pos;
    size_t sizes[2];
    memcpy(sizes, p, sizeof sizes);
    p += sizeof sizes;
    it->ahead_pos += sizeof sizes + sizes[0] + sizes[1];
    it->ahead_left--;
    const ravel_range *r = &it->range.r;
    *key = r->keys ? p : NULL;
    *klen = sizes[0];
    *val = r->values ? p + sizes[0] : NULL;
    *vlen = sizes[1];
    return RAVEL_OK;
}

static int liter_seek(ravel_iter *i, const void *target, size_t len)
{
    local_iter *it = (local_iter *)i;
    int rc = iter_enter(it);
    if (rc)
        return rc;
    leveldb_iterator_t *li = it->it;
    drop_ahead(it);
    leveldb_iter_seek(li, target, len);
    if (it->range.r.reverse) {
        /* LevelDB seeks to the first key >= target; reverse wants the last
         * key <= target. */
        if (!leveldb_iter_valid(li)) {
            leveldb_iter_seek_to_last(li);
        } else {
            size_t kl;
            const char *k = leveldb_iter_key(li, &kl);
            if (rv_keycmp(k, kl, target, len) > 0)
                leveldb_iter_prev(li);
        }
    }
    it->pending = 1;
    it->from_start = 0;
    leave(it->db);
    return RAVEL_OK;
}

static void liter_free(ravel_iter *i)
{
    local_iter *it = (local_iter *)i;
    local_db *l = it->db;
    if (l) {
        pthread_rwlock_rdlock(&l->gate);
        pthread_mutex_lock(&l->mu);
        if (it->it)
            take_down(l, it, RAVEL_ECLOSED);
        unlink_iter(l, it);
        pthread_mutex_unlock(&l->mu);
        pthread_rwlock_unlock(&l->gate);
    }
    rv_range_copy_free(&it->range);
    rv_buf_free(&it->ahead);
    free(it);
}

static const rv_iter_ops local_iter_ops = {
    .next = liter_next,
    .seek = liter_seek,
    .free = liter_free,
};

/* With the gate held for writing. */
static void take_all_down(local_db *l, int why)
{
    pthread_mutex_lock(&l->mu);
    for (local_iter *it = l->iters; it; it = it->next)
        if (it->it)
            take_down(l, it, why);
    /* Snapshots go with the LevelDB that holds them. */
    for (ravel_snapshot *sn = l->snaps; sn; sn = sn->next)
        if (sn->ldb) {
            leveldb_release_snapshot(l->db, sn->ldb);
            sn->ldb = NULL;
            sn->gone = why;
        }
    pthread_mutex_unlock(&l->mu);
}

/* ---- snapshots and maintenance ---- */

static int lsnapshot(local_db *l, ravel_snapshot **out)
{
    ravel_snapshot *sn = rv_calloc(1, sizeof *sn);
    if (!sn)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    int rc = enter(l, 0);
    if (rc) {
        free(sn);
        return rc;
    }
    sn->owner = &l->base;
    sn->ldb = leveldb_create_snapshot(l->db);
    pthread_mutex_lock(&l->mu);
    sn->next = l->snaps;
    if (l->snaps)
        l->snaps->prev = sn;
    l->snaps = sn;
    pthread_mutex_unlock(&l->mu);
    leave(l);
    *out = sn;
    return RAVEL_OK;
}

static void lsnapshot_release(ravel_db *d, ravel_snapshot *sn)
{
    local_db *l = (local_db *)d;
    pthread_rwlock_rdlock(&l->gate);
    pthread_mutex_lock(&l->mu);
    if (sn->ldb && l->db)
        leveldb_release_snapshot(l->db, sn->ldb);
    if (sn->prev)
        sn->prev->next = sn->next;
    else
        l->snaps = sn->next;
    if (sn->next)
        sn->next->prev = sn->prev;
    pthread_mutex_unlock(&l->mu);
    pthread_rwlock_unlock(&l->gate);
    free(sn);
}

static int lcompact(local_db *l, const ravel_bound *start, const ravel_bound *limit)
{
    int rc = enter(l, 0);
    if (rc)
        return rc;
    leveldb_compact_range(l->db, start ? start->data : NULL, start ? start->len : 0,
                          limit ? limit->data : NULL, limit ? limit->len : 0);
    leave(l);
    return RAVEL_OK;
}

static int eo_state(local_db *l, rv_result *res);

/* LevelDB's properties, and ravel's own: "ravel.exactly-once". */
static int lproperty(local_db *l, const char *name, rv_result *res)
{
    if (strcmp(name, "ravel.exactly-once") == 0)
        return eo_state(l, res);
    int rc = enter(l, 0);
    if (rc)
        return rc;
    res->own = leveldb_property_value(l->db, name);
    leave(l);
    if (!res->own)
        return rv_err(RAVEL_ENOTFOUND, "LevelDB has no property \"%s\"", name);
    res->val = res->own;
    res->vlen = strlen(res->own);
    return RAVEL_OK;
}

static int lsizes(local_db *l, const rv_req *req, uint64_t *sizes)
{
    int rc = enter(l, 0);
    if (rc)
        return rc;
    if (req->n)
        leveldb_approximate_sizes(l->db, (int)req->n, (const char *const *)req->keys, req->klens,
                                  (const char *const *)req->limits, req->llens, sizes);
    leave(l);
    return RAVEL_OK;
}

static int reopen(local_db *l)
{
    int rc = RAVEL_OK;
    pthread_rwlock_wrlock(&l->gate);
    if (atomic_load(&l->broken)) {
        if (l->db) {
            take_all_down(l, RAVEL_EIO);
            leveldb_close(l->db);
        }
        char *err = NULL;
        l->db = leveldb_open(l->options, l->dir, &err);
        if (err) {
            l->db = NULL;
            rc = rv_err_leveldb(err);
            char msg[600];
            snprintf(msg, sizeof msg, "%s", ravel_errmsg());
            rc = rv_err(rc, "database %s could not be reopened after a write error: %s", l->dir,
                        msg);
        } else {
            atomic_store(&l->broken, 0);
        }
    }
    pthread_rwlock_unlock(&l->gate);
    return rc;
}

static int lclear(local_db *l, const ravel_range *r, int sync)
{
    ravel_range keys_only = *r;
    keys_only.keys = 1;
    keys_only.values = 0;
    local_iter *it;
    int rc = liter_open(l, &keys_only, NULL, &it);
    if (rc)
        return rc;
    /* Delete in chunks so a huge clear does not build one huge batch. */
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    size_t n = 0;
    for (;;) {
        const char *k, *v;
        size_t kl, vl;
        rc = liter_next(&it->base, &k, &kl, &v, &vl);
        if (rc == RAVEL_OK) {
            leveldb_writebatch_delete(wb, k, kl);
            n++;
        }
        if ((rc != RAVEL_OK && n) || n == 1000) {
            int wrc = write_batch(l, wb, sync);
            leveldb_writebatch_clear(wb);
            n = 0;
            if (wrc) {
                rc = wrc;
                break;
            }
        }
        if (rc != RAVEL_OK)
            break;
    }
    leveldb_writebatch_destroy(wb);
    liter_free(&it->base);
    return rc == RAVEL_END ? RAVEL_OK : rc;
}

/* ---- exactly-once ----
 *
 * A guest numbers its writes (wseq) and a host passes each write on with
 * the guest's identity (rv_req.writer). Per guest ("producer") the
 * database keeps a record, written in the same LevelDB write batch as the
 * data, so it survives whatever the data survives (a SIGKILL of the
 * leader included):
 *   high   every write numbered up to here has been applied or answered
 *   acked  the guest has the answers up to here (it says so in each write)
 *   seen   when it last wrote (unix time in milliseconds), for expiry
 *   fails  the failures answered for writes after acked: status, words
 * A write numbered at most `high` is a replay: it is answered as the
 * first time (its failure, or OK) and not applied again. Writes of one
 * guest come in order on its stream, and after a lost stream it sends
 * again, in order, every write it has no answer for; so `high` and the
 * failures after `acked` say everything. Records are bounded: failures
 * are pruned once acked, records of guests silent for EO_EXPIRY_MS are
 * deleted at the next load, and past EO_MAX producers the one silent
 * longest is forgotten. Record: key RV_RESERVED "eo/" producer; value
 * u8 version (1), u64 high, u64 acked, u64 seen, u32 count, then per
 * failure u64 wseq, i32 status, u16 length and the words (little-endian). */

#define EO_BUCKETS 1024
#define EO_MAX 4096
#define EO_EXPIRY_MS (24 * 3600 * 1000ull)
#define EO_PREFIX RV_RESERVED "eo/"
#define EO_PREFIX_LEN (RV_RESERVED_LEN + 3)
#define EO_MSG_MAX 200

typedef struct eo_fail {
    uint64_t wseq;
    int32_t status;
    uint16_t len;
    char msg[EO_MSG_MAX];
} eo_fail;

typedef struct producer {
    uint8_t id[RV_PRODUCER_LEN];
    uint64_t high, acked, seen;
    eo_fail *fails;
    uint32_t nfails, capfails;
    pthread_mutex_t mu;  /* held across a write of this producer's */
    int busy;            /* writes under way (under eo_mu): not evicted */
    struct producer *next;
} producer;

static unsigned eo_bucket(const uint8_t *id)
{
    uint32_t h;
    memcpy(&h, id, sizeof h);
    return h % EO_BUCKETS;
}

static void eo_key(char key[EO_PREFIX_LEN + RV_PRODUCER_LEN], const uint8_t *id)
{
    memcpy(key, EO_PREFIX, EO_PREFIX_LEN);
    memcpy(key + EO_PREFIX_LEN, id, RV_PRODUCER_LEN);
}

static void put_u64(rv_buf *b, uint64_t v)
{
    rv_buf_append(b, &v, sizeof v);
}

/* The record's value into b. 0 or -1 when out of memory. */
static int eo_encode(const producer *p, rv_buf *b)
{
    b->len = 0;
    if (rv_buf_reserve(b, 1 + 3 * 8 + 4 + (size_t)p->nfails * (8 + 4 + 2 + EO_MSG_MAX)))
        return -1;
    uint8_t version = 1;
    rv_buf_append(b, &version, 1);
    put_u64(b, p->high);
    put_u64(b, p->acked);
    put_u64(b, p->seen);
    rv_buf_append(b, &p->nfails, sizeof p->nfails);
    for (uint32_t i = 0; i < p->nfails; i++) {
        put_u64(b, p->fails[i].wseq);
        rv_buf_append(b, &p->fails[i].status, 4);
        rv_buf_append(b, &p->fails[i].len, 2);
        rv_buf_append(b, p->fails[i].msg, p->fails[i].len);
    }
    return 0;
}

static int eo_add_fail(producer *p, uint64_t wseq, int status, const char *msg)
{
    if (p->nfails == p->capfails) {
        uint32_t cap = p->capfails ? p->capfails * 2 : 4;
        eo_fail *f = rv_realloc(p->fails, cap * sizeof *f);
        if (!f)
            return -1;
        p->fails = f;
        p->capfails = cap;
    }
    eo_fail *f = &p->fails[p->nfails++];
    f->wseq = wseq;
    f->status = status;
    size_t n = msg ? strlen(msg) : 0;
    f->len = (uint16_t)(n < EO_MSG_MAX ? n : EO_MSG_MAX);
    memcpy(f->msg, msg ? msg : "", f->len);
    return 0;
}

/* A record's value into a new producer; NULL if malformed or out of
 * memory. */
static producer *eo_decode(const uint8_t *id, const char *v, size_t n)
{
    if (n < 29 || v[0] != 1)
        return NULL;
    producer *p = rv_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->id, id, RV_PRODUCER_LEN);
    memcpy(&p->high, v + 1, 8);
    memcpy(&p->acked, v + 9, 8);
    memcpy(&p->seen, v + 17, 8);
    uint32_t count;
    memcpy(&count, v + 25, 4);
    size_t at = 29;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t wseq;
        int32_t status;
        uint16_t len;
        if (at + 14 > n)
            break;
        memcpy(&wseq, v + at, 8);
        memcpy(&status, v + at + 8, 4);
        memcpy(&len, v + at + 12, 2);
        if (at + 14 + len > n || len > EO_MSG_MAX)
            break;
        char msg[EO_MSG_MAX + 1];
        memcpy(msg, v + at + 14, len);
        msg[len] = '\0';
        if (eo_add_fail(p, wseq, status, msg))
            break;
        at += 14 + len;
    }
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

static void eo_free(producer *p)
{
    pthread_mutex_destroy(&p->mu);
    free(p->fails);
    free(p);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void eo_link(local_db *l, producer *p)
{
    producer **b = &l->eo_table[eo_bucket(p->id)];
    p->next = *b;
    *b = p;
    l->eo_count++;
}

/* With eo_mu held, the gate not: read every record once; delete those of
 * guests silent for EO_EXPIRY_MS. */
static int eo_load(local_db *l)
{
    l->eo_table = rv_calloc(EO_BUCKETS, sizeof *l->eo_table);
    if (!l->eo_table)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    int rc = enter(l, 0);
    if (rc)
        return rc;
    leveldb_writebatch_t *expired = leveldb_writebatch_create();
    int nexpired = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(l->db, l->ropts);
    uint64_t now = now_ms();
    for (leveldb_iter_seek(it, EO_PREFIX, EO_PREFIX_LEN); leveldb_iter_valid(it);
         leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl < EO_PREFIX_LEN || memcmp(k, EO_PREFIX, EO_PREFIX_LEN) != 0)
            break;
        const char *v = leveldb_iter_value(it, &vl);
        producer *p = kl == EO_PREFIX_LEN + RV_PRODUCER_LEN
                          ? eo_decode((const uint8_t *)k + EO_PREFIX_LEN, v, vl)
                          : NULL;
        if (!p || p->seen + EO_EXPIRY_MS < now) {
            leveldb_writebatch_delete(expired, k, kl);
            nexpired++;
            if (p)
                eo_free(p);
            continue;
        }
        eo_link(l, p);
    }
    leveldb_iter_destroy(it);
    leave(l);
    if (nexpired)
        write_batch(l, expired, 0);
    leveldb_writebatch_destroy(expired);
    l->eo_loaded = 1;
    return RAVEL_OK;
}

/* With eo_mu held: make room for one more producer by forgetting the one
 * silent longest (not one with a write under way). */
static void eo_evict(local_db *l)
{
    producer **oldest = NULL;
    for (size_t b = 0; b < EO_BUCKETS; b++)
        for (producer **pp = &l->eo_table[b]; *pp; pp = &(*pp)->next)
            if (!(*pp)->busy && (!oldest || (*pp)->seen < (*oldest)->seen))
                oldest = pp;
    if (!oldest)
        return;
    producer *p = *oldest;
    *oldest = p->next;
    l->eo_count--;
    char key[EO_PREFIX_LEN + RV_PRODUCER_LEN];
    eo_key(key, p->id);
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    leveldb_writebatch_delete(wb, key, sizeof key);
    write_batch(l, wb, 0);
    leveldb_writebatch_destroy(wb);
    eo_free(p);
}

/* The producer's state, marked busy and locked; NULL with an error set. */
static producer *eo_acquire(local_db *l, const uint8_t *id)
{
    pthread_mutex_lock(&l->eo_mu);
    if (!l->eo_loaded && eo_load(l) != RAVEL_OK) {
        pthread_mutex_unlock(&l->eo_mu);
        return NULL;
    }
    producer *p = l->eo_table[eo_bucket(id)];
    while (p && memcmp(p->id, id, RV_PRODUCER_LEN) != 0)
        p = p->next;
    if (!p) {
        if (l->eo_count >= EO_MAX)
            eo_evict(l);
        p = rv_calloc(1, sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&l->eo_mu);
            rv_err(RAVEL_ENOMEM, "out of memory");
            return NULL;
        }
        memcpy(p->id, id, RV_PRODUCER_LEN);
        pthread_mutex_init(&p->mu, NULL);
        eo_link(l, p);
    }
    p->busy++;
    pthread_mutex_unlock(&l->eo_mu);
    pthread_mutex_lock(&p->mu);
    return p;
}

static void eo_release(local_db *l, producer *p)
{
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&l->eo_mu);
    p->busy--;
    pthread_mutex_unlock(&l->eo_mu);
}

static void eo_free_all(local_db *l)
{
    if (!l->eo_table)
        return;
    for (size_t b = 0; b < EO_BUCKETS; b++)
        while (l->eo_table[b]) {
            producer *p = l->eo_table[b];
            l->eo_table[b] = p->next;
            eo_free(p);
        }
    free(l->eo_table);
}

/* "ravel.exactly-once": how many guests' records the database keeps
 * (loading them, as a leader's first exactly-once write does). */
static int eo_state(local_db *l, rv_result *res)
{
    pthread_mutex_lock(&l->eo_mu);
    int rc = l->eo_loaded ? RAVEL_OK : eo_load(l);
    size_t n = l->eo_count;
    pthread_mutex_unlock(&l->eo_mu);
    if (rc)
        return rc;
    char text[160];
    snprintf(text, sizeof text, "guests remembered: %zu (at most %d; a record expires after 24 h)\n",
             n, EO_MAX);
    if (!(res->own = rv_strdup(text)))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    res->val = res->own;
    res->vlen = strlen(text);
    return RAVEL_OK;
}

/* The answer recorded for write wseq of p (at most p->high): its failure,
 * or OK. */
static int eo_replayed(const producer *p, uint64_t wseq, char *msg, size_t cap)
{
    for (uint32_t i = 0; i < p->nfails; i++)
        if (p->fails[i].wseq == wseq) {
            snprintf(msg, cap, "%.*s", (int)p->fails[i].len, p->fails[i].msg);
            return p->fails[i].status;
        }
    return RAVEL_OK;
}

/* The keys a clear deletes, into wb: one write with its record. */
static int eo_clear_keys(local_db *l, const ravel_range *r, leveldb_writebatch_t *wb)
{
    ravel_range keys_only = *r;
    keys_only.keys = 1;
    keys_only.values = 0;
    local_iter *it;
    int rc = liter_open(l, &keys_only, NULL, &it);
    if (rc)
        return rc;
    const char *k, *v;
    size_t kl, vl;
    while ((rc = liter_next(&it->base, &k, &kl, &v, &vl)) == RAVEL_OK)
        leveldb_writebatch_delete(wb, k, kl);
    liter_free(&it->base);
    return rc == RAVEL_END ? RAVEL_OK : rc;
}

/* A write with a writer: applied and remembered in one LevelDB write, or,
 * if it is a replay, answered as the first time. Its status; words for a
 * failure in msg. */
static int eo_write(local_db *l, const rv_req *req, char *msg, size_t cap)
{
    const rv_writer *w = req->writer;
    producer *p = eo_acquire(l, w->producer);
    if (!p) {
        snprintf(msg, cap, "%s", ravel_errmsg());
        return RAVEL_ENOMEM;
    }
    if (w->acked > p->acked) {
        p->acked = w->acked;
        uint32_t kept = 0;
        for (uint32_t i = 0; i < p->nfails; i++)
            if (p->fails[i].wseq > p->acked)
                p->fails[kept++] = p->fails[i];
        p->nfails = kept;
    }
    msg[0] = '\0';
    if (w->last <= p->high) {
        int rc = eo_replayed(p, w->last, msg, cap);
        eo_release(l, p);
        return rc;
    }
    /* A group some of whose writes were applied (a replay grouped anew):
     * only the rest. */
    size_t skip = w->first <= p->high ? (size_t)(p->high - w->first + 1) : 0;
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    int rc = RAVEL_OK;
    const ravel_batch *b = req->batch;
    switch (req->to.op) {
    case RV_PUT:
        leveldb_writebatch_put(wb, req->key, req->klen, req->val, req->vlen);
        break;
    case RV_DEL:
        leveldb_writebatch_delete(wb, req->key, req->klen);
        break;
    case RV_CLEAR:
        rc = eo_clear_keys(l, req->range, wb);
        break;
    case RV_WRITE:
        for (size_t i = skip; b && i < b->count; i++) {
            int type;
            const char *k, *v;
            size_t kl, vl;
            rv_batch_op(b, i, &type, &k, &kl, &v, &vl);
            if (type == RV_OP_PUT)
                leveldb_writebatch_put(wb, k, kl, v, vl);
            else
                leveldb_writebatch_delete(wb, k, kl);
        }
        break;
    default:
        rc = rv_err(RAVEL_EINVAL, "not a write");
    }
    int checked = req->to.op == RV_WRITE && b && b->nchecks;
    if (checked)
        pthread_rwlock_wrlock(&l->order);
    else
        pthread_rwlock_rdlock(&l->order);
    int answer = req->refused ? req->refused : rc;
    if (rc == RAVEL_OK && (rc = enter(l, 1)) == RAVEL_OK) {
        if (answer == RAVEL_OK && checked && (answer = checks_hold(l, b)) != RAVEL_OK &&
            answer != RAVEL_ECONFLICT) {
            rc = answer; /* LevelDB could not read: nothing to remember */
        }
        if (rc == RAVEL_OK) {
            const char *words = req->refused ? req->refused_msg : ravel_errmsg();
            uint64_t high = p->high, seen = p->seen;
            uint32_t nfails = p->nfails;
            p->high = w->last;
            p->seen = now_ms();
            rv_buf val = {0};
            int oom = answer != RAVEL_OK && eo_add_fail(p, w->last, answer, words);
            if (!oom)
                oom = eo_encode(p, &val);
            if (oom) {
                rc = rv_err(RAVEL_ENOMEM, "out of memory");
            } else {
                if (answer != RAVEL_OK) {
                    snprintf(msg, cap, "%s", words ? words : "");
                    leveldb_writebatch_clear(wb); /* remember the answer only */
                }
                char key[EO_PREFIX_LEN + RV_PRODUCER_LEN];
                eo_key(key, p->id);
                leveldb_writebatch_put(wb, key, sizeof key, val.data, val.len);
                char *err = NULL;
                commit(l, wopts(l, req->sync), wb, &err);
                rc = wrote(l, err);
            }
            rv_buf_free(&val);
            if (rc != RAVEL_OK) { /* not written: as if it never came */
                p->high = high;
                p->seen = seen;
                p->nfails = nfails;
            }
        }
        leave(l);
    }
    pthread_rwlock_unlock(&l->order);
    leveldb_writebatch_destroy(wb);
    eo_release(l, p);
    if (rc != RAVEL_OK) {
        snprintf(msg, cap, "%s", ravel_errmsg());
        return rc;
    }
    return answer;
}

/* Every operation runs on the calling thread and completes before submit
 * returns. Nothing here touches the handle after rv_complete: its
 * callback may close it. */
static int lsubmit(ravel_db *d, rv_req *req)
{
    local_db *l = (local_db *)d;
    req->via = d;
    rv_result res = {0};
    char **vals = NULL;
    size_t *vlens = NULL;
    uint64_t *sizes = NULL;
    int rc;
    if (req->writer) {
        char msg[512];
        rc = eo_write(l, req, msg, sizeof msg);
        rv_complete(&req->to, rc, rc == RAVEL_OK ? NULL : msg, &res);
        return RAVEL_OK;
    }
    switch (req->to.op) {
    case RV_PUT:
        rc = lput(l, req->key, req->klen, req->val, req->vlen, req->sync);
        break;
    case RV_GET:
        rc = lget(l, req->ro, req->key, req->klen, &res.own, &res.vlen);
        res.val = res.own;
        break;
    case RV_DEL:
        rc = ldel(l, req->key, req->klen, req->sync);
        break;
    case RV_GET_MANY:
        vals = rv_calloc(req->n + 1, sizeof *vals);
        vlens = rv_calloc(req->n + 1, sizeof *vlens);
        rc = vals && vlens ? lget_many(l, req->ro, req->n, req->keys, req->klens, vals, vlens)
                           : rv_err(RAVEL_ENOMEM, "out of memory");
        res.n = req->n;
        res.vals = (const char *const *)vals;
        res.vlens = vlens;
        res.own_vals = vals;
        break;
    case RV_WRITE:
        rc = lwrite(l, req->batch, req->sync);
        break;
    case RV_CLEAR:
        rc = lclear(l, req->range, req->sync);
        break;
    case RV_SNAPSHOT:
        rc = lsnapshot(l, &res.snap);
        break;
    case RV_COMPACT:
        rc = lcompact(l, req->start, req->limit);
        break;
    case RV_PROPERTY:
        rc = lproperty(l, req->name, &res);
        break;
    case RV_SIZES:
        sizes = rv_calloc(req->n + 1, sizeof *sizes);
        rc = sizes ? lsizes(l, req, sizes) : rv_err(RAVEL_ENOMEM, "out of memory");
        res.n = req->n;
        res.sizes = sizes;
        break;
    default:
        return rv_err(RAVEL_ENOTSUP, "operation %d is not supported by a local handle",
                      (int)req->to.op);
    }
    rv_complete(&req->to, rc, rc == RAVEL_OK ? NULL : ravel_errmsg(), &res);
    free(res.own);
    free(sizes);
    if (vals)
        for (size_t i = 0; i < req->n; i++)
            free(vals[i]);
    free(vals);
    free(vlens);
    return RAVEL_OK;
}

static void *watch_main(void *arg)
{
    local_db *l = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd p[2] = {{l->inotify_fd, POLLIN, 0}, {l->stop_fd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            return NULL;
        ssize_t n = read(l->inotify_fd, buf, sizeof buf);
        for (ssize_t off = 0; n > 0 && off < n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            int self = ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF);
            int named = ev->len && strcmp(ev->name, l->name) == 0;
            if (self || (named && (ev->mask & (IN_DELETE | IN_MOVED_FROM))))
                atomic_store(&l->gone, 1);
            off += (ssize_t)(sizeof *ev + ev->len);
        }
    }
}

/* Best effort: without inotify, a removed directory is not noticed. The
 * parent is watched for the directory's removal: open files inside it keep
 * the directory's own "deleted" event from coming until they close. */
static void watch_start(local_db *l)
{
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", l->dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    snprintf(l->name, sizeof l->name, "%s", slash ? slash + 1 : parent);
    if (slash == parent)
        parent[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    l->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    l->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (l->inotify_fd >= 0 && l->stop_fd >= 0 &&
        inotify_add_watch(l->inotify_fd, l->dir, IN_DELETE_SELF | IN_MOVE_SELF) >= 0 &&
        inotify_add_watch(l->inotify_fd, parent, IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR) >= 0 &&
        pthread_create(&l->watcher, NULL, watch_main, l) == 0) {
        l->watching = 1;
        return;
    }
    if (l->inotify_fd >= 0)
        close(l->inotify_fd);
    if (l->stop_fd >= 0)
        close(l->stop_fd);
}

static void watch_stop(local_db *l)
{
    if (!l->watching)
        return;
    uint64_t one = 1;
    if (write(l->stop_fd, &one, sizeof one) == sizeof one)
        pthread_join(l->watcher, NULL);
    close(l->inotify_fd);
    close(l->stop_fd);
}

/* ---- watches and the change log (db/feed.h) ---- */

static int log_next(void *ud, uint64_t after, char **blob, size_t *len, uint64_t *seq)
{
    local_db *l = ud;
    char key[RV_RESERVED_LEN + 3 + 8];
    memcpy(key, RV_RESERVED "cl/", RV_RESERVED_LEN + 3);
    uint64_t from = after + 1;
    for (int i = 0; i < 8; i++)
        key[RV_RESERVED_LEN + 3 + i] = (char)(from >> (56 - 8 * i));
    int rc = enter(l, 0);
    if (rc)
        return rc;
    leveldb_iterator_t *it = leveldb_create_iterator(l->db, l->ropts);
    leveldb_iter_seek(it, key, sizeof key);
    rc = RAVEL_END;
    if (leveldb_iter_valid(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl == sizeof key && memcmp(k, key, RV_RESERVED_LEN + 3) == 0) {
            const char *v = leveldb_iter_value(it, &vl);
            *seq = 0;
            for (int i = 0; i < 8; i++)
                *seq = *seq << 8 | (unsigned char)k[RV_RESERVED_LEN + 3 + i];
            *blob = rv_malloc(vl ? vl : 1);
            if (*blob) {
                memcpy(*blob, v, vl);
                *len = vl;
                rc = RAVEL_OK;
            } else {
                rc = rv_err(RAVEL_ENOMEM, "out of memory");
            }
        }
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    leave(l);
    if (err) {
        if (rc == RAVEL_OK)
            free(*blob);
        return rv_err_leveldb(err);
    }
    return rc;
}

static int lwatch(ravel_db *d, const ravel_watch_options *o, ravel_watch **out)
{
    local_db *l = (local_db *)d;
    if (!rv_feed_active(l->feed)) {
        /* No write is under way while we hold `order` for writing: each
         * one after this goes through the feed. */
        pthread_rwlock_wrlock(&l->order);
        rv_feed_activate(l->feed);
        pthread_rwlock_unlock(&l->order);
    }
    return rv_feed_watch(l->feed, o, out);
}

static int lchangelog(ravel_db *d, const ravel_changelog *set, ravel_changelog *out)
{
    local_db *l = (local_db *)d;
    int rc = RAVEL_OK;
    if (set) {
        pthread_rwlock_wrlock(&l->order);
        rc = enter(l, 1);
        if (rc == RAVEL_OK) {
            rc = rv_feed_changelog_set(l->feed, l->db, l->wopts_sync, set);
            leave(l);
        }
        pthread_rwlock_unlock(&l->order);
    }
    if (rc == RAVEL_OK && out)
        rv_feed_changelog_get(l->feed, out);
    return rc;
}

/* LevelDB's option objects, the directory's name, and the handle: what
 * an open made before LevelDB was (or after it was closed). */
static void free_settings(local_db *l)
{
    leveldb_options_destroy(l->options);
    if (l->policy)
        leveldb_filterpolicy_destroy(l->policy);
    if (l->cache)
        leveldb_cache_destroy(l->cache);
    leveldb_readoptions_destroy(l->ropts);
    leveldb_writeoptions_destroy(l->wopts);
    leveldb_writeoptions_destroy(l->wopts_sync);
    free(l->dir);
    free(l);
}

static void lclose(ravel_db *d)
{
    local_db *l = (local_db *)d;
    rv_feed_close(l->feed);
    watch_stop(l);
    pthread_rwlock_wrlock(&l->gate);
    if (l->db)
        take_all_down(l, RAVEL_ECLOSED);
    /* Shells of iterators the caller still holds must not touch us. */
    for (local_iter *it = l->iters; it; it = it->next) {
        it->db = NULL;
        it->dead = RAVEL_ECLOSED;
    }
    pthread_rwlock_unlock(&l->gate);
    /* Snapshots the caller did not release (take_all_down let LevelDB's
     * go). */
    while (l->snaps) {
        ravel_snapshot *sn = l->snaps;
        l->snaps = sn->next;
        free(sn);
    }
    if (l->db)
        leveldb_close(l->db);
    pthread_rwlock_destroy(&l->gate);
    pthread_rwlock_destroy(&l->order);
    pthread_mutex_destroy(&l->eo_mu);
    eo_free_all(l);
    pthread_mutex_destroy(&l->mu);
    free_settings(l);
}

static int lrole(ravel_db *d)
{
    (void)d;
    return RAVEL_ROLE_LOCAL;
}

static const rv_db_ops local_ops = {
    .role = lrole,
    .exactly_once = 1,
    .submit = lsubmit,
    .iter_new = liter_new,
    .snapshot_release = lsnapshot_release,
    .close = lclose,
    .watch = lwatch,
    .changelog = lchangelog,
};

/* LevelDB's open errors name a file deep inside the directory; say what a
 * person needs to know about the directory itself. */
static int open_error(const char *dir, int create, char *err)
{
    struct stat st;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/') /* "a/db/": the parent is a */
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    else if (slash)
        parent[1] = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    if (stat(dir, &st) != 0 && errno == ENOENT && create && stat(parent, &st) != 0) {
        free(err);
        return rv_err(RAVEL_EIO, "cannot create database %s: parent directory %s does not exist",
                      dir, parent);
    }
    /* LevelDB ignores its failure to make the directory and reports the
     * LOCK file it then cannot create (NotFound). */
    if (stat(dir, &st) != 0 && errno == ENOENT && create &&
        faccessat(AT_FDCWD, parent, W_OK | X_OK, AT_EACCESS) != 0 && errno == EACCES) {
        free(err);
        return rv_err(RAVEL_EIO, "cannot create database %s: permission denied (in %s)", dir,
                      parent);
    }
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        free(err);
        return rv_err(RAVEL_EIO, "cannot open database %s: it is not a directory", dir);
    }
    if (!create && strstr(err, "does not exist (create_if_missing is false)")) {
        free(err);
        return rv_err(RAVEL_EIO, "no LevelDB database at %s (and creating one was not asked for)",
                      dir);
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err);
    int code = rv_err_leveldb(err);
    if (code == RAVEL_ELOCKED)
        return rv_err(code, "database %s is locked by another process or handle (%s)", dir, msg);
    if (strstr(msg, "Permission denied"))
        return rv_err(RAVEL_EIO, "cannot open database %s: permission denied (%s)", dir, msg);
    return rv_err(code, "cannot open database %s: %s", dir, msg);
}

/* Is there a database at dir? LevelDB's own open, even with
 * create_if_missing off, first writes LOCK and LOG into the directory:
 * asked to open one that holds no database, it would leave them behind.
 * Every database has a CURRENT file. If not, *err is set in LevelDB's
 * words (malloc'ed) for open_error. */
static int is_database(const char *dir, char **err)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/CURRENT", dir);
    if (stat(path, &st) == 0 || errno != ENOENT)
        return 1; /* there, or not for us to judge (LevelDB says why) */
    char msg[4400];
    snprintf(msg, sizeof msg, "Invalid argument: %s: does not exist (create_if_missing is false)",
             dir);
    *err = rv_strdup(msg);
    return 0;
}

int ravel_open_local(ravel_db **out, const char *dir, const ravel_options *opts)
{
    if (!out || !dir)
        return rv_err(RAVEL_EINVAL, "result pointer or directory is NULL");
    *out = NULL;
    ravel_options defaults;
    if (!opts) {
        ravel_options_init(&defaults);
        opts = &defaults;
    }
    local_db *l = rv_calloc(1, sizeof *l);
    if (!l)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    l->base.ops = &local_ops;
    l->options = leveldb_options_create();
    leveldb_options_set_create_if_missing(l->options, opts->create_if_missing);
    leveldb_options_set_error_if_exists(l->options, opts->error_if_exists);
    if (opts->cache_size) {
        l->cache = leveldb_cache_create_lru(opts->cache_size);
        leveldb_options_set_cache(l->options, l->cache);
    }
    /* LevelDB's default is 4 MiB. */
    l->write_buffer_size = opts->write_buffer_size ? opts->write_buffer_size : 4u << 20;
    leveldb_options_set_write_buffer_size(l->options, l->write_buffer_size);
    /* The table options must be known before LevelDB opens: resolved
     * against the database's record, read without taking the lock (only
     * an open that creates the database writes one, under the lock). */
    rv_table_opts topts;
    rv_table_opts_resolve(dir, opts, &topts);
    rv_table_opts_apply(&topts, opts, l->options, &l->policy);
    char current[4200];
    struct stat st;
    snprintf(current, sizeof current, "%s/CURRENT", dir);
    int existed = stat(current, &st) == 0;
    l->ropts = leveldb_readoptions_create();
    l->wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(l->wopts, opts->sync);
    l->wopts_sync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(l->wopts_sync, 1);
    char *err = NULL;
    l->dir = rv_strdup(dir);
    if (opts->create_if_missing || is_database(dir, &err))
        l->db = leveldb_open(l->options, dir, &err);
    int rc = RAVEL_OK;
    if (err || !l->dir || !l->db)
        rc = err ? open_error(dir, opts->create_if_missing, err)
                 : rv_err(RAVEL_ENOMEM, "out of memory");
    else if (!existed)
        rc = rv_table_opts_record(dir, &topts);
    if (rc != RAVEL_OK) {
        if (l->db)
            leveldb_close(l->db);
        free_settings(l);
        return rc;
    }
    rv_feed_db how = {log_next, l};
    int frc = rv_feed_new(&l->feed, l->db, l->ropts, how);
    if (frc != RAVEL_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", ravel_errmsg());
        leveldb_close(l->db);
        free_settings(l);
        return rv_err(frc, "cannot read the change feed's state of %s: %s", dir, msg);
    }
    /* A reopen after a write error must find the database it left. */
    leveldb_options_set_error_if_exists(l->options, 0);
    pthread_rwlock_init(&l->gate, NULL);
    /* Writer-preferring, so a stream of plain writes cannot starve a
     * batch with checks. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&l->order, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->eo_mu, NULL);
    watch_start(l);
    *out = &l->base;
    return RAVEL_OK;
}
