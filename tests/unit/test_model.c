/* The model layer: depths, times, untrusted text, session identity, the
 * wire encoding of presets and device info, and the clinic policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "penlink.h"

static void test_depth_text_one_rule(void **state)
{
	(void)state;
	char b[PL_MM_TEXT_MAX];
	assert_string_equal(pl_depth_format_mm(1500, PL_MM_FIXED, b), "1.50");
	assert_string_equal(pl_depth_format_mm(125, PL_MM_FIXED, b), "0.125");
	assert_string_equal(pl_depth_format_mm(0, PL_MM_FIXED, b), "0.00");
	assert_string_equal(pl_depth_format_mm(2000, PL_MM_FIXED, b), "2.00");
	assert_string_equal(pl_depth_format_mm(1500, PL_MM_SHORT, b), "1.5");
	assert_string_equal(pl_depth_format_mm(2000, PL_MM_SHORT, b), "2.0");
	assert_string_equal(pl_depth_format_mm(125, PL_MM_SHORT, b), "0.125");
	assert_string_equal(pl_depth_format_mm(250, PL_MM_SHORT, b), "0.25");
	assert_string_equal(pl_depth_format_mm(UINT32_MAX, PL_MM_FIXED, b),
	                    "4294967.295");
	/* The text parses back to the same micrometres: never rounded. */
	for (uint32_t um = 0; um < 5000; um += 7) {
		uint32_t back = 0;
		assert_int_equal(pl_depth_parse_mm(pl_depth_format_mm(um, PL_MM_FIXED, b),
		                                   &back), PL_OK);
		assert_int_equal(back, um);
	}
}

static void test_time_text(void **state)
{
	(void)state;
	char b[PL_TIME_TEXT_MAX];
	assert_string_equal(pl_time_format_utc(1700000000123, b),
	                    "2023-11-14T22:13:20.123Z");
	assert_string_equal(pl_time_format_utc(-1, b), "1969-12-31T23:59:59.999Z");
	/* Far-off times a pen may send still fit the buffer. */
	assert_true(strlen(pl_time_format_utc(INT64_MAX, b)) < PL_TIME_TEXT_MAX);
	assert_true(strlen(pl_time_format_utc(INT64_MIN, b)) < PL_TIME_TEXT_MAX);
	/* Local time carries its offset, which follows the zone's rules:
	 * Berlin's (as a POSIX rule, so no tz database is needed) in winter
	 * and in summer, and UTC. */
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	assert_string_equal(pl_time_format_local(1700000000123, b),
	                    "2023-11-14 23:13:20 +01:00");
	assert_string_equal(pl_time_format_local(1714572202000, b),
	                    "2024-05-01 16:03:22 +02:00");
	setenv("TZ", "UTC0", 1);
	tzset();
	assert_string_equal(pl_time_format_local(1700000000123, b),
	                    "2023-11-14 22:13:20 +00:00");
	setenv("TZ", "<-0530>5:30", 1); /* west of Greenwich, half hours */
	tzset();
	assert_string_equal(pl_time_format_local(1700000000123, b),
	                    "2023-11-14 16:43:20 -05:30");
	unsetenv("TZ");
	tzset();
	int64_t a = pl_time_monotonic_ms(), c = pl_time_monotonic_ms();
	assert_true(c >= a);
	assert_true(pl_time_utc_ms() > 1700000000000);
}

/* Two pen times as far apart as int64_t allows, and the wrong way round. */
static void test_time_span(void **state)
{
	(void)state;
	assert_true(pl_time_span_ms(1000, 4500) == 3500);
	assert_true(pl_time_span_ms(4500, 1000) == 0);
	assert_true(pl_time_span_ms(7, 7) == 0);
	assert_true(pl_time_span_ms(INT64_MIN, INT64_MAX) == UINT64_MAX);
	assert_true(pl_time_span_ms(-1, INT64_MAX) == (uint64_t)INT64_MAX + 1);
	assert_true(pl_time_span_ms(INT64_MAX, INT64_MIN) == 0);
}

