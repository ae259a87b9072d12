/* The host transport: a thread per connection, doing blocking-style I/O
 * (poll, read, run the requests, write) on its own stream, and one thread
 * that accepts on the listeners.
 *
 * Why not a libuv loop here, as on the guest side: a loop thread plus a
 * worker pool put four thread hand-offs in every request's path (loop ->
 * worker -> loop -> write), which capped one-at-a-time requests at about
 * 13k/s on the benchmark machine (bench/RESULTS.md). With a thread per
 * connection the kernel wakes the one thread that owns the stream, and a
 * slow LevelDB call (a sync write, a compaction stall) still stalls only
 * its own connection. Backpressure is natural: a connection's thread does
 * not read more from a guest until that guest has taken the replies.
 *
 * TLS (transport/tls.h) is a layer in the same thread: the handshake runs
 * first, on the connection's thread, within a deadline (so a client that
 * stalls in it holds only its own thread, and not for long), and then
 * SSL_read and SSL_write take the place of read and write. The session
 * sees the same bytes either way. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db/db.h"
#include "error.h"
#include "host/conn.h"
#include "host/host.h"
#include "host/session.h"
#include "transport/sock.h"
#include "transport/tls.h"
#include "util/alloc.h"
#include "util/spin.h"

void rv_host_logf(ravel_host *h, const char *fmt, ...)
{
    if (!h->opts.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ravel host: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Wait until fd is ready for `events`, the host stops or timeout_ms pass
 * (-1: no timeout): 1 ready, 0 stop, 2 timeout. */
static int wait_fd_for(ravel_host *h, int fd, short events, int timeout_ms)
{
    struct pollfd p[2] = {{fd, events, 0}, {h->stop_fd, POLLIN, 0}};
    for (;;) {
        int n = poll(p, 2, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        if (n == 0)
            return 2;
        if (p[1].revents)
            return 0;
        if (p[0].revents)
            return 1;
    }
}

/* Wait until fd is ready for `events` or the host stops: 1 ready, 0 stop. */
static int wait_fd(ravel_host *h, int fd, short events)
{
    return wait_fd_for(h, fd, events, -1);
}

/* A TLS failure in the middle of a connection, for a verbose host. */
static void tls_log(hconn *c, int ret, int err)
{
    char why[600];
    rv_tls_why(c->ssl, ret, err, "client", why, sizeof why);
    rv_host_logf(c->h, "closing a TLS connection: %s", why);
}

/* read(2) on the stream, through TLS if it has it: > 0 bytes, 0 at the
 * end, -1 with errno (EAGAIN when nothing is there yet: then poll for
 * c->want). */
static ssize_t conn_read(hconn *c, char *buf, size_t n)
{
    c->want = POLLIN;
    if (!c->ssl && c->is_unix)
        return rv_recv_fd(c->rfd, buf, n, &c->shm_fd); /* a ShmOffer's memfd */
    if (!c->ssl)
        return read(c->rfd, buf, n);
    ERR_clear_error();
    int r = SSL_read(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0)
        return r;
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        c->want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && (r == 0 || errno == 0))) {
        ERR_clear_error();
        return 0; /* a close_notify, or the end without one: both end it */
    }
    tls_log(c, r, err);
    errno = EPROTO;
    return -1;
}

/* write(2) on the stream, through TLS if it has it; as conn_read. */
static ssize_t conn_write(hconn *c, const char *p, size_t n)
{
    c->want = POLLOUT;
    if (!c->ssl)
        return c->is_socket ? send(c->wfd, p, n, MSG_NOSIGNAL) : write(c->wfd, p, n);
    ERR_clear_error();
    int w = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (w > 0)
        return w;
    int err = SSL_get_error(c->ssl, w);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        c->want = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    }
    if (err != SSL_ERROR_SYSCALL)
        tls_log(c, w, err);
    ERR_clear_error();
    errno = EPIPE;
    return -1;
}

