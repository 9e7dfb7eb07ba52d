/*
 * The request engine and typed API against a scripted fake pen on the
 * in-memory transport.  The fake runs from the host end's pump, in this
 * thread: it decodes frames with the real decoder and answers with canned
 * envelopes, misbehaving on request (ignored requests, stray ids, errors,
 * out-of-order or broken chunks, unplug).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "penlink_wire.h"
#include "penlink.h"
#include "penlink_test.h"
#include "penlink.pb-c.h"

#define FAKE_MAX_FRAME 4096u
#define FAKE_WINDOW 4u
#define FAKE_PAGE 2u
#define MAX_LOG 4096

struct fake {
	struct pl_transport *host, *pen;
	struct pl_frame_decoder dec;
	uint8_t decbuf[PL_FRAME_RAW_LEN(70000)];
	uint8_t rx[65536];

	/* behaviour */
	int ignore_hellos;      /* Hellos to ignore; -1: all */
	uint32_t hello_version;
	bool ignore_all;        /* after the handshake */
	bool stray_before_pong;
	bool trace_before_pong;
	int error_code;         /* answer get_info with this ErrorCode */
	bool wrong_type;        /* answer get_info with a Pong */
	bool reorder;           /* answer the reads of one pump round in reverse */
	int bad_read;           /* answer this read (1-based) badly ... */
	int bad_kind;           /* ... 1: short data, 2: wrong offset, 3: past eof flag */
	int unplug_after;       /* unplug the host after this many reads */
	int corrupt_read;       /* damage the frame answering this read (1-based) */
	bool garbage;           /* junk and a delimiter before every reply */
	bool mangle_store;      /* store the first preset 250 um deeper */
	int64_t clock_offset_ms;

	/* what the fake saw */
	int first_byte;
	int n_hello;
	uint32_t hello_ids[64];
	int n_req;
	uint32_t req_ids[512];
	Pl__Envelope__BodyCase req_case[512];
	int n_reads;
	uint64_t first_read_off;
	int max_held;
	bool out_of_order;
	int n_puts;
	int64_t set_clock_ms;

	/* state */
	uint8_t *rec;
	size_t rec_len;
	uint8_t rec_sha[32];
	unsigned n_sessions;
	uint8_t *held[64];
	size_t held_len[64];
	int n_held;
	uint32_t revision;
	size_t n_presets;
	struct pl_preset presets[PL_MAX_PRESETS];
};

static void send_raw(struct fake *f, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		int n = pl_transport_write(f->pen, p, len);
		if (n <= 0)
			return; /* host gone: the test checks what it needs */
		p += n;
		len -= (size_t)n;
	}
}

static uint8_t *encode(Pl__Envelope *env, size_t *len)
{
	size_t plen = pl__envelope__get_packed_size(env);
	uint8_t *payload = malloc(plen + 1);
	pl__envelope__pack(env, payload);
	size_t cap = PL_FRAME_ENCODED_MAX(plen);
	uint8_t *out = malloc(cap);
	*len = pl_frame_encode(payload, plen, 0, out, cap);
	assert_true(*len > 0);
	free(payload);
	return out;
}

static void send_env(struct fake *f, Pl__Envelope *env)
{
	if (f->garbage) {
		static const uint8_t junk[] = {0x13, 0x37, 0xfe, 0x00, 0x05, 0x01, 0x00};
		send_raw(f, junk, sizeof junk);
	}
	size_t len;
	uint8_t *frame = encode(env, &len);
	send_raw(f, frame, len);
	free(frame);
}

static void reply_error(struct fake *f, uint32_t id, Pl__ErrorCode code,
                        const char *field, int64_t value, const char *msg)
{
	Pl__Error er = PL__ERROR__INIT;
	er.code = code;
	er.field = (char *)field;
	er.value = value;
	er.message = (char *)msg;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_ERROR;
	env.error = &er;
	send_env(f, &env);
}

static void on_hello(struct fake *f, const Pl__Envelope *req)
{
	if (f->n_hello < 64)
		f->hello_ids[f->n_hello] = req->id;
	f->n_hello++;
	if (f->ignore_hellos < 0 || f->n_hello <= f->ignore_hellos)
		return;
	Pl__HelloReply hr = PL__HELLO_REPLY__INIT;
	hr.version = f->hello_version;
	hr.max_frame = FAKE_MAX_FRAME;
	hr.max_in_flight = FAKE_WINDOW;
	hr.capabilities = 3;
	hr.serial = (char *)"FAKE-0001";
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = req->id;
	env.body_case = PL__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &hr;
	send_env(f, &env);
}

