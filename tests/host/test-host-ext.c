/* Extensions on the host side (docs/protocol-extensions.md): the host
 * session, in memory, against a local database. Its Announce is the first
 * frame of a stream; a hook's message reaches a guest only after that
 * guest's Hello turned "error-messages" on, so a guest that never says
 * Hello (every Node guest) gets many-level's bytes exactly. */
#include <stdio.h>
#include <string.h>

#include "../helpers.h"
#include "host/session.h"
#include "wire/codec.h"

#define B(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

static char *dir;
static ravel_db *db;
static ravel_host_options opts;
static char logged[512];
static int nlogged;

static const char *no_sys(const char *key, size_t klen)
{
    return klen >= 5 && memcmp(key, "/sys/", 5) == 0 ? "no writes under /sys" : NULL;
}

static const char *preput(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)ud;
    (void)val;
    (void)vlen;
    return no_sys(key, klen);
}

static const char *predel(void *ud, const char *key, size_t klen)
{
    (void)ud;
    return no_sys(key, klen);
}

static const char *prebatch(void *ud, const ravel_batch *b)
{
    (void)ud;
    for (size_t i = 0; i < ravel_batch_count(b); i++) {
        int is_put;
        const char *k, *v;
        size_t kl, vl;
        ravel_batch_op(b, i, &is_put, &k, &kl, &v, &vl);
        if (no_sys(k, kl))
            return "no batches under /sys";
    }
    return NULL;
}

static void log_line(void *ud, const char *line)
{
    (void)ud;
    snprintf(logged, sizeof logged, "%s", line);
    nlogged++;
}

static int setup(void **state)
{
    (void)state;
    dir = make_tmpdir();
    OK(ravel_open_local(&db, dir, NULL));
    ravel_host_options_init(&opts);
    opts.preput = preput;
    opts.predel = predel;
    opts.prebatch = prebatch;
    opts.max_iterators = 1;
    nlogged = 0;
    logged[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ravel_db_close(db);
    rm_tmpdir(dir);
    return 0;
}

/* ---- frames ---- */

typedef struct frames {
    size_t n;
    uint8_t tags[16];
    ProtobufCMessage *msgs[16];
} frames;

static int collect(void *ud, const uint8_t *p, size_t len)
{
    frames *f = ud;
    assert_true(f->n < 16);
    int st;
    f->tags[f->n] = p[0];
    f->msgs[f->n] = rv_unpack_out(p, len, &st);
    assert_non_null(f->msgs[f->n]);
    f->n++;
    return 0;
}

/* The frames the host wrote so far (and `out` emptied). */
static void take_out(rv_hsession *s, frames *f)
{
    memset(f, 0, sizeof *f);
    rv_decoder d;
    rv_decoder_init(&d, 0);
    assert_int_equal(rv_decoder_feed(&d, (const uint8_t *)s->out.data, s->out.len, collect, f), 0);
    rv_decoder_free(&d);
    s->out.len = 0;
}

static void frames_free(frames *f)
{
    for (size_t i = 0; i < f->n; i++)
        protobuf_c_message_free_unpacked(f->msgs[i], NULL);
}

static void feed_msg(rv_hsession *s, uint8_t tag, const ProtobufCMessage *m)
{
    rv_buf b = {0};
    OK(rv_encode(&b, tag, m));
    OK(rv_hsession_feed(s, (const uint8_t *)b.data, b.len));
    rv_buf_free(&b);
}

static void feed_put(rv_hsession *s, uint32_t id, const char *key)
{
    Ravelwire__Put m = RAVELWIRE__PUT__INIT;
    m.id = id;
    m.key = B(key);
    m.has_value = 1;
    m.value = B("v");
    feed_msg(s, RV_IN_PUT, &m.base);
}

static void feed_hello(rv_hsession *s, uint32_t exts)
{
    rv_buf b = {0};
    OK(rv_encode_hello(&b, exts));
    OK(rv_hsession_feed(s, (const uint8_t *)b.data, b.len));
    rv_buf_free(&b);
}

/* Feed a Put of key and take its reply: exactly the bytes of a Callback
 * with `id`, the wire error and (if not NULL) message. */
static void put_expect(rv_hsession *s, uint32_t id, const char *key, const char *error,
                       const char *message)
{
    feed_put(s, id, key);
    rv_buf want = {0};
    OK(rv_encode_callback_msg(&want, id, error, message, NULL, 0));
    assert_int_equal(s->out.len, want.len);
    assert_memory_equal(s->out.data, want.data, want.len);
    rv_buf_free(&want);
    s->out.len = 0;
}

/* ---- tests ---- */

static void test_announcement_is_first_frame(void **state)
{
    (void)state;
    rv_hsession s;
    OK(rv_hsession_init(&s, db, &opts));
    rv_buf want = {0};
    OK(rv_encode_announce(&want, RV_EXT_ALL));
    assert_int_equal(s.out.len, want.len);
    assert_memory_equal(s.out.data, want.data, want.len);
    rv_buf_free(&want);

    /* Before any reply, even when the guest's bytes are there at once. */
    Ravelwire__Get g = RAVELWIRE__GET__INIT;
    g.id = 5;
    g.key = B("k");
    feed_msg(&s, RV_IN_GET, &g.base);
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.tags[0], RV_OUT_ANNOUNCE);
    Ravelwire__Announce *a = (Ravelwire__Announce *)f.msgs[0];
    assert_int_equal(a->version, RV_PROTO_VERSION);
    assert_int_equal(a->n_extensions, 6);
    assert_string_equal(a->extensions[0], "error-messages");
    assert_string_equal(a->extensions[1], "conditional");
    assert_string_equal(a->extensions[2], "sync");
    assert_string_equal(a->extensions[3], "exactly-once");
    assert_string_equal(a->extensions[4], "snapshots");
    assert_string_equal(a->extensions[5], "maintenance");
    assert_int_equal(f.tags[1], RV_OUT_CALLBACK);
    assert_string_equal(((Ravelwire__Callback *)f.msgs[1])->error, "LEVEL_NOT_FOUND");
    frames_free(&f);
    rv_hsession_free(&s);
}

