/* The exactly-once records stay bounded: 10,000 guests each write once
 * through one host and go away. The database keeps at most 4,096 records
 * (one per producer; the one heard from longest ago is forgotten first),
 * each small, and a guest still writing keeps its record. Counted with
 * LevelDB itself, since ravel hides its records. */
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../helpers.h"

#define GUESTS 10000
#define MAX_RECORDS 4096

static const char prefix[] = "\xff\xff\xff\xff\xff\xff\xff\xff" "eo/";

/* Records under the exactly-once prefix, their bytes, and the highest
 * write number one of them holds. */
static long count_records(const char *path, size_t *bytes, uint64_t *top)
{
    leveldb_options_t *o = leveldb_options_create();
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, path, &err);
    assert_null(err);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_iterator_t *it = leveldb_create_iterator(db, ro);
    long n = 0;
    *bytes = 0;
    *top = 0;
    for (leveldb_iter_seek(it, prefix, sizeof prefix - 1); leveldb_iter_valid(it);
         leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl < sizeof prefix - 1 || memcmp(k, prefix, sizeof prefix - 1) != 0)
            break;
        const char *v = leveldb_iter_value(it, &vl);
        n++;
        *bytes += kl + vl;
        uint64_t high = 0;
        if (vl >= 9)
            memcpy(&high, v + 1, sizeof high); /* after the version byte */
        if (high > *top)
            *top = high;
    }
    leveldb_iter_destroy(it);
    leveldb_readoptions_destroy(ro);
    leveldb_close(db);
    leveldb_options_destroy(o);
    return n;
}

static ravel_db *guest_of(ravel_host *host)
{
    ravel_options o;
    ravel_options_init(&o);
    o.retry = 1;
    ravel_db *g;
    OK(ravel_guest_new(&g, &o));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    OK(ravel_host_attach_fd(host, sv[0], sv[0]));
    OK(ravel_guest_attach_fd(g, sv[1], sv[1]));
    return g;
}

static void test_ten_thousand_guests(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    ravel_db *local;
    OK(ravel_open_local(&local, path, NULL));
    ravel_host *host;
    OK(ravel_host_new(&host, local, NULL));
    /* One guest stays and writes now and then. */
    ravel_db *stays = guest_of(host);
    OK(ravel_put(stays, "stays", 5, "0", 1));
    for (int i = 0; i < GUESTS; i++) {
        ravel_db *g = guest_of(host);
        char k[16];
        snprintf(k, sizeof k, "g%05d", i);
        OK(ravel_put(g, k, strlen(k), "v", 1));
        ravel_db_close(g);
        if (i % 1000 == 999)
            OK(ravel_put(stays, "stays", 5, "1", 1));
    }
    OK(ravel_put(stays, "stays", 5, "2", 1));
    ravel_db_close(stays);
    ravel_host_free(host);
    ravel_db_close(local);
    size_t bytes;
    uint64_t top;
    long n = count_records(path, &bytes, &top);
    print_message("# %d guests came and went: %ld records, %zu bytes\n", GUESTS + 1, n, bytes);
    assert_true(n > 0 && n <= MAX_RECORDS);
    assert_true(bytes <= (size_t)MAX_RECORDS * 64);
    /* The guest that kept writing kept its record: its 12th write. */
    assert_int_equal(top, 12);
    rm_tmpdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ten_thousand_guests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
