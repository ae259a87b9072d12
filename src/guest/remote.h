/* The remote handle's internals that party mode drives: instead of simply
 * reconnecting to an address, a party follower runs an election whenever
 * its stream ends. rv_remote_new, rv_remote_db and rv_remote_in_loop may be
 * called from any thread; the other rv_remote_* calls only on the handle's
 * loop thread (from the hooks, or from handles on rv_remote_loop). The
 * hooks run on the loop thread. */
#ifndef RAVEL_GUEST_REMOTE_H
#define RAVEL_GUEST_REMOTE_H

#include <uv.h>

#include "ravel.h"
#include "transport/address.h"

typedef struct rv_remote rv_remote;

typedef struct rv_remote_hooks {
    /* The stream ended or a connect failed (pending work is kept or failed
     * as retry says); find the next stream. */
    void (*lost)(rv_remote *r, void *ud);
    /* A stream is up. */
    void (*up)(rv_remote *r, void *ud);
    /* The loop is shutting down: close the handles you keep on it. */
    void (*shutdown)(rv_remote *r, void *ud);
    /* The handle's close is complete and no hook runs again (called by
     * ravel_db_close, or by the loop thread when the handle was closed
     * from one of its own callbacks). */
    void (*released)(void *ud);
    void *ud;
} rv_remote_hooks;

/* A remote handle with its own loop thread. addr: where rv_remote_connect
 * goes (and, without hooks, where it reconnects). initial_fd >= 0: a
 * connected socket adopted at start. */
int rv_remote_new(rv_remote **out, const ravel_options *opts, int retry, const rv_address *addr,
                  const rv_remote_hooks *hooks, int initial_fd);
ravel_db *rv_remote_db(rv_remote *r);
/* Is the calling thread the handle's loop thread? */
int rv_remote_in_loop(rv_remote *r);
uv_loop_t *rv_remote_loop(rv_remote *r);
/* Start connecting to addr; failure comes back through hooks.lost. */
void rv_remote_connect(rv_remote *r);
/* The errno of the last connect that failed (ECONNREFUSED: nobody listens
 * on the socket), 0 if the last stream was connected. */
int rv_remote_connect_error(rv_remote *r);
/* Use a connected fd (or pipe pair) as the stream now: many-level's
 * protocol, or the one given (RV_DIALECT_*). */
void rv_remote_adopt(rv_remote *r, int rfd, int wfd);
void rv_remote_adopt_dialect(rv_remote *r, int rfd, int wfd, int dialect);
/* Where rv_remote_connect goes from now on (a party follower that finds
 * only the first generation's socket). */
void rv_remote_set_address(rv_remote *r, const rv_address *addr);

#endif
