/*
 * fuzz_preset_json: preset-set files (lib/src/preset_json.c, penctl preset
 * push FILE) and the checks that run on what they hold (validate.c).
 *
 * Input: the file's text.  Invariants:
 *  - a refused file is PL_ERR_PARSE with a message;
 *  - an accepted set has at most PL_MAX_PRESETS presets with NUL-terminated,
 *    non-empty names of valid UTF-8, ids 1..64, depths within 10 mm;
 *  - pl_preset_set_to_json() of it parses back to the same set (an area
 *    left unspecified comes back as "other", the file format's default);
 *  - validation against two pens' limits either passes or says why;
 *  - depth and area text: what parses, printed again, parses to the same.
 */
#include "fuzz_common.h"

#include "internal.h"
#include "penlink.h"

#define MAX_TEXT (1u << 16)

static void limits_fake(struct pl_device_info *l)
{
	/* The unit tests' pen (tests/unit/support/fake_pen.c). */
	memset(l, 0, sizeof *l);
	l->depth_min_um = 250;
	l->depth_max_um = 2500;
	l->depth_step_um = 250;
	l->speed_levels = 6;
	l->slow_lock_depth_um = 2000;
	l->max_presets = 16;
}

static void limits_wide(struct pl_device_info *l)
{
	/* Everything a file can hold passes, so the round trip sees it all. */
	memset(l, 0, sizeof *l);
	l->depth_max_um = 10000;
	l->depth_step_um = 0;
	l->speed_levels = 16;
	l->max_presets = PL_MAX_PRESETS;
}

static void check_set_sane(const struct pl_preset_set *s)
{
	FUZZ_CHECK(s->count <= PL_MAX_PRESETS, "%zu presets", s->count);
	FUZZ_CHECK(s->revision == 0, "revision %u from a file", s->revision);
	for (size_t i = 0; i < s->count; i++) {
		const struct pl_preset *p = &s->presets[i];
		size_t n = fuzz_strnlen(p->name, sizeof p->name);
		FUZZ_CHECK(n > 0 && n <= PL_PRESET_NAME_MAX,
		           "presets[%zu]: name of %zu bytes", i, n);
		FUZZ_CHECK(pl_text_utf8_valid(p->name, n), "presets[%zu]: name not UTF-8", i);
		FUZZ_CHECK(p->id >= 1 && p->id <= PL_MAX_PRESETS, "presets[%zu]: id %u",
		           i, p->id);
		FUZZ_CHECK(p->depth_um <= 10000, "presets[%zu]: depth %u um", i,
		           p->depth_um);
		FUZZ_CHECK(p->speed_level >= 1 && p->speed_level <= 16,
		           "presets[%zu]: speed %u", i, p->speed_level);
		FUZZ_CHECK((int)p->area >= 0 && p->area < PL_AREA_COUNT,
		           "presets[%zu]: area %d", i, (int)p->area);
	}
}

static void check_roundtrip(const struct pl_preset_set *a)
{
	struct pl_preset_set *b = malloc(sizeof *b);
	char *text = pl_preset_set_to_json(a);
	int rc;

	FUZZ_CHECK(b != NULL, "out of memory");
	FUZZ_CHECK(text != NULL, "to_json failed: %s", pl_error_message());
	rc = pl_preset_set_from_json(text, b);
	FUZZ_CHECK(rc == PL_OK, "our own JSON does not parse back: %s\n%s",
	           pl_error_message(), text);
	FUZZ_CHECK(b->count == a->count, "%zu presets became %zu", a->count,
	           b->count);
	for (size_t i = 0; i < a->count; i++) {
		const struct pl_preset *x = &a->presets[i], *y = &b->presets[i];
		enum pl_area want =
		    x->area == PL_AREA_UNSPECIFIED ? PL_AREA_OTHER : x->area;
		FUZZ_CHECK(x->id == y->id && !strcmp(x->name, y->name) &&
		               x->depth_um == y->depth_um &&
		               x->speed_level == y->speed_level && want == y->area &&
		               x->needle_count == y->needle_count &&
		               x->max_duration_s == y->max_duration_s,
		           "presets[%zu] changed in the round trip:\n%s", i, text);
	}
	free(text);
	free(b);
}

static void check_validation(const struct pl_device_info *l,
                             const struct pl_preset_set *s)
{
	int rc = pl_preset_set_validate(l, s);
	FUZZ_CHECK(rc == PL_OK || rc == PL_ERR_VALIDATION, "validation returned %d",
	           rc);
	if (rc)
		FUZZ_CHECK(pl_error_message()[0] != '\0',
		           "refused without a message");
	for (size_t i = 0; i < s->count; i++) {
		rc = pl_preset_validate(l, &s->presets[i]);
		FUZZ_CHECK(rc == PL_OK || rc == PL_ERR_VALIDATION,
		           "presets[%zu]: validation returned %d", i, rc);
	}
}

/* Depth and area names as penctl's options take them. */
static void check_words(const char *text)
{
	uint32_t um = 0, again = 0;
	char buf[24];
	int a;

	if (pl_depth_parse_mm(text, &um) == PL_OK) {
		FUZZ_CHECK(um <= 10000, "depth \"%s\" parsed to %u um", text, um);
		pl_depth_format_mm(um, PL_MM_FIXED, buf);
		FUZZ_CHECK(pl_depth_parse_mm(buf, &again) == PL_OK && again == um,
		           "%u um printed as \"%s\" parses to %u", um, buf, again);
	}
	a = pl_area_from_name(text);
	if (a >= 0) {
		const char *name = pl_area_name((enum pl_area)a);
		FUZZ_CHECK(name != NULL, "area %d has no name", a);
		FUZZ_CHECK(pl_area_from_name(name) == a, "area \"%s\" does not map "
		           "back to %d", name, a);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_preset_set *set;
	struct pl_device_info fake, wide;
	char *text;
	int rc;

	if (size > MAX_TEXT)
		return 0;
	text = malloc(size + 1);
	set = malloc(sizeof *set);
	FUZZ_CHECK(text && set, "out of memory");
	memcpy(text, data, size);
	text[size] = '\0';

	rc = pl_preset_set_from_json(text, set);
	if (rc != PL_OK) {
		FUZZ_CHECK(rc == PL_ERR_PARSE, "from_json returned %d", rc);
		FUZZ_CHECK(pl_error_message()[0] != '\0',
		           "refused without a message");
	} else {
		check_set_sane(set);
		check_roundtrip(set);
		limits_fake(&fake);
		limits_wide(&wide);
		check_validation(&fake, set);
		check_validation(&wide, set);
	}
	check_words(text);
	free(text);
	free(set);
	return 0;
}
