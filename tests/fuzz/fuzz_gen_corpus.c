/*
 * fuzz_gen_corpus OUTDIR: writes the seed inputs of every fuzz target into
 * OUTDIR/<target>/seed-<what> (tests/fuzz/corpus is committed; rerun this
 * after a protocol change and commit what changed).  Valid examples of each
 * input format, built with the real encoders, plus the edge cases a fuzzer
 * takes long to stumble on.
 *
 * The envelope seeds come from a recorded conversation: libpenlink runs
 * fuzz_envelope's own host calls against the real firmware endpoint
 * (fuzz_envelope.c is included for its fake pen and call sequence), and
 * the host's bytes, the endpoint's answers and each envelope are written
 * out in the three input forms of fuzz_envelope.  The same files every run
 * but for the times and ping payloads in that conversation (the host's
 * real clock).
 */
#include "fuzz_envelope.c"

#include <errno.h>
#include <sys/stat.h>

#include "ctl.pb-c.h"
#include "record.pb-c.h"

static const char *outdir;
static unsigned written;

/* ------------------------------------------------------------------ output */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		FUZZ_CHECK(b->p != NULL, "out of memory");
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_str(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void write_seed(const char *target, const char *name, const void *p,
                       size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", outdir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		FUZZ_CHECK(0, "mkdir %s: %s", path, strerror(errno));
	snprintf(path, sizeof path, "%s/%s/seed-%s", outdir, target, name);
	f = fopen(path, "wb");
	FUZZ_CHECK(f != NULL, "cannot write %s: %s", path, strerror(errno));
	FUZZ_CHECK(fwrite(p, 1, len, f) == len && fclose(f) == 0, "writing %s",
	           path);
	written++;
}

static void write_buf(const char *target, const char *name, struct buf *b)
{
	write_seed(target, name, b->p, b->len);
	free(b->p);
	memset(b, 0, sizeof *b);
}

static void put_frame(struct buf *b, const void *payload, size_t len)
{
	size_t cap = PL_FRAME_ENCODED_MAX(len);
	uint8_t *f = malloc(cap);
	size_t n;
	FUZZ_CHECK(f != NULL, "out of memory");
	n = pl_frame_encode(payload, len, 0, f, cap);
	FUZZ_CHECK(n > 0, "frame");
	put(b, f, n);
	free(f);
}

/* COBS of arbitrary raw bytes, so a frame can carry a wrong version or CRC. */
static void put_cobs(struct buf *b, const uint8_t *raw, size_t len)
{
	size_t i = 0;
	for (;;) {
		size_t run = 0;
		while (i + run < len && raw[i + run] != 0 && run < 254)
			run++;
		put_u8(b, (uint8_t)(run + 1));
		put(b, raw + i, run);
		i += run;
		if (run == 254)
			continue;
		if (i >= len)
			break;
		i++; /* the zero this block stands for */
		if (i == len) {
			put_u8(b, 1);
			break;
		}
	}
	put_u8(b, 0);
}

static void put_raw_frame(struct buf *b, uint8_t version, const uint8_t *p,
                          size_t len, int break_crc)
{
	uint8_t *raw = malloc(len + 6);
	uint32_t crc;
	FUZZ_CHECK(raw != NULL, "out of memory");
	raw[0] = version;
	raw[1] = 0;
	memcpy(raw + 2, p, len);
	crc = pl_crc32(0, raw, len + 2) ^ (break_crc ? 1u : 0u);
	for (int k = 0; k < 4; k++)
		raw[len + 2 + k] = (uint8_t)(crc >> (8 * k));
	put_cobs(b, raw, len + 6);
	free(raw);
}

/* ------------------------------------------------------------------ frame */

static void gen_frame(void)
{
	uint8_t p[1100];
	struct buf b = {0};

	for (size_t i = 0; i < sizeof p; i++)
		p[i] = (uint8_t)(i % 7 == 3 ? 0 : i * 13 + 1);

	/* limit 256: frames around the COBS block size, a flush, garbage. */
	put_u8(&b, 0x40);
	put(&b, "\x01\x02\x03\x04", 4);
	put_u8(&b, 0);
	put_frame(&b, NULL, 0);
	put_frame(&b, "hello", 5);
	put_frame(&b, p + 1, 6);
	put_frame(&b, p, 253);
	put_frame(&b, p, 256);
	put(&b, "garbage\xff\xfe", 9);
	put_u8(&b, 0);
	put_frame(&b, "\0\0\0", 3);
	write_buf("frame", "mixed", &b);

	/* 254 and 255 non-zero bytes: one full COBS block, and one more. */
	{
		uint8_t nz[600];
		for (size_t i = 0; i < sizeof nz; i++)
			nz[i] = (uint8_t)(1 + i % 255);
		put_u8(&b, 0xfe);
		put(&b, "\x11\x22\x33\x44", 4);
		put_frame(&b, nz, 248); /* + header and CRC = 254 */
		put_frame(&b, nz, 249);
		put_frame(&b, nz, 502);
		put_frame(&b, nz, 600);
		write_buf("frame", "cobs-blocks", &b);
	}

	/* Over the limit (odd selector: roomy buffer, limit lowered). */
	put_u8(&b, 0x03);
	put(&b, "\x05\x00\x00\x00", 4);
	put_frame(&b, p, 8);
	put_frame(&b, p, 9);
	put_frame(&b, p, 1000);
	put_frame(&b, "ok", 2);
	write_buf("frame", "oversize", &b);

	/* Bad CRC, unknown version, too short, cut by a delimiter. */
	put_u8(&b, 0x80);
	put(&b, "\x99\x88\x77\x66", 4);
	put_raw_frame(&b, 1, p, 20, 1);
	put_raw_frame(&b, 2, p, 20, 0);
	put_raw_frame(&b, 1, p, 20, 0);
	put(&b, "\x03\x01\x00", 3);     /* decodes to 3 bytes: short */
	put(&b, "\x09\x01\x02\x00", 4); /* block cut by the delimiter */
	put(&b, "\x05\x01\x02", 3);     /* unterminated at the end */
	write_buf("frame", "damaged", &b);

	/* A buffer too small for any frame. */
	put_u8(&b, 0xff);
	put(&b, "\x03\x00\x00\x00", 4);
	put_frame(&b, NULL, 0);
	put_frame(&b, "x", 1);
	write_buf("frame", "tiny-buffer", &b);
}

/* ------------------------------------------------------------------ envelope */

static struct buf host_bytes, script;
static unsigned raw_seen[64];

static void raw_seed(const uint8_t *p, size_t len)
{
	Pl__Envelope *e = pl__envelope__unpack(NULL, len, p);
	char name[64];
	struct buf b = {0};
	FUZZ_CHECK(e != NULL, "recorded a non-envelope");
	/* Two of each kind are plenty. */
	if (raw_seen[e->body_case % 64]++ < 2) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field(&pl__envelope__descriptor,
		                                            (unsigned)e->body_case);
		snprintf(name, sizeof name, "raw-%s-%u", f ? f->name : "empty",
		         raw_seen[e->body_case % 64]);
		put_u8(&b, 2);
		put(&b, p, len);
		write_buf("envelope", name, &b);
	}
	pl__envelope__free_unpacked(e, NULL);
}

