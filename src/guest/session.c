#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "transport/address.h"
#include "util/alloc.h"
#include "wire/gen1.h"

/* One IteratorData: its bytes, and (offset, length) of each item. */
struct rv_gqueue_node {
    uint8_t *bytes;
    size_t *items;
    size_t n;    /* items */
    size_t next; /* index of the next item to hand out */
    rv_gqueue_node *next_node;
};

static void node_free(rv_gqueue_node *n)
{
    free(n->bytes);
    free(n->items);
    free(n);
}

void rv_gsession_init(rv_gsession *s, int retry, size_t max_frame, size_t max_pending)
{
    memset(s, 0, sizeof *s);
    s->retry = retry;
    s->max_frame = max_frame ? max_frame : RV_DEFAULT_MAX_FRAME;
    s->max_pending = max_pending ? max_pending : 100000;
    s->state = RV_STREAM_NEVER;
    /* "watch" travels on streams of its own (guest/watch.c), never this one. */
    s->ext_wanted = RV_EXT_ALL & ~RV_EXT_WATCH;
    s->host = RV_HOST_UNKNOWN;
    rv_decoder_init(&s->dec, max_frame);
    /* Unique among the guests a host will ever see: random. */
    if (getrandom(s->producer, sizeof s->producer, 0) != (ssize_t)sizeof s->producer) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t mix[2] = {(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
                           ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s};
        memcpy(s->producer, mix, sizeof s->producer);
    }
}

void rv_gsession_free(rv_gsession *s)
{
    rv_idmap_free(&s->reqs);
    rv_idmap_free(&s->iters);
    rv_decoder_free(&s->dec);
    rv_buf_free(&s->out);
}

static uint32_t new_id(rv_gsession *s, const rv_idmap *m)
{
    /* Ids only grow (wrapping past 2^32), so a late reply for a finished
     * request or closed iterator cannot be mistaken for a newer one. */
    do {
        if (++s->next_id == 0)
            s->next_id = 1;
    } while (rv_idmap_get(m, s->next_id));
    return s->next_id;
}

static void complete(rv_gsession *s, rv_greq *r, int status, ProtobufCMessage *reply)
{
    if (r->held) {
        r->held = 0;
        s->held--;
    }
    if (r->prev)
        r->prev->next = r->next;
    else
        s->pending_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        s->pending_tail = r->prev;
    r->status = status;
    r->reply = reply;
    r->stream = s->stream;
    r->done_next = s->done;
    s->done = r;
}

/* The checks every request passes before it is queued. */
static int can_submit(rv_gsession *s)
{
    if (s->closed)
        return rv_err(RAVEL_ECLOSED, "the handle is closed");
    if (s->state == RV_STREAM_LOST && !s->retry && !s->queue_when_lost)
        return rv_err(RAVEL_ECONNLOST, "the connection to the host was lost (retry is off)");
    if (s->gave_up && s->state != RV_STREAM_UP)
        return rv_err(s->gave_up, "no connection to the host within the connect timeout");
    if (s->reqs.len + s->iters.len >= s->max_pending)
        return rv_err(RAVEL_ELIMIT, "%zu requests and iterators are pending already",
                      s->max_pending);
    return RAVEL_OK;
}

static int send_open(rv_gsession *s, rv_giter *it);
static void notify(rv_gsession *s, rv_giter *it);

/* ---- extensions ---- */

/* Words for needs that the current host (known by now) cannot meet, into
 * buf. */
static void say_missing(const rv_gsession *s, uint32_t needs, char *buf, size_t cap)
{
    uint32_t lack = needs & ~s->ext_on;
    uint32_t bit = lack & -lack;
    const char *name = rv_ext_name(bit);
    char unknown[32];
    if (!name) {
        snprintf(unknown, sizeof unknown, "bit 0x%x", (unsigned)bit);
        name = unknown;
    }
    if (s->host == RV_HOST_PLAIN)
        snprintf(buf, cap, "the host announced no extensions (a many-level host); "
                           "missing extension \"%s\"", name);
    else if (s->host_ext & bit)
        snprintf(buf, cap, "this guest does not use extension \"%s\"", name);
    else
        snprintf(buf, cap, "the host does not offer extension \"%s\"", name);
}

/* Before a request is encoded: refuse one the known host cannot serve. */
static int ext_gate(rv_gsession *s, const rv_greq *r)
{
    if (!r->needs || s->host == RV_HOST_UNKNOWN || !(r->needs & ~s->ext_on))
        return RAVEL_OK;
    char why[sizeof r->note];
    say_missing(s, r->needs, why, sizeof why);
    return rv_err(RAVEL_ENOTSUP, "%s", why);
}

/* Requests awaiting a reply on this stream, the probe aside. */
static size_t in_flight(const rv_gsession *s)
{
    return s->reqs.len - s->held - (rv_idmap_get(&s->reqs, s->probe.id) == &s->probe);
}

/* Requests wait to learn the host and nothing else will make it answer:
 * ask it something harmless (every host answers GetMany; a ravel host's
 * Announce comes before the answer, a many-level host has none). */
static int maybe_probe(rv_gsession *s)
{
    if (s->state != RV_STREAM_UP || s->host != RV_HOST_UNKNOWN || (!s->held && !s->held_iters) ||
        s->probed || in_flight(s))
        return RAVEL_OK;
    Ravelwire__GetMany m = RAVELWIRE__GET_MANY__INIT;
    m.id = new_id(s, &s->reqs);
    s->probe.id = m.id;
    s->probe.reply_tag = RV_OUT_GET_MANY_CB;
    if (rv_idmap_put(&s->reqs, m.id, &s->probe))
        return RAVEL_ENOMEM;
    if (rv_encode(&s->out, RV_IN_GET_MANY, &m.base)) {
        rv_idmap_del(&s->reqs, m.id);
        return RAVEL_ENOMEM;
    }
    s->probed = 1;
    return RAVEL_OK;
}

