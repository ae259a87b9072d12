/* The remote handle's stream and its loop thread: the guest session behind
 * a mutex, and one libuv loop thread that watches the stream (an attached
 * fd or pipe pair, or a unix or TCP connection it makes and remakes
 * itself). Synchronous callers from any thread queue their request, write
 * it to a socket themselves and wait for the answer; all requests share
 * one stream, so calls from many threads are pipelined.
 *
 * Why the stream is a uv_poll watch with our own reads and writes rather
 * than a libuv stream: a caller waiting for its answer may read the socket
 * itself for a few microseconds (busy-polling, util/spin.h) instead of
 * sleeping until the loop thread has read the answer and woken it — two
 * thread wake-ups per request, which capped one-at-a-time calls at ~28k/s
 * on the benchmark machine (bench/RESULTS.md). Every read and write of the
 * stream happens with the mutex held, by the loop or by a reading caller,
 * so bytes are fed to the session in the order they came. While a caller
 * reads, the loop stops watching for input (else each answer would wake it
 * for nothing) and a timer or the caller resumes the watch: the timer
 * when no caller reads by then, else the caller once it is done (a caller
 * that waits long for a slow answer is not checked on meanwhile).
 *
 * TLS (a tls: address) is a layer in the same reads and writes: SSL_read
 * and SSL_write on the non-blocking fd, under the mutex like read and
 * write. The handshake runs on the loop thread before the stream is up
 * (RS_HANDSHAKE), driven by the watches and bounded by a timer. A read
 * drains what OpenSSL holds (SSL_has_pending) before anyone sleeps in
 * poll(2), since poll sees only the socket; an SSL_read that must write
 * first, or an SSL_write that must read first, has the watch wait for the
 * other direction (tls_rw). A failure another try would meet again (a
 * certificate refused either way, TLS against plain text) fails what is
 * pending with the reason, retry or not: a guest does not wait silently
 * for ever on a setting only its user can fix.
 *
 * Closing from the handle's own callback (which runs on the loop thread)
 * cannot join that thread: the close is recorded, the loop shuts down once
 * the callback returns, and the loop thread frees the handle itself. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "guest/handle.h"
#include "guest/watch.h"
#include "transport/sock.h"
#include "transport/tls.h"
#include "util/alloc.h"
#include "util/spin.h"
#include "wire/codec.h"

/* How long the loop leaves the input watch off after a caller read, in
 * milliseconds: it notices a closed stream at most this late when no
 * request is pending. */
#define RESUME_MS 2

/* How long a caller sleeps on a ring before it looks at the socket itself
 * (look_at_socket), in milliseconds. */
#define RING_LOOK_MS 100

/* How long a TLS handshake may take before the stream is dropped and
 * tried again, in milliseconds. */
#define HANDSHAKE_MS 10000

static const rv_db_ops remote_ops;

int rv_remote_in_loop(remote *r)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &r->thread);
}

static int stream_live(const remote *r)
{
    return r->state == RS_OPENING || r->state == RS_HANDSHAKE || r->state == RS_UP ||
           r->state == RS_ENDED;
}

void rv_remote_kick(remote *r, unsigned what)
{
    if (r->life == RL_SHUT)
        return; /* the loop is gone, or going: it has nothing left to do */
    if (r->s.out.len)
        what |= RW_FLUSH;
    if (r->ready || r->async_head)
        what |= RW_DELIVER;
    if (r->state == RS_ENDED)
        what |= RW_DROP;
    if (!what || (r->wake_for & what) == what)
        return;
    int idle = r->wake_for == 0;
    r->wake_for |= what;
    if (idle)
        uv_async_send(&r->wake);
}

static void set_why(remote *r, const char *what, const char *detail);

/* With the lock held, any thread: a TLS call failed (ret, with
 * SSL_get_error's err) for good: say why, and end the stream. */
static void tls_failed(remote *r, int ret, int err)
{
    char why[360];
    r->fatal = rv_tls_why(r->ssl, ret, err, "host", why, sizeof why);
    set_why(r, "failed", why);
    r->state = RS_ENDED;
}

/* With the lock held, any thread: SSL_write some of what is queued. As
 * send(2): > 0 bytes written, -1 with errno EAGAIN to wait (for the
 * direction in tls_rw, or writable), or the stream ended (RS_ENDED). */
static ssize_t tls_send(remote *r)
{
    ERR_clear_error();
    int n = SSL_write(r->ssl, r->s.out.data, r->s.out.len > INT_MAX ? INT_MAX : (int)r->s.out.len);
    if (n > 0)
        return n;
    int err = SSL_get_error(r->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        if (err == SSL_ERROR_WANT_READ)
            r->tls_rw = UV_READABLE;
        errno = EAGAIN;
        return -1;
    }
    tls_failed(r, n, err);
    return -1;
}

static void send_some(remote *r);

/* With the lock held, any thread, stream in shared memory: put what is
 * queued into the host's ring as far as it fits, and wake the host. When
 * the ring is full the host rings the doorbell once it has made room, and
 * the loop thread (which always watches the socket then) writes the
 * rest. */
static void ring_send(remote *r)
{
    if (rv_ring_send(&r->shm.tx, &r->s.out))
        rv_ring_notify(&r->shm.tx); /* a host never asks for a doorbell */
    if (!r->s.out.len)
        r->queued = 0;
}

/* With the lock held, any thread: the Hello that turned "shm" on is
 * written; make the rings and offer them, with the memfd. Until the
 * host's ShmReady, nothing more is written. If the rings cannot be made,
 * or the offer does not go out whole at once, the stream stays on the
 * socket (the host serves a guest that named "shm" and offered nothing as
 * any other). */
static void shm_offer(remote *r)
{
    r->s.shm_wanted_now = 0;
    int fd = rv_shm_create(&r->shm);
    if (fd < 0)
        return;
    rv_buf b = {0};
    Ravelwire__ShmOffer m = RAVELWIRE__SHM_OFFER__INIT;
    m.version = RV_SHM_VERSION;
    m.ring_size = RV_SHM_RING;
    long n = rv_encode(&b, RV_IN_SHM_OFFER, &m.base) ? -2 : rv_send_fd(r->wfd, b.data, b.len, fd);
    int e = errno;
    close(fd);
    if (n == (long)b.len) {
        r->shm_state = RSHM_OFFERED;
    } else {
        rv_shm_unmap(&r->shm);
        if (n > 0 || (n == -1 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR)) {
            r->write_error = n > 0 ? EPIPE : e; /* half a frame: the stream is no good */
            r->state = RS_ENDED;
        }
    }
    rv_buf_free(&b);
}

