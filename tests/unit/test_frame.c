/*
 * Framing: COBS + header + CRC-32 (lib/src/frame.c).
 *
 * Encoded frames are checked against a deliberately naive byte-at-a-time
 * COBS reference written here, so the fast run-based code in frame.c is
 * never its own oracle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "penlink_test.h"
#include "penlink_wire.h"

/* ------------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	/* xorshift64*: reproducible, so a failure repeats. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

enum pattern { PAT_RANDOM, PAT_ZERO, PAT_FF, PAT_SPARSE_ZERO, PAT_COUNT };

static void fill(uint8_t *p, size_t n, enum pattern pat)
{
	for (size_t i = 0; i < n; i++) {
		switch (pat) {
		case PAT_RANDOM: p[i] = (uint8_t)rnd(); break;
		case PAT_ZERO: p[i] = 0; break;
		case PAT_FF: p[i] = 0xff; break;
		default: p[i] = (rnd() % 64 == 0) ? 0 : (uint8_t)(rnd() | 1); break;
		}
	}
}

/* Textbook COBS, one byte at a time (same block rules as frame.c: a
 * trailing empty block follows a full one at the very end). */
static size_t ref_cobs(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t code_pos = 0, pos = 1;
	uint8_t code = 1;

	for (size_t i = 0; i < n; i++) {
		if (in[i] != 0) {
			out[pos++] = in[i];
			code++;
		}
		if (in[i] == 0 || code == 0xff) {
			out[code_pos] = code;
			code = 1;
			code_pos = pos++;
		}
	}
	out[code_pos] = code;
	out[pos++] = 0;
	return pos;
}

/* Builds header|payload|crc with any version (to forge bad frames) and
 * COBS-encodes it with the reference encoder.  out needs
 * PL_FRAME_ENCODED_MAX(n) bytes. */
static size_t ref_frame(uint8_t version, uint8_t flags, const uint8_t *payload,
                        size_t n, uint8_t *out)
{
	uint8_t *raw = malloc(PL_FRAME_RAW_LEN(n));
	uint32_t crc;
	size_t len;

	assert_non_null(raw);
	raw[0] = version;
	raw[1] = flags;
	if (n)
		memcpy(raw + 2, payload, n);
	crc = (uint32_t)crc32(0, raw, (uInt)(n + 2));
	raw[n + 2] = (uint8_t)crc;
	raw[n + 3] = (uint8_t)(crc >> 8);
	raw[n + 4] = (uint8_t)(crc >> 16);
	raw[n + 5] = (uint8_t)(crc >> 24);
	len = ref_cobs(raw, n + 6, out);
	free(raw);
	return len;
}

#define MAX_SEEN 64

/* Collects what the decoder delivers and drops. */
struct sink {
	size_t frames;
	uint8_t flags[MAX_SEEN];
	size_t len[MAX_SEEN];
	uint8_t *data[MAX_SEEN];
	size_t drops;
	enum pl_frame_drop why[MAX_SEEN];
};

static void on_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	struct sink *s = ctx;

	assert_true(s->frames < MAX_SEEN);
	s->flags[s->frames] = flags;
	s->len[s->frames] = len;
	s->data[s->frames] = malloc(len ? len : 1);
	assert_non_null(s->data[s->frames]);
	if (len)
		memcpy(s->data[s->frames], payload, len);
	s->frames++;
}

static void on_drop(void *ctx, enum pl_frame_drop why, size_t len)
{
	struct sink *s = ctx;

	(void)len;
	if (s->drops < MAX_SEEN)
		s->why[s->drops] = why;
	s->drops++;
}

static void sink_clear(struct sink *s)
{
	for (size_t i = 0; i < s->frames && i < MAX_SEEN; i++)
		free(s->data[i]);
	memset(s, 0, sizeof *s);
}

static void assert_frame(const struct sink *s, size_t i, uint8_t flags,
                         const uint8_t *payload, size_t len)
{
	assert_true(i < s->frames);
	assert_int_equal(s->flags[i], flags);
	assert_int_equal(s->len[i], len);
	if (len)
		assert_memory_equal(s->data[i], payload, len);
}

/* A decoder whose buffer lives in the middle of a guarded area, so any
 * write outside it is caught. */
struct dec {
	struct pl_frame_decoder d;
	uint8_t *area;
	size_t buf_len;
	struct sink s;
};

#define GUARD 64

static void dec_init(struct dec *x, size_t max_payload)
{
	memset(x, 0, sizeof *x);
	x->buf_len = PL_FRAME_RAW_LEN(max_payload);
	x->area = malloc(x->buf_len + 2 * GUARD);
	assert_non_null(x->area);
	memset(x->area, 0xa5, x->buf_len + 2 * GUARD);
	pl_frame_decoder_init(&x->d, x->area + GUARD, x->buf_len, on_frame,
	                      on_drop, &x->s);
}