/* What the host may forget: every write numbered up to here has been
 * answered (the oldest write still pending, less one). */
static uint64_t acked(const rv_gsession *s)
{
    for (const rv_greq *r = s->pending_head; r; r = r->next)
        if (r->wseq)
            return r->wseq - 1;
    return s->last_wseq;
}

/* Put r on the stream: its frame as made, or, for a write to a host with
 * "exactly-once" on, the same message with its identity (fields 64-66)
 * appended. 0 or -1 when out of memory. */
static int send_req(rv_gsession *s, const rv_greq *r)
{
    if (!r->wseq || !(s->ext_on & RV_EXT_EXACTLY_ONCE))
        return rv_buf_append(&s->out, r->frame.data, r->frame.len);
    const uint8_t *f = (const uint8_t *)r->frame.data;
    uint64_t len = 0;
    size_t hl = 0;
    for (unsigned shift = 0; hl < r->frame.len; shift += 7) {
        len |= (uint64_t)(f[hl] & 0x7f) << shift;
        if (!(f[hl++] & 0x80))
            break;
    }
    uint8_t id[RV_WRITE_ID_MAX];
    size_t il = rv_put_write_id(id, s->producer, r->wseq, acked(s));
    uint8_t head[10];
    size_t nh = rv_varint_put(head, len + il);
    if (rv_buf_reserve(&s->out, nh + (size_t)len + il))
        return -1;
    rv_buf_append(&s->out, head, nh);
    rv_buf_append(&s->out, f + hl, (size_t)len);
    rv_buf_append(&s->out, id, il);
    return 0;
}

/* Does r wait until the stream's host is known? One that needs an
 * extension, a write when this guest wants exactly-once (it carries its
 * identity to a host that takes it), and everything after a waiting one,
 * so the host still sees requests in the order they were made. */
static int must_wait(const rv_gsession *s, const rv_greq *r)
{
    return s->host == RV_HOST_UNKNOWN &&
           (r->needs || s->held || (r->wseq && (s->ext_wanted & RV_EXT_EXACTLY_ONCE)));
}

/* The host is known now: send the waiting requests it can serve, in the
 * order they came, and fail the others. */
static int release_held(rv_gsession *s)
{
    rv_greq *next;
    for (rv_greq *r = s->pending_head; r && s->held; r = next) {
        next = r->next;
        if (!r->held)
            continue;
        if (r->needs & ~s->ext_on) {
            say_missing(s, r->needs, r->note, sizeof r->note);
            rv_idmap_del(&s->reqs, r->id);
            complete(s, r, RAVEL_ENOTSUP, NULL);
            continue;
        }
        if (send_req(s, r))
            return RAVEL_ENOMEM; /* the stream is dropped; resent on the next */
        r->held = 0;
        s->held--;
    }
    /* Iterators opened behind them, after them. */
    s->held_iters = 0;
    for (rv_giter *it = s->iter_head; it; it = it->next) {
        if (!it->open_held)
            continue;
        it->open_held = 0;
        if (it->needs & ~s->ext_on) {
            char why[sizeof ((rv_greq *)0)->note];
            say_missing(s, it->needs, why, sizeof why);
            it->error = RAVEL_ENOTSUP;
            if (rv_buf_set(&it->error_msg, why, strlen(why)))
                return RAVEL_ENOMEM;
            notify(s, it);
            continue;
        }
        if (send_open(s, it))
            return RAVEL_ENOMEM;
    }
    return RAVEL_OK;
}

/* A reply came with no Announce before it: a host without extensions. */
static void host_is_plain(rv_gsession *s)
{
    s->host = RV_HOST_PLAIN;
    release_held(s); /* fails every one of them: nothing to append */
}

static int on_announce(rv_gsession *s, const Ravelwire__Announce *m)
{
    if (s->host != RV_HOST_UNKNOWN)
        return RAVEL_OK; /* not the stream's first frame: ignored */
    s->host = RV_HOST_RAVEL;
    s->host_version = m->version;
    s->host_ext = rv_ext_from_names(m->extensions, m->n_extensions);
    s->ext_on = s->host_ext & s->ext_wanted;
    if (rv_encode_hello(&s->out, s->ext_on))
        return RAVEL_ENOMEM;
    if (s->ext_on & RV_EXT_SHM) {
        s->shm_wanted_now = 1;
        s->shm_cut = s->out.len;
    }
    return release_held(s);
}

/* What the stream's host announced is forgotten with the stream. */
static void forget_host(rv_gsession *s)
{
    s->host = RV_HOST_UNKNOWN;
    s->host_version = 0;
    s->host_ext = s->ext_on = 0;
    s->shm_wanted_now = s->shm_ready = 0;
    s->shm_cut = 0;
    s->probed = 0;
    if (rv_idmap_get(&s->reqs, s->probe.id) == &s->probe)
        rv_idmap_del(&s->reqs, s->probe.id);
}

const char *rv_greq_detail(const rv_greq *r)
{
    if (r->note[0])
        return r->note;
    if (!r->reply)
        return NULL;
    if (r->reply->descriptor == &ravelwire__callback__descriptor) {
        const Ravelwire__Callback *m = (const Ravelwire__Callback *)r->reply;
        /* A first-generation host's error is its words, not a code. */
        return m->message                                          ? m->message
               : m->error && strncmp(m->error, "LEVEL_", 6) != 0 ? m->error
                                                                  : NULL;
    }
    if (r->reply->descriptor == &ravelwire__get_many_callback__descriptor)
        return ((const Ravelwire__GetManyCallback *)r->reply)->message;
    return NULL;
}

