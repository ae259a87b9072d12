/* Extensions on the guest side (docs/protocol-extensions.md): the guest
 * session, in memory, playing a ravel host (which announces) and a
 * many-level host (which does not); then a remote handle end to end
 * against a ravel host whose hook rejects a write with a message. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../helpers.h"
#include "guest/session.h"
#include "wire/codec.h"

#define B(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

/* ---- what the guest wrote ---- */

typedef struct frames {
    size_t n;
    uint8_t tags[32];
    ProtobufCMessage *msgs[32];
} frames;

static int collect(void *ud, const uint8_t *p, size_t len)
{
    frames *f = ud;
    assert_true(f->n < 32);
    int st;
    f->tags[f->n] = p[0];
    f->msgs[f->n] = rv_unpack_in(p, len, &st);
    assert_non_null(f->msgs[f->n]);
    f->n++;
    return 0;
}

/* Take every frame the guest has written so far (and empty `out`). */
static void take_out(rv_gsession *s, frames *f)
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
    f->n = 0;
}

/* ---- what the host writes ---- */

static void feed_announce(rv_gsession *s, uint32_t exts)
{
    rv_buf b = {0};
    OK(rv_encode_announce(&b, exts));
    OK(rv_gsession_feed(s, (const uint8_t *)b.data, b.len));
    rv_buf_free(&b);
}

static void feed_callback(rv_gsession *s, uint32_t id, const char *error, const char *message)
{
    rv_buf b = {0};
    OK(rv_encode_callback_msg(&b, id, error, message, NULL, 0));
    OK(rv_gsession_feed(s, (const uint8_t *)b.data, b.len));
    rv_buf_free(&b);
}

static void feed_get_many_cb(rv_gsession *s, uint32_t id)
{
    rv_buf b = {0};
    Ravelwire__GetManyCallback m = RAVELWIRE__GET_MANY_CALLBACK__INIT;
    m.id = id;
    OK(rv_encode(&b, RV_OUT_GET_MANY_CB, &m.base));
    OK(rv_gsession_feed(s, (const uint8_t *)b.data, b.len));
    rv_buf_free(&b);
}

/* ---- requests ---- */

static void submit_put(rv_gsession *s, rv_greq *r, const char *key, uint32_t needs)
{
    memset(r, 0, sizeof *r);
    r->needs = needs;
    Ravelwire__Put m = RAVELWIRE__PUT__INIT;
    m.key = B(key);
    m.has_value = 1;
    m.value = B("v");
    OK(rv_gsession_submit(s, r, RV_IN_PUT, &m.base, &m.id));
}

/* The one completion waiting (r), taken off the list. */
static void expect_done(rv_gsession *s, rv_greq *r, int status)
{
    assert_ptr_equal(s->done, r);
    assert_null(r->done_next);
    s->done = NULL;
    assert_int_equal(r->status, status);
}

static void greq_free(rv_greq *r)
{
    if (r->reply)
        protobuf_c_message_free_unpacked(r->reply, NULL);
    r->reply = NULL;
    rv_buf_free(&r->frame);
}

/* A session whose plain writes go out at once (no exactly-once: writes
 * that want it wait for the host, see test_writes_wait_for_the_host). */
static void session_up(rv_gsession *s, int retry)
{
    rv_gsession_init(s, retry, 0, 0);
    s->ext_wanted &= ~RV_EXT_EXACTLY_ONCE;
    OK(rv_gsession_connected(s));
}

/* ---- the guest session ---- */

