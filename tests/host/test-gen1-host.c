/* The host session in the first generation's protocol (multileveldown 5),
 * in memory over a real LevelDB: the bytes of its replies (no Announce,
 * errors as words, one entry per IteratorData), its iterator budget and
 * re-arm, and hostile input — tags it does not know ignored, a malformed
 * Iterator closing the connection, a many-level Iterator read as what it
 * is in this protocol ("close"), a budget of 2^32 - 1 from a guest that
 * never reads held at the high-water mark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../helpers.h"
#include "host/session.h"
#include "transport/address.h"
#include "util/alloc.h"
#include "wire/gen1.h"

#define B(s) ((ProtobufCBinaryData){.len = strlen(s), .data = (uint8_t *)(s)})

static char *dir;
static ravel_db *db;
static ravel_host_options opts;
static rv_hsession s;

static int setup(void **state)
{
    (void)state;
    dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    OK(ravel_open_local(&db, path, NULL));
    for (int i = 0; i < 100; i++) {
        char k[8], v[8];
        snprintf(k, sizeof k, "k%03d", i);
        snprintf(v, sizeof v, "v%d", i);
        OK(ravel_put(db, k, strlen(k), v, strlen(v)));
    }
    ravel_host_options_init(&opts);
    OK(rv_hsession_init_dialect(&s, db, &opts, RV_DIALECT_GEN1));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rv_hsession_free(&s);
    ravel_db_close(db);
    rm_tmpdir(dir);
    return 0;
}

static int feed_msg(uint8_t tag, const ProtobufCMessage *m)
{
    rv_buf b = {0};
    assert_int_equal(rv_encode(&b, tag, m), 0);
    int rc = rv_hsession_feed(&s, (const uint8_t *)b.data, b.len);
    rv_buf_free(&b);
    return rc;
}

/* The frames in s.out, taken one at a time. */
typedef struct frames {
    uint8_t tag[4096];
    rv_buf payload[4096];
    size_t n;
} frames;

static int collect(void *ud, const uint8_t *p, size_t len)
{
    frames *f = ud;
    assert_true(f->n < 4096);
    f->tag[f->n] = p[0];
    memset(&f->payload[f->n], 0, sizeof f->payload[0]);
    assert_int_equal(rv_buf_set(&f->payload[f->n], p, len), 0);
    f->n++;
    return 0;
}

static frames *take(void)
{
    frames *f = calloc(1, sizeof *f);
    rv_decoder d;
    rv_decoder_init(&d, 0);
    assert_int_equal(rv_decoder_feed(&d, (const uint8_t *)s.out.data, s.out.len, collect, f), 0);
    rv_decoder_free(&d);
    s.out.len = 0;
    return f;
}

static void frames_free(frames *f)
{
    for (size_t i = 0; i < f->n; i++)
        rv_buf_free(&f->payload[i]);
    free(f);
}

static Ravelwire__Gen1IteratorData *entry(frames *f, size_t i)
{
    assert_int_equal(f->tag[i], 1);
    int rc;
    Ravelwire__Gen1IteratorData *d =
        rv_gen1_unpack_iter_data((const uint8_t *)f->payload[i].data, f->payload[i].len, &rc);
    assert_non_null(d);
    return d;
}

static void open_iter(uint32_t id, uint32_t batch, Ravelwire__Gen1Iterator__Options *o)
{
    Ravelwire__Gen1Iterator m = RAVELWIRE__GEN1_ITERATOR__INIT;
    m.id = id;
    m.has_batch = 1;
    m.batch = batch;
    m.options = o;
    OK(feed_msg(RV_IN_ITERATOR, &m.base));
}

static void test_no_announce_and_errors_as_words(void **state)
{
    (void)state;
    assert_int_equal(s.out.len, 0); /* its guests know no Announce */
    Ravelwire__Get g = RAVELWIRE__GET__INIT;
    g.id = 7;
    g.key = B("nope");
    OK(feed_msg(RV_IN_GET, &g.base));
    rv_buf want = {0};
    assert_int_equal(rv_encode_callback(&want, 7, "NotFound: ", NULL, 0), 0);
    assert_int_equal(s.out.len, want.len);
    assert_memory_equal(s.out.data, want.data, want.len);
    rv_buf_free(&want);
    s.out.len = 0;

    /* Readonly: multileveldown's words. */
    rv_hsession_free(&s);
    opts.readonly = 1;
    OK(rv_hsession_init_dialect(&s, db, &opts, RV_DIALECT_GEN1));
    Ravelwire__Put p = RAVELWIRE__PUT__INIT;
    p.id = 8;
    p.key = B("k");
    p.has_value = 1;
    p.value = B("v");
    OK(feed_msg(RV_IN_PUT, &p.base));
    int rc;
    Ravelwire__Callback *cb = (Ravelwire__Callback *)rv_unpack_out(
        (const uint8_t *)s.out.data + 1, s.out.len - 1, &rc);
    assert_non_null(cb);
    assert_int_equal(cb->id, 8);
    assert_string_equal(cb->error, "Database is readonly");
    assert_null(cb->message);
    assert_int_equal(rv_gen1_code(cb->error), RAVEL_EREADONLY);
    assert_int_equal(rv_gen1_code("NotFound: "), RAVEL_ENOTFOUND);
    assert_int_equal(rv_gen1_code("Key not found in database [x]"), RAVEL_EREMOTE);
    protobuf_c_message_free_unpacked(&cb->base, &rv_pb_allocator);
    s.out.len = 0;
}

