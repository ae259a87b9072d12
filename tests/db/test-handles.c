/* The same operations, with the same results, on every kind of handle:
 * local (LevelDB in this process), remote (a guest served by a host over a
 * socketpair), and party (leader and follower on one directory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../helpers.h"

typedef struct fixture {
    int remote;
    char *dir;
    ravel_db *local;
    ravel_db *leader; /* party: the first handle, when testing a follower */
    pair p;
    ravel_db *db;
} fixture;

static int setup_local(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", f->dir);
    OK(ravel_open_local(&f->local, path, NULL));
    f->db = f->local;
    *state = f;
    return 0;
}

static int setup_party(void **state, int follower)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", f->dir);
    OK(ravel_open(&f->local, path, NULL));
    assert_int_equal(ravel_db_role(f->local), RAVEL_ROLE_LEADER);
    f->db = f->local;
    if (follower) {
        f->leader = f->local;
        OK(ravel_open(&f->local, path, NULL));
        assert_int_equal(ravel_db_role(f->local), RAVEL_ROLE_FOLLOWER);
        f->db = f->local;
    }
    *state = f;
    return 0;
}

static int setup_party_leader(void **state)
{
    return setup_party(state, 0);
}

static int setup_party_follower(void **state)
{
    return setup_party(state, 1);
}

static int setup_remote(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->remote = 1;
    pair_open(&f->p, NULL, NULL);
    f->db = f->p.guest;
    *state = f;
    return 0;
}

/* Both ends sleep until bytes come instead of busy-polling first: the
 * other way through the transport. */
static int setup_remote_sleeping(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->remote = 1;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.busy_poll_us = 0;
    ravel_options go;
    ravel_options_init(&go);
    go.busy_poll_us = 0;
    pair_open(&f->p, &ho, &go);
    f->db = f->p.guest;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->remote) {
        pair_close(&f->p);
    } else {
        ravel_db_close(f->local);
        ravel_db_close(f->leader);
        rm_tmpdir(f->dir);
    }
    free(f);
    return 0;
}

#define S(x) x, strlen(x)

static void put_s(ravel_db *db, const char *k, const char *v)
{
    OK(ravel_put(db, S(k), S(v)));
}

static void check_value(ravel_db *db, const void *k, size_t kl, const char *want, size_t wl)
{
    char *v;
    size_t vl;
    OK(ravel_get(db, k, kl, &v, &vl));
    assert_int_equal(vl, wl);
    assert_memory_equal(v, want, wl);
    ravel_free(v);
}

/* Everything an iterator over r hands out, as "k=v,k=v" ("k" or "=v" when
 * only keys or values are wanted). */
static char *listing(ravel_db *db, const ravel_range *r)
{
    ravel_iter *it;
    OK(ravel_iter_new(db, r, &it));
    static char out[8192];
    out[0] = '\0';
    const char *k, *v;
    size_t kl, vl;
    int rc;
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK) {
        char item[256];
        if (k && v)
            snprintf(item, sizeof item, "%.*s=%.*s", (int)kl, k, (int)vl, v);
        else if (k)
            snprintf(item, sizeof item, "%.*s", (int)kl, k);
        else
            snprintf(item, sizeof item, "=%.*s", (int)vl, v ? v : "");
        if (out[0])
            strcat(out, ",");
        strcat(out, item);
    }
    assert_int_equal(rc, RAVEL_END);
    /* After the end, it stays at the end. */
    assert_int_equal(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_END);
    ravel_iter_free(it);
    return out;
}

static void fill_abc(ravel_db *db)
{
    const char *keys[] = {"a", "aa", "ab", "b", "c", "d"};
    for (size_t i = 0; i < 6; i++) {
        char v[8];
        snprintf(v, sizeof v, "%s", keys[i]);
        for (char *p = v; *p; p++)
            *p = (char)(*p - 32);
        put_s(db, keys[i], v);
    }
}