static void dec_free(struct dec *x)
{
	for (size_t i = 0; i < GUARD; i++) {
		assert_int_equal(x->area[i], 0xa5);
		assert_int_equal(x->area[GUARD + x->buf_len + i], 0xa5);
	}
	sink_clear(&x->s);
	free(x->area);
}

static uint64_t total_drops(const struct pl_frame_decoder *d)
{
	uint64_t n = 0;
	for (int i = 0; i < PL_FRAME_DROP_COUNT; i++)
		n += d->stats.dropped[i];
	return n;
}

/* Encodes with the library and checks it against the reference. */
static size_t encode_checked(const uint8_t *payload, size_t n, uint8_t flags,
                             uint8_t *out, size_t cap)
{
	uint8_t *ref = malloc(PL_FRAME_ENCODED_MAX(n));
	size_t len = pl_frame_encode(payload, n, flags, out, cap);
	size_t ref_len;

	assert_non_null(ref);
	ref_len = ref_frame(PL_FRAME_VERSION, flags, payload, n, ref);
	assert_int_equal(len, ref_len);
	assert_memory_equal(out, ref, len);
	assert_true(len <= PL_FRAME_ENCODED_MAX(n));
	assert_null(memchr(out, 0, len - 1));
	assert_int_equal(out[len - 1], 0);
	free(ref);
	return len;
}

/* ------------------------------------------------------------------ CRC */

static void test_crc_known_vector(void **state)
{
	(void)state;
	const char *v = "123456789";

	assert_int_equal(pl_crc32(0, v, 9), 0xCBF43926u);
	assert_int_equal(pl_crc32_portable(0, v, 9), 0xCBF43926u);
	assert_int_equal(crc32(0, (const Bytef *)v, 9), 0xCBF43926u);
	assert_int_equal(pl_crc32(0, v, 0), 0);
	assert_int_equal(pl_crc32_portable(0, v, 0), 0);
	/* Continuation: two halves give the same as the whole. */
	assert_int_equal(pl_crc32(pl_crc32(0, v, 4), v + 4, 5), 0xCBF43926u);
	assert_int_equal(pl_crc32_portable(pl_crc32_portable(0, v, 4), v + 4, 5),
	                 0xCBF43926u);
}

static void crc_matches_zlib(void)
{
	static uint8_t buf[4096 + 8];

	fill(buf, sizeof buf, PAT_RANDOM);
	/* Every length up to 600 at every alignment, then a few big ones. */
	for (size_t off = 0; off < 8; off++) {
		for (size_t n = 0; n <= 600; n++) {
			uint32_t z = (uint32_t)crc32(0, buf + off, (uInt)n);
			assert_int_equal(pl_crc32(0, buf + off, n), z);
			assert_int_equal(pl_crc32_portable(0, buf + off, n), z);
		}
		uint32_t z = (uint32_t)crc32(0, buf + off, 4096);
		assert_int_equal(pl_crc32_portable(0, buf + off, 4096), z);
		assert_int_equal(pl_crc32(0, buf + off, 4096), z);
	}
	/* Chained from a non-zero start, through the bulk path too (hosts
	 * with PCLMULQDQ take it from 64 bytes on). */
	for (size_t cut = 0; cut <= 4096; cut += cut < 300 ? 1 : 97) {
		uint32_t z = (uint32_t)crc32(0, buf, 4096);
		assert_int_equal(pl_crc32(pl_crc32(0, buf, cut), buf + cut, 4096 - cut),
		                 z);
	}
	for (size_t cut = 0; cut <= 64; cut++) {
		uint32_t z = (uint32_t)crc32(0, buf, 64);
		assert_int_equal(pl_crc32_portable(
		                     pl_crc32_portable(0, buf, cut), buf + cut,
		                     64 - cut),
		                 z);
	}
}

/* pl_crc32 as each of its implementations, then as it chooses. */
static void test_crc_matches_zlib(void **state)
{
	(void)state;
	int clmul = pl_test_crc32_use(PL_TEST_CRC_CLMUL);
	if (clmul == 0)
		crc_matches_zlib();
	else
		print_message("no carry-less multiplication on this CPU: table only\n");
	assert_int_equal(pl_test_crc32_use(PL_TEST_CRC_TABLE), 0);
	crc_matches_zlib();
	assert_int_equal(pl_test_crc32_use(PL_TEST_CRC_FASTEST), 0);
	crc_matches_zlib();
}

/* ------------------------------------------------------------------ round trips */

static const size_t sizes[] = {0,   1,   2,   253,  254,  255,
                               256, 507, 508, 509, 4096, 65536};

