/* fuzz-host-session: a host session fed arbitrary guest bytes, serving a
 * real LevelDB through a local handle.
 *
 * Input: a flags byte, then the guest's bytes.
 *   bit 0     readonly host
 *   bit 1     write hooks that refuse keys starting with "x" (writable host)
 *   bits 2-4  size of the feeds (fz_chunk_size): frames arrive cut anywhere
 *   bit 5     the first generation's protocol (multileveldown 5): its
 *             Iterator (tag 4) and IteratorData (tag 1), errors as text
 *
 * Checks, besides no crash, leak or hang:
 *   - every frame the host writes is a well-formed host-to-guest message,
 *     and each feed leaves only whole frames in `out`;
 *   - every Get, Put, Delete, Batch, Clear and GetMany before the first bad
 *     frame gets exactly one reply, with its id, in order, and so do the
 *     extensions' requests (SnapshotNew, CompactRange, Property,
 *     ApproximateSizes) once the guest's Hello turned them on; iterator replies
 *     carry the id of an Iterator the guest sent;
 *   - a readonly host writes nothing: it serves a database of its own that
 *     must hold exactly the fixture's entries after every input, and its
 *     write hooks abort if they are ever called.
 *
 * Each input starts from the same database (the fixture's entries), so a
 * reproducer replays alone. Two databases live for the whole process, in
 * scratch directories removed at exit. */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "host/session.h"
#include "transport/address.h"
#include "wire/gen1.h"

/* Memory bound for one frame; inputs are far smaller anyway. */
#define MAX_FRAME (1u << 20)
/* LevelDB keeps every version of a key in its memtable until a flush, and
 * iterators step over all of them: rewriting the fixture after each input
 * would make every scan slower than the last. So the writable database is
 * reset only when an input changed it, and replaced by a fresh one after
 * this many inputs. */
#define FRESH_DB_EVERY 512

enum { F_READONLY = 1, F_HOOKS = 2, F_GEN1 = 32 };

static char *rw_dir, *ro_dir;
static ravel_db *rw_db, *ro_db;
static unsigned rw_uses;

static void open_seeded(char **dir, ravel_db **db)
{
    *dir = fz_mkdtemp();
    if (ravel_open_local(db, *dir, NULL))
        fz_fail("open %s: %s", *dir, ravel_errmsg());
    fz_seed(*db);
}

static void close_db(char **dir, ravel_db **db)
{
    ravel_db_close(*db);
    *db = NULL;
    fz_rmtree(*dir);
    *dir = NULL;
}

static void cleanup(void)
{
    close_db(&rw_dir, &rw_db);
    close_db(&ro_dir, &ro_db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    open_seeded(&rw_dir, &rw_db);
    open_seeded(&ro_dir, &ro_db);
    atexit(cleanup);
    return 0;
}

/* Back to exactly the fixture's entries. */
static void reset_rw(void)
{
    if (++rw_uses % FRESH_DB_EVERY == 0) {
        close_db(&rw_dir, &rw_db);
        open_seeded(&rw_dir, &rw_db);
    } else if (!fz_is_seeded(rw_db)) {
        if (ravel_clear(rw_db, NULL))
            fz_fail("clear: %s", ravel_errmsg());
        fz_seed(rw_db);
    }
}

/* ---- hooks ---- */

static const char *refuse_x(const char *key, size_t klen)
{
    return klen && key[0] == 'x' ? "keys starting with x are refused" : NULL;
}

static const char *preput_x(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)ud;
    (void)val;
    (void)vlen;
    return refuse_x(key, klen);
}

static const char *predel_x(void *ud, const char *key, size_t klen)
{
    (void)ud;
    return refuse_x(key, klen);
}

static const char *prebatch_x(void *ud, const ravel_batch *b)
{
    (void)ud;
    for (size_t i = 0; i < ravel_batch_count(b); i++) {
        int is_put;
        const char *k, *v;
        size_t kl, vl;
        ravel_batch_op(b, i, &is_put, &k, &kl, &v, &vl);
        if (refuse_x(k, kl))
            return "a batch with a key starting with x is refused";
    }
    return NULL;
}

/* A readonly host must refuse writes before it asks a hook about them. */
static const char *preput_ro(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)ud;
    (void)key;
    (void)val;
    fz_fail("readonly host ran its preput hook (key %zu bytes, value %zu)", klen, vlen);
}

static const char *predel_ro(void *ud, const char *key, size_t klen)
{
    (void)ud;
    (void)key;
    fz_fail("readonly host ran its predel hook (key %zu bytes)", klen);
}

