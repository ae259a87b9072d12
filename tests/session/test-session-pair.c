/* test-session-pair: the guest session (src/guest/session.c) paired in
 * memory with the host session (src/host/session.c), which serves a real
 * LevelDB through a local handle. No sockets, threads or sleeps: a pump
 * moves the bytes each side has to send until both are quiet, and a stream
 * is cut by dropping bytes, losing the guest's stream and giving it a fresh
 * host session (a new connection to the same database).
 *
 * Covers: the results and errors of every request kind; pending requests
 * across cuts (retry on and off), each completing exactly once; iterators
 * in both directions, keys or values only, with limits, bounds and seeks,
 * checked against a model of the range, and resumed after a cut at every
 * entry; and a short exchange cut after every byte, in each direction. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "../helpers.h"

#include "db/range.h"
#include "guest/session.h"
#include "host/session.h"
#include "util/alloc.h"

#define S(lit) lit, sizeof lit - 1
#define BOUND(lit) ((ravel_bound){lit, sizeof lit - 1})
#define BYTES(lit) ((ProtobufCBinaryData){sizeof lit - 1, (uint8_t *)lit})

/* ---- the database ---- */

typedef struct entry {
    const char *key, *val;
    size_t klen, vlen;
} entry;
#define E(k, v) {k, v, sizeof k - 1, sizeof v - 1}

/* Bytewise order. The empty key, a NUL key, keys that extend one another
 * (where a resume that edits the bookmark's bytes goes wrong, above all in
 * reverse), an empty value, high bytes. The "w" keys are the ones the
 * exchanges write; the other keys are never written. */
static const entry seed[] = {
    E("", "empty key"), E("\0", "nul key"), E("a", "1"),     E("a\0", "2"),
    E("a\0\0", "3"),    E("aa", "5"),       E("aa\xff", "6"), E("ab", "7"),
    E("abc", "8"),      E("a\xff", "4"),    E("b", ""),      E("ba", "9"),
    E("bb", "10"),      E("c", "11"),       E("wb", "old"),  E("wd", "old"),
    E("we", "x"),       E("we1", "x"),      E("we2", "x"),   E("\xff", "hi"),
    E("\xff\xff", "higher"),
};
#define NSEED (sizeof seed / sizeof seed[0])

static char *g_dir;
static ravel_db *g_db;

/* Back to exactly the seed: the "w" keys are rewritten, the others were
 * never changed. */
static void reset_db(void)
{
    ravel_range w;
    ravel_range_init(&w);
    w.has_gte = 1;
    w.gte = BOUND("w");
    w.has_lt = 1;
    w.lt = BOUND("x");
    OK(ravel_clear(g_db, &w));
    ravel_batch *b = ravel_batch_new();
    assert_non_null(b);
    for (size_t i = 0; i < NSEED; i++)
        if (seed[i].klen && seed[i].key[0] == 'w')
            OK(ravel_batch_put(b, seed[i].key, seed[i].klen, seed[i].val, seed[i].vlen));
    OK(ravel_write(g_db, b));
    ravel_batch_free(b);
}

static int group_setup(void **state)
{
    (void)state;
    g_dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", g_dir);
    OK(ravel_open_local(&g_db, path, NULL));
    ravel_batch *b = ravel_batch_new();
    assert_non_null(b);
    for (size_t i = 0; i < NSEED; i++) {
        if (i)
            assert_true(rv_keycmp(seed[i - 1].key, seed[i - 1].klen, seed[i].key,
                                  seed[i].klen) < 0);
        OK(ravel_batch_put(b, seed[i].key, seed[i].klen, seed[i].val, seed[i].vlen));
    }
    OK(ravel_write(g_db, b));
    ravel_batch_free(b);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ravel_db_close(g_db);
    rm_tmpdir(g_dir);
    return 0;
}

/* ---- rendering results as text, for readable comparisons ---- */

static void put_str(rv_buf *b, const char *s)
{
    assert_int_equal(rv_buf_append(b, s, strlen(s)), 0);
}

static void put_bytes(rv_buf *b, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        char hex[8];
        if (c[i] >= 0x20 && c[i] < 0x7f && c[i] != '\\' && c[i] != '=' && c[i] != ',') {
            assert_int_equal(rv_buf_append(b, &c[i], 1), 0);
        } else {
            snprintf(hex, sizeof hex, "\\x%02x", c[i]);
            put_str(b, hex);
        }
    }
}

/* NUL-terminated contents (the buffer keeps its length). */
static const char *text(rv_buf *b)
{
    assert_int_equal(rv_buf_reserve(b, 1), 0);
    b->data[b->len] = 0;
    return b->data ? b->data : "";
}

/* One entry as an iterator hands it out: "key=value," with only the parts
 * the caller asked for. */
