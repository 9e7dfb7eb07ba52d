/*
 * The firmware endpoint driven directly: frames built here go through
 * pl_fw_rx, replies come back through ops->send and are decoded with the
 * same framing code, and every test asserts on what the pen answered.
 * Storage is a fake in memory so each test controls it exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "penlink_wire.h"
#include "penlink.pb-c.h"
#include "pl_fw.h"
#include "support/fake_pen.h"

/* ------------------------------------------------------------------ fake pen */

#define MAX_REPLIES 64

/* The shared fake pen, strict, whose replies are decoded here instead of
 * going over a transport. */
struct fake {
	struct fake_pen pen;
	/* what the pen sent */
	struct pl_frame_decoder dec;
	uint8_t dec_buf[PL_FRAME_RAW_LEN(1u << 20)];
	Pl__Envelope *replies[MAX_REPLIES];
	size_t nreplies, next_reply;
	size_t max_payload_seen;
};

static int fake_send(void *ctx, const uint8_t *data, size_t len)
{
	struct fake_pen *p = ctx;
	struct fake *f = p->user;
	pl_frame_decoder_feed(&f->dec, data, len);
	return PL_FW_OK;
}

static void on_reply(void *ctx, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	struct fake *f = ctx;
	Pl__Envelope *e = pl__envelope__unpack(NULL, len, payload);

	(void)flags;
	assert_non_null(e);
	assert_true(f->nreplies < MAX_REPLIES);
	f->replies[f->nreplies++] = e;
	if (len > f->max_payload_seen)
		f->max_payload_seen = len;
}

/* The identity and counters these tests expect, over the shared limits. */
static void test_pen_info(struct pl_fw_device_info *info)
{
	fake_pen_default_info(info);
	info->serial = "PEN-TEST";
	info->capabilities = PL_CAP_RTC | PL_CAP_TRACE;
	info->total_strokes = 123456;
	info->motor_seconds = 7200;
	info->battery_percent = 87;
	info->battery_mv = 3990;
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof *f);
	assert_non_null(f);
	fake_pen_init(&f->pen);
	f->pen.user = f;
	f->pen.ops.send = fake_send;
	f->pen.strict = true;
	f->pen.uptime_ms = 4242;
	test_pen_info(&f->pen.info);
	fake_pen_add_session(&f->pen, 1, 100000);
	fake_pen_add_session(&f->pen, 2, 5000);
	fake_pen_add_session(&f->pen, 5, 0);
	pl_frame_decoder_init(&f->dec, f->dec_buf, sizeof f->dec_buf, on_reply,
	                      NULL, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;
	for (size_t i = 0; i < f->nreplies; i++)
		pl__envelope__free_unpacked(f->replies[i], NULL);
	fake_pen_free(&f->pen);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ helpers */

/* Encodes env as a frame into out (malloc'd); returns its length. */
static size_t frame_of(const Pl__Envelope *env, uint8_t **out)
{
	size_t n = pl__envelope__get_packed_size(env);
	uint8_t *payload = malloc(n ? n : 1);
	size_t cap = PL_FRAME_ENCODED_MAX(n);
	size_t len;

	assert_non_null(payload);
	pl__envelope__pack(env, payload);
	*out = malloc(cap);
	assert_non_null(*out);
	len = pl_frame_encode(payload, n, 0, *out, cap);
	assert_true(len > 0);
	free(payload);
	return len;
}

static void send_env(struct fake *f, const Pl__Envelope *env)
{
	uint8_t *fr;
	size_t len = frame_of(env, &fr);
	pl_fw_rx(&f->pen.fw, fr, len);
	free(fr);
}

/* The next reply the pen sent, or a failed test if there is none. */
static Pl__Envelope *reply(struct fake *f)
{
	assert_true(f->next_reply < f->nreplies);
	return f->replies[f->next_reply++];
}

static void no_more_replies(struct fake *f)
{
	assert_int_equal(f->next_reply, f->nreplies);
}

static Pl__Envelope *expect(struct fake *f, uint32_t id,
                            Pl__Envelope__BodyCase body)
{
	Pl__Envelope *e = reply(f);
	if (e->body_case != body && e->body_case == PL__ENVELOPE__BODY_ERROR)
		print_error("unexpected error: %s\n", e->error->message);
	assert_int_equal(e->id, id);
	assert_int_equal(e->body_case, body);
	return e;
}

static Pl__Error *expect_error(struct fake *f, uint32_t id, Pl__ErrorCode code)
{
	Pl__Envelope *e = expect(f, id, PL__ENVELOPE__BODY_ERROR);
	assert_int_equal(e->error->code, code);
	assert_true(strlen(e->error->message) > 0);
	return e->error;
}

static void hello(struct fake *f, uint32_t id, uint32_t vmin, uint32_t vmax,
                  uint32_t max_frame)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Hello h = PL__HELLO__INIT;
	h.version_min = vmin;
	h.version_max = vmax;
	h.max_frame = max_frame;
	h.max_in_flight = 16;
	h.host = (char *)"test";
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	send_env(f, &env);
}

static void simple(struct fake *f, uint32_t id, Pl__Envelope__BodyCase body)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__GetInfo gi = PL__GET_INFO__INIT; /* all empty requests look alike */
	env.id = id;
	env.body_case = body;
	env.get_info = &gi;
	send_env(f, &env);
}

