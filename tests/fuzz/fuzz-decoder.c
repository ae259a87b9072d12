/* fuzz-decoder: the frame decoder and the message unpackers.
 *
 * Input: two bytes choosing a split point (little endian, taken modulo the
 * stream's length + 1), then the byte stream.
 *
 * The stream is decoded three ways: in one feed, in two feeds cut at the
 * chosen point, and one byte per feed. All three must deliver the same
 * frames and end with the same status: where the network cuts a stream
 * must not matter. Every frame is unpacked both as a guest-to-host and as a
 * host-to-guest message, and as the first generation's Iterator and
 * IteratorData (an IteratorData that unpacks must survive the host's
 * writer, rv_gen1_encode_iter_data); a message that unpacks must encode into a frame
 * that decodes and unpacks again to the same bytes. The hand-written
 * parsers of the hot messages (rv_parse_iter_data, rv_parse_batch) are
 * checked against protobuf-c on every frame's message bytes: same verdict,
 * same values; and rv_msg_wants_sync must see every sync that protobuf-c
 * reads in a Put, Delete or Batch. */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "util/alloc.h"
#include "wire/gen1.h"
#include "wire/codec.h"

/* Small, so a length from the input cannot ask for much memory. */
#define MAX_FRAME (1u << 20)

typedef struct decoded {
    rv_buf frames; /* each frame delivered: its varint length, then it */
    int unpack;    /* also unpack every frame (once per input is enough) */
} decoded;

typedef ProtobufCMessage *(*unpack_fn)(const uint8_t *payload, size_t len, int *status);

static int take_payload(void *ud, const uint8_t *p, size_t len)
{
    rv_buf *out = ud;
    if (out->len)
        fz_fail("an encoded message decoded into more than one frame");
    if (rv_buf_append(out, p, len))
        fz_fail("out of memory");
    return 0;
}

/* Does m, or a message inside it, have unknown fields (any, or only those
 * with a field number protobuf forbids)? protobuf-c keeps unknown fields
 * and packs them again as they came, and it is lax about their numbers:
 * it accepts field number 0 when its tag takes more than one byte (80 00)
 * though it refuses the one-byte 00 it then writes, and numbers up to
 * 2^32-1 where protobuf stops at 2^29-1. ravel ignores unknown fields and
 * never re-encodes a received message, so the re-encoding check skips
 * messages with any, and the hand-written parsers may refuse those
 * numbers. */
static int has_unknown(const ProtobufCMessage *m, int only_invalid)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (!only_invalid || m->unknown_fields[i].tag == 0 ||
            m->unknown_fields[i].tag > 0x1fffffff)
            return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *at = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *sub = *(ProtobufCMessage *const *const *)at;
            for (size_t j = 0; j < n; j++)
                if (has_unknown(sub[j], only_invalid))
                    return 1;
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)at;
            if (sub && has_unknown(sub, only_invalid))
                return 1;
        }
    }
    return 0;
}

/* Encode m, decode the frame, unpack it, encode that: the two encodings
 * must be equal (the first unpack already normalised the input's field
 * order, duplicates and the like). This checks rv_encode's framing over
 * every size and shape of message the fuzzer makes. */
static void check_reencode(const ProtobufCMessage *m, uint8_t tag, unpack_fn unpack)
{
    rv_buf first = {0}, payload = {0}, second = {0};
    if (rv_encode(&first, tag, m))
        fz_fail("out of memory");
    rv_decoder d;
    rv_decoder_init(&d, RV_DEFAULT_MAX_FRAME);
    int rc = rv_decoder_feed(&d, (const uint8_t *)first.data, first.len, take_payload, &payload);
    if (rc || d.in_payload || d.shift || payload.len == 0 || (uint8_t)payload.data[0] != tag)
        fz_fail("rv_encode wrote a frame the decoder does not give back whole (%d)", rc);
    int status;
    ProtobufCMessage *again = unpack((const uint8_t *)payload.data, payload.len, &status);
    if (!again)
        fz_fail("a re-encoded %s does not unpack (%d)", m->descriptor->name, status);
    if (rv_encode(&second, tag, again))
        fz_fail("out of memory");
    if (second.len != first.len || memcmp(second.data, first.data, first.len) != 0)
        fz_fail("re-encoding a %s is not stable", m->descriptor->name);
    protobuf_c_message_free_unpacked(again, NULL);
    rv_decoder_free(&d);
    rv_buf_free(&first);
    rv_buf_free(&payload);
    rv_buf_free(&second);
}

