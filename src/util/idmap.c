#include "idmap.h"

#include <stdlib.h>

#include "util/alloc.h"

static size_t slot_of(uint32_t id, size_t cap)
{
    return (size_t)(id * 2654435769u) & (cap - 1);
}

void *rv_idmap_get(const rv_idmap *m, uint32_t id)
{
    if (!m->cap)
        return NULL;
    for (size_t i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->vals[i])
            return NULL;
        if (m->keys[i] == id)
            return m->vals[i];
    }
}

static int grow(rv_idmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    uint32_t *keys = rv_calloc(cap, sizeof *keys);
    void **vals = rv_calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->vals[i])
            continue;
        size_t j = slot_of(m->keys[i], cap);
        while (vals[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int rv_idmap_put(rv_idmap *m, uint32_t id, void *val)
{
    if ((m->len + 1) * 4 > m->cap * 3 && grow(m))
        return -1;
    size_t i = slot_of(id, m->cap);
    while (m->vals[i] && m->keys[i] != id)
        i = (i + 1) & (m->cap - 1);
    if (!m->vals[i])
        m->len++;
    m->keys[i] = id;
    m->vals[i] = val;
    return 0;
}

void *rv_idmap_del(rv_idmap *m, uint32_t id)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = slot_of(id, m->cap);
    while (m->vals[i] && m->keys[i] != id)
        i = (i + 1) & mask;
    void *val = m->vals[i];
    if (!val)
        return NULL;
    /* Backward-shift: pull later entries of the probe run into the hole so
     * lookups never stop early at it. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->vals[hole] = NULL;
    m->len--;
    return val;
}

void rv_idmap_free(rv_idmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->len = 0;
}
