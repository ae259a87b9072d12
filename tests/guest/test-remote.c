/* A guest and a host talking over real streams: threads, streams of every
 * kind, readonly and hooks, bad bytes, and what happens to pending work
 * when a stream ends or the handle closes. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../helpers.h"
#include "wire/codec.h"

#define S(x) x, strlen(x)

typedef struct thread_arg {
    ravel_db *db;
    int id;
    int failures;
} thread_arg;

static void *hammer(void *p)
{
    thread_arg *a = p;
    for (int i = 0; i < 2000; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "t%d-%05d", a->id, i);
        snprintf(v, sizeof v, "v%d", i);
        if (ravel_put(a->db, S(k), S(v)) != RAVEL_OK)
            a->failures++;
        char *got;
        size_t gl;
        if (ravel_get(a->db, S(k), &got, &gl) != RAVEL_OK || gl != strlen(v) ||
            memcmp(got, v, gl) != 0)
            a->failures++;
        ravel_free(got);
    }
    return NULL;
}

static void test_eight_threads_one_handle(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, NULL, NULL);
    pthread_t t[8];
    thread_arg a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (thread_arg){p.guest, i, 0};
        pthread_create(&t[i], NULL, hammer, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    /* Everything landed, as seen directly in LevelDB. */
    ravel_iter *it;
    OK(ravel_iter_new(p.local, NULL, &it));
    int n = 0;
    while (ravel_iter_next(it, NULL, NULL, NULL, NULL) == RAVEL_OK)
        n++;
    ravel_iter_free(it);
    assert_int_equal(n, 8 * 2000);
    pair_close(&p);
}

static void test_readonly(void **state)
{
    (void)state;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.readonly = 1;
    pair p;
    pair_open(&p, &ho, NULL);
    OK(ravel_put(p.local, S("k"), S("v")));
    assert_int_equal(ravel_put(p.guest, S("k"), S("x")), RAVEL_EREADONLY);
    assert_int_equal(ravel_del(p.guest, S("k")), RAVEL_EREADONLY);
    ravel_batch *b = ravel_batch_new();
    ravel_batch_put(b, S("n"), S("n"));
    assert_int_equal(ravel_write(p.guest, b), RAVEL_EREADONLY);
    ravel_batch_free(b);
    assert_int_equal(ravel_clear(p.guest, NULL), RAVEL_EREADONLY);
    char *v;
    size_t vl;
    OK(ravel_get(p.guest, S("k"), &v, &vl));
    assert_memory_equal(v, "v", 1);
    ravel_free(v);
    ravel_iter *it;
    OK(ravel_iter_new(p.guest, NULL, &it));
    const char *k;
    size_t kl;
    OK(ravel_iter_next(it, &k, &kl, NULL, NULL));
    assert_int_equal(ravel_iter_next(it, &k, &kl, NULL, NULL), RAVEL_END);
    ravel_iter_free(it);
    pair_close(&p);
}

static const char *no_x(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)val, (void)vlen;
    ++*(int *)ud;
    return klen && key[0] == 'x' ? "keys starting with x are not allowed" : NULL;
}

static const char *keep(void *ud, const char *key, size_t klen)
{
    (void)ud;
    return klen == 4 && memcmp(key, "keep", 4) == 0 ? "keep stays" : NULL;
}

static const char *small_batches(void *ud, const ravel_batch *b)
{
    (void)ud;
    return ravel_batch_count(b) > 2 ? "batches of at most 2" : NULL;
}

static void test_hooks(void **state)
{
    (void)state;
    int calls = 0;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.preput = no_x;
    ho.predel = keep;
    ho.prebatch = small_batches;
    ho.hook_ud = &calls;
    pair p;
    pair_open(&p, &ho, NULL);
    OK(ravel_put(p.guest, S("a"), S("1")));
    assert_int_equal(ravel_put(p.guest, S("xa"), S("1")), RAVEL_EREJECTED);
    assert_int_equal(calls, 2);
    OK(ravel_put(p.guest, S("keep"), S("1")));
    assert_int_equal(ravel_del(p.guest, S("keep")), RAVEL_EREJECTED);
    OK(ravel_del(p.guest, S("a")));
    ravel_batch *b = ravel_batch_new();
    ravel_batch_put(b, S("b1"), S("1"));
    ravel_batch_put(b, S("b2"), S("1"));
    ravel_batch_put(b, S("b3"), S("1"));
    assert_int_equal(ravel_write(p.guest, b), RAVEL_EREJECTED);
    ravel_batch_free(b);
    /* Nothing rejected was written. */
    char *v;
    size_t vl;
    assert_int_equal(ravel_get(p.local, S("xa"), &v, &vl), RAVEL_ENOTFOUND);
    assert_int_equal(ravel_get(p.local, S("b1"), &v, &vl), RAVEL_ENOTFOUND);
    OK(ravel_get(p.local, S("keep"), &v, &vl));
    ravel_free(v);
    pair_close(&p);
}

