/* One party member in its own process, for the multi-process tests.
 *   party-child put DIR KEY VALUE        put one key and exit
 *   party-child writer DIR ID SECONDS    seed scenario: put a and w<ID>
 *   party-child reader DIR N SECONDS     read until all of w0..w<N-1> seen
 *   party-child member DIR ID SECONDS IDS  the mixed-party member of
 *                                        tests/interop/rave_member.js
 *   party-child chaos DIR ID LOG         write and iterate until SIGTERM,
 *                                        appending each acknowledged key's
 *                                        number to LOG; writes its pid to
 *                                        DIR.leader when it becomes leader
 *   party-child counter DIR ID LOG       increment the key "counter" until
 *                                        SIGTERM: read it, write it back +1
 *                                        under a check; append "t V" to LOG
 *                                        before each try of value V and
 *                                        "a V" once acknowledged; writes its
 *                                        pid to DIR.leader when it leads
 *   party-child plain DIR SECONDS - -   hold DIR with a plain local handle
 *                                        (no sharing), DIR.ready once open
 *   party-child party DIR SECONDS - -   the same with a party handle (it
 *                                        leads if it is first)
 *   party-child del DIR KEY -            delete one key and exit
 * Exit status: 0 ok, 1 a ravel call failed, 2 usage, 3 an iterator
 * skipped or repeated an entry. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/session.h"
#include "ravel.h"

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int die(const char *what)
{
    fprintf(stderr, "party-child[%d]: %s: %s\n", (int)getpid(), what, ravel_errmsg());
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char leader_file[4200];
static void note_leader(void *ud)
{
    (void)ud;
    char tmp[4300], pid[32];
    snprintf(tmp, sizeof tmp, "%s.%d", leader_file, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return;
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)n) == n)
        rename(tmp, leader_file);
    close(fd);
}

static int cmd_put(char **argv)
{
    ravel_db *db;
    if (ravel_open(&db, argv[0], NULL) != RAVEL_OK)
        return die("open");
    if (ravel_put(db, argv[1], strlen(argv[1]), argv[2], strlen(argv[2])) != RAVEL_OK)
        return die("put");
    ravel_db_close(db);
    return 0;
}

static int cmd_del(char **argv)
{
    ravel_db *db;
    if (ravel_open(&db, argv[0], NULL) != RAVEL_OK)
        return die("open");
    if (ravel_del(db, argv[1], strlen(argv[1])) != RAVEL_OK)
        return die("del");
    ravel_db_close(db);
    return 0;
}

static int cmd_writer(char **argv)
{
    ravel_db *db;
    if (ravel_open(&db, argv[0], NULL) != RAVEL_OK)
        return die("open");
    double end = now_s() + atof(argv[2]);
    char key[32], val[64];
    snprintf(key, sizeof key, "w%s", argv[1]);
    for (int n = 0; now_s() < end; n++) {
        snprintf(val, sizeof val, "%s:%d", argv[1], n);
        if (ravel_put(db, "a", 1, val, strlen(val)) != RAVEL_OK ||
            ravel_put(db, key, strlen(key), val, strlen(val)) != RAVEL_OK)
            return die("put");
        usleep(20000);
    }
    ravel_db_close(db);
    return 0;
}

static int cmd_reader(char **argv)
{
    ravel_db *db;
    if (ravel_open(&db, argv[0], NULL) != RAVEL_OK)
        return die("open");
    int n = atoi(argv[1]);
    double end = now_s() + atof(argv[2]);
    int seen = 0, a_reads = 0;
    char seen_by[64] = {0};
    while (seen < n && now_s() < end) {
        for (int i = 0; i < n && i < 64; i++) {
            char key[32], *v;
            size_t vl;
            snprintf(key, sizeof key, "w%d", i);
            int rc = ravel_get(db, key, strlen(key), &v, &vl);
            if (rc == RAVEL_OK) {
                seen += !seen_by[i];
                seen_by[i] = 1;
                ravel_free(v);
            } else if (rc != RAVEL_ENOTFOUND) {
                return die("get");
            }
        }
        char *v;
        size_t vl;
        if (ravel_get(db, "a", 1, &v, &vl) == RAVEL_OK) {
            a_reads++;
            ravel_free(v);
        }
        usleep(10000);
    }
    ravel_db_close(db);
    printf("reader saw %d of %d writers (%d reads of a)\n", seen, n, a_reads);
    return seen == n ? 0 : 1;
}

static int cmd_member(char **argv)
{
    const char *id = argv[1];
    snprintf(leader_file, sizeof leader_file, "%s.leader", argv[0]);
    ravel_options o;
    ravel_options_init(&o);
    o.on_leader = note_leader;
    ravel_db *db;
    if (ravel_open(&db, argv[0], &o) != RAVEL_OK)
        return die("open");
    char ids[256];
    snprintf(ids, sizeof ids, "%s", argv[3]);
    char *expected[32];
    int nexp = 0;
    for (char *t = strtok(ids, ","); t && nexp < 32; t = strtok(NULL, ","))
        expected[nexp++] = t;
    int seen[32] = {0}, nseen = 0, puts = 0;
    double end = now_s() + atof(argv[2]);
    char key[32], val[64];
    snprintf(key, sizeof key, "m%s", id);
    while (now_s() < end) {
        snprintf(val, sizeof val, "%s:%d", id, puts);
        if (ravel_put(db, key, strlen(key), val, strlen(val)) != RAVEL_OK)
            return die("put");
        puts++;
        for (int i = 0; i < nexp; i++) {
            char k[32], *v;
            size_t vl;
            snprintf(k, sizeof k, "m%s", expected[i]);
            int rc = ravel_get(db, k, strlen(k), &v, &vl);
            if (rc == RAVEL_OK) {
                nseen += !seen[i];
                seen[i] = 1;
                ravel_free(v);
            } else if (rc != RAVEL_ENOTFOUND) {
                return die("get");
            }
        }
        usleep(20000);
    }
    int led = ravel_db_role(db) == RAVEL_ROLE_LEADER;
    ravel_db_close(db);
    printf("ravel member %s: %d puts, saw %d of %d members, leads=%d\n", id, puts, nseen, nexp, led);
    return nseen == nexp ? 0 : 1;
}

/* Iterate over this worker's own keys: exactly 0..count-1, in order. */
static int check_own(ravel_db *db, const char *id, long count)
{
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "c%s-", id);
    snprintf(hi, sizeof hi, "c%s.", id);
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1, r.gte = (ravel_bound){lo, strlen(lo)};
    r.has_lt = 1, r.lt = (ravel_bound){hi, strlen(hi)};
    r.values = 0;
    ravel_iter *it;
    if (ravel_iter_new(db, &r, &it) != RAVEL_OK)
        return die("iterator");
    const char *k;
    size_t kl;
    long n = 0;
    int rc;
    while ((rc = ravel_iter_next(it, &k, &kl, NULL, NULL)) == RAVEL_OK) {
        char want[48];
        snprintf(want, sizeof want, "c%s-%08ld", id, n);
        if (kl != strlen(want) || memcmp(k, want, kl) != 0) {
            fprintf(stderr, "party-child: iterator gave %.*s where %s was due\n", (int)kl, k, want);
            ravel_iter_free(it);
            return 3;
        }
        n++;
    }
    ravel_iter_free(it);
    if (rc != RAVEL_END)
        return die("iterator next");
    if (n != count) {
        fprintf(stderr, "party-child: iterator gave %ld of my %ld keys\n", n, count);
        return 3;
    }
    return 0;
}

