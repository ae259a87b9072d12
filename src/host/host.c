/* The host transport: one libuv loop thread owns the listeners and
 * connections; each connection's requests run on libuv's worker pool, at
 * most one job per connection at a time, so requests of a connection run
 * in order and a slow LevelDB call stalls only its own connection. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "error.h"
#include "host/host.h"
#include "host/session.h"
#include "transport/sock.h"

/* Stop reading from a guest while this much output or input is queued: a
 * guest that does not read cannot make the host buffer without bound. */
#define HIGH_WATER (4u << 20)

typedef struct hconn hconn;
typedef struct hlistener hlistener;

enum { CMD_CONN, CMD_LISTEN, CMD_STOP };

typedef struct hcmd {
    int kind;
    int fd, fd2, is_unix;
    char path[sizeof(((rv_address *)0)->path)];
    struct hcmd *next;
} hcmd;

struct ravel_host {
    ravel_db *db;
    ravel_host_options opts;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_mutex_t mu;      /* guards cmds and nconns */
    hcmd *cmds, **cmds_tail;
    hconn *conns;
    hlistener *listeners;
    int nconns;
    int port;
    int stopping;
    hcmd stop_cmd; /* preallocated: stopping must not need memory */
};

struct hlistener {
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_handle_t handle;
        uv_stream_t stream;
    } u;
    ravel_host *h;
    char path[sizeof(((rv_address *)0)->path)]; /* unix: removed at close */
    hlistener *next;
};

struct hconn {
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_handle_t handle;
        uv_stream_t stream;
    } in;
    uv_pipe_t out;     /* the write side of a pipe pair */
    int split;         /* separate write fd */
    ravel_host *h;
    rv_hsession s;
    rv_buf inbox;      /* read, not yet handed to a job */
    rv_buf work_in;    /* owned by the running job */
    uv_work_t work;
    int busy;
    int feed_rc;
    rv_buf wbuf;       /* being written */
    uv_write_t wreq;
    int writing;
    int reading;
    int closing;       /* no more reads; close once idle */
    int handles;       /* uv handles still open */
    hconn *prev, *next;
};

static void logf_(ravel_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(ravel_host *h, const char *fmt, ...)
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

static uv_stream_t *wstream(hconn *c)
{
    return c->split ? (uv_stream_t *)&c->out : &c->in.stream;
}

static void conn_maybe_finish(hconn *c);
static void conn_schedule(hconn *c);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    hconn *c = hd->data;
    (void)hint;
    if (rv_buf_reserve(&c->inbox, 64 << 10)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(c->inbox.data + c->inbox.len, (unsigned)(c->inbox.cap - c->inbox.len));
}

static void conn_close(hconn *c)
{
    if (!c->closing)
        logf_(c->h, "connection closed");
    c->closing = 1;
    if (c->reading) {
        uv_read_stop(&c->in.stream);
        c->reading = 0;
    }
    conn_maybe_finish(c);
}

static void on_write(uv_write_t *req, int status)
{
    hconn *c = req->data;
    c->writing = 0;
    c->wbuf.len = 0;
    if (status < 0) {
        logf_(c->h, "write failed: %s", uv_strerror(status));
        conn_close(c);
        return;
    }
    if (c->closing) {
        conn_maybe_finish(c);
        return;
    }
    conn_schedule(c);
}

static void conn_flush(hconn *c)
{
    if (c->writing || c->busy || c->s.out.len == 0)
        return;
    rv_buf_swap(&c->s.out, &c->wbuf);
    uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, wstream(c), &b, 1, on_write);
    if (rc < 0) {
        c->wbuf.len = 0;
        conn_close(c);
        return;
    }
    c->writing = 1;
}

static void work_cb(uv_work_t *w)
{
    hconn *c = w->data;
    c->feed_rc = rv_hsession_feed(&c->s, (const uint8_t *)c->work_in.data, c->work_in.len);
    c->work_in.len = 0;
}

static void after_work(uv_work_t *w, int status)
{
    hconn *c = w->data;
    (void)status;
    c->busy = 0;
    if (c->feed_rc) {
        logf_(c->h, "closing a connection: %s", ravel_strerror(c->feed_rc));
        /* Replies to the requests before the bad frame still go out. */
        c->closing = 1;
        if (c->reading) {
            uv_read_stop(&c->in.stream);
            c->reading = 0;
        }
    }
    conn_flush(c);
    if (c->closing)
        conn_maybe_finish(c);
    else
        conn_schedule(c);
}

/* Hand what was read to a job, and start or stop reading to keep both
 * directions under the high-water mark. */
