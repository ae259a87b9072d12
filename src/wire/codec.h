/* The many-level wire format, sans-IO: frames (a LEB128 varint length,
 * then a payload whose first byte is a tag and the rest a protobuf message
 * from proto/ravel.proto) in and out of byte buffers. Nothing here touches
 * an fd. */
#ifndef RAVEL_WIRE_CODEC_H
#define RAVEL_WIRE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ravel.pb-c.h"
#include "util/buf.h"

/* Guest to host. */
enum {
    RV_IN_GET = 0,
    RV_IN_PUT = 1,
    RV_IN_DEL = 2,
    RV_IN_BATCH = 3,
    RV_IN_ITERATOR = 4,
    RV_IN_CLEAR = 5,
    RV_IN_GET_MANY = 6,
    RV_IN_ITER_CLOSE = 7,
    RV_IN_ITER_ACK = 8,
    RV_IN_ITER_SEEK = 9,
    RV_IN_COUNT
};

/* Host to guest. */
enum {
    RV_OUT_CALLBACK = 0,
    RV_OUT_ITER_DATA = 1,
    RV_OUT_GET_MANY_CB = 2,
    RV_OUT_ITER_ERROR = 3,
    RV_OUT_ITER_END = 4,
    RV_OUT_COUNT
};

/* ravel's extensions (docs/protocol-extensions.md): tags from 64 up, far
 * from many-level's, which a Node peer ignores (a guest) or never receives
 * (a host: a ravel guest sends Hello only to a host that announced). */
enum {
    RV_OUT_ANNOUNCE = 64, /* Announce, the first frame of every stream */
    RV_IN_HELLO = 64,     /* Hello, the guest's answer to it */
    RV_IN_SNAPSHOT_NEW = 65,     /* "snapshots" */
    RV_IN_SNAPSHOT_RELEASE = 66, /* "snapshots" */
    RV_IN_COMPACT = 67,          /* "maintenance" */
    RV_IN_PROPERTY = 68,         /* "maintenance" */
    RV_IN_SIZES = 69,            /* "maintenance" */
    /* "watch": a watch's own stream */
    RV_IN_WATCH = 80,
    RV_IN_WATCH_ACK = 81,
    RV_IN_CHANGELOG = 82,
    RV_OUT_WATCH_EVENT = 80,
    RV_OUT_CHANGELOG_STATE = 82,
    /* "shm": the stream moves into shared-memory rings */
    RV_IN_SHM_OFFER = 90,
    RV_OUT_SHM_READY = 90,
};

/* The version of the extension scheme this code speaks: Announce and Hello
 * carry the highest each side speaks, and a peer uses what both do. */
#define RV_PROTO_VERSION 1

/* Extensions, as bits; on the wire they travel by name. */
enum {
    RV_EXT_ERROR_MESSAGES = 1u << 0, /* "error-messages": the `message`
                                      * field (64) of Callback,
                                      * GetManyCallback and IteratorError */
    RV_EXT_CONDITIONAL = 1u << 1,    /* "conditional": Batch.checks (68),
                                      * answered LEVEL_CONFLICT */
    RV_EXT_SYNC = 1u << 2,           /* "sync": the `sync` field (67) of
                                      * Put, Delete, Batch and Clear */
    RV_EXT_EXACTLY_ONCE = 1u << 3,   /* "exactly-once": producer, wseq and
                                      * acked (64-66) of the same four */
    RV_EXT_SNAPSHOTS = 1u << 4,      /* "snapshots": SnapshotNew (65),
                                      * SnapshotRelease (66), and read
                                      * options (70-72) of Get, GetMany
                                      * and Iterator */
    RV_EXT_MAINTENANCE = 1u << 5,    /* "maintenance": CompactRange (67),
                                      * Property (68), ApproximateSizes (69) */
    RV_EXT_WATCH = 1u << 6,          /* "watch": Watch, WatchAck, Changelog
                                      * (80-82) and their answers */
    RV_EXT_SHM = 1u << 7,            /* "shm": ShmOffer and ShmReady (90);
                                      * offered on unix sockets only */
};
#define RV_EXT_ALL                                                              \
    ((uint32_t)(RV_EXT_ERROR_MESSAGES | RV_EXT_CONDITIONAL | RV_EXT_SYNC |      \
                RV_EXT_EXACTLY_ONCE | RV_EXT_SNAPSHOTS | RV_EXT_MAINTENANCE |    \
                RV_EXT_WATCH))

/* Read options as they travel (extension "snapshots"): fields 70-72 of
 * Get, GetMany and Iterator. */
