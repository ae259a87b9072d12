/* ravel demo: the scenario rave-level made famous, live — writers and a
 * reader share one directory in party mode, the leader is SIGKILLed
 * midway, and everyone carries on. The reader watches "a" and prints each
 * change as it happens. */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ravel.h"

static double t0;
/* This run's records are "acked/RUN/..." (RUN: the demo's pid and start
 * time), so that a directory kept from an earlier run counts only this
 * one's. */
static char run_id[48];

static void say(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *who, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("[%5.2fs] %-9s %s\n", cli_now() - t0, who, msg);
    fflush(stdout);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Shared with the demo's children (an anonymous shared mapping made before
 * they are forked): who leads now. */
static volatile int *leader_pid;
static volatile sig_atomic_t stop_flag;
static char member_name[16];

static void on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_leader(void *ud)
{
    (void)ud;
    *leader_pid = (int)getpid();
    say(member_name, "is the leader now (pid %d): it serves the others", (int)getpid());
}

static ravel_db *demo_open(const char *dir)
{
    ravel_options o;
    ravel_options_init(&o);
    o.on_leader = on_leader;
    ravel_db *db;
    if (ravel_open(&db, dir, &o) != RAVEL_OK) {
        say(member_name, "cannot open: %s", ravel_errmsg());
        _exit(EXIT_FAIL);
    }
    if (ravel_db_role(db) == RAVEL_ROLE_FOLLOWER)
        say(member_name, "joined as a follower (pid %d)", (int)getpid());
    return db;
}

/* A writer: put "a" = its own counter every 300 ms; report puts that had
 * to wait for a new leader. */
static pid_t demo_writer(int id, const char *dir)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, on_term);
    snprintf(member_name, sizeof member_name, "writer %d", id);
    ravel_db *db = demo_open(dir);
    srand((unsigned)getpid());
    int base = rand() % 90000 + 10000, acked = 0;
    while (!stop_flag) {
        char val[32];
        snprintf(val, sizeof val, "%d", base + acked);
        double t = cli_now();
        if (ravel_put(db, "a", 1, val, strlen(val)) != RAVEL_OK) {
            say(member_name, "put failed: %s", ravel_errmsg());
            _exit(EXIT_FAIL);
        }
        acked++;
        double took = (cli_now() - t) * 1000;
        if (took > 5)
            say(member_name, "put a=%s was acknowledged after %.1f ms", val, took);
        sleep_ms(300);
    }
    char key[96], val[32];
    snprintf(key, sizeof key, "acked/%s/%d/%d", run_id, id, (int)getpid());
    snprintf(val, sizeof val, "%d", acked);
    if (ravel_put(db, key, strlen(key), val, strlen(val)) != RAVEL_OK)
        _exit(EXIT_FAIL);
    say(member_name, "stopping: %d puts, every one acknowledged", acked);
    ravel_db_close(db);
    _exit(EXIT_OK);
}

/* Print a's value, read now (at the start, and after a resync). */
static void show_a(ravel_db *db, const char *why)
{
    char *v;
    size_t vl;
    int rc = ravel_get(db, "a", 1, &v, &vl);
    if (rc == RAVEL_OK) {
        say(member_name, "a=%.*s (%s)", (int)vl, v, why);
        ravel_free(v);
    } else if (rc != RAVEL_ENOTFOUND) {
        say(member_name, "get failed: %s", ravel_errmsg());
        _exit(EXIT_FAIL);
    }
}

/* The reader watches "a" instead of polling it: each change the others
 * make is printed as it happens, with its sequence number. */
static pid_t demo_reader(const char *dir)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, on_term);
    snprintf(member_name, sizeof member_name, "reader");
    ravel_db *db = demo_open(dir);
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1, r.gte = (ravel_bound){"a", 1};
    r.has_lte = 1, r.lte = (ravel_bound){"a", 1};
    ravel_watch_options o;
    ravel_watch_options_init(&o);
    o.range = &r;
    ravel_watch *w;
    if (ravel_watch_new(db, &o, &w) != RAVEL_OK) {
        say(member_name, "watch failed: %s", ravel_errmsg());
        _exit(EXIT_FAIL);
    }
    show_a(db, "read once; from now on watched");
    while (!stop_flag) {
        ravel_change c;
        int rc = ravel_watch_next(w, &c, 200);
        if (rc == RAVEL_ETIMEDOUT)
            continue;
        if (rc != RAVEL_OK) {
            say(member_name, "watch failed: %s", ravel_errmsg());
            _exit(EXIT_FAIL);
        }
        if (c.type == RAVEL_CHANGE_PUT) {
            say(member_name, "a=%.*s (change %llu)", (int)c.vlen, c.val, (unsigned long long)c.seq);
        } else if (c.type == RAVEL_CHANGE_DEL) {
            say(member_name, "a deleted (change %llu)", (unsigned long long)c.seq);
        } else {
            char why[160];
            snprintf(why, sizeof why, "read again: a new leader without the change log cannot "
                     "tell what came after change %llu", (unsigned long long)c.resync_from);
            show_a(db, why);
        }
    }
    ravel_watch_free(w);
    ravel_db_close(db);
    _exit(EXIT_OK);
}

