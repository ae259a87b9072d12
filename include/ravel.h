/*
 * ravel — many processes, one LevelDB database.
 *
 * A *host* serves a database over byte streams to *guests* in other
 * processes; a guest is a database handle whose operations travel over the
 * stream, speaking the wire protocol of Node's many-level byte for byte.
 *
 * Conventions
 * -----------
 * - Handles are opaque pointers created by a `_new`/`_open` function and
 *   released by the matching `_free`/`_close`; passing NULL to those is a
 *   no-op.
 * - Keys and values are pointer + length, arbitrary bytes (NUL is fine).
 *   Input buffers are copied before a call returns (or, for asynchronous
 *   calls, before the call returns as well): the caller may reuse them at
 *   once.
 * - Bytes handed to the caller by a synchronous call (ravel_get, …) are
 *   malloc'ed and owned by the caller: release them with ravel_free().
 *   Bytes handed to an asynchronous callback are valid only during that
 *   callback; copy what you keep.
 * - Errors: every function that can fail returns an int status, RAVEL_OK
 *   (0) on success or one of the RAVEL_E* codes below. ravel_strerror()
 *   gives the code's meaning; ravel_errmsg() gives the detail of the last
 *   failure on the calling thread (e.g. LevelDB's own text, or the address
 *   that could not be reached), like errno but with words.
 * - Thread-safety: a ravel_db may be used from any number of threads at
 *   once, like LevelDB's own handle; synchronous requests from all threads
 *   are pipelined on one connection. A ravel_iter belongs to one thread at
 *   a time. ravel_db_close() must not race with other calls on that handle.
 * - Asynchronous calls: if the call returns an error, its callback is never
 *   called. Otherwise the callback is called exactly once — with the result
 *   or with an error, including RAVEL_ECLOSED when the handle is closed
 *   first, RAVEL_ECONNLOST when the stream is lost with retry off, and
 *   RAVEL_ETIMEDOUT when no stream came within connect_timeout_ms.
 *   Callbacks of a remote handle run on that handle's I/O thread: do not
 *   block in them (a synchronous call on the same handle from inside one
 *   fails with RAVEL_EDEADLK). Callbacks of a local handle run on the
 *   calling thread before the call returns. A party handle's callbacks run
 *   where its current way to the data runs them: on the calling thread
 *   while it leads, on its I/O thread while it follows.
 * - Closing from a callback: ravel_db_close() and ravel_iter_free() may be
 *   called from inside any of the handle's own callbacks (an asynchronous
 *   result or next, on_leader). The close then completes once that
 *   callback returns: every other pending request still completes exactly
 *   once (RAVEL_ECLOSED if it had no answer yet), and the handle is not
 *   touched after that. Don't use the handle after closing it.
 * - Who runs where, and the locks: docs/DESIGN.md.
 */
#ifndef RAVEL_H
#define RAVEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RAVEL_BUILDING) && defined(__GNUC__)
#define RAVEL_EXPORT __attribute__((visibility("default")))
#else
#define RAVEL_EXPORT
#endif

#define RAVEL_VERSION_MAJOR 0
#define RAVEL_VERSION_MINOR 1
#define RAVEL_VERSION_PATCH 0

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

/* X(name, value, wire code or NULL, message) */
#define RAVEL_ERRNO_MAP(X)                                                   \
    X(OK, 0, NULL, "success")                                                \
    X(END, 1, NULL, "iterator reached its end")                              \
    X(ENOTFOUND, 2, "LEVEL_NOT_FOUND", "key not found")                      \
    X(EREADONLY, 3, "LEVEL_READONLY", "database is served read-only")        \
    X(EREJECTED, 4, "LEVEL_REJECTED", "write rejected by the host's hook")   \
    X(ECONNLOST, 5, "LEVEL_CONNECTION_LOST", "connection to the host lost")  \
    X(EREMOTE, 6, "LEVEL_REMOTE_ERROR", "the host failed the request")       \
    X(EINVAL, 7, NULL, "invalid argument")                                   \
    X(EIO, 8, NULL, "I/O error")                                             \
    X(ECORRUPT, 9, NULL, "database is corrupt")                              \
    X(ECLOSED, 10, "LEVEL_DATABASE_NOT_OPEN", "handle is closed")            \
    X(ENOMEM, 11, NULL, "out of memory")                                     \
    X(EPROTO, 12, NULL, "malformed message from the peer")                   \
    X(ETOOBIG, 13, NULL, "key, value or message larger than allowed")        \
    X(EADDR, 14, NULL, "bad or unreachable address")                         \
    X(EDEADLK, 15, NULL, "synchronous call from the handle's own callback")  \
    X(ELOCKED, 16, "LEVEL_LOCKED", "database is locked by another process")  \
    X(ENOTSUP, 17, "LEVEL_NOT_SUPPORTED", "operation not supported")                  \
    X(ELIMIT, 18, "LEVEL_LIMIT_EXCEEDED", "too many pending requests or iterators") \
    X(ECONFLICT, 19, "LEVEL_CONFLICT", "a check of the batch failed: nothing was written") \
    X(ETIMEDOUT, 20, NULL, "no connection to the host within the connect timeout") \
    X(ESNAPSHOT, 21, "LEVEL_SNAPSHOT_LOST", "the snapshot is gone with the stream or leader that held it")

typedef enum {
#define RAVEL_X_(name, value, wire, msg) RAVEL_##name = value,
    RAVEL_ERRNO_MAP(RAVEL_X_)
#undef RAVEL_X_
} ravel_status;

/* The meaning of a status code, e.g. "key not found". Never NULL. */
RAVEL_EXPORT const char *ravel_strerror(int status);
/* The symbolic name of a status code, e.g. "RAVEL_ENOTFOUND". Never NULL. */
RAVEL_EXPORT const char *ravel_errname(int status);
/* Detail of the last failure on this thread (e.g. "IO error: /x/LOCK: …").
 * Valid until the next ravel call on this thread. Never NULL. */
RAVEL_EXPORT const char *ravel_errmsg(void);

/* Release bytes returned by a synchronous call. ravel_free(NULL) is fine. */
RAVEL_EXPORT void ravel_free(void *ptr);

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

/* Called when a party handle becomes the leader of its directory: inside
 * ravel_open, on the calling thread, when it leads from the start; on the
 * handle's I/O thread when it takes over after a failover (do not block
 * long there: requests the handle made while following finish on that
 * thread). It may use the handle, which leads by then, and may close it. */
