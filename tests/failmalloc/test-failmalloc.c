/* Allocation failures, in the manner of nghttp2's failmalloc tests: each
 * scenario runs once counting the allocations ravel makes while the test
 * has them armed (N), then again for every k = 1..N with the k-th of them
 * failing, alone and then with every one after it (sticky). Each armed
 * call must succeed or fail with RAVEL_ENOMEM; after the first
 * RAVEL_ENOMEM the run goes on unarmed, and the object must then do what
 * was asked (the same call succeeds, or a dropped stream is recovered).
 * Leaks are LeakSanitizer's (ASan build) and valgrind's to find
 * (memcheck-test-failmalloc). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "../helpers.h"
#include "db/batch.h"
#include "guest/session.h"
#include "host/session.h"
#include "util/alloc.h"
#include "wire/codec.h"

/* ---- the harness ---- */

static struct {
    int counting; /* the first run: count, fail nothing */
    long k;       /* fail the k-th armed allocation of the run */
    int sticky;   /* and every one after it */
    long seen;    /* armed allocations so far in this run */
    int hit;      /* an armed call returned RAVEL_ENOMEM */
} fm;

static void fm_arm(void)
{
    if (fm.counting)
        rv_alloc_fail_at(LONG_MAX, 0);
    else if (fm.hit)
        return; /* the rest of the run shows that the object recovered */
    else if (fm.k > fm.seen)
        rv_alloc_fail_at(fm.k - fm.seen, fm.sticky);
    else if (fm.sticky)
        rv_alloc_fail_at(1, 1);
}

static void fm_disarm(void)
{
    fm.seen += rv_alloc_count();
    rv_alloc_fail_at(0, 0);
}

static int fm_status(int rc, const char *what, int line)
{
    fm_disarm();
    if (rc == RAVEL_ENOMEM) {
        if (fm.counting)
            fail_msg("line %d: %s: RAVEL_ENOMEM with no allocation failing", line, what);
        fm.hit = 1;
    }
    return rc;
}

/* Run expr armed and return its status. */
#define FM(expr) fm_status((fm_arm(), (expr)), #expr, __LINE__)
/* Run a call without a status armed. */
#define FM_VOID(stmt) \
    do {              \
        fm_arm();     \
        stmt;         \
        fm_disarm();  \
    } while (0)
/* expr must return want, or RAVEL_ENOMEM and then want when called again. */
#define FM_RETRY(expr, want)                                                                   \
    do {                                                                                       \
        int rc_ = FM(expr);                                                                    \
        if (rc_ == RAVEL_ENOMEM)                                                               \
            rc_ = (expr);                                                                      \
        if (rc_ != (want))                                                                     \
            fail_msg("line %d: %s -> %s, want %s (k=%ld%s)", __LINE__, #expr, ravel_errname(rc_), \
                     ravel_errname(want), fm.k, fm.sticky ? " sticky" : "");                   \
    } while (0)

/* A status an armed call may return besides RAVEL_ENOMEM. */
#define EXPECT(rc, want)                                                                       \
    do {                                                                                       \
        int r_ = (rc), w_ = (want);                                                            \
        if (r_ != w_)                                                                          \
            fail_msg("line %d: %s -> %s, want %s (k=%ld%s)", __LINE__, #rc, ravel_errname(r_), \
                     ravel_errname(w_), fm.k, fm.sticky ? " sticky" : "");                     \
    } while (0)

static void failmalloc(const char *name, void (*run)(void *), void *arg)
{
    memset(&fm, 0, sizeof fm);
    fm.counting = 1;
    run(arg);
    long n = fm.seen, hits = 0;
    assert_true(n > 0);
    for (int sticky = 0; sticky <= 1; sticky++) {
        for (long k = 1; k <= n; k++) {
            memset(&fm, 0, sizeof fm);
            fm.k = k;
            fm.sticky = sticky;
            run(arg);
            hits += fm.hit;
        }
    }
    printf("%s: N = %ld; %ld of %ld runs saw RAVEL_ENOMEM\n", name, n, hits, 2 * n);
    fflush(stdout);
}

#define BYTES(s) ((ProtobufCBinaryData){sizeof s - 1, (uint8_t *)s})
#define BOUND(s) ((ravel_bound){s, sizeof s - 1})

/* ---- 1. the codec ---- */

typedef struct frames {
    uint8_t *payload[32];
    size_t len[32];
    size_t n;
} frames;