static void test_announcement_recorded_and_forgotten(void **state)
{
    (void)state;
    rv_gsession s;
    session_up(&s, 1);
    assert_int_equal(s.host, RV_HOST_UNKNOWN);
    rv_greq put;
    submit_put(&s, &put, "k", 0);
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 1); /* sent at once: it needs nothing */
    assert_int_equal(f.tags[0], RV_IN_PUT);
    frames_free(&f);

    feed_announce(&s, RV_EXT_ALL);
    assert_int_equal(s.host, RV_HOST_RAVEL);
    assert_int_equal(s.host_version, RV_PROTO_VERSION);
    assert_int_equal(s.host_ext, RV_EXT_ALL);
    assert_int_equal(s.ext_on, RV_EXT_ALL & ~RV_EXT_EXACTLY_ONCE); /* as session_up wants */
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], RV_IN_HELLO);
    Ravelwire__Hello *h = (Ravelwire__Hello *)f.msgs[0];
    assert_int_equal(h->version, RV_PROTO_VERSION);
    assert_int_equal(h->n_extensions, 5);
    assert_string_equal(h->extensions[0], "error-messages");
    assert_string_equal(h->extensions[1], "conditional");
    assert_string_equal(h->extensions[2], "sync");
    assert_string_equal(h->extensions[3], "snapshots");
    assert_string_equal(h->extensions[4], "maintenance");
    frames_free(&f);

    /* The stream is lost: a failover may land on a Node leader. */
    rv_gsession_lost(&s);
    assert_int_equal(s.host, RV_HOST_UNKNOWN);
    assert_int_equal(s.host_ext, 0);
    assert_int_equal(s.ext_on, 0);
    OK(rv_gsession_connected(&s));
    take_out(&s, &f);
    assert_int_equal(f.n, 1); /* the put again, no Hello */
    assert_int_equal(f.tags[0], RV_IN_PUT);
    frames_free(&f);
    /* This host answers without announcing: a many-level host. */
    feed_callback(&s, put.id, NULL, NULL);
    assert_int_equal(s.host, RV_HOST_PLAIN);
    expect_done(&s, &put, RAVEL_OK);
    greq_free(&put);
    /* A late Announce changes nothing, and gets no Hello. */
    feed_announce(&s, RV_EXT_ALL);
    assert_int_equal(s.host, RV_HOST_PLAIN);
    assert_int_equal(s.out.len, 0);
    rv_gsession_close(&s);
    rv_gsession_free(&s);
}

static void test_hello_only_after_announcement(void **state)
{
    (void)state;
    rv_gsession s;
    session_up(&s, 0);
    rv_greq a, b;
    submit_put(&s, &a, "a", 0);
    submit_put(&s, &b, "b", 0);
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.tags[0], RV_IN_PUT);
    assert_int_equal(f.tags[1], RV_IN_PUT);
    frames_free(&f);
    /* A many-level host: replies, no Announce, so never a Hello. */
    feed_callback(&s, a.id, NULL, NULL);
    feed_callback(&s, b.id, NULL, NULL);
    assert_int_equal(s.out.len, 0);
    assert_int_equal(s.host, RV_HOST_PLAIN);
    s.done = NULL;
    greq_free(&a);
    greq_free(&b);
    rv_gsession_close(&s);
    rv_gsession_free(&s);

    /* A ravel host: one Hello, even when it announces twice. */
    session_up(&s, 0);
    feed_announce(&s, RV_EXT_ALL);
    feed_announce(&s, RV_EXT_ALL);
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], RV_IN_HELLO);
    frames_free(&f);
    /* A guest that uses no extension says so. */
    rv_gsession_close(&s);
    rv_gsession_free(&s);
    rv_gsession_init(&s, 0, 0, 0);
    s.ext_wanted = 0;
    OK(rv_gsession_connected(&s));
    feed_announce(&s, RV_EXT_ALL);
    assert_int_equal(s.ext_on, 0);
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(((Ravelwire__Hello *)f.msgs[0])->n_extensions, 0);
    frames_free(&f);
    rv_gsession_close(&s);
    rv_gsession_free(&s);
}

/* A host that announced, but not the extension: ENOTSUP at submit,
 * nothing sent. */
