#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/reserved.h"
#include "error.h"
#include "transport/address.h"
#include "util/alloc.h"
#include "wire/gen1.h"

typedef struct hiter {
    uint32_t id, seq;
    ravel_iter *it;
    int keys, values;   /* what the guest wants on the wire */
    int64_t limit;      /* < 0: none */
    uint64_t consumed;  /* as acknowledged by the guest */
    uint64_t sent;      /* entries sent, counted against the limit */
    int pending_acks;   /* IteratorData messages not yet acknowledged */
    int ended;          /* IteratorEnd or IteratorError sent */
    int has_skip;       /* resuming: drop the first entry if it is `skip` */
    rv_buf skip;
} hiter;

int rv_hsession_init(rv_hsession *s, ravel_db *db, const ravel_host_options *opts)
{
    return rv_hsession_init_dialect(s, db, opts, RV_DIALECT_MANY);
}

int rv_hsession_init_dialect(rv_hsession *s, ravel_db *db, const ravel_host_options *opts,
                             int dialect)
{
    memset(s, 0, sizeof *s);
    s->dialect = dialect;
    s->db = db;
    s->opts = opts;
    rv_decoder_init(&s->dec, opts->max_frame);
    /* Exactly-once only where the handle remembers writes: a host of a
     * party or remote handle passes them on as its own. */
    s->ext_offered = db->ops->exactly_once ? RV_EXT_ALL : RV_EXT_ALL & ~RV_EXT_EXACTLY_ONCE;
    if (!db->ops->watch)
        s->ext_offered &= ~RV_EXT_WATCH;
    if (dialect == RV_DIALECT_GEN1) {
        s->ext_offered = 0; /* no Announce, no Hello: nothing to turn on */
        return RAVEL_OK;
    }
    return rv_encode_announce(&s->out, s->ext_offered);
}

int rv_hsession_offer_shm(rv_hsession *s)
{
    if (s->dialect == RV_DIALECT_GEN1)
        return RAVEL_OK;
    s->ext_offered |= RV_EXT_SHM;
    s->out.len = 0;
    return rv_encode_announce(&s->out, s->ext_offered);
}

static void hiter_free(hiter *h)
{
    ravel_iter_free(h->it);
    rv_buf_free(&h->skip);
    free(h);
}

void rv_hsession_free(rv_hsession *s)
{
    for (size_t i = 0; i < s->iters.cap; i++)
        if (s->iters.vals[i])
            hiter_free(s->iters.vals[i]);
    rv_idmap_free(&s->iters);
    rv_gen1_host_free(s);
    /* After the iterators, which may read them. */
    for (size_t i = 0; i < s->snaps.cap; i++)
        if (s->snaps.vals[i])
            ravel_snapshot_release(s->db, s->snaps.vals[i]);
    rv_idmap_free(&s->snaps);
    rv_range_copy_free(&s->watch_range);
    rv_decoder_free(&s->dec);
    rv_buf_free(&s->out);
    rv_buf_free(&s->batch.data);
    free(s->batch.ops);
    free(s->batch.checks);
    rv_buf_free(&s->group.data);
    free(s->group.ops);
    free(s->group.checks);
    free(s->group_ids);
}

int (*rv_hsession_fault_after_write)(void);

/* After a write reached the database: RAVEL_EIO if a test asks for the
 * reply to be lost. */
static int reply_lost(void)
{
    return rv_hsession_fault_after_write && rv_hsession_fault_after_write() ? RAVEL_EIO : 0;
}

/* The detail of a failure to put in a reply: only for a guest that turned
 * "error-messages" on, which is what keeps a Node guest's bytes as
 * many-level's. */
static const char *detail(const rv_hsession *s, const char *message)
{
    /* The first generation's errors are nothing but words. */
    if (s->dialect == RV_DIALECT_GEN1)
        return message;
    return s->ext_on & RV_EXT_ERROR_MESSAGES ? message : NULL;
}

/* The words of a failed call on the database, right after it. */
static const char *db_detail(const rv_hsession *s, int rc)
{
    return rc != RAVEL_OK && rc != RAVEL_ENOTFOUND ? detail(s, ravel_errmsg()) : NULL;
}

/* A hook refused a write: its words go to the log and, if the guest asked
 * for them, into the reply. */
static const char *rejected(const rv_hsession *s, const char *hook, const char *message)
{
    if (s->log) {
        char line[512];
        snprintf(line, sizeof line, "the %s hook rejected a write: %s", hook, message);
        s->log(s->log_ud, line);
    }
    return detail(s, message);
}

static int callback(rv_hsession *s, uint32_t id, int rc, const char *wire_error,
                    const char *message, const char *val, size_t vlen)
{
    /* Out of memory closes the connection instead of failing the request
     * for good: a retrying guest sends it again. */
    if (rc == RAVEL_ENOMEM)
        return rc;
    const char *error = wire_error ? wire_error : rc != RAVEL_OK ? rv_wire_error(rc) : NULL;
    if (s->dialect == RV_DIALECT_GEN1)
        return rv_encode_callback(&s->out, id, error ? rv_gen1_error_text(rc, message) : NULL,
                                  val, vlen);
    return rv_encode_callback_msg(&s->out, id, error, error ? message : NULL, val, vlen);
}

/* Get, Put and Delete come parsed by hand (rv_parse_keyed), answered with
 * rv_encode_callback: no protobuf-c message allocated or walked per
 * request, the host's hot path when a guest keeps many in flight. */
