/* One-line envelope descriptions for --dump-frames (lib/src/describe.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "describe.h"
#include "penlink.pb-c.h"

/* Packs env and describes the bytes, as the engine does with a frame. */
static char *describe(const Pl__Envelope *env)
{
	static char text[4096];
	size_t len = pl__envelope__get_packed_size(env);
	uint8_t *buf = malloc(len + 1);

	assert_non_null(buf);
	pl__envelope__pack(env, buf);
	size_t n = pl__describe_envelope(buf, len, text, sizeof text);
	assert_int_equal(n, strlen(text));
	free(buf);
	return text;
}

static void assert_contains(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("expected \"%s\" in \"%s\"", needle, text);
}

static void test_read_session(void **state)
{
	(void)state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__ReadSession rs = PL__READ_SESSION__INIT;

	env.id = 7;
	env.body_case = PL__ENVELOPE__BODY_READ_SESSION;
	env.read_session = &rs;
	rs.id = 3;
	rs.offset = 65536;
	rs.length = 16384;
	assert_string_equal(describe(&env),
	                    "id=7 read_session{id:3 offset:65536 length:16384}");

	/* Defaults are left out, like protobuf's text format. */
	rs.offset = 0;
	assert_string_equal(describe(&env), "id=7 read_session{id:3 length:16384}");
}

static void test_session_chunk(void **state)
{
	(void)state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__SessionChunk ch = PL__SESSION_CHUNK__INIT;
	uint8_t data[300];

	static const uint8_t head[8] = {0x0a, 0x1b, 0x2c, 0x3d,
	                                0x4e, 0x5f, 0x60, 0x71};

	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	memcpy(data, head, sizeof head);
	env.id = 12;
	env.body_case = PL__ENVELOPE__BODY_SESSION_CHUNK;
	env.session_chunk = &ch;
	ch.id = 3;
	ch.offset = 16384;
	ch.data.data = data;
	ch.data.len = sizeof data;
	ch.eof = 1;
	assert_string_equal(describe(&env),
	                    "id=12 session_chunk{id:3 offset:16384 "
	                    "data:<300 bytes 0a1b2c3d4e5f6071...> eof:true}");

	ch.data.len = 8; /* all shown, no ellipsis */
	assert_contains(describe(&env), "data:<8 bytes 0a1b2c3d4e5f6071>");
	ch.data.len = 3;
	assert_contains(describe(&env), "data:<3 bytes 0a1b2c>");
}

static void test_error_with_field(void **state)
{
	(void)state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Error err = PL__ERROR__INIT;

	env.id = 9;
	env.body_case = PL__ENVELOPE__BODY_ERROR;
	env.error = &err;
	err.code = PL__ERROR_CODE__ERROR_CODE_VALIDATION;
	err.message = "depth 2.60 mm is above the maximum";
	err.field = "presets[2].depth_um";
	err.value = 2600;
	err.limit = 2500;
	const char *t = describe(&env);
	assert_string_equal(t, "id=9 error{code:validation "
	                       "message:\"depth 2.60 mm is above the maximum\" "
	                       "field:\"presets[2].depth_um\" value:2600 limit:2500}");

	/* Quotes and control characters cannot break the line. */
	err.message = "say \"hi\"\nnext\tline";
	err.field = "";
	err.code = PL__ERROR_CODE__ERROR_CODE_BUSY;
	err.value = -5;
	err.limit = 0;
	t = describe(&env);
	assert_string_equal(t, "id=9 error{code:busy "
	                       "message:\"say \\\"hi\\\"\\nnext\\x09line\" value:-5}");
	assert_null(strchr(t, '\n'));
}

static void test_preset_set(void **state)
{
	(void)state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__PresetSet set = PL__PRESET_SET__INIT;
	Pl__Preset a = PL__PRESET__INIT, b = PL__PRESET__INIT;
	Pl__Preset *list[2] = {&a, &b};

	env.id = 4;
	env.body_case = PL__ENVELOPE__BODY_PRESET_SET;
	env.preset_set = &set;
	set.revision = 17;
	set.n_presets = 2;
	set.presets = list;
	a.id = 1;
	a.name = "Forehead fine";
	a.depth_um = 500;
	a.speed_level = 3;
	a.area = PL__AREA__AREA_FOREHEAD;
	a.needle_count = 12;
	a.max_duration_s = 600;
	b.id = 2;
	b.name = "Jaw";
	b.depth_um = 1500;
	b.speed_level = 1;
	b.area = PL__AREA__AREA_CHIN_JAW;
	const char *t = describe(&env);
	assert_string_equal(t, "id=4 preset_set{revision:17 presets:["
	                       "{id:1 name:\"Forehead fine\" depth_um:500 speed_level:3 "
	                       "area:forehead needle_count:12 max_duration_s:600} "
	                       "{id:2 name:\"Jaw\" depth_um:1500 speed_level:1 area:chin_jaw}]}");

	/* A value the schema does not know is shown as its number. */
	b.area = (Pl__Area)99;
	assert_contains(describe(&env), "area:99}");
}