static void test_round_trip_sizes(void **state)
{
	(void)state;
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t n = sizes[si];
		for (int pat = 0; pat < PAT_COUNT; pat++) {
			uint8_t *payload = malloc(n + 1);
			size_t cap = PL_FRAME_ENCODED_MAX(n);
			uint8_t *enc = malloc(cap);
			struct dec x;
			uint8_t flags = (uint8_t)(si * 16 + (size_t)pat);

			assert_non_null(payload);
			assert_non_null(enc);
			fill(payload, n, (enum pattern)pat);
			size_t len = encode_checked(payload, n, flags, enc, cap);

			dec_init(&x, 65536);
			pl_frame_decoder_feed(&x.d, enc, len);
			assert_int_equal(x.s.frames, 1);
			assert_frame(&x.s, 0, flags, payload, n);
			assert_int_equal(x.d.stats.frames, 1);
			assert_int_equal(x.d.stats.bytes, len);
			assert_int_equal(total_drops(&x.d), 0);
			dec_free(&x);
			free(payload);
			free(enc);
		}
	}
}

/* One byte short, over payloads enough that some frames end in a CRC
 * whose last byte is 0x00: that block closes on the delimiter itself, the
 * case the patterns above never reach (libFuzzer found it). */
static void test_encode_one_short_all_crcs(void **state)
{
	(void)state;
	uint8_t enc[PL_FRAME_ENCODED_MAX(8) + GUARD];

	for (uint32_t i = 0; i < 20000; i++) {
		uint8_t payload[4] = {(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), 0x5a};
		size_t need = pl_frame_encode(payload, sizeof payload, 0, enc,
		                              PL_FRAME_ENCODED_MAX(sizeof payload));
		assert_true(need > 0);
		memset(enc, 0xa5, sizeof enc);
		assert_int_equal(pl_frame_encode(payload, sizeof payload, 0, enc, need - 1), 0);
		for (size_t k = need - 1; k < sizeof enc; k++)
			assert_int_equal(enc[k], 0xa5);
	}
}

static void test_encode_too_small(void **state)
{
	(void)state;
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t n = sizes[si];
		for (int pat = 0; pat < PAT_COUNT; pat++) {
			uint8_t *payload = malloc(n + 1);
			uint8_t *enc = malloc(PL_FRAME_ENCODED_MAX(n) + GUARD);
			size_t need;

			assert_non_null(payload);
			assert_non_null(enc);
			fill(payload, n, (enum pattern)pat);
			need = pl_frame_encode(payload, n, 0, enc,
			                       PL_FRAME_ENCODED_MAX(n));
			assert_true(need > 0);
			/* Exactly enough works. */
			memset(enc, 0xa5, PL_FRAME_ENCODED_MAX(n) + GUARD);
			assert_int_equal(pl_frame_encode(payload, n, 0, enc, need), need);
			for (size_t i = need; i < need + GUARD; i++)
				assert_int_equal(enc[i], 0xa5);
			/* Any shorter capacity: 0, and nothing past the cap. */
			for (size_t cap = need - 1;; cap = cap > 64 ? cap - 37 : cap - 1) {
				memset(enc, 0xa5, PL_FRAME_ENCODED_MAX(n) + GUARD);
				assert_int_equal(pl_frame_encode(payload, n, 0, enc, cap), 0);
				for (size_t i = cap; i < need + GUARD; i++)
					assert_int_equal(enc[i], 0xa5);
				if (cap == 0)
					break;
			}
			free(payload);
			free(enc);
		}
	}
	assert_int_equal(pl_frame_encode(NULL, 5, 0, (uint8_t[64]){0}, 64), 0);
	assert_int_equal(pl_frame_encode(NULL, 0, 0, NULL, 64), 0);
}

/* The piecewise writer gives pl_frame_encode's bytes however the payload is
 * cut (empty pieces, single bytes, cuts on and beside zeros), and 0 with
 * nothing past the cap when the buffer is short by any amount. */
static void test_writer_pieces(void **state)
{
	(void)state;
	unsigned seed = 7;
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t n = sizes[si];
		for (int pat = 0; pat < PAT_COUNT; pat++) {
			uint8_t *payload = malloc(n + 1);
			uint8_t *want = malloc(PL_FRAME_ENCODED_MAX(n));
			uint8_t *got = malloc(PL_FRAME_ENCODED_MAX(n) + GUARD);
			assert_non_null(payload);
			assert_non_null(want);
			assert_non_null(got);
			fill(payload, n, (enum pattern)pat);
			size_t need = pl_frame_encode(payload, n, (uint8_t)pat, want,
			                              PL_FRAME_ENCODED_MAX(n));
			assert_true(need > 0);
			for (int cut = 0; cut < 4; cut++) {
				const size_t caps[] = {need,         need - 1, need - 2, need - 5,
				                       need * 3 / 4, need / 2, 2,        1,
				                       0};
				for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
					size_t cap = caps[ci];
					struct pl_frame_writer w;
					if (cap > need)
						continue; /* need - k wrapped for tiny frames */
					memset(got, 0xa5, PL_FRAME_ENCODED_MAX(n) + GUARD);
					pl_frame_writer_start(&w, (uint8_t)pat, got, cap);
					for (size_t off = 0; off < n;) {
						seed = seed * 1103515245u + 12345u;
						size_t piece = cut == 0 ? 1
						             : cut == 1 ? (seed >> 16) % 300
						             : cut == 2 ? (seed >> 16) % 5
						                        : n - off;
						if (piece > n - off)
							piece = n - off;
						pl_frame_writer_add(&w, payload + off, piece);
						off += piece;
					}
					size_t len = pl_frame_writer_finish(&w);
					for (size_t i = cap; i < need + GUARD; i++)
						assert_int_equal(got[i], 0xa5);
					if (cap < need) {
						assert_int_equal(len, 0);
						continue;
					}
					assert_int_equal(len, need);
					assert_memory_equal(got, want, need);
					/* Finished: it takes nothing more. */
					pl_frame_writer_add(&w, payload, n);
					assert_int_equal(pl_frame_writer_finish(&w), 0);
				}
			}
			free(payload);
			free(want);
			free(got);
		}
	}
	/* Data missing for a length: failed, and it stays failed. */
	uint8_t out[64];
	struct pl_frame_writer w;
	pl_frame_writer_start(&w, 0, out, sizeof out);
	pl_frame_writer_add(&w, NULL, 3);
	pl_frame_writer_add(&w, "ok", 2);
	assert_int_equal(pl_frame_writer_finish(&w), 0);
	pl_frame_writer_start(&w, 0, NULL, sizeof out);
	assert_int_equal(pl_frame_writer_finish(&w), 0);
}