typedef void (*ravel_leader_cb)(void *ud);

typedef struct ravel_options {
    /* Remote and party handles: on loss of the stream (or the leader), keep
     * pending requests and open iterators and resume them on the next
     * stream. 1 on, 0 off, -1 (the default) the handle kind's default: off
     * for ravel_guest_new, on for ravel_connect and ravel_open. */
    int retry;
    /* Local handles: LevelDB's open options. */
    int create_if_missing;   /* default 1 */
    int error_if_exists;     /* default 0 */
    size_t cache_size;       /* LRU block cache bytes; 0 = LevelDB default */
    size_t write_buffer_size;/* 0 = LevelDB default */
    int sync;                /* writes wait for the disk (default 0) */
    /* Largest frame accepted from the peer, in bytes (default 64 MiB). A
     * request that would need a larger frame (a huge key, value or batch)
     * fails with RAVEL_ETOOBIG instead of being sent. */
    size_t max_frame;
    /* Remote and party handles: most requests and iterators pending at once
     * (default 100000); more fail with RAVEL_ELIMIT. */
    size_t max_pending;
    /* ravel_open: how long to keep trying when the directory is locked but
     * nobody answers on its socket (a plain LevelDB program holds it), in
     * milliseconds (default 10000). */
    int lock_timeout_ms;
    /* ravel_open: called when this handle becomes the leader. */
    ravel_leader_cb on_leader;
    void *on_leader_ud;
    /* Remote and party handles: how long, in microseconds, a synchronous
     * call reads the socket in a loop for its reply before it sleeps
     * (default 50; 0 never). Waking a sleeping thread costs more than a
     * local round trip takes, so polling briefly makes one-at-a-time calls
     * several times faster. It adapts (a handle whose replies take longer
     * than this stops polling until they come faster again) and at most
     * one thread per CPU beyond the first polls in a process; never on a
     * machine with one CPU. */
    int busy_poll_us;
    /* TLS, for ravel_connect to a "tls:HOST:PORT" address (ignored by
     * ravel_open, whose streams are unix sockets). The host's certificate
     * is always verified, against this CA bundle and against the name it
     * is reached by; there is no way to turn that off. Files are read by
     * ravel_connect, which fails with RAVEL_EINVAL naming the file and
     * OpenSSL's reason when one cannot be used. Setting any of these with
     * a "tcp:" or "unix:" address is an error (RAVEL_EADDR): a guest meant
     * to use TLS never falls back to plain text. */
    /* CA bundle (PEM) that must have signed the host's certificate; NULL:
     * the system's trusted CAs. */
    const char *tls_ca_file;
    /* This guest's certificate chain and private key (PEM), for a host
     * that requires client certificates (mutual TLS); both or neither. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* The name the host's certificate must carry, when it is not the HOST
     * of the address (e.g. connecting by IP address to a certificate made
     * for a DNS name). A DNS name or an IP address; also sent as SNI.
     * NULL: the address's HOST. */
    const char *tls_server_name;
    /* Remote and party handles: how long, in milliseconds, requests wait
     * for a stream — the first connection and, with retry, a reconnection
     * (or a party's new leader) — counted from when the handle starts or
     * loses a stream its host had answered on. If no stream is up then,
     * every pending request and iterator fails with RAVEL_ETIMEDOUT, and
     * so does every new one until a stream is up again; with retry the
     * handle keeps trying meanwhile. It bounds connecting, not a slow
     * reply on a stream that is up. 0 (the default): wait as long as it
     * takes. */
    int connect_timeout_ms;
    /* LevelDB's table options, for whoever opens LevelDB: ravel_open_local,
     * ravel_repair, and a party handle each time it becomes the leader (a
     * follower that takes over opens LevelDB with *its own* options, not
     * the previous leader's). A follower's are unused while it follows.
     *
     * The database's record: when an open creates a database, the values
     * it used for the five *recorded* options below (marked R) are written
     * to the file `ravel-options` in the directory (atomically, before the
     * open returns). Every later opener that leaves an R option at "the
     * database's" takes the recorded value, so the members of a party agree
     * on them whoever leads, and a process that opens the directory only
     * to read (`ravel get`) keeps the creator's bloom filter. An option set
     * explicitly wins, for this opener only; the record is never changed.
     * A database without the file (made by plain LevelDB, Node or an older
     * ravel) gives LevelDB's defaults. A mismatch is never a correctness
     * problem: every table records its own format, so these options change
     * only how new tables are written (README, "ravel's own records").
     *
     * R: bits per key of a bloom filter (LevelDB's NewBloomFilterPolicy):
     * gets of absent keys then seldom read a table block. 10 gives about 1%
     * false positives for 10 bits more per key. 0: no filter. -1 (the
     * default): the database's, else 0. */
    int bloom_bits_per_key;
    /* R: 1 compress blocks with Snappy, 0 do not; -1 (the default): the
     * database's, else 1 (LevelDB's default). */
    int compression;
    /* R: uncompressed bytes per table block; 0 (the default): the
     * database's, else LevelDB's 4096. */
    size_t block_size;
    /* R: keys between restart points in a block; 0 (the default): the
     * database's, else LevelDB's 16. */
    int block_restart_interval;
    /* R: bytes written to a table file before a new one is started; 0 (the
     * default): the database's, else LevelDB's 2 MiB. */
    size_t max_file_size;
    /* Table files kept open; 0 (the default): LevelDB's 1000. Not
     * recorded: it is about this process's file descriptors. */
    int max_open_files;
    /* 1: LevelDB checks harder and stops at the first corruption it sees
     * (its paranoid_checks); 0 (the default): not. Not recorded. */
    int paranoid_checks;
    /* Remote and party handles on a unix socket to a ravel host: move the
     * stream into shared memory once connected (the extension "shm",
     * docs/protocol-extensions.md): requests and answers then travel
     * through two rings in a memfd, and the socket only says whether the
     * host lives. Several times faster between processes on one machine,
     * and the host serves many such streams from one thread. 1 (the
     * default, from ravel_options_init): where the host offers it; 0:
     * never. TCP, TLS, the first generation and Node hosts are never in
     * shared memory. */
    int shared_memory;
} ravel_options;

/* Fill *opts with the defaults documented above. */
RAVEL_EXPORT void ravel_options_init(ravel_options *opts);

