/* A disk that fills up: writes fail with an error that says so, nothing
 * acknowledged is lost, and once space returns the database takes writes
 * again — directly and through a host. Needs to mount a small tmpfs (root);
 * skipped, saying so, where that is not allowed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../helpers.h"

static char *dir;
static char mnt[4200], dbpath[4300];

static int setup(void **state)
{
    (void)state;
    dir = make_tmpdir();
    snprintf(mnt, sizeof mnt, "%s/mnt", dir);
    snprintf(dbpath, sizeof dbpath, "%s/db", mnt);
    mkdir(mnt, 0700);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0) {
        fprintf(stderr, "# cannot mount a tmpfs here (%s): disk-full test skipped\n",
                strerror(errno));
        rm_tmpdir(dir);
        dir = NULL;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (dir) {
        umount(mnt);
        rm_tmpdir(dir);
    }
    return 0;
}

static void grow(void)
{
    assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0);
}

/* Put 64 KiB values until a put fails; returns how many were acknowledged. */
static int fill(ravel_db *db, const char *prefix, int *status)
{
    static char val[64 << 10];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < 10000; i++) {
        char k[32];
        snprintf(k, sizeof k, "%s%05d", prefix, i);
        int rc = ravel_put(db, k, strlen(k), val, sizeof val);
        if (rc != RAVEL_OK) {
            *status = rc;
            return i;
        }
    }
    fail_msg("the disk never filled up");
    return 0;
}

static void check_present(ravel_db *db, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], *v;
        size_t vl;
        snprintf(k, sizeof k, "%s%05d", prefix, i);
        OK(ravel_get(db, k, strlen(k), &v, &vl));
        assert_int_equal(vl, 64 << 10);
        ravel_free(v);
    }
}

static void test_local_disk_full(void **state)
{
    (void)state;
    if (!dir)
        skip();
    ravel_db *db;
    OK(ravel_open_local(&db, dbpath, NULL));
    int status = 0;
    int acked = fill(db, "a", &status);
    assert_int_equal(status, RAVEL_EIO);
    assert_non_null(strstr(ravel_errmsg(), "No space left on device"));
    assert_true(acked > 0);
    /* Still full: writes keep failing, reads keep working. */
    assert_int_equal(ravel_put(db, "more", 4, "x", 1), RAVEL_EIO);
    check_present(db, "a", acked);
    grow();
    OK(ravel_put(db, "after", 5, "space came back", 15));
    check_present(db, "a", acked);
    ravel_db_close(db);
    /* Everything acknowledged survives a reopen — also what came after
     * the failure. */
    OK(ravel_open_local(&db, dbpath, NULL));
    check_present(db, "a", acked);
    char *v;
    size_t vl;
    OK(ravel_get(db, "after", 5, &v, &vl));
    ravel_free(v);
    ravel_db_close(db);
}

static void test_party_disk_full(void **state)
{
    (void)state;
    if (!dir)
        skip();
    ravel_db *leader, *follower;
    OK(ravel_open(&leader, dbpath, NULL));
    OK(ravel_open(&follower, dbpath, NULL));
    assert_int_equal(ravel_db_role(follower), RAVEL_ROLE_FOLLOWER);
    int status = 0;
    int acked = fill(follower, "f", &status);
    assert_int_equal(status, RAVEL_EREMOTE); /* the host says it failed */
    assert_true(acked > 0);
    /* The leader and its host are still there. */
    check_present(follower, "f", acked);
    grow();
    OK(ravel_put(follower, "after", 5, "space came back", 15));
    OK(ravel_put(leader, "after2", 6, "directly", 8));
    ravel_db_close(follower);
    ravel_db_close(leader);
    OK(ravel_open_local(&leader, dbpath, NULL));
    check_present(leader, "f", acked);
    char *v;
    size_t vl;
    OK(ravel_get(leader, "after", 5, &v, &vl));
    ravel_free(v);
    OK(ravel_get(leader, "after2", 6, &v, &vl));
    ravel_free(v);
    ravel_db_close(leader);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_party_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