static void check_unpack(const uint8_t *p, size_t len, int (*known_tag)(uint8_t), unpack_fn unpack)
{
    int status;
    ProtobufCMessage *m = unpack(p, len, &status);
    int known = known_tag(p[0]);
    if (m && status != 0)
        fz_fail("unpacked a message but reported status %d", status);
    if (!m && status != (known ? RAVEL_EPROTO : 0))
        fz_fail("tag %u: no message and status %d", p[0], status);
    if (m) {
        if (!has_unknown(m, 0))
            check_reencode(m, p[0], unpack);
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

static int same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* The wire type protobuf gives a field of type t. */
static unsigned wire_type_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 1;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return 5;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 2;
    default:
        return 0; /* the varints: integers, bool, enum */
    }
}

/* Does msg carry one of m's non-repeated scalar fields (a bool or an
 * integer) in a wire type other than its own? protobuf-c is lenient there
 * where the hand-written parsers refuse the message as malformed: it takes
 * a scalar sent length-delimited as a packed list (a value from it, or an
 * empty list as the field present with 0), which protobuf allows for
 * repeated fields only, and a bool in any wire type at all (fixed32 or
 * fixed64: true when any of its bytes is not 0). */
static int mistyped_scalar(const uint8_t *msg, size_t len, const ProtobufCMessage *m)
{
    const uint8_t *p = msg, *end = msg + len;
    while (p < end) {
        uint64_t key = 0, n = 0;
        unsigned shift = 0;
        do {
            if (p >= end || shift > 63)
                return 0;
            key |= (uint64_t)(*p & 0x7f) << shift;
            shift += 7;
        } while (*p++ & 0x80);
        unsigned type = (unsigned)(key & 7);
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(m->descriptor, (unsigned)(key >> 3));
        if (f && f->label != PROTOBUF_C_LABEL_REPEATED && wire_type_of(f->type) != 2 &&
            type != wire_type_of(f->type))
            return 1;
        if (type == 0) {
            while (p < end && (*p++ & 0x80))
                ;
        } else if (type == 1 || type == 5) {
            if ((size_t)(end - p) < (type == 1 ? 8u : 4u))
                return 0;
            p += type == 1 ? 8 : 4;
        } else if (type == 2) {
            shift = 0;
            do {
                if (p >= end || shift > 63)
                    return 0;
                n |= (uint64_t)(*p & 0x7f) << shift;
                shift += 7;
            } while (*p++ & 0x80);
            if (n > (uint64_t)(end - p))
                return 0;
            p += n;
        } else {
            return 0;
        }
    }
    return 0;
}

/* The hand-written parsers must accept exactly what protobuf-c accepts
 * (but for forbidden field numbers, see has_unknown, and scalars sent
 * in another wire type, see mistyped_scalar) and read the same values.
 * Returns 1 when both accepted, so the values are to be compared. */
static int both_accept(const ProtobufCMessage *pc, const uint8_t *msg, size_t len, int rc,
                       const char *what)
{
    if (!pc && rc == RAVEL_OK)
        fz_fail("the hand-written %s parser accepts what protobuf-c rejects", what);
    if (pc && rc != RAVEL_OK && !has_unknown(pc, 1) && !mistyped_scalar(msg, len, pc))
        fz_fail("the hand-written %s parser rejects what protobuf-c accepts (%d)", what, rc);
    return pc && rc == RAVEL_OK;
}

