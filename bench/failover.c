/*
 * SPEC workload F1: SIGKILL a party's leader while a follower writes in a
 * loop, and measure the time from the kill to that follower's next
 * acknowledged write. Each round starts a fresh party on one directory: a
 * leader, then F followers, one of which writes. The writer is held
 * between two puts while the leader is killed, so that the time measured
 * is the failover's, not the tail of a put that was already under way.
 */
#define _POSIX_C_SOURCE 200809L

#include "failover.h"

#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "ravel.h"

#define WARMUP_ACKS 200 /* puts the writer makes before the kill */
#define ACK_TIMEOUT_NS 10000000000ull
#define WAIT_STEP_US 100
#define WAIT_STEPS 100000 /* 10 s */

/* Lives in an anonymous shared mapping, so that the parent can hold the
 * writer and read the time of its acknowledgements. */
typedef struct shared {
    atomic_long ready; /* members that opened the directory */
    atomic_long acks;  /* the writer's acknowledged puts */
    atomic_long held;  /* writer: 1 while stopped between puts */
    atomic_int hold;   /* parent: writer, stop between puts */
    atomic_int failed; /* a member failed (and said why on stderr) */
    atomic_uint_fast64_t last_ack_ns; /* the writer's latest acknowledgement */
} shared;

typedef struct party {
    shared *sh;
    const char *dir;
    pid_t leader;     /* -1 when not running */
    pid_t *followers; /* the first one writes */
    int started;      /* followers running */
} party;

static void member_fail(shared *sh, const char *what, const char *detail)
{
    fprintf(stderr, "F1 member: %s: %s\n", what, detail);
    atomic_store(&sh->failed, 1);
    _exit(1);
}

/* SIGTERM is blocked in members: this is how the writer notices it. */
static int term_pending(void)
{
    sigset_t pending;
    return sigpending(&pending) == 0 && sigismember(&pending, SIGTERM);
}

/* A member: opens the directory and checks its role; the writer puts in a
 * loop until SIGTERM, the others wait for it. Never returns. */
static void member_main(shared *sh, const char *dir, int writer, int expect_role)
{
    sigset_t term;
    ravel_db *db;
    int sig;

    /* Blocked before ravel starts its threads, which inherit the mask, so
     * that SIGTERM stays pending until we look for it: no window in which
     * it arrives unnoticed. */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    if (ravel_open(&db, dir, bench_options()) != RAVEL_OK)
        member_fail(sh, "ravel_open", ravel_errmsg());
    if (ravel_db_role(db) != expect_role)
        member_fail(sh, "ravel_open", expect_role == RAVEL_ROLE_LEADER ? "did not lead" : "did not follow");
    atomic_fetch_add(&sh->ready, 1);

    if (!writer) {
        sigwait(&term, &sig);
    } else {
        for (long n = 0; !term_pending(); n++) {
            if (atomic_load(&sh->hold)) {
                atomic_store(&sh->held, 1);
                while (atomic_load(&sh->hold))
                    ; /* spin: the parent lets go right after the kill */
                atomic_store(&sh->held, 0);
            }
            char key[32];
            int kl = snprintf(key, sizeof key, "f%012ld", n);
            if (ravel_put(db, key, (size_t)kl, key, (size_t)kl) != RAVEL_OK)
                member_fail(sh, "ravel_put", ravel_errmsg());
            atomic_store(&sh->last_ack_ns, now_ns());
            atomic_fetch_add(&sh->acks, 1);
        }
    }
    ravel_db_close(db);
    _exit(0);
}

static pid_t start_member(party *p, int writer, int expect_role)
{
    pid_t pid = fork();
    if (pid < 0)
        fprintf(stderr, "F1: fork: %s\n", strerror(errno));
    else if (pid == 0)
        member_main(p->sh, p->dir, writer, expect_role);
    return pid;
}

/* Wait until *counter reaches want. Returns 0, or -1 when a member failed
 * or after 10 s. */
static int wait_at_least(party *p, atomic_long *counter, long want, const char *what)
{
    for (int i = 0; i < WAIT_STEPS; i++) {
        if (atomic_load(counter) >= want)
            return 0;
        if (atomic_load(&p->sh->failed))
            return -1;
        usleep(WAIT_STEP_US);
    }
    fprintf(stderr, "F1: gave up waiting for %s\n", what);
    return -1;
}

/* Send sig to every member still running and reap them all. Returns 0 if
 * each exited with status 0. */
