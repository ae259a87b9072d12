/* Hosts for abstract-level's test suite (tests/interop/suite.js): one ravel
 * host per database, each on its own unix socket, made on demand.
 *
 * Usage: suite-host BASE
 *
 * Reads commands on stdin, one per line:
 *   open N   open (once) LevelDB directory BASE/N, serve it on the unix
 *            socket BASE/N.sock, reply "ok N" ("err N MESSAGE" on failure).
 *            Asking again for an N already open just replies "ok N": it is
 *            the same database, still served.
 * At the end of stdin every host is freed, every database closed, exit 0. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ravel.h"

struct served {
    unsigned long n;
    ravel_db *db;
    ravel_host *host;
};

static struct served *served;
static size_t nserved, capserved;

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void open_one(const char *base, unsigned long n)
{
    for (size_t i = 0; i < nserved; i++) {
        if (served[i].n == n) {
            reply("ok %lu\n", n);
            return;
        }
    }
    if (nserved == capserved) {
        size_t cap = capserved ? capserved * 2 : 64;
        struct served *s = realloc(served, cap * sizeof *s);
        if (!s) {
            reply("err %lu out of memory\n", n);
            return;
        }
        served = s;
        capserved = cap;
    }
    char dir[4096], addr[4200];
    snprintf(dir, sizeof dir, "%s/%lu", base, n);
    snprintf(addr, sizeof addr, "unix:%s/%lu.sock", base, n);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        reply("err %lu mkdir %s: %s\n", n, dir, strerror(errno));
        return;
    }
    ravel_db *db = NULL;
    ravel_host *host = NULL;
    if (ravel_open_local(&db, dir, NULL) != RAVEL_OK) {
        reply("err %lu %s\n", n, ravel_errmsg());
        return;
    }
    if (ravel_host_new(&host, db, NULL) != RAVEL_OK) {
        reply("err %lu %s\n", n, ravel_errmsg());
        ravel_db_close(db);
        return;
    }
    if (ravel_host_listen(host, addr) != RAVEL_OK) {
        reply("err %lu %s\n", n, ravel_errmsg());
        ravel_host_free(host);
        ravel_db_close(db);
        return;
    }
    served[nserved].n = n;
    served[nserved].db = db;
    served[nserved].host = host;
    nserved++;
    reply("ok %lu\n", n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s BASE\n", argv[0]);
        return 2;
    }
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        unsigned long n;
        char end = '\n';
        int got = sscanf(line, "open %lu%c", &n, &end);
        if ((got == 1 || got == 2) && end == '\n')
            open_one(argv[1], n);
        else
            fprintf(stderr, "suite-host: bad command: %s", line);
    }
    for (size_t i = 0; i < nserved; i++) {
        ravel_host_free(served[i].host);
        ravel_db_close(served[i].db);
    }
    free(served);
    return 0;
}
