/* Watches of remote and party handles (watch.h): a blocking client of
 * the extension "watch" on a stream of its own. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "db/range.h"
#include "error.h"
#include "guest/watch.h"
#include "util/alloc.h"
#include "wire/codec.h"

#define WATCH_ID 1
#define PROBE_ID 1
#define CHANGELOG_ID 2
#define ACK_EVERY 16
#define QUEUE_MAX 256 /* above the host's window of 64: never reached */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (UINT64_MAX: none), as poll wants them. */
static int left_ms(uint64_t deadline)
{
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = now_ms();
    return now >= deadline ? 0 : (int)(deadline - now > 60000 ? 60000 : deadline - now);
}

/* A connected stream, or -1 (errno). */
static int dial(const rv_address *a, uint64_t deadline)
{
    int fd = socket(a->is_unix ? AF_UNIX : a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc;
    if (a->is_unix) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        memcpy(sun.sun_path, a->path, sizeof sun.sun_path);
        rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
    } else {
        /* Not blocking, so a host that does not answer costs the
         * deadline, not the kernel's minutes. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        rc = connect(fd, (const struct sockaddr *)&a->sa,
                     a->sa.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                : sizeof(struct sockaddr_in6));
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd p = {fd, POLLOUT, 0};
            int err = 0;
            socklen_t len = sizeof err;
            if (poll(&p, 1, left_ms(deadline)) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
                rc = 0;
            else
                errno = err ? err : ETIMEDOUT;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    }
    if (rc != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the stream: connect, learn who the host is, ask ---- */

typedef struct conn {
    int fd;
    rv_decoder dec;
    int announced;      /* an Announce came */
    int node;           /* a reply came first: a host without extensions */
    uint32_t exts;
    /* what frames other than the handshake's go to */
    int (*frame)(void *ud, const uint8_t *payload, size_t len);
    void *ud;
} conn;

static int conn_frame(void *ud, const uint8_t *payload, size_t len)
{
    conn *c = ud;
    if (payload[0] == RV_OUT_ANNOUNCE && !c->announced && !c->node) {
        int st;
        Ravelwire__Announce *a = (Ravelwire__Announce *)rv_unpack_out(payload, len, &st);
        if (!a)
            return st ? st : RAVEL_EPROTO;
        c->exts = rv_ext_from_names(a->extensions, a->n_extensions);
        c->announced = 1;
        protobuf_c_message_free_unpacked(&a->base, &rv_pb_allocator);
        return 0;
    }
    if (!c->announced) {
        c->node = 1; /* many-level answers our probe, and said nothing before */
        return 0;
    }
    return c->frame ? c->frame(c->ud, payload, len) : 0;
}

/* Read what has come, waiting up to timeout_ms. RAVEL_OK (perhaps
 * nothing), RAVEL_ETIMEDOUT, or RAVEL_ECONNLOST / a decoding error. */
static int conn_pump(conn *c, int timeout_ms)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    int n = poll(&p, 1, timeout_ms);
    if (n == 0)
        return RAVEL_ETIMEDOUT;
    if (n < 0)
        return errno == EINTR ? RAVEL_OK : RAVEL_ECONNLOST;
    char buf[65536];
    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR)
        return RAVEL_OK;
    if (r <= 0)
        return RAVEL_ECONNLOST;
    return rv_decoder_feed(&c->dec, (const uint8_t *)buf, (size_t)r, conn_frame, c);
}

static void conn_close(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    rv_decoder_free(&c->dec);
}

/* Connect and learn whether the host speaks "watch": RAVEL_OK with the
 * stream up and our Hello sent; RAVEL_ENOTSUP (a Node host, or one
 * without it); RAVEL_ECONNLOST (nobody there, or the stream ended). */
static int conn_open(conn *c, const rv_address *a, uint64_t deadline)
{
    c->fd = dial(a, deadline);
    if (c->fd < 0)
        return rv_err(RAVEL_ECONNLOST, "cannot reach %s: %s", a->text, strerror(errno));
    rv_decoder_init(&c->dec, RV_DEFAULT_MAX_FRAME);
    c->announced = c->node = 0;
    /* A ravel host announces itself before anything else; a Node host
     * says nothing until asked, so ask it something every host answers
     * and that reads nothing: a GetMany of no keys. */
    rv_buf out = {0};
    Ravelwire__GetMany probe = RAVELWIRE__GET_MANY__INIT;
    probe.id = PROBE_ID;
    int rc = rv_encode(&out, RV_IN_GET_MANY, &probe.base) ? RAVEL_ENOMEM : RAVEL_OK;
    if (rc == RAVEL_OK && send_all(c->fd, out.data, out.len) != 0)
        rc = RAVEL_ECONNLOST;
    while (rc == RAVEL_OK && !c->announced && !c->node) {
        rc = conn_pump(c, left_ms(deadline));
        if (rc == RAVEL_ETIMEDOUT)
            rc = RAVEL_ECONNLOST;
    }
    if (rc == RAVEL_OK && (c->node || !(c->exts & RV_EXT_WATCH)))
        rc = rv_err(RAVEL_ENOTSUP, "the host at %s is not a ravel host with the extension "
                                   "\"watch\" (a Node many-level host or rave-level leader?)",
                    a->text);
    out.len = 0;
    if (rc == RAVEL_OK && (rv_encode_hello(&out, RV_EXT_WATCH) != 0 ||
                           send_all(c->fd, out.data, out.len) != 0))
        rc = RAVEL_ECONNLOST;
    rv_buf_free(&out);
    if (rc == RAVEL_ECONNLOST)
        rv_err(rc, "the stream to %s ended", a->text);
    if (rc != RAVEL_OK)
        conn_close(c);
    return rc;
}