static void on_ping(struct fake *f, const Pl__Envelope *req)
{
	Pl__Pong pong = PL__PONG__INIT;
	pong.payload = req->ping->payload;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.body_case = PL__ENVELOPE__BODY_PONG;
	env.pong = &pong;
	if (f->trace_before_pong) {
		Pl__TraceLine tl = PL__TRACE_LINE__INIT;
		tl.uptime_ms = 1234;
		tl.level = 2;
		tl.text = (char *)"motor idle";
		Pl__Envelope ev = PL__ENVELOPE__INIT;
		ev.body_case = PL__ENVELOPE__BODY_TRACE_LINE;
		ev.trace_line = &tl;
		send_env(f, &ev);
		Pl__StateEvent se = PL__STATE_EVENT__INIT;
		se.uptime_ms = 1300;
		se.kind = PL__STATE_KIND__STATE_KIND_SESSION_RECORDED;
		se.value = 17;
		se.detail = (char *)"session 17";
		ev.body_case = PL__ENVELOPE__BODY_STATE_EVENT;
		ev.state_event = &se;
		send_env(f, &ev);
	}
	if (f->stray_before_pong) {
		env.id = req->id + 1000;
		send_env(f, &env);
	}
	env.id = req->id;
	send_env(f, &env);
	if (f->stray_before_pong)
		send_env(f, &env); /* a duplicate: the request is gone by then */
}

static void on_get_info(struct fake *f, const Pl__Envelope *req)
{
	if (f->error_code) {
		if (f->error_code == PL__ERROR_CODE__ERROR_CODE_VALIDATION)
			reply_error(f, req->id, f->error_code, "presets[1].depth_um", 2600,
			            "above maximum 2500");
		else
			reply_error(f, req->id, f->error_code, "", 0, "storage\x1b[2J says no");
		return;
	}
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = req->id;
	if (f->wrong_type) {
		Pl__Pong pong = PL__PONG__INIT;
		env.body_case = PL__ENVELOPE__BODY_PONG;
		env.pong = &pong;
		send_env(f, &env);
		return;
	}
	uint32_t rates[5] = {50, 75, 100, 125, 150};
	Pl__Battery bat = PL__BATTERY__INIT;
	bat.percent = 80;
	bat.millivolts = 3900;
	Pl__DeviceInfo di = PL__DEVICE_INFO__INIT;
	di.serial = (char *)"FAKE-0001";
	di.model = (char *)"Fake pen";
	di.hw_revision = (char *)"B";
	di.fw_version = (char *)"9.9.9";
	di.protocol_version = 1;
	di.depth_min_um = 250;
	di.depth_max_um = 2500;
	di.depth_step_um = 250;
	di.speed_levels = 5;
	di.n_stroke_rate_hz = 5;
	di.stroke_rate_hz = rates;
	di.slow_lock_depth_um = 1500;
	di.max_presets = 16;
	di.battery = &bat;
	env.body_case = PL__ENVELOPE__BODY_DEVICE_INFO;
	env.device_info = &di;
	send_env(f, &env);
}

static void send_presets(struct fake *f, uint32_t id)
{
	Pl__Preset w[PL_MAX_PRESETS];
	Pl__Preset *ptr[PL_MAX_PRESETS];
	for (size_t i = 0; i < f->n_presets; i++) {
		const struct pl_preset *p = &f->presets[i];
		pl__preset__init(&w[i]);
		w[i].id = p->id;
		w[i].name = (char *)p->name;
		w[i].depth_um = p->depth_um;
		w[i].speed_level = p->speed_level;
		w[i].area = (Pl__Area)p->area;
		w[i].needle_count = p->needle_count;
		w[i].max_duration_s = p->max_duration_s;
		ptr[i] = &w[i];
	}
	Pl__PresetSet ps = PL__PRESET_SET__INIT;
	ps.revision = f->revision;
	ps.n_presets = f->n_presets;
	ps.presets = ptr;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_PRESET_SET;
	env.preset_set = &ps;
	send_env(f, &env);
}

static void on_put_presets(struct fake *f, const Pl__Envelope *req)
{
	const Pl__PutPresets *pp = req->put_presets;
	f->n_puts++;
	if (pp->expected_revision != f->revision) {
		reply_error(f, req->id, PL__ERROR_CODE__ERROR_CODE_CONFLICT, "", 0,
		            "revision mismatch");
		return;
	}
	f->n_presets = pp->n_presets;
	for (size_t i = 0; i < pp->n_presets; i++) {
		const Pl__Preset *w = pp->presets[i];
		struct pl_preset *p = &f->presets[i];
		p->id = w->id;
		snprintf(p->name, sizeof p->name, "%s", w->name);
		p->depth_um = w->depth_um + (f->mangle_store && i == 0 ? 250 : 0);
		p->speed_level = w->speed_level;
		p->area = (enum pl_area)w->area;
		p->needle_count = w->needle_count;
		p->max_duration_s = w->max_duration_s;
	}
	f->revision++;
	send_presets(f, req->id);
}

static void on_clock(struct fake *f, const Pl__Envelope *req)
{
	Pl__Clock c = PL__CLOCK__INIT;
	if (req->body_case == PL__ENVELOPE__BODY_SET_CLOCK)
		f->set_clock_ms = req->set_clock->utc_ms;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	c.utc_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + f->clock_offset_ms;
	c.source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	c.uptime_ms = 42;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = req->id;
	env.body_case = PL__ENVELOPE__BODY_CLOCK;
	env.clock = &c;
	send_env(f, &env);
}

