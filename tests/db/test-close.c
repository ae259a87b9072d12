/* Closing from anywhere: ravel_db_close() and ravel_iter_free() called
 * from inside the handle's own callbacks — an asynchronous result, an
 * asynchronous next, on_leader after a failover — on every handle kind.
 * The close completes once the callback returns, every other pending
 * request completes exactly once, and nothing is touched after it is
 * freed (this program also runs under valgrind: memcheck-test-close). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../helpers.h"

#define S(x) x, strlen(x)
#define NREQ 64

typedef struct tally {
    ravel_db *db;       /* closed by the first callback */
    int wait_all;       /* ... once every request is submitted (handles
                         * that call back later: the test must not race
                         * the close it asked for) */
    int submitted;
    int calls[NREQ];
    int total, ok, closed, other;
    pthread_mutex_t mu;
} tally;

typedef struct slot {
    tally *t;
    int i;
} slot;

static void tally_init(tally *t, ravel_db *db)
{
    memset(t, 0, sizeof *t);
    t->db = db;
    pthread_mutex_init(&t->mu, NULL);
}

static void on_done(void *ud, int status)
{
    slot *s = ud;
    tally *t = s->t;
    pthread_mutex_lock(&t->mu);
    int first = t->total == 0;
    t->calls[s->i]++;
    t->total++;
    if (status == RAVEL_OK)
        t->ok++;
    else if (status == RAVEL_ECLOSED)
        t->closed++;
    else
        t->other++;
    ravel_db *db = first ? t->db : NULL;
    pthread_mutex_unlock(&t->mu);
    while (db && t->wait_all && !__atomic_load_n(&t->submitted, __ATOMIC_SEQ_CST))
        usleep(1000);
    if (db)
        ravel_db_close(db);
}

static int all_called(void *p)
{
    tally *t = p;
    pthread_mutex_lock(&t->mu);
    int n = t->total;
    pthread_mutex_unlock(&t->mu);
    return n == NREQ;
}

/* Send NREQ puts whose first callback closes t->db, and check that every
 * callback ran exactly once. Returns how many puts were accepted. */
static void close_from_first_callback(tally *t, slot *slots)
{
    int accepted = 0;
    for (int i = 0; i < NREQ; i++) {
        slots[i].t = t;
        slots[i].i = i;
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        pthread_mutex_lock(&t->mu);
        int closed = t->total > 0;
        pthread_mutex_unlock(&t->mu);
        if (closed) {
            /* The handle is gone (local) or going: count the rest as
             * refused, without touching it. */
            pthread_mutex_lock(&t->mu);
            t->calls[i]++;
            t->total++;
            t->closed++;
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        int rc = ravel_put_async(t->db, S(k), S("v"), on_done, &slots[i]);
        if (rc == RAVEL_OK) {
            accepted++;
        } else {
            assert_int_equal(rc, RAVEL_ECLOSED);
            pthread_mutex_lock(&t->mu);
            t->calls[i]++;
            t->total++;
            t->closed++;
            pthread_mutex_unlock(&t->mu);
        }
    }
    __atomic_store_n(&t->submitted, 1, __ATOMIC_SEQ_CST);
    wait_until(all_called, t, "every callback");
    for (int i = 0; i < NREQ; i++)
        assert_int_equal(t->calls[i], 1);
    assert_int_equal(t->other, 0);
    assert_true(t->ok >= 1);
    assert_true(accepted >= 1);
}

/* The loop thread frees a handle closed from its own callback after the
 * callback returns; give it the moment it needs before the program ends,
 * so the leak checkers see the finished state. */
static void let_loop_finish(void)
{
    usleep(200 * 1000);
}

static void test_local_close_in_callback(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *db;
    OK(ravel_open_local(&db, path, NULL));
    tally t;
    slot slots[NREQ];
    tally_init(&t, db);
    close_from_first_callback(&t, slots);
    assert_int_equal(t.ok, 1); /* a local handle calls back before returning */
    /* The lock is free again: the close completed. */
    OK(ravel_open_local(&db, path, NULL));
    ravel_db_close(db);
    rm_tmpdir(dir);
}

static void test_remote_close_in_callback(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, NULL, NULL);
    tally t;
    slot slots[NREQ];
    tally_init(&t, p.guest);
    t.wait_all = 1;
    close_from_first_callback(&t, slots);
    assert_int_equal(t.ok + t.closed, NREQ);
    p.guest = NULL; /* closed by its callback */
    let_loop_finish();
    pair_close(&p);
}

typedef struct iter_close {
    ravel_iter *it;
    int entries, calls, status;
    pthread_mutex_t mu;
} iter_close;

