/* ravel_options.connect_timeout_ms: requests wait for a stream at most
 * that long — a first connection, a reconnection with retry, a peer that
 * accepts and closes unanswered — then fail with RAVEL_ETIMEDOUT, and new
 * ones fail at once until a stream is up again; a slow reply on a stream
 * that is up is no timeout. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../helpers.h"

#define S(x) x, strlen(x)
#define TIMEOUT_MS 200

static char *dir;
static char addr[4200];

static int setup(void **state)
{
    (void)state;
    dir = make_tmpdir();
    snprintf(addr, sizeof addr, "unix:%s/h.sock", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_tmpdir(dir);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static ravel_db *connect_with_timeout(int retry)
{
    ravel_options o;
    ravel_options_init(&o);
    o.retry = retry;
    o.connect_timeout_ms = TIMEOUT_MS;
    ravel_db *db;
    OK(ravel_connect(&db, addr, &o));
    return db;
}

/* A put that must fail with RAVEL_ETIMEDOUT within [lo, hi] ms. */
static void put_times_out(ravel_db *db, double lo, double hi)
{
    double t0 = now_ms();
    assert_int_equal(ravel_put(db, S("k"), S("v")), RAVEL_ETIMEDOUT);
    double took = now_ms() - t0;
    if (took < lo || took > hi)
        fail_msg("the put failed after %.0f ms, not within [%.0f, %.0f]", took, lo, hi);
}

static void test_nobody_listens(void **state)
{
    (void)state;
    ravel_db *db = connect_with_timeout(1);
    put_times_out(db, TIMEOUT_MS * 0.7, TIMEOUT_MS * 10);
    assert_non_null(strstr(ravel_errmsg(), "could not be reached"));
    assert_non_null(strstr(ravel_errmsg(), addr));
    /* Given up: the next request fails at once, iterators too. */
    put_times_out(db, 0, TIMEOUT_MS * 0.5); /* not another wait of the bound */
    ravel_iter *it;
    assert_int_equal(ravel_iter_new(db, NULL, &it), RAVEL_ETIMEDOUT);
    /* With retry the handle keeps trying: once a host listens, it works. */
    ravel_db *local;
    ravel_host *host;
    char path[4300];
    snprintf(path, sizeof path, "%s/db", dir);
    OK(ravel_open_local(&local, path, NULL));
    OK(ravel_host_new(&host, local, NULL));
    OK(ravel_host_listen(host, addr));
    int rc = RAVEL_ETIMEDOUT;
    for (int i = 0; i < 300 && rc == RAVEL_ETIMEDOUT; i++) {
        rc = ravel_put(db, S("k"), S("v"));
        if (rc == RAVEL_ETIMEDOUT)
            usleep(10000);
    }
    OK(rc);
    /* The host goes: requests wait for it again, as long as the bound. */
    ravel_host_free(host);
    put_times_out(db, TIMEOUT_MS * 0.5, TIMEOUT_MS * 10);
    ravel_db_close(db);
    ravel_db_close(local);
}

typedef struct async_result {
    int status, calls;
} async_result;

static void on_done(void *ud, int status)
{
    async_result *a = ud;
    a->status = status;
    __atomic_add_fetch(&a->calls, 1, __ATOMIC_SEQ_CST);
}

static int called(void *ud)
{
    return __atomic_load_n(&((async_result *)ud)->calls, __ATOMIC_SEQ_CST) > 0;
}

static void test_async_and_iterators_fail_once(void **state)
{
    (void)state;
    ravel_db *db = connect_with_timeout(1);
    async_result a = {0};
    OK(ravel_put_async(db, S("k"), S("v"), on_done, &a));
    ravel_iter *it;
    OK(ravel_iter_new(db, NULL, &it));
    const char *k, *v;
    size_t kl, vl;
    assert_int_equal(ravel_iter_next(it, &k, &kl, &v, &vl), RAVEL_ETIMEDOUT);
    wait_until(called, &a, "the asynchronous put's callback");
    assert_int_equal(a.status, RAVEL_ETIMEDOUT);
    ravel_iter_free(it);
    ravel_db_close(db);
    assert_int_equal(a.calls, 1);
}

/* A peer that accepts and closes at once, for ever: streams come up, but
 * none answers. */
static int peer_fd = -1;
static volatile int peer_stop;

static void *peer_main(void *arg)
{
    (void)arg;
    while (!peer_stop) {
        int c = accept(peer_fd, NULL, NULL);
        if (c >= 0)
            close(c);
    }
    return NULL;
}