static void watch(remote *r);

/* With the lock held: the host answered the offer. In the rings the loop
 * must watch the socket from now on whatever a caller does (a caller
 * asleep on the ring sees the stream's end only through the loop), so a
 * pause of the input watch, made while a caller read the socket, ends. */
static void shm_answered(remote *r)
{
    if (r->s.shm_ready > 0) {
        r->shm_state = RSHM_ON;
        r->input = RI_WATCHED;
        if (rv_remote_in_loop(r))
            watch(r);
        else
            rv_remote_kick(r, RW_RESUME);
    } else {
        r->shm_state = RSHM_OFF;
        rv_shm_unmap(&r->shm);
    }
    send_some(r); /* what was held, into the rings or onto the socket */
}

/* With the lock held, any thread: write what is queued, as far as the
 * stream takes it now. Threads other than the loop write only to sockets,
 * with MSG_NOSIGNAL: a write to a pipe whose reader left would raise
 * SIGPIPE in the caller's thread (the loop thread blocks it). A failed
 * write ends the stream. */
static void send_some(remote *r)
{
    if (r->state != RS_UP || (!r->is_socket && !rv_remote_in_loop(r)))
        return;
    if (r->shm_state == RSHM_ON) {
        ring_send(r);
        return;
    }
    if (r->shm_state == RSHM_OFFERED)
        return; /* held until the host's ShmReady */
    while (r->s.out.len) {
        /* Up to the end of the Hello that turned "shm" on: the offer goes
         * there. */
        size_t len = r->s.shm_wanted_now ? r->s.shm_cut : r->s.out.len;
        if (len == 0) {
            shm_offer(r);
            if (r->shm_state != RSHM_OFF || r->state != RS_UP)
                return;
            continue;
        }
        ssize_t n = r->ssl ? tls_send(r)
                    : r->is_socket
                        ? send(r->wfd, r->s.out.data, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : write(r->wfd, r->s.out.data, len);
        if (n < 0 && r->state == RS_ENDED)
            return; /* TLS failed; r->why says how */
        if (n > 0) {
            rv_buf_consume(&r->s.out, (size_t)n);
            if (r->s.shm_wanted_now)
                r->s.shm_cut -= (size_t)n;
            if (!r->s.out.len)
                r->queued = 0;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                r->write_error = n == 0 ? EPIPE : errno;
                r->state = RS_ENDED;
            }
            return;
        }
    }
    if (r->s.shm_wanted_now && r->s.shm_cut == 0)
        shm_offer(r);
}

void rv_remote_send_now(remote *r)
{
    send_some(r);
    rv_remote_kick(r, 0);
}

static void on_poll(uv_poll_t *p, int status, int events);

/* With the lock held, on the loop thread: make the watches match what is
 * wanted — output while bytes wait or a connect is under way, input unless
 * a caller reads. */
static void watch(remote *r)
{
    if (!stream_live(r))
        return;
    /* In shared memory the socket is watched for its end and the
     * doorbell only, always: a caller asleep on the ring cannot see the
     * end, and the host rings when it made room for what waits here. */
    int ring = r->shm_state == RSHM_ON;
    int want_w = r->state == RS_OPENING || (r->state == RS_HANDSHAKE && r->tls_rw == UV_WRITABLE) ||
                 (r->state == RS_UP && !ring && (r->s.out.len || r->tls_rw == UV_WRITABLE));
    int want_r = (r->state == RS_HANDSHAKE && r->tls_rw == UV_READABLE) ||
                 (r->state == RS_UP && (ring || r->input == RI_WATCHED || r->tls_rw == UV_READABLE));
    int rev = want_r ? UV_READABLE : 0, wev = want_w ? UV_WRITABLE : 0;
    if (!r->split) {
        rev |= wev;
        wev = 0;
    }
    if (rev != r->rev) {
        r->rev = rev;
        if (rev)
            uv_poll_start(&r->rpoll, rev, on_poll);
        else
            uv_poll_stop(&r->rpoll);
    }
    if (r->split && wev != r->wev) {
        r->wev = wev;
        if (wev)
            uv_poll_start(&r->wpoll, wev, on_poll);
        else
            uv_poll_stop(&r->wpoll);
    }
}

/* With the lock held, on the loop thread. */
static void set_why(remote *r, const char *what, const char *detail)
{
    snprintf(r->why, sizeof r->why, "%.300s %s%s%s", r->has_addr ? r->addr.text : "the stream", what,
             detail ? ": " : "", detail ? detail : "");
}

static void on_watch_closed(uv_handle_t *h);

/* With the lock held, on the loop thread: end the stream. No thread reads
 * or writes its fds from now on; they are closed with the watches. */
static void drop_locked(remote *r)
{
    if (!r->handles || !stream_live(r))
        return;
    r->state = RS_DROPPING;
    rv_remote_nudge(r);
    uv_close((uv_handle_t *)&r->rpoll, on_watch_closed);
    if (r->split)
        uv_close((uv_handle_t *)&r->wpoll, on_watch_closed);
}

void rv_remote_flush(remote *r)
{
    send_some(r);
    if (r->state == RS_ENDED && (r->write_error || r->ssl)) {
        if (r->write_error)
            set_why(r, "failed", strerror(r->write_error));
        drop_locked(r);
        return;
    }
    watch(r);
}

/* With the lock held: read(2) from the stream, through TLS if it has it.
 * As read(2); a TLS failure ends the stream (RS_ENDED, r->why says how)
 * and gives -1 with errno EPROTO. */
static ssize_t stream_read(remote *r, char *buf, size_t len)
{
    if (!r->ssl)
        return read(r->rfd, buf, len);
    ERR_clear_error();
    int n = SSL_read(r->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(r->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (err == SSL_ERROR_WANT_WRITE)
            r->tls_rw = UV_WRITABLE;
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && (n == 0 || errno == 0))) {
        ERR_clear_error();
        return 0; /* the end, with a close_notify or without */
    }
    if (err == SSL_ERROR_SYSCALL) {
        int e = errno;
        ERR_clear_error();
        errno = e;
        return -1;
    }
    tls_failed(r, n, err);
    errno = EPROTO;
    return -1;
}

