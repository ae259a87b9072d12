/* The wire codec on its own: round trips of all 15 messages, and every
 * kind of bad framing. */
#include <stdlib.h>
#include <string.h>

#include "../helpers.h"
#include "guest/session.h"
#include "wire/codec.h"

typedef struct frames {
    uint8_t tags[64];
    rv_buf payloads[64];
    size_t n;
} frames;

static int collect(void *ud, const uint8_t *payload, size_t len)
{
    frames *f = ud;
    assert_true(f->n < 64);
    f->tags[f->n] = payload[0];
    rv_buf_set(&f->payloads[f->n], payload, len);
    f->n++;
    return 0;
}

static void frames_free(frames *f)
{
    for (size_t i = 0; i < 64; i++)
        rv_buf_free(&f->payloads[i]);
}

#define B(s) ((ProtobufCBinaryData){.len = sizeof(s) - 1, .data = (uint8_t *)(s)})

static int bin_eq(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Encode msg, decode it back through the frame decoder (fed one byte at a
 * time, so every split point is exercised) and unpack it. */
static ProtobufCMessage *round_trip(uint8_t tag, const ProtobufCMessage *msg, int out_dir)
{
    rv_buf wire = {0};
    assert_int_equal(rv_encode(&wire, tag, msg), 0);
    rv_decoder d;
    rv_decoder_init(&d, 0);
    frames f = {0};
    for (size_t i = 0; i < wire.len; i++)
        assert_int_equal(rv_decoder_feed(&d, (uint8_t *)wire.data + i, 1, collect, &f), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], tag);
    int st;
    ProtobufCMessage *m = out_dir ? rv_unpack_out((uint8_t *)f.payloads[0].data, f.payloads[0].len, &st)
                                  : rv_unpack_in((uint8_t *)f.payloads[0].data, f.payloads[0].len, &st);
    assert_non_null(m);
    assert_int_equal(st, 0);
    assert_ptr_equal(m->descriptor, msg->descriptor);
    rv_buf_free(&wire);
    frames_free(&f);
    rv_decoder_free(&d);
    return m;
}