static void test_enotsup_when_not_announced(void **state)
{
    (void)state;
    rv_gsession s;
    session_up(&s, 1);
    feed_announce(&s, 0);
    s.out.len = 0; /* the Hello */
    rv_greq r;
    memset(&r, 0, sizeof r);
    r.needs = RV_EXT_ERROR_MESSAGES;
    Ravelwire__Put m = RAVELWIRE__PUT__INIT;
    m.key = B("k");
    assert_int_equal(rv_gsession_submit(&s, &r, RV_IN_PUT, &m.base, &m.id), RAVEL_ENOTSUP);
    assert_non_null(strstr(ravel_errmsg(), "\"error-messages\""));
    assert_non_null(strstr(ravel_errmsg(), "does not offer"));
    assert_int_equal(s.out.len, 0);
    assert_int_equal(s.reqs.len, 0);
    assert_null(s.done);
    rv_buf_free(&r.frame);
    /* Announced, but this guest does not use it: the same. */
    rv_gsession_lost(&s);
    s.ext_wanted = 0;
    OK(rv_gsession_connected(&s));
    feed_announce(&s, RV_EXT_ALL);
    s.out.len = 0;
    memset(&r, 0, sizeof r);
    r.needs = RV_EXT_ERROR_MESSAGES;
    ravel_batch *b = ravel_batch_new();
    OK(ravel_batch_put(b, "k", 1, "v", 1));
    assert_int_equal(rv_gsession_submit_batch(&s, &r, b), RAVEL_ENOTSUP);
    assert_non_null(strstr(ravel_errmsg(), "does not use extension \"error-messages\""));
    assert_int_equal(s.out.len, 0);
    ravel_batch_free(b);
    rv_buf_free(&r.frame);
    rv_gsession_close(&s);
    rv_gsession_free(&s);
}

/* A host that announces nothing (many-level's): a request that needs an
 * extension waits unsent, the probe makes the host answer, and the answer
 * without an Announce fails the request with ENOTSUP. */
static void test_enotsup_from_node_like_host(void **state)
{
    (void)state;
    rv_gsession s;
    session_up(&s, 0);
    rv_greq r;
    submit_put(&s, &r, "k", RV_EXT_ERROR_MESSAGES);
    assert_true(r.held);
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 1); /* only the probe: a GetMany of no keys */
    assert_int_equal(f.tags[0], RV_IN_GET_MANY);
    Ravelwire__GetMany *probe = (Ravelwire__GetMany *)f.msgs[0];
    assert_int_equal(probe->n_keys, 0);
    assert_int_not_equal(probe->id, r.id);
    uint32_t probe_id = probe->id;
    frames_free(&f);
    assert_null(s.done);

    feed_get_many_cb(&s, probe_id);
    assert_int_equal(s.host, RV_HOST_PLAIN);
    expect_done(&s, &r, RAVEL_ENOTSUP); /* the probe's reply is not handed out */
    assert_null(r.reply);
    const char *why = rv_greq_detail(&r);
    assert_non_null(why);
    assert_non_null(strstr(why, "\"error-messages\""));
    assert_non_null(strstr(why, "announced no extensions"));
    assert_int_equal(s.out.len, 0); /* never sent */
    assert_int_equal(s.reqs.len, 0);
    greq_free(&r);

    /* Known now: the next one fails at once. */
    memset(&r, 0, sizeof r);
    r.needs = RV_EXT_ERROR_MESSAGES;
    Ravelwire__Put m = RAVELWIRE__PUT__INIT;
    m.key = B("k");
    assert_int_equal(rv_gsession_submit(&s, &r, RV_IN_PUT, &m.base, &m.id), RAVEL_ENOTSUP);
    assert_non_null(strstr(ravel_errmsg(), "\"error-messages\""));
    assert_int_equal(s.out.len, 0);
    rv_buf_free(&r.frame);
    rv_gsession_close(&s);
    rv_gsession_free(&s);
}

/* With another request awaiting its reply, no probe: that reply decides. */
static void test_no_probe_while_others_in_flight(void **state)
{
    (void)state;
    rv_gsession s;
    session_up(&s, 0);
    rv_greq plain, ext;
    submit_put(&s, &plain, "a", 0);
    submit_put(&s, &ext, "b", RV_EXT_ERROR_MESSAGES);
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], RV_IN_PUT);
    assert_int_equal(((Ravelwire__Put *)f.msgs[0])->id, plain.id);
    frames_free(&f);
    feed_callback(&s, plain.id, NULL, NULL);
    /* Both done: the put, and the waiting one with ENOTSUP. */
    rv_greq *d1 = s.done, *d2 = d1 ? d1->done_next : NULL;
    assert_non_null(d2);
    assert_null(d2->done_next);
    assert_true((d1 == &plain && d2 == &ext) || (d1 == &ext && d2 == &plain));
    assert_int_equal(plain.status, RAVEL_OK);
    assert_int_equal(ext.status, RAVEL_ENOTSUP);
    assert_int_equal(s.out.len, 0);
    s.done = NULL;
    greq_free(&plain);
    greq_free(&ext);
    rv_gsession_close(&s);
    rv_gsession_free(&s);
}

