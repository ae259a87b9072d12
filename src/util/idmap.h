/* A map from uint32 request ids to pointers (open addressing, linear
 * probing, backward-shift deletion). Ids of pending requests are looked up
 * on every reply, so this is O(1), not a list walk. */
#ifndef RAVEL_UTIL_IDMAP_H
#define RAVEL_UTIL_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rv_idmap {
    uint32_t *keys;
    void **vals; /* NULL marks an empty slot */
    size_t cap;  /* power of two, or 0 */
    size_t len;
} rv_idmap;

void *rv_idmap_get(const rv_idmap *m, uint32_t id);
/* 0 on success, -1 when out of memory. Replaces an existing entry. */
int rv_idmap_put(rv_idmap *m, uint32_t id, void *val);
/* Removes and returns the entry, or NULL. */
void *rv_idmap_del(rv_idmap *m, uint32_t id);
/* Iterate: for (size_t i = 0; i < m->cap; i++) if (m->vals[i]) ... */
void rv_idmap_free(rv_idmap *m);

#endif
