/* A program that uses an installed ravel: put and get on a local handle. */
#include <ravel.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    ravel_db *db;
    char *val;
    size_t len;
    if (ravel_open_local(&db, argv[1], NULL) != RAVEL_OK ||
        ravel_put(db, "k", 1, "installed", 9) != RAVEL_OK ||
        ravel_get(db, "k", 1, &val, &len) != RAVEL_OK) {
        fprintf(stderr, "consumer: %s\n", ravel_errmsg());
        return 1;
    }
    int same = len == 9 && memcmp(val, "installed", 9) == 0;
    ravel_free(val);
    ravel_db_close(db);
    printf("%s\n", same ? "ok" : "wrong value");
    return !same;
}
