/*
 * ravel-bench — the SPEC's standard workloads W1–W6 in one run, for raw
 * LevelDB and for each way ravel reaches a database (a party leader's own
 * operations, a party follower over the unix socket, a guest over TCP
 * loopback), for the Node peers when they are installed (a rave-level
 * follower, a many-level guest), then F1 (failover) with 1 and 10
 * followers. Every figure is printed next to raw LevelDB's and the Node
 * follower's from the same run, so that numbers from a shared machine
 * stay comparable.
 *
 * Processes: this one never opens a database, so it has no threads and
 * may fork at any time (a child forked from a threaded process would
 * inherit LevelDB's and libuv's state without their threads). Each
 * variant gets a fresh directory and, where it needs one, a server child
 * (the party leader of the follower, the host of the TCP guest); the
 * workloads run in a measuring child that sends its results back through
 * a pipe; then a child that only opens the database and scans it reports
 * its peak RSS. The Node variants run tests/interop/bench_node.js, which
 * does the same on its side and prints its results as text lines.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <leveldb/c.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "failover.h"
#include "many.h"
#include "watch.h"
#include "ravel.h"

#define IN_FLIGHT 64   /* pipelining depth of W2 and W4 */
#define BATCH_SIZE 100 /* puts per batch in W6 */
#define DEFAULT_N 100000ULL
#define QUICK_N 10000ULL
#define MAX_N 999999999999999ULL /* the largest index 15 digits can hold */
#define F1_ROUNDS 20
#define DEFAULT_RUNS 3 /* of each C variant, interleaved */
#define MAX_RUNS 15
#define QUICK_F1_ROUNDS 5
#define NODE_SCRIPT RAVEL_INTEROP_DIR "/bench_node.js"

enum { W_PUT_SEQ, W_PUT_PIPE, W_GET_SEQ, W_GET_PIPE, W_SCAN, W_BATCH, W_COUNT };

static const char *const workload_names[W_COUNT] = {
    "W1 put-seq", "W2 put-pipe", "W3 get-seq", "W4 get-pipe", "W5 scan", "W6 batch",
};

enum { V_RAW, V_LEADER, V_FOLLOWER, V_TCP, V_TLS, V_NODE_FOLLOWER, V_NODE_GUEST, V_COUNT };
#define V_LAST_C V_TLS

static const char *const variant_names[V_COUNT] = {
    "raw LevelDB", "ravel leader", "ravel follower", "ravel TCP guest", "ravel TLS guest",
    "Node follower", "Node guest",
};

/* Each variant's directory under the scratch root. */
static const char *const variant_dirs[V_COUNT] = {
    "raw", "leader", "follower", "tcp", "tls", "node-follower", "node-guest",
};

/* The TLS guest's certificates (tests/tls/make-certs.sh, under the scratch
 * root): mutual TLS, as a team exposing a host would run it. */
static char g_certs[4200];

static const char *cert_path(const char *name)
{
    static char buf[4][4300];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", g_certs, name);
    return p;
}

static const int f1_followers[] = {1, 10};
#define F1_SETS (sizeof f1_followers / sizeof f1_followers[0])

typedef struct workload_result {
    double ops_per_s;
    double p50_us, p99_us; /* W1 and W3 only */
    double cpu_us;         /* CPU time (user + system) of the measuring process per op */
    double server_cpu_us;  /* the same for the leader or host process; NAN without one */
} workload_result;

typedef struct variant_result {
    int measured;
    int runs;                   /* how many runs w[] is the median of */
    workload_result w[W_COUNT]; /* for several runs: the run with the median ops/s */
    double lo[W_COUNT], hi[W_COUNT]; /* the slowest and fastest run's ops/s (runs > 1) */
    double scan_rss_kib; /* peak RSS of a process that only opened the database and scanned it */
} variant_result;

/* ------------------------------------------------------------------ */
/* The database under test                                              */
/* ------------------------------------------------------------------ */

/* A database as the workloads see it. put_pipe and get_pipe are NULL
 * where the handle cannot have requests in flight: W2 and W4 then run one
 * operation at a time. */
typedef struct store store;
struct store {
    void (*put)(store *s, uint64_t index);
    void (*get)(store *s, uint64_t index);
    void (*put_pipe)(store *s, uint64_t n);
    void (*get_pipe)(store *s, uint64_t n, uint64_t seed);
    void (*scan)(store *s, uint64_t n);
    void (*write_batch)(store *s, uint64_t first); /* BATCH_SIZE puts from index first */
    void (*close)(store *s);
};

/* ---- raw LevelDB ---- */

typedef struct raw_store {
    store base;
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_writeoptions_t *wopts; /* defaults: sync off, as for ravel */
    leveldb_readoptions_t *ropts;
    leveldb_writebatch_t *batch;
} raw_store;

static void raw_put(store *s, uint64_t index)
{
    raw_store *r = (raw_store *)s;
    char key[KEY_LEN], *err = NULL;
    make_key(key, index);
    leveldb_put(r->db, r->wopts, key, KEY_LEN, value_for(index), VALUE_LEN, &err);
    if (err != NULL)
        die_leveldb("leveldb_put", err);
}

static void raw_get(store *s, uint64_t index)
{
    raw_store *r = (raw_store *)s;
    char key[KEY_LEN], *err = NULL;
    size_t vlen;
    make_key(key, index);
    char *val = leveldb_get(r->db, r->ropts, key, KEY_LEN, &vlen, &err);
    if (err != NULL)
        die_leveldb("leveldb_get", err);
    if (val == NULL)
        die("leveldb_get", "key not found");
    leveldb_free(val);
    if (vlen != VALUE_LEN)
        die("leveldb_get", "value of the wrong length");
}

static void raw_scan(store *s, uint64_t n)
{
    raw_store *r = (raw_store *)s;
    char *err = NULL;
    uint64_t count = 0;
    leveldb_iterator_t *it = leveldb_create_iterator(r->db, r->ropts);
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t klen, vlen;
        leveldb_iter_key(it, &klen);
        leveldb_iter_value(it, &vlen);
        if (klen != KEY_LEN || vlen != VALUE_LEN)
            die("leveldb scan", "entry of the wrong size");
        count++;
    }
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err != NULL)
        die_leveldb("leveldb scan", err);
    if (count != n)
        die("leveldb scan", "entry count differs from N");
}

static void raw_write_batch(store *s, uint64_t first)
{
    raw_store *r = (raw_store *)s;
    char key[KEY_LEN], *err = NULL;
    for (uint64_t i = first; i < first + BATCH_SIZE; i++) {
        make_key(key, i);
        leveldb_writebatch_put(r->batch, key, KEY_LEN, value_for(i), VALUE_LEN);
    }
    leveldb_write(r->db, r->wopts, r->batch, &err);
    if (err != NULL)
        die_leveldb("leveldb_write", err);
    leveldb_writebatch_clear(r->batch);
}

static void raw_close(store *s)
{
    raw_store *r = (raw_store *)s;
    leveldb_close(r->db);
    leveldb_writebatch_destroy(r->batch);
    leveldb_readoptions_destroy(r->ropts);
    leveldb_writeoptions_destroy(r->wopts);
    leveldb_options_destroy(r->opts);
    free(r);
}

static store *raw_open(const char *dir)
{
    char *err = NULL;
    raw_store *r = calloc(1, sizeof *r);
    if (r == NULL)
        die("raw_open", "out of memory");
    /* LevelDB cannot have two requests in flight from one thread. */
    r->base = (store){raw_put, raw_get, NULL, NULL, raw_scan, raw_write_batch, raw_close};
    r->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(r->opts, 1);
    r->wopts = leveldb_writeoptions_create();
    r->ropts = leveldb_readoptions_create();
    r->batch = leveldb_writebatch_create();
    r->db = leveldb_open(r->opts, dir, &err);
    if (err != NULL)
        die_leveldb("leveldb_open", err);
    return &r->base;
}

/* ---- ravel: leader, follower, guest ---- */

typedef struct ravel_store {
    store base;
    ravel_db *db;
    ravel_batch *batch;
} ravel_store;

/* Bounds the number of asynchronous requests in flight. Callbacks run on
 * the handle's I/O thread, so the count is shared under a mutex. */
typedef struct window {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    int status; /* first failure seen by a callback, else RAVEL_OK */
} window;

/* Static initialisers: nothing to fail, nothing to destroy. */
#define WINDOW_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, RAVEL_OK}

/* Wait for a free slot and take it; returns the first failure so far,
 * in which case no slot is taken and the caller stops submitting. */
static int window_acquire(window *w)
{
    int status;
    pthread_mutex_lock(&w->mu);
    while (w->in_flight >= IN_FLIGHT && w->status == RAVEL_OK)
        pthread_cond_wait(&w->cv, &w->mu);
    status = w->status;
    if (status == RAVEL_OK)
        w->in_flight++;
    pthread_mutex_unlock(&w->mu);
    return status;
}

static void window_release(window *w, int status)
{
    pthread_mutex_lock(&w->mu);
    if (status != RAVEL_OK && w->status == RAVEL_OK)
        w->status = status;
    w->in_flight--;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait until every request has answered; returns the first failure. */
static int window_drain(window *w)
{
    int status;
    pthread_mutex_lock(&w->mu);
    while (w->in_flight > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    status = w->status;
    pthread_mutex_unlock(&w->mu);
    return status;
}

static void on_put(void *ud, int status)
{
    window_release(ud, status);
}

static void on_get(void *ud, int status, const char *val, size_t vlen)
{
    (void)val;
    /* A wrong length is as much a failure as an error code. */
    if (status == RAVEL_OK && vlen != VALUE_LEN)
        status = RAVEL_EPROTO;
    window_release(ud, status);
}

static void rv_put(store *s, uint64_t index)
{
    char key[KEY_LEN];
    make_key(key, index);
    int rc = ravel_put(((ravel_store *)s)->db, key, KEY_LEN, value_for(index), VALUE_LEN);
    if (rc != RAVEL_OK)
        die_ravel("ravel_put", rc);
}

static void rv_get(store *s, uint64_t index)
{
    char key[KEY_LEN], *val;
    size_t vlen;
    make_key(key, index);
    int rc = ravel_get(((ravel_store *)s)->db, key, KEY_LEN, &val, &vlen);
    if (rc != RAVEL_OK)
        die_ravel("ravel_get", rc);
    ravel_free(val);
    if (vlen != VALUE_LEN)
        die("ravel_get", "value of the wrong length");
}

static void rv_put_pipe(store *s, uint64_t n)
{
    ravel_db *db = ((ravel_store *)s)->db;
    char key[KEY_LEN];
    window w = WINDOW_INIT;
    int rc;
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = window_acquire(&w)) != RAVEL_OK)
            break;
        make_key(key, i);
        rc = ravel_put_async(db, key, KEY_LEN, value_for(i), VALUE_LEN, on_put, &w);
        if (rc != RAVEL_OK)
            die_ravel("ravel_put_async", rc);
    }
    rc = window_drain(&w);
    if (rc != RAVEL_OK)
        die_async("ravel_put_async callback", rc);
}