/* The read options a read names ("snapshots"; ignored for a guest that
 * did not turn it on): *out NULL for none. RAVEL_OK, or RAVEL_ESNAPSHOT
 * for a snapshot this connection does not hold. */
static int read_options(rv_hsession *s, const rv_wire_ro *w, ravel_readoptions *ro,
                        const ravel_readoptions **out)
{
    *out = NULL;
    if (!(s->ext_on & RV_EXT_SNAPSHOTS) || (!w->has_snapshot && !w->verify_checksums &&
                                            !w->no_fill_cache))
        return RAVEL_OK;
    ravel_readoptions_init(ro);
    ro->verify_checksums = w->verify_checksums;
    ro->fill_cache = !w->no_fill_cache;
    if (w->has_snapshot && !(ro->snapshot = rv_idmap_get(&s->snaps, w->snapshot)))
        return rv_err(RAVEL_ESNAPSHOT, "this connection holds no snapshot %u", w->snapshot);
    *out = ro;
    return RAVEL_OK;
}

#define WIRE_RO(m)                                                                \
    ((rv_wire_ro){.has_snapshot = (m)->has_snapshot, .snapshot = (m)->snapshot,   \
                  .verify_checksums = (m)->has_verify_checksums && (m)->verify_checksums, \
                  .no_fill_cache = (m)->has_fill_cache && !(m)->fill_cache})

static int on_get(rv_hsession *s, const rv_keyed *m)
{
    char *val = NULL;
    size_t vlen = 0;
    ravel_readoptions rbuf;
    const ravel_readoptions *ro;
    int rc = read_options(s, &m->ro, &rbuf, &ro);
    if (rc == RAVEL_OK)
        rc = ravel_get_opt(s->db, ro, m->key, m->key_len, &val, &vlen);
    int erc = callback(s, m->id, rc, NULL, db_detail(s, rc),
                       rc == RAVEL_OK ? (val ? val : "") : NULL, vlen);
    free(val);
    return erc;
}

/* Group commit: puts and dels that come back to back (a guest with many
 * writes in flight) go to the database as one batch — one LevelDB write,
 * one log append — and are answered, in order, when it is written. Any
 * other request, and the end of the bytes at hand, commits the group
 * first, so every request still sees the writes before it and replies
 * keep the order of requests. A group is atomic, which no caller can tell
 * from separate writes that all succeeded. Measured with a follower
 * keeping 64 puts in flight (W2, ravel-bench): see bench/RESULTS.md. */
static int group_commit(rv_hsession *s)
{
    size_t n = s->group.count;
    if (!n)
        return RAVEL_OK;
    int rc;
    if (s->has_writer) {
        rv_writer w = {s->producer, s->first, s->last, s->acked};
        rv_req req = {.to.op = RV_WRITE, .batch = &s->group, .sync = s->group_sync,
                      .writer = &w};
        rc = rv_run(s->db, &req);
    } else {
        ravel_writeoptions wo = {.sync = s->group_sync};
        rc = ravel_write_opt(s->db, &wo, &s->group);
    }
    const char *message = db_detail(s, rc);
    ravel_batch_clear(&s->group);
    s->group_sync = 0;
    s->has_writer = 0;
    if (reply_lost())
        return RAVEL_EIO;
    int erc = RAVEL_OK;
    for (size_t i = 0; i < n && erc == RAVEL_OK; i++)
        erc = callback(s, s->group_ids[i], rc, NULL, message, NULL, 0);
    return erc;
}

/* The exactly-once identity of a write, where the guest turned it on. */
static const rv_write_id *writer_of(const rv_hsession *s, const rv_write_id *wid)
{
    return s->ext_on & RV_EXT_EXACTLY_ONCE && wid->producer && wid->wseq ? wid : NULL;
}

static int group_add(rv_hsession *s, uint32_t id, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen, int sync, const rv_write_id *wid)
{
    /* A group is one guest's consecutive writes, or writes without an
     * identity: anything else starts a new one. */
    if (s->group.count &&
        (!wid != !s->has_writer ||
         (wid && (memcmp(wid->producer, s->producer, RV_PRODUCER_LEN) != 0 ||
                  wid->wseq != s->last + 1)))) {
        int rc = group_commit(s);
        if (rc != RAVEL_OK)
            return rc;
    }
    if (wid) {
        if (!s->group.count) {
            s->has_writer = 1;
            memcpy(s->producer, wid->producer, RV_PRODUCER_LEN);
            s->first = wid->wseq;
        }
        s->last = wid->wseq;
        s->acked = wid->acked;
    }
    if (s->group.count == s->group_cap) {
        size_t cap = s->group_cap ? s->group_cap * 2 : 64;
        uint32_t *ids = rv_realloc(s->group_ids, cap * sizeof *ids);
        if (!ids)
            return RAVEL_ENOMEM;
        s->group_ids = ids;
        s->group_cap = cap;
    }
    int rc = val ? ravel_batch_put(&s->group, key, klen, val, vlen)
                 : ravel_batch_del(&s->group, key, klen);
    if (rc != RAVEL_OK)
        return rc;
    s->group_ids[s->group.count - 1] = id;
    s->group_sync |= sync;
    if (s->group.count >= RV_GROUP_OPS || s->group.data.len >= RV_GROUP_BYTES)
        return group_commit(s);
    return RAVEL_OK;
}