static void record_sent(void *ctx, uint8_t flags, const uint8_t *p, size_t len)
{
	uint16_t l16 = (uint16_t)len;
	(void)ctx;
	(void)flags;
	FUZZ_CHECK(len <= 0xffff, "reply too long for a script record");
	put_u8(&script, 0);
	put(&script, &l16, 2);
	put(&script, p, len);
	raw_seed(p, len);
}

static void record_host(void *ctx, uint8_t flags, const uint8_t *p, size_t len)
{
	(void)ctx;
	(void)flags;
	raw_seed(p, len);
}

/* The recording pen: host bytes to the endpoint, its frames back, both
 * written down. */
static struct pl_transport *rec_pen_t;
static struct pl_frame_decoder rec_reply_dec, rec_host_dec;
static uint8_t rec_reply_buf[PL_FRAME_RAW_LEN(PL_FW_MAX_FRAME)];
static uint8_t rec_host_buf[PL_FRAME_RAW_LEN(65536)];

static int rec_send(void *ud, const uint8_t *data, size_t len)
{
	(void)ud;
	pl_frame_decoder_feed(&rec_reply_dec, data, len);
	FUZZ_CHECK(pl_transport_write(rec_pen_t, data, len) == (int)len, "write");
	return PL_FW_OK;
}

