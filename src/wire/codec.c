#include "codec.h"

#include <string.h>

#include "ravel.h"
#include "util/alloc.h"

void rv_decoder_init(rv_decoder *d, size_t max_frame)
{
    *d = (rv_decoder){.max_frame = max_frame ? max_frame : RV_DEFAULT_MAX_FRAME};
}

void rv_decoder_reset(rv_decoder *d)
{
    d->len = 0;
    d->shift = 0;
    d->in_payload = 0;
    d->partial.len = 0;
}

void rv_decoder_free(rv_decoder *d)
{
    rv_buf_free(&d->partial);
}

int rv_decoder_feed(rv_decoder *d, const uint8_t *p, size_t n, rv_frame_fn fn, void *ud)
{
    if (n == 0)
        return 0; /* p may be NULL */
    const uint8_t *end = p + n;
    while (p < end) {
        if (!d->in_payload) {
            uint8_t byte = *p++;
            /* Lengths are at most max_frame (a size_t); 10 varint bytes
             * already cover 64 bits, anything longer is garbage. */
            if (d->shift >= 64)
                return RAVEL_EPROTO;
            d->len |= (uint64_t)(byte & 0x7f) << d->shift;
            d->shift += 7;
            if (byte & 0x80)
                continue;
            if (d->len > d->max_frame)
                return RAVEL_ETOOBIG;
            d->shift = 0;
            if (d->len == 0)
                continue; /* empty frames are ignored */
            d->in_payload = 1;
            d->partial.len = 0;
        }
        size_t want = (size_t)d->len - d->partial.len;
        size_t avail = (size_t)(end - p);
        if (d->partial.len == 0 && avail >= want) {
            /* Whole frame in this feed: hand it over without a copy. */
            d->in_payload = 0;
            d->len = 0;
            const uint8_t *frame = p;
            p += want;
            int rc = fn(ud, frame, want);
            if (rc)
                return rc;
            continue;
        }
        size_t take = avail < want ? avail : want;
        if (rv_buf_append(&d->partial, p, take))
            return RAVEL_ENOMEM;
        p += take;
        if (d->partial.len == d->len) {
            d->in_payload = 0;
            d->len = 0;
            size_t flen = d->partial.len;
            d->partial.len = 0;
            int rc = fn(ud, (const uint8_t *)d->partial.data, flen);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int rv_encode(rv_buf *out, uint8_t tag, const ProtobufCMessage *msg)
{
    return rv_encode_sized(out, tag, msg, protobuf_c_message_get_packed_size(msg));
}

int rv_encode_sized(rv_buf *out, uint8_t tag, const ProtobufCMessage *msg, size_t size)
{
    if (rv_buf_reserve(out, size + 11))
        return RAVEL_ENOMEM;
    uint8_t *p = (uint8_t *)out->data + out->len;
    size_t hdr = rv_varint_put(p, (uint64_t)size + 1);
    p[hdr] = tag;
    protobuf_c_message_pack(msg, p + hdr + 1);
    out->len += hdr + 1 + size;
    return 0;
}

int rv_encode_callback(rv_buf *out, uint32_t id, const char *error, const void *val, size_t vlen)
{
    return rv_encode_callback_msg(out, id, error, NULL, val, vlen);
}

int rv_encode_callback_msg(rv_buf *out, uint32_t id, const char *error, const char *message,
                           const void *val, size_t vlen)
{
    size_t elen = error ? strlen(error) : 0;
    size_t mlen = message ? strlen(message) : 0;
    size_t body = 1 + rv_varint_len(id) + (error ? 1 + rv_varint_len(elen) + elen : 0) +
                  (val ? 1 + rv_varint_len(vlen) + vlen : 0) +
                  (message ? 2 + rv_varint_len(mlen) + mlen : 0);
    if (rv_buf_reserve(out, body + 11))
        return RAVEL_ENOMEM;
    uint8_t *p = (uint8_t *)out->data + out->len;
    p += rv_varint_put(p, (uint64_t)body + 1);
    *p++ = RV_OUT_CALLBACK;
    *p++ = 0x08; /* field 1, varint */
    p += rv_varint_put(p, id);
    if (error) {
        *p++ = 0x12; /* field 2, length-delimited */
        p += rv_varint_put(p, elen);
        memcpy(p, error, elen);
        p += elen;
    }
    if (val) {
        *p++ = 0x1a; /* field 3, length-delimited */
        p += rv_varint_put(p, vlen);
        if (vlen)
            memcpy(p, val, vlen);
        p += vlen;
    }
    if (message) {
        *p++ = 0x82; /* field 64, length-delimited: a two-byte key */
        *p++ = 0x04;
        p += rv_varint_put(p, mlen);
        memcpy(p, message, mlen);
        p += mlen;
    }
    out->len = (size_t)(p - (uint8_t *)out->data);
    return 0;
}

/* Room left before the entries for the frame's head: length varint (5),
 * tag (1), id and seq fields (1 + 5 each). */
#define ITER_HEAD_MAX 18

int rv_iter_frame_begin(rv_iter_frame *f, rv_buf *out)
{
    f->out = out;
    f->start = out->len;
    if (rv_buf_reserve(out, ITER_HEAD_MAX))
        return RAVEL_ENOMEM;
    out->len += ITER_HEAD_MAX;
    return 0;
}

int rv_iter_frame_add(rv_iter_frame *f, const void *p, size_t len)
{
    rv_buf *out = f->out;
    if (rv_buf_reserve(out, len + 11)) {
        out->len = f->start;
        return RAVEL_ENOMEM;
    }
    uint8_t *q = (uint8_t *)out->data + out->len;
    *q = 0x1a; /* field 3, length-delimited */
    size_t n = 1 + rv_varint_put(q + 1, len);
    if (len)
        memcpy(q + n, p, len);
    out->len += n + len;
    return 0;
}

void rv_iter_frame_end(rv_iter_frame *f, uint32_t id, uint32_t seq)
{
    uint8_t fields[12], head[ITER_HEAD_MAX];
    size_t nf = 0;
    fields[nf++] = 0x08; /* field 1, varint */
    nf += rv_varint_put(fields + nf, id);
    fields[nf++] = 0x10; /* field 2, varint */
    nf += rv_varint_put(fields + nf, seq);
    size_t body = f->out->len - f->start - ITER_HEAD_MAX;
    size_t nh = rv_varint_put(head, (uint64_t)1 + nf + body);
    head[nh++] = RV_OUT_ITER_DATA;
    memcpy(head + nh, fields, nf);
    nh += nf;
    char *base = f->out->data + f->start;
    if (nh < ITER_HEAD_MAX)
        memmove(base + nh, base + ITER_HEAD_MAX, body);
    memcpy(base, head, nh);
    f->out->len = f->start + nh + body;
}

static const char *const ext_names[] = {"error-messages", "conditional", "sync", "exactly-once",
                                        "snapshots", "maintenance", "watch", "shm"};
#define NEXT (sizeof ext_names / sizeof ext_names[0])

const char *rv_ext_name(uint32_t bit)
{
    for (size_t i = 0; i < NEXT; i++)
        if (bit == 1u << i)
            return ext_names[i];
    return NULL;
}

uint32_t rv_ext_from_names(char *const *names, size_t n)
{
    uint32_t bits = 0;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < NEXT; i++)
            if (names[j] && strcmp(names[j], ext_names[i]) == 0)
                bits |= 1u << i;
    return bits;
}

/* The names of the bits in exts, into names (room for NEXT). */
static size_t ext_list(uint32_t exts, char **names)
{
    size_t n = 0;
    for (size_t i = 0; i < NEXT; i++)
        if (exts & (1u << i))
            names[n++] = (char *)ext_names[i];
    return n;
}

int rv_encode_announce(rv_buf *out, uint32_t exts)
{
    char *names[NEXT];
    Ravelwire__Announce m = RAVELWIRE__ANNOUNCE__INIT;
    m.version = RV_PROTO_VERSION;
    m.n_extensions = ext_list(exts, names);
    m.extensions = names;
    return rv_encode(out, RV_OUT_ANNOUNCE, &m.base) ? RAVEL_ENOMEM : 0;
}

int rv_encode_hello(rv_buf *out, uint32_t exts)
{
    char *names[NEXT];
    Ravelwire__Hello m = RAVELWIRE__HELLO__INIT;
    m.version = RV_PROTO_VERSION;
    m.n_extensions = ext_list(exts, names);
    m.extensions = names;
    return rv_encode(out, RV_IN_HELLO, &m.base) ? RAVEL_ENOMEM : 0;
}

static const ProtobufCMessageDescriptor *const in_desc[RV_IN_COUNT] = {
    [RV_IN_GET] = &ravelwire__get__descriptor,
    [RV_IN_PUT] = &ravelwire__put__descriptor,
    [RV_IN_DEL] = &ravelwire__delete__descriptor,
    [RV_IN_BATCH] = &ravelwire__batch__descriptor,
    [RV_IN_ITERATOR] = &ravelwire__iterator__descriptor,
    [RV_IN_CLEAR] = &ravelwire__clear__descriptor,
    [RV_IN_GET_MANY] = &ravelwire__get_many__descriptor,
    [RV_IN_ITER_CLOSE] = &ravelwire__iterator_close__descriptor,
    [RV_IN_ITER_ACK] = &ravelwire__iterator_ack__descriptor,
    [RV_IN_ITER_SEEK] = &ravelwire__iterator_seek__descriptor,
};

static const ProtobufCMessageDescriptor *const out_desc[RV_OUT_COUNT] = {
    [RV_OUT_CALLBACK] = &ravelwire__callback__descriptor,
    [RV_OUT_ITER_DATA] = &ravelwire__iterator_data__descriptor,
    [RV_OUT_GET_MANY_CB] = &ravelwire__get_many_callback__descriptor,
    [RV_OUT_ITER_ERROR] = &ravelwire__iterator_error__descriptor,
    [RV_OUT_ITER_END] = &ravelwire__iterator_end__descriptor,
};

/* protobuf-c returns NULL both for a malformed message and when an
 * allocation fails: this allocator tells the two apart. */
static void *unpack_alloc(void *ud, size_t n)
{
    void *p = rv_pb_allocator.alloc(rv_pb_allocator.allocator_data, n);
    if (!p)
        *(int *)ud = 1;
    return p;
}

/* ravel's extensions, guest to host: tags from 64 up. */
static const ProtobufCMessageDescriptor *const in_ext_desc[] = {
    [RV_IN_HELLO - 64] = &ravelwire__hello__descriptor,
    [RV_IN_SNAPSHOT_NEW - 64] = &ravelwire__snapshot_new__descriptor,
    [RV_IN_SNAPSHOT_RELEASE - 64] = &ravelwire__snapshot_release__descriptor,
    [RV_IN_COMPACT - 64] = &ravelwire__compact_range__descriptor,
    [RV_IN_PROPERTY - 64] = &ravelwire__property__descriptor,
    [RV_IN_SIZES - 64] = &ravelwire__approximate_sizes__descriptor,
    [RV_IN_WATCH - 64] = &ravelwire__watch__descriptor,
    [RV_IN_WATCH_ACK - 64] = &ravelwire__watch_ack__descriptor,
    [RV_IN_CHANGELOG - 64] = &ravelwire__changelog__descriptor,
    [RV_IN_SHM_OFFER - 64] = &ravelwire__shm_offer__descriptor,
};

static const ProtobufCMessageDescriptor *in_message(uint8_t tag)
{
    if (tag < RV_IN_COUNT)
        return in_desc[tag];
    size_t ext = (size_t)tag - 64;
    return tag >= 64 && ext < sizeof in_ext_desc / sizeof in_ext_desc[0] ? in_ext_desc[ext] : NULL;
}

static const ProtobufCMessageDescriptor *out_message(uint8_t tag)
{
    return tag < RV_OUT_COUNT ? out_desc[tag]
           : tag == RV_OUT_ANNOUNCE ? &ravelwire__announce__descriptor
           : tag == RV_OUT_WATCH_EVENT ? &ravelwire__watch_event__descriptor
           : tag == RV_OUT_CHANGELOG_STATE ? &ravelwire__changelog_state__descriptor
           : tag == RV_OUT_SHM_READY ? &ravelwire__shm_ready__descriptor
                                    : NULL;
}

int rv_known_in(uint8_t tag)
{
    return in_message(tag) != NULL;
}

int rv_known_out(uint8_t tag)
{
    return out_message(tag) != NULL;
}

static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *payload,
                                size_t len, int *status)
{
    *status = 0;
    if (!desc)
        return NULL;
    int oom = 0;
    ProtobufCAllocator a = {unpack_alloc, rv_pb_allocator.free, &oom};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, len - 1, payload + 1);
    if (!m)
        *status = oom ? RAVEL_ENOMEM : RAVEL_EPROTO;
    return m;
}

