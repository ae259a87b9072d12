/* Party mode inside one process: several handles on one directory, the
 * leader closing under the followers, and the errors a person meets. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../helpers.h"

#define S(x) x, strlen(x)

static char *dir;
static char dbpath[4200];

static int setup(void **state)
{
    (void)state;
    dir = make_tmpdir();
    snprintf(dbpath, sizeof dbpath, "%s/db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_tmpdir(dir);
    return 0;
}

static void check(ravel_db *db, const char *k, const char *want)
{
    char *v;
    size_t vl;
    OK(ravel_get(db, S(k), &v, &vl));
    assert_int_equal(vl, strlen(want));
    assert_memory_equal(v, want, vl);
    ravel_free(v);
}

typedef struct role_wait {
    ravel_db *db;
    int role;
} role_wait;

static int has_role(void *p)
{
    role_wait *w = p;
    return ravel_db_role(w->db) == w->role;
}

static int leader_calls;
static void on_leader(void *ud)
{
    (void)ud;
    __atomic_add_fetch(&leader_calls, 1, __ATOMIC_SEQ_CST);
}

static void test_leader_and_follower(void **state)
{
    (void)state;
    ravel_options o;
    ravel_options_init(&o);
    o.on_leader = on_leader;
    leader_calls = 0;
    ravel_db *a, *b;
    OK(ravel_open(&a, dbpath, &o));
    assert_int_equal(ravel_db_role(a), RAVEL_ROLE_LEADER);
    assert_int_equal(leader_calls, 1);
    OK(ravel_open(&b, dbpath, &o));
    assert_int_equal(ravel_db_role(b), RAVEL_ROLE_FOLLOWER);
    OK(ravel_put(b, S("from"), S("b")));
    OK(ravel_put(a, S("to"), S("a")));
    check(a, "from", "b");
    check(b, "to", "a");
    /* The socket is rave-level's, owner-only. */
    char sock[4300];
    snprintf(sock, sizeof sock, "%s/rave-level.sock", dbpath);
    struct stat st;
    assert_int_equal(stat(sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    /* An iterator on the follower survives the leader's close. */
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "n%04d", i);
        OK(ravel_put(a, S(k), S(k)));
    }
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1, r.gte = (ravel_bound){"n", 1};
    r.has_lt = 1, r.lt = (ravel_bound){"o", 1};
    ravel_iter *it;
    OK(ravel_iter_new(b, &r, &it));
    const char *k;
    size_t kl;
    int n = 0;
    while (ravel_iter_next(it, &k, &kl, NULL, NULL) == RAVEL_OK) {
        char want[16];
        snprintf(want, sizeof want, "n%04d", n);
        assert_int_equal(kl, 5);
        assert_memory_equal(k, want, 5);
        if (++n == 10)
            ravel_db_close(a); /* b takes over mid-iteration */
    }
    assert_int_equal(n, 1000);
    ravel_iter_free(it);
    role_wait w = {b, RAVEL_ROLE_LEADER};
    wait_until(has_role, &w, "b to lead");
    assert_int_equal(leader_calls, 2);
    check(b, "from", "b");
    OK(ravel_put(b, S("after"), S("failover")));
    ravel_db_close(b);
}

/* Six handles, closed one by one: after each close, each remaining
 * handle reads what another just wrote. */
