/* Streams in shared memory (extension "shm"): a guest and a host on a
 * unix socket move into the rings; frames larger than the rings, many in
 * flight and iterators go through them; either side can decline; a guest
 * that breaks its ring or writes on its socket afterwards loses its own
 * connection and no other. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../helpers.h"
#include "guest/handle.h"

#define S(x) x, strlen(x)

static rv_shm_state shm_state(ravel_db *db)
{
    remote *r = (remote *)db;
    uv_mutex_lock(&r->mu);
    rv_shm_state st = r->shm_state;
    uv_mutex_unlock(&r->mu);
    return st;
}

static int in_rings(void *db)
{
    return shm_state(db) == RSHM_ON;
}

/* One request (the first may go out before the Announce came, and be
 * answered on the socket), then wait for the stream to move into the
 * rings: the offer goes out after the Hello, the answer comes later. */
static void settle(ravel_db *db)
{
    char *v;
    size_t n;
    int rc = ravel_get(db, S("settle"), &v, &n);
    assert_true(rc == RAVEL_OK || rc == RAVEL_ENOTFOUND);
    if (rc == RAVEL_OK)
        ravel_free(v);
    wait_until(in_rings, db, "the stream to move into shared memory");
}

static void test_in_shared_memory_by_default(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, NULL, NULL);
    settle(p.guest);
    OK(ravel_put(p.guest, S("k"), S("v")));
    char *v;
    size_t n;
    OK(ravel_get(p.local, S("k"), &v, &n));
    assert_memory_equal(v, "v", 1);
    ravel_free(v);
    pair_close(&p);
}

/* Either side may say no; the stream then stays on the socket. */
static void test_either_side_declines(void **state)
{
    (void)state;
    for (int side = 0; side < 2; side++) {
        ravel_host_options ho;
        ravel_host_options_init(&ho);
        ravel_options go;
        ravel_options_init(&go);
        if (side == 0)
            ho.shared_memory = 0;
        else
            go.shared_memory = 0;
        pair p;
        pair_open(&p, &ho, &go);
        char *v;
        size_t n;
        assert_int_equal(ravel_get(p.guest, S("k"), &v, &n), RAVEL_ENOTFOUND);
        assert_int_equal(shm_state(p.guest), RSHM_OFF);
        OK(ravel_put(p.guest, S("k"), S("v")));
        OK(ravel_get(p.guest, S("k"), &v, &n));
        ravel_free(v);
        assert_int_equal(shm_state(p.guest), RSHM_OFF);
        pair_close(&p);
    }
}

/* Values larger than a ring (256 KiB) both ways: a Put frame the host
 * takes in pieces, a reply the host writes in pieces, GetMany and an
 * iterator over them. */
static void test_frames_larger_than_the_ring(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, NULL, NULL);
    settle(p.guest);
    size_t sizes[] = {RV_SHM_RING - 7, RV_SHM_RING + 1, 3 * RV_SHM_RING + 12345};
    char *big = malloc(sizes[2]);
    for (size_t i = 0; i < sizes[2]; i++)
        big[i] = (char)('a' + i % 23);
    char key[3][8];
    for (int i = 0; i < 3; i++) {
        snprintf(key[i], sizeof key[i], "big%d", i);
        OK(ravel_put(p.guest, S(key[i]), big, sizes[i]));
    }
    for (int i = 0; i < 3; i++) {
        char *v;
        size_t n;
        OK(ravel_get(p.guest, S(key[i]), &v, &n));
        assert_int_equal(n, sizes[i]);
        assert_memory_equal(v, big, n);
        ravel_free(v);
    }
    const void *keys[3] = {key[0], key[1], key[2]};
    size_t klens[3] = {4, 4, 4};
    char *vals[3];
    size_t vlens[3];
    OK(ravel_get_many(p.guest, 3, keys, klens, vals, vlens));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vlens[i], sizes[i]);
        assert_memory_equal(vals[i], big, sizes[i]);
        ravel_free(vals[i]);
    }
    ravel_iter *it;
    OK(ravel_iter_new(p.guest, NULL, &it));
    int count = 0;
    const char *k, *v;
    size_t kl, vl;
    while (ravel_iter_next(it, &k, &kl, &v, &vl) == RAVEL_OK) {
        if (kl == 4 && memcmp(k, "big", 3) == 0) {
            assert_int_equal(vl, sizes[k[3] - '0']);
            assert_memory_equal(v, big, vl);
        }
        count++;
    }
    ravel_iter_free(it);
    assert_int_equal(count, 3);
    assert_int_equal(shm_state(p.guest), RSHM_ON);
    free(big);
    pair_close(&p);
}

