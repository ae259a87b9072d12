/* Seamless retry: streams cut in the middle of puts and of long iterators,
 * forward and reverse; with retry off, a cut fails what is pending. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../helpers.h"

#define S(x) x, strlen(x)

/* A host and a guest joined by socketpairs that the test can cut. */
typedef struct link {
    char *dir;
    ravel_db *local;
    ravel_host *host;
    ravel_db *guest;
    int tap; /* a dup of the guest's end: shutdown() on it cuts the stream */
    pthread_mutex_t mu;
} link_t;

static void link_attach(link_t *l)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    l->tap = dup(sv[1]);
    OK(ravel_host_attach_fd(l->host, sv[0], sv[0]));
    OK(ravel_guest_attach_fd(l->guest, sv[1], sv[1]));
    /* Wait until the guest uses it, so the next cut cuts this stream. */
    for (int i = 0; i < 10000 && !ravel_guest_connected(l->guest); i++)
        usleep(100);
    assert_true(ravel_guest_connected(l->guest));
}

static void link_open(link_t *l, int retry)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", l->dir);
    OK(ravel_open_local(&l->local, path, NULL));
    OK(ravel_host_new(&l->host, l->local, NULL));
    ravel_options o;
    ravel_options_init(&o);
    o.retry = retry;
    OK(ravel_guest_new(&l->guest, &o));
    link_attach(l);
}

/* Cut the stream and attach a fresh one once the guest has noticed. */
static void link_cut(link_t *l, int reattach)
{
    pthread_mutex_lock(&l->mu);
    shutdown(l->tap, SHUT_RDWR);
    close(l->tap);
    for (int i = 0; i < 10000 && ravel_guest_connected(l->guest); i++)
        usleep(100);
    assert_false(ravel_guest_connected(l->guest));
    if (reattach)
        link_attach(l);
    else
        l->tap = -1;
    pthread_mutex_unlock(&l->mu);
}

static void link_close(link_t *l)
{
    ravel_db_close(l->guest);
    if (l->tap >= 0)
        close(l->tap);
    ravel_host_free(l->host);
    ravel_db_close(l->local);
    rm_tmpdir(l->dir);
    pthread_mutex_destroy(&l->mu);
}

static void fill(ravel_db *db, unsigned long n)
{
    ravel_batch *b = ravel_batch_new();
    char key[17], val[32];
    for (unsigned long i = 0; i < n; i++) {
        key_of(key, i);
        snprintf(val, sizeof val, "value-%lu", i);
        OK(ravel_batch_put(b, key, 16, val, strlen(val)));
        if (ravel_batch_count(b) == 1000 || i + 1 == n) {
            OK(ravel_write(db, b));
            ravel_batch_clear(b);
        }
    }
    ravel_batch_free(b);
}

/* ---- puts ---- */

typedef struct puts_state {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int inflight, done, errors;
    int *seen;
} puts_state;

typedef struct put_req {
    puts_state *ps;
    int i;
} put_req;

static put_req reqs[20000];

static void put_done(void *ud, int status)
{
    put_req *r = ud;
    puts_state *ps = r->ps;
    pthread_mutex_lock(&ps->mu);
    ps->seen[r->i]++;
    if (status != RAVEL_OK)
        ps->errors++;
    ps->inflight--;
    ps->done++;
    pthread_cond_signal(&ps->cond);
    pthread_mutex_unlock(&ps->mu);
}

typedef struct cutter {
    link_t *l;
    volatile int stop;
    int cuts;
} cutter;

static void *cut_loop(void *p)
{
    cutter *c = p;
    while (!c->stop) {
        usleep(3000);
        link_cut(c->l, 1);
        c->cuts++;
    }
    return NULL;
}

static void test_puts_survive_cuts(void **state)
{
    (void)state;
    enum { N = 20000 };
    link_t l;
    link_open(&l, 1);
    puts_state ps = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL};
    ps.seen = calloc(N, sizeof *ps.seen);
    cutter c = {&l, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, cut_loop, &c);
    char key[17];
    for (int i = 0; i < N; i++) {
        pthread_mutex_lock(&ps.mu);
        while (ps.inflight >= 64)
            pthread_cond_wait(&ps.cond, &ps.mu);
        ps.inflight++;
        pthread_mutex_unlock(&ps.mu);
        key_of(key, (unsigned long)i);
        reqs[i] = (put_req){&ps, i};
        OK(ravel_put_async(l.guest, key, 16, key, 16, put_done, &reqs[i]));
    }
    pthread_mutex_lock(&ps.mu);
    while (ps.done < N)
        pthread_cond_wait(&ps.cond, &ps.mu);
    pthread_mutex_unlock(&ps.mu);
    c.stop = 1;
    pthread_join(t, NULL);
    assert_true(c.cuts > 0);
    assert_int_equal(ps.errors, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(ps.seen[i], 1); /* each callback exactly once */
    for (int i = 0; i < N; i++) {
        key_of(key, (unsigned long)i);
        char *v;
        size_t vl;
        OK(ravel_get(l.local, key, 16, &v, &vl));
        ravel_free(v);
    }
    printf("# %d puts, %d cuts\n", N, c.cuts);
    free(ps.seen);
    link_close(&l);
}

