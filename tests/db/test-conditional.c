/* Conditional batches (ravel_batch_check, ravel_batch_check_absent) and
 * per-write sync on every handle kind: local, a guest over a socketpair,
 * a party leader and a party follower. Checks that fail write nothing and
 * answer RAVEL_ECONFLICT; threads that increment one counter by reading it
 * and writing it back under a check lose no increment; ravel's reserved
 * keys stay out of sight. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../helpers.h"

#define S(x) x, strlen(x)

typedef struct kinds {
    char *dir;
    pair p;             /* local + guest */
    ravel_db *leader, *follower;
} kinds;

static int setup(void **state)
{
    kinds *k = calloc(1, sizeof *k);
    pair_open(&k->p, NULL, NULL);
    k->dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/party", k->dir);
    OK(ravel_open(&k->leader, path, NULL));
    OK(ravel_open(&k->follower, path, NULL));
    assert_int_equal(ravel_db_role(k->follower), RAVEL_ROLE_FOLLOWER);
    *state = k;
    return 0;
}

static int teardown(void **state)
{
    kinds *k = *state;
    ravel_db_close(k->follower);
    ravel_db_close(k->leader);
    rm_tmpdir(k->dir);
    pair_close(&k->p);
    free(k);
    return 0;
}

static ravel_db *kind(kinds *k, int i)
{
    ravel_db *dbs[] = {k->p.local, k->p.guest, k->leader, k->follower};
    return dbs[i];
}

static const char *kind_name(int i)
{
    static const char *names[] = {"local", "guest", "leader", "follower"};
    return names[i];
}

static void want_value(ravel_db *db, const char *key, const char *want)
{
    char *v = NULL;
    size_t vl = 0;
    int rc = ravel_get(db, S(key), &v, &vl);
    if (!want) {
        assert_int_equal(rc, RAVEL_ENOTFOUND);
        return;
    }
    OK(rc);
    assert_int_equal(vl, strlen(want));
    assert_memory_equal(v, want, vl);
    ravel_free(v);
}

static void test_checks_on_every_kind(void **state)
{
    kinds *k = *state;
    for (int i = 0; i < 4; i++) {
        ravel_db *db = kind(k, i);
        char key[32], other[32];
        snprintf(key, sizeof key, "c-%s", kind_name(i));
        snprintf(other, sizeof other, "o-%s", kind_name(i));
        ravel_batch *b = ravel_batch_new();

        /* Absent: applies once, then conflicts and writes nothing. */
        OK(ravel_batch_check_absent(b, S(key)));
        OK(ravel_batch_put(b, S(key), S("1")));
        OK(ravel_batch_put(b, S(other), S("x")));
        assert_int_equal(ravel_batch_count(b), 2);
        assert_int_equal(ravel_batch_check_count(b), 1);
        OK(ravel_write(db, b));
        want_value(db, key, "1");
        OK(ravel_del(db, S(other)));
        assert_int_equal(ravel_write(db, b), RAVEL_ECONFLICT);
        assert_non_null(strstr(ravel_errmsg(), "check 0"));
        want_value(db, other, NULL);

        /* Value: exactly these bytes (a prefix or a longer value is not). */
        ravel_batch_clear(b);
        OK(ravel_batch_check(b, S(key), S("1")));
        OK(ravel_batch_put(b, S(key), S("2")));
        OK(ravel_write(db, b));
        want_value(db, key, "2");
        assert_int_equal(ravel_write(db, b), RAVEL_ECONFLICT);
        ravel_batch_clear(b);
        OK(ravel_batch_check(b, S(key), S("")));
        OK(ravel_batch_del(b, S(key)));
        assert_int_equal(ravel_write(db, b), RAVEL_ECONFLICT);
        ravel_batch_clear(b);
        OK(ravel_batch_check(b, S(key), S("22")));
        OK(ravel_batch_del(b, S(key)));
        assert_int_equal(ravel_write(db, b), RAVEL_ECONFLICT);
        want_value(db, key, "2");

        /* Several checks: all must hold; checks only, no operation. */
        ravel_batch_clear(b);
        OK(ravel_batch_check(b, S(key), S("2")));
        OK(ravel_batch_check_absent(b, S(other)));
        OK(ravel_write(db, b));
        OK(ravel_batch_check_absent(b, S(key)));
        assert_int_equal(ravel_write(db, b), RAVEL_ECONFLICT);

        /* The empty value and the empty key. */
        ravel_batch_clear(b);
        OK(ravel_batch_check_absent(b, "", 0));
        OK(ravel_batch_put(b, "", 0, "", 0));
        OK(ravel_write(db, b));
        ravel_batch_clear(b);
        OK(ravel_batch_check(b, "", 0, "", 0));
        OK(ravel_batch_del(b, "", 0));
        OK(ravel_write(db, b));
        want_value(db, "", NULL);

        /* Per-write sync goes through on every kind (a ravel host
         * honours it). */
        ravel_writeoptions wo = {.sync = 1};
        OK(ravel_put_opt(db, &wo, S(other), S("s")));
        assert_int_equal(ravel_write_opt(db, &wo, b), RAVEL_ECONFLICT); /* "" is gone */
        OK(ravel_del_opt(db, &wo, S(other)));
        ravel_range r;
        ravel_range_init(&r);
        r.has_gte = 1;
        r.gte = (ravel_bound){S(other)};
        r.has_lte = 1;
        r.lte = (ravel_bound){S(other)};
        OK(ravel_clear_opt(db, &wo, &r));
        ravel_batch_free(b);
    }
}

