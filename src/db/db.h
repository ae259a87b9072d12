/* The handle table: what every kind of handle (local, remote, party)
 * implements, and the request record that carries an operation to it.
 *
 * One request path. The public API (api.c) checks arguments, describes the
 * operation once in an rv_req and hands it to the handle's one `submit`.
 * The handle completes it exactly once through rv_complete(): at once on
 * the calling thread (local), or later on another thread (remote). A
 * synchronous call is the same submit plus a wait on an rv_sync, written
 * once in api.c; a handle that completes later supplies `wait`, which is
 * where a remote handle's caller reads its own answer off the socket (the
 * measured fast path of one-at-a-time calls). A party handle forwards the
 * request to whichever handle it uses now, which then owns it.
 *
 * Adding an operation: a value in rv_op and its arguments in rv_req, the
 * public function in api.c, the local handle's case in local.c, the wire
 * message (guest/ops.c turns the request into it and the reply into an
 * rv_result; host/session.c answers it). */
#ifndef RAVEL_DB_DB_H
#define RAVEL_DB_DB_H

#include <uv.h>

#include "ravel.h"

typedef enum rv_op {
    RV_PUT,
    RV_GET,
    RV_DEL,
    RV_GET_MANY,
    RV_WRITE,
    RV_CLEAR,
    RV_SNAPSHOT,    /* take a snapshot (synchronous callers only) */
    RV_COMPACT,
    RV_PROPERTY,    /* synchronous callers only, as the two below */
    RV_SIZES,
} rv_op;

typedef struct rv_sync rv_sync;

/* Where a request's result goes: the callback of an asynchronous caller
 * (its type follows op), or the waiter of a synchronous one. Handles that
 * finish a request later keep a copy of this, not the rv_req. */
typedef struct rv_reply_to {
    rv_op op;
    union {
        ravel_done_cb done;     /* RV_PUT, RV_DEL, RV_WRITE, RV_CLEAR, RV_COMPACT */
        ravel_value_cb value;   /* RV_GET */
        ravel_values_cb values; /* RV_GET_MANY */
    } cb;
    void *ud;
    rv_sync *sync; /* a synchronous caller: cb is unused */
} rv_reply_to;

/* Exactly-once: a host passing on the identity of a guest's write (the
 * wire's producer, wseq and acked). The request is that guest's writes
 * numbered first..last: one request (first == last), or a group of puts
 * and deletes whose batch operation i is write first + i. The guest has
 * had the answer of every write up to acked. */
#ifndef RV_PRODUCER_LEN
#define RV_PRODUCER_LEN 16 /* as the wire's (wire/codec.h) */
#endif

typedef struct rv_writer {
    const uint8_t *producer; /* RV_PRODUCER_LEN (16) bytes */
    uint64_t first, last, acked;
} rv_writer;

/* One operation and its arguments. The bytes are the caller's, valid
 * until submit returns: a handle that keeps the request copies them (a
 * remote handle encodes them into the request's frame). */
typedef struct rv_req {
    rv_reply_to to;
    const void *key;                /* RV_PUT, RV_GET, RV_DEL */
    size_t klen;
    const void *val;                /* RV_PUT */
    size_t vlen;
    size_t n;                       /* RV_GET_MANY */
    const void *const *keys;
    const size_t *klens;
    const ravel_batch *batch;       /* RV_WRITE */
    const ravel_range *range;       /* RV_CLEAR */
    const ravel_readoptions *ro;    /* RV_GET, RV_GET_MANY: NULL for the
                                     * defaults */
    const ravel_bound *start, *limit; /* RV_COMPACT: NULL for open */
    const char *name;               /* RV_PROPERTY */
    const void *const *limits;      /* RV_SIZES: n ranges keys[i]..limits[i] */
    const size_t *llens;
    int sync;                       /* writes: wait for the disk */
    const rv_writer *writer;        /* writes: exactly-once identity, or NULL */
    int refused;                    /* RV_WRITE with a writer: the host refused
                                     * it with this status (refused_msg): only
                                     * remember that answer */
    const char *refused_msg;
    ravel_db *via;                  /* set by submit: the handle that took it */
} rv_req;

/* A finished request's result, lent to rv_complete. The own* members, when
 * set, are malloc'ed blocks holding the same bytes, which a synchronous
 * caller takes instead of copying (rv_complete sets them to NULL); the
 * handle frees what is left afterwards. */