static void clean_is(enum pl_text_target t, const char *in, const char *want)
{
	char out[256];
	size_t n = pl_text_clean(t, in, out, sizeof out);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_text_for_each_output(void **state)
{
	(void)state;
	const char *hostile = "PEN-\xff\x1b[31m\x7f\xc2\x85\xe2\x80\xae";
	clean_is(PL_TEXT_TERMINAL, hostile,
	         "PEN-\xef\xbf\xbd\\x1b[31m\\x7f\\x85\\u202e");
	clean_is(PL_TEXT_LOG, "a\nb", "a\\x0ab");
	/* JSON: valid UTF-8; C0 left to the JSON writer's \u escapes. */
	clean_is(PL_TEXT_JSON, hostile,
	         "PEN-\xef\xbf\xbd\x1b[31m\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	clean_is(PL_TEXT_CSV, "=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")");
	clean_is(PL_TEXT_CSV, "-1+2", "'-1+2");
	clean_is(PL_TEXT_CSV, "d\xc3\xa9" "collet\xc3\xa9", "d\xc3\xa9" "collet\xc3\xa9");
	clean_is(PL_TEXT_FILENAME, "../../x", "_._.._x");
	clean_is(PL_TEXT_FILENAME, "/abs\x1b", "_abs_");
	clean_is(PL_TEXT_FILENAME, "", "_");
	clean_is(PL_TEXT_TERMINAL, NULL, "");

	/* Cut at a whole character or escape, counted like snprintf. */
	char small[6];
	size_t need = pl_text_clean(PL_TEXT_TERMINAL, "ab\x1b" "cd", small, sizeof small);
	assert_int_equal(need, 8);
	assert_string_equal(small, "ab");
	need = pl_text_clean(PL_TEXT_TERMINAL, "\xc3\xa9\xc3\xa9\xc3\xa9", small, 6);
	assert_string_equal(small, "\xc3\xa9\xc3\xa9");
	assert_int_equal(pl_text_clean(PL_TEXT_JSON, "xyz", NULL, 0), 3);

	char *d = pl_text_clean_dup(PL_TEXT_TERMINAL, "\x01");
	assert_non_null(d);
	assert_string_equal(d, "\\x01");
	free(d);

	assert_true(pl_text_utf8_valid("d\xc3\xa9", 3));
	assert_false(pl_text_utf8_valid("\xc0\xaf", 2));   /* overlong */
	assert_false(pl_text_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
}

static void test_session_key(void **state)
{
	(void)state;
	struct pl_session_key k, k2;
	assert_int_equal(pl_session_key_parse(
	                     "PEN/A-1/1B4E28BA-2FA1-11D2-883F-0016D3CCA427", &k),
	                 PL_OK);
	assert_string_equal(k.serial, "PEN/A-1");
	assert_int_equal(k.uuid[0], 0x1b);
	assert_int_equal(k.uuid[15], 0x27);
	char b[128];
	pl_session_key_format(&k, PL_TEXT_TERMINAL, b, sizeof b);
	assert_string_equal(b, "PEN/A-1/1b4e28ba-2fa1-11d2-883f-0016d3cca427");
	pl_session_file_name(&k, 7, b, sizeof b);
	assert_string_equal(b, "PEN_A-1-000007-1b4e28ba-2fa1-11d2-883f-0016d3cca427.plrec");

	k2 = k;
	assert_true(pl_session_key_equal(&k, &k2));
	k2.serial[0] = 'X';
	assert_false(pl_session_key_equal(&k, &k2));

	/* Failures name what was wrong and leave the key alone. */
	memset(&k2, 0x5a, sizeof k2);
	struct pl_session_key before = k2;
	assert_int_equal(pl_session_key_parse("1b4e28ba-2fa1-11d2-883f-0016d3cca427", &k2),
	                 PL_ERR_PARSE);
	assert_non_null(strstr(pl_error_message(), "SERIAL/UUID"));
	assert_int_equal(pl_session_key_parse("PEN/1b4e28ba", &k2), PL_ERR_PARSE);
	assert_non_null(strstr(pl_error_message(), "not a UUID"));
	assert_int_equal(pl_session_key_parse("/1b4e28ba-2fa1-11d2-883f-0016d3cca427", &k2),
	                 PL_ERR_PARSE);
	assert_memory_equal(&k2, &before, sizeof k2);

	struct pl_session_key hostile = {.serial = "\x1b]0;x\x07"};
	pl_session_key_format(&hostile, PL_TEXT_TERMINAL, b, sizeof b);
	assert_null(strchr(b, '\x1b'));
	pl_session_file_name(&hostile, 1, b, sizeof b);
	assert_null(strchr(b, '/'));
}

static void sample_set(struct pl_preset_set *s)
{
	memset(s, 0, sizeof *s);
	s->revision = 9;
	s->count = 2;
	s->presets[0] = (struct pl_preset){1, "Forehead", 500, 3, PL_AREA_FOREHEAD, 12, 600};
	s->presets[1] = (struct pl_preset){2, "D\xc3\xa9" "collet\xc3\xa9", 1750, 1,
	                                   PL_AREA_DECOLLETE, 0, 0};
}

static void test_wire_round_trip(void **state)
{
	(void)state;
	struct pl_preset_set s, back;
	sample_set(&s);
	uint8_t *buf;
	size_t len;
	assert_int_equal(pl_preset_set_encode(&s, &buf, &len), PL_OK);
	assert_int_equal(pl_preset_set_decode(buf, len, &back), PL_OK);
	assert_memory_equal(&s, &back, sizeof s);
	/* Cut bytes are refused and leave the output alone. */
	memset(&back, 0x77, sizeof back);
	struct pl_preset_set before = back;
	assert_int_equal(pl_preset_set_decode(buf, len - 3, &back), PL_ERR_PARSE);
	assert_memory_equal(&back, &before, sizeof back);
	assert_int_equal(pl_preset_set_decode(NULL, 4, &back), PL_ERR_ARG);
	assert_int_equal(pl_preset_set_decode(buf, len, NULL), PL_ERR_ARG);
	free(buf);

	struct pl_device_info info = {.serial = "PEN-1", .model = "M",
	                              .depth_max_um = 2500, .depth_step_um = 250,
	                              .speed_levels = 2, .stroke_rate_hz = {50, 100},
	                              .battery_percent = 80, .charging = true};
	struct pl_device_info ib;
	assert_int_equal(pl_device_info_encode(&info, &buf, &len), PL_OK);
	assert_int_equal(pl_device_info_decode(buf, len, &ib), PL_OK);
	assert_memory_equal(&info, &ib, sizeof info);
	free(buf);
}

static void test_policy_decided_once(void **state)
{
	(void)state;
	struct pl_policy *p;
	struct pl_preset_set old, next;
	sample_set(&next);
	const char *groups[] = {"staff", "juniors"};
	struct pl_policy_actor alice = {.user = "alice", .groups = groups, .n_groups = 2};

	assert_int_equal(pl_policy_new(&p), PL_OK);
	assert_int_equal(pl_policy_confirm_above_um(p), 1500);
	/* 1.75 mm is new: the default asks for a confirmation. */
	assert_int_equal(pl_policy_check_push(p, &alice, NULL, &next, false), PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "depth 1.75 mm is above 1.50 mm; add --confirm"));
	assert_int_equal(pl_policy_check_push(p, &alice, NULL, &next, true), PL_OK);
	/* Already on the pen at that depth: no new confirmation. */
	old = next;
	assert_int_equal(pl_policy_check_push(p, &alice, &old, &next, false), PL_OK);

	/* The configuration may loosen it, not only tighten it. */
	assert_int_equal(pl_policy_set(p, "confirm_above_mm", "2.0"), PL_OK);
	assert_int_equal(pl_policy_check_push(p, &alice, NULL, &next, false), PL_OK);

	/* Caps: the largest of the actor's capped groups, before confirmation. */
	assert_int_equal(pl_policy_set(p, "depth_cap.juniors", "1.0"), PL_OK);
	assert_int_equal(pl_policy_set(p, "depth_cap.staff", "1.5"), PL_OK);
	assert_int_equal(pl_policy_check_push(p, &alice, NULL, &next, true), PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "above alice's cap of 1.50 mm (group staff)"));
	alice.uncapped = true;
	assert_int_equal(pl_policy_check_push(p, &alice, NULL, &next, true), PL_OK);
	const char *g;
	uint32_t um;
	assert_int_equal(pl_policy_cap(p, 1, &g, &um), PL_OK);
	assert_string_equal(g, "staff");
	assert_int_equal(um, 1500);
	assert_int_equal(pl_policy_cap(p, 2, &g, &um), PL_ERR_NOT_FOUND);

	/* Bad keys and values are named, and change nothing. */
	assert_int_equal(pl_policy_set(p, "confirm_above_mm", "deep"), PL_ERR_PARSE);
	assert_non_null(strstr(pl_error_message(), "confirm_above_mm = \"deep\""));
	assert_int_equal(pl_policy_confirm_above_um(p), 2000);
	assert_int_equal(pl_policy_set(p, "confirm_above", "1"), PL_ERR_PARSE);
	assert_non_null(strstr(pl_error_message(), "unknown key"));
	assert_int_equal(pl_policy_set(p, "depth_cap.", "1"), PL_ERR_PARSE);
	pl_policy_free(p);
}

static void test_error_set_is_the_library_path(void **state)
{
	(void)state;
	assert_int_equal(pl_error_set(PL_ERR_IO, "pen %s said \x1b[2J%d", "X", 7), PL_ERR_IO);
	assert_string_equal(pl_error_message(), "pen X said \\x1b[2J7");
	assert_string_equal(pl_error_name(PL_ERR_POLICY), "refused by policy");
}

static void test_option_structs_carry_their_size(void **state)
{
	(void)state;
	struct pl_open_options o;
	pl_open_options_init(&o);
	assert_int_equal(o.size, sizeof o);
	struct pl_download_options d;
	pl_download_options_init(&d);
	assert_int_equal(d.size, sizeof d);
	assert_null(d.sink);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_depth_text_one_rule),
	    cmocka_unit_test(test_time_text),
	    cmocka_unit_test(test_time_span),
	    cmocka_unit_test(test_text_for_each_output),
	    cmocka_unit_test(test_session_key),
	    cmocka_unit_test(test_wire_round_trip),
	    cmocka_unit_test(test_policy_decided_once),
	    cmocka_unit_test(test_error_set_is_the_library_path),
	    cmocka_unit_test(test_option_structs_carry_their_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