typedef struct done_wait {
    pthread_mutex_t mu;
    int n, status;
} done_wait;

static void on_done(void *ud, int status)
{
    done_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    w->n++;
    w->status = status;
    pthread_mutex_unlock(&w->mu);
}

static int one_done(void *ud)
{
    done_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    int n = w->n;
    pthread_mutex_unlock(&w->mu);
    return n == 1;
}

static void test_async_conflict(void **state)
{
    kinds *k = *state;
    for (int i = 0; i < 4; i++) {
        ravel_db *db = kind(k, i);
        ravel_batch *b = ravel_batch_new();
        OK(ravel_batch_check(b, S("never"), S("there")));
        OK(ravel_batch_put(b, S("async"), S("1")));
        done_wait w = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
        OK(ravel_write_async(db, b, on_done, &w));
        ravel_batch_free(b); /* copied before the call returned */
        wait_until(one_done, &w, "the conditional batch's callback");
        assert_int_equal(w.status, RAVEL_ECONFLICT);
        want_value(db, "async", NULL);
    }
}

/* ---- the counter: read, then write back under a check ---- */

#define THREADS 4
#define INCREMENTS 150

typedef struct counter_ctx {
    ravel_db *db;
    int t;
    int wrote[INCREMENTS]; /* the values this thread wrote */
    int n, conflicts;
} counter_ctx;

static void *increment(void *arg)
{
    counter_ctx *c = arg;
    ravel_batch *b = ravel_batch_new();
    while (c->n < INCREMENTS) {
        char *v = NULL;
        size_t vl = 0;
        int rc = ravel_get(c->db, S("counter"), &v, &vl);
        int cur = 0;
        char old[32];
        ravel_batch_clear(b);
        if (rc == RAVEL_ENOTFOUND) {
            ravel_batch_check_absent(b, S("counter"));
        } else if (rc == RAVEL_OK) {
            snprintf(old, sizeof old, "%.*s", (int)vl, v);
            cur = atoi(old);
            ravel_batch_check(b, S("counter"), v, vl);
            ravel_free(v);
        } else {
            fail_msg("get: %s", ravel_errmsg());
        }
        char next[32];
        snprintf(next, sizeof next, "%d", cur + 1);
        ravel_batch_put(b, S("counter"), S(next));
        rc = ravel_write(c->db, b);
        if (rc == RAVEL_OK)
            c->wrote[c->n++] = cur + 1;
        else if (rc == RAVEL_ECONFLICT)
            c->conflicts++;
        else
            fail_msg("write: %s", ravel_errmsg());
    }
    ravel_batch_free(b);
    return NULL;
}

/* THREADS threads on the given handles increment one counter; every value
 * from 1 to the end was written by exactly one successful increment. */