/* Write all of buf; 0 when done, -1 when the guest is gone or we stop. */
static int write_all(hconn *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = conn_write(c, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(c->h, c->want == POLLIN ? c->rfd : c->wfd, c->want))
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* The session's output passed the high-water mark in the middle of a
 * read: send it before running more requests, so a guest that does not
 * read cannot make us buffer without bound. */
static int conn_flush(void *ud)
{
    hconn *c = ud;
    if (write_all(c, c->s.out.data, c->s.out.len) != 0)
        return -1;
    c->s.out.len = 0;
    return 0;
}

/* Nothing to read: poll for the guest's next request a little while if
 * its last one came that fast, else sleep until it comes. The whole wait
 * counts, polling included: a request that comes only after the polling
 * gave up (often because the guest's thread shares this thread's CPU and
 * could not run while we polled) turns polling off for the next wait.
 * Returns what read() returned, -1 to read again, -2 when the host stops. */
static ssize_t wait_request(hconn *c, char *buf)
{
    uint64_t start = c->poll_ns ? rv_now_ns() : 0;
    if (c->poll_hot && rv_spin_enter()) {
        uint64_t deadline = rv_now_ns() + c->poll_ns;
        ssize_t n;
        do {
            rv_cpu_relax();
            n = conn_read(c, buf, READ_CHUNK);
        } while (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && rv_now_ns() < deadline);
        rv_spin_leave();
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return n;
    }
    if (!wait_fd(c->h, c->want == POLLOUT ? c->wfd : c->rfd, c->want))
        return -2;
    c->poll_hot = c->poll_ns && rv_now_ns() - start < c->poll_ns;
    return -1;
}

/* A line from the session (a hook's rejection), for a verbose host. */
static void conn_log(void *ud, const char *line)
{
    hconn *c = ud;
    rv_host_logf(c->h, "%s", line);
}

/* The TLS handshake, on the connection's thread, within the host's
 * deadline. A client whose first byte is not a TLS handshake record speaks
 * plain text (or nothing at all): it gets a TLS alert, which a ravel guest
 * recognises and reports, and is dropped. 0 when the client may be
 * served, with its access set; -1 when it is refused (logged). */
static int handshake(hconn *c)
{
    ravel_host *h = c->h;
    int limit = h->opts.tls_handshake_timeout_ms > 0 ? h->opts.tls_handshake_timeout_ms
                                                       : DEFAULT_HANDSHAKE_MS;
    uint64_t deadline = rv_now_ns() + (uint64_t)limit * 1000000u;
    static const unsigned char alert[] = {RV_TLS_ALERT_BYTE, 3, 3, 0, 2, 2, SSL_AD_PROTOCOL_VERSION};
    int first = 1;
    for (;;) {
        uint64_t now = rv_now_ns();
        int left = now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
        if (first) {
            /* Before OpenSSL reads anything: what kind of client is it? */
            unsigned char b;
            ssize_t n = recv(c->rfd, &b, 1, MSG_PEEK);
            if (n == 1 && b == RV_TLS_HANDSHAKE_BYTE) {
                first = 0;
                continue;
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                return -1;
            if (n == 1) {
                rv_host_logf(h, "refusing a client that speaks plain text on a TLS listener "
                         "(first byte 0x%02x, not a TLS handshake)", b);
                if (send(c->wfd, alert, sizeof alert, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                    rv_host_logf(h, "could not tell it: %s", strerror(errno));
                return -1;
            }
            int w = left ? wait_fd_for(h, c->rfd, POLLIN, left) : 2;
            if (w == 0)
                return -1;
            if (w == 2) {
                rv_host_logf(h, "dropping a TLS client that sent nothing within %d ms", limit);
                if (send(c->wfd, alert, sizeof alert, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                    rv_host_logf(h, "could not tell it: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        ERR_clear_error();
        int r = SSL_accept(c->ssl);
        if (r == 1)
            break;
        int err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            int w = left ? wait_fd_for(h, err == SSL_ERROR_WANT_READ ? c->rfd : c->wfd,
                                       err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left)
                         : 2;
            if (w == 0)
                return -1;
            if (w == 2) {
                rv_host_logf(h, "dropping a TLS client that did not finish its handshake within %d ms",
                      limit);
                return -1;
            }
            continue;
        }
        char why[700];
        rv_tls_why(c->ssl, r, err, "client", why, sizeof why);
        rv_host_logf(h, "refusing a TLS client: %s", why);
        return -1;
    }
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    char who[400] = "no client certificate";
    if (cert)
        rv_tls_describe_cert(cert, who, sizeof who);
    const rv_tls_rule *rule = h->access.n ? rv_tls_access_find(&h->access, cert) : NULL;
    if (h->access.n && !rule) { /* the handshake checks this; never serve one without */
        rv_host_logf(h, "refusing a TLS client not in the access map: %s", who);
        return -1;
    }
    if (rule && rule->readonly)
        c->opts.readonly = 1;
    rv_host_logf(h, "TLS connection (%s, %s): %s", SSL_get_version(c->ssl),
          c->opts.readonly ? "read-only" : "read-write", who);
    return 0;
}

/* After refusing a client: let our last words (a TLS alert) reach it.
 * Closing with its bytes unread would reset the connection, and a reset
 * may discard the alert before the client reads it; so say we are done
 * (FIN) and read what it still sends, for a little while. */
static void linger(hconn *c, char *buf)
{
    if (!c->is_socket || shutdown(c->wfd, SHUT_WR) != 0)
        return;
    uint64_t deadline = rv_now_ns() + 200 * 1000000u;
    for (size_t total = 0; total < READ_CHUNK;) {
        ssize_t n = read(c->rfd, buf, READ_CHUNK);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            return;
        uint64_t now = rv_now_ns();
        if (now >= deadline || wait_fd_for(c->h, c->rfd, POLLIN,
                                           (int)((deadline - now) / 1000000u) + 1) != 1)
            return;
    }
}

/* Extension "watch": the guest asked for a watch on this stream, which
 * from now on carries only that (docs/protocol-extensions.md). Runs the
 * watch on the served handle and sends each write's changes as one
 * WatchEvent, at most WATCH_WINDOW unacknowledged, reading the guest's
 * acknowledgements in between; returns when the guest goes, the watch
 * ends or the host stops. A guest that does not read holds no more than
 * that window here: the watch itself falls behind, and gets resync. */
#define WATCH_WINDOW 64
#define WATCH_SLICE_MS 50
#define WATCH_WRITE_BYTES (64u << 10)

typedef struct wbatch {
    ravel_change *ch;
    size_t *at;     /* where each change's key starts in bytes */
    size_t cap;
    rv_buf bytes;
} wbatch;

/* Append to out the WatchEvent of the write whose first change is *first:
 * its other changes are read at once (they are there already). The
 * changes' bytes are copied, since the next call may reuse them. */
static int encode_write(ravel_watch *w, uint32_t id, const ravel_change *first, wbatch *b,
                        rv_buf *out, int *wrc)
{
    ravel_change ch = *first;
    size_t n = 0;
    b->bytes.len = 0;
    for (;;) {
        if (n == b->cap) {
            size_t ncap = b->cap ? b->cap * 2 : 16;
            ravel_change *nc = rv_realloc(b->ch, ncap * sizeof *nc);
            if (nc)
                b->ch = nc;
            size_t *na = nc ? rv_realloc(b->at, ncap * sizeof *na) : NULL;
            if (!na)
                return RAVEL_ENOMEM;
            b->at = na;
            b->cap = ncap;
        }
        b->ch[n] = ch;
        b->at[n] = b->bytes.len;
        if (rv_buf_append(&b->bytes, ch.key, ch.klen) || rv_buf_append(&b->bytes, ch.val, ch.vlen))
            return RAVEL_ENOMEM;
        n++;
        if (ch.last || ch.type == RAVEL_CHANGE_RESYNC)
            break;
        if ((*wrc = ravel_watch_next(w, &ch, -1)) != RAVEL_OK)
            return RAVEL_OK;
    }
    for (size_t i = 0; i < n; i++) {
        b->ch[i].key = b->bytes.data + b->at[i];
        b->ch[i].val = b->bytes.data + b->at[i] + b->ch[i].klen;
    }
    if (b->ch[0].type == RAVEL_CHANGE_RESYNC)
        return rv_hsession_watch_event(out, id, RAVEL_OK, b->ch[0].seq, NULL, 0, 1,
                                       b->ch[0].resync_from);
    return rv_hsession_watch_event(out, id, RAVEL_OK, b->ch[0].seq, b->ch, n, 0, 0);
}

static void serve_watch(hconn *c, char *buf)
{
    rv_hsession *s = &c->s;
    ravel_watch_options o;
    ravel_watch_options_init(&o);
    o.range = &s->watch_range.r;
    o.has_from = s->watch_has_from;
    o.from = s->watch_from;
    ravel_watch *w = NULL;
    int rc = ravel_watch_new(c->h->db, &o, &w);
    rv_buf out = {0};
    wbatch b = {0};
    if (rc != RAVEL_OK) {
        if (rv_hsession_watch_event(&out, s->watch_id, rc, 0, NULL, 0, 0, 0) == RAVEL_OK)
            write_all(c, out.data, out.len);
        rv_buf_free(&out);
        return;
    }
    /* Where it starts, so a guest whose stream is cut before the first
     * change still resumes from there. */
    uint64_t sent = 0;
    rc = rv_hsession_watch_event(&out, s->watch_id, RAVEL_OK, w->ops->position(w), NULL, 0, 0, 0);
    if (rc == RAVEL_OK && write_all(c, out.data, out.len) != 0)
        rc = RAVEL_ECONNLOST;
    while (rc == RAVEL_OK) {
        int credit = sent - s->watch_acked < WATCH_WINDOW;
        if (credit) {
            /* Every write that is there already, in one write(2). */
            int wrc = RAVEL_OK, wait = WATCH_SLICE_MS;
            out.len = 0;
            while (rc == RAVEL_OK && sent - s->watch_acked < WATCH_WINDOW &&
                   out.len < WATCH_WRITE_BYTES) {
                ravel_change ch;
                if ((wrc = ravel_watch_next(w, &ch, wait)) != RAVEL_OK)
                    break;
                rc = encode_write(w, s->watch_id, &ch, &b, &out, &wrc);
                if (wrc != RAVEL_OK)
                    break;
                sent++;
                wait = 0;
            }
            if (rc == RAVEL_OK && out.len && write_all(c, out.data, out.len) != 0)
                rc = RAVEL_ECONNLOST;
            if (rc == RAVEL_OK && wrc != RAVEL_OK && wrc != RAVEL_ETIMEDOUT) {
                out.len = 0;
                if (rv_hsession_watch_event(&out, s->watch_id, wrc, 0, NULL, 0, 0, 0) == RAVEL_OK)
                    write_all(c, out.data, out.len);
                break;
            }
        }
        if (rc != RAVEL_OK)
            break;
        /* The guest's acknowledgements, or its going away. */
        ssize_t n = conn_read(c, buf, READ_CHUNK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd_for(c->h, c->want == POLLOUT ? c->wfd : c->rfd, c->want,
                                credit ? 0 : WATCH_SLICE_MS);
            if (r == 0)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        s->out.len = 0;
        rc = rv_hsession_feed(s, (const uint8_t *)buf, (size_t)n);
        if (s->out.len && write_all(c, s->out.data, s->out.len) != 0)
            break;
        s->out.len = 0;
    }
    free(b.ch);
    free(b.at);
    rv_buf_free(&b.bytes);
    rv_buf_free(&out);
    ravel_watch_free(w);
}

static void *conn_main(void *arg)
{
    hconn *c = arg;
    ravel_host *h = c->h;
    /* A pipe whose reader went away must give EPIPE, not kill the
     * process; the signal is thread-directed, so blocking it here covers
     * this thread's writes. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    char *buf = rv_malloc(READ_CHUNK);
    int rc = buf ? 0 : RAVEL_ENOMEM;
    if (rc == 0 && c->ssl && handshake(c) != 0) {
        linger(c, buf);
        rc = RAVEL_EIO;
    }
    /* The session's Announce goes out first, before the guest says
     * anything: a ravel guest learns from it what this host offers. */
    if (rc == 0 && write_all(c, c->s.out.data, c->s.out.len) != 0)
        rc = RAVEL_ECONNLOST;
    c->s.out.len = 0;
    while (rc == 0) {
        ssize_t n = conn_read(c, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            n = wait_request(c, buf);
            if (n == -2)
                break;
            if (n == -1)
                continue;
        }
        if (n <= 0) {
            if (n < 0 && errno != EPROTO) /* EPROTO: conn_read logged it */
                rv_host_logf(h, "read failed: %s", strerror(errno));
            break;
        }
        rc = rv_hsession_feed(&c->s, (const uint8_t *)buf, (size_t)n);
        /* Replies to the requests before a bad frame still go out. */
        if (c->s.out.len && write_all(c, c->s.out.data, c->s.out.len) != 0)
            break;
        c->s.out.len = 0;
        if (rc)
            rv_host_logf(h, "closing a connection: %s", ravel_strerror(rc));
        if (rc == 0 && c->s.watch_asked) {
            serve_watch(c, buf);
            break;
        }
        if (rc == 0 && c->s.shm_asked) {
            int r = rv_ring_switch(c, write_all);
            if (r == RAVEL_OK)
                rv_ring_conn_main(c);
            if (r != 1)
                break;
        }
    }
    free(buf);
    if (c->shm_fd >= 0)
        close(c->shm_fd);
    rv_hsession_free(&c->s);
    if (c->ssl) {
        if (SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl); /* a close_notify, if the stream takes it now */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    close(c->rfd);
    if (c->wfd != c->rfd)
        close(c->wfd);
    rv_host_logf(h, "connection closed (%s)", c->peer);
    pthread_mutex_lock(&h->mu);
    c->finished = 1;
    h->nconns--;
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Join the threads of connections that ended. With h->mu held. */
static void reap(ravel_host *h)
{
    hconn **pp = &h->conns;
    while (*pp) {
        hconn *c = *pp;
        if (c->finished) {
            *pp = c->next;
            pthread_join(c->thread, NULL);
            pthread_mutex_destroy(&c->mu);
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* Who is at the other end of fd, for a log line: a TCP address, a unix
 * peer's pid and uid (SO_PEERCRED: the process that connected), or the
 * fds of a stream that is no socket. */
static void describe_peer(int rfd, int wfd, char *out, size_t size)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    char host[INET6_ADDRSTRLEN] = "?";
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getpeername(rfd, (struct sockaddr *)&sa, &len) != 0) {
        snprintf(out, size, "on fds %d/%d", rfd, wfd);
    } else if (sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, size, "from %s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, size, "from [%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else if (sa.ss_family == AF_UNIX &&
               getsockopt(rfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
        snprintf(out, size, "from pid %d (uid %u)", (int)cred.pid, (unsigned)cred.uid);
    } else {
        snprintf(out, size, "on fd %d", rfd);
    }
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int conn_start(ravel_host *h, int rfd, int wfd, int tls, int dialect)
{
    hconn *c = rv_calloc(1, sizeof *c);
    if (!c)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    c->h = h;
    c->opts = h->opts;
    c->want = POLLIN;
    if (tls && (!(c->ssl = SSL_new(h->tls)) || SSL_set_fd(c->ssl, rfd) != 1)) {
        SSL_free(c->ssl);
        ERR_clear_error();
        free(c);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    if (c->ssl)
        SSL_set_app_data(c->ssl, c->note);
    c->poll_ns = rv_spin_budget_ns(h->opts.busy_poll_us);
    c->poll_hot = c->poll_ns != 0;
    c->rfd = rfd;
    c->wfd = wfd;
    c->shm_fd = c->evfd = -1;
    describe_peer(rfd, wfd, c->peer, sizeof c->peer);
    struct stat st;
    c->is_socket = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
    int domain = 0;
    socklen_t dlen = sizeof domain;
    c->is_unix = rfd == wfd && !tls && dialect == RV_DIALECT_MANY && h->opts.shared_memory &&
                 getsockopt(rfd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 &&
                 domain == AF_UNIX && rv_shm_host_supported() && rv_ring_has_place(h);
    if (set_nonblocking(rfd) || set_nonblocking(wfd)) {
        SSL_free(c->ssl);
        free(c);
        return rv_err(RAVEL_EINVAL, "cannot use fd: %s", strerror(errno));
    }
    if (rv_hsession_init_dialect(&c->s, h->db, &c->opts, dialect) != RAVEL_OK) {
        rv_hsession_free(&c->s);
        SSL_free(c->ssl);
        free(c);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    if (c->is_unix && rv_hsession_offer_shm(&c->s) != RAVEL_OK) {
        rv_hsession_free(&c->s);
        free(c);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->mu, NULL);
    c->s.flush = conn_flush;
    c->s.flush_ud = c;
    if (h->opts.verbose) {
        c->s.log = conn_log;
        c->s.log_ud = c;
    }
    char peer[sizeof c->peer]; /* c may be gone once its thread runs */
    memcpy(peer, c->peer, sizeof peer);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CONN_STACK);
    pthread_mutex_lock(&h->mu);
    reap(h);
    int rc = pthread_create(&c->thread, &attr, conn_main, c);
    if (rc == 0) {
        c->next = h->conns;
        h->conns = c;
        h->nconns++;
    }
    pthread_mutex_unlock(&h->mu);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        rv_hsession_free(&c->s);
        SSL_free(c->ssl);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return rv_err(RAVEL_ENOMEM, "cannot start a connection thread: %s", strerror(rc));
    }
    rv_host_logf(h, "connection opened %s", peer);
    return RAVEL_OK;
}

static void *accept_main(void *arg)
{
    ravel_host *h = arg;
    struct pollfd p[MAX_LISTENERS + 2];
    for (;;) {
        pthread_mutex_lock(&h->mu);
        int n = h->nlisteners;
        int tls[MAX_LISTENERS], dialect[MAX_LISTENERS];
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd){h->listeners[i].fd, POLLIN, 0};
            tls[i] = h->listeners[i].is_tls;
            dialect[i] = h->listeners[i].dialect;
        }
        pthread_mutex_unlock(&h->mu);
        p[n] = (struct pollfd){h->stop_fd, POLLIN, 0};
        p[n + 1] = (struct pollfd){h->wake_fd, POLLIN, 0};
        if (poll(p, (nfds_t)n + 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            rv_host_logf(h, "poll failed: %s", strerror(errno));
            return NULL;
        }
        if (p[n].revents)
            return NULL;
        if (p[n + 1].revents) {
            uint64_t v;
            if (read(h->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                rv_host_logf(h, "wake failed: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            if (!p[i].revents)
                continue;
            int fd = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                    rv_host_logf(h, "accept failed: %s", strerror(errno));
                continue;
            }
            pthread_mutex_lock(&h->mu);
            int open = h->nconns;
            pthread_mutex_unlock(&h->mu);
            if (h->opts.max_connections >= 0 && open >= h->opts.max_connections) {
                /* Refused at once: a flood of connections must not take a
                 * thread each. */
                rv_host_logf(h, "refusing a connection: %d are open, the most this host takes "
                         "(max_connections)", open);
                close(fd);
                continue;
            }
            rv_tune_socket(fd);
            if (conn_start(h, fd, fd, tls[i], dialect[i]) != RAVEL_OK) {
                rv_host_logf(h, "dropping a connection: %s", ravel_errmsg());
                close(fd);
            }
        }
    }
}

void ravel_host_options_init(ravel_host_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_frame = RV_DEFAULT_MAX_FRAME;
    opts->max_iterators = 1000;
    opts->busy_poll_us = RV_BUSY_POLL_DEFAULT_US;
    opts->max_connections = DEFAULT_MAX_CONNECTIONS;
    opts->tls_handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
    opts->shared_memory = 1;
}

int ravel_host_new(ravel_host **out, ravel_db *db, const ravel_host_options *opts)
{
    if (!out || !db)
        return rv_err(RAVEL_EINVAL, "result pointer or database is NULL");
    *out = NULL;
    ravel_host *h = rv_calloc(1, sizeof *h);
    if (!h)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    h->db = db;
    if (opts)
        h->opts = *opts;
    else
        ravel_host_options_init(&h->opts);
    if (!h->opts.max_frame)
        h->opts.max_frame = RV_DEFAULT_MAX_FRAME;
    if (!h->opts.max_iterators)
        h->opts.max_iterators = 1000;
    if (!h->opts.max_connections)
        h->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
    /* The caller's access map need not outlive this call. */
    h->opts.tls_access = NULL;
    int rc = rv_tls_access_parse(&h->access, opts ? opts : &h->opts);
    if (rc == RAVEL_OK && h->opts.tls_cert_file)
        rc = rv_tls_server_ctx(&h->tls, &h->opts, &h->access);
    else if (rc == RAVEL_OK &&
             (h->opts.tls_key_file || h->opts.tls_ca_file || h->access.n))
        rc = rv_err(RAVEL_EINVAL, "tls_key_file, tls_ca_file and tls_access need tls_cert_file");
    if (rc != RAVEL_OK) {
        rv_tls_access_free(&h->access);
        free(h);
        return rc;
    }
    /* The strings are read: they need not outlive this call either. */
    h->opts.tls_cert_file = h->opts.tls_key_file = h->opts.tls_ca_file = NULL;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->ring_mu, NULL);
    h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->stop_fd < 0 || h->wake_fd < 0) {
        int rc = rv_err(RAVEL_EIO, "cannot create an eventfd: %s", strerror(errno));
        if (h->stop_fd >= 0)
            close(h->stop_fd);
        if (h->wake_fd >= 0)
            close(h->wake_fd);
        pthread_mutex_destroy(&h->mu);
        pthread_mutex_destroy(&h->ring_mu);
        SSL_CTX_free(h->tls);
        rv_tls_access_free(&h->access);
        free(h);
        return rc;
    }
    *out = h;
    return RAVEL_OK;
}

int ravel_host_attach_fd(ravel_host *h, int read_fd, int write_fd)
{
    if (!h || read_fd < 0 || write_fd < 0)
        return rv_err(RAVEL_EINVAL, "host is NULL or fd is negative");
    return conn_start(h, read_fd, write_fd, 0, RV_DIALECT_MANY);
}

int ravel_host_listen(ravel_host *h, const char *address)
{
    if (!h)
        return rv_err(RAVEL_EINVAL, "host is NULL");
    rv_address a;
    int rc = rv_address_parse(&a, address);
    if (rc)
        return rc;
    return rv_host_listen_address(h, &a);
}

int rv_host_listen_address(ravel_host *h, const rv_address *a)
{
    pthread_mutex_lock(&h->mu);
    int full = h->nlisteners == MAX_LISTENERS;
    pthread_mutex_unlock(&h->mu);
    if (full)
        return rv_err(RAVEL_EINVAL, "a host listens on at most %d addresses", MAX_LISTENERS);
    if (a->is_tls && !h->tls)
        return rv_err(RAVEL_EINVAL,
                      "cannot listen on %s: TLS needs the host's certificate and key "
                      "(tls_cert_file, tls_key_file)", a->text);
    int fd, port;
    int rc = rv_listen_fd(a, &fd, &port);
    if (rc)
        return rc;
    set_nonblocking(fd);
    pthread_mutex_lock(&h->mu);
    hlistener *l = &h->listeners[h->nlisteners++];
    l->fd = fd;
    l->is_tls = a->is_tls;
    l->dialect = a->dialect;
    l->path[0] = '\0';
    if (a->is_unix)
        memcpy(l->path, a->path, sizeof l->path);
    else
        h->port = port;
    if (!h->acceptor_started) {
        rc = pthread_create(&h->acceptor, NULL, accept_main, h);
        if (rc == 0)
            h->acceptor_started = 1;
    }
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        return rv_err(RAVEL_ENOMEM, "cannot start the accepting thread: %s", strerror(rc));
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0)
        rv_host_logf(h, "wake failed: %s", strerror(errno));
    if (a->is_unix)
        rv_host_logf(h, "listening on %s", a->text);
    else
        rv_host_logf(h, "listening on %s (port %d)", a->text, port);
    return RAVEL_OK;
}

int ravel_host_port(ravel_host *h)
{
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    int port = h->port;
    pthread_mutex_unlock(&h->mu);
    return port;
}

int ravel_host_connections(ravel_host *h)
{
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    int n = h->nconns;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void ravel_host_free(ravel_host *h)
{
    if (!h)
        return;
    /* Every thread polls stop_fd: one write wakes them all, and a request
     * that is running finishes and is answered first. */
    uint64_t one = 1;
    if (write(h->stop_fd, &one, sizeof one) < 0)
        rv_host_logf(h, "stop failed: %s", strerror(errno));
    if (h->acceptor_started)
        pthread_join(h->acceptor, NULL);
    for (int i = 0; i < h->nlisteners; i++) {
        if (h->listeners[i].path[0])
            unlink(h->listeners[i].path);
        close(h->listeners[i].fd);
    }
    pthread_mutex_lock(&h->mu);
    hconn *c = h->conns;
    h->conns = NULL;
    pthread_mutex_unlock(&h->mu);
    while (c) {
        hconn *next = c->next;
        pthread_join(c->thread, NULL);
        pthread_mutex_destroy(&c->mu);
        free(c);
        c = next;
    }
    rv_ring_stop(h);
    pthread_mutex_destroy(&h->ring_mu);
    close(h->stop_fd);
    close(h->wake_fd);
    pthread_mutex_destroy(&h->mu);
    SSL_CTX_free(h->tls);
    rv_tls_access_free(&h->access);
    free(h);
}
