/* Watches and the change log, in one process: a local handle, a remote
 * handle through a host on a unix socket, a party handle (leading and
 * following). The multi-process tests with SIGKILL are in
 * tests/party/test-watch-procs.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../helpers.h"

static void expect(ravel_watch *w, int type, const char *key, const char *val, uint64_t *seq)
{
    ravel_change c;
    OK(ravel_watch_next(w, &c, 5000));
    assert_int_equal(c.type, type);
    if (key) {
        assert_int_equal(c.klen, strlen(key));
        assert_memory_equal(c.key, key, c.klen);
    }
    if (val) {
        assert_int_equal(c.vlen, strlen(val));
        assert_memory_equal(c.val, val, c.vlen);
    }
    if (seq) {
        assert_true(c.seq >= *seq);
        *seq = c.seq;
    }
}

static void expect_none(ravel_watch *w)
{
    ravel_change c;
    assert_int_equal(ravel_watch_next(w, &c, 100), RAVEL_ETIMEDOUT);
}

/* Puts, deletes, a batch as one unit, a clear as its deletes; the range;
 * numbers strictly increase between writes. */
static void check_basics(ravel_db *writer, ravel_db *watched)
{
    ravel_watch_options o;
    ravel_watch_options_init(&o);
    o.has_prefix = 1;
    o.prefix = "a";
    o.prefix_len = 1;
    ravel_watch *w;
    OK(ravel_watch_new(watched, &o, &w));
    OK(ravel_put(writer, "a1", 2, "v1", 2));
    OK(ravel_put(writer, "b1", 2, "x", 1)); /* outside */
    OK(ravel_del(writer, "a1", 2));
    ravel_batch *b = ravel_batch_new();
    OK(ravel_batch_put(b, "a2", 2, "v2", 2));
    OK(ravel_batch_put(b, "b2", 2, "x", 1));
    OK(ravel_batch_put(b, "a3", 2, "v3", 2));
    OK(ravel_write(writer, b));
    ravel_batch_free(b);
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1;
    r.gte.data = "a2";
    r.gte.len = 2;
    r.has_lt = 1;
    r.lt.data = "a3";
    r.lt.len = 2;
    OK(ravel_clear(writer, &r));

    uint64_t seq = 0;
    expect(w, RAVEL_CHANGE_PUT, "a1", "v1", &seq);
    uint64_t s1 = seq;
    expect(w, RAVEL_CHANGE_DEL, "a1", NULL, &seq);
    assert_true(seq > s1);
    uint64_t s2 = seq;
    ravel_change c;
    OK(ravel_watch_next(w, &c, 5000));
    assert_int_equal(c.type, RAVEL_CHANGE_PUT);
    assert_true(c.seq > s2);
    assert_int_equal(c.last, 0);
    uint64_t bseq = c.seq;
    OK(ravel_watch_next(w, &c, 5000));
    assert_int_equal(c.seq, bseq); /* the batch, one number */
    assert_memory_equal(c.key, "a3", 2);
    assert_int_equal(c.last, 1);
    expect(w, RAVEL_CHANGE_DEL, "a2", NULL, &seq);
    assert_true(seq > bseq);
    expect_none(w);
    ravel_watch_free(w);
}

static void test_local(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ravel_db *db;
    OK(ravel_open_local(&db, dir, NULL));
    check_basics(db, db);
    ravel_db_close(db);
    rm_tmpdir(dir);
}

static ravel_host *serve(ravel_db *db, const char *sock)
{
    ravel_host *h;
    OK(ravel_host_new(&h, db, NULL));
    char addr[600];
    snprintf(addr, sizeof addr, "unix:%s", sock);
    OK(ravel_host_listen(h, addr));
    return h;
}