static void on_list(struct fake *f, const Pl__Envelope *req)
{
	Pl__SessionMeta m[FAKE_PAGE];
	Pl__SessionMeta *ptr[FAKE_PAGE];
	uint8_t uuid[FAKE_PAGE][16];
	Pl__SessionList sl = PL__SESSION_LIST__INIT;
	uint32_t id = req->list_sessions->start_after_id + 1;
	for (; id <= f->n_sessions && sl.n_sessions < FAKE_PAGE; id++) {
		size_t k = sl.n_sessions;
		pl__session_meta__init(&m[k]);
		memset(uuid[k], (int)id, 16);
		m[k].id = id;
		m[k].uuid.data = uuid[k];
		m[k].uuid.len = 16;
		m[k].seq = 100 + id;
		m[k].size = f->rec_len;
		m[k].sha256.data = f->rec_sha;
		m[k].sha256.len = 32;
		m[k].start_ms = 1000 * id;
		m[k].end_ms = 1000 * id + 500;
		m[k].time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
		ptr[k] = &m[k];
		sl.n_sessions++;
	}
	sl.sessions = ptr;
	sl.more = id <= f->n_sessions;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = req->id;
	env.body_case = PL__ENVELOPE__BODY_SESSION_LIST;
	env.session_list = &sl;
	send_env(f, &env);
}

static void flush_held(struct fake *f)
{
	if (f->n_held > 1)
		f->out_of_order = true;
	for (int i = f->n_held - 1; i >= 0; i--) {
		send_raw(f, f->held[i], f->held_len[i]);
		free(f->held[i]);
	}
	f->n_held = 0;
}

static void on_read(struct fake *f, const Pl__Envelope *req)
{
	const Pl__ReadSession *rs = req->read_session;
	f->n_reads++;
	if (f->n_reads == 1)
		f->first_read_off = rs->offset;
	if (f->unplug_after && f->n_reads > f->unplug_after) {
		pl_transport_memory_unplug(f->host);
		return;
	}
	uint64_t off = rs->offset;
	size_t len = rs->length;
	if (off > f->rec_len)
		off = f->rec_len;
	if (len > f->rec_len - off)
		len = f->rec_len - off;
	Pl__SessionChunk c = PL__SESSION_CHUNK__INIT;
	c.id = rs->id;
	c.offset = off;
	c.data.data = f->rec + off;
	c.data.len = len;
	c.eof = off + len == f->rec_len;
	if (f->n_reads == f->bad_read) {
		if (f->bad_kind == 1)
			c.data.len = len / 2;
		else if (f->bad_kind == 2)
			c.offset += 1;
		else if (f->bad_kind == 3)
			c.eof = !c.eof;
	}
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = req->id;
	env.body_case = PL__ENVELOPE__BODY_SESSION_CHUNK;
	env.session_chunk = &c;
	if (f->n_reads == f->corrupt_read) {
		/* One byte changed mid-frame: the CRC no longer matches. */
		size_t flen;
		uint8_t *frame = encode(&env, &flen);
		frame[flen / 2] = frame[flen / 2] == 0x5a ? 0xa5 : 0x5a;
		send_raw(f, frame, flen);
		free(frame);
		return;
	}
	if (!f->reorder) {
		send_env(f, &env);
		return;
	}
	f->held[f->n_held] = encode(&env, &f->held_len[f->n_held]);
	f->n_held++;
	if (f->n_held > f->max_held)
		f->max_held = f->n_held;
}

static void on_ack(struct fake *f, const Pl__Envelope *req)
{
	Pl__Ack ack = PL__ACK__INIT;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	env.id = req->id;
	env.body_case = PL__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	send_env(f, &env);
}

static void fake_on_frame(void *ctx, uint8_t flags, const uint8_t *payload, size_t len)
{
	struct fake *f = ctx;
	(void)flags;
	Pl__Envelope *req = pl__envelope__unpack(NULL, len, payload);
	assert_non_null(req);
	if (f->n_req < 512) {
		f->req_ids[f->n_req] = req->id;
		f->req_case[f->n_req] = req->body_case;
	}
	f->n_req++;
	if (req->body_case == PL__ENVELOPE__BODY_HELLO)
		on_hello(f, req);
	else if (f->ignore_all)
		;
	else if (req->body_case == PL__ENVELOPE__BODY_PING)
		on_ping(f, req);
	else if (req->body_case == PL__ENVELOPE__BODY_GET_INFO)
		on_get_info(f, req);
	else if (req->body_case == PL__ENVELOPE__BODY_GET_PRESETS)
		send_presets(f, req->id);
	else if (req->body_case == PL__ENVELOPE__BODY_PUT_PRESETS)
		on_put_presets(f, req);
	else if (req->body_case == PL__ENVELOPE__BODY_GET_CLOCK ||
	         req->body_case == PL__ENVELOPE__BODY_SET_CLOCK)
		on_clock(f, req);
	else if (req->body_case == PL__ENVELOPE__BODY_LIST_SESSIONS)
		on_list(f, req);
	else if (req->body_case == PL__ENVELOPE__BODY_READ_SESSION)
		on_read(f, req);
	else if (req->body_case == PL__ENVELOPE__BODY_ARCHIVE_SESSION ||
	         req->body_case == PL__ENVELOPE__BODY_SUBSCRIBE_TRACE)
		on_ack(f, req);
	else
		reply_error(f, req->id, PL__ERROR_CODE__ERROR_CODE_UNSUPPORTED, "", 0,
		            "not in this fake");
	pl__envelope__free_unpacked(req, NULL);
}

