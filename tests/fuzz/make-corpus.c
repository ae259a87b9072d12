/* make-corpus OUTDIR: write the fuzz targets' seed corpora from real
 * traffic. A guest session running the fixture's scenario talks to a host
 * session serving the fixture's entries from a scratch LevelDB, in rounds
 * (guest bytes to the host, host bytes back, the guest settles and sends
 * its acknowledgements) until the guest has nothing more to say; some
 * conversations lose their stream after the first round and resume on a
 * new one. Both directions are recorded and written, with each target's
 * leading control bytes, to OUTDIR/<target>/<conversation>. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "host/session.h"

typedef struct convo {
    const char *name;
    unsigned gflags;  /* fuzz-guest-session's flags: retry, seek, close */
    int cut;          /* lose the stream after the first round */
    rv_buf up[2];     /* guest to host, on the first and the second stream */
    rv_buf down;      /* host to guest, both streams */
    size_t cut_at;    /* offset in down where the first stream ended */
    int gen1;         /* the first generation's protocol (multileveldown 5) */
} convo;

#define C(n, f, c) {.name = n, .gflags = f, .cut = c}
static convo convos[] = {
    C("plain", 0, 0),       C("seek", 2, 0),           C("close", 4, 0),
    C("seek-close", 6, 0),  C("retry", 1, 0),          C("retry-seek", 3, 0),
    C("retry-close", 5, 0), C("retry-seek-close", 7, 0),
    C("retry-cut", 1, 1),   C("retry-seek-cut", 3, 1), C("retry-close-cut", 5, 1),
    C("retry-seek-close-cut", 7, 1),
    /* The first generation: its iterators, seeks re-opened, resumes. */
    {.name = "gen1-seek-close", .gflags = 6, .gen1 = 1},
    {.name = "gen1-retry-seek-cut", .gflags = 3, .cut = 1, .gen1 = 1},
    {.name = "gen1-retry-close-cut", .gflags = 5, .cut = 1, .gen1 = 1},
};
#define NCONVOS (sizeof convos / sizeof convos[0])

static void append(rv_buf *to, const rv_buf *from)
{
    if (rv_buf_append(to, from->data, from->len))
        fz_fail("out of memory");
}

static void talk(convo *c, ravel_db *db)
{
    if (ravel_clear(db, NULL))
        fz_fail("clear: %s", ravel_errmsg());
    fz_seed(db);
    ravel_host_options opts;
    ravel_host_options_init(&opts);
    int dialect = c->gen1 ? RV_DIALECT_GEN1 : RV_DIALECT_MANY;
    rv_hsession h;
    rv_hsession_init_dialect(&h, db, &opts, dialect);
    fz_dialect = dialect;
    fz_guest g;
    fz_guest_start(&g, c->gflags & 1, c->gflags & 2);
    if (c->gflags & 4)
        fz_guest_close_iter(&g, FZ_NITERS - 1);
    int stream = 0;
    for (int round = 0; g.s.out.len; round++) {
        if (round == 100)
            fz_fail("%s: the conversation does not end", c->name);
        append(&c->up[stream], &g.s.out);
        if (rv_hsession_feed(&h, (const uint8_t *)g.s.out.data, g.s.out.len))
            fz_fail("%s: host: %s", c->name, ravel_errmsg());
        g.s.out.len = 0;
        append(&c->down, &h.out);
        if (rv_gsession_feed(&g.s, (const uint8_t *)h.out.data, h.out.len))
            fz_fail("%s: guest: %s", c->name, ravel_errmsg());
        h.out.len = 0;
        fz_guest_settle(&g);
        if (c->cut && round == 0) {
            /* What fuzz-guest-session does at its cut offset. */
            c->cut_at = c->down.len;
            rv_gsession_lost(&g.s);
            fz_guest_settle(&g);
            if (rv_gsession_connected(&g.s))
                fz_fail("out of memory");
            rv_hsession_free(&h);
            rv_hsession_init_dialect(&h, db, &opts, dialect);
            stream = 1;
        }
    }
    rv_hsession_free(&h);
    rv_gsession_lost(&g.s);
    fz_guest_finish(&g);
}