/* A ravel host with the extension: the waiting request goes out after the
 * Hello, submitted before any stream or on one not yet heard from. */
static void test_waiting_request_released_by_announcement(void **state)
{
    (void)state;
    rv_gsession s;
    rv_gsession_init(&s, 1, 0, 0);
    rv_greq r;
    submit_put(&s, &r, "k", RV_EXT_ERROR_MESSAGES); /* no stream yet */
    assert_int_equal(s.out.len, 0);
    OK(rv_gsession_connected(&s));
    frames f;
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], RV_IN_GET_MANY); /* the probe */
    uint32_t probe_id = ((Ravelwire__GetMany *)f.msgs[0])->id;
    frames_free(&f);

    feed_announce(&s, RV_EXT_ALL);
    take_out(&s, &f);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.tags[0], RV_IN_HELLO);
    assert_int_equal(f.tags[1], RV_IN_PUT);
    assert_int_equal(((Ravelwire__Put *)f.msgs[1])->id, r.id);
    frames_free(&f);
    assert_false(r.held);
    feed_get_many_cb(&s, probe_id); /* the probe's late reply: dropped */
    assert_null(s.done);
    feed_callback(&s, r.id, "LEVEL_REJECTED", "no writes under /sys");
    expect_done(&s, &r, RAVEL_EREJECTED);
    assert_string_equal(rv_greq_detail(&r), "no writes under /sys");
    greq_free(&r);

    /* Sent to a ravel host, then the stream is lost: on the next stream it
     * waits again, and this host turns out to be a Node host. */
    submit_put(&s, &r, "k2", RV_EXT_ERROR_MESSAGES);
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], RV_IN_PUT);
    frames_free(&f);
    rv_gsession_lost(&s);
    OK(rv_gsession_connected(&s));
    take_out(&s, &f);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.tags[0], RV_IN_GET_MANY); /* a probe, not the put */
    probe_id = ((Ravelwire__GetMany *)f.msgs[0])->id;
    frames_free(&f);
    feed_get_many_cb(&s, probe_id);
    expect_done(&s, &r, RAVEL_ENOTSUP);
    assert_int_equal(s.out.len, 0);
    greq_free(&r);
    rv_gsession_close(&s);
    rv_gsession_free(&s);
}

/* Waiting requests complete once at close, and a lost stream without
 * retry fails them with ECONNLOST like any other. */
static void test_waiting_requests_complete_once(void **state)
{
    (void)state;
    rv_gsession s;
    session_up(&s, 0);
    rv_greq r;
    submit_put(&s, &r, "k", RV_EXT_ERROR_MESSAGES);
    rv_gsession_lost(&s);
    expect_done(&s, &r, RAVEL_ECONNLOST);
    assert_int_equal(s.held, 0);
    assert_int_equal(s.reqs.len, 0);
    greq_free(&r);
    rv_gsession_free(&s);

    rv_gsession_init(&s, 1, 0, 0);
    submit_put(&s, &r, "k", RV_EXT_ERROR_MESSAGES);
    rv_gsession_close(&s);
    expect_done(&s, &r, RAVEL_ECLOSED);
    assert_int_equal(s.held, 0);
    greq_free(&r);
    rv_gsession_free(&s);
}

/* ---- a remote handle end to end ---- */

static const char *no_sys(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)ud;
    (void)val;
    (void)vlen;
    return klen >= 5 && memcmp(key, "/sys/", 5) == 0 ? "no writes under /sys" : NULL;
}

static int guest_up(void *db)
{
    return ravel_guest_connected(db);
}