static void rv_get_pipe(store *s, uint64_t n, uint64_t seed)
{
    ravel_db *db = ((ravel_store *)s)->db;
    char key[KEY_LEN];
    uint64_t state = seed;
    window w = WINDOW_INIT;
    int rc;
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = window_acquire(&w)) != RAVEL_OK)
            break;
        make_key(key, next_random(&state) % n);
        rc = ravel_get_async(db, key, KEY_LEN, on_get, &w);
        if (rc != RAVEL_OK)
            die_ravel("ravel_get_async", rc);
    }
    rc = window_drain(&w);
    if (rc != RAVEL_OK)
        die_async("ravel_get_async callback", rc);
}

static void rv_scan(store *s, uint64_t n)
{
    ravel_iter *it;
    uint64_t count = 0;
    int rc = ravel_iter_new(((ravel_store *)s)->db, NULL, &it);
    if (rc != RAVEL_OK)
        die_ravel("ravel_iter_new", rc);
    for (;;) {
        const char *key, *val;
        size_t klen, vlen;
        rc = ravel_iter_next(it, &key, &klen, &val, &vlen);
        if (rc == RAVEL_END)
            break;
        if (rc != RAVEL_OK)
            die_ravel("ravel_iter_next", rc);
        if (klen != KEY_LEN || vlen != VALUE_LEN)
            die("ravel scan", "entry of the wrong size");
        count++;
    }
    ravel_iter_free(it);
    if (count != n)
        die("ravel scan", "entry count differs from N");
}

static void rv_write_batch(store *s, uint64_t first)
{
    ravel_store *r = (ravel_store *)s;
    char key[KEY_LEN];
    int rc;
    for (uint64_t i = first; i < first + BATCH_SIZE; i++) {
        make_key(key, i);
        if ((rc = ravel_batch_put(r->batch, key, KEY_LEN, value_for(i), VALUE_LEN)) != RAVEL_OK)
            die_ravel("ravel_batch_put", rc);
    }
    if ((rc = ravel_write(r->db, r->batch)) != RAVEL_OK)
        die_ravel("ravel_write", rc);
    ravel_batch_clear(r->batch);
}

static void rv_close(store *s)
{
    ravel_store *r = (ravel_store *)s;
    ravel_db_close(r->db);
    ravel_batch_free(r->batch);
    free(r);
}

/* The leader and the follower open the variant's directory as a party
 * and must get the role they are named for; the TCP guest connects to
 * `address`. All with default options: the configuration users get. */
static store *rv_open(int variant, const char *dir, const char *address)
{
    int rc;
    ravel_store *r = calloc(1, sizeof *r);
    if (r == NULL || (r->batch = ravel_batch_new()) == NULL)
        die("rv_open", "out of memory");
    r->base = (store){rv_put, rv_get, rv_put_pipe, rv_get_pipe, rv_scan, rv_write_batch, rv_close};
    if (variant == V_TCP || variant == V_TLS) {
        ravel_options o;
        ravel_options_init(&o);
        if (variant == V_TLS) {
            o.tls_ca_file = cert_path("ca.crt");
            o.tls_cert_file = cert_path("writer.crt");
            o.tls_key_file = cert_path("writer.key");
        }
        if ((rc = ravel_connect(&r->db, address, &o)) != RAVEL_OK)
            die_ravel("ravel_connect", rc);
        return &r->base;
    }
    if ((rc = ravel_open(&r->db, dir, bench_options())) != RAVEL_OK)
        die_ravel("ravel_open", rc);
    int want = variant == V_LEADER ? RAVEL_ROLE_LEADER : RAVEL_ROLE_FOLLOWER;
    if (ravel_db_role(r->db) != want)
        die("ravel_open", want == RAVEL_ROLE_LEADER ? "did not lead" : "did not follow");
    return &r->base;
}

static store *open_store(int variant, const char *dir, const char *address)
{
    return variant == V_RAW ? raw_open(dir) : rv_open(variant, dir, address);
}

/* ------------------------------------------------------------------ */
/* Workloads                                                            */
/* ------------------------------------------------------------------ */

/* What a workload's figures are computed from. */
typedef struct clocks {
    int has_server;
    clockid_t server; /* the server process's CPU clock */
} clocks;

typedef struct reading {
    double wall, cpu, server_cpu;
} reading;

static reading read_clocks(const clocks *c)
{
    reading r;
    r.server_cpu = c->has_server ? clock_seconds(c->server) : 0;
    r.cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID); /* all threads: user + system */
    r.wall = clock_seconds(CLOCK_MONOTONIC);
    return r;
}

static void finish(const clocks *c, reading start, uint64_t ops, workload_result *out)
{
    reading end = read_clocks(c);
    out->ops_per_s = (double)ops / (end.wall - start.wall);
    out->cpu_us = (end.cpu - start.cpu) * 1e6 / (double)ops;
    out->server_cpu_us =
        c->has_server ? (end.server_cpu - start.server_cpu) * 1e6 / (double)ops : NAN;
}

/* Run op on n keys, one at a time — in order, or drawn from the xorshift
 * sequence of `seed` when it is not 0 — and when lat is not NULL, store
 * each operation's latency there in microseconds. */
static void one_at_a_time(store *s, void (*op)(store *, uint64_t), uint64_t n, uint64_t seed,
                          double *lat)
{
    uint64_t state = seed;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t index = seed != 0 ? next_random(&state) % n : i;
        if (lat == NULL) {
            op(s, index);
            continue;
        }
        uint64_t t0 = now_ns();
        op(s, index);
        lat[i] = (double)(now_ns() - t0) * 1e-3;
    }
}

static void latency_stats(double *lat, uint64_t n, workload_result *out)
{
    sort_doubles(lat, n);
    out->p50_us = percentile(lat, n, 0.5);
    out->p99_us = percentile(lat, n, 0.99);
}

/* Run the workloads on s, each measured into out[]: all six when `last`
 * is W_BATCH, W1–W5 when it is W_SCAN. */
static void run_workloads(store *s, uint64_t n, const clocks *c, workload_result out[W_COUNT],
                          int last)
{
    uint64_t batches = n / BATCH_SIZE;
    double *lat = malloc(n * sizeof *lat);
    reading t;
    if (lat == NULL)
        die("latency samples", "out of memory");

    t = read_clocks(c);
    one_at_a_time(s, s->put, n, 0, lat);
    finish(c, t, n, &out[W_PUT_SEQ]);
    latency_stats(lat, n, &out[W_PUT_SEQ]);

    t = read_clocks(c);
    if (s->put_pipe != NULL)
        s->put_pipe(s, n);
    else
        one_at_a_time(s, s->put, n, 0, NULL);
    finish(c, t, n, &out[W_PUT_PIPE]);

    t = read_clocks(c);
    one_at_a_time(s, s->get, n, GET_SEQ_SEED, lat);
    finish(c, t, n, &out[W_GET_SEQ]);
    latency_stats(lat, n, &out[W_GET_SEQ]);

    t = read_clocks(c);
    if (s->get_pipe != NULL)
        s->get_pipe(s, n, GET_PIPE_SEED);
    else
        one_at_a_time(s, s->get, n, GET_PIPE_SEED, NULL);
    finish(c, t, n, &out[W_GET_PIPE]);

    t = read_clocks(c);
    s->scan(s, n);
    finish(c, t, n, &out[W_SCAN]);
    if (last == W_SCAN) {
        free(lat);
        return;
    }

    t = read_clocks(c);
    for (uint64_t b = 0; b < batches; b++)
        s->write_batch(s, b * BATCH_SIZE);
    finish(c, t, batches * BATCH_SIZE, &out[W_BATCH]);

    free(lat);
}

/* Peak resident set size of this process so far, in KiB (VmHWM). */
static double peak_rss_kib(void)
{
    char line[256];
    double kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        die("/proc/self/status", strerror(errno));
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "VmHWM: %lf kB", &kib) == 1)
            break;
    }
    fclose(f);
    if (kib < 0)
        die("/proc/self/status", "no VmHWM line");
    return kib;
}

/* ------------------------------------------------------------------ */
/* Processes                                                            */
/* ------------------------------------------------------------------ */

/* Runs in the server child: holds `dir` as the party leader (for the
 * follower variant) or serves it on TCP loopback (for the TCP guest);
 * once it serves, writes the TCP port (0 for none) to ready_fd; stops on
 * SIGTERM. Never returns. */
static void server_main(int variant, const char *dir, int ready_fd)
{
    sigset_t term;
    ravel_db *db;
    ravel_host *host = NULL;
    int rc, sig, port = 0;

    /* Blocked before ravel starts its threads, which inherit the mask, so
     * that the signal is left pending for sigwait() below. */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);

    if (variant == V_FOLLOWER) {
        if ((rc = ravel_open(&db, dir, bench_options())) != RAVEL_OK)
            die_ravel("leader process: ravel_open", rc);
        if (ravel_db_role(db) != RAVEL_ROLE_LEADER)
            die("leader process", "did not lead");
    } else {
        if ((rc = ravel_open_local(&db, dir, NULL)) != RAVEL_OK)
            die_ravel("host process: ravel_open_local", rc);
        ravel_host_options ho;
        ravel_host_options_init(&ho);
        if (variant == V_TLS) {
            ho.tls_cert_file = cert_path("host.crt");
            ho.tls_key_file = cert_path("host.key");
            ho.tls_ca_file = cert_path("ca.crt");
        }
        if ((rc = ravel_host_new(&host, db, &ho)) != RAVEL_OK)
            die_ravel("host process: ravel_host_new", rc);
        if ((rc = ravel_host_listen(host, variant == V_TLS ? "tls:127.0.0.1:0"
                                                            : "tcp:127.0.0.1:0")) != RAVEL_OK)
            die_ravel("host process: ravel_host_listen", rc);
        port = ravel_host_port(host);
    }
    write_full(ready_fd, &port, sizeof port);
    close(ready_fd);

    if (sigwait(&term, &sig) != 0)
        _exit(1);
    ravel_host_free(host);
    ravel_db_close(db);
    _exit(0);
}

