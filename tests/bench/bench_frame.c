/*
 * Framing codec throughput (brief §6: >= 1 GB/s encode and decode on one
 * core).
 *
 * Payloads are 16 KiB, the size of a session-download chunk, of three
 * kinds: random bytes (no structure, 1/256 zeros), bytes with about one
 * zero in 64 (COBS blocks get short, the encoder's and decoder's worst
 * realistic case), and real Envelopes carrying SessionChunks of a packed
 * SessionRecord with telemetry varints (what a download actually moves).
 * GB/s counts payload bytes, 1 GB = 1e9 bytes.  Each measurement runs until
 * it has moved >= 512 MiB and taken >= 1 s.  The figure on the last line is
 * the slowest of the three kinds.
 *
 * Exit status: 0 whether or not the target is met; 1 if the codec produced
 * wrong output.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "penlink_wire.h"
#include "penlink.pb-c.h"
#include "record.pb-c.h"

#define PAYLOAD (16u * 1024u)
#define NPAY 16                       /* distinct payloads per kind */
#define MIN_BYTES (512ull << 20)
#define MIN_SECONDS 1.0
#define TARGET_GBPS 1.0
#define FEED_CHUNK 65536u             /* bytes per decoder feed, like a read() */

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint32_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

static void fill_sparse_zero(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (rnd() % 64 == 0) ? 0 : (uint8_t)(rnd() % 255 + 1);
}

/*
 * A serialized SessionRecord with telemetry as a pen records it (depth
 * around the set point, motor current, a slowly falling battery), cut into
 * SessionChunk envelopes whose packed size is exactly PAYLOAD.
 */
static int fill_envelopes(uint8_t payloads[NPAY][PAYLOAD])
{
	enum { SAMPLES = 60000 };
	Pl__SessionRecord rec = PL__SESSION_RECORD__INIT;
	Pl__Telemetry tel = PL__TELEMETRY__INIT;
	uint32_t *depth = malloc(SAMPLES * sizeof *depth);
	uint32_t *current = malloc(SAMPLES * sizeof *current);
	uint32_t *battery = malloc(SAMPLES * sizeof *battery);
	uint8_t uuid[16];
	uint8_t *record;
	size_t record_len;
	uint64_t offset = 0;

	if (!depth || !current || !battery)
		return -1;
	for (int i = 0; i < SAMPLES; i++) {
		depth[i] = 1000 + rnd() % 40 - 20;
		current[i] = 180 + rnd() % 120;
		battery[i] = 4100 - (uint32_t)i / 200 - rnd() % 8;
	}
	fill_random(uuid, sizeof uuid);
	tel.interval_us = 10000;
	tel.n_depth_um = tel.n_current_ma = tel.n_battery_mv = SAMPLES;
	tel.depth_um = depth;
	tel.current_ma = current;
	tel.battery_mv = battery;
	rec.format = 1;
	rec.uuid.data = uuid;
	rec.uuid.len = sizeof uuid;
	rec.seq = 42;
	rec.serial = "PL-BENCH-0001";
	rec.start_ms = 1700000000000;
	rec.end_ms = rec.start_ms + SAMPLES * 10;
	rec.time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	rec.telemetry = &tel;

	record_len = pl__session_record__get_packed_size(&rec);
	record = malloc(record_len);
	if (!record)
		return -1;
	pl__session_record__pack(&rec, record);

	for (int i = 0; i < NPAY; i++) {
		Pl__Envelope env = PL__ENVELOPE__INIT;
		Pl__SessionChunk chunk = PL__SESSION_CHUNK__INIT;
		size_t want = PAYLOAD - 24, got;

		env.id = 1000u + (uint32_t)i;
		env.body_case = PL__ENVELOPE__BODY_SESSION_CHUNK;
		env.session_chunk = &chunk;
		chunk.id = 7;
		/* Shrink the data until the envelope is exactly PAYLOAD. */
		for (;;) {
			if (offset + want > record_len)
				offset = 0;
			chunk.offset = offset;
			chunk.data.data = record + offset;
			chunk.data.len = want;
			got = pl__envelope__get_packed_size(&env);
			if (got == PAYLOAD)
				break;
			if (got > PAYLOAD)
				want -= got - PAYLOAD;
			else
				want += PAYLOAD - got;
		}
		pl__envelope__pack(&env, payloads[i]);
		offset += want;
	}
	free(record);
	free(depth);
	free(current);
	free(battery);
	return 0;
}

struct check {
	uint8_t (*payloads)[PAYLOAD];
	uint64_t frames;
	uint64_t bytes;
	int verify;   /* compare content (not in the timed loop) */
	int bad;
};

static void on_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	struct check *c = ctx;
	size_t i = (size_t)(c->frames % NPAY);

	if (len != PAYLOAD || flags != (uint8_t)i ||
	    (c->verify && memcmp(payload, c->payloads[i], len) != 0))
		c->bad = 1;
	/* The cheap check the timed loop keeps: first and last bytes. */
	if (len == PAYLOAD && (payload[0] != c->payloads[i][0] ||
	                       payload[len - 1] != c->payloads[i][len - 1]))
		c->bad = 1;
	c->frames++;
	c->bytes += len;
}