ProtobufCMessage *rv_unpack_as(const ProtobufCMessageDescriptor *desc, const uint8_t *payload,
                               size_t len, int *status)
{
    return unpack(len ? desc : NULL, payload, len, status);
}

ProtobufCMessage *rv_unpack_in(const uint8_t *payload, size_t len, int *status)
{
    return unpack(len ? in_message(payload[0]) : NULL, payload, len, status);
}

ProtobufCMessage *rv_unpack_out(const uint8_t *payload, size_t len, int *status)
{
    return unpack(len ? out_message(payload[0]) : NULL, payload, len, status);
}

/* A varint at *p (before end); 0 on success, -1 when truncated or longer
 * than 10 bytes. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* One field of a message: its number, wire type, and value (a varint, or
 * the bytes of a length-delimited field). 1 read, 0 at the end, -1 bad. */
typedef struct field {
    unsigned num, type;
    uint64_t varint;
    const uint8_t *bytes;
    size_t len;
} field;

static int next_field(const uint8_t **p, const uint8_t *end, field *f)
{
    if (*p >= end)
        return 0;
    uint64_t key;
    const uint8_t *start = *p;
    /* protobuf-c takes a field key of at most 5 bytes. */
    if (get_varint(p, end, &key) || *p - start > 5 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    /* Every member is set, whatever the wire type: callers read only the
     * ones their type check allows, but the compiler cannot know that. */
    *f = (field){.num = (unsigned)(key >> 3), .type = (unsigned)(key & 7)};
    switch (f->type) {
    case 0:
        return get_varint(p, end, &f->varint) ? -1 : 1;
    case 1:
    case 5: {
        size_t w = f->type == 1 ? 8 : 4;
        if ((size_t)(end - *p) < w)
            return -1;
        *p += w;
        return 1;
    }
    case 2:
        if (get_varint(p, end, &f->varint) || f->varint > (uint64_t)(end - *p))
            return -1;
        f->bytes = *p;
        f->len = (size_t)f->varint;
        *p += f->len;
        return 1;
    default:
        return -1;
    }
}

/* Fields 64-67 of a write: producer, wseq, acked, sync. A producer of
 * another length is ignored (no identity). -1 for a wrong wire type. */
static int write_ext(const field *f, rv_write_id *wid, int *sync)
{
    if (f->num == 64) {
        if (f->type != 2)
            return -1;
        wid->producer = f->len == RV_PRODUCER_LEN ? f->bytes : NULL;
    } else {
        if (f->type != 0)
            return -1;
        if (f->num == 65)
            wid->wseq = f->varint;
        else if (f->num == 66)
            wid->acked = f->varint;
        else
            *sync = f->varint != 0;
    }
    return 0;
}

/* An Operation: type (1, string) and key (2, bytes) required, value (3)
 * optional; the last of repeated singular fields wins, as in protobuf. */
static int parse_op(const uint8_t *msg, size_t len, rv_batch_op_view *op)
{
    const uint8_t *p = msg, *end = msg + len;
    int have_type = 0, have_key = 0;
    memset(op, 0, sizeof *op);
    field f;
    int r;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.num >= 1 && f.num <= 3 && f.type != 2)
            return -1;
        if (f.num == 1)
            op->type = f.bytes, op->type_len = f.len, have_type = 1;
        else if (f.num == 2)
            op->key = f.bytes, op->key_len = f.len, have_key = 1;
        else if (f.num == 3)
            op->value = f.bytes, op->value_len = f.len, op->has_value = 1;
    }
    return r == 0 && have_type && have_key ? 0 : -1;
}