static void test_put_get_del(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    put_s(db, "hello", "world");
    check_value(db, S("hello"), S("world"));
    /* Binary keys and values, NUL bytes, empty value, empty key. */
    const char bk[] = {0, (char)0xff, 1}, bv[] = {0, 1};
    OK(ravel_put(db, bk, 3, bv, 2));
    check_value(db, bk, 3, bv, 2);
    OK(ravel_put(db, S("empty"), "", 0));
    check_value(db, S("empty"), "", 0);
    OK(ravel_put(db, "", 0, S("for the empty key")));
    check_value(db, "", 0, S("for the empty key"));
    OK(ravel_del(db, S("hello")));
    char *v = (char *)1;
    size_t vl;
    assert_int_equal(ravel_get(db, S("hello"), &v, &vl), RAVEL_ENOTFOUND);
    assert_null(v);
    assert_int_equal(ravel_get(db, S("never"), &v, &vl), RAVEL_ENOTFOUND);
    OK(ravel_del(db, S("never"))); /* deleting a missing key is fine */
    assert_int_equal(ravel_put(db, NULL, 3, "x", 1), RAVEL_EINVAL);
    assert_int_equal(ravel_get(db, S("x"), NULL, &vl), RAVEL_EINVAL);
}

static void test_batch(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    put_s(db, "gone", "soon");
    ravel_batch *b = ravel_batch_new();
    OK(ravel_batch_put(b, S("one"), S("1")));
    OK(ravel_batch_put(b, S("two"), S("2")));
    OK(ravel_batch_del(b, S("gone")));
    OK(ravel_batch_put(b, S("one"), S("uno"))); /* later ops win */
    assert_int_equal(ravel_batch_count(b), 4);
    int is_put;
    const char *k, *v;
    size_t kl, vl;
    OK(ravel_batch_op(b, 2, &is_put, &k, &kl, &v, &vl));
    assert_false(is_put);
    assert_memory_equal(k, "gone", 4);
    OK(ravel_write(db, b));
    check_value(db, S("one"), S("uno"));
    check_value(db, S("two"), S("2"));
    char *val;
    assert_int_equal(ravel_get(db, S("gone"), &val, &vl), RAVEL_ENOTFOUND);
    ravel_batch_clear(b);
    assert_int_equal(ravel_batch_count(b), 0);
    OK(ravel_write(db, b)); /* an empty batch is fine */
    ravel_batch_free(b);
}

static void test_get_many(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    put_s(db, "x", "X");
    put_s(db, "z", "");
    const void *keys[] = {"x", "y", "z"};
    size_t klens[] = {1, 1, 1};
    char *vals[3];
    size_t vlens[3];
    OK(ravel_get_many(db, 3, keys, klens, vals, vlens));
    assert_int_equal(vlens[0], 1);
    assert_memory_equal(vals[0], "X", 1);
    assert_null(vals[1]);
    assert_non_null(vals[2]);
    assert_int_equal(vlens[2], 0);
    for (int i = 0; i < 3; i++)
        ravel_free(vals[i]);
    OK(ravel_get_many(db, 0, NULL, NULL, NULL, NULL));
}

