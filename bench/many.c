/*
 * M1–M3 in ravel-bench (many.h). Every variant runs the same tasks: M1,
 * member i of P puts the keys of its slice [i·N/P, (i+1)·N/P) in order,
 * each awaited; M2, the same member gets N/P keys of its slice in the
 * random order of W3's xorshift sequence; M3, writers 0–3 put their
 * quarters as in M1 while member 4, the reader, gets random keys of all N
 * (found or not yet written) one at a time until the writers are done.
 *
 * Processes: this one only forks. The ravel party's members are a crew
 * (common.h), forked one at a time so that the first one to open the
 * directory leads (its operations are local; the others follow over the
 * socket), released together at each phase. Each member sends its report
 * (operations, its own start and end) as soon as it is done, and its cost
 * (CPU time, context switches) at the next release, so that a leader's
 * cost includes the requests it served after its own were done. Raw
 * LevelDB runs in one child with a thread per member, released the same
 * way (end of file on a pipe); Node in tests/interop/bench_node.js, which
 * prints each member's report and cost, so that one function here makes
 * the figures of every variant.
 */
#define _POSIX_C_SOURCE 200809L

#include "many.h"

#include <errno.h>
#include <inttypes.h>
#include <leveldb/c.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "ravel.h"

#define MIX_WRITERS 4
#define MIX_MEMBERS (MIX_WRITERS + 1) /* the reader is the last */
#define NODE_SCRIPT RAVEL_INTEROP_DIR "/bench_node.js"
#define PHASES 2 /* at most: M1 then M2 */

static const int many_procs[MANY_SETS] = {4, 8};
static const char *const many_names[M_COUNT] = {"M1 puts", "M2 gets", "M3 seed mix"};

/* ------------------------------------------------------------------ */
/* Tasks                                                                */
/* ------------------------------------------------------------------ */

enum { T_PUTS, T_GETS, T_READS };

typedef struct task {
    int kind;
    uint64_t first, count; /* T_READS: keys 0 .. count - 1, until stopped */
} task;

/* What one process (or thread) ran in one phase. */
typedef struct report {
    uint64_t ops, found;       /* found: of the gets */
    uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC, as it woke and as it was done */
    double p50_us, p99_us;     /* T_READS: of each get; 0 otherwise */
} report;

/* What it cost, from its release to the next one. */
typedef struct cost {
    double cpu_s;
    uint64_t switches;
} cost;

/* A directory and the shape of the party on it. */
typedef struct many_job {
    const char *dir;
    uint64_t n;
    int members;
    int mix;           /* M3 (one phase), else M1 then M2 */
    atomic_int *stop;  /* M3: set once the writers are done */
} many_job;

static int phases_of(const many_job *job)
{
    return job->mix ? 1 : PHASES;
}

/* The members whose operations make the workload's ops/s: M3's writers. */
static int counted_of(const many_job *job)
{
    return job->mix ? MIX_WRITERS : job->members;
}

static task task_of(const many_job *job, int phase, int member)
{
    uint64_t k = job->n / (uint64_t)counted_of(job);
    if (job->mix && member == MIX_WRITERS)
        return (task){T_READS, 0, job->n};
    return (task){phase == 0 ? T_PUTS : T_GETS, (uint64_t)member * k, k};
}

/* A ravel handle, or raw LevelDB's (rv NULL), shared by the threads. */
typedef struct handle {
    ravel_db *rv;
    leveldb_t *raw;
    leveldb_readoptions_t *ro;
    leveldb_writeoptions_t *wo;
} handle;

static void put_key(handle *h, uint64_t index)
{
    char key[KEY_LEN], *err = NULL;
    make_key(key, index);
    if (h->rv == NULL) {
        leveldb_put(h->raw, h->wo, key, KEY_LEN, value_for(index), VALUE_LEN, &err);
        if (err != NULL)
            die_leveldb("M: leveldb_put", err);
        return;
    }
    int rc = ravel_put(h->rv, key, KEY_LEN, value_for(index), VALUE_LEN);
    if (rc != RAVEL_OK)
        die_ravel("M: ravel_put", rc);
}

/* 1 when the key was found (with a value of the right length), 0 when
 * absent; dies otherwise. */