/* ------------------------------------------------------------------ */
/* Database handles                                                     */
/* ------------------------------------------------------------------ */

typedef struct ravel_db ravel_db;

/* Handles and fork(): a child process must not use its parent's handles
 * (their threads stay in the parent). And once a process has opened a
 * local or party handle, a child it forks without exec must not open one
 * either: LevelDB started a compaction thread the child does not have,
 * and the child's writes stall for ever once a compaction is due. Fork
 * before opening, or exec. */

/* Open LevelDB directory `dir` in this process (a *local* handle).
 * Errors: RAVEL_EINVAL (NULL argument), RAVEL_ELOCKED (another process or
 * handle holds the directory), RAVEL_EIO (missing parent directory,
 * permission denied, no database there with create_if_missing off, …),
 * RAVEL_ECORRUPT; RAVEL_EIO also when this open created the database
 * but could not write its record of the table options (ravel-options,
 * see bloom_bits_per_key). With create_if_missing off, a directory that
 * holds no database (no CURRENT file) is left exactly as it was:
 * LevelDB's own open would write LOCK and LOG into it first. */
RAVEL_EXPORT int ravel_open_local(ravel_db **out, const char *dir, const ravel_options *opts);

/* A *remote* handle with no stream yet: requests wait until one is
 * attached with ravel_guest_attach_fd(). With opts->retry on, they survive
 * stream loss; with it off, requests pending when a stream ends (or made
 * while none is attached after one ended) fail with RAVEL_ECONNLOST. */
RAVEL_EXPORT int ravel_guest_new(ravel_db **out, const ravel_options *opts);

/* Attach a connected stream to a remote handle: a socket, or a pipe pair
 * (read_fd != write_fd). The handle owns the fds from now on and closes
 * them when the stream ends. Errors: RAVEL_EINVAL (not a remote handle, a
 * stream already attached, bad fd). */
RAVEL_EXPORT int ravel_guest_attach_fd(ravel_db *db, int read_fd, int write_fd);

/* Is a stream attached right now? (diagnostics and tests) */
RAVEL_EXPORT int ravel_guest_connected(ravel_db *db);

/* A remote handle that connects to `address` — "unix:/path/to/sock",
 * "tcp:HOST:PORT" or "tls:HOST:PORT" (TLS 1.2 or later over TCP; see the
 * tls_* fields of ravel_options) — and, with opts->retry on (the default
 * here), connects again with backoff (1 ms doubling to 1 s) whenever the
 * stream ends; over TLS every new connection makes a new handshake.
 * "multileveldown+unix:PATH" and "multileveldown+tcp:HOST:PORT" speak the
 * first generation's protocol instead (multileveldown 5, a level-party 5
 * leader's): the same operations and iterators (ranges, limit, reverse,
 * keys or values only; a seek re-opens the iterator past its target),
 * retry resuming exactly (strictly after the last entry handed out, in
 * reverse too), and the same RAVEL_E* codes as from a many-level host for
 * what that host says in words ("NotFound: " is RAVEL_ENOTFOUND,
 * "Database is readonly" RAVEL_EREADONLY, anything else RAVEL_EREMOTE with
 * the words in ravel_errmsg()). Requests that need an extension
 * (conditional batches, sync writes) fail with RAVEL_ENOTSUP; writes are
 * sent at least once, as to any Node host.
 * Returns at once; requests wait for the connection.
 * A TLS failure that another try would not mend (the host's certificate
 * is expired, signed by an unknown CA or made for another name; the host
 * refused our certificate; the port speaks plain text; or, over tcp:, the
 * host answered in TLS) fails the requests and iterators pending at that
 * moment with RAVEL_ECONNLOST even with retry on, and ravel_errmsg() of
 * each says why; the handle keeps trying (1 s apart) for later requests,
 * so a host whose certificate is fixed is found again.
 * Errors: RAVEL_EADDR (address malformed or too long for a unix socket;
 * tls_* options with an address that is not tls:), RAVEL_EINVAL (a TLS
 * file cannot be read or used, or a key does not match its certificate). */
RAVEL_EXPORT int ravel_connect(ravel_db **out, const char *address, const ravel_options *opts);

/* Open LevelDB directory `dir` for sharing with other processes (a *party*
 * handle): the first process to take LevelDB's lock *leads* — its own
 * operations go straight to LevelDB, and it serves the others on the unix
 * socket `<dir>/rave-level.sock` (the socket of Node's rave-level, so Node
 * processes can join) and on `<dir>/level-party.sock` (level-party 5's,
 * in multileveldown 5's protocol, for the first generation) — and the
 * others *follow* over rave-level.sock, or over level-party.sock when
 * that is the only one (a Node level-party leader serves nothing else).
 * When the
 * leader goes away (closes, crashes, is killed), the followers elect a new
 * one among themselves; with retry on (the default) their pending requests
 * and open iterators carry on. Several handles on one directory in one
 * process work too. The socket is owner-only; a directory path too long
 * for a unix socket address still works (Linux).
 * Errors: RAVEL_ELOCKED (the directory is locked by a process that does
 * not share it, after opts->lock_timeout_ms), RAVEL_EIO (missing parent
 * directory, permission denied — also, at once, on the socket of a party
 * led by another user — not a database with create_if_missing off, …),
 * RAVEL_ECORRUPT. */
RAVEL_EXPORT int ravel_open(ravel_db **out, const char *dir, const ravel_options *opts);

/* Which way a handle reaches its data right now (diagnostics and tests). */
typedef enum {
    RAVEL_ROLE_LOCAL = 0,    /* ravel_open_local */
    RAVEL_ROLE_REMOTE = 1,   /* ravel_guest_new, ravel_connect */
    RAVEL_ROLE_LEADER = 2,   /* ravel_open, leading the directory */
    RAVEL_ROLE_FOLLOWER = 3  /* ravel_open, following the leader */
} ravel_role;

RAVEL_EXPORT int ravel_db_role(ravel_db *db);

/* Close a handle: pending requests and iterators fail with RAVEL_ECLOSED,
 * their callbacks run before this returns; streams are closed; LevelDB is
 * closed. Iterators must still be freed with ravel_iter_free(). NULL ok.
 * Called from one of the handle's own callbacks, it returns at once and
 * the close completes when that callback returns (see Conventions). */
RAVEL_EXPORT void ravel_db_close(ravel_db *db);