static void fake_pump(void *ud)
{
	struct fake *f = ud;
	for (;;) {
		int n = pl_transport_read(f->pen, f->rx, sizeof f->rx);
		if (n <= 0)
			break;
		if (f->first_byte < 0)
			f->first_byte = f->rx[0];
		pl_frame_decoder_feed(&f->dec, f->rx, (size_t)n);
	}
	/* Everything the host pipelined is in: answer it backwards. */
	flush_held(f);
}

static struct fake *fake_new(size_t rec_len)
{
	struct fake *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(pl_transport_memory_pair(&f->host, &f->pen), PL_OK);
	pl_transport_memory_set_pump(f->host, fake_pump, f);
	pl_frame_decoder_init(&f->dec, f->decbuf, sizeof f->decbuf, fake_on_frame, NULL, f);
	f->first_byte = -1;
	f->hello_version = 1;
	f->n_sessions = 5;
	f->revision = 4;
	f->rec_len = rec_len;
	f->rec = malloc(rec_len ? rec_len : 1);
	for (size_t i = 0; i < rec_len; i++)
		f->rec[i] = (uint8_t)(i * 7 + i / 251);
	pl_sha256(f->rec, rec_len, f->rec_sha);
	return f;
}

static void fake_free(struct fake *f)
{
	for (int i = 0; i < f->n_held; i++)
		free(f->held[i]);
	pl_transport_close(f->pen);
	free(f->rec);
	free(f);
}

static struct pl_pen *open_fake(struct fake *f, int timeout_ms, int retries)
{
	struct pl_open_options o;
	pl_open_options_init(&o);
	o.timeout_ms = timeout_ms;
	o.retries = retries;
	struct pl_pen *pen = NULL;
	int rc = pl_pen_open_transport(f->host, &o, &pen);
	if (rc)
		fail_msg("open: %s", pl_error_message());
	return pen;
}

static void assert_msg(const char *needle)
{
	const char *m = pl_error_message();
	if (!strstr(m, needle))
		fail_msg("message \"%s\" lacks \"%s\"", m, needle);
}

/* ------------------------------------------------------------------ handshake */

static void test_handshake_retries(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	f->ignore_hellos = 2;
	struct pl_pen *pen = open_fake(f, 30, 2);
	assert_int_equal(f->first_byte, 0x00);
	assert_int_equal(f->n_hello, 3);
	assert_int_equal(f->hello_ids[0], f->hello_ids[1]);
	assert_int_equal(f->hello_ids[1], f->hello_ids[2]);
	assert_int_not_equal(f->hello_ids[0], 0);
	assert_string_equal(pl_pen_serial(pen), "FAKE-0001");
	assert_int_equal(pl_pen_protocol_version(pen), 1);
	assert_int_equal(pl_pen_max_frame(pen), FAKE_MAX_FRAME);
	assert_int_equal(pl_pen_max_in_flight(pen), FAKE_WINDOW);
	assert_int_equal(pl_pen_capabilities(pen), 3);
	pl_pen_close(pen);
	fake_free(f);
}

static void test_handshake_timeout(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	f->ignore_hellos = -1;
	struct pl_open_options o;
	pl_open_options_init(&o);
	o.timeout_ms = 20;
	o.handshake_ms = 100;
	struct pl_pen *pen = (struct pl_pen *)1;
	int rc = pl_pen_open_transport(f->host, &o, &pen);
	assert_int_equal(rc, PL_ERR_TIMEOUT);
	assert_null(pen);
	assert_msg("did not answer the handshake within 100 ms");
	assert_msg("memory:a");
	assert_int_equal(f->n_hello, 5);
	fake_free(f);
}

static void test_handshake_version(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	f->hello_version = 2;
	struct pl_pen *pen = NULL;
	assert_int_equal(pl_pen_open_transport(f->host, NULL, &pen), PL_ERR_VERSION);
	assert_msg("protocol version 2");
	fake_free(f);
}

/* ------------------------------------------------------------------ requests */

static void test_timeout_same_id(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	struct pl_pen *pen = open_fake(f, 25, 2);
	f->ignore_all = true;
	int before = f->n_req;
	uint32_t rtt;
	assert_int_equal(pl_pen_ping(pen, &rtt), PL_ERR_TIMEOUT);
	assert_msg("no answer from the pen on memory:a within 25 ms (3 attempts)");
	assert_int_equal(f->n_req - before, 3);
	for (int i = before; i < f->n_req; i++) {
		assert_int_equal(f->req_case[i], PL__ENVELOPE__BODY_PING);
		assert_int_equal(f->req_ids[i], f->req_ids[before]);
	}
	struct pl_link_stats st;
	pl_pen_link_stats(pen, &st);
	assert_int_equal(st.retries, 2);
	assert_int_equal(st.timeouts, 3);

	/* The link still works, with a fresh id. */
	f->ignore_all = false;
	assert_int_equal(pl_pen_ping(pen, &rtt), PL_OK);
	assert_int_not_equal(f->req_ids[f->n_req - 1], f->req_ids[before]);
	pl_pen_close(pen);
	fake_free(f);
}

struct events {
	int n;
	char text[64];
	uint32_t level;
	int n_state;
	enum pl_state_kind state;
	uint32_t value;
	char detail[64];
	struct pl_pen *pen;
	int nested_rc;
};