/* A Batch's Check: key (1), value (2, optional). */
static int parse_check(const uint8_t *msg, size_t len, rv_batch_op_view *op)
{
    const uint8_t *p = msg, *end = msg + len;
    int have_key = 0;
    memset(op, 0, sizeof *op);
    op->is_check = 1;
    field f;
    int r;
    while ((r = next_field(&p, end, &f)) == 1) {
        if ((f.num == 1 || f.num == 2) && f.type != 2)
            return -1;
        if (f.num == 1)
            op->key = f.bytes, op->key_len = f.len, have_key = 1;
        else if (f.num == 2)
            op->value = f.bytes, op->value_len = f.len, op->has_value = 1;
    }
    return r == 0 && have_key ? 0 : -1;
}

int rv_parse_batch(const uint8_t *msg, size_t len, rv_batch_head *head, rv_batch_op_fn fn,
                   void *ud)
{
    /* First make sure all of it is well formed, so nothing is applied
     * from a message that is then rejected. */
    const uint8_t *p = msg, *end = msg + len;
    int have_id = 0;
    field f;
    int r;
    rv_batch_op_view op;
    memset(head, 0, sizeof *head);
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.num == 1) {
            if (f.type != 0)
                return RAVEL_EPROTO;
            head->id = (uint32_t)f.varint;
            have_id = 1;
        } else if (f.num == 2) {
            if (f.type != 2 || parse_op(f.bytes, f.len, &op))
                return RAVEL_EPROTO;
        } else if (f.num >= 64 && f.num <= 67) {
            if (write_ext(&f, &head->wid, &head->sync))
                return RAVEL_EPROTO;
        } else if (f.num == 68) {
            if (f.type != 2 || parse_check(f.bytes, f.len, &op))
                return RAVEL_EPROTO;
            head->nchecks++;
        }
    }
    if (r != 0 || !have_id)
        return RAVEL_EPROTO;
    for (p = msg; next_field(&p, end, &f) == 1;) {
        if (f.num == 2)
            parse_op(f.bytes, f.len, &op);
        else if (f.num == 68)
            parse_check(f.bytes, f.len, &op);
        else
            continue;
        int rc = fn(ud, &op);
        if (rc)
            return rc;
    }
    return RAVEL_OK;
}