/* ------------------------------------------------------------------ */
/* Synchronous operations (blocking; safe from many threads)            */
/* ------------------------------------------------------------------ */

/* Errors common to all: RAVEL_EINVAL, RAVEL_ECLOSED, RAVEL_ECONNLOST,
 * RAVEL_EREMOTE, RAVEL_EIO, RAVEL_ECORRUPT; writes also RAVEL_EREADONLY
 * and RAVEL_EREJECTED.
 *
 * Reserved keys: keys that start with eight 0xff bytes hold ravel's own
 * records (README, "ravel's own records in the database"). Reads never
 * show them (a get answers RAVEL_ENOTFOUND, iterators, clears and
 * get_many pass them by) and writes of them fail with RAVEL_EINVAL. */
RAVEL_EXPORT int ravel_put(ravel_db *db, const void *key, size_t klen, const void *val, size_t vlen);
/* On success *val is malloc'ed (free with ravel_free); RAVEL_ENOTFOUND if
 * the key is absent. */
RAVEL_EXPORT int ravel_get(ravel_db *db, const void *key, size_t klen, char **val, size_t *vlen);
RAVEL_EXPORT int ravel_del(ravel_db *db, const void *key, size_t klen);

/* Exactly once: a write of a remote or following handle (put, del, write,
 * clear) whose host is a ravel host takes effect at most once and is
 * answered once, whatever streams are lost and leaders killed meanwhile:
 * with retry on, a write whose answer was lost is sent again, and the
 * (new) leader recognises it and answers as the first time — a batch with
 * checks that succeeded answers RAVEL_OK again, not RAVEL_ECONFLICT —
 * without applying it again. Against a Node host writes are retried at
 * least once, as many-level's are. Limits: README, "Threat model". */

/* Per-write options, as LevelDB's leveldb_writeoptions_t. */
typedef struct ravel_writeoptions {
    /* Wait until the write is on disk (fsync) before answering, as
     * LevelDB's sync. A remote or following handle asks its host to do so;
     * a host that cannot (a Node many-level host or rave-level leader)
     * makes the write fail with RAVEL_ENOTSUP, never silently without it.
     * ravel_options.sync asks it of every write of a handle. */
    int sync;
} ravel_writeoptions;

/* ravel_put, ravel_del and ravel_write with per-write options (wo NULL:
 * none). */
RAVEL_EXPORT int ravel_put_opt(ravel_db *db, const ravel_writeoptions *wo, const void *key,
                               size_t klen, const void *val, size_t vlen);
RAVEL_EXPORT int ravel_del_opt(ravel_db *db, const ravel_writeoptions *wo, const void *key,
                               size_t klen);

/* Look up n keys at once. On success vals[i] is malloc'ed, or NULL where
 * the key is absent; free each with ravel_free. */
RAVEL_EXPORT int ravel_get_many(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                   char **vals, size_t *vlens);

/* Batches: an ordered list of puts and deletes, applied atomically. */
typedef struct ravel_batch ravel_batch;
RAVEL_EXPORT ravel_batch *ravel_batch_new(void); /* NULL when out of memory */
RAVEL_EXPORT void ravel_batch_free(ravel_batch *b);
RAVEL_EXPORT int ravel_batch_put(ravel_batch *b, const void *key, size_t klen, const void *val, size_t vlen);
RAVEL_EXPORT int ravel_batch_del(ravel_batch *b, const void *key, size_t klen);
RAVEL_EXPORT void ravel_batch_clear(ravel_batch *b);
RAVEL_EXPORT size_t ravel_batch_count(const ravel_batch *b);
/* Read operation i (< count) of a batch, e.g. from a prebatch hook: *is_put
 * is 1 for a put, 0 for a delete (whose *val is empty). Pointers are valid
 * while the batch is unchanged. */
RAVEL_EXPORT int ravel_batch_op(const ravel_batch *b, size_t i, int *is_put, const char **key, size_t *klen,
                   const char **val, size_t *vlen);
/* Conditions: the batch applies only if, at the moment it is applied, key
 * holds exactly these bytes (ravel_batch_check) or is absent
 * (ravel_batch_check_absent). Any number per batch. ravel_write applies a
 * batch with checks atomically with respect to every other write on the
 * database (from any process of a party and any thread); if a check fails
 * nothing is written and it answers RAVEL_ECONFLICT. On every handle kind;
 * a remote or following handle whose host is not a ravel host (a Node
 * many-level host or rave-level leader) answers RAVEL_ENOTSUP and sends
 * nothing. ravel_batch_count does not count checks. */
RAVEL_EXPORT int ravel_batch_check(ravel_batch *b, const void *key, size_t klen, const void *val,
                                   size_t vlen);
RAVEL_EXPORT int ravel_batch_check_absent(ravel_batch *b, const void *key, size_t klen);
RAVEL_EXPORT size_t ravel_batch_check_count(const ravel_batch *b);
/* Apply a batch atomically. RAVEL_ECONFLICT: a check failed. */
RAVEL_EXPORT int ravel_write(ravel_db *db, const ravel_batch *b);
RAVEL_EXPORT int ravel_write_opt(ravel_db *db, const ravel_writeoptions *wo, const ravel_batch *b);

/* A key range with options, for iterators and ravel_clear(). Bounds are
 * optional: set the matching has_* flag. When both are set, gte takes
 * precedence over gt and lte over lt (as in abstract-level). Initialise
 * with ravel_range_init(): all entries, keys and values, no limit,
 * forward. */
typedef struct ravel_bound {
    const void *data;
    size_t len;
} ravel_bound;

typedef struct ravel_range {
    int has_gt, has_gte, has_lt, has_lte;
    ravel_bound gt, gte, lt, lte;
    int64_t limit; /* < 0: no limit */
    int reverse;
    int keys;   /* iterators: hand out keys (default 1) */
    int values; /* iterators: hand out values (default 1) */
} ravel_range;

RAVEL_EXPORT void ravel_range_init(ravel_range *r);

/* Delete every entry in the range (up to its limit, in its direction). */
RAVEL_EXPORT int ravel_clear(ravel_db *db, const ravel_range *r);
RAVEL_EXPORT int ravel_clear_opt(ravel_db *db, const ravel_writeoptions *wo, const ravel_range *r);

/* ------------------------------------------------------------------ */
/* Snapshots and read options                                           */
/* ------------------------------------------------------------------ */