static void test_iterator_ranges(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    fill_abc(db);
    ravel_range r;
    ravel_range_init(&r);
    assert_string_equal(listing(db, &r), "a=A,aa=AA,ab=AB,b=B,c=C,d=D");
    assert_string_equal(listing(db, NULL), "a=A,aa=AA,ab=AB,b=B,c=C,d=D");
    r.reverse = 1;
    assert_string_equal(listing(db, &r), "d=D,c=C,b=B,ab=AB,aa=AA,a=A");
    ravel_range_init(&r);
    r.has_gt = 1, r.gt = (ravel_bound){"a", 1};
    r.has_lt = 1, r.lt = (ravel_bound){"c", 1};
    assert_string_equal(listing(db, &r), "aa=AA,ab=AB,b=B");
    r.reverse = 1;
    assert_string_equal(listing(db, &r), "b=B,ab=AB,aa=AA");
    ravel_range_init(&r);
    r.has_gte = 1, r.gte = (ravel_bound){"aa", 2};
    r.has_lte = 1, r.lte = (ravel_bound){"b", 1};
    assert_string_equal(listing(db, &r), "aa=AA,ab=AB,b=B");
    r.reverse = 1;
    assert_string_equal(listing(db, &r), "b=B,ab=AB,aa=AA");
    ravel_range_init(&r);
    r.limit = 2;
    assert_string_equal(listing(db, &r), "a=A,aa=AA");
    r.reverse = 1;
    assert_string_equal(listing(db, &r), "d=D,c=C");
    r.limit = 0;
    assert_string_equal(listing(db, &r), "");
    ravel_range_init(&r);
    r.values = 0;
    assert_string_equal(listing(db, &r), "a,aa,ab,b,c,d");
    ravel_range_init(&r);
    r.keys = 0;
    r.reverse = 1;
    r.limit = 3;
    assert_string_equal(listing(db, &r), "=D,=C,=B");
    /* gte wins over gt, lte over lt. */
    ravel_range_init(&r);
    r.has_gt = 1, r.gt = (ravel_bound){"b", 1};
    r.has_gte = 1, r.gte = (ravel_bound){"ab", 2};
    r.has_lt = 1, r.lt = (ravel_bound){"aa", 2};
    r.has_lte = 1, r.lte = (ravel_bound){"c", 1};
    assert_string_equal(listing(db, &r), "ab=AB,b=B,c=C");
    /* An empty range. */
    ravel_range_init(&r);
    r.has_gt = 1, r.gt = (ravel_bound){"d", 1};
    assert_string_equal(listing(db, &r), "");
}

static void test_iterator_seek(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    fill_abc(db);
    ravel_iter *it;
    const char *k, *v;
    size_t kl, vl;
    OK(ravel_iter_new(db, NULL, &it));
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_memory_equal(k, "a", 1);
    OK(ravel_iter_seek(it, S("ac")));
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(kl, 1);
    assert_memory_equal(k, "b", 1);
    OK(ravel_iter_seek(it, S("aa"))); /* backwards is fine too */
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(kl, 2);
    assert_memory_equal(k, "aa", 2);
    OK(ravel_iter_seek(it, S("zzz")));
    assert_int_equal(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_END);
    ravel_iter_free(it);

    ravel_range r;
    ravel_range_init(&r);
    r.reverse = 1;
    OK(ravel_iter_new(db, &r, &it));
    OK(ravel_iter_seek(it, S("ab")));
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(kl, 2);
    assert_memory_equal(k, "ab", 2);
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_memory_equal(k, "aa", 2);
    OK(ravel_iter_seek(it, S("bb"))); /* between keys: the one before */
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(kl, 1);
    assert_memory_equal(k, "b", 1);
    OK(ravel_iter_seek(it, S("0"))); /* before everything */
    assert_int_equal(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_END);
    ravel_iter_free(it);

    /* The limit counts entries handed out, across seeks: entries an
     * iterator read ahead of the caller and a seek passed over do not. */
    ravel_range_init(&r);
    r.limit = 4;
    OK(ravel_iter_new(db, &r, &it));
    for (int i = 0; i < 2; i++)
        OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_memory_equal(k, "aa", 2);
    OK(ravel_iter_seek(it, S("c")));
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_memory_equal(k, "c", 1);
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_memory_equal(k, "d", 1);
    assert_int_equal(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_END);
    ravel_iter_free(it);
}