/* Fork the server of `variant` and wait until it serves; returns its TCP
 * port (0 for none). */
static int start_server(int variant, const char *dir)
{
    int fd, port;

    g_server = fork_piped(&fd);
    if (g_server == 0)
        server_main(variant, dir, fd);
    /* End of file means the child failed (and said why on stderr). */
    size_t got = read_full(fd, &port, sizeof port);
    close(fd);
    if (got != sizeof port)
        die(variant_names[variant], "server process failed to start");
    return port;
}

static void stop_server(void)
{
    kill(g_server, SIGTERM);
    int status = reap(g_server);
    g_server = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("server process", "did not shut down cleanly");
}

enum { JOB_WORKLOADS, JOB_SCAN };

/* Runs in the worker child: opens the variant's store and runs W1–W6, or
 * only W5 to measure the peak RSS of a scan; writes a variant_result to
 * fd. Never returns. */
static void worker_main(int variant, int job, const char *dir, const char *address, uint64_t n,
                        int fd)
{
    variant_result res;
    clocks c = {0};
    memset(&res, 0, sizeof res);
    store *s = open_store(variant, dir, address);
    if (job == JOB_WORKLOADS) {
        c.has_server = g_server > 0 && clock_getcpuclockid(g_server, &c.server) == 0;
        run_workloads(s, n, &c, res.w, W_BATCH);
    } else {
        s->scan(s, n);
        res.scan_rss_kib = peak_rss_kib();
    }
    s->close(s);
    write_full(fd, &res, sizeof res);
    _exit(0);
}

/* Run one job of `variant` in a worker child and return its results. */
static variant_result run_worker(int variant, int job, const char *dir, const char *address,
                                 uint64_t n)
{
    int fd, status = 0;
    variant_result res;

    g_worker = fork_piped(&fd);
    if (g_worker == 0)
        worker_main(variant, job, dir, address, n, fd);

    /* The result fits in the pipe's buffer, so the worker can exit before
     * we read it. A server that dies first voids the run (and a guest
     * with retry on would wait for it forever). */
    for (;;) {
        pid_t pid = wait(&status);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0)
            die("wait", strerror(errno));
        if (pid == g_worker)
            break;
        if (pid == g_server) {
            g_server = -1;
            die(variant_names[variant], "server process died during the run");
        }
    }
    g_worker = -1;
    size_t got = read_full(fd, &res, sizeof res);
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != sizeof res)
        die(variant_names[variant], "measuring process failed");
    return res;
}

static void run_c_variant(int variant, uint64_t n, variant_result *out)
{
    char dir[sizeof g_root + 32], address[64];
    snprintf(dir, sizeof dir, "%s/%s", g_root, variant_dirs[variant]);
    fprintf(stderr, "ravel-bench: %s ...\n", variant_names[variant]);

    int port = variant == V_FOLLOWER || variant == V_TCP || variant == V_TLS
                   ? start_server(variant, dir)
                   : 0;
    snprintf(address, sizeof address, "%s:127.0.0.1:%d", variant == V_TLS ? "tls" : "tcp", port);
    *out = run_worker(variant, JOB_WORKLOADS, dir, address, n);
    out->scan_rss_kib = run_worker(variant, JOB_SCAN, dir, address, n).scan_rss_kib;
    if (g_server > 0)
        stop_server();
    remove_tree(dir); /* the next run starts from nothing again */
    out->measured = 1;
}

static int compare_ops(const void *a, const void *b)
{
    double x = ((const workload_result *)a)->ops_per_s, y = ((const workload_result *)b)->ops_per_s;
    return (x > y) - (x < y);
}

/* One result from k runs of a variant: for each workload, the figures of
 * the run with the median ops/s (the lower middle for even k), and the
 * range of ops/s; the highest peak RSS. */