/* With the lock held: the first bytes of a plain stream are a TLS alert
 * (0x15, then version 3.x): the host speaks TLS on this port, and refused
 * what we sent. No many-level stream starts so: it would be a frame whose
 * message begins with 0x03, which is not a valid protocol-buffers key. */
static int tls_answer(const remote *r, const char *p, size_t n)
{
    return !r->ssl && !r->rx_any && n >= 3 && (unsigned char)p[0] == RV_TLS_ALERT_BYTE &&
           p[1] == 3 && p[2] <= 4;
}

/* With the lock held, by the loop or a reading caller: read what the
 * stream has now and feed it to the session. Returns 1 when bytes came, 0
 * when none were there, -1 when the stream ended (RS_ENDED, r->why says
 * how). */
static int ring_read(remote *r)
{
    rv_ring *rx = &r->shm.rx;
    int got = 0;
    for (;;) {
        uint64_t avail = rv_ring_avail(rx);
        if (avail == UINT64_MAX) {
            set_why(r, "sent a malformed reply", "its shared-memory ring is not a ring");
            r->state = RS_ENDED;
            return -1;
        }
        if (!avail)
            return got;
        size_t n = avail < sizeof r->rbuf ? (size_t)avail : sizeof r->rbuf;
        rv_ring_peek(rx, 0, r->rbuf, n);
        rv_ring_take(rx, n);
        if (rv_ring_room_wanted(rx))
            rv_ring_poke(&r->shm.tx); /* the host sleeps on the other ring */
        got = 1;
        r->rx_any = 1;
        int rc = rv_gsession_feed(&r->s, (const uint8_t *)r->rbuf, n);
        if (rc) {
            set_why(r, "sent a malformed reply", ravel_strerror(rc));
            r->state = RS_ENDED;
            return -1;
        }
    }
}

/* With the lock held, stream in shared memory: the socket brings only
 * doorbell bytes now; take them. -1 at its end (RS_ENDED). */
static int drain_doorbell(remote *r)
{
    char b[256];
    for (;;) {
        ssize_t n = read(r->rfd, b, sizeof b);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        set_why(r, n == 0 ? "closed the connection" : "failed", n == 0 ? NULL : strerror(errno));
        r->state = RS_ENDED;
        return -1;
    }
}

/* With the lock held, stream in shared memory, by a caller that slept on
 * the ring for a while with nothing coming: is the socket's end there?
 * The loop thread watches for it, and wakes such a caller; this makes
 * sure no caller sleeps through a lost leader if a wake-up went astray. */
static void look_at_socket(remote *r)
{
    char b;
    ssize_t n = recv(r->rfd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        set_why(r, n == 0 ? "closed the connection" : "failed", n == 0 ? NULL : strerror(errno));
        r->state = RS_ENDED;
        rv_remote_kick(r, RW_DROP);
    }
}

static int read_some(remote *r)
{
    if (r->shm_state == RSHM_ON)
        return ring_read(r);
    int got = 0;
    /* TLS gives a record (16 KiB at most) per read: take more of them, and
     * all that OpenSSL holds (read-ahead), which poll(2) would not see. */
    int most = r->ssl ? 16 : 4;
    for (int chunks = 0; chunks < most || (r->ssl && SSL_has_pending(r->ssl)); chunks++) {
        ssize_t n = stream_read(r, r->rbuf, sizeof r->rbuf);
        if (n > 0 && tls_answer(r, r->rbuf, (size_t)n)) {
            set_why(r, "answered in TLS", "the host speaks TLS on this port: connect with tls:HOST:PORT");
            r->fatal = 1;
            r->state = RS_ENDED;
            return -1;
        }
        if (n > 0) {
            got = 1;
            r->rx_any = 1;
            int rc = rv_gsession_feed(&r->s, (const uint8_t *)r->rbuf, (size_t)n);
            if (rc) { /* this stream cannot be trusted further */
                set_why(r, "sent a malformed reply", ravel_strerror(rc));
                r->state = RS_ENDED;
                return -1;
            }
            if (r->shm_state == RSHM_OFFERED && r->s.shm_ready) {
                /* ShmReady is the host's last frame on the socket. */
                shm_answered(r);
                if (r->state != RS_UP)
                    return -1;
                if (r->shm_state == RSHM_ON)
                    return ring_read(r) < 0 ? -1 : 1;
            }
            /* Drained: the socket had less than asked for, or (TLS)
             * OpenSSL holds nothing more, so what is left is in the
             * socket, where poll(2) sees it. */
            if (r->ssl ? !SSL_has_pending(r->ssl) : (size_t)n < sizeof r->rbuf)
                break;
        } else if (n < 0 && errno == EINTR) {
            chunks--;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            if (r->state != RS_ENDED) /* else TLS said why */
                set_why(r, n == 0 ? "closed the connection" : "failed",
                        n == 0 ? NULL : strerror(errno));
            r->state = RS_ENDED;
            return -1;
        }
    }
    return got;
}

/* With the lock held, from a synchronous caller waiting for *done: be the
 * thread that reads the stream until *done — in a loop at first, within
 * the budget, if answers have been coming that fast, then asleep in
 * poll(2) on it — so that the answer wakes this thread directly instead of
 * the loop thread, which would then have to wake this one. Returns 0 when
 * another thread reads the stream or there is none to read: sleep on the
 * condition variable then. */