/* ---- the watch ---- */

typedef struct sockwatch {
    ravel_watch base;
    rv_address addr;
    rv_range_copy range;
    int has_pos;
    uint64_t pos;         /* the number of the last frame received */
    int had_stream;
    conn c;
    /* Frames received, not yet handed out, oldest first. */
    Ravelwire__WatchEvent *q[QUEUE_MAX];
    size_t qhead, qlen;
    Ravelwire__WatchEvent *cur;
    size_t idx;
    uint64_t consumed, acked; /* frames of this stream handed out, and acknowledged */
    int resync_owed;      /* the party moved to a Node leader: resync, then ended */
    int ended;            /* RAVEL_OK, or what every next answers now */
    char ended_msg[512];
    unsigned backoff_ms;
} sockwatch;

static int on_watch_frame(void *ud, const uint8_t *payload, size_t len)
{
    sockwatch *w = ud;
    if (payload[0] != RV_OUT_WATCH_EVENT)
        return 0; /* the probe's answer */
    int st;
    Ravelwire__WatchEvent *e = (Ravelwire__WatchEvent *)rv_unpack_out(payload, len, &st);
    if (!e)
        return st ? st : RAVEL_EPROTO;
    if (w->qlen == QUEUE_MAX) { /* the host broke its window */
        protobuf_c_message_free_unpacked(&e->base, &rv_pb_allocator);
        return RAVEL_EPROTO;
    }
    if (!e->error && e->has_seq) {
        w->pos = e->seq;
        w->has_pos = 1;
    }
    w->q[(w->qhead + w->qlen++) % QUEUE_MAX] = e;
    return 0;
}

static int send_watch(sockwatch *w)
{
    Ravelwire__Watch m = RAVELWIRE__WATCH__INIT;
    m.id = WATCH_ID;
    m.has_from = w->has_pos;
    m.from = w->pos;
    const ravel_range *r = &w->range.r;
    if (r->has_gte) {
        m.has_gte = 1;
        m.gte = (ProtobufCBinaryData){r->gte.len, (uint8_t *)r->gte.data};
    } else if (r->has_gt) {
        m.has_gt = 1;
        m.gt = (ProtobufCBinaryData){r->gt.len, (uint8_t *)r->gt.data};
    }
    if (r->has_lte) {
        m.has_lte = 1;
        m.lte = (ProtobufCBinaryData){r->lte.len, (uint8_t *)r->lte.data};
    } else if (r->has_lt) {
        m.has_lt = 1;
        m.lt = (ProtobufCBinaryData){r->lt.len, (uint8_t *)r->lt.data};
    }
    rv_buf out = {0};
    int rc = rv_encode(&out, RV_IN_WATCH, &m.base) || send_all(w->c.fd, out.data, out.len)
                 ? RAVEL_ECONNLOST
                 : RAVEL_OK;
    rv_buf_free(&out);
    return rc;
}

/* A new stream, up to deadline: RAVEL_OK, RAVEL_ENOTSUP, RAVEL_ECONNLOST. */
static int stream_open(sockwatch *w, uint64_t deadline)
{
    w->c.frame = on_watch_frame;
    w->c.ud = w;
    int rc = conn_open(&w->c, &w->addr, deadline);
    if (rc == RAVEL_OK && (rc = send_watch(w)) != RAVEL_OK)
        conn_close(&w->c);
    if (rc == RAVEL_OK) {
        w->had_stream = 1;
        w->consumed = w->acked = 0;
        w->backoff_ms = 1;
    }
    return rc;
}

static void stream_drop(sockwatch *w)
{
    conn_close(&w->c);
}