static void put_entry(rv_buf *b, int keys, int values, const void *k, size_t kl, const void *v,
                      size_t vl)
{
    if (keys)
        put_bytes(b, k, kl);
    if (values) {
        put_str(b, "=");
        put_bytes(b, v, vl);
    }
    put_str(b, ",");
}

/* ---- the pair ---- */

typedef struct treq {
    rv_greq g; /* first: a completed rv_greq * is a treq * */
    int completions;
    rv_buf result; /* rendered at completion */
} treq;

typedef struct titer {
    rv_giter g;
    int open;
    int status;     /* what ended it (RAVEL_END or an error), 0 while open */
    long budget;    /* entries it may still take; < 0: any number */
    size_t taken;
    rv_buf log;     /* the entries handed out, rendered */
    /* A seek to seek_target once seek_after entries were handed out. */
    const char *seek_target;
    size_t seek_len, seek_after;
    int sought;
} titer;

enum { MAX_REQS = 32, MAX_ITERS = 4 };

typedef struct world {
    ravel_host_options hopts;
    rv_hsession h;
    rv_gsession g;
    treq reqs[MAX_REQS];
    int nreqs;
    titer *iters[MAX_ITERS];
    int niters;
    size_t down, up;         /* bytes moved on this stream, host->guest and back */
    size_t down_cut, up_cut; /* the stream is cut once this many moved */
} world;

static void world_open(world *w, int retry, const ravel_host_options *hopts)
{
    memset(w, 0, sizeof *w);
    if (hopts)
        w->hopts = *hopts;
    else
        ravel_host_options_init(&w->hopts);
    rv_gsession_init(&w->g, retry, 1u << 20, 64);
    rv_hsession_init(&w->h, g_db, &w->hopts);
    OK(rv_gsession_connected(&w->g));
    w->down_cut = w->up_cut = SIZE_MAX;
}

static void render_reply(treq *r)
{
    rv_buf *b = &r->result;
    if (r->g.status != RAVEL_OK) {
        put_str(b, ravel_errname(r->g.status));
        return;
    }
    assert_non_null(r->g.reply);
    if (r->g.reply->descriptor == &ravelwire__callback__descriptor) {
        Ravelwire__Callback *m = (Ravelwire__Callback *)r->g.reply;
        if (m->has_value) {
            put_str(b, "=");
            put_bytes(b, m->value.data, m->value.len);
        } else {
            put_str(b, "ok");
        }
    } else {
        assert_ptr_equal(r->g.reply->descriptor, &ravelwire__get_many_callback__descriptor);
        Ravelwire__GetManyCallback *m = (Ravelwire__GetManyCallback *)r->g.reply;
        put_str(b, "[");
        for (size_t i = 0; i < m->n_values; i++) {
            if (m->values[i]->has_value)
                put_bytes(b, m->values[i]->value.data, m->values[i]->value.len);
            else
                put_str(b, "-");
            put_str(b, ",");
        }
        put_str(b, "]");
    }
}

static void close_iter(world *w, titer *it)
{
    if (it->open)
        rv_giter_close(&w->g, &it->g);
    it->open = 0;
}

/* What a transport and its callers do when bytes arrive: deliver each
 * completion, and hand out entries while the callers want them. */
static void settle(world *w)
{
    rv_greq *done = w->g.done;
    w->g.done = NULL;
    while (done) {
        treq *r = (treq *)done;
        done = done->done_next;
        r->completions++;
        if (r->completions == 1)
            render_reply(r);
        if (r->g.reply)
            protobuf_c_message_free_unpacked(r->g.reply, &rv_pb_allocator);
        r->g.reply = NULL;
    }
    for (rv_giter *it = w->g.notify; it;) {
        rv_giter *next = it->notify_next;
        it->notified = 0;
        it->notify_next = NULL;
        it = next;
    }
    w->g.notify = NULL;
    for (int i = 0; i < w->niters; i++) {
        titer *it = w->iters[i];
        while (it->open && it->budget != 0) {
            int rc = rv_giter_take(&w->g, &it->g);
            if (rc == RV_WAIT)
                break;
            if (rc != RAVEL_OK) {
                it->status = rc;
                close_iter(w, it);
                break;
            }
            put_entry(&it->log, it->g.user_keys, it->g.user_values, it->g.cur_key.data,
                      it->g.cur_key.len, it->g.cur_val.data, it->g.cur_val.len);
            it->taken++;
            if (it->budget > 0)
                it->budget--;
            if (it->seek_target && !it->sought && it->taken == it->seek_after) {
                OK(rv_giter_seek(&w->g, &it->g, it->seek_target, it->seek_len));
                it->sought = 1;
            }
        }
    }
}

/* Move the bytes each side has for the other until both are quiet (0), or
 * until a cut point is reached (1): then the stream is to be cut. Bytes
 * past the cut are never delivered. */