static void rec_pump(void *ud)
{
	uint8_t tmp[4096];
	int n;
	(void)ud;
	while ((n = pl_transport_read(rec_pen_t, tmp, sizeof tmp)) > 0) {
		put(&host_bytes, tmp, (size_t)n);
		pl_frame_decoder_feed(&rec_host_dec, tmp, (size_t)n);
		pl_fw_rx(&fp.fw, tmp, (size_t)n);
	}
}

static void put_record(struct buf *b, uint8_t how, const void *p, size_t len)
{
	uint16_t l16 = (uint16_t)len;
	put_u8(b, how);
	put(b, &l16, 2);
	put(b, p, len);
}

static void put_envelope_record(struct buf *b, uint8_t how, Pl__Envelope *e)
{
	size_t n = pl__envelope__get_packed_size(e);
	uint8_t *p = malloc(n ? n : 1);
	FUZZ_CHECK(p != NULL, "out of memory");
	pl__envelope__pack(e, p);
	put_record(b, how, p, n);
	raw_seed(p, n);
	free(p);
}

static void gen_envelope(void)
{
	struct pl_transport *host_t;
	struct pl_open_options o;
	struct pl_pen *pen;
	struct buf b = {0};

	/* Record a whole conversation. */
	fakepen_init(&fp, rec_send, NULL);
	pl_frame_decoder_init(&rec_reply_dec, rec_reply_buf, sizeof rec_reply_buf,
	                      record_sent, NULL, NULL);
	pl_frame_decoder_init(&rec_host_dec, rec_host_buf, sizeof rec_host_buf,
	                      record_host, NULL, NULL);
	FUZZ_CHECK(pl_transport_memory_pair(&host_t, &rec_pen_t) == PL_OK, "pair");
	pl_transport_memory_set_pump(host_t, rec_pump, NULL);
	pl_open_options_init(&o);
	FUZZ_CHECK(pl_pen_open_transport(host_t, &o, &pen) == PL_OK, "open: %s",
	           pl_error_message());
	host_calls(pen);
	pl_pen_close(pen);
	pl_transport_close(rec_pen_t);

	put_u8(&b, 0);
	put(&b, script.p, script.len);
	write_buf("envelope", "host-conversation", &b);
	put_u8(&b, 1);
	put(&b, "\x07\x00", 2);
	put(&b, host_bytes.p, host_bytes.len);
	write_buf("envelope", "fw-conversation", &b);
	put_u8(&b, 1);
	put(&b, "\x00\x00", 2);
	put(&b, host_bytes.p, host_bytes.len);
	write_buf("envelope", "fw-conversation-small-splits", &b);

	/* Host: a pen that refuses, interrupts itself and talks nonsense. */
	{
		Pl__Envelope e = PL__ENVELOPE__INIT;
		Pl__HelloReply hr = PL__HELLO_REPLY__INIT;
		Pl__Error err = PL__ERROR__INIT;
		Pl__TraceLine tl = PL__TRACE_LINE__INIT;
		Pl__StateEvent se = PL__STATE_EVENT__INIT;
		Pl__SessionList sl = PL__SESSION_LIST__INIT;

		hr.version = 1;
		hr.max_frame = 256;
		hr.max_in_flight = 3;
		hr.serial = "PEN-\x1b[31mRED";
		e.body_case = PL__ENVELOPE__BODY_HELLO_REPLY;
		e.hello_reply = &hr;
		put_u8(&b, 0);
		put_envelope_record(&b, 0, &e);
		tl.level = 2;
		tl.text = "trace with\ttabs\nand \x7f escapes";
		e.body_case = PL__ENVELOPE__BODY_TRACE_LINE;
		e.trace_line = &tl;
		put_envelope_record(&b, 2, &e);
		se.kind = PL__STATE_KIND__STATE_KIND_BATTERY_LOW;
		se.value = 3300;
		se.detail = "low";
		e.body_case = PL__ENVELOPE__BODY_STATE_EVENT;
		e.state_event = &se;
		put_envelope_record(&b, 2, &e);
		err.code = PL__ERROR_CODE__ERROR_CODE_VALIDATION;
		err.message = "depth too deep";
		err.field = "presets[0].depth_um";
		err.value = 3000;
		err.limit = 2500;
		e.body_case = PL__ENVELOPE__BODY_ERROR;
		e.error = &err;
		put_envelope_record(&b, 0, &e);
		put_record(&b, 4, "\x00\x05garbage", 9);
		sl.more = 1;
		e.body_case = PL__ENVELOPE__BODY_SESSION_LIST;
		e.session_list = &sl;
		put_envelope_record(&b, 1, &e);
		put_envelope_record(&b, 3, &e);
		write_buf("envelope", "host-odd-pen", &b);
	}
	/* Raw: an envelope with every field of a big message set. */
	{
		Pl__Envelope e = PL__ENVELOPE__INIT;
		Pl__DeviceInfo di = PL__DEVICE_INFO__INIT;
		Pl__Battery bat = PL__BATTERY__INIT;
		uint32_t rates[20];
		for (int i = 0; i < 20; i++)
			rates[i] = 50 + 10 * (uint32_t)i;
		di.serial = "PEN-\"quoted\"\\";
		di.model = "\xc3\xa9t\xc3\xa9";
		di.hw_revision = "\x01\x02";
		di.fw_version = "9.9.9";
		di.speed_levels = 20;
		di.stroke_rate_hz = rates;
		di.n_stroke_rate_hz = 20;
		di.battery = &bat;
		bat.percent = 101;
		bat.charging = 1;
		e.id = 0xffffffffu;
		e.body_case = PL__ENVELOPE__BODY_DEVICE_INFO;
		e.device_info = &di;
		put_u8(&b, 2);
		{
			size_t n = pl__envelope__get_packed_size(&e);
			uint8_t *p = malloc(n);
			pl__envelope__pack(&e, p);
			put(&b, p, n);
			free(p);
		}
		write_buf("envelope", "raw-device-info-odd", &b);
	}
	free(script.p);
	free(host_bytes.p);
}

