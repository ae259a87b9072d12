/* The host's private structures, shared by its transport (host.c) and its
 * ring server (rings.c). Threads and locks: docs/DESIGN.md. */
#ifndef RAVEL_HOST_CONN_H
#define RAVEL_HOST_CONN_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "host/session.h"
#include "transport/address.h"
#include "transport/shm.h"
#include "transport/tls.h"

/* Streams in shared memory one host serves at once; those beyond are not
 * offered "shm" and stay on their sockets. */
#define RV_RING_CONNS 64

enum { RING_SERVER, RING_CONN };

typedef struct ravel_host ravel_host;

#define MAX_LISTENERS 16
#define READ_CHUNK (64u << 10)
#define CONN_STACK (512u << 10)
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_HANDSHAKE_MS 10000

typedef struct hconn {
    ravel_host *h;
    int rfd, wfd;
    int is_socket;     /* send() with MSG_NOSIGNAL works */
    SSL *ssl;          /* TLS on the stream, else NULL */
    short want;        /* what the stream must be for the next try: POLLIN,
                        * or POLLOUT when TLS must write to go on reading */
    ravel_host_options opts; /* the host's, with this client's access */
    char note[RV_TLS_NOTE]; /* an access-map refusal, from the handshake */
    pthread_t thread;
    int finished;      /* the thread is done; join it */
    rv_hsession s;
    uint64_t poll_ns;  /* busy-poll budget, 0 off */
    int poll_hot;      /* the last wait was shorter than the budget */
    char peer[96];     /* who is at the other end, for the log */
    struct hconn *next;
    /* Extension "shm" (rings.c): the stream moved into shared memory. */
    int is_unix;       /* a unix socket: fds can come with the bytes */
    int shm_fd;        /* a memfd received with the bytes, else -1 */
    int shm_on;        /* the rings carry the stream now */
    rv_shm shm;
    pthread_mutex_t mu; /* shm: held by whichever thread feeds the session */
    _Atomic int owner;  /* shm: RING_SERVER, or RING_CONN while the
                         * connection's own thread runs a slow request */
    _Atomic int dead;   /* shm: the stream is bad; the thread closes it */
    int evfd;           /* shm: eventfd, the ring server wakes the thread */
    uint64_t rx_left;   /* shm: bytes the last pass left in the ring */
    /* shm, while the connection's thread runs a slow request and waits
     * for the guest: it sets want_wake, having noted what it waits for
     * (more than slow_seen bytes, or room for its replies); the ring
     * server sleeps on the ring for it too and wakes it (evfd). */
    _Atomic int want_wake;
    _Atomic uint64_t slow_seen;
    _Atomic int wait_room;
    rv_buf scratch;     /* shm: frames copied out of the ring (room only) */
} hconn;

typedef struct hlistener {
    int fd;
    int is_tls;
    int dialect;       /* RV_DIALECT_*: what its connections speak */
    char path[sizeof(((rv_address *)0)->path)]; /* unix: removed at close */
} hlistener;

struct ravel_host {
    ravel_db *db;
    ravel_host_options opts;
    int stop_fd;       /* eventfd: readable once the host stops */
    int wake_fd;       /* eventfd: the listener set changed */
    pthread_t acceptor;
    int acceptor_started;
    pthread_mutex_t mu; /* guards everything below */
    hlistener listeners[MAX_LISTENERS];
    int nlisteners;
    hconn *conns;
    int nconns;        /* open connections */
    int port;
    SSL_CTX *tls;      /* made from the options, for tls: listeners */
    rv_tls_access access;
    /* The ring server (rings.c): one thread serving the requests of every
     * stream in shared memory that it can run quickly. */
    pthread_mutex_t ring_mu;  /* guards the list; held through a pass */
    hconn *ring[RV_RING_CONNS];
    int nring;
    int ring_started;
    pthread_t ring_thread;
    _Atomic uint32_t ring_wake; /* private futex: the list changed, a
                                 * stream came back, or stop */
    _Atomic int ring_stop;
};

/* rings.c */

/* The stream's ShmOffer came: map the memfd that came with it, answer
 * ShmReady, and hand the stream to the ring server. RAVEL_OK when the
 * stream is in the rings now (serve it with rv_ring_conn_main), 1 when it
 * stays on the socket (refused: ShmReady said so), else an error after
 * which the connection closes. */
int rv_ring_switch(hconn *c, int (*write_all)(hconn *, const char *, size_t));
/* The connection's thread, once its stream is in the rings: wait for the
 * end of the socket, the host's stop, or a slow request the ring server
 * handed over, and run that. Returns when the connection is to close,
 * having taken the stream from the ring server. */
void rv_ring_conn_main(hconn *c);
/* Can this host offer "shm" to one more stream? */
int rv_ring_has_place(ravel_host *h);
/* Stop the ring server (host close, after every connection ended). */
void rv_ring_stop(ravel_host *h);
void rv_host_logf(ravel_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