static void on_event(void *ud, const struct pl_event *ev)
{
	struct events *e = ud;
	uint32_t rtt;
	/* Blocking on the pen from inside its own callback is refused. */
	e->nested_rc = pl_pen_ping(e->pen, &rtt);
	if (ev->kind == PL_EVENT_STATE) {
		e->n_state++;
		e->state = ev->state;
		e->value = ev->value;
		snprintf(e->detail, sizeof e->detail, "%s", ev->text);
		return;
	}
	e->n++;
	e->level = ev->level;
	snprintf(e->text, sizeof e->text, "%s", ev->text);
}

static void test_stray_and_events(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	struct pl_pen *pen = open_fake(f, 200, 2);
	struct events ev = {.pen = pen};
	pl_pen_set_event_handler(pen, on_event, &ev);
	f->stray_before_pong = true;
	f->trace_before_pong = true;
	uint32_t rtt = 0;
	assert_int_equal(pl_pen_ping(pen, &rtt), PL_OK);
	/* The duplicate after the real pong is read by the next poll. */
	assert_int_equal(pl_pen_poll(pen, 10), PL_OK);
	struct pl_link_stats st;
	pl_pen_link_stats(pen, &st);
	assert_int_equal(st.stray_replies, 2);
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.text, "motor idle");
	assert_int_equal(ev.level, 2);
	assert_int_equal(ev.nested_rc, PL_ERR_ARG);
	assert_int_equal(ev.n_state, 1);
	assert_int_equal(ev.state, PL_STATE_SESSION_RECORDED);
	assert_int_equal(ev.value, 17);
	assert_string_equal(ev.detail, "session 17");
	pl_pen_close(pen);
	fake_free(f);
}

static void test_garbage_on_line(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	struct pl_pen *pen = open_fake(f, 200, 2);
	f->garbage = true;
	uint32_t rtt;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pl_pen_ping(pen, &rtt), PL_OK);
	struct pl_link_stats st;
	pl_pen_link_stats(pen, &st);
	assert_true(st.dropped_crc + st.dropped_short + st.dropped_cobs +
	                st.dropped_version >= 3);
	assert_int_equal(st.retries, 0);
	pl_pen_close(pen);
	fake_free(f);
}

static void test_error_mapping(void **state)
{
	(void)state;
	static const struct {
		int wire, code;
		const char *word;
	} map[] = {
	    {PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST, PL_ERR_BAD_REQUEST, "(bad request)"},
	    {PL__ERROR_CODE__ERROR_CODE_VALIDATION, PL_ERR_VALIDATION, "(validation)"},
	    {PL__ERROR_CODE__ERROR_CODE_CONFLICT, PL_ERR_CONFLICT, "(conflict)"},
	    {PL__ERROR_CODE__ERROR_CODE_BUSY, PL_ERR_BUSY, "(busy)"},
	    {PL__ERROR_CODE__ERROR_CODE_NOT_FOUND, PL_ERR_NOT_FOUND, "(not found)"},
	    {PL__ERROR_CODE__ERROR_CODE_INTERNAL, PL_ERR_DEVICE, "(pen failure)"},
	    {PL__ERROR_CODE__ERROR_CODE_UNSUPPORTED, PL_ERR_UNSUPPORTED, "(unsupported)"},
	    {99, PL_ERR_DEVICE, "(unspecified error)"},
	};
	struct fake *f = fake_new(0);
	struct pl_pen *pen = open_fake(f, 200, 2);
	struct pl_device_info info;
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		f->error_code = map[i].wire;
		assert_int_equal(pl_pen_get_info(pen, &info), map[i].code);
		assert_msg(map[i].word);
		if (map[i].code == PL_ERR_VALIDATION)
			assert_msg("the pen refused presets[1].depth_um = 2600: above maximum 2500 (validation)");
		else
			assert_msg("the pen refused get_info: storage?[2J says no");
	}
	f->error_code = 0;
	f->wrong_type = true;
	assert_int_equal(pl_pen_get_info(pen, &info), PL_ERR_PROTOCOL);
	assert_msg("the pen answered get_info with pong");
	f->wrong_type = false;
	assert_int_equal(pl_pen_get_info(pen, &info), PL_OK);
	assert_string_equal(info.model, "Fake pen");
	assert_int_equal(info.depth_max_um, 2500);
	assert_int_equal(info.stroke_rate_hz[4], 150);
	assert_int_equal(info.battery_mv, 3900);
	pl_pen_close(pen);
	fake_free(f);
}

/* ------------------------------------------------------------------ presets, clock */

static struct pl_preset_set sample_set(uint32_t revision)
{
	struct pl_preset_set s = {.revision = revision, .count = 2};
	s.presets[0] = (struct pl_preset){.id = 1, .name = "Forehead", .depth_um = 500,
	                                  .speed_level = 3, .area = PL_AREA_FOREHEAD,
	                                  .needle_count = 12, .max_duration_s = 600};
	s.presets[1] = (struct pl_preset){.id = 2, .name = "Scar", .depth_um = 2000,
	                                  .speed_level = 1, .area = PL_AREA_BODY_SCAR};
	return s;
}