static void test_guest_to_host_messages(void **state)
{
    (void)state;
    Ravelwire__Get get = RAVELWIRE__GET__INIT;
    get.id = 7;
    get.key = B("key\0with nul");
    Ravelwire__Get *g = (Ravelwire__Get *)round_trip(RV_IN_GET, &get.base, 0);
    assert_int_equal(g->id, 7);
    assert_true(bin_eq(g->key, get.key));
    protobuf_c_message_free_unpacked(&g->base, NULL);

    Ravelwire__Put put = RAVELWIRE__PUT__INIT;
    put.id = 0xffffffffu;
    put.key = B("k");
    put.has_value = 1;
    put.value = B("");
    Ravelwire__Put *p = (Ravelwire__Put *)round_trip(RV_IN_PUT, &put.base, 0);
    assert_int_equal(p->id, 0xffffffffu);
    assert_true(p->has_value);
    assert_int_equal(p->value.len, 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);

    Ravelwire__Delete del = RAVELWIRE__DELETE__INIT;
    del.id = 3;
    del.key = B("gone");
    Ravelwire__Delete *dd = (Ravelwire__Delete *)round_trip(RV_IN_DEL, &del.base, 0);
    assert_true(bin_eq(dd->key, del.key));
    protobuf_c_message_free_unpacked(&dd->base, NULL);

    Ravelwire__Batch__Operation o1 = RAVELWIRE__BATCH__OPERATION__INIT, o2 = RAVELWIRE__BATCH__OPERATION__INIT;
    o1.type = "put";
    o1.key = B("a");
    o1.has_value = 1;
    o1.value = B("1");
    o2.type = "del";
    o2.key = B("b");
    Ravelwire__Batch__Operation *ops[] = {&o1, &o2};
    Ravelwire__Batch batch = RAVELWIRE__BATCH__INIT;
    batch.id = 9;
    batch.n_ops = 2;
    batch.ops = ops;
    Ravelwire__Batch *bb = (Ravelwire__Batch *)round_trip(RV_IN_BATCH, &batch.base, 0);
    assert_int_equal(bb->n_ops, 2);
    assert_string_equal(bb->ops[0]->type, "put");
    assert_string_equal(bb->ops[1]->type, "del");
    assert_false(bb->ops[1]->has_value);
    protobuf_c_message_free_unpacked(&bb->base, NULL);

    Ravelwire__Iterator__Options io = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    io.has_keys = io.has_values = io.has_limit = io.has_reverse = io.has_gte = io.has_lt = 1;
    io.keys = 1;
    io.limit = -1;
    io.reverse = 1;
    io.gte = B("a");
    io.lt = B("z");
    Ravelwire__Iterator iter = RAVELWIRE__ITERATOR__INIT;
    iter.id = 11;
    iter.seq = 2;
    iter.options = &io;
    iter.consumed = 1ull << 40;
    iter.has_bookmark = 1;
    iter.bookmark = B("m");
    Ravelwire__Iterator *ii = (Ravelwire__Iterator *)round_trip(RV_IN_ITERATOR, &iter.base, 0);
    assert_int_equal(ii->consumed, 1ull << 40);
    assert_int_equal(ii->options->limit, -1);
    assert_true(ii->options->reverse);
    assert_false(ii->options->values);
    assert_true(ii->has_bookmark);
    assert_false(ii->has_seek);
    assert_false(ii->options->has_gt);
    protobuf_c_message_free_unpacked(&ii->base, NULL);

    Ravelwire__Clear__ClearOptions co = RAVELWIRE__CLEAR__CLEAR_OPTIONS__INIT;
    co.has_limit = 1;
    co.limit = 5;
    Ravelwire__Clear clear = RAVELWIRE__CLEAR__INIT;
    clear.id = 4;
    clear.options = &co;
    Ravelwire__Clear *cc = (Ravelwire__Clear *)round_trip(RV_IN_CLEAR, &clear.base, 0);
    assert_int_equal(cc->options->limit, 5);
    protobuf_c_message_free_unpacked(&cc->base, NULL);

    ProtobufCBinaryData keys[] = {B("x"), B(""), B("y")};
    Ravelwire__GetMany gm = RAVELWIRE__GET_MANY__INIT;
    gm.id = 5;
    gm.n_keys = 3;
    gm.keys = keys;
    Ravelwire__GetMany *gg = (Ravelwire__GetMany *)round_trip(RV_IN_GET_MANY, &gm.base, 0);
    assert_int_equal(gg->n_keys, 3);
    assert_int_equal(gg->keys[1].len, 0);
    protobuf_c_message_free_unpacked(&gg->base, NULL);

    Ravelwire__IteratorClose ic = RAVELWIRE__ITERATOR_CLOSE__INIT;
    ic.id = 12;
    ProtobufCMessage *m = round_trip(RV_IN_ITER_CLOSE, &ic.base, 0);
    assert_int_equal(((Ravelwire__IteratorClose *)m)->id, 12);
    protobuf_c_message_free_unpacked(m, NULL);

    Ravelwire__IteratorAck ack = RAVELWIRE__ITERATOR_ACK__INIT;
    ack.id = 1;
    ack.seq = 2;
    ack.consumed = 3;
    m = round_trip(RV_IN_ITER_ACK, &ack.base, 0);
    assert_int_equal(((Ravelwire__IteratorAck *)m)->consumed, 3);
    protobuf_c_message_free_unpacked(m, NULL);

    Ravelwire__IteratorSeek sk = RAVELWIRE__ITERATOR_SEEK__INIT;
    sk.id = 1;
    sk.seq = 4;
    sk.target = B("t");
    m = round_trip(RV_IN_ITER_SEEK, &sk.base, 0);
    assert_true(bin_eq(((Ravelwire__IteratorSeek *)m)->target, sk.target));
    protobuf_c_message_free_unpacked(m, NULL);
}