static int get_key(handle *h, uint64_t index)
{
    char key[KEY_LEN], *err = NULL, *val;
    size_t vlen = 0;
    make_key(key, index);
    if (h->rv == NULL) {
        val = leveldb_get(h->raw, h->ro, key, KEY_LEN, &vlen, &err);
        if (err != NULL)
            die_leveldb("M: leveldb_get", err);
        leveldb_free(val);
    } else {
        int rc = ravel_get(h->rv, key, KEY_LEN, &val, &vlen);
        if (rc == RAVEL_ENOTFOUND)
            val = NULL;
        else if (rc != RAVEL_OK)
            die_ravel("M: ravel_get", rc);
        ravel_free(val);
    }
    if (val != NULL && vlen != VALUE_LEN)
        die("M: get", "value of the wrong length");
    return val != NULL;
}

/* T_READS: each get's latency, in a buffer that grows. */
typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static void sample(samples *s, double us)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        if ((s->v = realloc(s->v, s->cap * sizeof *s->v)) == NULL)
            die("M3 reader", "out of memory");
    }
    s->v[s->n++] = us;
}

static void run_task(handle *h, const task *t, atomic_int *stop, report *r)
{
    uint64_t state = GET_SEQ_SEED;
    samples lat = {NULL, 0, 0};
    memset(r, 0, sizeof *r);
    r->start_ns = now_ns();
    switch (t->kind) {
    case T_PUTS:
        for (uint64_t i = 0; i < t->count; i++)
            put_key(h, t->first + i);
        r->ops = t->count;
        break;
    case T_GETS:
        for (uint64_t i = 0; i < t->count; i++) {
            if (!get_key(h, t->first + next_random(&state) % t->count))
                die("M2", "a key its member wrote is absent");
        }
        r->ops = r->found = t->count;
        break;
    default: /* T_READS: the sequence starts again after every count gets */
        while (!atomic_load_explicit(stop, memory_order_relaxed)) {
            if (r->ops % t->count == 0)
                state = GET_SEQ_SEED;
            uint64_t t0 = now_ns();
            r->found += (uint64_t)get_key(h, next_random(&state) % t->count);
            sample(&lat, (double)(now_ns() - t0) * 1e-3);
            r->ops++;
        }
        break;
    }
    r->end_ns = now_ns();
    if (lat.n > 0) {
        sort_doubles(lat.v, lat.n);
        r->p50_us = percentile(lat.v, lat.n, 0.5);
        r->p99_us = percentile(lat.v, lat.n, 0.99);
    }
    free(lat.v);
}

static cost cost_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        die("getrusage", strerror(errno));
    return (cost){clock_seconds(CLOCK_PROCESS_CPUTIME_ID), (uint64_t)(ru.ru_nvcsw + ru.ru_nivcsw)};
}

static cost cost_since(cost start)
{
    cost c = cost_now();
    c.cpu_s -= start.cpu_s;
    c.switches -= start.switches;
    return c;
}

/* One phase's figures from every member's report and all their costs. */
static many_figures figures(const many_job *job, const report *r, uint64_t release_ns, cost c)
{
    many_figures f;
    uint64_t ops = 0, all = 0, end = release_ns, start = release_ns;
    for (int i = 0; i < job->members; i++) {
        all += r[i].ops;
        start = r[i].start_ns > start ? r[i].start_ns : start;
        if (i < counted_of(job)) {
            ops += r[i].ops;
            end = r[i].end_ns > end ? r[i].end_ns : end;
        }
    }
    f.ops_per_s = (double)ops / ((double)(end - release_ns) * 1e-9);
    f.cpu_us = c.cpu_s * 1e6 / (double)all;
    f.switches = (double)c.switches / (double)all;
    f.lag_us = (double)(start - release_ns) * 1e-3;
    f.reader_ops_per_s = f.reader_p50_us = f.reader_p99_us = f.reader_found = NAN;
    if (job->mix) {
        const report *rd = &r[MIX_WRITERS];
        f.reader_ops_per_s = (double)rd->ops / ((double)(rd->end_ns - rd->start_ns) * 1e-9);
        f.reader_p50_us = rd->p50_us;
        f.reader_p99_us = rd->p99_us;
        f.reader_found = rd->ops ? (double)rd->found / (double)rd->ops : NAN;
    }
    f.lo = f.hi = f.ops_per_s;
    return f;
}

