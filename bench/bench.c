/*
 * ravel-bench — the SPEC's standard workloads W1–W6, measured in one run
 * for raw LevelDB (C API, in this process) and for a ravel guest talking
 * to a ravel host in a child process over a unix socket. The result is
 * reported as a ratio guest/raw, so numbers from a shared machine stay
 * comparable.
 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <errno.h>
#include <ftw.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ravel.h"

#define KEY_LEN 16        /* "k" + 15 zero-padded decimal digits */
#define KEY_DIGITS 15
#define VALUE_LEN 100
#define IN_FLIGHT 64      /* pipelining depth of W2 and W4 */
#define BATCH_SIZE 100    /* puts per batch in W6 */
#define DEFAULT_N 100000ULL
#define MAX_N 999999999999999ULL /* the largest index 15 digits can hold */
#define GET_SEQ_SEED 0x9E3779B97F4A7C15ULL
#define GET_PIPE_SEED 0xD1B54A32D192ED03ULL

enum { W_PUT_SEQ, W_PUT_PIPE, W_GET_SEQ, W_GET_PIPE, W_SCAN, W_BATCH, W_COUNT };

static const char *const workload_names[W_COUNT] = {
    "W1 put-seq", "W2 put-pipe", "W3 get-seq", "W4 get-pipe", "W5 scan", "W6 batch",
};

/* State that the error path needs in order to clean up after itself. */
static pid_t g_child = -1;      /* the host process, once forked */
static char g_root[4096];       /* the mkdtemp directory, once made */

/* ------------------------------------------------------------------ */
/* Cleanup and errors                                                   */
/* ------------------------------------------------------------------ */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "ravel-bench: cannot remove %s: %s\n", path, strerror(errno));
    return 0; /* keep going: remove as much as we can */
}

static void remove_tree(const char *path)
{
    /* FTW_DEPTH visits a directory's contents before the directory itself;
     * FTW_PHYS keeps a symlink from leading us out of the tree. */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "ravel-bench: cannot remove %s: %s\n", path, strerror(errno));
}

/* Stop the host and wait for it; returns its wait status. */
static int stop_child(void)
{
    int wstatus = 0;
    if (kill(g_child, SIGTERM) != 0)
        fprintf(stderr, "ravel-bench: kill host process: %s\n", strerror(errno));
    while (waitpid(g_child, &wstatus, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "ravel-bench: waitpid: %s\n", strerror(errno));
            break;
        }
    }
    g_child = -1;
    return wstatus;
}

/* Leave nothing behind on the way out: no host process, no temp files. */
static void cleanup(void)
{
    if (g_child > 0)
        stop_child();
    if (g_root[0] != '\0') {
        remove_tree(g_root);
        g_root[0] = '\0';
    }
}

static void fail(void)
{
    cleanup();
    exit(1);
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "ravel-bench: %s: %s\n", what, detail);
    fail();
}

/* ravel_errmsg() is per thread, so this must run on the thread whose call
 * failed, right after it. */
static void die_ravel(const char *what, int status)
{
    fprintf(stderr, "ravel-bench: %s: %s (%s): %s\n", what, ravel_strerror(status),
            ravel_errname(status), ravel_errmsg());
    fail();
}

static void die_leveldb(const char *what, char *err)
{
    fprintf(stderr, "ravel-bench: %s: %s\n", what, err);
    leveldb_free(err);
    fail();
}

/* ------------------------------------------------------------------ */
/* Data                                                                 */
/* ------------------------------------------------------------------ */

static void make_key(char key[KEY_LEN], uint64_t index)
{
    key[0] = 'k';
    for (int i = KEY_DIGITS; i >= 1; i--) {
        key[i] = (char)('0' + index % 10);
        index /= 10;
    }
}

/* Values are windows into one fixed pseudo-random buffer: deterministic,
 * different from key to key (so LevelDB does not see one value repeated),
 * and free to produce, so the timing measures the database, not us. */
#define FILLER_SPREAD 128
static char g_filler[VALUE_LEN + FILLER_SPREAD];

static void init_filler(void)
{
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (size_t i = 0; i < sizeof g_filler; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        g_filler[i] = (char)('a' + x % 26);
    }
}

static const char *value_for(uint64_t index)
{
    return g_filler + index % FILLER_SPREAD;
}

/* xorshift64: a fixed seed gives raw and guest the same key sequence. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rate(uint64_t ops, double start)
{
    return (double)ops / (now() - start);
}

/* ------------------------------------------------------------------ */
/* Raw LevelDB                                                          */
/* ------------------------------------------------------------------ */