static int pump(world *w)
{
    settle(w);
    for (int rounds = 0;; rounds++) {
        assert_true(rounds < 10000);
        int moved = 0;
        if (w->h.out.len) {
            size_t n = w->h.out.len;
            if (n > w->down_cut - w->down)
                n = w->down_cut - w->down;
            rv_buf bytes = w->h.out;
            memset(&w->h.out, 0, sizeof w->h.out);
            int rc = rv_gsession_feed(&w->g, (const uint8_t *)bytes.data, n);
            rv_buf_free(&bytes);
            if (rc)
                fail_msg("guest refused the host's bytes: %s", ravel_errname(rc));
            w->down += n;
            settle(w);
            if (w->down == w->down_cut)
                return 1;
            moved = 1;
        }
        if (w->g.out.len) {
            size_t n = w->g.out.len;
            if (n > w->up_cut - w->up)
                n = w->up_cut - w->up;
            rv_buf bytes = w->g.out;
            memset(&w->g.out, 0, sizeof w->g.out);
            int rc = rv_hsession_feed(&w->h, (const uint8_t *)bytes.data, n);
            rv_buf_free(&bytes);
            if (rc)
                fail_msg("host refused the guest's bytes: %s", ravel_errname(rc));
            w->up += n;
            if (w->up == w->up_cut) {
                /* What the host answered before it noticed the end still
                 * reaches the guest; nothing after. */
                if (w->h.out.len) {
                    rc = rv_gsession_feed(&w->g, (const uint8_t *)w->h.out.data, w->h.out.len);
                    if (rc)
                        fail_msg("guest refused the host's bytes: %s", ravel_errname(rc));
                    w->h.out.len = 0;
                }
                settle(w);
                return 1;
            }
            moved = 1;
        }
        if (!moved)
            return 0;
    }
}

static void pump_all(world *w)
{
    assert_int_equal(pump(w), 0);
}

/* The connection ends: the host session goes (closing its iterators), the
 * guest loses its stream and its unsent bytes. */
static void cut(world *w)
{
    rv_hsession_free(&w->h);
    rv_gsession_lost(&w->g);
    settle(w);
}

/* A new connection: a fresh host session on the same database. */
static void reconnect(world *w)
{
    rv_hsession_init(&w->h, g_db, &w->hopts);
    OK(rv_gsession_connected(&w->g));
    w->down = w->up = 0;
    w->down_cut = w->up_cut = SIZE_MAX;
}

static void world_close(world *w)
{
    for (int i = 0; i < w->niters; i++)
        close_iter(w, w->iters[i]);
    rv_gsession_close(&w->g);
    settle(w);
    for (int i = 0; i < w->nreqs; i++) {
        assert_int_equal(w->reqs[i].completions, 1);
        rv_buf_free(&w->reqs[i].result);
        rv_buf_free(&w->reqs[i].g.frame);
    }
    rv_gsession_free(&w->g);
    rv_hsession_free(&w->h);
}

/* ---- requests ---- */

static treq *next_req(world *w)
{
    assert_true(w->nreqs < MAX_REQS);
    return &w->reqs[w->nreqs++];
}

static treq *submit(world *w, uint8_t tag, ProtobufCMessage *msg, uint32_t *id)
{
    treq *r = next_req(w);
    OK(rv_gsession_submit(&w->g, &r->g, tag, msg, id));
    return r;
}

static treq *get(world *w, const char *k, size_t kl)
{
    Ravelwire__Get m = RAVELWIRE__GET__INIT;
    m.key = (ProtobufCBinaryData){kl, (uint8_t *)k};
    return submit(w, RV_IN_GET, &m.base, &m.id);
}

static treq *put(world *w, const char *k, size_t kl, const char *v, size_t vl)
{
    Ravelwire__Put m = RAVELWIRE__PUT__INIT;
    m.key = (ProtobufCBinaryData){kl, (uint8_t *)k};
    if (v) {
        m.has_value = 1;
        m.value = (ProtobufCBinaryData){vl, (uint8_t *)v};
    }
    return submit(w, RV_IN_PUT, &m.base, &m.id);
}

static treq *del(world *w, const char *k, size_t kl)
{
    Ravelwire__Delete m = RAVELWIRE__DELETE__INIT;
    m.key = (ProtobufCBinaryData){kl, (uint8_t *)k};
    return submit(w, RV_IN_DEL, &m.base, &m.id);
}

/* A batch as ravel_write sends it (rv_gsession_submit_batch). */
static treq *batch(world *w, const ravel_batch *b)
{
    treq *r = next_req(w);
    OK(rv_gsession_submit_batch(&w->g, &r->g, b));
    return r;
}

static treq *clear(world *w, Ravelwire__Clear__ClearOptions *o)
{
    Ravelwire__Clear m = RAVELWIRE__CLEAR__INIT;
    m.options = o;
    return submit(w, RV_IN_CLEAR, &m.base, &m.id);
}