static int cmd_chaos(char **argv)
{
    const char *id = argv[1];
    snprintf(leader_file, sizeof leader_file, "%s.leader", argv[0]);
    ravel_options o;
    ravel_options_init(&o);
    o.on_leader = note_leader;
    ravel_db *db;
    if (ravel_open(&db, argv[0], &o) != RAVEL_OK)
        return die("open");
    int log = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (log < 0)
        return die("log");
    long seq = 0;
    while (!stop) {
        char key[48], line[32];
        snprintf(key, sizeof key, "c%s-%08ld", id, seq);
        if (ravel_put(db, key, strlen(key), key, strlen(key)) != RAVEL_OK)
            return die("put");
        /* Acknowledged: on record before anything else can kill us. */
        int n = snprintf(line, sizeof line, "%ld\n", seq);
        if (write(log, line, (size_t)n) != n)
            return die("log write");
        seq++;
        if (seq % 100 == 0) {
            int rc = check_own(db, id, seq);
            if (rc)
                return rc;
        }
    }
    int rc = check_own(db, id, seq);
    ravel_db_close(db);
    close(log);
    return rc;
}

/* While this process leads, its host answers each write 2 ms after
 * LevelDB applied it: a SIGKILL of the leader then often falls between
 * the two, and a follower's replay must be recognised (exactly-once). */
