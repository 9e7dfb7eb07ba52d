/* Preset-set JSON files and millimetre parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "penlink.h"

static void expect_parse_error(const char *text, const char *msg)
{
	struct pl_preset_set s;
	int rc = pl_preset_set_from_json(text, &s);
	if (rc != PL_ERR_PARSE)
		fail_msg("rc %d for %s", rc, text);
	if (!strstr(pl_error_message(), msg))
		fail_msg("message \"%s\" lacks \"%s\"", pl_error_message(), msg);
}

/* One preset with `field` spliced in after the required keys. */
static void expect_field_error(const char *field, const char *msg)
{
	char text[512];
	snprintf(text, sizeof text,
	         "{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": 0.5, \"speed\": 1},\n"
	         " {\"id\": 2, \"name\": \"B\", \"depth_mm\": 1, \"speed\": 1},\n"
	         " {\"id\": 3, \"name\": \"C\", \"depth_mm\": 1, \"speed\": 1, %s}]}",
	         field);
	expect_parse_error(text, msg);
}

static void test_exact_depths(void **state)
{
	(void)state;
	const char *text =
	    "{\"presets\": [\n"
	    "  {\"id\": 1, \"name\": \"Fine\", \"depth_mm\": 0.25, \"speed\": 3},\n"
	    "  {\"id\": 2, \"name\": \"Mid\", \"depth_mm\": 1.5, \"speed\": 1, \"area\": \"cheek\"},\n"
	    "  {\"id\": 3, \"name\": \"Deep\", \"depth_mm\": \"2.5\", \"speed\": 1,\n"
	    "   \"area\": \"body scar\", \"needles\": 0, \"max_duration_s\": 900},\n"
	    "  {\"id\": 4, \"name\": \"Tenth\", \"depth_mm\": 0.1, \"speed\": 2, \"needles\": 100},\n"
	    "  {\"id\": 5, \"name\": \"Whole\", \"depth_mm\": 2, \"speed\": 1},\n"
	    "  {\"id\": 6, \"name\": \"Zeros\", \"depth_mm\": 0.2500, \"speed\": 1}\n"
	    "]}\n";
	struct pl_preset_set s;
	int rc = pl_preset_set_from_json(text, &s);
	if (rc)
		fail_msg("%s", pl_error_message());
	assert_int_equal(s.count, 6);
	assert_int_equal(s.revision, 0);
	assert_int_equal(s.presets[0].depth_um, 250);
	assert_int_equal(s.presets[1].depth_um, 1500);
	assert_int_equal(s.presets[2].depth_um, 2500);
	assert_int_equal(s.presets[3].depth_um, 100);
	assert_int_equal(s.presets[4].depth_um, 2000);
	assert_int_equal(s.presets[5].depth_um, 250);
	assert_string_equal(s.presets[0].name, "Fine");
	assert_int_equal(s.presets[0].speed_level, 3);
	/* No "area" in the file: the documented default. */
	assert_int_equal(s.presets[0].area, PL_AREA_OTHER);
	assert_int_equal(s.presets[1].area, PL_AREA_CHEEK);
	assert_int_equal(s.presets[2].area, PL_AREA_BODY_SCAR);
	assert_int_equal(s.presets[2].max_duration_s, 900);
	assert_int_equal(s.presets[3].needle_count, 100);
}

static void test_lone_surrogate(void **state)
{
	(void)state;
	/* json-c turns a lone \ud800 escape into U+FFFD, which is valid. */
	struct pl_preset_set s;
	assert_int_equal(pl_preset_set_from_json(
	                     "{\"presets\": [{\"id\": 1, \"name\": \"\\ud800x\", \"depth_mm\": 1, \"speed\": 1}]}",
	                     &s),
	                 PL_OK);
	assert_string_equal(s.presets[0].name, "\xef\xbf\xbdx");
}