static void ping(struct fake *f, uint32_t id, const uint8_t *data, size_t len)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Ping p = PL__PING__INIT;
	p.payload.data = (uint8_t *)data;
	p.payload.len = len;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_PING;
	env.ping = &p;
	send_env(f, &env);
}

static void put_presets(struct fake *f, uint32_t id, uint32_t expected,
                        const struct pl_fw_preset *src, size_t n)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__PutPresets put = PL__PUT_PRESETS__INIT;
	Pl__Preset *items = calloc(n + 1, sizeof *items);
	Pl__Preset **ptrs = calloc(n + 1, sizeof *ptrs);

	for (size_t i = 0; i < n; i++) {
		pl__preset__init(&items[i]);
		items[i].id = src[i].id;
		items[i].name = (char *)src[i].name;
		items[i].depth_um = src[i].depth_um;
		items[i].speed_level = src[i].speed_level;
		items[i].area = (Pl__Area)src[i].area;
		items[i].needle_count = src[i].needle_count;
		items[i].max_duration_s = src[i].max_duration_s;
		ptrs[i] = &items[i];
	}
	put.expected_revision = expected;
	put.n_presets = n;
	put.presets = ptrs;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_PUT_PRESETS;
	env.put_presets = &put;
	send_env(f, &env);
	free(items);
	free(ptrs);
}

static void read_session(struct fake *f, uint32_t id, uint32_t sid,
                         uint64_t off, uint32_t len)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__ReadSession rs = PL__READ_SESSION__INIT;
	rs.id = sid;
	rs.offset = off;
	rs.length = len;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_READ_SESSION;
	env.read_session = &rs;
	send_env(f, &env);
}

static void archive(struct fake *f, uint32_t id, uint32_t sid,
                    const uint8_t *sha, size_t len)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__ArchiveSession a = PL__ARCHIVE_SESSION__INIT;
	a.id = sid;
	a.sha256.data = (uint8_t *)sha;
	a.sha256.len = len;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_ARCHIVE_SESSION;
	env.archive_session = &a;
	send_env(f, &env);
}

static void list(struct fake *f, uint32_t id, uint32_t after)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__ListSessions ls = PL__LIST_SESSIONS__INIT;
	ls.start_after_id = after;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_LIST_SESSIONS;
	env.list_sessions = &ls;
	send_env(f, &env);
}

static void subscribe(struct fake *f, uint32_t id, bool on, uint32_t level)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__SubscribeTrace st = PL__SUBSCRIBE_TRACE__INIT;
	st.enable = on;
	st.level = level;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_SUBSCRIBE_TRACE;
	env.subscribe_trace = &st;
	send_env(f, &env);
}

/* ------------------------------------------------------------------ handshake */

