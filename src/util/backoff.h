/* Exponential backoff, shared by the guest's reconnect and the party's
 * election and open: the first wait, doubling up to a cap, and back to the
 * first after a success. */
#ifndef RAVEL_UTIL_BACKOFF_H
#define RAVEL_UTIL_BACKOFF_H

typedef struct rv_backoff {
    unsigned first_ms, max_ms;
    unsigned next_ms; /* 0: the next wait is the first */
} rv_backoff;

static inline void rv_backoff_init(rv_backoff *b, unsigned first_ms, unsigned max_ms)
{
    b->first_ms = first_ms;
    b->max_ms = max_ms;
    b->next_ms = 0;
}

/* The wait before the next try, in milliseconds. */
static inline unsigned rv_backoff_next(rv_backoff *b)
{
    unsigned ms = b->next_ms ? b->next_ms : b->first_ms;
    b->next_ms = ms >= b->max_ms / 2 ? b->max_ms : ms * 2;
    return ms < b->max_ms ? ms : b->max_ms;
}

static inline void rv_backoff_reset(rv_backoff *b)
{
    b->next_ms = 0;
}

#endif