static void test_remote_shows_hook_message(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ravel_db *local, *guest;
    char dbpath[4200];
    snprintf(dbpath, sizeof dbpath, "%s/db", dir);
    OK(ravel_open_local(&local, dbpath, NULL));
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.preput = no_sys;
    ho.verbose = 1; /* logs to stderr, which goes to a file meanwhile */
    char logpath[4200];
    snprintf(logpath, sizeof logpath, "%s/host.log", dir);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(logfd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(logfd, 2), 2);
    close(logfd);
    ravel_host *host;
    OK(ravel_host_new(&host, local, &ho));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    OK(ravel_host_attach_fd(host, sv[0], sv[0]));
    OK(ravel_guest_new(&guest, NULL));
    OK(ravel_guest_attach_fd(guest, sv[1], sv[1]));
    wait_until(guest_up, guest, "the guest's stream is up");
    /* A first answer comes after the host's Announce, so the guest's Hello
     * is on its way before the put below: requests written before the
     * guest saw the Announce are served without extensions. */
    char *val = NULL;
    size_t vlen;
    assert_int_equal(ravel_get(guest, "none", 4, &val, &vlen), RAVEL_ENOTFOUND);
    OK(ravel_put(guest, "/etc/x", 6, "v", 1));
    assert_int_equal(ravel_put(guest, "/sys/x", 6, "v", 1), RAVEL_EREJECTED);
    const char *msg = ravel_errmsg();
    assert_non_null(strstr(msg, "LEVEL_REJECTED"));
    assert_non_null(strstr(msg, "no writes under /sys"));
    assert_string_equal(msg, "write rejected by the host's hook: host replied LEVEL_REJECTED: "
                             "no writes under /sys");
    assert_int_equal(ravel_get(guest, "/sys/x", 6, &val, &vlen), RAVEL_ENOTFOUND);
    OK(ravel_get(guest, "/etc/x", 6, &val, &vlen));
    ravel_free(val);
    ravel_db_close(guest);
    ravel_host_free(host);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    /* The verbose host logged the hook's words. */
    FILE *f = fopen(logpath, "r");
    assert_non_null(f);
    char log[8192];
    size_t n = fread(log, 1, sizeof log - 1, f);
    log[n] = '\0';
    fclose(f);
    assert_non_null(strstr(log, "ravel host: the preput hook rejected a write: no writes under /sys"));
    ravel_db_close(local);
    rm_tmpdir(dir);
}

/* An iterator the host refuses says why: the IteratorError's message. */
static void test_remote_iterator_error_message(void **state)
{
    (void)state;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.max_iterators = 1;
    pair p;
    pair_open(&p, &ho, NULL);
    char *val = NULL;
    size_t vlen;
    assert_int_equal(ravel_get(p.guest, "none", 4, &val, &vlen), RAVEL_ENOTFOUND);
    OK(ravel_put(p.guest, "a", 1, "1", 1));
    ravel_iter *first, *second;
    OK(ravel_iter_new(p.guest, NULL, &first));
    const char *k, *v;
    size_t kl, vl;
    OK(ravel_iter_next(first, &k, &kl, &v, &vl));
    OK(ravel_iter_new(p.guest, NULL, &second));
    assert_int_equal(ravel_iter_next(second, &k, &kl, &v, &vl), RAVEL_ELIMIT);
    const char *msg = ravel_errmsg();
    assert_non_null(strstr(msg, "iterator failed"));
    assert_non_null(strstr(msg, "at most 1 iterators are open per connection"));
    ravel_iter_free(second);
    ravel_iter_free(first);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announcement_recorded_and_forgotten),
        cmocka_unit_test(test_remote_iterator_error_message),
        cmocka_unit_test(test_hello_only_after_announcement),
        cmocka_unit_test(test_enotsup_when_not_announced),
        cmocka_unit_test(test_enotsup_from_node_like_host),
        cmocka_unit_test(test_no_probe_while_others_in_flight),
        cmocka_unit_test(test_waiting_request_released_by_announcement),
        cmocka_unit_test(test_waiting_requests_complete_once),
        cmocka_unit_test(test_remote_shows_hook_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