static int collect(void *ud, const uint8_t *payload, size_t len)
{
    frames *f = ud;
    assert_true(f->n < 32);
    f->payload[f->n] = malloc(len);
    memcpy(f->payload[f->n], payload, len);
    f->len[f->n++] = len;
    return 0;
}

static void frames_free(frames *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->payload[i]);
    f->n = 0;
}

static int unpack(int out_dir, const uint8_t *p, size_t len, ProtobufCMessage **m)
{
    int st;
    *m = out_dir ? rv_unpack_out(p, len, &st) : rv_unpack_in(p, len, &st);
    return *m ? RAVEL_OK : st;
}

static int iter_frame(rv_buf *out)
{
    rv_iter_frame f;
    if (rv_iter_frame_begin(&f, out))
        return RAVEL_ENOMEM;
    static const char *items[] = {"key", "value", "", "a longer value that goes on and on"};
    for (size_t i = 0; i < 4; i++)
        if (rv_iter_frame_add(&f, items[i], strlen(items[i])))
            return RAVEL_ENOMEM;
    rv_iter_frame_end(&f, 3, 2);
    return RAVEL_OK;
}

/* Feed wire to a decoder whole or byte by byte; a failed feed leaves the
 * stream unusable, so it is read again from the start, unarmed. */
static void decode(const rv_buf *wire, int bytewise, frames *f)
{
    rv_decoder d;
    rv_decoder_init(&d, 0);
    int rc = RAVEL_OK;
    if (bytewise) {
        for (size_t i = 0; i < wire->len && rc == RAVEL_OK; i++)
            rc = FM(rv_decoder_feed(&d, (const uint8_t *)wire->data + i, 1, collect, f));
    } else {
        rc = FM(rv_decoder_feed(&d, (const uint8_t *)wire->data, wire->len, collect, f));
    }
    if (rc == RAVEL_ENOMEM) {
        rv_decoder_free(&d);
        frames_free(f);
        rv_decoder_init(&d, 0);
        rc = rv_decoder_feed(&d, (const uint8_t *)wire->data, wire->len, collect, f);
    }
    EXPECT(rc, RAVEL_OK);
    rv_decoder_free(&d);
}

