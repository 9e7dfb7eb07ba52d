/*
 * penlink_wire.h — what both ends of the cable share: the framing codec (the
 * one implementation compiled into libpenlink and into the firmware bridge)
 * and the protocol's constants (capability bits, sizes and limits).
 * Portable C99, no heap, no libc beyond memcpy/memchr; installed with
 * libpenlink (penlink.h includes it) and used as is by firmware (pl_fw.h).
 *
 * Conventions: nothing here allocates, fails with a code or records an
 * error message (pl_error_message is libpenlink's, not the bridge's); a
 * function that cannot do its job says so in its result (0 bytes written)
 * or in the decoder's counters.  All memory is the caller's.
 *
 * Thread safety: the functions keep no global state but one: pl_crc32 on
 * x86-64 hosts remembers, atomically, which of its implementations is the
 * faster on this CPU.  pl_crc32,
 * pl_crc32_portable, pl_frame_encode and pl_frame_drop_name may be called
 * from any thread at once; a decoder or a frame writer is used by one
 * thread at a time, and
 * its callbacks run in the thread that feeds it.
 *
 * On the wire a frame is
 *
 *     COBS( version:u8 | flags:u8 | payload:N | crc32:u32le ) 0x00
 *
 * where crc32 is the IEEE 802.3 CRC-32 (the zlib one) over version, flags
 * and payload, and payload is one serialized pl.Envelope.  0x00 never occurs
 * inside an encoded frame, so a receiver that lost sync waits for the next
 * 0x00 and starts over.  An encoder may also emit a 0x00 before a frame to
 * flush any garbage the receiver holds; empty frames are ignored.
 */
#ifndef PL_FRAME_H
#define PL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ protocol
 * Constants of proto/penlink.proto that both ends must agree on. */

/* pid.codes test VID/PID the virtual and development pens enumerate with. */
#define PL_USB_VID 0x1209u
#define PL_USB_PID 0x0001u

/* DeviceInfo.capabilities bits. */
#define PL_CAP_RTC 1u            /* a real-time clock the host may set */
#define PL_CAP_TRACE 2u          /* streams trace lines on request */
#define PL_CAP_TELEMETRY 4u      /* records telemetry samples */
#define PL_CAP_CARTRIDGE_UID 8u  /* reads the cartridge's UID */

#define PL_PRESET_NAME_MAX 32u   /* bytes of UTF-8 in a preset name */
#define PL_MAX_SPEED_LEVELS 16u  /* stroke-rate table entries a pen may have */

/* A session as a pen lists it, pl.SessionInfo; the firmware bridge fills
 * it, libpenlink's pl_pen_list_sessions returns it. */
struct pl_session_info {
	uint32_t id;        /* the pen's slot for it */
	uint8_t uuid[16];
	uint32_t seq;       /* per-pen sequence number */
	uint64_t size;      /* bytes of the record */
	uint8_t sha256[32]; /* of the record */
	int64_t start_ms;
	int64_t end_ms;
	bool rtc_time;      /* start/end are UTC (else uptime) */
	bool archived;      /* the host said it is stored; the pen may reclaim it */
};

/* ------------------------------------------------------------------ framing */

#define PL_FRAME_VERSION 1u
#define PL_FRAME_HEADER_LEN 2u
#define PL_FRAME_CRC_LEN 4u

/* Bytes of framing around a payload before COBS. */
#define PL_FRAME_RAW_LEN(payload_len) \
	((payload_len) + PL_FRAME_HEADER_LEN + PL_FRAME_CRC_LEN)

/*
 * Worst-case encoded size of a frame with payload_len payload bytes,
 * including COBS overhead (one code byte per 254 bytes, plus one) and the
 * trailing 0x00 delimiter.  Size encode buffers with this.
 */
#define PL_FRAME_ENCODED_MAX(payload_len) \
	(PL_FRAME_RAW_LEN(payload_len) + PL_FRAME_RAW_LEN(payload_len) / 254u + 2u)

/*
 * CRC-32 (IEEE, reflected, init/xorout 0xffffffff) of len bytes at data,
 * continuing from crc; pass 0 to start.  Same results as zlib's crc32
 * (built with zlib it is zlib's crc32_z, else pl_crc32_portable; on
 * x86-64 hosts with PCLMULQDQ, carry-less multiplication when a timing of
 * both at the first call finds it faster, which an emulated CPU does not).
 *
 * crc:  0, or the result for the bytes before data.
 * data: len bytes; may be NULL only when len is 0.
 * Returns the CRC.  Never fails.
 */
uint32_t pl_crc32(uint32_t crc, const void *data, size_t len);

/* The table-driven CRC-32 firmware builds use for pl_crc32, with the same
 * parameters and results.  Always compiled, so host tests can prove it
 * agrees with zlib's.  Never fails. */
uint32_t pl_crc32_portable(uint32_t crc, const void *data, size_t len);

/*
 * Encodes one frame into out.
 *
 * payload:     payload_len bytes (one serialized pl.Envelope); may be NULL
 *              only when payload_len is 0.
 * flags:       the frame's flags byte (0 today).
 * out/out_cap: the buffer; PL_FRAME_ENCODED_MAX(payload_len) bytes always
 *              suffice.
 * Returns the number of bytes written including the trailing delimiter,
 * or 0 if out is NULL, out_cap is smaller than needed, or payload is NULL
 * with payload_len > 0.  On 0 the content of out is unspecified (it may be
 * partly overwritten) but no length is returned, so no partial frame is
 * ever sent by mistake.  Never fails otherwise; records nothing.
 */
size_t pl_frame_encode(const uint8_t *payload, size_t payload_len,
                       uint8_t flags, uint8_t *out, size_t out_cap);

