/* The host side of the protocol, sans-IO: bytes from one guest go in,
 * requests run against a ravel_db on the calling thread, reply bytes
 * collect in `out`. The transport (host.c) decides which thread calls in
 * and when `out` is written.
 *
 * Extensions (docs/protocol-extensions.md): `out` starts with an Announce
 * of every extension this host has, which a Node guest ignores; each one
 * is turned on for the connection only when the guest's Hello names it,
 * so a guest that never says Hello gets many-level's bytes exactly. */
#ifndef RAVEL_HOST_SESSION_H
#define RAVEL_HOST_SESSION_H

#include "ravel.h"
#include "util/buf.h"
#include "db/batch.h"
#include "db/range.h"
#include "util/idmap.h"
#include "wire/codec.h"

typedef struct rv_hsession {
    ravel_db *db;
    const ravel_host_options *opts;
    rv_decoder dec;
    rv_buf out;      /* reply frames waiting to be written */
    rv_idmap iters;  /* iterator id -> struct hiter */
    rv_idmap snaps;  /* the guest's snapshot number -> ravel_snapshot */
    struct ravel_batch batch; /* reused for every Batch */
    /* Puts and dels that arrived back to back, written to the database as
     * one batch (group commit) before anything else is answered. */
    struct ravel_batch group;
    int group_sync;  /* a write of the group asked for sync */
    /* The group's exactly-once identity: one guest's consecutive writes
     * first..last (has_writer 0: writes without one). */
    int has_writer;
    uint8_t producer[RV_PRODUCER_LEN];
    uint64_t first, last, acked;
    uint32_t *group_ids;
    size_t group_cap;
    /* Called when `out` passes RV_HOST_HIGH_WATER between two requests;
     * returns 0 once `out` is sent (and emptied), nonzero if the peer is
     * gone. NULL: `out` grows until the feed returns. */
    int (*flush)(void *ud);
    void *flush_ud;
    /* Called with a line worth logging (a hook's rejection and its
     * message); NULL: nothing is logged. */
    void (*log)(void *ud, const char *line);
    void *log_ud;
    uint32_t ext_on;  /* RV_EXT_* the guest's Hello turned on */
    uint32_t ext_offered; /* what this session announced */
    int hello_seen;   /* a later Hello is ignored */
    /* Extension "watch": a Watch turns the stream into that watch's
     * (the transport then serves it: host.c, serve_watch); WatchAcks
     * count what the guest has handed out. */
    int watch_asked;
    uint32_t watch_id;
    int watch_has_from;
    uint64_t watch_from;
    rv_range_copy watch_range;
    uint64_t watch_acked;
    /* The protocol of the stream, as its listener declared it
     * (RV_DIALECT_*): the first generation's has its own iterators
     * (host/gen1.c), errors as text, and no extensions. */
    int dialect;
    rv_idmap gen1_iters; /* iterator id -> its state, first generation */
    /* Extension "shm": the guest's ShmOffer came (the transport moves the
     * stream into the rings, host.c, and answers ShmReady). */
    int shm_asked;
} rv_hsession;

#define RV_HOST_HIGH_WATER (1u << 20)

/* A write group is committed once it holds this many operations or bytes. */
#define RV_GROUP_OPS 1024
#define RV_GROUP_BYTES (1u << 20)

/* Set up a session for a new stream, with the Announce queued in `out`,
 * to be written before anything else. RAVEL_OK, or RAVEL_ENOMEM (free the
 * session with rv_hsession_free and drop the stream). */
/* Fault injection for tests: when set, called after a write reached the
 * database and before its reply is queued; nonzero makes the session fail
 * (the connection closes) so the reply is lost, as if the host died right
 * after LevelDB applied the write. NULL (the default) costs one load. */
extern int (*rv_hsession_fault_after_write)(void);

int rv_hsession_init(rv_hsession *s, ravel_db *db, const ravel_host_options *opts);
/* The same for a stream of the given protocol (RV_DIALECT_*, from
 * transport/address.h). A first-generation stream starts with nothing in
 * `out`: its guests know no Announce. */
int rv_hsession_init_dialect(rv_hsession *s, ravel_db *db, const ravel_host_options *opts,
                             int dialect);
/* Offer extension "shm" too (a transport that can pass fds: a unix
 * socket), in place of the Announce queued by init. RAVEL_OK or
 * RAVEL_ENOMEM. */
int rv_hsession_offer_shm(rv_hsession *s);
/* Process bytes. Returns RAVEL_OK, or an error after which the connection
 * must be closed (malformed frame, frame over the limit, out of memory);
 * replies to the requests before the bad frame are in `out`. */
int rv_hsession_feed(rv_hsession *s, const uint8_t *p, size_t n);
/* Append a WatchEvent frame for watch `id`: the changes of one write
 * (n of them), a resync (resync_from, when has_resync), or the watch's end
 * (rc not RAVEL_OK). 0 or RAVEL_ENOMEM. */
int rv_hsession_watch_event(rv_buf *out, uint32_t id, int rc, uint64_t seq,
                            const ravel_change *changes, size_t n, int has_resync,
                            uint64_t resync_from);
/* Close the session's iterators and free everything. */
void rv_hsession_free(rv_hsession *s);

/* Snapshots one connection may hold at once ("snapshots"); more are
 * answered LEVEL_LIMIT_EXCEEDED. */
#define RV_HOST_MAX_SNAPSHOTS 1024

/* Iterator read-ahead: at most this many entries or bytes per IteratorData. */
#define RV_ITER_BATCH_ENTRIES 4096
#define RV_ITER_BATCH_BYTES (64u << 10)

/* host/gen1.c: the first generation's Iterator (tag 4), and freeing its
 * iterators with the session. */
int rv_gen1_host_iterator(rv_hsession *s, const uint8_t *payload, size_t len);
void rv_gen1_host_free(rv_hsession *s);

#endif