size_t rv_put_write_id(uint8_t *p, const uint8_t *producer, uint64_t wseq, uint64_t acked)
{
    uint8_t *start = p;
    *p++ = 0x82; /* field 64, length-delimited */
    *p++ = 0x04;
    *p++ = RV_PRODUCER_LEN;
    memcpy(p, producer, RV_PRODUCER_LEN);
    p += RV_PRODUCER_LEN;
    *p++ = 0x88; /* field 65, varint */
    *p++ = 0x04;
    p += rv_varint_put(p, wseq);
    *p++ = 0x90; /* field 66, varint */
    *p++ = 0x04;
    p += rv_varint_put(p, acked);
    return (size_t)(p - start);
}

int rv_parse_keyed(const uint8_t *msg, size_t len, uint8_t tag, rv_keyed *out)
{
    int with_value = tag == RV_IN_PUT, write = tag == RV_IN_PUT || tag == RV_IN_DEL;
    const uint8_t *p = msg, *end = msg + len;
    int have_id = 0, have_key = 0;
    memset(out, 0, sizeof *out);
    field f;
    int r;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.num == 1) {
            if (f.type != 0)
                return RAVEL_EPROTO;
            out->id = (uint32_t)f.varint;
            have_id = 1;
        } else if (f.num == 2) {
            if (f.type != 2)
                return RAVEL_EPROTO;
            out->key = f.bytes;
            out->key_len = f.len;
            have_key = 1;
        } else if (f.num == 3 && with_value) {
            if (f.type != 2)
                return RAVEL_EPROTO;
            out->value = f.bytes;
            out->value_len = f.len;
            out->has_value = 1;
        } else if (f.num >= 64 && f.num <= 67 && write) {
            if (write_ext(&f, &out->wid, &out->sync))
                return RAVEL_EPROTO;
        } else if (f.num >= 70 && f.num <= 72 && tag == RV_IN_GET) {
            if (f.type != 0)
                return RAVEL_EPROTO;
            if (f.num == 70) {
                out->ro.has_snapshot = 1;
                out->ro.snapshot = (uint32_t)f.varint;
            } else if (f.num == 71) {
                out->ro.verify_checksums = f.varint != 0;
            } else {
                out->ro.no_fill_cache = f.varint == 0;
            }
        }
    }
    return r == 0 && have_id && have_key ? RAVEL_OK : RAVEL_EPROTO;
}