static int slow_reply(void)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    return 0;
}

static int cmd_counter(char **argv)
{
    rv_hsession_fault_after_write = slow_reply;
    snprintf(leader_file, sizeof leader_file, "%s.leader", argv[0]);
    ravel_options o;
    ravel_options_init(&o);
    o.on_leader = note_leader;
    ravel_db *db;
    if (ravel_open(&db, argv[0], &o) != RAVEL_OK)
        return die("open");
    int log = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (log < 0)
        return die("log");
    ravel_batch *b = ravel_batch_new();
    while (!stop) {
        char *v = NULL, next[32], line[32];
        size_t vl = 0;
        int rc = ravel_get(db, "counter", 7, &v, &vl);
        if (rc != RAVEL_OK && rc != RAVEL_ENOTFOUND)
            return die("get");
        long cur = 0;
        ravel_batch_clear(b);
        if (rc == RAVEL_OK) {
            snprintf(next, sizeof next, "%.*s", (int)vl, v);
            cur = atol(next);
            ravel_batch_check(b, "counter", 7, v, vl);
            ravel_free(v);
        } else {
            ravel_batch_check_absent(b, "counter", 7);
        }
        int n = snprintf(next, sizeof next, "%ld", cur + 1);
        ravel_batch_put(b, "counter", 7, next, (size_t)n);
        n = snprintf(line, sizeof line, "t %ld\n", cur + 1);
        if (write(log, line, (size_t)n) != n)
            return die("log write");
        rc = ravel_write(db, b);
        if (rc == RAVEL_ECONFLICT)
            continue;
        if (rc != RAVEL_OK)
            return die("write");
        /* Acknowledged: on record before anything else can kill us. */
        n = snprintf(line, sizeof line, "a %ld\n", cur + 1);
        if (write(log, line, (size_t)n) != n)
            return die("log write");
    }
    ravel_batch_free(b);
    ravel_db_close(db);
    close(log);
    return 0;
}

/* plain DIR SECONDS: hold the directory without sharing it (shared:
 * as a party member). */
static int cmd_plain(char **argv, int shared)
{
    ravel_db *db;
    if ((shared ? ravel_open(&db, argv[0], NULL) : ravel_open_local(&db, argv[0], NULL)) !=
        RAVEL_OK)
        return die(shared ? "ravel_open" : "ravel_open_local");
    char ready[4300];
    snprintf(ready, sizeof ready, "%s.ready", argv[0]);
    int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return die("create the ready file");
    close(fd);
    double end = now_s() + atof(argv[1]);
    while (!stop && now_s() < end) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    ravel_db_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    /* The test starts us with SIGTERM blocked, so one sent early waits
     * for the handler. */
    signal(SIGTERM, on_term);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    if (argc >= 5 && strcmp(argv[1], "plain") == 0)
        return cmd_plain(argv + 2, 0);
    if (argc >= 5 && strcmp(argv[1], "party") == 0)
        return cmd_plain(argv + 2, 1);
    if (argc >= 5 && strcmp(argv[1], "del") == 0)
        return cmd_del(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "put") == 0)
        return cmd_put(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "writer") == 0)
        return cmd_writer(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "reader") == 0)
        return cmd_reader(argv + 2);
    if (argc >= 6 && strcmp(argv[1], "member") == 0)
        return cmd_member(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "chaos") == 0)
        return cmd_chaos(argv + 2);
    if (argc == 5 && strcmp(argv[1], "counter") == 0)
        return cmd_counter(argv + 2);
    fprintf(stderr, "usage: party-child put|del|writer|reader|member|chaos|counter|plain|party ...\n");
    return 2;
}
