/* ravel's guest against a host that announced no extensions (a Node
 * many-level host): plain writes work, at least once as with every Node
 * peer; a conditional batch, a write with sync, a snapshot, a read with
 * read options and the maintenance calls fail with RAVEL_ENOTSUP,
 * naming the missing extension, and are never sent (run-ext-interop.sh
 * checks the tags the host received). Prints one "ok: ..." line per check.
 * Usage: ext-guest ADDRESS */
#include <stdio.h>
#include <string.h>

#include "ravel.h"

#define S(x) x, strlen(x)

static int failed;

static void check(int ok, const char *what)
{
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok)
        failed = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
        return 64;
    }
    ravel_db *db;
    if (ravel_connect(&db, argv[1], NULL) != RAVEL_OK) {
        fprintf(stderr, "connect: %s\n", ravel_errmsg());
        return 1;
    }
    check(ravel_put(db, S("plain"), S("1")) == RAVEL_OK, "a plain put works");
    ravel_batch *b = ravel_batch_new();
    ravel_batch_check_absent(b, S("plain2"));
    ravel_batch_put(b, S("plain2"), S("1"));
    int rc = ravel_write(db, b);
    check(rc == RAVEL_ENOTSUP && strstr(ravel_errmsg(), "\"conditional\""),
          "a conditional batch: RAVEL_ENOTSUP naming \"conditional\"");
    char *v;
    size_t vl;
    check(ravel_get(db, S("plain2"), &v, &vl) == RAVEL_ENOTFOUND, "... and nothing was written");
    ravel_writeoptions wo = {.sync = 1};
    rc = ravel_put_opt(db, &wo, S("synced"), S("1"));
    check(rc == RAVEL_ENOTSUP && strstr(ravel_errmsg(), "\"sync\""),
          "a put with sync: RAVEL_ENOTSUP naming \"sync\"");
    check(ravel_get(db, S("synced"), &v, &vl) == RAVEL_ENOTFOUND, "... and nothing was written");
    ravel_snapshot *snap = NULL;
    rc = ravel_snapshot_create(db, &snap);
    check(rc == RAVEL_ENOTSUP && !snap && strstr(ravel_errmsg(), "\"snapshots\""),
          "a snapshot: RAVEL_ENOTSUP naming \"snapshots\"");
    ravel_readoptions ro;
    ravel_readoptions_init(&ro);
    ro.verify_checksums = 1;
    rc = ravel_get_opt(db, &ro, S("plain"), &v, &vl);
    check(rc == RAVEL_ENOTSUP, "a get with verify_checksums: RAVEL_ENOTSUP");
    ravel_iter *it = NULL;
    rc = ravel_iter_new_opt(db, &ro, NULL, &it);
    if (rc == RAVEL_OK)
        rc = ravel_iter_next(it, NULL, NULL, NULL, NULL);
    check(rc == RAVEL_ENOTSUP, "an iterator with verify_checksums: RAVEL_ENOTSUP");
    ravel_iter_free(it);
    check(ravel_compact_range(db, NULL, 0, NULL, 0) == RAVEL_ENOTSUP &&
              strstr(ravel_errmsg(), "\"maintenance\""),
          "compact_range: RAVEL_ENOTSUP naming \"maintenance\"");
    char *prop = NULL;
    check(ravel_property_value(db, "leveldb.stats", &prop) == RAVEL_ENOTSUP && !prop,
          "property_value: RAVEL_ENOTSUP");
    const void *starts[1] = {"a"}, *limits[1] = {"z"};
    size_t lens[1] = {1};
    uint64_t sizes[1];
    check(ravel_approximate_sizes(db, 1, starts, lens, limits, lens, sizes) == RAVEL_ENOTSUP,
          "approximate_sizes: RAVEL_ENOTSUP");
    check(ravel_get(db, S("plain"), &v, &vl) == RAVEL_OK, "plain reads still work");
    ravel_free(v);
    ravel_batch_free(b);
    ravel_db_close(db);
    return failed;
}