static void test_election_party(void **state)
{
    (void)state;
    enum { H = 6 };
    ravel_db *h[H];
    for (int i = 0; i < H; i++)
        OK(ravel_open(&h[i], dbpath, NULL));
    int leaders = 0;
    for (int i = 0; i < H; i++)
        leaders += ravel_db_role(h[i]) == RAVEL_ROLE_LEADER;
    assert_int_equal(leaders, 1);
    for (int closed = 0; closed < H; closed++) {
        for (int i = closed; i < H; i++) {
            char k[32], v[32];
            snprintf(k, sizeof k, "round%d-by%d", closed, i);
            snprintf(v, sizeof v, "%d", i);
            OK(ravel_put(h[i], S(k), S(v)));
        }
        for (int i = closed; i < H; i++) {
            int other = closed + (i - closed + 1) % (H - closed);
            char k[32], v[32];
            snprintf(k, sizeof k, "round%d-by%d", closed, other);
            snprintf(v, sizeof v, "%d", other);
            check(h[i], k, v);
        }
        /* Close the current leader first, to make each round an election. */
        int lead = closed;
        for (int i = closed; i < H; i++)
            if (ravel_db_role(h[i]) == RAVEL_ROLE_LEADER)
                lead = i;
        ravel_db *t = h[closed];
        h[closed] = h[lead];
        h[lead] = t;
        ravel_db_close(h[closed]);
    }
}

typedef struct pending {
    pthread_mutex_t mu;
    int done, ok;
} pending;

static void pending_done(void *ud, int status)
{
    pending *p = ud;
    pthread_mutex_lock(&p->mu);
    p->done++;
    p->ok += status == RAVEL_OK;
    pthread_mutex_unlock(&p->mu);
}

static int all_done(void *ud)
{
    pending *p = ud;
    pthread_mutex_lock(&p->mu);
    int d = p->done;
    pthread_mutex_unlock(&p->mu);
    return d == 100;
}

static void test_pending_puts_land(void **state)
{
    (void)state;
    ravel_db *lead, *follow;
    OK(ravel_open(&lead, dbpath, NULL));
    OK(ravel_open(&follow, dbpath, NULL));
    pending p = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%03d", i);
        OK(ravel_put_async(follow, S(k), S(k), pending_done, &p));
    }
    ravel_db_close(lead);
    wait_until(all_done, &p, "100 puts");
    assert_int_equal(p.ok, 100);
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%03d", i);
        check(follow, k, k);
    }
    ravel_db_close(follow);
}

static void test_retry_off_fails_pending(void **state)
{
    (void)state;
    ravel_options o;
    ravel_options_init(&o);
    o.retry = 0;
    ravel_db *lead, *follow;
    OK(ravel_open(&lead, dbpath, NULL));
    OK(ravel_open(&follow, dbpath, &o));
    ravel_iter *it;
    OK(ravel_put(lead, S("x"), S("1")));
    OK(ravel_iter_new(follow, NULL, &it));
    ravel_db_close(lead);
    /* The host's first answer (one entry) may have come before the close. */
    int first = ravel_iter_next(it, NULL, NULL, NULL, NULL);
    if (first == RAVEL_OK)
        first = ravel_iter_next(it, NULL, NULL, NULL, NULL);
    assert_int_equal(first, RAVEL_ECONNLOST);
    ravel_iter_free(it);
    /* New requests wait for a new leader and work — though one sent over a
     * stream that dies in the middle of the election fails, as retry off
     * says. */
    int rc;
    for (int i = 0; i < 100 && (rc = ravel_put(follow, S("y"), S("2"))) != RAVEL_OK; i++)
        assert_int_equal(rc, RAVEL_ECONNLOST);
    OK(rc);
    check(follow, "x", "1");
    ravel_db_close(follow);
}

static void test_long_directory_path(void **state)
{
    (void)state;
    char deep[4200];
    snprintf(deep, sizeof deep, "%s/%s", dir,
             "a-directory-name-long-enough-that-the-socket-path-inside-it-"
             "does-not-fit-in-sun_path-which-holds-108-bytes");
    assert_true(strlen(deep) + strlen("/rave-level.sock") > 108);
    ravel_db *a, *b;
    OK(ravel_open(&a, deep, NULL));
    OK(ravel_open(&b, deep, NULL));
    assert_int_equal(ravel_db_role(b), RAVEL_ROLE_FOLLOWER);
    OK(ravel_put(b, S("long"), S("path")));
    check(a, "long", "path");
    ravel_db_close(a);
    check(b, "long", "path");
    assert_int_equal(ravel_db_role(b), RAVEL_ROLE_LEADER);
    ravel_db_close(b);
}