static void ack(sockwatch *w)
{
    if (w->c.fd < 0 || w->consumed == w->acked)
        return;
    if (w->consumed - w->acked < ACK_EVERY && (w->qlen || w->cur))
        return;
    Ravelwire__WatchAck m = RAVELWIRE__WATCH_ACK__INIT;
    m.id = WATCH_ID;
    m.frames = w->consumed;
    rv_buf out = {0};
    if (rv_encode(&out, RV_IN_WATCH_ACK, &m.base) || send_all(w->c.fd, out.data, out.len))
        stream_drop(w);
    else
        w->acked = w->consumed;
    rv_buf_free(&out);
}

static int sw_next(ravel_watch *base, ravel_change *c, int timeout_ms)
{
    sockwatch *w = (sockwatch *)base;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (w->cur && w->idx < w->cur->n_changes) {
            Ravelwire__WatchEvent__Change *ch = w->cur->changes[w->idx++];
            *c = (ravel_change){.type = ch->del ? RAVEL_CHANGE_DEL : RAVEL_CHANGE_PUT,
                                .seq = w->cur->seq, .key = (const char *)ch->key.data,
                                .klen = ch->key.len, .last = w->idx == w->cur->n_changes};
            if (!ch->del) {
                c->val = (const char *)ch->value.data;
                c->vlen = ch->value.len;
            }
            if (c->last) { /* the bytes stay until the next call */
                w->consumed++;
                ack(w);
            }
            return RAVEL_OK;
        }
        if (w->cur) {
            protobuf_c_message_free_unpacked(&w->cur->base, &rv_pb_allocator);
            w->cur = NULL;
        }
        if (w->qlen) {
            Ravelwire__WatchEvent *e = w->q[w->qhead];
            w->qhead = (w->qhead + 1) % QUEUE_MAX;
            w->qlen--;
            w->cur = e;
            w->idx = 0;
            if (e->error) {
                w->ended = rv_code_from_wire(e->error);
                snprintf(w->ended_msg, sizeof w->ended_msg, "the host ended the watch: %s%s%s",
                         e->error, e->message ? ": " : "", e->message ? e->message : "");
                continue;
            }
            if (e->has_resync_from) {
                *c = (ravel_change){.type = RAVEL_CHANGE_RESYNC, .seq = e->seq,
                                    .resync_from = e->resync_from, .last = 1};
                w->consumed++;
                ack(w);
                return RAVEL_OK;
            }
            continue; /* a position, or a write without changes */
        }
        if (w->resync_owed) {
            w->resync_owed = 0;
            *c = (ravel_change){.type = RAVEL_CHANGE_RESYNC, .seq = w->pos,
                                .resync_from = w->pos, .last = 1};
            return RAVEL_OK;
        }
        if (w->ended)
            return rv_err(w->ended, "%s", w->ended_msg);
        ack(w);
        if (w->c.fd < 0) {
            int rc = stream_open(w, deadline == UINT64_MAX ? now_ms() + 5000 : deadline);
            if (rc == RAVEL_ENOTSUP) {
                /* The party moved to a Node leader: what came after pos
                 * cannot be known here. */
                snprintf(w->ended_msg, sizeof w->ended_msg, "%s", ravel_errmsg());
                w->ended = RAVEL_ENOTSUP;
                w->resync_owed = w->had_stream;
                continue;
            }
            if (rc != RAVEL_OK) {
                int wait = left_ms(deadline);
                if (wait == 0)
                    return rv_err(RAVEL_ETIMEDOUT, "no host at %s yet", w->addr.text);
                if (wait < 0 || wait > (int)w->backoff_ms)
                    wait = (int)w->backoff_ms;
                struct timespec ts = {wait / 1000, (long)(wait % 1000) * 1000000};
                nanosleep(&ts, NULL);
                if (w->backoff_ms < 100)
                    w->backoff_ms *= 2;
                continue;
            }
        }
        int rc = conn_pump(&w->c, left_ms(deadline));
        if (rc == RAVEL_ETIMEDOUT)
            return rv_err(RAVEL_ETIMEDOUT, "no change within the time");
        if (rc != RAVEL_OK)
            stream_drop(w); /* resumes after pos on the next stream */
    }
}

static void sw_free(ravel_watch *base)
{
    sockwatch *w = (sockwatch *)base;
    stream_drop(w);
    if (w->cur)
        protobuf_c_message_free_unpacked(&w->cur->base, &rv_pb_allocator);
    for (size_t i = 0; i < w->qlen; i++)
        protobuf_c_message_free_unpacked(&w->q[(w->qhead + i) % QUEUE_MAX]->base,
                                         &rv_pb_allocator);
    rv_range_copy_free(&w->range);
    free(w);
}

static uint64_t sw_position(ravel_watch *base)
{
    return ((sockwatch *)base)->pos;
}

static const rv_watch_ops sw_ops = {
    .next = sw_next,
    .free = sw_free,
    .position = sw_position,
};

