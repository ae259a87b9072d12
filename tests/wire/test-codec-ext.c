/* The extension messages of the codec (docs/protocol-extensions.md):
 * Announce and Hello round trips, the `message` field (64) of the replies,
 * and that the extension tags sit where many-level never looks. */
#include <string.h>

#include "../helpers.h"
#include "wire/codec.h"

/* The payload of the only frame in b (its length checked), tag first. */
static const uint8_t *only_frame(const rv_buf *b, size_t *len)
{
    const uint8_t *p = (const uint8_t *)b->data;
    assert_true(b->len >= 2 && p[0] < 0x80); /* all of these are short */
    assert_int_equal((size_t)p[0] + 1, b->len);
    *len = p[0];
    return p + 1;
}

static void test_announce_round_trip(void **state)
{
    (void)state;
    rv_buf b = {0};
    OK(rv_encode_announce(&b, RV_EXT_ALL));
    size_t len;
    const uint8_t *p = only_frame(&b, &len);
    assert_int_equal(p[0], RV_OUT_ANNOUNCE);
    assert_true(rv_known_out(p[0]));
    int st = -1;
    Ravelwire__Announce *m = (Ravelwire__Announce *)rv_unpack_out(p, len, &st);
    assert_non_null(m);
    assert_int_equal(st, 0);
    assert_ptr_equal(m->base.descriptor, &ravelwire__announce__descriptor);
    assert_int_equal(m->version, RV_PROTO_VERSION);
    assert_int_equal(m->n_extensions, 7);
    assert_string_equal(m->extensions[0], "error-messages");
    assert_string_equal(m->extensions[1], "conditional");
    assert_string_equal(m->extensions[2], "sync");
    assert_string_equal(m->extensions[3], "exactly-once");
    assert_string_equal(m->extensions[4], "snapshots");
    assert_string_equal(m->extensions[5], "maintenance");
    assert_int_equal(rv_ext_from_names(m->extensions, m->n_extensions), RV_EXT_ALL);
    assert_string_equal(m->extensions[6], "watch");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* The exact bytes: version 1, seven names. */
    static const uint8_t want[] = {0x53, 64, 0x08, 0x01, 0x12, 14, 'e', 'r', 'r', 'o', 'r', '-',
                                   'm', 'e', 's', 's', 'a', 'g', 'e', 's', 0x12, 11, 'c', 'o',
                                   'n', 'd', 'i', 't', 'i', 'o', 'n', 'a', 'l', 0x12, 4, 's',
                                   'y', 'n', 'c', 0x12, 12, 'e', 'x', 'a', 'c', 't', 'l', 'y',
                                   '-', 'o', 'n', 'c', 'e', 0x12, 9, 's', 'n', 'a', 'p',
                                   's', 'h', 'o', 't', 's', 0x12, 11, 'm', 'a', 'i', 'n', 't',
                                   'e', 'n', 'a', 'n', 'c', 'e', 0x12, 5, 'w', 'a', 't', 'c',
                                   'h'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    rv_buf_free(&b);
}

static void test_hello_round_trip(void **state)
{
    (void)state;
    rv_buf b = {0};
    OK(rv_encode_hello(&b, 0));
    size_t len;
    const uint8_t *p = only_frame(&b, &len);
    assert_int_equal(p[0], RV_IN_HELLO);
    assert_true(rv_known_in(p[0]));
    int st = -1;
    Ravelwire__Hello *m = (Ravelwire__Hello *)rv_unpack_in(p, len, &st);
    assert_non_null(m);
    assert_ptr_equal(m->base.descriptor, &ravelwire__hello__descriptor);
    assert_int_equal(m->version, RV_PROTO_VERSION);
    assert_int_equal(m->n_extensions, 0);
    protobuf_c_message_free_unpacked(&m->base, NULL);

    b.len = 0;
    OK(rv_encode_hello(&b, RV_EXT_ERROR_MESSAGES));
    p = only_frame(&b, &len);
    m = (Ravelwire__Hello *)rv_unpack_in(p, len, &st);
    assert_non_null(m);
    assert_int_equal(m->n_extensions, 1);
    assert_int_equal(rv_ext_from_names(m->extensions, 1), RV_EXT_ERROR_MESSAGES);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    rv_buf_free(&b);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(rv_ext_name(RV_EXT_ERROR_MESSAGES), "error-messages");
    assert_string_equal(rv_ext_name(RV_EXT_SHM), "shm");
    assert_null(rv_ext_name(1u << 30));
    assert_null(rv_ext_name(0));
    /* Names this code does not know (a newer peer's) are skipped. */
    char *names[] = {"from-the-future", "error-messages", "error-messages!"};
    assert_int_equal(rv_ext_from_names(names, 3), RV_EXT_ERROR_MESSAGES);
    assert_int_equal(rv_ext_from_names(names, 1), 0);
}

/* A newer peer may add fields to Announce and Hello: they are skipped. */
static void test_unknown_fields_skipped(void **state)
{
    (void)state;
    const uint8_t payload[] = {RV_OUT_ANNOUNCE, 0x08, 0x07, 0x18, 0x05, 0x12, 0x01, 'z'};
    int st = -1;
    Ravelwire__Announce *m = (Ravelwire__Announce *)rv_unpack_out(payload, sizeof payload, &st);
    assert_non_null(m);
    assert_int_equal(m->version, 7);
    assert_int_equal(rv_ext_from_names(m->extensions, m->n_extensions), 0);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* Without its version it is malformed. */
    const uint8_t bad[] = {RV_IN_HELLO, 0x12, 0x01, 'z'};
    assert_null(rv_unpack_in(bad, sizeof bad, &st));
    assert_int_equal(st, RAVEL_EPROTO);
}

/* The tags: from 64 up both ways, unknown to many-level (0-9 in, 0-4
 * out), the watch's (80-82 in, 80 and 82 out) and shm's (90 both ways);
 * the tags in between stay unknown here too. */
static void test_tags(void **state)
{
    (void)state;
    for (unsigned t = 0; t < 256; t++) {
        assert_int_equal(rv_known_in((uint8_t)t),
                         t < RV_IN_COUNT || (t >= RV_IN_HELLO && t <= RV_IN_SIZES) ||
                             (t >= RV_IN_WATCH && t <= RV_IN_CHANGELOG) || t == RV_IN_SHM_OFFER);
        assert_int_equal(rv_known_out((uint8_t)t), t < RV_OUT_COUNT || t == RV_OUT_ANNOUNCE ||
                                                       t == RV_OUT_WATCH_EVENT ||
                                                       t == RV_OUT_CHANGELOG_STATE ||
                                                       t == RV_OUT_SHM_READY);
    }
    assert_true(RV_IN_HELLO >= 64 && RV_OUT_ANNOUNCE >= 64);
}

/* rv_encode_callback_msg writes what protobuf-c packs; without a message
 * it writes exactly what rv_encode_callback writes (many-level's bytes). */
/* The ring server's test for field 67: set and true, in any position,
 * after fields of every wire type; false or absent is not sync; what does
 * not parse counts as sync (the connection's thread then finds it bad). */
static void test_wants_sync(void **state)
{
    (void)state;
    const uint8_t plain[] = {0x08, 0x05, 0x12, 0x01, 'k', 0x1a, 0x01, 'v'};
    assert_int_equal(rv_msg_wants_sync(plain, sizeof plain), 0);
    const uint8_t off[] = {0x08, 0x05, 0x98, 0x04, 0x00};
    assert_int_equal(rv_msg_wants_sync(off, sizeof off), 0);
    const uint8_t on[] = {0x08, 0x05, 0x82, 0x04, 0x02, 'a', 'b', 0x88, 0x04, 0x07,
                          0x98, 0x04, 0x01};
    assert_int_equal(rv_msg_wants_sync(on, sizeof on), 1);
    const uint8_t fixed[] = {0x08, 0x05, 0x99, 0x04, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(rv_msg_wants_sync(fixed, sizeof fixed), 1);
    const uint8_t other64[] = {0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x15, 1, 2, 3, 4};
    assert_int_equal(rv_msg_wants_sync(other64, sizeof other64), 0);
    const uint8_t cut[] = {0x08, 0x05, 0x12, 0x09, 'k'};
    assert_int_equal(rv_msg_wants_sync(cut, sizeof cut), 1);
}

static void test_callback_message(void **state)
{
    (void)state;
    static const struct {
        const char *error, *message, *val;
    } cases[] = {
        {"LEVEL_REJECTED", "no writes under /sys", NULL},
        {"LEVEL_REMOTE_ERROR", "", NULL},
        {NULL, NULL, "v"},
        {"LEVEL_NOT_FOUND", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rv_buf a = {0}, b = {0}, c = {0};
        const char *val = cases[i].val;
        size_t vlen = val ? strlen(val) : 0;
        OK(rv_encode_callback_msg(&a, 300, cases[i].error, cases[i].message, val, vlen));
        Ravelwire__Callback m = RAVELWIRE__CALLBACK__INIT;
        m.id = 300;
        m.error = (char *)cases[i].error;
        m.message = (char *)cases[i].message;
        m.has_value = val != NULL;
        m.value = (ProtobufCBinaryData){vlen, (uint8_t *)val};
        OK(rv_encode(&b, RV_OUT_CALLBACK, &m.base));
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        if (!cases[i].message) {
            OK(rv_encode_callback(&c, 300, cases[i].error, val, vlen));
            assert_int_equal(a.len, c.len);
            assert_memory_equal(a.data, c.data, a.len);
        }
        /* And back. */
        int st;
        Ravelwire__Callback *u =
            (Ravelwire__Callback *)rv_unpack_out((const uint8_t *)a.data + 1, a.len - 1, &st);
        assert_non_null(u);
        if (cases[i].message)
            assert_string_equal(u->message, cases[i].message);
        else
            assert_null(u->message);
        protobuf_c_message_free_unpacked(&u->base, NULL);
        rv_buf_free(&a);
        rv_buf_free(&b);
        rv_buf_free(&c);
    }
}

static void test_reply_messages_round_trip(void **state)
{
    (void)state;
    rv_buf b = {0};
    Ravelwire__GetManyCallback g = RAVELWIRE__GET_MANY_CALLBACK__INIT;
    g.id = 9;
    g.error = "LEVEL_REMOTE_ERROR";
    g.message = "IO error: disk";
    OK(rv_encode(&b, RV_OUT_GET_MANY_CB, &g.base));
    int st;
    Ravelwire__GetManyCallback *gu =
        (Ravelwire__GetManyCallback *)rv_unpack_out((const uint8_t *)b.data + 1, b.len - 1, &st);
    assert_non_null(gu);
    assert_string_equal(gu->message, "IO error: disk");
    protobuf_c_message_free_unpacked(&gu->base, NULL);

    b.len = 0;
    Ravelwire__IteratorError e = RAVELWIRE__ITERATOR_ERROR__INIT;
    e.id = 3;
    e.seq = 1;
    e.error = "LEVEL_LIMIT_EXCEEDED";
    e.message = "at most 8";
    OK(rv_encode(&b, RV_OUT_ITER_ERROR, &e.base));
    /* Field 64: a two-byte key, 0x82 0x04, after many-level's fields. */
    const uint8_t *p = (const uint8_t *)b.data;
    size_t at = b.len - strlen("at most 8") - 3;
    assert_int_equal(p[at], 0x82);
    assert_int_equal(p[at + 1], 0x04);
    Ravelwire__IteratorError *eu =
        (Ravelwire__IteratorError *)rv_unpack_out(p + 1, b.len - 1, &st);
    assert_non_null(eu);
    assert_string_equal(eu->message, "at most 8");
    protobuf_c_message_free_unpacked(&eu->base, NULL);
    rv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announce_round_trip),
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_unknown_fields_skipped),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_wants_sync),
        cmocka_unit_test(test_callback_message),
        cmocka_unit_test(test_reply_messages_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