static const char *prebatch_ro(void *ud, const ravel_batch *b)
{
    (void)ud;
    fz_fail("readonly host ran its prebatch hook (%zu ops)", ravel_batch_count(b));
}

/* ---- what the guest asked, what the host answered ---- */

typedef struct ledger {
    rv_buf asked;     /* uint32 ids of requests that need one reply each */
    rv_buf answered;  /* uint32 ids of Callback and GetManyCallback */
    rv_idmap iters;   /* ids of every Iterator message the guest sent */
    int hello_seen;   /* the guest's first Hello turned these on: */
    uint32_t ext_on;  /* the extensions' requests are answered only then */
    rv_decoder out;   /* the host's reply stream */
    int gen1;         /* the first generation's protocol */
} ledger;

static void note_id(rv_buf *b, uint32_t id)
{
    if (rv_buf_append(b, &id, sizeof id))
        fz_fail("out of memory");
}

static int any_op(void *ud, const rv_batch_op_view *op)
{
    (void)ud;
    (void)op;
    return 0;
}

/* Mirrors what a host must treat as a request: a frame that unpacks. A
 * malformed one ends the connection, so parsing stops there too. Batches,
 * gets, puts and deletes take the host's own parsers, stricter than
 * protobuf-c about field numbers protobuf forbids; fuzz-decoder holds them
 * to protobuf-c otherwise. */
