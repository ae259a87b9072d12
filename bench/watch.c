/* Watches in ravel-bench (watch.h). Processes: a party leader, a follower
 * that writes, and (when watched) a follower that watches — each its own
 * process, as users run them; this one only forks and collects. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "ravel.h"
#include "watch.h"

#define LAT_PUTS 2000
#define LAT_GAP_US 500 /* between timed puts: latency, not a queue */
#define BATCH 100
#define MAX_RUNS 16

static const char *const config_names[WC_COUNT] = {
    "no watch, log off", "no watch, log on", "1 watcher, log off", "1 watcher, log on",
};

static void watch_die(const char *what)
{
    fprintf(stderr, "ravel-bench: watch: %s: %s\n", what, ravel_errmsg());
    _exit(1);
}

static void write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(1);
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

static int read_all(int fd, void *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p = (char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

/* Fork fn(dir, arg, fd) with a pipe back; its pid, and the read end. */
static pid_t fork_with_pipe(void (*fn)(const char *, uint64_t, int), const char *dir,
                            uint64_t arg, int *rfd)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        fn(dir, arg, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    *rfd = fds[0];
    return pid;
}

static volatile sig_atomic_t stopping;
static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

/* The leader: opens dir first, sets the change log (arg 1: on), says
 * so, holds it until SIGTERM. */
static void leader_main(const char *dir, uint64_t log_on, int fd)
{
    signal(SIGTERM, on_term);
    ravel_db *db;
    if (ravel_open(&db, dir, bench_options()) != RAVEL_OK || ravel_db_role(db) != RAVEL_ROLE_LEADER)
        watch_die("leader");
    ravel_changelog set = {.on = (int)log_on};
    if (ravel_changelog_set(db, &set, NULL) != RAVEL_OK)
        watch_die("changelog");
    char ok = 1;
    write_all(fd, &ok, 1);
    while (!stopping)
        pause();
    ravel_db_close(db);
}

/* The watcher: every key from "L" on; with arg > 0, the arrival time of
 * the changes of keys L<i> for i < arg, sent once all have come; with
 * arg 0, it only reads until SIGTERM. */
static void watcher_main(const char *dir, uint64_t timed, int fd)
{
    signal(SIGTERM, on_term);
    ravel_db *db;
    if (ravel_open(&db, dir, bench_options()) != RAVEL_OK)
        watch_die("watcher");
    ravel_watch *w;
    if (ravel_watch_new(db, NULL, &w) != RAVEL_OK)
        watch_die("watch");
    uint64_t *at = timed ? calloc(timed, sizeof *at) : NULL;
    char ok = 1;
    write_all(fd, &ok, 1);
    uint64_t got = 0;
    while (!stopping && (!timed || got < timed)) {
        ravel_change c;
        int rc = ravel_watch_next(w, &c, 100);
        if (rc == RAVEL_ETIMEDOUT)
            continue;
        if (rc != RAVEL_OK)
            watch_die("watch next");
        uint64_t t = now_ns();
        if (timed && c.type == RAVEL_CHANGE_PUT && c.klen == 16 && c.key[0] == 'L') {
            /* The key's 15 digits (its bytes are not NUL-terminated). */
            char digits[16];
            memcpy(digits, c.key + 1, 15);
            digits[15] = '\0';
            uint64_t i = strtoull(digits, NULL, 10);
            if (i < timed && !at[i]) {
                at[i] = t;
                got++;
            }
        }
    }
    if (timed)
        write_all(fd, at, timed * sizeof *at);
    ravel_watch_free(w);
    ravel_db_close(db);
    free(at);
}

/* The timed writer: LAT_PUTS awaited puts, a gap between them; sends the
 * time each was issued and acknowledged. */
static void timed_writer_main(const char *dir, uint64_t n, int fd)
{
    ravel_db *db;
    if (ravel_open(&db, dir, bench_options()) != RAVEL_OK)
        watch_die("writer");
    char val[VALUE_LEN];
    memset(val, 'v', sizeof val);
    uint64_t *t = malloc(2 * n * sizeof *t);
    for (uint64_t i = 0; i < n; i++) {
        char key[24];
        snprintf(key, sizeof key, "L%015llu", (unsigned long long)i);
        t[2 * i] = now_ns();
        if (ravel_put(db, key, 16, val, sizeof val) != RAVEL_OK)
            watch_die("put");
        t[2 * i + 1] = now_ns();
        struct timespec gap = {0, LAT_GAP_US * 1000};
        nanosleep(&gap, NULL);
    }
    write_all(fd, t, 2 * n * sizeof *t);
    free(t);
    ravel_db_close(db);
}

/* The measured writer: W1 (n awaited puts) and W6 (n/100 awaited batches
 * of 100), as a follower; sends both rates. */
static void writer_main(const char *dir, uint64_t n, int fd)
{
    ravel_db *db;
    if (ravel_open(&db, dir, bench_options()) != RAVEL_OK || ravel_db_role(db) != RAVEL_ROLE_FOLLOWER)
        watch_die("writer");
    char val[VALUE_LEN];
    memset(val, 'v', sizeof val);
    double rates[2];
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        char key[24];
        snprintf(key, sizeof key, "k%015llu", (unsigned long long)i);
        if (ravel_put(db, key, 16, val, sizeof val) != RAVEL_OK)
            watch_die("put");
    }
    rates[0] = (double)n / ((double)(now_ns() - t0) / 1e9);
    ravel_batch *b = ravel_batch_new();
    uint64_t batches = n / BATCH;
    t0 = now_ns();
    for (uint64_t j = 0; j < batches; j++) {
        for (uint64_t i = 0; i < BATCH; i++) {
            char key[24];
            snprintf(key, sizeof key, "b%015llu", (unsigned long long)(j * BATCH + i));
            ravel_batch_put(b, key, 16, val, sizeof val);
        }
        if (ravel_write(db, b) != RAVEL_OK)
            watch_die("write");
        ravel_batch_clear(b);
    }
    rates[1] = (double)(batches * BATCH) / ((double)(now_ns() - t0) / 1e9);
    ravel_batch_free(b);
    write_all(fd, rates, sizeof rates);
    ravel_db_close(db);
}

static void stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        reap(pid);
    }
}

