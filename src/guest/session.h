/* The guest side of the protocol, sans-IO: requests and iterators go in,
 * request bytes collect in `out`, reply bytes are fed back, and finished
 * requests and iterators with news come out on lists. No locks, no fds:
 * the transport (remote.c) serialises calls and moves the bytes. */
#ifndef RAVEL_GUEST_SESSION_H
#define RAVEL_GUEST_SESSION_H

#include "ravel.h"
#include "db/batch.h"
#include "db/range.h"
#include "util/buf.h"
#include "util/idmap.h"
#include "wire/codec.h"

/* A pending request. The transport embeds it (zeroed) and fills the
 * callback part. */
typedef struct rv_greq {
    uint32_t needs;               /* RV_EXT_* bits the request cannot go
                                   * without; set before submit (0: none).
                                   * See rv_gsession_submit. */
    int sync;                     /* a Batch that asks for sync (needs
                                   * RV_EXT_SYNC); set before submit */
    uint64_t wseq;                /* a write's number among this guest's
                                   * writes (exactly-once), 0 for a read */
    uint32_t id;
    uint8_t reply_tag;            /* the reply it expects (RV_OUT_*) */
    int held;                     /* waits to learn what the host offers */
    uint64_t snap_stream;         /* a read of a snapshot held on this
                                   * stream (rv_gsession.stream): it fails
                                   * with RAVEL_ESNAPSHOT when the stream
                                   * is lost, never resent; set before
                                   * submit (0: none) */
    uint64_t stream;              /* set on completion: the stream its
                                   * answer came on */
    char note[112];               /* why the session failed it, if it did
                                   * (see rv_greq_detail) */
    rv_buf frame;                 /* the encoded request, re-sent on retry */
    int status;                   /* set on completion */
    ProtobufCMessage *reply;      /* set on completion (may be NULL) */
    struct rv_greq *prev, *next;  /* pending list, in submission order */
    struct rv_greq *done_next;    /* completion list */
} rv_greq;

typedef struct rv_gqueue_node rv_gqueue_node;

/* An open iterator. The transport embeds it. */
typedef struct rv_giter {
    uint32_t id, seq;
    rv_range_copy range;
    int user_keys, user_values;   /* what the caller wants handed out */
    int wire_keys, wire_values;   /* what the host is asked to send */
    uint64_t consumed;            /* entries handed to the caller */
    int has_bookmark;             /* cur_key is where a resume continues */
    rv_buf seek;                  /* a seek whose result is not consumed yet */
    int has_seek;
    rv_gqueue_node *head, *tail;  /* received IteratorData, oldest first */
    int ended;                    /* IteratorEnd seen for this seq */
    int error;                    /* final error status, 0 if none */
    rv_buf cur_key, cur_val;      /* the entry handed out last */
    rv_buf error_msg;             /* the host's words for `error`, if it
                                   * sent any ("error-messages"), else empty */
    int notified;                 /* on the notify list */
    int open_held;                /* its Iterator message waits behind
                                   * requests that wait for the host, or
                                   * to learn whether the host has `needs` */
    uint32_t gen1_read;           /* first generation: entries handed out
                                   * since the host last got a budget */
    uint32_t needs;               /* RV_EXT_* it cannot go without (read
                                   * options); set before rv_giter_open */
    rv_wire_ro ro;                /* its read options; set before open */
    uint64_t snap_stream;         /* on a snapshot of this stream: ends
                                   * with RAVEL_ESNAPSHOT when it is lost */
    struct rv_giter *prev, *next; /* open list */
    struct rv_giter *notify_next;
} rv_giter;

enum { RV_STREAM_NEVER, RV_STREAM_UP, RV_STREAM_LOST };

/* What the current stream's host is, as far as the guest knows. A ravel
 * host's Announce is the first frame of a stream; a reply of any kind
 * before one means a host that has no extensions (many-level's). */
enum { RV_HOST_UNKNOWN, RV_HOST_RAVEL, RV_HOST_PLAIN };

typedef struct rv_gsession {
    int retry;
    size_t max_frame;     /* requests needing larger frames are refused */
    size_t max_pending;   /* requests + iterators at once */
    int queue_when_lost;  /* retry off, but a new stream will come: new
                           * requests wait for it instead of failing */
    int state;            /* RV_STREAM_* */
    int gave_up;          /* a status: no stream came in time (the
                           * connect timeout); until one is up, new
                           * requests fail with it at once */
    int closed;
    int dialect;          /* the stream's protocol (RV_DIALECT_*), set by
                           * the transport before rv_gsession_connected */
    uint32_t next_id;
    rv_decoder dec;
    rv_buf out;           /* request bytes waiting to be written */
    rv_idmap reqs;        /* id -> rv_greq */
    rv_idmap iters;       /* id -> rv_giter */
    rv_greq *pending_head, *pending_tail;
    rv_giter *iter_head;
    rv_greq *done;        /* completed, for the transport to deliver */
    rv_giter *notify;     /* iterators with news */
    /* Extensions (docs/protocol-extensions.md), per stream: forgotten when
     * it is lost, as the next one may reach another host. */
    uint32_t ext_wanted;  /* the ones this guest uses where offered
                           * (default RV_EXT_ALL); set before a stream */
    int host;             /* RV_HOST_* */
    uint32_t host_version; /* from its Announce */
    uint32_t host_ext;    /* what it announced, of what we know */
    uint32_t ext_on;      /* named in our Hello: on for this stream */
    /* Extension "shm" (only when the transport wants it, in ext_wanted):
     * the Hello that turned it on ends `shm_cut` bytes into `out`; the
     * transport sends the ShmOffer there and holds what follows until the
     * host's ShmReady sets shm_ready (1 ok, -1 refused). */
    int shm_wanted_now;
    size_t shm_cut;
    int shm_ready;
    size_t held;          /* requests waiting to learn the host */
    int probed;           /* the probe went out on this stream */
    size_t held_iters;    /* iterators with `needs` waiting to learn the
                           * host (a probe makes it answer) */
    uint64_t stream;      /* the streams so far: a number per stream,
                           * for the snapshots it holds */
    uint32_t next_snap;   /* the last snapshot number given out */
    rv_greq probe;        /* its record (a GetMany of no keys) */
    /* Exactly-once: who this guest is to a host, and its writes' numbers.
     * A write goes out with them where the host announced "exactly-once",
     * so that a replay after a lost answer is recognised and answered as
     * the first time, not applied again. */
    uint8_t producer[RV_PRODUCER_LEN]; /* random, for the session's life */
    uint64_t last_wseq;
} rv_gsession;