static void write_seed(const char *dir, const char *target, const char *name,
                       const uint8_t *head, size_t hlen, const rv_buf *body)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    if (mkdir(path, 0777) && errno != EEXIST)
        fz_fail("mkdir %s failed", path);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(head, 1, hlen, f) != hlen ||
        (body->len && fwrite(body->data, 1, body->len, f) != body->len) || fclose(f))
        fz_fail("writing %s failed", path);
}

/* The Iterator messages of a guest opening twelve iterators at once, more
 * than fuzz-host-session's limit of eight per connection. */
static void many_iterators(rv_buf *up)
{
    enum { N = 12 };
    rv_gsession s;
    rv_giter its[N];
    memset(its, 0, sizeof its);
    rv_gsession_init(&s, 0, 0, 0);
    if (rv_gsession_connected(&s))
        fz_fail("out of memory");
    ravel_range r;
    ravel_range_init(&r);
    for (int i = 0; i < N; i++)
        if (rv_giter_open(&s, &its[i], &r))
            fz_fail("iterator %d: %s", i, ravel_errmsg());
    append(up, &s.out);
    for (int i = 0; i < N; i++)
        rv_giter_close(&s, &its[i]);
    rv_gsession_free(&s);
}

/* A guest that turned on "snapshots" and "maintenance": a Hello, then a
 * snapshot, reads of it (Get, GetMany, Iterator, with the other read
 * options), its release, a read of the released one, and the three
 * maintenance calls. */
static void extension_requests(rv_buf *up)
{
    if (rv_encode_hello(up, RV_EXT_ALL))
        fz_fail("out of memory");
    Ravelwire__SnapshotNew sn = RAVELWIRE__SNAPSHOT_NEW__INIT;
    sn.id = 1;
    sn.snapshot = 7;
    Ravelwire__Get get = RAVELWIRE__GET__INIT;
    get.id = 2;
    get.key = (ProtobufCBinaryData){1, (uint8_t *)"a"};
    get.has_snapshot = 1;
    get.snapshot = 7;
    get.has_verify_checksums = get.verify_checksums = 1;
    get.has_fill_cache = 1;
    ProtobufCBinaryData keys[2] = {{1, (uint8_t *)"a"}, {1, (uint8_t *)"b"}};
    Ravelwire__GetMany gm = RAVELWIRE__GET_MANY__INIT;
    gm.id = 3;
    gm.n_keys = 2;
    gm.keys = keys;
    gm.has_snapshot = 1;
    gm.snapshot = 7;
    Ravelwire__Iterator__Options o = RAVELWIRE__ITERATOR__OPTIONS__INIT;
    Ravelwire__Iterator it = RAVELWIRE__ITERATOR__INIT;
    it.id = 1;
    it.options = &o;
    it.has_snapshot = 1;
    it.snapshot = 7;
    Ravelwire__SnapshotRelease rel = RAVELWIRE__SNAPSHOT_RELEASE__INIT;
    rel.snapshot = 7;
    Ravelwire__Get stale = get;
    stale.id = 4;
    Ravelwire__CompactRange cr = RAVELWIRE__COMPACT_RANGE__INIT;
    cr.id = 5;
    cr.has_start = 1;
    cr.start = keys[0];
    Ravelwire__Property pr = RAVELWIRE__PROPERTY__INIT;
    pr.id = 6;
    pr.name = "leveldb.stats";
    Ravelwire__ApproximateSizes__Range rg = RAVELWIRE__APPROXIMATE_SIZES__RANGE__INIT;
    rg.start = keys[0];
    rg.limit = keys[1];
    Ravelwire__ApproximateSizes__Range *rgs[1] = {&rg};
    Ravelwire__ApproximateSizes as = RAVELWIRE__APPROXIMATE_SIZES__INIT;
    as.id = 7;
    as.n_ranges = 1;
    as.ranges = rgs;
    if (rv_encode(up, RV_IN_SNAPSHOT_NEW, &sn.base) || rv_encode(up, RV_IN_GET, &get.base) ||
        rv_encode(up, RV_IN_GET_MANY, &gm.base) || rv_encode(up, RV_IN_ITERATOR, &it.base) ||
        rv_encode(up, RV_IN_SNAPSHOT_RELEASE, &rel.base) ||
        rv_encode(up, RV_IN_GET, &stale.base) || rv_encode(up, RV_IN_COMPACT, &cr.base) ||
        rv_encode(up, RV_IN_PROPERTY, &pr.base) || rv_encode(up, RV_IN_SIZES, &as.base))
        fz_fail("out of memory");
}

