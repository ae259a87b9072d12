/* ravel_destroy, ravel_repair and the version calls. Holders of the
 * directory are real processes: this program run again (exec'ed, not
 * just forked, as LevelDB's threads do not survive a fork) as a party
 * leader or as a plain LevelDB program. */
#include <errno.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../helpers.h"

static const char *self;

/* ---- the holders: `test-admin hold-party DIR`, `test-admin hold-plain
 * DIR`. They write one byte to stdout once they hold DIR and keep it
 * until stdin ends. ---- */

static int hold(const char *how, const char *dir)
{
    char c;
    if (strcmp(how, "hold-party") == 0) {
        ravel_db *db;
        if (ravel_open(&db, dir, NULL) != RAVEL_OK || ravel_put(db, "held", 4, "1", 1) != RAVEL_OK)
            return 1;
        if (write(1, "r", 1) != 1)
            return 1;
        while (read(0, &c, 1) > 0) {
        }
        ravel_db_close(db);
        return 0;
    }
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, dir, &err);
    if (err)
        return 1;
    if (write(1, "r", 1) != 1)
        return 1;
    while (read(0, &c, 1) > 0) {
    }
    leveldb_close(db);
    leveldb_options_destroy(o);
    return 0;
}

typedef struct holder {
    pid_t pid;
    int to, from; /* its stdin, its stdout */
} holder;

static holder start_holder(const char *how, const char *dir)
{
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    holder h = {fork(), in[1], out[0]};
    assert_true(h.pid >= 0);
    if (h.pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl(self, self, how, dir, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char c;
    assert_int_equal(read(h.from, &c, 1), 1);
    return h;
}

static void stop_holder(holder *h)
{
    close(h->to);
    int st;
    assert_int_equal(waitpid(h->pid, &st, 0), h->pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(h->from);
}

/* ---- helpers ---- */

static void sub(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static int exists(const char *dir, const char *name)
{
    char path[4400];
    struct stat st;
    sub(path, sizeof path, dir, name);
    return stat(path, &st) == 0;
}

static void make_db(const char *dir, int nkeys)
{
    ravel_options o;
    ravel_options_init(&o);
    o.bloom_bits_per_key = 10; /* so there is a ravel-options file */
    ravel_db *db;
    OK(ravel_open_local(&db, dir, &o));
    char key[17];
    for (int i = 0; i < nkeys; i++) {
        key_of(key, (unsigned long)i);
        OK(ravel_put(db, key, 16, key, 16));
    }
    ravel_db_close(db);
}

static void check_keys(const char *dir, int nkeys)
{
    ravel_db *db;
    OK(ravel_open_local(&db, dir, NULL));
    char key[17], *val;
    size_t vlen;
    for (int i = 0; i < nkeys; i++) {
        key_of(key, (unsigned long)i);
        OK(ravel_get(db, key, 16, &val, &vlen));
        assert_memory_equal(val, key, 16);
        ravel_free(val);
    }
    ravel_db_close(db);
}

/* A socket file nobody listens on, as a leader killed with SIGKILL leaves. */
static void stale_socket(const char *dir)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    assert_true(strlen(dir) + 17 < sizeof sun.sun_path);
    memcpy(sun.sun_path, dir, strlen(dir));
    memcpy(sun.sun_path + strlen(dir), "/rave-level.sock", 17);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
}

/* ---- tests ---- */

static void test_version(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", RAVEL_VERSION_MAJOR, RAVEL_VERSION_MINOR,
             RAVEL_VERSION_PATCH);
    assert_string_equal(ravel_version(), want);
    assert_string_equal(ravel_version(), RAVEL_PROJECT_VERSION); /* CMake's project() */
    assert_int_equal(ravel_version_major(), RAVEL_VERSION_MAJOR);
    assert_int_equal(ravel_version_minor(), RAVEL_VERSION_MINOR);
    assert_int_equal(ravel_version_patch(), RAVEL_VERSION_PATCH);
    snprintf(want, sizeof want, "%d.%d", leveldb_major_version(), leveldb_minor_version());
    assert_string_equal(ravel_leveldb_version(), want);
}

static void test_destroy_idle(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200], keep[4200];
    sub(dir, sizeof dir, tmp, "db");
    make_db(dir, 100);
    stale_socket(dir);
    assert_true(exists(dir, "ravel-options"));
    OK(ravel_destroy(dir));
    struct stat st;
    assert_int_not_equal(stat(dir, &st), 0); /* the directory went too */

    /* A file that is neither LevelDB's nor ravel's is left, and so is the
     * directory that holds it. */
    sub(keep, sizeof keep, tmp, "db2");
    make_db(keep, 10);
    char path[4400];
    sub(path, sizeof path, keep, "notes.txt");
    FILE *f = fopen(path, "w");
    fclose(f);
    OK(ravel_destroy(keep));
    assert_true(exists(keep, "notes.txt"));
    assert_false(exists(keep, "CURRENT"));
    assert_false(exists(keep, "LOCK"));
    assert_false(exists(keep, "ravel-options"));
    rm_tmpdir(tmp);
}

static void test_not_a_database(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char missing[4200], notes[4400];
    sub(notes, sizeof notes, tmp, "LOG"); /* a name LevelDB would delete */
    FILE *f = fopen(notes, "w");
    fclose(f);
    assert_int_equal(ravel_destroy(tmp), RAVEL_EINVAL);
    assert_non_null(strstr(ravel_errmsg(), "no LevelDB database"));
    assert_true(exists(tmp, "LOG"));
    assert_int_equal(ravel_repair(tmp, NULL), RAVEL_EINVAL);
    assert_non_null(strstr(ravel_errmsg(), "no LevelDB files"));
    assert_false(exists(tmp, "LOCK"));
    sub(missing, sizeof missing, tmp, "missing");
    assert_int_equal(ravel_destroy(missing), RAVEL_EIO);
    assert_non_null(strstr(ravel_errmsg(), "No such file"));
    assert_int_equal(ravel_repair(missing, NULL), RAVEL_EIO);
    assert_int_equal(ravel_destroy(NULL), RAVEL_EINVAL);
    assert_int_equal(ravel_repair(NULL, NULL), RAVEL_EINVAL);
    rm_tmpdir(tmp);
}

/* Both refuse while another process holds the directory, and change
 * nothing; once it lets go they work. */
static void refused_while_held(const char *how)
{
    char *tmp = make_tmpdir();
    char dir[4200], pid[32];
    sub(dir, sizeof dir, tmp, "db");
    make_db(dir, 50);
    holder h = start_holder(how, dir);
    snprintf(pid, sizeof pid, "process %d", (int)h.pid);
    assert_int_equal(ravel_destroy(dir), RAVEL_ELOCKED);
    assert_non_null(strstr(ravel_errmsg(), pid));
    assert_int_equal(ravel_repair(dir, NULL), RAVEL_ELOCKED);
    assert_non_null(strstr(ravel_errmsg(), pid));
    assert_true(exists(dir, "CURRENT"));
    assert_true(exists(dir, "ravel-options"));
    stop_holder(&h);
    check_keys(dir, 50);
    OK(ravel_repair(dir, NULL));
    check_keys(dir, 50);
    OK(ravel_destroy(dir));
    assert_false(exists(tmp, "db"));
    rm_tmpdir(tmp);
}

static void test_refused_by_party_leader(void **state)
{
    (void)state;
    refused_while_held("hold-party");
}

static void test_refused_by_plain_leveldb(void **state)
{
    (void)state;
    refused_while_held("hold-plain");
}

/* A handle of this very process: LevelDB's own destroy would open and
 * close LOCK, dropping the lock the handle holds. */
static void test_refused_by_own_handle(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200];
    sub(dir, sizeof dir, tmp, "db");
    make_db(dir, 5);
    ravel_db *db;
    OK(ravel_open(&db, dir, NULL));
    assert_int_equal(ravel_destroy(dir), RAVEL_ELOCKED);
    assert_non_null(strstr(ravel_errmsg(), "this process"));
    assert_int_equal(ravel_repair(dir, NULL), RAVEL_ELOCKED);
    OK(ravel_put(db, "after", 5, "x", 1));
    ravel_db_close(db);
    check_keys(dir, 5);
    rm_tmpdir(tmp);
}