static void codec_run(void *arg)
{
    (void)arg;
    rv_buf wire = {0};
    uint8_t tags[32];
    int dirs[32];
    size_t nmsg = 0;
#define ENC(dir, tag, m)                                   \
    do {                                                   \
        FM_RETRY(rv_encode(&wire, tag, &(m).base), 0);     \
        tags[nmsg] = tag;                                  \
        dirs[nmsg++] = dir;                                \
    } while (0)

    Ravelwire__Get get = RAVELWIRE__GET__INIT;
    get.id = 1;
    get.key = BYTES("key\0nul");
    ENC(0, RV_IN_GET, get);
    Ravelwire__Put put = RAVELWIRE__PUT__INIT;
    put.id = 2;
    put.key = BYTES("k");
    put.has_value = 1;
    put.value = BYTES("v");
    ENC(0, RV_IN_PUT, put);
    Ravelwire__Delete del = RAVELWIRE__DELETE__INIT;
    del.id = 3;
    del.key = BYTES("d");
    ENC(0, RV_IN_DEL, del);
    Ravelwire__Batch__Operation op1 = RAVELWIRE__BATCH__OPERATION__INIT;
    op1.type = "put";
    op1.key = BYTES("x");
    op1.has_value = 1;
    op1.value = BYTES("1");
    Ravelwire__Batch__Operation op2 = RAVELWIRE__BATCH__OPERATION__INIT;
    op2.type = "del";
    op2.key = BYTES("y");
    Ravelwire__Batch__Operation *ops[] = {&op1, &op2};
    Ravelwire__Batch batch = RAVELWIRE__BATCH__INIT;
    batch.id = 4;
    batch.n_ops = 2;
    batch.ops = ops;
    ENC(0, RV_IN_BATCH, batch);
    Ravelwire__Iterator__Options io = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    io.has_gte = io.has_lt = io.has_limit = io.has_reverse = 1;
    io.gte = BYTES("a");
    io.lt = BYTES("z");
    io.limit = 10;
    io.reverse = 1;
    Ravelwire__Iterator iter = RAVELWIRE__ITERATOR__INIT;
    iter.id = 5;
    iter.seq = 1;
    iter.options = &io;
    iter.consumed = 7;
    iter.has_bookmark = 1;
    iter.bookmark = BYTES("m");
    ENC(0, RV_IN_ITERATOR, iter);
    Ravelwire__Clear__ClearOptions co = RAVELWIRE__CLEAR__CLEAR_OPTIONS__INIT;
    co.has_gt = 1;
    co.gt = BYTES("c");
    Ravelwire__Clear clear = RAVELWIRE__CLEAR__INIT;
    clear.id = 6;
    clear.options = &co;
    ENC(0, RV_IN_CLEAR, clear);
    ProtobufCBinaryData keys[] = {BYTES("a"), BYTES(""), BYTES("zz")};
    Ravelwire__GetMany many = RAVELWIRE__GET_MANY__INIT;
    many.id = 7;
    many.n_keys = 3;
    many.keys = keys;
    ENC(0, RV_IN_GET_MANY, many);
    Ravelwire__IteratorClose iclose = RAVELWIRE__ITERATOR_CLOSE__INIT;
    iclose.id = 8;
    ENC(0, RV_IN_ITER_CLOSE, iclose);
    Ravelwire__IteratorAck ack = RAVELWIRE__ITERATOR_ACK__INIT;
    ack.id = 9;
    ack.seq = 2;
    ack.consumed = 300;
    ENC(0, RV_IN_ITER_ACK, ack);
    Ravelwire__IteratorSeek seek = RAVELWIRE__ITERATOR_SEEK__INIT;
    seek.id = 10;
    seek.seq = 3;
    seek.target = BYTES("t");
    ENC(0, RV_IN_ITER_SEEK, seek);

    Ravelwire__Callback cb = RAVELWIRE__CALLBACK__INIT;
    cb.id = 11;
    cb.error = "LEVEL_NOT_FOUND";
    ENC(1, RV_OUT_CALLBACK, cb);
    FM_RETRY(rv_encode_callback(&wire, 12, NULL, "value", 5), 0);
    tags[nmsg] = RV_OUT_CALLBACK, dirs[nmsg++] = 1;
    FM_RETRY(rv_encode_callback(&wire, 13, "LEVEL_REMOTE_ERROR", NULL, 0), 0);
    tags[nmsg] = RV_OUT_CALLBACK, dirs[nmsg++] = 1;
    ProtobufCBinaryData data[] = {BYTES("k"), BYTES("v")};
    Ravelwire__IteratorData idata = RAVELWIRE__ITERATOR_DATA__INIT;
    idata.id = 14;
    idata.seq = 0;
    idata.n_data = 2;
    idata.data = data;
    ENC(1, RV_OUT_ITER_DATA, idata);
    {
        size_t at = wire.len;
        int rc = FM(iter_frame(&wire));
        if (rc == RAVEL_ENOMEM) {
            assert_int_equal(wire.len, at);
            rc = iter_frame(&wire);
        }
        EXPECT(rc, RAVEL_OK);
        tags[nmsg] = RV_OUT_ITER_DATA, dirs[nmsg++] = 1;
    }
    Ravelwire__GetManyCallback__Value v1 = RAVELWIRE__GET_MANY_CALLBACK__VALUE__INIT;
    v1.has_value = 1;
    v1.value = BYTES("one");
    Ravelwire__GetManyCallback__Value v2 = RAVELWIRE__GET_MANY_CALLBACK__VALUE__INIT;
    Ravelwire__GetManyCallback__Value *vals[] = {&v1, &v2};
    Ravelwire__GetManyCallback gmc = RAVELWIRE__GET_MANY_CALLBACK__INIT;
    gmc.id = 15;
    gmc.n_values = 2;
    gmc.values = vals;
    ENC(1, RV_OUT_GET_MANY_CB, gmc);
    Ravelwire__IteratorError ierr = RAVELWIRE__ITERATOR_ERROR__INIT;
    ierr.id = 16;
    ierr.seq = 4;
    ierr.error = "LEVEL_LIMIT_EXCEEDED";
    ENC(1, RV_OUT_ITER_ERROR, ierr);
    Ravelwire__IteratorEnd iend = RAVELWIRE__ITERATOR_END__INIT;
    iend.id = 17;
    iend.seq = 5;
    ENC(1, RV_OUT_ITER_END, iend);
#undef ENC

    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        frames f = {0};
        decode(&wire, bytewise, &f);
        assert_int_equal(f.n, nmsg);
        for (size_t i = 0; i < f.n; i++) {
            assert_int_equal(f.payload[i][0], tags[i]);
            ProtobufCMessage *m;
            int rc = FM(unpack(dirs[i], f.payload[i], f.len[i], &m));
            if (rc == RAVEL_ENOMEM)
                rc = unpack(dirs[i], f.payload[i], f.len[i], &m);
            EXPECT(rc, RAVEL_OK);
            /* What came out packs to what went in. */
            size_t size = protobuf_c_message_get_packed_size(m);
            assert_int_equal(size + 1, f.len[i]);
            uint8_t *again = malloc(size + 1);
            protobuf_c_message_pack(m, again);
            assert_memory_equal(again, f.payload[i] + 1, size);
            free(again);
            protobuf_c_message_free_unpacked(m, &rv_pb_allocator);
        }
        frames_free(&f);
    }
    rv_buf_free(&wire);
}

