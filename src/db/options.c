/* The database's record of its table options (ravel-options): a few
 * "name value" lines of text, so that a person or a script can read it.
 * Lines that do not parse are skipped: the record only chooses how new
 * tables are written, and LevelDB reads a table whatever options wrote
 * it, so a damaged record costs speed, never data. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/options.h"
#include "error.h"

/* LevelDB's defaults (include/leveldb/options.h). */
#define DEFAULT_BLOCK_SIZE 4096
#define DEFAULT_RESTART_INTERVAL 16
#define DEFAULT_MAX_FILE_SIZE (2u << 20)

static void read_record(const char *dir, rv_table_opts *t)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/" RV_OPTIONS_FILE, dir) >= (int)sizeof path)
        return;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[256], name[64];
    unsigned long long v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %llu", name, &v) != 2)
            continue;
        if (strcmp(name, "bloom_bits_per_key") == 0 && v <= 1000)
            t->bloom_bits_per_key = (int)v;
        else if (strcmp(name, "compression") == 0 && v <= 1)
            t->compression = (int)v;
        else if (strcmp(name, "block_size") == 0 && v > 0 && v <= (1u << 30))
            t->block_size = (size_t)v;
        else if (strcmp(name, "block_restart_interval") == 0 && v > 0 && v <= 1000000)
            t->block_restart_interval = (int)v;
        else if (strcmp(name, "max_file_size") == 0 && v > 0 && v <= (1ull << 40))
            t->max_file_size = (size_t)v;
    }
    fclose(f);
}

void rv_table_opts_resolve(const char *dir, const ravel_options *opts, rv_table_opts *out)
{
    rv_table_opts rec = {0, 1, DEFAULT_BLOCK_SIZE, DEFAULT_RESTART_INTERVAL, DEFAULT_MAX_FILE_SIZE};
    if (opts->bloom_bits_per_key < 0 || opts->compression < 0 || !opts->block_size ||
        opts->block_restart_interval <= 0 || !opts->max_file_size)
        read_record(dir, &rec);
    out->bloom_bits_per_key =
        opts->bloom_bits_per_key >= 0 ? opts->bloom_bits_per_key : rec.bloom_bits_per_key;
    out->compression = opts->compression >= 0 ? !!opts->compression : rec.compression;
    out->block_size = opts->block_size ? opts->block_size : rec.block_size;
    out->block_restart_interval = opts->block_restart_interval > 0 ? opts->block_restart_interval
                                                                   : rec.block_restart_interval;
    out->max_file_size = opts->max_file_size ? opts->max_file_size : rec.max_file_size;
}

void rv_table_opts_apply(const rv_table_opts *t, const ravel_options *opts, leveldb_options_t *o,
                         leveldb_filterpolicy_t **policy)
{
    *policy = NULL;
    if (t->bloom_bits_per_key > 0) {
        *policy = leveldb_filterpolicy_create_bloom(t->bloom_bits_per_key);
        leveldb_options_set_filter_policy(o, *policy);
    }
    leveldb_options_set_compression(o, t->compression ? leveldb_snappy_compression
                                                      : leveldb_no_compression);
    leveldb_options_set_block_size(o, t->block_size);
    leveldb_options_set_block_restart_interval(o, t->block_restart_interval);
    leveldb_options_set_max_file_size(o, t->max_file_size);
    if (opts->max_open_files > 0)
        leveldb_options_set_max_open_files(o, opts->max_open_files);
    leveldb_options_set_paranoid_checks(o, opts->paranoid_checks > 0);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int rv_table_opts_record(const char *dir, const rv_table_opts *t)
{
    char path[4200], tmp[4200];
    if (snprintf(path, sizeof path, "%s/" RV_OPTIONS_FILE, dir) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/" RV_OPTIONS_TMP, dir) >= (int)sizeof tmp)
        return rv_err(RAVEL_EIO, "cannot record options of %s: path too long", dir);
    if (access(path, F_OK) == 0)
        return RAVEL_OK;
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# ravel: the table options this LevelDB database was created with.\n"
                     "# ravel processes that open it without setting them use these.\n"
                     "version 1\n"
                     "bloom_bits_per_key %d\n"
                     "compression %d\n"
                     "block_size %zu\n"
                     "block_restart_interval %d\n"
                     "max_file_size %zu\n",
                     t->bloom_bits_per_key, t->compression, t->block_size,
                     t->block_restart_interval, t->max_file_size);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rv_err(RAVEL_EIO, "cannot record options of %s: %s: %s", dir, tmp, strerror(errno));
    int ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    /* link, not rename: a record that is already there is kept. */
    if (ok && link(tmp, path) != 0 && errno != EEXIST) {
        ok = 0;
        saved = errno;
    }
    unlink(tmp);
    if (!ok)
        return rv_err(RAVEL_EIO, "cannot record options of %s: %s: %s", dir, path,
                      strerror(saved));
    fsync_dir(dir);
    return RAVEL_OK;
}