static void test_remote(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char sock[600], addr[620];
    snprintf(sock, sizeof sock, "%s/h.sock", dir);
    snprintf(addr, sizeof addr, "unix:%s", sock);
    ravel_db *db, *g;
    char dbdir[600];
    snprintf(dbdir, sizeof dbdir, "%s/db", dir);
    OK(ravel_open_local(&db, dbdir, NULL));
    ravel_host *h = serve(db, sock);
    OK(ravel_connect(&g, addr, NULL));
    check_basics(g, g);   /* a remote writer and watcher */
    check_basics(db, g);  /* the host's own writes are changes too */

    /* The stream is cut (the host goes, another comes on the same
     * database): the watch resumes exactly after what it delivered. */
    ravel_watch *w;
    OK(ravel_watch_new(g, NULL, &w));
    OK(ravel_put(db, "k1", 2, "1", 1));
    uint64_t seq = 0;
    expect(w, RAVEL_CHANGE_PUT, "k1", "1", &seq);
    ravel_host_free(h);
    OK(ravel_put(db, "k2", 2, "2", 1));
    OK(ravel_put(db, "k3", 2, "3", 1));
    h = serve(db, sock);
    expect(w, RAVEL_CHANGE_PUT, "k2", "2", &seq);
    expect(w, RAVEL_CHANGE_PUT, "k3", "3", &seq);
    expect_none(w);
    ravel_watch_free(w);

    /* The change log through the guest. */
    ravel_changelog set = {.on = 1, .max_count = 10}, st;
    OK(ravel_changelog_set(g, &set, &st));
    assert_int_equal(st.on, 1);
    assert_int_equal(st.max_count, 10);
    OK(ravel_changelog_get(db, &st));
    assert_int_equal(st.on, 1);

    ravel_db_close(g);
    ravel_host_free(h);
    ravel_db_close(db);
    rm_tmpdir(dir);
}

/* The change log: resume after a reopen (another "leader") exactly, its
 * records hidden; retention; resync without it. */
static void test_changelog(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ravel_db *db;
    OK(ravel_open_local(&db, dir, NULL));
    ravel_changelog set = {.on = 1, .max_count = 50}, st;
    OK(ravel_changelog_set(db, &set, &st));
    uint64_t start = st.seq;
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        OK(ravel_put(db, k, strlen(k), "v", 1));
    }
    ravel_db_close(db);
    OK(ravel_open_local(&db, dir, NULL));
    OK(ravel_changelog_get(db, &st));
    assert_int_equal(st.on, 1);
    assert_int_equal(st.records, 20);
    /* Its records are not data. */
    ravel_iter *it;
    OK(ravel_iter_new(db, NULL, &it));
    int n = 0;
    while (ravel_iter_next(it, NULL, NULL, NULL, NULL) == RAVEL_OK)
        n++;
    ravel_iter_free(it);
    assert_int_equal(n, 20);
    /* From the start: all 20, in order, from the log. */
    ravel_watch_options o;
    ravel_watch_options_init(&o);
    o.has_from = 1;
    o.from = start;
    ravel_watch *w;
    OK(ravel_watch_new(db, &o, &w));
    uint64_t seq = 0;
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%02d", i);
        uint64_t before = seq;
        expect(w, RAVEL_CHANGE_PUT, k, "v", &seq);
        assert_true(seq > before);
    }
    /* Then the new writes, numbered after the block the last life used. */
    OK(ravel_put(db, "z", 1, "1", 1));
    uint64_t before = seq;
    expect(w, RAVEL_CHANGE_PUT, "z", "1", &seq);
    assert_true(seq > before);
    ravel_watch_free(w);

    /* Retention: 50 records; a start older than what is kept: resync. */
    for (int i = 0; i < 100; i++)
        OK(ravel_put(db, "r", 1, "v", 1));
    OK(ravel_changelog_get(db, &st));
    assert_int_equal(st.records, 50);
    ravel_db_close(db);
    OK(ravel_open_local(&db, dir, NULL));
    OK(ravel_watch_new(db, &o, &w));
    ravel_change c;
    OK(ravel_watch_next(w, &c, 5000));
    assert_int_equal(c.type, RAVEL_CHANGE_RESYNC);
    assert_int_equal(c.resync_from, start);
    uint64_t to = c.seq;
    OK(ravel_put(db, "after", 5, "1", 1));
    OK(ravel_watch_next(w, &c, 5000));
    assert_int_equal(c.type, RAVEL_CHANGE_PUT);
    assert_true(c.seq > to);
    ravel_watch_free(w);

    /* Off: the log is gone; a resume across a reopen is a resync. */
    set.on = 0;
    OK(ravel_changelog_set(db, &set, &st));
    assert_int_equal(st.records, 0);
    uint64_t last = st.seq;
    ravel_db_close(db);
    OK(ravel_open_local(&db, dir, NULL));
    o.from = last - 1;
    OK(ravel_watch_new(db, &o, &w));
    OK(ravel_watch_next(w, &c, 5000));
    assert_int_equal(c.type, RAVEL_CHANGE_RESYNC);
    ravel_watch_free(w);
    ravel_db_close(db);
    rm_tmpdir(dir);
}