/* ------------------------------------------------------------------ splits */

static void test_every_split(void **state)
{
	(void)state;
	static const size_t split_sizes[] = {0, 1, 5, 253, 254, 255, 508, 1000};

	for (size_t si = 0; si < sizeof split_sizes / sizeof split_sizes[0]; si++) {
		size_t n = split_sizes[si];
		for (int pat = 0; pat < PAT_COUNT; pat++) {
			uint8_t payload[1000];
			uint8_t enc[PL_FRAME_ENCODED_MAX(1000)];
			struct dec x;

			fill(payload, n, (enum pattern)pat);
			size_t len = encode_checked(payload, n, 7, enc, sizeof enc);

			dec_init(&x, 1000);
			for (size_t cut = 0; cut <= len; cut++) {
				pl_frame_decoder_feed(&x.d, enc, cut);
				/* Only the last byte completes the frame. */
				assert_int_equal(x.s.frames, cut == len ? 1 : 0);
				pl_frame_decoder_feed(&x.d, enc + cut, len - cut);
				assert_int_equal(x.s.frames, 1);
				assert_frame(&x.s, 0, 7, payload, n);
				sink_clear(&x.s);
			}
			assert_int_equal(x.d.stats.frames, len + 1);
			assert_int_equal(total_drops(&x.d), 0);
			dec_free(&x);
		}
	}
}

static void test_byte_by_byte(void **state)
{
	(void)state;
	for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
		size_t n = sizes[si];
		uint8_t *payload = malloc(n + 1);
		uint8_t *enc = malloc(PL_FRAME_ENCODED_MAX(n));
		struct dec x;

		fill(payload, n, PAT_SPARSE_ZERO);
		size_t len = encode_checked(payload, n, 3, enc,
		                            PL_FRAME_ENCODED_MAX(n));
		dec_init(&x, n);
		for (size_t i = 0; i < len; i++) {
			assert_int_equal(x.s.frames, 0);
			pl_frame_decoder_feed(&x.d, enc + i, 1);
		}
		assert_int_equal(x.s.frames, 1);
		assert_frame(&x.s, 0, 3, payload, n);
		assert_int_equal(total_drops(&x.d), 0);
		dec_free(&x);
		free(payload);
		free(enc);
	}
}

static void test_several_frames_one_feed(void **state)
{
	(void)state;
	uint8_t payloads[6][300];
	size_t lens[6] = {0, 1, 254, 300, 17, 255};
	uint8_t stream[6 * (PL_FRAME_ENCODED_MAX(300) + 3)];
	size_t pos = 0;
	struct dec x;

	for (int i = 0; i < 6; i++) {
		fill(payloads[i], lens[i], (enum pattern)(i % PAT_COUNT));
		/* Empty frames in between are a sender's flush, not errors. */
		if (i % 2)
			stream[pos++] = 0;
		pos += pl_frame_encode(payloads[i], lens[i], (uint8_t)i,
		                       stream + pos, sizeof stream - pos);
	}
	stream[pos++] = 0;
	stream[pos++] = 0;

	dec_init(&x, 300);
	pl_frame_decoder_feed(&x.d, stream, pos);
	assert_int_equal(x.s.frames, 6);
	for (int i = 0; i < 6; i++)
		assert_frame(&x.s, (size_t)i, (uint8_t)i, payloads[i], lens[i]);
	assert_int_equal(total_drops(&x.d), 0);
	assert_int_equal(x.s.drops, 0);

	/* The same stream in random pieces. */
	sink_clear(&x.s);
	for (size_t at = 0; at < pos;) {
		size_t k = rnd() % 40;
		if (k > pos - at)
			k = pos - at;
		pl_frame_decoder_feed(&x.d, stream + at, k);
		at += k;
	}
	assert_int_equal(x.s.frames, 6);
	for (int i = 0; i < 6; i++)
		assert_frame(&x.s, (size_t)i, (uint8_t)i, payloads[i], lens[i]);
	assert_int_equal(total_drops(&x.d), 0);
	dec_free(&x);
}

