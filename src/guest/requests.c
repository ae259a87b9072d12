/* The remote handle's requests: an rv_req becomes a wire message queued on
 * the guest session, and the host's reply becomes the request's result,
 * handed to a synchronous caller on the thread that read it (under the
 * lock) or to an asynchronous caller's callback on the loop thread
 * (without it). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "guest/handle.h"
#include "util/alloc.h"

struct rreq {
    rv_greq g;        /* first: a finished rv_greq * is an rreq * */
    rv_reply_to to;
    size_t n;         /* RV_GET_MANY, RV_SIZES: how many were asked for */
    uint32_t snap;    /* RV_SNAPSHOT: its number */
    remote *r;        /* RV_SNAPSHOT: the handle that takes it */
    int status;
    char *errtext;    /* words for a failure, malloc'ed by describe() */
    rreq *next;       /* r->async_head list */
};

/* Words for a failed request: the code, and what the host replied or why
 * the stream ended. With the lock held. */
static void describe(const remote *r, rreq *q)
{
    const char *wire = NULL;
    if (q->g.reply && q->to.op == RV_GET_MANY)
        wire = ((Ravelwire__GetManyCallback *)q->g.reply)->error;
    else if (q->g.reply)
        wire = ((Ravelwire__Callback *)q->g.reply)->error;
    const char *detail =
        wire ? wire
             : (q->status == RAVEL_ECONNLOST || q->status == RAVEL_ETIMEDOUT) && r->why[0] ? r->why
                                                                                    : NULL;
    const char *more = rv_greq_detail(&q->g); /* the host's words, or the session's */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s%s%s%s", ravel_strerror(q->status), detail ? ": " : "",
             wire ? "host replied " : "", detail ? detail : "", more ? ": " : "",
             more ? more : "");
    free(q->errtext);
    q->errtext = rv_strdup(buf);
}

/* The result a reply carries, lent from it; for a GetMany the arrays
 * vals and lens are allocated here (free them after). RAVEL_OK, or
 * RAVEL_EPROTO with q->errtext set, or RAVEL_ENOMEM. */
static int result_of(rreq *q, rv_result *res, const char ***vals, size_t **lens)
{
    char buf[128];
    if (q->to.op == RV_GET || q->to.op == RV_PROPERTY) {
        Ravelwire__Callback *m = (Ravelwire__Callback *)q->g.reply;
        if (m && m->has_value) {
            res->val = (const char *)m->value.data;
            res->vlen = m->value.len;
        }
        return RAVEL_OK;
    }
    if (q->to.op == RV_SNAPSHOT) {
        ravel_snapshot *sn = rv_calloc(1, sizeof *sn);
        if (!sn)
            return RAVEL_ENOMEM;
        sn->owner = &q->r->base;
        sn->id = q->snap;
        sn->stream = q->g.stream;
        /* On the handle's list (finish runs under its lock for a
         * synchronous caller, the only kind). */
        sn->next = q->r->snaps;
        if (q->r->snaps)
            q->r->snaps->prev = sn;
        q->r->snaps = sn;
        res->snap = sn;
        return RAVEL_OK;
    }
    if (q->to.op == RV_SIZES) {
        Ravelwire__Callback *m = (Ravelwire__Callback *)q->g.reply;
        Ravelwire__Sizes *sz = m && m->has_value
                                   ? ravelwire__sizes__unpack(&rv_pb_allocator, m->value.len,
                                                              m->value.data)
                                   : NULL;
        if (!sz || sz->n_sizes != q->n) {
            snprintf(buf, sizeof buf, "%s: host answered %zu sizes for %zu ranges",
                     ravel_strerror(RAVEL_EPROTO), sz ? sz->n_sizes : 0, q->n);
            if (sz)
                ravelwire__sizes__free_unpacked(sz, &rv_pb_allocator);
            free(q->errtext);
            q->errtext = rv_strdup(buf);
            return RAVEL_EPROTO;
        }
        /* Kept in *lens (a size_t array), freed by the caller. */
        uint64_t *copy = rv_calloc(q->n + 1, sizeof *copy);
        if (copy && q->n)
            memcpy(copy, sz->sizes, q->n * sizeof *copy);
        ravelwire__sizes__free_unpacked(sz, &rv_pb_allocator);
        if (!copy)
            return RAVEL_ENOMEM;
        *lens = (size_t *)copy;
        res->n = q->n;
        res->sizes = copy;
        return RAVEL_OK;
    }
    if (q->to.op != RV_GET_MANY)
        return RAVEL_OK;
    Ravelwire__GetManyCallback *m = (Ravelwire__GetManyCallback *)q->g.reply;
    if (m->n_values != q->n) {
        snprintf(buf, sizeof buf, "%s: host answered %zu values for %zu keys",
                 ravel_strerror(RAVEL_EPROTO), m->n_values, q->n);
        free(q->errtext);
        q->errtext = rv_strdup(buf);
        return RAVEL_EPROTO;
    }
    *vals = rv_calloc(q->n + 1, sizeof **vals);
    *lens = rv_calloc(q->n + 1, sizeof **lens);
    if (!*vals || !*lens) {
        free(*vals);
        free(*lens);
        *vals = NULL;
        *lens = NULL;
        return RAVEL_ENOMEM;
    }
    for (size_t i = 0; i < q->n; i++) {
        if (m->values[i]->has_value) {
            (*vals)[i] = m->values[i]->value.data ? (const char *)m->values[i]->value.data : "";
            (*lens)[i] = m->values[i]->value.len;
        }
    }
    res->n = q->n;
    res->vals = *vals;
    res->vlens = *lens;
    return RAVEL_OK;
}