static variant_result combine_runs(const variant_result *runs, int k)
{
    variant_result out = runs[0];
    out.runs = k;
    for (int w = 0; w < W_COUNT; w++) {
        workload_result col[MAX_RUNS];
        for (int i = 0; i < k; i++)
            col[i] = runs[i].w[w];
        qsort(col, (size_t)k, sizeof col[0], compare_ops);
        out.w[w] = col[(k - 1) / 2];
        out.lo[w] = col[0].ops_per_s;
        out.hi[w] = col[k - 1].ops_per_s;
    }
    for (int i = 0; i < k; i++) {
        if (runs[i].scan_rss_kib > out.scan_rss_kib)
            out.scan_rss_kib = runs[i].scan_rss_kib;
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* The floor: a round trip over a socket                                */
/* ------------------------------------------------------------------ */

#define PING_LEN 128 /* about the frame of a W1 put: tag, id, key, value */
#define PING_POLL_US 50 /* ravel's default busy_poll_us */
#define PING_POLL_TEXT "50 us"
_Static_assert(PING_LEN <= sizeof g_filler, "the message is cut from g_filler");

typedef struct ping_store {
    store base; /* only for one_at_a_time(): no operation of its own */
    int fd;
    uint64_t poll_ns;
    int hot;
    char msg[PING_LEN];
} ping_store;

/* read_full, after reading in a loop without blocking for up to poll_ns —
 * as ravel's busy-polling does, adaptively: only while *hot, which says
 * whether this end's previous wait was shorter than poll_ns. */
static size_t read_polling(int fd, void *buf, size_t len, uint64_t poll_ns, int *hot)
{
    size_t got = 0;
    uint64_t start = now_ns();
    while (poll_ns && *hot && got < len && now_ns() - start < poll_ns) {
        ssize_t r = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
        if (r == 0)
            return got;
        if (r > 0)
            got += (size_t)r;
    }
    got += read_full(fd, (char *)buf + got, len - got);
    *hot = now_ns() - start < poll_ns;
    return got;
}

static void ping(store *s, uint64_t index)
{
    ping_store *p = (ping_store *)s;
    (void)index;
    write_full(p->fd, p->msg, sizeof p->msg);
    if (read_polling(p->fd, p->msg, sizeof p->msg, p->poll_ns, &p->hot) != sizeof p->msg)
        die("ping-pong", "the echo process ended");
}

/* A unix socketpair and a child process (g_worker) on its other end: returns
 * 0 in the child and 1 in the parent, with *fd this process's end. */
static int fork_peer(int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair", strerror(errno));
    fflush(NULL);
    g_worker = fork();
    if (g_worker < 0)
        die("fork", strerror(errno));
    close(g_worker == 0 ? sv[0] : sv[1]);
    *fd = g_worker == 0 ? sv[1] : sv[0];
    return g_worker != 0;
}

/* Close our end of fork_peer's socketpair (end of file: the child leaves)
 * and fail the run, saying `what`, unless the child exited with 0. */
static void end_peer(int fd, const char *what)
{
    close(fd);
    int status = reap(g_worker);
    g_worker = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die(what, "the other process failed");
}

/* The limit of any request made one at a time over a socket: n round
 * trips of PING_LEN bytes between this process and a child that echoes
 * them over a unix socketpair, with nothing else on the way (no threads,
 * no framing, no database); both ends sleep in read(), or (poll_us > 0)
 * busy-poll first, as ravel does. The echo child is the "server" here. */
static workload_result run_pingpong(uint64_t n, int poll_us)
{
    char msg[PING_LEN];
    ping_store p = {.fd = -1};
    clocks c = {0};
    workload_result out;
    double *lat = malloc(n * sizeof *lat);

    fprintf(stderr, "ravel-bench: unix socket ping-pong ...\n");
    if (lat == NULL)
        die("latency samples", "out of memory");
    if (!fork_peer(&p.fd)) {
        int hot = 1;
        while (read_polling(p.fd, msg, sizeof msg, (uint64_t)poll_us * 1000, &hot) == sizeof msg)
            write_full(p.fd, msg, sizeof msg);
        _exit(0);
    }
    p.poll_ns = (uint64_t)poll_us * 1000;
    p.hot = 1;
    memcpy(p.msg, g_filler, sizeof p.msg);

    c.has_server = clock_getcpuclockid(g_worker, &c.server) == 0;
    reading t = read_clocks(&c);
    one_at_a_time(&p.base, ping, n, 0, lat);
    finish(&c, t, n, &out);
    latency_stats(lat, n, &out);
    free(lat);

    end_peer(p.fd, "ping-pong");
    return out;
}

/* ------------------------------------------------------------------ */
/* The floor of W6: each batch written by another process               */
/* ------------------------------------------------------------------ */

#define FLOOR_RECORD (KEY_LEN + VALUE_LEN)
#define FLOOR_BATCH (BATCH_SIZE * FLOOR_RECORD) /* bytes of one batch message */
#define FLOOR_RUNS 5 /* odd: the median is one run */

typedef struct floor_store {
    int fd;
    uint64_t poll_ns;
    int hot;
    char buf[FLOOR_BATCH];
} floor_store;

/* W6's batch, the keys and values packed with nothing else, sent to the
 * writer; returns when the writer says LevelDB has it. */
static void floor_write_batch(floor_store *f, uint64_t first)
{
    char ack;
    for (uint64_t i = 0; i < BATCH_SIZE; i++) {
        char *rec = f->buf + i * FLOOR_RECORD;
        make_key(rec, first + i);
        memcpy(rec + KEY_LEN, value_for(first + i), VALUE_LEN);
    }
    write_full(f->fd, f->buf, sizeof f->buf);
    if (read_polling(f->fd, &ack, 1, f->poll_ns, &f->hot) != 1)
        die("batch floor", "the writer process ended");
}

/* The writer child: raw LevelDB in dir, brought to the state in which W6
 * finds every variant's database by running W1–W5 on it first, untimed
 * (after the gets, LevelDB's writes cost more: bench/RESULTS.md); then a
 * ready byte on fd; then, until end of file, each batch message read
 * from fd becomes one LevelDB write, answered with one byte. Never
 * returns. */
static void floor_writer(int fd, const char *dir, uint64_t n, uint64_t poll_ns)
{
    static char buf[FLOOR_BATCH];
    static workload_result history[W_COUNT];
    raw_store *r = (raw_store *)raw_open(dir);
    clocks none = {0};
    char *err = NULL;
    int hot = 1;
    run_workloads(&r->base, n, &none, history, W_SCAN);
    write_full(fd, "", 1);
    while (read_polling(fd, buf, sizeof buf, poll_ns, &hot) == sizeof buf) {
        for (size_t i = 0; i < BATCH_SIZE; i++) {
            const char *rec = buf + i * FLOOR_RECORD;
            leveldb_writebatch_put(r->batch, rec, KEY_LEN, rec + KEY_LEN, VALUE_LEN);
        }
        leveldb_write(r->db, r->wopts, r->batch, &err);
        if (err != NULL)
            die_leveldb("batch floor: leveldb_write", err);
        leveldb_writebatch_clear(r->batch);
        write_full(fd, "", 1);
    }
    raw_close(&r->base);
    _exit(0);
}

/* One run of the W6 floor (below) with a fresh writer, in `dir`. */
static workload_result batch_floor_once(uint64_t n, int poll_us, const char *dir)
{
    char ready;
    floor_store *f = calloc(1, sizeof *f);
    clocks c = {0};
    workload_result out = {0};
    uint64_t batches = n / BATCH_SIZE;

    if (f == NULL)
        die("batch floor", "out of memory");
    if (!fork_peer(&f->fd))
        floor_writer(f->fd, dir, n, (uint64_t)poll_us * 1000);
    f->poll_ns = (uint64_t)poll_us * 1000;
    f->hot = 1;
    if (read_full(f->fd, &ready, 1) != 1)
        die("batch floor", "the writer process failed to start");

    c.has_server = clock_getcpuclockid(g_worker, &c.server) == 0;
    reading t = read_clocks(&c);
    for (uint64_t b = 0; b < batches; b++)
        floor_write_batch(f, b * BATCH_SIZE);
    finish(&c, t, batches * BATCH_SIZE, &out);
    out.p50_us = out.p99_us = NAN;

    end_peer(f->fd, "batch floor");
    free(f);
    return out;
}

/* W6 for a bare design that writes in another process: W6 run
 * against a child that holds raw LevelDB and gets each batch over a unix
 * socketpair as bare bytes (no framing, no threads, no parsing beyond
 * fixed-size records), sleeping in read() or (poll_us > 0) busy-polling
 * first as ravel does. Measures the batches only, not the writer's
 * replay of W1–W5. Where the scheduler puts the two processes moves a run
 * a lot on the benchmark VM, so this is the median of FLOOR_RUNS runs,
 * each with fresh processes and a fresh directory; *lo and *hi get the
 * slowest and fastest run. */
static workload_result run_batch_floor(uint64_t n, int poll_us, double *lo, double *hi)
{
    workload_result runs[FLOOR_RUNS];
    fprintf(stderr, "ravel-bench: W6 floor, %d runs ...\n", FLOOR_RUNS);
    for (int i = 0; i < FLOOR_RUNS; i++) {
        char dir[sizeof g_root + 32];
        snprintf(dir, sizeof dir, "%s/floor-w6-%d-%d", g_root, poll_us, i);
        runs[i] = batch_floor_once(n, poll_us, dir);
        remove_tree(dir);
    }
    qsort(runs, FLOOR_RUNS, sizeof runs[0], compare_ops);
    *lo = runs[0].ops_per_s;
    *hi = runs[FLOOR_RUNS - 1].ops_per_s;
    return runs[FLOOR_RUNS / 2];
}

/* ------------------------------------------------------------------ */
/* Node                                                                 */
/* ------------------------------------------------------------------ */

/* Node on PATH and the interop tests' npm packages installed. On success,
 * version holds `node --version`. */
static int node_available(char *version, size_t size)
{
    char *argv[] = {"node", "--version", NULL};
    if (access(RAVEL_INTEROP_DIR "/node_modules/rave-level/package.json", R_OK) != 0 ||
        access(RAVEL_INTEROP_DIR "/node_modules/many-level/package.json", R_OK) != 0 ||
        spawn_capture(argv, version, size) != 0)
        return 0;
    version[strcspn(version, "\n")] = '\0';
    return 1;
}

/* Whether the Node variants run (not with --no-node); note says which
 * Node, or why not. */
static int node_check(int use_node, char *note, size_t size)
{
    char version[64];
    if (!use_node) {
        snprintf(note, size, "skipped (--no-node)");
        return 0;
    }
    if (!node_available(version, sizeof version)) {
        snprintf(note, size, "skipped (no node on PATH, or no npm packages in tests/interop)");
        fprintf(stderr, "ravel-bench: Node variants %s\n", note);
        return 0;
    }
    snprintf(note, size, "%s, rave-level 1.0.0, many-level 2.0.0", version);
    return 1;
}

/* bench_node.js prints one line per workload, "W<k> <ops/s> <p50 us>
 * <p99 us> <cpu us/op> <server cpu us/op>", then "rss <KiB>". */
static void parse_node(char *text, variant_result *res)
{
    unsigned seen = 0;
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        int w;
        workload_result r;
        if (sscanf(line, "W%d %lf %lf %lf %lf %lf", &w, &r.ops_per_s, &r.p50_us, &r.p99_us,
                   &r.cpu_us, &r.server_cpu_us) == 6 &&
            w >= 1 && w <= W_COUNT) {
            res->w[w - 1] = r;
            seen |= 1u << (w - 1);
        } else if (sscanf(line, "rss %lf", &res->scan_rss_kib) == 1) {
            seen |= 1u << W_COUNT;
        } else {
            die("bench_node.js", "unexpected output");
        }
    }
    if (seen != (1u << (W_COUNT + 1)) - 1)
        die("bench_node.js", "incomplete output");
    res->measured = 1;
    res->runs = 1;
}

static void run_node_variant(int variant, uint64_t n, variant_result *out)
{
    char dir[sizeof g_root + 32], count[32], text[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_root, variant_dirs[variant]);
    snprintf(count, sizeof count, "%llu", (unsigned long long)n);
    char *argv[] = {"node", NODE_SCRIPT, variant == V_NODE_FOLLOWER ? "follower" : "guest", dir,
                    count, NULL};
    fprintf(stderr, "ravel-bench: %s ...\n", variant_names[variant]);
    if (spawn_capture(argv, text, sizeof text) != 0)
        die(NODE_SCRIPT, "failed");
    parse_node(text, out);
}

/* ------------------------------------------------------------------ */
/* G1: gets of absent keys, with and without a bloom filter             */
/* ------------------------------------------------------------------ */

/* The database holds MISS_FACTOR × N entries (at N = 100,000 about 47 MB
 * of tables, against LevelDB's default block cache of 8 MiB), made and
 * fully compacted by raw LevelDB so that every variant reads one shape.
 * Each get asks for key(i) + "~", which sorts between key(i) and
 * key(i + 1): inside some table's range, so only a filter (or reading the
 * block) tells it is absent. */
#define MISS_FACTOR 4
#define MISS_SEED 0xA0761D6478BD642FULL
#define BLOOM_BITS 10

enum { G_RAW, G_FOLLOWER, G_VARIANTS };
static const char *const miss_variant_names[G_VARIANTS] = {"raw LevelDB", "ravel follower"};

typedef struct miss_result {
    workload_result seq;  /* one at a time, with p50/p99 */
    workload_result pipe; /* IN_FLIGHT at a time (follower); NAN ops for raw */
} miss_result;

static void absent_key(char key[KEY_LEN + 1], uint64_t index)
{
    make_key(key, index);
    key[KEY_LEN] = '~';
}

static leveldb_options_t *miss_options(int bloom, leveldb_filterpolicy_t **policy)
{
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    *policy = bloom ? leveldb_filterpolicy_create_bloom(BLOOM_BITS) : NULL;
    if (*policy)
        leveldb_options_set_filter_policy(o, *policy);
    return o;
}

/* What run_child() hands a job of G1 or C1: a directory, a count and a
 * flag, whose meanings are the job's. */
typedef struct dir_job {
    const char *dir;
    uint64_t n;
    int flag;
} dir_job;

/* Fork a child that runs fn(dir, arg) and exits 0; wait for it. */
static void in_child(const char *what, void (*fn)(const char *, uint64_t, int), const char *dir,
                     uint64_t arg, int flag)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        fn(dir, arg, flag);
        _exit(0);
    }
    g_worker = pid;
    int status = reap(pid);
    g_worker = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die(what, "child process failed");
}

static void build_miss_db(const char *dir, uint64_t entries, int bloom)
{
    leveldb_filterpolicy_t *policy;
    leveldb_options_t *o = miss_options(bloom, &policy);
    char *err = NULL, key[KEY_LEN];
    leveldb_t *db = leveldb_open(o, dir, &err);
    if (err != NULL)
        die_leveldb("G1: leveldb_open", err);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    for (uint64_t i = 0; i < entries; i++) {
        make_key(key, i);
        leveldb_writebatch_put(b, key, KEY_LEN, value_for(i), VALUE_LEN);
        if ((i + 1) % 1000 == 0 || i + 1 == entries) {
            leveldb_write(db, wo, b, &err);
            if (err != NULL)
                die_leveldb("G1: leveldb_write", err);
            leveldb_writebatch_clear(b);
        }
    }
    leveldb_compact_range(db, NULL, 0, NULL, 0);
    leveldb_writebatch_destroy(b);
    leveldb_writeoptions_destroy(wo);
    leveldb_close(db);
    leveldb_options_destroy(o);
    if (policy)
        leveldb_filterpolicy_destroy(policy);
}

static void miss_stats(double *lat, uint64_t n, workload_result *out)
{
    sort_doubles(lat, n);
    out->p50_us = percentile(lat, n, 0.5);
    out->p99_us = percentile(lat, n, 0.99);
}