static void test_hello_negotiates(void **state)
{
	struct fake *f = *state;
	Pl__Envelope *e;

	hello(f, 7, 1, 3, 65536);
	e = expect(f, 7, PL__ENVELOPE__BODY_HELLO_REPLY);
	assert_int_equal(e->hello_reply->version, 1);
	assert_int_equal(e->hello_reply->max_frame, PL_FW_MAX_FRAME);
	assert_int_equal(e->hello_reply->max_in_flight, PL_FW_MAX_IN_FLIGHT);
	assert_int_equal(e->hello_reply->capabilities,
	                 PL_CAP_RTC | PL_CAP_TRACE);
	assert_string_equal(e->hello_reply->serial, "PEN-TEST");

	hello(f, 8, 2, 3, 65536);
	assert_non_null(strstr(expect_error(f, 8, PL__ERROR_CODE__ERROR_CODE_UNSUPPORTED)
	                           ->message,
	                       "2..3"));
	hello(f, 9, 0, 0, 65536);
	expect_error(f, 9, PL__ERROR_CODE__ERROR_CODE_UNSUPPORTED);
	hello(f, 10, 1, 1, 16);
	expect_error(f, 10, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	no_more_replies(f);
}

static void test_requests_before_hello_answered(void **state)
{
	struct fake *f = *state;
	const uint8_t data[3] = {1, 0, 2};
	Pl__Envelope *e;

	ping(f, 3, data, sizeof data);
	e = expect(f, 3, PL__ENVELOPE__BODY_PONG);
	assert_int_equal(e->pong->payload.len, 3);
	assert_memory_equal(e->pong->payload.data, data, 3);
}

static void test_hello_resets_trace(void **state)
{
	struct fake *f = *state;
	Pl__Envelope *e;

	subscribe(f, 1, true, 3);
	expect(f, 1, PL__ENVELOPE__BODY_ACK);
	assert_int_equal(pl_fw_trace(&f->pen.fw, 2, "hello trace"), PL_FW_OK);
	e = expect(f, 0, PL__ENVELOPE__BODY_TRACE_LINE);
	assert_string_equal(e->trace_line->text, "hello trace");
	assert_int_equal(e->trace_line->level, 2);
	assert_int_equal(e->trace_line->uptime_ms, 4242);

	hello(f, 2, 1, 1, 0);
	expect(f, 2, PL__ENVELOPE__BODY_HELLO_REPLY);
	assert_int_equal(pl_fw_trace(&f->pen.fw, 0, "after hello"), PL_FW_OK);
	no_more_replies(f);
}

static void test_trace_levels_and_state_events(void **state)
{
	struct fake *f = *state;
	Pl__Envelope *e;

	assert_int_equal(pl_fw_trace(&f->pen.fw, 0, "not subscribed"), PL_FW_OK);
	no_more_replies(f);
	subscribe(f, 1, true, 1);
	expect(f, 1, PL__ENVELOPE__BODY_ACK);
	pl_fw_trace(&f->pen.fw, 2, "too chatty");
	pl_fw_trace(&f->pen.fw, 1, "warning");
	e = expect(f, 0, PL__ENVELOPE__BODY_TRACE_LINE);
	assert_string_equal(e->trace_line->text, "warning");
	subscribe(f, 2, false, 3);
	expect(f, 2, PL__ENVELOPE__BODY_ACK);
	pl_fw_trace(&f->pen.fw, 0, "off");
	/* State events are not gated by the subscription. */
	assert_int_equal(pl_fw_state_event(&f->pen.fw, PL__STATE_KIND__STATE_KIND_BATTERY_LOW,
	                                   3400, "battery low"),
	                 PL_FW_OK);
	e = expect(f, 0, PL__ENVELOPE__BODY_STATE_EVENT);
	assert_int_equal(e->state_event->kind, PL__STATE_KIND__STATE_KIND_BATTERY_LOW);
	assert_int_equal(e->state_event->value, 3400);
	assert_string_equal(e->state_event->detail, "battery low");
	no_more_replies(f);
}

static void test_info_limits(void **state)
{
	struct fake *f = *state;
	Pl__DeviceInfo *di;

	simple(f, 11, PL__ENVELOPE__BODY_GET_INFO);
	di = expect(f, 11, PL__ENVELOPE__BODY_DEVICE_INFO)->device_info;
	assert_string_equal(di->serial, "PEN-TEST");
	assert_string_equal(di->model, "PL-Pen 1");
	assert_string_equal(di->hw_revision, "B");
	assert_string_equal(di->fw_version, "1.0.0");
	assert_int_equal(di->protocol_version, 1);
	assert_int_equal(di->depth_min_um, 250);
	assert_int_equal(di->depth_max_um, 2500);
	assert_int_equal(di->depth_step_um, 250);
	assert_int_equal(di->speed_levels, 6);
	assert_int_equal(di->n_stroke_rate_hz, 6);
	assert_int_equal(di->stroke_rate_hz[0], 50);
	assert_int_equal(di->stroke_rate_hz[5], 150);
	assert_int_equal(di->slow_lock_depth_um, 2000);
	assert_int_equal(di->max_presets, 16);
	assert_int_equal(di->total_strokes, 123456);
	assert_int_equal(di->motor_seconds, 7200);
	assert_non_null(di->battery);
	assert_int_equal(di->battery->percent, 87);
	assert_int_equal(di->battery->millivolts, 3990);
	assert_string_equal(f->pen.last_log, "req 11 get_info");
}

static void test_clock(void **state)
{
	struct fake *f = *state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__SetClock sc = PL__SET_CLOCK__INIT;
	Pl__Clock *c;

	simple(f, 1, PL__ENVELOPE__BODY_GET_CLOCK);
	c = expect(f, 1, PL__ENVELOPE__BODY_CLOCK)->clock;
	assert_int_equal(c->source, PL__TIME_SOURCE__TIME_SOURCE_UPTIME);
	assert_int_equal(c->uptime_ms, 4242);

	sc.utc_ms = 1750000000123LL;
	env.id = 2;
	env.body_case = PL__ENVELOPE__BODY_SET_CLOCK;
	env.set_clock = &sc;
	send_env(f, &env);
	c = expect(f, 2, PL__ENVELOPE__BODY_CLOCK)->clock;
	assert_int_equal(c->source, PL__TIME_SOURCE__TIME_SOURCE_RTC);
	assert_int_equal(c->utc_ms, 1750000000123LL);
	assert_true(f->pen.rtc_set);

	sc.utc_ms = -5;
	env.id = 3;
	send_env(f, &env);
	expect_error(f, 3, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	assert_int_equal(f->pen.rtc, 1750000000123LL);
}

/* ------------------------------------------------------------------ presets */

static void assert_set_is(const Pl__PresetSet *s, uint32_t rev,
                          const struct pl_fw_preset *p, size_t n)
{
	assert_int_equal(s->revision, rev);
	assert_int_equal(s->n_presets, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->presets[i]->id, p[i].id);
		assert_string_equal(s->presets[i]->name, p[i].name);
		assert_int_equal(s->presets[i]->depth_um, p[i].depth_um);
		assert_int_equal(s->presets[i]->speed_level, p[i].speed_level);
		assert_int_equal(s->presets[i]->area, p[i].area);
		assert_int_equal(s->presets[i]->needle_count, p[i].needle_count);
		assert_int_equal(s->presets[i]->max_duration_s, p[i].max_duration_s);
	}
}

static const struct pl_fw_preset new_presets[3] = {
	{1, "Stirn fein", 250, 6, 1, 12, 300},
	{4, "Décolleté ✓", 750, 2, 10, 0, 0},
	{16, "Narbe tief", 2500, 1, 13, 42, 1200},
};

static void test_presets_put_and_revision(void **state)
{
	struct fake *f = *state;

	simple(f, 1, PL__ENVELOPE__BODY_GET_PRESETS);
	assert_set_is(expect(f, 1, PL__ENVELOPE__BODY_PRESET_SET)->preset_set, 1,
	              fake_pen_default_presets, 2);

	put_presets(f, 2, 1, new_presets, 3);
	assert_set_is(expect(f, 2, PL__ENVELOPE__BODY_PRESET_SET)->preset_set, 2,
	              new_presets, 3);
	assert_int_equal(f->pen.revision, 2);
	assert_int_equal(f->pen.npresets, 3);
	assert_string_equal(f->pen.presets[1].name, "Décolleté ✓");

	simple(f, 3, PL__ENVELOPE__BODY_GET_PRESETS);
	assert_set_is(expect(f, 3, PL__ENVELOPE__BODY_PRESET_SET)->preset_set, 2,
	              new_presets, 3);

	/* An empty set is a valid set. */
	put_presets(f, 4, 2, NULL, 0);
	assert_set_is(expect(f, 4, PL__ENVELOPE__BODY_PRESET_SET)->preset_set, 3,
	              NULL, 0);
	assert_int_equal(f->pen.stores, 2);
}

struct refusal_case {
	const char *what;
	struct pl_fw_preset p;   /* replaces presets[1] of a good pair */
	const char *field;
	int64_t value, limit;
};

static void test_validation_rules(void **state)
{
	struct fake *f = *state;
	static const struct refusal_case cases[] = {
		{"depth below min", {2, "x", 100, 1, 1, 0, 0}, "presets[1].depth_um", 100, 250},
		{"depth zero", {2, "x", 0, 1, 1, 0, 0}, "presets[1].depth_um", 0, 250},
		{"depth above max", {2, "x", 2750, 1, 1, 0, 0}, "presets[1].depth_um", 2750, 2500},
		{"depth off step", {2, "x", 1100, 1, 1, 0, 0}, "presets[1].depth_um", 1100, 250},
		{"speed zero", {2, "x", 500, 0, 1, 0, 0}, "presets[1].speed_level", 0, 1},
		{"speed above", {2, "x", 500, 7, 1, 0, 0}, "presets[1].speed_level", 7, 6},
		{"slow lock", {2, "x", 2000, 2, 1, 0, 0}, "presets[1].speed_level", 2, 1},
		{"slow lock deeper", {2, "x", 2250, 6, 1, 0, 0}, "presets[1].speed_level", 6, 1},
		{"name empty", {2, "", 500, 1, 1, 0, 0}, "presets[1].name", 0, 1},
		{"name bad utf8", {2, "ab\xc3", 500, 1, 1, 0, 0}, "presets[1].name", 2, 0},
		{"name overlong utf8", {2, "a\xc0\xaf", 500, 1, 1, 0, 0}, "presets[1].name", 1, 0},
		{"name surrogate", {2, "\xed\xa0\x80", 500, 1, 1, 0, 0}, "presets[1].name", 0, 0},
		{"area zero", {2, "x", 500, 1, 0, 0, 0}, "presets[1].area", 0, 1},
		{"area unknown", {2, "x", 500, 1, 15, 0, 0}, "presets[1].area", 15, 14},
		{"id zero", {0, "x", 500, 1, 1, 0, 0}, "presets[1].id", 0, 1},
		{"id above max", {17, "x", 500, 1, 1, 0, 0}, "presets[1].id", 17, 16},
		{"id duplicate", {1, "x", 500, 1, 1, 0, 0}, "presets[1].id", 1, 1},
	};
	uint32_t id = 100;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct pl_fw_preset two[2] = {fake_pen_default_presets[0], cases[i].p};
		Pl__Error *err;

		put_presets(f, ++id, 1, two, 2);
		err = expect_error(f, id, PL__ERROR_CODE__ERROR_CODE_VALIDATION);
		print_message("%-20s -> %s = %lld (limit %lld): %s\n", cases[i].what,
		              err->field, (long long)err->value,
		              (long long)err->limit, err->message);
		assert_string_equal(err->field, cases[i].field);
		assert_int_equal(err->value, cases[i].value);
		assert_int_equal(err->limit, cases[i].limit);
	}
	assert_int_equal(f->pen.stores, 0);
	assert_int_equal(f->pen.revision, 1);
	assert_int_equal(pl_fw_get_stats(&f->pen.fw)->validation_refusals,
	                 sizeof cases / sizeof cases[0]);
}

