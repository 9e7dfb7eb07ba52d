/* What a preset push changes (pl_preset_set_diff), the --replace rule
 * (pl_preset_diff_check_removals), and that the policy reads the same
 * "added or depth changed" rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "penlink.h"

static struct pl_preset preset(uint32_t id, const char *name, uint32_t depth)
{
	struct pl_preset p = {0};
	p.id = id;
	snprintf(p.name, sizeof p.name, "%s", name);
	p.depth_um = depth;
	p.speed_level = 3;
	p.area = PL_AREA_FOREHEAD;
	p.needle_count = 12;
	p.max_duration_s = 600;
	return p;
}

static struct pl_preset_set *three(void)
{
	struct pl_preset_set *s = calloc(1, sizeof *s);
	s->revision = 7;
	s->count = 3;
	s->presets[0] = preset(1, "Forehead", 500);
	s->presets[1] = preset(2, "Cheek", 1000);
	s->presets[2] = preset(3, "Scar deep", 2000);
	return s;
}

static void test_fields_added_removed(void **state)
{
	(void)state;
	struct pl_preset_set *old = three(), *next = three();
	struct pl_preset_diff *d = malloc(sizeof *d);
	/* 2: depth and area changed; 3 removed; 9 added (listed by id) */
	next->presets[1].depth_um = 1250;
	next->presets[1].area = PL_AREA_NECK;
	next->presets[2] = preset(9, "New", 500);
	next->revision = 99; /* revisions are not compared */
	assert_int_equal(pl_preset_set_diff(old, next, d), PL_OK);
	assert_int_equal(d->count, 3);
	assert_int_equal(d->changed, 1);
	assert_int_equal(d->added, 1);
	assert_int_equal(d->removed, 1);
	assert_int_equal(d->unchanged, 1);
	assert_int_equal(d->changes[0].id, 2);
	assert_int_equal(d->changes[0].kind, PL_PRESET_CHANGED);
	assert_int_equal(d->changes[0].fields,
	                 PL_PRESET_FIELD_DEPTH | PL_PRESET_FIELD_AREA);
	assert_int_equal(d->changes[0].before.depth_um, 1000);
	assert_int_equal(d->changes[0].after.depth_um, 1250);
	assert_int_equal(d->changes[1].id, 3);
	assert_int_equal(d->changes[1].kind, PL_PRESET_REMOVED);
	assert_string_equal(d->changes[1].before.name, "Scar deep");
	assert_int_equal(d->changes[2].id, 9);
	assert_int_equal(d->changes[2].kind, PL_PRESET_ADDED);

	assert_int_equal(pl_preset_diff_check_removals(d, false), PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "preset 3 \"Scar deep\""));
	assert_non_null(strstr(pl_error_message(), "--replace"));
	assert_int_equal(pl_preset_diff_check_removals(d, true), PL_OK);

	/* The same set: no changes, nothing to refuse. */
	assert_int_equal(pl_preset_set_diff(old, old, d), PL_OK);
	assert_int_equal(d->count, 0);
	assert_int_equal(d->unchanged, 3);
	assert_int_equal(pl_preset_diff_check_removals(d, false), PL_OK);
	free(old);
	free(next);
	free(d);
}

static void test_empty(void **state)
{
	(void)state;
	struct pl_preset_set *old = three(), *empty = calloc(1, sizeof *empty);
	struct pl_preset_diff *d = malloc(sizeof *d);
	assert_int_equal(pl_preset_set_diff(old, empty, d), PL_OK);
	assert_int_equal(d->removed, 3);
	assert_int_equal(pl_preset_diff_check_removals(d, false), PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "empties the pen's set"));
	/* NULL old: everything is added. */
	assert_int_equal(pl_preset_set_diff(NULL, old, d), PL_OK);
	assert_int_equal(d->added, 3);
	assert_int_equal(pl_preset_set_diff(old, NULL, d), PL_ERR_ARG);
	free(old);
	free(empty);
	free(d);
}

/* The policy counts a preset as new exactly when the diff adds it or
 * changes its depth: a deep preset renamed needs no new confirmation. */
static void test_policy_reads_the_diff(void **state)
{
	(void)state;
	struct pl_policy *pol;
	assert_int_equal(pl_policy_new(&pol), PL_OK);
	struct pl_policy_actor who = {.user = "t"};
	struct pl_preset_set *old = three(), *next = three();
	snprintf(next->presets[2].name, sizeof next->presets[2].name, "Scar");
	assert_int_equal(pl_policy_check_push(pol, &who, old, next, false), PL_OK);
	next->presets[2].depth_um = 1750;
	assert_int_equal(pl_policy_check_push(pol, &who, old, next, false),
	                 PL_ERR_POLICY);
	pl_policy_free(pol);
	free(old);
	free(next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields_added_removed),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_policy_reads_the_diff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