/* Wait for the peer to close fd (read returns 0 or an error). */
static int peer_closed(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    for (int i = 0; i < 100; i++) {
        if (poll(&pfd, 1, 100) > 0) {
            char buf[256];
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0)
                return 1;
        }
    }
    return 0;
}

/* A ravel host's first frame on a stream is its Announce
 * (docs/protocol-extensions.md): read it, all of it and nothing more. */
static void skip_announce(int fd)
{
    uint8_t len, frame[128];
    assert_int_equal(read(fd, &len, 1), 1);
    assert_true(len > 0 && len < 128);
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, frame + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_int_equal(frame[0], RV_OUT_ANNOUNCE);
}

static void test_bad_frames_close_only_that_connection(void **state)
{
    (void)state;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.max_frame = 1 << 16;
    pair p;
    pair_open(&p, &ho, NULL);
    const uint8_t bad[][8] = {
        {0x03, RV_IN_GET, 0x08, 0x01},       /* Get without its key */
        {0x03, RV_IN_PUT, 0x0a, 0x05},       /* field runs past the end */
        {0x80, 0x80, 0x80, 0x80, 0x10},      /* length over max_frame */
    };
    const size_t lens[] = {4, 4, 5};
    for (size_t i = 0; i < 3; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        OK(ravel_host_attach_fd(p.host, sv[0], sv[0]));
        assert_int_equal(write(sv[1], bad[i], lens[i]), (ssize_t)lens[i]);
        assert_true(peer_closed(sv[1]));
        close(sv[1]);
        /* The host and its other guest carry on. */
        OK(ravel_put(p.guest, S("still"), S("here")));
    }
    /* A request before the bad frame is still answered. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    OK(ravel_host_attach_fd(p.host, sv[0], sv[0]));
    skip_announce(sv[1]);
    rv_buf out = {0};
    Ravelwire__Get get = RAVELWIRE__GET__INIT;
    get.id = 77;
    get.key = (ProtobufCBinaryData){5, (uint8_t *)"still"};
    const uint8_t unknown[] = {0x02, 42, 0x00}; /* unknown tag: ignored */
    rv_buf_append(&out, unknown, sizeof unknown);
    rv_encode(&out, RV_IN_GET, &get.base);
    rv_buf_append(&out, bad[0], lens[0]);
    assert_int_equal(write(sv[1], out.data, out.len), (ssize_t)out.len);
    uint8_t reply[64];
    ssize_t n = read(sv[1], reply, sizeof reply);
    assert_true(n > 2);
    int st;
    Ravelwire__Callback *cb = (Ravelwire__Callback *)rv_unpack_out(reply + 1, (size_t)reply[0], &st);
    assert_non_null(cb);
    assert_int_equal(cb->id, 77);
    assert_true(cb->has_value);
    assert_memory_equal(cb->value.data, "here", 4);
    protobuf_c_message_free_unpacked(&cb->base, NULL);
    assert_true(peer_closed(sv[1]));
    close(sv[1]);
    rv_buf_free(&out);
    OK(ravel_put(p.guest, S("and"), S("still")));
    pair_close(&p);
}

typedef struct counter {
    int calls;
    int status[8];
} counter;

static void count_done(void *ud, int status)
{
    counter *c = ud;
    c->status[c->calls++ % 8] = status;
}

static void count_value(void *ud, int status, const char *v, size_t vl)
{
    (void)v, (void)vl;
    count_done(ud, status);
}

static void count_entry(void *ud, int status, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    count_done(ud, status);
}

static void test_close_fails_pending_once(void **state)
{
    (void)state;
    ravel_db *g;
    OK(ravel_guest_new(&g, NULL)); /* no stream: everything stays pending */
    counter c = {0};
    OK(ravel_put_async(g, S("a"), S("1"), count_done, &c));
    OK(ravel_get_async(g, S("a"), count_value, &c));
    ravel_iter *it;
    OK(ravel_iter_new(g, NULL, &it));
    OK(ravel_iter_next_async(it, count_entry, &c));
    ravel_db_close(g);
    assert_int_equal(c.calls, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.status[i], RAVEL_ECLOSED);
    assert_int_equal(ravel_iter_next(it, NULL, NULL, NULL, NULL), RAVEL_ECLOSED);
    ravel_iter_free(it);
    assert_int_equal(c.calls, 3);
}

