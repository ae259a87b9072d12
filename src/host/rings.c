/* The ring server: one thread per host that serves every stream which
 * moved into shared memory (extension "shm", transport/shm.h).
 *
 * Why one thread for all of them: with a thread per connection, every
 * request from another process costs two sleeping thread wake-ups, and on
 * a machine with fewer CPUs than active processes the wake-ups are the
 * work (bench/RESULTS.md, issue 18). One thread that goes round the rings
 * serves many requests per wake-up, and while requests keep coming it
 * polls the rings (no system call at all) instead of sleeping; when none
 * came for the busy-poll budget it sleeps on all the rings' futexes at
 * once (futex_waitv).
 *
 * What it runs itself: Get, GetMany, Put, Delete and Batch frames of at
 * most FAST_MAX bytes, without "sync" and without a write hook, and the
 * steps of iterators (each sends one batch at most). Anything else (a
 * clear, a sync write, a hook that may take its time, snapshots and
 * maintenance, a frame too large to sit in the ring) it hands to the
 * connection's own thread, which runs it and hands the stream back at the
 * next quick frame, so a slow request still stalls only its own stream.
 * Each stream's requests run in order, by one thread at a time (hconn.mu;
 * `owner` says which). */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "host/conn.h"
#include "util/alloc.h"
#include "util/spin.h"
#include "wire/codec.h"

/* The largest frame the ring server runs itself. */
#define FAST_MAX (64u << 10)
/* How much of a slow frame the connection's thread takes at a time. */
#define SLOW_CHUNK (64u << 10)
/* The longest the connection's thread waits before it looks at a ring
 * again while the guest owes it bytes or room, in milliseconds (the ring
 * server wakes it sooner). */
#define SLOW_WAIT_MAX_MS 100

static void doorbell(hconn *c)
{
    char b = 0;
    ssize_t n = send(c->rfd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n; /* EAGAIN: bytes wait there already, which ring as well */
}

static void wake_server(ravel_host *h)
{
    atomic_fetch_add(&h->ring_wake, 1);
    syscall(SYS_futex, &h->ring_wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void wake_conn(hconn *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->evfd, &one, sizeof one);
    (void)n;
}

/* With c->mu: move the session's replies into the guest's ring as far as
 * they fit, and wake the guest. Returns 1 when bytes moved. */
static int push_out(hconn *c)
{
    int moved = rv_ring_send(&c->shm.tx, &c->s.out);
    if (moved && rv_ring_notify(&c->shm.tx))
        doorbell(c);
    return moved;
}

/* With c->mu: take n bytes from the guest's ring; tell it if it waits for
 * the room. */
static void take(hconn *c, size_t n)
{
    rv_ring_take(&c->shm.rx, n);
    if (rv_ring_room_wanted(&c->shm.rx))
        doorbell(c);
}

static int is_quick(const hconn *c, const uint8_t *payload, size_t len)
{
    switch (payload[0]) {
    case RV_IN_GET:
    case RV_IN_GET_MANY:
    /* An iterator's steps: each sends at most one batch
     * (RV_ITER_BATCH_BYTES). Handing them to the connection's thread
     * halved a follower's W5 (two thread wake-ups per batch). */
    case RV_IN_ITERATOR:
    case RV_IN_ITER_ACK:
    case RV_IN_ITER_CLOSE:
    case RV_IN_ITER_SEEK:
        return 1;
    case RV_IN_PUT:
        if (c->opts.preput)
            return 0;
        break;
    case RV_IN_DEL:
        if (c->opts.predel)
            return 0;
        break;
    case RV_IN_BATCH:
        if (c->opts.prebatch || c->opts.preput || c->opts.predel)
            return 0;
        break;
    default:
        return 0;
    }
    return !rv_msg_wants_sync(payload + 1, len - 1);
}

/* With c->mu: copy the run of whole quick frames at the head of the ring
 * into c->scratch, without taking them. Returns their bytes, or -1 when
 * the ring makes no sense; *slow is set when what follows is for the
 * connection's thread. c->rx_left: the bytes seen and left in the ring. */
static long quick_run(hconn *c, int *slow)
{
    rv_ring *rx = &c->shm.rx;
    uint64_t avail = rv_ring_avail(rx);
    *slow = 0;
    c->rx_left = avail;
    if (avail == UINT64_MAX)
        return -1;
    size_t used = 0;
    while (used < avail) {
        uint8_t head[10];
        size_t hn = avail - used < sizeof head ? (size_t)(avail - used) : sizeof head;
        rv_ring_peek(rx, used, head, hn);
        uint64_t len = 0;
        size_t hl = 0;
        int whole = 0;
        for (unsigned shift = 0; hl < hn; shift += 7) {
            uint8_t b = head[hl++];
            len |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80)) {
                whole = 1;
                break;
            }
        }
        if (!whole) {
            *slow = hn == sizeof head; /* no length: the session says so */
            break;
        }
        if (len == 0 || len > FAST_MAX) {
            *slow = 1;
            break;
        }
        if (used + hl + len > avail)
            break; /* the rest is on its way */
        if (rv_buf_reserve(&c->scratch, used + hl + len))
            return -1;
        rv_ring_peek(rx, used, (uint8_t *)c->scratch.data + used, hl + (size_t)len);
        if (!is_quick(c, (uint8_t *)c->scratch.data + used + hl, (size_t)len)) {
            *slow = 1;
            break;
        }
        used += hl + (size_t)len;
    }
    c->rx_left = avail - used;
    return (long)used;
}