static void test_stale_socket_does_not_block(void **state)
{
    (void)state;
    ravel_db *a;
    OK(ravel_open(&a, dbpath, NULL)); /* create the database */
    ravel_db_close(a);
    /* A socket file nobody listens on, as a crashed leader leaves it. */
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%.80s/rave-level.sock", dbpath);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
    OK(ravel_open(&a, dbpath, NULL));
    assert_int_equal(ravel_db_role(a), RAVEL_ROLE_LEADER);
    ravel_db_close(a);
}

static void test_locked_by_a_plain_leveldb_user(void **state)
{
    (void)state;
    ravel_db *plain, *p;
    OK(ravel_open_local(&plain, dbpath, NULL));
    ravel_options o;
    ravel_options_init(&o);
    o.lock_timeout_ms = 200;
    assert_int_equal(ravel_open(&p, dbpath, &o), RAVEL_ELOCKED);
    assert_non_null(strstr(ravel_errmsg(), "locked by a process that does not share it"));
    ravel_db_close(plain);
    OK(ravel_open(&p, dbpath, &o));
    ravel_db_close(p);
}

static void test_errors_a_person_understands(void **state)
{
    (void)state;
    ravel_db *p;
    char path[4300];
    snprintf(path, sizeof path, "%s/no/such/parent/db", dir);
    assert_int_equal(ravel_open(&p, path, NULL), RAVEL_EIO);
    assert_non_null(strstr(ravel_errmsg(), "does not exist"));
    ravel_options o;
    ravel_options_init(&o);
    o.create_if_missing = 0;
    snprintf(path, sizeof path, "%s/empty", dir);
    mkdir(path, 0700);
    assert_int_equal(ravel_open(&p, path, &o), RAVEL_EIO);
    assert_non_null(strstr(ravel_errmsg(), "no LevelDB database"));
    /* A database whose CURRENT file is garbage. */
    OK(ravel_open(&p, dbpath, NULL));
    ravel_db_close(p);
    snprintf(path, sizeof path, "%s/CURRENT", dbpath);
    FILE *f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    assert_int_equal(ravel_open(&p, dbpath, NULL), RAVEL_ECORRUPT);
    assert_non_null(strstr(ravel_errmsg(), "Corruption"));
    /* A file where the directory should be. */
    snprintf(path, sizeof path, "%s/afile", dir);
    f = fopen(path, "w");
    fclose(f);
    assert_int_equal(ravel_open(&p, path, NULL), RAVEL_EIO);
    assert_non_null(strstr(ravel_errmsg(), "not a directory"));
}

typedef struct removed {
    ravel_db *db;
} removed;

static int put_fails(void *arg)
{
    return ravel_put(((removed *)arg)->db, S("k"), S("v")) == RAVEL_EIO;
}

static void test_directory_removed_under_the_leader(void **state)
{
    (void)state;
    ravel_db *lead, *follow;
    OK(ravel_open(&lead, dbpath, NULL));
    OK(ravel_open(&follow, dbpath, NULL));
    OK(ravel_put(follow, S("before"), S("1")));
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dbpath);
    assert_int_equal(system(cmd), 0);
    removed r = {lead};
    wait_until(put_fails, &r, "writes to a removed directory to fail");
    assert_non_null(strstr(ravel_errmsg(), "was removed"));
    /* Through the host, the follower gets the error too, and reads go on. */
    assert_int_equal(ravel_put(follow, S("after"), S("2")), RAVEL_EREMOTE);
    check(follow, "before", "1");
    ravel_db_close(follow);
    ravel_db_close(lead);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leader_and_follower, setup, teardown),
        cmocka_unit_test_setup_teardown(test_election_party, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_puts_land, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_off_fails_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_directory_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_does_not_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_by_a_plain_leveldb_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_a_person_understands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_removed_under_the_leader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