/* ------------------------------------------------------------------ */
/* Raw LevelDB: a thread per member in one process                      */
/* ------------------------------------------------------------------ */

typedef struct raw_thread {
    pthread_t id;
    handle *h;
    task t;
    atomic_int *stop;
    pthread_barrier_t *ready;
    int go_fd; /* end of file: go */
    report rep;
} raw_thread;

static void *raw_thread_main(void *arg)
{
    raw_thread *w = arg;
    char c;
    ssize_t r;
    pthread_barrier_wait(w->ready);
    while ((r = read(w->go_fd, &c, 1)) < 0 && errno == EINTR)
        ;
    if (r != 0)
        die("M raw", "release pipe");
    run_task(w->h, &w->t, w->stop, &w->rep);
    return NULL;
}

/* One phase: the threads, released together once all are about to wait. */
static many_figures raw_phase(const many_job *job, handle *h, int phase)
{
    raw_thread w[CREW_MAX];
    report rep[CREW_MAX];
    pthread_barrier_t ready;
    int go[2];
    if (pipe(go) != 0)
        die("pipe", strerror(errno));
    pthread_barrier_init(&ready, NULL, (unsigned)job->members + 1);
    for (int i = 0; i < job->members; i++) {
        w[i] = (raw_thread){.h = h, .t = task_of(job, phase, i), .stop = job->stop,
                            .ready = &ready, .go_fd = go[0]};
        if (pthread_create(&w[i].id, NULL, raw_thread_main, &w[i]) != 0)
            die("M raw", "pthread_create failed");
    }
    pthread_barrier_wait(&ready);
    cost c0 = cost_now();
    uint64_t release = now_ns();
    close(go[1]);
    for (int i = 0; i < job->members; i++) {
        pthread_join(w[i].id, NULL);
        rep[i] = w[i].rep;
        if (job->mix && i == MIX_WRITERS - 1)
            atomic_store(job->stop, 1);
    }
    cost c = cost_since(c0);
    close(go[0]);
    pthread_barrier_destroy(&ready);
    return figures(job, rep, release, c);
}

/* In a child (run_child): every phase of the job; writes many_figures[PHASES]. */
static void raw_main(const void *arg, int fd)
{
    many_job job = *(const many_job *)arg;
    atomic_int stop = 0;
    many_figures out[PHASES];
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    handle h = {NULL, leveldb_open(o, job.dir, &err), leveldb_readoptions_create(),
                leveldb_writeoptions_create()};
    if (err != NULL)
        die_leveldb("M raw: leveldb_open", err);
    job.stop = &stop;
    memset(out, 0, sizeof out);
    for (int p = 0; p < phases_of(&job); p++)
        out[p] = raw_phase(&job, &h, p);
    leveldb_close(h.raw);
    leveldb_readoptions_destroy(h.ro);
    leveldb_writeoptions_destroy(h.wo);
    leveldb_options_destroy(o);
    write_full(fd, out, sizeof out);
}

/* ------------------------------------------------------------------ */
/* ravel: a party, a process per member                                 */
/* ------------------------------------------------------------------ */

/* A crew member: opens the directory (the first leads), then each phase's
 * task from its release; its cost up to the next release. */
static void member_main(int index, const void *arg)
{
    const many_job *job = arg;
    handle h = {0};
    int rc = ravel_open(&h.rv, job->dir, bench_options());
    if (rc != RAVEL_OK)
        die_ravel("M: ravel_open", rc);
    if (ravel_db_role(h.rv) != (index == 0 ? RAVEL_ROLE_LEADER : RAVEL_ROLE_FOLLOWER))
        die("M", index == 0 ? "the first member did not lead" : "a member did not follow");
    crew_ready();
    crew_wait();
    for (int p = 0; p < phases_of(job); p++) {
        cost c0 = cost_now();
        task t = task_of(job, p, index);
        report rep;
        run_task(&h, &t, job->stop, &rep);
        crew_send(&rep, sizeof rep);
        crew_wait();
        cost c = cost_since(c0);
        crew_send(&c, sizeof c);
    }
    ravel_db_close(h.rv);
}

