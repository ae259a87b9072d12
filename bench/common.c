#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include "common.h"

#include <errno.h>
#include <ftw.h>
#include <leveldb/c.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ravel.h"

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int g_shared_memory = 1;

const struct ravel_options *bench_options(void)
{
    static ravel_options o;
    ravel_options_init(&o);
    o.shared_memory = g_shared_memory;
    return &o;
}

void sort_doubles(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
}

double percentile(const double *sorted, size_t n, double p)
{
    double rank = p * (double)(n - 1);
    size_t lo = (size_t)rank;
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (rank - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

int reap(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int make_scratch_dir(char *out, size_t size, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if (snprintf(out, size, "%s/%s.XXXXXX", tmp, prefix) >= (int)size) {
        fprintf(stderr, "%s: TMPDIR path too long\n", prefix);
        return -1;
    }
    if (mkdtemp(out) == NULL) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", prefix, out, strerror(errno));
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
    return 0; /* keep going: remove as much as we can */
}

void remove_tree(const char *path)
{
    /* FTW_DEPTH visits a directory's contents before the directory itself;
     * FTW_PHYS keeps a symlink from leading us out of the tree. */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Cleanup and errors                                                   */
/* ------------------------------------------------------------------ */

pid_t g_main_pid;
pid_t g_server = -1;
pid_t g_worker = -1;
char g_root[4096];

static struct {
    int members, releases, released; /* in the main process */
    pid_t pid[CREW_MAX];             /* -1 once reaped */
    int from[CREW_MAX];              /* the read end of each member's pipe */
    int go[CREW_RELEASES][2];        /* end of file on go[r][0]: release r */
    int to_main;                     /* in a member: the write end of its pipe */
    int waited;                      /* in a member: releases seen */
} g_crew;

void cleanup(void)
{
    if (g_worker > 0) {
        kill(g_worker, SIGKILL);
        reap(g_worker);
        g_worker = -1;
    }
    if (g_server > 0) {
        kill(g_server, SIGKILL);
        reap(g_server);
        g_server = -1;
    }
    for (int i = 0; i < g_crew.members; i++) {
        if (g_crew.pid[i] > 0) {
            kill(g_crew.pid[i], SIGKILL);
            reap(g_crew.pid[i]);
            g_crew.pid[i] = -1;
        }
    }
    if (g_root[0] != '\0') {
        remove_tree(g_root);
        g_root[0] = '\0';
    }
}

void fail(void)
{
    /* A child leaves the cleanup to the main process, which sees it fail. */
    if (getpid() != g_main_pid)
        _exit(1);
    cleanup();
    exit(1);
}

void die(const char *what, const char *detail)
{
    fprintf(stderr, "ravel-bench: %s: %s\n", what, detail);
    fail();
}

/* ravel_errmsg() is per thread, so this must run on the thread whose call
 * failed, right after it. */
void die_ravel(const char *what, int status)
{
    fprintf(stderr, "ravel-bench: %s: %s (%s): %s\n", what, ravel_strerror(status),
            ravel_errname(status), ravel_errmsg());
    fail();
}

/* A failure reported to a callback happened on the I/O thread, so this
 * thread's ravel_errmsg() knows nothing about it: report the code only. */
void die_async(const char *what, int status)
{
    fprintf(stderr, "ravel-bench: %s: %s (%s)\n", what, ravel_strerror(status),
            ravel_errname(status));
    fail();
}

void die_leveldb(const char *what, char *err)
{
    fprintf(stderr, "ravel-bench: %s: %s\n", what, err);
    leveldb_free(err);
    fail();
}

void write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write to pipe", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
}

size_t read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("read from pipe", strerror(errno));
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* ------------------------------------------------------------------ */
/* Data                                                                 */
/* ------------------------------------------------------------------ */

void make_key(char key[KEY_LEN], uint64_t index)
{
    key[0] = 'k';
    for (int i = KEY_DIGITS; i >= 1; i--) {
        key[i] = (char)('0' + index % 10);
        index /= 10;
    }
}

char g_filler[VALUE_LEN + FILLER_SPREAD];

uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

void init_filler(void)
{
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (size_t i = 0; i < sizeof g_filler; i++)
        g_filler[i] = (char)('a' + next_random(&x) % 26);
}

const char *value_for(uint64_t index)
{
    return g_filler + index % FILLER_SPREAD;
}

/* ------------------------------------------------------------------ */
/* Processes                                                            */
/* ------------------------------------------------------------------ */

pid_t fork_piped(int *fd)
{
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    close(fds[pid == 0 ? 0 : 1]);
    *fd = fds[pid == 0 ? 1 : 0];
    return pid;
}

int spawn_capture(char *const argv[], char *out, size_t size)
{
    int fd;
    pid_t pid = fork_piped(&fd);
    if (pid == 0) {
        if (dup2(fd, STDOUT_FILENO) < 0)
            _exit(127);
        close(fd);
        execvp(argv[0], argv);
        _exit(127);
    }
    size_t got = read_full(fd, out, size - 1);
    out[got] = '\0';
    close(fd);
    int status = reap(pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void run_child(const char *what, void (*fn)(const void *arg, int fd), const void *arg, void *out,
               size_t size)
{
    int fd;
    g_worker = fork_piped(&fd);
    if (g_worker == 0) {
        fn(arg, fd);
        _exit(0);
    }
    int status = reap(g_worker);
    g_worker = -1;
    size_t got = read_full(fd, out, size);
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != size)
        die(what, "child process failed");
}

/* ------------------------------------------------------------------ */
/* A crew                                                               */
/* ------------------------------------------------------------------ */

void crew_start(int members, int releases, void (*fn)(int index, const void *arg),
                const void *arg)
{
    if (members < 1 || members > CREW_MAX || releases < 1 || releases > CREW_RELEASES)
        die("crew_start", "too many members or releases");
    g_crew.members = 0;
    g_crew.releases = releases;
    g_crew.released = 0;
    for (int r = 0; r < releases; r++) {
        if (pipe(g_crew.go[r]) != 0)
            die("pipe", strerror(errno));
    }
    for (int i = 0; i < members; i++) {
        int fd;
        char ready;
        pid_t pid = fork_piped(&fd);
        if (pid == 0) {
            /* Only the main process may hold the releases' write ends,
             * or their end of file would never come. */
            for (int r = 0; r < releases; r++)
                close(g_crew.go[r][1]);
            for (int j = 0; j < i; j++)
                close(g_crew.from[j]);
            g_crew.to_main = fd;
            g_crew.waited = 0;
            fn(i, arg);
            _exit(0);
        }
        g_crew.pid[i] = pid;
        g_crew.from[i] = fd;
        g_crew.members = i + 1;
        if (read_full(fd, &ready, 1) != 1)
            die("crew", "a member failed to open its database");
    }
    for (int r = 0; r < releases; r++)
        close(g_crew.go[r][0]);
}

void crew_ready(void)
{
    write_full(g_crew.to_main, "r", 1);
}

void crew_wait(void)
{
    char c;
    ssize_t r;
    if (g_crew.waited >= g_crew.releases)
        die("crew_wait", "no release left");
    while ((r = read(g_crew.go[g_crew.waited][0], &c, 1)) < 0 && errno == EINTR)
        ;
    if (r != 0)
        die("crew_wait", "release pipe");
    close(g_crew.go[g_crew.waited++][0]);
}

void crew_send(const void *msg, size_t size)
{
    write_full(g_crew.to_main, msg, size);
}

uint64_t crew_release(void)
{
    if (g_crew.released >= g_crew.releases)
        die("crew_release", "no release left");
    uint64_t t = now_ns();
    close(g_crew.go[g_crew.released++][1]);
    return t;
}

void crew_receive(int index, void *msg, size_t size)
{
    if (read_full(g_crew.from[index], msg, size) != size)
        die("crew", "a member failed");
}

void crew_end(void)
{
    while (g_crew.released < g_crew.releases)
        crew_release();
    for (int i = 0; i < g_crew.members; i++) {
        close(g_crew.from[i]);
        int status = reap(g_crew.pid[i]);
        g_crew.pid[i] = -1;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("crew", "a member did not finish cleanly");
    }
    g_crew.members = 0;
}

/* ------------------------------------------------------------------ */
/* Report cells                                                         */
/* ------------------------------------------------------------------ */

void print_value(double v, const char *fmt)
{
    if (isnan(v)) {
        printf(" %8s |", "-");
        return;
    }
    printf(" ");
    printf(fmt, v);
    printf(" |");
}

double ratio(double a, double b)
{
    return b > 0 && !isnan(a) ? a / b : NAN;
}

void print_ratio(double a, double b)
{
    print_value(ratio(a, b), "%7.3fx");
}

void print_target_header(void)
{
    printf("\n| target (figures from the tables above) | measured | line | met |\n");
    printf("|---|---:|---:|---|\n");
}

void print_target(const char *what, double got, double want, int at_most, const char *fmt)
{
    printf("| %s |", what);
    print_value(got, fmt);
    printf(" %s", at_most ? "<= " : ">= ");
    printf(fmt, want);
    int met = at_most ? got <= want : got >= want;
    printf(" | %s |\n", isnan(got) ? "-" : met ? "yes" : "no");
}