static void test_validation_name_too_long_and_count(void **state)
{
	struct fake *f = *state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__PutPresets put = PL__PUT_PRESETS__INIT;
	Pl__Preset items[17], *ptrs[17];
	char longname[] = "0123456789012345678901234567890123"; /* 34 bytes */
	Pl__Error *err;

	for (int i = 0; i < 17; i++) {
		pl__preset__init(&items[i]);
		items[i].id = (uint32_t)i + 1;
		items[i].name = (char *)"ok";
		items[i].depth_um = 500;
		items[i].speed_level = 1;
		items[i].area = PL__AREA__AREA_NECK;
		ptrs[i] = &items[i];
	}
	items[2].name = longname;
	put.expected_revision = 1;
	put.presets = ptrs;
	put.n_presets = 3;
	env.id = 1;
	env.body_case = PL__ENVELOPE__BODY_PUT_PRESETS;
	env.put_presets = &put;
	send_env(f, &env);
	err = expect_error(f, 1, PL__ERROR_CODE__ERROR_CODE_VALIDATION);
	assert_string_equal(err->field, "presets[2].name");
	assert_int_equal(err->value, 34);
	assert_int_equal(err->limit, 32);

	/* Exactly 32 bytes of UTF-8 (multi-byte) is fine. */
	items[2].name = (char *)"ééééééééééééééé12"; /* 15*2 + 2 */
	env.id = 2;
	send_env(f, &env);
	expect(f, 2, PL__ENVELOPE__BODY_PRESET_SET);

	items[2].name = (char *)"ok";
	put.n_presets = 17;
	put.expected_revision = 2;
	env.id = 3;
	send_env(f, &env);
	err = expect_error(f, 3, PL__ERROR_CODE__ERROR_CODE_VALIDATION);
	assert_string_equal(err->field, "presets");
	assert_int_equal(err->value, 17);
	assert_int_equal(err->limit, 16);

	/* An area value that is not in the enum at all. */
	put.n_presets = 1;
	items[0].area = (Pl__Area)-3;
	env.id = 4;
	send_env(f, &env);
	err = expect_error(f, 4, PL__ERROR_CODE__ERROR_CODE_VALIDATION);
	assert_string_equal(err->field, "presets[0].area");
}