static void test_repeated_and_nested(void **state)
{
	(void)state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__DeviceInfo di = PL__DEVICE_INFO__INIT;
	Pl__Battery bat = PL__BATTERY__INIT;
	uint32_t rates[11] = {50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150};

	env.id = 2;
	env.body_case = PL__ENVELOPE__BODY_DEVICE_INFO;
	env.device_info = &di;
	di.serial = "PL-0001";
	di.speed_levels = 11;
	di.n_stroke_rate_hz = 11;
	di.stroke_rate_hz = rates;
	di.total_strokes = 12345678901ull;
	di.battery = &bat;
	bat.percent = 80;
	bat.charging = 1;
	const char *t = describe(&env);
	assert_contains(t, "id=2 device_info{serial:\"PL-0001\" ");
	assert_contains(t, "stroke_rate_hz:[50 60 70 80 90 100 110 120 ...(+3)]");
	assert_contains(t, "total_strokes:12345678901");
	assert_contains(t, "battery{percent:80 charging:true}}");

	di.n_stroke_rate_hz = 8;
	assert_contains(describe(&env), "stroke_rate_hz:[50 60 70 80 90 100 110 120]");

	/* Empty sub-messages still show which body it is. */
	Pl__Envelope ack = PL__ENVELOPE__INIT;
	Pl__Ack a = PL__ACK__INIT;
	ack.id = 5;
	ack.body_case = PL__ENVELOPE__BODY_ACK;
	ack.ack = &a;
	assert_string_equal(describe(&ack), "id=5 ack{}");

	Pl__Envelope none = PL__ENVELOPE__INIT;
	assert_string_equal(describe(&none), "id=0 (no body)");

	Pl__Envelope clk = PL__ENVELOPE__INIT;
	Pl__Clock c = PL__CLOCK__INIT;
	clk.body_case = PL__ENVELOPE__BODY_CLOCK;
	clk.clock = &c;
	c.utc_ms = 1700000000123;
	c.source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	assert_string_equal(describe(&clk), "id=0 clock{utc_ms:1700000000123 source:rtc}");
}

static void test_garbage(void **state)
{
	(void)state;
	char text[256];
	/* Field 1 (uint32) sent as length-delimited, longer than the data. */
	const uint8_t bad[] = {0x0a, 0x50, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x11,
	                       0x22, 0x33};
	size_t n = pl__describe_envelope(bad, sizeof bad, text, sizeof text);

	assert_int_equal(n, strlen(text));
	assert_string_equal(text, "not a valid envelope: <10 bytes 0a5001deadbeef11...>");

	/* Random bytes never crash and always say something. */
	uint8_t junk[64];
	uint32_t x = 12345;
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(round % 64);
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (uint8_t)(x >> 16);
		}
		n = pl__describe_envelope(junk, len, text, sizeof text);
		assert_int_equal(n, strlen(text));
		assert_true(n > 0);
		assert_true(strncmp(text, "id=", 3) == 0 ||
		            strncmp(text, "not a valid envelope", 20) == 0);
	}
}

static void test_tiny_cap(void **state)
{
	(void)state;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Error err = PL__ERROR__INIT;
	char full[512];
	char buf[600];

	env.id = 9;
	env.body_case = PL__ENVELOPE__BODY_ERROR;
	env.error = &err;
	err.code = PL__ERROR_CODE__ERROR_CODE_INTERNAL;
	err.message = "flash wr\xc3\xa9te failed \xc3\xa9\xc3\xa9\xc3\xa9";
	size_t len = pl__envelope__get_packed_size(&env);
	uint8_t *packed = malloc(len);
	assert_non_null(packed);
	pl__envelope__pack(&env, packed);
	size_t full_len = pl__describe_envelope(packed, len, full, sizeof full);
	assert_true(full_len > 20);

	/* cap 0 writes nothing at all. */
	memset(buf, 'Z', sizeof buf);
	assert_int_equal(pl__describe_envelope(packed, len, buf, 0), 0);
	assert_int_equal(buf[0], 'Z');
	assert_int_equal(pl__describe_envelope(packed, len, NULL, 10), 0);

	for (size_t cap = 1; cap <= full_len + 3; cap++) {
		memset(buf, 'Z', sizeof buf);
		size_t n = pl__describe_envelope(packed, len, buf, cap);
		assert_int_equal(n, strlen(buf));
		assert_true(n < cap);
		for (size_t i = cap; i < sizeof buf; i++)
			assert_int_equal(buf[i], 'Z');
		if (cap > full_len) {
			assert_string_equal(buf, full);
		} else if (cap >= 4) {
			/* Cut short: marked, and a prefix of the whole line that
			 * does not end inside a UTF-8 sequence. */
			assert_true(n >= 3);
			assert_memory_equal(buf + n - 3, "...", 3);
			assert_memory_equal(buf, full, n - 3);
			if (n > 3)
				assert_true(((unsigned char)buf[n - 4] & 0xc0) != 0xc0);
		}
	}
	free(packed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_session),
		cmocka_unit_test(test_session_chunk),
		cmocka_unit_test(test_error_with_field),
		cmocka_unit_test(test_preset_set),
		cmocka_unit_test(test_repeated_and_nested),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_tiny_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
