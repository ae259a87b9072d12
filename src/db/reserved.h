/* ravel's own records in the database: every key that starts with eight
 * 0xff bytes. Such keys sort after every other key (a key that sorts
 * after the prefix starts with it), so hiding them from a range is one
 * upper bound. ravel writes them in the same LevelDB write batch as the
 * data they belong to; every ravel read path hides them and ravel's
 * public writes refuse them. Layout (README, "ravel's own records"):
 *   P "eo/" producer(16 bytes)   exactly-once state of one guest
 *   P "feed"                     the change feed's state (db/feed.h)
 *   P "cl/" seq(8 bytes, BE)     one change of the change log (db/feed.h)
 */
#ifndef RAVEL_DB_RESERVED_H
#define RAVEL_DB_RESERVED_H

#include <stddef.h>
#include <string.h>

#define RV_RESERVED "\xff\xff\xff\xff\xff\xff\xff\xff"
#define RV_RESERVED_LEN 8

static inline int rv_is_reserved(const void *key, size_t klen)
{
    return klen >= RV_RESERVED_LEN && ((const unsigned char *)key)[0] == 0xff &&
           memcmp(key, RV_RESERVED, RV_RESERVED_LEN) == 0;
}

/* RAVEL_EINVAL, saying why. */
int rv_err_reserved(void);

#include "ravel.h"

/* r without ravel's records: r itself, or copy with its upper bound
 * lowered to lt RV_RESERVED. */
const ravel_range *rv_range_visible(const ravel_range *r, ravel_range *copy);

#endif