static void test_validate_direct(void **state)
{
	struct pl_fw_device_info info;
	struct pl_fw_refusal why;
	struct pl_fw_preset p = {3, "Wange \xf0\x9f\x98\x80", 1750, 6, 5, 24, 0};

	(void)state;
	test_pen_info(&info);
	assert_int_equal(pl_fw_validate_presets(&info, &p, 1, &why), PL_FW_OK);
	p.depth_um = 2000;
	assert_int_equal(pl_fw_validate_presets(&info, &p, 1, &why), PL_FW_VALIDATION);
	assert_string_equal(why.field, "presets[0].speed_level");
	assert_non_null(strstr(why.message, "slow lock"));
	p.speed_level = 1;
	assert_int_equal(pl_fw_validate_presets(&info, &p, 1, &why), PL_FW_OK);
	/* Truncated 4-byte sequence. */
	snprintf(p.name, sizeof p.name, "x\xf0\x9f\x98");
	assert_int_equal(pl_fw_validate_presets(&info, &p, 1, &why), PL_FW_VALIDATION);
	assert_string_equal(why.field, "presets[0].name");
	assert_int_equal(why.value, 1);
	/* Above U+10FFFF. */
	snprintf(p.name, sizeof p.name, "\xf4\x90\x80\x80");
	assert_int_equal(pl_fw_validate_presets(&info, &p, 1, &why), PL_FW_VALIDATION);
	/* A device without a step or a slow lock. */
	snprintf(p.name, sizeof p.name, "ok");
	info.depth_step_um = 0;
	info.slow_lock_depth_um = 0;
	p.depth_um = 2333;
	p.speed_level = 6;
	assert_int_equal(pl_fw_validate_presets(&info, &p, 1, &why), PL_FW_OK);
}

static void test_presets_conflict(void **state)
{
	struct fake *f = *state;
	Pl__Error *err;

	put_presets(f, 1, 5, new_presets, 3);
	err = expect_error(f, 1, PL__ERROR_CODE__ERROR_CODE_CONFLICT);
	assert_non_null(strstr(err->message, "expected revision 5"));
	assert_non_null(strstr(err->message, "revision 1"));
	assert_int_equal(f->pen.stores, 0);

	/* Stale writer after someone else's write. */
	put_presets(f, 2, 1, new_presets, 3);
	expect(f, 2, PL__ENVELOPE__BODY_PRESET_SET);
	put_presets(f, 3, 1, fake_pen_default_presets, 2);
	err = expect_error(f, 3, PL__ERROR_CODE__ERROR_CODE_CONFLICT);
	assert_non_null(strstr(err->message, "expected revision 1"));
	assert_non_null(strstr(err->message, "revision 2"));
	assert_int_equal(f->pen.revision, 2);
	assert_string_equal(f->pen.presets[0].name, "Stirn fein");
}

static void test_presets_idempotent_retry(void **state)
{
	struct fake *f = *state;
	struct pl_fw_preset reordered[3] = {new_presets[2], new_presets[0],
	                                    new_presets[1]};

	put_presets(f, 1, 1, new_presets, 3);
	assert_set_is(expect(f, 1, PL__ENVELOPE__BODY_PRESET_SET)->preset_set, 2,
	              new_presets, 3);
	/* The reply was lost; the host sends the same write again. */
	put_presets(f, 2, 1, new_presets, 3);
	assert_set_is(expect(f, 2, PL__ENVELOPE__BODY_PRESET_SET)->preset_set, 2,
	              new_presets, 3);
	/* Order does not make it a different set. */
	put_presets(f, 3, 1, reordered, 3);
	expect(f, 3, PL__ENVELOPE__BODY_PRESET_SET);
	assert_int_equal(f->pen.stores, 1);
	assert_int_equal(f->pen.revision, 2);
	/* Same expected revision, different content: a real conflict. */
	reordered[0].depth_um = 2250;
	put_presets(f, 4, 1, reordered, 3);
	expect_error(f, 4, PL__ERROR_CODE__ERROR_CODE_CONFLICT);
	assert_int_equal(f->pen.stores, 1);
}

/* ------------------------------------------------------------------ sessions */

