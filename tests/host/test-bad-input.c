/* Every kind of bad input a guest can send a host, each with a defined
 * outcome (an error reply, or that connection closed), the host serving
 * others throughout, and nothing already written lost. Also the limits:
 * iterators per connection, a guest that stops reading, oversized and too
 * many requests on the guest side. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../helpers.h"
#include "wire/codec.h"

#define S(x) x, strlen(x)
#define B(s) ((ProtobufCBinaryData){.len = strlen(s), .data = (uint8_t *)(s)})

static pair p;
static int raw; /* our end of a raw connection to the host */
static rv_decoder dec;
static uint8_t last[1 << 16];
static size_t last_len;

static int grab(void *ud, const uint8_t *payload, size_t len)
{
    (void)ud;
    memcpy(last, payload, len < sizeof last ? len : sizeof last);
    last_len = len;
    return 1; /* one frame at a time */
}

static int read_frame(void);

static void raw_open(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    OK(ravel_host_attach_fd(p.host, sv[0], sv[0]));
    raw = sv[1];
    rv_decoder_init(&dec, 0);
    /* A ravel host's first frame: its Announce (docs/protocol-extensions.md). */
    assert_true(read_frame());
    assert_int_equal(last[0], RV_OUT_ANNOUNCE);
}

static void raw_close(void)
{
    close(raw);
    rv_decoder_free(&dec);
}

static void send_msg(uint8_t tag, const ProtobufCMessage *m)
{
    rv_buf b = {0};
    rv_encode(&b, tag, m);
    assert_int_equal(write(raw, b.data, b.len), (ssize_t)b.len);
    rv_buf_free(&b);
}

static void send_bytes(const void *bytes, size_t n)
{
    assert_int_equal(write(raw, bytes, n), (ssize_t)n);
}

/* Read one frame byte by byte (so nothing past it is consumed); 0 if the
 * host closed the connection. */
static int read_frame(void)
{
    for (;;) {
        struct pollfd pfd = {raw, POLLIN, 0};
        assert_true(poll(&pfd, 1, 10000) == 1);
        uint8_t byte;
        ssize_t n = read(raw, &byte, 1);
        if (n <= 0)
            return 0;
        if (rv_decoder_feed(&dec, &byte, 1, grab, NULL) == 1)
            return 1;
    }
}

static ProtobufCMessage *reply(void)
{
    assert_true(read_frame());
    int st;
    ProtobufCMessage *m = rv_unpack_out(last, last_len, &st);
    assert_non_null(m);
    return m;
}

