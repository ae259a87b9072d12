/* Per-write sync reaches LevelDB's disk sync, wherever the write comes
 * from: this program defines fdatasync(), which LevelDB's log calls for a
 * sync write (executables come first in symbol lookup), counts the calls
 * and passes them on. The party's leader is in this process, so a
 * follower's writes are synced here too. */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../helpers.h"

#define S(x) x, strlen(x)

static atomic_int syncs;

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    atomic_fetch_add(&syncs, 1);
    return real(fd);
}

/* n puts through db: how many disk syncs they caused in this process. */
static int syncs_of_puts(ravel_db *db, const ravel_writeoptions *wo, int n, const char *tag)
{
    int before = atomic_load(&syncs);
    for (int i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof k, "%s%03d", tag, i);
        OK(ravel_put_opt(db, wo, S(k), S("v")));
    }
    return atomic_load(&syncs) - before;
}

static void test_follower_sync_reaches_disk(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *leader, *follower, *synced_follower;
    OK(ravel_open(&leader, path, NULL));
    OK(ravel_open(&follower, path, NULL));
    ravel_options o;
    ravel_options_init(&o);
    o.sync = 1;
    OK(ravel_open(&synced_follower, path, &o));
    assert_int_equal(ravel_db_role(follower), RAVEL_ROLE_FOLLOWER);
    assert_int_equal(ravel_db_role(synced_follower), RAVEL_ROLE_FOLLOWER);
    ravel_writeoptions sync = {.sync = 1};

    int plain = syncs_of_puts(follower, NULL, 20, "a");
    int per_write = syncs_of_puts(follower, &sync, 20, "b");
    int handle_wide = syncs_of_puts(synced_follower, NULL, 20, "c");
    int leader_own = syncs_of_puts(leader, &sync, 20, "d");
    print_message("# disk syncs for 20 puts: plain %d, per-write sync %d, follower opened "
                  "with sync %d, the leader's own with sync %d\n",
                  plain, per_write, handle_wide, leader_own);
    assert_true(plain < 5);
    assert_true(per_write >= 20);
    assert_true(handle_wide >= 20);
    assert_true(leader_own >= 20);

    /* A batch and a delete with sync, from the follower. */
    int before = atomic_load(&syncs);
    ravel_batch *b = ravel_batch_new();
    OK(ravel_batch_put(b, S("e"), S("1")));
    OK(ravel_write_opt(follower, &sync, b));
    OK(ravel_del_opt(follower, &sync, S("e")));
    ravel_batch_free(b);
    assert_true(atomic_load(&syncs) - before >= 2);

    ravel_db_close(synced_follower);
    ravel_db_close(follower);
    ravel_db_close(leader);
    rm_tmpdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follower_sync_reaches_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