typedef struct sync_next {
    ravel_iter *it;
    int rc;
} sync_next;

static void *next_in_thread(void *p)
{
    sync_next *s = p;
    s->rc = ravel_iter_next(s->it, NULL, NULL, NULL, NULL);
    return NULL;
}

static void test_retry_off_stream_end_fails_pending(void **state)
{
    (void)state;
    ravel_db *g;
    OK(ravel_guest_new(&g, NULL));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    OK(ravel_guest_attach_fd(g, sv[1], sv[1]));
    counter c = {0};
    OK(ravel_put_async(g, S("a"), S("1"), count_done, &c));
    sync_next sn = {0};
    OK(ravel_iter_new(g, NULL, &sn.it));
    pthread_t t;
    pthread_create(&t, NULL, next_in_thread, &sn);
    char buf[256];
    assert_true(read(sv[0], buf, sizeof buf) > 0); /* the requests went out */
    close(sv[0]);                                   /* and nobody answers */
    pthread_join(t, NULL);
    assert_int_equal(sn.rc, RAVEL_ECONNLOST);
    ravel_db_close(g); /* waits for the loop, so the callback has run */
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status[0], RAVEL_ECONNLOST);
    ravel_iter_free(sn.it);

    /* Requests made after the loss fail at once. */
    OK(ravel_guest_new(&g, NULL));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    OK(ravel_guest_attach_fd(g, sv[1], sv[1]));
    close(sv[0]);
    for (int i = 0; i < 1000 && ravel_guest_connected(g); i++)
        usleep(1000);
    int rc = RAVEL_OK;
    for (int i = 0; i < 1000 && rc == RAVEL_OK; i++) {
        rc = ravel_put(g, S("b"), S("2"));
        if (rc == RAVEL_OK)
            usleep(1000);
    }
    assert_int_equal(rc, RAVEL_ECONNLOST);
    assert_string_not_equal(ravel_errmsg(), "no error");
    ravel_db_close(g);
}

typedef struct deadlock {
    ravel_db *db;
    int rc;
    int done;
} deadlock;

static void call_sync_inside(void *ud, int status)
{
    deadlock *d = ud;
    (void)status;
    char *v;
    size_t vl;
    d->rc = ravel_get(d->db, S("a"), &v, &vl);
    __atomic_store_n(&d->done, 1, __ATOMIC_SEQ_CST);
}

static int deadlock_done(void *p)
{
    return __atomic_load_n(&((deadlock *)p)->done, __ATOMIC_SEQ_CST);
}

/* A host hook: puts of keys that start with "slow" take *ud nanoseconds. */
static const char *slow_puts(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)val, (void)vlen;
    if (klen >= 4 && memcmp(key, "slow", 4) == 0) {
        struct timespec ts = {0, *(const long *)ud};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* A guest and a host whose "slow" puts take delay_ns. */
static void pair_open_slow(pair *p, const long *delay_ns)
{
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.preput = slow_puts;
    ho.hook_ud = (void *)delay_ns;
    pair_open(p, &ho, NULL);
}

typedef struct async_seen {
    pthread_mutex_t mu;
    int calls, failures;
    pthread_t caller; /* callbacks must not run on this thread */
} async_seen;

static void on_async_put(void *ud, int status)
{
    async_seen *a = ud;
    pthread_mutex_lock(&a->mu);
    a->calls++;
    if (status != RAVEL_OK || pthread_equal(pthread_self(), a->caller))
        a->failures++;
    pthread_mutex_unlock(&a->mu);
}

/* Wait (up to 5 s) until n asynchronous puts were called back; each must
 * have been called back once, successfully, on another thread. */
static void expect_async_calls(async_seen *a, int n)
{
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&a->mu);
        int calls = a->calls;
        pthread_mutex_unlock(&a->mu);
        if (calls == n)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&a->mu);
    int calls = a->calls, failures = a->failures;
    pthread_mutex_unlock(&a->mu);
    assert_int_equal(calls, n);
    assert_int_equal(failures, 0);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A synchronous caller reads the stream itself while it waits (busy-
 * polling): answers for asynchronous requests it reads on the way still
 * reach their callbacks on the I/O thread; slow answers make it sleep
 * instead, without losing anything; and an idle handle burns no CPU. */
