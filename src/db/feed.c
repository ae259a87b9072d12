/* A local handle's change feed (feed.h): numbers, the buffer of recent
 * changes, the change log, and the watches that read them. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/feed.h"
#include "db/range.h"
#include "db/reserved.h"
#include "error.h"
#include "util/alloc.h"
#include "util/buf.h"

#define FEED_KEY RV_RESERVED "feed"
#define FEED_KEY_LEN (RV_RESERVED_LEN + 4)
#define LOG_PREFIX RV_RESERVED "cl/"
#define LOG_PREFIX_LEN (RV_RESERVED_LEN + 3)
#define LOG_KEY_LEN (LOG_PREFIX_LEN + 8)
#define FEED_REC_LEN (2 + 3 * 8)
#define HEAD_LEN (1 + 8 + 4) /* version, prev, n */

/* One change in the buffer: its record as the change log stores it. */
typedef struct fevent {
    uint64_t seq;
    size_t len;
    char blob[];
} fevent;

/* What the change log holds, oldest first: enough to prune it. */
typedef struct logent {
    uint64_t seq;
    uint64_t size; /* key and value */
} logent;

struct rv_feed {
    pthread_mutex_t mu;
    pthread_cond_t cond;    /* a change was published, or the handle closed */
    int refs;               /* the handle's, and one per watch */
    int closed;
    int readers;            /* watches reading the log outside mu */
    atomic_int active;
    rv_feed_db how;
    uint64_t last;          /* the last number given out */
    uint64_t reserved;      /* numbers up to here are the database's */
    /* The buffer: changes with numbers in (ring_floor, last]. */
    fevent **ring;
    size_t ring_cap, ring_head, ring_len, ring_bytes;
    uint64_t ring_floor;
    /* The change log. */
    int log_on;
    uint64_t max_count, max_bytes;
    logent *log;            /* a ring of log_cap */
    size_t log_cap, log_head, log_len;
    uint64_t log_bytes;
    uint64_t log_floor;     /* the log holds every change after it */
    /* The number of the last record: the next one's prev. Across a new
     * leader it is the last life's last record, not the numbers it had
     * reserved: no change came between them, or it would be logged. */
    uint64_t log_last;
};

static void put_u64le(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}