typedef struct tally {
    atomic_int ok, bad;
} tally;

static void on_done(void *ud, int status)
{
    tally *t = ud;
    if (status == RAVEL_OK)
        atomic_fetch_add(&t->ok, 1);
    else
        atomic_fetch_add(&t->bad, 1);
}

static int all_done(void *ud)
{
    tally *t = ud;
    return atomic_load(&t->ok) + atomic_load(&t->bad) == 20000;
}

/* Many requests in flight: more than fit in a ring at once. */
static void test_many_in_flight(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, NULL, NULL);
    settle(p.guest);
    tally t = {0};
    char val[100];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < 20000; i++) {
        char k[32];
        snprintf(k, sizeof k, "p%06d", i);
        OK(ravel_put_async(p.guest, S(k), val, sizeof val, on_done, &t));
    }
    wait_until(all_done, &t, "20000 puts");
    assert_int_equal(atomic_load(&t.bad), 0);
    ravel_iter *it;
    OK(ravel_iter_new(p.local, NULL, &it));
    int n = 0;
    while (ravel_iter_next(it, NULL, NULL, NULL, NULL) == RAVEL_OK)
        n++;
    ravel_iter_free(it);
    assert_int_equal(n, 20000);
    pair_close(&p);
}

static int stream_gone(void *db)
{
    remote *r = db;
    uv_mutex_lock(&r->mu);
    int gone = r->state != RS_UP;
    uv_mutex_unlock(&r->mu);
    return gone;
}

/* Two guests of one host; the first breaks its stream in `how`: its own
 * requests fail, the second's go on. */
static void break_one(int how)
{
    pair p;
    pair_open(&p, NULL, NULL);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    OK(ravel_host_attach_fd(p.host, sv[0], sv[0]));
    ravel_db *other;
    OK(ravel_guest_new(&other, NULL));
    OK(ravel_guest_attach_fd(other, sv[1], sv[1]));
    settle(p.guest);
    settle(other);
    remote *r = (remote *)p.guest;
    uv_mutex_lock(&r->mu);
    if (how == 0) {
        /* A head that claims more bytes than the ring holds (this
         * guest's own count stays as it was), and a wake-up. */
        atomic_store(&r->shm.tx.ctl->head, r->shm.tx.pos + (uint64_t)RV_SHM_RING * 4);
        rv_ring_poke(&r->shm.tx);
    } else {
        /* A byte on the socket, which carries only doorbells now. */
        assert_int_equal(write(r->wfd, "x", 1), 1);
    }
    uv_mutex_unlock(&r->mu);
    wait_until(stream_gone, p.guest, "the host to close the broken stream");
    assert_int_equal(ravel_put(p.guest, S("mine"), S("v")), RAVEL_ECONNLOST);
    OK(ravel_put(other, S("theirs"), S("v")));
    char *v;
    size_t n;
    OK(ravel_get(other, S("theirs"), &v, &n));
    ravel_free(v);
    assert_int_equal(ravel_get(p.local, S("mine"), &v, &n), RAVEL_ENOTFOUND);
    ravel_db_close(other);
    pair_close(&p);
}

static void test_bad_ring_closes_only_its_stream(void **state)
{
    (void)state;
    break_one(0);
}

static void test_socket_bytes_close_only_their_stream(void **state)
{
    (void)state;
    break_one(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_shared_memory_by_default),
        cmocka_unit_test(test_either_side_declines),
        cmocka_unit_test(test_frames_larger_than_the_ring),
        cmocka_unit_test(test_many_in_flight),
        cmocka_unit_test(test_bad_ring_closes_only_its_stream),
        cmocka_unit_test(test_socket_bytes_close_only_their_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