static void test_presets(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	struct pl_pen *pen = open_fake(f, 200, 2);
	struct pl_preset_set set = sample_set(4), back;
	assert_int_equal(pl_pen_put_presets(pen, &set, &back), PL_OK);
	assert_int_equal(back.revision, 5);
	assert_int_equal(back.count, 2);
	assert_string_equal(back.presets[1].name, "Scar");
	assert_int_equal(back.presets[1].depth_um, 2000);

	/* Stale revision: the pen refuses, the message names both. */
	assert_int_equal(pl_pen_put_presets(pen, &set, NULL), PL_ERR_CONFLICT);
	assert_msg("the presets on the pen changed since they were read (revision 4, now 5); read them again");

	/* Refused locally: the pen never sees it. */
	int puts = f->n_puts;
	set.revision = 5;
	set.presets[1].speed_level = 2;
	assert_int_equal(pl_pen_put_presets(pen, &set, NULL), PL_ERR_VALIDATION);
	assert_msg("slow lock from 1.50 mm");
	assert_int_equal(f->n_puts, puts);
	/* ... unless the caller asks to test the pen's own checks. */
	assert_int_equal(pl_pen_put_presets_unchecked(pen, &set, &back), PL_OK);
	assert_int_equal(f->n_puts, puts + 1);
	assert_int_equal(back.presets[1].speed_level, 2);
	set.revision = 6;

	/* The pen stores something else: read-back catches it. */
	set.presets[1].speed_level = 1;
	f->mangle_store = true;
	assert_int_equal(pl_pen_put_presets(pen, &set, NULL), PL_ERR_VERIFY);
	assert_msg("preset 1 \"Forehead\": depth_um written 500, read back 750");

	struct pl_preset_set got;
	assert_int_equal(pl_pen_get_presets(pen, &got), PL_OK);
	assert_int_equal(got.revision, 7);
	pl_pen_close(pen);
	fake_free(f);
}

static void test_clock_and_trace(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	struct pl_pen *pen = open_fake(f, 200, 2);
	f->clock_offset_ms = 5000;
	int64_t off = 0;
	assert_int_equal(pl_pen_clock_sync(pen, &off), PL_OK);
	assert_true(off > 4000 && off < 6000);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_true(f->set_clock_ms > now - 1000 && f->set_clock_ms <= now);
	int64_t utc;
	bool rtc;
	uint64_t up;
	assert_int_equal(pl_pen_clock_get(pen, &utc, &rtc, &up), PL_OK);
	assert_true(rtc);
	assert_int_equal(up, 42);
	assert_int_equal(pl_pen_trace_subscribe(pen, true, 3), PL_OK);
	assert_int_equal(f->req_case[f->n_req - 1], PL__ENVELOPE__BODY_SUBSCRIBE_TRACE);
	assert_int_equal(pl_pen_trace_subscribe(pen, true, 4), PL_ERR_ARG);
	pl_pen_close(pen);
	fake_free(f);
}

/* ------------------------------------------------------------------ sessions */

struct sink {
	uint8_t *buf;
	size_t cap, len;
	uint64_t start;
	bool in_order;
	int progress_calls;
	uint64_t last_done;
	int fail_at; /* return an error on this call (1-based) */
	int calls;
};

static int sink_fn(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct sink *s = ud;
	s->calls++;
	if (s->fail_at && s->calls == s->fail_at)
		return PL_ERR_CANCELLED;
	if (offset != s->start + s->len)
		s->in_order = false;
	assert_true(s->len + len <= s->cap);
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	return PL_OK;
}

static void progress_fn(void *ud, uint64_t done, uint64_t total)
{
	struct sink *s = ud;
	(void)total;
	assert_true(done >= s->last_done);
	s->last_done = done;
	s->progress_calls++;
}

static struct pl_session_info list_one(struct pl_pen *pen, struct fake *f)
{
	struct pl_session_info *all = NULL;
	size_t n = 0;
	assert_int_equal(pl_pen_list_sessions(pen, &all, &n), PL_OK);
	assert_int_equal(n, f->n_sessions);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(all[i].id, i + 1);
		assert_int_equal(all[i].seq, 101 + i);
		assert_int_equal(all[i].uuid[15], i + 1);
		assert_true(all[i].rtc_time);
	}
	struct pl_session_info s = all[2];
	free(all);
	assert_int_equal(s.size, f->rec_len);
	assert_memory_equal(s.sha256, f->rec_sha, 32);
	return s;
}

static void test_download_out_of_order(void **state)
{
	(void)state;
	struct fake *f = fake_new(50000);
	struct pl_pen *pen = open_fake(f, 500, 2);
	struct pl_session_info s = list_one(pen, f);
	f->reorder = true;
	struct sink sk = {.buf = malloc(50000), .cap = 50000, .in_order = true};
	struct pl_download_options o = {.sink = sink_fn, .progress = progress_fn, .ud = &sk};
	assert_int_equal(pl_pen_download_session(pen, &s, 0, &o), PL_OK);
	assert_true(sk.in_order);
	assert_int_equal(sk.len, 50000);
	assert_memory_equal(sk.buf, f->rec, 50000);
	assert_true(f->out_of_order);
	assert_int_equal(f->max_held, FAKE_WINDOW);
	assert_int_equal(sk.last_done, 50000);
	/* chunk = pen's frame limit minus envelope room */
	assert_int_equal(f->n_reads, (50000 + FAKE_MAX_FRAME - 64 - 1) / (FAKE_MAX_FRAME - 64));
	assert_int_equal(sk.progress_calls, f->n_reads);

	/* From an offset, with a small chunk and window. */
	f->n_reads = 0;
	sk.len = 0;
	sk.start = 12345;
	sk.last_done = 0;
	o.chunk = 1000;
	o.window = 2;
	assert_int_equal(pl_pen_download_session(pen, &s, 12345, &o), PL_OK);
	assert_true(sk.in_order);
	assert_int_equal(sk.len, 50000 - 12345);
	assert_memory_equal(sk.buf, f->rec + 12345, 50000 - 12345);
	assert_int_equal(f->first_read_off, 12345);
	assert_int_equal(f->n_reads, 38);
	assert_int_equal(f->max_held, FAKE_WINDOW); /* from the first download */
	struct pl_link_stats st;
	pl_pen_link_stats(pen, &st);
	assert_int_equal(st.retries, 0);
	free(sk.buf);
	pl_pen_close(pen);
	fake_free(f);
}