/* A snapshot: reads that name it (through ravel_readoptions) see the
 * database as it was when it was taken, whatever is written after, as
 * LevelDB's leveldb_create_snapshot. On every handle kind:
 * - a local handle, or a party handle while it leads, takes LevelDB's own
 *   snapshot;
 * - a remote handle, or a party handle while it follows, has its host
 *   take one and keep it for that stream (extension "snapshots": a Node
 *   host or leader answers RAVEL_ENOTSUP). When that stream or leader is
 *   lost, the snapshot is gone: every read through it fails with
 *   RAVEL_ESNAPSHOT, whatever the retry setting (it never reads newer
 *   data instead), and so do reads pending on it and iterators opened on
 *   it (they end with that error rather than resume). Reads without a
 *   snapshot carry on as before.
 * A local snapshot is gone too (RAVEL_ESNAPSHOT) after the database was
 * reopened following a write error (a full disk).
 * Release every snapshot with ravel_snapshot_release before closing its
 * handle; ravel_db_close releases those left, which must not be used or
 * released after. */
typedef struct ravel_snapshot ravel_snapshot;

/* Errors: RAVEL_EINVAL, RAVEL_ECLOSED, RAVEL_ENOTSUP (a Node host),
 * RAVEL_ELIMIT (a host keeps at most 1024 snapshots per stream),
 * RAVEL_ECONNLOST, RAVEL_ETIMEDOUT, RAVEL_EIO. */
RAVEL_EXPORT int ravel_snapshot_create(ravel_db *db, ravel_snapshot **out);
/* Let the snapshot go (on a remote handle, the host forgets it). NULL
 * ok. db must be the handle it was taken through. */
RAVEL_EXPORT void ravel_snapshot_release(ravel_db *db, ravel_snapshot *snap);

/* Per-read options, as LevelDB's leveldb_readoptions_t. Initialise with
 * ravel_readoptions_init(): no snapshot, verify_checksums 0,
 * fill_cache 1. A remote or following handle sends options other than
 * these defaults only to a host that announced "snapshots"; to any other
 * the read fails with RAVEL_ENOTSUP (never silently without them). */
typedef struct ravel_readoptions {
    const ravel_snapshot *snapshot; /* NULL: the latest data */
    int verify_checksums;           /* check every block read (LevelDB's) */
    int fill_cache;                 /* keep blocks read in the block cache */
} ravel_readoptions;

RAVEL_EXPORT void ravel_readoptions_init(ravel_readoptions *ro);

/* ravel_get, ravel_get_many and ravel_iter_new with read options (ro
 * NULL: the defaults). Also RAVEL_ESNAPSHOT (the snapshot is gone) and
 * RAVEL_EINVAL (a snapshot of another handle). An iterator on a snapshot
 * reads that snapshot and, on a remote or following handle, does not
 * resume across a lost stream: it ends with RAVEL_ESNAPSHOT. */
RAVEL_EXPORT int ravel_get_opt(ravel_db *db, const ravel_readoptions *ro, const void *key,
                               size_t klen, char **val, size_t *vlen);
RAVEL_EXPORT int ravel_get_many_opt(ravel_db *db, const ravel_readoptions *ro, size_t n,
                                    const void *const *keys, const size_t *klens, char **vals,
                                    size_t *vlens);

/* ------------------------------------------------------------------ */
/* Maintenance (LevelDB's compact_range, property_value,               */
/* approximate_sizes)                                                   */
/* ------------------------------------------------------------------ */

/* On every handle kind. A remote or following handle has its host (the
 * leader) run them (extension "maintenance"); against a Node host or
 * leader they fail with RAVEL_ENOTSUP and nothing is sent. */

/* Compact the keys in [start, limit]; a NULL bound is open (start NULL:
 * from the first key; limit NULL: to the last). Blocks until done. */
RAVEL_EXPORT int ravel_compact_range(ravel_db *db, const void *start, size_t slen,
                                     const void *limit, size_t llen);
/* A LevelDB property, e.g. "leveldb.stats", "leveldb.sstables",
 * "leveldb.num-files-at-level0", "leveldb.approximate-memory-usage"; or
 * ravel's own "ravel.exactly-once" (how many guests' exactly-once records
 * the database keeps). On success *val is a malloc'ed, NUL-terminated
 * string (free with ravel_free). RAVEL_ENOTFOUND: no such property. */
RAVEL_EXPORT int ravel_property_value(ravel_db *db, const char *name, char **val);
/* The approximate bytes on disk of n ranges [starts[i], limits[i]), into
 * sizes[i], as leveldb_approximate_sizes (data still in the memtable is
 * not counted). */
RAVEL_EXPORT int ravel_approximate_sizes(ravel_db *db, size_t n, const void *const *starts,
                                         const size_t *slens, const void *const *limits,
                                         const size_t *llens, uint64_t *sizes);

/* ------------------------------------------------------------------ */
/* Iterators                                                            */
/* ------------------------------------------------------------------ */

typedef struct ravel_iter ravel_iter;

/* Open an iterator over `r` (NULL: everything). On a remote handle with
 * retry on, an iterator survives stream loss: it continues strictly after
 * the last entry it handed out, with no entry missing and none twice (it
 * does not read one snapshot across the loss). */
RAVEL_EXPORT int ravel_iter_new(ravel_db *db, const ravel_range *r, ravel_iter **out);
/* The same with read options (ro NULL: the defaults); see ravel_get_opt. */
RAVEL_EXPORT int ravel_iter_new_opt(ravel_db *db, const ravel_readoptions *ro,
                                    const ravel_range *r, ravel_iter **out);

/* Next entry: RAVEL_OK with *key and *val pointing at bytes owned by the
 * iterator, valid until the next call on it; RAVEL_END after the last
 * entry (or the range's limit). key/val pointers may be NULL when not
 * wanted; with keys (values) off in the range, *key (*val) is set to NULL
 * and length 0. */
RAVEL_EXPORT int ravel_iter_next(ravel_iter *it, const char **key, size_t *klen, const char **val,
                    size_t *vlen);

/* Move to `target`: the next entry is the first at or after it (at or
 * before it, for reverse), still inside the range. */
RAVEL_EXPORT int ravel_iter_seek(ravel_iter *it, const void *target, size_t len);

/* Close and release. NULL ok. */
RAVEL_EXPORT void ravel_iter_free(ravel_iter *it);