int demo_main(const cli_command *cmd, int argc, char **argv)
{
    char dir[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ravel-demo", tmp && *tmp ? tmp : "/tmp");
    double seconds = 6;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s", argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_print_help(cmd);
            return EXIT_OK;
        } else
            return cli_usage(cmd, "unknown demo argument %s", argv[i]);
    }
    if (seconds < 1)
        return cli_usage(cmd, "--seconds must be at least 1");
    leader_pid = mmap(NULL, sizeof *leader_pid, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    if (leader_pid == MAP_FAILED) {
        fprintf(stderr, "ravel: demo: cannot map shared memory: %s\n", strerror(errno));
        return EXIT_FAIL;
    }
    t0 = cli_now();
    snprintf(run_id, sizeof run_id, "%d.%lld", (int)getpid(), (long long)time(NULL));
    say("demo", "five processes open %s with ravel_open(), in no particular order", dir);
    /* Members are forked from this process, which opens nothing itself, so
     * each starts without threads of ours. */
    pid_t kids[6];
    int ids[6] = {1, 2, 0, 3, 4, 0};
    for (int i = 0; i < 5; i++) {
        kids[i] = ids[i] ? demo_writer(ids[i], dir) : demo_reader(dir);
        sleep_ms(100);
    }
    sleep_ms((int)(seconds * 500) - 500);
    int victim = *leader_pid, idx = -1;
    for (int i = 0; i < 5; i++)
        if (kids[i] == victim)
            idx = i;
    if (idx < 0) {
        fprintf(stderr, "ravel: demo: no leader was elected\n");
        return EXIT_FAIL;
    }
    char who[32] = "the reader";
    if (ids[idx])
        snprintf(who, sizeof who, "writer %d", ids[idx]);
    say("demo", "SIGKILL the leader, %s (pid %d), in the middle of everything", who, victim);
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    sleep_ms(700);
    say("demo", "start the killed member again: it joins whoever leads now");
    kids[idx] = ids[idx] ? demo_writer(ids[idx], dir) : demo_reader(dir);
    sleep_ms((int)(seconds * 500));
    say("demo", "stop everyone");
    int ok = 1;
    for (int i = 0; i < 5; i++)
        kill(kids[i], SIGTERM);
    for (int i = 0; i < 5; i++) {
        int status;
        waitpid(kids[i], &status, 0);
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    /* Check with LevelDB directly that every writer's final record is there. */
    ravel_db *db;
    int rc = ravel_open_local(&db, dir, NULL);
    if (rc != RAVEL_OK)
        return cli_fail(rc, "cannot reopen the demo database");
    ravel_range r;
    ravel_range_init(&r);
    char lo[64], hi[64];
    int n = snprintf(lo, sizeof lo, "acked/%s/", run_id);
    memcpy(hi, lo, (size_t)n);
    hi[n - 1] = '/' + 1; /* every key that starts with lo sorts before hi */
    r.has_gte = 1, r.gte = (ravel_bound){lo, (size_t)n};
    r.has_lt = 1, r.lt = (ravel_bound){hi, (size_t)n};
    ravel_iter *it;
    int records = 0;
    if (ravel_iter_new(db, &r, &it) == RAVEL_OK) {
        while (ravel_iter_next(it, NULL, NULL, NULL, NULL) == RAVEL_OK)
            records++;
        ravel_iter_free(it);
    }
    ravel_db_close(db);
    say("demo", ok ? "done: the leader died, a new one took over, no request failed, "
                     "no process saw a lock error (%d writer records in LevelDB)"
                   : "FAILED: a process reported an error (see above; %d writer records)",
        records);
    return ok ? EXIT_OK : EXIT_FAIL;
}