/*
 * The same encoding for a payload that arrives in pieces, so that a sender
 * never holds the serialized payload in a buffer of its own: protobuf-c's
 * pack_to_buffer hands over a message as it packs it, a bytes field
 * straight from where it lies (the firmware bridge frames its replies this
 * way, one copy and one frame-sized buffer fewer than packing first).
 *
 *     struct pl_frame_writer w;
 *     pl_frame_writer_start(&w, 0, out, out_cap);
 *     pl_frame_writer_add(&w, piece, len);   ... as often as needed
 *     n = pl_frame_writer_finish(&w);         0: it did not fit
 *
 * The writer's fields are private.  start cannot fail; add records a
 * failure (out too small, or data NULL with len > 0) and ignores whatever
 * comes after it; finish returns the frame's length including the
 * delimiter, or 0 after any failure, with out's content unspecified as for
 * pl_frame_encode.  A finished writer takes nothing more until started
 * again.  The bytes equal pl_frame_encode's for the concatenated pieces.
 */
struct pl_frame_writer {
	uint8_t *out;
	size_t cap, pos, code_pos;
	unsigned code;
	uint32_t crc;
	bool ok;
};

void pl_frame_writer_start(struct pl_frame_writer *w, uint8_t flags,
                           uint8_t *out, size_t out_cap);
void pl_frame_writer_add(struct pl_frame_writer *w, const void *data, size_t len);
size_t pl_frame_writer_finish(struct pl_frame_writer *w);

/* Why a frame was dropped; indexes pl_frame_stats.dropped[]. */
enum pl_frame_drop {
	PL_FRAME_DROP_CRC = 0,      /* CRC mismatch: corrupted on the line */
	PL_FRAME_DROP_OVERSIZE,     /* longer than the decoder's limit */
	PL_FRAME_DROP_SHORT,        /* shorter than header + CRC */
	PL_FRAME_DROP_COBS,         /* not valid COBS (a code pointing past the end) */
	PL_FRAME_DROP_VERSION,      /* unknown frame version */
	PL_FRAME_DROP_COUNT
};

struct pl_frame_stats {
	uint64_t frames;                         /* good frames delivered */
	uint64_t bytes;                          /* bytes fed */
	uint64_t dropped[PL_FRAME_DROP_COUNT];
};

/*
 * Called once per good frame, from inside pl_frame_decoder_feed.  payload
 * (len bytes, header and CRC removed) points into the decoder's buffer and
 * is valid only during the call.  It must not feed or reset the same
 * decoder.
 */
typedef void (*pl_frame_cb)(void *ctx, uint8_t flags,
                            const uint8_t *payload, size_t len);

/*
 * Optional: called once per dropped frame, from inside
 * pl_frame_decoder_feed, for diagnostics (--dump-frames): why, and the
 * frame's length so far.  It must not feed or reset the same decoder.
 */
typedef void (*pl_frame_drop_cb)(void *ctx, enum pl_frame_drop why,
                                 size_t len);

/*
 * Streaming decoder.  Storage is supplied by the caller (firmware keeps it
 * static); the struct is public only so it can be allocated statically:
 * touch it only through the functions below.
 */
struct pl_frame_decoder {
	uint8_t *buf;          /* decoded bytes of the frame in progress */
	size_t cap;            /* size of buf */
	size_t limit;          /* max payload accepted, <= cap - header - crc */
	size_t len;            /* decoded bytes so far */
	uint8_t code;          /* current COBS code */
	uint8_t left;          /* data bytes left in the current COBS block */
	uint8_t state;         /* internal */
	pl_frame_cb on_frame;
	pl_frame_drop_cb on_drop;
	void *ctx;
	struct pl_frame_stats stats;
};

/*
 * Readies d (every field, the counters included, is reset).
 *
 * d:        the decoder, not NULL; owned by the caller.
 * buf:      buf_len bytes the decoder assembles frames in, owned by the
 *           caller, who keeps it valid (and does not touch it) while d is
 *           used.  It must hold PL_FRAME_RAW_LEN(max_payload) bytes: the
 *           limit starts at buf_len minus header and CRC, that is
 *           max_payload, and can only be lowered later (after the
 *           handshake).  NULL or too small a buffer makes every non-empty
 *           frame a drop.
 * on_frame: may be NULL (good frames are then only counted).
 * on_drop:  may be NULL.
 * ctx:      passed to both callbacks.
 * Never fails.
 */
void pl_frame_decoder_init(struct pl_frame_decoder *d, uint8_t *buf,
                           size_t buf_len, pl_frame_cb on_frame,
                           pl_frame_drop_cb on_drop, void *ctx);

/* Lowers the payload limit to max_payload; a value above the current
 * limit is ignored (the limit never rises).  A frame in progress that ends
 * up longer than the new limit is dropped as oversize.  Never fails. */
void pl_frame_decoder_set_limit(struct pl_frame_decoder *d, size_t max_payload);

/*
 * Feeds bytes exactly as they came off the line, split anywhere.  Frames
 * are delivered through on_frame (or counted as dropped, through on_drop)
 * as they complete, inside this call.  Bytes of a frame over the limit are
 * discarded as they arrive, never buffered.
 *
 * data: len bytes; may be NULL only when len is 0.
 * Never fails: damage shows in d->stats and on_drop.
 */
void pl_frame_decoder_feed(struct pl_frame_decoder *d, const uint8_t *data,
                           size_t len);

/* Forgets any partial frame (e.g. after a reconnect); the counters and
 * the limit are kept.  Never fails. */
void pl_frame_decoder_reset(struct pl_frame_decoder *d);

/* "crc", "oversize", "short", "cobs", "version"; "unknown" for any other
 * value.  Static string, never NULL. */
const char *pl_frame_drop_name(enum pl_frame_drop why);

#ifdef __cplusplus
}
#endif

#endif
