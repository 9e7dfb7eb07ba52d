/* Preset validation against a pen's limits, and area names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "penlink.h"

static struct pl_device_info limits(void)
{
	struct pl_device_info l = {0};
	l.depth_min_um = 250;
	l.depth_max_um = 2500;
	l.depth_step_um = 250;
	l.speed_levels = 5;
	l.slow_lock_depth_um = 1500;
	l.max_presets = 16;
	return l;
}

static struct pl_preset preset(uint32_t depth, uint32_t speed)
{
	struct pl_preset p = {.id = 2, .name = "Cheek", .depth_um = depth,
	                      .speed_level = speed, .area = PL_AREA_CHEEK,
	                      .needle_count = 12};
	return p;
}

static void expect_ok(const struct pl_preset *p)
{
	struct pl_device_info l = limits();
	int rc = pl_preset_validate(&l, p);
	if (rc)
		fail_msg("refused: %s", pl_error_message());
}

static void expect_refused(const struct pl_preset *p, const char *msg)
{
	struct pl_device_info l = limits();
	assert_int_equal(pl_preset_validate(&l, p), PL_ERR_VALIDATION);
	if (!strstr(pl_error_message(), msg))
		fail_msg("message \"%s\" lacks \"%s\"", pl_error_message(), msg);
}

static void test_depth(void **state)
{
	(void)state;
	struct pl_preset p = preset(250, 1);
	expect_ok(&p); /* depth_min */
	p = preset(2500, 1);
	expect_ok(&p); /* depth_max */
	p = preset(750, 3);
	expect_ok(&p); /* on the step */
	p = preset(2750, 1);
	expect_refused(&p, "preset 2 \"Cheek\": depth 2.75 mm is above this pen's maximum of 2.50 mm");
	p = preset(2600, 1);
	expect_refused(&p, "preset 2 \"Cheek\": depth 2.60 mm is above this pen's maximum of 2.50 mm");
	p = preset(0, 1);
	expect_refused(&p, "depth 0.00 mm is below this pen's minimum of 0.25 mm");
	p = preset(249, 1);
	expect_refused(&p, "depth 0.249 mm is below this pen's minimum of 0.25 mm");
	p = preset(300, 1);
	expect_refused(&p, "preset 2 \"Cheek\": depth 0.30 mm is not a multiple of the 0.25 mm step");
	p = preset(251, 1);
	expect_refused(&p, "depth 0.251 mm is not a multiple of the 0.25 mm step");
}

static void test_depth_step_from_min(void **state)
{
	(void)state;
	struct pl_device_info l = limits();
	l.depth_min_um = 100;
	l.depth_step_um = 250;
	struct pl_preset p = preset(350, 1);
	assert_int_equal(pl_preset_validate(&l, &p), PL_OK);
	p.depth_um = 250;
	assert_int_equal(pl_preset_validate(&l, &p), PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(),
	                       "depth 0.25 mm is not on the 0.25 mm steps counted from 0.10 mm"));
	/* A pen without a step accepts any depth in range. */
	l.depth_step_um = 0;
	p.depth_um = 1234;
	assert_int_equal(pl_preset_validate(&l, &p), PL_OK);
}

static void test_speed(void **state)
{
	(void)state;
	struct pl_preset p = preset(500, 5);
	expect_ok(&p);
	p = preset(500, 6);
	expect_refused(&p, "preset 2 \"Cheek\": speed level 6 is above this pen's 5 levels");
	p = preset(500, 0);
	expect_refused(&p, "speed level 0 is invalid; levels run from 1 to 5");
}

static void test_slow_lock(void **state)
{
	(void)state;
	struct pl_preset p = preset(1250, 5);
	expect_ok(&p); /* just below the lock */
	p = preset(1500, 1);
	expect_ok(&p); /* at the lock, slowest level */
	p = preset(1500, 2);
	expect_refused(&p, "preset 2 \"Cheek\": depth 1.50 mm: at 1.50 mm and deeper only "
	                   "speed level 1 is allowed (slow lock from 1.50 mm); got level 2");
	p = preset(2500, 3);
	expect_refused(&p, "(slow lock from 1.50 mm); got level 3");
	/* No slow lock advertised: no restriction. */
	struct pl_device_info l = limits();
	l.slow_lock_depth_um = 0;
	p = preset(2500, 5);
	assert_int_equal(pl_preset_validate(&l, &p), PL_OK);
}

static void set_name(struct pl_preset *p, const char *bytes, size_t len)
{
	memset(p->name, 0, sizeof p->name);
	memcpy(p->name, bytes, len);
}

static void test_names(void **state)
{
	(void)state;
	struct pl_preset p = preset(500, 1);
	set_name(&p, "abcdefghijklmnopqrstuvwxyz012345", 32);
	expect_ok(&p);
	/* 16 x "é" = 32 bytes of UTF-8, 16 characters. */
	char e16[33] = {0};
	for (int i = 0; i < 16; i++)
		memcpy(e16 + 2 * i, "\xc3\xa9", 2);
	set_name(&p, e16, 32);
	expect_ok(&p);
	/* 4-byte sequences, U+10FFFF. */
	set_name(&p, "\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", 9);
	expect_ok(&p);

	/* 33 bytes: the struct holds no terminator. */
	memset(p.name, 'a', sizeof p.name);
	expect_refused(&p, "preset 2: name is more than 32 bytes; at most 32");
	set_name(&p, "", 0);
	expect_refused(&p, "preset 2: name is empty");

	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
	    {"\x80", 1},                  /* lone continuation */
	    {"ab\xc3", 3},                /* truncated 2-byte */
	    {"\xe2\x82", 2},              /* truncated 3-byte */
	    {"\xf0\x9f\x98", 3},          /* truncated 4-byte */
	    {"\xc0\xaf", 2},              /* overlong '/' */
	    {"\xc1\xbf", 2},              /* overlong */
	    {"\xe0\x80\xaf", 3},          /* overlong 3-byte */
	    {"\xf0\x80\x80\xaf", 4},      /* overlong 4-byte */
	    {"\xed\xa0\x80", 3},          /* surrogate U+D800 */
	    {"\xed\xbf\xbf", 3},          /* surrogate U+DFFF */
	    {"\xf4\x90\x80\x80", 4},      /* U+110000 */
	    {"\xf5\x80\x80\x80", 4},      /* lead byte beyond Unicode */
	    {"\xff", 1},
	    {"a\xc3(", 3},                /* bad continuation */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		set_name(&p, bad[i].s, bad[i].len);
		expect_refused(&p, "preset 2: name is not valid UTF-8");
	}
}

