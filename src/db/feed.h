/* A local handle's change feed: sequence numbers, the in-memory buffer of
 * recent changes that watches read, and the optional change log in
 * ravel's own records (README, "ravel's own records").
 *
 * Every write of the local handle that changes user keys, once the feed is
 * active, goes through rv_feed_write: under the feed's mutex it takes the
 * next sequence number, adds the change-log record (and the prune of the
 * oldest, and a new reservation of numbers when due) to the write's own
 * LevelDB batch, writes it, then appends the change to the buffer and
 * wakes the watches. The mutex makes the order of numbers the order of
 * commits. Before the first watch and with the log off the feed is
 * inactive and writes skip it (no number, no cost but one load).
 *
 * Layout of its records (keys after the eight 0xff bytes of RV_RESERVED):
 *   "feed"              u8 version 1, u8 log on, u64 max_count,
 *                       u64 max_bytes, u64 reserved (every number up to it
 *                       may have been given out; a new leader starts after)
 *   "cl/" seq(8, BE)    one change: u8 version 1, u64 prev (the number
 *                       given out before it), u32 n, then n times u8 type
 *                       (1 put, 2 del), u32 klen, u32 vlen, key, value
 * All integers little-endian except the key's seq. */
#ifndef RAVEL_DB_FEED_H
#define RAVEL_DB_FEED_H

#include <leveldb/c.h>
#include <stdint.h>

#include "db/db.h"

typedef struct rv_feed rv_feed;

#define RV_FEED_BLOCK (1u << 20)            /* numbers reserved at a time */
#define RV_CHANGELOG_COUNT 100000u           /* default retention */
#define RV_CHANGELOG_BYTES (64ull << 20)

/* How the feed reads the database (the local handle, with its gate). */
typedef struct rv_feed_db {
    /* The change-log record after `after`: RAVEL_OK with *blob (malloc'ed,
     * the record's value) and *seq, RAVEL_END if none, or an error. */
    int (*log_next)(void *ud, uint64_t after, char **blob, size_t *len, uint64_t *seq);
    void *ud;
} rv_feed_db;

/* Load the feed's state from db (at open, before any write). */
int rv_feed_new(rv_feed **out, leveldb_t *db, const leveldb_readoptions_t *ro, rv_feed_db how);
/* The handle closes: watches get RAVEL_ECLOSED; waits for log reads under
 * way; the feed is freed once its last watch is. */
void rv_feed_close(rv_feed *f);

/* Must writes go through rv_feed_write? (one atomic load) */
int rv_feed_active(rv_feed *f);
/* Make it active. The caller holds the handle's `order` for writing, so
 * no write is under way. */
void rv_feed_activate(rv_feed *f);

/* Write wb (adding the feed's records to it) and publish its change. With
 * `order` held for reading and the gate entered. *err as leveldb_write. */
void rv_feed_write(rv_feed *f, leveldb_t *db, const leveldb_writeoptions_t *wo,
                   leveldb_writebatch_t *wb, char **err);

/* Read or change the change log's setting. set: with `order` held for
 * writing and the gate entered; writes the setting (and, off, deletes the
 * log) in one batch. */
void rv_feed_changelog_get(rv_feed *f, ravel_changelog *out);
int rv_feed_changelog_set(rv_feed *f, leveldb_t *db, const leveldb_writeoptions_t *wo,
                          const ravel_changelog *set);

/* A watch on the feed (with range bounds copied). */
int rv_feed_watch(rv_feed *f, const ravel_watch_options *o, ravel_watch **out);

#endif