static void ravel_party(many_job *job, many_figures out[PHASES])
{
    report rep[CREW_MAX];
    job->stop = mmap(NULL, sizeof *job->stop, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (job->stop == MAP_FAILED)
        die("mmap", strerror(errno));
    atomic_init(job->stop, 0);
    crew_start(job->members, phases_of(job) + 1, member_main, job);
    uint64_t release = crew_release();
    for (int p = 0; p < phases_of(job); p++) {
        for (int i = 0; i < job->members; i++) {
            crew_receive(i, &rep[i], sizeof rep[i]);
            if (job->mix && i == MIX_WRITERS - 1)
                atomic_store(job->stop, 1);
        }
        uint64_t next = crew_release();
        cost all = {0, 0};
        for (int i = 0; i < job->members; i++) {
            cost c;
            crew_receive(i, &c, sizeof c);
            all.cpu_s += c.cpu_s;
            all.switches += c.switches;
        }
        out[p] = figures(job, rep, release, all);
        release = next;
    }
    crew_end();
    munmap(job->stop, sizeof *job->stop);
    job->stop = NULL;
}

/* ------------------------------------------------------------------ */
/* Node: bench_node.js many|mix                                         */
/* ------------------------------------------------------------------ */

/* bench_node.js prints, for each phase p, "release <p> <ns>" and for each
 * member i "member <p> <i> <ops> <found> <start ns> <end ns> <p50 us>
 * <p99 us> <cpu us> <context switches>". */
static void node_party(const many_job *job, many_figures out[PHASES])
{
    static char text[16384];
    char members[16], count[32];
    snprintf(members, sizeof members, "%d", job->mix ? MIX_WRITERS : job->members);
    snprintf(count, sizeof count, "%" PRIu64, job->n);
    char *argv[] = {"node", NODE_SCRIPT, job->mix ? "mix" : "many", members, (char *)job->dir,
                    count, NULL};
    if (spawn_capture(argv, text, sizeof text) != 0)
        die(NODE_SCRIPT, "failed");

    report rep[PHASES][CREW_MAX];
    cost all[PHASES];
    uint64_t release[PHASES];
    unsigned seen = 0, want = 0;
    memset(all, 0, sizeof all);
    for (int p = 0; p < phases_of(job); p++)
        want |= ((1u << (job->members + 1)) - 1) << (p * (CREW_MAX + 1));
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int p, i;
        uint64_t ns;
        report r;
        double cpu_us;
        uint64_t switches;
        if (sscanf(line, "release %d %" SCNu64, &p, &ns) == 2 && p >= 0 && p < phases_of(job)) {
            release[p] = ns;
            seen |= 1u << (p * (CREW_MAX + 1) + job->members);
        } else if (sscanf(line,
                          "member %d %d %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                          " %lf %lf %lf %" SCNu64,
                          &p, &i, &r.ops, &r.found, &r.start_ns, &r.end_ns, &r.p50_us, &r.p99_us,
                          &cpu_us, &switches) == 10 &&
                   p >= 0 && p < phases_of(job) && i >= 0 && i < job->members) {
            rep[p][i] = r;
            all[p].cpu_s += cpu_us * 1e-6;
            all[p].switches += switches;
            seen |= 1u << (p * (CREW_MAX + 1) + i);
        } else {
            die("bench_node.js", "unexpected output");
        }
    }
    if (seen != want)
        die("bench_node.js", "incomplete output");
    for (int p = 0; p < phases_of(job); p++)
        out[p] = figures(job, rep[p], release[p], all[p]);
}

/* ------------------------------------------------------------------ */
/* Runs                                                                 */
/* ------------------------------------------------------------------ */