typedef struct rv_wire_ro {
    int has_snapshot;
    uint32_t snapshot;
    int verify_checksums;
    int no_fill_cache;  /* fill_cache sent as false */
} rv_wire_ro;

/* A write's exactly-once identity, as a host parses it: producer NULL when
 * the write has none. */
typedef struct rv_write_id {
    const uint8_t *producer; /* RV_PRODUCER_LEN bytes */
    uint64_t wseq, acked;
} rv_write_id;
#ifndef RV_PRODUCER_LEN
#define RV_PRODUCER_LEN 16
#endif

/* Append the exactly-once fields (64-66) for producer/wseq/acked. Returns
 * the bytes written to p (room for RV_WRITE_ID_MAX). */
#define RV_WRITE_ID_MAX (3 + RV_PRODUCER_LEN + 2 * (2 + 10))
size_t rv_put_write_id(uint8_t *p, const uint8_t *producer, uint64_t wseq, uint64_t acked);

/* The name of one extension bit ("error-messages"), NULL if unknown. */
const char *rv_ext_name(uint32_t bit);
/* The bits of the names this code knows; unknown names are skipped (a
 * newer peer may offer more). */
uint32_t rv_ext_from_names(char *const *names, size_t n);
/* Append an Announce (host to guest) or a Hello (guest to host) frame:
 * RV_PROTO_VERSION and the names of the bits in exts. 0 or RAVEL_ENOMEM. */
int rv_encode_announce(rv_buf *out, uint32_t exts);
int rv_encode_hello(rv_buf *out, uint32_t exts);
/* Does a tag have a message here (many-level's, or an extension)? */
int rv_known_in(uint8_t tag);
/* Does a message (the bytes after the tag) set the "sync" field (67) to
 * anything but false, or fail to parse as far as that goes? The ring
 * server leaves such writes to the connection's own thread. */
int rv_msg_wants_sync(const uint8_t *msg, size_t len);
int rv_known_out(uint8_t tag);

#define RV_DEFAULT_MAX_FRAME (64u << 20)

/* Splits a byte stream into frames. The length of each frame is checked
 * against max_frame before any of its payload is buffered. */
typedef struct rv_decoder {
    size_t max_frame;
    uint64_t len;    /* length being read (varint state) or of the frame */
    unsigned shift;  /* varint bits read so far */
    int in_payload;  /* reading payload of a frame of `len` bytes */
    rv_buf partial;  /* payload bytes of a frame split across feeds */
} rv_decoder;

/* Called once per non-empty frame; payload[0] is the tag. Return 0 to go
 * on, anything else to stop: rv_decoder_feed then returns that value. */
typedef int (*rv_frame_fn)(void *ud, const uint8_t *payload, size_t len);

void rv_decoder_init(rv_decoder *d, size_t max_frame);
/* Forget a partly read frame (a new stream starts). */
void rv_decoder_reset(rv_decoder *d);
void rv_decoder_free(rv_decoder *d);
/* Feed bytes. Returns 0, RAVEL_EPROTO (varint longer than a frame length
 * can be), RAVEL_ETOOBIG (frame over max_frame), RAVEL_ENOMEM, or the
 * callback's non-zero return. After an error the stream is unusable. */
int rv_decoder_feed(rv_decoder *d, const uint8_t *p, size_t n, rv_frame_fn fn, void *ud);

/* Append one frame (length, tag, packed message) to out. 0 or RAVEL_ENOMEM. */
int rv_encode(rv_buf *out, uint8_t tag, const ProtobufCMessage *msg);
/* The same, for a caller that already has the message's packed size. */
int rv_encode_sized(rv_buf *out, uint8_t tag, const ProtobufCMessage *msg, size_t size);

/* Unpack the message of a payload (tag byte first), the extensions' tags
 * included. Returns NULL with *status = 0 for an unknown tag (to be
 * ignored) and with *status =
 * RAVEL_EPROTO for a malformed message (required field missing, wrong wire
 * type, truncated). Free with protobuf_c_message_free_unpacked(m, &rv_pb_allocator). */
ProtobufCMessage *rv_unpack_in(const uint8_t *payload, size_t len, int *status);
ProtobufCMessage *rv_unpack_out(const uint8_t *payload, size_t len, int *status);
/* The same for a message the caller names (the first generation's, whose
 * tags mean other messages: wire/gen1.h). */
ProtobufCMessage *rv_unpack_as(const ProtobufCMessageDescriptor *desc, const uint8_t *payload,
                               size_t len, int *status);