struct result {
	double enc_gbps, dec_gbps;
};

/* Returns 0, or -1 if the codec got anything wrong. */
static int run(const char *name, uint8_t payloads[NPAY][PAYLOAD],
               struct result *res)
{
	static uint8_t stream[NPAY * PL_FRAME_ENCODED_MAX(PAYLOAD)];
	static uint8_t out[PL_FRAME_ENCODED_MAX(PAYLOAD)];
	static uint8_t dbuf[PL_FRAME_RAW_LEN(PAYLOAD)];
	struct pl_frame_decoder d;
	struct check c = {.payloads = payloads, .verify = 1};
	size_t stream_len = 0;
	uint64_t n, total;
	double t0, t;
	volatile size_t sink = 0;

	/* Correctness first: round trip every payload, whole stream. */
	for (int i = 0; i < NPAY; i++) {
		size_t len = pl_frame_encode(payloads[i], PAYLOAD, (uint8_t)i,
		                             stream + stream_len,
		                             sizeof stream - stream_len);
		if (len == 0) {
			fprintf(stderr, "%s: encode failed\n", name);
			return -1;
		}
		stream_len += len;
	}
	pl_frame_decoder_init(&d, dbuf, sizeof dbuf, on_frame, NULL, &c);
	pl_frame_decoder_feed(&d, stream, stream_len);
	if (c.bad || c.frames != NPAY) {
		fprintf(stderr, "%s: round trip wrong (%llu frames)\n", name,
		        (unsigned long long)c.frames);
		return -1;
	}
	c.verify = 0;
	c.frames = c.bytes = 0;

	/* Encode. */
	n = 0;
	t0 = now_s();
	do {
		for (int i = 0; i < NPAY; i++)
			sink += pl_frame_encode(payloads[i], PAYLOAD,
			                        (uint8_t)i, out, sizeof out);
		n += NPAY;
		t = now_s() - t0;
	} while (n * PAYLOAD < MIN_BYTES || t < MIN_SECONDS);
	res->enc_gbps = (double)(n * PAYLOAD) / t / 1e9;
	if (sink != n / NPAY * (stream_len)) {
		fprintf(stderr, "%s: encoded sizes changed\n", name);
		return -1;
	}

	/* Decode, fed in read()-sized pieces that split frames anywhere. */
	total = 0;
	t0 = now_s();
	do {
		for (size_t at = 0; at < stream_len; at += FEED_CHUNK) {
			size_t k = stream_len - at < FEED_CHUNK ? stream_len - at
			                                       : FEED_CHUNK;
			pl_frame_decoder_feed(&d, stream + at, k);
		}
		total += (uint64_t)NPAY * PAYLOAD;
		t = now_s() - t0;
	} while (total < MIN_BYTES || t < MIN_SECONDS);
	res->dec_gbps = (double)total / t / 1e9;
	if (c.bad || c.bytes != total) {
		fprintf(stderr, "%s: decoder delivered wrong frames\n", name);
		return -1;
	}
	for (int i = 0; i < PL_FRAME_DROP_COUNT; i++) {
		if (d.stats.dropped[i]) {
			fprintf(stderr, "%s: decoder dropped good frames\n", name);
			return -1;
		}
	}
	printf("%-28s %8.2f %12.2f\n", name, res->enc_gbps, res->dec_gbps);
	fflush(stdout);
	return 0;
}

int main(void)
{
	static uint8_t payloads[NPAY][PAYLOAD];
	struct result r, worst = {1e9, 1e9};
	int failed = 0;
	struct {
		const char *name;
		int kind;
	} kinds[] = {
		{"random bytes", 0},
		{"~1/64 zero bytes", 1},
		{"envelopes (telemetry)", 2},
	};

	printf("framing codec, %u KiB payloads, >= %llu MiB and >= %.0f s per figure\n",
	       PAYLOAD / 1024u, MIN_BYTES >> 20, MIN_SECONDS);
	printf("%-28s %8s %12s\n", "payload", "enc GB/s", "dec GB/s");
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		for (int i = 0; i < NPAY; i++) {
			if (kinds[k].kind == 0)
				fill_random(payloads[i], PAYLOAD);
			else if (kinds[k].kind == 1)
				fill_sparse_zero(payloads[i], PAYLOAD);
		}
		if (kinds[k].kind == 2 && fill_envelopes(payloads) != 0) {
			fprintf(stderr, "out of memory\n");
			return 1;
		}
		if (run(kinds[k].name, payloads, &r) != 0) {
			failed = 1;
			continue;
		}
		if (r.enc_gbps < worst.enc_gbps)
			worst.enc_gbps = r.enc_gbps;
		if (r.dec_gbps < worst.dec_gbps)
			worst.dec_gbps = r.dec_gbps;
	}
	if (failed) {
		printf("framing: codec produced wrong output: FAIL\n");
		return 1;
	}
	printf("framing: encode %.2f GB/s, decode %.2f GB/s (target >= %.2f GB/s each): %s\n",
	       worst.enc_gbps, worst.dec_gbps, TARGET_GBPS,
	       worst.enc_gbps >= TARGET_GBPS && worst.dec_gbps >= TARGET_GBPS
	           ? "PASS"
	           : "FAIL");
	return 0;
}