static int on_guest_frame(void *ud, const uint8_t *p, size_t len)
{
    ledger *l = ud;
    int rc;
    if (p[0] == RV_IN_BATCH) {
        rv_batch_head head;
        rc = rv_parse_batch(p + 1, len - 1, &head, any_op, NULL);
        if (rc == RAVEL_OK)
            note_id(&l->asked, head.id);
        return rc;
    }
    if (p[0] == RV_IN_GET || p[0] == RV_IN_PUT || p[0] == RV_IN_DEL) {
        rv_keyed k;
        rc = rv_parse_keyed(p + 1, len - 1, p[0], &k);
        if (rc == RAVEL_OK)
            note_id(&l->asked, k.id);
        return rc;
    }
    if (l->gen1 && p[0] >= RV_GEN1_IN_COUNT)
        return 0; /* ignored, unread, as multileveldown's host does */
    if (l->gen1 && p[0] == RV_IN_ITERATOR) {
        Ravelwire__Gen1Iterator *g = rv_gen1_unpack_iterator(p, len, &rc);
        if (!g)
            return rc;
        if (rv_idmap_put(&l->iters, g->id, l))
            fz_fail("out of memory");
        protobuf_c_message_free_unpacked(&g->base, NULL);
        return 0;
    }
    ProtobufCMessage *m = rv_unpack_in(p, len, &rc);
    if (!m)
        return rc;
    int snaps = l->ext_on & RV_EXT_SNAPSHOTS, upkeep = l->ext_on & RV_EXT_MAINTENANCE;
    switch (p[0]) {
    case RV_IN_CLEAR: note_id(&l->asked, ((Ravelwire__Clear *)m)->id); break;
    case RV_IN_GET_MANY: note_id(&l->asked, ((Ravelwire__GetMany *)m)->id); break;
    case RV_IN_HELLO:
        if (!l->hello_seen) {
            Ravelwire__Hello *h = (Ravelwire__Hello *)m;
            l->hello_seen = 1;
            l->ext_on = rv_ext_from_names(h->extensions, h->n_extensions);
        }
        break;
    case RV_IN_SNAPSHOT_NEW:
        if (snaps)
            note_id(&l->asked, ((Ravelwire__SnapshotNew *)m)->id);
        break;
    case RV_IN_COMPACT:
        if (upkeep)
            note_id(&l->asked, ((Ravelwire__CompactRange *)m)->id);
        break;
    case RV_IN_PROPERTY:
        if (upkeep)
            note_id(&l->asked, ((Ravelwire__Property *)m)->id);
        break;
    case RV_IN_SIZES:
        if (upkeep)
            note_id(&l->asked, ((Ravelwire__ApproximateSizes *)m)->id);
        break;
    case RV_IN_ITERATOR:
        /* Any non-NULL value marks the id as seen. */
        if (rv_idmap_put(&l->iters, ((Ravelwire__Iterator *)m)->id, l))
            fz_fail("out of memory");
        break;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

static void check_iter_reply(ledger *l, uint32_t id, const char *what)
{
    if (!rv_idmap_get(&l->iters, id))
        fz_fail("host sent %s for iterator %u, which the guest never opened", what, id);
}

static int on_host_frame(void *ud, const uint8_t *p, size_t len)
{
    ledger *l = ud;
    int rc;
    if (l->gen1 && p[0] >= RV_GEN1_OUT_COUNT)
        fz_fail("host wrote tag %u to a first-generation guest", p[0]);
    if (l->gen1 && p[0] == RV_OUT_ITER_DATA) {
        Ravelwire__Gen1IteratorData *g = rv_gen1_unpack_iter_data(p, len, &rc);
        if (!g)
            fz_fail("host wrote a Gen1IteratorData that does not unpack (status %d)", rc);
        check_iter_reply(l, g->id, "Gen1IteratorData");
        protobuf_c_message_free_unpacked(&g->base, NULL);
        return 0;
    }
    ProtobufCMessage *m = rv_unpack_out(p, len, &rc);
    if (!m)
        fz_fail("host wrote a frame that does not unpack (tag %u, %zu bytes, status %d)", p[0],
                len, rc);
    switch (p[0]) {
    case RV_OUT_CALLBACK: note_id(&l->answered, ((Ravelwire__Callback *)m)->id); break;
    case RV_OUT_GET_MANY_CB: note_id(&l->answered, ((Ravelwire__GetManyCallback *)m)->id); break;
    case RV_OUT_ITER_DATA:
        check_iter_reply(l, ((Ravelwire__IteratorData *)m)->id, "IteratorData");
        break;
    case RV_OUT_ITER_END:
        check_iter_reply(l, ((Ravelwire__IteratorEnd *)m)->id, "IteratorEnd");
        break;
    case RV_OUT_ITER_ERROR:
        check_iter_reply(l, ((Ravelwire__IteratorError *)m)->id, "IteratorError");
        break;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

/* What a transport does with `out`: write it all (here: check it). */
static void drain(ledger *l, rv_hsession *s)
{
    if (s->out.len == 0)
        return;
    if (rv_decoder_feed(&l->out, (const uint8_t *)s->out.data, s->out.len, on_host_frame, l))
        fz_fail("host wrote a bad frame header");
    if (l->out.in_payload || l->out.shift)
        fz_fail("host left a partial frame in out");
    s->out.len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int readonly = flags & F_READONLY;

    ravel_host_options opts;
    ravel_host_options_init(&opts);
    opts.max_frame = MAX_FRAME;
    /* Low, so that inputs of a few kilobytes reach the limit. */
    opts.max_iterators = 8;
    opts.readonly = readonly;
    if (readonly) {
        opts.preput = preput_ro;
        opts.predel = predel_ro;
        opts.prebatch = prebatch_ro;
    } else if (flags & F_HOOKS) {
        opts.preput = preput_x;
        opts.predel = predel_x;
        opts.prebatch = prebatch_x;
    }

    ledger l = {.gen1 = (flags & F_GEN1) != 0};
    rv_decoder_init(&l.out, RV_DEFAULT_MAX_FRAME);
    rv_decoder guest;
    rv_decoder_init(&guest, MAX_FRAME);
    rv_decoder_feed(&guest, p, n, on_guest_frame, &l);
    rv_decoder_free(&guest);

    rv_hsession s;
    rv_hsession_init_dialect(&s, readonly ? ro_db : rw_db, &opts,
                             l.gen1 ? RV_DIALECT_GEN1 : RV_DIALECT_MANY);
    size_t chunk = fz_chunk_size(flags >> 2, n);
    for (size_t off = 0; off < n; off += chunk) {
        int rc = rv_hsession_feed(&s, p + off, n - off < chunk ? n - off : chunk);
        drain(&l, &s);
        if (rc)
            break; /* the transport closes the connection */
    }
    rv_hsession_free(&s);

    if (l.asked.len != l.answered.len ||
        (l.asked.len && memcmp(l.asked.data, l.answered.data, l.asked.len) != 0))
        fz_fail("%zu requests, %zu replies (or ids out of order)", l.asked.len / 4,
                l.answered.len / 4);
    rv_buf_free(&l.asked);
    rv_buf_free(&l.answered);
    rv_idmap_free(&l.iters);
    rv_decoder_free(&l.out);

    if (readonly && !fz_is_seeded(ro_db))
        fz_fail("the readonly host's database changed");
    if (!readonly)
        reset_rw();
    return 0;
}