static void test_empty_frames_ignored(void **state)
{
	(void)state;
	struct dec x;
	const uint8_t zeros[16] = {0};

	dec_init(&x, 64);
	pl_frame_decoder_feed(&x.d, zeros, sizeof zeros);
	for (int i = 0; i < 5; i++)
		pl_frame_decoder_feed(&x.d, zeros, 1);
	assert_int_equal(x.s.frames, 0);
	assert_int_equal(x.s.drops, 0);
	assert_int_equal(total_drops(&x.d), 0);
	assert_int_equal(x.d.stats.bytes, 21);
	dec_free(&x);
}

/* ------------------------------------------------------------------ corruption */

/* Feeds `bad` (a frame corrupted somehow) then a good frame; the good one
 * must come out, exactly, and nothing else may. */
static void check_resync(const uint8_t *bad, size_t bad_len,
                         const uint8_t *good, size_t good_len,
                         const uint8_t *payload, size_t n, size_t limit,
                         int byte_by_byte)
{
	struct dec x;

	dec_init(&x, limit);
	if (byte_by_byte) {
		for (size_t i = 0; i < bad_len; i++)
			pl_frame_decoder_feed(&x.d, bad + i, 1);
	} else {
		pl_frame_decoder_feed(&x.d, bad, bad_len);
	}
	assert_int_equal(x.s.frames, 0);
	assert_true(total_drops(&x.d) >= 1);
	assert_int_equal(x.s.drops, total_drops(&x.d));
	pl_frame_decoder_feed(&x.d, good, good_len);
	assert_int_equal(x.s.frames, 1);
	assert_frame(&x.s, 0, 9, payload, n);
	dec_free(&x);
}

static void test_corrupt_every_bit_small(void **state)
{
	(void)state;
	for (size_t n = 0; n <= 40; n++) {
		uint8_t payload[40];
		uint8_t good[PL_FRAME_ENCODED_MAX(40)];
		uint8_t bad[PL_FRAME_ENCODED_MAX(40)];

		fill(payload, n, n % 2 ? PAT_SPARSE_ZERO : PAT_RANDOM);
		if (n > 10)
			payload[n / 2] = 0;
		size_t len = encode_checked(payload, n, 9, good, sizeof good);
		/* Every byte but the delimiter (see below for that one). */
		for (size_t i = 0; i + 1 < len; i++) {
			for (int bit = 0; bit < 8; bit++) {
				memcpy(bad, good, len);
				bad[i] ^= (uint8_t)(1u << bit);
				check_resync(bad, len, good, len, payload, n, 40,
				             (i + (size_t)bit) % 5 == 0);
			}
			memcpy(bad, good, len);
			bad[i] ^= 0x55;
			check_resync(bad, len, good, len, payload, n, 40, 0);
		}
	}
}

static void test_corrupt_every_byte_large(void **state)
{
	(void)state;
	static const size_t big[] = {253, 254, 255, 600, 4096};

	for (size_t bi = 0; bi < sizeof big / sizeof big[0]; bi++) {
		size_t n = big[bi];
		for (int pat = 0; pat < PAT_COUNT; pat++) {
			uint8_t *payload = malloc(n);
			uint8_t *good = malloc(PL_FRAME_ENCODED_MAX(n));
			uint8_t *bad = malloc(PL_FRAME_ENCODED_MAX(n));

			assert_non_null(payload);
			assert_non_null(good);
			assert_non_null(bad);
			fill(payload, n, (enum pattern)pat);
			size_t len = encode_checked(payload, n, 9, good,
			                            PL_FRAME_ENCODED_MAX(n));
			for (size_t i = 0; i + 1 < len; i++) {
				memcpy(bad, good, len);
				bad[i] ^= 0x55;
				check_resync(bad, len, good, len, payload, n, n, 0);
				/* A bit that is often a code byte's high bit. */
				memcpy(bad, good, len);
				bad[i] ^= 0x80;
				check_resync(bad, len, good, len, payload, n, n, 0);
			}
			free(payload);
			free(good);
			free(bad);
		}
	}
}

/* A lost delimiter merges two frames into one bad one; a sender that puts a
 * 0x00 before each frame limits the loss to the damaged frame. */