static treq *get_many(world *w, size_t n, ProtobufCBinaryData *keys)
{
    Ravelwire__GetMany m = RAVELWIRE__GET_MANY__INIT;
    m.n_keys = n;
    m.keys = keys;
    return submit(w, RV_IN_GET_MANY, &m.base, &m.id);
}

static void expect_result(treq *r, const char *want)
{
    assert_int_equal(r->completions, 1);
    assert_string_equal(text(&r->result), want);
}

/* The value of k in the database, rendered like a Get's result. */
static void expect_db(const char *k, size_t kl, const char *want)
{
    char *v = NULL;
    size_t vl = 0;
    rv_buf b = {0};
    int rc = ravel_get(g_db, k, kl, &v, &vl);
    if (rc == RAVEL_OK) {
        put_str(&b, "=");
        put_bytes(&b, v, vl);
    } else {
        put_str(&b, ravel_errname(rc));
    }
    ravel_free(v);
    assert_string_equal(text(&b), want);
    rv_buf_free(&b);
}

static void test_requests(void **state)
{
    (void)state;
    reset_db();
    world w;
    world_open(&w, 0, NULL);

    treq *get_a = get(&w, S("a"));
    treq *get_empty = get(&w, S(""));
    treq *get_b = get(&w, S("b")); /* an empty value */
    treq *get_missing = get(&w, S("nope"));
    treq *put_wa = put(&w, S("wa"), S("new\0value"));
    treq *get_wa = get(&w, S("wa"));
    treq *put_no_value = put(&w, S("wz"), NULL, 0);
    treq *del_wb = del(&w, S("wb"));
    treq *get_wb = get(&w, S("wb"));
    treq *del_missing = del(&w, S("wnope"));

    ravel_batch *b = ravel_batch_new();
    assert_non_null(b);
    OK(ravel_batch_put(b, S("wc"), S("3")));
    OK(ravel_batch_del(b, S("wd")));
    OK(ravel_batch_put(b, S("wc"), S("3 again")));
    treq *batch_ok = batch(&w, b);
    ravel_batch_free(b);

    /* A batch with an operation many-level does not know: refused whole. */
    Ravelwire__Batch__Operation op_put = RAVELWIRE__BATCH__OPERATION__INIT;
    op_put.type = "put";
    op_put.key = BYTES("wx");
    op_put.has_value = 1;
    op_put.value = BYTES("no");
    Ravelwire__Batch__Operation op_bad = RAVELWIRE__BATCH__OPERATION__INIT;
    op_bad.type = "merge";
    op_bad.key = BYTES("wy");
    Ravelwire__Batch__Operation *ops[] = {&op_put, &op_bad};
    Ravelwire__Batch bad = RAVELWIRE__BATCH__INIT;
    bad.n_ops = 2;
    bad.ops = ops;
    treq *batch_bad = submit(&w, RV_IN_BATCH, &bad.base, &bad.id);

    Ravelwire__Clear__ClearOptions co = RAVELWIRE__CLEAR__CLEAR_OPTIONS__INIT;
    co.has_gte = 1;
    co.gte = BYTES("we");
    co.has_lt = 1;
    co.lt = BYTES("wf");
    co.has_limit = 1;
    co.limit = 2;
    co.has_reverse = 1;
    co.reverse = 1;
    treq *clear_two = clear(&w, &co); /* we2 and we1, from the top */

    ProtobufCBinaryData keys[] = {BYTES("a"), BYTES("nope"), BYTES(""), BYTES("wc"),
                                  BYTES("wd"), BYTES("b")};
    treq *many = get_many(&w, 6, keys);
    treq *many_none = get_many(&w, 0, NULL);
    pump_all(&w);

    expect_result(get_a, "=1");
    expect_result(get_empty, "=empty key");
    expect_result(get_b, "=");
    expect_result(get_missing, "RAVEL_ENOTFOUND");
    expect_result(put_wa, "ok");
    expect_result(get_wa, "=new\\x00value");
    /* LEVEL_INVALID_VALUE is not a code ravel knows: a remote error. */
    expect_result(put_no_value, "RAVEL_EREMOTE");
    expect_result(del_wb, "ok");
    expect_result(get_wb, "RAVEL_ENOTFOUND");
    expect_result(del_missing, "ok");
    expect_result(batch_ok, "ok");
    expect_result(batch_bad, "RAVEL_EREMOTE");
    expect_result(clear_two, "ok");
    expect_result(many, "[1,-,empty key,3 again,-,,]");
    expect_result(many_none, "[]");

    expect_db(S("wa"), "=new\\x00value");
    expect_db(S("wb"), "RAVEL_ENOTFOUND");
    expect_db(S("wc"), "=3 again");
    expect_db(S("wd"), "RAVEL_ENOTFOUND");
    expect_db(S("we"), "=x");
    expect_db(S("we1"), "RAVEL_ENOTFOUND");
    expect_db(S("we2"), "RAVEL_ENOTFOUND");
    expect_db(S("wx"), "RAVEL_ENOTFOUND");
    expect_db(S("wz"), "RAVEL_ENOTFOUND");

    /* The whole "w" range, with no options at all beyond the bounds. */
    co = (Ravelwire__Clear__ClearOptions)RAVELWIRE__CLEAR__CLEAR_OPTIONS__INIT;
    co.has_gt = 1;
    co.gt = BYTES("w");
    co.has_lte = 1;
    co.lte = BYTES("we");
    treq *clear_w = clear(&w, &co);
    treq *get_we = get(&w, S("we"));
    pump_all(&w);
    expect_result(clear_w, "ok");
    expect_result(get_we, "RAVEL_ENOTFOUND");
    expect_db(S("a"), "=1");
    world_close(&w);
}