static void test_codec(void **state)
{
    (void)state;
    failmalloc("codec", codec_run, NULL);
}

/* ---- 2, 3. the guest and host sessions, paired in memory ---- */

typedef struct entry {
    const char *key, *val;
} entry;

static const entry seed[] = {
    {"", "empty"}, {"a", "1"}, {"aa", "2"}, {"ab", "3"}, {"abc", "4"}, {"b", "5"},
    {"ba", "6"},   {"c", "7"}, {"ca", "8"}, {"d", "9"},   {"k", "10"},  {"x", "11"},
    {"y", "12"},   {"z", "13"}, {"zz", "14"},
};
#define NSEED (sizeof seed / sizeof seed[0])

typedef struct world {
    char *dir;
    ravel_db *db;
    ravel_host_options hopts;
} world;

static void world_reset(world *w)
{
    ravel_batch *b = ravel_batch_new();
    assert_non_null(b);
    ravel_range all;
    ravel_range_init(&all);
    OK(ravel_clear(w->db, &all));
    for (size_t i = 0; i < NSEED; i++)
        OK(ravel_batch_put(b, seed[i].key, strlen(seed[i].key), seed[i].val, strlen(seed[i].val)));
    OK(ravel_write(w->db, b));
    ravel_batch_free(b);
}

static int world_setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    w->dir = make_tmpdir();
    OK(ravel_open_local(&w->db, w->dir, NULL));
    ravel_host_options_init(&w->hopts);
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    world *w = *state;
    ravel_db_close(w->db);
    rm_tmpdir(w->dir);
    free(w);
    return 0;
}

enum { NREQ = 8, NITER = 3 };

typedef struct gtest {
    world *w;
    int arm_guest, arm_host;
    rv_gsession g;
    rv_hsession h;
    rv_greq reqs[NREQ];
    int completions[NREQ];
    int status[NREQ];
    int used;           /* requests submitted */
    rv_giter iters[NITER];
    int open[NITER], ended[NITER];
    ravel_range ranges[NITER];
    rv_buf got[NITER];  /* what each iterator handed out, entry by entry */
} gtest;

/* Calls on the guest session, armed when the guest is under test. */
#define G(expr) (t->arm_guest ? FM(expr) : (expr))
#define G_VOID(stmt)         \
    do {                     \
        if (t->arm_guest)    \
            FM_VOID(stmt);   \
        else                 \
            stmt;            \
    } while (0)

static void append_entry(rv_buf *b, const void *k, size_t kl, const void *v, size_t vl, int keys,
                         int values)
{
    char sep[2] = {'|', '\n'};
    if (keys)
        assert_int_equal(rv_buf_append(b, k, kl), 0);
    assert_int_equal(rv_buf_append(b, sep, 1), 0);
    if (values)
        assert_int_equal(rv_buf_append(b, v, vl), 0);
    assert_int_equal(rv_buf_append(b, sep + 1, 1), 0);
}

/* What a transport does with completions and iterator news. */
static void settle(gtest *t)
{
    while (t->g.done) {
        rv_greq *r = t->g.done;
        t->g.done = r->done_next;
        size_t i = (size_t)(r - t->reqs);
        assert_true(i < NREQ);
        t->completions[i]++;
        t->status[i] = r->status;
        if (r->reply)
            protobuf_c_message_free_unpacked(r->reply, &rv_pb_allocator);
        r->reply = NULL;
        rv_buf_free(&r->frame);
    }
    while (t->g.notify) {
        rv_giter *it = t->g.notify;
        t->g.notify = it->notify_next;
        it->notified = 0;
        it->notify_next = NULL;
    }
    for (int i = 0; i < NITER; i++) {
        rv_giter *it = &t->iters[i];
        while (t->open[i] && !t->ended[i]) {
            int rc = G(rv_giter_take(&t->g, it));
            if (rc == RAVEL_ENOMEM)
                rc = rv_giter_take(&t->g, it);
            if (rc == RV_WAIT)
                break;
            if (rc == RAVEL_END) {
                t->ended[i] = 1;
                break;
            }
            EXPECT(rc, RAVEL_OK);
            append_entry(&t->got[i], it->cur_key.data, it->cur_key.len, it->cur_val.data,
                         it->cur_val.len, it->user_keys, it->user_values);
        }
    }
}