static void test_corrupt_delimiter(void **state)
{
	(void)state;
	uint8_t payload[100];
	uint8_t good[PL_FRAME_ENCODED_MAX(100) + 1];
	uint8_t stream[3 * sizeof good];
	struct dec x;

	fill(payload, sizeof payload, PAT_RANDOM);
	good[0] = 0;
	size_t len = 1 + pl_frame_encode(payload, sizeof payload, 9, good + 1,
	                                 sizeof good - 1);
	memcpy(stream, good, len);
	stream[len - 1] = 0x42; /* the first frame's delimiter, damaged */
	memcpy(stream + len, good, len);

	dec_init(&x, 100);
	pl_frame_decoder_feed(&x.d, stream, 2 * len);
	assert_int_equal(x.s.frames, 1);
	assert_frame(&x.s, 0, 9, payload, sizeof payload);
	assert_int_equal(total_drops(&x.d), 1);
	dec_free(&x);
}

static void test_garbage_then_frame(void **state)
{
	(void)state;
	uint8_t garbage[3000];
	uint8_t payload[200];
	uint8_t good[PL_FRAME_ENCODED_MAX(200)];
	struct dec x;

	fill(payload, sizeof payload, PAT_RANDOM);
	size_t len = encode_checked(payload, sizeof payload, 9, good, sizeof good);

	/* No delimiter in the garbage: all of it is one bad frame, longer
	 * than the limit, which must not be buffered. */
	for (size_t i = 0; i < sizeof garbage; i++)
		garbage[i] = (uint8_t)(rnd() % 255 + 1);
	dec_init(&x, 200);
	pl_frame_decoder_feed(&x.d, garbage, sizeof garbage);
	assert_int_equal(x.s.frames, 0);
	pl_frame_decoder_feed(&x.d, (const uint8_t[]){0}, 1);
	pl_frame_decoder_feed(&x.d, good, len);
	assert_int_equal(x.s.frames, 1);
	assert_frame(&x.s, 0, 9, payload, sizeof payload);
	assert_int_equal(total_drops(&x.d), 1);
	dec_free(&x);

	/* Short garbage, no delimiter: a CRC (or COBS) drop, then resync. */
	for (size_t glen = 1; glen < 64; glen++) {
		dec_init(&x, 200);
		pl_frame_decoder_feed(&x.d, garbage, glen);
		pl_frame_decoder_feed(&x.d, (const uint8_t[]){0}, 1);
		pl_frame_decoder_feed(&x.d, good, len);
		assert_int_equal(x.s.frames, 1);
		assert_frame(&x.s, 0, 9, payload, sizeof payload);
		assert_int_equal(total_drops(&x.d), 1);
		dec_free(&x);
	}

	/* Garbage with zeros in it: several drops, never a bogus frame. */
	fill(garbage, sizeof garbage, PAT_RANDOM);
	dec_init(&x, 200);
	pl_frame_decoder_feed(&x.d, garbage, sizeof garbage);
	assert_int_equal(x.s.frames, 0);
	pl_frame_decoder_feed(&x.d, (const uint8_t[]){0}, 1);
	pl_frame_decoder_feed(&x.d, good, len);
	assert_int_equal(x.s.frames, 1);
	assert_frame(&x.s, 0, 9, payload, sizeof payload);
	assert_true(total_drops(&x.d) > 1);
	dec_free(&x);
}

/* ------------------------------------------------------------------ bad frames */