static const char *refuse_w(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)ud;
    (void)val;
    (void)vlen;
    return klen && key[0] == 'w' ? "no w keys" : NULL;
}

static void test_readonly_and_hooks(void **state)
{
    (void)state;
    reset_db();
    ravel_host_options ro;
    ravel_host_options_init(&ro);
    ro.readonly = 1;
    world w;
    world_open(&w, 0, &ro);
    treq *p = put(&w, S("wa"), S("1"));
    treq *d = del(&w, S("wb"));
    ravel_batch *b = ravel_batch_new();
    assert_non_null(b);
    OK(ravel_batch_put(b, S("wc"), S("3")));
    treq *bt = batch(&w, b);
    ravel_batch_free(b);
    treq *c = clear(&w, NULL);
    treq *g = get(&w, S("wb"));
    pump_all(&w);
    expect_result(p, "RAVEL_EREADONLY");
    expect_result(d, "RAVEL_EREADONLY");
    expect_result(bt, "RAVEL_EREADONLY");
    expect_result(c, "RAVEL_EREADONLY");
    expect_result(g, "=old");
    world_close(&w);

    ravel_host_options hooked;
    ravel_host_options_init(&hooked);
    hooked.preput = refuse_w;
    world_open(&w, 0, &hooked);
    treq *refused = put(&w, S("wa"), S("1"));
    treq *allowed = put(&w, S("a"), S("1"));
    treq *after = get(&w, S("wa"));
    pump_all(&w);
    expect_result(refused, "RAVEL_EREJECTED");
    expect_result(allowed, "ok");
    expect_result(after, "RAVEL_ENOTFOUND");
    world_close(&w);
}

/* ---- requests across cuts ---- */

static void test_retry_before_host_saw_them(void **state)
{
    (void)state;
    reset_db();
    world w;
    world_open(&w, 1, NULL);
    treq *p = put(&w, S("wa"), S("1"));
    treq *g = get(&w, S("wa"));
    treq *d = del(&w, S("wb"));
    /* Lost with the requests unsent, three times over. */
    for (int i = 0; i < 3; i++) {
        cut(&w);
        reconnect(&w);
    }
    /* Submitted while no stream is up: queued for the next one. */
    cut(&w);
    treq *g2 = get(&w, S("wb"));
    reconnect(&w);
    pump_all(&w);
    expect_result(p, "ok");
    expect_result(g, "=1");
    expect_result(d, "ok");
    expect_result(g2, "RAVEL_ENOTFOUND");
    world_close(&w);
}

static void test_retry_after_host_ran_them(void **state)
{
    (void)state;
    reset_db();
    world w;
    world_open(&w, 1, NULL);
    pump_all(&w); /* whatever a new host session says first */
    treq *p = put(&w, S("wa"), S("1"));
    treq *g = get(&w, S("wa"));
    ProtobufCBinaryData keys[] = {BYTES("wa"), BYTES("wb")};
    treq *m = get_many(&w, 2, keys);
    treq *d = del(&w, S("wb"));
    /* The host runs everything; not one reply byte arrives. */
    w.down_cut = w.down;
    assert_int_equal(pump(&w), 1);
    expect_db(S("wb"), "RAVEL_ENOTFOUND");
    for (int i = 0; i < w.nreqs; i++)
        assert_int_equal(w.reqs[i].completions, 0);
    cut(&w);
    reconnect(&w);
    pump_all(&w);
    expect_result(p, "ok");
    expect_result(g, "=1");
    /* Run again on the new stream, after the delete of the first. */
    expect_result(m, "[1,-,]");
    expect_result(d, "ok");
    world_close(&w);
}