static int read_until(remote *r, const int *done)
{
    if (r->poller || r->state != RS_UP)
        return 0;
    r->poller = 1;
    if (r->shm_state == RSHM_ON)
        atomic_store(&r->shm.rx.ctl->doorbell, 0); /* this thread reads now */
    /* In shared memory polling costs no system call and a miss only the
     * budget, so it is not made adaptive there: with more processes than
     * CPUs answers often come late, and sleeping after each late one cost
     * M2 (4 processes) two thirds of its gets (bench/RESULTS.md). */
    int spinning = (r->poll_hot || r->shm_state == RSHM_ON) && rv_spin_enter();
    uint64_t start = r->poll_ns ? rv_now_ns() : 0;
    /* The lock is let go between reads: the stream may end meanwhile. */
    while (!*done && r->state == RS_UP) {
        if (read_some(r)) {
            rv_remote_settle(r);
            continue;
        }
        int ring = r->shm_state == RSHM_ON;
        if (spinning && rv_now_ns() - start < r->poll_ns) {
            /* In shared memory, watch the ring without the lock: no
             * system call until the answer is there. (A ring the loop
             * drops meanwhile stays mapped until this caller is done:
             * shm_old.) */
            rv_ring rx = r->shm.rx;
            uint64_t budget = r->poll_ns;
            uv_mutex_unlock(&r->mu);
            do
                rv_cpu_relax();
            while (ring && rv_ring_avail(&rx) == 0 && rv_now_ns() - start < budget);
            uv_mutex_lock(&r->mu);
            continue;
        }
        if (spinning) {
            rv_spin_leave();
            spinning = 0;
        }
        if (r->shm_state == RSHM_ON) {
            /* Asleep on the ring's futex: the host wakes us when it
             * writes, the loop (rv_remote_nudge) when the stream ends or
             * someone else finished our request. */
            rv_ring_ctl *ctl = r->shm.rx.ctl;
            uint32_t seq = atomic_load(&ctl->seq);
            atomic_store(&ctl->sleeping, 1);
            r->ring_blocked = ctl;
            int empty = rv_ring_avail(&r->shm.rx) == 0;
            uv_mutex_unlock(&r->mu);
            if (empty)
                rv_futex_wait_ms(&ctl->seq, seq, RING_LOOK_MS);
            uv_mutex_lock(&r->mu);
            atomic_store(&ctl->sleeping, 0);
            r->ring_blocked = NULL;
            if (r->state == RS_UP && r->shm_state == RSHM_ON && rv_ring_avail(&r->shm.rx) == 0)
                look_at_socket(r);
            continue;
        }
        /* Whoever finishes our request or ends the stream meanwhile nudges
         * us: the nudge stays readable until we drain it, so a poll on an
         * fd number closed and reused since cannot sleep through it. */
        struct pollfd p[2] = {{r->rfd, POLLIN, 0}, {r->nudge_fd, POLLIN, 0}};
        r->blocked = 1;
        uv_mutex_unlock(&r->mu);
        if (poll(p, 2, -1) > 0 && p[1].revents) {
            uint64_t drained;
            ssize_t n = read(r->nudge_fd, &drained, sizeof drained);
            (void)n;
        }
        uv_mutex_lock(&r->mu);
        r->blocked = 0;
    }
    if (spinning)
        rv_spin_leave();
    r->poller = 0;
    if (r->shm_old.hdr)
        rv_shm_unmap(&r->shm_old);
    if (r->shm_state == RSHM_ON && r->state == RS_UP && (r->s.pending_head || r->s.iter_head)) {
        /* Answers are still to come: the loop reads them, at the bell. */
        atomic_store(&r->shm.rx.ctl->doorbell, 1);
        if (rv_ring_avail(&r->shm.rx))
            rv_remote_kick(r, RW_RESUME);
    }
    if (r->poll_ns)
        r->poll_hot = *done && rv_now_ns() - start < r->poll_ns;
    /* The loop stopped watching for input while we read: it must watch
     * again now if anything else is expected or its timer came meanwhile,
     * else its timer will. */
    if (r->input != RI_WATCHED && (r->input == RI_OWED || !*done || r->state == RS_ENDED ||
                                   r->s.pending_head || r->s.iter_head))
        rv_remote_kick(r, RW_RESUME);
    return 1;
}

void rv_remote_await(remote *r, uv_cond_t *cond, const int *done, int may_read)
{
    while (!*done) {
        if (may_read && read_until(r, done))
            continue;
        if (r->input != RI_WATCHED && !r->poller)
            rv_remote_kick(r, RW_RESUME);
        uv_cond_wait(cond, &r->mu);
    }
}

int rv_remote_refused(remote *r, int rc)
{
    if ((rc != RAVEL_ECONNLOST && rc != RAVEL_ETIMEDOUT) || !r->why[0])
        return rc;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ravel_errmsg());
    return rv_err(rc, "%s: %s", msg, r->why);
}

void rv_remote_ring_drain(remote *r)
{
    if (r->shm_state != RSHM_ON || r->state != RS_UP || r->poller)
        return;
    for (;;) {
        if (r->s.pending_head || r->s.iter_head)
            atomic_store(&r->shm.rx.ctl->doorbell, 1);
        int got = read_some(r);
        if (got < 0)
            drop_locked(r);
        if (got <= 0)
            return;
        rv_remote_settle(r);
    }
}

void rv_remote_nudge(remote *r)
{
    if (r->ring_blocked) {
        atomic_fetch_add(&r->ring_blocked->seq, 1);
        rv_futex_wake(&r->ring_blocked->seq);
    }
    if (r->blocked) {
        uint64_t one = 1;
        ssize_t n = write(r->nudge_fd, &one, sizeof one);
        (void)n;
    }
}

static void connect_soon(remote *r);
static void stream_up(remote *r);

static void on_handshake_timeout(uv_timer_t *t)
{
    remote *r = t->data;
    uv_mutex_lock(&r->mu);
    if (r->state == RS_HANDSHAKE) {
        char detail[64];
        snprintf(detail, sizeof detail, "no answer within %d ms", HANDSHAKE_MS);
        set_why(r, "did not finish the TLS handshake", detail);
        drop_locked(r);
    }
    uv_mutex_unlock(&r->mu);
}

/* With the lock held, on the loop thread: take the TLS handshake as far as
 * it goes now. 1 when it is done (the stream may come up), 0 while it
 * waits (watched), 0 too when it failed (the stream is dropped, r->why
 * says why). */
static int handshake(remote *r)
{
    if (!r->ssl) {
        r->ssl = rv_tls_client_ssl(r->tls, r->tls_name, r->rfd);
        if (!r->ssl) {
            set_why(r, "could not start TLS", "out of memory");
            drop_locked(r);
            return 0;
        }
        r->state = RS_HANDSHAKE;
        uv_timer_start(&r->hs_timer, on_handshake_timeout, HANDSHAKE_MS, 0);
    }
    ERR_clear_error();
    int rc = SSL_connect(r->ssl);
    if (rc == 1) {
        r->tls_rw = 0;
        uv_timer_stop(&r->hs_timer);
        return 1;
    }
    int err = SSL_get_error(r->ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        r->tls_rw = err == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE;
        watch(r);
        return 0;
    }
    char why[360];
    r->fatal = rv_tls_why(r->ssl, rc, err, "host", why, sizeof why);
    set_why(r, "failed the TLS handshake", why);
    drop_locked(r);
    return 0;
}