static void count_together(ravel_db *const *dbs, int n_dbs)
{
    OK(ravel_del(dbs[0], S("counter")));
    counter_ctx c[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&c[t], 0, sizeof c[t]);
        c[t].db = dbs[t % n_dbs];
        c[t].t = t;
        assert_int_equal(pthread_create(&th[t], NULL, increment, &c[t]), 0);
    }
    int conflicts = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        conflicts += c[t].conflicts;
    }
    char want[32];
    snprintf(want, sizeof want, "%d", THREADS * INCREMENTS);
    want_value(dbs[0], "counter", want);
    static int seen[THREADS * INCREMENTS + 1];
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < INCREMENTS; i++) {
            int v = c[t].wrote[i];
            assert_true(v >= 1 && v <= THREADS * INCREMENTS);
            seen[v]++;
        }
    for (int v = 1; v <= THREADS * INCREMENTS; v++)
        assert_int_equal(seen[v], 1);
    print_message("# %d increments by %d threads over %d handle(s), %d conflicts\n",
                  THREADS * INCREMENTS, THREADS, n_dbs, conflicts);
}

static void test_counter_local(void **state)
{
    kinds *k = *state;
    ravel_db *dbs[] = {k->p.local};
    count_together(dbs, 1);
}

static void test_counter_leader_and_follower(void **state)
{
    kinds *k = *state;
    ravel_db *dbs[] = {k->leader, k->follower};
    count_together(dbs, 2);
}

static void test_counter_guest_and_local(void **state)
{
    kinds *k = *state;
    ravel_db *dbs[] = {k->p.guest, k->p.local};
    count_together(dbs, 2);
}

/* ---- reserved keys ---- */

static void test_reserved_keys_hidden(void **state)
{
    kinds *k = *state;
    static const char reserved[] = "\xff\xff\xff\xff\xff\xff\xff\xff" "eo/x";
    const size_t rlen = sizeof reserved - 1;
    for (int i = 0; i < 4; i++) {
        ravel_db *db = kind(k, i);
        assert_int_equal(ravel_put(db, reserved, rlen, S("v")), RAVEL_EINVAL);
        assert_non_null(strstr(ravel_errmsg(), "reserved"));
        assert_int_equal(ravel_del(db, reserved, rlen), RAVEL_EINVAL);
        ravel_batch *b = ravel_batch_new();
        assert_int_equal(ravel_batch_put(b, reserved, rlen, S("v")), RAVEL_EINVAL);
        /* Checking one is allowed: it is always absent to ravel. */
        OK(ravel_batch_check_absent(b, reserved, rlen));
        ravel_batch_free(b);
        char *v;
        size_t vl;
        assert_int_equal(ravel_get(db, reserved, rlen, &v, &vl), RAVEL_ENOTFOUND);
        /* Keys just below the reserved space are ordinary. */
        static const char high[] = "\xff\xff\xff\xff\xff\xff\xff";
        OK(ravel_put(db, high, sizeof high - 1, S("high")));
        const void *keys[] = {reserved, high};
        size_t klens[] = {rlen, sizeof high - 1};
        char *vals[2];
        size_t vlens[2];
        OK(ravel_get_many(db, 2, keys, klens, vals, vlens));
        assert_null(vals[0]);
        assert_non_null(vals[1]);
        ravel_free(vals[1]);
        /* An iterator with no upper bound ends before ravel's records. */
        ravel_range r;
        ravel_range_init(&r);
        r.reverse = 1;
        ravel_iter *it;
        OK(ravel_iter_new(db, &r, &it));
        const char *key;
        size_t kl;
        OK(ravel_iter_next(it, &key, &kl, NULL, NULL));
        assert_int_equal(kl, sizeof high - 1);
        assert_memory_equal(key, high, kl);
        ravel_iter_free(it);
        OK(ravel_del(db, high, sizeof high - 1));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks_on_every_kind),
        cmocka_unit_test(test_async_conflict),
        cmocka_unit_test(test_counter_local),
        cmocka_unit_test(test_counter_leader_and_follower),
        cmocka_unit_test(test_counter_guest_and_local),
        cmocka_unit_test(test_reserved_keys_hidden),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