static void conn_schedule(hconn *c)
{
    if (c->closing)
        return;
    conn_flush(c);
    int congested = c->s.out.len + c->wbuf.len > HIGH_WATER;
    if (!c->busy && c->inbox.len && !congested) {
        rv_buf_swap(&c->inbox, &c->work_in);
        c->busy = 1;
        c->work.data = c;
        if (uv_queue_work(&c->h->loop, &c->work, work_cb, after_work) != 0) {
            c->busy = 0;
            conn_close(c);
            return;
        }
    }
    int want_read = !congested && c->inbox.len < HIGH_WATER;
    if (want_read && !c->reading) {
        if (uv_read_start(&c->in.stream, on_alloc, on_read) == 0)
            c->reading = 1;
    } else if (!want_read && c->reading) {
        uv_read_stop(&c->in.stream);
        c->reading = 0;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    hconn *c = st->data;
    (void)buf;
    if (nread < 0) {
        if (nread != UV_EOF)
            logf_(c->h, "read failed: %s", uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    c->inbox.len += (size_t)nread;
    conn_schedule(c);
}

static void on_conn_handle_closed(uv_handle_t *hd)
{
    hconn *c = hd->data;
    if (--c->handles)
        return;
    ravel_host *h = c->h;
    rv_hsession_free(&c->s);
    rv_buf_free(&c->inbox);
    rv_buf_free(&c->work_in);
    rv_buf_free(&c->wbuf);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
    uv_mutex_lock(&h->mu);
    h->nconns--;
    uv_mutex_unlock(&h->mu);
    if (h->stopping && !h->conns && !h->listeners)
        uv_close((uv_handle_t *)&h->wake, NULL);
}

static void conn_maybe_finish(hconn *c)
{
    if (c->busy || c->writing || uv_is_closing(&c->in.handle))
        return;
    /* Output still queued after a protocol error: send it first. */
    if (c->s.out.len && !c->h->stopping && c->feed_rc) {
        conn_flush(c);
        if (c->writing)
            return;
    }
    uv_close(&c->in.handle, on_conn_handle_closed);
    if (c->split)
        uv_close((uv_handle_t *)&c->out, on_conn_handle_closed);
}

static int stream_open(uv_loop_t *loop, void *storage, int fd, int *is_tcp)
{
    *is_tcp = uv_guess_handle(fd) == UV_TCP;
    if (*is_tcp) {
        uv_tcp_t *t = storage;
        uv_tcp_init(loop, t);
        int rc = uv_tcp_open(t, fd);
        if (rc == 0)
            uv_tcp_nodelay(t, 1);
        return rc;
    }
    uv_pipe_t *p = storage;
    uv_pipe_init(loop, p, 0);
    return uv_pipe_open(p, fd);
}

static hconn *conn_new(ravel_host *h)
{
    hconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->h = h;
    rv_hsession_init(&c->s, h->db, &h->opts);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    uv_mutex_lock(&h->mu);
    h->nconns++;
    uv_mutex_unlock(&h->mu);
    return c;
}

/* rc: whether setting up the handles worked. */
static void conn_start(hconn *c, int rc)
{
    if (rc != 0) {
        logf_(c->h, "cannot use a connection: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    logf_(c->h, "connection opened");
    conn_schedule(c);
}

static void conn_add(ravel_host *h, int rfd, int wfd)
{
    hconn *c = conn_new(h);
    if (!c) {
        close(rfd);
        if (wfd != rfd)
            close(wfd);
        return;
    }
    int is_tcp;
    int rc = stream_open(&h->loop, &c->in, rfd, &is_tcp);
    c->in.handle.data = c;
    c->handles = 1;
    if (wfd != rfd) {
        c->split = 1;
        uv_pipe_init(&h->loop, &c->out, 0);
        c->out.data = c;
        c->handles = 2;
        int rc2 = uv_pipe_open(&c->out, wfd);
        if (rc == 0)
            rc = rc2;
    }
    conn_start(c, rc);
}

static void on_connection(uv_stream_t *server, int status)
{
    hlistener *l = server->data;
    if (status < 0) {
        logf_(l->h, "accept failed: %s", uv_strerror(status));
        return;
    }
    hconn *c = conn_new(l->h);
    if (!c)
        return; /* libuv retries the pending connection later */
    if (server->type == UV_TCP)
        uv_tcp_init(&l->h->loop, &c->in.tcp);
    else
        uv_pipe_init(&l->h->loop, &c->in.pipe, 0);
    c->in.handle.data = c;
    c->handles = 1;
    int rc = uv_accept(server, &c->in.stream);
    if (rc == 0 && server->type == UV_TCP)
        uv_tcp_nodelay(&c->in.tcp, 1);
    conn_start(c, rc);
}

static void on_listener_closed(uv_handle_t *hd)
{
    hlistener *l = hd->data;
    ravel_host *h = l->h;
    hlistener **pp = &h->listeners;
    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    free(l);
    if (h->stopping && !h->conns && !h->listeners)
        uv_close((uv_handle_t *)&h->wake, NULL);
}

static void listener_add(ravel_host *h, hcmd *cmd)
{
    hlistener *l = calloc(1, sizeof *l);
    if (!l) {
        close(cmd->fd);
        return;
    }
    l->h = h;
    memcpy(l->path, cmd->path, sizeof l->path);
    int is_tcp;
    int rc = stream_open(&h->loop, &l->u, cmd->fd, &is_tcp);
    l->u.handle.data = l;
    l->next = h->listeners;
    h->listeners = l;
    if (rc == 0)
        rc = uv_listen(&l->u.stream, 511, on_connection);
    if (rc != 0) {
        logf_(h, "cannot listen: %s", uv_strerror(rc));
        uv_close(&l->u.handle, on_listener_closed);
    }
}

static void host_stop(ravel_host *h)
{
    h->stopping = 1;
    for (hlistener *l = h->listeners; l; l = l->next) {
        if (l->path[0])
            unlink(l->path);
        if (!uv_is_closing(&l->u.handle))
            uv_close(&l->u.handle, on_listener_closed);
    }
    for (hconn *c = h->conns; c; c = c->next)
        conn_close(c);
    if (!h->conns && !h->listeners)
        uv_close((uv_handle_t *)&h->wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    ravel_host *h = a->data;
    uv_mutex_lock(&h->mu);
    hcmd *cmds = h->cmds;
    h->cmds = NULL;
    h->cmds_tail = &h->cmds;
    uv_mutex_unlock(&h->mu);
    while (cmds) {
        hcmd *cmd = cmds;
        cmds = cmd->next;
        if (h->stopping && cmd->kind != CMD_STOP) {
            close(cmd->fd);
            if (cmd->kind == CMD_CONN && cmd->fd2 != cmd->fd)
                close(cmd->fd2);
        } else if (cmd->kind == CMD_CONN) {
            conn_add(h, cmd->fd, cmd->fd2);
        } else if (cmd->kind == CMD_LISTEN) {
            listener_add(h, cmd);
        } else if (!h->stopping) {
            host_stop(h);
        }
        if (cmd != &h->stop_cmd)
            free(cmd);
    }
}

static void loop_main(void *arg)
{
    ravel_host *h = arg;
    /* A peer that went away must give EPIPE, not kill the process: the
     * signal is thread-directed, so blocking it here covers every write. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

static int post(ravel_host *h, hcmd *cmd)
{
    uv_mutex_lock(&h->mu);
    *h->cmds_tail = cmd;
    h->cmds_tail = &cmd->next;
    uv_mutex_unlock(&h->mu);
    uv_async_send(&h->wake);
    return RAVEL_OK;
}

void ravel_host_options_init(ravel_host_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_frame = RV_DEFAULT_MAX_FRAME;
}

int ravel_host_new(ravel_host **out, ravel_db *db, const ravel_host_options *opts)
{
    if (!out || !db)
        return rv_err(RAVEL_EINVAL, "result pointer or database is NULL");
    *out = NULL;
    ravel_host *h = calloc(1, sizeof *h);
    if (!h)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    h->db = db;
    if (opts)
        h->opts = *opts;
    else
        ravel_host_options_init(&h->opts);
    if (!h->opts.max_frame)
        h->opts.max_frame = RV_DEFAULT_MAX_FRAME;
    h->cmds_tail = &h->cmds;
    int rc = uv_loop_init(&h->loop);
    if (rc == 0) {
        uv_mutex_init(&h->mu);
        uv_async_init(&h->loop, &h->wake, on_wake);
        h->wake.data = h;
        rc = uv_thread_create(&h->thread, loop_main, h);
        if (rc != 0) {
            uv_close((uv_handle_t *)&h->wake, NULL);
            uv_run(&h->loop, UV_RUN_DEFAULT);
            uv_loop_close(&h->loop);
            uv_mutex_destroy(&h->mu);
        }
    }
    if (rc != 0) {
        free(h);
        return rv_err(RAVEL_EIO, "cannot start the host's I/O thread: %s", uv_strerror(rc));
    }
    *out = h;
    return RAVEL_OK;
}

int ravel_host_attach_fd(ravel_host *h, int read_fd, int write_fd)
{
    if (!h || read_fd < 0 || write_fd < 0)
        return rv_err(RAVEL_EINVAL, "host is NULL or fd is negative");
    hcmd *cmd = calloc(1, sizeof *cmd);
    if (!cmd)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    cmd->kind = CMD_CONN;
    cmd->fd = read_fd;
    cmd->fd2 = write_fd;
    return post(h, cmd);
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

int rv_host_listen_address(ravel_host *h, const rv_address *address)
{
    const rv_address a = *address;
    int rc;
    hcmd *cmd = calloc(1, sizeof *cmd);
    if (!cmd)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    int port;
    rc = rv_listen_fd(&a, &cmd->fd, &port);
    if (rc) {
        free(cmd);
        return rc;
    }
    cmd->kind = CMD_LISTEN;
    if (a.is_unix)
        memcpy(cmd->path, a.path, sizeof cmd->path);
    else
        h->port = port;
    logf_(h, "listening on %s", a.text);
    return post(h, cmd);
}

int ravel_host_port(ravel_host *h)
{
    return h ? h->port : 0;
}

int ravel_host_connections(ravel_host *h)
{
    if (!h)
        return 0;
    uv_mutex_lock(&h->mu);
    int n = h->nconns;
    uv_mutex_unlock(&h->mu);
    return n;
}

void ravel_host_free(ravel_host *h)
{
    if (!h)
        return;
    h->stop_cmd.kind = CMD_STOP;
    post(h, &h->stop_cmd);
    uv_thread_join(&h->thread);
    uv_loop_close(&h->loop);
    uv_mutex_destroy(&h->mu);
    free(h);
}