/* Answer now, after the writes grouped before this request. message: the
 * words for a failure (NULL, or kept only after detail()). */
static int answer(rv_hsession *s, uint32_t id, int rc, const char *wire_error,
                  const char *message)
{
    int erc = group_commit(s);
    return erc != RAVEL_OK ? erc : callback(s, id, rc, wire_error, message, NULL, 0);
}

/* A write refused before it reached the database (a hook, a bad
 * argument): a guest with exactly-once must get this answer again if it
 * asks again, so the database remembers it. Then the answer. */
static int refuse(rv_hsession *s, uint32_t id, const rv_write_id *wid, int rc,
                  const char *wire_error, const char *words, const char *message)
{
    if (rc == RAVEL_ENOMEM)
        return rc; /* not an answer to remember: the connection closes, as in callback() */
    int erc = group_commit(s);
    if (erc != RAVEL_OK)
        return erc;
    if (wid) {
        rv_writer w = {wid->producer, wid->wseq, wid->wseq, wid->acked};
        rv_req req = {.to.op = RV_WRITE, .writer = &w, .refused = rc ? rc : RAVEL_EINVAL,
                      .refused_msg = words};
        int rrc = rv_run(s->db, &req);
        if (rrc == RAVEL_ENOMEM)
            return rrc;
        if (rrc != RAVEL_OK && rrc != req.refused) /* could not remember: say why */
            return callback(s, id, rrc, NULL, db_detail(s, rrc), NULL, 0);
    }
    return callback(s, id, rc, wire_error, message, NULL, 0);
}

static int on_put(rv_hsession *s, const rv_keyed *m)
{
    if (s->opts->readonly)
        return answer(s, m->id, RAVEL_EREADONLY, NULL, NULL);
    const rv_write_id *wid = writer_of(s, &m->wid);
    if (!m->has_value)
        return refuse(s, m->id, wid, 0, "LEVEL_INVALID_VALUE", "a put without a value",
                      detail(s, "a put without a value"));
    const char *no = s->opts->preput ? s->opts->preput(s->opts->hook_ud, (const char *)m->key,
                                                       m->key_len, (const char *)m->value,
                                                       m->value_len)
                                     : NULL;
    if (no)
        return refuse(s, m->id, wid, RAVEL_EREJECTED, NULL, no, rejected(s, "preput", no));
    if (rv_is_reserved(m->key, m->key_len)) {
        int rc = rv_err_reserved();
        char words[256];
        snprintf(words, sizeof words, "%s", ravel_errmsg());
        return refuse(s, m->id, wid, rc, NULL, words, detail(s, words));
    }
    return group_add(s, m->id, m->key, m->key_len, m->value, m->value_len, m->sync, wid);
}

static int on_del(rv_hsession *s, const rv_keyed *m)
{
    if (s->opts->readonly)
        return answer(s, m->id, RAVEL_EREADONLY, NULL, NULL);
    const rv_write_id *wid = writer_of(s, &m->wid);
    const char *no = s->opts->predel
                         ? s->opts->predel(s->opts->hook_ud, (const char *)m->key, m->key_len)
                         : NULL;
    if (no)
        return refuse(s, m->id, wid, RAVEL_EREJECTED, NULL, no, rejected(s, "predel", no));
    if (rv_is_reserved(m->key, m->key_len)) {
        int rc = rv_err_reserved();
        char words[256];
        snprintf(words, sizeof words, "%s", ravel_errmsg());
        return refuse(s, m->id, wid, rc, NULL, words, detail(s, words));
    }
    return group_add(s, m->id, m->key, m->key_len, NULL, 0, m->sync, wid);
}

typedef struct batch_ctx {
    ravel_batch *b;
    const char *wire_error, *message;
    int rc;
} batch_ctx;

static int batch_add(void *ud, const rv_batch_op_view *op)
{
    batch_ctx *c = ud;
    if (op->is_check) {
        c->rc = op->has_value ? ravel_batch_check(c->b, op->key, op->key_len, op->value,
                                                  op->value_len)
                              : ravel_batch_check_absent(c->b, op->key, op->key_len);
    } else if (op->type_len == 3 && memcmp(op->type, "put", 3) == 0) {
        if (!op->has_value) {
            c->wire_error = "LEVEL_INVALID_VALUE";
            c->message = "a batch put without a value";
            return 1;
        }
        c->rc = ravel_batch_put(c->b, op->key, op->key_len, op->value, op->value_len);
    } else if (op->type_len == 3 && memcmp(op->type, "del", 3) == 0) {
        c->rc = ravel_batch_del(c->b, op->key, op->key_len);
    } else {
        c->wire_error = "LEVEL_INVALID_VALUE";
        c->message = "a batch operation neither \"put\" nor \"del\"";
        return 1;
    }
    return c->rc != RAVEL_OK;
}

/* Batches are parsed by hand (rv_parse_batch), straight into a reused
 * ravel_batch: the hot path of bulk writes. */