int rv_parse_iter_data(const uint8_t *msg, size_t len, uint32_t *id, uint32_t *seq,
                       size_t *items, size_t cap, size_t *n)
{
    const uint8_t *p = msg, *end = msg + len;
    int have_id = 0, have_seq = 0, r;
    size_t count = 0;
    field f;
    while ((r = next_field(&p, end, &f)) == 1) {
        if ((f.num == 1 || f.num == 2) && f.type != 0)
            return RAVEL_EPROTO;
        if (f.num == 3 && f.type != 2)
            return RAVEL_EPROTO;
        if (f.num == 1) {
            *id = (uint32_t)f.varint;
            have_id = 1;
        } else if (f.num == 2) {
            *seq = (uint32_t)f.varint;
            have_seq = 1;
        } else if (f.num == 3) {
            if (count < cap) {
                items[2 * count] = (size_t)(f.bytes - msg);
                items[2 * count + 1] = f.len;
            }
            count++;
        }
    }
    if (r != 0 || !have_id || !have_seq)
        return RAVEL_EPROTO;
    *n = count;
    return RAVEL_OK;
}

int rv_msg_wants_sync(const uint8_t *msg, size_t len)
{
    const uint8_t *p = msg, *end = msg + len;
    while (p < end) {
        uint64_t key, v;
        if (get_varint(&p, end, &key))
            return 1;
        switch (key & 7) {
        case 0:
            if (get_varint(&p, end, &v))
                return 1;
            if (key >> 3 == 67 && v)
                return 1;
            break;
        case 1:
        case 5:
            if ((size_t)(end - p) < ((key & 7) == 1 ? 8u : 4u))
                return 1;
            if (key >> 3 == 67)
                return 1;
            p += (key & 7) == 1 ? 8 : 4;
            break;
        case 2:
            if (get_varint(&p, end, &v) || v > (uint64_t)(end - p) || key >> 3 == 67)
                return 1;
            p += v;
            break;
        default:
            return 1;
        }
    }
    return 0;
}