static void test_busy_polling(void **state)
{
    (void)state;
    /* 3 ms: longer than the busy-poll budget, so a polling caller gives
     * up and sleeps. */
    static const long delay_ns = 3000000;
    pair p;
    pair_open_slow(&p, &delay_ns);
    async_seen a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, pthread_self()};
    for (int round = 0; round < 200; round++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "%s%03d", round % 10 == 9 ? "slow" : "fast", round);
        snprintf(v, sizeof v, "v%d", round);
        /* An asynchronous put, answered before the synchronous one. */
        char ak[32];
        snprintf(ak, sizeof ak, "async%03d", round);
        OK(ravel_put_async(p.guest, S(ak), S(v), on_async_put, &a));
        OK(ravel_put(p.guest, S(k), S(v)));
        char *got;
        size_t gl;
        OK(ravel_get(p.guest, S(k), &got, &gl));
        assert_int_equal(gl, strlen(v));
        assert_memory_equal(got, v, gl);
        ravel_free(got);
    }
    expect_async_calls(&a, 200);
    /* Idle: nobody polls. 200 ms of wall time cost well under 50 ms of
     * CPU (a poller left running would cost all 200). */
    double before = cpu_seconds();
    struct timespec idle = {0, 200000000};
    nanosleep(&idle, NULL);
    assert_true(cpu_seconds() - before < 0.05);
    pair_close(&p);
}

/* Voluntary context switches of all this process's threads so far. */
static long voluntary_switches(void)
{
    long total = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], line[128];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* a thread that just ended */
        while (fgets(line, sizeof line, f) != NULL) {
            long n;
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
                total += n;
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

/* A caller waiting 300 ms for one slow answer right after a run of fast
 * ones: the handle's threads sleep meanwhile (the I/O thread used to look
 * every 2 ms whether the caller was done, ~150 wake-ups). */
static void test_slow_answer_sleeps(void **state)
{
    (void)state;
    static const long delay_ns = 300000000;
    pair p;
    pair_open_slow(&p, &delay_ns);
    for (int i = 0; i < 200; i++)
        OK(ravel_put(p.guest, S("fast"), S("v")));
    long before = voluntary_switches();
    OK(ravel_put(p.guest, S("slow"), S("v")));
    long during = voluntary_switches() - before;
    assert_in_range(during, 0, 30);
    /* Asynchronous requests made after it are still answered. */
    async_seen a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, pthread_self()};
    for (int i = 0; i < 10; i++)
        OK(ravel_put_async(p.guest, S("after"), S("v"), on_async_put, &a));
    expect_async_calls(&a, 10);
    pair_close(&p);
}

static void test_sync_call_from_callback(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, NULL, NULL);
    deadlock d = {p.guest, 0, 0};
    OK(ravel_put_async(p.guest, S("a"), S("1"), call_sync_inside, &d));
    wait_until(deadlock_done, &d, "callback");
    assert_int_equal(d.rc, RAVEL_EDEADLK);
    pair_close(&p);
}

static void test_pipe_pair(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *db, *g;
    ravel_host *h;
    OK(ravel_open_local(&db, path, NULL));
    OK(ravel_host_new(&h, db, NULL));
    int to_host[2], to_guest[2];
    assert_int_equal(pipe(to_host), 0);
    assert_int_equal(pipe(to_guest), 0);
    OK(ravel_host_attach_fd(h, to_host[0], to_guest[1]));
    OK(ravel_guest_new(&g, NULL));
    OK(ravel_guest_attach_fd(g, to_guest[0], to_host[1]));
    OK(ravel_put(g, S("over"), S("pipes")));
    char *v;
    size_t vl;
    OK(ravel_get(db, S("over"), &v, &vl));
    assert_memory_equal(v, "pipes", 5);
    ravel_free(v);
    ravel_db_close(g);
    ravel_host_free(h);
    ravel_db_close(db);
    rm_tmpdir(dir);
}