static int on_batch(rv_hsession *s, const uint8_t *msg, size_t len)
{
    rv_batch_head head;
    ravel_batch_clear(&s->batch);
    batch_ctx c = {&s->batch, NULL, NULL, RAVEL_OK};
    int prc = rv_parse_batch(msg, len, &head, batch_add, &c);
    if (prc == RAVEL_EPROTO)
        return prc;
    uint32_t id = head.id;
    int rc = c.rc;
    if (s->opts->readonly)
        return callback(s, id, RAVEL_EREADONLY, NULL, NULL, NULL, 0);
    const rv_write_id *wid = writer_of(s, &head.wid);
    if (rc != RAVEL_OK || c.wire_error) {
        char words[256];
        snprintf(words, sizeof words, "%s", rc != RAVEL_OK ? ravel_errmsg() : c.message);
        return refuse(s, id, wid, rc, c.wire_error, words, rc != RAVEL_OK ? db_detail(s, rc)
                                                                           : detail(s, words));
    }
    const char *no = s->opts->prebatch ? s->opts->prebatch(s->opts->hook_ud, &s->batch) : NULL;
    if (no)
        return refuse(s, id, wid, RAVEL_EREJECTED, NULL, no, rejected(s, "prebatch", no));
    if (wid) {
        rv_writer w = {wid->producer, wid->wseq, wid->wseq, wid->acked};
        rv_req req = {.to.op = RV_WRITE, .batch = &s->batch, .sync = head.sync, .writer = &w};
        rc = rv_run(s->db, &req);
    } else {
        ravel_writeoptions wo = {.sync = head.sync};
        rc = ravel_write_opt(s->db, &wo, &s->batch);
    }
    if (reply_lost())
        return RAVEL_EIO;
    return callback(s, id, rc, NULL, db_detail(s, rc), NULL, 0);
}

#define COPY_BOUND(dst, src, name)                      \
    do {                                                \
        if ((src)->has_##name) {                        \
            (dst)->has_##name = 1;                      \
            (dst)->name.data = (src)->name.data;        \
            (dst)->name.len = (src)->name.len;          \
        }                                               \
    } while (0)

static int on_clear(rv_hsession *s, Ravelwire__Clear *m)
{
    if (s->opts->readonly)
        return callback(s, m->id, RAVEL_EREADONLY, NULL, NULL, NULL, 0);
    ravel_range r;
    ravel_range_init(&r);
    Ravelwire__Clear__ClearOptions *o = m->options;
    if (o) {
        COPY_BOUND(&r, o, gt);
        COPY_BOUND(&r, o, gte);
        COPY_BOUND(&r, o, lt);
        COPY_BOUND(&r, o, lte);
        if (o->has_limit)
            r.limit = o->limit;
        r.reverse = o->has_reverse && o->reverse;
    }
    int rc;
    rv_write_id mw = {m->has_producer && m->producer.len == RV_PRODUCER_LEN ? m->producer.data
                                                                           : NULL,
                      m->has_wseq ? m->wseq : 0, m->has_acked ? m->acked : 0};
    const rv_write_id *wid = writer_of(s, &mw);
    if (wid) {
        /* As ravel_clear does: the range without ravel's own records. */
        ravel_range copy;
        rv_writer w = {wid->producer, wid->wseq, wid->wseq, wid->acked};
        rv_req req = {.to.op = RV_CLEAR, .range = rv_range_visible(&r, &copy),
                      .sync = m->has_sync && m->sync, .writer = &w};
        rc = rv_run(s->db, &req);
    } else {
        ravel_writeoptions wo = {.sync = m->has_sync && m->sync};
        rc = ravel_clear_opt(s->db, &wo, &r);
    }
    if (reply_lost())
        return RAVEL_EIO;
    return callback(s, m->id, rc, NULL, db_detail(s, rc), NULL, 0);
}

static int on_get_many(rv_hsession *s, Ravelwire__GetMany *m)
{
    size_t n = m->n_keys;
    const void **keys = rv_malloc((n + 1) * sizeof *keys);
    size_t *klens = rv_malloc((n + 1) * sizeof *klens);
    char **vals = rv_calloc(n + 1, sizeof *vals);
    size_t *vlens = rv_calloc(n + 1, sizeof *vlens);
    Ravelwire__GetManyCallback__Value *values = rv_calloc(n + 1, sizeof *values);
    Ravelwire__GetManyCallback__Value **vptrs = rv_calloc(n + 1, sizeof *vptrs);
    int erc = RAVEL_ENOMEM;
    if (keys && klens && vals && vlens && values && vptrs) {
        for (size_t i = 0; i < n; i++) {
            keys[i] = m->keys[i].data;
            klens[i] = m->keys[i].len;
        }
        ravel_readoptions rbuf;
        const ravel_readoptions *ro;
        rv_wire_ro w = WIRE_RO(m);
        int rc = read_options(s, &w, &rbuf, &ro);
        if (rc == RAVEL_OK)
            rc = ravel_get_many_opt(s->db, ro, n, keys, klens, vals, vlens);
        Ravelwire__GetManyCallback reply = RAVELWIRE__GET_MANY_CALLBACK__INIT;
        reply.id = m->id;
        if (rc == RAVEL_ENOMEM) {
            erc = rc; /* as in callback() */
        } else if (rc != RAVEL_OK) {
            reply.error = (char *)rv_wire_error(rc);
            reply.message = (char *)db_detail(s, rc);
            if (s->dialect == RV_DIALECT_GEN1) {
                reply.error = (char *)rv_gen1_error_text(rc, reply.message);
                reply.message = NULL;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                Ravelwire__GetManyCallback__Value v = RAVELWIRE__GET_MANY_CALLBACK__VALUE__INIT;
                if (vals[i]) {
                    v.has_value = 1;
                    v.value.data = (uint8_t *)vals[i];
                    v.value.len = vlens[i];
                }
                values[i] = v;
                vptrs[i] = &values[i];
            }
            reply.n_values = n;
            reply.values = vptrs;
        }
        if (rc != RAVEL_ENOMEM)
            erc = rv_encode(&s->out, RV_OUT_GET_MANY_CB, &reply.base);
        for (size_t i = 0; i < n; i++)
            free(vals[i]);
    }
    free(keys);
    free(klens);
    free(vals);
    free(vlens);
    free(values);
    free(vptrs);
    return erc;
}