/* The measuring child of raw LevelDB: n absent gets, one at a time. */
static void miss_raw(const void *arg, int fd)
{
    const dir_job *job = arg;
    const char *dir = job->dir;
    uint64_t n = job->n;
    int bloom = job->flag;
    leveldb_filterpolicy_t *policy;
    leveldb_options_t *o = miss_options(bloom, &policy);
    char *err = NULL, key[KEY_LEN + 1];
    leveldb_t *db = leveldb_open(o, dir, &err);
    if (err != NULL)
        die_leveldb("G1: leveldb_open", err);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    double *lat = malloc(n * sizeof *lat);
    if (!lat)
        die("G1", "out of memory");
    miss_result res;
    clocks c = {0};
    uint64_t state = MISS_SEED, entries = n * MISS_FACTOR;
    reading start = read_clocks(&c);
    for (uint64_t i = 0; i < n; i++) {
        size_t vlen;
        absent_key(key, next_random(&state) % entries);
        uint64_t t0 = now_ns();
        char *val = leveldb_get(db, ro, key, KEY_LEN + 1, &vlen, &err);
        lat[i] = (double)(now_ns() - t0) * 1e-3;
        if (err != NULL)
            die_leveldb("G1: leveldb_get", err);
        if (val != NULL)
            die("G1: leveldb_get", "an absent key was found");
    }
    finish(&c, start, n, &res.seq);
    miss_stats(lat, n, &res.seq);
    res.pipe = (workload_result){NAN, NAN, NAN, NAN, NAN};
    free(lat);
    leveldb_readoptions_destroy(ro);
    leveldb_close(db);
    leveldb_options_destroy(o);
    if (policy)
        leveldb_filterpolicy_destroy(policy);
    write_full(fd, &res, sizeof res);
}

static void on_miss(void *ud, int status, const char *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    window_release(ud, status == RAVEL_ENOTFOUND ? RAVEL_OK
                                                 : status == RAVEL_OK ? RAVEL_EPROTO : status);
}

/* The measuring child of the follower: the same gets one at a time, then
 * IN_FLIGHT at a time. It opens with default options: it follows. */
static void miss_follower(const void *arg, int fd)
{
    const dir_job *job = arg;
    const char *dir = job->dir;
    uint64_t n = job->n;
    ravel_db *db;
    int rc = ravel_open(&db, dir, bench_options());
    if (rc != RAVEL_OK)
        die_ravel("G1: ravel_open", rc);
    if (ravel_db_role(db) != RAVEL_ROLE_FOLLOWER)
        die("G1", "the measuring process did not follow");
    double *lat = malloc(n * sizeof *lat);
    if (!lat)
        die("G1", "out of memory");
    miss_result res;
    clocks c = {0};
    c.has_server = clock_getcpuclockid(g_server, &c.server) == 0;
    uint64_t state = MISS_SEED, entries = n * MISS_FACTOR;
    char key[KEY_LEN + 1], *val;
    size_t vlen;
    reading start = read_clocks(&c);
    for (uint64_t i = 0; i < n; i++) {
        absent_key(key, next_random(&state) % entries);
        uint64_t t0 = now_ns();
        rc = ravel_get(db, key, KEY_LEN + 1, &val, &vlen);
        lat[i] = (double)(now_ns() - t0) * 1e-3;
        if (rc != RAVEL_ENOTFOUND)
            die_ravel("G1: ravel_get of an absent key", rc);
    }
    finish(&c, start, n, &res.seq);
    miss_stats(lat, n, &res.seq);
    free(lat);
    window w = WINDOW_INIT;
    state = MISS_SEED;
    start = read_clocks(&c);
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = window_acquire(&w)) != RAVEL_OK)
            break;
        absent_key(key, next_random(&state) % entries);
        rc = ravel_get_async(db, key, KEY_LEN + 1, on_miss, &w);
        if (rc != RAVEL_OK)
            die_ravel("G1: ravel_get_async", rc);
    }
    rc = window_drain(&w);
    if (rc != RAVEL_OK)
        die_async("G1: ravel_get_async callback", rc);
    finish(&c, start, n, &res.pipe);
    res.pipe.p50_us = res.pipe.p99_us = NAN;
    ravel_db_close(db);
    write_full(fd, &res, sizeof res);
}

/* The follower's leader: opens the database with (or without) a filter,
 * explicitly, since raw LevelDB made it and left no ravel-options. */
static void miss_leader_main(const char *dir, int bloom, int ready_fd)
{
    sigset_t term;
    int sig, rc, zero = 0;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    ravel_options o = *bench_options();
    o.bloom_bits_per_key = bloom ? BLOOM_BITS : 0;
    ravel_db *db;
    if ((rc = ravel_open(&db, dir, &o)) != RAVEL_OK)
        die_ravel("G1 leader: ravel_open", rc);
    if (ravel_db_role(db) != RAVEL_ROLE_LEADER)
        die("G1 leader", "did not lead");
    write_full(ready_fd, &zero, sizeof zero);
    close(ready_fd);
    if (sigwait(&term, &sig) != 0)
        _exit(1);
    ravel_db_close(db);
    _exit(0);
}

static miss_result run_miss(int variant, const char *dir, uint64_t n, int bloom)
{
    miss_result res;
    if (variant == G_FOLLOWER) {
        int fd, zero;
        g_server = fork_piped(&fd);
        if (g_server == 0)
            miss_leader_main(dir, bloom, fd);
        if (read_full(fd, &zero, sizeof zero) != sizeof zero)
            die("G1", "leader process failed to start");
        close(fd);
    }
    dir_job job = {dir, n, bloom};
    run_child("G1: the measuring process", variant == G_RAW ? miss_raw : miss_follower, &job,
              &res, sizeof res);
    if (g_server > 0)
        stop_server();
    return res;
}

static double dir_mb(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "du -sk '%s'", dir);
    FILE *p = popen(cmd, "r");
    double kib = NAN;
    if (p) {
        if (fscanf(p, "%lf", &kib) != 1)
            kib = NAN;
        pclose(p);
    }
    return kib * 1024 / 1e6;
}

/* res[variant][bloom]; *mb: the size of the database with a filter and
 * without. */
static void run_miss_all(uint64_t n, miss_result res[G_VARIANTS][2], double mb[2])
{
    for (int bloom = 0; bloom < 2; bloom++) {
        char dir[sizeof g_root + 32];
        snprintf(dir, sizeof dir, "%s/miss-%s", g_root, bloom ? "bloom" : "plain");
        fprintf(stderr, "ravel-bench: G1 get-miss, %s ...\n", bloom ? "bloom filter" : "no filter");
        in_child("G1: making the database", build_miss_db, dir, n * MISS_FACTOR, bloom);
        mb[bloom] = dir_mb(dir);
        for (int v = 0; v < G_VARIANTS; v++)
            res[v][bloom] = run_miss(v, dir, n, bloom);
        remove_tree(dir);
    }
}

/* ------------------------------------------------------------------ */
/* C1: conditional-batch increments of one counter                      */
/* ------------------------------------------------------------------ */

/* P processes (1 or 4) open one directory in party mode — the first leads,
 * the others follow — and, started together, each makes its share of the
 * increments of one key: get, then a batch that puts value + 1 and checks
 * the value read (ravel_batch_check; check_absent for the first), again
 * on RAVEL_ECONFLICT. The baseline is raw LevelDB in one process with 1
 * and 4 threads doing get + put under one mutex, the cheapest correct
 * increment LevelDB offers (it has no conditional write). */
#define COUNTER_KEY "counter"
#define COUNTER_DIVISOR 10 /* N / 10 increments in all */
static const int counter_procs[] = {1, 4};
#define COUNTER_SETS (sizeof counter_procs / sizeof counter_procs[0])

typedef struct counter_result {
    double ops_per_s;   /* acknowledged increments per second, all together */
    double conflicts;   /* RAVEL_ECONFLICT answers per increment */
    double cpu_us;      /* CPU of all the incrementing processes per increment */
} counter_result;

typedef struct member_report {
    uint64_t done_ns;   /* CLOCK_MONOTONIC when its last increment was acknowledged */
    uint64_t conflicts;
    double cpu_s;
} member_report;

static uint64_t parse_counter(const char *val, size_t vlen)
{
    uint64_t v = 0;
    for (size_t i = 0; i < vlen; i++)
        v = v * 10 + (uint64_t)(val[i] - '0');
    return v;
}

typedef struct counter_job {
    const char *dir;
    uint64_t k; /* increments per member */
} counter_job;

/* One party member (a crew's): open, wait for go, increment k times,
 * report, wait for the release (the counter was read), close. */
static void counter_member(int index, const void *arg)
{
    const counter_job *job = arg;
    ravel_db *db;
    (void)index;
    int rc = ravel_open(&db, job->dir, bench_options());
    if (rc != RAVEL_OK)
        die_ravel("C1: ravel_open", rc);
    crew_ready();
    crew_wait();
    ravel_batch *b = ravel_batch_new();
    if (!b)
        die("C1", "out of memory");
    member_report rep = {0, 0, 0};
    double cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (uint64_t i = 0; i < job->k; i++) {
        for (;;) {
            char *val = NULL, next[32];
            size_t vlen = 0;
            rc = ravel_get(db, COUNTER_KEY, sizeof COUNTER_KEY - 1, &val, &vlen);
            if (rc != RAVEL_OK && rc != RAVEL_ENOTFOUND)
                die_ravel("C1: ravel_get", rc);
            uint64_t v = rc == RAVEL_OK ? parse_counter(val, vlen) : 0;
            int n = snprintf(next, sizeof next, "%llu", (unsigned long long)(v + 1));
            ravel_batch_clear(b);
            if (rc == RAVEL_OK)
                rc = ravel_batch_check(b, COUNTER_KEY, sizeof COUNTER_KEY - 1, val, vlen);
            else
                rc = ravel_batch_check_absent(b, COUNTER_KEY, sizeof COUNTER_KEY - 1);
            ravel_free(val);
            if (rc == RAVEL_OK)
                rc = ravel_batch_put(b, COUNTER_KEY, sizeof COUNTER_KEY - 1, next, (size_t)n);
            if (rc != RAVEL_OK)
                die_ravel("C1: building the batch", rc);
            rc = ravel_write(db, b);
            if (rc == RAVEL_OK)
                break;
            if (rc != RAVEL_ECONFLICT)
                die_ravel("C1: ravel_write", rc);
            rep.conflicts++;
        }
    }
    rep.done_ns = now_ns();
    rep.cpu_s = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    ravel_batch_free(b);
    crew_send(&rep, sizeof rep);
    crew_wait();
    ravel_db_close(db);
}