static int wait_ready(int fd)
{
    char ok;
    return read_all(fd, &ok, 1);
}

/* One configuration: its W1 and W6 rates. */
static int run_config(const char *root, int config, uint64_t n, double *w1, double *w6)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/watch-%d", root, config);
    int lfd, wfd = -1, xfd;
    int log_on = config == WC_LOGGED || config == WC_LOG_ONLY;
    pid_t leader = fork_with_pipe(leader_main, dir, (uint64_t)log_on, &lfd);
    if (leader < 0 || wait_ready(lfd) != 0)
        return -1;
    pid_t watcher = -1;
    if ((config == WC_WATCHED || config == WC_LOGGED) &&
        ((watcher = fork_with_pipe(watcher_main, dir, 0, &wfd)) < 0 || wait_ready(wfd) != 0)) {
        stop(leader);
        return -1;
    }
    pid_t writer = fork_with_pipe(writer_main, dir, n, &xfd);
    double rates[2];
    int rc = writer > 0 && read_all(xfd, rates, sizeof rates) == 0 ? 0 : -1;
    if (writer > 0)
        reap(writer);
    stop(watcher);
    stop(leader);
    close(lfd);
    if (wfd >= 0)
        close(wfd);
    close(xfd);
    remove_tree(dir);
    *w1 = rates[0];
    *w6 = rates[1];
    return rc;
}