static void test_host_to_guest_messages(void **state)
{
    (void)state;
    Ravelwire__Callback cb = RAVELWIRE__CALLBACK__INIT;
    cb.id = 1;
    cb.error = "LEVEL_NOT_FOUND";
    Ravelwire__Callback *c = (Ravelwire__Callback *)round_trip(RV_OUT_CALLBACK, &cb.base, 1);
    assert_string_equal(c->error, "LEVEL_NOT_FOUND");
    assert_false(c->has_value);
    protobuf_c_message_free_unpacked(&c->base, NULL);

    ProtobufCBinaryData data[] = {B("k1"), B("v1"), B("k2"), B("")};
    Ravelwire__IteratorData id = RAVELWIRE__ITERATOR_DATA__INIT;
    id.id = 2;
    id.seq = 3;
    id.n_data = 4;
    id.data = data;
    Ravelwire__IteratorData *d = (Ravelwire__IteratorData *)round_trip(RV_OUT_ITER_DATA, &id.base, 1);
    assert_int_equal(d->n_data, 4);
    assert_true(bin_eq(d->data[2], data[2]));
    protobuf_c_message_free_unpacked(&d->base, NULL);

    Ravelwire__GetManyCallback__Value v1 = RAVELWIRE__GET_MANY_CALLBACK__VALUE__INIT,
                                      v2 = RAVELWIRE__GET_MANY_CALLBACK__VALUE__INIT;
    v1.has_value = 1;
    v1.value = B("one");
    Ravelwire__GetManyCallback__Value *vals[] = {&v1, &v2};
    Ravelwire__GetManyCallback gmc = RAVELWIRE__GET_MANY_CALLBACK__INIT;
    gmc.id = 4;
    gmc.n_values = 2;
    gmc.values = vals;
    Ravelwire__GetManyCallback *g = (Ravelwire__GetManyCallback *)round_trip(RV_OUT_GET_MANY_CB, &gmc.base, 1);
    assert_true(g->values[0]->has_value);
    assert_false(g->values[1]->has_value);
    protobuf_c_message_free_unpacked(&g->base, NULL);

    Ravelwire__IteratorError ie = RAVELWIRE__ITERATOR_ERROR__INIT;
    ie.id = 5;
    ie.seq = 6;
    ie.error = "LEVEL_REMOTE_ERROR";
    ProtobufCMessage *m = round_trip(RV_OUT_ITER_ERROR, &ie.base, 1);
    assert_string_equal(((Ravelwire__IteratorError *)m)->error, "LEVEL_REMOTE_ERROR");
    protobuf_c_message_free_unpacked(m, NULL);

    Ravelwire__IteratorEnd ie2 = RAVELWIRE__ITERATOR_END__INIT;
    ie2.id = 7;
    ie2.seq = 8;
    m = round_trip(RV_OUT_ITER_END, &ie2.base, 1);
    assert_int_equal(((Ravelwire__IteratorEnd *)m)->seq, 8);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* Bytes as many-level (Node) writes them for a Get {id: 1, key: "a"}. */
static void test_known_bytes(void **state)
{
    (void)state;
    Ravelwire__Get get = RAVELWIRE__GET__INIT;
    get.id = 1;
    get.key = B("a");
    rv_buf wire = {0};
    rv_encode(&wire, RV_IN_GET, &get.base);
    const uint8_t expect[] = {0x06, 0x00, 0x08, 0x01, 0x12, 0x01, 'a'};
    assert_int_equal(wire.len, sizeof expect);
    assert_memory_equal(wire.data, expect, sizeof expect);
    rv_buf_free(&wire);
}

static void test_empty_frames_ignored(void **state)
{
    (void)state;
    rv_decoder d;
    rv_decoder_init(&d, 0);
    frames f = {0};
    const uint8_t bytes[] = {0x00, 0x00, 0x02, 0x07, 0x08, 0x00};
    assert_int_equal(rv_decoder_feed(&d, bytes, sizeof bytes, collect, &f), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], 7);
    frames_free(&f);
    rv_decoder_free(&d);
}

static void test_unknown_tag_ignored(void **state)
{
    (void)state;
    const uint8_t payload[] = {42, 0x08, 0x01};
    int st = -1;
    assert_null(rv_unpack_in(payload, sizeof payload, &st));
    assert_int_equal(st, 0);
    assert_null(rv_unpack_out(payload, sizeof payload, &st));
    assert_int_equal(st, 0);
}

