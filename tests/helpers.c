#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/ravel-test-XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return strdup(dir);
}

void rm_tmpdir(char *dir)
{
    if (!dir)
        return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

void key_of(char out[17], unsigned long i)
{
    snprintf(out, 17, "k%015lu", i);
}

void pair_open(pair *p, const ravel_host_options *hopts, const ravel_options *gopts)
{
    memset(p, 0, sizeof *p);
    p->dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", p->dir);
    OK(ravel_open_local(&p->local, path, NULL));
    OK(ravel_host_new(&p->host, p->local, hopts));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    OK(ravel_host_attach_fd(p->host, sv[0], sv[0]));
    OK(ravel_guest_new(&p->guest, gopts));
    OK(ravel_guest_attach_fd(p->guest, sv[1], sv[1]));
}

void pair_close(pair *p)
{
    ravel_db_close(p->guest);
    ravel_host_free(p->host);
    ravel_db_close(p->local);
    rm_tmpdir(p->dir);
}

void wait_until(int (*cond)(void *), void *arg, const char *what)
{
    for (int i = 0; i < 10000; i++) {
        if (cond(arg))
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("timed out waiting for %s", what);
}