static void host_open(gtest *t)
{
    rv_hsession_init(&t->h, t->w->db, &t->w->hopts);
}

/* The stream broke (a feed failed): a new one, with a new host session. */
static void reconnect(gtest *t)
{
    rv_hsession_free(&t->h);
    rv_gsession_lost(&t->g);
    settle(t);
    host_open(t);
    EXPECT(rv_gsession_connected(&t->g), RAVEL_OK);
}

/* Move bytes both ways, `rounds` times or (with `finish`) until neither
 * side has anything more to say. */
static void pump(gtest *t, int rounds, int finish)
{
    for (int round = 0; round < rounds; round++) {
        if (!t->g.out.len)
            return;
        rv_buf req = {0};
        rv_buf_swap(&req, &t->g.out);
        int rc = t->arm_host ? FM(rv_hsession_feed(&t->h, (uint8_t *)req.data, req.len))
                             : rv_hsession_feed(&t->h, (uint8_t *)req.data, req.len);
        rv_buf_free(&req);
        if (rc == RAVEL_ENOMEM) {
            reconnect(t);
            continue;
        }
        EXPECT(rc, RAVEL_OK);
        rv_buf rep = {0};
        rv_buf_swap(&rep, &t->h.out);
        rc = G(rv_gsession_feed(&t->g, (uint8_t *)rep.data, rep.len));
        rv_buf_free(&rep);
        if (rc == RAVEL_ENOMEM) {
            settle(t);
            reconnect(t);
            continue;
        }
        EXPECT(rc, RAVEL_OK);
        settle(t);
    }
    if (finish)
        fail_msg("the sessions still talk after %d rounds (k=%ld%s hit %d)", rounds, fm.k,
                 fm.sticky ? " sticky" : "", fm.hit);
}

static void submit(gtest *t, uint8_t tag, ProtobufCMessage *msg, uint32_t *id)
{
    rv_greq *r = &t->reqs[t->used++];
    int rc = G(rv_gsession_submit(&t->g, r, tag, msg, id));
    if (rc == RAVEL_ENOMEM)
        rc = rv_gsession_submit(&t->g, r, tag, msg, id);
    EXPECT(rc, RAVEL_OK);
}

static void open_iter(gtest *t, int i, const ravel_range *r)
{
    t->ranges[i] = *r;
    int rc = G(rv_giter_open(&t->g, &t->iters[i], r));
    if (rc == RAVEL_ENOMEM) {
        memset(&t->iters[i], 0, sizeof t->iters[i]);
        rc = rv_giter_open(&t->g, &t->iters[i], r);
    }
    EXPECT(rc, RAVEL_OK);
    t->open[i] = 1;
}

/* What iterator i must hand out, read from the database directly. */
static void expect_iter(gtest *t, int i, const char *seek_to, rv_buf *want)
{
    ravel_iter *it;
    OK(ravel_iter_new(t->w->db, &t->ranges[i], &it));
    if (seek_to)
        OK(ravel_iter_seek(it, seek_to, strlen(seek_to)));
    const char *k, *v;
    size_t kl, vl;
    int rc;
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK)
        append_entry(want, k, kl, v, vl, t->ranges[i].keys, t->ranges[i].values);
    assert_int_equal(rc, RAVEL_END);
    ravel_iter_free(it);
}

