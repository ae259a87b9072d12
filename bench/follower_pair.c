/* One party follower alone against its leader, nothing else in the run:
 * ROUNDS x (N gets of one key, then N puts), one at a time, printing
 * ops/s of each. The leader is a child process. Used to tell a change in
 * the library's follower path from a change in ravel-bench's run order
 * (bench/RESULTS.md, fifth session). Usage: ravel-follower-pair [N] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ravel.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/ravel-follower-pair-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    int p[2];
    if (n <= 0 || pipe(p) != 0)
        return 2;
    pid_t leader = fork();
    if (leader == 0) {
        ravel_db *db;
        if (ravel_open(&db, dir, NULL) != RAVEL_OK || write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char b;
    ravel_db *db;
    if (read(p[0], &b, 1) != 1 || ravel_open(&db, dir, NULL) != RAVEL_OK ||
        ravel_db_role(db) != RAVEL_ROLE_FOLLOWER) {
        fprintf(stderr, "ravel-follower-pair: no follower: %s\n", ravel_errmsg());
        kill(leader, SIGKILL);
        return 1;
    }
    ravel_put(db, "k", 1, "v", 1);
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            char *v;
            size_t vl;
            if (ravel_get(db, "k", 1, &v, &vl) == RAVEL_OK)
                ravel_free(v);
        }
        double t1 = now();
        for (int i = 0; i < n; i++)
            ravel_put(db, "k", 1, "v", 1);
        double t2 = now();
        printf("follower gets %.0f/s puts %.0f/s\n", n / (t1 - t0), n / (t2 - t1));
    }
    ravel_db_close(db);
    kill(leader, SIGTERM);
    waitpid(leader, NULL, 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