static uint64_t get_u64le(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static uint32_t get_u32le(const char *p)
{
    return (uint32_t)(unsigned char)p[0] | (uint32_t)(unsigned char)p[1] << 8 |
           (uint32_t)(unsigned char)p[2] << 16 | (uint32_t)(unsigned char)p[3] << 24;
}

static void log_key(char key[LOG_KEY_LEN], uint64_t seq)
{
    memcpy(key, LOG_PREFIX, LOG_PREFIX_LEN);
    for (int i = 0; i < 8; i++)
        key[LOG_PREFIX_LEN + i] = (char)(seq >> (56 - 8 * i));
}

static void feed_record(char rec[FEED_REC_LEN], int log_on, uint64_t max_count,
                        uint64_t max_bytes, uint64_t reserved)
{
    rec[0] = 1;
    rec[1] = (char)log_on;
    put_u64le(rec + 2, max_count);
    put_u64le(rec + 10, max_bytes);
    put_u64le(rec + 18, reserved);
}

/* ---- the change log's index ---- */

static logent *log_at(rv_feed *f, size_t i)
{
    return &f->log[(f->log_head + i) % f->log_cap];
}

static int log_push(rv_feed *f, uint64_t seq, uint64_t size)
{
    if (f->log_len == f->log_cap) {
        size_t cap = f->log_cap ? f->log_cap * 2 : 1024;
        logent *n = rv_malloc(cap * sizeof *n);
        if (!n)
            return RAVEL_ENOMEM;
        for (size_t i = 0; i < f->log_len; i++)
            n[i] = *log_at(f, i);
        free(f->log);
        f->log = n;
        f->log_cap = cap;
        f->log_head = 0;
    }
    *log_at(f, f->log_len++) = (logent){seq, size};
    f->log_bytes += size;
    return RAVEL_OK;
}

static void log_pop(rv_feed *f)
{
    logent *e = log_at(f, 0);
    f->log_floor = e->seq;
    f->log_bytes -= e->size;
    f->log_head = (f->log_head + 1) % f->log_cap;
    f->log_len--;
}

/* How many of the oldest records go when `size` more bytes come (as one
 * more record), under max_count and max_bytes. */
static size_t log_excess(rv_feed *f, uint64_t size, uint64_t max_count, uint64_t max_bytes)
{
    size_t k = 0;
    uint64_t count = f->log_len + (size ? 1 : 0), bytes = f->log_bytes + size;
    while (k < f->log_len && (count > max_count || bytes > max_bytes)) {
        bytes -= log_at(f, k)->size;
        count--;
        k++;
    }
    return k;
}

/* ---- the buffer ---- */

static int ring_push(rv_feed *f, fevent *e)
{
    if (f->ring_len == f->ring_cap) {
        size_t cap = f->ring_cap ? f->ring_cap * 2 : 256;
        fevent **n = rv_malloc(cap * sizeof *n);
        if (!n)
            return RAVEL_ENOMEM;
        for (size_t i = 0; i < f->ring_len; i++)
            n[i] = f->ring[(f->ring_head + i) % f->ring_cap];
        free(f->ring);
        f->ring = n;
        f->ring_cap = cap;
        f->ring_head = 0;
    }
    f->ring[(f->ring_head + f->ring_len++) % f->ring_cap] = e;
    f->ring_bytes += e->len;
    while (f->ring_len > 1 && f->ring_bytes > RAVEL_WATCH_BUFFER) {
        fevent *old = f->ring[f->ring_head];
        f->ring_floor = old->seq;
        f->ring_bytes -= old->len;
        f->ring_head = (f->ring_head + 1) % f->ring_cap;
        f->ring_len--;
        free(old);
    }
    return RAVEL_OK;
}

/* The first change in the buffer numbered after `after`, or NULL. */
static fevent *ring_after(rv_feed *f, uint64_t after)
{
    size_t lo = 0, hi = f->ring_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->ring[(f->ring_head + mid) % f->ring_cap]->seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->ring_len ? f->ring[(f->ring_head + lo) % f->ring_cap] : NULL;
}

/* ---- the feed ---- */

static int load_log(rv_feed *f, leveldb_t *db, const leveldb_readoptions_t *ro)
{
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    leveldb_iter_seek(it, LOG_PREFIX, LOG_PREFIX_LEN);
    int rc = RAVEL_OK, first = 1;
    for (; leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl != LOG_KEY_LEN || memcmp(k, LOG_PREFIX, LOG_PREFIX_LEN) != 0)
            break;
        const char *v = leveldb_iter_value(it, &vl);
        if (vl < HEAD_LEN)
            continue;
        uint64_t seq = 0;
        for (int i = 0; i < 8; i++)
            seq = seq << 8 | (unsigned char)k[LOG_PREFIX_LEN + i];
        if (first)
            f->log_floor = get_u64le(v + 1);
        first = 0;
        if ((rc = log_push(f, seq, kl + vl)) != RAVEL_OK) {
            rc = rv_err(rc, "out of memory for the change log's index");
            break;
        }
        if (seq > f->last)
            f->last = seq;
        f->log_last = seq;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err)
        return rv_err_leveldb(err);
    if (first)
        f->log_floor = f->log_last = f->last;
    return rc;
}

int rv_feed_new(rv_feed **out, leveldb_t *db, const leveldb_readoptions_t *ro, rv_feed_db how)
{
    rv_feed *f = rv_calloc(1, sizeof *f);
    if (!f)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    f->how = how;
    f->refs = 1;
    f->max_count = RV_CHANGELOG_COUNT;
    f->max_bytes = RV_CHANGELOG_BYTES;
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(db, ro, FEED_KEY, FEED_KEY_LEN, &vl, &err);
    if (err) {
        free(f);
        return rv_err_leveldb(err);
    }
    if (v && vl >= FEED_REC_LEN && v[0] == 1) {
        f->log_on = v[1] != 0;
        f->max_count = get_u64le(v + 2);
        f->max_bytes = get_u64le(v + 10);
        f->reserved = get_u64le(v + 18);
    }
    leveldb_free(v);
    f->last = f->reserved;
    int rc = f->log_on ? load_log(f, db, ro) : RAVEL_OK;
    if (rc != RAVEL_OK) {
        free(f->log);
        free(f);
        return rc;
    }
    f->ring_floor = f->last;
    atomic_store(&f->active, f->log_on);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = f;
    return RAVEL_OK;
}

