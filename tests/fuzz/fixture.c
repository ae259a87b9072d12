#include "fixture.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/batch.h"
#include "db/range.h"

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FUZZ INVARIANT BROKEN: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- the data set ---- */

#define E(k, v) {k, sizeof k - 1, v, sizeof v - 1}
typedef struct fz_entry {
    const char *key;
    size_t klen;
    const char *val;
    size_t vlen;
} fz_entry;

/* Short keys the fuzzer can hit by mutation; the empty key and keys that
 * extend one another, where range and resume bugs live; a NUL inside a key
 * and a high byte. Kept in bytewise order: fz_is_seeded walks it. */
static const fz_entry entries[] = {
    E("", "empty key"),
    E("a", "1"),
    E("a\0", "nul"),
    E("aa", "2"),
    E("ab", "3"),
    E("abc", "4"),
    E("b", ""),
    E("ba", "5"),
    E("bb", "6"),
    E("c", "7"),
    E("ca", "8"),
    E("d", "9"),
    E("deny", "a hook refuses keys starting with x"),
    E("k", "v"),
    E("x", "10"),
    E("xy", "11"),
    E("z", "12"),
    E("zz", "13"),
    E("\xff", "high"),
    E("\xff\xff", "higher"),
};
#define NENTRIES (sizeof entries / sizeof entries[0])

void fz_seed(ravel_db *db)
{
    ravel_batch *b = ravel_batch_new();
    if (!b)
        fz_fail("out of memory");
    for (size_t i = 0; i < NENTRIES; i++) {
        if (i && rv_keycmp(entries[i - 1].key, entries[i - 1].klen, entries[i].key,
                           entries[i].klen) >= 0)
            fz_fail("fixture entries out of order at %zu", i);
        if (ravel_batch_put(b, entries[i].key, entries[i].klen, entries[i].val, entries[i].vlen))
            fz_fail("batch: %s", ravel_errmsg());
    }
    if (ravel_write(db, b))
        fz_fail("seed: %s", ravel_errmsg());
    ravel_batch_free(b);
}

int fz_is_seeded(ravel_db *db)
{
    ravel_iter *it;
    if (ravel_iter_new(db, NULL, &it))
        fz_fail("iter_new: %s", ravel_errmsg());
    size_t i = 0;
    const char *k, *v;
    size_t kl, vl;
    int rc = RAVEL_OK, same = 1;
    while (same && (rc = ravel_iter_next(it, &k, &kl, &v, &vl)) == RAVEL_OK) {
        same = i < NENTRIES && rv_keycmp(k, kl, entries[i].key, entries[i].klen) == 0 &&
               rv_keycmp(v, vl, entries[i].val, entries[i].vlen) == 0;
        i++;
    }
    if (same && rc != RAVEL_END)
        fz_fail("iterating: %s", ravel_errmsg());
    ravel_iter_free(it);
    return same && i == NENTRIES;
}