static void rreq_free(rreq *q)
{
    if (q->g.reply)
        protobuf_c_message_free_unpacked(q->g.reply, &rv_pb_allocator);
    rv_buf_free(&q->g.frame);
    free(q->errtext);
    free(q);
}

/* Complete q: its result (or failure) to its caller, then free it. For a
 * synchronous caller with the lock held; for an asynchronous one on the
 * loop thread without it. */
static void finish(rreq *q)
{
    rv_result res;
    const char **vals;
    size_t *lens;
    int st = q->status;
    memset(&res, 0, sizeof res);
    vals = NULL;
    lens = NULL;
    if (st == RAVEL_OK)
        st = result_of(q, &res, &vals, &lens);
    const char *msg = st == RAVEL_OK ? NULL : q->errtext;
    rv_sync *sync = q->to.sync;
    rv_complete(&q->to, st, msg, &res);
    if (sync)
        uv_cond_signal(&sync->cond);
    free(vals);
    free(lens);
    rreq_free(q);
}

void rv_remote_settle(remote *r)
{
    rv_greq *done = r->s.done;
    r->s.done = NULL;
    while (done) {
        rreq *q = (rreq *)done;
        done = done->done_next;
        q->status = q->g.status;
        if (q->status != RAVEL_OK)
            describe(r, q);
        if (q->to.sync) {
            finish(q);
        } else {
            q->next = NULL;
            if (r->async_tail)
                r->async_tail->next = q;
            else
                r->async_head = q;
            r->async_tail = q;
        }
    }
    for (rv_giter *g = r->s.notify; g;) {
        rv_giter *nx = g->notify_next;
        g->notified = 0;
        g->notify_next = NULL;
        rv_remote_iter_news(r, g);
        g = nx;
    }
    r->s.notify = NULL;
    rv_remote_nudge(r);
    if (!rv_remote_in_loop(r))
        rv_remote_kick(r, 0);
}

void rv_remote_settle_and_unlock(remote *r)
{
    rv_remote_ring_drain(r);
    rv_remote_settle(r);
    rreq *q = r->async_head;
    r->async_head = r->async_tail = NULL;
    rv_remote_flush(r);
    uv_mutex_unlock(&r->mu);
    while (q) {
        rreq *nx = q->next;
        finish(q);
        q = nx;
    }
    rv_remote_serve_ready(r);
}

#define BYTES(p, n) ((ProtobufCBinaryData){.len = (n), .data = (uint8_t *)(p)})

int rv_remote_wire_ro(remote *r, const ravel_readoptions *ro, rv_wire_ro *out,
                      uint64_t *snap_stream)
{
    memset(out, 0, sizeof *out);
    *snap_stream = 0;
    const ravel_snapshot *sn = ro->snapshot;
    if (sn) {
        if (sn->owner != &r->base)
            return rv_err(RAVEL_ESNAPSHOT, "the snapshot was taken through a leader that is gone");
        int rc = rv_gsession_snapshot_alive(&r->s, sn->stream);
        if (rc)
            return rc;
        out->has_snapshot = 1;
        out->snapshot = sn->id;
        *snap_stream = sn->stream;
    }
    out->verify_checksums = ro->verify_checksums != 0;
    out->no_fill_cache = !ro->fill_cache;
    return RAVEL_OK;
}
#define wire_ro rv_remote_wire_ro

