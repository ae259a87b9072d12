/* Snapshots, read options and the maintenance calls (compact_range,
 * property_value, approximate_sizes) on every handle kind: local, a guest
 * over a socketpair, a party leader, a party follower and a TCP guest;
 * then across
 * real processes: a follower's snapshot keeps reading the old values while
 * other processes overwrite and delete them, and once the leader is
 * SIGKILLed its reads fail with RAVEL_ESNAPSHOT while reads without it go
 * on; and a retrying guest whose stream is cut loses its snapshot the same
 * way. Usage: test-snapshots PATH-TO-party-child */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../helpers.h"

#define S(x) x, strlen(x)

static const char *child_prog;

typedef struct kinds {
    char *dir;
    pair p;             /* local + guest */
    ravel_db *leader, *follower;
    ravel_db *tcp;      /* a TCP guest of p's host */
} kinds;

#define NKINDS 5

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
    OK(ravel_host_listen(k->p.host, "tcp:127.0.0.1:0"));
    char address[64];
    snprintf(address, sizeof address, "tcp:127.0.0.1:%d", ravel_host_port(k->p.host));
    OK(ravel_connect(&k->tcp, address, NULL));
    *state = k;
    return 0;
}

static int teardown(void **state)
{
    kinds *k = *state;
    ravel_db_close(k->tcp);
    ravel_db_close(k->follower);
    ravel_db_close(k->leader);
    rm_tmpdir(k->dir);
    pair_close(&k->p);
    free(k);
    return 0;
}

static ravel_db *kind(kinds *k, int i)
{
    ravel_db *dbs[] = {k->p.local, k->p.guest, k->leader, k->follower, k->tcp};
    return dbs[i];
}

static const char *kind_name(int i)
{
    static const char *names[] = {"local", "guest", "leader", "follower", "tcp"};
    return names[i];
}

/* get through ro: want NULL means absent. */
static void want(ravel_db *db, const ravel_readoptions *ro, const char *key, const char *val)
{
    char *v = NULL;
    size_t vl = 0;
    int rc = ravel_get_opt(db, ro, S(key), &v, &vl);
    if (!val) {
        if (rc != RAVEL_ENOTFOUND)
            fail_msg("get %s: %s, wanted absent", key, ravel_errname(rc));
        return;
    }
    OK(rc);
    if (vl != strlen(val) || memcmp(v, val, vl) != 0)
        fail_msg("get %s: \"%.*s\", wanted \"%s\"", key, (int)vl, v, val);
    ravel_free(v);
}

/* The entries of prefix p, through ro, as "k=v," text. */
static void scan(ravel_db *db, const ravel_readoptions *ro, const char *p, char *out, size_t cap)
{
    ravel_range r;
    ravel_range_init(&r);
    char hi[64];
    snprintf(hi, sizeof hi, "%s\xff", p);
    r.has_gte = r.has_lt = 1;
    r.gte = (ravel_bound){p, strlen(p)};
    r.lt = (ravel_bound){hi, strlen(hi)};
    ravel_iter *it;
    OK(ravel_iter_new_opt(db, ro, &r, &it));
    const char *k, *v;
    size_t kl, vl, n = 0;
    out[0] = '\0';
    int rc;
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK)
        n += (size_t)snprintf(out + n, cap - n, "%.*s=%.*s,", (int)kl, k, (int)vl, v);
    assert_int_equal(rc, RAVEL_END);
    ravel_iter_free(it);
}

