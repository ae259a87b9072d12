/* fuzz-guest-session: a guest session with requests and iterators pending
 * (the fixture's scenario), fed arbitrary host replies.
 *
 * Input: a flags byte, a cut offset (two bytes, little endian), then the
 * host's bytes.
 *   bit 0     retry on
 *   bit 1     seek the first iterator before anything arrives
 *   bit 2     close the third iterator before anything arrives
 *   bits 3-5  size of the feeds (fz_chunk_size)
 *   bit 6     the first generation's protocol (multileveldown 5): the
 *             host's IteratorData is its Gen1IteratorData, errors text
 * At the cut offset (if 0 < cut < length) the stream is lost. A feed error
 * loses it too, dropping the rest of that feed. After a loss, with retry a
 * new stream is attached and the remaining bytes arrive on it; without,
 * nothing more arrives.
 *
 * After every feed the fixture settles the session as a transport would
 * (completions collected, every iterator taken from until it waits). At the
 * end the stream is lost and the session closed. Checks, besides no crash,
 * leak or hang: every request completes exactly once, with a reply of the
 * type its request expects; no iterator hands out more than its limit. */
#include "fixture.h"

enum { F_RETRY = 1, F_SEEK = 2, F_CLOSE_ITER = 4, F_GEN1 = 64 };

/* Feed p[0..n) in chunks until a feed fails. Returns how many bytes were
 * used up: a failed feed counts whole, as the transport drops the bytes it
 * read along with the stream. */
static size_t feed(fz_guest *g, const uint8_t *p, size_t n, size_t chunk, int *failed)
{
    *failed = 0;
    size_t off = 0;
    while (off < n && !*failed) {
        size_t len = n - off < chunk ? n - off : chunk;
        *failed = rv_gsession_feed(&g->s, p + off, len) != 0;
        off += len;
        fz_guest_settle(g);
        g->s.out.len = 0; /* written to the host */
    }
    return off;
}

/* The stream ends; with retry a new one comes. 0 if it did. */
static int reconnect(fz_guest *g)
{
    rv_gsession_lost(&g->s);
    fz_guest_settle(g);
    if (!g->s.retry)
        return -1;
    if (rv_gsession_connected(&g->s))
        fz_fail("connected: out of memory");
    g->s.out.len = 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned flags = data[0];
    size_t cut = (size_t)data[1] | (size_t)data[2] << 8;
    const uint8_t *p = data + 3;
    size_t n = size - 3;
    if (cut >= n)
        cut = 0; /* no cut */

    fz_guest g;
    fz_dialect = flags & F_GEN1 ? RV_DIALECT_GEN1 : RV_DIALECT_MANY;
    fz_guest_start(&g, flags & F_RETRY, flags & F_SEEK);
    if (flags & F_CLOSE_ITER)
        fz_guest_close_iter(&g, FZ_NITERS - 1);
    g.s.out.len = 0;

    size_t chunk = fz_chunk_size(flags >> 3, n);
    size_t off = 0;
    int up = 1;
    while (up && off < n) {
        /* This stream gets the bytes up to the cut, or all the rest. */
        size_t end = off < cut ? cut : n;
        int failed;
        off += feed(&g, p + off, end - off, chunk, &failed);
        if (failed || off == cut)
            up = reconnect(&g) == 0;
    }
    rv_gsession_lost(&g.s);
    fz_guest_finish(&g);
    return 0;
}