/* The next reply must be a Callback for id; returns its error (copied) or NULL. */
static const char *expect_callback(uint32_t id)
{
    static char err[64];
    ProtobufCMessage *m = reply();
    assert_int_equal(last[0], RV_OUT_CALLBACK);
    Ravelwire__Callback *cb = (Ravelwire__Callback *)m;
    assert_int_equal(cb->id, id);
    const char *e = NULL;
    if (cb->error) {
        snprintf(err, sizeof err, "%s", cb->error);
        e = err;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return e;
}

static void get(uint32_t id, const char *key)
{
    Ravelwire__Get g = RAVELWIRE__GET__INIT;
    g.id = id;
    g.key = B(key);
    send_msg(RV_IN_GET, &g.base);
}

static int host_closed(void)
{
    struct pollfd pfd = {raw, POLLIN, 0};
    for (int i = 0; i < 100; i++) {
        if (poll(&pfd, 1, 100) > 0) {
            char c;
            if (read(raw, &c, 1) <= 0)
                return 1;
        }
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.max_frame = 1 << 16;
    ho.max_iterators = 3;
    pair_open(&p, &ho, NULL);
    OK(ravel_put(p.local, S("sentinel"), S("kept")));
    raw_open();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    raw_close();
    /* Whatever happened, the host still serves, and nothing was lost. */
    char *v;
    size_t vl;
    OK(ravel_get(p.guest, S("sentinel"), &v, &vl));
    assert_memory_equal(v, "kept", 4);
    ravel_free(v);
    pair_close(&p);
    return 0;
}

static void test_reused_request_ids(void **state)
{
    (void)state;
    get(5, "sentinel");
    get(5, "missing");
    assert_null(expect_callback(5));
    assert_string_equal(expect_callback(5), "LEVEL_NOT_FOUND");
}

static void test_iterator_id_collision_and_unknown_iterators(void **state)
{
    (void)state;
    Ravelwire__Iterator__Options o = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    o.has_keys = o.keys = 1;
    Ravelwire__Iterator it = RAVELWIRE__ITERATOR__INIT;
    it.id = 9;
    it.options = &o;
    send_msg(RV_IN_ITERATOR, &it.base);
    ProtobufCMessage *m = reply();
    assert_int_equal(last[0], RV_OUT_ITER_DATA);
    protobuf_c_message_free_unpacked(m, NULL);
    send_msg(RV_IN_ITERATOR, &it.base); /* same id: ignored */
    Ravelwire__IteratorAck ack = RAVELWIRE__ITERATOR_ACK__INIT;
    ack.id = 77; /* unknown */
    send_msg(RV_IN_ITER_ACK, &ack.base);
    Ravelwire__IteratorSeek sk = RAVELWIRE__ITERATOR_SEEK__INIT;
    sk.id = 78;
    sk.target = B("a");
    send_msg(RV_IN_ITER_SEEK, &sk.base);
    Ravelwire__IteratorClose cl = RAVELWIRE__ITERATOR_CLOSE__INIT;
    cl.id = 79;
    send_msg(RV_IN_ITER_CLOSE, &cl.base);
    ack.id = 9;
    ack.seq = 1; /* stale seq: ignored */
    send_msg(RV_IN_ITER_ACK, &ack.base);
    get(10, "sentinel");
    assert_null(expect_callback(10)); /* nothing came in between */
}

static void test_bad_batches_and_puts(void **state)
{
    (void)state;
    Ravelwire__Batch__Operation op = RAVELWIRE__BATCH__OPERATION__INIT, good = RAVELWIRE__BATCH__OPERATION__INIT;
    good.type = "put";
    good.key = B("half");
    good.has_value = 1;
    good.value = B("written?");
    op.type = "upsert";
    op.key = B("k");
    Ravelwire__Batch__Operation *ops[] = {&good, &op};
    Ravelwire__Batch b = RAVELWIRE__BATCH__INIT;
    b.id = 1;
    b.n_ops = 2;
    b.ops = ops;
    send_msg(RV_IN_BATCH, &b.base);
    assert_string_equal(expect_callback(1), "LEVEL_INVALID_VALUE");
    Ravelwire__Put put = RAVELWIRE__PUT__INIT; /* no value */
    put.id = 2;
    put.key = B("novalue");
    send_msg(RV_IN_PUT, &put.base);
    assert_string_equal(expect_callback(2), "LEVEL_INVALID_VALUE");
    /* Empty keys are keys. */
    put.id = 3;
    put.key = B("");
    put.has_value = 1;
    put.value = B("for the empty key");
    send_msg(RV_IN_PUT, &put.base);
    assert_null(expect_callback(3));
    get(4, "");
    assert_null(expect_callback(4));
    char *v;
    size_t vl;
    assert_int_equal(ravel_get(p.local, S("half"), &v, &vl), RAVEL_ENOTFOUND); /* all or nothing */
    assert_int_equal(ravel_get(p.local, S("novalue"), &v, &vl), RAVEL_ENOTFOUND);
}

static void append_msg(rv_buf *b, uint8_t tag, const ProtobufCMessage *m)
{
    assert_int_equal(rv_encode(b, tag, m), 0);
}

/* Puts and dels that arrive together are written as one group; every
 * request is still answered in order, sees the writes before it, and a
 * bad request in the middle gets its own error without holding up the
 * others. Replies to grouped writes before a malformed frame still go out
 * before the connection closes. */
static void test_grouped_writes(void **state)
{
    (void)state;
    rv_buf b = {0};
    Ravelwire__Put put = RAVELWIRE__PUT__INIT;
    put.has_value = 1;
    put.id = 1, put.key = B("g1"), put.value = B("a");
    append_msg(&b, RV_IN_PUT, &put.base);
    put.id = 2, put.key = B("g2"), put.value = B("b");
    append_msg(&b, RV_IN_PUT, &put.base);
    Ravelwire__Put bad = RAVELWIRE__PUT__INIT; /* no value */
    bad.id = 3, bad.key = B("g3");
    append_msg(&b, RV_IN_PUT, &bad.base);
    Ravelwire__Delete del = RAVELWIRE__DELETE__INIT;
    del.id = 4, del.key = B("g1");
    append_msg(&b, RV_IN_DEL, &del.base);
    Ravelwire__Get g = RAVELWIRE__GET__INIT;
    g.id = 5, g.key = B("g1");
    append_msg(&b, RV_IN_GET, &g.base);
    g.id = 6, g.key = B("g2");
    append_msg(&b, RV_IN_GET, &g.base);
    put.id = 7, put.key = B("g4"), put.value = B("c");
    append_msg(&b, RV_IN_PUT, &put.base);
    send_bytes(b.data, b.len);
    assert_null(expect_callback(1));
    assert_null(expect_callback(2));
    assert_string_equal(expect_callback(3), "LEVEL_INVALID_VALUE");
    assert_null(expect_callback(4));
    assert_string_equal(expect_callback(5), "LEVEL_NOT_FOUND");
    ProtobufCMessage *m = reply();
    Ravelwire__Callback *cb = (Ravelwire__Callback *)m;
    assert_int_equal(cb->id, 6);
    assert_true(cb->has_value && cb->value.len == 1 && cb->value.data[0] == 'b');
    protobuf_c_message_free_unpacked(m, NULL);
    assert_null(expect_callback(7));

    b.len = 0;
    put.id = 8, put.key = B("g5"), put.value = B("d");
    append_msg(&b, RV_IN_PUT, &put.base);
    const uint8_t wrong_type[] = {0x04, RV_IN_GET, 0x0a, 0x01, 'x'};
    rv_buf_append(&b, wrong_type, sizeof wrong_type);
    send_bytes(b.data, b.len);
    assert_null(expect_callback(8));
    assert_true(host_closed());
    rv_buf_free(&b);

    char *v;
    size_t vl;
    assert_int_equal(ravel_get(p.local, S("g1"), &v, &vl), RAVEL_ENOTFOUND);
    assert_int_equal(ravel_get(p.local, S("g3"), &v, &vl), RAVEL_ENOTFOUND);
    const char *want[][2] = {{"g2", "b"}, {"g4", "c"}, {"g5", "d"}};
    for (int i = 0; i < 3; i++) {
        OK(ravel_get(p.local, S(want[i][0]), &v, &vl));
        assert_int_equal(vl, 1);
        assert_memory_equal(v, want[i][1], 1);
        ravel_free(v);
    }
}

static void test_malformed_frames_close_the_connection(void **state)
{
    (void)state;
    const uint8_t wrong_type[] = {0x04, RV_IN_GET, 0x0a, 0x01, 'x'}; /* id as bytes */
    send_bytes(wrong_type, sizeof wrong_type);
    assert_true(host_closed());
    raw_close();
    raw_open();
    const uint8_t missing[] = {0x03, RV_IN_DEL, 0x08, 0x01}; /* no key */
    send_bytes(missing, sizeof missing);
    assert_true(host_closed());
    raw_close();
    raw_open();
    /* A huge key: a frame over max_frame, refused from its length alone. */
    Ravelwire__Get g = RAVELWIRE__GET__INIT;
    g.id = 1;
    static uint8_t big[1 << 17];
    g.key = (ProtobufCBinaryData){sizeof big, big};
    rv_buf b = {0};
    rv_encode(&b, RV_IN_GET, &g.base);
    send_bytes(b.data, 8); /* just the start */
    rv_buf_free(&b);
    assert_true(host_closed());
    raw_close();
    raw_open();
    const uint8_t empty_then_get[] = {0x00, 0x00};
    send_bytes(empty_then_get, sizeof empty_then_get);
    get(1, "sentinel");
    assert_null(expect_callback(1));
}

static void test_iterators_per_connection(void **state)
{
    (void)state;
    Ravelwire__Iterator__Options o = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    Ravelwire__Iterator it = RAVELWIRE__ITERATOR__INIT;
    it.options = &o;
    for (uint32_t id = 1; id <= 4; id++) {
        it.id = id;
        send_msg(RV_IN_ITERATOR, &it.base);
        ProtobufCMessage *m = reply();
        if (id <= 3) {
            assert_int_equal(last[0], RV_OUT_ITER_DATA);
        } else {
            assert_int_equal(last[0], RV_OUT_ITER_ERROR);
            assert_string_equal(((Ravelwire__IteratorError *)m)->error, "LEVEL_LIMIT_EXCEEDED");
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    /* Closing one makes room. */
    Ravelwire__IteratorClose cl = RAVELWIRE__ITERATOR_CLOSE__INIT;
    cl.id = 1;
    send_msg(RV_IN_ITER_CLOSE, &cl.base);
    it.id = 5;
    send_msg(RV_IN_ITERATOR, &it.base);
    ProtobufCMessage *m = reply();
    assert_int_equal(last[0], RV_OUT_ITER_DATA);
    protobuf_c_message_free_unpacked(m, NULL);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void test_guest_that_stops_reading(void **state)
{
    (void)state;
    static char val[60000];
    memset(val, 'v', sizeof val);
    OK(ravel_put(p.local, S("big"), val, sizeof val));
    long before = rss_kb();
    /* 20,000 gets of a 60 KB value, never read: 1.2 GB if buffered. */
    rv_buf b = {0};
    for (uint32_t id = 1; id <= 20000; id++) {
        Ravelwire__Get g = RAVELWIRE__GET__INIT;
        g.id = id;
        g.key = B("big");
        rv_encode(&b, RV_IN_GET, &g.base);
    }
    /* The host stops reading once its output is full, so this cannot all
     * go through: write what the socket takes without blocking. */
    size_t sent = 0, total = b.len;
    while (sent < b.len) {
        ssize_t n = send(raw, b.data + sent, b.len - sent, MSG_DONTWAIT);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    rv_buf_free(&b);
    usleep(300000);
    /* Meanwhile the host serves others. */
    for (int i = 0; i < 100; i++) {
        char *v;
        size_t vl;
        OK(ravel_get(p.guest, S("sentinel"), &v, &vl));
        ravel_free(v);
    }
    long growth = rss_kb() - before;
    printf("# a guest that stops reading: %zu of %zu request bytes taken, host grew %ld KiB\n",
           sent, total, growth);
    assert_true(growth < 64 * 1024);
}

static void count_done(void *ud, int status)
{
    assert_int_equal(status, RAVEL_ECLOSED);
    ++*(int *)ud;
}

static void test_guest_side_limits(void **state)
{
    (void)state;
    ravel_options o;
    ravel_options_init(&o);
    o.max_frame = 1 << 16;
    o.max_pending = 10;
    ravel_db *g;
    OK(ravel_guest_new(&g, &o));
    static char val[1 << 17];
    assert_int_equal(ravel_put(g, S("huge"), val, sizeof val), RAVEL_ETOOBIG);
    assert_non_null(strstr(ravel_errmsg(), "limit"));
    /* No stream is attached, so requests stay pending. */
    int calls = 0;
    for (int i = 0; i < 10; i++)
        OK(ravel_del_async(g, S("k"), count_done, &calls));
    assert_int_equal(ravel_del_async(g, S("k"), count_done, &calls), RAVEL_ELIMIT);
    ravel_iter *it;
    assert_int_equal(ravel_iter_new(g, NULL, &it), RAVEL_ELIMIT);
    ravel_db_close(g);
    assert_int_equal(calls, 10); /* each completed once, at close */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reused_request_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_id_collision_and_unknown_iterators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_batches_and_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouped_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames_close_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterators_per_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_that_stops_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_side_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