typedef struct raw_db {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_writeoptions_t *wopts; /* defaults: sync off, as for ravel */
    leveldb_readoptions_t *ropts;
} raw_db;

static void raw_open(raw_db *r, const char *dir)
{
    char *err = NULL;
    r->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(r->opts, 1);
    r->wopts = leveldb_writeoptions_create();
    r->ropts = leveldb_readoptions_create();
    r->db = leveldb_open(r->opts, dir, &err);
    if (err != NULL)
        die_leveldb("leveldb_open", err);
}

static void raw_close(raw_db *r)
{
    leveldb_close(r->db);
    leveldb_readoptions_destroy(r->ropts);
    leveldb_writeoptions_destroy(r->wopts);
    leveldb_options_destroy(r->opts);
}

static void raw_puts(raw_db *r, uint64_t n)
{
    char key[KEY_LEN];
    for (uint64_t i = 0; i < n; i++) {
        char *err = NULL;
        make_key(key, i);
        leveldb_put(r->db, r->wopts, key, KEY_LEN, value_for(i), VALUE_LEN, &err);
        if (err != NULL)
            die_leveldb("leveldb_put", err);
    }
}

static void raw_gets(raw_db *r, uint64_t n, uint64_t seed)
{
    char key[KEY_LEN];
    uint64_t state = seed;
    for (uint64_t i = 0; i < n; i++) {
        char *err = NULL;
        size_t vlen;
        make_key(key, next_random(&state) % n);
        char *val = leveldb_get(r->db, r->ropts, key, KEY_LEN, &vlen, &err);
        if (err != NULL)
            die_leveldb("leveldb_get", err);
        if (val == NULL)
            die("leveldb_get", "key not found");
        leveldb_free(val);
        if (vlen != VALUE_LEN)
            die("leveldb_get", "value of the wrong length");
    }
}

