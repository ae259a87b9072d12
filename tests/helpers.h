/* Shared test fixtures: temporary directories and a host serving a fresh
 * LevelDB directory to a guest. Tests use cmocka. */
#ifndef RAVEL_TEST_HELPERS_H
#define RAVEL_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ravel.h"

#define OK(expr)                                                                    \
    do {                                                                            \
        int rc_ = (expr);                                                           \
        if (rc_ != RAVEL_OK)                                                        \
            fail_msg("%s -> %s (%s)", #expr, ravel_errname(rc_), ravel_errmsg());   \
    } while (0)

/* A fresh empty directory under $TMPDIR (or /tmp); free with rm_tmpdir. */
char *make_tmpdir(void);
void rm_tmpdir(char *dir);

/* Key i of the standard workload: "k" + 15 zero-padded digits. */
void key_of(char out[17], unsigned long i);

/* A local database in a temp dir, a host serving it, and a guest attached
 * over a socketpair. */
typedef struct pair {
    char *dir;
    ravel_db *local;
    ravel_host *host;
    ravel_db *guest;
} pair;

void pair_open(pair *p, const ravel_host_options *hopts, const ravel_options *gopts);
void pair_close(pair *p);

/* Wait (bounded, 10 s) until cond() is true; fails the test otherwise. */
void wait_until(int (*cond)(void *), void *arg, const char *what);

#endif
