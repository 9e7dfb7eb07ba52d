/*
 * fuzz_frame: the COBS + CRC-32 frame decoder (lib/src/frame.c), the code
 * both ends of the cable run on every byte that comes off the line.
 *
 * Input: [limit][seed:4][stream...].  The stream is fed to decoders with
 * the payload limit the first byte picks, in one piece, at split points the
 * seed picks, and byte by byte.  Invariants:
 *  - the frames delivered and the drop counters do not depend on the split;
 *  - no payload is longer than the limit in force;
 *  - every delivered payload re-encodes to a frame with no 0x00 but the
 *    delimiter, within PL_FRAME_ENCODED_MAX, that decodes to the same
 *    payload and flags, and the encoder refuses a buffer one byte short;
 *  - the stream itself, encoded as a payload, decodes back unchanged;
 *  - the portable CRC-32 agrees with zlib's, also when continued.
 */
#include "fuzz_common.h"

#include "penlink_wire.h"

#define MAX_STREAM (1u << 16)

struct log {
	uint8_t *p;
	size_t len, cap;
};

static void log_add(struct log *l, const void *p, size_t n)
{
	if (l->cap - l->len < n || !l->p) {
		size_t cap = l->cap ? l->cap : 4096;
		while (cap - l->len < n)
			cap *= 2;
		l->p = realloc(l->p, cap);
		FUZZ_CHECK(l->p != NULL, "out of memory");
		l->cap = cap;
	}
	if (n)
		memcpy(l->p + l->len, p, n);
	l->len += n;
}

struct sink {
	struct pl_frame_decoder *dec;
	struct log frames;
	size_t limit_at_delivery;
};

struct one {
	unsigned n;
	uint8_t flags;
	const uint8_t *payload; /* valid while the decoder's buffer lives */
	size_t len;
};

static void one_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                      size_t len)
{
	struct one *o = ctx;
	o->n++;
	o->flags = flags;
	o->payload = payload;
	o->len = len;
}

/* Encodes payload and checks the frame decodes back to it. */
static void check_roundtrip(uint8_t flags, const uint8_t *payload, size_t len)
{
	size_t cap = PL_FRAME_ENCODED_MAX(len);
	uint8_t *enc = malloc(cap);
	uint8_t *dbuf = malloc(PL_FRAME_RAW_LEN(len));
	struct pl_frame_decoder d;
	struct one got = {0, 0, NULL, 0};
	size_t n;

	FUZZ_CHECK(enc && dbuf, "out of memory");
	n = pl_frame_encode(payload, len, flags, enc, cap);
	FUZZ_CHECK(n > 0 && n <= cap, "encoding %zu bytes gave %zu (max %zu)", len,
	           n, cap);
	FUZZ_CHECK(enc[n - 1] == 0, "frame does not end in the delimiter");
	FUZZ_CHECK(memchr(enc, 0, n - 1) == NULL,
	           "0x00 inside an encoded frame of %zu bytes", n);
	{
		/* Exactly one byte short, so ASan sees any write past it. */
		uint8_t *tight = malloc(n - 1);
		FUZZ_CHECK(tight != NULL, "out of memory");
		FUZZ_CHECK(pl_frame_encode(payload, len, flags, tight, n - 1) == 0,
		           "encoder wrote a %zu-byte frame into %zu bytes", n, n - 1);
		free(tight);
	}
	pl_frame_decoder_init(&d, dbuf, PL_FRAME_RAW_LEN(len), one_frame, NULL,
	                      &got);
	pl_frame_decoder_feed(&d, enc, n);
	FUZZ_CHECK(d.stats.frames == 1, "re-encoded frame of %zu bytes not delivered "
	           "(crc %llu oversize %llu short %llu cobs %llu version %llu)",
	           len, (unsigned long long)d.stats.dropped[0],
	           (unsigned long long)d.stats.dropped[1],
	           (unsigned long long)d.stats.dropped[2],
	           (unsigned long long)d.stats.dropped[3],
	           (unsigned long long)d.stats.dropped[4]);
	FUZZ_CHECK(got.n == 1 && got.flags == flags && got.len == len,
	           "re-decoded %zu bytes with flags %u instead of %zu with %u",
	           got.len, got.flags, len, flags);
	FUZZ_CHECK(len == 0 || memcmp(got.payload, payload, len) == 0,
	           "re-decoded payload differs");
	free(enc);
	free(dbuf);
}

static void on_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	struct sink *s = ctx;
	uint32_t l32 = (uint32_t)len;

	FUZZ_CHECK(len <= s->dec->limit,
	           "delivered %zu bytes over the limit of %zu", len, s->dec->limit);
	FUZZ_CHECK(len <= s->limit_at_delivery,
	           "delivered %zu bytes, limit was %zu", len, s->limit_at_delivery);
	log_add(&s->frames, &flags, 1);
	log_add(&s->frames, &l32, sizeof l32);
	log_add(&s->frames, payload, len);
}