static void check_iter_data(const uint8_t *msg, size_t len)
{
    Ravelwire__IteratorData *pc = ravelwire__iterator_data__unpack(NULL, len, msg);
    uint32_t id = 0, seq = 0;
    size_t n = 0;
    int rc = rv_parse_iter_data(msg, len, &id, &seq, NULL, 0, &n);
    if (both_accept(pc ? &pc->base : NULL, msg, len, rc, "IteratorData")) {
        size_t *items = malloc((2 * n + 1) * sizeof *items);
        size_t n2 = 0;
        if (!items)
            fz_fail("out of memory");
        if (rv_parse_iter_data(msg, len, &id, &seq, items, n, &n2) || n2 != n)
            fz_fail("rv_parse_iter_data: a second pass differs");
        if (id != pc->id || seq != pc->seq || n != pc->n_data)
            fz_fail("IteratorData: id %u/%u, seq %u/%u, %zu/%zu items (hand/protobuf-c)", id,
                    pc->id, seq, pc->seq, n, pc->n_data);
        for (size_t i = 0; i < n; i++)
            if (!same_bytes(msg + items[2 * i], items[2 * i + 1], pc->data[i].data,
                            pc->data[i].len))
                fz_fail("IteratorData item %zu differs", i);
        free(items);
    }
    if (pc)
        ravelwire__iterator_data__free_unpacked(pc, NULL);
}

typedef struct ops_seen {
    rv_batch_op_view *ops;
    size_t n, cap;
} ops_seen;

static int take_op(void *ud, const rv_batch_op_view *op)
{
    ops_seen *o = ud;
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 16;
        o->ops = realloc(o->ops, o->cap * sizeof *o->ops);
        if (!o->ops)
            fz_fail("out of memory");
    }
    o->ops[o->n++] = *op;
    return 0;
}

static void check_batch(const uint8_t *msg, size_t len)
{
    Ravelwire__Batch *pc = ravelwire__batch__unpack(NULL, len, msg);
    rv_batch_head head;
    ops_seen o = {0};
    int rc = rv_parse_batch(msg, len, &head, take_op, &o);
    uint32_t id = head.id;
    if (!pc && rc == RAVEL_OK && o.n)
        fz_fail("rv_parse_batch handed over operations of a message it then accepted");
    if (rc != RAVEL_OK && o.n)
        fz_fail("rv_parse_batch handed over %zu operations of a message it rejects", o.n);
    /* The ring server runs a write itself only when rv_msg_wants_sync says
     * no: never one that asks for sync. */
    if (pc && pc->has_sync && pc->sync && !rv_msg_wants_sync(msg, len))
        fz_fail("rv_msg_wants_sync misses a Batch's sync");
    if (both_accept(pc ? &pc->base : NULL, msg, len, rc, "Batch")) {
        if (id != pc->id || o.n != pc->n_ops + pc->n_checks || head.nchecks != pc->n_checks ||
            head.sync != (pc->has_sync && pc->sync))
            fz_fail("Batch: id %u/%u, %zu/%zu entries, sync %d/%d (hand/protobuf-c)", id, pc->id,
                    o.n, pc->n_ops + pc->n_checks, head.sync, pc->has_sync && pc->sync);
        /* Operations and checks each in the order sent, whichever way
         * the two interleave on the wire. */
        size_t nck = 0;
        for (size_t i = 0; i < o.n; i++) {
            const rv_batch_op_view *h = &o.ops[i];
            if (!h->is_check)
                continue;
            const Ravelwire__Batch__Check *c = pc->checks[nck++];
            if (!same_bytes(h->key, h->key_len, c->key.data, c->key.len) ||
                h->has_value != (c->has_value != 0) ||
                (h->has_value && !same_bytes(h->value, h->value_len, c->value.data, c->value.len)))
                fz_fail("Batch check %zu differs", nck - 1);
        }
        size_t opi = 0;
        for (size_t j = 0; j < o.n; j++) {
            if (o.ops[j].is_check)
                continue;
            size_t i = opi++;
            const rv_batch_op_view *h = &o.ops[j];
            const Ravelwire__Batch__Operation *p = pc->ops[i];
            /* protobuf-c hands a string over NUL-terminated: compare up to
             * the first NUL, as far as a C string reaches. */
            const uint8_t *nul = h->type_len ? memchr(h->type, 0, h->type_len) : NULL;
            size_t tlen = nul ? (size_t)(nul - h->type) : h->type_len;
            if (!same_bytes(h->type, tlen, (const uint8_t *)p->type, strlen(p->type)) ||
                !same_bytes(h->key, h->key_len, p->key.data, p->key.len) ||
                h->has_value != (p->has_value != 0) ||
                (h->has_value && !same_bytes(h->value, h->value_len, p->value.data, p->value.len)))
                fz_fail("Batch operation %zu differs", i);
        }
    }
    free(o.ops);
    if (pc)
        ravelwire__batch__free_unpacked(pc, NULL);
}