/* The connect timeout (opts.connect_timeout_ms) ran out. With no stream
 * up, what is pending fails, and what comes next fails at once until a
 * stream is up; the search for one (reconnect, election) goes on. With
 * one up whose host has not answered yet (s.host is known after its
 * first reply or Announce), look again later: a Node host says nothing
 * until it replies, and a slow reply is no connect failure; but a peer
 * that accepts and closes at once, or speaks another protocol, must not
 * make requests wait for ever (its streams end unanswered, which does
 * not restart the timeout: arm_give_up). */
static void on_give_up(uv_timer_t *t)
{
    remote *r = t->data;
    uv_mutex_lock(&r->mu);
    if (r->life == RL_OPEN && r->state == RS_UP) {
        if (r->s.host == RV_HOST_UNKNOWN)
            uv_timer_start(&r->give_up, on_give_up, (uint64_t)r->opts.connect_timeout_ms, 0);
    } else if (r->life == RL_OPEN) {
        if (!r->why[0])
            snprintf(r->why, sizeof r->why, "%s: nothing within %d ms",
                     r->has_addr ? r->addr.text : "no stream attached", r->opts.connect_timeout_ms);
        rv_gsession_give_up(&r->s, RAVEL_ETIMEDOUT);
    }
    rv_remote_settle_and_unlock(r);
}

/* On the loop thread, when the handle starts or loses its stream: the
 * connect timeout starts — afresh when the lost stream worked (the host
 * answered on it), else only if it is not running already — unless
 * it ran out already and no stream came since. */
static void arm_give_up(remote *r, int afresh)
{
    if (r->opts.connect_timeout_ms > 0 && !r->s.gave_up &&
        (afresh || !uv_is_active((uv_handle_t *)&r->give_up)))
        uv_timer_start(&r->give_up, on_give_up, (uint64_t)r->opts.connect_timeout_ms, 0);
}

static void on_resume(uv_timer_t *t)
{
    remote *r = t->data;
    uv_mutex_lock(&r->mu);
    if (r->shm_state == RSHM_ON) {
        r->input = RI_WATCHED;
        watch(r);
    } else if (r->input == RI_PAUSED && r->poller) {
        r->input = RI_OWED;
    } else if (r->input != RI_WATCHED) {
        r->input = RI_WATCHED;
        watch(r);
    }
    uv_mutex_unlock(&r->mu);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    remote *r = p->data;
    uv_mutex_lock(&r->mu);
    if (!stream_live(r)) {
        uv_mutex_unlock(&r->mu);
        return;
    }
    if (r->state == RS_OPENING) {
        /* Asked first: libuv reports a failed connect (POLLERR) as
         * UV_EBADF, and only SO_ERROR has its cause (ECONNREFUSED). */
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(r->rfd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            r->connect_error = err;
            set_why(r, "could not be reached", strerror(err));
            drop_locked(r);
            uv_mutex_unlock(&r->mu);
            return;
        }
        if (status == 0) {
            uv_mutex_unlock(&r->mu);
            stream_up(r);
            return;
        }
    }
    if (status < 0) {
        /* libuv says EBADF for an error on the socket (a reset): read what
         * came before it (a TLS alert says why), else say what failed. */
        if (r->state == RS_UP)
            read_some(r);
        else if (r->state == RS_HANDSHAKE)
            handshake(r);
        int err = 0;
        socklen_t len = sizeof err;
        if (stream_live(r) && r->state != RS_ENDED)
            set_why(r, "failed",
                    getsockopt(r->rfd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err
                        ? strerror(err)
                        : uv_strerror(status));
        drop_locked(r);
        rv_remote_settle_and_unlock(r);
        return;
    }
    if (r->state == RS_HANDSHAKE) {
        int done = handshake(r);
        uv_mutex_unlock(&r->mu);
        if (done)
            stream_up(r);
        return;
    }
    /* An SSL call that waited for the other direction can go on now. */
    if (r->tls_rw == UV_WRITABLE && (events & UV_WRITABLE))
        events |= UV_READABLE;
    r->tls_rw = 0;
    if ((events & UV_READABLE) && r->shm_state == RSHM_ON) {
        /* The doorbell, or the end; the ring is read in settling. */
        if (drain_doorbell(r) < 0)
            drop_locked(r);
    } else if ((events & UV_READABLE) && r->poller) {
        /* A caller reads the answers now; don't wake for them. */
        r->input = RI_PAUSED;
        watch(r);
        uv_timer_start(&r->resume, on_resume, RESUME_MS, 0);
    } else if ((events & UV_READABLE) && r->state == RS_UP && read_some(r) < 0) {
        drop_locked(r);
    }
    rv_remote_settle_and_unlock(r);
}

/* The watches are closed: close the fds and find the next stream. */
static void on_watch_closed(uv_handle_t *h)
{
    remote *r = h->data;
    if (--r->handles)
        return;
    uv_mutex_lock(&r->mu);
    uv_timer_stop(&r->hs_timer);
    if (r->ssl) {
        SSL_free(r->ssl); /* no close_notify: the stream is gone or going */
        r->ssl = NULL;
        ERR_clear_error();
    }
    r->tls_rw = 0;
    if (r->shm.hdr) {
        /* A caller that polls or sleeps on the ring may not have seen the
         * end yet: it unmaps the ring when it is done. (If an older one
         * waits for it already, that caller uses the older one.) */
        if (r->poller && !r->shm_old.hdr) {
            r->shm_old = r->shm;
            memset(&r->shm, 0, sizeof r->shm);
        } else {
            rv_shm_unmap(&r->shm);
        }
    }
    r->shm_state = RSHM_OFF;
    if (r->rfd >= 0)
        close(r->rfd);
    if (r->wfd != r->rfd && r->wfd >= 0)
        close(r->wfd);
    r->rfd = r->wfd = -1;
    r->state = RS_NONE;
    int shut = r->life == RL_SHUT;
    /* A stream that brought bytes worked: the next try is soon again. One
     * that ended before any (a host that drops connections at once, at
     * its limit) backs off, and one that failed for good waits longest. */
    if (r->rx_any)
        rv_backoff_reset(&r->backoff);
    if (r->fatal)
        r->backoff.next_ms = r->backoff.max_ms;
    int worked = r->s.host != RV_HOST_UNKNOWN; /* forgotten when lost */
    if (!shut && r->fatal && r->s.retry) {
        r->s.retry = 0; /* fail what is pending, with r->why; keep trying */
        rv_gsession_lost(&r->s);
        r->s.retry = 1;
    } else if (!shut) {
        rv_gsession_lost(&r->s);
    }
    if (!shut)
        arm_give_up(r, worked);
    r->fatal = 0;
    r->rx_any = 0;
    rv_remote_settle_and_unlock(r);
    if (shut)
        return;
    if (r->hooks.lost)
        r->hooks.lost(r, r->hooks.ud);
    else if (r->has_addr && r->opts.retry)
        connect_soon(r);
}

/* On the loop thread: make rfd/wfd the stream and watch them. If they
 * cannot be watched, the stream ends at once, the usual way (closing its
 * fds, with the reason in r->why). Returns whether it is live. */
static int open_stream(remote *r, int rfd, int wfd, const char *failed, int err)
{
    struct stat st;
    int rc = err ? uv_translate_sys_error(err) : 0;
    if (rc == 0 && (fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK) != 0 ||
                    fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK) != 0)) {
        failed = "cannot be used";
        rc = uv_translate_sys_error(errno);
    }
    r->split = rfd != wfd;
    if (rc == 0 && (rc = uv_poll_init(&r->loop, &r->rpoll, rfd)) != 0)
        failed = "cannot be watched";
    if (rc == 0 && r->split && (rc = uv_poll_init(&r->loop, &r->wpoll, wfd)) != 0) {
        failed = "cannot be watched";
        uv_close((uv_handle_t *)&r->rpoll, NULL);
    }
    uv_mutex_lock(&r->mu);
    r->rfd = rfd;
    r->wfd = wfd;
    r->rev = r->wev = 0;
    r->fatal = r->rx_any = r->tls_rw = 0;
    r->write_error = 0;
    r->input = RI_WATCHED;
    r->is_socket = wfd >= 0 && fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
    r->connect_error = err;
    if (rc != 0) {
        set_why(r, failed, uv_strerror(rc));
        /* Closing a stand-in handle ends the stream on the next turn. */
        uv_timer_init(&r->loop, &r->stand_in);
        r->stand_in.data = r;
        r->handles = 1;
        r->state = RS_DROPPING;
        uv_close((uv_handle_t *)&r->stand_in, on_watch_closed);
    } else {
        r->rpoll.data = r;
        r->wpoll.data = r;
        r->handles = r->split ? 2 : 1;
        r->state = RS_OPENING;
        watch(r);
    }
    uv_mutex_unlock(&r->mu);
    return rc == 0;
}

