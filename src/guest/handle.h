/* The remote handle's state, shared by its three parts:
 *   stream.c     the stream and the loop thread: fds and their watches,
 *                connect, reconnect and adopt, reads and writes, callers
 *                that read their own answers, waking, closing;
 *   requests.c   operations turned into messages, and results delivered;
 *   iterators.c  remote iterators.
 * Threads and locks: docs/DESIGN.md. Everything below `mu` is guarded by
 * it unless said otherwise. */
#ifndef RAVEL_GUEST_HANDLE_H
#define RAVEL_GUEST_HANDLE_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <uv.h>

#include "db/db.h"
#include "guest/remote.h"
#include "guest/session.h"
#include "transport/shm.h"
#include "util/backoff.h"

/* The stream, one state at a time. */
typedef enum rv_stream_state {
    RS_NONE,       /* no stream: waiting for an attach, a connect or an election */
    RS_OPENING,    /* fds watched; a connect under way, or about to be up */
    RS_HANDSHAKE,  /* connected; the TLS handshake under way (loop thread) */
    RS_UP,         /* attached and usable: callers read and write it */
    RS_ENDED,      /* a reader saw it end, or a write failed: the loop drops it */
    RS_DROPPING,   /* its watches are closing; its fds close with them */
} rv_stream_state;

/* The handle's life. */
typedef enum rv_life {
    RL_OPEN,
    RL_CLOSING,    /* close asked for: the loop shuts down on its next turn */
    RL_SHUT,       /* the loop shut down: no stream any more */
} rv_life;

/* Extension "shm": where the stream's bytes travel. */
typedef enum rv_shm_state {
    RSHM_OFF,      /* the socket */
    RSHM_OFFERED,  /* ShmOffer sent: what follows waits for ShmReady */
    RSHM_ON,       /* the rings; the socket brings doorbell bytes and its end */
} rv_shm_state;

/* The loop's input watch, which a caller reading the stream pauses. */
typedef enum rv_input {
    RI_WATCHED,
    RI_PAUSED,     /* a caller reads; the resume timer will look again */
    RI_OWED,       /* the timer came while a caller read: that caller has
                    * the loop resume the watch when it is done */
} rv_input;

/* Why the loop thread is woken (bits of rv_remote.wake_for): the one way
 * other threads hand it work. */
enum {
    RW_FLUSH = 1,      /* request bytes wait to be written */
    RW_DELIVER = 2,    /* asynchronous completions or nexts to call back */
    RW_RESUME = 4,     /* a reader is done: watch the input again */
    RW_DROP = 8,       /* the stream ended (RS_ENDED) */
    RW_ATTACH = 16,    /* ravel_guest_attach_fd gave a stream */
    RW_CLOSE = 32,     /* ravel_db_close */
};

typedef struct rreq rreq;
typedef struct riter riter;

struct rv_remote {
    ravel_db base;
    ravel_options opts;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_timer_t timer;    /* reconnect backoff */
    uv_timer_t resume;   /* turns the input watch back on */
    uv_timer_t stand_in; /* a stream that could not be watched */
    uv_timer_t hs_timer; /* bounds a TLS handshake */
    uv_timer_t give_up;  /* opts.connect_timeout_ms: runs while no stream is up */
    rv_backoff backoff;  /* loop thread only */
    uv_mutex_t mu;
    rv_gsession s;
    rv_life life;
    int close_in_loop;   /* closed from its own callback: the loop thread frees */
    int refs;            /* the handle's, and one per open iterator */
    unsigned wake_for;   /* RW_* bits; the async is sent when this becomes non-zero */
    /* The stream. */
    rv_stream_state state;
    int rfd, wfd;        /* -1 when none; closed when the watches are */
    uv_poll_t rpoll, wpoll; /* wpoll only for a pipe pair (split) */
    int split;
    int handles;         /* watches open */
    int rev, wev;        /* events each watch has now */
    int is_socket;       /* callers may send() on wfd (MSG_NOSIGNAL) */
    int write_error;     /* errno of the failed write that ended it */
    int connect_error;   /* errno of the last failed connect, else 0 */
    int dialect;         /* the protocol of the stream being opened or
                          * up (RV_DIALECT_*): its address's for a connect,
                          * many-level's for an adopted or attached fd */
    char why[700];       /* how the last stream ended, for error messages */
    int fatal;           /* ... for a reason the next try meets again (a
                          * certificate, TLS on one side only): what is
                          * pending fails, even with retry */
    int rx_any;          /* bytes came on this stream (backoff restarts) */
    /* TLS (tls:HOST:PORT): SSL_read and SSL_write take the place of read
     * and write, under mu like them. */
    SSL_CTX *tls;        /* made by ravel_connect; NULL: plain text */
    char tls_name[256];  /* what the host's certificate must name */
    SSL *ssl;            /* this stream's, from its handshake to its drop */
    int tls_rw;          /* an SSL_read must wait for writable (UV_WRITABLE)
                          * or an SSL_write for readable (UV_READABLE) */
    size_t queued;       /* requests submitted since out was last empty */
    int attach_rfd, attach_wfd; /* an attach waiting for the loop */
    /* Callers reading their own answers (stream.c, rv_remote_await). */
    rv_input input;
    uint64_t poll_ns;    /* busy-poll budget; 0 off */
    int poll_hot;        /* recent answers came within the budget */
    int poller;          /* a caller reads the stream */
    int blocked;         /* ... asleep in poll(2); nudge_fd wakes it */
    int nudge_fd;        /* eventfd */
    /* Extension "shm" (transport/shm.h). */
    rv_shm_state shm_state;
    rv_shm shm;          /* this stream's rings, mapped from its offer */
    rv_shm shm_old;      /* a lost stream's, kept mapped while a caller
                          * that sleeps or polls on it has not seen so */
    rv_ring_ctl *ring_blocked; /* the ring a caller sleeps on, to poke */
    char rbuf[64 << 10];
    /* Completions for the loop to call back. */
    riter *ready;        /* asynchronous nexts to serve */
    rreq *async_head, *async_tail; /* finished asynchronous requests */
    ravel_snapshot *snaps; /* taken and not released */
    /* Where addresses come from. */
    int has_addr;
    rv_address addr;
    rv_remote_hooks hooks; /* party mode: who finds the next stream */
    int initial_fd;      /* adopted when the loop starts */
};