static void test_drop_reasons(void **state)
{
	(void)state;
	uint8_t payload[20];
	uint8_t enc[PL_FRAME_ENCODED_MAX(20) + 8];
	uint8_t good[PL_FRAME_ENCODED_MAX(20)];
	struct dec x;
	size_t len, good_len;

	fill(payload, sizeof payload, PAT_RANDOM);
	good_len = pl_frame_encode(payload, sizeof payload, 9, good, sizeof good);

	/* Unknown version with a correct CRC. */
	len = ref_frame(PL_FRAME_VERSION + 1, 9, payload, sizeof payload, enc);
	dec_init(&x, 20);
	pl_frame_decoder_feed(&x.d, enc, len);
	pl_frame_decoder_feed(&x.d, good, good_len);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_VERSION], 1);
	assert_int_equal(total_drops(&x.d), 1);
	assert_int_equal(x.s.drops, 1);
	assert_int_equal(x.s.why[0], PL_FRAME_DROP_VERSION);
	assert_int_equal(x.s.frames, 1);
	assert_frame(&x.s, 0, 9, payload, sizeof payload);
	dec_free(&x);

	/* Version 0 too. */
	len = ref_frame(0, 9, payload, sizeof payload, enc);
	dec_init(&x, 20);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_VERSION], 1);
	assert_int_equal(x.s.frames, 0);
	dec_free(&x);

	/* Too short for header + CRC: 1..5 decoded bytes. */
	for (size_t n = 1; n < PL_FRAME_HEADER_LEN + PL_FRAME_CRC_LEN; n++) {
		uint8_t raw[8];
		fill(raw, n, PAT_RANDOM);
		len = ref_cobs(raw, n, enc);
		dec_init(&x, 20);
		pl_frame_decoder_feed(&x.d, enc, len);
		pl_frame_decoder_feed(&x.d, good, good_len);
		assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_SHORT], 1);
		assert_int_equal(total_drops(&x.d), 1);
		assert_int_equal(x.s.why[0], PL_FRAME_DROP_SHORT);
		assert_int_equal(x.s.frames, 1);
		dec_free(&x);
	}

	/* A block cut by the delimiter: invalid COBS. */
	dec_init(&x, 20);
	pl_frame_decoder_feed(&x.d, (const uint8_t[]){0x09, 1, 2, 3, 0}, 5);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_COBS], 1);
	assert_int_equal(x.s.why[0], PL_FRAME_DROP_COBS);
	/* A truncated real frame too (COBS or CRC, depending on the cut). */
	pl_frame_decoder_feed(&x.d, good, 10);
	pl_frame_decoder_feed(&x.d, (const uint8_t[]){0}, 1);
	pl_frame_decoder_feed(&x.d, good, good_len);
	assert_int_equal(x.s.frames, 1);
	assert_int_equal(total_drops(&x.d), 2);
	dec_free(&x);

	/* CRC: a frame whose trailer does not match its content. */
	{
		uint8_t raw[PL_FRAME_RAW_LEN(20)];
		uint32_t crc;

		raw[0] = PL_FRAME_VERSION;
		raw[1] = 9;
		memcpy(raw + 2, payload, 20);
		crc = (uint32_t)crc32(0, raw, 22) ^ 0x00010000u;
		for (int i = 0; i < 4; i++)
			raw[22 + i] = (uint8_t)(crc >> (8 * i));
		len = ref_cobs(raw, sizeof raw, enc);
	}
	dec_init(&x, 20);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_CRC], 1);
	assert_int_equal(x.s.why[0], PL_FRAME_DROP_CRC);
	assert_int_equal(x.s.frames, 0);
	dec_free(&x);

	assert_string_equal(pl_frame_drop_name(PL_FRAME_DROP_CRC), "crc");
	assert_string_equal(pl_frame_drop_name(PL_FRAME_DROP_OVERSIZE), "oversize");
	assert_string_equal(pl_frame_drop_name(PL_FRAME_DROP_SHORT), "short");
	assert_string_equal(pl_frame_drop_name(PL_FRAME_DROP_COBS), "cobs");
	assert_string_equal(pl_frame_drop_name(PL_FRAME_DROP_VERSION), "version");
	assert_string_equal(pl_frame_drop_name(PL_FRAME_DROP_COUNT), "unknown");
}

/* ------------------------------------------------------------------ limits */

static void test_oversize(void **state)
{
	(void)state;
	static uint8_t payload[20000];
	static uint8_t big[PL_FRAME_ENCODED_MAX(20000)];
	uint8_t small[PL_FRAME_ENCODED_MAX(64)];
	uint8_t over[PL_FRAME_ENCODED_MAX(65)];
	struct dec x;

	for (int pat = 0; pat < PAT_COUNT; pat++) {
		fill(payload, sizeof payload, (enum pattern)pat);
		size_t big_len = pl_frame_encode(payload, sizeof payload, 1, big,
		                                 sizeof big);
		size_t small_len = pl_frame_encode(payload, 64, 2, small,
		                                   sizeof small);
		size_t over_len = pl_frame_encode(payload, 65, 3, over,
		                                  sizeof over);

		/* The buffer holds 64 bytes of payload; the guards around it
		 * catch any write beyond. */
		for (int bbb = 0; bbb < 2; bbb++) {
			dec_init(&x, 64);
			if (bbb) {
				for (size_t i = 0; i < big_len; i++)
					pl_frame_decoder_feed(&x.d, big + i, 1);
			} else {
				pl_frame_decoder_feed(&x.d, big, big_len);
			}
			assert_int_equal(x.s.frames, 0);
			assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_OVERSIZE], 1);
			assert_int_equal(total_drops(&x.d), 1);
			assert_int_equal(x.s.why[0], PL_FRAME_DROP_OVERSIZE);
			assert_true(x.d.len <= x.buf_len);

			pl_frame_decoder_feed(&x.d, small, small_len);
			assert_int_equal(x.s.frames, 1);
			assert_frame(&x.s, 0, 2, payload, 64);

			pl_frame_decoder_feed(&x.d, over, over_len);
			assert_int_equal(x.s.frames, 1);
			assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_OVERSIZE], 2);

			pl_frame_decoder_feed(&x.d, small, small_len);
			assert_int_equal(x.s.frames, 2);
			assert_int_equal(total_drops(&x.d), 2);
			dec_free(&x);
		}
	}
}

