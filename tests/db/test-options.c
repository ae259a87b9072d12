/* LevelDB's open options through ravel_options, and the database's record
 * of the table options (ravel-options) that later openers use. Tables are
 * examined on disk: a table written with a bloom filter holds a meta block
 * named after LevelDB's filter policy, one without holds none, and
 * compression shows in the size of a table of repetitive values. */
#include <dirent.h>
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../helpers.h"

#define FILTER_BLOCK "filter.leveldb.BuiltinBloomFilter2"
#define NKEYS 2000
#define VLEN 200

typedef struct tables {
    int files;         /* .ldb files */
    int with_filter;   /* of which hold a filter block */
    long long bytes;   /* their total size */
} tables;

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    int found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

static tables scan_tables(const char *dir)
{
    tables t = {0, 0, 0};
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".ldb") != 0)
            continue;
        char path[4400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_int_equal(stat(path, &st), 0);
        t.files++;
        t.bytes += st.st_size;
        t.with_filter += file_has(path, FILTER_BLOCK);
    }
    closedir(d);
    return t;
}

static void put_keys(ravel_db *db, const char *prefix)
{
    char key[64], val[VLEN];
    memset(val, 'v', sizeof val); /* Snappy shrinks these a lot */
    for (int i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof key, "%s%08d", prefix, i);
        OK(ravel_put(db, key, strlen(key), val, sizeof val));
    }
}

/* Open dir with o, write NKEYS keys, close; open again with o2 (its
 * recovery writes the log into a table, with o2's table options), close.
 * Returns what the tables look like. */
static tables write_then_flush(const char *dir, const ravel_options *o, const ravel_options *o2,
                               const char *prefix)
{
    ravel_db *db;
    OK(ravel_open_local(&db, dir, o));
    put_keys(db, prefix);
    ravel_db_close(db);
    OK(ravel_open(&db, dir, o2)); /* party mode: it leads, so it opens LevelDB */
    assert_int_equal(ravel_db_role(db), RAVEL_ROLE_LEADER);
    ravel_db_close(db);
    return scan_tables(dir);
}

static void sub(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void test_defaults(void **state)
{
    (void)state;
    ravel_options o;
    ravel_options_init(&o);
    assert_int_equal(o.bloom_bits_per_key, -1);
    assert_int_equal(o.compression, -1);
    assert_int_equal(o.block_size, 0);
    assert_int_equal(o.block_restart_interval, 0);
    assert_int_equal(o.max_file_size, 0);
    assert_int_equal(o.max_open_files, 0);
    assert_int_equal(o.paranoid_checks, 0);
}

/* A bloom filter is written into every table when asked for, and only
 * then: the same data without it makes tables with no filter block, and
 * smaller by about the filter's 10 bits per key. */
static void test_bloom_filter_in_tables(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char with[4200], without[4200];
    sub(with, sizeof with, tmp, "with");
    sub(without, sizeof without, tmp, "without");
    ravel_options o;
    ravel_options_init(&o);
    o.bloom_bits_per_key = 10;
    tables a = write_then_flush(with, &o, &o, "k");
    o.bloom_bits_per_key = 0;
    tables b = write_then_flush(without, &o, &o, "k");
    assert_true(a.files >= 1);
    assert_int_equal(a.with_filter, a.files);
    assert_true(b.files >= 1);
    assert_int_equal(b.with_filter, 0);
    /* 2000 keys * 10 bits = 2500 bytes of filter. */
    assert_true(a.bytes - b.bytes >= NKEYS * 10 / 8 * 9 / 10);
    rm_tmpdir(tmp);
}

static void test_record_written_at_create(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200], path[4300];
    sub(dir, sizeof dir, tmp, "db");
    ravel_options o;
    ravel_options_init(&o);
    o.bloom_bits_per_key = 12;
    o.compression = 0;
    o.block_size = 8192;
    o.block_restart_interval = 8;
    o.max_file_size = 4u << 20;
    o.max_open_files = 100;  /* not recorded */
    o.paranoid_checks = 1;   /* not recorded */
    ravel_db *db;
    OK(ravel_open_local(&db, dir, &o));
    ravel_db_close(db);
    sub(path, sizeof path, dir, "ravel-options");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "\nbloom_bits_per_key 12\n"));
    assert_non_null(strstr(text, "\ncompression 0\n"));
    assert_non_null(strstr(text, "\nblock_size 8192\n"));
    assert_non_null(strstr(text, "\nblock_restart_interval 8\n"));
    assert_non_null(strstr(text, "\nmax_file_size 4194304\n"));
    assert_null(strstr(text, "max_open_files"));
    assert_null(strstr(text, "paranoid"));
    /* No temporary file is left behind. */
    sub(path, sizeof path, dir, "ravel-options.tmp");
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    rm_tmpdir(tmp);
}