/* ------------------------------------------------------------------ record */

static void pack_record(const char *name, const Pl__SessionRecord *r)
{
	size_t n = pl__session_record__get_packed_size(r);
	uint8_t *p = malloc(n ? n : 1);
	FUZZ_CHECK(p != NULL, "out of memory");
	pl__session_record__pack(r, p);
	write_seed("record", name, p, n);
	free(p);
}

static void gen_record(void)
{
	static uint8_t uuid[16], cuid[7] = {4, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6};
	static uint32_t depth[6] = {480, 500, 520, 0, 4294967295u, 500};
	static uint32_t cur[6] = {180, 240, 300, 0, 1, 2};
	static uint32_t bat[6] = {4100, 3905, 3700, 3600, 3500, 3400};
	Pl__SessionRecord r = PL__SESSION_RECORD__INIT;
	Pl__Preset p = PL__PRESET__INIT;
	Pl__Cartridge c = PL__CARTRIDGE__INIT;
	Pl__Summary s = PL__SUMMARY__INIT;
	Pl__Telemetry t = PL__TELEMETRY__INIT;
	Pl__Event ev[12];
	Pl__Event *evp[12];

	for (int i = 0; i < 16; i++)
		uuid[i] = (uint8_t)(0x1b + i * 17);
	r.format = 1;
	r.uuid.data = uuid;
	r.uuid.len = 16;
	r.seq = 42;
	r.serial = "PL-0001";
	r.fw_version = "1.2.0";
	r.start_ms = 1700000000000;
	r.end_ms = 1700001800000;
	r.time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	pack_record("minimal", &r);

	p.id = 1;
	p.name = "Forehead fine";
	p.depth_um = 500;
	p.speed_level = 3;
	p.area = PL__AREA__AREA_FOREHEAD;
	p.needle_count = 12;
	p.max_duration_s = 600;
	r.preset = &p;
	r.preset_revision = 5;
	c.needle_count = 12;
	c.needle_length_um = 1500;
	c.lot = "L2309-14";
	c.uid.data = cuid;
	c.uid.len = sizeof cuid;
	r.cartridge = &c;
	s.run_time_s = 1513;
	s.strokes = 151300;
	s.max_depth_um = 750;
	s.errors = 1;
	r.summary = &s;
	for (int i = 0; i < 12; i++) {
		pl__event__init(&ev[i]);
		ev[i].offset_ms = (uint32_t)i * 61234u;
		ev[i].kind = (Pl__EventKind)i;
		ev[i].value = i == 5 ? 750 : i == 7 ? 10 : i == 10 ? 3300 : -i;
		evp[i] = &ev[i];
	}
	ev[11].kind = (Pl__EventKind)99; /* a kind from a newer pen */
	r.events = evp;
	r.n_events = 12;
	t.interval_us = 10000;
	t.depth_um = depth;
	t.n_depth_um = 6;
	t.current_ma = cur;
	t.n_current_ma = 6;
	t.battery_mv = bat;
	t.n_battery_mv = 6;
	r.telemetry = &t;
	pack_record("full", &r);

	/* Text a CSV or a terminal must not take literally. */
	r.serial = "PL,\"0002\"\r\nx";
	p.name = "Cheek, \"left\"\n\x1b[2J";
	c.lot = "lot\x7f\x01";
	p.area = (Pl__Area)99;
	r.time_source = PL__TIME_SOURCE__TIME_SOURCE_UPTIME;
	r.start_ms = 12345;
	r.end_ms = 99999;
	pack_record("awkward-text", &r);

	/* Extremes of the clock. */
	r.serial = "PL-0003";
	r.time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	r.start_ms = -62135596800001;
	r.end_ms = 253402300800000;
	pack_record("far-times", &r);
	r.start_ms = INT64_MIN + 1;
	r.end_ms = INT64_MIN + 5;
	pack_record("min-times", &r);
	/* Valid (it ends after it starts), but the span overflows int64_t. */
	r.start_ms = INT64_MIN;
	r.end_ms = INT64_MAX;
	pack_record("widest-span", &r);

	/* What the parser must refuse. */
	r.start_ms = 1700000000000;
	r.end_ms = 1699999999999;
	pack_record("ends-before-start", &r);
	r.end_ms = 1700000000001;
	t.n_battery_mv = 5;
	pack_record("telemetry-mismatch", &r);
	t.n_battery_mv = 6;
	t.interval_us = 0;
	pack_record("no-interval", &r);
	t.interval_us = 10000;
	r.uuid.len = 15;
	pack_record("short-uuid", &r);
	r.uuid.len = 16;
	r.format = 2;
	pack_record("newer-format", &r);
	r.format = 0;
	pack_record("no-format", &r);
	write_seed("record", "not-protobuf", "\xff\xff\xff\xff\x0f", 5);
	/* A pen may list a session of 0 bytes; the archive must take it. */
	write_seed("record", "empty", "", 0);
}