/* IteratorData, parsed without copying its entries: protobuf-c would make
 * an allocation per entry, the largest cost of a guest's scan (measured
 * with perf). `msg` is the message after the tag byte. Sets *id and *seq,
 * and writes up to `cap` (offset, length) pairs into items (offsets into
 * msg); *n gets the number of entries even when over cap, so a first call
 * with cap 0 counts them. RAVEL_OK, or RAVEL_EPROTO for a message
 * protobuf-c would reject too (truncated, wrong wire type, id or seq
 * missing). */
int rv_parse_iter_data(const uint8_t *msg, size_t len, uint32_t *id, uint32_t *seq,
                       size_t *items, size_t cap, size_t *n);

/* Get, Put and Delete — a key and an id, and for Put a value — parsed
 * without protobuf-c's allocation of a message per request: the host's
 * per-request hot path (W2, W4). `tag` says which (RV_IN_GET, RV_IN_PUT,
 * RV_IN_DEL): field 3 is Put's value, fields 64-67 the writes' extension
 * fields, fields 70-72 Get's read options; in the others they are unknown fields, skipped, as protobuf-c
 * does. RAVEL_OK, or RAVEL_EPROTO for what protobuf-c would reject too.
 * The pointers point into msg. */
typedef struct rv_keyed {
    uint32_t id;
    const uint8_t *key, *value;
    size_t key_len, value_len;
    int has_value;
    int sync;         /* extension "sync" (field 67) */
    rv_write_id wid;  /* extension "exactly-once" (64-66) */
    rv_wire_ro ro;    /* Get: extension "snapshots" (70-72) */
} rv_keyed;
int rv_parse_keyed(const uint8_t *msg, size_t len, uint8_t tag, rv_keyed *out);

/* Append a Callback frame (id; error if not NULL; value if val is not
 * NULL), byte for byte what rv_encode would write for the message, without
 * building it. 0 or RAVEL_ENOMEM. */
int rv_encode_callback(rv_buf *out, uint32_t id, const char *error, const void *val, size_t vlen);
/* The same with the extension field `message` (64) when message is not
 * NULL: only for a guest that turned on "error-messages". */
int rv_encode_callback_msg(rv_buf *out, uint32_t id, const char *error, const char *message,
                           const void *val, size_t vlen);

/* An IteratorData frame built in place, entry by entry, straight into the
 * output buffer: the host's read-ahead otherwise copied every entry into a
 * message for protobuf-c to pack (a third of a scan's host CPU, perf on
 * W5). The bytes are exactly what rv_encode would write. Between begin and
 * end, nothing else may be appended to out. */
typedef struct rv_iter_frame {
    rv_buf *out;
    size_t start; /* where the frame begins in out */
} rv_iter_frame;

/* Start a frame at the end of out. 0 or RAVEL_ENOMEM. */
int rv_iter_frame_begin(rv_iter_frame *f, rv_buf *out);
/* Add one entry (a key or a value). 0 or RAVEL_ENOMEM (the frame is
 * then abandoned: out is as it was before begin). */
int rv_iter_frame_add(rv_iter_frame *f, const void *p, size_t len);
/* Finish the frame with its id and seq. */
void rv_iter_frame_end(rv_iter_frame *f, uint32_t id, uint32_t seq);

/* One operation of a Batch, as rv_parse_batch hands it over: pointers into
 * the message. Return 0 to go on, nonzero to stop (that value is
 * returned). */
typedef struct rv_batch_op_view {
    int is_check;     /* a Check (field 68): type is NULL; has_value 0
                       * means "must be absent" */
    const uint8_t *type, *key, *value;
    size_t type_len, key_len, value_len;
    int has_value;
} rv_batch_op_view;
typedef int (*rv_batch_op_fn)(void *ud, const rv_batch_op_view *op);

/* The fields of a Batch besides its operations. */
typedef struct rv_batch_head {
    uint32_t id;
    int sync;         /* extension "sync" (field 67) */
    size_t nchecks;   /* extension "conditional" (field 68) */
    rv_write_id wid;  /* extension "exactly-once" (64-66) */
} rv_batch_head;

/* Batch, parsed without protobuf-c's allocation per field (hundreds per
 * batch; measured with perf on W6). Fills *head, then calls fn for each
 * operation in order and for each check, once the whole message is known
 * to be well formed. RAVEL_OK, RAVEL_EPROTO (what protobuf-c would reject),
 * or fn's nonzero return. */
int rv_parse_batch(const uint8_t *msg, size_t len, rv_batch_head *head, rv_batch_op_fn fn,
                   void *ud);

#endif