static void test_snapshots_on_every_kind(void **state)
{
    kinds *k = *state;
    for (int i = 0; i < NKINDS; i++) {
        ravel_db *db = kind(k, i);
        char a[32], b[32], c[32], text[256], wanted[256];
        snprintf(a, sizeof a, "%s/a", kind_name(i));
        snprintf(b, sizeof b, "%s/b", kind_name(i));
        snprintf(c, sizeof c, "%s/c", kind_name(i));
        OK(ravel_put(db, S(a), S("1")));
        OK(ravel_put(db, S(b), S("1")));
        ravel_snapshot *snap;
        OK(ravel_snapshot_create(db, &snap));
        OK(ravel_put(db, S(a), S("2")));
        OK(ravel_del(db, S(b)));
        OK(ravel_put(db, S(c), S("3")));
        ravel_readoptions ro;
        ravel_readoptions_init(&ro);
        ro.snapshot = snap;
        want(db, &ro, a, "1");
        want(db, &ro, b, "1");
        want(db, &ro, c, NULL);
        want(db, NULL, a, "2");
        want(db, NULL, b, NULL);
        const void *keys[3] = {a, b, c};
        size_t klens[3] = {strlen(a), strlen(b), strlen(c)};
        char *vals[3];
        size_t vlens[3];
        OK(ravel_get_many_opt(db, &ro, 3, keys, klens, vals, vlens));
        assert_non_null(vals[0]);
        assert_memory_equal(vals[0], "1", 1);
        assert_non_null(vals[1]);
        assert_null(vals[2]);
        ravel_free(vals[0]);
        ravel_free(vals[1]);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s/", kind_name(i));
        scan(db, &ro, prefix, text, sizeof text);
        snprintf(wanted, sizeof wanted, "%s=1,%s=1,", a, b);
        assert_string_equal(text, wanted);
        scan(db, NULL, prefix, text, sizeof text);
        snprintf(wanted, sizeof wanted, "%s=2,%s=3,", a, c);
        assert_string_equal(text, wanted);
        /* LevelDB's other read options travel too. */
        ro.verify_checksums = 1;
        ro.fill_cache = 0;
        want(db, &ro, a, "1");
        ro.snapshot = NULL;
        want(db, &ro, a, "2");
        /* A snapshot is its handle's: another handle refuses it. */
        ro.snapshot = snap;
        char *v;
        size_t vl;
        ravel_db *other = kind(k, (i + 1) % NKINDS);
        assert_int_equal(ravel_get_opt(other, &ro, S(a), &v, &vl), RAVEL_EINVAL);
        ravel_snapshot_release(db, snap);
    }
}

typedef struct async_got {
    volatile int done;
    int status;
    char val[16];
} async_got;

static void on_value(void *ud, int status, const char *val, size_t vlen)
{
    async_got *g = ud;
    g->status = status;
    if (status == RAVEL_OK)
        snprintf(g->val, sizeof g->val, "%.*s", (int)vlen, val);
    __atomic_store_n(&g->done, 1, __ATOMIC_RELEASE);
}

static int got_it(void *arg)
{
    return __atomic_load_n(&((async_got *)arg)->done, __ATOMIC_ACQUIRE);
}

/* The asynchronous get reads the snapshot too, on every kind. */
static void test_snapshot_async_reads(void **state)
{
    kinds *k = *state;
    for (int i = 0; i < NKINDS; i++) {
        ravel_db *db = kind(k, i);
        OK(ravel_put(db, S("as/x"), S("old")));
        ravel_snapshot *snap;
        OK(ravel_snapshot_create(db, &snap));
        OK(ravel_put(db, S("as/x"), S("new")));
        ravel_readoptions ro;
        ravel_readoptions_init(&ro);
        ro.snapshot = snap;
        async_got g = {0, -1, ""};
        OK(ravel_get_opt_async(db, &ro, S("as/x"), on_value, &g));
        wait_until(got_it, &g, "the asynchronous get answers");
        OK(g.status);
        assert_string_equal(g.val, "old");
        ravel_snapshot_release(db, snap);
    }
}

static void test_maintenance_on_every_kind(void **state)
{
    kinds *k = *state;
    char val[1000];
    uint32_t x = 12345;
    for (int i = 0; i < NKINDS; i++) {
        ravel_db *db = kind(k, i);
        char key[64];
        for (int j = 0; j < 2000; j++) {
            /* Bytes snappy cannot shrink, so the sizes are the bytes. */
            for (size_t b = 0; b < sizeof val; b++) {
                x = x * 1103515245u + 12345u;
                val[b] = (char)(x >> 24);
            }
            snprintf(key, sizeof key, "m%d/%05d", i, j);
            OK(ravel_put(db, S(key), val, sizeof val));
        }
        char lo[8], hi[8];
        snprintf(lo, sizeof lo, "m%d/", i);
        snprintf(hi, sizeof hi, "m%d0", i);
        OK(ravel_compact_range(db, S(lo), S(hi)));
        OK(ravel_compact_range(db, NULL, 0, NULL, 0));
        char *prop = NULL;
        OK(ravel_property_value(db, "leveldb.stats", &prop));
        if (!strstr(prop, "Compactions"))
            fail_msg("%s: leveldb.stats is \"%s\"", kind_name(i), prop);
        ravel_free(prop);
        OK(ravel_property_value(db, "leveldb.num-files-at-level0", &prop));
        assert_true(strlen(prop) > 0 && prop[0] >= '0' && prop[0] <= '9');
        ravel_free(prop);
        OK(ravel_property_value(db, "leveldb.sstables", &prop));
        ravel_free(prop);
        assert_int_equal(ravel_property_value(db, "leveldb.no-such-thing", &prop),
                         RAVEL_ENOTFOUND);
        assert_null(prop);
        /* 2 MB written and compacted into tables: the sizes say so, and a
         * range with nothing in it is (about) empty. */
        const void *starts[2] = {lo, "zzz0"};
        const void *limits[2] = {hi, "zzz1"};
        size_t slens[2] = {strlen(lo), 4}, llens[2] = {strlen(hi), 4};
        uint64_t sizes[2] = {0, 1};
        OK(ravel_approximate_sizes(db, 2, starts, slens, limits, llens, sizes));
        if (sizes[0] < 1000000 || sizes[1] > 10000)
            fail_msg("%s: approximate sizes %llu and %llu", kind_name(i),
                     (unsigned long long)sizes[0], (unsigned long long)sizes[1]);
    }
}