/* Read the counter through a fresh member of the party (the leader still
 * holds the directory). */
static void counter_read(const char *dir, uint64_t want, int flag)
{
    (void)flag;
    ravel_db *db;
    char *val;
    size_t vlen;
    int rc = ravel_open(&db, dir, bench_options());
    if (rc != RAVEL_OK)
        die_ravel("C1 check: ravel_open", rc);
    if ((rc = ravel_get(db, COUNTER_KEY, sizeof COUNTER_KEY - 1, &val, &vlen)) != RAVEL_OK)
        die_ravel("C1 check: ravel_get", rc);
    if (parse_counter(val, vlen) != want) {
        fprintf(stderr, "ravel-bench: C1: the counter is %.*s, not %llu\n", (int)vlen, val,
                (unsigned long long)want);
        _exit(1);
    }
    ravel_free(val);
    ravel_db_close(db);
}

static counter_result run_counter_ravel(const char *dir, int procs, uint64_t total)
{
    counter_job job = {dir, total / (uint64_t)procs};
    uint64_t k = job.k;
    crew_start(procs, 2, counter_member, &job);
    uint64_t t0 = crew_release(); /* go */
    counter_result res;
    uint64_t end = 0, conflicts = 0;
    double cpu = 0;
    for (int m = 0; m < procs; m++) {
        member_report rep;
        crew_receive(m, &rep, sizeof rep);
        end = rep.done_ns > end ? rep.done_ns : end;
        conflicts += rep.conflicts;
        cpu += rep.cpu_s;
    }
    in_child("C1: reading the counter", counter_read, dir, k * (uint64_t)procs, 0);
    crew_end(); /* the members close their handles and exit */
    double secs = (double)(end - t0) * 1e-9;
    res.ops_per_s = (double)(k * (uint64_t)procs) / secs;
    res.conflicts = (double)conflicts / (double)(k * (uint64_t)procs);
    res.cpu_us = cpu * 1e6 / (double)(k * (uint64_t)procs);
    return res;
}

typedef struct raw_counter {
    leveldb_t *db;
    leveldb_readoptions_t *ro;
    leveldb_writeoptions_t *wo;
    pthread_mutex_t mu;
    uint64_t k;
} raw_counter;

static void *raw_counter_thread(void *arg)
{
    raw_counter *r = arg;
    for (uint64_t i = 0; i < r->k; i++) {
        char *err = NULL, next[32];
        size_t vlen;
        pthread_mutex_lock(&r->mu);
        char *val = leveldb_get(r->db, r->ro, COUNTER_KEY, sizeof COUNTER_KEY - 1, &vlen, &err);
        if (err != NULL)
            die_leveldb("C1: leveldb_get", err);
        uint64_t v = val ? parse_counter(val, vlen) : 0;
        leveldb_free(val);
        int n = snprintf(next, sizeof next, "%llu", (unsigned long long)(v + 1));
        leveldb_put(r->db, r->wo, COUNTER_KEY, sizeof COUNTER_KEY - 1, next, (size_t)n, &err);
        pthread_mutex_unlock(&r->mu);
        if (err != NULL)
            die_leveldb("C1: leveldb_put", err);
    }
    return NULL;
}

/* In a child: raw LevelDB in job->dir with job->flag threads, job->n
 * increments in all; writes a counter_result to fd. */
static void raw_counter_main(const void *arg, int fd)
{
    const dir_job *job = arg;
    raw_counter r;
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    r.db = leveldb_open(o, job->dir, &err);
    if (err != NULL)
        die_leveldb("C1: leveldb_open", err);
    r.ro = leveldb_readoptions_create();
    r.wo = leveldb_writeoptions_create();
    pthread_mutex_init(&r.mu, NULL);
    r.k = job->n / (uint64_t)job->flag;
    pthread_t t[8];
    double cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t t0 = now_ns();
    for (int i = 0; i < job->flag; i++)
        pthread_create(&t[i], NULL, raw_counter_thread, &r);
    for (int i = 0; i < job->flag; i++)
        pthread_join(t[i], NULL);
    uint64_t t1 = now_ns();
    uint64_t done = r.k * (uint64_t)job->flag;
    counter_result res = {(double)done / ((double)(t1 - t0) * 1e-9), 0,
                          (clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1e6 / (double)done};
    size_t vlen;
    char *val = leveldb_get(r.db, r.ro, COUNTER_KEY, sizeof COUNTER_KEY - 1, &vlen, &err);
    if (err != NULL || val == NULL || parse_counter(val, vlen) != done)
        die("C1 raw", "the counter is wrong");
    leveldb_free(val);
    leveldb_readoptions_destroy(r.ro);
    leveldb_writeoptions_destroy(r.wo);
    leveldb_close(r.db);
    leveldb_options_destroy(o);
    write_full(fd, &res, sizeof res);
}

static counter_result run_counter_raw(const char *dir, int threads, uint64_t total)
{
    dir_job job = {dir, total, threads};
    counter_result res;
    run_child("C1 raw", raw_counter_main, &job, &res, sizeof res);
    return res;
}

/* raw[i], rv[i]: counter_procs[i] threads or processes. */
static void run_counter_all(uint64_t total, counter_result raw[COUNTER_SETS],
                            counter_result rv[COUNTER_SETS])
{
    for (size_t i = 0; i < COUNTER_SETS; i++) {
        char dir[sizeof g_root + 32];
        fprintf(stderr, "ravel-bench: C1 counter, %d process(es) ...\n", counter_procs[i]);
        snprintf(dir, sizeof dir, "%s/counter-raw-%d", g_root, counter_procs[i]);
        raw[i] = run_counter_raw(dir, counter_procs[i], total);
        remove_tree(dir);
        snprintf(dir, sizeof dir, "%s/counter-%d", g_root, counter_procs[i]);
        rv[i] = run_counter_ravel(dir, counter_procs[i], total);
        remove_tree(dir);
    }
}

/* ------------------------------------------------------------------ */
/* Report                                                               */
/* ------------------------------------------------------------------ */

/* The 1-minute load average, to tell a quiet machine from a busy one. */
static void read_load(char *out, size_t size)
{
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)size, f) != NULL)
        out[strcspn(out, " ")] = '\0';
    fclose(f);
}

/* The run's first lines: the command, the machine and its load, and which
 * Node ran (when node_note is not NULL). */
static void print_header(int argc, char **argv, uint64_t n, const char *load_start,
                         const char *node_note)
{
    char load_end[32];
    printf("\nravel-bench: N=%llu, command:", (unsigned long long)n);
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    read_load(load_end, sizeof load_end);
    printf("\nmachine: %ld CPUs online, load average (1 min) %s at the start, %s at the end\n",
           sysconf(_SC_NPROCESSORS_ONLN), load_start, load_end);
    if (node_note != NULL)
        printf("Node: %s\n", node_note);
}

/* The targets of the benchmark issue, checked against this run's medians
 * (ratios as in the tables: the follower's W2 and W4 against raw
 * LevelDB's W1 and W3, one at a time). */
/* F1's floor (failover_floor), sorted; NULL when it did not run. */
static const double *g_f1_floor;

static void print_targets(const variant_result res[V_COUNT], const double *f1_ms[F1_SETS],
                          int f1_rounds, const many_result *many)
{
    const workload_result *raw = res[V_RAW].w, *lead = res[V_LEADER].w,
                          *fol = res[V_FOLLOWER].w, *node = res[V_NODE_FOLLOWER].w;
    int has_node = res[V_NODE_FOLLOWER].measured;
    const double *ten = NULL;
    for (size_t i = 0; i < F1_SETS; i++)
        if (f1_followers[i] == 10)
            ten = f1_ms[i];

    print_target_header();
    print_target("follower W1 ÷ Node follower W1",
                 has_node ? ratio(fol[W_PUT_SEQ].ops_per_s, node[W_PUT_SEQ].ops_per_s) : NAN,
                 5, 0, "%.3fx");
    print_target("follower W3 ÷ Node follower W3",
                 has_node ? ratio(fol[W_GET_SEQ].ops_per_s, node[W_GET_SEQ].ops_per_s) : NAN,
                 5, 0, "%.3fx");
    print_target("leader W1 ÷ raw W1", ratio(lead[W_PUT_SEQ].ops_per_s, raw[W_PUT_SEQ].ops_per_s),
                 0.9, 0, "%.3fx");
    print_target("leader W3 ÷ raw W3", ratio(lead[W_GET_SEQ].ops_per_s, raw[W_GET_SEQ].ops_per_s),
                 0.9, 0, "%.3fx");
    print_target("follower W2 ÷ raw W1",
                 ratio(fol[W_PUT_PIPE].ops_per_s, raw[W_PUT_SEQ].ops_per_s), 0.5, 0, "%.3fx");
    print_target("follower W4 ÷ raw W3",
                 ratio(fol[W_GET_PIPE].ops_per_s, raw[W_GET_SEQ].ops_per_s), 0.5, 0, "%.3fx");
    print_target("follower W5 ÷ raw W5", ratio(fol[W_SCAN].ops_per_s, raw[W_SCAN].ops_per_s),
                 0.5, 0, "%.3fx");
    print_target("leader W5 ÷ raw W5", ratio(lead[W_SCAN].ops_per_s, raw[W_SCAN].ops_per_s), 0.9,
                 0, "%.3fx");
    /* Issue 18: one follower past the socket floor. */
    print_target("follower W1 ÷ raw W1 (issue 18)",
                 ratio(fol[W_PUT_SEQ].ops_per_s, raw[W_PUT_SEQ].ops_per_s), 0.33, 0, "%.3fx");
    print_target("follower W3 ÷ raw W3 (issue 18)",
                 ratio(fol[W_GET_SEQ].ops_per_s, raw[W_GET_SEQ].ops_per_s), 0.33, 0, "%.3fx");
    print_target("follower W6 ÷ raw W6 (issue 18)",
                 ratio(fol[W_BATCH].ops_per_s, raw[W_BATCH].ops_per_s), 0.6, 0, "%.3fx");
    print_target("leader W6 ÷ raw W6", ratio(lead[W_BATCH].ops_per_s, raw[W_BATCH].ops_per_s),
                 0.9, 0, "%.3fx");
    print_target("F1, 10 followers: median ms (issue 18)",
                 ten ? percentile(ten, (size_t)f1_rounds, 0.5) : NAN, 10, 1, "%.2f");
    print_target("F1, 10 followers: max ms", ten ? ten[f1_rounds - 1] : NAN, 60, 1, "%.2f");
    print_target("follower peak RSS during W5, MB (10^6 bytes)",
                 res[V_FOLLOWER].scan_rss_kib * 1024 / 1e6, 16, 1, "%.1f");
    static const int piped[] = {W_PUT_PIPE, W_GET_PIPE, W_SCAN, W_BATCH};
    for (size_t i = 0; i < sizeof piped / sizeof piped[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "TLS guest %.2s ÷ TCP guest %.2s", workload_names[piped[i]],
                 workload_names[piped[i]]);
        print_target(what, ratio(res[V_TLS].w[piped[i]].ops_per_s, res[V_TCP].w[piped[i]].ops_per_s),
                     0.7, 0, "%.3fx");
    }
    many_print_targets(many);
}