static void test_oversize_length_rejected_before_buffering(void **state)
{
    (void)state;
    rv_decoder d;
    rv_decoder_init(&d, 1024);
    frames f = {0};
    uint8_t hdr[10];
    size_t n = rv_varint_put(hdr, 1025);
    assert_int_equal(rv_decoder_feed(&d, hdr, n, collect, &f), RAVEL_ETOOBIG);
    assert_int_equal(d.partial.cap, 0); /* nothing was buffered */
    rv_decoder_free(&d);
    /* A length of 2^63 must not wrap around either. */
    rv_decoder_init(&d, 1024);
    n = rv_varint_put(hdr, 1ull << 63);
    assert_int_equal(rv_decoder_feed(&d, hdr, n, collect, &f), RAVEL_ETOOBIG);
    rv_decoder_free(&d);
    assert_int_equal(f.n, 0);
}

static void test_overlong_varint(void **state)
{
    (void)state;
    rv_decoder d;
    rv_decoder_init(&d, 0);
    frames f = {0};
    uint8_t bytes[11];
    memset(bytes, 0x80, sizeof bytes);
    assert_int_equal(rv_decoder_feed(&d, bytes, sizeof bytes, collect, &f), RAVEL_EPROTO);
    rv_decoder_free(&d);
}

static void test_truncated_frame_waits(void **state)
{
    (void)state;
    rv_decoder d;
    rv_decoder_init(&d, 0);
    frames f = {0};
    const uint8_t part1[] = {0x85}; /* varint continues */
    assert_int_equal(rv_decoder_feed(&d, part1, 1, collect, &f), 0);
    const uint8_t part2[] = {0x00, 0x07}; /* length 5, then 1 of 5 bytes */
    assert_int_equal(rv_decoder_feed(&d, part2, 2, collect, &f), 0);
    assert_int_equal(f.n, 0);
    const uint8_t part3[] = {0x08, 0x01, 0x10, 0x02};
    assert_int_equal(rv_decoder_feed(&d, part3, 4, collect, &f), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.payloads[0].len, 5);
    frames_free(&f);
    rv_decoder_free(&d);
}

static void test_garbage_protobuf(void **state)
{
    (void)state;
    int st;
    /* Get without its required key. */
    const uint8_t missing[] = {RV_IN_GET, 0x08, 0x01};
    assert_null(rv_unpack_in(missing, sizeof missing, &st));
    assert_int_equal(st, RAVEL_EPROTO);
    /* A field whose length runs past the end. */
    const uint8_t truncated[] = {RV_IN_PUT, 0x08, 0x01, 0x12, 0x7f, 'a'};
    assert_null(rv_unpack_in(truncated, sizeof truncated, &st));
    assert_int_equal(st, RAVEL_EPROTO);
    /* Wrong wire type for id (length-delimited instead of varint). */
    const uint8_t wrong[] = {RV_OUT_CALLBACK, 0x0a, 0x01, 'x'};
    assert_null(rv_unpack_out(wrong, sizeof wrong, &st));
    assert_int_equal(st, RAVEL_EPROTO);
    /* Random bytes. */
    srand(1);
    for (int i = 0; i < 2000; i++) {
        uint8_t junk[32];
        size_t len = 1 + (size_t)rand() % sizeof junk;
        for (size_t j = 0; j < len; j++)
            junk[j] = (uint8_t)rand();
        junk[0] %= 10;
        ProtobufCMessage *m = rv_unpack_in(junk, len, &st);
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        else
            assert_int_equal(st, RAVEL_EPROTO);
    }
}

/* The hand-written IteratorData parser agrees with protobuf-c: on real
 * messages, and on random and mutated bytes (same accept/reject, same
 * items). */
static void check_parse_agrees(const uint8_t *msg, size_t len)
{
    Ravelwire__IteratorData *ref = ravelwire__iterator_data__unpack(NULL, len, msg);
    uint32_t id = 0, seq = 0;
    size_t n = 0, items[2 * 64];
    int rc = rv_parse_iter_data(msg, len, &id, &seq, items, 64, &n);
    if (!ref) {
        assert_int_equal(rc, RAVEL_EPROTO);
        return;
    }
    assert_int_equal(rc, RAVEL_OK);
    assert_int_equal(id, ref->id);
    assert_int_equal(seq, ref->seq);
    assert_int_equal(n, ref->n_data);
    for (size_t i = 0; i < n && i < 64; i++) {
        assert_int_equal(items[2 * i + 1], ref->data[i].len);
        if (ref->data[i].len)
            assert_memory_equal(msg + items[2 * i], ref->data[i].data, ref->data[i].len);
    }
    ravelwire__iterator_data__free_unpacked(ref, NULL);
}

