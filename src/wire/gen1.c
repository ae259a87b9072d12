#include "gen1.h"

#include <string.h>
#include <strings.h>

#include "error.h"

const char *rv_gen1_error_text(int rc, const char *words)
{
    switch (rc) {
    case RAVEL_ENOTFOUND: return "NotFound: ";
    case RAVEL_EREADONLY: return "Database is readonly";
    default: return words && *words ? words : ravel_strerror(rc);
    }
}

int rv_gen1_code(const char *text)
{
    /* The Node guest's own test (levelup: /notfound/i), so that a missing
     * key is told apart the same way whichever host says it. */
    for (const char *p = text; *p; p++)
        if (strncasecmp(p, "notfound", 8) == 0)
            return RAVEL_ENOTFOUND;
    if (strcmp(text, "Database is readonly") == 0)
        return RAVEL_EREADONLY;
    return RAVEL_EREMOTE;
}

Ravelwire__Gen1Iterator *rv_gen1_unpack_iterator(const uint8_t *payload, size_t len, int *status)
{
    return (Ravelwire__Gen1Iterator *)rv_unpack_as(&ravelwire__gen1_iterator__descriptor, payload,
                                                   len, status);
}

Ravelwire__Gen1IteratorData *rv_gen1_unpack_iter_data(const uint8_t *payload, size_t len,
                                                      int *status)
{
    return (Ravelwire__Gen1IteratorData *)rv_unpack_as(&ravelwire__gen1_iterator_data__descriptor,
                                                       payload, len, status);
}

int rv_gen1_encode_iter_data(rv_buf *out, uint32_t id, const char *error, int has_key,
                             const void *key, size_t klen, int has_value, const void *value,
                             size_t vlen)
{
    Ravelwire__Gen1IteratorData m = RAVELWIRE__GEN1_ITERATOR_DATA__INIT;
    m.id = id;
    m.error = (char *)error;
    m.has_key = has_key != 0;
    m.key.data = (uint8_t *)key;
    m.key.len = klen;
    m.has_value = has_value != 0;
    m.value.data = (uint8_t *)value;
    m.value.len = vlen;
    return rv_encode(out, 1, &m.base);
}