/* Get, Put and Delete through rv_parse_keyed against protobuf-c. */
static void check_keyed(const uint8_t *msg, size_t len)
{
    for (int kind = 0; kind < 3; kind++) {
        ProtobufCMessage *pc = NULL;
        const ProtobufCBinaryData *key = NULL, *value = NULL;
        uint32_t id = 0;
        if (kind == 0) {
            Ravelwire__Get *m = ravelwire__get__unpack(NULL, len, msg);
            if (m)
                pc = &m->base, id = m->id, key = &m->key;
        } else if (kind == 1) {
            Ravelwire__Put *m = ravelwire__put__unpack(NULL, len, msg);
            if (m)
                pc = &m->base, id = m->id, key = &m->key, value = m->has_value ? &m->value : NULL;
        } else {
            Ravelwire__Delete *m = ravelwire__delete__unpack(NULL, len, msg);
            if (m)
                pc = &m->base, id = m->id, key = &m->key;
        }
        if (kind == 1 && pc && ((Ravelwire__Put *)pc)->has_sync && ((Ravelwire__Put *)pc)->sync &&
            !rv_msg_wants_sync(msg, len))
            fz_fail("rv_msg_wants_sync misses a Put's sync");
        if (kind == 2 && pc && ((Ravelwire__Delete *)pc)->has_sync &&
            ((Ravelwire__Delete *)pc)->sync && !rv_msg_wants_sync(msg, len))
            fz_fail("rv_msg_wants_sync misses a Delete's sync");
        rv_keyed k;
        int rc = rv_parse_keyed(msg, len, (uint8_t)kind, &k); /* 0 Get, 1 Put, 2 Delete: their tags */
        if (both_accept(pc, msg, len, rc, kind == 0 ? "Get" : kind == 1 ? "Put" : "Delete")) {
            if (k.id != id || !same_bytes(k.key, k.key_len, key->data, key->len) ||
                k.has_value != (value != NULL) ||
                (value && !same_bytes(k.value, k.value_len, value->data, value->len)))
                fz_fail("rv_parse_keyed differs from protobuf-c (kind %d)", kind);
        }
        if (pc)
            protobuf_c_message_free_unpacked(pc, NULL);
    }
}

/* The first generation's two messages of its own (wire/gen1.h), whatever
 * the tag: an IteratorData that unpacks re-encodes, through the host's
 * writer, to a frame that unpacks to the same fields. */