static void test_iter_data_parser(void **state)
{
    (void)state;
    ProtobufCBinaryData data[] = {B("k1"), B("v1"), B(""), B("value two")};
    Ravelwire__IteratorData m = RAVELWIRE__ITERATOR_DATA__INIT;
    m.id = 300;
    m.seq = 7;
    m.n_data = 4;
    m.data = data;
    uint8_t buf[256];
    size_t len = ravelwire__iterator_data__pack(&m, buf);
    check_parse_agrees(buf, len);
    size_t n;
    uint32_t id, seq;
    assert_int_equal(rv_parse_iter_data(buf, len, &id, &seq, NULL, 0, &n), RAVEL_OK);
    assert_int_equal(n, 4); /* counted without room for items */
    srand(2);
    for (int round = 0; round < 20000; round++) {
        uint8_t mut[256];
        memcpy(mut, buf, len);
        size_t mlen = len;
        int edits = 1 + rand() % 3;
        for (int e = 0; e < edits; e++) {
            switch (rand() % 3) {
            case 0: mut[rand() % mlen] = (uint8_t)rand(); break;
            case 1: mlen = (size_t)rand() % (mlen + 1); break;
            default: mut[rand() % mlen] ^= (uint8_t)(1u << (rand() % 8)); break;
            }
            if (mlen == 0)
                break;
        }
        check_parse_agrees(mut, mlen);
    }
    for (int round = 0; round < 5000; round++) {
        uint8_t junk[40];
        size_t jl = (size_t)rand() % sizeof junk;
        for (size_t j = 0; j < jl; j++)
            junk[j] = (uint8_t)rand();
        check_parse_agrees(junk, jl);
    }
}

typedef struct op_list {
    rv_batch_op_view ops[16];
    size_t n;
} op_list;

static int collect_op(void *ud, const rv_batch_op_view *op)
{
    op_list *l = ud;
    if (l->n < 16)
        l->ops[l->n] = *op;
    l->n++;
    return 0;
}

static void check_batch_agrees(const uint8_t *msg, size_t len)
{
    Ravelwire__Batch *ref = ravelwire__batch__unpack(NULL, len, msg);
    rv_batch_head head;
    op_list l = {.n = 0};
    int rc = rv_parse_batch(msg, len, &head, collect_op, &l);
    uint32_t id = head.id;
    if (!ref) {
        assert_int_equal(rc, RAVEL_EPROTO);
        assert_int_equal(l.n, 0); /* nothing handed out from a bad message */
        return;
    }
    assert_int_equal(rc, RAVEL_OK);
    assert_int_equal(id, ref->id);
    assert_int_equal(l.n, ref->n_ops);
    for (size_t i = 0; i < l.n && i < 16; i++) {
        const Ravelwire__Batch__Operation *o = ref->ops[i];
        /* protobuf-c's C string stops at a NUL; the parser keeps all the
         * bytes (so "put\0x" is not "put", as for Node's decoder). */
        assert_true(l.ops[i].type_len >= strlen(o->type));
        assert_memory_equal(l.ops[i].type, o->type, strlen(o->type));
        assert_true(bin_eq((ProtobufCBinaryData){l.ops[i].key_len, (uint8_t *)l.ops[i].key}, o->key));
        assert_int_equal(l.ops[i].has_value, o->has_value);
        if (o->has_value)
            assert_true(bin_eq((ProtobufCBinaryData){l.ops[i].value_len, (uint8_t *)l.ops[i].value},
                               o->value));
    }
    ravelwire__batch__free_unpacked(ref, NULL);
}

/* The in-place IteratorData builder writes exactly what protobuf-c packs,
 * after whatever out held: no entries, empty entries, lengths around the
 * varint boundaries, ids and seqs of every varint size. */