/* ------------------------------------------------------------------ ctl */

static void put_request(struct buf *b, Plctl__Request *rq)
{
	size_t n = plctl__request__get_packed_size(rq);
	uint8_t *p = malloc(n ? n : 1);
	FUZZ_CHECK(p != NULL, "out of memory");
	plctl__request__pack(rq, p);
	put_frame(b, p, n);
	free(p);
}

static void gen_ctl(void)
{
	struct buf all = {0}, b = {0};
	Plctl__Request rq;
	uint32_t id = 1;
	char name[64];

#define ONE(seed, field, CASE, msg)                                        \
	do {                                                                   \
		plctl__request__init(&rq);                                         \
		rq.id = id++;                                                      \
		rq.op_case = PLCTL__REQUEST__OP_##CASE;                            \
		rq.field = &msg;                                                   \
		put_u8(&b, 0);                                                     \
		put_request(&b, &rq);                                              \
		put_request(&all, &rq);                                            \
		snprintf(name, sizeof name, "%s", seed);                           \
		write_buf("ctl", name, &b);                                        \
	} while (0)

	put_u8(&all, 0);
	{
		Plctl__Hello m = PLCTL__HELLO__INIT;
		m.version = 1;
		m.client = "penctl 0.1.0";
		ONE("hello", hello, HELLO, m);
	}
	{
		Plctl__ListPens m = PLCTL__LIST_PENS__INIT;
		ONE("list-pens", list_pens, LIST_PENS, m);
	}
	{
		Plctl__GetInfo m = PLCTL__GET_INFO__INIT;
		m.serial = "PEN-FUZZ"; /* fuzz_ctl's pen */
		ONE("get-info", get_info, GET_INFO, m);
	}
	{
		Plctl__GetPresets m = PLCTL__GET_PRESETS__INIT;
		ONE("get-presets", get_presets, GET_PRESETS, m);
	}
	{
		Plctl__PushPresets m = PLCTL__PUSH_PRESETS__INIT;
		Pl__Preset p = PL__PRESET__INIT;
		Pl__Preset *pp[1] = {&p};
		p.id = 1;
		p.name = "Neck";
		p.depth_um = 2000;
		p.speed_level = 1;
		p.area = PL__AREA__AREA_NECK;
		m.presets = pp;
		m.n_presets = 1;
		m.confirm = 1;
		ONE("push-presets", push_presets, PUSH_PRESETS, m);
		/* Deeper than the confirmation threshold, unconfirmed; and a
		 * revision that is no longer current. */
		p.depth_um = 1750;
		m.confirm = 0;
		ONE("push-unconfirmed", push_presets, PUSH_PRESETS, m);
		p.depth_um = 750;
		p.speed_level = 2;
		m.expected_revision = 3;
		ONE("push-stale", push_presets, PUSH_PRESETS, m);
	}
	{
		Plctl__ClockSync m = PLCTL__CLOCK_SYNC__INIT;
		ONE("clock-sync", clock_sync, CLOCK_SYNC, m);
	}
	{
		Plctl__ListSessions m = PLCTL__LIST_SESSIONS__INIT;
		m.serial = "PEN-0001";
		ONE("list-sessions", list_sessions, LIST_SESSIONS, m);
	}
	{
		Plctl__ShowSession m = PLCTL__SHOW_SESSION__INIT;
		m.uuid = "10111213-1415-1617-1819-1a1b1c1d1e1f";
		ONE("show-session", show_session, SHOW_SESSION, m);
	}
	{
		Plctl__ExportSessions m = PLCTL__EXPORT_SESSIONS__INIT;
		m.format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV;
		ONE("export-csv", export_sessions, EXPORT_SESSIONS, m);
		m.format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON;
		m.serial = "PEN-0001";
		ONE("export-json", export_sessions, EXPORT_SESSIONS, m);
	}
	{
		/* fuzz_ctl skips inputs that attach a real device. */
		Plctl__Attach m = PLCTL__ATTACH__INIT;
		m.path = "/nonexistent/ttyACM9";
		ONE("attach", attach, ATTACH, m);
		m.path = "/tmp";
		ONE("attach-dir", attach, ATTACH, m);
	}
	{
		Plctl__Detach m = PLCTL__DETACH__INIT;
		m.serial = "PEN-0001";
		ONE("detach", detach, DETACH, m);
		m.serial = "PEN-FUZZ";
		put_u8(&b, 0);
		plctl__request__init(&rq);
		rq.id = 99;
		rq.op_case = PLCTL__REQUEST__OP_DETACH;
		rq.detach = &m;
		put_request(&b, &rq);
		write_buf("ctl", "detach-pen", &b);
	}
	{
		Plctl__Audit m = PLCTL__AUDIT__INIT;
		m.limit = 5;
		ONE("audit", audit, AUDIT, m);
	}
	{
		Plctl__Monitor m = PLCTL__MONITOR__INIT;
		ONE("monitor", monitor, MONITOR, m);
	}
	{
		Plctl__Trace m = PLCTL__TRACE__INIT;
		m.level = 3;
		ONE("trace", trace, TRACE, m);
	}
#undef ONE
	write_seed("ctl", "all-as-root", all.p, all.len);
	all.p[0] = 1;
	write_seed("ctl", "all-as-nobody", all.p, all.len);
	free(all.p);
	memset(&all, 0, sizeof all);

	/* Malformed: id 0, an operation from the future, garbage, damage. */
	put_u8(&b, 0);
	{
		Plctl__Hello m = PLCTL__HELLO__INIT;
		plctl__request__init(&rq);
		rq.op_case = PLCTL__REQUEST__OP_HELLO;
		rq.hello = &m;
		put_request(&b, &rq);
	}
	put_frame(&b, "\x08\x07\xfa\x06\x00", 5); /* id 7, field 111 (empty) */
	put_frame(&b, "\xff\xff\xff", 3);
	put(&b, "\x05\x01\x02\x03\x04\x00", 6); /* bad CRC */
	for (int i = 0; i < 20; i++)
		put(&b, "\x02\x01\x00", 3);
	write_buf("ctl", "malformed", &b);
}