/* ---- iterators ---- */

static void iterate_with_cuts(int reverse, int keys, int values, unsigned long every)
{
    enum { N = 100000 };
    link_t l;
    link_open(&l, 1);
    fill(l.local, N);
    ravel_range r;
    ravel_range_init(&r);
    r.reverse = reverse;
    r.keys = keys;
    r.values = values;
    ravel_iter *it;
    OK(ravel_iter_new(l.guest, &r, &it));
    const char *k, *v;
    size_t kl, vl;
    unsigned long n = 0;
    int cuts = 0, rc;
    char key[17], val[32];
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK) {
        unsigned long i = reverse ? N - 1 - n : n;
        if (keys) {
            key_of(key, i);
            assert_int_equal(kl, 16);
            assert_memory_equal(k, key, 16);
        } else {
            assert_null(k); /* values-only never hands out keys */
            assert_int_equal(kl, 0);
        }
        if (values) {
            snprintf(val, sizeof val, "value-%lu", i);
            assert_int_equal(vl, strlen(val));
            assert_memory_equal(v, val, vl);
        } else {
            assert_null(v);
        }
        n++;
        /* Cut at varying points, so some cuts land with entries received
         * but not yet handed out, and some in the middle of a message. */
        if (n % every == 0 || n == 1 || n == 2) {
            link_cut(&l, 1);
            cuts++;
        }
    }
    assert_int_equal(rc, RAVEL_END);
    assert_int_equal(n, N);
    printf("# %s %s%s: %lu entries, %d cuts, none missing, none twice\n",
           reverse ? "reverse" : "forward", keys ? "keys" : "", values ? "+values" : "", n, cuts);
    ravel_iter_free(it);
    link_close(&l);
}

static void test_iterator_forward_cuts(void **state)
{
    (void)state;
    iterate_with_cuts(0, 1, 1, 997);
}

static void test_iterator_reverse_cuts(void **state)
{
    (void)state;
    iterate_with_cuts(1, 1, 1, 1009);
}

static void test_iterator_values_only_cuts(void **state)
{
    (void)state;
    iterate_with_cuts(1, 0, 1, 4999);
}

static void test_iterator_keys_only_cuts(void **state)
{
    (void)state;
    iterate_with_cuts(0, 1, 0, 7919);
}

/* Keys that extend the bookmark, and the empty key, cut after every entry. */
static void test_resume_exact_with_prefix_keys(void **state)
{
    (void)state;
    const char *keys[] = {"", "a", "aa", "ab", "b", "c"};
    for (int reverse = 0; reverse < 2; reverse++) {
        link_t l;
        link_open(&l, 1);
        for (int i = 0; i < 6; i++)
            OK(ravel_put(l.local, keys[i], strlen(keys[i]), "v", 1));
        OK(ravel_put(l.local, "a\0", 2, "nul", 3));
        ravel_range r;
        ravel_range_init(&r);
        r.reverse = reverse;
        ravel_iter *it;
        OK(ravel_iter_new(l.guest, &r, &it));
        char got[64] = "";
        const char *k;
        size_t kl;
        while (ravel_iter_next(it, &k, &kl, NULL, NULL) == RAVEL_OK) {
            strncat(got, k, kl);
            if (kl == 2 && k[1] == '\0')
                strcat(got, "\\0");
            strcat(got, "|");
            link_cut(&l, 1);
        }
        assert_string_equal(got, reverse ? "c|b|ab|aa|a\\0|a||" : "|a|a\\0|aa|ab|b|c|");
        ravel_iter_free(it);
        link_close(&l);
    }
}

static void test_seek_then_cut(void **state)
{
    (void)state;
    link_t l;
    link_open(&l, 1);
    fill(l.local, 1000);
    ravel_iter *it;
    OK(ravel_iter_new(l.guest, NULL, &it));
    const char *k;
    size_t kl;
    OK(ravel_iter_next(it, &k, &kl, NULL, NULL));
    char key[17];
    key_of(key, 500);
    OK(ravel_iter_seek(it, key, 16));
    link_cut(&l, 1); /* before the seek's first result is handed out */
    OK(ravel_iter_next(it, &k, &kl, NULL, NULL));
    assert_memory_equal(k, key, 16);
    link_cut(&l, 1);
    OK(ravel_iter_next(it, &k, &kl, NULL, NULL));
    key_of(key, 501);
    assert_memory_equal(k, key, 16);
    ravel_iter_free(it);
    link_close(&l);
}