/* A reply lost to a bad CRC is asked for again as soon as the reply to a
 * later request shows it will not come, not a request timeout later: with
 * a 60 s timeout, no deadline may pass. */
static void test_download_lost_reply_resent_early(void **state)
{
	(void)state;
	struct fake *f = fake_new(30000);
	struct pl_pen *pen = open_fake(f, 60000, 2);
	struct pl_session_info s = list_one(pen, f);
	f->corrupt_read = 2;
	struct sink sk = {.buf = malloc(30000), .cap = 30000, .in_order = true};
	struct pl_download_options o = {.sink = sink_fn, .ud = &sk};
	assert_int_equal(pl_pen_download_session(pen, &s, 0, &o), PL_OK);
	assert_true(sk.in_order);
	assert_int_equal(sk.len, 30000);
	assert_memory_equal(sk.buf, f->rec, 30000);
	struct pl_link_stats st;
	pl_pen_link_stats(pen, &st);
	assert_int_equal(st.timeouts, 0);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.dropped_crc, 1);
	/* Chunks of FAKE_MAX_FRAME - 64 bytes, one of them asked twice. */
	assert_int_equal(f->n_reads, (30000 + FAKE_MAX_FRAME - 64 - 1) / (FAKE_MAX_FRAME - 64) + 1);

	/* Without a loss, nothing is sent twice even when replies come in
	 * reverse order. */
	f->corrupt_read = 0;
	f->reorder = true;
	sk.len = 0;
	assert_int_equal(pl_pen_download_session(pen, &s, 0, &o), PL_OK);
	assert_memory_equal(sk.buf, f->rec, 30000);
	pl_pen_link_stats(pen, &st);
	assert_int_equal(st.retries, 1);
	free(sk.buf);
	pl_pen_close(pen);
	fake_free(f);
}