static void test_retry_off_fails_once(void **state)
{
    (void)state;
    reset_db();
    world w;
    world_open(&w, 0, NULL);
    treq *done = get(&w, S("a"));
    pump_all(&w);
    treq *p = put(&w, S("wa"), S("1"));
    treq *g = get(&w, S("a"));
    w.down_cut = w.down; /* nothing more reaches the guest */
    assert_int_equal(pump(&w), 1);
    cut(&w);
    expect_result(done, "=1");
    expect_result(p, "RAVEL_ECONNLOST");
    expect_result(g, "RAVEL_ECONNLOST");
    treq r;
    memset(&r, 0, sizeof r);
    Ravelwire__Get m = RAVELWIRE__GET__INIT;
    m.key = BYTES("a");
    assert_int_equal(rv_gsession_submit(&w.g, &r.g, RV_IN_GET, &m.base, &m.id), RAVEL_ECONNLOST);
    /* A later stream does not complete them again. */
    reconnect(&w);
    treq *later = get(&w, S("a"));
    pump_all(&w);
    expect_result(later, "=1");
    assert_int_equal(p->completions, 1);
    assert_int_equal(g->completions, 1);
    world_close(&w);
}

/* ---- iterators ---- */

typedef struct icase {
    const char *name;
    ravel_range r;
    const char *seek;  /* seek here after seek_after entries (NULL: none) */
    size_t seek_len, seek_after;
} icase;

/* What the iterator must hand out, from the seed and the range alone. */
static void model(const icase *c, rv_buf *out)
{
    const ravel_range *r = &c->r;
    size_t order[NSEED], n = 0;
    for (size_t i = 0; i < NSEED; i++) {
        size_t j = r->reverse ? NSEED - 1 - i : i;
        if (rv_range_side(r, seed[j].key, seed[j].klen) == 0)
            order[n++] = j;
    }
    size_t handed = 0, pos = 0;
    for (;;) {
        if (r->limit >= 0 && handed >= (uint64_t)r->limit)
            break;
        if (c->seek && handed == c->seek_after) {
            /* From the first entry at or after the target in the
             * iteration direction, wherever the iterator was. */
            pos = 0;
            while (pos < n) {
                int cmp = rv_keycmp(seed[order[pos]].key, seed[order[pos]].klen, c->seek,
                                    c->seek_len);
                if (r->reverse ? cmp <= 0 : cmp >= 0)
                    break;
                pos++;
            }
        }
        if (pos >= n)
            break;
        const entry *e = &seed[order[pos++]];
        put_entry(out, r->keys, r->values, e->key, e->klen, e->val, e->vlen);
        handed++;
    }
}

static void open_iter(world *w, titer *it, const icase *c)
{
    memset(it, 0, sizeof *it);
    it->budget = -1;
    it->seek_target = c->seek;
    it->seek_len = c->seek_len;
    it->seek_after = c->seek_after;
    OK(rv_giter_open(&w->g, &it->g, &c->r));
    it->open = 1;
    if (c->seek && c->seek_after == 0) {
        OK(rv_giter_seek(&w->g, &it->g, c->seek, c->seek_len));
        it->sought = 1;
    }
    assert_true(w->niters < MAX_ITERS);
    w->iters[w->niters++] = it;
}

enum { CUT_NONE = -1, CUT_EVERY = -2 };

/* Run case c: without a cut, with one cut once `cut_at` entries were
 * handed out, or with a cut after every entry. */
static void run_iter(const icase *c, int retry, long cut_at)
{
    world w;
    world_open(&w, retry, NULL);
    titer it;
    open_iter(&w, &it, c);
    if (cut_at >= 0) {
        it.budget = cut_at;
        pump_all(&w);
        cut(&w);
        reconnect(&w);
        it.budget = -1;
    } else if (cut_at == CUT_EVERY) {
        for (int i = 0; i < 100 && it.open; i++) {
            it.budget = 1;
            pump_all(&w);
            cut(&w);
            reconnect(&w);
        }
        it.budget = -1;
    }
    pump_all(&w);
    rv_buf want = {0};
    model(c, &want);
    if (it.status != RAVEL_END || strcmp(text(&it.log), text(&want)) != 0)
        fail_msg("iterator %s (retry %d, cut %ld): status %s\n  got  %s\n  want %s", c->name,
                 retry, cut_at, ravel_errname(it.status), text(&it.log), text(&want));
    rv_buf_free(&want);
    rv_buf_free(&it.log);
    world_close(&w);
}

static size_t model_count(const icase *c)
{
    rv_buf b = {0};
    model(c, &b);
    size_t n = 0;
    for (size_t i = 0; i < b.len; i++)
        n += b.data[i] == ',';
    rv_buf_free(&b);
    return n;
}

