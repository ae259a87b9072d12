/* LevelDB's table options: what an opener asked for, what the database's
 * record (the file ravel-options in its directory) says, and the record
 * itself, written once when a database is created. */
#ifndef RAVEL_DB_OPTIONS_H
#define RAVEL_DB_OPTIONS_H

#include <leveldb/c.h>
#include <stddef.h>

#include "ravel.h"

#define RV_OPTIONS_FILE "ravel-options"
#define RV_OPTIONS_TMP "ravel-options.tmp"

/* The options that decide how tables are written, every one resolved. */
typedef struct rv_table_opts {
    int bloom_bits_per_key; /* 0: no filter */
    int compression;        /* 0 or 1 */
    size_t block_size;
    int block_restart_interval;
    size_t max_file_size;
} rv_table_opts;

/* Resolve opts' table options: each left at "the database's" takes the
 * value in dir's record, or LevelDB's default without one. Reads only. */
void rv_table_opts_resolve(const char *dir, const ravel_options *opts, rv_table_opts *out);

/* Set t, max_open_files and paranoid_checks on o. *policy is the bloom
 * filter it made (NULL: none), to destroy after the database is closed. */
void rv_table_opts_apply(const rv_table_opts *t, const ravel_options *opts, leveldb_options_t *o,
                         leveldb_filterpolicy_t **policy);

/* Write dir's record of t, atomically, unless dir already has one. Called
 * with LevelDB's lock held, by the open that created the database.
 * RAVEL_OK, or RAVEL_EIO naming the file and the reason. */
int rv_table_opts_record(const char *dir, const rv_table_opts *t);

#endif