char *fz_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/ravel-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(path))
        fz_fail("mkdtemp %s failed", path);
    char *dir = strdup(path);
    if (!dir)
        fz_fail("out of memory");
    return dir;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void fz_rmtree(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* ---- the guest scenario ---- */

size_t fz_chunk_size(unsigned selector, size_t total)
{
    static const size_t sizes[8] = {0, 1, 2, 3, 7, 16, 61, 256};
    size_t n = sizes[selector & 7];
    return n ? n : total;
}

static void submit(fz_guest *g, int i, uint8_t tag, ProtobufCMessage *msg, uint32_t *id)
{
    g->reqs[i].expect = tag == RV_IN_GET_MANY ? &ravelwire__get_many_callback__descriptor
                                              : &ravelwire__callback__descriptor;
    if (rv_gsession_submit(&g->s, &g->reqs[i].g, tag, msg, id))
        fz_fail("submit %d: %s", i, ravel_errmsg());
}

static void open_iter(fz_guest *g, int i, const ravel_range *r)
{
    if (rv_giter_open(&g->s, &g->iters[i].g, r))
        fz_fail("iterator %d: %s", i, ravel_errmsg());
    g->iters[i].open = 1;
    g->iters[i].limit = r->limit;
}

#define BYTES(s) ((ProtobufCBinaryData){sizeof s - 1, (uint8_t *)s})
#define BOUND(s) ((ravel_bound){s, sizeof s - 1})

int fz_dialect;

void fz_guest_start(fz_guest *g, int retry, int seek)
{
    memset(g, 0, sizeof *g);
    /* A pending limit well above what the scenario opens. */
    rv_gsession_init(&g->s, retry, 1u << 20, 64);
    g->s.dialect = fz_dialect;
    if (rv_gsession_connected(&g->s))
        fz_fail("connected: out of memory");

    Ravelwire__Get get = RAVELWIRE__GET__INIT;
    get.key = BYTES("a");
    submit(g, 0, RV_IN_GET, &get.base, &get.id);

    Ravelwire__Put put = RAVELWIRE__PUT__INIT;
    put.key = BYTES("k");
    put.has_value = 1;
    put.value = BYTES("v");
    submit(g, 1, RV_IN_PUT, &put.base, &put.id);

    Ravelwire__Delete del = RAVELWIRE__DELETE__INIT;
    del.key = BYTES("b");
    submit(g, 2, RV_IN_DEL, &del.base, &del.id);

    Ravelwire__Batch__Operation op_put = RAVELWIRE__BATCH__OPERATION__INIT;
    op_put.type = "put";
    op_put.key = BYTES("x");
    op_put.has_value = 1;
    op_put.value = BYTES("1");
    Ravelwire__Batch__Operation op_del = RAVELWIRE__BATCH__OPERATION__INIT;
    op_del.type = "del";
    op_del.key = BYTES("a");
    Ravelwire__Batch__Operation *ops[] = {&op_put, &op_del};
    Ravelwire__Batch batch = RAVELWIRE__BATCH__INIT;
    batch.n_ops = 2;
    batch.ops = ops;
    submit(g, 3, RV_IN_BATCH, &batch.base, &batch.id);

    Ravelwire__Clear__ClearOptions copts = RAVELWIRE__CLEAR__CLEAR_OPTIONS__INIT;
    copts.has_gte = 1;
    copts.gte = BYTES("c");
    copts.has_lt = 1;
    copts.lt = BYTES("d");
    copts.has_limit = 1;
    copts.limit = 1;
    Ravelwire__Clear clear = RAVELWIRE__CLEAR__INIT;
    clear.options = &copts;
    submit(g, 4, RV_IN_CLEAR, &clear.base, &clear.id);

    ProtobufCBinaryData keys[] = {BYTES("a"), BYTES("zz"), BYTES("nope")};
    Ravelwire__GetMany many = RAVELWIRE__GET_MANY__INIT;
    many.n_keys = 3;
    many.keys = keys;
    submit(g, 5, RV_IN_GET_MANY, &many.base, &many.id);

    ravel_range r;
    ravel_range_init(&r);
    open_iter(g, 0, &r);

    ravel_range_init(&r);
    r.reverse = 1;
    r.values = 0;
    r.has_gte = 1;
    r.gte = BOUND("a");
    r.limit = 3;
    open_iter(g, 1, &r);

    ravel_range_init(&r);
    r.keys = 0;
    r.has_lt = 1;
    r.lt = BOUND("b");
    open_iter(g, 2, &r);

    if (seek && rv_giter_seek(&g->s, &g->iters[0].g, "ab", 2))
        fz_fail("seek: %s", ravel_errmsg());
}

void fz_guest_settle(fz_guest *g)
{
    rv_greq *done = g->s.done;
    g->s.done = NULL;
    while (done) {
        fz_req *r = (fz_req *)done;
        done = done->done_next;
        if (++r->completions > 1)
            fz_fail("request %u completed twice", r->g.id);
        if (r->g.reply && r->g.reply->descriptor != r->expect)
            fz_fail("request %u (waiting for a %s) completed with a %s", r->g.id,
                    r->expect->name, r->g.reply->descriptor->name);
        if (r->g.reply)
            protobuf_c_message_free_unpacked(r->g.reply, NULL);
        r->g.reply = NULL;
        rv_buf_free(&r->g.frame);
    }
    /* Every open iterator is asked below, so the notify list only needs
     * emptying, as a transport does after waking its waiters. */
    for (rv_giter *it = g->s.notify; it;) {
        rv_giter *next = it->notify_next;
        it->notified = 0;
        it->notify_next = NULL;
        it = next;
    }
    g->s.notify = NULL;
    for (int i = 0; i < FZ_NITERS; i++) {
        fz_iter *it = &g->iters[i];
        while (it->open && rv_giter_take(&g->s, &it->g) == RAVEL_OK) {
            it->handed++;
            if (it->limit >= 0 && it->handed > (uint64_t)it->limit)
                fz_fail("iterator %d handed out %llu entries, limit %lld", i,
                        (unsigned long long)it->handed, (long long)it->limit);
        }
    }
}

void fz_guest_close_iter(fz_guest *g, int i)
{
    if (g->iters[i].open)
        rv_giter_close(&g->s, &g->iters[i].g);
    g->iters[i].open = 0;
}

void fz_guest_finish(fz_guest *g)
{
    rv_gsession_close(&g->s);
    fz_guest_settle(g);
    for (int i = 0; i < FZ_NREQS; i++)
        if (g->reqs[i].completions != 1)
            fz_fail("request %d completed %d times", i, g->reqs[i].completions);
    for (int i = 0; i < FZ_NITERS; i++)
        fz_guest_close_iter(g, i);
    rv_gsession_free(&g->s);
}