static void test_hook_message_only_after_hello(void **state)
{
    (void)state;
    rv_hsession s;
    OK(rv_hsession_init(&s, db, &opts));
    s.log = log_line;
    s.out.len = 0;
    /* No Hello (a Node guest): many-level's bytes, the code alone. */
    put_expect(&s, 1, "/sys/a", "LEVEL_REJECTED", NULL);
    put_expect(&s, 2, "/etc/a", NULL, NULL);
    /* The hook's words were logged all the same. */
    assert_int_equal(nlogged, 1);
    assert_string_equal(logged, "the preput hook rejected a write: no writes under /sys");

    /* A Hello without the extension changes nothing. */
    feed_hello(&s, 0);
    assert_int_equal(s.out.len, 0); /* a Hello has no reply */
    put_expect(&s, 3, "/sys/a", "LEVEL_REJECTED", NULL);
    rv_hsession_free(&s);

    /* With it: the message, for puts, dels and batches. */
    OK(rv_hsession_init(&s, db, &opts));
    s.out.len = 0;
    put_expect(&s, 1, "/sys/a", "LEVEL_REJECTED", NULL);
    feed_hello(&s, RV_EXT_ERROR_MESSAGES);
    assert_int_equal(s.ext_on, RV_EXT_ERROR_MESSAGES);
    put_expect(&s, 2, "/sys/a", "LEVEL_REJECTED", "no writes under /sys");
    put_expect(&s, 3, "/etc/b", NULL, NULL); /* a success carries none */

    Ravelwire__Delete d = RAVELWIRE__DELETE__INIT;
    d.id = 4;
    d.key = B("/sys/a");
    feed_msg(&s, RV_IN_DEL, &d.base);
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_string_equal(((Ravelwire__Callback *)f.msgs[0])->message, "no writes under /sys");
    frames_free(&f);

    Ravelwire__Batch__Operation op = RAVELWIRE__BATCH__OPERATION__INIT;
    op.type = "put";
    op.key = B("/sys/b");
    op.has_value = 1;
    op.value = B("v");
    Ravelwire__Batch__Operation *ops[] = {&op};
    Ravelwire__Batch bm = RAVELWIRE__BATCH__INIT;
    bm.id = 5;
    bm.n_ops = 1;
    bm.ops = ops;
    feed_msg(&s, RV_IN_BATCH, &bm.base);
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    Ravelwire__Callback *cb = (Ravelwire__Callback *)f.msgs[0];
    assert_string_equal(cb->error, "LEVEL_REJECTED");
    assert_string_equal(cb->message, "no batches under /sys");
    frames_free(&f);

    /* A second Hello is ignored: the extension stays on. */
    feed_hello(&s, 0);
    put_expect(&s, 6, "/sys/c", "LEVEL_REJECTED", "no writes under /sys");
    rv_hsession_free(&s);
    char *v;
    size_t vl;
    assert_int_equal(ravel_get(db, "/sys/a", 6, &v, &vl), RAVEL_ENOTFOUND);
}