/* A party's socket that answers, with LOCK not visibly held (a leader
 * whose lock /proc/locks does not show, e.g. on another host's view of a
 * network file system): refused as well. */
static void test_refused_by_live_socket(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200];
    sub(dir, sizeof dir, tmp, "db");
    make_db(dir, 5);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    assert_true(strlen(dir) + 17 < sizeof sun.sun_path);
    memcpy(sun.sun_path, dir, strlen(dir));
    memcpy(sun.sun_path + strlen(dir), "/rave-level.sock", 17);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(ravel_destroy(dir), RAVEL_ELOCKED);
    assert_non_null(strstr(ravel_errmsg(), "rave-level.sock"));
    assert_int_equal(ravel_repair(dir, NULL), RAVEL_ELOCKED);
    close(fd);
    OK(ravel_destroy(dir)); /* the socket is stale now, and removed */
    assert_false(exists(tmp, "db"));
    rm_tmpdir(tmp);
}

/* A database whose CURRENT is lost does not open; repaired, every key is
 * back. */
static void test_repair_lost_current(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200], path[4400];
    sub(dir, sizeof dir, tmp, "db");
    make_db(dir, 300);
    /* Some of it in a table, some only in the log. */
    ravel_db *db;
    OK(ravel_open_local(&db, dir, NULL));
    OK(ravel_put(db, "tail", 4, "t", 1));
    ravel_db_close(db);
    sub(path, sizeof path, dir, "CURRENT");
    assert_int_equal(unlink(path), 0);
    ravel_options o;
    ravel_options_init(&o);
    o.create_if_missing = 0;
    assert_int_not_equal(ravel_open_local(&db, dir, &o), RAVEL_OK);
    OK(ravel_repair(dir, NULL));
    assert_true(exists(dir, "CURRENT"));
    check_keys(dir, 300);
    rm_tmpdir(tmp);
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc == 3)
        return hold(argv[1], argv[2]);
    char *abs = realpath(argv[0], NULL);
    if (abs)
        self = abs;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_destroy_idle),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_refused_by_party_leader),
        cmocka_unit_test(test_refused_by_plain_leveldb),
        cmocka_unit_test(test_refused_by_own_handle),
        cmocka_unit_test(test_refused_by_live_socket),
        cmocka_unit_test(test_repair_lost_current),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(abs);
    return rc;
}