/* ------------------------------------------------------------------ */
/* Asynchronous operations                                              */
/* ------------------------------------------------------------------ */

typedef void (*ravel_done_cb)(void *ud, int status);
typedef void (*ravel_value_cb)(void *ud, int status, const char *val, size_t vlen);
/* vals[i] is NULL for a missing key. */
typedef void (*ravel_values_cb)(void *ud, int status, size_t n, const char *const *vals,
                                const size_t *vlens);
typedef void (*ravel_entry_cb)(void *ud, int status, const char *key, size_t klen,
                               const char *val, size_t vlen);

RAVEL_EXPORT int ravel_put_async(ravel_db *db, const void *key, size_t klen, const void *val, size_t vlen,
                    ravel_done_cb cb, void *ud);
RAVEL_EXPORT int ravel_get_async(ravel_db *db, const void *key, size_t klen, ravel_value_cb cb, void *ud);
RAVEL_EXPORT int ravel_del_async(ravel_db *db, const void *key, size_t klen, ravel_done_cb cb, void *ud);
RAVEL_EXPORT int ravel_write_async(ravel_db *db, const ravel_batch *b, ravel_done_cb cb, void *ud);
/* The same with per-write options (wo NULL: none). */
RAVEL_EXPORT int ravel_clear_opt_async(ravel_db *db, const ravel_writeoptions *wo,
                                       const ravel_range *r, ravel_done_cb cb, void *ud);
RAVEL_EXPORT int ravel_put_opt_async(ravel_db *db, const ravel_writeoptions *wo, const void *key,
                                     size_t klen, const void *val, size_t vlen, ravel_done_cb cb,
                                     void *ud);
RAVEL_EXPORT int ravel_del_opt_async(ravel_db *db, const ravel_writeoptions *wo, const void *key,
                                     size_t klen, ravel_done_cb cb, void *ud);
RAVEL_EXPORT int ravel_write_opt_async(ravel_db *db, const ravel_writeoptions *wo,
                                       const ravel_batch *b, ravel_done_cb cb, void *ud);
RAVEL_EXPORT int ravel_clear_async(ravel_db *db, const ravel_range *r, ravel_done_cb cb, void *ud);
RAVEL_EXPORT int ravel_get_many_async(ravel_db *db, size_t n, const void *const *keys, const size_t *klens,
                         ravel_values_cb cb, void *ud);
/* The same with read options (ro NULL: the defaults). */
RAVEL_EXPORT int ravel_get_opt_async(ravel_db *db, const ravel_readoptions *ro, const void *key,
                                     size_t klen, ravel_value_cb cb, void *ud);
RAVEL_EXPORT int ravel_get_many_opt_async(ravel_db *db, const ravel_readoptions *ro, size_t n,
                                          const void *const *keys, const size_t *klens,
                                          ravel_values_cb cb, void *ud);
/* Next entry of an iterator, delivered to cb (status RAVEL_OK, RAVEL_END or
 * an error). At most one next may be outstanding per iterator
 * (RAVEL_EINVAL otherwise). */
RAVEL_EXPORT int ravel_iter_next_async(ravel_iter *it, ravel_entry_cb cb, void *ud);

/* ------------------------------------------------------------------ */
/* Versions and maintenance of a directory                              */
/* ------------------------------------------------------------------ */

/* This library's version, "MAJOR.MINOR.PATCH" — the RAVEL_VERSION_*
 * macros of the ravel.h it was built with, which may differ from the ones
 * a program was compiled against when it loads a newer shared library.
 * Static storage; never NULL. */
RAVEL_EXPORT const char *ravel_version(void);
RAVEL_EXPORT int ravel_version_major(void);
RAVEL_EXPORT int ravel_version_minor(void);
RAVEL_EXPORT int ravel_version_patch(void);
/* The version of the LevelDB library this one runs with, "MAJOR.MINOR"
 * (leveldb_major_version, leveldb_minor_version). Never NULL. */
RAVEL_EXPORT const char *ravel_leveldb_version(void);

/* Delete the database at `dir` and everything LevelDB and ravel keep
 * there (ravel-options, a stale rave-level.sock, the files an earlier
 * ravel_repair set aside in dir/lost/), then the directory
 * itself when nothing else is left in it; other files are left alone.
 * Refuses, deleting nothing, while any process (this one included) holds
 * the directory: a plain LevelDB program, a ravel or Node party leader, a
 * ravel handle; or while a party answers on its socket.
 * Errors: RAVEL_EINVAL (NULL, or `dir` holds no LevelDB database: no
 * CURRENT file), RAVEL_ELOCKED (in use: the message names the pid that
 * holds LOCK, or the live socket), RAVEL_EIO (no such directory,
 * permission denied, …). */
RAVEL_EXPORT int ravel_destroy(const char *dir);

/* Rebuild the database at `dir` from whatever tables and logs are left
 * (LevelDB's RepairDB), e.g. after CURRENT or a MANIFEST was lost or
 * damaged: as much data as can be recovered is kept, and what cannot
 * be read is dropped (LevelDB moves such files to dir/lost/). Tables it
 * writes use opts' recorded options (NULL: the defaults, so the
 * database's record). Refuses, as ravel_destroy does, while any process
 * holds the directory, and holds LevelDB's lock itself while it works.
 * Errors: RAVEL_EINVAL (NULL dir, or no LevelDB files in it: no CURRENT,
 * MANIFEST, table or log), RAVEL_ELOCKED, RAVEL_EIO, RAVEL_ECORRUPT. */
RAVEL_EXPORT int ravel_repair(const char *dir, const ravel_options *opts);

/* ------------------------------------------------------------------ */
/* Watching changes                                                     */
/* ------------------------------------------------------------------ */

