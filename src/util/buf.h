/* A growable byte buffer, the unit of I/O between the sans-IO sessions and
 * the transport. */
#ifndef RAVEL_UTIL_BUF_H
#define RAVEL_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct rv_buf {
    char *data;
    size_t len;
    size_t cap;
} rv_buf;

/* All return 0 on success, -1 when out of memory (the buffer is unchanged). */
int rv_buf_reserve(rv_buf *b, size_t extra);
int rv_buf_append(rv_buf *b, const void *p, size_t n);
int rv_buf_set(rv_buf *b, const void *p, size_t n);
/* Drop the first n bytes. */
void rv_buf_consume(rv_buf *b, size_t n);
void rv_buf_swap(rv_buf *a, rv_buf *b);
void rv_buf_free(rv_buf *b);

/* Write the unsigned LEB128 varint of v at p (at most 10 bytes); returns
 * the number of bytes written. */
size_t rv_varint_put(uint8_t *p, uint64_t v);
/* The number of bytes rv_varint_put would write for v. */
size_t rv_varint_len(uint64_t v);

#endif
