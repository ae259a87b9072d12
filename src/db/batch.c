/* Batches: the public functions and the layout's accessor. */
#include <stdlib.h>
#include <string.h>

#include "db/batch.h"
#include "db/reserved.h"
#include "error.h"
#include "util/alloc.h"

#define CHECK_KEY(key, klen) \
    if (!(key) && (klen))    \
        return rv_err(RAVEL_EINVAL, "key pointer is NULL but its length is %zu", (size_t)(klen));

ravel_batch *ravel_batch_new(void)
{
    return rv_calloc(1, sizeof(ravel_batch));
}

void ravel_batch_free(ravel_batch *b)
{
    if (!b)
        return;
    rv_buf_free(&b->data);
    free(b->ops);
    free(b->checks);
    free(b);
}

/* Append an entry (an operation or a check) to the buffer, and its offset
 * to the operations' index or the checks'. */
static int batch_add(ravel_batch *b, int type, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    if (!b)
        return rv_err(RAVEL_EINVAL, "batch is NULL");
    CHECK_KEY(key, klen);
    CHECK_KEY(val, vlen);
    if (type != RV_OP_CHECK && type != RV_OP_CHECK_ABSENT && rv_is_reserved(key, klen))
        return rv_err_reserved();
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return rv_err(RAVEL_ETOOBIG, "key or value over 4 GiB");
    int check = type == RV_OP_CHECK || type == RV_OP_CHECK_ABSENT;
    size_t **index = check ? &b->checks : &b->ops;
    size_t *n = check ? &b->nchecks : &b->count;
    size_t *cap = check ? &b->checks_cap : &b->cap;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        size_t *grown = rv_realloc(*index, ncap * sizeof *grown);
        if (!grown)
            return rv_err(RAVEL_ENOMEM, "out of memory");
        *index = grown;
        *cap = ncap;
    }
    uint32_t lens[2] = {(uint32_t)klen, (uint32_t)vlen};
    uint8_t t = (uint8_t)type;
    size_t at = b->data.len;
    if (rv_buf_reserve(&b->data, 1 + sizeof lens + klen + vlen))
        return rv_err(RAVEL_ENOMEM, "out of memory");
    rv_buf_append(&b->data, &t, 1);
    rv_buf_append(&b->data, lens, sizeof lens);
    rv_buf_append(&b->data, key, klen);
    rv_buf_append(&b->data, val, vlen);
    (*index)[(*n)++] = at;
    return RAVEL_OK;
}

int ravel_batch_put(ravel_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    return batch_add(b, RV_OP_PUT, key, klen, val, vlen);
}

int ravel_batch_del(ravel_batch *b, const void *key, size_t klen)
{
    return batch_add(b, RV_OP_DEL, key, klen, NULL, 0);
}

int ravel_batch_check(ravel_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    return batch_add(b, RV_OP_CHECK, key, klen, val, vlen);
}

int ravel_batch_check_absent(ravel_batch *b, const void *key, size_t klen)
{
    return batch_add(b, RV_OP_CHECK_ABSENT, key, klen, NULL, 0);
}

void ravel_batch_clear(ravel_batch *b)
{
    if (b) {
        b->data.len = 0;
        b->count = 0;
        b->nchecks = 0;
    }
}

size_t ravel_batch_check_count(const ravel_batch *b)
{
    return b ? b->nchecks : 0;
}

size_t ravel_batch_count(const ravel_batch *b)
{
    return b ? b->count : 0;
}

static void entry_at(const ravel_batch *b, size_t at, int *type, const char **key, size_t *klen,
                     const char **val, size_t *vlen)
{
    const char *p = b->data.data + at;
    uint32_t lens[2];
    memcpy(lens, p + 1, sizeof lens);
    *type = (uint8_t)p[0];
    *key = p + 1 + sizeof lens;
    *klen = lens[0];
    *val = *key + lens[0];
    *vlen = lens[1];
}

void rv_batch_op(const ravel_batch *b, size_t i, int *type, const char **key, size_t *klen,
                 const char **val, size_t *vlen)
{
    entry_at(b, b->ops[i], type, key, klen, val, vlen);
}

void rv_batch_check_at(const ravel_batch *b, size_t i, int *type, const char **key,
                       size_t *klen, const char **val, size_t *vlen)
{
    entry_at(b, b->checks[i], type, key, klen, val, vlen);
}

int ravel_batch_op(const ravel_batch *b, size_t i, int *is_put, const char **key, size_t *klen,
                   const char **val, size_t *vlen)
{
    if (!b || i >= b->count || !is_put || !key || !klen || !val || !vlen)
        return rv_err(RAVEL_EINVAL, "no such batch operation");
    int type;
    rv_batch_op(b, i, &type, key, klen, val, vlen);
    *is_put = type == RV_OP_PUT;
    return RAVEL_OK;
}