static int frame_too_big(const rv_gsession *s, size_t size)
{
    return rv_err(RAVEL_ETOOBIG, "the request needs a %zu-byte frame; the limit is %zu", size,
                  s->max_frame);
}

/* r->frame holds the request: make it pending and send it if a stream is
 * up. */
static int enqueue(rv_gsession *s, rv_greq *r, uint8_t tag)
{
    r->reply_tag = tag == RV_IN_GET_MANY ? RV_OUT_GET_MANY_CB : RV_OUT_CALLBACK;
    r->reply = NULL;
    r->held = 0;
    r->note[0] = '\0';
    if (rv_idmap_put(&s->reqs, r->id, r)) {
        rv_buf_free(&r->frame);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    r->prev = s->pending_tail;
    r->next = NULL;
    if (s->pending_tail)
        s->pending_tail->next = r;
    else
        s->pending_head = r;
    s->pending_tail = r;
    r->wseq = tag == RV_IN_PUT || tag == RV_IN_DEL || tag == RV_IN_BATCH || tag == RV_IN_CLEAR
                  ? ++s->last_wseq
                  : 0;
    if (must_wait(s, r)) {
        /* ext_gate let it through: it waits until the host is known. */
        r->held = 1;
        s->held++;
    }
    if (r->held ? maybe_probe(s) != RAVEL_OK
                : s->state == RV_STREAM_UP && send_req(s, r)) {
        rv_idmap_del(&s->reqs, r->id);
        complete(s, r, RAVEL_ENOMEM, NULL);
        s->done = r->done_next;
        rv_buf_free(&r->frame);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    return RAVEL_OK;
}

int rv_gsession_submit(rv_gsession *s, rv_greq *r, uint8_t tag, ProtobufCMessage *msg,
                       uint32_t *id_field)
{
    int rc = can_submit(s);
    if (rc == RAVEL_OK)
        rc = ext_gate(s, r);
    if (rc != RAVEL_OK)
        return rc;
    /* The id first: its varint is part of the size. */
    r->id = *id_field = new_id(s, &s->reqs);
    size_t packed = protobuf_c_message_get_packed_size(msg);
    if (packed + 1 > s->max_frame)
        return frame_too_big(s, packed + 1);
    r->frame.len = 0;
    if (rv_encode_sized(&r->frame, tag, msg, packed)) {
        rv_buf_free(&r->frame);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    return enqueue(s, r, tag);
}

static size_t batch_op_len(int type, size_t klen, size_t vlen)
{
    return 5 /* type */ + 1 + rv_varint_len(klen) + klen +
           (type == RV_OP_PUT ? 1 + rv_varint_len(vlen) + vlen : 0);
}

static uint8_t *put_field(uint8_t *p, uint8_t key, const void *data, size_t len)
{
    *p++ = key;
    p += rv_varint_put(p, len);
    if (len)
        memcpy(p, data, len);
    return p + len;
}

static size_t check_len(int type, size_t klen, size_t vlen)
{
    return 1 + rv_varint_len(klen) + klen +
           (type == RV_OP_CHECK ? 1 + rv_varint_len(vlen) + vlen : 0);
}

int rv_gsession_submit_batch(rv_gsession *s, rv_greq *r, const ravel_batch *b)
{
    if (b->nchecks)
        r->needs |= RV_EXT_CONDITIONAL;
    if (r->sync)
        r->needs |= RV_EXT_SYNC;
    int rc = can_submit(s);
    if (rc == RAVEL_OK)
        rc = ext_gate(s, r);
    if (rc != RAVEL_OK)
        return rc;
    int type;
    const char *k, *v;
    size_t kl, vl;
    size_t body = 0;
    for (size_t i = 0; i < b->count; i++) {
        rv_batch_op(b, i, &type, &k, &kl, &v, &vl);
        size_t n = batch_op_len(type, kl, vl);
        body += 1 + rv_varint_len(n) + n;
    }
    if (r->sync)
        body += 3; /* field 67, varint 1 */
    for (size_t i = 0; i < b->nchecks; i++) {
        rv_batch_check_at(b, i, &type, &k, &kl, &v, &vl);
        size_t n = check_len(type, kl, vl);
        body += 2 + rv_varint_len(n) + n;
    }
    r->id = new_id(s, &s->reqs);
    size_t size = 1 + 1 + rv_varint_len(r->id) + body;
    if (size > s->max_frame)
        return frame_too_big(s, size);
    r->frame.len = 0;
    if (rv_buf_reserve(&r->frame, size + 10)) {
        rv_buf_free(&r->frame);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    /* As protobuf-c packs it: fields in number order, id first. */
    uint8_t *p = (uint8_t *)r->frame.data;
    p += rv_varint_put(p, size);
    *p++ = RV_IN_BATCH;
    *p++ = 0x08; /* field 1, varint */
    p += rv_varint_put(p, r->id);
    for (size_t i = 0; i < b->count; i++) {
        rv_batch_op(b, i, &type, &k, &kl, &v, &vl);
        *p++ = 0x12; /* field 2: an Operation */
        p += rv_varint_put(p, batch_op_len(type, kl, vl));
        p = put_field(p, 0x0a, type == RV_OP_PUT ? "put" : "del", 3);
        p = put_field(p, 0x12, k, kl);
        if (type == RV_OP_PUT)
            p = put_field(p, 0x1a, v, vl);
    }
    if (r->sync) {
        *p++ = 0x98; /* field 67, varint */
        *p++ = 0x04;
        *p++ = 0x01;
    }
    for (size_t i = 0; i < b->nchecks; i++) {
        rv_batch_check_at(b, i, &type, &k, &kl, &v, &vl);
        *p++ = 0xa2; /* field 68: a Check */
        *p++ = 0x04;
        p += rv_varint_put(p, check_len(type, kl, vl));
        p = put_field(p, 0x0a, k, kl);
        if (type == RV_OP_CHECK)
            p = put_field(p, 0x12, v, vl);
    }
    r->frame.len = (size_t)(p - (uint8_t *)r->frame.data);
    return enqueue(s, r, RV_IN_BATCH);
}

/* ---- iterators ---- */

static void notify(rv_gsession *s, rv_giter *it)
{
    if (it->notified)
        return;
    it->notified = 1;
    it->notify_next = s->notify;
    s->notify = it;
}

static void drop_queue(rv_giter *it)
{
    while (it->head) {
        rv_gqueue_node *n = it->head;
        it->head = n->next_node;
        node_free(n);
    }
    it->tail = NULL;
}

#define SET_BOUND(o, r, name)                              \
    do {                                                   \
        if ((r)->has_##name) {                             \
            (o)->has_##name = 1;                           \
            (o)->name.data = (uint8_t *)(r)->name.data;    \
            (o)->name.len = (r)->name.len;                 \
        }                                                  \
    } while (0)

/* The Iterator message that opens it, or resumes it on a new stream. */
static int gen1_send_open(rv_gsession *s, rv_giter *it);

static int send_open(rv_gsession *s, rv_giter *it)
{
    if (s->dialect == RV_DIALECT_GEN1)
        return gen1_send_open(s, it);
    const ravel_range *r = &it->range.r;
    Ravelwire__Iterator__Options o = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    o.has_keys = o.has_values = o.has_limit = o.has_reverse = 1;
    o.keys = it->wire_keys;
    o.values = it->wire_values;
    SET_BOUND(&o, r, gt);
    SET_BOUND(&o, r, gte);
    SET_BOUND(&o, r, lt);
    SET_BOUND(&o, r, lte);
    o.limit = r->limit < 0 || r->limit > INT32_MAX ? -1 : (int32_t)r->limit;
    o.reverse = r->reverse != 0;
    Ravelwire__Iterator m = RAVELWIRE__ITERATOR__INIT;
    m.id = it->id;
    m.seq = it->seq;
    m.options = &o;
    m.consumed = it->consumed;
    if (it->has_seek) {
        m.has_seek = 1;
        m.seek.data = (uint8_t *)it->seek.data;
        m.seek.len = it->seek.len;
    } else if (it->has_bookmark) {
        m.has_bookmark = 1;
        m.bookmark.data = (uint8_t *)it->cur_key.data;
        m.bookmark.len = it->cur_key.len;
    }
    if (it->needs) { /* read options ("snapshots"): the host has them */
        m.has_snapshot = it->ro.has_snapshot;
        m.snapshot = it->ro.snapshot;
        m.has_verify_checksums = m.verify_checksums = it->ro.verify_checksums;
        m.has_fill_cache = it->ro.no_fill_cache;
        m.fill_cache = 0;
    }
    return rv_encode(&s->out, RV_IN_ITERATOR, &m.base);
}

int rv_giter_open(rv_gsession *s, rv_giter *it, const ravel_range *r)
{
    if (s->closed)
        return rv_err(RAVEL_ECLOSED, "the handle is closed");
    if (s->state == RV_STREAM_LOST && !s->retry && !s->queue_when_lost)
        return rv_err(RAVEL_ECONNLOST, "the connection to the host was lost (retry is off)");
    if (s->gave_up && s->state != RV_STREAM_UP)
        return rv_err(s->gave_up, "no connection to the host within the connect timeout");
    if (s->reqs.len + s->iters.len >= s->max_pending)
        return rv_err(RAVEL_ELIMIT, "%zu requests and iterators are pending already",
                      s->max_pending);
    int rc = rv_range_copy_init(&it->range, r);
    if (rc)
        return rc;
    it->user_keys = r->keys != 0;
    it->user_values = r->values != 0;
    /* With retry the host must send keys: they are the resume bookmarks. */
    it->wire_keys = it->user_keys || s->retry;
    it->wire_values = it->user_values;
    it->id = new_id(s, &s->iters);
    if (rv_idmap_put(&s->iters, it->id, it)) {
        rv_range_copy_free(&it->range);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    it->next = s->iter_head;
    if (s->iter_head)
        s->iter_head->prev = it;
    s->iter_head = it;
    if (it->needs && s->host != RV_HOST_UNKNOWN && (it->needs & ~s->ext_on)) {
        char why[sizeof ((rv_greq *)0)->note];
        say_missing(s, it->needs, why, sizeof why);
        rv_giter_close(s, it);
        return rv_err(RAVEL_ENOTSUP, "%s", why);
    }
    /* Behind requests that wait for the host, so that the iterator sees
     * the writes made before it; or, with read options, until the host
     * says whether it takes them. */
    it->open_held = s->held > 0 || (it->needs && s->host == RV_HOST_UNKNOWN);
    if (it->open_held && it->needs) {
        s->held_iters++;
        if (maybe_probe(s) != RAVEL_OK) {
            rv_giter_close(s, it);
            return rv_err(RAVEL_ENOMEM, "out of memory");
        }
    }
    if (s->state == RV_STREAM_UP && !it->open_held && send_open(s, it)) {
        rv_giter_close(s, it);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    return RAVEL_OK;
}

static int limit_reached(const rv_giter *it)
{
    return it->range.r.limit >= 0 && it->consumed >= (uint64_t)it->range.r.limit;
}

/* Room in `out` for an IteratorAck (id, seq and consumed, tag, length):
 * made before anything is handed out, so that a failure loses nothing. */
#define ACK_ROOM 40

static int gen1_rearm(rv_gsession *s, rv_giter *it);

/* Pop the head message once all of it is handed out, and acknowledge it,
 * which lets the host read further ahead. */
static int pop_drained(rv_gsession *s, rv_giter *it, size_t per)
{
    rv_gqueue_node *n = it->head;
    if (n->next + per <= n->n)
        return RAVEL_OK;
    if (s->state == RV_STREAM_UP && rv_buf_reserve(&s->out, ACK_ROOM))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    it->head = n->next_node;
    if (!it->head)
        it->tail = NULL;
    node_free(n);
    if (s->state != RV_STREAM_UP || limit_reached(it))
        return RAVEL_OK;
    if (s->dialect == RV_DIALECT_GEN1)
        return gen1_rearm(s, it);
    Ravelwire__IteratorAck ack = RAVELWIRE__ITERATOR_ACK__INIT;
    ack.id = it->id;
    ack.seq = it->seq;
    ack.consumed = it->consumed;
    if (rv_encode(&s->out, RV_IN_ITER_ACK, &ack.base))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return RAVEL_OK;
}

/* Room for n bytes in b, whatever it holds now. */
static int room(rv_buf *b, size_t n)
{
    return n > b->len ? rv_buf_reserve(b, n - b->len) : 0;
}

int rv_giter_take(rv_gsession *s, rv_giter *it)
{
    size_t per = it->wire_keys && it->wire_values ? 2 : 1;
    for (;;) {
        if (limit_reached(it))
            return RAVEL_END;
        if (it->error)
            return it->error;
        rv_gqueue_node *n = it->head;
        if (!n)
            return it->ended ? RAVEL_END : RV_WAIT;
        if (n->next + per > n->n) {
            /* An empty message (or a stray half entry): skip it. */
            int rc = pop_drained(s, it, per);
            if (rc)
                return rc;
            continue;
        }
        const size_t *k = it->wire_keys ? &n->items[2 * n->next] : NULL;
        const size_t *v = it->wire_values ? &n->items[2 * (n->next + per - 1)] : NULL;
        /* What can fail comes first: the entry stays queued, and the key
         * handed out last (the resume bookmark) stays as it was. */
        if ((k && room(&it->cur_key, k[1])) || (v && room(&it->cur_val, v[1])) ||
            (n->next + 2 * per > n->n && s->state == RV_STREAM_UP &&
             rv_buf_reserve(&s->out, ACK_ROOM)))
            return rv_err(RAVEL_ENOMEM, "out of memory");
        n->next += per;
        it->cur_key.len = it->cur_val.len = 0;
        if (k)
            rv_buf_append(&it->cur_key, n->bytes + k[0], k[1]);
        if (v)
            rv_buf_append(&it->cur_val, n->bytes + v[0], v[1]);
        /* The key handed out last is where a resume continues from; once a
         * seek's first result is handed out, no longer the seek target. */
        it->has_bookmark = k != NULL;
        it->has_seek = 0;
        it->consumed++;
        int rc = pop_drained(s, it, per);
        return rc ? rc : RAVEL_OK;
    }
}

static int gen1_seek(rv_gsession *s, rv_giter *it, const void *target, size_t len);

int rv_giter_seek(rv_gsession *s, rv_giter *it, const void *target, size_t len)
{
    if (it->error)
        return it->error;
    if (s->dialect == RV_DIALECT_GEN1)
        return gen1_seek(s, it, target, len);
    drop_queue(it);
    it->ended = 0;
    it->seq++; /* replies to the old position are now stale */
    if (rv_buf_set(&it->seek, target, len))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    it->has_seek = 1;
    it->has_bookmark = 0;
    if (s->state != RV_STREAM_UP || it->open_held)
        return RAVEL_OK; /* sent with the Iterator message, still to go */
    Ravelwire__IteratorSeek m = RAVELWIRE__ITERATOR_SEEK__INIT;
    m.id = it->id;
    m.seq = it->seq;
    m.target.data = (uint8_t *)target;
    m.target.len = len;
    if (rv_encode(&s->out, RV_IN_ITER_SEEK, &m.base))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return RAVEL_OK;
}

static void gen1_close(rv_gsession *s, uint32_t id);

void rv_giter_close(rv_gsession *s, rv_giter *it)
{
    if (it->open_held && it->needs && s->held_iters)
        s->held_iters--;
    it->open_held = 0;
    if (rv_idmap_get(&s->iters, it->id) == it) {
        rv_idmap_del(&s->iters, it->id);
        if (it->prev)
            it->prev->next = it->next;
        else
            s->iter_head = it->next;
        if (it->next)
            it->next->prev = it->prev;
        if (s->state == RV_STREAM_UP && s->dialect == RV_DIALECT_GEN1) {
            gen1_close(s, it->id);
        } else if (s->state == RV_STREAM_UP) {
            Ravelwire__IteratorClose m = RAVELWIRE__ITERATOR_CLOSE__INIT;
            m.id = it->id;
            rv_encode(&s->out, RV_IN_ITER_CLOSE, &m.base);
        }
    }
    if (it->notified) {
        rv_giter **pp = &s->notify;
        while (*pp && *pp != it)
            pp = &(*pp)->notify_next;
        if (*pp)
            *pp = it->notify_next;
        it->notified = 0;
    }
    rv_giter_release(it);
}

void rv_giter_release(rv_giter *it)
{
    drop_queue(it);
    rv_range_copy_free(&it->range);
    rv_buf_free(&it->seek);
    rv_buf_free(&it->cur_key);
    rv_buf_free(&it->cur_val);
    rv_buf_free(&it->error_msg);
}

/* ---- replies ---- */

/* A reply to request id: complete it (the reply goes with it). Returns 1
 * if the reply was taken, 0 if nobody waits for it, -1 if it is not the
 * kind of reply that request takes (a host that mixes them up cannot be
 * trusted with the stream). */
static int answer(rv_gsession *s, uint8_t tag, uint32_t id, const char *error,
                  ProtobufCMessage *reply)
{
    rv_greq *r = rv_idmap_get(&s->reqs, id);
    if (!r)
        return 0;
    if (r->reply_tag != tag)
        return -1;
    rv_idmap_del(&s->reqs, id);
    if (r == &s->probe)
        return 0; /* it served its purpose by coming */
    int status = !error                            ? RAVEL_OK
                 : s->dialect == RV_DIALECT_GEN1 ? rv_gen1_code(error)
                                                 : rv_code_from_wire(error);
    complete(s, r, status, reply);
    return 1;
}

static int on_iter_data(rv_gsession *s, const uint8_t *msg, size_t len)
{
    uint32_t id = 0, seq = 0;
    size_t n;
    int rc = rv_parse_iter_data(msg, len, &id, &seq, NULL, 0, &n);
    if (rc)
        return rc;
    rv_giter *it = rv_idmap_get(&s->iters, id);
    if (!it || it->seq != seq || it->error)
        return RAVEL_OK; /* closed, or from before a seek: stale */
    rv_gqueue_node *node = rv_calloc(1, sizeof *node);
    if (node) {
        node->bytes = rv_malloc(len ? len : 1);
        node->items = rv_malloc((n ? n : 1) * 2 * sizeof *node->items);
    }
    if (!node || !node->bytes || !node->items) {
        if (node)
            node_free(node);
        return RAVEL_ENOMEM;
    }
    memcpy(node->bytes, msg, len);
    rv_parse_iter_data(node->bytes, len, &id, &seq, node->items, n, &node->n);
    if (it->tail)
        it->tail->next_node = node;
    else
        it->head = node;
    it->tail = node;
    notify(s, it);
    return RAVEL_OK;
}

static int gen1_on_iter_data(rv_gsession *s, const uint8_t *payload, size_t len);

static int on_frame(void *ud, const uint8_t *payload, size_t len)
{
    rv_gsession *s = ud;
    if (s->dialect == RV_DIALECT_GEN1) {
        /* Its own IteratorData; tags it does not know are ignored, as
         * multileveldown's guest does (and so are ravel's Announce and
         * many-level's 3 and 4). */
        if (payload[0] == RV_OUT_ITER_DATA)
            return gen1_on_iter_data(s, payload, len);
        if (payload[0] >= RV_GEN1_OUT_COUNT)
            return RAVEL_OK;
    }
    /* A ravel host writes its Announce before anything else. */
    if (payload[0] < RV_OUT_COUNT && s->host == RV_HOST_UNKNOWN)
        host_is_plain(s);
    if (payload[0] == RV_OUT_ITER_DATA)
        return on_iter_data(s, payload + 1, len - 1);
    int rc;
    ProtobufCMessage *msg = rv_unpack_out(payload, len, &rc);
    if (!msg)
        return rc;
    int keep = 0;
    switch (payload[0]) {
    case RV_OUT_CALLBACK: {
        Ravelwire__Callback *m = (Ravelwire__Callback *)msg;
        keep = answer(s, RV_OUT_CALLBACK, m->id, m->error, msg);
        break;
    }
    case RV_OUT_GET_MANY_CB: {
        Ravelwire__GetManyCallback *m = (Ravelwire__GetManyCallback *)msg;
        keep = answer(s, RV_OUT_GET_MANY_CB, m->id, m->error, msg);
        break;
    }
    case RV_OUT_ITER_END: {
        Ravelwire__IteratorEnd *m = (Ravelwire__IteratorEnd *)msg;
        rv_giter *it = rv_idmap_get(&s->iters, m->id);
        if (it && it->seq == m->seq) {
            it->ended = 1;
            notify(s, it);
        }
        break;
    }
    case RV_OUT_ITER_ERROR: {
        Ravelwire__IteratorError *m = (Ravelwire__IteratorError *)msg;
        rv_giter *it = rv_idmap_get(&s->iters, m->id);
        if (it && it->seq == m->seq && !it->error) {
            it->error = rv_code_from_wire(m->error);
            if (m->message && rv_buf_set(&it->error_msg, m->message, strlen(m->message)))
                rc = RAVEL_ENOMEM;
            notify(s, it);
        }
        break;
    }
    case RV_OUT_ANNOUNCE:
        rc = on_announce(s, (Ravelwire__Announce *)msg);
        break;
    case RV_OUT_SHM_READY:
        if ((s->ext_on & RV_EXT_SHM) && !s->shm_ready)
            s->shm_ready = ((Ravelwire__ShmReady *)msg)->ok ? 1 : -1;
        break;
    }
    if (keep < 0)
        rc = RAVEL_EPROTO;
    if (keep <= 0)
        protobuf_c_message_free_unpacked(msg, &rv_pb_allocator);
    return rc;
}

int rv_gsession_feed(rv_gsession *s, const uint8_t *p, size_t n)
{
    return rv_decoder_feed(&s->dec, p, n, on_frame, s);
}

int rv_gsession_connected(rv_gsession *s)
{
    s->stream++;
    s->held_iters = 0;
    s->state = RV_STREAM_UP;
    s->gave_up = 0;
    s->out.len = 0;
    rv_decoder_reset(&s->dec);
    forget_host(s);
    /* A first-generation host announces nothing and has no extensions. */
    if (s->dialect == RV_DIALECT_GEN1)
        s->host = RV_HOST_PLAIN;
    int oom = 0;
    for (rv_greq *r = s->pending_head; r; r = r->next) {
        if (s->host == RV_HOST_PLAIN && (r->needs & ~s->ext_on)) {
            /* Failed below, by release_held, saying what is missing. */
            if (!r->held) {
                r->held = 1;
                s->held++;
            }
            continue;
        }
        if (must_wait(s, r)) {
            /* Whatever the last host offered, this one may not. */
            if (!r->held) {
                r->held = 1;
                s->held++;
            }
            continue;
        }
        oom |= send_req(s, r);
    }
    for (rv_giter *it = s->iter_head; it; it = it->next) {
        if (it->error)
            continue;
        /* Entries received but not handed out are dropped: the host resumes
         * strictly after the last one handed out. */
        drop_queue(it);
        it->ended = 0;
        it->open_held = s->held > 0 || it->needs; /* the host is not known yet */
        s->held_iters += it->needs != 0;
        if (!it->open_held)
            oom |= send_open(s, it);
    }
    if (s->host == RV_HOST_PLAIN && (s->held || s->held_iters))
        oom |= release_held(s) != RAVEL_OK;
    oom |= maybe_probe(s) != RAVEL_OK;
    return oom ? RAVEL_ENOMEM : RAVEL_OK;
}

static void fail_all(rv_gsession *s, int status)
{
    while (s->pending_head) {
        rv_greq *r = s->pending_head;
        rv_idmap_del(&s->reqs, r->id);
        complete(s, r, status, NULL);
    }
    for (rv_giter *it = s->iter_head; it; it = it->next) {
        if (!it->error) {
            it->error = status;
            notify(s, it);
        }
    }
}

/* The stream that held snapshots is lost: reads of them fail, never
 * resent to a host that does not have them. */
static void snapshots_lost(rv_gsession *s)
{
    rv_greq *next;
    for (rv_greq *r = s->pending_head; r; r = next) {
        next = r->next;
        if (!r->snap_stream)
            continue;
        snprintf(r->note, sizeof r->note, "the stream that held the snapshot was lost");
        rv_idmap_del(&s->reqs, r->id);
        complete(s, r, RAVEL_ESNAPSHOT, NULL);
    }
    for (rv_giter *it = s->iter_head; it; it = it->next) {
        if (it->snap_stream && !it->error) {
            it->error = RAVEL_ESNAPSHOT;
            static const char why[] = "the stream that held the snapshot was lost";
            rv_buf_set(&it->error_msg, why, sizeof why - 1); /* words only: may fail */
            notify(s, it);
        }
    }
}

int rv_gsession_snapshot_alive(const rv_gsession *s, uint64_t stream)
{
    if (s->state == RV_STREAM_UP && stream == s->stream)
        return RAVEL_OK;
    return rv_err(RAVEL_ESNAPSHOT, "the snapshot is gone: the stream that held it was lost");
}

int rv_gsession_snapshot_release(rv_gsession *s, uint32_t id, uint64_t stream)
{
    if (s->state != RV_STREAM_UP || stream != s->stream || s->closed)
        return RAVEL_OK;
    Ravelwire__SnapshotRelease m = RAVELWIRE__SNAPSHOT_RELEASE__INIT;
    m.snapshot = id;
    return rv_encode(&s->out, RV_IN_SNAPSHOT_RELEASE, &m.base) ? RAVEL_ENOMEM : RAVEL_OK;
}

void rv_gsession_lost(rv_gsession *s)
{
    s->state = RV_STREAM_LOST;
    s->out.len = 0;
    rv_decoder_reset(&s->dec);
    forget_host(s);
    snapshots_lost(s);
    if (!s->retry) {
        fail_all(s, RAVEL_ECONNLOST);
        return;
    }
    for (rv_giter *it = s->iter_head; it; it = it->next) {
        drop_queue(it);
        it->ended = 0;
    }
}

void rv_gsession_give_up(rv_gsession *s, int status)
{
    s->gave_up = status;
    fail_all(s, status);
}

void rv_gsession_close(rv_gsession *s)
{
    s->closed = 1;
    s->out.len = 0;
    forget_host(s);
    fail_all(s, RAVEL_ECLOSED);
}

/* ---- the first generation (multileveldown 5) ----
 *
 * Its iterators have no seq, ack, seek, bookmark or close: the guest opens
 * one with a budget of RV_GEN1_BATCH entries, gives the budget again
 * (same id, no options) after every RV_GEN1_REARM handed out, and closes
 * it with batch 0. Each entry comes in its own frame. Seek and resume are
 * the guest's: both open the iterator again with a narrower range. */

/* The range to ask for: the caller's, narrowed to start at a seek target
 * (inclusive) or strictly after the key handed out last (the bookmark),
 * in the iteration direction. multileveldown 5's own guest sets `gt` to
 * the last key whichever the direction, which skips most of a reverse
 * range; here a reverse iterator narrows its upper bound. */
static void gen1_range(const rv_giter *it, Ravelwire__Gen1Iterator__Options *o)
{
    const ravel_range *r = &it->range.r;
    SET_BOUND(o, r, gt);
    SET_BOUND(o, r, gte);
    SET_BOUND(o, r, lt);
    SET_BOUND(o, r, lte);
    int rev = r->reverse != 0;
    ProtobufCBinaryData at;
    int inclusive;
    if (it->has_seek) {
        at.data = (uint8_t *)it->seek.data;
        at.len = it->seek.len;
        inclusive = 1;
    } else if (it->has_bookmark) {
        at.data = (uint8_t *)it->cur_key.data;
        at.len = it->cur_key.len;
        inclusive = 0;
    } else {
        return;
    }
    /* The bound on the side iteration starts from. A seek target outside
     * the caller's range leaves the caller's bound (the tighter one); a
     * bookmark is inside it, so it always replaces it. */
    protobuf_c_boolean *has_ex = rev ? &o->has_lt : &o->has_gt;
    protobuf_c_boolean *has_in = rev ? &o->has_lte : &o->has_gte;
    ProtobufCBinaryData *ex = rev ? &o->lt : &o->gt, *in = rev ? &o->lte : &o->gte;
    if (inclusive) {
        const ProtobufCBinaryData *cur = *has_ex ? ex : *has_in ? in : NULL;
        if (cur) {
            int c = rv_keycmp(cur->data, cur->len, at.data, at.len);
            if (rev ? c <= 0 : c >= 0)
                return;
        }
    }
    *has_ex = !inclusive;
    *has_in = inclusive;
    if (inclusive)
        *in = at;
    else
        *ex = at;
}

static int gen1_send_open(rv_gsession *s, rv_giter *it)
{
    const ravel_range *r = &it->range.r;
    Ravelwire__Gen1Iterator__Options o = RAVELWIRE__GEN1_ITERATOR__OPTIONS__INIT;
    o.has_keys = o.has_values = o.has_limit = o.has_reverse = 1;
    o.keys = it->wire_keys;
    o.values = it->wire_values;
    o.reverse = r->reverse != 0;
    /* The host counts its limit from the new start: what is left. */
    o.limit = r->limit < 0 ? -1
              : (uint64_t)r->limit > it->consumed ? r->limit - (int64_t)it->consumed
                                                   : 0;
    gen1_range(it, &o);
    Ravelwire__Gen1Iterator m = RAVELWIRE__GEN1_ITERATOR__INIT;
    m.id = it->id;
    m.has_batch = 1;
    m.batch = RV_GEN1_BATCH;
    m.options = &o;
    it->gen1_read = 0;
    return rv_encode(&s->out, RV_IN_ITERATOR, &m.base);
}

/* Another entry is handed out: give the budget again every RV_GEN1_REARM,
 * as multileveldown's guest does, so the host keeps at most RV_GEN1_BATCH
 * ahead. */
static int gen1_rearm(rv_gsession *s, rv_giter *it)
{
    if (++it->gen1_read < RV_GEN1_REARM)
        return RAVEL_OK;
    it->gen1_read = 0;
    Ravelwire__Gen1Iterator m = RAVELWIRE__GEN1_ITERATOR__INIT;
    m.id = it->id;
    m.has_batch = 1;
    m.batch = RV_GEN1_BATCH;
    if (rv_encode(&s->out, RV_IN_ITERATOR, &m.base))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return RAVEL_OK;
}

static void gen1_close(rv_gsession *s, uint32_t id)
{
    Ravelwire__Gen1Iterator m = RAVELWIRE__GEN1_ITERATOR__INIT;
    m.id = id;
    m.has_batch = 1;
    m.batch = 0;
    rv_encode(&s->out, RV_IN_ITERATOR, &m.base);
}

/* No seek message: close the iterator on the host and open it again,
 * under a new id (entries of the old one still on their way are then
 * dropped as unknown), from the target on. */
static int gen1_seek(rv_gsession *s, rv_giter *it, const void *target, size_t len)
{
    if (rv_buf_set(&it->seek, target, len))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    uint32_t id = new_id(s, &s->iters);
    if (rv_idmap_put(&s->iters, id, it))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    rv_idmap_del(&s->iters, it->id);
    if (s->state == RV_STREAM_UP && !it->open_held)
        gen1_close(s, it->id);
    it->id = id;
    drop_queue(it);
    it->ended = 0;
    it->has_seek = 1;
    it->has_bookmark = 0;
    if (s->state != RV_STREAM_UP || it->open_held)
        return RAVEL_OK; /* opened with the stream, or behind held requests */
    if (gen1_send_open(s, it))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return RAVEL_OK;
}

static int gen1_on_iter_data(rv_gsession *s, const uint8_t *payload, size_t len)
{
    int rc;
    Ravelwire__Gen1IteratorData *m = rv_gen1_unpack_iter_data(payload, len, &rc);
    if (!m)
        return rc;
    rv_giter *it = rv_idmap_get(&s->iters, m->id);
    rc = RAVEL_OK;
    if (!it || it->error || it->ended) {
        /* closed, re-opened by a seek, or past its end: stale */
    } else if (m->error) {
        it->error = rv_gen1_code(m->error);
        if (it->error == RAVEL_ENOTFOUND)
            it->error = RAVEL_EREMOTE; /* an iterator has no missing key */
        if (rv_buf_set(&it->error_msg, m->error, strlen(m->error)))
            rc = RAVEL_ENOMEM;
        notify(s, it);
    } else if (!m->has_key && !m->has_value) {
        it->ended = 1;
        notify(s, it);
    } else if ((it->wire_keys && !m->has_key) || (it->wire_values && !m->has_value)) {
        rc = rv_err(RAVEL_EPROTO, "an iterator entry without the key or value asked for");
    } else {
        /* One queue node per entry, laid out as an IteratorData's items. */
        size_t kl = it->wire_keys ? m->key.len : 0, vl = it->wire_values ? m->value.len : 0;
        rv_gqueue_node *node = rv_calloc(1, sizeof *node);
        if (node) {
            node->bytes = rv_malloc(kl + vl + 1);
            node->items = rv_malloc(4 * sizeof *node->items);
        }
        if (!node || !node->bytes || !node->items) {
            if (node)
                node_free(node);
            rc = RAVEL_ENOMEM;
        } else {
            size_t *item = node->items;
            if (it->wire_keys) {
                if (kl)
                    memcpy(node->bytes, m->key.data, kl);
                *item++ = 0;
                *item++ = kl;
            }
            if (it->wire_values) {
                if (vl)
                    memcpy(node->bytes + kl, m->value.data, vl);
                *item++ = kl;
                *item++ = vl;
            }
            node->n = (size_t)(item - node->items) / 2;
            if (it->tail)
                it->tail->next_node = node;
            else
                it->head = node;
            it->tail = node;
            notify(s, it);
        }
    }
    protobuf_c_message_free_unpacked(&m->base, &rv_pb_allocator);
    return rc;
}
