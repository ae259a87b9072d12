/* Errors that name their real cause at once (issue 17): a directory that
 * holds no database is left exactly as it was; another user's party
 * socket is "permission denied" without waiting for the lock; a database
 * directory that may not be made is "permission denied"; a TCP host that
 * refuses is "Connection refused". The cases that need an unprivileged
 * user run in a child that drops to uid 65534 (skipped unless root). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../helpers.h"

#define S(x) x, strlen(x)

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = make_tmpdir();
    chmod(dir, 0755); /* the unprivileged child must reach into it */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_tmpdir(dir);
    return 0;
}

/* The names in a directory, with their sizes and times, as one string. */
static void listing(const char *path, char *out, size_t size)
{
    out[0] = '\0';
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    size_t n = (size_t)snprintf(out, size, ". %ld.%ld\n", (long)st.st_mtim.tv_sec,
                                st.st_mtim.tv_nsec);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < size) {
        char p[4300];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        assert_int_equal(lstat(p, &st), 0);
        n += (size_t)snprintf(out + n, size - n, "%s %lld %ld.%ld\n", e->d_name,
                              (long long)st.st_size, (long)st.st_mtim.tv_sec,
                              st.st_mtim.tv_nsec);
    }
    closedir(d);
}

static void test_non_database_left_as_it_was(void **state)
{
    (void)state;
    char plain[4200], file[4300], before[8192], after[8192];
    snprintf(plain, sizeof plain, "%s/plain", dir);
    assert_int_equal(mkdir(plain, 0755), 0);
    snprintf(file, sizeof file, "%s/notes", plain);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("not a database\n", f);
    fclose(f);
    listing(plain, before, sizeof before);
    ravel_options o;
    ravel_options_init(&o);
    o.create_if_missing = 0;
    ravel_db *db;
    assert_int_equal(ravel_open_local(&db, plain, &o), RAVEL_EIO);
    assert_non_null(strstr(ravel_errmsg(), "no LevelDB database"));
    assert_int_equal(ravel_open(&db, plain, &o), RAVEL_EIO);
    assert_non_null(strstr(ravel_errmsg(), "no LevelDB database"));
    listing(plain, after, sizeof after);
    assert_string_equal(before, after);
    /* A directory that is not there is not made either. */
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/missing", plain);
    assert_int_equal(ravel_open(&db, missing, &o), RAVEL_EIO);
    assert_int_equal(access(missing, F_OK), -1);
}

static void test_connection_refused(void **state)
{
    (void)state;
    ravel_options o;
    ravel_options_init(&o);
    o.retry = 0;
    ravel_db *db;
    OK(ravel_connect(&db, "tcp:127.0.0.1:1", &o));
    assert_int_equal(ravel_put(db, S("k"), S("v")), RAVEL_ECONNLOST);
    assert_non_null(strstr(ravel_errmsg(), "Connection refused"));
    ravel_db_close(db);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run fn(arg) in a child as uid 65534; its exit code. Skips unless root. */
static int as_nobody(int (*fn)(const char *), const char *arg)
{
    if (geteuid() != 0)
        skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(99);
        _exit(fn(arg));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* 0 when the open fails at once, saying permission denied on the socket. */
static int open_forbidden_party(const char *path)
{
    ravel_db *db;
    double t0 = now_s();
    int rc = ravel_open(&db, path, NULL);
    if (rc != RAVEL_EIO) {
        fprintf(stderr, "ravel_open -> %s (%s)\n", ravel_errname(rc), ravel_errmsg());
        return 1;
    }
    if (!strstr(ravel_errmsg(), "permission denied on") || !strstr(ravel_errmsg(), "rave-level.sock")) {
        fprintf(stderr, "message: %s\n", ravel_errmsg());
        return 2;
    }
    return now_s() - t0 < 1.0 ? 0 : 3;
}

static void test_party_socket_of_another_user(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *leader;
    OK(ravel_open(&leader, path, NULL));
    assert_int_equal(ravel_db_role(leader), RAVEL_ROLE_LEADER);
    chmod(path, 0755);
    assert_int_equal(as_nobody(open_forbidden_party, path), 0);
    ravel_db_close(leader);
}

static int create_forbidden(const char *path)
{
    ravel_db *db;
    int rc = ravel_open(&db, path, NULL);
    if (rc != RAVEL_EIO || !strstr(ravel_errmsg(), "permission denied")) {
        fprintf(stderr, "ravel_open -> %s (%s)\n", ravel_errname(rc), ravel_errmsg());
        return 1;
    }
    rc = ravel_open_local(&db, path, NULL);
    return rc == RAVEL_EIO && strstr(ravel_errmsg(), "permission denied") ? 0 : 2;
}

static void test_directory_that_may_not_be_made(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/root-only", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    strcat(path, "/db/");
    assert_int_equal(as_nobody(create_forbidden, path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_non_database_left_as_it_was, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_party_socket_of_another_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_that_may_not_be_made, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