static void test_round_trip(void **state)
{
	(void)state;
	struct pl_preset_set s = {.revision = 7, .count = 3};
	s.presets[0] = (struct pl_preset){.id = 1, .name = "Front \"fine\"", .depth_um = 125,
	                                  .speed_level = 4, .area = PL_AREA_FOREHEAD,
	                                  .needle_count = 12, .max_duration_s = 600};
	s.presets[1] = (struct pl_preset){.id = 9, .name = "D\xc3\xa9" "collet\xc3\xa9",
	                                  .depth_um = 2000, .speed_level = 1,
	                                  .area = PL_AREA_DECOLLETE};
	s.presets[2] = (struct pl_preset){.id = 64, .name = "a/b\\c", .depth_um = 10000,
	                                  .speed_level = 16, .area = PL_AREA_OTHER,
	                                  .needle_count = 42};
	char *text = pl_preset_set_to_json(&s);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"depth_mm\": 0.125"));
	assert_non_null(strstr(text, "\"depth_mm\": 2.0"));
	assert_non_null(strstr(text, "\"area\": \"decollete\""));
	struct pl_preset_set back;
	int rc = pl_preset_set_from_json(text, &back);
	if (rc)
		fail_msg("%s\n%s", pl_error_message(), text);
	free(text);
	assert_int_equal(back.revision, 0);
	assert_int_equal(back.count, s.count);
	for (size_t i = 0; i < s.count; i++) {
		const struct pl_preset *a = &s.presets[i], *b = &back.presets[i];
		assert_int_equal(a->id, b->id);
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->depth_um, b->depth_um);
		assert_int_equal(a->speed_level, b->speed_level);
		assert_int_equal(a->area, b->area);
		assert_int_equal(a->needle_count, b->needle_count);
		assert_int_equal(a->max_duration_s, b->max_duration_s);
	}

	struct pl_preset_set none = {0};
	text = pl_preset_set_to_json(&none);
	assert_non_null(text);
	assert_int_equal(pl_preset_set_from_json(text, &back), PL_OK);
	assert_int_equal(back.count, 0);
	free(text);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	/* Missing comma on line 3: the column is the '"' where ',' belongs. */
	expect_parse_error("{\n  \"presets\": [\n    {\"id\": 1 \"name\": \"A\"}\n  ]\n}\n",
	                   "line 3, column 14: ");
	expect_parse_error("{\"presets\": [", "line 1, column 14: the file ends in the middle");
	expect_parse_error("", "line 1, column 1");
	expect_parse_error("{\"presets\": []} x", "line 1, column 17");
	expect_parse_error("{\"presets\": [],}", "line 1, column 16");
	expect_parse_error("{\"presets\": [\"\xff\"]}", "line 1");
	expect_parse_error("[1, 2]", "expected an object {\"presets\": [...]}, got array");
}