static icase *iter_cases(size_t *n)
{
    static icase cases[32];
    size_t k = 0;
    ravel_range r;
#define CASE(label, ...)                                                  \
    do {                                                                  \
        ravel_range_init(&r);                                             \
        __VA_ARGS__;                                                      \
        cases[k++] = (icase){.name = label, .r = r};                      \
    } while (0)
#define SEEK(target, after)                                               \
    (cases[k - 1].seek = target, cases[k - 1].seek_len = sizeof target - 1, \
     cases[k - 1].seek_after = after)
    CASE("forward", (void)0);
    CASE("reverse", r.reverse = 1);
    CASE("keys only", r.values = 0);
    CASE("reverse keys only", r.reverse = 1, r.values = 0);
    CASE("values only", r.keys = 0);
    CASE("reverse values only", r.reverse = 1, r.keys = 0);
    CASE("limit", r.limit = 4);
    CASE("reverse limit", r.reverse = 1, r.limit = 4);
    CASE("limit 0", r.limit = 0);
    CASE("gt a lte ab", r.has_gt = 1, r.gt = BOUND("a"), r.has_lte = 1, r.lte = BOUND("ab"));
    CASE("reverse gt a lte ab", r.reverse = 1, r.has_gt = 1, r.gt = BOUND("a"), r.has_lte = 1,
         r.lte = BOUND("ab"));
    CASE("reverse lt aa (down to the empty key)", r.reverse = 1, r.has_lt = 1,
         r.lt = BOUND("aa"));
    CASE("reverse lte a\\0 keys only", r.reverse = 1, r.has_lte = 1, r.lte = BOUND("a\0"),
         r.values = 0);
    CASE("gte a\\0 lt b values only limit 3", r.has_gte = 1, r.gte = BOUND("a\0"), r.has_lt = 1,
         r.lt = BOUND("b"), r.keys = 0, r.limit = 3);
    CASE("gte empty lte empty", r.has_gte = 1, r.gte = BOUND(""), r.has_lte = 1,
         r.lte = BOUND(""));
    CASE("reverse over nothing", r.reverse = 1, r.has_gt = 1, r.gt = BOUND("\xff\xff"));
    CASE("reverse gte \\xff", r.reverse = 1, r.has_gte = 1, r.gte = BOUND("\xff"));
    CASE("seek forward", (void)0);
    SEEK("aa", 2);
    CASE("seek back", (void)0);
    SEEK("a", 6);
    CASE("reverse seek", r.reverse = 1);
    SEEK("a\xff", 1);
    CASE("reverse seek to the empty key", r.reverse = 1, r.values = 0);
    SEEK("", 3);
    CASE("reverse seek between keys", r.reverse = 1, r.keys = 0);
    SEEK("aa\x01", 0);
    CASE("seek with limit", r.limit = 5);
    SEEK("b", 2);
#undef CASE
#undef SEEK
    *n = k;
    return cases;
}

static void test_iterators_uncut(void **state)
{
    (void)state;
    reset_db();
    size_t n;
    icase *cases = iter_cases(&n);
    for (size_t i = 0; i < n; i++)
        for (int retry = 0; retry <= 1; retry++)
            run_iter(&cases[i], retry, CUT_NONE);
}

static void test_iterators_resume_at_every_entry(void **state)
{
    (void)state;
    reset_db();
    size_t n;
    icase *cases = iter_cases(&n);
    for (size_t i = 0; i < n; i++) {
        size_t total = model_count(&cases[i]);
        for (size_t k = 0; k <= total + 1; k++)
            run_iter(&cases[i], 1, (long)k);
        run_iter(&cases[i], 1, CUT_EVERY);
    }
}

/* ---- a short exchange, cut after every byte ---- */

typedef struct exchange {
    world w;
    treq *r[10];
    titer it[3];
    icase ic[3];
} exchange;

/* Requests whose results do not depend on where the stream is cut: a
 * request that ran but whose reply was lost runs again, after the ones
 * before it, so every write here is idempotent, and the iterators read
 * keys nothing writes. */
static void exchange_start(exchange *x, int retry)
{
    reset_db();
    world_open(&x->w, retry, NULL);
    world *w = &x->w;
    x->r[0] = put(w, S("wa"), S("1"));
    x->r[1] = get(w, S("wa"));
    x->r[2] = del(w, S("wb"));
    x->r[3] = get(w, S("wb"));
    ravel_batch *b = ravel_batch_new();
    assert_non_null(b);
    OK(ravel_batch_put(b, S("wc"), S("3")));
    OK(ravel_batch_del(b, S("wd")));
    x->r[4] = batch(w, b);
    ravel_batch_free(b);
    Ravelwire__Clear__ClearOptions co = RAVELWIRE__CLEAR__CLEAR_OPTIONS__INIT;
    co.has_gte = 1;
    co.gte = BYTES("we");
    co.has_lt = 1;
    co.lt = BYTES("wf");
    x->r[5] = clear(w, &co);
    ProtobufCBinaryData keys[] = {BYTES("wc"), BYTES("wd"), BYTES("a\0"), BYTES("we1")};
    x->r[6] = get_many(w, 4, keys);
    x->r[7] = get(w, S("nope"));

    ravel_range r;
    ravel_range_init(&r);
    r.has_lt = 1;
    r.lt = BOUND("w");
    x->ic[0] = (icase){.name = "forward", .r = r};
    ravel_range_init(&r);
    r.reverse = 1;
    r.values = 0;
    r.has_lte = 1;
    r.lte = BOUND("aa\xff");
    r.limit = 6;
    x->ic[1] = (icase){.name = "reverse keys only", .r = r};
    ravel_range_init(&r);
    r.keys = 0;
    r.has_gte = 1;
    r.gte = BOUND("a");
    r.has_lt = 1;
    r.lt = BOUND("c");
    x->ic[2] = (icase){.name = "values only, seek", .r = r, .seek = "aa", .seek_len = 2,
                       .seek_after = 2};
    for (int i = 0; i < 3; i++)
        open_iter(w, &x->it[i], &x->ic[i]);
}

