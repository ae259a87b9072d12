/* A remote handle: the guest session behind a mutex, and one libuv loop
 * thread that moves its bytes over a stream (an attached fd, or a unix or
 * TCP connection it makes and remakes itself). Synchronous calls from any
 * thread queue their request and sleep on a condition variable; all
 * requests share one stream, so calls from many threads are pipelined. */
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "error.h"
#include "guest/remote.h"
#include "guest/session.h"

enum { RK_DONE, RK_VALUE, RK_VALUES };

typedef struct rreq {
    rv_greq g;
    int kind;
    int sync;
    union {
        ravel_done_cb done;
        ravel_value_cb value;
        ravel_values_cb values;
    } cb;
    void *ud;
    /* synchronous callers */
    uv_cond_t cond;
    int finished;
    char **val;
    size_t *vlen;
    size_t n;
    char **vals;
    size_t *vlens;
    int status;
    char *errtext;    /* words for a failure, malloc'ed by describe() */
} rreq;

typedef struct rv_remote remote;

typedef struct riter {
    ravel_iter base;
    rv_giter g;
    remote *r;          /* NULL once the handle is closed */
    uv_cond_t cond;
    int waiting;        /* a synchronous next sleeps on cond */
    ravel_entry_cb cb;  /* an asynchronous next is outstanding */
    void *ud;
    int ready;          /* on r->ready */
    struct riter *ready_next;
} riter;

struct rv_remote {
    ravel_db base;
    ravel_options opts;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_timer_t timer;
    uv_mutex_t mu; /* guards everything below that user threads touch */
    rv_gsession s;
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_handle_t handle;
        uv_stream_t stream;
    } in;
    uv_pipe_t out;
    int split;
    int handles;      /* stream handles open */
    int up;           /* stream attached and usable */
    uv_connect_t creq;
    rv_buf wbuf;
    uv_write_t wreq;
    int writing;
    char rbuf[64 << 10];
    int attach_rfd, attach_wfd; /* an attach waiting for the loop */
    int wake_pending;
    int closing, shut;
    int has_addr;
    rv_address addr;
    uint64_t backoff_ms;
    riter *ready;     /* asynchronous nexts to serve on the loop */
    int direct_fd;    /* the stream's socket, for writes from any thread
                       * under mu; -1 when not a socket or not up */
    char why[700];    /* how the last stream ended, for error messages */
    rv_remote_hooks hooks; /* party mode: who finds the next stream */
    int initial_fd;   /* adopted when the loop starts */
};

static const rv_db_ops remote_ops;

static int on_loop_thread(remote *r)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &r->thread);
}

/* With the lock held: have the loop send what is queued. */
static void kick(remote *r)
{
    if (!r->wake_pending && (r->s.out.len || r->ready)) {
        r->wake_pending = 1;
        uv_async_send(&r->wake);
    }
}

/* With the lock held, from a thread that is about to wait for the answer:
 * write to the socket itself when the loop has no write under way, which
 * saves a thread hand-off per request; what does not fit goes to the loop.
 * (Asynchronous requests leave it to the loop, which batches them.) */
static void kick_now(remote *r)
{
    if (r->direct_fd >= 0 && !r->writing && r->s.out.len) {
        ssize_t n = send(r->direct_fd, r->s.out.data, r->s.out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            rv_buf_consume(&r->s.out, (size_t)n);
    }
    kick(r);
}

static uv_stream_t *wstream(remote *r)
{
    return r->split ? (uv_stream_t *)&r->out : &r->in.stream;
}

static void drop_stream(remote *r);
static void on_write(uv_write_t *req, int status);

/* With the lock held, on the loop thread. */
static void flush(remote *r)
{
    if (!r->up || r->writing || !r->s.out.len)
        return;
    rv_buf_swap(&r->s.out, &r->wbuf);
    uv_buf_t b = uv_buf_init(r->wbuf.data, (unsigned)r->wbuf.len);
    r->wreq.data = r;
    if (uv_write(&r->wreq, wstream(r), &b, 1, on_write) == 0)
        r->writing = 1;
    else
        r->wbuf.len = 0; /* the stream is failing; its end resends */
}

static void on_write(uv_write_t *req, int status)
{
    remote *r = req->data;
    uv_mutex_lock(&r->mu);
    r->writing = 0;
    r->wbuf.len = 0;
    if (status == 0)
        flush(r);
    uv_mutex_unlock(&r->mu);
    if (status < 0)
        drop_stream(r);
}

/* Words for a failed request (into q->errtext): the code, and what the
 * host replied or why the stream ended. With the lock held. */
static void describe(const remote *r, rreq *q, int status)
{
    const char *wire = NULL;
    if (q->g.reply && q->kind == RK_VALUES)
        wire = ((Ravelwire__GetManyCallback *)q->g.reply)->error;
    else if (q->g.reply)
        wire = ((Ravelwire__Callback *)q->g.reply)->error;
    const char *detail = wire ? wire : status == RAVEL_ECONNLOST && r->why[0] ? r->why : NULL;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s%s%s", ravel_strerror(status), detail ? ": " : "",
             wire ? "host replied " : "", detail ? detail : "");
    free(q->errtext);
    q->errtext = strdup(buf);
}