/* Queue q's message on the session (a Batch straight from the batch). */
static int queue(remote *r, rreq *q, const rv_req *req)
{
    union {
        Ravelwire__Get get;
        Ravelwire__Put put;
        Ravelwire__Delete del;
        Ravelwire__GetMany get_many;
        Ravelwire__Clear clear;
        Ravelwire__SnapshotNew snap;
        Ravelwire__CompactRange compact;
        Ravelwire__Property prop;
        Ravelwire__ApproximateSizes sizes;
    } m;
    rv_wire_ro ro;
    Ravelwire__Clear__ClearOptions o;
    ProtobufCBinaryData *kb = NULL;
    int rc;
    /* A write with sync (its own, or the handle's sync option) needs a
     * host that honours it: never silently without. */
    int write = req->to.op == RV_PUT || req->to.op == RV_DEL || req->to.op == RV_WRITE ||
                req->to.op == RV_CLEAR;
    int sync = write && (req->sync || r->opts.sync);
    if (sync && req->to.op != RV_WRITE)
        q->g.needs |= RV_EXT_SYNC;
    if (req->ro && (rc = wire_ro(r, req->ro, &ro, &q->g.snap_stream)) != RAVEL_OK)
        return rc;
    if (req->ro)
        q->g.needs |= RV_EXT_SNAPSHOTS;
    switch (req->to.op) {
    case RV_GET:
        ravelwire__get__init(&m.get);
        m.get.key = BYTES(req->key, req->klen);
        if (req->ro) {
            m.get.has_snapshot = ro.has_snapshot;
            m.get.snapshot = ro.snapshot;
            m.get.has_verify_checksums = m.get.verify_checksums = ro.verify_checksums;
            m.get.has_fill_cache = ro.no_fill_cache;
        }
        return rv_gsession_submit(&r->s, &q->g, RV_IN_GET, &m.get.base, &m.get.id);
    case RV_PUT:
        ravelwire__put__init(&m.put);
        m.put.key = BYTES(req->key, req->klen);
        m.put.has_value = 1;
        m.put.value = BYTES(req->val, req->vlen);
        m.put.has_sync = m.put.sync = sync;
        return rv_gsession_submit(&r->s, &q->g, RV_IN_PUT, &m.put.base, &m.put.id);
    case RV_DEL:
        ravelwire__delete__init(&m.del);
        m.del.key = BYTES(req->key, req->klen);
        m.del.has_sync = m.del.sync = sync;
        return rv_gsession_submit(&r->s, &q->g, RV_IN_DEL, &m.del.base, &m.del.id);
    case RV_GET_MANY:
        kb = rv_malloc((req->n + 1) * sizeof *kb);
        if (!kb)
            return rv_err(RAVEL_ENOMEM, "out of memory");
        for (size_t i = 0; i < req->n; i++)
            kb[i] = BYTES(req->keys[i], req->klens[i]);
        ravelwire__get_many__init(&m.get_many);
        m.get_many.n_keys = req->n;
        m.get_many.keys = kb;
        if (req->ro) {
            m.get_many.has_snapshot = ro.has_snapshot;
            m.get_many.snapshot = ro.snapshot;
            m.get_many.has_verify_checksums = m.get_many.verify_checksums = ro.verify_checksums;
            m.get_many.has_fill_cache = ro.no_fill_cache;
        }
        rc = rv_gsession_submit(&r->s, &q->g, RV_IN_GET_MANY, &m.get_many.base, &m.get_many.id);
        free(kb);
        return rc;
    case RV_WRITE:
        q->g.sync = sync;
        return rv_gsession_submit_batch(&r->s, &q->g, req->batch);
    case RV_CLEAR:
        ravelwire__clear__init(&m.clear);
        ravelwire__clear__clear_options__init(&o);
#define BOUND(name)                                                   \
    if (req->range->has_##name) {                                    \
        o.has_##name = 1;                                            \
        o.name = BYTES(req->range->name.data, req->range->name.len); \
    }
        BOUND(gt) BOUND(gte) BOUND(lt) BOUND(lte)
#undef BOUND
        o.has_limit = 1;
        o.limit = req->range->limit < 0 || req->range->limit > INT32_MAX
                      ? -1
                      : (int32_t)req->range->limit;
        o.has_reverse = 1;
        o.reverse = req->range->reverse != 0;
        m.clear.options = &o;
        m.clear.has_sync = m.clear.sync = sync;
        return rv_gsession_submit(&r->s, &q->g, RV_IN_CLEAR, &m.clear.base, &m.clear.id);
    case RV_SNAPSHOT:
        q->g.needs |= RV_EXT_SNAPSHOTS;
        ravelwire__snapshot_new__init(&m.snap);
        if (++r->s.next_snap == 0)
            r->s.next_snap = 1;
        m.snap.snapshot = q->snap = r->s.next_snap;
        q->r = r;
        return rv_gsession_submit(&r->s, &q->g, RV_IN_SNAPSHOT_NEW, &m.snap.base, &m.snap.id);
    case RV_COMPACT:
        q->g.needs |= RV_EXT_MAINTENANCE;
        ravelwire__compact_range__init(&m.compact);
        if (req->start) {
            m.compact.has_start = 1;
            m.compact.start = BYTES(req->start->data, req->start->len);
        }
        if (req->limit) {
            m.compact.has_limit = 1;
            m.compact.limit = BYTES(req->limit->data, req->limit->len);
        }
        return rv_gsession_submit(&r->s, &q->g, RV_IN_COMPACT, &m.compact.base, &m.compact.id);
    case RV_PROPERTY:
        q->g.needs |= RV_EXT_MAINTENANCE;
        ravelwire__property__init(&m.prop);
        m.prop.name = (char *)req->name;
        return rv_gsession_submit(&r->s, &q->g, RV_IN_PROPERTY, &m.prop.base, &m.prop.id);
    case RV_SIZES: {
        q->g.needs |= RV_EXT_MAINTENANCE;
        Ravelwire__ApproximateSizes__Range *rs = rv_calloc(req->n + 1, sizeof *rs);
        Ravelwire__ApproximateSizes__Range **rp = rv_calloc(req->n + 1, sizeof *rp);
        if (!rs || !rp) {
            free(rs);
            free(rp);
            return rv_err(RAVEL_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < req->n; i++) {
            ravelwire__approximate_sizes__range__init(&rs[i]);
            rs[i].start = BYTES(req->keys[i], req->klens[i]);
            rs[i].limit = BYTES(req->limits[i], req->llens[i]);
            rp[i] = &rs[i];
        }
        ravelwire__approximate_sizes__init(&m.sizes);
        m.sizes.n_ranges = req->n;
        m.sizes.ranges = rp;
        rc = rv_gsession_submit(&r->s, &q->g, RV_IN_SIZES, &m.sizes.base, &m.sizes.id);
        free(rs);
        free(rp);
        return rc;
    }
    }
    return rv_err(RAVEL_ENOTSUP, "operation %d is not supported by a remote handle",
                  (int)req->to.op);
}

int rv_remote_submit(ravel_db *d, rv_req *req)
{
    remote *r = (remote *)d;
    rv_sync *sync = req->to.sync;
    if (sync && rv_remote_in_loop(r))
        return rv_err(RAVEL_EDEADLK, "synchronous call from a callback of the same handle");
    rreq *q = rv_calloc(1, sizeof *q);
    if (!q)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    q->to = req->to;
    q->n = req->n;
    req->via = d;
    if (sync)
        uv_cond_init(&sync->cond);
    uv_mutex_lock(&r->mu);
    int rc = r->life != RL_OPEN ? rv_err(RAVEL_ECLOSED, "the handle is closed") : queue(r, q, req);
    if (rc != RAVEL_OK) {
        rc = rv_remote_refused(r, rc);
        uv_mutex_unlock(&r->mu);
        if (sync)
            uv_cond_destroy(&sync->cond);
        rv_buf_free(&q->g.frame);
        free(q);
        return rc;
    }
    r->queued++;
    if (!sync && r->shm_state == RSHM_ON && r->state == RS_UP) {
        /* Into the ring at once, with the doorbell armed first so that the
         * answer wakes the loop unless a caller reads it. */
        if (!r->poller)
            atomic_store(&r->shm.rx.ctl->doorbell, 1);
        rv_remote_send_now(r);
    } else if (sync) {
        rv_remote_send_now(r);
    } else if (!(r->state == RS_UP && r->input == RI_WATCHED && r->s.reqs.len > r->queued)) {
        /* With an earlier request's answer still to come, the loop will
         * wake for it and send this one then, with whatever else queued
         * meanwhile: no wake-up of its own. */
        rv_remote_kick(r, RW_FLUSH);
    }
    uv_mutex_unlock(&r->mu);
    return RAVEL_OK;
}

void rv_remote_wait(ravel_db *d, rv_sync *sync)
{
    remote *r = (remote *)d;
    uv_mutex_lock(&r->mu);
    rv_remote_await(r, &sync->cond, &sync->done, 1);
    uv_mutex_unlock(&r->mu);
    uv_cond_destroy(&sync->cond);
}

void rv_remote_snapshot_release(ravel_db *d, ravel_snapshot *sn)
{
    remote *r = (remote *)d;
    uv_mutex_lock(&r->mu);
    if (sn->prev)
        sn->prev->next = sn->next;
    else
        r->snaps = sn->next;
    if (sn->next)
        sn->next->prev = sn->prev;
    if (r->life == RL_OPEN && rv_gsession_snapshot_release(&r->s, sn->id, sn->stream) == RAVEL_OK)
        rv_remote_kick(r, RW_FLUSH);
    uv_mutex_unlock(&r->mu);
    free(sn);
}