static const char *const exchange_want[] = {
    "ok", "=1", "ok", "RAVEL_ENOTFOUND", "ok", "ok", "[3,-,2,-,]", "RAVEL_ENOTFOUND",
};
#define NEXCH (sizeof exchange_want / sizeof exchange_want[0])

/* Everything completed once, as it must; with retry off a request may
 * instead fail with RAVEL_ECONNLOST, and an iterator stop early with it. */
static void exchange_check(exchange *x, int retry, const char *how, ssize_t at)
{
    for (size_t i = 0; i < NEXCH; i++) {
        treq *r = x->r[i];
        const char *got = text(&r->result);
        if (r->completions != 1 ||
            (strcmp(got, exchange_want[i]) != 0 &&
             (retry || strcmp(got, "RAVEL_ECONNLOST") != 0)))
            fail_msg("cut %s at byte %zd: request %zu completed %d times, %s (want %s)", how, at,
                     i, r->completions, got, exchange_want[i]);
    }
    for (int i = 0; i < 3; i++) {
        titer *it = &x->it[i];
        rv_buf want = {0};
        model(&x->ic[i], &want);
        const char *got = text(&it->log), *exp = text(&want);
        int ok = it->status == RAVEL_END && strcmp(got, exp) == 0;
        if (!retry && it->status == RAVEL_ECONNLOST)
            ok = strncmp(got, exp, strlen(got)) == 0;
        if (!ok)
            fail_msg("cut %s at byte %zd: iterator %s: status %s\n  got  %s\n  want %s", how, at,
                     x->ic[i].name, ravel_errname(it->status), got, exp);
        rv_buf_free(&want);
        rv_buf_free(&it->log);
    }
    if (retry) {
        expect_db(S("wa"), "=1");
        expect_db(S("wb"), "RAVEL_ENOTFOUND");
        expect_db(S("wc"), "=3");
        expect_db(S("wd"), "RAVEL_ENOTFOUND");
        expect_db(S("we1"), "RAVEL_ENOTFOUND");
    }
}

/* Run the exchange; cut a stream once `at` bytes went host->guest (down)
 * or guest->host (!down) on it, twice, then let a third stream finish.
 * Returns the bytes that went that way when nothing was cut. */
static size_t exchange_run(int retry, int down, size_t at, const char *how)
{
    exchange x;
    memset(&x, 0, sizeof x);
    exchange_start(&x, retry);
    world *w = &x.w;
    size_t moved = SIZE_MAX;
    /* The same cut on up to two streams in a row, then one left whole. */
    for (int stream = 0; stream < 3; stream++) {
        if (stream == 2)
            w->down_cut = w->up_cut = SIZE_MAX;
        else if (down)
            w->down_cut = at;
        else
            w->up_cut = at;
        if (!pump(w))
            break;
        if (moved == SIZE_MAX)
            moved = at;
        cut(w);
        reconnect(w);
    }
    if (moved == SIZE_MAX)
        moved = down ? w->down : w->up;
    exchange_check(&x, retry, how, at == SIZE_MAX ? -1 : (ssize_t)at); /* -1: no cut */
    world_close(w);
    return moved;
}

static void test_cut_at_every_byte(void **state)
{
    (void)state;
    for (int retry = 1; retry >= 0; retry--) {
        for (int down = 1; down >= 0; down--) {
            const char *how = down ? "host->guest" : "guest->host";
            size_t total = exchange_run(retry, down, SIZE_MAX, how);
            assert_true(total > 100);
            for (size_t at = 0; at <= total; at++)
                exchange_run(retry, down, at, how);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_readonly_and_hooks),
        cmocka_unit_test(test_retry_before_host_saw_them),
        cmocka_unit_test(test_retry_after_host_ran_them),
        cmocka_unit_test(test_retry_off_fails_once),
        cmocka_unit_test(test_iterators_uncut),
        cmocka_unit_test(test_iterators_resume_at_every_entry),
        cmocka_unit_test(test_cut_at_every_byte),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