static void test_set_limit(void **state)
{
	(void)state;
	uint8_t payload[300];
	uint8_t enc[PL_FRAME_ENCODED_MAX(300)];
	struct dec x;
	size_t len;

	fill(payload, sizeof payload, PAT_SPARSE_ZERO);
	dec_init(&x, 256);

	len = pl_frame_encode(payload, 256, 0, enc, sizeof enc);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.s.frames, 1);

	pl_frame_decoder_set_limit(&x.d, 100);
	len = pl_frame_encode(payload, 100, 0, enc, sizeof enc);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.s.frames, 2);
	assert_frame(&x.s, 1, 0, payload, 100);
	len = pl_frame_encode(payload, 101, 0, enc, sizeof enc);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.s.frames, 2);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_OVERSIZE], 1);

	/* Never raised again, not even up to what the buffer holds. */
	pl_frame_decoder_set_limit(&x.d, 1000);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.s.frames, 2);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_OVERSIZE], 2);

	/* Lowered in the middle of a frame: that frame is refused too. */
	pl_frame_decoder_set_limit(&x.d, 100);
	len = pl_frame_encode(payload, 100, 0, enc, sizeof enc);
	pl_frame_decoder_feed(&x.d, enc, len - 3);
	pl_frame_decoder_set_limit(&x.d, 50);
	pl_frame_decoder_feed(&x.d, enc + len - 3, 3);
	assert_int_equal(x.s.frames, 2);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_OVERSIZE], 3);
	len = pl_frame_encode(payload, 50, 0, enc, sizeof enc);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.s.frames, 3);
	dec_free(&x);
}

static void test_reset(void **state)
{
	(void)state;
	uint8_t payload[100];
	uint8_t enc[PL_FRAME_ENCODED_MAX(100)];
	struct dec x;

	fill(payload, sizeof payload, PAT_RANDOM);
	size_t len = pl_frame_encode(payload, sizeof payload, 4, enc, sizeof enc);
	dec_init(&x, 100);
	/* Half a frame, then a reconnect: the half must not taint the next. */
	pl_frame_decoder_feed(&x.d, enc, len / 2);
	pl_frame_decoder_reset(&x.d);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.s.frames, 1);
	assert_frame(&x.s, 0, 4, payload, sizeof payload);
	assert_int_equal(total_drops(&x.d), 0);

	/* Reset while skipping an oversize frame. */
	pl_frame_decoder_set_limit(&x.d, 10);
	pl_frame_decoder_feed(&x.d, enc, len / 2);
	assert_int_equal(x.d.stats.dropped[PL_FRAME_DROP_OVERSIZE], 1);
	pl_frame_decoder_reset(&x.d);
	len = pl_frame_encode(payload, 10, 4, enc, sizeof enc);
	pl_frame_decoder_feed(&x.d, enc, len);
	assert_int_equal(x.s.frames, 2);
	dec_free(&x);
}

/* Random frames and random garbage, fed in random pieces: every good frame
 * that has a clean delimiter before it arrives, in order, and nothing
 * else. */
static void test_random_stream(void **state)
{
	(void)state;
	enum { N = 200, MAXP = 700 };
	static uint8_t stream[N * (PL_FRAME_ENCODED_MAX(MAXP) + 80)];
	static uint8_t payloads[N][MAXP];
	size_t lens[N];
	size_t pos = 0;
	struct dec x;

	for (int i = 0; i < N; i++) {
		lens[i] = rnd() % MAXP;
		fill(payloads[i], lens[i], (enum pattern)(rnd() % PAT_COUNT));
		if (rnd() % 4 == 0) {
			size_t g = rnd() % 80;
			fill(stream + pos, g, PAT_RANDOM);
			pos += g;
		}
		stream[pos++] = 0;
		pos += pl_frame_encode(payloads[i], lens[i], (uint8_t)i,
		                       stream + pos, sizeof stream - pos);
	}
	dec_init(&x, MAXP);
	size_t next = 0;
	for (size_t at = 0; at < pos;) {
		size_t k = rnd() % 3000;
		if (k > pos - at)
			k = pos - at;
		pl_frame_decoder_feed(&x.d, stream + at, k);
		at += k;
		/* Check and release as we go (the sink holds MAX_SEEN). */
		for (size_t j = 0; j < x.s.frames; j++) {
			assert_frame(&x.s, j, (uint8_t)next, payloads[next],
			             lens[next]);
			next++;
		}
		sink_clear(&x.s);
	}
	assert_int_equal(next, N);
	assert_int_equal(x.d.stats.frames, N);
	dec_free(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_known_vector),
		cmocka_unit_test(test_crc_matches_zlib),
		cmocka_unit_test(test_round_trip_sizes),
		cmocka_unit_test(test_encode_too_small),
		cmocka_unit_test(test_writer_pieces),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_several_frames_one_feed),
		cmocka_unit_test(test_empty_frames_ignored),
		cmocka_unit_test(test_corrupt_every_bit_small),
		cmocka_unit_test(test_corrupt_every_byte_large),
		cmocka_unit_test(test_corrupt_delimiter),
		cmocka_unit_test(test_garbage_then_frame),
		cmocka_unit_test(test_drop_reasons),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_encode_one_short_all_crcs),
		cmocka_unit_test(test_set_limit),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_random_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