static void test_download_bad_chunks(void **state)
{
	(void)state;
	static const struct {
		int kind;
		const char *msg;
	} cases[] = {
	    {1, "bytes of record 3 at offset"},
	    {2, "with record 3 at offset"},
	    {3, "the end of record 3"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake *f = fake_new(30000);
		struct pl_pen *pen = open_fake(f, 500, 2);
		struct pl_session_info s = list_one(pen, f);
		f->bad_read = 3;
		f->bad_kind = cases[i].kind;
		struct sink sk = {.buf = malloc(30000), .cap = 30000, .in_order = true};
		struct pl_download_options o = {.sink = sink_fn, .ud = &sk};
		assert_int_equal(pl_pen_download_session(pen, &s, 0, &o), PL_ERR_PROTOCOL);
		assert_msg(cases[i].msg);
		assert_true(sk.len < 30000);
		/* Nothing of the aborted download stays queued: the link is fine. */
		uint32_t rtt;
		assert_int_equal(pl_pen_ping(pen, &rtt), PL_OK);
		free(sk.buf);
		pl_pen_close(pen);
		fake_free(f);
	}
}

static void test_download_sink_abort(void **state)
{
	(void)state;
	struct fake *f = fake_new(30000);
	struct pl_pen *pen = open_fake(f, 500, 2);
	struct pl_session_info s = list_one(pen, f);
	f->reorder = true;
	struct sink sk = {.buf = malloc(30000), .cap = 30000, .in_order = true, .fail_at = 2};
	struct pl_download_options o = {.sink = sink_fn, .ud = &sk};
	assert_int_equal(pl_pen_download_session(pen, &s, 0, &o), PL_ERR_CANCELLED);
	assert_int_equal(sk.calls, 2);
	assert_int_equal(sk.len, FAKE_MAX_FRAME - 64);
	uint32_t rtt;
	assert_int_equal(pl_pen_ping(pen, &rtt), PL_OK);
	free(sk.buf);
	pl_pen_close(pen);
	fake_free(f);
}

static void test_download_unplug(void **state)
{
	(void)state;
	struct fake *f = fake_new(40000);
	struct pl_pen *pen = open_fake(f, 500, 2);
	struct pl_session_info s = list_one(pen, f);
	f->unplug_after = 4;
	struct sink sk = {.buf = malloc(40000), .cap = 40000, .in_order = true};
	struct pl_download_options o = {.sink = sink_fn, .ud = &sk};
	assert_int_equal(pl_pen_download_session(pen, &s, 0, &o), PL_ERR_UNPLUGGED);
	assert_msg("went away");
	assert_true(sk.len <= 4 * (FAKE_MAX_FRAME - 64));
	uint32_t rtt;
	assert_int_equal(pl_pen_ping(pen, &rtt), PL_ERR_UNPLUGGED);
	assert_int_equal(pl_pen_poll(pen, 0), PL_ERR_UNPLUGGED);
	free(sk.buf);
	pl_pen_close(pen);
	fake_free(f);
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static void test_download_to_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/pl-engine-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof path, "%s/rec", dir);

	struct fake *f = fake_new(70000);
	struct pl_pen *pen = open_fake(f, 500, 2);
	struct pl_session_info s = list_one(pen, f);

	/* Resume: the first 10000 bytes are already there. */
	write_file(path, f->rec, 10000);
	struct sink sk = {0};
	assert_int_equal(pl_pen_download_session_to_file(pen, &s, path, progress_fn, &sk), PL_OK);
	assert_int_equal(f->first_read_off, 10000);
	assert_int_equal(sk.last_done, 70000);
	uint8_t d[32];
	assert_int_equal(pl_sha256_file(path, d), PL_OK);
	assert_memory_equal(d, f->rec_sha, 32);

	/* Complete already: verified without a read. */
	f->n_reads = 0;
	assert_int_equal(pl_pen_download_session_to_file(pen, &s, path, NULL, NULL), PL_OK);
	assert_int_equal(f->n_reads, 0);

	/* Longer than the record: starts over from 0. */
	uint8_t *big = calloc(1, 80000);
	write_file(path, big, 80000);
	free(big);
	assert_int_equal(pl_pen_download_session_to_file(pen, &s, path, NULL, NULL), PL_OK);
	assert_int_equal(f->first_read_off, 0);
	assert_int_equal(pl_sha256_file(path, d), PL_OK);
	assert_memory_equal(d, f->rec_sha, 32);

	/* A corrupt prefix: the digest fails and the file goes. */
	uint8_t bad[100];
	memcpy(bad, f->rec, sizeof bad);
	bad[50] ^= 1;
	write_file(path, bad, sizeof bad);
	assert_int_equal(pl_pen_download_session_to_file(pen, &s, path, NULL, NULL), PL_ERR_DIGEST);
	assert_msg("record 3 downloaded but its SHA-256 does not match; the partial file was discarded");
	assert_int_equal(access(path, F_OK), -1);

	/* The next attempt starts clean and succeeds. */
	assert_int_equal(pl_pen_download_session_to_file(pen, &s, path, NULL, NULL), PL_OK);
	assert_int_equal(pl_pen_archive_session(pen, s.id, s.sha256), PL_OK);
	assert_int_equal(f->req_case[f->n_req - 1], PL__ENVELOPE__BODY_ARCHIVE_SESSION);

	unlink(path);
	rmdir(dir);
	pl_pen_close(pen);
	fake_free(f);
}

/* ------------------------------------------------------------------ frame log */

struct flog {
	int in, out, dropped;
	char first_out[128];
};

static void log_fn(void *ud, enum pl_frame_dir dir, const char *text, size_t raw_len)
{
	struct flog *l = ud;
	(void)raw_len;
	assert_non_null(text);
	if (dir == PL_FRAME_OUT && !l->out++)
		snprintf(l->first_out, sizeof l->first_out, "%s", text);
	if (dir == PL_FRAME_IN)
		l->in++;
	if (dir == PL_FRAME_DROPPED)
		l->dropped++;
}

static void test_frame_log(void **state)
{
	(void)state;
	struct fake *f = fake_new(0);
	f->ignore_hellos = 1;
	f->garbage = true;
	struct flog l = {0};
	struct pl_open_options o;
	pl_open_options_init(&o);
	o.timeout_ms = 20;
	o.frame_log = log_fn;
	o.frame_log_ud = &l;
	struct pl_pen *pen = NULL;
	assert_int_equal(pl_pen_open_transport(f->host, &o, &pen), PL_OK);
	uint32_t rtt;
	assert_int_equal(pl_pen_ping(pen, &rtt), PL_OK);
	assert_int_equal(l.out, 3); /* two hellos and a ping */
	assert_int_equal(l.in, 2);
	assert_true(l.dropped >= 2);
	assert_non_null(strstr(l.first_out, "hello"));
	pl_pen_close(pen);
	fake_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_retries),
	    cmocka_unit_test(test_handshake_timeout),
	    cmocka_unit_test(test_handshake_version),
	    cmocka_unit_test(test_timeout_same_id),
	    cmocka_unit_test(test_stray_and_events),
	    cmocka_unit_test(test_garbage_on_line),
	    cmocka_unit_test(test_error_mapping),
	    cmocka_unit_test(test_presets),
	    cmocka_unit_test(test_clock_and_trace),
	    cmocka_unit_test(test_download_out_of_order),
	    cmocka_unit_test(test_download_lost_reply_resent_early),
	    cmocka_unit_test(test_download_bad_chunks),
	    cmocka_unit_test(test_download_sink_abort),
	    cmocka_unit_test(test_download_unplug),
	    cmocka_unit_test(test_download_to_file),
	    cmocka_unit_test(test_frame_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