static void print_report(int argc, char **argv, uint64_t n, const variant_result res[V_COUNT],
                         const workload_result *ping, const workload_result *batch_floor,
                         const double batch_floor_range[2][2],
                         const double *f1_ms[F1_SETS], int f1_rounds,
                         const char *node_note, const char *load_start)
{
    const variant_result *raw = &res[V_RAW], *node = &res[V_NODE_FOLLOWER];

    print_header(argc, argv, n, load_start, node_note);
    printf("\n");

    printf("C variants: the median of %d runs, interleaved (raw LevelDB, leader, follower, TCP "
           "guest, TLS guest, then again), with the slowest and fastest run's ops/s; Node variants: one "
           "run.\n\n",
           raw->runs);
    printf("| workload | variant | ops/s | vs raw | vs Node follower | p50 us | p99 us | CPU us/op "
           "| server CPU us/op | slowest, fastest run |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int w = 0; w < W_COUNT; w++) {
        int timed = w == W_PUT_SEQ || w == W_GET_SEQ;
        for (int v = 0; v < V_COUNT; v++) {
            const workload_result *r = &res[v].w[w];
            int unpiped = (w == W_PUT_PIPE || w == W_GET_PIPE) && (v == V_RAW || v == V_LEADER);
            char name[32];
            if (!res[v].measured)
                continue;
            snprintf(name, sizeof name, "%s%s", variant_names[v], unpiped ? " *" : "");
            printf("| %-11s | %-17s | %9.0f |", workload_names[w], name, r->ops_per_s);
            print_ratio(r->ops_per_s, raw->w[w].ops_per_s);
            print_ratio(r->ops_per_s, node->measured ? node->w[w].ops_per_s : 0);
            print_value(timed ? r->p50_us : NAN, "%8.1f");
            print_value(timed ? r->p99_us : NAN, "%8.1f");
            print_value(r->cpu_us, "%8.2f");
            print_value(r->server_cpu_us, "%8.2f");
            if (res[v].runs > 1)
                printf(" %.0f, %.0f |\n", res[v].lo[w], res[v].hi[w]);
            else
                printf(" %8s |\n", "-");
        }
    }
    printf("\n| floor: one request at a time over a socket | round trips/s | p50 us | p99 us | CPU "
           "us/op | echo CPU us/op |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < 2; i++) {
        printf("| unix socketpair ping-pong, %d bytes each way, two processes, %s | %9.0f |",
               PING_LEN, i ? "busy-polling " PING_POLL_TEXT " before read()" : "sleeping in read()",
               ping[i].ops_per_s);
        print_value(ping[i].p50_us, "%8.1f");
        print_value(ping[i].p99_us, "%8.1f");
        print_value(ping[i].cpu_us, "%8.2f");
        print_value(ping[i].server_cpu_us, "%8.2f");
        printf("\n");
    }

    printf("\n| floor: W6 with each batch written by another process, median of %d runs | puts/s "
           "| slowest, fastest run | vs raw | ravel follower ÷ floor | CPU us/op | writer CPU "
           "us/op |\n",
           FLOOR_RUNS);
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < 2; i++) {
        const workload_result *r = &batch_floor[i];
        printf("| unix socketpair, %d puts packed in %d bytes one way, 1 byte back, the other "
               "process writes them to LevelDB, %s | %9.0f |",
               BATCH_SIZE, FLOOR_BATCH,
               i ? "busy-polling " PING_POLL_TEXT " before read()" : "sleeping in read()",
               r->ops_per_s);
        printf(" %.0f, %.0f |", batch_floor_range[i][0], batch_floor_range[i][1]);
        print_ratio(r->ops_per_s, raw->w[W_BATCH].ops_per_s);
        print_ratio(res[V_FOLLOWER].w[W_BATCH].ops_per_s, r->ops_per_s);
        print_value(r->cpu_us, "%8.2f");
        print_value(r->server_cpu_us, "%8.2f");
        printf("\n");
    }

    printf("\n* one request at a time: LevelDB's calls block, and so do the leader's own\n"
           "  asynchronous calls (they complete before they return).\n"
           "W5 counts entries, W6 puts (%llu batches of %d).\n\n",
           (unsigned long long)(n / BATCH_SIZE), BATCH_SIZE);

    printf("| variant | peak RSS of a process that opens and scans (W5 only) |\n");
    printf("|---|---:|\n");
    for (int v = 0; v < V_COUNT; v++) {
        if (res[v].measured)
            printf("| %-15s | %6.1f MiB |\n", variant_names[v], res[v].scan_rss_kib / 1024);
    }

    printf("\n| F1 failover | SIGKILLs | median ms | max ms | min ms |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < F1_SETS; i++) {
        const double *ms = f1_ms[i]; /* sorted */
        printf("| %d follower%s | %d | %.2f | %.2f | %.2f |\n", f1_followers[i],
               f1_followers[i] == 1 ? "" : "s", f1_rounds,
               percentile(ms, (size_t)f1_rounds, 0.5), ms[f1_rounds - 1], ms[0]);
    }
    if (g_f1_floor)
        printf("| floor: LevelDB alone, its holder putting in a loop and SIGKILLed 20 ms after "
               "its 200th put, the next process (blocked on the LOCK) opens it and puts once | "
               "%d | %.2f | %.2f | %.2f |\n",
               f1_rounds, percentile(g_f1_floor, (size_t)f1_rounds, 0.5),
               g_f1_floor[f1_rounds - 1], g_f1_floor[0]);
}

/* ------------------------------------------------------------------ */
/* Report of G1 and C1                                                  */
/* ------------------------------------------------------------------ */

static void print_miss_row(const char *variant, const char *how, int bloom, const workload_result *r,
                           const workload_result *plain, const workload_result *raw)
{
    printf("| %-14s | %-13s | %-4s | %9.0f |", variant, how, bloom ? "yes" : "no", r->ops_per_s);
    print_value(bloom ? ratio(r->ops_per_s, plain->ops_per_s) : NAN, "%7.3fx");
    print_ratio(r->ops_per_s, raw ? raw->ops_per_s : NAN);
    print_value(r->p50_us, "%8.1f");
    print_value(r->p99_us, "%8.1f");
    print_value(r->cpu_us, "%8.2f");
    print_value(r->server_cpu_us, "%8.2f");
    printf("\n");
}

static void print_miss(uint64_t n, miss_result res[G_VARIANTS][2], const double mb[2])
{
    printf("\n| G1 get-miss: %llu gets of absent keys, database of %llu entries (%.1f MB without "
           "a filter, %.1f MB with; LevelDB's default 8 MiB block cache) | how | bloom filter, "
           "%d bits/key | gets/s | vs no filter | vs raw, same filter | p50 us | p99 us | CPU "
           "us/op | leader CPU us/op |\n",
           (unsigned long long)n, (unsigned long long)(n * MISS_FACTOR), mb[0], mb[1], BLOOM_BITS);
    printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int bloom = 0; bloom < 2; bloom++)
        print_miss_row(miss_variant_names[G_RAW], "one at a time", bloom, &res[G_RAW][bloom].seq,
                       &res[G_RAW][0].seq, NULL);
    for (int bloom = 0; bloom < 2; bloom++)
        print_miss_row(miss_variant_names[G_FOLLOWER], "one at a time", bloom,
                       &res[G_FOLLOWER][bloom].seq, &res[G_FOLLOWER][0].seq,
                       &res[G_RAW][bloom].seq);
    for (int bloom = 0; bloom < 2; bloom++)
        print_miss_row(miss_variant_names[G_FOLLOWER], "64 in flight", bloom,
                       &res[G_FOLLOWER][bloom].pipe, &res[G_FOLLOWER][0].pipe,
                       &res[G_RAW][bloom].seq);
}

