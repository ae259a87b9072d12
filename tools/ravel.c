/* The ravel command: serve a LevelDB directory to guests, and a live demo
 * of many processes sharing one database. */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ravel.h"

/* Exit codes. */
enum { EXIT_OK = 0, EXIT_NOTFOUND = 1, EXIT_USAGE = 2, EXIT_FAIL = 3 };

static const char usage_text[] =
    "usage: ravel COMMAND [ARGS]\n"
    "\n"
    "Many processes, one LevelDB database.\n"
    "\n"
    "commands:\n"
    "  serve DIR --listen ADDRESS [--listen ADDRESS...] [--readonly] [--quiet]\n"
    "        Open the LevelDB directory DIR and serve it to guests (ravel or Node\n"
    "        many-level) on each ADDRESS: unix:PATH or tcp:HOST:PORT. Runs until\n"
    "        SIGINT or SIGTERM, then answers what is running and removes its\n"
    "        unix sockets.\n"
    "  demo [--dir DIR] [--seconds N]\n"
    "        A live demo of party mode: four writer processes and a reader open\n"
    "        DIR (default $TMPDIR/ravel-demo) at once; the first leads and serves\n"
    "        the others. Midway the leader is killed with SIGKILL; a new one is\n"
    "        elected and everyone carries on. N seconds in all (default 6).\n"
    "  help, --help, -h    this text\n"
    "  version, --version  the version\n"
    "\n"
    "exit codes: 0 ok, 1 not found, 2 usage error, 3 failure (the message says\n"
    "which).\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ravel: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'ravel --help' for usage)\n");
    return EXIT_USAGE;
}

static int fail(const char *what)
{
    fprintf(stderr, "ravel: %s: %s\n", what, ravel_errmsg());
    return EXIT_FAIL;
}

/* ---- serve ---- */

static int cmd_serve(int argc, char **argv)
{
    const char *dir = NULL;
    const char *listen[16];
    int nlisten = 0;
    ravel_host_options ho;
    ravel_host_options_init(&ho);
    ho.verbose = 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0) {
            if (i + 1 >= argc)
                return usage_error("%s needs an address (unix:PATH or tcp:HOST:PORT)", argv[i]);
            if (nlisten == 16)
                return usage_error("too many %s options", "--listen");
            listen[nlisten++] = argv[++i];
        } else if (strcmp(argv[i], "--readonly") == 0) {
            ho.readonly = 1;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            ho.verbose = 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        } else if (argv[i][0] == '-') {
            return usage_error("unknown option %s for serve", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return usage_error("unexpected argument %s", argv[i]);
        }
    }
    if (!dir)
        return usage_error("serve needs a database directory%s", "");
    if (!nlisten)
        return usage_error("serve needs at least one --listen ADDRESS%s", "");
    /* Signals are taken synchronously below, so the I/O threads never see
     * them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    ravel_db *db;
    if (ravel_open_local(&db, dir, NULL) != RAVEL_OK)
        return fail("cannot open the database");
    ravel_host *h;
    if (ravel_host_new(&h, db, &ho) != RAVEL_OK) {
        ravel_db_close(db);
        return fail("cannot start the host");
    }
    for (int i = 0; i < nlisten; i++) {
        if (ravel_host_listen(h, listen[i]) != RAVEL_OK) {
            int rc = fail("cannot listen");
            ravel_host_free(h);
            ravel_db_close(db);
            return rc;
        }
        if (strncmp(listen[i], "tcp:", 4) == 0)
            fprintf(stderr, "ravel: serving %s on tcp port %d\n", dir, ravel_host_port(h));
        else
            fprintf(stderr, "ravel: serving %s on %s\n", dir, listen[i]);
    }
    printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    fprintf(stderr, "ravel: %s received, shutting down\n", strsignal(sig));
    ravel_host_free(h);
    ravel_db_close(db);
    return EXIT_OK;
}

/* ---- demo ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double t0;

static void say(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *who, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("[%5.2fs] %-9s %s\n", now_s() - t0, who, msg);
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
        double t = now_s();
        if (ravel_put(db, "a", 1, val, strlen(val)) != RAVEL_OK) {
            say(member_name, "put failed: %s", ravel_errmsg());
            _exit(EXIT_FAIL);
        }
        acked++;
        double took = (now_s() - t) * 1000;
        if (took > 5)
            say(member_name, "put a=%s was acknowledged after %.1f ms", val, took);
        sleep_ms(300);
    }
    char key[32], val[32];
    snprintf(key, sizeof key, "acked/%d/%d", id, (int)getpid());
    snprintf(val, sizeof val, "%d", acked);
    if (ravel_put(db, key, strlen(key), val, strlen(val)) != RAVEL_OK)
        _exit(EXIT_FAIL);
    say(member_name, "stopping: %d puts, every one acknowledged", acked);
    ravel_db_close(db);
    _exit(EXIT_OK);
}

static pid_t demo_reader(const char *dir)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, on_term);
    snprintf(member_name, sizeof member_name, "reader");
    ravel_db *db = demo_open(dir);
    while (!stop_flag) {
        char *v;
        size_t vl;
        int rc = ravel_get(db, "a", 1, &v, &vl);
        if (rc == RAVEL_OK) {
            say(member_name, "a=%.*s", (int)vl, v);
            ravel_free(v);
        } else if (rc != RAVEL_ENOTFOUND) {
            say(member_name, "get failed: %s", ravel_errmsg());
            _exit(EXIT_FAIL);
        }
        sleep_ms(250);
    }
    ravel_db_close(db);
    _exit(EXIT_OK);
}

static int cmd_demo(int argc, char **argv)
{
    char dir[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ravel-demo", tmp && *tmp ? tmp : "/tmp");
    double seconds = 6;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s", argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        } else
            return usage_error("unknown demo argument %s", argv[i]);
    }
    if (seconds < 1)
        return usage_error("--seconds must be at least 1%s", "");
    leader_pid = mmap(NULL, sizeof *leader_pid, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    if (leader_pid == MAP_FAILED) {
        fprintf(stderr, "ravel: demo: cannot map shared memory: %s\n", strerror(errno));
        return EXIT_FAIL;
    }
    t0 = now_s();
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
    if (ravel_open_local(&db, dir, NULL) != RAVEL_OK)
        return fail("cannot reopen the demo database");
    ravel_range r;
    ravel_range_init(&r);
    r.has_gte = 1, r.gte = (ravel_bound){"acked/", 6};
    r.has_lt = 1, r.lt = (ravel_bound){"acked0", 6};
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

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("a command is needed%s", "");
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ravel %d.%d.%d\n", RAVEL_VERSION_MAJOR, RAVEL_VERSION_MINOR, RAVEL_VERSION_PATCH);
        return EXIT_OK;
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "demo") == 0)
        return cmd_demo(argc - 2, argv + 2);
    return usage_error("unknown command %s", cmd);
}