static void test_area(void **state)
{
	(void)state;
	struct pl_preset p = preset(500, 1);
	p.area = PL_AREA_OTHER;
	expect_ok(&p);
	/* The pen refuses an unset area, so the host does too. */
	p.area = PL_AREA_UNSPECIFIED;
	expect_refused(&p, "preset 2 \"Cheek\": no treatment area set");
	p.area = (enum pl_area)99;
	expect_refused(&p, "preset 2 \"Cheek\": unknown area 99");
	p.area = PL_AREA_COUNT;
	expect_refused(&p, "unknown area 15");
}

static void test_set(void **state)
{
	(void)state;
	struct pl_device_info l = limits();
	struct pl_preset_set s = {.count = 3};
	for (int i = 0; i < 3; i++) {
		s.presets[i] = preset(500, 2);
		s.presets[i].id = (uint32_t)i + 1;
	}
	assert_int_equal(pl_preset_set_validate(&l, &s), PL_OK);

	s.presets[2].id = 1;
	assert_int_equal(pl_preset_set_validate(&l, &s), PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(),
	                       "preset id 1 appears twice (presets[0] and presets[2])"));
	s.presets[2].id = 0;
	assert_int_equal(pl_preset_set_validate(&l, &s), PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(),
	                       "presets[2]: id 0 is invalid; ids run from 1 to 16"));
	s.presets[2].id = 16;
	assert_int_equal(pl_preset_set_validate(&l, &s), PL_OK);
	s.presets[2].id = 17;
	assert_int_equal(pl_preset_set_validate(&l, &s), PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(),
	                       "presets[2]: id 17 is above this pen's maximum of 16"));
	s.presets[2].id = 3;
	s.presets[1].depth_um = 2600;
	assert_int_equal(pl_preset_set_validate(&l, &s), PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(), "depth 2.60 mm"));

	struct pl_preset_set big = {.count = 17};
	for (int i = 0; i < 17; i++) {
		big.presets[i] = preset(500, 2);
		big.presets[i].id = (uint32_t)i + 1;
	}
	assert_int_equal(pl_preset_set_validate(&l, &big), PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(), "17 presets; this pen holds at most 16"));
	big.count = 1000; /* garbage count never reads past the array */
	assert_int_equal(pl_preset_set_validate(&l, &big), PL_ERR_VALIDATION);

	struct pl_preset_set empty = {0};
	assert_int_equal(pl_preset_set_validate(&l, &empty), PL_OK);
	assert_int_equal(pl_preset_set_validate(NULL, &empty), PL_ERR_ARG);
}

static void test_area_names(void **state)
{
	(void)state;
	static const char *const names[] = {
	    "forehead", "glabella", "periorbital", "nose", "cheek", "cheekbone",
	    "perioral", "chin-jaw", "neck", "decollete", "scalp", "stretch-marks",
	    "body-scar", "other"};
	for (int a = PL_AREA_FOREHEAD; a < PL_AREA_COUNT; a++) {
		assert_string_equal(pl_area_name((enum pl_area)a), names[a - 1]);
		assert_int_equal(pl_area_from_name(names[a - 1]), a);
	}
	assert_null(pl_area_name((enum pl_area)99));
	assert_int_equal(pl_area_from_name("Chin_Jaw"), PL_AREA_CHIN_JAW);
	assert_int_equal(pl_area_from_name("chin/jaw"), PL_AREA_CHIN_JAW);
	assert_int_equal(pl_area_from_name("STRETCH MARKS"), PL_AREA_STRETCH_MARKS);
	assert_int_equal(pl_area_from_name("body_scar"), PL_AREA_BODY_SCAR);
	assert_int_equal(pl_area_from_name("d\xc3\xa9" "collet\xc3\xa9"), PL_AREA_DECOLLETE);
	assert_int_equal(pl_area_from_name("D\xc3\x89" "COLLET\xc3\x89"), PL_AREA_DECOLLETE);
	assert_int_equal(pl_area_from_name("decollet\xc3\xa9"), PL_AREA_DECOLLETE);
	assert_int_equal(pl_area_from_name("bogus"), PL_ERR_ARG);
	assert_non_null(strstr(pl_error_message(), "unknown area \"bogus\""));
	assert_int_equal(pl_area_from_name(""), PL_ERR_ARG);
	assert_int_equal(pl_area_from_name("chee\xc3\xa0k"), PL_ERR_ARG);
	char longname[200];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	assert_int_equal(pl_area_from_name(longname), PL_ERR_ARG);
	assert_int_equal(pl_area_from_name(NULL), PL_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_depth_step_from_min),
	    cmocka_unit_test(test_speed),
	    cmocka_unit_test(test_slow_lock),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_area),
	    cmocka_unit_test(test_set),
	    cmocka_unit_test(test_area_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