static int iter_end(rv_hsession *s, hiter *h)
{
    Ravelwire__IteratorEnd m = RAVELWIRE__ITERATOR_END__INIT;
    m.id = h->id;
    m.seq = h->seq;
    h->ended = 1;
    return rv_encode(&s->out, RV_OUT_ITER_END, &m.base);
}

/* Right after a failed call on the iterator (its words are ravel_errmsg). */
static int iter_error(rv_hsession *s, hiter *h, int rc)
{
    if (rc == RAVEL_ENOMEM)
        return rc; /* as in callback() */
    Ravelwire__IteratorError m = RAVELWIRE__ITERATOR_ERROR__INIT;
    m.id = h->id;
    m.seq = h->seq;
    m.error = (char *)rv_wire_error(rc);
    m.message = (char *)db_detail(s, rc);
    h->ended = 1;
    return rv_encode(&s->out, RV_OUT_ITER_ERROR, &m.base);
}

/* Send the next IteratorData (or the end): one entry when `first`, else
 * read-ahead batches while fewer than two are unacknowledged. */
static int iter_send(rv_hsession *s, hiter *h, int first)
{
    while (!h->ended && h->pending_acks < 2) {
        uint64_t size = RV_ITER_BATCH_ENTRIES;
        if (h->limit >= 0) {
            uint64_t left = (uint64_t)h->limit > h->sent ? (uint64_t)h->limit - h->sent : 0;
            if (left < size)
                size = left;
        }
        if (first && size > 1)
            size = 1;
        rv_iter_frame f;
        if (rv_iter_frame_begin(&f, &s->out))
            return RAVEL_ENOMEM;
        size_t n = 0, bytes = 0;
        int rc = RAVEL_OK;
        while (n < size && bytes < RV_ITER_BATCH_BYTES) {
            const char *k, *v;
            size_t kl, vl;
            rc = ravel_iter_next(h->it, &k, &kl, &v, &vl);
            if (rc != RAVEL_OK)
                break;
            if (h->has_skip) {
                h->has_skip = 0;
                if (rv_keycmp(k, kl, h->skip.data, h->skip.len) == 0)
                    continue;
            }
            if (h->keys && rv_iter_frame_add(&f, k, kl))
                return RAVEL_ENOMEM;
            if ((h->values || !h->keys) && rv_iter_frame_add(&f, v, vl))
                return RAVEL_ENOMEM;
            bytes += (h->keys ? kl : 0) + (h->values || !h->keys ? vl : 0);
            n++;
        }
        h->has_skip = 0;
        if (n == 0)
            s->out.len = f.start; /* no entries: an end or an error instead */
        if (rc != RAVEL_OK && rc != RAVEL_END && n == 0)
            return iter_error(s, h, rc);
        if (n == 0)
            return iter_end(s, h);
        rv_iter_frame_end(&f, h->id, h->seq);
        h->sent += n;
        h->pending_acks++;
        if (first)
            break;
    }
    return RAVEL_OK;
}

/* Position h after a seek (or at a resume point) and send the first reply. */
static int iter_seek(rv_hsession *s, hiter *h, const uint8_t *target, size_t len, int exclusive)
{
    int rc = ravel_iter_seek(h->it, target, len);
    if (rc != RAVEL_OK)
        return iter_error(s, h, rc);
    h->has_skip = exclusive;
    if (exclusive && rv_buf_set(&h->skip, target, len))
        return RAVEL_ENOMEM;
    return iter_send(s, h, 1);
}

static int on_iterator(rv_hsession *s, Ravelwire__Iterator *m)
{
    if (rv_idmap_get(&s->iters, m->id))
        return RAVEL_OK; /* id in use: ignored, as many-level does */
    if (s->iters.len >= s->opts->max_iterators) {
        char why[96];
        snprintf(why, sizeof why, "at most %zu iterators are open per connection",
                 s->opts->max_iterators);
        Ravelwire__IteratorError e = RAVELWIRE__ITERATOR_ERROR__INIT;
        e.id = m->id;
        e.seq = m->seq;
        e.error = (char *)rv_wire_error(RAVEL_ELIMIT);
        e.message = (char *)detail(s, why);
        return rv_encode(&s->out, RV_OUT_ITER_ERROR, &e.base);
    }
    Ravelwire__Iterator__Options *o = m->options;
    ravel_range r;
    ravel_range_init(&r);
    COPY_BOUND(&r, o, gt);
    COPY_BOUND(&r, o, gte);
    COPY_BOUND(&r, o, lt);
    COPY_BOUND(&r, o, lte);
    r.reverse = o->has_reverse && o->reverse;
    /* Keys are always read: a resume compares them with the bookmark. */
    r.keys = 1;
    r.values = o->has_values && o->values;
    hiter *h = rv_calloc(1, sizeof *h);
    if (!h || rv_idmap_put(&s->iters, m->id, h)) {
        free(h);
        return RAVEL_ENOMEM;
    }
    h->id = m->id;
    h->seq = m->seq;
    h->keys = o->has_keys && o->keys;
    h->values = r.values;
    h->limit = o->has_limit && o->limit >= 0 ? o->limit : -1;
    h->consumed = h->sent = m->consumed;
    ravel_readoptions rbuf;
    const ravel_readoptions *ro;
    rv_wire_ro w = WIRE_RO(m);
    int rc = read_options(s, &w, &rbuf, &ro);
    if (rc == RAVEL_OK)
        rc = ravel_iter_new_opt(s->db, ro, &r, &h->it);
    if (rc != RAVEL_OK)
        return iter_error(s, h, rc);
    if (m->has_seek)
        return iter_seek(s, h, m->seek.data, m->seek.len, 0);
    if (m->has_bookmark)
        /* Continue strictly after the bookmark in the iteration direction:
         * seek to it, then drop it if it is still there. Unlike adjusting
         * the target's bytes, this is exact for keys that extend the
         * bookmark and for the empty key. */
        return iter_seek(s, h, m->bookmark.data, m->bookmark.len, 1);
    return iter_send(s, h, 1);
}