static void test_list_single_page(void **state)
{
	struct fake *f = *state;
	Pl__SessionList *l;

	list(f, 1, 0);
	l = expect(f, 1, PL__ENVELOPE__BODY_SESSION_LIST)->session_list;
	assert_int_equal(l->n_sessions, 3);
	assert_false(l->more);
	assert_int_equal(l->sessions[0]->id, 1);
	assert_int_equal(l->sessions[0]->size, 100000);
	assert_int_equal(l->sessions[0]->seq, 101);
	assert_int_equal(l->sessions[0]->uuid.len, 16);
	assert_int_equal(l->sessions[0]->uuid.data[1], 8);
	assert_int_equal(l->sessions[0]->sha256.len, 32);
	assert_memory_equal(l->sessions[0]->sha256.data, f->pen.sessions[0].meta.sha256, 32);
	assert_int_equal(l->sessions[0]->time_source, PL__TIME_SOURCE__TIME_SOURCE_RTC);
	assert_int_equal(l->sessions[0]->end_ms - l->sessions[0]->start_ms, 1800000);
	assert_int_equal(l->sessions[2]->id, 5);

	list(f, 2, 2);
	l = expect(f, 2, PL__ENVELOPE__BODY_SESSION_LIST)->session_list;
	assert_int_equal(l->n_sessions, 1);
	assert_int_equal(l->sessions[0]->id, 5);
	list(f, 3, 5);
	l = expect(f, 3, PL__ENVELOPE__BODY_SESSION_LIST)->session_list;
	assert_int_equal(l->n_sessions, 0);
	assert_false(l->more);
}

/* Walks all pages; returns the number of pages. */
static int walk_pages(struct fake *f, uint32_t *next_id, size_t limit)
{
	uint32_t after = 0, id = 1000;
	int pages = 0;
	bool more = true;

	while (more) {
		Pl__SessionList *l;
		list(f, ++id, after);
		l = expect(f, id, PL__ENVELOPE__BODY_SESSION_LIST)->session_list;
		assert_true(f->max_payload_seen <= limit);
		assert_true(l->n_sessions > 0 || !l->more);
		for (size_t i = 0; i < l->n_sessions; i++) {
			assert_int_equal(l->sessions[i]->id, *next_id);
			(*next_id)++;
		}
		if (l->n_sessions)
			after = l->sessions[l->n_sessions - 1]->id;
		more = l->more;
		pages++;
		assert_true(pages < 500);
		/* Free as we go: the reply queue is bounded. */
		pl__envelope__free_unpacked(f->replies[--f->nreplies], NULL);
		f->next_reply = f->nreplies;
	}
	return pages;
}

static void test_list_pages(void **state)
{
	struct fake *f = *state;
	uint32_t next;
	int pages;

	fake_pen_clear_sessions(&f->pen);
	for (uint32_t i = 1; i <= 300; i++)
		fake_pen_add_session(&f->pen, i, 10);

	/* Our own limit: several pages still (300 entries do not fit 16 KiB
	 * together with the working memory they need). */
	next = 1;
	pages = walk_pages(f, &next, PL_FW_MAX_FRAME);
	assert_int_equal(next, 301);
	assert_true(pages >= 2);

	/* A host with small frames gets small pages, never a bigger frame. */
	hello(f, 1, 1, 1, 1024);
	expect(f, 1, PL__ENVELOPE__BODY_HELLO_REPLY);
	f->max_payload_seen = 0;
	next = 1;
	pages = walk_pages(f, &next, 1024);
	assert_int_equal(next, 301);
	assert_true(pages >= 300 / 14);
	assert_true(f->max_payload_seen > 1024 - 120);
}

static void test_read_chunks(void **state)
{
	struct fake *f = *state;
	Pl__SessionChunk *c;
	uint64_t off = 0;
	uint32_t id = 0;

	/* Whole record, chunk by chunk, clamped to one frame. */
	while (off < 100000) {
		read_session(f, ++id, 1, off, 1u << 20);
		c = expect(f, id, PL__ENVELOPE__BODY_SESSION_CHUNK)->session_chunk;
		assert_int_equal(c->id, 1);
		assert_int_equal(c->offset, off);
		assert_true(c->data.len > 0);
		assert_true(c->data.len <= PL_FW_MAX_FRAME - 32);
		assert_true(off + c->data.len == 100000 || c->data.len >= PL_FW_MAX_FRAME - 64);
		assert_memory_equal(c->data.data, f->pen.sessions[0].data + off, c->data.len);
		off += c->data.len;
		assert_int_equal(c->eof, off == 100000);
	}
	assert_true(f->max_payload_seen <= PL_FW_MAX_FRAME);
	/* 6 full chunks of PL_FW_MAX_FRAME - 48 bytes, then the rest. */
	assert_non_null(strstr(f->pen.last_log,
	                       "read_session id=1 off=98016 len=1048576 -> 1984 bytes eof"));

	/* Clamped to the end. */
	read_session(f, 500, 1, 99990, 1000);
	c = expect(f, 500, PL__ENVELOPE__BODY_SESSION_CHUNK)->session_chunk;
	assert_int_equal(c->data.len, 10);
	assert_true(c->eof);
	assert_memory_equal(c->data.data, f->pen.sessions[0].data + 99990, 10);

	/* Short read in the middle. */
	read_session(f, 501, 2, 100, 7);
	c = expect(f, 501, PL__ENVELOPE__BODY_SESSION_CHUNK)->session_chunk;
	assert_int_equal(c->data.len, 7);
	assert_false(c->eof);
	assert_memory_equal(c->data.data, f->pen.sessions[1].data + 100, 7);

	/* At the end exactly: empty, eof. */
	read_session(f, 502, 2, 5000, 100);
	c = expect(f, 502, PL__ENVELOPE__BODY_SESSION_CHUNK)->session_chunk;
	assert_int_equal(c->data.len, 0);
	assert_true(c->eof);

	/* An empty record. */
	read_session(f, 503, 5, 0, 100);
	c = expect(f, 503, PL__ENVELOPE__BODY_SESSION_CHUNK)->session_chunk;
	assert_int_equal(c->data.len, 0);
	assert_true(c->eof);
}

