/* A ravel guest speaking the first generation's protocol resumes its
 * iterators exactly: the stream to the host (a Node multileveldown 5 host
 * or a ravel multileveldown+ listener, given as a unix socket path) runs
 * through a proxy here that the test cuts after every entry handed out,
 * then waits for the guest's next stream. Forward, reverse, keys-only and
 * values-only, and a seek each way: every key exactly once, in order. The
 * six run at once, each with its own guest and proxy: a cut costs the
 * guest's 1 ms reconnect timer, and waiting on six at a time keeps 60,000
 * cuts near a minute's tenth of CPU.
 *
 * Usage: gen1-resume HOST_SOCKET [ENTRIES] */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ravel.h"

#define DIE(...)                                                                   \
    do {                                                                           \
        fprintf(stderr, "gen1-resume: " __VA_ARGS__);                               \
        fprintf(stderr, " (%s)\n", ravel_errmsg());                                \
        exit(1);                                                                   \
    } while (0)

static const char *upstream;
static long n_entries;

typedef struct proxy {
    char path[108];
    int lfd;
    pthread_mutex_t mu;
    int cur_a, cur_b; /* the guest's side, the host's side */
    unsigned long accepted;
} proxy;

static int dial(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Copy bytes both ways for one guest connection at a time, until either
 * side ends (or the test shuts them down). */
static void *proxy_main(void *arg)
{
    proxy *x = arg;
    for (;;) {
        int a = accept(x->lfd, NULL, NULL);
        if (a < 0)
            continue;
        int b = dial(upstream);
        if (b < 0) {
            close(a);
            continue;
        }
        pthread_mutex_lock(&x->mu);
        x->cur_a = a;
        x->cur_b = b;
        x->accepted++;
        pthread_mutex_unlock(&x->mu);
        char buf[65536];
        struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        for (int open = 1; open;) {
            if (poll(p, 2, -1) < 0 && errno != EINTR)
                break;
            for (int i = 0; i < 2 && open; i++) {
                if (!p[i].revents)
                    continue;
                ssize_t n = read(p[i].fd, buf, sizeof buf);
                if (n <= 0 || send(p[1 - i].fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
                    open = 0;
            }
        }
        pthread_mutex_lock(&x->mu);
        x->cur_a = x->cur_b = -1;
        close(a);
        close(b);
        pthread_mutex_unlock(&x->mu);
    }
    return NULL;
}

static void proxy_start(proxy *x, const char *name)
{
    memset(x, 0, sizeof *x);
    pthread_mutex_init(&x->mu, NULL);
    x->cur_a = x->cur_b = -1;
    if (strlen(upstream) + 1 + strlen(name) >= sizeof x->path)
        DIE("socket path %s is too long", upstream);
    memcpy(x->path, upstream, strlen(upstream));
    x->path[strlen(upstream)] = '.';
    memcpy(x->path + strlen(upstream) + 1, name, strlen(name) + 1);
    unlink(x->path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", x->path);
    x->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (x->lfd < 0 || bind(x->lfd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
        listen(x->lfd, 16) != 0)
        DIE("cannot listen on %s: %s", x->path, strerror(errno));
    pthread_t t;
    pthread_create(&t, NULL, proxy_main, x);
    pthread_detach(t);
}

/* Cut the current stream and wait for the guest's next one, so that no
 * entry it had received before the cut can be handed out after it. */
static void cut(proxy *x)
{
    pthread_mutex_lock(&x->mu);
    unsigned long before = x->accepted;
    if (x->cur_a >= 0) {
        shutdown(x->cur_a, SHUT_RDWR);
        shutdown(x->cur_b, SHUT_RDWR);
    }
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < 200000; i++) {
        pthread_mutex_lock(&x->mu);
        int again = x->accepted != before;
        pthread_mutex_unlock(&x->mu);
        if (again)
            return;
        usleep(50);
    }
    DIE("the guest did not come back within 10 s");
}

/* "k" + 15 digits (the standard workload's keys): i < 10^15. */
static void key_of(char out[17], long i)
{
    char buf[32];
    snprintf(buf, sizeof buf, "k%015ld", i);
    memcpy(out, buf, 17);
}

static ravel_db *connect_via(proxy *x)
{
    char addr[160];
    snprintf(addr, sizeof addr, "multileveldown+unix:%s", x->path);
    ravel_options o;
    ravel_options_init(&o);
    o.retry = 1;
    ravel_db *db;
    if (ravel_connect(&db, addr, &o) != RAVEL_OK)
        DIE("connect %s", addr);
    return db;
}

typedef struct job {
    const char *what;
    int reverse, keys, values;
    long seek_to; /* < 0: none; else seek there after the first entry */
    proxy x;
    char line[160];
} job;

static void *run(void *arg)
{
    job *j = arg;
    long n = n_entries;
    proxy_start(&j->x, j->what[0] == 'f' ? (j->seek_to < 0 ? "f" : "fs")
                       : j->what[0] == 'r' ? (j->seek_to < 0 ? "r" : "rs")
                                           : j->what[0] == 'k' ? "k" : "v");
    ravel_db *db = connect_via(&j->x);
    ravel_range r;
    ravel_range_init(&r);
    r.reverse = j->reverse;
    r.keys = j->keys;
    r.values = j->values;
    ravel_iter *it;
    if (ravel_iter_new(db, &r, &it) != RAVEL_OK)
        DIE("%s: iter_new", j->what);
    long expect = j->reverse ? n - 1 : 0, got = 0;
    for (;;) {
        const char *k, *v;
        size_t kl, vl;
        int rc = ravel_iter_next(it, &k, &kl, &v, &vl);
        if (rc == RAVEL_END)
            break;
        if (rc != RAVEL_OK)
            DIE("%s: next after %ld entries: %s", j->what, got, ravel_errname(rc));
        char want[17], wantv[24];
        key_of(want, expect);
        snprintf(wantv, sizeof wantv, "v%ld", expect % 1000000000L);
        if (j->keys && (kl != 16 || memcmp(k, want, 16) != 0))
            DIE("%s: entry %ld: key %.*s, expected %s", j->what, got, (int)kl, k, want);
        if (j->values && (vl != strlen(wantv) || memcmp(v, wantv, vl) != 0))
            DIE("%s: entry %ld: value %.*s, expected %s", j->what, got, (int)vl, v, wantv);
        got++;
        expect += j->reverse ? -1 : 1;
        if (got == 1 && j->seek_to >= 0) {
            char t[17];
            key_of(t, j->seek_to);
            if (ravel_iter_seek(it, t, 16) != RAVEL_OK)
                DIE("%s: seek", j->what);
            expect = j->seek_to;
        }
        cut(&j->x);
    }
    long total = j->seek_to < 0 ? n : 1 + (j->reverse ? j->seek_to + 1 : n - j->seek_to);
    if (got != total || expect != (j->reverse ? -1 : n))
        DIE("%s: %ld entries, expected %ld", j->what, got, total);
    ravel_iter_free(it);
    ravel_db_close(db);
    unlink(j->x.path);
    snprintf(j->line, sizeof j->line, "ok: %s: %ld entries, each once, in order; %lu streams",
             j->what, got, j->x.accepted);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen1-resume HOST_SOCKET [ENTRIES]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    upstream = argv[1];
    n_entries = argc > 2 ? atol(argv[2]) : 10000;
    long n = n_entries;

    /* The data, and the plain operations, through one guest of its own. */
    proxy seed;
    proxy_start(&seed, "seed");
    ravel_db *db = connect_via(&seed);
    if (ravel_clear(db, NULL) != RAVEL_OK)
        DIE("clear");
    ravel_batch *b = ravel_batch_new();
    for (long i = 0; i < n; i++) {
        char k[17], v[24];
        key_of(k, i);
        snprintf(v, sizeof v, "v%ld", i % 1000000000L);
        ravel_batch_put(b, k, 16, v, strlen(v));
        if ((i + 1) % 1000 == 0 || i + 1 == n) {
            if (ravel_write(db, b) != RAVEL_OK)
                DIE("write");
            ravel_batch_clear(b);
        }
    }
    ravel_batch_free(b);
    char *val;
    size_t vl;
    if (ravel_get(db, "nope", 4, &val, &vl) != RAVEL_ENOTFOUND)
        DIE("get of a missing key is not RAVEL_ENOTFOUND");
    ravel_db_close(db);
    unlink(seed.path);

    job jobs[] = {
        {.what = "forward", .keys = 1, .values = 1, .seek_to = -1},
        {.what = "reverse", .reverse = 1, .keys = 1, .values = 1, .seek_to = -1},
        {.what = "keys-only", .keys = 1, .seek_to = -1},
        {.what = "values-only, reverse", .reverse = 1, .values = 1, .seek_to = -1},
        {.what = "forward, seek", .keys = 1, .values = 1, .seek_to = n / 2},
        {.what = "reverse, seek", .reverse = 1, .keys = 1, .values = 1, .seek_to = n / 3},
    };
    enum { NJOBS = sizeof jobs / sizeof jobs[0] };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t t[NJOBS];
    for (int i = 0; i < NJOBS; i++)
        pthread_create(&t[i], NULL, run, &jobs[i]);
    for (int i = 0; i < NJOBS; i++) {
        pthread_join(t[i], NULL);
        printf("%s\n", jobs[i].line);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("ok: all iterators in %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
