/* Party mode across real processes: the seed scenario, many short-lived
 * members, and chaos — the leader SIGKILLed again and again while everyone
 * writes and iterates. Usage: test-party-procs PATH-TO-party-child */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../helpers.h"

static const char *child_prog;
static char *dir;
static char dbpath[4200];

static pid_t spawn(const char *a1, const char *a2, const char *a3, const char *a4)
{
    /* The child starts with SIGTERM blocked (the mask is inherited), so a
     * SIGTERM sent before it installs its handler waits for it. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid_t pid = fork();
    if (pid == 0) {
        execl(child_prog, child_prog, a1, dbpath, a2, a3, a4, (char *)NULL);
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    assert_true(pid >= 0);
    return pid;
}

/* Wait for pid at most `seconds`; its exit status, or -1 if it hung (it is
 * then killed). */
static int wait_exit(pid_t pid, double seconds)
{
    for (int i = 0; i < seconds * 100; i++) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

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

/* A directory held by a process that does not share it: ravel_open gives
 * up after lock_timeout_ms with words that say so, and without asking
 * LevelDB to open it, which would first have renamed the holder's LOG
 * file to LOG.old (LevelDB sets up its log before it takes the lock). */
static void test_locked_by_a_plain_process(void **state)
{
    (void)state;
    pid_t holder = spawn("plain", "30", "-", "-");
    char ready[4300], log[4300];
    snprintf(ready, sizeof ready, "%s.ready", dbpath);
    snprintf(log, sizeof log, "%s/LOG", dbpath);
    for (int i = 0; i < 1000 && access(ready, F_OK) != 0; i++)
        usleep(10000);
    assert_int_equal(access(ready, F_OK), 0);
    struct stat before, after;
    assert_int_equal(stat(log, &before), 0);
    ravel_options o;
    ravel_options_init(&o);
    o.lock_timeout_ms = 300;
    ravel_db *db;
    assert_int_equal(ravel_open(&db, dbpath, &o), RAVEL_ELOCKED);
    assert_non_null(strstr(ravel_errmsg(), "locked by a process that does not share it"));
    assert_int_equal(stat(log, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    kill(holder, SIGTERM);
    assert_int_equal(wait_exit(holder, 10), 0);
}

static void test_seed_scenario(void **state)
{
    (void)state;
    /* Reader first, then writers; then writers first, reader last. */
    for (int order = 0; order < 2; order++) {
        pid_t w[4], r = 0;
        if (order == 0)
            r = spawn("reader", "4", "20", NULL);
        for (int i = 0; i < 4; i++) {
            char id[8];
            snprintf(id, sizeof id, "%d", i);
            w[i] = spawn("writer", id, "2", NULL);
            usleep(50000);
        }
        if (order == 1)
            r = spawn("reader", "4", "20", NULL);
        for (int i = 0; i < 4; i++)
            assert_int_equal(wait_exit(w[i], 30), 0);
        assert_int_equal(wait_exit(r, 30), 0);
    }
}

static void test_ten_members_put_and_exit(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        pid_t p[10];
        for (int i = 0; i < 10; i++) {
            char k[32], v[32];
            snprintf(k, sizeof k, "r%02d-k%d", round, i);
            snprintf(v, sizeof v, "%d", i);
            p[i] = spawn("put", k, v, NULL);
        }
        for (int i = 0; i < 10; i++)
            assert_int_equal(wait_exit(p[i], 30), 0);
    }
    ravel_db *db;
    OK(ravel_open_local(&db, dbpath, NULL));
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < 10; i++) {
            char k[32], *v;
            size_t vl;
            snprintf(k, sizeof k, "r%02d-k%d", round, i);
            OK(ravel_get(db, k, strlen(k), &v, &vl));
            ravel_free(v);
        }
    ravel_db_close(db);
}

static pid_t read_leader(void)
{
    char path[4300];
    snprintf(path, sizeof path, "%s.leader", dbpath);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

static void test_chaos_sigkill_the_leader(void **state)
{
    (void)state;
    enum { WORKERS = 4, KILLS = 20, MAXW = WORKERS + KILLS };
    pid_t pids[MAXW];
    int alive[MAXW] = {0};
    char logs[MAXW][4300];
    int n = 0;
    for (; n < WORKERS; n++) {
        char id[8];
        snprintf(id, sizeof id, "%d", n);
        snprintf(logs[n], sizeof logs[n], "%s/worker%d.log", dir, n);
        pids[n] = spawn("chaos", id, logs[n], NULL);
        alive[n] = 1;
    }
    int kills = 0;
    pid_t last = 0;
    while (kills < KILLS) {
        /* Wait for a leader elected since the last kill, and let work
         * happen under it. */
        pid_t leader = 0;
        for (int i = 0; i < 1000 && (!leader || leader == last); i++) {
            usleep(10000);
            leader = read_leader();
        }
        assert_true(leader && leader != last);
        usleep(100000);
        int idx = -1;
        for (int i = 0; i < n; i++)
            if (alive[i] && pids[i] == leader)
                idx = i;
        assert_true(idx >= 0);
        kill(leader, SIGKILL);
        waitpid(leader, NULL, 0);
        alive[idx] = 0;
        last = leader;
        kills++;
        /* A replacement joins, so the party keeps its size. */
        char id[8];
        snprintf(id, sizeof id, "%d", n);
        snprintf(logs[n], sizeof logs[n], "%s/worker%d.log", dir, n);
        pids[n] = spawn("chaos", id, logs[n], NULL);
        alive[n] = 1;
        n++;
    }
    for (int i = 0; i < n; i++)
        if (alive[i])
            kill(pids[i], SIGTERM);
    for (int i = 0; i < n; i++)
        if (alive[i]) {
            int st = wait_exit(pids[i], 30);
            if (st != 0)
                fprintf(stderr, "worker %d of %d (pid %d) ended with %d\n", i, n, (int)pids[i], st);
            assert_int_equal(st, 0); /* no hang, no bad iterator */
        }
    /* Every acknowledged write is there, as LevelDB itself sees it. */
    ravel_db *db;
    OK(ravel_open_local(&db, dbpath, NULL));
    long total = 0;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(logs[i], "r");
        if (!f)
            continue;
        long seq;
        while (fscanf(f, "%ld", &seq) == 1) {
            char k[48], *v;
            size_t vl;
            snprintf(k, sizeof k, "c%d-%08ld", i, seq);
            OK(ravel_get(db, k, strlen(k), &v, &vl));
            ravel_free(v);
            total++;
        }
        fclose(f);
    }
    ravel_db_close(db);
    printf("# %d SIGKILLed leaders, %ld acknowledged writes all present\n", kills, total);
    assert_true(total > 0);
}

/* Counter chaos: four processes increment one counter, each by reading it
 * and writing it back +1 under a check, while the leader is SIGKILLed
 * again and again. Every value from 1 to the final count must have been
 * written by exactly one acknowledged increment, except at most one per
 * killed process (its last: applied, not acknowledged). A replay that
 * answered ECONFLICT for an increment that had been applied (without
 * exactly-once) would leave a value no live process acknowledged. */
static void test_counter_chaos(void **state)
{
    (void)state;
    enum { WORKERS = 4, KILLS = 100, MAXW = WORKERS + KILLS };
    pid_t pids[MAXW];
    int alive[MAXW] = {0};
    char logs[MAXW][4300];
    int n = 0;
    for (; n < WORKERS; n++) {
        char id[8];
        snprintf(id, sizeof id, "%d", n);
        snprintf(logs[n], sizeof logs[n], "%s/counter%d.log", dir, n);
        pids[n] = spawn("counter", id, logs[n], NULL);
        alive[n] = 1;
    }
    int kills = 0;
    pid_t last = 0;
    while (kills < KILLS) {
        pid_t leader = 0;
        for (int i = 0; i < 1000 && (!leader || leader == last); i++) {
            usleep(2000);
            leader = read_leader();
        }
        assert_true(leader && leader != last);
        usleep(20000 + (kills % 5) * 5000); /* some increments under each leader */
        int idx = -1;
        for (int i = 0; i < n; i++)
            if (alive[i] && pids[i] == leader)
                idx = i;
        assert_true(idx >= 0);
        kill(leader, SIGKILL);
        waitpid(leader, NULL, 0);
        alive[idx] = 0;
        last = leader;
        kills++;
        char id[8];
        snprintf(id, sizeof id, "%d", n);
        snprintf(logs[n], sizeof logs[n], "%s/counter%d.log", dir, n);
        pids[n] = spawn("counter", id, logs[n], NULL);
        alive[n] = 1;
        n++;
    }
    for (int i = 0; i < n; i++)
        if (alive[i])
            kill(pids[i], SIGTERM);
    for (int i = 0; i < n; i++)
        if (alive[i])
            assert_int_equal(wait_exit(pids[i], 30), 0);
    ravel_db *db;
    OK(ravel_open_local(&db, dbpath, NULL));
    char *v;
    size_t vl;
    OK(ravel_get(db, "counter", 7, &v, &vl));
    char num[32];
    snprintf(num, sizeof num, "%.*s", (int)vl, v);
    ravel_free(v);
    ravel_db_close(db);
    long final = atol(num);
    long *seen = calloc((size_t)final + 1, sizeof *seen);
    /* The value a killed process tried last without an answer: the one
     * increment of it that may be applied and unacknowledged. */
    char *last_try_of_killed = calloc((size_t)final + 2, 1);
    long acked = 0;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(logs[i], "r");
        if (!f)
            continue;
        char kind;
        long value, tried = 0;
        while (fscanf(f, " %c %ld", &kind, &value) == 2) {
            if (kind == 't') {
                tried = value;
                continue;
            }
            assert_true(value >= 1 && value <= final);
            seen[value]++;
            acked++;
            tried = 0;
        }
        fclose(f);
        if (!alive[i] && tried >= 1 && tried <= final)
            last_try_of_killed[tried] = 1;
    }
    long missing = 0;
    for (long value = 1; value <= final; value++) {
        if (seen[value] > 1)
            fail_msg("value %ld acknowledged %ld times", value, seen[value]);
        if (seen[value] == 0 && !last_try_of_killed[value])
            fail_msg("value %ld was written but no live process acknowledged it, and no "
                     "killed one was trying it",
                     value);
        missing += seen[value] == 0;
    }
    free(seen);
    free(last_try_of_killed);
    printf("# %d SIGKILLed leaders; counter %ld: %ld increments acknowledged, %ld applied "
           "but unacknowledged (at most one per killed process)\n",
           kills, final, acked, missing);
    assert_true(final > 0);
    assert_true(missing <= kills);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-party-child\n", argv[0]);
        return 2;
    }
    child_prog = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_locked_by_a_plain_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_scenario, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ten_members_put_and_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chaos_sigkill_the_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_chaos, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
