/* ravel's guest against a host that announced no extensions (a Node
 * many-level host): plain writes work, at least once as with every Node
 * peer; a conditional batch and a write with sync fail with RAVEL_ENOTSUP,
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
    ravel_batch_free(b);
    ravel_db_close(db);
    return failed;
}