/* A watch delivers the changes that every process makes to a key range
 * of the database, in commit order, on every handle kind (local, remote,
 * party leader or follower).
 *
 * - Sequence numbers: each committed write (a put, a delete, a batch, each
 *   chunk of 1,000 deletes of a clear) that changes keys of the database
 *   gets a sequence number, strictly greater than every earlier one,
 *   database-wide and across leaders. Numbers are not contiguous: a new
 *   leader starts past a block reserved by the last one, and writes that
 *   touch no key of the watch's range are not delivered at all. The
 *   changes of one batch share its number and arrive together, the last
 *   one marked `last`.
 * - A clear arrives as the deletes it made.
 * - Resume: a watch that loses its stream (a remote or following handle)
 *   resumes exactly after the last change it delivered while the leader
 *   that served it lives: the leader keeps the most recent changes in
 *   memory (RAVEL_WATCH_BUFFER bytes). Across a failover, and for a start
 *   from an older number, it resumes exactly only from the database's
 *   change log (ravel_changelog_set). Otherwise it delivers a
 *   RAVEL_CHANGE_RESYNC change: changes after `resync_from` and up to
 *   `seq` may be missing; re-read the watch's range, and every change
 *   after `seq` follows. Never a silent gap.
 * - Bounded: a watcher that does not read holds no memory of the leader
 *   beyond that shared buffer (and, remote, 64 frames in flight). Once it
 *   falls behind the buffer (and the change log, when on) it gets a
 *   resync where it left off.
 * - A remote or following handle watches over a stream of its own to the
 *   host or leader (the handle's address, or <dir>/rave-level.sock). A
 *   host that is not a ravel host (a Node many-level host or rave-level
 *   leader) cannot serve it: ravel_watch_new fails with RAVEL_ENOTSUP at
 *   once, and if the party later moves to a Node leader the watch delivers
 *   a resync and then fails with RAVEL_ENOTSUP. Handles on streams given
 *   by the caller (ravel_guest_new) and tls: addresses cannot watch
 *   (RAVEL_ENOTSUP).
 * - Writes of Node processes through a ravel leader or host are changes
 *   like any others. ravel's own records are never delivered. */

#define RAVEL_WATCH_BUFFER (4u << 20)

typedef enum ravel_change_type {
    RAVEL_CHANGE_PUT = 1,
    RAVEL_CHANGE_DEL = 2,
    RAVEL_CHANGE_RESYNC = 3,
} ravel_change_type;

/* One change. The bytes belong to the watch: valid until its next call
 * (or, in a callback, until the callback returns). */
typedef struct ravel_change {
    int type;              /* ravel_change_type */
    uint64_t seq;          /* the write's sequence number; for a resync,
                            * the number to re-read as of */
    const char *key;       /* PUT, DEL */
    size_t klen;
    const char *val;       /* PUT */
    size_t vlen;
    int last;              /* the last change of its write (batch) */
    uint64_t resync_from;  /* RESYNC: changes after this number may be missing */
} ravel_change;

typedef struct ravel_watch_options {
    /* Which keys: bounds of a range (its limit, reverse, keys and values
     * are ignored; NULL: every key), or a prefix (has_prefix). Not both. */
    const ravel_range *range;
    int has_prefix;
    const void *prefix;
    size_t prefix_len;
    /* Start after this sequence number (has_from), e.g. the last one a
     * previous watch delivered; else from now. */
    int has_from;
    uint64_t from;
    /* Remote and following handles: how long ravel_watch_new tries to
     * reach the host or leader, in milliseconds (default 10000). */
    int connect_timeout_ms;
} ravel_watch_options;

RAVEL_EXPORT void ravel_watch_options_init(ravel_watch_options *o);

typedef struct ravel_watch ravel_watch;

/* Open a watch (o NULL: every key, from now), to read with
 * ravel_watch_next. Errors: RAVEL_EINVAL, RAVEL_ENOTSUP (above),
 * RAVEL_ECONNLOST (no host or leader answered within the timeout),
 * RAVEL_ENOMEM. Safe from any thread. */
RAVEL_EXPORT int ravel_watch_new(ravel_db *db, const ravel_watch_options *o, ravel_watch **out);

/* The next change, waiting up to timeout_ms (< 0: no limit; 0: only what
 * has arrived). RAVEL_OK; RAVEL_ETIMEDOUT when none came in time;
 * RAVEL_ENOTSUP when the party moved to a Node leader (after a resync);
 * RAVEL_ECLOSED after the handle (local) closed. A watch belongs to one
 * thread at a time. A lost stream is not an error: the watch resumes on
 * the next one. */
RAVEL_EXPORT int ravel_watch_next(ravel_watch *w, ravel_change *c, int timeout_ms);

/* The callback form: a thread of the watch's own calls cb with each change
 * (status RAVEL_OK), and once with the error that ends it (status not
 * RAVEL_OK, c NULL). cb may call ravel_watch_free on its own watch. */
typedef void (*ravel_change_cb)(void *ud, int status, const ravel_change *c);
RAVEL_EXPORT int ravel_watch_start(ravel_db *db, const ravel_watch_options *o, ravel_change_cb cb,
                                   void *ud, ravel_watch **out);

/* Stop and release (the callback form: after any callback under way has
 * returned, unless called from it). Free every watch of a handle before
 * closing the handle. NULL ok. */
RAVEL_EXPORT void ravel_watch_free(ravel_watch *w);

/* The change log: an opt-in, persistent setting of the database. When on,
 * every change is also written, in the same LevelDB write batch as the
 * data, to ravel's own records (README, "ravel's own records"), and the
 * oldest are dropped in that batch past max_count records or max_bytes
 * bytes. A watch then resumes exactly after any sequence number still
 * kept — across failovers, and on a leader that is another process. */
typedef struct ravel_changelog {
    int on;
    uint64_t max_count;   /* 0 in a set: the default, 100000 */
    uint64_t max_bytes;   /* 0 in a set: the default, 64 MiB */
    /* Filled by get and set: */
    uint64_t seq;         /* the last sequence number given out */
    uint64_t floor;       /* with on: a watch resumes exactly after any
                           * number >= floor */
    uint64_t records, bytes; /* what the log holds now */
} ravel_changelog;

/* Read the setting (and state) of the database, through any handle kind. */
RAVEL_EXPORT int ravel_changelog_get(ravel_db *db, ravel_changelog *out);
/* Turn it on (with its retention) or off (which deletes the log). Out may
 * be NULL. Against a Node host or leader: RAVEL_ENOTSUP. */
RAVEL_EXPORT int ravel_changelog_set(ravel_db *db, const ravel_changelog *set,
                                     ravel_changelog *out);

/* ------------------------------------------------------------------ */
/* Host: serve a database to guests                                     */
/* ------------------------------------------------------------------ */

typedef struct ravel_host ravel_host;