static void fail_with(rreq *q, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_with(rreq *q, int status, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    q->status = status;
    free(q->errtext);
    q->errtext = strdup(buf);
}

static const char *errtext(const rreq *q)
{
    return q->errtext ? q->errtext : ravel_strerror(q->status);
}

/* With the lock held, on the loop thread. */
static void set_why(remote *r, const char *what, const char *detail)
{
    snprintf(r->why, sizeof r->why, "%s %s%s%s", r->has_addr ? r->addr.text : "the stream", what,
             detail ? ": " : "", detail ? detail : "");
}

static void fill_sync(remote *r, rreq *q)
{
    q->status = q->g.status;
    if (q->status != RAVEL_OK) {
        describe(r, q, q->status);
        return;
    }
    if (q->kind == RK_VALUE) {
        Ravelwire__Callback *m = (Ravelwire__Callback *)q->g.reply;
        size_t len = m && m->has_value ? m->value.len : 0;
        char *p = malloc(len + 1);
        if (!p) {
            fail_with(q, RAVEL_ENOMEM, "out of memory");
            return;
        }
        if (len)
            memcpy(p, m->value.data, len);
        p[len] = '\0';
        *q->val = p;
        *q->vlen = len;
    } else if (q->kind == RK_VALUES) {
        Ravelwire__GetManyCallback *m = (Ravelwire__GetManyCallback *)q->g.reply;
        if (m->n_values != q->n) {
            fail_with(q, RAVEL_EPROTO, "host answered %zu values for %zu keys", m->n_values, q->n);
            return;
        }
        for (size_t i = 0; i < q->n; i++) {
            if (!m->values[i]->has_value)
                continue;
            size_t len = m->values[i]->value.len;
            q->vals[i] = malloc(len + 1);
            if (!q->vals[i]) {
                for (size_t j = 0; j < i; j++) {
                    free(q->vals[j]);
                    q->vals[j] = NULL;
                }
                fail_with(q, RAVEL_ENOMEM, "out of memory");
                return;
            }
            if (len)
                memcpy(q->vals[i], m->values[i]->value.data, len);
            q->vals[i][len] = '\0';
            q->vlens[i] = len;
        }
    }
}

/* Without the lock; errtext was filled by describe() under it. */
static void run_async(rreq *q)
{
    int st = q->g.status;
    ProtobufCMessage *reply = q->g.reply;
    if (st != RAVEL_OK)
        rv_err(st, "%s", errtext(q));
    if (q->kind == RK_DONE) {
        q->cb.done(q->ud, st);
    } else if (q->kind == RK_VALUE) {
        Ravelwire__Callback *m = (Ravelwire__Callback *)reply;
        if (st == RAVEL_OK && m && m->has_value)
            q->cb.value(q->ud, st, (const char *)m->value.data, m->value.len);
        else
            q->cb.value(q->ud, st, st == RAVEL_OK ? "" : NULL, 0);
    } else {
        Ravelwire__GetManyCallback *m = (Ravelwire__GetManyCallback *)reply;
        if (st == RAVEL_OK && m->n_values != q->n)
            st = rv_err(RAVEL_EPROTO, "host answered %zu values for %zu keys", m->n_values, q->n);
        if (st != RAVEL_OK) {
            q->cb.values(q->ud, st, 0, NULL, NULL);
        } else {
            const char **vals = calloc(q->n + 1, sizeof *vals);
            size_t *lens = calloc(q->n + 1, sizeof *lens);
            if (!vals || !lens) {
                q->cb.values(q->ud, rv_err(RAVEL_ENOMEM, "out of memory"), 0, NULL, NULL);
            } else {
                for (size_t i = 0; i < q->n; i++) {
                    if (m->values[i]->has_value) {
                        vals[i] = (const char *)m->values[i]->value.data;
                        lens[i] = m->values[i]->value.len;
                        if (!vals[i])
                            vals[i] = "";
                    }
                }
                q->cb.values(q->ud, st, q->n, vals, lens);
            }
            free(vals);
            free(lens);
        }
    }
    if (reply)
        protobuf_c_message_free_unpacked(reply, NULL);
    rv_buf_free(&q->g.frame);
    free(q->errtext);
    free(q);
}

/* Hand asynchronous nexts the entry (or end, or error) that is there for
 * them, one at a time with the lock taken anew, so a callback may free any
 * iterator, or ask for the next entry. Iterators still waiting for data
 * are served when the session has news for them. */
static void serve_ready(remote *r)
{
    for (;;) {
        uv_mutex_lock(&r->mu);
        riter *ri;
        int rc = RV_WAIT;
        while ((ri = r->ready) != NULL) {
            r->ready = ri->ready_next;
            ri->ready = 0;
            rc = rv_giter_take(&r->s, &ri->g);
            if (rc != RV_WAIT)
                break;
        }
        ravel_entry_cb cb = ri ? ri->cb : NULL;
        void *ud = ri ? ri->ud : NULL;
        if (ri)
            ri->cb = NULL;
        flush(r); /* acknowledgements the takes produced */
        uv_mutex_unlock(&r->mu);
        if (!ri)
            return;
        rv_giter *g = &ri->g;
        if (rc == RAVEL_OK)
            cb(ud, RAVEL_OK, g->user_keys ? g->cur_key.data : NULL, g->user_keys ? g->cur_key.len : 0,
               g->user_values ? g->cur_val.data : NULL, g->user_values ? g->cur_val.len : 0);
        else
            cb(ud, rc, NULL, 0, NULL, 0);
    }
}

/* With the lock held: hand out what the session finished, then unlock and
 * run the asynchronous callbacks (never under the lock: they may call in). */
static void settle_and_unlock(remote *r)
{
    rv_greq *done = r->s.done;
    r->s.done = NULL;
    rreq *async = NULL; /* reversed back into completion order below */
    while (done) {
        rreq *q = (rreq *)done;
        done = done->done_next;
        if (q->sync) {
            fill_sync(r, q);
            if (q->g.reply)
                protobuf_c_message_free_unpacked(q->g.reply, NULL);
            q->g.reply = NULL;
            rv_buf_free(&q->g.frame);
            q->finished = 1;
            uv_cond_signal(&q->cond);
        } else {
            q->status = q->g.status;
            if (q->status != RAVEL_OK)
                describe(r, q, q->status);
            q->g.done_next = (rv_greq *)async;
            async = q;
        }
    }
    for (rv_giter *g = r->s.notify; g;) {
        rv_giter *nx = g->notify_next;
        g->notified = 0;
        g->notify_next = NULL;
        riter *ri = (riter *)((char *)g - offsetof(riter, g));
        if (ri->waiting)
            uv_cond_signal(&ri->cond);
        else if (ri->cb && !ri->ready) {
            ri->ready = 1;
            ri->ready_next = r->ready;
            r->ready = ri;
        }
        g = nx;
    }
    r->s.notify = NULL;
    flush(r);
    uv_mutex_unlock(&r->mu);

    /* Reverse the async list to completion order. */
    rreq *ordered = NULL;
    while (async) {
        rreq *nx = (rreq *)async->g.done_next;
        async->g.done_next = (rv_greq *)ordered;
        ordered = async;
        async = nx;
    }
    while (ordered) {
        rreq *nx = (rreq *)ordered->g.done_next;
        run_async(ordered);
        ordered = nx;
    }
    serve_ready(r);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    remote *r = h->data;
    (void)hint;
    *buf = uv_buf_init(r->rbuf, sizeof r->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    remote *r = st->data;
    if (nread < 0) {
        uv_mutex_lock(&r->mu);
        set_why(r, nread == UV_EOF ? "closed the connection" : "failed",
                nread == UV_EOF ? NULL : uv_strerror((int)nread));
        uv_mutex_unlock(&r->mu);
        drop_stream(r);
        return;
    }
    uv_mutex_lock(&r->mu);
    int rc = rv_gsession_feed(&r->s, (const uint8_t *)buf->base, (size_t)nread);
    if (rc)
        set_why(r, "sent a malformed reply", ravel_strerror(rc));
    settle_and_unlock(r);
    if (rc) /* this stream cannot be trusted further */
        drop_stream(r);
}

static void connect_soon(remote *r);
static int open_fd(uv_loop_t *loop, void *storage, int fd);

static void on_stream_closed(uv_handle_t *h)
{
    remote *r = h->data;
    if (--r->handles)
        return;
    uv_mutex_lock(&r->mu);
    r->up = 0;
    r->writing = 0;
    r->wbuf.len = 0;
    if (!r->shut)
        rv_gsession_lost(&r->s);
    int shut = r->shut;
    settle_and_unlock(r);
    if (shut)
        return;
    if (r->hooks.lost)
        r->hooks.lost(r, r->hooks.ud);
    else if (r->has_addr && r->opts.retry)
        connect_soon(r);
}

static void drop_stream(remote *r)
{
    if (!r->handles || uv_is_closing(&r->in.handle))
        return;
    /* No thread may write to the fd once libuv is about to close it. */
    uv_mutex_lock(&r->mu);
    r->direct_fd = -1;
    uv_mutex_unlock(&r->mu);
    uv_close(&r->in.handle, on_stream_closed);
    if (r->split)
        uv_close((uv_handle_t *)&r->out, on_stream_closed);
}

static void stream_up(remote *r)
{
    uv_os_fd_t fd;
    struct stat st;
    int direct = uv_fileno((uv_handle_t *)wstream(r), &fd) == 0 && fstat(fd, &st) == 0 &&
                 S_ISSOCK(st.st_mode);
    uv_mutex_lock(&r->mu);
    r->up = 1;
    r->direct_fd = direct ? fd : -1;
    int rc = rv_gsession_connected(&r->s);
    flush(r);
    uv_mutex_unlock(&r->mu);
    if (rc == RAVEL_OK)
        rc = uv_read_start(&r->in.stream, on_alloc, on_read);
    if (rc != 0)
        drop_stream(r);
    else if (r->hooks.up)
        r->hooks.up(r, r->hooks.ud);
}

static void on_connect(uv_connect_t *req, int status)
{
    remote *r = req->data;
    if (status < 0 || r->shut) {
        uv_mutex_lock(&r->mu);
        if (status < 0)
            set_why(r, "could not be reached", uv_strerror(status));
        uv_mutex_unlock(&r->mu);
        drop_stream(r);
        return;
    }
    r->backoff_ms = 0;
    if (!r->addr.is_unix)
        uv_tcp_nodelay(&r->in.tcp, 1);
    stream_up(r);
}

void rv_remote_connect(rv_remote *r)
{
    r->split = 0;
    r->handles = 1;
    r->creq.data = r;
    int rc;
    if (r->addr.is_unix) {
        uv_pipe_init(&r->loop, &r->in.pipe, 0);
        r->in.handle.data = r;
        uv_pipe_connect(&r->creq, &r->in.pipe, r->addr.path, on_connect);
        return;
    }
    uv_tcp_init(&r->loop, &r->in.tcp);
    r->in.handle.data = r;
    rc = uv_tcp_connect(&r->creq, &r->in.tcp, (const struct sockaddr *)&r->addr.sa, on_connect);
    if (rc != 0)
        drop_stream(r);
}

static void on_timer(uv_timer_t *t)
{
    remote *r = t->data;
    if (!r->shut && !r->handles)
        rv_remote_connect(r);
}

static void connect_soon(remote *r)
{
    /* Back off 1 ms, doubling to 1 s, so a host that is down is not
     * hammered, and one that comes back is found quickly. */
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 1;
    if (r->backoff_ms > 1000)
        r->backoff_ms = 1000;
    uv_timer_start(&r->timer, on_timer, r->backoff_ms, 0);
}

static int open_fd(uv_loop_t *loop, void *storage, int fd)
{
    if (uv_guess_handle(fd) == UV_TCP) {
        uv_tcp_init(loop, storage);
        int rc = uv_tcp_open(storage, fd);
        if (rc == 0)
            uv_tcp_nodelay(storage, 1);
        return rc;
    }
    uv_pipe_init(loop, storage, 0);
    return uv_pipe_open(storage, fd);
}

void rv_remote_adopt(rv_remote *r, int rfd, int wfd)
{
    r->split = wfd != rfd;
    r->handles = r->split ? 2 : 1;
    int rc = open_fd(&r->loop, &r->in, rfd);
    r->in.handle.data = r;
    if (r->split) {
        uv_pipe_init(&r->loop, &r->out, 0);
        r->out.data = r;
        int rc2 = uv_pipe_open(&r->out, wfd);
        if (rc == 0)
            rc = rc2;
    }
    if (rc == 0)
        stream_up(r);
    else
        drop_stream(r);
}

uv_loop_t *rv_remote_loop(rv_remote *r)
{
    return &r->loop;
}

ravel_db *rv_remote_db(rv_remote *r)
{
    return &r->base;
}

static void shutdown_loop(remote *r)
{
    r->shut = 1;
    if (r->hooks.shutdown)
        r->hooks.shutdown(r, r->hooks.ud);
    uv_timer_stop(&r->timer);
    drop_stream(r);
    uv_mutex_lock(&r->mu);
    rv_gsession_close(&r->s);
    settle_and_unlock(r);
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_close((uv_handle_t *)&r->wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    remote *r = a->data;
    uv_mutex_lock(&r->mu);
    r->wake_pending = 0;
    if (r->closing && !r->shut) {
        uv_mutex_unlock(&r->mu);
        shutdown_loop(r);
        return;
    }
    int rfd = r->attach_rfd, wfd = r->attach_wfd;
    r->attach_rfd = r->attach_wfd = -1;
    uv_mutex_unlock(&r->mu);
    if (rfd >= 0)
        rv_remote_adopt(r, rfd, wfd);
    uv_mutex_lock(&r->mu);
    settle_and_unlock(r);
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
    if (r->initial_fd >= 0)
        rv_remote_adopt(r, r->initial_fd, r->initial_fd);
    else if (r->has_addr && !r->hooks.lost)
        rv_remote_connect(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
}

int rv_remote_new(rv_remote **out, const ravel_options *opts, int retry, const rv_address *addr,
                  const rv_remote_hooks *hooks, int initial_fd)
{
    remote *r = calloc(1, sizeof *r);
    if (!r)
        return rv_err(RAVEL_ENOMEM, "out of memory");
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
    r->direct_fd = -1;
    r->attach_rfd = r->attach_wfd = -1;
    rv_gsession_init(&r->s, retry, r->opts.max_frame, r->opts.max_pending);
    /* Someone always looks for the next stream: requests made meanwhile
     * wait for it even with retry off. */
    r->s.queue_when_lost = hooks && hooks->lost;
    int rc = uv_loop_init(&r->loop);
    if (rc == 0) {
        uv_mutex_init(&r->mu);
        uv_async_init(&r->loop, &r->wake, on_wake);
        r->wake.data = r;
        uv_timer_init(&r->loop, &r->timer);
        r->timer.data = r;
        /* Hooks may run as soon as the thread starts: the caller's pointer
         * must be set by then. */
        *out = r;
        rc = uv_thread_create(&r->thread, loop_main, r);
        if (rc != 0) {
            uv_close((uv_handle_t *)&r->wake, NULL);
            uv_close((uv_handle_t *)&r->timer, NULL);
            uv_run(&r->loop, UV_RUN_DEFAULT);
            uv_loop_close(&r->loop);
            uv_mutex_destroy(&r->mu);
        }
    }
    if (rc != 0) {
        *out = NULL;
        rv_gsession_free(&r->s);
        free(r);
        return rv_err(RAVEL_EIO, "cannot start the guest's I/O thread: %s", uv_strerror(rc));
    }
    return RAVEL_OK;
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
    remote *r;
    rc = rv_remote_new(&r, opts, !opts || opts->retry != 0, &a, NULL, -1);
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
    int busy = r->up || r->attach_rfd >= 0 || r->has_addr || r->closing;
    if (!busy) {
        r->attach_rfd = read_fd;
        r->attach_wfd = write_fd;
        r->wake_pending = 1;
        uv_async_send(&r->wake);
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
    int up = r->up;
    uv_mutex_unlock(&r->mu);
    return up;
}

/* ---- requests ---- */

static int submit(remote *r, rreq *q, uint8_t tag, ProtobufCMessage *msg, uint32_t *id_field)
{
    if (q->sync && on_loop_thread(r))
        return rv_err(RAVEL_EDEADLK, "synchronous call from a callback of the same handle");
    uv_mutex_lock(&r->mu);
    int rc = r->closing ? rv_err(RAVEL_ECLOSED, "the handle is closed")
                        : rv_gsession_submit(&r->s, &q->g, tag, msg, id_field);
    if (rc != RAVEL_OK) {
        uv_mutex_unlock(&r->mu);
        return rc;
    }
    if (!q->sync) {
        kick(r);
        uv_mutex_unlock(&r->mu);
        return RAVEL_OK;
    }
    kick_now(r);
    while (!q->finished)
        uv_cond_wait(&q->cond, &r->mu);
    uv_mutex_unlock(&r->mu);
    if (q->status == RAVEL_OK)
        return RAVEL_OK;
    rc = rv_err(q->status, "%s", errtext(q));
    free(q->errtext);
    return rc;
}

/* Run a request synchronously, with a request record on the stack. */
static int call_sync(remote *r, int kind, uint8_t tag, ProtobufCMessage *msg, uint32_t *id_field,
                     rreq *q)
{
    q->kind = kind;
    q->sync = 1;
    uv_cond_init(&q->cond);
    int rc = submit(r, q, tag, msg, id_field);
    uv_cond_destroy(&q->cond);
    return rc;
}

static int call_async(remote *r, rreq *q, uint8_t tag, ProtobufCMessage *msg, uint32_t *id_field)
{
    int rc = submit(r, q, tag, msg, id_field);
    if (rc != RAVEL_OK)
        free(q);
    return rc;
}

static rreq *new_async(int kind, void *cb, void *ud)
{
    rreq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->kind = kind;
    q->ud = ud;
    if (kind == RK_DONE)
        q->cb.done = (ravel_done_cb)cb;
    else if (kind == RK_VALUE)
        q->cb.value = (ravel_value_cb)cb;
    else
        q->cb.values = (ravel_values_cb)cb;
    return q;
}

#define BYTES(p, n) ((ProtobufCBinaryData){.len = (n), .data = (uint8_t *)(p)})

static void msg_put(Ravelwire__Put *m, const void *key, size_t klen, const void *val, size_t vlen)
{
    ravelwire__put__init(m);
    m->key = BYTES(key, klen);
    m->has_value = 1;
    m->value = BYTES(val, vlen);
}

static int r_put(ravel_db *d, const void *key, size_t klen, const void *val, size_t vlen)
{
    Ravelwire__Put m;
    msg_put(&m, key, klen, val, vlen);
    rreq q = {0};
    return call_sync((remote *)d, RK_DONE, RV_IN_PUT, &m.base, &m.id, &q);
}

static int r_put_async(ravel_db *d, const void *key, size_t klen, const void *val, size_t vlen,
                       ravel_done_cb cb, void *ud)
{
    Ravelwire__Put m;
    msg_put(&m, key, klen, val, vlen);
    rreq *q = new_async(RK_DONE, (void *)cb, ud);
    if (!q)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return call_async((remote *)d, q, RV_IN_PUT, &m.base, &m.id);
}

static int r_get(ravel_db *d, const void *key, size_t klen, char **val, size_t *vlen)
{
    Ravelwire__Get m = RAVELWIRE__GET__INIT;
    m.key = BYTES(key, klen);
    rreq q = {0};
    q.val = val;
    q.vlen = vlen;
    return call_sync((remote *)d, RK_VALUE, RV_IN_GET, &m.base, &m.id, &q);
}

static int r_get_async(ravel_db *d, const void *key, size_t klen, ravel_value_cb cb, void *ud)
{
    Ravelwire__Get m = RAVELWIRE__GET__INIT;
    m.key = BYTES(key, klen);
    rreq *q = new_async(RK_VALUE, (void *)cb, ud);
    if (!q)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return call_async((remote *)d, q, RV_IN_GET, &m.base, &m.id);
}

static int r_del(ravel_db *d, const void *key, size_t klen)
{
    Ravelwire__Delete m = RAVELWIRE__DELETE__INIT;
    m.key = BYTES(key, klen);
    rreq q = {0};
    return call_sync((remote *)d, RK_DONE, RV_IN_DEL, &m.base, &m.id, &q);
}

static int r_del_async(ravel_db *d, const void *key, size_t klen, ravel_done_cb cb, void *ud)
{
    Ravelwire__Delete m = RAVELWIRE__DELETE__INIT;
    m.key = BYTES(key, klen);
    rreq *q = new_async(RK_DONE, (void *)cb, ud);
    if (!q)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return call_async((remote *)d, q, RV_IN_DEL, &m.base, &m.id);
}

/* The Batch message borrows the batch's bytes; ops/opv are caller storage. */
static int msg_batch(Ravelwire__Batch *m, const ravel_batch *b, Ravelwire__Batch__Operation **opp,
                     Ravelwire__Batch__Operation *ops)
{
    ravelwire__batch__init(m);
    for (size_t i = 0; i < b->count; i++) {
        int type;
        const char *k, *v;
        size_t kl, vl;
        rv_batch_op(b, i, &type, &k, &kl, &v, &vl);
        ravelwire__batch__operation__init(&ops[i]);
        ops[i].type = type == RV_OP_PUT ? "put" : "del";
        ops[i].key = BYTES(k, kl);
        if (type == RV_OP_PUT) {
            ops[i].has_value = 1;
            ops[i].value = BYTES(v, vl);
        }
        opp[i] = &ops[i];
    }
    m->n_ops = b->count;
    m->ops = opp;
    return RAVEL_OK;
}

static int r_write_any(ravel_db *d, const ravel_batch *b, ravel_done_cb cb, void *ud)
{
    Ravelwire__Batch__Operation **opp = malloc((b->count + 1) * sizeof *opp);
    Ravelwire__Batch__Operation *ops = malloc((b->count + 1) * sizeof *ops);
    int rc;
    if (!opp || !ops) {
        rc = rv_err(RAVEL_ENOMEM, "out of memory");
    } else {
        Ravelwire__Batch m;
        msg_batch(&m, b, opp, ops);
        if (cb) {
            rreq *q = new_async(RK_DONE, (void *)cb, ud);
            rc = q ? call_async((remote *)d, q, RV_IN_BATCH, &m.base, &m.id)
                   : rv_err(RAVEL_ENOMEM, "out of memory");
        } else {
            rreq q = {0};
            rc = call_sync((remote *)d, RK_DONE, RV_IN_BATCH, &m.base, &m.id, &q);
        }
    }
    free(opp);
    free(ops);
    return rc;
}

static int r_write(ravel_db *d, const ravel_batch *b)
{
    return r_write_any(d, b, NULL, NULL);
}

static int r_write_async(ravel_db *d, const ravel_batch *b, ravel_done_cb cb, void *ud)
{
    return r_write_any(d, b, cb, ud);
}

static void msg_clear(Ravelwire__Clear *m, Ravelwire__Clear__ClearOptions *o, const ravel_range *r)
{
    ravelwire__clear__init(m);
    ravelwire__clear__clear_options__init(o);
#define CB(name)                                  \
    if (r->has_##name) {                          \
        o->has_##name = 1;                        \
        o->name = BYTES(r->name.data, r->name.len); \
    }
    CB(gt) CB(gte) CB(lt) CB(lte)
#undef CB
    o->has_limit = 1;
    o->limit = r->limit < 0 || r->limit > INT32_MAX ? -1 : (int32_t)r->limit;
    o->has_reverse = 1;
    o->reverse = r->reverse != 0;
    m->options = o;
}

static int r_clear(ravel_db *d, const ravel_range *r)
{
    Ravelwire__Clear m;
    Ravelwire__Clear__ClearOptions o;
    msg_clear(&m, &o, r);
    rreq q = {0};
    return call_sync((remote *)d, RK_DONE, RV_IN_CLEAR, &m.base, &m.id, &q);
}

static int r_clear_async(ravel_db *d, const ravel_range *r, ravel_done_cb cb, void *ud)
{
    Ravelwire__Clear m;
    Ravelwire__Clear__ClearOptions o;
    msg_clear(&m, &o, r);
    rreq *q = new_async(RK_DONE, (void *)cb, ud);
    if (!q)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    return call_async((remote *)d, q, RV_IN_CLEAR, &m.base, &m.id);
}

static int r_get_many_any(ravel_db *d, size_t n, const void *const *keys, const size_t *klens,
                          char **vals, size_t *vlens, ravel_values_cb cb, void *ud)
{
    ProtobufCBinaryData *kb = malloc((n + 1) * sizeof *kb);
    if (!kb)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        kb[i] = BYTES(keys[i], klens[i]);
    Ravelwire__GetMany m = RAVELWIRE__GET_MANY__INIT;
    m.n_keys = n;
    m.keys = kb;
    int rc;
    if (cb) {
        rreq *q = new_async(RK_VALUES, (void *)cb, ud);
        if (q)
            q->n = n;
        rc = q ? call_async((remote *)d, q, RV_IN_GET_MANY, &m.base, &m.id)
               : rv_err(RAVEL_ENOMEM, "out of memory");
    } else {
        rreq q = {0};
        q.n = n;
        q.vals = vals;
        q.vlens = vlens;
        rc = call_sync((remote *)d, RK_VALUES, RV_IN_GET_MANY, &m.base, &m.id, &q);
    }
    free(kb);
    return rc;
}

static int r_get_many(ravel_db *d, size_t n, const void *const *keys, const size_t *klens,
                      char **vals, size_t *vlens)
{
    return r_get_many_any(d, n, keys, klens, vals, vlens, NULL, NULL);
}

static int r_get_many_async(ravel_db *d, size_t n, const void *const *keys, const size_t *klens,
                            ravel_values_cb cb, void *ud)
{
    return r_get_many_any(d, n, keys, klens, NULL, NULL, cb, ud);
}

/* ---- iterators ---- */

static const rv_iter_ops riter_ops;

static int r_iter_new(ravel_db *d, const ravel_range *rg, ravel_iter **out)
{
    remote *r = (remote *)d;
    riter *ri = calloc(1, sizeof *ri);
    if (!ri)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    ri->base.ops = &riter_ops;
    ri->r = r;
    uv_cond_init(&ri->cond);
    uv_mutex_lock(&r->mu);
    int rc = r->closing ? rv_err(RAVEL_ECLOSED, "the handle is closed")
                        : rv_giter_open(&r->s, &ri->g, rg);
    if (rc == RAVEL_OK)
        kick(r);
    uv_mutex_unlock(&r->mu);
    if (rc != RAVEL_OK) {
        uv_cond_destroy(&ri->cond);
        free(ri);
        return rc;
    }
    *out = &ri->base;
    return RAVEL_OK;
}

static int ri_next(ravel_iter *i, const char **key, size_t *klen, const char **val, size_t *vlen)
{
    riter *ri = (riter *)i;
    remote *r = ri->r;
    if (!r)
        return rv_err(RAVEL_ECLOSED, "the handle is closed");
    if (on_loop_thread(r))
        return rv_err(RAVEL_EDEADLK, "synchronous call from a callback of the same handle");
    uv_mutex_lock(&r->mu);
    int rc;
    if (ri->cb) {
        rc = rv_err(RAVEL_EINVAL, "an asynchronous next is outstanding on this iterator");
    } else {
        while ((rc = rv_giter_take(&r->s, &ri->g)) == RV_WAIT) {
            ri->waiting = 1;
            kick_now(r);
            uv_cond_wait(&ri->cond, &r->mu);
            ri->waiting = 0;
        }
    }
    kick(r);
    char why[sizeof r->why];
    snprintf(why, sizeof why, "%s", rc == RAVEL_ECONNLOST ? r->why : "");
    uv_mutex_unlock(&r->mu);
    if (rc != RAVEL_OK)
        return rc == RAVEL_END ? rc
                               : rv_err(rc, "iterator failed: %s%s%s", ravel_strerror(rc),
                                        why[0] ? ": " : "", why);
    rv_giter *g = &ri->g;
    *key = g->user_keys ? g->cur_key.data : NULL;
    *klen = g->user_keys ? g->cur_key.len : 0;
    *val = g->user_values ? g->cur_val.data : NULL;
    *vlen = g->user_values ? g->cur_val.len : 0;
    if (*key == NULL && g->user_keys)
        *key = "";
    if (*val == NULL && g->user_values)
        *val = "";
    return RAVEL_OK;
}

static int ri_next_async(ravel_iter *i, ravel_entry_cb cb, void *ud)
{
    riter *ri = (riter *)i;
    remote *r = ri->r;
    if (!r)
        return rv_err(RAVEL_ECLOSED, "the handle is closed");
    uv_mutex_lock(&r->mu);
    int rc = RAVEL_OK;
    if (ri->cb || ri->waiting) {
        rc = rv_err(RAVEL_EINVAL, "a next is already outstanding on this iterator");
    } else {
        ri->cb = cb;
        ri->ud = ud;
        /* Served from the loop thread, so callbacks never nest. */
        if (!ri->ready) {
            ri->ready = 1;
            ri->ready_next = r->ready;
            r->ready = ri;
        }
        kick(r);
    }
    uv_mutex_unlock(&r->mu);
    return rc;
}

static int ri_seek(ravel_iter *i, const void *target, size_t len)
{
    riter *ri = (riter *)i;
    remote *r = ri->r;
    if (!r)
        return rv_err(RAVEL_ECLOSED, "the handle is closed");
    uv_mutex_lock(&r->mu);
    int rc = ri->cb ? rv_err(RAVEL_EINVAL, "an asynchronous next is outstanding")
                    : rv_giter_seek(&r->s, &ri->g, target, len);
    kick(r);
    uv_mutex_unlock(&r->mu);
    return rc;
}

static void ri_free(ravel_iter *i)
{
    riter *ri = (riter *)i;
    remote *r = ri->r;
    ravel_entry_cb cb = NULL;
    void *ud = NULL;
    if (r) {
        uv_mutex_lock(&r->mu);
        cb = ri->cb;
        ud = ri->ud;
        ri->cb = NULL;
        if (ri->ready) {
            riter **pp = &r->ready;
            while (*pp && *pp != ri)
                pp = &(*pp)->ready_next;
            if (*pp)
                *pp = ri->ready_next;
        }
        rv_giter_close(&r->s, &ri->g);
        kick(r);
        uv_mutex_unlock(&r->mu);
    } else {
        rv_giter_release(&ri->g);
    }
    if (cb)
        cb(ud, RAVEL_ECLOSED, NULL, 0, NULL, 0);
    uv_cond_destroy(&ri->cond);
    free(ri);
}

static const rv_iter_ops riter_ops = {
    .next = ri_next,
    .seek = ri_seek,
    .next_async = ri_next_async,
    .free = ri_free,
};

static void r_close(ravel_db *d)
{
    remote *r = (remote *)d;
    uv_mutex_lock(&r->mu);
    r->closing = 1;
    r->wake_pending = 1;
    uv_async_send(&r->wake);
    uv_mutex_unlock(&r->mu);
    uv_thread_join(&r->thread);
    uv_loop_close(&r->loop);
    /* Iterators outlive the handle until the caller frees them. */
    for (rv_giter *g = r->s.iter_head; g; g = g->next)
        ((riter *)((char *)g - offsetof(riter, g)))->r = NULL;
    if (r->attach_rfd >= 0) {
        close(r->attach_rfd);
        if (r->attach_wfd != r->attach_rfd)
            close(r->attach_wfd);
    }
    rv_gsession_free(&r->s);
    rv_buf_free(&r->wbuf);
    uv_mutex_destroy(&r->mu);
    free(r);
}

static int r_role(ravel_db *d)
{
    (void)d;
    return RAVEL_ROLE_REMOTE;
}

static const rv_db_ops remote_ops = {
    .role = r_role,
    .put = r_put,
    .get = r_get,
    .del = r_del,
    .get_many = r_get_many,
    .write = r_write,
    .clear = r_clear,
    .iter_new = r_iter_new,
    .put_async = r_put_async,
    .get_async = r_get_async,
    .del_async = r_del_async,
    .write_async = r_write_async,
    .clear_async = r_clear_async,
    .get_many_async = r_get_many_async,
    .close = r_close,
};