static void test_listen_and_connect(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200], addr[4300];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *db, *g;
    ravel_host *h;
    OK(ravel_open_local(&db, path, NULL));
    OK(ravel_host_new(&h, db, NULL));
    /* A stale socket file (nobody listening) is replaced. */
    snprintf(addr, sizeof addr, "unix:%s/s.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s.sock", dir);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
    OK(ravel_host_listen(h, addr));
    struct stat st;
    assert_int_equal(stat(sun.sun_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* It was made listening under a temporary name and renamed into
     * place: nothing else is left in the directory. */
    char tmpname[4300];
    snprintf(tmpname, sizeof tmpname, "%s.%ld", sun.sun_path, (long)getpid());
    assert_int_equal(access(tmpname, F_OK), -1);
    /* A live one is not taken over. */
    ravel_host *h2;
    OK(ravel_host_new(&h2, db, NULL));
    assert_int_equal(ravel_host_listen(h2, addr), RAVEL_EADDR);
    assert_non_null(strstr(ravel_errmsg(), "another process is serving"));
    ravel_host_free(h2);
    OK(ravel_connect(&g, addr, NULL));
    OK(ravel_put(g, S("via"), S("unix")));
    ravel_db_close(g);
    OK(ravel_host_listen(h, "tcp:127.0.0.1:0"));
    int port = ravel_host_port(h);
    assert_true(port > 0);
    snprintf(addr, sizeof addr, "tcp:127.0.0.1:%d", port);
    OK(ravel_connect(&g, addr, NULL));
    char *v;
    size_t vl;
    OK(ravel_get(g, S("via"), &v, &vl));
    assert_memory_equal(v, "unix", 4);
    ravel_free(v);
    ravel_db_close(g);
    /* Addresses a person gets wrong. */
    assert_int_equal(ravel_connect(&g, "localhost:80", NULL), RAVEL_EADDR);
    assert_non_null(strstr(ravel_errmsg(), "expected unix:PATH, tcp:HOST:PORT or tls:HOST:PORT"));
    assert_int_equal(ravel_connect(&g, "tcp:127.0.0.1:99999", NULL), RAVEL_EADDR);
    char longpath[300] = "unix:/";
    memset(longpath + 6, 'x', 200);
    longpath[206] = '\0';
    assert_int_equal(ravel_host_listen(h, longpath), RAVEL_EADDR);
    assert_non_null(strstr(ravel_errmsg(), "at most"));
    ravel_host_free(h);
    assert_int_equal(stat(sun.sun_path, &st), -1); /* removed on close */
    ravel_db_close(db);
    rm_tmpdir(dir);
}

/* A hook that holds one write until the test lets it go: a slow LevelDB
 * call on one connection, as a sync write or a compaction stall would be. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int entered, open;
} gate;

static const char *hold_slow(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    gate *g = ud;
    (void)val, (void)vlen;
    if (klen == 4 && memcmp(key, "slow", 4) == 0) {
        pthread_mutex_lock(&g->mu);
        g->entered = 1;
        pthread_cond_broadcast(&g->cond);
        while (!g->open)
            pthread_cond_wait(&g->cond, &g->mu);
        pthread_mutex_unlock(&g->mu);
    }
    return NULL;
}

static void slow_done(void *ud, int status)
{
    __atomic_store_n((int *)ud, status == RAVEL_OK ? 1 : -1, __ATOMIC_SEQ_CST);
}

static int slow_finished(void *ud)
{
    return __atomic_load_n((int *)ud, __ATOMIC_SEQ_CST) != 0;
}

static void test_slow_call_stalls_only_its_connection(void **state)
{
    (void)state;
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.preput = hold_slow;
    ho.hook_ud = &g;
    pair p;
    pair_open(&p, &ho, NULL);
    /* A second guest on its own connection to the same host. */
    ravel_db *other;
    OK(ravel_guest_new(&other, NULL));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    OK(ravel_host_attach_fd(p.host, sv[0], sv[0]));
    OK(ravel_guest_attach_fd(other, sv[1], sv[1]));
    int slow = 0;
    OK(ravel_put_async(p.guest, S("slow"), S("1"), slow_done, &slow));
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cond, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* While the slow put is held, the other connection is served. */
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "fast%d", i);
        OK(ravel_put(other, S(k), S("v")));
        char *v;
        size_t vl;
        OK(ravel_get(other, S(k), &v, &vl));
        ravel_free(v);
    }
    assert_int_equal(__atomic_load_n(&slow, __ATOMIC_SEQ_CST), 0);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.mu);
    char *v;
    size_t vl;
    OK(ravel_get(p.guest, S("slow"), &v, &vl)); /* in order after the put */
    ravel_free(v);
    wait_until(slow_finished, &slow, "the slow put");
    assert_int_equal(slow, 1);
    ravel_db_close(other);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eight_threads_one_handle),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_bad_frames_close_only_that_connection),
        cmocka_unit_test(test_close_fails_pending_once),
        cmocka_unit_test(test_retry_off_stream_end_fails_pending),
        cmocka_unit_test(test_sync_call_from_callback),
        cmocka_unit_test(test_busy_polling),
        cmocka_unit_test(test_slow_answer_sleeps),
        cmocka_unit_test(test_pipe_pair),
        cmocka_unit_test(test_slow_call_stalls_only_its_connection),
        cmocka_unit_test(test_listen_and_connect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
