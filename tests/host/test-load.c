/* Load: 64 guests, each on its own connection, 10,000 mixed operations
 * each, against one host in another process — no errors, every result
 * checked against what that guest wrote, and the host's peak memory
 * reported. Usage: test-load PATH-TO-serve-child */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../helpers.h"

enum { GUESTS = 64, OPS = 10000, KEYS = 100 };

static char addr[4300];

typedef struct guest {
    int id;
    int errors;
    long ops;
} guest;

/* What this guest's key i holds: -1 absent, else the version written. */
static void key_name(char *out, int g, int i)
{
    snprintf(out, 32, "g%02d-%03d", g, i);
}

static void *run_guest(void *arg)
{
    guest *gs = arg;
    ravel_db *db;
    if (ravel_connect(&db, addr, NULL) != RAVEL_OK) {
        gs->errors++;
        return NULL;
    }
    int model[KEYS];
    for (int i = 0; i < KEYS; i++)
        model[i] = -1;
    unsigned seed = (unsigned)gs->id * 7919u + 1;
    char k[32], v[32];
    for (int op = 0; op < OPS; op++, gs->ops++) {
        int i = (int)(rand_r(&seed) % KEYS);
        int kind = (int)(rand_r(&seed) % 100);
        key_name(k, gs->id, i);
        if (kind < 40) {
            snprintf(v, sizeof v, "%d", op);
            if (ravel_put(db, k, strlen(k), v, strlen(v)) != RAVEL_OK)
                gs->errors++;
            model[i] = op;
        } else if (kind < 80) {
            char *got;
            size_t gl;
            int rc = ravel_get(db, k, strlen(k), &got, &gl);
            if (model[i] < 0) {
                gs->errors += rc != RAVEL_ENOTFOUND;
            } else {
                snprintf(v, sizeof v, "%d", model[i]);
                gs->errors += rc != RAVEL_OK || gl != strlen(v) || memcmp(got, v, gl) != 0;
                ravel_free(got);
            }
        } else if (kind < 90) {
            gs->errors += ravel_del(db, k, strlen(k)) != RAVEL_OK;
            model[i] = -1;
        } else if (kind < 95) {
            ravel_batch *b = ravel_batch_new();
            for (int j = 0; j < 10; j++) {
                int x = (i + j) % KEYS;
                key_name(k, gs->id, x);
                snprintf(v, sizeof v, "%d", op);
                ravel_batch_put(b, k, strlen(k), v, strlen(v));
                model[x] = op;
            }
            gs->errors += ravel_write(db, b) != RAVEL_OK;
            ravel_batch_free(b);
        } else {
            /* This guest's keys, in order, exactly as the model has them. */
            char lo[8], hi[8];
            snprintf(lo, sizeof lo, "g%02d-", gs->id);
            snprintf(hi, sizeof hi, "g%02d.", gs->id);
            ravel_range r;
            ravel_range_init(&r);
            r.has_gte = 1, r.gte = (ravel_bound){lo, strlen(lo)};
            r.has_lt = 1, r.lt = (ravel_bound){hi, strlen(hi)};
            ravel_iter *it;
            if (ravel_iter_new(db, &r, &it) != RAVEL_OK) {
                gs->errors++;
                continue;
            }
            const char *ik, *iv;
            size_t ikl, ivl;
            int x = 0;
            while (ravel_iter_next(it, &ik, &ikl, &iv, &ivl) == RAVEL_OK) {
                while (x < KEYS && model[x] < 0)
                    x++;
                key_name(k, gs->id, x);
                snprintf(v, sizeof v, "%d", x < KEYS ? model[x] : -1);
                gs->errors += x >= KEYS || ikl != strlen(k) || memcmp(ik, k, ikl) != 0 ||
                              ivl != strlen(v) || memcmp(iv, v, ivl) != 0;
                x++;
            }
            while (x < KEYS && model[x] < 0)
                x++;
            gs->errors += x != KEYS; /* none missing at the end */
            ravel_iter_free(it);
        }
    }
    ravel_db_close(db);
    return NULL;
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static const char *serve_child;

static void test_64_guests(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char db[4200];
    snprintf(db, sizeof db, "%s/db", dir);
    snprintf(addr, sizeof addr, "unix:%s/host.sock", dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t host = fork();
    if (host == 0) {
        dup2(fds[1], 1);
        execl(serve_child, serve_child, db, addr, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[8];
    assert_true(read(fds[0], buf, sizeof buf) > 0);
    close(fds[0]);
    pthread_t t[GUESTS];
    guest g[GUESTS];
    for (int i = 0; i < GUESTS; i++) {
        g[i] = (guest){i, 0, 0};
        pthread_create(&t[i], NULL, run_guest, &g[i]);
    }
    long errors = 0, ops = 0;
    for (int i = 0; i < GUESTS; i++) {
        pthread_join(t[i], NULL);
        errors += g[i].errors;
        ops += g[i].ops;
    }
    long rss = peak_rss_kb(host);
    kill(host, SIGTERM);
    waitpid(host, NULL, 0);
    printf("# %d guests x %d ops: %ld operations, %ld errors, host peak RSS %ld KiB\n", GUESTS,
           OPS, ops, errors, rss);
    assert_int_equal(errors, 0);
    assert_int_equal(ops, (long)GUESTS * OPS);
    assert_true(rss > 0);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory resident */
    assert_true(rss < 128 * 1024);
#endif
    rm_tmpdir(dir);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-serve-child\n", argv[0]);
        return 2;
    }
    serve_child = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_64_guests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