static void test_iterator_many(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    enum { N = 20000 };
    ravel_batch *b = ravel_batch_new();
    char key[17], val[100];
    memset(val, 'v', sizeof val);
    for (unsigned long i = 0; i < N; i++) {
        key_of(key, i);
        OK(ravel_batch_put(b, key, 16, val, sizeof val));
    }
    OK(ravel_write(db, b));
    ravel_batch_free(b);
    for (int reverse = 0; reverse < 2; reverse++) {
        ravel_range r;
        ravel_range_init(&r);
        r.reverse = reverse;
        ravel_iter *it;
        OK(ravel_iter_new(db, &r, &it));
        const char *k, *v;
        size_t kl, vl;
        unsigned long n = 0;
        while (ravel_iter_next(it, &k, &kl, &v, &vl) == RAVEL_OK) {
            key_of(key, reverse ? N - 1 - n : n);
            assert_int_equal(kl, 16);
            assert_memory_equal(k, key, 16);
            assert_int_equal(vl, sizeof val);
            n++;
        }
        assert_int_equal(n, N);
        ravel_iter_free(it);
    }
}

/* An iterator left open when its handle closes: its next call says
 * RAVEL_ECLOSED, and it is still freed with ravel_iter_free(). */
static void test_iterator_after_close(void **state)
{
    fixture *f = *state;
    fill_abc(f->db);
    ravel_iter *it;
    OK(ravel_iter_new(f->db, NULL, &it));
    const char *k, *v;
    size_t kl, vl;
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));
    assert_int_equal(kl, 1);
    assert_memory_equal(k, "a", 1);
    ravel_db_close(f->db);
    if (f->remote)
        f->p.guest = NULL;
    else
        f->local = NULL;
    assert_int_equal(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_ECLOSED);
    assert_int_equal(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_ECLOSED);
    ravel_iter_free(it);
}

static void test_clear(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    fill_abc(db);
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1, r.gte = (ravel_bound){"ab", 2};
    r.has_lt = 1, r.lt = (ravel_bound){"c", 1};
    OK(ravel_clear(db, &r));
    assert_string_equal(listing(db, NULL), "a=A,aa=AA,c=C,d=D");
    ravel_range_init(&r);
    r.reverse = 1;
    r.limit = 1;
    OK(ravel_clear(db, &r));
    assert_string_equal(listing(db, NULL), "a=A,aa=AA,c=C");
    ravel_range_init(&r);
    r.limit = 2;
    OK(ravel_clear(db, &r));
    assert_string_equal(listing(db, NULL), "c=C");
    OK(ravel_clear(db, NULL));
    assert_string_equal(listing(db, NULL), "");
}

/* ---- asynchronous forms ---- */

typedef struct async_state {
    int calls;
    int status;
    char value[64];
    size_t vlen;
    int missing;
    int entries;
    char keys[512];
    ravel_iter *it;
} async_state;

static void on_done(void *ud, int status)
{
    async_state *a = ud;
    __atomic_add_fetch(&a->calls, 1, __ATOMIC_SEQ_CST);
    a->status = status;
}

static void on_value(void *ud, int status, const char *val, size_t vlen)
{
    async_state *a = ud;
    a->status = status;
    if (status == RAVEL_OK) {
        memcpy(a->value, val, vlen);
        a->vlen = vlen;
    }
    __atomic_add_fetch(&a->calls, 1, __ATOMIC_SEQ_CST);
}

static void on_values(void *ud, int status, size_t n, const char *const *vals, const size_t *lens)
{
    async_state *a = ud;
    a->status = status;
    for (size_t i = 0; i < n; i++)
        if (!vals[i])
            a->missing++;
        else
            a->vlen += lens[i];
    __atomic_add_fetch(&a->calls, 1, __ATOMIC_SEQ_CST);
}

static void on_entry(void *ud, int status, const char *k, size_t kl, const char *v, size_t vl)
{
    async_state *a = ud;
    (void)v, (void)vl;
    if (status == RAVEL_OK) {
        a->entries++;
        strncat(a->keys, k, kl);
        strcat(a->keys, " ");
        /* Ask for the next one from inside the callback. */
        OK(ravel_iter_next_async(a->it, on_entry, a));
        return;
    }
    a->status = status;
    __atomic_add_fetch(&a->calls, 1, __ATOMIC_SEQ_CST);
}

static int called(void *arg)
{
    return __atomic_load_n(&((async_state *)arg)->calls, __ATOMIC_SEQ_CST) > 0;
}