static void unref(rv_feed *f)
{
    pthread_mutex_lock(&f->mu);
    int last = --f->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (!last)
        return;
    for (size_t i = 0; i < f->ring_len; i++)
        free(f->ring[(f->ring_head + i) % f->ring_cap]);
    free(f->ring);
    free(f->log);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void rv_feed_close(rv_feed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->closed = 1;
    pthread_cond_broadcast(&f->cond);
    while (f->readers)
        pthread_cond_wait(&f->cond, &f->mu);
    pthread_mutex_unlock(&f->mu);
    unref(f);
}

int rv_feed_active(rv_feed *f)
{
    return atomic_load_explicit(&f->active, memory_order_acquire);
}

void rv_feed_activate(rv_feed *f)
{
    atomic_store_explicit(&f->active, 1, memory_order_release);
}

/* The change of a batch, as a log record with prev left for later. */
typedef struct building {
    rv_buf b;
    uint32_t n;
    int oom;
} building;

static void add_op(building *s, int type, const char *k, size_t kl, const char *v, size_t vl)
{
    if (s->oom || rv_is_reserved(k, kl))
        return;
    uint8_t head[9] = {(uint8_t)type};
    for (int i = 0; i < 4; i++) {
        head[1 + i] = (uint8_t)(kl >> (8 * i));
        head[5 + i] = (uint8_t)(vl >> (8 * i));
    }
    if (rv_buf_append(&s->b, head, sizeof head) || rv_buf_append(&s->b, k, kl) ||
        (vl && rv_buf_append(&s->b, v, vl)))
        s->oom = 1;
    s->n++;
}

static void on_put(void *ud, const char *k, size_t kl, const char *v, size_t vl)
{
    add_op(ud, RAVEL_CHANGE_PUT, k, kl, v, vl);
}

static void on_del(void *ud, const char *k, size_t kl)
{
    add_op(ud, RAVEL_CHANGE_DEL, k, kl, NULL, 0);
}

void rv_feed_write(rv_feed *f, leveldb_t *db, const leveldb_writeoptions_t *wo,
                   leveldb_writebatch_t *wb, char **err)
{
    building s = {0};
    /* Room for the fevent header in front, so the blob needs no copy. */
    size_t off = offsetof(fevent, blob);
    static const char zero[HEAD_LEN + sizeof(fevent)];
    if (rv_buf_append(&s.b, zero, off + HEAD_LEN))
        s.oom = 1;
    leveldb_writebatch_iterate(wb, &s, on_put, on_del);
    if (s.oom) {
        rv_buf_free(&s.b);
        *err = strdup("IO error: out of memory for the change feed");
        return;
    }
    if (!s.n) { /* ravel's own records only: no change to tell */
        rv_buf_free(&s.b);
        leveldb_write(db, wo, wb, err);
        return;
    }
    fevent *e = (fevent *)s.b.data;
    e->len = s.b.len - off;
    e->blob[0] = 1;
    e->blob[9] = (char)s.n;
    e->blob[10] = (char)(s.n >> 8);
    e->blob[11] = (char)(s.n >> 16);
    e->blob[12] = (char)(s.n >> 24);
    pthread_mutex_lock(&f->mu);
    uint64_t seq = f->last + 1;
    e->seq = seq;
    put_u64le(e->blob + 1, f->log_on ? f->log_last : f->last);
    size_t prune = 0;
    char key[LOG_KEY_LEN];
    if (f->log_on) {
        log_key(key, seq);
        leveldb_writebatch_put(wb, key, sizeof key, e->blob, e->len);
        prune = log_excess(f, sizeof key + e->len, f->max_count, f->max_bytes);
        for (size_t i = 0; i < prune; i++) {
            char old[LOG_KEY_LEN];
            log_key(old, log_at(f, i)->seq);
            leveldb_writebatch_delete(wb, old, sizeof old);
        }
    }
    uint64_t reserved = f->reserved;
    if (seq > reserved) {
        reserved = seq + RV_FEED_BLOCK - 1;
        char rec[FEED_REC_LEN];
        feed_record(rec, f->log_on, f->max_count, f->max_bytes, reserved);
        leveldb_writebatch_put(wb, FEED_KEY, FEED_KEY_LEN, rec, sizeof rec);
    }
    leveldb_write(db, wo, wb, err);
    if (!*err) {
        f->last = seq;
        f->reserved = reserved;
        if (f->log_on) {
            for (size_t i = 0; i < prune; i++)
                log_pop(f);
            if (log_push(f, seq, sizeof key + e->len) != RAVEL_OK)
                f->log_floor = seq; /* resumes before it answer resync */
            f->log_last = seq;
        }
        /* The buffer takes the block (an fevent at its start). */
        if (ring_push(f, e) == RAVEL_OK)
            s.b.data = NULL;
        else
            f->ring_floor = seq;
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->mu);
    rv_buf_free(&s.b);
}

static void state_of(rv_feed *f, ravel_changelog *out)
{
    memset(out, 0, sizeof *out);
    out->on = f->log_on;
    out->max_count = f->max_count;
    out->max_bytes = f->max_bytes;
    out->seq = f->last;
    out->floor = f->log_on && f->log_floor < f->ring_floor ? f->log_floor : f->ring_floor;
    out->records = f->log_len;
    out->bytes = f->log_bytes;
}

void rv_feed_changelog_get(rv_feed *f, ravel_changelog *out)
{
    pthread_mutex_lock(&f->mu);
    state_of(f, out);
    pthread_mutex_unlock(&f->mu);
}

int rv_feed_changelog_set(rv_feed *f, leveldb_t *db, const leveldb_writeoptions_t *wo,
                          const ravel_changelog *set)
{
    uint64_t max_count = set->max_count ? set->max_count : RV_CHANGELOG_COUNT;
    uint64_t max_bytes = set->max_bytes ? set->max_bytes : RV_CHANGELOG_BYTES;
    int on = set->on != 0;
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    pthread_mutex_lock(&f->mu);
    size_t drop = on ? log_excess(f, 0, max_count, max_bytes) : f->log_len;
    for (size_t i = 0; i < drop; i++) {
        char old[LOG_KEY_LEN];
        log_key(old, log_at(f, i)->seq);
        leveldb_writebatch_delete(wb, old, sizeof old);
    }
    char rec[FEED_REC_LEN];
    feed_record(rec, on, max_count, max_bytes, f->reserved);
    leveldb_writebatch_put(wb, FEED_KEY, FEED_KEY_LEN, rec, sizeof rec);
    char *err = NULL;
    leveldb_write(db, wo, wb, &err);
    int rc = RAVEL_OK;
    if (err) {
        rc = rv_err_leveldb(err);
    } else {
        for (size_t i = 0; i < drop; i++)
            log_pop(f);
        if (on && !f->log_on)
            f->log_floor = f->log_last = f->last; /* what came before was not logged */
        f->log_on = on;
        f->max_count = max_count;
        f->max_bytes = max_bytes;
        if (on)
            rv_feed_activate(f);
    }
    pthread_mutex_unlock(&f->mu);
    leveldb_writebatch_destroy(wb);
    return rc;
}

/* ---- watches ---- */

typedef struct fwatch {
    ravel_watch base;
    rv_feed *f;
    rv_range_copy range;
    uint64_t cursor;      /* the last number delivered (or resynced to) */
    char *cur;            /* the change being delivered: a record */
    size_t curlen, off;   /* where its next operation starts */
    uint32_t left;        /* operations of it not yet looked at */
    uint32_t in_range;    /* of those, in the range */
    uint64_t curseq;
} fwatch;

static const rv_watch_ops fwatch_ops;

int rv_feed_watch(rv_feed *f, const ravel_watch_options *o, ravel_watch **out)
{
    fwatch *w = rv_calloc(1, sizeof *w);
    if (!w)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    if (rv_range_copy_init(&w->range, o->range) != RAVEL_OK) {
        free(w);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    w->base.ops = &fwatch_ops;
    w->f = f;
    pthread_mutex_lock(&f->mu);
    f->refs++;
    w->cursor = o->has_from ? o->from : f->last;
    pthread_mutex_unlock(&f->mu);
    *out = &w->base;
    return RAVEL_OK;
}

/* Read operation at w->off of the current record. */
static int op_at(fwatch *w, int *type, const char **k, size_t *kl, const char **v, size_t *vl)
{
    if (w->curlen - w->off < 9)
        return -1;
    const char *p = w->cur + w->off;
    *type = (unsigned char)p[0];
    *kl = get_u32le(p + 1);
    *vl = get_u32le(p + 5);
    if (w->curlen - w->off - 9 < *kl + *vl)
        return -1;
    *k = p + 9;
    *v = p + 9 + *kl;
    w->off += 9 + *kl + *vl;
    return 0;
}

/* Take a record (owned) as the current change: count what is in range. */
static void take(fwatch *w, char *blob, size_t len, uint64_t seq)
{
    free(w->cur);
    w->cur = blob;
    w->curlen = len;
    w->curseq = seq;
    w->cursor = seq;
    w->off = HEAD_LEN;
    w->left = len >= HEAD_LEN ? get_u32le(blob + 9) : 0;
    w->in_range = 0;
    for (uint32_t i = 0; i < w->left; i++) {
        int type;
        const char *k, *v;
        size_t kl, vl;
        if (op_at(w, &type, &k, &kl, &v, &vl))
            break;
        w->in_range += rv_range_side(&w->range.r, k, kl) == 0;
    }
    w->off = HEAD_LEN;
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static int resync(fwatch *w, ravel_change *c)
{
    memset(c, 0, sizeof *c);
    c->type = RAVEL_CHANGE_RESYNC;
    c->resync_from = w->cursor;
    c->seq = w->f->last;
    c->last = 1;
    w->cursor = w->f->last;
    return RAVEL_OK;
}

static int fwatch_next(ravel_watch *base, ravel_change *c, int timeout_ms)
{
    fwatch *w = (fwatch *)base;
    rv_feed *f = w->f;
    struct timespec until;
    if (timeout_ms > 0)
        deadline_after(&until, timeout_ms);
    for (;;) {
        while (w->cur && w->left && w->in_range) {
            int type;
            const char *k, *v;
            size_t kl, vl;
            w->left--;
            if (op_at(w, &type, &k, &kl, &v, &vl)) {
                w->left = 0;
                break;
            }
            if (rv_range_side(&w->range.r, k, kl) != 0)
                continue;
            w->in_range--;
            *c = (ravel_change){.type = type, .seq = w->curseq, .key = k, .klen = kl,
                                .val = type == RAVEL_CHANGE_PUT ? v : NULL,
                                .vlen = type == RAVEL_CHANGE_PUT ? vl : 0,
                                .last = w->in_range == 0};
            return RAVEL_OK;
        }
        pthread_mutex_lock(&f->mu);
        if (f->closed) {
            pthread_mutex_unlock(&f->mu);
            return rv_err(RAVEL_ECLOSED, "the watch's handle was closed");
        }
        if (w->cursor > f->last) { /* a number this database never gave out */
            int rc = resync(w, c);
            pthread_mutex_unlock(&f->mu);
            return rc;
        }
        if (w->cursor < f->ring_floor) {
            if (!f->log_on || w->cursor < f->log_floor) {
                int rc = resync(w, c);
                pthread_mutex_unlock(&f->mu);
                return rc;
            }
            /* Behind the buffer but in the log: read it there, outside
             * the mutex (writers must not wait for our reads). */
            f->readers++;
            pthread_mutex_unlock(&f->mu);
            char *blob = NULL;
            size_t len = 0;
            uint64_t seq = 0;
            int rc = f->how.log_next(f->how.ud, w->cursor, &blob, &len, &seq);
            pthread_mutex_lock(&f->mu);
            if (--f->readers == 0 && f->closed)
                pthread_cond_broadcast(&f->cond);
            if (rc == RAVEL_OK && len >= HEAD_LEN && get_u64le(blob + 1) <= w->cursor) {
                pthread_mutex_unlock(&f->mu);
                take(w, blob, len, seq);
                continue;
            }
            free(blob);
            if (rc != RAVEL_OK && rc != RAVEL_END) {
                pthread_mutex_unlock(&f->mu);
                return rc;
            }
            if (rc == RAVEL_END && f->log_on && w->cursor >= f->log_floor) {
                /* Nothing logged after the cursor: no change came between
                 * it and the buffer (a new leader's buffer starts past the
                 * numbers the last one reserved). Unless one was logged
                 * since we looked: then read again. */
                if (f->log_last <= w->cursor && w->cursor < f->ring_floor)
                    w->cursor = f->ring_floor;
                pthread_mutex_unlock(&f->mu);
                continue;
            }
            /* Pruned meanwhile: the log no longer holds what follows. */
            rc = resync(w, c);
            pthread_mutex_unlock(&f->mu);
            return rc;
        }
        fevent *e = ring_after(f, w->cursor);
        if (e) {
            char *copy = rv_malloc(e->len);
            if (!copy) {
                pthread_mutex_unlock(&f->mu);
                return rv_err(RAVEL_ENOMEM, "out of memory");
            }
            memcpy(copy, e->blob, e->len);
            uint64_t seq = e->seq;
            size_t len = e->len;
            pthread_mutex_unlock(&f->mu);
            take(w, copy, len, seq);
            continue;
        }
        int rc = 0;
        if (timeout_ms == 0)
            rc = ETIMEDOUT;
        else if (timeout_ms < 0)
            pthread_cond_wait(&f->cond, &f->mu);
        else
            rc = pthread_cond_timedwait(&f->cond, &f->mu, &until);
        pthread_mutex_unlock(&f->mu);
        if (rc == ETIMEDOUT)
            return RAVEL_ETIMEDOUT;
    }
}

static void fwatch_free(ravel_watch *base)
{
    fwatch *w = (fwatch *)base;
    free(w->cur);
    rv_range_copy_free(&w->range);
    unref(w->f);
    free(w);
}

static uint64_t fwatch_position(ravel_watch *base)
{
    return ((fwatch *)base)->cursor;
}

static const rv_watch_ops fwatch_ops = {
    .next = fwatch_next,
    .free = fwatch_free,
    .position = fwatch_position,
};