static void test_peer_that_never_answers(void **state)
{
    (void)state;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%.100s", addr + 5);
    peer_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(peer_fd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(peer_fd, 16), 0);
    pthread_t t;
    peer_stop = 0;
    pthread_create(&t, NULL, peer_main, NULL);
    ravel_db *db = connect_with_timeout(1);
    put_times_out(db, TIMEOUT_MS * 0.7, TIMEOUT_MS * 10);
    ravel_db_close(db);
    /* Retry off: the first stream's end fails the request at once. */
    db = connect_with_timeout(0);
    assert_int_equal(ravel_put(db, S("k"), S("v")), RAVEL_ECONNLOST);
    ravel_db_close(db);
    peer_stop = 1;
    shutdown(peer_fd, SHUT_RDWR);
    int wake = socket(AF_UNIX, SOCK_STREAM, 0);
    connect(wake, (struct sockaddr *)&sun, sizeof sun);
    close(wake);
    pthread_join(t, NULL);
    close(peer_fd);
}

/* A host without extensions (as Node's many-level is: no Announce) that
 * answers a Put only after three times the bound: connected, so the
 * request waits for its answer. */
static void *slow_host_main(void *arg)
{
    (void)arg;
    int c = accept(peer_fd, NULL, NULL);
    if (c < 0)
        return NULL;
    unsigned char req[256];
    ssize_t n = read(c, req, sizeof req); /* one Put: len, tag 1, 0x08 id, ... */
    if (n >= 4 && req[1] == 6 && req[2] == 0x08 && req[3] < 0x80) {
        /* A ravel guest with a write to make first asks a host that has
         * not announced itself a GetMany of no keys (a probe: is it a
         * ravel host?). A many-level host answers at once. */
        unsigned char reply[4] = {3, 2, 0x08, req[3]}; /* GetManyCallback {id} */
        ssize_t w = write(c, reply, sizeof reply);
        (void)w;
        n = read(c, req, sizeof req);
    }
    usleep(3 * TIMEOUT_MS * 1000);
    if (n >= 4 && req[1] == 1 && req[2] == 0x08 && req[3] < 0x80) {
        unsigned char reply[4] = {3, 0, 0x08, req[3]}; /* Callback {id} */
        ssize_t w = write(c, reply, sizeof reply);
        (void)w;
    }
    usleep(100000);
    close(c);
    return NULL;
}

static void test_slow_reply_is_no_timeout(void **state)
{
    (void)state;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%.100s", addr + 5);
    peer_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(peer_fd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(peer_fd, 16), 0);
    pthread_t t;
    pthread_create(&t, NULL, slow_host_main, NULL);
    ravel_db *db = connect_with_timeout(0);
    OK(ravel_put(db, S("k"), S("v")));
    ravel_db_close(db);
    pthread_join(t, NULL);
    close(peer_fd);
}

static void test_guest_never_attached(void **state)
{
    (void)state;
    ravel_options o;
    ravel_options_init(&o);
    o.connect_timeout_ms = TIMEOUT_MS;
    ravel_db *db;
    OK(ravel_guest_new(&db, &o));
    put_times_out(db, TIMEOUT_MS * 0.7, TIMEOUT_MS * 10);
    assert_non_null(strstr(ravel_errmsg(), "nothing within"));
    ravel_db_close(db);
}

static void test_party_follower_without_a_leader(void **state)
{
    (void)state;
    /* The "leader" is a local handle with a host on the party's socket;
     * once the host goes, the directory stays locked by a handle that
     * does not serve it (as a plain LevelDB program would hold it), so the
     * follower's election finds no leader: its requests end after the
     * bound instead of waiting for ever. */
    char path[4300], sock[4400];
    snprintf(path, sizeof path, "%s/party", dir);
    snprintf(sock, sizeof sock, "unix:%s/rave-level.sock", path);
    ravel_db *plain, *follower;
    ravel_host *host;
    OK(ravel_open_local(&plain, path, NULL));
    OK(ravel_host_new(&host, plain, NULL));
    OK(ravel_host_listen(host, sock));
    ravel_options o;
    ravel_options_init(&o);
    o.connect_timeout_ms = TIMEOUT_MS;
    OK(ravel_open(&follower, path, &o));
    assert_int_equal(ravel_db_role(follower), RAVEL_ROLE_FOLLOWER);
    OK(ravel_put(follower, S("a"), S("1")));
    ravel_host_free(host);
    put_times_out(follower, TIMEOUT_MS * 0.5, TIMEOUT_MS * 10);
    ravel_db_close(follower);
    ravel_db_close(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nobody_listens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_and_iterators_fail_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_that_never_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reply_is_no_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_never_attached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_party_follower_without_a_leader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