static void sessions_run(void *arg)
{
    gtest *t = arg;
    world *w = t->w;
    world_reset(w);
    int arm_guest = t->arm_guest, arm_host = t->arm_host;
    memset(t, 0, sizeof *t);
    t->w = w;
    t->arm_guest = arm_guest;
    t->arm_host = arm_host;
    rv_gsession_init(&t->g, 1, 1u << 20, 64);
    host_open(t);
    int rc = G(rv_gsession_connected(&t->g));
    if (rc == RAVEL_ENOMEM) {
        rv_gsession_lost(&t->g);
        rc = rv_gsession_connected(&t->g);
    }
    EXPECT(rc, RAVEL_OK);

    /* Every request kind. */
    Ravelwire__Get get = RAVELWIRE__GET__INIT;
    get.key = BYTES("a");
    submit(t, RV_IN_GET, &get.base, &get.id);
    Ravelwire__Put put = RAVELWIRE__PUT__INIT;
    put.key = BYTES("k");
    put.has_value = 1;
    put.value = BYTES("new");
    submit(t, RV_IN_PUT, &put.base, &put.id);
    Ravelwire__Delete del = RAVELWIRE__DELETE__INIT;
    del.key = BYTES("b");
    submit(t, RV_IN_DEL, &del.base, &del.id);
    ravel_batch *b = ravel_batch_new();
    assert_non_null(b);
    OK(ravel_batch_put(b, "bb", 2, "batched", 7));
    OK(ravel_batch_del(b, "x", 1));
    {
        rv_greq *r = &t->reqs[t->used++];
        rc = G(rv_gsession_submit_batch(&t->g, r, b));
        if (rc == RAVEL_ENOMEM)
            rc = rv_gsession_submit_batch(&t->g, r, b);
        EXPECT(rc, RAVEL_OK);
    }
    ravel_batch_free(b);
    Ravelwire__Clear__ClearOptions copts = RAVELWIRE__CLEAR__CLEAR_OPTIONS__INIT;
    copts.has_gte = 1;
    copts.gte = BYTES("c");
    copts.has_lt = 1;
    copts.lt = BYTES("d");
    Ravelwire__Clear clear = RAVELWIRE__CLEAR__INIT;
    clear.options = &copts;
    submit(t, RV_IN_CLEAR, &clear.base, &clear.id);
    ProtobufCBinaryData keys[] = {BYTES("a"), BYTES("zz"), BYTES("nope")};
    Ravelwire__GetMany many = RAVELWIRE__GET_MANY__INIT;
    many.n_keys = 3;
    many.keys = keys;
    submit(t, RV_IN_GET_MANY, &many.base, &many.id);

    /* Three iterators: forward (sought), reverse keys-only with a limit,
     * values-only with an upper bound. */
    ravel_range r;
    ravel_range_init(&r);
    open_iter(t, 0, &r);
    ravel_range_init(&r);
    r.reverse = 1;
    r.values = 0;
    r.has_gte = 1;
    r.gte = BOUND("a");
    r.limit = 9;
    open_iter(t, 1, &r);
    ravel_range_init(&r);
    r.keys = 0;
    r.has_lt = 1;
    r.lt = BOUND("y");
    open_iter(t, 2, &r);
    rc = G(rv_giter_seek(&t->g, &t->iters[0], "ab", 2));
    if (rc == RAVEL_ENOMEM)
        rc = rv_giter_seek(&t->g, &t->iters[0], "ab", 2);
    EXPECT(rc, RAVEL_OK);

    /* One exchange (every iterator hands out its first entry), then the
     * stream is lost and a new one comes: the rest resumes on it. */
    pump(t, 1, 0);
    G_VOID(rv_gsession_lost(&t->g));
    settle(t);
    rv_hsession_free(&t->h);
    host_open(t);
    rc = G(rv_gsession_connected(&t->g));
    if (rc == RAVEL_ENOMEM) {
        rv_gsession_lost(&t->g);
        rc = rv_gsession_connected(&t->g);
    }
    EXPECT(rc, RAVEL_OK);
    pump(t, 50, 1);

    /* A request on the new stream. */
    Ravelwire__Get get2 = RAVELWIRE__GET__INIT;
    get2.key = BYTES("bb");
    submit(t, RV_IN_GET, &get2.base, &get2.id);
    pump(t, 50, 1);

    for (int i = 0; i < t->used; i++) {
        assert_int_equal(t->completions[i], 1);
        if (t->status[i] != RAVEL_OK)
            fail_msg("request %d -> %s (k=%ld%s)", i, ravel_errname(t->status[i]), fm.k,
                     fm.sticky ? " sticky" : "");
    }
    for (int i = 0; i < NITER; i++) {
        assert_true(t->ended[i]);
        rv_buf want = {0};
        expect_iter(t, i, i == 0 ? "ab" : NULL, &want);
        if (t->got[i].len != want.len || memcmp(t->got[i].data, want.data, want.len))
            fail_msg("iterator %d (k=%ld%s) handed out\n%.*s\ninstead of\n%.*s", i, fm.k,
                     fm.sticky ? " sticky" : "", (int)t->got[i].len, t->got[i].data,
                     (int)want.len, want.data);
        rv_buf_free(&want);
        rv_buf_free(&t->got[i]);
    }

    /* Close one iterator and then the session with a request pending. */
    G_VOID(rv_giter_close(&t->g, &t->iters[0]));
    t->open[0] = 0;
    Ravelwire__Delete del2 = RAVELWIRE__DELETE__INIT;
    del2.key = BYTES("zz");
    submit(t, RV_IN_DEL, &del2.base, &del2.id);
    G_VOID(rv_gsession_close(&t->g));
    settle(t);
    assert_int_equal(t->completions[t->used - 1], 1);
    EXPECT(t->status[t->used - 1], RAVEL_ECLOSED);
    for (int i = 0; i < NITER; i++)
        if (t->open[i])
            G_VOID(rv_giter_close(&t->g, &t->iters[i]));
    rv_gsession_free(&t->g);
    rv_hsession_free(&t->h);
}

