/*
 * ravel-failover — SPEC workload F1: SIGKILL a party's leader while a
 * follower writes in a loop, and measure the time from the kill to that
 * follower's next acknowledged write. Each round starts a fresh party on
 * one directory: a leader, then F followers, one of which writes.
 *
 * usage: ravel-failover [-f FOLLOWERS] [-r ROUNDS]
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ravel.h"

typedef struct shared {
    atomic_int ready;        /* members that opened the directory */
    atomic_uint_fast64_t last_ack_ns; /* the writer's latest acknowledged put */
    atomic_long acks;
    atomic_int failed;
    atomic_int hold;         /* parent: writer, stop between puts */
    atomic_int held;         /* writer: stopped, no put in flight */
} shared;

static shared *sh;
static char dir[4096];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* A party member: opens the directory; the writer puts in a loop. */
static pid_t member(int writer, int expect_role)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, on_term);
    ravel_db *db;
    if (ravel_open(&db, dir, NULL) != RAVEL_OK || ravel_db_role(db) != expect_role) {
        fprintf(stderr, "ravel-failover: member: %s\n", ravel_errmsg());
        atomic_store(&sh->failed, 1);
        _exit(1);
    }
    atomic_fetch_add(&sh->ready, 1);
    long n = 0;
    while (!stop) {
        if (!writer) {
            pause();
            continue;
        }
        if (atomic_load(&sh->hold)) {
            atomic_store(&sh->held, 1);
            while (atomic_load(&sh->hold))
                ;
            atomic_store(&sh->held, 0);
        }
        char key[32];
        int kl = snprintf(key, sizeof key, "f%012ld", n++);
        if (ravel_put(db, key, (size_t)kl, key, (size_t)kl) != RAVEL_OK) {
            fprintf(stderr, "ravel-failover: put: %s\n", ravel_errmsg());
            atomic_store(&sh->failed, 1);
            _exit(1);
        }
        atomic_store(&sh->last_ack_ns, now_ns());
        atomic_fetch_add(&sh->acks, 1);
    }
    ravel_db_close(db);
    _exit(0);
}

static void wait_for(int (*cond)(void), const char *what)
{
    for (int i = 0; i < 100000; i++) {
        if (cond())
            return;
        if (atomic_load(&sh->failed))
            break;
        usleep(100);
    }
    fprintf(stderr, "ravel-failover: gave up waiting for %s\n", what);
    exit(1);
}

static int want_ready;
static int all_ready(void)
{
    return atomic_load(&sh->ready) >= want_ready;
}

static int writing(void)
{
    return atomic_load(&sh->acks) >= 200;
}

static int held(void)
{
    return atomic_load(&sh->held);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int followers = 10, rounds = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
            followers = atoi(argv[++i]);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-f FOLLOWERS] [-r ROUNDS]\n", argv[0]);
            return strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (followers < 1 || rounds < 1) {
        fprintf(stderr, "ravel-failover: need at least one follower and one round\n");
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ravel-failover-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    strcat(dir, "/db");
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    double *ms = calloc((size_t)rounds, sizeof *ms);
    pid_t *pids = calloc((size_t)followers, sizeof *pids);
    for (int r = 0; r < rounds; r++) {
        atomic_store(&sh->ready, 0);
        atomic_store(&sh->acks, 0);
        atomic_store(&sh->last_ack_ns, 0);
        want_ready = 1;
        pid_t leader = member(0, RAVEL_ROLE_LEADER);
        wait_for(all_ready, "the leader");
        want_ready = 1 + followers;
        for (int i = 0; i < followers; i++)
            pids[i] = member(i == 0, RAVEL_ROLE_FOLLOWER);
        wait_for(all_ready, "the followers");
        wait_for(writing, "the writer");
        atomic_store(&sh->hold, 1);
        wait_for(held, "the writer to pause");
        uint64_t killed = now_ns();
        kill(leader, SIGKILL);
        atomic_store(&sh->hold, 0);
        while (atomic_load(&sh->last_ack_ns) <= killed && !atomic_load(&sh->failed)) {
            if (now_ns() - killed > 10000000000ull) {
                fprintf(stderr, "ravel-failover: no write acknowledged 10 s after the kill\n");
                return 1;
            }
            usleep(50);
        }
        if (atomic_load(&sh->failed))
            return 1;
        ms[r] = (double)(atomic_load(&sh->last_ack_ns) - killed) / 1e6;
        waitpid(leader, NULL, 0);
        atomic_store(&sh->held, 0);
        for (int i = 0; i < followers; i++)
            kill(pids[i], SIGTERM);
        for (int i = 0; i < followers; i++) {
            int status;
            waitpid(pids[i], &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "ravel-failover: a follower did not end cleanly\n");
                return 1;
            }
        }
    }
    double sorted[rounds];
    memcpy(sorted, ms, sizeof sorted);
    qsort(sorted, (size_t)rounds, sizeof *sorted, cmp_double);
    double median = rounds % 2 ? sorted[rounds / 2] : (sorted[rounds / 2 - 1] + sorted[rounds / 2]) / 2;
    printf("F1 failover, %d follower%s, %d SIGKILLs: median %.2f ms, max %.2f ms, min %.2f ms\n",
           followers, followers == 1 ? "" : "s", rounds, median, sorted[rounds - 1], sorted[0]);
    char cmd[4200];
    dir[strlen(dir) - 3] = '\0';
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "ravel-failover: could not remove %s\n", dir);
    free(ms);
    free(pids);
    return 0;
}