/* Framing the decoder must take in its stride, made with the codec's own
 * varint writer: two empty frames, a frame with an unknown tag, then a
 * length one over fuzz-decoder's 1 MiB limit. */
static void edge_stream(rv_buf *b)
{
    uint8_t tmp[16];
    size_t n = rv_varint_put(tmp, 0);
    n += rv_varint_put(tmp + n, 0);
    n += rv_varint_put(tmp + n, 2);
    tmp[n++] = 200;
    tmp[n++] = 0;
    n += rv_varint_put(tmp + n, (1u << 20) + 1);
    if (rv_buf_append(b, tmp, n))
        fz_fail("out of memory");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make-corpus OUTDIR\n");
        return 2;
    }
    const char *out = argv[1];
    if (mkdir(out, 0777) && errno != EEXIST)
        fz_fail("mkdir %s failed", out);
    char *dir = fz_mkdtemp();
    ravel_db *db;
    if (ravel_open_local(&db, dir, NULL))
        fz_fail("open: %s", ravel_errmsg());

    for (size_t i = 0; i < NCONVOS; i++) {
        convo *c = &convos[i];
        talk(c, db);
        char name[128];

        /* Vary the feed sizes across seeds; the fuzzer varies them more. */
        unsigned chunk = (unsigned)i % 8;
        size_t cut = c->cut ? c->cut_at : 0;
        if (cut > 0xffff)
            fz_fail("%s: cut offset %zu does not fit", c->name, cut);
        uint8_t ghead[3] = {(uint8_t)(c->gflags | chunk << 3 | (c->gen1 ? 64 : 0)), (uint8_t)cut,
                            (uint8_t)(cut >> 8)};
        write_seed(out, "fuzz-guest-session", c->name, ghead, 3, &c->down);

        /* The same guest bytes for a plain, a readonly and a hooked host. */
        uint8_t hhead = (uint8_t)(chunk << 2 | (i % 3 == 1 ? 1 : i % 3 == 2 ? 2 : 0) |
                                  (c->gen1 ? 32 : 0));
        write_seed(out, "fuzz-host-session", c->name, &hhead, 1, &c->up[0]);
        if (c->cut) {
            /* The second stream opens with resumed iterators (bookmarks). */
            snprintf(name, sizeof name, "%s-resume", c->name);
            write_seed(out, "fuzz-host-session", name, &hhead, 1, &c->up[1]);
        }

        if (i % 3 == 0) {
            /* Split somewhere inside, not at a frame boundary on purpose. */
            size_t split = c->up[0].len * 2 / 5;
            uint8_t dhead[2] = {(uint8_t)split, (uint8_t)(split >> 8)};
            snprintf(name, sizeof name, "%s-up", c->name);
            write_seed(out, "fuzz-decoder", name, dhead, 2, &c->up[0]);
            split = c->down.len * 3 / 7;
            dhead[0] = (uint8_t)split;
            dhead[1] = (uint8_t)(split >> 8);
            snprintf(name, sizeof name, "%s-down", c->name);
            write_seed(out, "fuzz-decoder", name, dhead, 2, &c->down);
        }
    }
    rv_buf many = {0};
    many_iterators(&many);
    uint8_t plain = 0;
    write_seed(out, "fuzz-host-session", "many-iterators", &plain, 1, &many);
    rv_buf_free(&many);
    rv_buf ext = {0};
    extension_requests(&ext);
    write_seed(out, "fuzz-host-session", "extensions", &plain, 1, &ext);
    rv_buf_free(&ext);

    rv_buf edge = {0};
    edge_stream(&edge);
    uint8_t dhead[2] = {3, 0};
    write_seed(out, "fuzz-decoder", "edge-framing", dhead, 2, &edge);
    rv_buf_free(&edge);

    for (size_t i = 0; i < NCONVOS; i++) {
        rv_buf_free(&convos[i].up[0]);
        rv_buf_free(&convos[i].up[1]);
        rv_buf_free(&convos[i].down);
    }
    ravel_db_close(db);
    fz_rmtree(dir);
    return 0;
}