static void test_guest_session(void **state)
{
    gtest *t = calloc(1, sizeof *t);
    t->w = *state;
    t->arm_guest = 1;
    failmalloc("guest session", sessions_run, t);
    free(t);
}

static void test_host_session(void **state)
{
    gtest *t = calloc(1, sizeof *t);
    t->w = *state;
    t->arm_host = 1;
    failmalloc("host session", sessions_run, t);
    free(t);
}

/* ---- 4. the public API on a local handle ---- */

typedef struct calls {
    int n, status;
} calls;

static void done_cb(void *ud, int status)
{
    calls *c = ud;
    c->n++;
    c->status = status;
}

static void value_cb(void *ud, int status, const char *val, size_t vlen)
{
    calls *c = ud;
    c->n++;
    c->status = status;
    if (status == RAVEL_OK)
        assert_true(vlen == 2 && memcmp(val, "v1", 2) == 0);
}

static void values_cb(void *ud, int status, size_t n, const char *const *vals, const size_t *vlens)
{
    calls *c = ud;
    c->n++;
    c->status = status;
    if (status == RAVEL_OK) {
        assert_int_equal(n, 2);
        assert_true(vals[0] && vlens[0] == 2 && memcmp(vals[0], "v1", 2) == 0);
        assert_null(vals[1]);
    }
}

static void entry_cb(void *ud, int status, const char *key, size_t klen, const char *val,
                     size_t vlen)
{
    (void)key, (void)klen, (void)val, (void)vlen;
    calls *c = ud;
    c->n++;
    c->status = status;
}

/* An asynchronous call: it fails with RAVEL_ENOMEM and never calls back,
 * or calls back exactly once (with RAVEL_OK, or RAVEL_ENOMEM and then it
 * is made again, unarmed). */
#define ASYNC(call)                                          \
    do {                                                     \
        calls c_ = {0};                                      \
        int rc_ = FM(call);                                  \
        if (rc_ == RAVEL_ENOMEM)                             \
            assert_int_equal(c_.n, 0);                       \
        else                                                 \
            assert_int_equal(c_.n, 1);                       \
        if (rc_ == RAVEL_ENOMEM || c_.status == RAVEL_ENOMEM) { \
            fm.hit = 1;                                      \
            c_ = (calls){0};                                 \
            EXPECT(call, RAVEL_OK);                          \
            assert_int_equal(c_.n, 1);                       \
        }                                                    \
        EXPECT(c_.status, RAVEL_OK);                         \
    } while (0)

/* Did an armed allocation fail since fm.seen was `before`? */
/* ravel_iter_next, armed; after RAVEL_ENOMEM, unarmed again: the entry
 * that could not be handed out is the next one then. */
static int next_entry(ravel_iter *it, const char **k, size_t *kl, const char **v, size_t *vl)
{
    int rc = FM(ravel_iter_next(it, k, kl, v, vl));
    if (rc == RAVEL_ENOMEM)
        rc = ravel_iter_next(it, k, kl, v, vl);
    return rc;
}