static int on_iter_ack(rv_hsession *s, Ravelwire__IteratorAck *m)
{
    hiter *h = rv_idmap_get(&s->iters, m->id);
    if (!h || h->seq != m->seq)
        return RAVEL_OK;
    if (h->pending_acks > 0)
        h->pending_acks--;
    if (m->consumed > h->consumed)
        h->consumed = m->consumed;
    return iter_send(s, h, 0);
}

static int on_iter_seek(rv_hsession *s, Ravelwire__IteratorSeek *m)
{
    hiter *h = rv_idmap_get(&s->iters, m->id);
    if (!h)
        return RAVEL_OK;
    h->seq = m->seq;
    h->ended = 0;
    h->pending_acks = 0;
    h->sent = h->consumed;
    return iter_seek(s, h, m->target.data, m->target.len, 0);
}

static int on_iter_close(rv_hsession *s, Ravelwire__IteratorClose *m)
{
    hiter *h = rv_idmap_del(&s->iters, m->id);
    if (h)
        hiter_free(h);
    return RAVEL_OK;
}

/* The guest's Hello: turn on the extensions it names that we have. Only
 * a guest that saw our Announce sends one; a second is ignored. */
static int on_hello(rv_hsession *s, Ravelwire__Hello *m)
{
    if (s->hello_seen)
        return RAVEL_OK;
    s->hello_seen = 1;
    s->ext_on = rv_ext_from_names(m->extensions, m->n_extensions) & s->ext_offered;
    return RAVEL_OK;
}

/* ---- "snapshots" and "maintenance" ---- */

static int on_snapshot_new(rv_hsession *s, Ravelwire__SnapshotNew *m)
{
    if (rv_idmap_get(&s->snaps, m->snapshot))
        return answer(s, m->id, RAVEL_EINVAL, "LEVEL_INVALID_VALUE",
                      detail(s, "the snapshot number is in use on this connection"));
    if (s->snaps.len >= RV_HOST_MAX_SNAPSHOTS) {
        char why[80];
        snprintf(why, sizeof why, "at most %d snapshots are held per connection",
                 RV_HOST_MAX_SNAPSHOTS);
        return answer(s, m->id, RAVEL_ELIMIT, NULL, detail(s, why));
    }
    ravel_snapshot *snap;
    int rc = ravel_snapshot_create(s->db, &snap);
    if (rc == RAVEL_OK && rv_idmap_put(&s->snaps, m->snapshot, snap)) {
        ravel_snapshot_release(s->db, snap);
        return RAVEL_ENOMEM;
    }
    return answer(s, m->id, rc, NULL, db_detail(s, rc));
}

static int on_snapshot_release(rv_hsession *s, Ravelwire__SnapshotRelease *m)
{
    ravel_snapshot *snap = rv_idmap_del(&s->snaps, m->snapshot);
    ravel_snapshot_release(s->db, snap);
    return RAVEL_OK;
}

static int on_compact(rv_hsession *s, Ravelwire__CompactRange *m)
{
    if (s->opts->readonly)
        return answer(s, m->id, RAVEL_EREADONLY, NULL, NULL);
    int rc = ravel_compact_range(s->db, m->has_start ? (m->start.data ? m->start.data : (uint8_t *)"") : NULL,
                                 m->start.len,
                                 m->has_limit ? (m->limit.data ? m->limit.data : (uint8_t *)"") : NULL,
                                 m->limit.len);
    return answer(s, m->id, rc, NULL, db_detail(s, rc));
}

static int on_property(rv_hsession *s, Ravelwire__Property *m)
{
    char *val = NULL;
    int rc = ravel_property_value(s->db, m->name, &val);
    int erc = group_commit(s);
    if (erc == RAVEL_OK)
        erc = callback(s, m->id, rc, NULL, rc == RAVEL_OK ? NULL : detail(s, ravel_errmsg()),
                       rc == RAVEL_OK ? val : NULL, rc == RAVEL_OK ? strlen(val) : 0);
    free(val);
    return erc;
}

