#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

int rv_buf_reserve(rv_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t need = b->len + extra;
    if (need < b->len)
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = rv_realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int rv_buf_append(rv_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (rv_buf_reserve(b, n))
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int rv_buf_set(rv_buf *b, const void *p, size_t n)
{
    b->len = 0;
    return rv_buf_append(b, p, n);
}

void rv_buf_consume(rv_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void rv_buf_swap(rv_buf *a, rv_buf *b)
{
    rv_buf t = *a;
    *a = *b;
    *b = t;
}

void rv_buf_free(rv_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

size_t rv_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t rv_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