typedef struct rv_remote remote;

/* ---- stream.c ---- */

/* With the lock held: have the loop thread do `what` (RW_* bits). */
void rv_remote_kick(remote *r, unsigned what);
/* With the lock held, from a thread about to wait for an answer: write
 * what is queued itself where it can (saves a thread hand-off per
 * request); what does not fit goes to the loop. */
void rv_remote_send_now(remote *r);
/* With the lock held, from a synchronous caller: wait until *done,
 * reading the stream itself (if may_read) when no other thread does,
 * else sleeping on cond while the loop thread reads. */
void rv_remote_await(remote *r, uv_cond_t *cond, const int *done, int may_read);
/* With the lock held, on the loop thread: write what is queued, as far as
 * the stream takes it, and watch for the rest. */
void rv_remote_flush(remote *r);
/* With the lock held: wake a caller asleep in poll(2) on the stream. */
void rv_remote_nudge(remote *r);
/* With the lock held, on the loop thread, stream in shared memory: read
 * what the ring holds, and arm the doorbell while answers are expected
 * and no caller reads them. */
void rv_remote_ring_drain(remote *r);
/* With the lock held: a request refused because no stream is up (rc
 * RAVEL_ECONNLOST or RAVEL_ETIMEDOUT) says how the last one ended, as
 * the requests it failed do. Returns rc. */
int rv_remote_refused(remote *r, int rc);
/* Without the lock: drop a reference (the handle's at close, an
 * iterator's when freed); the last frees the memory. */
void rv_remote_unref(remote *r);

/* ---- requests.c ---- */

/* With the lock held, any thread: hand out what the session finished.
 * Synchronous callers are filled in and woken; asynchronous completions
 * and iterator news for asynchronous nexts are queued for the loop. */
void rv_remote_settle(remote *r);
/* With the lock held, on the loop thread: settle, unlock, then call back
 * what was queued (never under the lock: callbacks may call in). */
void rv_remote_settle_and_unlock(remote *r);
int rv_remote_submit(ravel_db *d, rv_req *req);
void rv_remote_wait(ravel_db *d, rv_sync *sync);
void rv_remote_snapshot_release(ravel_db *d, ravel_snapshot *snap);
/* With the lock held: read options as they travel, checking that a
 * snapshot they name lives on this handle's current stream
 * (RAVEL_ESNAPSHOT if not); *snap_stream is that stream, or 0. */
int rv_remote_wire_ro(remote *r, const ravel_readoptions *ro, rv_wire_ro *out,
                      uint64_t *snap_stream);

/* ---- iterators.c ---- */

int rv_remote_iter_new(ravel_db *d, const ravel_range *rg, const ravel_readoptions *ro,
                       ravel_iter **out);
/* With the lock held: an iterator has news (from rv_remote_settle). */
void rv_remote_iter_news(remote *r, rv_giter *g);
/* On the loop thread, without the lock: serve asynchronous nexts. */
void rv_remote_serve_ready(remote *r);

#endif