struct run {
	struct pl_frame_decoder dec;
	struct sink sink;
	uint8_t *buf;
};

static void run_init(struct run *r, size_t buf_len, size_t limit)
{
	memset(r, 0, sizeof *r);
	r->buf = malloc(buf_len ? buf_len : 1);
	FUZZ_CHECK(r->buf != NULL, "out of memory");
	pl_frame_decoder_init(&r->dec, r->buf, buf_len, on_frame, NULL, &r->sink);
	pl_frame_decoder_set_limit(&r->dec, limit);
	r->sink.dec = &r->dec;
	r->sink.limit_at_delivery = r->dec.limit;
}

static void run_free(struct run *r)
{
	free(r->buf);
	free(r->sink.frames.p);
}

static void same(const struct run *a, const struct run *b, const char *how)
{
	FUZZ_CHECK(a->sink.frames.len == b->sink.frames.len &&
	               (a->sink.frames.len == 0 ||
	                memcmp(a->sink.frames.p, b->sink.frames.p,
	                       a->sink.frames.len) == 0),
	           "frames delivered %s differ from one-piece feeding", how);
	FUZZ_CHECK(a->dec.stats.frames == b->dec.stats.frames &&
	               a->dec.stats.bytes == b->dec.stats.bytes,
	           "counters %s differ", how);
	for (int i = 0; i < PL_FRAME_DROP_COUNT; i++)
		FUZZ_CHECK(a->dec.stats.dropped[i] == b->dec.stats.dropped[i],
		           "%s drops %s: %llu vs %llu", pl_frame_drop_name(i), how,
		           (unsigned long long)a->dec.stats.dropped[i],
		           (unsigned long long)b->dec.stats.dropped[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t sel = fuzz_u8(&in);
	uint32_t seed = fuzz_u16(&in);
	seed |= (uint32_t)fuzz_u16(&in) << 16;
	size_t slen;
	const uint8_t *stream = fuzz_bytes(&in, MAX_STREAM, &slen);
	struct run whole, split, bytes, lowered;
	size_t buf_len, limit;

	/* 0xff: a buffer smaller than header + CRC, which can hold no frame;
	 * else a limit of 0..1016 bytes in a buffer of exactly that size or,
	 * for odd selectors, a roomier buffer with the limit lowered to it. */
	if (sel == 0xff) {
		buf_len = seed % (PL_FRAME_RAW_LEN(0));
		limit = SIZE_MAX;
	} else {
		limit = (size_t)(sel & 0xfe) * 4;
		buf_len = PL_FRAME_RAW_LEN(limit) + ((sel & 1) ? 300 : 0);
	}

	run_init(&whole, buf_len, limit);
	pl_frame_decoder_feed(&whole.dec, stream, slen);

	run_init(&split, buf_len, limit);
	for (size_t off = 0; off < slen;) {
		size_t n = 1 + fuzz_rand(&seed) % 64;
		if (n > slen - off)
			n = slen - off;
		/* Zero-length feeds are part of the contract too. */
		if (seed & 0x100)
			pl_frame_decoder_feed(&split.dec, stream + off, 0);
		pl_frame_decoder_feed(&split.dec, stream + off, n);
		off += n;
	}
	same(&whole, &split, "at random split points");

	run_init(&bytes, buf_len, limit);
	for (size_t off = 0; off < slen; off++)
		pl_frame_decoder_feed(&bytes.dec, stream + off, 1);
	same(&whole, &bytes, "byte by byte");

	/* The limit lowered half way (after a handshake): nothing longer than
	 * the new limit may come out afterwards. */
	run_init(&lowered, buf_len, limit);
	pl_frame_decoder_feed(&lowered.dec, stream, slen / 2);
	pl_frame_decoder_set_limit(&lowered.dec, limit / 2);
	lowered.sink.limit_at_delivery = lowered.dec.limit;
	pl_frame_decoder_feed(&lowered.dec, stream + slen / 2, slen - slen / 2);

	/* Every delivered payload survives encode -> decode. */
	for (size_t off = 0; off < whole.sink.frames.len;) {
		uint8_t flags = whole.sink.frames.p[off];
		uint32_t len;
		memcpy(&len, whole.sink.frames.p + off + 1, sizeof len);
		check_roundtrip(flags, whole.sink.frames.p + off + 5, len);
		off += 5 + len;
	}
	/* And so does the stream itself as a payload. */
	check_roundtrip(sel, stream, slen);

	{
		size_t cut = slen ? seed % slen : 0;
		uint32_t z = pl_crc32(0, stream, slen);
		FUZZ_CHECK(z == pl_crc32_portable(0, stream, slen),
		           "portable CRC-32 differs from zlib's over %zu bytes", slen);
		FUZZ_CHECK(pl_crc32_portable(pl_crc32_portable(0, stream, cut),
		                             stream + cut, slen - cut) == z,
		           "portable CRC-32 continued at %zu differs", cut);
	}

	run_free(&whole);
	run_free(&split);
	run_free(&bytes);
	run_free(&lowered);
	return 0;
}