/* One variant on a fresh directory: out[0] M1 or M3, out[1] M2. */
static void run_variant(int variant, uint64_t n, int members, int mix, many_figures out[PHASES])
{
    char dir[sizeof g_root + 32];
    snprintf(dir, sizeof dir, "%s/many-%s-%s%d", g_root,
             variant == MV_RAW ? "raw" : variant == MV_RAVEL ? "ravel" : "node",
             mix ? "mix" : "", members);
    fprintf(stderr, "ravel-bench: %s, %s with %d %s ...\n", mix ? "M3" : "M1 and M2",
            variant == MV_RAW ? "raw LevelDB" : variant == MV_RAVEL ? "ravel" : "Node rave-level",
            members, variant == MV_RAW ? "threads" : "processes");
    many_job job = {dir, n, members, mix, NULL};
    if (variant == MV_RAW)
        run_child("M raw", raw_main, &job, out, sizeof(many_figures) * PHASES);
    else if (variant == MV_RAVEL)
        ravel_party(&job, out);
    else
        node_party(&job, out);
    remove_tree(dir);
}

/* Into *out the run with the median ops/s (the lower middle for an even
 * count, as for the other workloads), with the range of all. */
static void median(many_figures *runs, int k, many_figures *out)
{
    for (int i = 1; i < k; i++) {
        many_figures f = runs[i];
        int j = i;
        for (; j > 0 && runs[j - 1].ops_per_s > f.ops_per_s; j--)
            runs[j] = runs[j - 1];
        runs[j] = f;
    }
    *out = runs[(k - 1) / 2];
    out->lo = runs[0].ops_per_s;
    out->hi = runs[k - 1].ops_per_s;
}


/* ------------------------------------------------------------------ */
/* Floors: the round trips alone                                        */
/* ------------------------------------------------------------------ */

/* P client processes each send a request and wait for its answer, n in
 * all, to one server process that answers at once. MF_SOCKET: a unix
 * socketpair per client and a thread per socket sleeping in read(), as a
 * host served followers before extension shm (without its busy-polling).
 * MF_RING: one word per client in shared memory and one server thread
 * going round them, polling for FLOOR_POLL_US after the last request and
 * then sleeping on a futex that clients wake, the clients polling as long
 * before they sleep on their own — the design of the ring server, with
 * nothing else. */
#define FLOOR_POLL_US 50
#define FLOOR_MAX_PROCS 8

typedef struct floor_slot {
    _Atomic uint32_t req, req_sleep;
    char pad0[56];
    _Atomic uint32_t rep, rep_sleep;
    char pad1[56];
} floor_slot;

typedef struct floor_shm {
    _Atomic uint32_t seq, sleeping; /* the server's futex */
    _Atomic int stop;
    char pad[52];
    floor_slot slot[FLOOR_MAX_PROCS];
} floor_shm;

static uint64_t floor_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Wait until *w is not v: poll, then sleep on the futex with *sleeping
 * set (whoever changes *w looks at it and wakes). */
static void floor_await(_Atomic uint32_t *w, _Atomic uint32_t *sleeping, uint32_t v)
{
    uint64_t end = floor_now() + FLOOR_POLL_US * 1000u;
    while (atomic_load(w) == v) {
        if (floor_now() < end)
            continue;
        atomic_store(sleeping, 1);
        if (atomic_load(w) == v)
            syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
        atomic_store(sleeping, 0);
    }
}