static void test_structure_errors(void **state)
{
	(void)state;
	expect_parse_error("{}", "\"presets\" is missing");
	expect_parse_error("{\"presets\": {}}", "presets: expected an array, got object");
	expect_parse_error("{\"presets\": [], \"extra\": 1}", "unknown key \"extra\" at the top");
	expect_parse_error("{\"presets\": [1]}", "presets[0]: expected an object, got number");
	expect_field_error("\"depht_mm\": 1", "presets[2]: unknown key \"depht_mm\"; known keys: id, name");
	expect_field_error("\"area\": 3", "presets[2].area: expected an area name, got number");
	expect_field_error("\"area\": \"elbow\"", "presets[2].area: unknown area \"elbow\"");
	expect_field_error("\"needles\": 101", "presets[2].needles: 101 is out of range 0..100");
	expect_field_error("\"needles\": -1", "presets[2].needles: -1 is out of range 0..100");
	expect_field_error("\"max_duration_s\": 4294967296",
	                   "presets[2].max_duration_s: 4294967296 is out of range");
	expect_field_error("\"needles\": 2.5", "presets[2].needles: expected a whole number, got number 2.5");
	expect_field_error("\"needles\": \"12\"", "presets[2].needles: expected a whole number, got string");

	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": true, \"speed\": 1}]}",
	                   "presets[0].depth_mm: expected a number, got true/false");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": 0.2501, \"speed\": 1}]}",
	                   "presets[0].depth_mm: depth 0.2501 mm has more than 3 decimals");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": -0.5, \"speed\": 1}]}",
	                   "presets[0].depth_mm: depth -0.5 mm is negative");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": 12, \"speed\": 1}]}",
	                   "presets[0].depth_mm: depth 12 mm is above 10 mm");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": \"NaN\", \"speed\": 1}]}",
	                   "presets[0].depth_mm: \"NaN\" is not a depth in millimetres");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": 1e-1, \"speed\": 1}]}",
	                   "presets[0].depth_mm: \"1e-1\" is not a depth");
	expect_parse_error("{\"presets\": [{\"id\": 0, \"name\": \"A\", \"depth_mm\": 1, \"speed\": 1}]}",
	                   "presets[0].id: 0 is out of range 1..64");
	expect_parse_error("{\"presets\": [{\"id\": 65, \"name\": \"A\", \"depth_mm\": 1, \"speed\": 1}]}",
	                   "presets[0].id: 65 is out of range 1..64");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": 1, \"speed\": 17}]}",
	                   "presets[0].speed: 17 is out of range 1..16");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": 1, \"speed\": 0}]}",
	                   "presets[0].speed: 0 is out of range 1..16");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"A\", \"depth_mm\": 1}]}",
	                   "presets[0]: \"speed\" is missing");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"0123456789012345678901234567890123456789\", "
	                   "\"depth_mm\": 1, \"speed\": 1}]}",
	                   "presets[0].name: name is 40 bytes; at most 32");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"\", \"depth_mm\": 1, \"speed\": 1}]}",
	                   "presets[0].name: name is empty");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": \"a\\u0000b\", \"depth_mm\": 1, \"speed\": 1}]}",
	                   "presets[0].name: name is not valid UTF-8");
	expect_parse_error("{\"presets\": [{\"id\": 1, \"name\": 5, \"depth_mm\": 1, \"speed\": 1}]}",
	                   "presets[0].name: expected a string, got number");

	/* 65 presets */
	size_t cap = 65 * 80 + 32;
	char *text = malloc(cap);
	size_t n = (size_t)snprintf(text, cap, "{\"presets\": [");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(text + n, cap - n,
		                      "%s{\"id\": 1, \"name\": \"A\", \"depth_mm\": 1, \"speed\": 1}",
		                      i ? "," : "");
	snprintf(text + n, cap - n, "]}");
	expect_parse_error(text, "presets: 65 presets; at most 64");
	free(text);
}

static void test_parse_depth_mm(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		uint32_t um;
	} good[] = {
	    {"0.25", 250}, {"1.5", 1500}, {"2", 2000}, {"2.", 2000}, {".5", 500},
	    {"0.001", 1}, {"0", 0}, {"10", 10000}, {"10.000", 10000},
	    {" 1.5 ", 1500}, {"0.2500", 250}, {"0.1", 100}, {"2.999", 2999},
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		uint32_t um = 12345;
		int rc = pl_depth_parse_mm(good[i].text, &um);
		if (rc)
			fail_msg("\"%s\": %s", good[i].text, pl_error_message());
		assert_int_equal(um, good[i].um);
	}
	static const struct {
		const char *text, *msg;
	} bad[] = {
	    {"0.2501", "more than 3 decimals"},
	    {"0.0005", "more than 3 decimals"},
	    {"-1", "negative"},
	    {"-0", "negative"},
	    {"10.001", "above 10 mm"},
	    {"99999999999999999999", "above 10 mm"},
	    {"", "not a depth"},
	    {".", "not a depth"},
	    {"1.2.3", "not a depth"},
	    {"1,5", "not a depth"},
	    {"nan", "not a depth"},
	    {"inf", "not a depth"},
	    {"1e3", "not a depth"},
	    {"+1", "not a depth"},
	    {"1.5mm", "not a depth"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint32_t um = 777;
		assert_int_equal(pl_depth_parse_mm(bad[i].text, &um), PL_ERR_PARSE);
		assert_int_equal(um, 777);
		if (!strstr(pl_error_message(), bad[i].msg))
			fail_msg("\"%s\": \"%s\" lacks \"%s\"", bad[i].text,
			         pl_error_message(), bad[i].msg);
	}
	assert_int_equal(pl_depth_parse_mm(NULL, NULL), PL_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_depths),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_lone_surrogate),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_structure_errors),
	    cmocka_unit_test(test_parse_depth_mm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
