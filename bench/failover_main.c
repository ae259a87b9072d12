/*
 * ravel-failover — SPEC workload F1 on its own (ravel-bench runs it as
 * well): median, max and min over the rounds.
 *
 * usage: ravel-failover [-f FOLLOWERS] [-r ROUNDS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "failover.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ravel-failover [-f FOLLOWERS] [-r ROUNDS]\n"
            "SIGKILL a party's leader while a follower writes; report the time\n"
            "from the kill to that follower's next acknowledged write.\n"
            "  -f FOLLOWERS  followers per party (default 10)\n"
            "  -r ROUNDS     parties, one SIGKILL each (default 20)\n");
}

static int parse_count(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 10000) {
        fprintf(stderr, "ravel-failover: want a number from 1 to 10000, not '%s'\n", s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int followers = 10, rounds = 20;
    char root[4096], dir[4200];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
            followers = parse_count(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            rounds = parse_count(argv[++i]);
        } else {
            usage(stderr);
            return 2;
        }
    }

    double *ms = calloc((size_t)rounds, sizeof *ms);
    if (ms == NULL) {
        fprintf(stderr, "ravel-failover: out of memory\n");
        return 1;
    }
    if (make_scratch_dir(root, sizeof root, "ravel-failover") != 0)
        return 1;
    snprintf(dir, sizeof dir, "%s/db", root);
    int rc = failover_measure(dir, followers, rounds, ms);
    remove_tree(root);
    if (rc != 0)
        return 1;

    sort_doubles(ms, (size_t)rounds);
    printf("F1 failover, %d follower%s, %d SIGKILLs: median %.2f ms, max %.2f ms, min %.2f ms\n",
           followers, followers == 1 ? "" : "s", rounds, percentile(ms, (size_t)rounds, 0.5),
           ms[rounds - 1], ms[0]);
    free(ms);
    return 0;
}