/* The creator asks for a filter and no compression; later openers that
 * leave the options alone (a local handle, then a party leader) write
 * their tables that way too. One that sets them explicitly gets its own,
 * and the record stays the creator's. */
static void test_later_opener_uses_record(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200], ref[4200], path[4300];
    sub(dir, sizeof dir, tmp, "db");
    sub(ref, sizeof ref, tmp, "ref");
    ravel_options creator, later, own;
    ravel_options_init(&creator);
    creator.bloom_bits_per_key = 10;
    creator.compression = 0;
    ravel_options_init(&later);
    ravel_db *db;
    OK(ravel_open_local(&db, dir, &creator));
    ravel_db_close(db);

    tables t = write_then_flush(dir, &later, &later, "a");
    assert_true(t.files >= 1);
    assert_int_equal(t.with_filter, t.files);
    /* Uncompressed: at least the values' bytes. */
    assert_true(t.bytes >= (long long)NKEYS * VLEN);

    /* A database created with LevelDB's defaults, for comparison: the
     * same data compresses to a fraction of that. */
    tables r = write_then_flush(ref, &later, &later, "a");
    assert_int_equal(r.with_filter, 0);
    assert_true(r.bytes * 4 < t.bytes);

    /* Explicit options win for their opener: a new table without filter
     * and compressed. */
    ravel_options_init(&own);
    own.bloom_bits_per_key = 0;
    own.compression = 1;
    tables t2 = write_then_flush(dir, &own, &own, "b");
    assert_int_equal(t2.files, t.files + 1);
    assert_int_equal(t2.with_filter, t.with_filter);
    assert_true(t2.bytes - t.bytes < (long long)NKEYS * VLEN / 4);

    sub(path, sizeof path, dir, "ravel-options");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "\nbloom_bits_per_key 10\n"));
    assert_non_null(strstr(text, "\ncompression 0\n"));
    rm_tmpdir(tmp);
}

/* Only an open that creates the database records: not one of a database
 * LevelDB made without ravel, and nothing is written into a directory
 * that holds no database when creating was not asked for. */
static void test_no_record_unless_created(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200], empty[4200], path[4300];
    sub(dir, sizeof dir, tmp, "plain");
    leveldb_options_t *lo = leveldb_options_create();
    leveldb_options_set_create_if_missing(lo, 1);
    char *err = NULL;
    leveldb_t *ldb = leveldb_open(lo, dir, &err);
    assert_null(err);
    leveldb_close(ldb);
    leveldb_options_destroy(lo);
    ravel_db *db;
    OK(ravel_open_local(&db, dir, NULL));
    ravel_db_close(db);
    sub(path, sizeof path, dir, "ravel-options");
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);

    sub(empty, sizeof empty, tmp, "empty");
    assert_int_equal(mkdir(empty, 0700), 0);
    ravel_options o;
    ravel_options_init(&o);
    o.create_if_missing = 0;
    o.bloom_bits_per_key = 10;
    assert_int_equal(ravel_open_local(&db, empty, &o), RAVEL_EIO);
    DIR *d = opendir(empty);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)))
        entries += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 0);
    rm_tmpdir(tmp);
}

/* The other open options reach LevelDB and data round-trips with them. */
static void test_other_options_work(void **state)
{
    (void)state;
    char *tmp = make_tmpdir();
    char dir[4200];
    sub(dir, sizeof dir, tmp, "db");
    ravel_options o;
    ravel_options_init(&o);
    o.block_size = 1024;
    o.block_restart_interval = 4;
    o.max_file_size = 64u << 10;
    o.max_open_files = 20;
    o.paranoid_checks = 1;
    o.compression = 0;
    o.write_buffer_size = 64u << 10;
    ravel_db *db;
    OK(ravel_open_local(&db, dir, &o));
    put_keys(db, "x");
    put_keys(db, "y");
    char key[64], *val;
    size_t vlen;
    snprintf(key, sizeof key, "x%08d", NKEYS - 1);
    OK(ravel_get(db, key, strlen(key), &val, &vlen));
    assert_int_equal(vlen, VLEN);
    ravel_free(val);
    ravel_db_close(db);
    /* max_file_size 64 KiB: the ~880 KB written, uncompressed, fill many
     * tables, whether or not compactions merged some. */
    tables t = scan_tables(dir);
    assert_true(t.files >= 4);
    rm_tmpdir(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bloom_filter_in_tables),
        cmocka_unit_test(test_record_written_at_create),
        cmocka_unit_test(test_later_opener_uses_record),
        cmocka_unit_test(test_no_record_unless_created),
        cmocka_unit_test(test_other_options_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
