/* Host and guest in different processes over a unix socket; the host is
 * killed with SIGKILL mid-iteration and a new one started on the same
 * directory, and the guest carries on. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../helpers.h"

static const char *serve_child;
static char *dir, dbpath[4200], addr[4300];

/* Start serve-child and wait for its "ready". */
static pid_t start_host(void)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(serve_child, serve_child, dbpath, addr, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[16] = "";
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    assert_true(n > 0 && strncmp(buf, "ready", 5) == 0);
    return pid;
}

static void kill_host(pid_t pid, int sig)
{
    kill(pid, sig);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void test_sigkill_host_mid_iteration(void **state)
{
    (void)state;
    enum { N = 100000 };
    pid_t host = start_host();
    ravel_db *g;
    OK(ravel_connect(&g, addr, NULL));
    ravel_batch *b = ravel_batch_new();
    char key[17];
    for (unsigned long i = 0; i < N; i++) {
        key_of(key, i);
        OK(ravel_batch_put(b, key, 16, key, 16));
        if (ravel_batch_count(b) == 5000) {
            OK(ravel_write(g, b));
            ravel_batch_clear(b);
        }
    }
    ravel_batch_free(b);
    for (int reverse = 0; reverse < 2; reverse++) {
        ravel_range r;
        ravel_range_init(&r);
        r.reverse = reverse;
        ravel_iter *it;
        OK(ravel_iter_new(g, &r, &it));
        unsigned long n = 0;
        int kills = 0;
        const char *k, *v;
        size_t kl, vl;
        while (ravel_iter_next(it, &k, &kl, &v, &vl) == RAVEL_OK) {
            key_of(key, reverse ? N - 1 - n : n);
            assert_int_equal(kl, 16);
            assert_memory_equal(k, key, 16);
            assert_memory_equal(v, key, 16);
            n++;
            if (n % 20000 == 0) {
                kill_host(host, SIGKILL);
                host = start_host();
                kills++;
            }
        }
        assert_int_equal(n, N);
        printf("# %s: %lu entries across %d SIGKILLed hosts\n", reverse ? "reverse" : "forward", n,
               kills);
        ravel_iter_free(it);
    }
    /* Puts pending while no host runs land once one is back. */
    kill_host(host, SIGKILL);
    ravel_db *g2;
    OK(ravel_connect(&g2, addr, NULL));
    pid_t later = fork();
    if (later == 0) {
        usleep(200000);
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        execl(serve_child, serve_child, dbpath, addr, (char *)NULL);
        _exit(127);
    }
    OK(ravel_put(g2, "late", 4, "but there", 9));
    char *val;
    size_t vl;
    OK(ravel_get(g, "late", 4, &val, &vl));
    assert_memory_equal(val, "but there", 9);
    ravel_free(val);
    ravel_db_close(g2);
    ravel_db_close(g);
    kill_host(later, SIGTERM);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-serve-child\n", argv[0]);
        return 2;
    }
    serve_child = argv[1];
    dir = make_tmpdir();
    snprintf(dbpath, sizeof dbpath, "%s/db", dir);
    snprintf(addr, sizeof addr, "unix:%s/host.sock", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_host_mid_iteration),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    rm_tmpdir(dir);
    return failed;
}