/* ------------------------------------------------------------------ preset_json */

static void gen_preset_json(void)
{
	static const struct {
		const char *name, *text;
	} seeds[] = {
	    {"valid",
	     "{\"presets\": [\n"
	     "  {\"id\": 1, \"name\": \"Forehead fine\", \"depth_mm\": 0.5, \"speed\": 3,"
	     " \"area\": \"forehead\", \"needles\": 12, \"max_duration_s\": 600},\n"
	     "  {\"id\": 2, \"name\": \"D\xc3\xa9\x63oll\xc3\xa9t\xc3\xa9\", \"depth_mm\": \"1.25\","
	     " \"speed\": 2, \"area\": \"d\xc3\xa9\x63oll\xc3\xa9t\xc3\xa9\"},\n"
	     "  {\"id\": 64, \"name\": \"Scar\", \"depth_mm\": 2, \"speed\": 1,"
	     " \"area\": \"Body_Scar\", \"needles\": 0}\n"
	     "], \"revision\": 7}\n"},
	    {"empty-set", "{\"presets\": []}"},
	    {"unspecified-area",
	     "{\"presets\":[{\"id\":3,\"name\":\"x\",\"depth_mm\":0.25,\"speed\":1,"
	     "\"area\":\"unspecified\"}]}"},
	    {"bad-depths",
	     "{\"presets\":[{\"id\":1,\"name\":\"a\",\"depth_mm\":\"0.1234\",\"speed\":1}]}"},
	    {"negative",
	     "{\"presets\":[{\"id\":1,\"name\":\"a\",\"depth_mm\":-1,\"speed\":1}]}"},
	    {"exponent",
	     "{\"presets\":[{\"id\":1,\"name\":\"a\",\"depth_mm\":1e1,\"speed\":1}]}"},
	    {"unknown-key",
	     "{\"presets\":[{\"id\":1,\"name\":\"a\",\"depth_mm\":1,\"speed\":1,\"x\":0}]}"},
	    {"missing-speed", "{\"presets\":[{\"id\":1,\"name\":\"a\",\"depth_mm\":1}]}"},
	    {"long-name",
	     "{\"presets\":[{\"id\":1,\"name\":\"0123456789012345678901234567890123\","
	     "\"depth_mm\":1,\"speed\":1}]}"},
	    {"bad-utf8",
	     "{\"presets\":[{\"id\":1,\"name\":\"\xed\xa0\x80\",\"depth_mm\":1,\"speed\":1}]}"},
	    {"escaped-nul",
	     "{\"presets\":[{\"id\":1,\"name\":\"a\\u0000b\",\"depth_mm\":1,\"speed\":1}]}"},
	    {"duplicate-ids",
	     "{\"presets\":[{\"id\":1,\"name\":\"a\",\"depth_mm\":1,\"speed\":1},"
	     "{\"id\":1,\"name\":\"b\",\"depth_mm\":1,\"speed\":1}]}"},
	    {"truncated", "{\"presets\": [{\"id\": 1, \"na"},
	    {"not-object", "[1, 2, 3]"},
	    {"big-numbers",
	     "{\"presets\":[{\"id\":18446744073709551616,\"name\":\"a\",\"depth_mm\":"
	     "99999999999999999999.5,\"speed\":1,\"max_duration_s\":4294967295}]}"},
	};
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		write_seed("preset_json", seeds[i].name, seeds[i].text,
		           strlen(seeds[i].text));
}