#define RV_WAIT (-1) /* rv_giter_take: nothing to hand out yet */

void rv_gsession_init(rv_gsession *s, int retry, size_t max_frame, size_t max_pending);
void rv_gsession_free(rv_gsession *s);

/* Queue a request whose message is `msg` (its id field is set here).
 * RAVEL_OK, RAVEL_ECONNLOST (stream lost, retry off), RAVEL_ECLOSED,
 * RAVEL_ETOOBIG (frame over max_frame), RAVEL_ELIMIT (max_pending
 * reached), RAVEL_ENOTSUP (below), RAVEL_ENOMEM. The id is written
 * through id_field before encoding.
 *
 * A request with r->needs set is sent only to a host that announced those
 * extensions and to which this guest said Hello with them. If the current
 * host is known to lack one, submit fails with RAVEL_ENOTSUP (the message
 * names it) and nothing is sent. While the host is not known yet (no
 * stream, or no frame from it yet) the request waits, unsent: the
 * Announce releases it (or fails it, RAVEL_ENOTSUP through s->done, with
 * r->note saying why); a reply of any kind without an Announce first fails
 * it so. On a stream with no other request awaiting a reply, the session
 * sends a probe (a GetMany of no keys) to make the host answer. After a
 * loss, waiting and resent requests go through this again. A request with
 * needs 0 is sent at once, as ever. */
int rv_gsession_submit(rv_gsession *s, rv_greq *r, uint8_t tag, ProtobufCMessage *msg,
                       uint32_t *id_field);

/* The words for a failed request beyond its code: the session's own
 * (r->note: a missing extension) or the host's (the `message` field of
 * the reply, "error-messages"); NULL if none. Valid while r->reply is. */
const char *rv_greq_detail(const rv_greq *r);

/* Queue a Batch request for the operations of b, encoded straight from
 * the batch (as protobuf-c would pack it) without building a message of
 * every operation first: the guest's part of bulk writes (W6). Same
 * returns as rv_gsession_submit. */
int rv_gsession_submit_batch(rv_gsession *s, rv_greq *r, const ravel_batch *b);
/* (A batch with checks needs RV_EXT_CONDITIONAL, one with r->sync
 * RV_EXT_SYNC: rv_gsession_submit_batch adds them to r->needs.) */

/* Reply bytes from the host. Completions go to s->done, iterator news to
 * s->notify. Returns 0 or an error after which the stream must be dropped
 * (then call rv_gsession_lost). */
int rv_gsession_feed(rv_gsession *s, const uint8_t *p, size_t n);

/* A stream is attached: everything pending is (re)sent. RAVEL_ENOMEM if
 * that could not be queued (drop the stream and try again later). */
int rv_gsession_connected(rv_gsession *s);
/* The stream ended. With retry, pending work waits for the next stream;
 * without, it fails with RAVEL_ECONNLOST. What the host announced is
 * forgotten (s->host is RV_HOST_UNKNOWN again). */
void rv_gsession_lost(rv_gsession *s);
/* No stream came in time: fail everything pending with `status`, and new
 * requests too until a stream is connected (rv_gsession_connected). */
void rv_gsession_give_up(rv_gsession *s, int status);
/* Fail everything with RAVEL_ECLOSED. */
void rv_gsession_close(rv_gsession *s);

/* RAVEL_OK if a snapshot held on `stream` still lives (that stream is
 * up), else RAVEL_ESNAPSHOT with words. */
int rv_gsession_snapshot_alive(const rv_gsession *s, uint64_t stream);
/* Tell the host to forget snapshot `id` of `stream`, if that stream is
 * still up (else the host forgot it with the stream). 0 or RAVEL_ENOMEM. */
int rv_gsession_snapshot_release(rv_gsession *s, uint32_t id, uint64_t stream);

int rv_giter_open(rv_gsession *s, rv_giter *it, const ravel_range *r);
/* Hand out the next entry: RAVEL_OK (it->cur_key/cur_val hold it), RAVEL_END,
 * an error, or RV_WAIT. */
int rv_giter_take(rv_gsession *s, rv_giter *it);
int rv_giter_seek(rv_gsession *s, rv_giter *it, const void *target, size_t len);
/* Forget the iterator (tells the host) and free what the session holds. */
void rv_giter_close(rv_gsession *s, rv_giter *it);
/* Free what an iterator holds, when its session is already gone. */
void rv_giter_release(rv_giter *it);

#endif