typedef struct rv_result {
    const char *val;                /* RV_GET */
    size_t vlen;
    char *own;
    size_t n;                       /* RV_GET_MANY: vals[i] NULL if absent */
    const char *const *vals;
    const size_t *vlens;
    char **own_vals;                /* all or none of vals[i] */
    const uint64_t *sizes;          /* RV_SIZES: n of them */
    ravel_snapshot *snap;           /* RV_SNAPSHOT: handed to the caller */
} rv_result;

/* A synchronous caller's waiter. `done` is set last; a handle with a lock
 * sets it under that lock, and wakes `cond` (initialised by that handle's
 * submit when it needs it) after. */
struct rv_sync {
    int done;
    int status;
    char **val;         /* RV_GET, RV_PROPERTY: the caller's result pointers */
    size_t *vlen;
    uint64_t *sizes;    /* RV_SIZES */
    ravel_snapshot **snap; /* RV_SNAPSHOT */
    char **vals;        /* RV_GET_MANY */
    size_t *vlens;
    uv_cond_t cond;
    char msg[512];      /* the failure's detail, set again on the caller's thread */
};

/* Deliver a result: fill the synchronous caller's waiter (copying or
 * taking the bytes; an allocation that fails makes the status
 * RAVEL_ENOMEM), or call the asynchronous caller's callback with `msg` as
 * ravel_errmsg() during it. msg NULL: the status's own words. With a
 * waiter it takes no lock and calls no user code, so a handle may call it
 * under its own lock, from any thread; then sets sync->done, last. */
void rv_complete(const rv_reply_to *to, int status, const char *msg, rv_result *res);

typedef struct rv_db_ops {
    /* Take a request: RAVEL_OK, and rv_complete(&req->to, …) exactly once,
     * before submit returns or later; or an error, and no completion. Sets
     * req->via to the handle that will complete it. */
    int (*submit)(ravel_db *db, rv_req *req);
    /* Block until sync->done, for a request submitted to this handle with
     * that waiter. NULL: the handle completes every request before submit
     * returns. */
    void (*wait)(ravel_db *db, rv_sync *sync);
    int (*iter_new)(ravel_db *db, const ravel_range *r, const ravel_readoptions *ro,
                    ravel_iter **out);
    /* Let go of a snapshot this handle took (snap->owner == db) and free
     * it. */
    void (*snapshot_release)(ravel_db *db, ravel_snapshot *snap);
    int (*role)(ravel_db *db);
    void (*close)(ravel_db *db);
    /* Does submit honour rv_req.writer (exactly-once)? A host announces
     * "exactly-once" only for a handle that does. */
    int exactly_once;
} rv_db_ops;

/* Run a request as a synchronous caller would (api.c's run_sync): for a
 * host that builds its own rv_req (a write with a writer). */
int rv_run(ravel_db *db, rv_req *req);

struct ravel_db {
    const rv_db_ops *ops;
};

/* A snapshot: taken by one local or remote handle (`owner`: a party's
 * snapshot belongs to the way it reached the data then), through the
 * handle the caller used (`root`). A read naming it must reach the same
 * owner, else the snapshot is gone (RAVEL_ESNAPSHOT): the leader that
 * held it is no longer the way to the data. */
struct ravel_snapshot {
    ravel_db *owner;
    ravel_db *root;
    const void *ldb;        /* local: the leveldb_snapshot_t; NULL once gone */
    int gone;               /* local: why it went (RAVEL_EIO: a reopen) */
    uint32_t id;            /* remote: its number on the stream */
    uint64_t stream;        /* remote: the stream that holds it */
    struct ravel_snapshot *prev, *next; /* the owner's list */
};

typedef struct rv_iter_ops {
    int (*next)(ravel_iter *it, const char **key, size_t *klen, const char **val, size_t *vlen);
    int (*seek)(ravel_iter *it, const void *target, size_t len);
    /* NULL: run next and call back before returning. */
    int (*next_async)(ravel_iter *it, ravel_entry_cb cb, void *ud);
    void (*free)(ravel_iter *it);
} rv_iter_ops;

struct ravel_iter {
    const rv_iter_ops *ops;
};

#endif