static void test_iter_frame_builder(void **state)
{
    (void)state;
    static char big[70000];
    memset(big, 'b', sizeof big);
    const size_t lens[] = {0, 1, 127, 128, 16383, 16384, 69999};
    const uint32_t ids[] = {0, 1, 127, 128, 300000, UINT32_MAX};
    for (size_t c = 0; c < 6; c++) {
        size_t nitems = c == 0 ? 0 : c + 1;
        ProtobufCBinaryData items[8];
        rv_buf built = {0}, packed = {0};
        rv_buf_append(&built, "prefix", 6);
        rv_buf_append(&packed, "prefix", 6);
        rv_iter_frame f;
        assert_int_equal(rv_iter_frame_begin(&f, &built), 0);
        for (size_t i = 0; i < nitems; i++) {
            items[i].len = lens[(c + i) % 7];
            items[i].data = (uint8_t *)big;
            assert_int_equal(rv_iter_frame_add(&f, big, items[i].len), 0);
        }
        rv_iter_frame_end(&f, ids[c], ids[5 - c]);
        Ravelwire__IteratorData m = RAVELWIRE__ITERATOR_DATA__INIT;
        m.id = ids[c];
        m.seq = ids[5 - c];
        m.n_data = nitems;
        m.data = items;
        assert_int_equal(rv_encode(&packed, RV_OUT_ITER_DATA, &m.base), 0);
        assert_int_equal(built.len, packed.len);
        assert_memory_equal(built.data, packed.data, packed.len);
        rv_buf_free(&built);
        rv_buf_free(&packed);
    }
}

/* A Batch encoded straight from a ravel_batch (the guest's bulk-write
 * path) is byte for byte the frame protobuf-c packs from the message. */
static void test_batch_frame_builder(void **state)
{
    (void)state;
    static char big[70000];
    memset(big, 'k', sizeof big);
    const size_t lens[] = {0, 1, 127, 128, 16383, 16384, 69999};
    for (int c = 0; c < 7; c++) {
        ravel_batch *b = ravel_batch_new();
        Ravelwire__Batch__Operation ops[8], *opp[8];
        size_t n = (size_t)c + 1 == 7 ? 0 : (size_t)c + 1; /* the last case: empty */
        for (size_t i = 0; i < n; i++) {
            size_t kl = lens[(c + i) % 7], vl = lens[(c + 2 * i) % 7];
            ravelwire__batch__operation__init(&ops[i]);
            ops[i].key.data = (uint8_t *)big;
            ops[i].key.len = kl;
            if (i % 3 == 2) {
                ops[i].type = "del";
                OK(ravel_batch_del(b, big, kl));
            } else {
                ops[i].type = "put";
                ops[i].has_value = 1;
                ops[i].value.data = (uint8_t *)big;
                ops[i].value.len = vl;
                OK(ravel_batch_put(b, big, kl, big, vl));
            }
            opp[i] = &ops[i];
        }
        rv_gsession s1, s2;
        rv_gsession_init(&s1, 0, 0, 0);
        rv_gsession_init(&s2, 0, 0, 0);
        rv_greq r1 = {0}, r2 = {0};
        OK(rv_gsession_submit_batch(&s1, &r1, b));
        Ravelwire__Batch m = RAVELWIRE__BATCH__INIT;
        m.n_ops = n;
        m.ops = opp;
        OK(rv_gsession_submit(&s2, &r2, RV_IN_BATCH, &m.base, &m.id));
        assert_int_equal(r1.id, r2.id);
        assert_int_equal(r1.frame.len, r2.frame.len);
        assert_memory_equal(r1.frame.data, r2.frame.data, r2.frame.len);
        rv_gsession_free(&s1);
        rv_gsession_free(&s2);
        rv_buf_free(&r1.frame);
        rv_buf_free(&r2.frame);
        ravel_batch_free(b);
    }
}

/* The hand-written Callback encoder writes what protobuf-c packs, and the
 * hand-written Get/Put/Delete parser reads what protobuf-c packed. */