static void test_read_small_host_frames(void **state)
{
	struct fake *f = *state;
	Pl__SessionChunk *c;

	hello(f, 1, 1, 1, 1000);
	expect(f, 1, PL__ENVELOPE__BODY_HELLO_REPLY);
	f->max_payload_seen = 0;
	read_session(f, 2, 1, 0xffffffffu, 60000);  /* past end, see below */
	expect_error(f, 2, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	read_session(f, 3, 1, 4096, 60000);
	c = expect(f, 3, PL__ENVELOPE__BODY_SESSION_CHUNK)->session_chunk;
	assert_true(c->data.len >= 1000 - 64);
	assert_true(f->max_payload_seen <= 1000);
	assert_memory_equal(c->data.data, f->pen.sessions[0].data + 4096, c->data.len);
}

static void test_read_past_end_and_unknown(void **state)
{
	struct fake *f = *state;
	Pl__Error *err;

	read_session(f, 1, 2, 5001, 10);
	err = expect_error(f, 1, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	assert_non_null(strstr(err->message, "5001"));
	read_session(f, 2, 99, 0, 10);
	err = expect_error(f, 2, PL__ERROR_CODE__ERROR_CODE_NOT_FOUND);
	assert_non_null(strstr(err->message, "99"));
	assert_non_null(strstr(f->pen.last_log, "NOT_FOUND"));
}

static void test_archive(void **state)
{
	struct fake *f = *state;
	uint8_t wrong[32];
	Pl__SessionList *l;

	memcpy(wrong, f->pen.sessions[1].meta.sha256, 32);
	wrong[31] ^= 1;
	archive(f, 1, 2, wrong, 32);
	expect_error(f, 1, PL__ERROR_CODE__ERROR_CODE_CONFLICT);
	archive(f, 2, 2, f->pen.sessions[1].meta.sha256, 31);
	expect_error(f, 2, PL__ERROR_CODE__ERROR_CODE_CONFLICT);
	assert_false(f->pen.sessions[1].meta.archived);
	assert_int_equal(f->pen.archives, 0);

	archive(f, 3, 2, f->pen.sessions[1].meta.sha256, 32);
	expect(f, 3, PL__ENVELOPE__BODY_ACK);
	assert_true(f->pen.sessions[1].meta.archived);
	archive(f, 4, 2, f->pen.sessions[1].meta.sha256, 32);
	expect(f, 4, PL__ENVELOPE__BODY_ACK);
	assert_int_equal(f->pen.archives, 1);
	/* Archived with a different digest later: still a conflict. */
	archive(f, 5, 2, wrong, 32);
	expect_error(f, 5, PL__ERROR_CODE__ERROR_CODE_CONFLICT);

	archive(f, 6, 77, wrong, 32);
	expect_error(f, 6, PL__ERROR_CODE__ERROR_CODE_NOT_FOUND);

	list(f, 7, 0);
	l = expect(f, 7, PL__ENVELOPE__BODY_SESSION_LIST)->session_list;
	assert_false(l->sessions[0]->archived);
	assert_true(l->sessions[1]->archived);
}

/* ------------------------------------------------------------------ robustness */

static void test_garbage_then_request(void **state)
{
	struct fake *f = *state;
	uint8_t junk[4096];
	uint32_t x = 12345;
	const struct pl_frame_stats *st = &pl_fw_get_stats(&f->pen.fw)->frames;
	uint64_t dropped = 0;
	Pl__Envelope *e;

	for (size_t i = 0; i < sizeof junk; i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (uint8_t)(x >> 16);
		if (i % 97 == 0)
			junk[i] = 0;
	}
	pl_fw_rx(&f->pen.fw, junk, sizeof junk);
	/* Garbage without a trailing delimiter: the next frame's own bytes
	 * land in the same "frame" and it is lost; a host retries.  After a
	 * delimiter everything works again. */
	pl_fw_rx(&f->pen.fw, (const uint8_t *)"\0", 1);
	simple(f, 9, PL__ENVELOPE__BODY_GET_INFO);
	e = expect(f, 9, PL__ENVELOPE__BODY_DEVICE_INFO);
	assert_string_equal(e->device_info->serial, "PEN-TEST");
	for (int i = 0; i < PL_FRAME_DROP_COUNT; i++)
		dropped += st->dropped[i];
	assert_true(dropped > 10);
	assert_true(st->frames >= 1);
	no_more_replies(f);
}

static void test_oversize_dropped_and_counted(void **state)
{
	struct fake *f = *state;
	static uint8_t big[PL_FW_MAX_FRAME + 100];
	const struct pl_fw_stats *st = pl_fw_get_stats(&f->pen.fw);

	memset(big, 0x5a, sizeof big);
	ping(f, 1, big, sizeof big);
	no_more_replies(f);
	assert_int_equal(st->frames.dropped[PL_FRAME_DROP_OVERSIZE], 1);
	assert_int_equal(st->requests, 0);

	/* The largest ping the pen takes is answered (payload plus a few
	 * bytes of envelope). */
	ping(f, 2, big, PL_FW_MAX_FRAME - 16);
	assert_int_equal(expect(f, 2, PL__ENVELOPE__BODY_PONG)->pong->payload.len,
	                 PL_FW_MAX_FRAME - 16);
	/* A host that takes small frames cannot get a big pong: an error
	 * instead, never an oversize frame. */
	hello(f, 3, 1, 1, 512);
	expect(f, 3, PL__ENVELOPE__BODY_HELLO_REPLY);
	f->max_payload_seen = 0;
	ping(f, 4, big, 600);
	expect_error(f, 4, PL__ERROR_CODE__ERROR_CODE_INTERNAL);
	assert_true(f->max_payload_seen <= 512);
}

static void test_split_byte_by_byte(void **state)
{
	struct fake *f = *state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__ReadSession rs = PL__READ_SESSION__INIT;
	uint8_t *fr;
	size_t len;
	Pl__SessionChunk *c;

	rs.id = 1;
	rs.offset = 777;
	rs.length = 300;
	env.id = 0x12345678;
	env.body_case = PL__ENVELOPE__BODY_READ_SESSION;
	env.read_session = &rs;
	len = frame_of(&env, &fr);
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(f->nreplies, 0);
		pl_fw_rx(&f->pen.fw, fr + i, 1);
	}
	free(fr);
	c = expect(f, 0x12345678, PL__ENVELOPE__BODY_SESSION_CHUNK)->session_chunk;
	assert_int_equal(c->data.len, 300);
	assert_memory_equal(c->data.data, f->pen.sessions[0].data + 777, 300);
}

static void test_bad_requests(void **state)
{
	struct fake *f = *state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__HelloReply hr = PL__HELLO_REPLY__INIT;
	uint8_t junk[] = {0x08, 0x2a, 0x52, 0x7f, 0x01}; /* id 42, then a bad field */
	uint8_t fr[64];
	size_t n;
	Pl__Error *err;

	env.id = 31;
	send_env(f, &env); /* body not set */
	err = expect_error(f, 31, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	assert_non_null(strstr(err->message, "empty"));

	env.id = 32;
	env.body_case = PL__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &hr;
	send_env(f, &env);
	err = expect_error(f, 32, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	assert_non_null(strstr(err->message, "hello_reply"));

	n = pl_frame_encode(junk, sizeof junk, 0, fr, sizeof fr);
	pl_fw_rx(&f->pen.fw, fr, n);
	expect_error(f, 42, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	assert_int_equal(pl_fw_get_stats(&f->pen.fw)->unpack_failures, 1);
	assert_int_equal(pl_fw_get_stats(&f->pen.fw)->errors_sent, 3);
}

static void test_arena_exhausted(void **state)
{
	struct fake *f = *state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__PutPresets put = PL__PUT_PRESETS__INIT;
	enum { N = 5000 };
	Pl__Preset *items = calloc(N, sizeof *items);
	Pl__Preset **ptrs = calloc(N, sizeof *ptrs);
	Pl__Error *err;

	/* ~2 bytes per empty preset on the wire, ~70 bytes each unpacked:
	 * fits a frame, not the arena. */
	for (int i = 0; i < N; i++) {
		pl__preset__init(&items[i]);
		ptrs[i] = &items[i];
	}
	put.n_presets = N;
	put.presets = ptrs;
	env.id = 55;
	env.body_case = PL__ENVELOPE__BODY_PUT_PRESETS;
	env.put_presets = &put;
	assert_true(pl__envelope__get_packed_size(&env) < PL_FW_MAX_FRAME);
	send_env(f, &env);
	free(items);
	free(ptrs);
	err = expect_error(f, 55, PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	assert_string_equal(err->message, "request too large");
	assert_int_equal(f->pen.stores, 0);

	/* And the endpoint is fine afterwards. */
	simple(f, 56, PL__ENVELOPE__BODY_GET_PRESETS);
	expect(f, 56, PL__ENVELOPE__BODY_PRESET_SET);
}

static void test_reset_forgets_partial_frame(void **state)
{
	struct fake *f = *state;
	uint8_t *fr;
	size_t len;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__GetInfo gi = PL__GET_INFO__INIT;

	env.id = 5;
	env.body_case = PL__ENVELOPE__BODY_GET_INFO;
	env.get_info = &gi;
	len = frame_of(&env, &fr);
	pl_fw_rx(&f->pen.fw, fr, len / 2);
	pl_fw_reset(&f->pen.fw);
	pl_fw_rx(&f->pen.fw, fr, len);
	free(fr);
	expect(f, 5, PL__ENVELOPE__BODY_DEVICE_INFO);
	no_more_replies(f);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_hello_negotiates),
		T(test_requests_before_hello_answered),
		T(test_hello_resets_trace),
		T(test_trace_levels_and_state_events),
		T(test_info_limits),
		T(test_clock),
		T(test_presets_put_and_revision),
		T(test_validation_rules),
		T(test_validation_name_too_long_and_count),
		T(test_validate_direct),
		T(test_presets_conflict),
		T(test_presets_idempotent_retry),
		T(test_list_single_page),
		T(test_list_pages),
		T(test_read_chunks),
		T(test_read_small_host_frames),
		T(test_read_past_end_and_unknown),
		T(test_archive),
		T(test_garbage_then_request),
		T(test_oversize_dropped_and_counted),
		T(test_split_byte_by_byte),
		T(test_bad_requests),
		T(test_arena_exhausted),
		T(test_reset_forgets_partial_frame),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