static void print_counter(uint64_t total, const counter_result raw[COUNTER_SETS],
                          const counter_result rv[COUNTER_SETS])
{
    printf("\n| C1 counter: %llu increments of one key in all, started together | processes "
           "or threads | increments/s | vs raw, same count | vs 1 | conflicts per increment | "
           "CPU us/increment (all processes) |\n",
           (unsigned long long)total);
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < COUNTER_SETS; i++) {
        printf("| raw LevelDB: get + put under one mutex | %d thread%s | %9.0f |", counter_procs[i],
               counter_procs[i] == 1 ? "" : "s", raw[i].ops_per_s);
        print_value(NAN, "%7.3fx");
        print_ratio(raw[i].ops_per_s, raw[0].ops_per_s);
        print_value(NAN, "%8.3f");
        print_value(raw[i].cpu_us, "%8.2f");
        printf("\n");
    }
    for (size_t i = 0; i < COUNTER_SETS; i++) {
        char who[64];
        if (counter_procs[i] == 1)
            snprintf(who, sizeof who, "1 process (it leads)");
        else
            snprintf(who, sizeof who, "%d processes (1 leads, %d follow)", counter_procs[i],
                     counter_procs[i] - 1);
        printf("| ravel party: get, then ravel_write of a batch with ravel_batch_check, again on "
               "RAVEL_ECONFLICT | %s | %9.0f |", who, rv[i].ops_per_s);
        print_ratio(rv[i].ops_per_s, raw[i].ops_per_s);
        print_ratio(rv[i].ops_per_s, rv[0].ops_per_s);
        print_value(rv[i].conflicts, "%8.3f");
        print_value(rv[i].cpu_us, "%8.2f");
        printf("\n");
    }
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ravel-bench [-n N] [-r RUNS] [--quick] [--no-node] [--no-shm] [--only LIST]\n"
            "Run the SPEC workloads W1-W6 on raw LevelDB, a ravel party leader, a\n"
            "ravel party follower, a ravel guest over TCP and over TLS (mutual, with\n"
            "certificates made by tests/tls/make-certs.sh) and, when installed, the\n"
            "Node rave-level follower and many-level guest; then F1 with 1 and 10\n"
            "followers; G1 (gets of absent keys with and without a bloom filter, raw\n"
            "LevelDB and follower), C1 (conditional-batch increments of one\n"
            "counter from 1 and 4 processes, raw LevelDB with a mutex beside them)\n"
            "and M1-M3 (4 and 8 processes of one party putting, then getting, their\n"
            "own slices, and 4 writers with a reader; raw LevelDB with as many\n"
            "threads and, when installed, Node rave-level beside them).\n"
            "Prints markdown tables on stdout, progress on stderr.\n"
            "  -n N        number of entries (default %llu, at least %d)\n"
            "  -r RUNS     runs of each C variant, interleaved; the tables show the\n"
            "              median (default %d, at most %d)\n"
            "  --quick     N=%llu unless -n says otherwise, %d F1 rounds instead of %d,\n"
            "              one run of each variant unless -r says otherwise\n"
            "  --no-node   skip the Node variants\n"
            "  --no-shm    every ravel handle with shared_memory 0: followers talk\n"
            "              to their leader over the socket (an A/B of extension shm)\n"
            "  --only LIST run only these of G1, C1, M1, M2, M3 (comma-separated; M\n"
            "              is all three, and M1 or M2 runs both, as M2 reads what M1\n"
            "              wrote): no W1-W6, F1\n"
            "  --watch     only the watches: latency from an acknowledged put to the\n"
            "              change at a watcher in another process, and a follower's W1\n"
            "              and W6 with no watch, a watcher, and the change log on (they\n"
            "              run after F1 otherwise)\n"
            "  -h, --help  show this help\n",
            DEFAULT_N, BATCH_SIZE, DEFAULT_RUNS, MAX_RUNS, QUICK_N, QUICK_F1_ROUNDS, F1_ROUNDS);
}

static uint64_t parse_n(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* W6 needs at least one batch; keys hold at most 15 digits. strtoull
     * accepts a leading '-', which we refuse. */
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < BATCH_SIZE || v > MAX_N) {
        fprintf(stderr, "ravel-bench: -n wants a number from %d to %llu, not '%s'\n", BATCH_SIZE,
                MAX_N, s);
        exit(2);
    }
    return v;
}

static int parse_runs(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > MAX_RUNS) {
        fprintf(stderr, "ravel-bench: -r wants a number from 1 to %d, not '%s'\n", MAX_RUNS, s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    uint64_t n = 0;
    int quick = 0, use_node = 1, runs = 0, only_g1 = 0, only_c1 = 0, watch_only = 0;
    int only_parties = 0, only_mix = 0; /* --only M1 or M2, M3 */
    variant_result res[V_COUNT];
    double f1_store[F1_SETS][F1_ROUNDS];
    static double f1_floor[F1_ROUNDS];
    const double *f1_ms[F1_SETS];
    char node_note[128], load_start[32];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = parse_n(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            runs = parse_runs(argv[++i]);
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--no-shm") == 0) {
            g_shared_memory = 0;
        } else if (strcmp(argv[i], "--no-node") == 0) {
            use_node = 0;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            char list[64];
            snprintf(list, sizeof list, "%s", argv[++i]);
            for (char *save, *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
                if (strcmp(w, "G1") == 0) {
                    only_g1 = 1;
                } else if (strcmp(w, "C1") == 0) {
                    only_c1 = 1;
                } else if (strcmp(w, "M1") == 0 || strcmp(w, "M2") == 0) {
                    only_parties = 1; /* M2 reads what M1 wrote */
                } else if (strcmp(w, "M3") == 0) {
                    only_mix = 1;
                } else if (strcmp(w, "M") == 0) {
                    only_parties = only_mix = 1;
                } else {
                    fprintf(stderr, "ravel-bench: --only takes G1, C1, M1, M2, M3 and M, not "
                                    "'%s'\n", w);
                    return 2;
                }
            }
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch_only = 1;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (n == 0)
        n = quick ? QUICK_N : DEFAULT_N;
    if (runs == 0)
        runs = quick ? 1 : DEFAULT_RUNS;
    read_load(load_start, sizeof load_start);
    int f1_rounds = quick ? QUICK_F1_ROUNDS : F1_ROUNDS;

    g_main_pid = getpid();
    /* A write to a socket whose peer died must fail with an error, not
     * kill us before we can report it and clean up. */
    signal(SIGPIPE, SIG_IGN);
    init_filler();
    memset(res, 0, sizeof res);
    if (make_scratch_dir(g_root, sizeof g_root, "ravel-bench") != 0) {
        g_root[0] = '\0'; /* nothing was made, nothing to remove */
        return 1;
    }

    watch_bench wb;
    if (watch_only) {
        int wrc = watch_bench_run(g_root, n, runs, &wb);
        cleanup();
        if (wrc != 0)
            return 1;
        printf("# ravel-bench --watch (N = %llu, %d run(s); load average at the start %s)\n",
               (unsigned long long)n, runs, load_start);
        watch_bench_print(&wb, n);
        return 0;
    }

    miss_result miss[G_VARIANTS][2];
    double miss_mb[2];
    counter_result counter_raw[COUNTER_SETS], counter_rv[COUNTER_SETS];
    uint64_t counter_total = n / COUNTER_DIVISOR;
    many_result many;
    int only_many = only_parties || only_mix;
    int only = only_g1 || only_c1 || only_many;
    int node = (!only || only_many) && node_check(use_node, node_note, sizeof node_note);
    if (only) {
        if (only_g1)
            run_miss_all(n, miss, miss_mb);
        if (only_c1)
            run_counter_all(counter_total, counter_raw, counter_rv);
        if (only_many)
            many_run(n, runs, only_parties, only_mix, node, &many);
        cleanup();
        print_header(argc, argv, n, load_start, only_many ? node_note : NULL);
        if (only_g1)
            print_miss(n, miss, miss_mb);
        if (only_c1)
            print_counter(counter_total, counter_raw, counter_rv);
        if (only_many) {
            many_print(n, &many);
            print_target_header();
            many_print_targets(&many);
        }
        return 0;
    }

    snprintf(g_certs, sizeof g_certs, "%s/certs", g_root);
    char certs_cmd[sizeof g_certs + 256];
    snprintf(certs_cmd, sizeof certs_cmd, "sh '%s' '%s'", MAKE_CERTS, g_certs);
    if (system(certs_cmd) != 0)
        die("certificates for the TLS guest", "tests/tls/make-certs.sh failed (openssl?)");
    static variant_result run_res[V_LAST_C + 1][MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        if (runs > 1)
            fprintf(stderr, "ravel-bench: run %d of %d\n", r + 1, runs);
        for (int v = V_RAW; v <= V_LAST_C; v++)
            run_c_variant(v, n, &run_res[v][r]);
    }
    for (int v = V_RAW; v <= V_LAST_C; v++)
        res[v] = combine_runs(run_res[v], runs);
    workload_result ping[2] = {run_pingpong(n, 0), run_pingpong(n, PING_POLL_US)};
    double batch_floor_range[2][2];
    workload_result batch_floor[2] = {
        run_batch_floor(n, 0, &batch_floor_range[0][0], &batch_floor_range[0][1]),
        run_batch_floor(n, PING_POLL_US, &batch_floor_range[1][0], &batch_floor_range[1][1]),
    };

    if (node) {
        run_node_variant(V_NODE_FOLLOWER, n, &res[V_NODE_FOLLOWER]);
        run_node_variant(V_NODE_GUEST, n, &res[V_NODE_GUEST]);
    }

    run_miss_all(n, miss, miss_mb);
    run_counter_all(counter_total, counter_raw, counter_rv);
    many_run(n, runs, 1, 1, node, &many);

    {
        char dir[sizeof g_root + 32];
        snprintf(dir, sizeof dir, "%s/f1-floor", g_root);
        fprintf(stderr, "ravel-bench: F1's floor ...\n");
        if (failover_floor(dir, f1_rounds, f1_floor) != 0)
            die("F1 floor", "failed");
        sort_doubles(f1_floor, (size_t)f1_rounds);
        g_f1_floor = f1_floor;
    }
    for (size_t i = 0; i < F1_SETS; i++) {
        char dir[sizeof g_root + 32];
        snprintf(dir, sizeof dir, "%s/f1-%d", g_root, f1_followers[i]);
        fprintf(stderr, "ravel-bench: F1 with %d follower(s) ...\n", f1_followers[i]);
        if (failover_measure(dir, f1_followers[i], f1_rounds, f1_store[i]) != 0)
            die("F1", "failed");
        sort_doubles(f1_store[i], (size_t)f1_rounds);
        f1_ms[i] = f1_store[i];
    }

    if (watch_bench_run(g_root, n, runs, &wb) != 0)
        die("watches", "failed");

    cleanup();
    print_report(argc, argv, n, res, ping, batch_floor, batch_floor_range, f1_ms, f1_rounds, node_note, load_start);
    print_miss(n, miss, miss_mb);
    print_counter(counter_total, counter_raw, counter_rv);
    many_print(n, &many);
    print_targets(res, f1_ms, f1_rounds, &many);
    watch_bench_print(&wb, n);
    return 0;
}