int rv_sockwatch_new(const rv_address *a, const ravel_watch_options *o, ravel_watch **out)
{
    if (a->is_tls)
        return rv_err(RAVEL_ENOTSUP, "a watch over TLS (%s) is not supported", a->text);
    sockwatch *w = rv_calloc(1, sizeof *w);
    if (!w)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    w->base.ops = &sw_ops;
    w->addr = *a;
    w->c.fd = -1;
    w->backoff_ms = 1;
    w->has_pos = o->has_from;
    w->pos = o->from;
    if (rv_range_copy_init(&w->range, o->range) != RAVEL_OK) {
        free(w);
        return rv_err(RAVEL_ENOMEM, "out of memory");
    }
    /* The first stream now, so that a Node host answers RAVEL_ENOTSUP at
     * once; a party in the middle of an election gets until the timeout. */
    uint64_t deadline = now_ms() + (uint64_t)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000);
    int rc;
    while ((rc = stream_open(w, deadline)) == RAVEL_ECONNLOST && now_ms() < deadline) {
        struct timespec ts = {0, (long)w->backoff_ms * 1000000};
        nanosleep(&ts, NULL);
        if (w->backoff_ms < 100)
            w->backoff_ms *= 2;
    }
    if (rc != RAVEL_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ravel_errmsg());
        sw_free(&w->base);
        return rv_err(rc, "%s", msg);
    }
    /* Wait for where the host starts us, so that a stream cut before the
     * first change resumes from there and not from "now" again. */
    while (!w->has_pos && w->c.fd >= 0 && now_ms() < deadline) {
        rc = conn_pump(&w->c, left_ms(deadline));
        if (rc != RAVEL_OK && rc != RAVEL_ETIMEDOUT)
            stream_drop(w);
        if (w->qlen && w->q[w->qhead]->error)
            break;
    }
    *out = &w->base;
    return RAVEL_OK;
}

/* ---- the change log's setting ---- */

typedef struct clreq {
    Ravelwire__ChangelogState *st;
} clreq;

static int on_changelog_frame(void *ud, const uint8_t *payload, size_t len)
{
    clreq *r = ud;
    if (payload[0] != RV_OUT_CHANGELOG_STATE || r->st)
        return 0;
    int st;
    r->st = (Ravelwire__ChangelogState *)rv_unpack_out(payload, len, &st);
    return r->st ? 0 : st ? st : RAVEL_EPROTO;
}

int rv_sock_changelog(const rv_address *a, int timeout_ms, const ravel_changelog *set,
                      ravel_changelog *out)
{
    if (a->is_tls)
        return rv_err(RAVEL_ENOTSUP, "the change log over TLS (%s) is not supported", a->text);
    clreq r = {0};
    conn c = {.fd = -1, .frame = on_changelog_frame, .ud = &r};
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000);
    int rc;
    unsigned backoff = 1;
    while ((rc = conn_open(&c, a, deadline)) == RAVEL_ECONNLOST && now_ms() < deadline) {
        struct timespec ts = {0, (long)backoff * 1000000};
        nanosleep(&ts, NULL);
        if (backoff < 100)
            backoff *= 2;
    }
    if (rc != RAVEL_OK)
        return rc;
    Ravelwire__Changelog m = RAVELWIRE__CHANGELOG__INIT;
    m.id = CHANGELOG_ID;
    if (set) {
        m.has_set = m.set = 1;
        m.has_on = 1;
        m.on = set->on != 0;
        m.has_max_count = 1;
        m.max_count = set->max_count;
        m.has_max_bytes = 1;
        m.max_bytes = set->max_bytes;
    }
    rv_buf b = {0};
    rc = rv_encode(&b, RV_IN_CHANGELOG, &m.base) || send_all(c.fd, b.data, b.len) ? RAVEL_ECONNLOST
                                                                                  : RAVEL_OK;
    rv_buf_free(&b);
    while (rc == RAVEL_OK && !r.st) {
        rc = conn_pump(&c, left_ms(deadline));
        if (rc == RAVEL_ETIMEDOUT)
            rc = RAVEL_ECONNLOST;
    }
    conn_close(&c);
    if (rc != RAVEL_OK)
        return rv_err(rc, "no answer from %s about the change log", a->text);
    if (r.st->error) {
        rc = rv_code_from_wire(r.st->error);
        rv_err(rc, "%s", r.st->message ? r.st->message : r.st->error);
    } else {
        *out = (ravel_changelog){.on = r.st->on, .max_count = r.st->max_count,
                                 .max_bytes = r.st->max_bytes, .seq = r.st->seq,
                                 .floor = r.st->floor, .records = r.st->records,
                                 .bytes = r.st->bytes};
    }
    protobuf_c_message_free_unpacked(&r.st->base, &rv_pb_allocator);
    return rc;
}