static void test_budget_rearm_and_end(void **state)
{
    (void)state;
    open_iter(0, RV_GEN1_BATCH, NULL); /* no options: keys and values */
    frames *f = take();
    assert_int_equal(f->n, RV_GEN1_BATCH);
    Ravelwire__Gen1IteratorData *d = entry(f, 0);
    assert_true(d->has_key && d->has_value && !d->error);
    assert_memory_equal(d->key.data, "k000", 4);
    protobuf_c_message_free_unpacked(&d->base, &rv_pb_allocator);
    frames_free(f);
    /* A re-arm (same id, no options) sets the budget again, not more. */
    for (int round = 1; round <= 3; round++) {
        open_iter(0, RV_GEN1_BATCH, NULL);
        f = take();
        size_t want = round < 3 ? RV_GEN1_BATCH : 100 - 3 * RV_GEN1_BATCH + 1; /* + the end */
        assert_int_equal(f->n, want);
        d = entry(f, f->n - 1);
        if (round == 3)
            assert_true(!d->has_key && !d->has_value && !d->error); /* the end */
        protobuf_c_message_free_unpacked(&d->base, &rv_pb_allocator);
        frames_free(f);
    }
    /* After the end nothing more; batch 0 closes. */
    open_iter(0, RV_GEN1_BATCH, NULL);
    assert_int_equal(s.out.len, 0);
    open_iter(0, 0, NULL);
    assert_int_equal(s.gen1_iters.len, 0);

    /* Keys only, reverse, limit: the key alone in each frame. */
    Ravelwire__Gen1Iterator__Options o = RAVELWIRE__GEN1_ITERATOR__OPTIONS__INIT;
    o.has_values = 1;
    o.values = 0;
    o.has_reverse = 1;
    o.reverse = 1;
    o.has_limit = 1;
    o.limit = 3;
    open_iter(5, RV_GEN1_BATCH, &o);
    f = take();
    assert_int_equal(f->n, 4);
    d = entry(f, 0);
    assert_true(d->has_key && !d->has_value);
    assert_memory_equal(d->key.data, "k099", 4);
    protobuf_c_message_free_unpacked(&d->base, &rv_pb_allocator);
    frames_free(f);
}

static void test_hostile_input(void **state)
{
    (void)state;
    /* Tags multileveldown's host does not know: ignored, unread. */
    static const uint8_t unknown[] = {2, 7, 0xff, 2, 8, 0xff, 2, 9, 0xff, 2, 64, 0xff};
    OK(rv_hsession_feed(&s, unknown, sizeof unknown));
    assert_int_equal(s.out.len, 0);
    /* A many-level Iterator (seq 0) is a valid frame here: "close". */
    Ravelwire__Iterator__Options mo = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    Ravelwire__Iterator mi = RAVELWIRE__ITERATOR__INIT;
    mi.id = 3;
    mi.seq = 0;
    mi.options = &mo;
    OK(feed_msg(RV_IN_ITERATOR, &mi.base));
    assert_int_equal(s.out.len, 0);
    assert_int_equal(s.gen1_iters.len, 0);
    /* A malformed one (no id, a truncated field) closes the connection. */
    static const uint8_t bad[] = {3, 4, 0x10, 0x20};
    assert_int_not_equal(rv_hsession_feed(&s, bad, sizeof bad), RAVEL_OK);
}

static size_t most_out;
static int flush_counting(void *ud)
{
    (void)ud;
    if (s.out.len > most_out)
        most_out = s.out.len;
    s.out.len = 0; /* written */
    return 0;
}

static int peer_gone(void *ud)
{
    (void)ud;
    return 1;
}

static void test_a_guest_that_never_reads(void **state)
{
    (void)state;
    char v[4096];
    memset(v, 'x', sizeof v);
    ravel_batch *b = ravel_batch_new();
    for (int i = 0; i < 2000; i++) {
        char k[16];
        snprintf(k, sizeof k, "z%05d", i);
        ravel_batch_put(b, k, strlen(k), v, sizeof v);
    }
    OK(ravel_write(db, b));
    ravel_batch_free(b);
    /* A budget of 2^32 - 1 over 8 MB: written out at the high-water mark. */
    s.flush = flush_counting;
    open_iter(1, UINT32_MAX, NULL);
    assert_true(most_out > 0);
    assert_true(most_out < RV_HOST_HIGH_WATER + sizeof v + 64);
    /* A peer that is gone ends the connection instead. */
    s.out.len = 0;
    s.flush = peer_gone;
    Ravelwire__Gen1Iterator m = RAVELWIRE__GEN1_ITERATOR__INIT;
    m.id = 2;
    m.has_batch = 1;
    m.batch = UINT32_MAX;
    assert_int_equal(feed_msg(RV_IN_ITERATOR, &m.base), RAVEL_ECONNLOST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_announce_and_errors_as_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_rearm_and_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_guest_that_never_reads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