static int run_latency(const char *root, watch_bench *out)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/watch-latency", root);
    int lfd, wfd, xfd;
    pid_t leader = fork_with_pipe(leader_main, dir, 0, &lfd);
    if (leader < 0 || wait_ready(lfd) != 0)
        return -1;
    pid_t watcher = fork_with_pipe(watcher_main, dir, LAT_PUTS, &wfd);
    if (watcher < 0 || wait_ready(wfd) != 0) {
        stop(leader);
        return -1;
    }
    pid_t writer = fork_with_pipe(timed_writer_main, dir, LAT_PUTS, &xfd);
    uint64_t *t = malloc(2 * LAT_PUTS * sizeof *t), *at = malloc(LAT_PUTS * sizeof *at);
    int rc = writer > 0 && read_all(xfd, t, 2 * LAT_PUTS * sizeof *t) == 0 &&
                     read_all(wfd, at, LAT_PUTS * sizeof *at) == 0
                 ? 0
                 : -1;
    if (writer > 0)
        reap(writer);
    reap(watcher);
    stop(leader);
    close(lfd);
    close(wfd);
    close(xfd);
    remove_tree(dir);
    if (rc == 0) {
        double *ack = malloc(LAT_PUTS * sizeof *ack), *put = malloc(LAT_PUTS * sizeof *put);
        for (int i = 0; i < LAT_PUTS; i++) {
            /* The change may reach the watcher before the writer has its
             * answer: then the ack latency is negative. */
            ack[i] = ((double)at[i] - (double)t[2 * i + 1]) / 1e3;
            put[i] = ((double)at[i] - (double)t[2 * i]) / 1e3;
        }
        sort_doubles(ack, LAT_PUTS);
        sort_doubles(put, LAT_PUTS);
        out->lat_n = LAT_PUTS;
        out->ack_p50_us = percentile(ack, LAT_PUTS, 0.5);
        out->ack_p99_us = percentile(ack, LAT_PUTS, 0.99);
        out->put_p50_us = percentile(put, LAT_PUTS, 0.5);
        out->put_p99_us = percentile(put, LAT_PUTS, 0.99);
        free(ack);
        free(put);
    }
    free(t);
    free(at);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int watch_bench_run(const char *root, uint64_t n, int runs, watch_bench *out)
{
    memset(out, 0, sizeof *out);
    if (runs > MAX_RUNS)
        runs = MAX_RUNS;
    out->runs = runs;
    fprintf(stderr, "ravel-bench: watch latency ...\n");
    if (run_latency(root, out) != 0) {
        fprintf(stderr, "ravel-bench: watch latency failed\n");
        return -1;
    }
    double w1[WC_COUNT][MAX_RUNS], w6[WC_COUNT][MAX_RUNS];
    /* The configurations take turns within each run, so that a machine
     * that gets busier or quieter meanwhile weighs on each alike. */
    for (int r = 0; r < runs; r++)
        for (int c = 0; c < WC_COUNT; c++) {
            fprintf(stderr, "ravel-bench: writers' cost, %s (run %d of %d) ...\n",
                    config_names[c], r + 1, runs);
            if (run_config(root, c, n, &w1[c][r], &w6[c][r]) != 0) {
                fprintf(stderr, "ravel-bench: writers' cost failed\n");
                return -1;
            }
        }
    for (int c = 0; c < WC_COUNT; c++) {
        qsort(w1[c], (size_t)runs, sizeof(double), cmp_double);
        qsort(w6[c], (size_t)runs, sizeof(double), cmp_double);
        out->w1[c] = w1[c][(runs - 1) / 2];
        out->w6[c] = w6[c][(runs - 1) / 2];
        out->w1_lo[c] = w1[c][0];
        out->w1_hi[c] = w1[c][runs - 1];
        out->w6_lo[c] = w6[c][0];
        out->w6_hi[c] = w6[c][runs - 1];
    }
    return 0;
}

void watch_bench_print(const watch_bench *wb, uint64_t n)
{
    printf("\n## Watches\n\n");
    printf("Watch latency: a follower puts %llu keys one at a time, %d us apart; a watcher\n"
           "in another process (a follower too) times each change's arrival.\n\n",
           (unsigned long long)wb->lat_n, LAT_GAP_US);
    printf("| from | p50 us | p99 us |\n|---|---:|---:|\n");
    printf("| put acknowledged to the writer | %.1f | %.1f |\n", wb->ack_p50_us, wb->ack_p99_us);
    printf("| put issued by the writer | %.1f | %.1f |\n\n", wb->put_p50_us, wb->put_p99_us);
    printf("Writers' cost: a follower's W1 (%llu awaited puts) and W6 (%llu batches of %d),\n"
           "ops/s, median of %d run(s) [range], the configurations taking turns in each run.\n\n",
           (unsigned long long)n, (unsigned long long)(n / BATCH), BATCH, wb->runs);
    printf("| configuration | W1 ops/s | vs no watch | W6 ops/s | vs no watch |\n"
           "|---|---:|---:|---:|---:|\n");
    for (int c = 0; c < WC_COUNT; c++)
        printf("| %s | %.0f [%.0f–%.0f] | %.2f | %.0f [%.0f–%.0f] | %.2f |\n", config_names[c],
               wb->w1[c], wb->w1_lo[c], wb->w1_hi[c], wb->w1[c] / wb->w1[WC_PLAIN], wb->w6[c],
               wb->w6_lo[c], wb->w6_hi[c], wb->w6[c] / wb->w6[WC_PLAIN]);
    printf("\nChange log on against off: without a watcher W1 %.2f, W6 %.2f; with one W1 %.2f, "
           "W6 %.2f.\n",
           wb->w1[WC_LOG_ONLY] / wb->w1[WC_PLAIN], wb->w6[WC_LOG_ONLY] / wb->w6[WC_PLAIN],
           wb->w1[WC_LOGGED] / wb->w1[WC_WATCHED], wb->w6[WC_LOGGED] / wb->w6[WC_WATCHED]);
}