static void go_bad(hconn *c, const char *why)
{
    rv_host_logf(c->h, "closing a connection in shared memory: %s", why);
    atomic_store(&c->dead, 1);
    wake_conn(c);
}

/* With h->ring_mu, on the ring server: serve one stream's quick requests.
 * Returns 1 when anything happened. */
static int serve(hconn *c)
{
    if (atomic_load(&c->owner) != RING_SERVER || atomic_load(&c->dead) ||
        pthread_mutex_trylock(&c->mu) != 0)
        return 0;
    int did = c->s.out.len ? push_out(c) : 0;
    if (!c->s.out.len) {
        int slow;
        long n = quick_run(c, &slow);
        if (n < 0) {
            go_bad(c, "its ring is not a ring, or out of memory");
            did = 1;
        } else {
            if (n > 0) {
                take(c, (size_t)n);
                int rc = rv_hsession_feed(&c->s, (const uint8_t *)c->scratch.data, (size_t)n);
                push_out(c);
                if (rc != RAVEL_OK)
                    go_bad(c, ravel_strerror(rc));
                did = 1;
            }
            if (slow && !atomic_load(&c->dead)) {
                atomic_store(&c->owner, RING_CONN);
                wake_conn(c);
                did = 1;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return did;
}

/* With h->ring_mu: has a stream news the last pass did not see (bytes
 * beyond those it left, or room for replies that wait)? For a stream
 * whose own thread waits for the guest: what that thread waits for. */
static int news(hconn *c)
{
    if (atomic_load(&c->dead))
        return 0;
    if (atomic_load(&c->owner) != RING_SERVER)
        return atomic_load(&c->want_wake) &&
               ((c->wait_room && rv_ring_room(&c->shm.tx)) ||
                rv_ring_avail(&c->shm.rx) != c->slow_seen);
    uint64_t avail = rv_ring_avail(&c->shm.rx);
    return avail != c->rx_left || (c->s.out.len && rv_ring_room(&c->shm.tx));
}

/* With h->ring_mu: wake a connection's thread whose guest did what it
 * waits for. Returns 1 when it did. */
static int forward(hconn *c)
{
    if (atomic_load(&c->owner) == RING_SERVER || !news(c) || !atomic_exchange(&c->want_wake, 0))
        return 0;
    wake_conn(c);
    return 1;
}

static void *ring_main(void *arg)
{
    ravel_host *h = arg;
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    uint64_t budget = rv_spin_budget_ns(h->opts.busy_poll_us), last = 0;
    struct futex_waitv w[RV_RING_CONNS + 1];
    for (;;) {
        uint32_t wake = atomic_load(&h->ring_wake);
        pthread_mutex_lock(&h->ring_mu);
        if (atomic_load(&h->ring_stop)) {
            pthread_mutex_unlock(&h->ring_mu);
            break;
        }
        int did = 0;
        for (int i = 0; i < h->nring; i++)
            did |= serve(h->ring[i]) | forward(h->ring[i]);
        uint64_t now = budget ? rv_now_ns() : 0;
        if (did || (budget && now - last < budget)) {
            pthread_mutex_unlock(&h->ring_mu);
            if (did)
                last = now;
            else
                rv_cpu_relax();
            continue;
        }
        /* Nothing came within the budget: sleep on every ring, having
         * said so in each (a guest that writes then wakes us). */
        memset(w, 0, sizeof w);
        w[0].val = wake;
        w[0].uaddr = (uintptr_t)&h->ring_wake;
        w[0].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
        int k = 1, ready = 0;
        for (int i = 0; i < h->nring; i++) {
            hconn *c = h->ring[i];
            if (atomic_load(&c->dead) ||
                (atomic_load(&c->owner) != RING_SERVER && !atomic_load(&c->want_wake)))
                continue;
            rv_ring_ctl *ctl = c->shm.rx.ctl;
            w[k].val = atomic_load(&ctl->seq);
            w[k].uaddr = (uintptr_t)&ctl->seq;
            w[k].flags = FUTEX_32;
            k++;
            atomic_store(&ctl->sleeping, 1);
            ready |= news(c);
        }
        pthread_mutex_unlock(&h->ring_mu);
        if (!ready)
            syscall(SYS_futex_waitv, w, (unsigned)k, 0, NULL, 0);
        pthread_mutex_lock(&h->ring_mu);
        for (int i = 0; i < h->nring; i++)
            atomic_store(&h->ring[i]->shm.rx.ctl->sleeping, 0);
        pthread_mutex_unlock(&h->ring_mu);
        last = budget ? rv_now_ns() : 0;
    }
    return NULL;
}

int rv_ring_has_place(ravel_host *h)
{
    pthread_mutex_lock(&h->ring_mu);
    int room = h->nring < RV_RING_CONNS;
    pthread_mutex_unlock(&h->ring_mu);
    return room;
}

/* Take a place in the ring server's list (owned by the connection's
 * thread until it says ShmReady), starting the server if need be. */
static int enlist(hconn *c)
{
    ravel_host *h = c->h;
    int rc = 0;
    pthread_mutex_lock(&h->ring_mu);
    if (h->nring >= RV_RING_CONNS || atomic_load(&h->ring_stop)) {
        rc = -1;
    } else if (!h->ring_started) {
        if (pthread_create(&h->ring_thread, NULL, ring_main, h) == 0)
            h->ring_started = 1;
        else
            rc = -1;
    }
    if (rc == 0) {
        atomic_store(&c->owner, RING_CONN);
        h->ring[h->nring++] = c;
    }
    pthread_mutex_unlock(&h->ring_mu);
    return rc;
}

static void unlist(hconn *c)
{
    ravel_host *h = c->h;
    pthread_mutex_lock(&h->ring_mu);
    for (int i = 0; i < h->nring; i++) {
        if (h->ring[i] == c) {
            h->ring[i] = h->ring[--h->nring];
            break;
        }
    }
    pthread_mutex_unlock(&h->ring_mu);
    wake_server(h);
}

int rv_ring_switch(hconn *c, int (*write_all)(hconn *, const char *, size_t))
{
    int fd = c->shm_fd;
    c->shm_fd = -1;
    c->s.shm_asked = 0;
    int ok = fd >= 0 && rv_shm_attach(&c->shm, fd) == 0;
    if (fd >= 0)
        close(fd);
    if (ok && (c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        ok = 0;
    if (ok && enlist(c) != 0)
        ok = 0;
    if (!ok) {
        if (c->evfd >= 0)
            close(c->evfd);
        c->evfd = -1;
        rv_shm_unmap(&c->shm);
    }
    Ravelwire__ShmReady m = RAVELWIRE__SHM_READY__INIT;
    m.ok = ok;
    if (rv_encode(&c->s.out, RV_OUT_SHM_READY, &m.base) ||
        write_all(c, c->s.out.data, c->s.out.len) != 0) {
        if (ok) {
            unlist(c);
            rv_shm_unmap(&c->shm);
            close(c->evfd);
            c->evfd = -1;
        }
        return RAVEL_ECONNLOST;
    }
    c->s.out.len = 0;
    if (!ok) {
        rv_host_logf(c->h, "a guest's shared memory refused (%s): it stays on the socket", c->peer);
        return 1;
    }
    c->shm_on = 1;
    c->s.flush = NULL; /* replies go to the ring, between requests */
    rv_host_logf(c->h, "connection in shared memory (%s)", c->peer);
    atomic_store(&c->owner, RING_SERVER);
    wake_server(c->h);
    return RAVEL_OK;
}

/* With c->mu, on the connection's thread: run what the ring server left
 * to it, in chunks, until the next frame is a quick one (returns 0: hand
 * the stream back) or the guest owes bytes or room (1: wait and call
 * again); -1: close the connection. */
static int serve_slow(hconn *c)
{
    rv_ring *rx = &c->shm.rx;
    for (;;) {
        c->wait_room = 0;
        c->slow_seen = rv_ring_avail(rx);
        if (c->s.out.len && (push_out(c), c->s.out.len)) {
            c->wait_room = 1;
            return 1; /* the guest reads its replies first */
        }
        uint64_t avail = rv_ring_avail(rx);
        if (avail == UINT64_MAX) {
            rv_host_logf(c->h, "closing a connection in shared memory: its ring is not a ring");
            return -1;
        }
        if (!c->s.dec.in_payload && !c->s.dec.shift) { /* between frames */
            int slow;
            long n = quick_run(c, &slow);
            if (n < 0)
                return -1;
            if (n > 0 || !slow)
                return 0;
        }
        if (avail == 0) {
            c->slow_seen = 0;
            return 1; /* the rest of the frame is on its way */
        }
        size_t n = avail < SLOW_CHUNK ? (size_t)avail : SLOW_CHUNK;
        if (rv_buf_reserve(&c->scratch, n))
            return -1;
        rv_ring_peek(rx, 0, c->scratch.data, n);
        take(c, n);
        int rc = rv_hsession_feed(&c->s, (const uint8_t *)c->scratch.data, n);
        push_out(c);
        if (rc != RAVEL_OK) {
            rv_host_logf(c->h, "closing a connection: %s", ravel_strerror(rc));
            return -1;
        }
        if (c->s.watch_asked) {
            rv_host_logf(c->h, "closing a connection: a watch asked for on a stream in shared memory");
            return -1;
        }
    }
}

void rv_ring_conn_main(hconn *c)
{
    ravel_host *h = c->h;
    struct pollfd p[3] = {{c->rfd, POLLIN, 0}, {c->evfd, POLLIN, 0}, {h->stop_fd, POLLIN, 0}};
    int wait_ms = 1;
    while (!atomic_load(&c->dead)) {
        int timeout = -1;
        if (atomic_load(&c->owner) == RING_CONN) {
            pthread_mutex_lock(&c->mu);
            int r = serve_slow(c);
            if (r == 0)
                atomic_store(&c->owner, RING_SERVER);
            pthread_mutex_unlock(&c->mu);
            if (r < 0)
                break;
            if (r == 0) {
                atomic_store(&c->want_wake, 0);
                wake_server(h);
                wait_ms = 1;
            } else {
                /* The ring server wakes this thread when the guest has
                 * done what it waits for; the timeout is a safety net,
                 * looking again soon, then less often. */
                atomic_store(&c->want_wake, 1);
                wake_server(h);
                timeout = wait_ms;
                wait_ms = wait_ms * 2 > SLOW_WAIT_MAX_MS ? SLOW_WAIT_MAX_MS : wait_ms * 2;
            }
        }
        int n = poll(p, 3, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (p[2].revents)
            break;
        if (p[0].revents) {
            char b[64];
            ssize_t k = read(c->rfd, b, sizeof b);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                break;
            if (k > 0) {
                rv_host_logf(h, "closing a connection: the guest wrote on its socket after "
                                "moving into shared memory");
                break;
            }
        }
        if (p[1].revents) {
            uint64_t v;
            ssize_t k = read(c->evfd, &v, sizeof v);
            (void)k;
        }
    }
    /* Out of the server's list first: it holds ring_mu through a pass, so
     * once this returns it never touches c again. */
    unlist(c);
    rv_shm_unmap(&c->shm);
    close(c->evfd);
    c->evfd = -1;
    rv_buf_free(&c->scratch);
}

void rv_ring_stop(ravel_host *h)
{
    pthread_mutex_lock(&h->ring_mu);
    atomic_store(&h->ring_stop, 1);
    int started = h->ring_started;
    pthread_mutex_unlock(&h->ring_mu);
    wake_server(h);
    if (started)
        pthread_join(h->ring_thread, NULL);
}