/* On the loop thread: the stream is connected; (re)send what is pending. */
static void stream_up(remote *r)
{
    uv_mutex_lock(&r->mu);
    if (r->state == RS_OPENING && r->tls && !r->ssl && !handshake(r)) {
        uv_mutex_unlock(&r->mu);
        return; /* on_poll goes on with it */
    }
    if (r->state != RS_OPENING && r->state != RS_HANDSHAKE) {
        uv_mutex_unlock(&r->mu);
        return;
    }
    r->state = RS_UP;
    r->s.dialect = r->dialect;
    int domain = 0;
    socklen_t dlen = sizeof domain;
    if (r->opts.shared_memory > 0 && !r->ssl && !r->split && r->dialect == RV_DIALECT_MANY &&
        getsockopt(r->rfd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 && domain == AF_UNIX)
        r->s.ext_wanted |= RV_EXT_SHM;
    else
        r->s.ext_wanted &= ~RV_EXT_SHM;
    int rc = rv_gsession_connected(&r->s);
    r->queued = r->s.reqs.len; /* all pending requests are to be (re)sent */
    if (rc != RAVEL_OK) {
        set_why(r, "could not be used", ravel_strerror(rc));
        drop_locked(r);
    } else {
        rv_remote_flush(r);
    }
    int up = stream_live(r);
    /* A first-generation host is known at once: requests that waited to
     * learn it and need an extension have just failed; deliver them. */
    if (r->s.done || r->s.notify)
        rv_remote_settle_and_unlock(r);
    else
        uv_mutex_unlock(&r->mu);
    if (up && r->hooks.up)
        r->hooks.up(r, r->hooks.ud);
}

void rv_remote_connect(rv_remote *r)
{
    r->dialect = r->addr.dialect;
    int fd = socket(r->addr.is_unix ? AF_UNIX : r->addr.sa.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        open_stream(r, -1, -1, "cannot make a socket for it", errno);
        return;
    }
    int rc;
    if (r->addr.is_unix) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        memcpy(sun.sun_path, r->addr.path, sizeof sun.sun_path);
        rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
    } else {
        rv_tune_socket(fd);
        rc = connect(fd, (const struct sockaddr *)&r->addr.sa,
                     r->addr.sa.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                     : sizeof(struct sockaddr_in6));
    }
    int err = rc == 0 ? 0 : errno;
    int pending = err == EINPROGRESS || err == EINTR;
    if (open_stream(r, fd, fd, "could not be reached", pending ? 0 : err) && !pending)
        stream_up(r);
}

static void on_timer(uv_timer_t *t)
{
    remote *r = t->data;
    if (r->life == RL_OPEN && !r->handles)
        rv_remote_connect(r);
}

/* Back off 1 ms, doubling to 1 s, so a host that is down is not hammered,
 * and one that comes back is found quickly. */
static void connect_soon(remote *r)
{
    uv_timer_start(&r->timer, on_timer, rv_backoff_next(&r->backoff), 0);
}

void rv_remote_adopt(rv_remote *r, int rfd, int wfd)
{
    rv_remote_adopt_dialect(r, rfd, wfd, RV_DIALECT_MANY);
}

void rv_remote_adopt_dialect(rv_remote *r, int rfd, int wfd, int dialect)
{
    r->dialect = dialect;
    rv_tune_socket(rfd);
    if (open_stream(r, rfd, wfd, NULL, 0))
        stream_up(r);
}

void rv_remote_set_address(rv_remote *r, const rv_address *addr)
{
    uv_mutex_lock(&r->mu); /* callers' threads read its text for messages */
    r->addr = *addr;
    uv_mutex_unlock(&r->mu);
}

