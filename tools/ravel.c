/* The ravel command: serve a LevelDB directory to guests, and a live demo
 * of many processes sharing one database. */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    "        A live demo: a host process serves DIR (default $TMPDIR/ravel-demo),\n"
    "        four writer processes and a reader share it; midway the host is\n"
    "        killed with SIGKILL and restarted, and everyone carries on.\n"
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

/* A host child: serve dir on addr until killed. */
static pid_t demo_host(const char *dir, const char *addr)
{
    int ready[2];
    if (pipe(ready) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        ravel_db *db;
        ravel_host *h;
        if (ravel_open_local(&db, dir, NULL) != RAVEL_OK || ravel_host_new(&h, db, NULL) != RAVEL_OK ||
            ravel_host_listen(h, addr) != RAVEL_OK) {
            fprintf(stderr, "ravel demo: host: %s\n", ravel_errmsg());
            _exit(EXIT_FAIL);
        }
        say("host", "pid %d serves %s", (int)getpid(), addr);
        if (write(ready[1], "r", 1) != 1)
            _exit(EXIT_FAIL);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    ssize_t n = read(ready[0], &c, 1);
    close(ready[0]);
    if (n != 1) {
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* A writer child: put "a" = its own counter every 300 ms. Counts what was
 * acknowledged and reports it in its exit message on SIGTERM. */
static volatile sig_atomic_t stop_flag;
static void on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static pid_t demo_writer(int id, const char *addr)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, on_term);
    char who[16];
    snprintf(who, sizeof who, "writer %d", id);
    ravel_db *db;
    if (ravel_connect(&db, addr, NULL) != RAVEL_OK) {
        say(who, "cannot connect: %s", ravel_errmsg());
        _exit(EXIT_FAIL);
    }
    srand((unsigned)getpid());
    int base = rand() % 90000 + 10000, acked = 0;
    while (!stop_flag) {
        char val[32];
        snprintf(val, sizeof val, "%d", base + acked);
        double t = now_s();
        int rc = ravel_put(db, "a", 1, val, strlen(val));
        if (rc != RAVEL_OK) {
            say(who, "put failed: %s", ravel_errmsg());
            _exit(EXIT_FAIL);
        }
        acked++;
        double took = (now_s() - t) * 1000;
        if (took > 50)
            say(who, "put a=%s acknowledged after %.0f ms (waited for the new host)", val, took);
        sleep_ms(300);
    }
    char key[32], val[32];
    snprintf(key, sizeof key, "acked/%d", id);
    snprintf(val, sizeof val, "%d", acked);
    ravel_put(db, key, strlen(key), val, strlen(val));
    say(who, "stopping: %d puts, every one acknowledged", acked);
    ravel_db_close(db);
    _exit(EXIT_OK);
}

static pid_t demo_reader(const char *addr)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    signal(SIGTERM, on_term);
    ravel_db *db;
    if (ravel_connect(&db, addr, NULL) != RAVEL_OK) {
        say("reader", "cannot connect: %s", ravel_errmsg());
        _exit(EXIT_FAIL);
    }
    while (!stop_flag) {
        char *v;
        size_t vl;
        int rc = ravel_get(db, "a", 1, &v, &vl);
        if (rc == RAVEL_OK) {
            say("reader", "a=%.*s", (int)vl, v);
            ravel_free(v);
        } else if (rc != RAVEL_ENOTFOUND) {
            say("reader", "get failed: %s", ravel_errmsg());
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
    char addr[4200];
    snprintf(addr, sizeof addr, "unix:%s/demo.sock", dir);
    t0 = now_s();
    mkdir(dir, 0700);
    say("demo", "one LevelDB database in %s, shared by five processes", dir);
    pid_t host = demo_host(dir, addr);
    if (host < 0)
        return fail("the demo host did not start");
    pid_t kids[5];
    for (int i = 0; i < 4; i++)
        kids[i] = demo_writer(i + 1, addr);
    kids[4] = demo_reader(addr);
    sleep_ms((int)(seconds * 500));
    say("demo", "SIGKILL the host (pid %d) while everyone is busy", (int)host);
    kill(host, SIGKILL);
    waitpid(host, NULL, 0);
    sleep_ms(500);
    say("demo", "start a new host on the same directory");
    host = demo_host(dir, addr);
    if (host < 0)
        return fail("the demo host did not restart");
    sleep_ms((int)(seconds * 500));
    say("demo", "stop the writers and the reader");
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        kill(kids[i], SIGTERM);
        int status;
        waitpid(kids[i], &status, 0);
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    kill(host, SIGTERM);
    waitpid(host, NULL, 0);
    /* Check with LevelDB directly that what the writers counted is there. */
    ravel_db *db;
    if (ravel_open_local(&db, dir, NULL) != RAVEL_OK)
        return fail("cannot reopen the demo database");
    for (int i = 1; i <= 4; i++) {
        char key[32], *v;
        size_t vl;
        snprintf(key, sizeof key, "acked/%d", i);
        if (ravel_get(db, key, strlen(key), &v, &vl) != RAVEL_OK) {
            ok = 0;
            continue;
        }
        ravel_free(v);
    }
    ravel_db_close(db);
    say("demo", ok ? "done: the host died once, no request failed, no process saw a lock error"
                   : "FAILED: a process reported an error (see above)");
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