static void check_gen1(const uint8_t *p, size_t len)
{
    int rc;
    Ravelwire__Gen1Iterator *it = rv_gen1_unpack_iterator(p, len, &rc);
    if (it)
        protobuf_c_message_free_unpacked(&it->base, &rv_pb_allocator);
    Ravelwire__Gen1IteratorData *d = rv_gen1_unpack_iter_data(p, len, &rc);
    if (!d)
        return;
    rv_buf b = {0};
    if (rv_gen1_encode_iter_data(&b, d->id, d->error, d->has_key, d->key.data, d->key.len,
                                 d->has_value, d->value.data, d->value.len))
        fz_fail("out of memory");
    const uint8_t *q = (const uint8_t *)b.data;
    size_t hl = 0;
    while (q[hl] & 0x80)
        hl++;
    hl++;
    Ravelwire__Gen1IteratorData *e = rv_gen1_unpack_iter_data(q + hl, b.len - hl, &rc);
    if (!e || e->id != d->id || !e->error != !d->error ||
        (d->error && strcmp(e->error, d->error) != 0) || e->has_key != d->has_key ||
        e->has_value != d->has_value ||
        (d->has_key && !same_bytes(e->key.data, e->key.len, d->key.data, d->key.len)) ||
        (d->has_value && !same_bytes(e->value.data, e->value.len, d->value.data, d->value.len)))
        fz_fail("Gen1IteratorData does not survive re-encoding");
    protobuf_c_message_free_unpacked(&e->base, &rv_pb_allocator);
    protobuf_c_message_free_unpacked(&d->base, &rv_pb_allocator);
    rv_buf_free(&b);
}

static int on_frame(void *ud, const uint8_t *p, size_t len)
{
    decoded *dc = ud;
    if (len == 0 || len > MAX_FRAME)
        fz_fail("decoder delivered a frame of %zu bytes", len);
    uint8_t hdr[10];
    size_t hl = rv_varint_put(hdr, len);
    if (rv_buf_append(&dc->frames, hdr, hl) || rv_buf_append(&dc->frames, p, len))
        fz_fail("out of memory");
    if (dc->unpack) {
        check_unpack(p, len, rv_known_in, rv_unpack_in);
        check_unpack(p, len, rv_known_out, rv_unpack_out);
        /* Whatever the tag: the message bytes as either parser's input. */
        check_iter_data(p + 1, len - 1);
        check_keyed(p + 1, len - 1);
        check_batch(p + 1, len - 1);
        check_gen1(p, len);
    }
    return 0;
}

/* Feed p[0..cut) in one call, then the rest `step` bytes at a time. */
static int decode(const uint8_t *p, size_t n, size_t cut, size_t step, decoded *dc)
{
    rv_decoder d;
    rv_decoder_init(&d, MAX_FRAME);
    int rc = rv_decoder_feed(&d, p, cut, on_frame, dc);
    for (size_t off = cut; rc == 0 && off < n; off += step)
        rc = rv_decoder_feed(&d, p + off, n - off < step ? n - off : step, on_frame, dc);
    rv_decoder_free(&d);
    return rc;
}

static void same(const decoded *a, int arc, const decoded *b, int brc, const char *how)
{
    if (arc != brc || a->frames.len != b->frames.len ||
        (a->frames.len && memcmp(a->frames.data, b->frames.data, a->frames.len) != 0))
        fz_fail("decoding %s differs from one feed: status %d vs %d, %zu vs %zu frame bytes", how,
                brc, arc, b->frames.len, a->frames.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = (size_t)data[0] | (size_t)data[1] << 8;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    split %= n + 1;

    decoded whole = {.unpack = 1}, halves = {0}, bytes = {0};
    int whole_rc = decode(p, n, n, 1, &whole);
    int halves_rc = decode(p, n, split, n, &halves);
    int bytes_rc = decode(p, n, 0, 1, &bytes);
    same(&whole, whole_rc, &halves, halves_rc, "in two feeds");
    same(&whole, whole_rc, &bytes, bytes_rc, "byte by byte");
    rv_buf_free(&whole.frames);
    rv_buf_free(&halves.frames);
    rv_buf_free(&bytes.frames);
    return 0;
}
