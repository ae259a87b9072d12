/* The public API of watches and the change log: argument checks, the
 * handle's `watch` or `changelog`, and the callback form — a thread per
 * watch that calls next in a loop, the same for every handle kind. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/range.h"
#include "error.h"
#include "util/alloc.h"

void ravel_watch_options_init(ravel_watch_options *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = 10000;
}

/* A prefix as bounds: gte prefix, lt the prefix with its last byte below
 * 0xff raised by one (what follows has none: no upper bound). */
static int prefix_range(const ravel_watch_options *o, ravel_range *r, char **hi)
{
    ravel_range_init(r);
    *hi = NULL;
    r->has_gte = 1;
    r->gte.data = o->prefix;
    r->gte.len = o->prefix_len;
    size_t n = o->prefix_len;
    const unsigned char *p = o->prefix;
    while (n && p[n - 1] == 0xff)
        n--;
    if (!n)
        return RAVEL_OK;
    *hi = rv_malloc(n);
    if (!*hi)
        return rv_err(RAVEL_ENOMEM, "out of memory");
    memcpy(*hi, p, n);
    (*hi)[n - 1]++;
    r->has_lt = 1;
    r->lt.data = *hi;
    r->lt.len = n;
    return RAVEL_OK;
}

static int watch_open(ravel_db *db, const ravel_watch_options *o, ravel_watch **out)
{
    if (!db || !out)
        return rv_err(RAVEL_EINVAL, "handle or result pointer is NULL");
    *out = NULL;
    ravel_watch_options opts;
    if (o)
        opts = *o;
    else
        ravel_watch_options_init(&opts);
    if (opts.has_prefix && opts.range)
        return rv_err(RAVEL_EINVAL, "a watch takes a range or a prefix, not both");
    if (opts.has_prefix && !opts.prefix && opts.prefix_len)
        return rv_err(RAVEL_EINVAL, "prefix pointer is NULL but its length is %zu",
                      opts.prefix_len);
    if (!db->ops->watch)
        return rv_err(RAVEL_ENOTSUP, "this handle cannot watch");
    ravel_range r;
    char *hi = NULL;
    if (opts.has_prefix) {
        int rc = prefix_range(&opts, &r, &hi);
        if (rc)
            return rc;
        opts.range = &r;
        opts.has_prefix = 0;
    }
    int rc = db->ops->watch(db, &opts, out);
    free(hi);
    return rc;
}

int ravel_watch_new(ravel_db *db, const ravel_watch_options *o, ravel_watch **out)
{
    return watch_open(db, o, out);
}

int ravel_watch_next(ravel_watch *w, ravel_change *c, int timeout_ms)
{
    if (!w || !c)
        return rv_err(RAVEL_EINVAL, "watch or change pointer is NULL");
    if (w->has_thread)
        return rv_err(RAVEL_EINVAL, "this watch delivers to its callback");
    return w->ops->next(w, c, timeout_ms);
}

/* The callback form's thread. It waits in short slices so that a free
 * from another thread is noticed within one. */
static void watch_main(void *arg)
{
    ravel_watch *w = arg;
    for (;;) {
        if (atomic_load(&w->stop))
            break;
        ravel_change c;
        int rc = w->ops->next(w, &c, 100);
        if (rc == RAVEL_ETIMEDOUT)
            continue;
        w->cb(w->ud, rc, rc == RAVEL_OK ? &c : NULL);
        if (rc != RAVEL_OK)
            break;
    }
    /* Freed from its own callback: nobody joins us; we free it. */
    if (atomic_load(&w->freed_in_cb))
        w->ops->free(w);
}

int ravel_watch_start(ravel_db *db, const ravel_watch_options *o, ravel_change_cb cb, void *ud,
                      ravel_watch **out)
{
    if (!cb)
        return rv_err(RAVEL_EINVAL, "callback is NULL");
    ravel_watch *w;
    int rc = watch_open(db, o, &w);
    if (rc)
        return rc;
    w->cb = cb;
    w->ud = ud;
    /* Set before the thread runs, so the thread sees it as well. */
    w->has_thread = 1;
    if (uv_thread_create(&w->thread, watch_main, w) != 0) {
        w->ops->free(w);
        return rv_err(RAVEL_ENOMEM, "cannot start the watch's thread");
    }
    *out = w;
    return RAVEL_OK;
}

void ravel_watch_free(ravel_watch *w)
{
    if (!w)
        return;
    if (!w->has_thread) {
        w->ops->free(w);
        return;
    }
    uv_thread_t self = uv_thread_self();
    if (uv_thread_equal(&self, &w->thread)) {
        atomic_store(&w->stop, 1);
        atomic_store(&w->freed_in_cb, 1);
        pthread_detach(w->thread);
        return;
    }
    atomic_store(&w->stop, 1);
    uv_thread_join(&w->thread);
    w->ops->free(w);
}

int ravel_changelog_get(ravel_db *db, ravel_changelog *out)
{
    if (!db || !out)
        return rv_err(RAVEL_EINVAL, "handle or result pointer is NULL");
    if (!db->ops->changelog)
        return rv_err(RAVEL_ENOTSUP, "this handle has no change log");
    return db->ops->changelog(db, NULL, out);
}

int ravel_changelog_set(ravel_db *db, const ravel_changelog *set, ravel_changelog *out)
{
    if (!db || !set)
        return rv_err(RAVEL_EINVAL, "handle or setting is NULL");
    if (!db->ops->changelog)
        return rv_err(RAVEL_ENOTSUP, "this handle has no change log");
    ravel_changelog ignored;
    return db->ops->changelog(db, set, out ? out : &ignored);
}
