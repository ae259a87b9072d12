/* A writer or a watcher in its own process, for tests/party/test-watch-procs.c.
 *   watch-child writer DIR ID LOG     put w<ID>-<n> (watched) and x<ID>-<n>
 *                                     (not) until SIGUSR1 (then it appends
 *                                     "#paused" and stays in the party until
 *                                     SIGTERM) or SIGTERM, appending each
 *                                     acknowledged w key to LOG; writes its
 *                                     pid to DIR.leader when it leads;
 *                                     starts writing once DIR.go exists
 *   watch-child watcher DIR OUT MODE  watch the prefix "w" until SIGTERM,
 *                                     appending "E seq key" per change and
 *                                     "R from seq" per resync to OUT, then,
 *                                     after a resync, "L key" for each key
 *                                     of the range re-read. MODE: party
 *                                     (open DIR as a member, which never
 *                                     leads here: it starts after a leader)
 *                                     or socket (a remote handle on DIR's
 *                                     socket, so the test may kill every
 *                                     leader)
 *   watch-child sleeper DIR OUT SECS  open a watch, write DIR.ready, sleep,
 *                                     then read until a resync and write
 *                                     "resync after N" (N changes before
 *                                     it) to OUT
 *   watch-child hold DIR SECS -       open DIR in party mode, write DIR.ready,
 *                                     hold it SECS seconds or until SIGTERM
 * Exit status: 0 ok, 1 a ravel call failed, 2 usage, 3 a change out of
 * order or out of the range. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ravel.h"

static volatile sig_atomic_t stop, pause_writes;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void on_usr1(int sig)
{
    (void)sig;
    pause_writes = 1;
}

static int die(const char *what)
{
    fprintf(stderr, "watch-child[%d]: %s: %s\n", (int)getpid(), what, ravel_errmsg());
    return 1;
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

static void line(int fd, const char *s)
{
    size_t n = strlen(s);
    if (write(fd, s, n) != (ssize_t)n)
        _exit(1);
}

static int cmd_writer(char **argv)
{
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
    /* Writes start once the watch has (DIR.go), so every one counts. */
    char go[4300];
    snprintf(go, sizeof go, "%s.go", argv[0]);
    while (!stop && access(go, F_OK) != 0)
        usleep(1000);
    for (long n = 0; !stop && !pause_writes; n++) {
        char key[48], out[64];
        snprintf(key, sizeof key, "%c%s-%08ld", n % 2 ? 'x' : 'w', argv[1], n);
        if (ravel_put(db, key, strlen(key), key, strlen(key)) != RAVEL_OK)
            return die("put");
        if (key[0] == 'w') {
            snprintf(out, sizeof out, "%s\n", key);
            line(log, out);
        }
        /* At a pace a watcher sharing two busy cores keeps up with: a
         * watcher that does not is the resync case, tested apart. */
        usleep(500);
    }
    /* Paused: stay in the party (no failover) until SIGTERM. */
    line(log, "#paused\n");
    while (!stop)
        usleep(10000);
    ravel_db_close(db);
    close(log);
    return 0;
}

static int reread(ravel_db *db, int out)
{
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1;
    r.gte.data = "w";
    r.gte.len = 1;
    r.has_lt = 1;
    r.lt.data = "x";
    r.lt.len = 1;
    r.values = 0;
    ravel_iter *it;
    if (ravel_iter_new(db, &r, &it) != RAVEL_OK)
        return die("iter");
    const char *k;
    size_t kl;
    int rc;
    while ((rc = ravel_iter_next(it, &k, &kl, NULL, NULL)) == RAVEL_OK) {
        char s[80];
        snprintf(s, sizeof s, "L %.*s\n", (int)kl, k);
        line(out, s);
    }
    ravel_iter_free(it);
    return rc == RAVEL_END ? 0 : die("iter next");
}