static void local_run(void *arg)
{
    world *w = arg;
    ravel_db *db = NULL;
    int rc = FM(ravel_open_local(&db, w->dir, NULL));
    if (rc == RAVEL_ENOMEM) {
        assert_null(db);
        rc = ravel_open_local(&db, w->dir, NULL);
    }
    EXPECT(rc, RAVEL_OK);
    ravel_range all;
    ravel_range_init(&all);
    OK(ravel_clear(db, &all));

    FM_RETRY(ravel_put(db, "k1", 2, "v1", 2), RAVEL_OK);
    char *val = NULL;
    size_t vlen;
    FM_RETRY(ravel_get(db, "k1", 2, &val, &vlen), RAVEL_OK);
    assert_true(vlen == 2 && memcmp(val, "v1", 2) == 0);
    ravel_free(val);
    FM_RETRY(ravel_del(db, "k1", 2), RAVEL_OK);
    FM_RETRY(ravel_get(db, "k1", 2, &val, &vlen), RAVEL_ENOTFOUND);
    FM_RETRY(ravel_put(db, "k1", 2, "v1", 2), RAVEL_OK);
    const void *keys[] = {"k1", "k2"};
    size_t klens[] = {2, 2};
    char *vals[2];
    size_t vlens[2];
    FM_RETRY(ravel_get_many(db, 2, keys, klens, vals, vlens), RAVEL_OK);
    assert_true(vals[0] && vlens[0] == 2 && memcmp(vals[0], "v1", 2) == 0);
    assert_null(vals[1]);
    ravel_free(vals[0]);

    fm_arm();
    ravel_batch *b = ravel_batch_new();
    fm_status(b ? RAVEL_OK : RAVEL_ENOMEM, "ravel_batch_new", __LINE__);
    if (!b)
        b = ravel_batch_new();
    assert_non_null(b);
    /* Enough operations that the batch grows (16 at first). */
    char key[17];
    for (unsigned long i = 0; i < 40; i++) {
        key_of(key, i);
        if (i % 5 == 4)
            FM_RETRY(ravel_batch_del(b, key, 16), RAVEL_OK);
        else
            FM_RETRY(ravel_batch_put(b, key, 16, "value", 5), RAVEL_OK);
    }
    assert_int_equal(ravel_batch_count(b), 40);
    FM_RETRY(ravel_write(db, b), RAVEL_OK);

    /* An iterator over the batch's 32 puts, sought and read to the end. */
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1;
    r.gte = BOUND("k0");
    r.has_lt = 1;
    r.lt = BOUND("k1");
    ravel_iter *it = NULL;
    FM_RETRY(ravel_iter_new(db, &r, &it), RAVEL_OK);
    const char *k, *v;
    size_t kl, vl;
    rc = next_entry(it, &k, &kl, &v, &vl);
    EXPECT(rc, RAVEL_OK);
    key_of(key, 0);
    if ((kl != 16 || memcmp(k, key, 16)))
        fail_msg("first entry %.*s (k=%ld%s)", (int)kl, k, fm.k, fm.sticky ? " sticky" : "");
    key_of(key, 10);
    FM_RETRY(ravel_iter_seek(it, key, 16), RAVEL_OK);
    unsigned long i = 10;
    while ((rc = next_entry(it, &k, &kl, &v, &vl)) == RAVEL_OK) {
        if (i % 5 == 4)
            i++;
        key_of(key, i++);
        if ((kl != 16 || memcmp(k, key, 16) || vl != 5 || memcmp(v, "value", 5)))
            fail_msg("entry %.*s, want %s (k=%ld%s)", (int)kl, k, key, fm.k,
                     fm.sticky ? " sticky" : "");
    }
    EXPECT(rc, RAVEL_END);
    assert_int_equal(i, 39); /* 38 was the last put */
    FM_VOID(ravel_iter_free(it));

    ASYNC(ravel_put_async(db, "k1", 2, "v1", 2, done_cb, &c_));
    ASYNC(ravel_get_async(db, "k1", 2, value_cb, &c_));
    ASYNC(ravel_get_many_async(db, 2, keys, klens, values_cb, &c_));
    ASYNC(ravel_write_async(db, b, done_cb, &c_));
    FM_VOID(ravel_batch_free(b));
    ASYNC(ravel_del_async(db, "k1", 2, done_cb, &c_));
    FM_RETRY(ravel_iter_new(db, &r, &it), RAVEL_OK);
    ASYNC(ravel_iter_next_async(it, entry_cb, &c_));
    ravel_iter_free(it);
    ASYNC(ravel_clear_async(db, &r, done_cb, &c_));
    FM_RETRY(ravel_iter_new(db, NULL, &it), RAVEL_OK);
    FM_RETRY(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_END);
    ravel_iter_free(it);
    FM_RETRY(ravel_clear(db, &all), RAVEL_OK);
    FM_VOID(ravel_db_close(db));
}

static void test_local_api(void **state)
{
    world *w = *state;
    /* The handle is opened by each run: the fixture's is not needed. */
    ravel_db_close(w->db);
    w->db = NULL;
    failmalloc("local handle", local_run, w);
    OK(ravel_open_local(&w->db, w->dir, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        cmocka_unit_test_setup_teardown(test_guest_session, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_host_session, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_local_api, world_setup, world_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