/* ------------------------------------------------------------------ config */

static void gen_config(void)
{
	static const struct {
		const char *name, *text;
	} seeds[] = {
	    {"everything",
	     "# every key\n"
	     "[daemon]\n"
	     "socket = /run/penlink/penlinkd.sock\n"
	     "database = /var/lib/penlink/archive.db\n"
	     "socket_group = penlink\n"
	     "socket_mode = 0660\n"
	     "log_level = debug\n"
	     "[usb]\n"
	     "enabled = no\n"
	     "ids = 1209:0001, 1209:ABCD,0483:5740\n"
	     "[access]\n"
	     "logs_group = penlink-logs\n"
	     "presets_group =\n"
	     "[policy]\n"
	     "confirm_above_mm = 1.5\n"
	     "depth_cap.penlink-nurse = 1.0\n"
	     "depth_cap.senior = 2.25\n"
	     "[pens]\n"
	     "request_timeout_ms = 1000\n"
	     "handshake_timeout_ms = 5000\n"
	     "download_window = 8\n"},
	    {"errors-late",
	     "[daemon]\nlog_level = info\n\n\n; comment\n[pens]\ndownload_window = 1025\n"},
	    {"twice", "[usb]\nenabled = yes\n[usb]\nenabled = no\n"},
	    {"outside", "key = value\n"},
	    {"unknown-section", "[printer]\nduplex = yes\n"},
	    {"continuation", "[daemon]\nsocket = /a\n  continued\n"},
	    {"bad-values",
	     "[daemon]\nsocket_mode = 0999\n[usb]\nids = 12345:1\n[policy]\n"
	     "confirm_above_mm = 1.5.5\n"},
	    {"no-newline", "[pens]\nrequest_timeout_ms = 10"},
	    {"relative-path", "[daemon]\ndatabase = archive.db\n"},
	    {"crlf", "[usb]\r\nenabled = yes\r\n"},
	};
	struct buf b = {0};

	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		write_seed("config", seeds[i].name, seeds[i].text,
		           strlen(seeds[i].text));
	/* A line longer than the reader takes. */
	put_str(&b, "[daemon]\nsocket = /");
	for (int i = 0; i < 1100; i++)
		put_u8(&b, 'a');
	put_str(&b, "\nlog_level = warn\n");
	write_buf("config", "long-line", &b);
	/* More caps than fit. */
	put_str(&b, "[policy]\n");
	for (int i = 0; i < 20; i++) {
		char line[64];
		snprintf(line, sizeof line, "depth_cap.g%d = 0.%d\n", i, i % 10);
		put_str(&b, line);
	}
	write_buf("config", "many-caps", &b);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR (e.g. tests/fuzz/corpus)\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "fuzz_gen_corpus: cannot create %s: %s\n", outdir,
		        strerror(errno));
		return 1;
	}
	gen_frame();
	gen_envelope();
	gen_record();
	gen_ctl();
	gen_preset_json();
	gen_config();
	printf("fuzz_gen_corpus: %u seed files written under %s\n", written, outdir);
	return 0;
}
