/* Preset checks against a pen's advertised limits, with messages in the
 * units a technician uses (millimetres, speed levels). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

/* A name is quoted in messages only once it is text; even then it is
 * cleaned, since a message reaches terminals, logs and JSON. */
const char *pl__preset_who(char *buf, size_t cap, const struct pl_preset *p)
{
	size_t n = strnlen(p->name, sizeof p->name);
	char shown[4 * PL_PRESET_NAME_MAX + 1];
	if (n && n <= PL_PRESET_NAME_MAX && pl_text_utf8_valid(p->name, n)) {
		pl_text_clean(PL_TEXT_TERMINAL, p->name, shown, sizeof shown);
		snprintf(buf, cap, "preset %u \"%s\"", p->id, shown);
	} else {
		snprintf(buf, cap, "preset %u", p->id);
	}
	return buf;
}

static int check_depth(const struct pl_device_info *l, const struct pl_preset *p,
                       const char *w)
{
	char a[24], b[24], c[24];
	if (p->depth_um > l->depth_max_um)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: depth %s mm is above this pen's maximum of %s mm", w,
		                pl_depth_format_mm(p->depth_um, PL_MM_FIXED, a), pl_depth_format_mm(l->depth_max_um, PL_MM_FIXED, b));
	if (p->depth_um < l->depth_min_um)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: depth %s mm is below this pen's minimum of %s mm", w,
		                pl_depth_format_mm(p->depth_um, PL_MM_FIXED, a), pl_depth_format_mm(l->depth_min_um, PL_MM_FIXED, b));
	uint32_t step = l->depth_step_um;
	if (step && (p->depth_um - l->depth_min_um) % step) {
		if (l->depth_min_um % step == 0)
			return pl__fail(PL_ERR_VALIDATION,
			                "%s: depth %s mm is not a multiple of the %s mm step", w,
			                pl_depth_format_mm(p->depth_um, PL_MM_FIXED, a), pl_depth_format_mm(step, PL_MM_FIXED, b));
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: depth %s mm is not on the %s mm steps counted from %s mm",
		                w, pl_depth_format_mm(p->depth_um, PL_MM_FIXED, a), pl_depth_format_mm(step, PL_MM_FIXED, b),
		                pl_depth_format_mm(l->depth_min_um, PL_MM_FIXED, c));
	}
	return PL_OK;
}

static int check_speed(const struct pl_device_info *l, const struct pl_preset *p,
                       const char *w)
{
	char a[24], b[24];
	if (p->speed_level == 0)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: speed level 0 is invalid; levels run from 1 to %u", w,
		                l->speed_levels);
	if (p->speed_level > l->speed_levels)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: speed level %u is above this pen's %u levels", w,
		                p->speed_level, l->speed_levels);
	/* slow_lock_depth_um 0 means the pen has no slow lock. */
	if (l->slow_lock_depth_um && p->depth_um >= l->slow_lock_depth_um &&
	    p->speed_level > 1)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: depth %s mm: at %s mm and deeper only speed level 1 "
		                "is allowed (slow lock from %s mm); got level %u",
		                w, pl_depth_format_mm(p->depth_um, PL_MM_FIXED, a),
		                pl_depth_format_mm(l->slow_lock_depth_um, PL_MM_FIXED, b),
		                pl_depth_format_mm(l->slow_lock_depth_um, PL_MM_FIXED, b), p->speed_level);
	return PL_OK;
}

int pl__preset_name_check(const char *name, size_t len, const char *w)
{
	if (len > PL_PRESET_NAME_MAX)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: name is more than %d bytes; at most %d", w,
		                PL_PRESET_NAME_MAX, PL_PRESET_NAME_MAX);
	if (len == 0)
		return pl__fail(PL_ERR_VALIDATION, "%s: name is empty", w);
	const char *nul = memchr(name, '\0', len);
	if (nul)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: name holds a NUL byte at byte %td; names are "
		                "text", w, nul - name);
	if (!pl_text_utf8_valid(name, len))
		return pl__fail(PL_ERR_VALIDATION, "%s: name is not valid UTF-8", w);
	/* Strict UTF-8 by now: C0 and DEL are single bytes, C1 is U+0080 to
	 * U+009F, the two bytes C2 80 to C2 9F. */
	const unsigned char *s = (const unsigned char *)name;
	for (size_t i = 0; i < len; i++) {
		unsigned cp = s[i];
		if (s[i] == 0xc2 && i + 1 < len && s[i + 1] <= 0x9f)
			cp = s[i + 1];
		else if (s[i] >= 0x80)
			continue;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return pl__fail(PL_ERR_VALIDATION,
			                "%s: name holds the control character U+%04X "
			                "at byte %zu; names are printable text",
			                w, cp, i);
	}
	return PL_OK;
}

/* The struct's name goes on the wire as its strnlen bytes
 * (pl__preset_set_to_pb), so that is the length checked. */
static int check_name(const struct pl_preset *p, const char *w)
{
	return pl__preset_name_check(p->name, strnlen(p->name, sizeof p->name), w);
}

int pl_preset_validate(const struct pl_device_info *limits,
                       const struct pl_preset *p)
{
	if (!limits || !p)
		return pl__fail(PL_ERR_ARG, "pl_preset_validate: missing argument");
	char w[4 * PL_PRESET_NAME_MAX + 32];
	pl__preset_who(w, sizeof w, p);
	int rc = check_name(p, w);
	/* The pen refuses "unspecified" too: every treatment record names its
	 * area, and "other" exists for the ones the list does not cover. */
	if (!rc && p->area == PL_AREA_UNSPECIFIED)
		rc = pl__fail(PL_ERR_VALIDATION, "%s: no treatment area set "
		              "(use \"other\" if none of the named areas fits)", w);
	if (!rc && ((int)p->area < 0 || p->area >= PL_AREA_COUNT))
		rc = pl__fail(PL_ERR_VALIDATION, "%s: unknown area %d", w, (int)p->area);
	if (!rc)
		rc = check_depth(limits, p, w);
	if (!rc)
		rc = check_speed(limits, p, w);
	return rc;
}

int pl_preset_set_validate(const struct pl_device_info *limits,
                           const struct pl_preset_set *set)
{
	if (!limits || !set)
		return pl__fail(PL_ERR_ARG, "pl_preset_set_validate: missing argument");
	uint32_t max = limits->max_presets;
	if (set->count > max || set->count > PL_MAX_PRESETS)
		return pl__fail(PL_ERR_VALIDATION,
		                "%zu presets; this pen holds at most %u", set->count,
		                max < PL_MAX_PRESETS ? max : PL_MAX_PRESETS);
	for (size_t i = 0; i < set->count; i++) {
		const struct pl_preset *p = &set->presets[i];
		if (p->id == 0)
			return pl__fail(PL_ERR_VALIDATION,
			                "presets[%zu]: id 0 is invalid; ids run from 1 to %u",
			                i, max);
		if (p->id > max)
			return pl__fail(PL_ERR_VALIDATION,
			                "presets[%zu]: id %u is above this pen's maximum of %u",
			                i, p->id, max);
		for (size_t j = 0; j < i; j++)
			if (set->presets[j].id == p->id)
				return pl__fail(PL_ERR_VALIDATION,
				                "preset id %u appears twice (presets[%zu] and "
				                "presets[%zu])",
				                p->id, j, i);
		int rc = pl_preset_validate(limits, p);
		if (rc)
			return rc;
	}
	return PL_OK;
}
