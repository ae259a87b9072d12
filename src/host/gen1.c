/* The host side of the first generation's iterators (multileveldown 5),
 * inside the host session: an Iterator (tag 4) opens an iterator with a
 * budget of entries, sets the budget again (same id, no options), or
 * closes it (batch 0). Each entry goes out in its own IteratorData (tag
 * 1); a frame with only the id is the end, one with an error the failure.
 * The bytes are what multileveldown 5's server.js writes. */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "host/session.h"
#include "util/alloc.h"
#include "wire/gen1.h"

typedef struct g1iter {
    uint32_t id;
    ravel_iter *it;
    int keys, values; /* what goes in each entry's frame */
    uint32_t budget;  /* entries the guest still takes */
    int done;         /* the end or an error went out */
} g1iter;

static void g1iter_free(g1iter *g)
{
    ravel_iter_free(g->it);
    free(g);
}

void rv_gen1_host_free(rv_hsession *s)
{
    for (size_t i = 0; i < s->gen1_iters.cap; i++)
        if (s->gen1_iters.vals[i])
            g1iter_free(s->gen1_iters.vals[i]);
    rv_idmap_free(&s->gen1_iters);
}

/* The end (no error) or a failure, after which nothing more is sent. */
static int finish(rv_hsession *s, g1iter *g, const char *error)
{
    g->done = 1;
    return rv_gen1_encode_iter_data(&s->out, g->id, error, 0, NULL, 0, 0, NULL, 0);
}

/* Send entries while the budget lasts. A budget is the guest's to choose
 * (up to 2^32 - 1): the output is flushed at the high-water mark, so one
 * that never reads stalls its own connection, not the host's memory. */
static int send_entries(rv_hsession *s, g1iter *g)
{
    while (!g->done && g->budget > 0) {
        g->budget--;
        const char *k, *v;
        size_t kl, vl;
        int rc = ravel_iter_next(g->it, &k, &kl, &v, &vl);
        if (rc == RAVEL_END)
            rc = finish(s, g, NULL);
        else if (rc == RAVEL_ENOMEM)
            return rc; /* the connection closes; a retrying guest resumes */
        else if (rc != RAVEL_OK)
            rc = finish(s, g, rv_gen1_error_text(rc, ravel_errmsg()));
        else if (!g->keys && !g->values)
            /* Neither asked for: multileveldown's host sends a frame with
             * neither, which its guest reads as the end, and stops. */
            rc = finish(s, g, NULL);
        else
            rc = rv_gen1_encode_iter_data(&s->out, g->id, NULL, g->keys, k, kl, g->values, v, vl);
        if (rc != RAVEL_OK)
            return rc;
        if (s->out.len >= RV_HOST_HIGH_WATER && s->flush && s->flush(s->flush_ud))
            return RAVEL_ECONNLOST;
    }
    return RAVEL_OK;
}

#define BOUND(r, o, name)                         \
    do {                                          \
        if ((o)->has_##name) {                    \
            (r)->has_##name = 1;                  \
            (r)->name.data = (o)->name.data;      \
            (r)->name.len = (o)->name.len;        \
        }                                         \
    } while (0)

static int open_iter(rv_hsession *s, const Ravelwire__Gen1Iterator *m, g1iter **out)
{
    *out = NULL;
    if (s->gen1_iters.len >= s->opts->max_iterators) {
        char why[96];
        snprintf(why, sizeof why, "at most %zu iterators are open per connection",
                 s->opts->max_iterators);
        return rv_gen1_encode_iter_data(&s->out, m->id, why, 0, NULL, 0, 0, NULL, 0);
    }
    const Ravelwire__Gen1Iterator__Options *o = m->options;
    ravel_range r;
    ravel_range_init(&r);
    g1iter *g = rv_calloc(1, sizeof *g);
    if (!g || rv_idmap_put(&s->gen1_iters, m->id, g)) {
        free(g);
        return RAVEL_ENOMEM;
    }
    g->id = m->id;
    /* Absent options are LevelDB's defaults, as multileveldown's host
     * hands them to leveldown: keys and values, no limit, forward. */
    g->keys = !o || !o->has_keys || o->keys;
    g->values = !o || !o->has_values || o->values;
    if (o) {
        BOUND(&r, o, gt);
        BOUND(&r, o, gte);
        BOUND(&r, o, lt);
        BOUND(&r, o, lte);
        r.limit = o->has_limit && o->limit >= 0 ? o->limit : -1;
        r.reverse = o->has_reverse && o->reverse;
    }
    r.keys = g->keys;
    r.values = g->values;
    *out = g;
    int rc = ravel_iter_new(s->db, &r, &g->it);
    if (rc == RAVEL_ENOMEM)
        return rc;
    if (rc != RAVEL_OK) {
        g->it = NULL;
        return finish(s, g, rv_gen1_error_text(rc, ravel_errmsg()));
    }
    return RAVEL_OK;
}

int rv_gen1_host_iterator(rv_hsession *s, const uint8_t *payload, size_t len)
{
    int rc;
    Ravelwire__Gen1Iterator *m = rv_gen1_unpack_iterator(payload, len, &rc);
    if (!m)
        return rc;
    g1iter *g = rv_idmap_get(&s->gen1_iters, m->id);
    rc = RAVEL_OK;
    if (!m->has_batch || m->batch == 0) {
        /* Close (an unknown id: nothing to close). */
        if (g) {
            rv_idmap_del(&s->gen1_iters, m->id);
            g1iter_free(g);
        }
    } else {
        if (!g)
            rc = open_iter(s, m, &g);
        if (rc == RAVEL_OK && g) {
            g->budget = m->batch; /* set, not added: the guest's re-arm */
            rc = send_entries(s, g);
        }
    }
    protobuf_c_message_free_unpacked(&m->base, &rv_pb_allocator);
    return rc;
}
