/* What the fuzz targets and make-corpus share: the data set the host
 * targets serve, scratch directories, and the guest scenario (the requests
 * and iterators a guest session has pending while the fuzzer plays the
 * host). make-corpus records real traffic of this same scenario, so the
 * seeds carry the request and iterator ids the guest target expects. */
#ifndef RAVEL_FUZZ_FIXTURE_H
#define RAVEL_FUZZ_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "guest/session.h"
#include "transport/address.h"
#include "ravel.h"

/* Print a message and abort: a broken invariant the fuzzer must report. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- the data set ---- */

/* Put the standard entries (a few dozen, bytewise sorted, including the
 * empty key and keys that extend each other) into db. */
void fz_seed(ravel_db *db);
/* Does db hold exactly the standard entries? */
int fz_is_seeded(ravel_db *db);

/* A fresh directory under $TMPDIR (or /tmp), and its removal with
 * everything in it. */
char *fz_mkdtemp(void);
void fz_rmtree(char *dir);

/* ---- the guest scenario ---- */

/* Chunk sizes a target may feed its input in, chosen by 3 flag bits:
 * whole, byte by byte, and sizes that split frames at varied places. */
size_t fz_chunk_size(unsigned selector, size_t total);

typedef struct fz_req {
    rv_greq g;          /* first: a completed rv_greq * is a fz_req * */
    int completions;    /* must end at exactly 1 */
    /* The reply type the transport will cast g.reply to (remote.c reads a
     * Get's reply as a Callback, a GetMany's as a GetManyCallback). */
    const ProtobufCMessageDescriptor *expect;
} fz_req;

typedef struct fz_iter {
    rv_giter g;
    int open;
    uint64_t handed;    /* entries taken since the last seek */
    int64_t limit;      /* the range's limit, < 0 none */
} fz_iter;

enum { FZ_NREQS = 6, FZ_NITERS = 3 };

typedef struct fz_guest {
    rv_gsession s;
    fz_req reqs[FZ_NREQS];
    fz_iter iters[FZ_NITERS];
} fz_guest;

/* Init the session (1 MiB max frame), attach a stream, submit a Get, Put,
 * Delete, Batch, Clear and GetMany, open three iterators (forward, reverse
 * keys-only with a limit, values-only with an upper bound), and with `seek`
 * seek the first one (its seq becomes 1). The request frames are in g->s.out. */
/* The protocol fz_guest_start's sessions speak (RV_DIALECT_*,
 * transport/address.h); many-level's unless a target sets it. */
extern int fz_dialect;
void fz_guest_start(fz_guest *g, int retry, int seek);
/* What a transport does when bytes arrive: collect completions, then take
 * every entry each open iterator has until it waits, ends or fails. Checks
 * that no request completes twice or with a reply of the wrong type, and
 * that no iterator hands out more than its limit. */
void fz_guest_settle(fz_guest *g);
/* Close the iterator i (tells the host when the stream is up). */
void fz_guest_close_iter(fz_guest *g, int i);
/* Close the session, settle, check each request completed exactly once,
 * close the iterators and free everything. */
void fz_guest_finish(fz_guest *g);

#endif