static int cmd_watcher(char **argv)
{
    ravel_db *db;
    int rc;
    if (strcmp(argv[2], "party") == 0) {
        rc = ravel_open(&db, argv[0], NULL);
    } else {
        char addr[4300];
        snprintf(addr, sizeof addr, "unix:%s/rave-level.sock", argv[0]);
        rc = ravel_connect(&db, addr, NULL);
    }
    if (rc != RAVEL_OK)
        return die("open");
    int out = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (out < 0)
        return die("out");
    ravel_watch_options o;
    ravel_watch_options_init(&o);
    o.has_prefix = 1;
    o.prefix = "w";
    o.prefix_len = 1;
    ravel_watch *w;
    if (ravel_watch_new(db, &o, &w) != RAVEL_OK)
        return die("watch");
    line(out, "S\n"); /* started */
    uint64_t last = 0;
    int ended = 0;
    while (!stop) {
        ravel_change c;
        rc = ravel_watch_next(w, &c, 100);
        if (rc == RAVEL_ETIMEDOUT)
            continue;
        if (rc != RAVEL_OK)
            return die("next");
        char s[128];
        if (c.type == RAVEL_CHANGE_RESYNC) {
            snprintf(s, sizeof s, "R %llu %llu\n", (unsigned long long)c.resync_from,
                     (unsigned long long)c.seq);
            line(out, s);
            if (c.seq < last) {
                fprintf(stderr, "watch-child: resync to %llu after %llu\n",
                        (unsigned long long)c.seq, (unsigned long long)last);
                ended = 3;
            }
            last = c.seq;
            if (reread(db, out))
                return 1;
            continue;
        }
        if (c.klen < 1 || c.key[0] != 'w' || c.seq <= last) {
            fprintf(stderr, "watch-child: change %.*s at %llu after %llu\n", (int)c.klen, c.key,
                    (unsigned long long)c.seq, (unsigned long long)last);
            ended = 3;
        }
        last = c.seq;
        snprintf(s, sizeof s, "E %llu %.*s\n", (unsigned long long)c.seq, (int)c.klen, c.key);
        line(out, s);
    }
    ravel_watch_free(w);
    ravel_db_close(db);
    close(out);
    return ended;
}

static int cmd_sleeper(char **argv)
{
    ravel_db *db;
    if (ravel_open(&db, argv[0], NULL) != RAVEL_OK)
        return die("open");
    ravel_watch *w;
    if (ravel_watch_new(db, NULL, &w) != RAVEL_OK)
        return die("watch");
    char ready[4300];
    snprintf(ready, sizeof ready, "%s.ready", argv[0]);
    int fd = open(ready, O_WRONLY | O_CREAT, 0600);
    if (fd < 0)
        return die("ready");
    close(fd);
    sleep((unsigned)atoi(argv[2]));
    /* What was in flight when it stopped reading (the host's window of
     * frames) comes first, then the resync. */
    ravel_change c;
    int n = 0, rc;
    while ((rc = ravel_watch_next(w, &c, 2000)) == RAVEL_OK && c.type != RAVEL_CHANGE_RESYNC)
        n++;
    if (rc != RAVEL_OK)
        return die("next");
    int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char s[64];
    snprintf(s, sizeof s, "resync after %d\n", n);
    line(out, s);
    close(out);
    ravel_watch_free(w);
    ravel_db_close(db);
    return 0;
}

/* hold DIR SECONDS: open DIR in party mode (leading if first), write
 * DIR.ready, and hold it. */
static int cmd_hold(char **argv)
{
    ravel_db *db;
    if (ravel_open(&db, argv[0], NULL) != RAVEL_OK)
        return die("open");
    char ready[4300];
    snprintf(ready, sizeof ready, "%s.ready", argv[0]);
    int fd = open(ready, O_WRONLY | O_CREAT, 0600);
    if (fd < 0)
        return die("ready");
    close(fd);
    for (int i = 0; !stop && i < atoi(argv[1]) * 100; i++)
        usleep(10000);
    ravel_db_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    if (argc == 5 && strcmp(argv[1], "writer") == 0)
        return cmd_writer(argv + 2);
    if (argc == 5 && strcmp(argv[1], "watcher") == 0)
        return cmd_watcher(argv + 2);
    if (argc == 5 && strcmp(argv[1], "sleeper") == 0)
        return cmd_sleeper(argv + 2);
    if (argc == 5 && strcmp(argv[1], "hold") == 0)
        return cmd_hold(argv + 2);
    fprintf(stderr, "usage: watch-child writer|watcher|sleeper|hold DIR ...\n");
    return 2;
}