static int on_sizes(rv_hsession *s, Ravelwire__ApproximateSizes *m)
{
    size_t n = m->n_ranges;
    const void **starts = rv_malloc((n + 1) * sizeof *starts);
    const void **limits = rv_malloc((n + 1) * sizeof *limits);
    size_t *slens = rv_malloc((n + 1) * sizeof *slens);
    size_t *llens = rv_malloc((n + 1) * sizeof *llens);
    uint64_t *sizes = rv_calloc(n + 1, sizeof *sizes);
    int erc = RAVEL_ENOMEM;
    if (starts && limits && slens && llens && sizes) {
        for (size_t i = 0; i < n; i++) {
            starts[i] = m->ranges[i]->start.data ? m->ranges[i]->start.data : (uint8_t *)"";
            slens[i] = m->ranges[i]->start.len;
            limits[i] = m->ranges[i]->limit.data ? m->ranges[i]->limit.data : (uint8_t *)"";
            llens[i] = m->ranges[i]->limit.len;
        }
        int rc = ravel_approximate_sizes(s->db, n, starts, slens, limits, llens, sizes);
        if (rc == RAVEL_ENOMEM) {
            erc = rc;
        } else {
            Ravelwire__Sizes reply = RAVELWIRE__SIZES__INIT;
            reply.n_sizes = n;
            reply.sizes = sizes;
            size_t len = protobuf_c_message_get_packed_size(&reply.base);
            uint8_t *buf = rv_malloc(len + 1);
            if (buf) {
                protobuf_c_message_pack(&reply.base, buf);
                erc = callback(s, m->id, rc, NULL, db_detail(s, rc),
                               rc == RAVEL_OK ? (const char *)buf : NULL, len);
                free(buf);
            }
        }
    }
    free(starts);
    free(limits);
    free(slens);
    free(llens);
    free(sizes);
    return erc;
}

/* ---- extension "watch" ---- */

int rv_hsession_watch_event(rv_buf *out, uint32_t id, int rc, uint64_t seq,
                            const ravel_change *changes, size_t n, int has_resync,
                            uint64_t resync_from)
{
    Ravelwire__WatchEvent m = RAVELWIRE__WATCH_EVENT__INIT;
    m.id = id;
    if (rc != RAVEL_OK) {
        m.error = (char *)rv_wire_error(rc);
        m.message = (char *)ravel_errmsg();
        return rv_encode(out, RV_OUT_WATCH_EVENT, &m.base) ? RAVEL_ENOMEM : RAVEL_OK;
    }
    m.has_seq = 1;
    m.seq = seq;
    m.has_resync_from = has_resync;
    m.resync_from = resync_from;
    Ravelwire__WatchEvent__Change *cs = n ? rv_calloc(n, sizeof *cs) : NULL;
    Ravelwire__WatchEvent__Change **ps = n ? rv_calloc(n, sizeof *ps) : NULL;
    if (n && (!cs || !ps)) {
        free(cs);
        free(ps);
        return RAVEL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        Ravelwire__WatchEvent__Change c = RAVELWIRE__WATCH_EVENT__CHANGE__INIT;
        c.del = changes[i].type == RAVEL_CHANGE_DEL;
        c.key.data = (uint8_t *)changes[i].key;
        c.key.len = changes[i].klen;
        c.has_value = !c.del;
        c.value.data = (uint8_t *)changes[i].val;
        c.value.len = changes[i].vlen;
        cs[i] = c;
        ps[i] = &cs[i];
    }
    m.n_changes = n;
    m.changes = ps;
    int erc = rv_encode(out, RV_OUT_WATCH_EVENT, &m.base) ? RAVEL_ENOMEM : RAVEL_OK;
    free(cs);
    free(ps);
    return erc;
}

static int on_watch(rv_hsession *s, Ravelwire__Watch *m)
{
    if (!(s->ext_on & RV_EXT_WATCH) || s->watch_asked)
        return RAVEL_OK; /* not negotiated, or a second one: ignored */
    ravel_range r;
    ravel_range_init(&r);
    ProtobufCBinaryData *b[4] = {&m->gt, &m->gte, &m->lt, &m->lte};
    int has[4] = {m->has_gt, m->has_gte, m->has_lt, m->has_lte};
    ravel_bound *to[4] = {&r.gt, &r.gte, &r.lt, &r.lte};
    int *flag[4] = {&r.has_gt, &r.has_gte, &r.has_lt, &r.has_lte};
    for (int i = 0; i < 4; i++) {
        *flag[i] = has[i];
        to[i]->data = b[i]->data;
        to[i]->len = b[i]->len;
    }
    if (rv_range_copy_init(&s->watch_range, &r) != RAVEL_OK)
        return RAVEL_ENOMEM;
    s->watch_asked = 1;
    s->watch_id = m->id;
    s->watch_has_from = m->has_from;
    s->watch_from = m->from;
    return RAVEL_OK;
}

static int on_watch_ack(rv_hsession *s, Ravelwire__WatchAck *m)
{
    if (s->watch_asked && m->id == s->watch_id && m->frames > s->watch_acked)
        s->watch_acked = m->frames;
    return RAVEL_OK;
}