/* ---- across processes ---- */

static pid_t spawn(const char *dbpath, const char *a1, const char *a2, const char *a3)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(child_prog, child_prog, a1, dbpath, a2, a3, "-", (char *)NULL);
        _exit(127);
    }
    assert_true(pid >= 0);
    return pid;
}

static int run(const char *dbpath, const char *a1, const char *a2, const char *a3)
{
    int status;
    pid_t pid = spawn(dbpath, a1, a2, a3);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int is_file(void *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

typedef struct get_ok {
    ravel_db *db;
} get_ok;

static int plain_read_works(void *arg)
{
    get_ok *g = arg;
    char *v;
    size_t vl;
    int rc = ravel_get(g->db, S("p/k1"), &v, &vl);
    if (rc == RAVEL_OK)
        ravel_free(v);
    return rc == RAVEL_OK;
}

static void test_follower_snapshot_and_leader_kill(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char dbpath[4200], ready[4300];
    snprintf(dbpath, sizeof dbpath, "%s/db", dir);
    snprintf(ready, sizeof ready, "%s.ready", dbpath);
    pid_t leader = spawn(dbpath, "party", "60", "-");
    wait_until(is_file, ready, "the leader process is up");
    ravel_db *db;
    OK(ravel_open(&db, dbpath, NULL));
    assert_int_equal(ravel_db_role(db), RAVEL_ROLE_FOLLOWER);
    char key[32], val[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "p/k%d", i);
        snprintf(val, sizeof val, "old%d", i);
        OK(ravel_put(db, S(key), S(val)));
    }
    ravel_snapshot *snap;
    OK(ravel_snapshot_create(db, &snap));
    /* Other processes overwrite one key and delete another. */
    assert_int_equal(run(dbpath, "put", "p/k1", "new1"), 0);
    assert_int_equal(run(dbpath, "del", "p/k2", "-"), 0);
    want(db, NULL, "p/k1", "new1");
    want(db, NULL, "p/k2", NULL);
    ravel_readoptions ro;
    ravel_readoptions_init(&ro);
    ro.snapshot = snap;
    want(db, &ro, "p/k1", "old1");
    want(db, &ro, "p/k2", "old2");
    const void *keys[2] = {"p/k1", "p/k2"};
    size_t klens[2] = {4, 4};
    char *vals[2];
    size_t vlens[2];
    OK(ravel_get_many_opt(db, &ro, 2, keys, klens, vals, vlens));
    assert_true(vals[0] && vlens[0] == 4 && memcmp(vals[0], "old1", 4) == 0);
    assert_true(vals[1] && vlens[1] == 4 && memcmp(vals[1], "old2", 4) == 0);
    ravel_free(vals[0]);
    ravel_free(vals[1]);
    /* An iterator on the snapshot sees all 100 old values. */
    ravel_iter *it;
    OK(ravel_iter_new_opt(db, &ro, NULL, &it));
    const char *k, *v;
    size_t kl, vl;
    int n = 0, rc;
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK) {
        assert_true(vl >= 3 && memcmp(v, "old", 3) == 0);
        n++;
    }
    assert_int_equal(rc, RAVEL_END);
    assert_int_equal(n, 100);
    ravel_iter_free(it);
    /* One more, left open across the leader's death. */
    ravel_range small;
    ravel_range_init(&small);
    OK(ravel_iter_new_opt(db, &ro, &small, &it));
    OK(ravel_iter_next(it, &k, &kl, &v, &vl));

    kill(leader, SIGKILL);
    waitpid(leader, NULL, 0);
    /* Reads without the snapshot go on, through the new leader (us). */
    get_ok g = {db};
    wait_until(plain_read_works, &g, "plain reads work after the leader's SIGKILL");
    want(db, NULL, "p/k1", "new1");
    char *out;
    size_t outlen;
    assert_int_equal(ravel_get_opt(db, &ro, S("p/k1"), &out, &outlen), RAVEL_ESNAPSHOT);
    assert_int_equal(ravel_get_many_opt(db, &ro, 2, keys, klens, vals, vlens), RAVEL_ESNAPSHOT);
    ravel_iter *it2;
    rc = ravel_iter_new_opt(db, &ro, NULL, &it2);
    assert_int_equal(rc, RAVEL_ESNAPSHOT);
    /* The iterator open at the kill ends with the snapshot's error, not a
     * resume on newer data. */
    while ((rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK)
        assert_true(vl >= 3 && memcmp(v, "old", 3) == 0);
    assert_int_equal(rc, RAVEL_ESNAPSHOT);
    ravel_iter_free(it);
    ravel_snapshot_release(db, snap);
    /* A new snapshot works on the new way to the data. */
    OK(ravel_snapshot_create(db, &snap));
    ro.snapshot = snap;
    want(db, &ro, "p/k1", "new1");
    ravel_snapshot_release(db, snap);
    ravel_db_close(db);
    rm_tmpdir(dir);
}

typedef struct host_up {
    ravel_db *db;
} host_up;

static int connected(void *arg)
{
    return ravel_guest_connected(((host_up *)arg)->db) && plain_read_works(arg);
}

static void test_guest_stream_cut(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char dbpath[4200], sock[4300];
    snprintf(dbpath, sizeof dbpath, "%s/db", dir);
    snprintf(sock, sizeof sock, "unix:%s/s.sock", dir);
    ravel_db *local;
    OK(ravel_open_local(&local, dbpath, NULL));
    ravel_host *host;
    OK(ravel_host_new(&host, local, NULL));
    OK(ravel_host_listen(host, sock));
    ravel_db *guest;
    OK(ravel_connect(&guest, sock, NULL)); /* retry on */
    OK(ravel_put(guest, S("p/k1"), S("one")));
    ravel_snapshot *snap;
    OK(ravel_snapshot_create(guest, &snap));
    OK(ravel_put(guest, S("p/k1"), S("two")));
    ravel_readoptions ro;
    ravel_readoptions_init(&ro);
    ro.snapshot = snap;
    want(guest, &ro, "p/k1", "one");
    /* The host goes and comes back: the stream is new, the snapshot gone. */
    ravel_host_free(host);
    OK(ravel_host_new(&host, local, NULL));
    OK(ravel_host_listen(host, sock));
    host_up h = {guest};
    wait_until(connected, &h, "the guest reconnects");
    char *v;
    size_t vl;
    assert_int_equal(ravel_get_opt(guest, &ro, S("p/k1"), &v, &vl), RAVEL_ESNAPSHOT);
    if (!strstr(ravel_errmsg(), "snapshot"))
        fail_msg("errmsg: %s", ravel_errmsg());
    want(guest, NULL, "p/k1", "two");
    ravel_snapshot_release(guest, snap);
    /* The host kept none for the new stream; releasing sent nothing. A
     * snapshot left unreleased is freed by the close. */
    OK(ravel_snapshot_create(guest, &snap));
    ravel_db_close(guest);
    ravel_host_free(host);
    ravel_db_close(local);
    rm_tmpdir(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-party-child\n", argv[0]);
        return 2;
    }
    child_prog = argv[1];
    const struct CMUnitTest kinds_tests[] = {
        cmocka_unit_test(test_snapshots_on_every_kind),
        cmocka_unit_test(test_snapshot_async_reads),
        cmocka_unit_test(test_maintenance_on_every_kind),
    };
    const struct CMUnitTest proc_tests[] = {
        cmocka_unit_test(test_follower_snapshot_and_leader_kill),
        cmocka_unit_test(test_guest_stream_cut),
    };
    int failed = cmocka_run_group_tests_name("on every handle kind", kinds_tests, setup, teardown);
    failed += cmocka_run_group_tests_name("across processes", proc_tests, NULL, NULL);
    return failed;
}