static int end_members(party *p, int sig)
{
    int clean = 1, status;
    if (p->leader > 0) {
        kill(p->leader, sig);
        status = reap(p->leader);
        clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        p->leader = -1;
    }
    for (int i = 0; i < p->started; i++)
        kill(p->followers[i], sig);
    for (int i = 0; i < p->started; i++) {
        status = reap(p->followers[i]);
        clean = clean && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    p->started = 0;
    return clean ? 0 : -1;
}

static int run_round(party *p, int followers, double *ms)
{
    shared *sh = p->sh;
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->acks, 0);
    atomic_store(&sh->held, 0);
    atomic_store(&sh->last_ack_ns, 0);

    if ((p->leader = start_member(p, 0, RAVEL_ROLE_LEADER)) < 0 ||
        wait_at_least(p, &sh->ready, 1, "the leader") != 0)
        return -1;
    for (int i = 0; i < followers; i++) {
        if ((p->followers[i] = start_member(p, i == 0, RAVEL_ROLE_FOLLOWER)) < 0)
            return -1;
        p->started++;
    }
    if (wait_at_least(p, &sh->ready, 1 + followers, "the followers") != 0 ||
        wait_at_least(p, &sh->acks, WARMUP_ACKS, "the writer") != 0)
        return -1;

    atomic_store(&sh->hold, 1);
    if (wait_at_least(p, &sh->held, 1, "the writer to pause") != 0)
        return -1;
    uint64_t killed = now_ns();
    kill(p->leader, SIGKILL);
    atomic_store(&sh->hold, 0);
    while (atomic_load(&sh->last_ack_ns) <= killed) {
        if (atomic_load(&sh->failed))
            return -1;
        if (now_ns() - killed > ACK_TIMEOUT_NS) {
            fprintf(stderr, "F1: no write acknowledged 10 s after the kill\n");
            return -1;
        }
        usleep(50);
    }
    *ms = (double)(atomic_load(&sh->last_ack_ns) - killed) / 1e6;

    reap(p->leader); /* killed: its status says so, nothing to check */
    p->leader = -1;
    if (end_members(p, SIGTERM) != 0) {
        fprintf(stderr, "F1: a follower did not end cleanly\n");
        return -1;
    }
    return 0;
}

int failover_measure(const char *dir, int followers, int rounds, double *ms)
{
    party p = {.dir = dir, .leader = -1};
    int rc = -1;

    p.sh = mmap(NULL, sizeof *p.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p.sh == MAP_FAILED) {
        fprintf(stderr, "F1: mmap: %s\n", strerror(errno));
        return -1;
    }
    /* The mapping starts zeroed: nobody held, nothing failed. */
    p.followers = calloc((size_t)followers, sizeof *p.followers);
    if (p.followers == NULL) {
        fprintf(stderr, "F1: out of memory\n");
        goto out;
    }
    for (int r = 0; r < rounds; r++) {
        if (run_round(&p, followers, &ms[r]) != 0)
            goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        end_members(&p, SIGKILL);
    free(p.followers);
    munmap(p.sh, sizeof *p.sh);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The floor: LevelDB alone, the lock handed over by the kernel          */
/* ------------------------------------------------------------------ */

static void floor_holder(const char *dir, int ready_fd)
{
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    leveldb_t *db = leveldb_open(o, dir, &err);
    if (!db)
        _exit(1);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    for (long n = 0;; n++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "f%012ld", n);
        leveldb_put(db, wo, key, (size_t)kl, key, (size_t)kl, &err);
        if (err)
            _exit(1);
        if (n == WARMUP_ACKS && write(ready_fd, "r", 1) != 1)
            _exit(1);
    }
}

static void floor_taker(shared *sh, const char *dir, int ready_fd)
{
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd < 0 || write(ready_fd, "t", 1) != 1)
        _exit(1);
    while (fcntl(fd, F_SETLKW, &fl) != 0)
        if (errno != EINTR)
            _exit(1);
    close(fd); /* lets go: LevelDB takes it itself */
    char *err = NULL;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, dir, &err);
    if (!db)
        _exit(1);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_put(db, wo, "after", 5, "x", 1, &err);
    if (err)
        _exit(1);
    atomic_store(&sh->last_ack_ns, now_ns());
    leveldb_close(db);
    _exit(0);
}

int failover_floor(const char *dir, int rounds, double *ms)
{
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return -1;
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        remove_tree(dir);
        int ready[2];
        if (pipe(ready) != 0) {
            rc = -1;
            break;
        }
        atomic_store(&sh->last_ack_ns, 0);
        pid_t holder = fork();
        if (holder == 0)
            floor_holder(dir, ready[1]);
        char c;
        pid_t taker = -1;
        if (holder < 0 || read(ready[0], &c, 1) != 1 || (taker = fork()) < 0) {
            rc = -1;
        } else if (taker == 0) {
            floor_taker(sh, dir, ready[1]);
        } else if (read(ready[0], &c, 1) != 1) {
            rc = -1;
        } else {
            usleep(20000); /* the taker is blocked on the lock by now */
            uint64_t killed = now_ns();
            kill(holder, SIGKILL);
            int status = reap(taker);
            taker = -1;
            uint64_t done = atomic_load(&sh->last_ack_ns);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || done < killed)
                rc = -1;
            else
                ms[r] = (double)(done - killed) / 1e6;
        }
        if (holder > 0) {
            kill(holder, SIGKILL);
            reap(holder);
        }
        if (taker > 0) {
            kill(taker, SIGKILL);
            reap(taker);
        }
        close(ready[0]);
        close(ready[1]);
    }
    if (rc != 0)
        fprintf(stderr, "F1 floor: a round failed\n");
    munmap(sh, sizeof *sh);
    remove_tree(dir);
    return rc;
}
