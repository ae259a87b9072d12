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
    size_t n;         /* RV_GET_MANY: the number of keys asked for */
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
    if (q->to.op == RV_GET) {
        Ravelwire__Callback *m = (Ravelwire__Callback *)q->g.reply;
        if (m && m->has_value) {
            res->val = (const char *)m->value.data;
            res->vlen = m->value.len;
        }
        return RAVEL_OK;
    }
    if (q->to.op != RV_GET_MANY)
        return RAVEL_OK;
    Ravelwire__GetManyCallback *m = (Ravelwire__GetManyCallback *)q->g.reply;
    char buf[128];
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

/* Queue q's message on the session (a Batch straight from the batch). */
static int queue(remote *r, rreq *q, const rv_req *req)
{
    union {
        Ravelwire__Get get;
        Ravelwire__Put put;
        Ravelwire__Delete del;
        Ravelwire__GetMany get_many;
        Ravelwire__Clear clear;
    } m;
    Ravelwire__Clear__ClearOptions o;
    ProtobufCBinaryData *kb = NULL;
    int rc;
    /* A write with sync (its own, or the handle's sync option) needs a
     * host that honours it: never silently without. */
    int sync = req->to.op != RV_GET && req->to.op != RV_GET_MANY && (req->sync || r->opts.sync);
    if (sync && req->to.op != RV_WRITE)
        q->g.needs |= RV_EXT_SYNC;
    switch (req->to.op) {
    case RV_GET:
        ravelwire__get__init(&m.get);
        m.get.key = BYTES(req->key, req->klen);
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
    if (sync) {
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