/* A watch that does not read falls behind the buffer and gets resync,
 * where it left off; nothing grows for it. */
static void test_slow_watcher(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ravel_db *db;
    OK(ravel_open_local(&db, dir, NULL));
    ravel_watch *w;
    OK(ravel_watch_new(db, NULL, &w));
    OK(ravel_put(db, "first", 5, "1", 1));
    uint64_t seq = 0;
    expect(w, RAVEL_CHANGE_PUT, "first", "1", &seq);
    char val[1024];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 3 * (int)(RAVEL_WATCH_BUFFER / sizeof val); i++) {
        char k[32];
        snprintf(k, sizeof k, "k%06d", i);
        OK(ravel_put(db, k, strlen(k), val, sizeof val));
    }
    ravel_changelog st;
    OK(ravel_changelog_get(db, &st));
    ravel_change c;
    OK(ravel_watch_next(w, &c, 5000));
    assert_int_equal(c.type, RAVEL_CHANGE_RESYNC);
    assert_int_equal(c.resync_from, seq);
    assert_int_equal(c.seq, st.seq);
    expect_none(w);
    ravel_watch_free(w);
    ravel_db_close(db);
    rm_tmpdir(dir);
}

/* Party handles: the leader's watch and a follower's, and the callback
 * form. */
typedef struct seen {
    int n;
    uint64_t last;
    int bad;
} seen;

static void on_change(void *ud, int status, const ravel_change *c)
{
    seen *s = ud;
    if (status != RAVEL_OK)
        return;
    if (c->seq <= s->last && s->n)
        s->bad = 1;
    s->last = c->seq;
    __atomic_add_fetch(&s->n, 1, __ATOMIC_SEQ_CST);
}

static int ten_seen(void *arg)
{
    return __atomic_load_n(&((seen *)arg)->n, __ATOMIC_SEQ_CST) >= 10;
}

static void test_party(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ravel_db *a, *b;
    OK(ravel_open(&a, dir, NULL));
    OK(ravel_open(&b, dir, NULL));
    assert_int_equal(ravel_db_role(a), RAVEL_ROLE_LEADER);
    assert_int_equal(ravel_db_role(b), RAVEL_ROLE_FOLLOWER);
    check_basics(a, b);
    check_basics(b, a);
    seen s = {0};
    ravel_watch *w;
    OK(ravel_watch_start(b, NULL, on_change, &s, &w));
    for (int i = 0; i < 10; i++)
        OK(ravel_put(a, "cb", 2, "v", 1));
    wait_until(ten_seen, &s, "ten changes at the callback");
    assert_int_equal(s.bad, 0);
    ravel_watch_free(w);
    ravel_db_close(b);
    ravel_db_close(a);
    rm_tmpdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_remote),
        cmocka_unit_test(test_changelog),
        cmocka_unit_test(test_slow_watcher),
        cmocka_unit_test(test_party),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