/* A Hello that names only what this host does not know turns nothing on. */
static void test_hello_unknown_names(void **state)
{
    (void)state;
    rv_hsession s;
    OK(rv_hsession_init(&s, db, &opts));
    s.out.len = 0;
    char *names[] = {"from-the-future"};
    Ravelwire__Hello h = RAVELWIRE__HELLO__INIT;
    h.version = 99;
    h.n_extensions = 1;
    h.extensions = names;
    feed_msg(&s, RV_IN_HELLO, &h.base);
    assert_int_equal(s.ext_on, 0);
    put_expect(&s, 1, "/sys/a", "LEVEL_REJECTED", NULL);
    rv_hsession_free(&s);
}

/* Other failures' detail: the iterator limit, an invalid put. */
static void test_other_failure_detail(void **state)
{
    (void)state;
    rv_hsession s;
    OK(rv_hsession_init(&s, db, &opts));
    feed_hello(&s, RV_EXT_ERROR_MESSAGES);
    s.out.len = 0;
    Ravelwire__Iterator__Options o = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    Ravelwire__Iterator it = RAVELWIRE__ITERATOR__INIT;
    it.options = &o;
    it.id = 1;
    feed_msg(&s, RV_IN_ITERATOR, &it.base);
    it.id = 2; /* over max_iterators (1) */
    feed_msg(&s, RV_IN_ITERATOR, &it.base);
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.tags[0], RV_OUT_ITER_END); /* the empty database */
    assert_int_equal(f.tags[1], RV_OUT_ITER_ERROR);
    Ravelwire__IteratorError *e = (Ravelwire__IteratorError *)f.msgs[1];
    assert_string_equal(e->error, "LEVEL_LIMIT_EXCEEDED");
    assert_non_null(e->message);
    assert_non_null(strstr(e->message, "at most 1 iterators"));
    frames_free(&f);

    Ravelwire__Put p = RAVELWIRE__PUT__INIT;
    p.id = 3;
    p.key = B("k");
    feed_msg(&s, RV_IN_PUT, &p.base);
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_string_equal(((Ravelwire__Callback *)f.msgs[0])->error, "LEVEL_INVALID_VALUE");
    assert_string_equal(((Ravelwire__Callback *)f.msgs[0])->message, "a put without a value");
    frames_free(&f);
    rv_hsession_free(&s);

    /* The same without a Hello: no message anywhere. */
    OK(rv_hsession_init(&s, db, &opts));
    s.out.len = 0;
    it.id = 1;
    feed_msg(&s, RV_IN_ITERATOR, &it.base);
    it.id = 2;
    feed_msg(&s, RV_IN_ITERATOR, &it.base);
    feed_msg(&s, RV_IN_PUT, &p.base);
    take_out(&s, &f);
    assert_int_equal(f.n, 3);
    assert_null(((Ravelwire__IteratorError *)f.msgs[1])->message);
    assert_null(((Ravelwire__Callback *)f.msgs[2])->message);
    frames_free(&f);
    rv_hsession_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_announcement_is_first_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook_message_only_after_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_unknown_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_failure_detail, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