static void test_async(void **state)
{
    ravel_db *db = ((fixture *)*state)->db;
    async_state a = {0};
    OK(ravel_put_async(db, S("k"), S("value"), on_done, &a));
    wait_until(called, &a, "put callback");
    assert_int_equal(a.status, RAVEL_OK);
    memset(&a, 0, sizeof a);
    OK(ravel_get_async(db, S("k"), on_value, &a));
    wait_until(called, &a, "get callback");
    assert_int_equal(a.status, RAVEL_OK);
    assert_int_equal(a.vlen, 5);
    assert_memory_equal(a.value, "value", 5);
    memset(&a, 0, sizeof a);
    OK(ravel_get_async(db, S("nope"), on_value, &a));
    wait_until(called, &a, "get callback");
    assert_int_equal(a.status, RAVEL_ENOTFOUND);
    memset(&a, 0, sizeof a);
    const void *keys[] = {"k", "nope"};
    size_t klens[] = {1, 4};
    OK(ravel_get_many_async(db, 2, keys, klens, on_values, &a));
    wait_until(called, &a, "getMany callback");
    assert_int_equal(a.status, RAVEL_OK);
    assert_int_equal(a.missing, 1);
    assert_int_equal(a.vlen, 5);
    memset(&a, 0, sizeof a);
    ravel_batch *b = ravel_batch_new();
    ravel_batch_put(b, S("b1"), S("1"));
    ravel_batch_put(b, S("b2"), S("2"));
    OK(ravel_write_async(db, b, on_done, &a));
    ravel_batch_free(b); /* the call copied what it needs */
    wait_until(called, &a, "batch callback");
    assert_int_equal(a.status, RAVEL_OK);
    memset(&a, 0, sizeof a);
    OK(ravel_del_async(db, S("k"), on_done, &a));
    wait_until(called, &a, "del callback");
    memset(&a, 0, sizeof a);
    OK(ravel_iter_new(db, NULL, &a.it));
    OK(ravel_iter_next_async(a.it, on_entry, &a));
    wait_until(called, &a, "iterator end");
    assert_int_equal(a.status, RAVEL_END);
    assert_int_equal(a.entries, 2);
    assert_string_equal(a.keys, "b1 b2 ");
    ravel_iter_free(a.it);
    memset(&a, 0, sizeof a);
    OK(ravel_clear_async(db, NULL, on_done, &a));
    wait_until(called, &a, "clear callback");
    assert_int_equal(a.status, RAVEL_OK);
    assert_string_equal(listing(db, NULL), "");
    assert_int_equal(ravel_put_async(db, S("x"), S("y"), NULL, NULL), RAVEL_EINVAL);
}

/* The whole suite, once per kind of handle. */
#define SUITE(setup)                                                                          \
    {                                                                                         \
        cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_get_many, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_iterator_ranges, setup, teardown),               \
        cmocka_unit_test_setup_teardown(test_iterator_seek, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_iterator_many, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_iterator_after_close, setup, teardown),          \
        cmocka_unit_test_setup_teardown(test_clear, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_async, setup, teardown),                         \
    }

int main(void)
{
    const struct CMUnitTest local[] = SUITE(setup_local);
    const struct CMUnitTest remote[] = SUITE(setup_remote);
    const struct CMUnitTest sleeping[] = SUITE(setup_remote_sleeping);
    const struct CMUnitTest leader[] = SUITE(setup_party_leader);
    const struct CMUnitTest follower[] = SUITE(setup_party_follower);
    int failed = cmocka_run_group_tests_name("local handle", local, NULL, NULL);
    failed += cmocka_run_group_tests_name("remote handle", remote, NULL, NULL);
    failed += cmocka_run_group_tests_name("remote handle, no busy-polling", sleeping, NULL, NULL);
    failed += cmocka_run_group_tests_name("party leader", leader, NULL, NULL);
    failed += cmocka_run_group_tests_name("party follower", follower, NULL, NULL);
    return failed;
}
