#include <string.h>

#include "db/range.h"
#include "error.h"

void ravel_range_init(ravel_range *r)
{
    memset(r, 0, sizeof *r);
    r->limit = -1;
    r->keys = 1;
    r->values = 1;
}

int rv_keycmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

int rv_range_side(const ravel_range *r, const char *key, size_t klen)
{
    /* As in abstract-level: gte takes precedence over gt, lte over lt. */
    if (r->has_gte) {
        if (rv_keycmp(key, klen, r->gte.data, r->gte.len) < 0)
            return -1;
    } else if (r->has_gt && rv_keycmp(key, klen, r->gt.data, r->gt.len) <= 0) {
        return -1;
    }
    if (r->has_lte) {
        if (rv_keycmp(key, klen, r->lte.data, r->lte.len) > 0)
            return 1;
    } else if (r->has_lt && rv_keycmp(key, klen, r->lt.data, r->lt.len) >= 0) {
        return 1;
    }
    return 0;
}

int rv_range_copy_init(rv_range_copy *c, const ravel_range *r)
{
    memset(c, 0, sizeof *c);
    if (r)
        c->r = *r;
    else
        ravel_range_init(&c->r);
    ravel_bound *b[4] = {&c->r.gt, &c->r.gte, &c->r.lt, &c->r.lte};
    int has[4] = {c->r.has_gt, c->r.has_gte, c->r.has_lt, c->r.has_lte};
    size_t total = 0;
    for (int i = 0; i < 4; i++)
        if (has[i])
            total += b[i]->len;
    if (rv_buf_reserve(&c->bytes, total + 1))
        return rv_err(RAVEL_ENOMEM, "out of memory copying a range");
    for (int i = 0; i < 4; i++) {
        if (!has[i]) {
            *b[i] = (ravel_bound){0};
            continue;
        }
        if (b[i]->len && !b[i]->data)
            return rv_err(RAVEL_EINVAL, "range bound has a length but no data");
        char *dst = c->bytes.data + c->bytes.len;
        rv_buf_append(&c->bytes, b[i]->data, b[i]->len);
        b[i]->data = dst;
    }
    return RAVEL_OK;
}

void rv_range_copy_free(rv_range_copy *c)
{
    rv_buf_free(&c->bytes);
}