static void raw_scan(raw_db *r, uint64_t n)
{
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

static void raw_batches(raw_db *r, uint64_t batches)
{
    char key[KEY_LEN];
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    for (uint64_t i = 0; i < batches; i++) {
        char *err = NULL;
        for (uint64_t j = 0; j < BATCH_SIZE; j++) {
            uint64_t index = i * BATCH_SIZE + j;
            make_key(key, index);
            leveldb_writebatch_put(b, key, KEY_LEN, value_for(index), VALUE_LEN);
        }
        leveldb_write(r->db, r->wopts, b, &err);
        if (err != NULL)
            die_leveldb("leveldb_write", err);
        leveldb_writebatch_clear(b);
    }
    leveldb_writebatch_destroy(b);
}

static void run_raw(const char *dir, uint64_t n, double out[W_COUNT])
{
    raw_db r;
    double t;
    raw_open(&r, dir);

    t = now();
    raw_puts(&r, n);
    out[W_PUT_SEQ] = rate(n, t);

    /* LevelDB has no pipelining within one process: W2 and W4 are the
     * same loops as W1 and W3. */
    t = now();
    raw_puts(&r, n);
    out[W_PUT_PIPE] = rate(n, t);

    t = now();
    raw_gets(&r, n, GET_SEQ_SEED);
    out[W_GET_SEQ] = rate(n, t);

    t = now();
    raw_gets(&r, n, GET_PIPE_SEED);
    out[W_GET_PIPE] = rate(n, t);

    t = now();
    raw_scan(&r, n);
    out[W_SCAN] = rate(n, t);

    t = now();
    raw_batches(&r, n / BATCH_SIZE);
    out[W_BATCH] = rate(n / BATCH_SIZE * BATCH_SIZE, t);

    raw_close(&r);
}

/* ------------------------------------------------------------------ */
/* Ravel guest                                                          */
/* ------------------------------------------------------------------ */

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

/* A failure reported to a callback happened on the I/O thread, so this
 * thread's ravel_errmsg() knows nothing about it: report the code only. */
static void die_async(const char *what, int status)
{
    fprintf(stderr, "ravel-bench: %s: %s (%s)\n", what, ravel_strerror(status),
            ravel_errname(status));
    fail();
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

static void guest_put_seq(ravel_db *db, uint64_t n)
{
    char key[KEY_LEN];
    for (uint64_t i = 0; i < n; i++) {
        make_key(key, i);
        int rc = ravel_put(db, key, KEY_LEN, value_for(i), VALUE_LEN);
        if (rc != RAVEL_OK)
            die_ravel("ravel_put", rc);
    }
}

static void guest_put_pipe(ravel_db *db, uint64_t n)
{
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

static void guest_get_seq(ravel_db *db, uint64_t n, uint64_t seed)
{
    char key[KEY_LEN];
    uint64_t state = seed;
    for (uint64_t i = 0; i < n; i++) {
        char *val;
        size_t vlen;
        make_key(key, next_random(&state) % n);
        int rc = ravel_get(db, key, KEY_LEN, &val, &vlen);
        if (rc != RAVEL_OK)
            die_ravel("ravel_get", rc);
        ravel_free(val);
        if (vlen != VALUE_LEN)
            die("ravel_get", "value of the wrong length");
    }
}

static void guest_get_pipe(ravel_db *db, uint64_t n, uint64_t seed)
{
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

static void guest_scan(ravel_db *db, uint64_t n)
{
    ravel_iter *it;
    uint64_t count = 0;
    int rc = ravel_iter_new(db, NULL, &it);
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

static void guest_batches(ravel_db *db, uint64_t batches)
{
    char key[KEY_LEN];
    int rc;
    ravel_batch *b = ravel_batch_new();
    if (b == NULL)
        die("ravel_batch_new", "out of memory");
    for (uint64_t i = 0; i < batches; i++) {
        for (uint64_t j = 0; j < BATCH_SIZE; j++) {
            uint64_t index = i * BATCH_SIZE + j;
            make_key(key, index);
            rc = ravel_batch_put(b, key, KEY_LEN, value_for(index), VALUE_LEN);
            if (rc != RAVEL_OK)
                die_ravel("ravel_batch_put", rc);
        }
        if ((rc = ravel_write(db, b)) != RAVEL_OK)
            die_ravel("ravel_write", rc);
        ravel_batch_clear(b);
    }
    ravel_batch_free(b);
}

static void run_guest(const char *address, uint64_t n, double out[W_COUNT])
{
    ravel_db *db;
    ravel_options opts;
    double t;
    ravel_options_init(&opts);
    /* With retry on, a crashed host would leave us waiting forever; with
     * it off, the loss surfaces as RAVEL_ECONNLOST and we stop. */
    opts.retry = 0;
    int rc = ravel_connect(&db, address, &opts);
    if (rc != RAVEL_OK)
        die_ravel("ravel_connect", rc);

    t = now();
    guest_put_seq(db, n);
    out[W_PUT_SEQ] = rate(n, t);

    t = now();
    guest_put_pipe(db, n);
    out[W_PUT_PIPE] = rate(n, t);

    t = now();
    guest_get_seq(db, n, GET_SEQ_SEED);
    out[W_GET_SEQ] = rate(n, t);

    t = now();
    guest_get_pipe(db, n, GET_PIPE_SEED);
    out[W_GET_PIPE] = rate(n, t);

    t = now();
    guest_scan(db, n);
    out[W_SCAN] = rate(n, t);

    t = now();
    guest_batches(db, n / BATCH_SIZE);
    out[W_BATCH] = rate(n / BATCH_SIZE * BATCH_SIZE, t);

    ravel_db_close(db);
}

/* ------------------------------------------------------------------ */
/* Host process                                                         */
/* ------------------------------------------------------------------ */

/* Runs in the child: serve `dir` on `address`, tell the parent through
 * `ready_fd` once listening, and shut down cleanly on SIGTERM. Never
 * returns; leaves with _exit so the parent's atexit state and stdio
 * buffers are not run twice. */
static void host_main(const char *dir, const char *address, int ready_fd)
{
    sigset_t term;
    ravel_db *db;
    ravel_host *host;
    ravel_options opts;
    ravel_host_options hopts;
    int rc, sig;

    /* Block SIGTERM before the host starts its threads, which inherit the
     * mask, so that the signal is left pending for sigwait() below. */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    if ((rc = pthread_sigmask(SIG_BLOCK, &term, NULL)) != 0) {
        fprintf(stderr, "ravel-bench host: pthread_sigmask: %s\n", strerror(rc));
        _exit(1);
    }

    ravel_options_init(&opts);
    if ((rc = ravel_open_local(&db, dir, &opts)) != RAVEL_OK) {
        fprintf(stderr, "ravel-bench host: ravel_open_local: %s: %s\n", ravel_strerror(rc),
                ravel_errmsg());
        _exit(1);
    }
    ravel_host_options_init(&hopts);
    if ((rc = ravel_host_new(&host, db, &hopts)) != RAVEL_OK) {
        fprintf(stderr, "ravel-bench host: ravel_host_new: %s: %s\n", ravel_strerror(rc),
                ravel_errmsg());
        _exit(1);
    }
    if ((rc = ravel_host_listen(host, address)) != RAVEL_OK) {
        fprintf(stderr, "ravel-bench host: ravel_host_listen: %s: %s\n", ravel_strerror(rc),
                ravel_errmsg());
        _exit(1);
    }
    if (write(ready_fd, "R", 1) != 1) {
        fprintf(stderr, "ravel-bench host: write to parent: %s\n", strerror(errno));
        _exit(1);
    }
    close(ready_fd);

    if (sigwait(&term, &sig) != 0)
        _exit(1);
    ravel_host_free(host);
    ravel_db_close(db);
    _exit(0);
}

/* Fork the host process and wait until it listens on `address`. */
static void start_host(const char *dir, const char *address)
{
    int fds[2];
    char c;
    ssize_t got;

    if (pipe(fds) != 0)
        die("pipe", strerror(errno));
    /* Anything still buffered would otherwise be printed by both. */
    fflush(NULL);
    g_child = fork();
    if (g_child < 0)
        die("fork", strerror(errno));
    if (g_child == 0) {
        close(fds[0]);
        host_main(dir, address, fds[1]);
    }
    close(fds[1]);

    /* One byte means listening; end of file means the child failed (and
     * said why on stderr). */
    while ((got = read(fds[0], &c, 1)) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    if (got != 1)
        die("host process", "failed to start");
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ravel-bench [-n N]\n"
            "Run the SPEC workloads W1-W6 on raw LevelDB and on a ravel guest\n"
            "served over a unix socket by a child process, and compare them.\n"
            "  -n N        number of entries (default %llu, at least %d)\n"
            "  -h, --help  show this help\n",
            DEFAULT_N, BATCH_SIZE);
}

static uint64_t parse_n(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* W6 needs at least one batch; keys hold at most 15 digits. strtoull
     * accepts a leading '-', which we refuse. */
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < BATCH_SIZE ||
        v > MAX_N) {
        fprintf(stderr, "ravel-bench: -n wants a number from %d to %llu, not '%s'\n",
                BATCH_SIZE, MAX_N, s);
        exit(2);
    }
    return v;
}

static void print_report(int argc, char **argv, uint64_t n, const double raw[W_COUNT],
                         const double guest[W_COUNT])
{
    printf("ravel-bench: N=%llu, command:", (unsigned long long)n);
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n\n%-14s %14s %14s %12s\n", "workload", "raw ops/s", "guest ops/s", "guest/raw");
    for (int w = 0; w < W_COUNT; w++) {
        int unpiped = (w == W_PUT_PIPE || w == W_GET_PIPE);
        char name[32];
        snprintf(name, sizeof name, "%s%s", workload_names[w], unpiped ? "*" : "");
        printf("%-14s %14.0f %14.0f %11.3fx\n", name, raw[w], guest[w], guest[w] / raw[w]);
    }
    printf("\n* raw LevelDB cannot pipeline within one process: its W2/W4 run as W1/W3.\n");
    printf("W6: %llu batches of %d puts.\n", (unsigned long long)(n / BATCH_SIZE), BATCH_SIZE);
}

int main(int argc, char **argv)
{
    uint64_t n = DEFAULT_N;
    double raw[W_COUNT], guest[W_COUNT];
    char raw_dir[sizeof g_root + 16], guest_dir[sizeof g_root + 16];
    char address[sizeof g_root + 32];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = parse_n(argv[++i]);
        } else {
            usage(stderr);
            return 2;
        }
    }

    /* A write to a socket whose host died must fail with an error, not
     * kill us before we can report it and clean up. */
    signal(SIGPIPE, SIG_IGN);
    init_filler();

    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if (snprintf(g_root, sizeof g_root, "%s/ravel-bench.XXXXXX", tmp) >= (int)sizeof g_root)
        die("TMPDIR", "path too long");
    if (mkdtemp(g_root) == NULL) {
        int e = errno;
        g_root[0] = '\0'; /* nothing was made, nothing to remove */
        die("mkdtemp", strerror(e));
    }
    snprintf(raw_dir, sizeof raw_dir, "%s/raw", g_root);
    snprintf(guest_dir, sizeof guest_dir, "%s/guest", g_root);
    snprintf(address, sizeof address, "unix:%s/bench.sock", g_root);

    /* Fork before this process uses LevelDB: LevelDB's background
     * compaction thread, started on first use, would not exist in a child
     * forked after it, while the child's copy of LevelDB would believe it
     * does — and its writes would stall forever waiting for compaction. */
    start_host(guest_dir, address);

    run_raw(raw_dir, n, raw);
    run_guest(address, n, guest);

    int wstatus = stop_child();
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
        die("host process", "did not shut down cleanly");
    cleanup();

    print_report(argc, argv, n, raw, guest);
    return 0;
}