static int on_changelog(rv_hsession *s, Ravelwire__Changelog *m)
{
    if (!(s->ext_on & RV_EXT_WATCH))
        return RAVEL_OK;
    ravel_changelog set = {0}, st = {0};
    set.on = m->on;
    set.max_count = m->max_count;
    set.max_bytes = m->max_bytes;
    int rc = s->db->ops->changelog ? s->db->ops->changelog(s->db, m->set ? &set : NULL, &st)
                                   : rv_err(RAVEL_ENOTSUP, "this host has no change log");
    Ravelwire__ChangelogState r = RAVELWIRE__CHANGELOG_STATE__INIT;
    r.id = m->id;
    if (rc != RAVEL_OK) {
        r.error = (char *)rv_wire_error(rc);
        r.message = (char *)ravel_errmsg();
    } else {
        r.has_on = r.has_max_count = r.has_max_bytes = r.has_seq = r.has_floor = 1;
        r.has_records = r.has_bytes = 1;
        r.on = st.on;
        r.max_count = st.max_count;
        r.max_bytes = st.max_bytes;
        r.seq = st.seq;
        r.floor = st.floor;
        r.records = st.records;
        r.bytes = st.bytes;
    }
    return rv_encode(&s->out, RV_OUT_CHANGELOG_STATE, &r.base) ? RAVEL_ENOMEM : RAVEL_OK;
}

static int on_message(rv_hsession *s, const uint8_t *payload, size_t len);

static int on_frame(void *ud, const uint8_t *payload, size_t len)
{
    rv_hsession *s = ud;
    int rc = payload[0] == RV_IN_PUT || payload[0] == RV_IN_DEL ? RAVEL_OK : group_commit(s);
    if (rc != RAVEL_OK)
        return rc;
    uint8_t tag = payload[0];
    if (s->dialect == RV_DIALECT_GEN1 && (tag == RV_IN_ITERATOR || tag >= RV_GEN1_IN_COUNT)) {
        /* Its own Iterator; tags it does not know are ignored, as
         * multileveldown's host does (many-level's 7-9, ravel's Hello). */
        rc = tag == RV_IN_ITERATOR ? rv_gen1_host_iterator(s, payload, len) : RAVEL_OK;
    } else if (tag == RV_IN_GET || tag == RV_IN_PUT || tag == RV_IN_DEL) {
        rv_keyed m;
        rc = rv_parse_keyed(payload + 1, len - 1, tag, &m);
        if (rc == RAVEL_OK)
            rc = tag == RV_IN_GET ? on_get(s, &m) : tag == RV_IN_PUT ? on_put(s, &m) : on_del(s, &m);
    } else if (tag == RV_IN_BATCH) {
        rc = on_batch(s, payload + 1, len - 1);
    } else {
        rc = on_message(s, payload, len);
    }
    if (rc == RAVEL_OK && s->out.len >= RV_HOST_HIGH_WATER && s->flush && s->flush(s->flush_ud))
        rc = RAVEL_ECONNLOST;
    return rc;
}

static int on_message(rv_hsession *s, const uint8_t *payload, size_t len)
{
    int rc;
    ProtobufCMessage *msg = rv_unpack_in(payload, len, &rc);
    if (!msg)
        return rc; /* unknown tag: 0, ignored */
    switch (payload[0]) {
    case RV_IN_ITERATOR: rc = on_iterator(s, (Ravelwire__Iterator *)msg); break;
    case RV_IN_CLEAR: rc = on_clear(s, (Ravelwire__Clear *)msg); break;
    case RV_IN_GET_MANY: rc = on_get_many(s, (Ravelwire__GetMany *)msg); break;
    case RV_IN_ITER_CLOSE: rc = on_iter_close(s, (Ravelwire__IteratorClose *)msg); break;
    case RV_IN_ITER_ACK: rc = on_iter_ack(s, (Ravelwire__IteratorAck *)msg); break;
    case RV_IN_ITER_SEEK: rc = on_iter_seek(s, (Ravelwire__IteratorSeek *)msg); break;
    case RV_IN_HELLO: rc = on_hello(s, (Ravelwire__Hello *)msg); break;
    case RV_IN_WATCH: rc = on_watch(s, (Ravelwire__Watch *)msg); break;
    case RV_IN_WATCH_ACK: rc = on_watch_ack(s, (Ravelwire__WatchAck *)msg); break;
    case RV_IN_CHANGELOG: rc = on_changelog(s, (Ravelwire__Changelog *)msg); break;
    case RV_IN_SHM_OFFER:
        if (s->ext_on & RV_EXT_SHM)
            s->shm_asked = 1;
        break;
    }
    /* The extensions' messages, from a guest that turned them on (to any
     * other they are unknown, and ignored). */
    if (s->ext_on & RV_EXT_SNAPSHOTS) {
        if (payload[0] == RV_IN_SNAPSHOT_NEW)
            rc = on_snapshot_new(s, (Ravelwire__SnapshotNew *)msg);
        else if (payload[0] == RV_IN_SNAPSHOT_RELEASE)
            rc = on_snapshot_release(s, (Ravelwire__SnapshotRelease *)msg);
    }
    if (s->ext_on & RV_EXT_MAINTENANCE) {
        if (payload[0] == RV_IN_COMPACT)
            rc = on_compact(s, (Ravelwire__CompactRange *)msg);
        else if (payload[0] == RV_IN_PROPERTY)
            rc = on_property(s, (Ravelwire__Property *)msg);
        else if (payload[0] == RV_IN_SIZES)
            rc = on_sizes(s, (Ravelwire__ApproximateSizes *)msg);
    }
    protobuf_c_message_free_unpacked(msg, &rv_pb_allocator);
    return rc;
}

int rv_hsession_feed(rv_hsession *s, const uint8_t *p, size_t n)
{
    int rc = rv_decoder_feed(&s->dec, p, n, on_frame, s);
    /* The writes grouped so far are answered even before a bad frame. */
    int crc = group_commit(s);
    return rc != RAVEL_OK ? rc : crc;
}