/* Hooks run on the connection's thread before a write; return NULL to allow
 * it, or a message to reject it (nothing is written; the guest gets
 * LEVEL_REJECTED, i.e. RAVEL_EREJECTED for a ravel guest). The message
 * reaches a ravel guest, which shows it in ravel_errmsg() (after the
 * stream's negotiation: docs/protocol-extensions.md); a Node guest gets
 * the code only, as many-level has no field for it; a verbose host logs
 * it. The returned string must stay valid (e.g. a literal). */
typedef const char *(*ravel_preput_fn)(void *ud, const char *key, size_t klen,
                                       const char *val, size_t vlen);
typedef const char *(*ravel_predel_fn)(void *ud, const char *key, size_t klen);
typedef const char *(*ravel_prebatch_fn)(void *ud, const ravel_batch *b);

/* A rule of a host's TLS access map: which client certificates may
 * connect, and whether they may write. */
typedef struct ravel_tls_access {
    /* The client certificate it names: "sha256:" and its SHA-256
     * fingerprint in hex (colons and case do not matter; as printed by
     * `openssl x509 -noout -fingerprint -sha256`), or its subject in RFC
     * 2253 form, compared exactly (as printed by `openssl x509 -noout
     * -subject -nameopt RFC2253`, without "subject="), e.g.
     * "CN=dashboard,O=Example". */
    const char *match;
    int readonly;      /* 1: its writes get LEVEL_READONLY; 0: it may write */
} ravel_tls_access;

typedef struct ravel_host_options {
    int readonly;              /* refuse every write with LEVEL_READONLY */
    ravel_preput_fn preput;
    ravel_predel_fn predel;
    ravel_prebatch_fn prebatch;
    void *hook_ud;
    size_t max_frame;          /* default 64 MiB; a larger frame closes the connection */
    size_t max_iterators;      /* per connection (default 1000); more get an
                                * IteratorError LEVEL_LIMIT_EXCEEDED */
    int verbose;               /* log connections and errors to stderr */
    /* How long, in microseconds, a connection's thread reads in a loop for
     * the guest's next request before it sleeps (default 50; 0 never);
     * adaptive and bounded as ravel_options.busy_poll_us. */
    int busy_poll_us;
    /* Most connections open at once, counting those in a TLS handshake
     * (default 1024; < 0: no limit). A connection accepted beyond it is
     * closed at once (and logged when verbose); open ones are served as
     * before. Streams given with ravel_host_attach_fd count among the
     * open ones but are never refused. Each connection has a thread (512
     * KiB of stack). */
    int max_connections;
    /* TLS, for "tls:HOST:PORT" listeners (ravel_host_listen refuses one
     * without tls_cert_file). ravel_host_new reads the files and fails
     * with RAVEL_EINVAL naming the file and the reason when one cannot be
     * used. TLS 1.2 is the minimum. */
    const char *tls_cert_file; /* certificate chain (PEM), leaf first */
    const char *tls_key_file;  /* its private key (PEM) */
    /* CA bundle (PEM): when set, every TLS client must present a
     * certificate signed by one of these CAs (mutual TLS), and one that
     * does not is refused in the handshake. NULL: no client certificates
     * are asked for, and anyone who reaches the port is served. */
    const char *tls_ca_file;
    /* The access map, with tls_ca_file: when tls_access_len > 0, only a
     * client certificate matching one of these rules is served, read-only
     * or read-write as the first matching rule says; any other is refused
     * in the handshake. `readonly` above still makes every connection
     * read-only. The array and its strings are read by ravel_host_new and
     * need not outlive it. */
    const ravel_tls_access *tls_access;
    size_t tls_access_len;
    /* How long a TLS client may take for its handshake, in milliseconds
     * (default 10000): one that stalls is dropped then, without holding up
     * any other connection. */
    int tls_handshake_timeout_ms;
    /* Offer the extension "shm" (see ravel_options.shared_memory) to ravel
     * guests on unix sockets: 1 (the default, from
     * ravel_host_options_init), 0 never. The host then serves up to 64
     * such streams from one thread that runs their quick requests (gets,
     * puts, deletes, batches without sync and without hooks) and leaves
     * the rest to each connection's own thread. */
    int shared_memory;
} ravel_host_options;

RAVEL_EXPORT void ravel_host_options_init(ravel_host_options *opts);

/* Serve `db` (any handle; usually a local one). Each connection gets its
 * own thread, which runs that connection's requests in order, so a slow
 * call on one connection does not stall the others; one more thread
 * accepts on the listeners. The host does not
 * own db: close the host before the db. */
RAVEL_EXPORT int ravel_host_new(ravel_host **out, ravel_db *db, const ravel_host_options *opts);

/* Serve one connected stream (socket or pipe pair), in plain text (no
 * TLS). The host owns the fds. */
RAVEL_EXPORT int ravel_host_attach_fd(ravel_host *h, int read_fd, int write_fd);

/* Listen on "unix:PATH" (owner-only permissions; a stale socket file is
 * replaced), "tcp:HOST:PORT" (PORT 0 picks one; see ravel_host_port) or
 * "tls:HOST:PORT" (as tcp, every connection in TLS; needs the host's
 * tls_cert_file and tls_key_file). These serve many-level's protocol.
 * "multileveldown+unix:PATH" and "multileveldown+tcp:HOST:PORT" serve the
 * first generation's (multileveldown 5 guests, level-party 5 followers):
 * no Announce, errors as words ("NotFound: ", "Database is readonly", a
 * hook's reason), its own iterator messages. A listener's protocol is
 * declared, never guessed from a connection's bytes. May be called more than once; one host
 * may listen in plain text and in TLS at once. A TLS client that fails
 * its handshake (no certificate, an unknown CA, an expired one, not in
 * the access map, plain text on a TLS port, a stalled handshake) is
 * dropped and, when verbose, logged with the reason.
 * Errors: RAVEL_EADDR, RAVEL_EIO, RAVEL_EINVAL (tls: without a
 * certificate). */
RAVEL_EXPORT int ravel_host_listen(ravel_host *h, const char *address);

/* The TCP port of the most recent tcp or tls listener (0 if none). */
RAVEL_EXPORT int ravel_host_port(ravel_host *h);

/* Number of open connections (diagnostics and tests). */
RAVEL_EXPORT int ravel_host_connections(ravel_host *h);

/* Stop listening, answer requests already running, close every
 * connection and remove unix socket files. NULL ok. */
RAVEL_EXPORT void ravel_host_free(ravel_host *h);

#ifdef __cplusplus
}
#endif
#endif /* RAVEL_H */