static void floor_set(_Atomic uint32_t *w, _Atomic uint32_t *sleeping, uint32_t v)
{
    atomic_store(w, v);
    if (atomic_load(sleeping))
        syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

typedef struct floor_ctx {
    int kind, procs;
    floor_shm *shm;
    int fds[FLOOR_MAX_PROCS][2];
    int index;
} floor_ctx;

static void *floor_socket_thread(void *arg)
{
    floor_ctx *c = arg;
    char b[64];
    int fd = c->fds[c->index][1];
    while (read(fd, b, sizeof b) > 0)
        if (write(fd, b, 32) != 32)
            break;
    return NULL;
}

/* The ring server: go round the slots, answer what changed, poll for a
 * while after the last request, then sleep. */
static void floor_ring_server(floor_shm *m, int procs)
{
    uint32_t seen[FLOOR_MAX_PROCS] = {0};
    uint64_t last = floor_now();
    while (!atomic_load(&m->stop)) {
        uint32_t seq = atomic_load(&m->seq);
        int any = 0;
        for (int i = 0; i < procs; i++) {
            uint32_t r = atomic_load(&m->slot[i].req);
            if (r != seen[i]) {
                seen[i] = r;
                any = 1;
                floor_set(&m->slot[i].rep, &m->slot[i].rep_sleep, r);
            }
        }
        if (any) {
            last = floor_now();
        } else if (floor_now() - last > FLOOR_POLL_US * 1000u) {
            atomic_store(&m->sleeping, 1);
            if (atomic_load(&m->seq) == seq)
                syscall(SYS_futex, &m->seq, FUTEX_WAIT, seq, NULL, NULL, 0);
            atomic_store(&m->sleeping, 0);
            last = floor_now();
        }
    }
}

static void floor_client(floor_ctx *c, int i, uint64_t n)
{
    if (c->kind == MF_SOCKET) {
        char b[64] = {0};
        for (uint64_t k = 0; k < n; k++)
            if (write(c->fds[i][0], b, 32) != 32 || read_full(c->fds[i][0], b, 32) != 32)
                die("M floor", "socket");
        return;
    }
    floor_slot *s = &c->shm->slot[i];
    for (uint64_t k = 1; k <= n; k++) {
        atomic_store(&s->req, (uint32_t)k);
        atomic_fetch_add(&c->shm->seq, 1);
        if (atomic_load(&c->shm->sleeping))
            syscall(SYS_futex, &c->shm->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
        floor_await(&s->rep, &s->rep_sleep, (uint32_t)(k - 1));
    }
}

/* Round trips per second, all clients together. */
static double floor_once(int kind, int procs, uint64_t n)
{
    floor_ctx c = {.kind = kind, .procs = procs};
    c.shm = mmap(NULL, sizeof *c.shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (c.shm == MAP_FAILED)
        die("M floor", "mmap");
    memset(c.shm, 0, sizeof *c.shm);
    for (int i = 0; kind == MF_SOCKET && i < procs; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.fds[i]) != 0)
            die("M floor", "socketpair");
    int go[2];
    if (pipe(go) != 0)
        die("M floor", "pipe");
    pid_t server = fork();
    if (server < 0)
        die("M floor", "fork");
    if (server == 0) {
        close(go[1]);
        if (kind == MF_RING) {
            floor_ring_server(c.shm, procs);
        } else {
            pthread_t t[FLOOR_MAX_PROCS];
            floor_ctx each[FLOOR_MAX_PROCS];
            for (int i = 0; i < procs; i++) {
                close(c.fds[i][0]);
                each[i] = c;
                each[i].index = i;
                pthread_create(&t[i], NULL, floor_socket_thread, &each[i]);
            }
            for (int i = 0; i < procs; i++)
                pthread_join(t[i], NULL);
        }
        _exit(0);
    }
    pid_t kids[FLOOR_MAX_PROCS];
    for (int i = 0; i < procs; i++) {
        kids[i] = fork();
        if (kids[i] < 0)
            die("M floor", "fork");
        if (kids[i] == 0) {
            close(go[1]);
            char b;
            if (read(go[0], &b, 1) != 0)
                _exit(1);
            floor_client(&c, i, n / (uint64_t)procs);
            _exit(0);
        }
    }
    close(go[0]);
    uint64_t t0 = floor_now();
    close(go[1]); /* the release: every client reads the end */
    for (int i = 0; i < procs; i++)
        if (reap(kids[i]) != 0)
            die("M floor", "a client failed");
    uint64_t t1 = floor_now();
    atomic_store(&c.shm->stop, 1);
    atomic_fetch_add(&c.shm->seq, 1);
    syscall(SYS_futex, &c.shm->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
    for (int i = 0; kind == MF_SOCKET && i < procs; i++) {
        close(c.fds[i][0]);
        close(c.fds[i][1]);
    }
    reap(server);
    munmap(c.shm, sizeof *c.shm);
    return (double)(n / (uint64_t)procs * (uint64_t)procs) / ((double)(t1 - t0) / 1e9);
}

void many_run(uint64_t n, int runs, int parties, int mix, int node, many_result *out)
{
    static many_figures each[M_COUNT][MV_COUNT][MANY_SETS][MANY_MAX_RUNS];
    static double floors[MF_COUNT][MANY_SETS][MANY_MAX_RUNS];
    many_figures f[PHASES];
    if (runs < 1 || runs > MANY_MAX_RUNS)
        die("M", "runs out of range");
    memset(out, 0, sizeof *out);
    out->parties = parties;
    out->mix = mix;
    out->node = node;
    out->runs = runs;
    for (int r = 0; r < runs; r++) {
        for (int s = 0; parties && s < MANY_SETS; s++) {
            for (int v = MV_RAW; v <= MV_RAVEL; v++) {
                run_variant(v, n, many_procs[s], 0, f);
                each[M_PUTS][v][s][r] = f[0];
                each[M_GETS][v][s][r] = f[1];
            }
        }
        for (int v = MV_RAW; mix && v <= MV_RAVEL; v++) {
            run_variant(v, n, MIX_MEMBERS, 1, f);
            each[M_MIX][v][0][r] = f[0];
        }
        for (int s = 0; parties && s < MANY_SETS; s++)
            for (int k = 0; k < MF_COUNT; k++)
                floors[k][s][r] = floor_once(k, many_procs[s], n);
    }
    for (int s = 0; parties && s < MANY_SETS; s++) {
        for (int k = 0; k < MF_COUNT; k++) {
            sort_doubles(floors[k][s], (size_t)runs);
            out->floor[k][s] = floors[k][s][(runs - 1) / 2];
        }
    }
    for (int w = 0; w < M_COUNT; w++) {
        for (int v = MV_RAW; v <= MV_RAVEL; v++) {
            for (int s = 0; s < MANY_SETS; s++)
                median(each[w][v][s], runs, &out->w[w][v][s]);
        }
    }
    for (int s = 0; node && parties && s < MANY_SETS; s++) {
        run_variant(MV_NODE, n, many_procs[s], 0, f);
        out->w[M_PUTS][MV_NODE][s] = f[0];
        out->w[M_GETS][MV_NODE][s] = f[1];
    }
    if (node && mix) {
        run_variant(MV_NODE, n, MIX_MEMBERS, 1, f);
        out->w[M_MIX][MV_NODE][0] = f[0];
    }
}

/* ------------------------------------------------------------------ */
/* Report                                                               */
/* ------------------------------------------------------------------ */

static void variant_cell(int v, int members, int mix)
{
    if (v == MV_RAW)
        printf("| raw LevelDB: %d threads in one process |", members);
    else
        printf("| %s party: %d processes (1 leads, %d follow%s) |",
               v == MV_RAVEL ? "ravel" : "Node rave-level", members, members - 1,
               mix ? "; the reader follows" : "");
}

static void range_cell(const many_result *m, int v, const many_figures *f)
{
    if (v != MV_NODE && m->runs > 1)
        printf(" %.0f, %.0f |\n", f->lo, f->hi);
    else
        printf(" %8s |\n", "-");
}

void many_print(uint64_t n, const many_result *m)
{
    if (m->parties) {
        printf("\n| M1, M2: %" PRIu64 " awaited puts, then %" PRIu64 " awaited gets, by P processes "
               "(raw: threads), each its own slice, each phase started together | variant | "
               "ops/s, all together | vs raw, same P | vs Node, same P | CPU us/op (all "
               "processes) | context switches/op | last start after the release, us | "
               "slowest, fastest run |\n",
               n, n);
        printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int w = M_PUTS; w <= M_GETS; w++) {
            for (int s = 0; s < MANY_SETS; s++) {
                for (int v = 0; v < MV_COUNT; v++) {
                    const many_figures *f = &m->w[w][v][s];
                    if (v == MV_NODE && !m->node)
                        continue;
                    printf("| %s, P = %d ", many_names[w], many_procs[s]);
                    variant_cell(v, many_procs[s], 0);
                    printf(" %9.0f |", f->ops_per_s);
                    print_ratio(f->ops_per_s, m->w[w][MV_RAW][s].ops_per_s);
                    print_ratio(f->ops_per_s, m->node ? m->w[w][MV_NODE][s].ops_per_s : NAN);
                    print_value(f->cpu_us, "%8.2f");
                    print_value(f->switches, "%8.2f");
                    print_value(f->lag_us, "%8.0f");
                    range_cell(m, v, f);
                }
            }
        }
    }
    if (m->parties) {
        printf("\n| floor beside M1, M2: P processes, %" PRIu64 " requests in all, one at a "
               "time each, to one server process that answers at once (no database) | round "
               "trips/s, P = %d | P = %d | ravel M2 gets ÷ floor, P = %d | P = %d |\n",
               n, many_procs[0], many_procs[1], many_procs[0], many_procs[1]);
        printf("|---|---:|---:|---:|---:|\n");
        static const char *const floor_names[MF_COUNT] = {
            "unix socketpairs, a server thread per process, sleeping in read()",
            "shared memory, one server thread going round, polling " "50" " us before a futex "
            "sleep, clients the same",
        };
        for (int k = 0; k < MF_COUNT; k++) {
            printf("| %s |", floor_names[k]);
            for (int s = 0; s < MANY_SETS; s++)
                print_value(m->floor[k][s], "%9.0f");
            for (int s = 0; s < MANY_SETS; s++)
                print_ratio(m->w[M_GETS][MV_RAVEL][s].ops_per_s, m->floor[k][s]);
            printf("\n");
        }
    }
    if (m->mix) {
        printf("\n| M3 seed mix: %d writers put %" PRIu64 " keys (a quarter each, awaited) while "
               "a reader gets random keys one at a time, all started together | variant | "
               "writers' puts/s | vs raw | vs Node | reader gets/s | reader found | reader p50 "
               "us | reader p99 us | CPU us/op (all processes, puts and gets) | context "
               "switches/op | last start after the release, us | slowest, fastest run |\n",
               MIX_WRITERS, n);
        printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int v = 0; v < MV_COUNT; v++) {
            const many_figures *f = &m->w[M_MIX][v][0];
            if (v == MV_NODE && !m->node)
                continue;
            printf("| %s ", many_names[M_MIX]);
            variant_cell(v, MIX_MEMBERS, 1);
            printf(" %9.0f |", f->ops_per_s);
            print_ratio(f->ops_per_s, m->w[M_MIX][MV_RAW][0].ops_per_s);
            print_ratio(f->ops_per_s, m->node ? m->w[M_MIX][MV_NODE][0].ops_per_s : NAN);
            print_value(f->reader_ops_per_s, "%9.0f");
            print_value(f->reader_found * 100, "%5.1f%%");
            print_value(f->reader_p50_us, "%8.1f");
            print_value(f->reader_p99_us, "%8.1f");
            print_value(f->cpu_us, "%8.2f");
            print_value(f->switches, "%8.2f");
            print_value(f->lag_us, "%8.0f");
            range_cell(m, v, f);
        }
    }
    printf("\nM1–M3: each process opens the fresh directory with ravel_open; the first leads, "
           "so its own operations are local. raw LevelDB and ravel: the median of %d run(s), "
           "interleaved; Node: one run.\n",
           m->runs);
}

void many_print_targets(const many_result *m)
{
    for (int w = M_PUTS; m->parties && w <= M_GETS; w++) {
        for (int s = 0; s < MANY_SETS; s++) {
            char what[96];
            snprintf(what, sizeof what, "%.2s, %d processes ÷ raw LevelDB, %d threads",
                     many_names[w], many_procs[s], many_procs[s]);
            print_target(what, ratio(m->w[w][MV_RAVEL][s].ops_per_s, m->w[w][MV_RAW][s].ops_per_s),
                         0.5, 0, "%.3fx");
        }
    }
    if (m->mix) {
        const many_figures *rv = &m->w[M_MIX][MV_RAVEL][0], *raw = &m->w[M_MIX][MV_RAW][0];
        print_target("M3 writers' puts/s ÷ raw LevelDB's", ratio(rv->ops_per_s, raw->ops_per_s),
                     0.5, 0, "%.3fx");
        printf("| M3 reader p99 us (raw LevelDB's: %.1f) | %.1f | reported | - |\n",
               raw->reader_p99_us, rv->reader_p99_us);
    }
}