int rv_remote_connect_error(rv_remote *r)
{
    return r->connect_error;
}

uv_loop_t *rv_remote_loop(rv_remote *r)
{
    return &r->loop;
}

ravel_db *rv_remote_db(rv_remote *r)
{
    return &r->base;
}

/* On the loop thread: fail everything with RAVEL_ECLOSED (callbacks run
 * now) and close the loop's handles, after which uv_run returns. */
static void shutdown_loop(remote *r)
{
    uv_mutex_lock(&r->mu);
    r->life = RL_SHUT;
    uv_mutex_unlock(&r->mu);
    if (r->hooks.shutdown)
        r->hooks.shutdown(r, r->hooks.ud);
    uv_timer_stop(&r->timer);
    uv_timer_stop(&r->give_up);
    uv_mutex_lock(&r->mu);
    drop_locked(r);
    rv_gsession_close(&r->s);
    rv_remote_settle_and_unlock(r);
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_close((uv_handle_t *)&r->resume, NULL);
    uv_close((uv_handle_t *)&r->hs_timer, NULL);
    uv_close((uv_handle_t *)&r->give_up, NULL);
    uv_close((uv_handle_t *)&r->wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    remote *r = a->data;
    uv_mutex_lock(&r->mu);
    unsigned what = r->wake_for;
    r->wake_for = 0;
    if (r->life == RL_CLOSING) {
        uv_mutex_unlock(&r->mu);
        shutdown_loop(r);
        return;
    }
    if (r->state == RS_ENDED)
        drop_locked(r);
    if ((what & RW_RESUME) && r->input != RI_WATCHED) {
        if (!r->poller) {
            r->input = RI_WATCHED;
        } else if (r->input == RI_OWED) {
            /* Another caller reads by now (one-at-a-time calls): look
             * again in a while rather than at the end of every call. */
            r->input = RI_PAUSED;
            uv_timer_start(&r->resume, on_resume, RESUME_MS, 0);
        }
        watch(r);
    }
    if (r->shm_state == RSHM_ON && stream_live(r))
        watch(r); /* the rings: always watched (shm_answered) */
    int rfd = r->attach_rfd, wfd = r->attach_wfd;
    r->dialect = RV_DIALECT_MANY;
    r->attach_rfd = r->attach_wfd = -1;
    uv_mutex_unlock(&r->mu);
    if (rfd >= 0)
        rv_remote_adopt(r, rfd, wfd);
    uv_mutex_lock(&r->mu);
    rv_remote_settle_and_unlock(r);
}

/* Drop one reference: the handle holds one, each open iterator one (an
 * iterator may outlive its handle until it is freed). */
void rv_remote_unref(remote *r)
{
    uv_mutex_lock(&r->mu);
    int last = --r->refs == 0;
    uv_mutex_unlock(&r->mu);
    if (!last)
        return;
    /* Snapshots the caller did not release before closing. */
    while (r->snaps) {
        ravel_snapshot *sn = r->snaps;
        r->snaps = sn->next;
        free(sn);
    }
    rv_gsession_free(&r->s);
    uv_mutex_destroy(&r->mu);
    free(r);
}

/* The handle's part of the close, once its loop thread has ended. */
static void remote_free(remote *r)
{
    uv_loop_close(&r->loop);
    if (r->attach_rfd >= 0) {
        close(r->attach_rfd);
        if (r->attach_wfd != r->attach_rfd)
            close(r->attach_wfd);
    }
    close(r->nudge_fd);
    SSL_CTX_free(r->tls);
    r->tls = NULL;
    void (*released)(void *) = r->hooks.released;
    void *ud = r->hooks.ud;
    rv_remote_unref(r);
    if (released)
        released(ud);
}

static void loop_main(void *arg)
{
    remote *r = arg;
    /* A peer that went away must give EPIPE, not kill the process: the
     * signal is thread-directed, so blocking it here covers every write. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    if (r->initial_fd < 0)
        arm_give_up(r, 0);
    if (r->initial_fd >= 0)
        rv_remote_adopt_dialect(r, r->initial_fd, r->initial_fd, r->addr.dialect);
    else if (r->has_addr && !r->hooks.lost)
        rv_remote_connect(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    /* Closed from one of its own callbacks: nobody joins this thread. */
    if (r->close_in_loop) {
        pthread_detach(pthread_self());
        remote_free(r);
    }
}

static void r_close(ravel_db *d)
{
    remote *r = (remote *)d;
    int in_loop = rv_remote_in_loop(r);
    uv_mutex_lock(&r->mu);
    if (r->life == RL_OPEN) {
        r->life = RL_CLOSING;
        r->close_in_loop = in_loop;
        rv_remote_kick(r, RW_CLOSE);
    }
    uv_mutex_unlock(&r->mu);
    if (in_loop)
        return; /* the loop finishes the close once this callback returns */
    uv_thread_join(&r->thread);
    remote_free(r);
}

static int r_role(ravel_db *d)
{
    (void)d;
    return RAVEL_ROLE_REMOTE;
}

/* A watch, and the change log, go over streams of their own to the same
 * address (guest/watch.c). */
static int r_watch(ravel_db *d, const ravel_watch_options *o, ravel_watch **out)
{
    rv_remote *r = (rv_remote *)d;
    if (!r->has_addr)
        return rv_err(RAVEL_ENOTSUP, "a watch needs the host's address: this handle was given "
                                     "its stream");
    return rv_sockwatch_new(&r->addr, o, out);
}

static int r_changelog(ravel_db *d, const ravel_changelog *set, ravel_changelog *out)
{
    rv_remote *r = (rv_remote *)d;
    if (!r->has_addr)
        return rv_err(RAVEL_ENOTSUP, "the change log needs the host's address: this handle was "
                                     "given its stream");
    return rv_sock_changelog(&r->addr, r->opts.connect_timeout_ms, set, out);
}

static const rv_db_ops remote_ops = {
    .submit = rv_remote_submit,
    .wait = rv_remote_wait,
    .iter_new = rv_remote_iter_new,
    .snapshot_release = rv_remote_snapshot_release,
    .role = r_role,
    .close = r_close,
    .watch = r_watch,
    .changelog = r_changelog,
};

/* rv_remote_new, with TLS on the connections it makes when tls is set
 * (the handle owns it from here, also on failure). */
static int remote_new(rv_remote **out, const ravel_options *opts, int retry, const rv_address *addr,
                      const rv_remote_hooks *hooks, int initial_fd, SSL_CTX *tls)
{
    remote *r = rv_calloc(1, sizeof *r);
    if (!r) {
        SSL_CTX_free(tls);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    r->tls = tls;
    if (tls)
        snprintf(r->tls_name, sizeof r->tls_name, "%s",
                 opts && opts->tls_server_name ? opts->tls_server_name
                 : addr && addr->host[0]       ? addr->host
                                               : "127.0.0.1");
    r->base.ops = &remote_ops;
    if (opts)
        r->opts = *opts;
    else
        ravel_options_init(&r->opts);
    r->opts.retry = retry;
    if (addr) {
        r->has_addr = 1;
        r->addr = *addr;
    }
    if (hooks)
        r->hooks = *hooks;
    r->initial_fd = initial_fd;
    r->rfd = r->wfd = -1;
    r->poll_ns = rv_spin_budget_ns(r->opts.busy_poll_us);
    r->poll_hot = r->poll_ns != 0;
    r->attach_rfd = r->attach_wfd = -1;
    rv_backoff_init(&r->backoff, 1, 1000);
    r->refs = 1;
    rv_gsession_init(&r->s, retry, r->opts.max_frame, r->opts.max_pending);
    /* Someone always looks for the next stream: requests made meanwhile
     * wait for it even with retry off. */
    r->s.queue_when_lost = hooks && hooks->lost;
    r->nudge_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = r->nudge_fd < 0 ? uv_translate_sys_error(errno) : uv_loop_init(&r->loop);
    if (rc == 0) {
        uv_mutex_init(&r->mu);
        uv_async_init(&r->loop, &r->wake, on_wake);
        r->wake.data = r;
        uv_timer_init(&r->loop, &r->timer);
        r->timer.data = r;
        uv_timer_init(&r->loop, &r->resume);
        r->resume.data = r;
        uv_timer_init(&r->loop, &r->hs_timer);
        r->hs_timer.data = r;
        uv_timer_init(&r->loop, &r->give_up);
        r->give_up.data = r;
        /* Hooks may run as soon as the thread starts: the caller's pointer
         * must be set by then. */
        *out = r;
        rc = uv_thread_create(&r->thread, loop_main, r);
        if (rc != 0) {
            uv_close((uv_handle_t *)&r->wake, NULL);
            uv_close((uv_handle_t *)&r->timer, NULL);
            uv_close((uv_handle_t *)&r->resume, NULL);
            uv_close((uv_handle_t *)&r->hs_timer, NULL);
            uv_close((uv_handle_t *)&r->give_up, NULL);
            uv_run(&r->loop, UV_RUN_DEFAULT);
            uv_loop_close(&r->loop);
            uv_mutex_destroy(&r->mu);
        }
    }
    if (rc != 0) {
        *out = NULL;
        if (r->nudge_fd >= 0)
            close(r->nudge_fd);
        rv_gsession_free(&r->s);
        SSL_CTX_free(r->tls);
        free(r);
        return rv_err(RAVEL_EIO, "cannot start the guest's I/O thread: %s", uv_strerror(rc));
    }
    return RAVEL_OK;
}

int rv_remote_new(rv_remote **out, const ravel_options *opts, int retry, const rv_address *addr,
                  const rv_remote_hooks *hooks, int initial_fd)
{
    return remote_new(out, opts, retry, addr, hooks, initial_fd, NULL);
}

int ravel_guest_new(ravel_db **out, const ravel_options *opts)
{
    if (!out)
        return rv_err(RAVEL_EINVAL, "result pointer is NULL");
    *out = NULL;
    remote *r;
    int rc = rv_remote_new(&r, opts, opts && opts->retry > 0, NULL, NULL, -1);
    if (rc == RAVEL_OK)
        *out = &r->base;
    return rc;
}

int ravel_connect(ravel_db **out, const char *address, const ravel_options *opts)
{
    if (!out)
        return rv_err(RAVEL_EINVAL, "result pointer is NULL");
    *out = NULL;
    rv_address a;
    int rc = rv_address_parse(&a, address);
    if (rc)
        return rc;
    SSL_CTX *tls = NULL;
    int wants_tls = opts && (opts->tls_ca_file || opts->tls_cert_file || opts->tls_key_file ||
                             opts->tls_server_name);
    if (wants_tls && !a.is_tls)
        return rv_err(RAVEL_EADDR,
                      "address %s is plain text, but TLS options are set: use tls:HOST:PORT",
                      address);
    if (a.is_tls) {
        ravel_options dflt;
        ravel_options_init(&dflt);
        if ((rc = rv_tls_client_ctx(&tls, opts ? opts : &dflt)) != RAVEL_OK)
            return rc;
    }
    remote *r;
    rc = remote_new(&r, opts, !opts || opts->retry != 0, &a, NULL, -1, tls);
    if (rc == RAVEL_OK)
        *out = &r->base;
    return rc;
}

int ravel_guest_attach_fd(ravel_db *db, int read_fd, int write_fd)
{
    if (!db || db->ops != &remote_ops || read_fd < 0 || write_fd < 0)
        return rv_err(RAVEL_EINVAL, "not a remote handle, or a negative fd");
    remote *r = (remote *)db;
    uv_mutex_lock(&r->mu);
    int busy = r->state != RS_NONE || r->attach_rfd >= 0 || r->has_addr || r->life != RL_OPEN;
    if (!busy) {
        r->attach_rfd = read_fd;
        r->attach_wfd = write_fd;
        rv_remote_kick(r, RW_ATTACH);
    }
    uv_mutex_unlock(&r->mu);
    if (busy)
        return rv_err(RAVEL_EINVAL, "a stream is already attached (or the handle connects itself)");
    return RAVEL_OK;
}

int ravel_guest_connected(ravel_db *db)
{
    if (!db || db->ops != &remote_ops)
        return 0;
    remote *r = (remote *)db;
    uv_mutex_lock(&r->mu);
    /* Attached from the moment it is up until it is fully dropped (and a
     * new one may be attached). */
    int up = r->state == RS_UP || r->state == RS_ENDED || r->state == RS_DROPPING;
    uv_mutex_unlock(&r->mu);
    return up;
}