static void test_callback_and_keyed(void **state)
{
    (void)state;
    static char big[30000]; /* the largest value below: 28,000 bytes */
    memset(big, 'v', sizeof big);
    const uint32_t ids[] = {0, 127, 128, UINT32_MAX};
    for (int c = 0; c < 8; c++) {
        uint32_t id = ids[c % 4];
        const char *error = c & 1 ? "LEVEL_NOT_FOUND" : NULL;
        size_t vlen = c < 4 ? 0 : (size_t)(c * 4000);
        const void *val = c & 2 ? big : NULL;
        rv_buf a = {0}, b = {0};
        OK(rv_encode_callback(&a, id, error, val, vlen));
        Ravelwire__Callback m = RAVELWIRE__CALLBACK__INIT;
        m.id = id;
        m.error = (char *)error;
        if (val) {
            m.has_value = 1;
            m.value.data = (uint8_t *)big;
            m.value.len = vlen;
        }
        OK(rv_encode(&b, RV_OUT_CALLBACK, &m.base));
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, b.len);

        Ravelwire__Put put = RAVELWIRE__PUT__INIT;
        put.id = id;
        put.key.data = (uint8_t *)big;
        put.key.len = c;
        put.has_value = val != NULL;
        put.value.data = (uint8_t *)big;
        put.value.len = vlen;
        uint8_t packed[40100];
        size_t n = ravelwire__put__pack(&put, packed);
        rv_keyed k;
        OK(rv_parse_keyed(packed, n, RV_IN_PUT, &k));
        assert_int_equal(k.id, id);
        assert_int_equal(k.key_len, (size_t)c);
        assert_int_equal(k.has_value, val != NULL);
        assert_int_equal(k.value_len, val ? vlen : 0);
        /* The same bytes as a Get: field 3 is unknown there, skipped. */
        OK(rv_parse_keyed(packed, n, RV_IN_GET, &k));
        assert_int_equal(k.has_value, 0);
        rv_buf_free(&a);
        rv_buf_free(&b);
    }
    /* A missing key, or an id sent as bytes: rejected, as protobuf-c does. */
    const uint8_t no_key[] = {0x08, 0x05};
    const uint8_t id_as_bytes[] = {0x0a, 0x01, 'x', 0x12, 0x00};
    rv_keyed k;
    assert_int_equal(rv_parse_keyed(no_key, sizeof no_key, RV_IN_GET, &k), RAVEL_EPROTO);
    assert_int_equal(rv_parse_keyed(id_as_bytes, sizeof id_as_bytes, RV_IN_GET, &k), RAVEL_EPROTO);
}

static void test_batch_parser(void **state)
{
    (void)state;
    Ravelwire__Batch__Operation o1 = RAVELWIRE__BATCH__OPERATION__INIT, o2 = RAVELWIRE__BATCH__OPERATION__INIT,
                                o3 = RAVELWIRE__BATCH__OPERATION__INIT;
    o1.type = "put";
    o1.key = B("a");
    o1.has_value = 1;
    o1.value = B("1");
    o2.type = "del";
    o2.key = B("b");
    o3.type = "put";
    o3.key = B("");
    o3.has_value = 1;
    o3.value = B("");
    Ravelwire__Batch__Operation *ops[] = {&o1, &o2, &o3};
    Ravelwire__Batch b = RAVELWIRE__BATCH__INIT;
    b.id = 4242;
    b.n_ops = 3;
    b.ops = ops;
    uint8_t buf[256];
    size_t len = ravelwire__batch__pack(&b, buf);
    check_batch_agrees(buf, len);
    srand(3);
    for (int round = 0; round < 30000; round++) {
        uint8_t mut[256];
        memcpy(mut, buf, len);
        size_t mlen = len;
        for (int e = 0; e < 1 + rand() % 3 && mlen; e++) {
            switch (rand() % 3) {
            case 0: mut[rand() % mlen] = (uint8_t)rand(); break;
            case 1: mlen = (size_t)rand() % (mlen + 1); break;
            default: mut[rand() % mlen] ^= (uint8_t)(1u << (rand() % 8)); break;
            }
        }
        check_batch_agrees(mut, mlen);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guest_to_host_messages),
        cmocka_unit_test(test_host_to_guest_messages),
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_empty_frames_ignored),
        cmocka_unit_test(test_unknown_tag_ignored),
        cmocka_unit_test(test_oversize_length_rejected_before_buffering),
        cmocka_unit_test(test_overlong_varint),
        cmocka_unit_test(test_truncated_frame_waits),
        cmocka_unit_test(test_garbage_protobuf),
        cmocka_unit_test(test_iter_data_parser),
        cmocka_unit_test(test_batch_parser),
        cmocka_unit_test(test_iter_frame_builder),
        cmocka_unit_test(test_batch_frame_builder),
        cmocka_unit_test(test_callback_and_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