static void test_limit_across_cuts(void **state)
{
    (void)state;
    link_t l;
    link_open(&l, 1);
    fill(l.local, 1000);
    ravel_range r;
    ravel_range_init(&r);
    r.limit = 10;
    r.reverse = 1;
    ravel_iter *it;
    OK(ravel_iter_new(l.guest, &r, &it));
    int n = 0;
    const char *k;
    size_t kl;
    while (ravel_iter_next(it, &k, &kl, NULL, NULL) == RAVEL_OK) {
        n++;
        if (n % 3 == 0)
            link_cut(&l, 1);
    }
    assert_int_equal(n, 10);
    ravel_iter_free(it);
    link_close(&l);
}

static void test_retry_off_cut_mid_iterator(void **state)
{
    (void)state;
    link_t l;
    link_open(&l, 0);
    fill(l.local, 50000);
    ravel_iter *it;
    OK(ravel_iter_new(l.guest, NULL, &it));
    int n = 0, rc;
    while ((rc = ravel_iter_next(it, NULL, NULL, NULL, NULL)) == RAVEL_OK) {
        if (++n == 100)
            link_cut(&l, 0);
    }
    assert_int_equal(rc, RAVEL_ECONNLOST);
    assert_true(n < 50000);
    assert_int_equal(ravel_put(l.guest, S("after"), S("loss")), RAVEL_ECONNLOST);
    ravel_iter_free(it);
    link_close(&l);
}

/* A guest that connects by address finds a restarted host by itself. */
typedef struct restart {
    ravel_host **host;
    ravel_db *local;
    const char *addr;
    volatile int stop;
    int restarts;
    pthread_mutex_t *mu;
} restart;

static void *restart_loop(void *p)
{
    restart *r = p;
    while (!r->stop) {
        usleep(20000);
        pthread_mutex_lock(r->mu);
        ravel_host_free(*r->host);
        OK(ravel_host_new(r->host, r->local, NULL));
        OK(ravel_host_listen(*r->host, r->addr));
        pthread_mutex_unlock(r->mu);
        r->restarts++;
    }
    return NULL;
}

static void test_connect_survives_host_restarts(void **state)
{
    (void)state;
    enum { N = 100000 };
    char *dir = make_tmpdir();
    char path[4200], addr[4300];
    snprintf(path, sizeof path, "%s/db", dir);
    snprintf(addr, sizeof addr, "unix:%s/host.sock", dir);
    ravel_db *local, *g;
    ravel_host *h;
    OK(ravel_open_local(&local, path, NULL));
    fill(local, N);
    OK(ravel_host_new(&h, local, NULL));
    OK(ravel_host_listen(h, addr));
    OK(ravel_connect(&g, addr, NULL)); /* retry is on by default here */
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    restart rs = {&h, local, addr, 0, 0, &mu};
    pthread_t t;
    pthread_create(&t, NULL, restart_loop, &rs);
    ravel_range r;
    ravel_range_init(&r);
    r.reverse = 1;
    ravel_iter *it;
    OK(ravel_iter_new(g, &r, &it));
    unsigned long n = 0;
    const char *k;
    size_t kl;
    char key[17];
    while (ravel_iter_next(it, &k, &kl, NULL, NULL) == RAVEL_OK) {
        key_of(key, N - 1 - n);
        assert_int_equal(kl, 16);
        assert_memory_equal(k, key, 16);
        n++;
        if (n % 5000 == 0) {
            /* Sorts after every key, so a reverse iterator is past it. */
            OK(ravel_put(g, S("zz-during"), S("restarts")));
            usleep(5000);
        }
    }
    rs.stop = 1;
    pthread_join(t, NULL);
    assert_int_equal(n, N);
    assert_true(rs.restarts > 0);
    printf("# reverse over %lu entries across %d host restarts\n", n, rs.restarts);
    ravel_iter_free(it);
    ravel_db_close(g);
    ravel_host_free(h);
    ravel_db_close(local);
    rm_tmpdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_puts_survive_cuts),
        cmocka_unit_test(test_iterator_forward_cuts),
        cmocka_unit_test(test_iterator_reverse_cuts),
        cmocka_unit_test(test_iterator_values_only_cuts),
        cmocka_unit_test(test_iterator_keys_only_cuts),
        cmocka_unit_test(test_resume_exact_with_prefix_keys),
        cmocka_unit_test(test_seek_then_cut),
        cmocka_unit_test(test_limit_across_cuts),
        cmocka_unit_test(test_retry_off_cut_mid_iterator),
        cmocka_unit_test(test_connect_survives_host_restarts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
