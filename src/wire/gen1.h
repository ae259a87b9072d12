/* The first generation's protocol (multileveldown 5, level-party 5),
 * sans-IO: what differs from many-level's. The framing and the messages
 * of tags 0-3, 5 and 6 (guest to host) and 0 and 2 (host to guest) are
 * many-level's (codec.h); tag 4 (Gen1Iterator) and tag 1
 * (Gen1IteratorData) are its own, and errors travel as free text, not
 * codes. A stream speaks it only where its address or party socket says
 * so (RV_DIALECT_GEN1, transport/address.h). */
#ifndef RAVEL_WIRE_GEN1_H
#define RAVEL_WIRE_GEN1_H

#include <stddef.h>
#include <stdint.h>

#include "wire/codec.h"

/* Tags the first generation knows: guest to host 0-6, host to guest 0-2.
 * A peer of that generation ignores any other (multileveldown 5:
 * `if (tag >= DECODERS.length) return`). */
#define RV_GEN1_IN_COUNT 7
#define RV_GEN1_OUT_COUNT 3

/* The budget a guest gives an iterator, and how many entries it hands out
 * before it gives the budget again (multileveldown 5's leveldown.js: batch
 * 32, re-sent after floor(32 / 2) reads). */
#define RV_GEN1_BATCH 32
#define RV_GEN1_REARM 16

/* The text a first-generation host puts in an error for status rc:
 * "NotFound: " (what LevelDB says, and what a Node guest matches with
 * /notfound/i), "Database is readonly", else `words` (a hook's reason,
 * LevelDB's text) or, without words, the status's meaning. */
const char *rv_gen1_error_text(int rc, const char *words);
/* The status for such a text: RAVEL_ENOTFOUND for /notfound/i,
 * RAVEL_EREADONLY for "Database is readonly", RAVEL_EREMOTE for any
 * other. */
int rv_gen1_code(const char *text);

/* Unpack tag 4 (guest to host) and tag 1 (host to guest) of the first
 * generation, as rv_unpack_in does many-level's (the payload with its tag
 * byte). NULL with *status RAVEL_EPROTO (malformed) or RAVEL_ENOMEM. */
Ravelwire__Gen1Iterator *rv_gen1_unpack_iterator(const uint8_t *payload, size_t len, int *status);
Ravelwire__Gen1IteratorData *rv_gen1_unpack_iter_data(const uint8_t *payload, size_t len,
                                                      int *status);

/* Append a Gen1IteratorData frame: the id, and the error (if not NULL),
 * key and value (each where has_*), as multileveldown 5's host writes it.
 * 0 or RAVEL_ENOMEM. */
int rv_gen1_encode_iter_data(rv_buf *out, uint32_t id, const char *error, int has_key,
                             const void *key, size_t klen, int has_value, const void *value,
                             size_t vlen);

#endif