static void on_entry_free(void *ud, int status, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    iter_close *c = ud;
    ravel_iter_free(c->it); /* from inside its own callback */
    pthread_mutex_lock(&c->mu);
    c->calls++;
    c->status = status;
    pthread_mutex_unlock(&c->mu);
}

static int iter_called(void *p)
{
    iter_close *c = p;
    pthread_mutex_lock(&c->mu);
    int n = c->calls;
    pthread_mutex_unlock(&c->mu);
    return n == 1;
}

static void iter_free_in_callback(ravel_db *db)
{
    OK(ravel_put(db, S("a"), S("1")));
    OK(ravel_put(db, S("b"), S("2")));
    iter_close c = {.status = -1};
    pthread_mutex_init(&c.mu, NULL);
    OK(ravel_iter_new(db, NULL, &c.it));
    OK(ravel_iter_next_async(c.it, on_entry_free, &c));
    wait_until(iter_called, &c, "the next's callback");
    assert_int_equal(c.status, RAVEL_OK);
    /* The handle is still fine. */
    OK(ravel_put(db, S("c"), S("3")));
    pthread_mutex_destroy(&c.mu);
}

static void test_iter_free_in_callback(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, NULL, NULL);
    iter_free_in_callback(p.local);
    iter_free_in_callback(p.guest);
    pair_close(&p);
}

/* ---- party ---- */

static ravel_db *to_close_on_leader;

static void close_on_leader(void *ud)
{
    (void)ud;
    ravel_db *db = __atomic_exchange_n(&to_close_on_leader, NULL, __ATOMIC_SEQ_CST);
    if (db)
        ravel_db_close(db);
}

static int on_leader_ran(void *p)
{
    (void)p;
    return __atomic_load_n(&to_close_on_leader, __ATOMIC_SEQ_CST) == NULL;
}

typedef struct lock_wait {
    const char *path;
} lock_wait;

static int lock_free(void *p)
{
    lock_wait *w = p;
    ravel_db *db;
    ravel_options o;
    ravel_options_init(&o);
    o.create_if_missing = 0;
    if (ravel_open_local(&db, w->path, &o) != RAVEL_OK)
        return 0;
    ravel_db_close(db);
    return 1;
}

static void test_party_close_in_on_leader(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *leader, *follower;
    OK(ravel_open(&leader, path, NULL));
    assert_int_equal(ravel_db_role(leader), RAVEL_ROLE_LEADER);
    ravel_options o;
    ravel_options_init(&o);
    o.on_leader = close_on_leader;
    OK(ravel_open(&follower, path, &o));
    assert_int_equal(ravel_db_role(follower), RAVEL_ROLE_FOLLOWER);
    OK(ravel_put(follower, S("k"), S("v")));
    __atomic_store_n(&to_close_on_leader, follower, __ATOMIC_SEQ_CST);
    /* The follower takes over, and closes itself from on_leader, on its
     * loop thread: the directory is free again once that close is done. */
    ravel_db_close(leader);
    wait_until(on_leader_ran, NULL, "the follower's on_leader");
    lock_wait w = {path};
    wait_until(lock_free, &w, "the follower's close from on_leader");
    let_loop_finish();
    rm_tmpdir(dir);
}

static void test_party_follower_close_in_callback(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *leader, *follower;
    OK(ravel_open(&leader, path, NULL));
    OK(ravel_open(&follower, path, NULL));
    assert_int_equal(ravel_db_role(follower), RAVEL_ROLE_FOLLOWER);
    tally t;
    slot slots[NREQ];
    tally_init(&t, follower);
    t.wait_all = 1;
    close_from_first_callback(&t, slots);
    assert_int_equal(t.ok + t.closed, NREQ);
    let_loop_finish();
    /* The leader is unharmed. */
    OK(ravel_put(leader, S("after"), S("1")));
    ravel_db_close(leader);
    rm_tmpdir(dir);
}

static void test_party_leader_close_in_callback(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *leader;
    OK(ravel_open(&leader, path, NULL));
    tally t;
    slot slots[NREQ];
    tally_init(&t, leader);
    close_from_first_callback(&t, slots);
    assert_int_equal(t.ok, 1);
    lock_wait w = {path};
    assert_true(lock_free(&w));
    rm_tmpdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_close_in_callback),
        cmocka_unit_test(test_remote_close_in_callback),
        cmocka_unit_test(test_iter_free_in_callback),
        cmocka_unit_test(test_party_close_in_on_leader),
        cmocka_unit_test(test_party_follower_close_in_callback),
        cmocka_unit_test(test_party_leader_close_in_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
