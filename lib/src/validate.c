/* Preset checks against a pen's advertised limits, with messages in the
 * units a technician uses (millimetres, speed levels). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "validate.h"

bool pl__utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned cp, min;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false; /* continuation byte, C0/C1 overlong lead, > U+10FFFF */
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* Bytes of the well-formed UTF-8 sequence at s (at most left bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	unsigned c = s[0];
	size_t n;
	unsigned cp, min;

	if (c > 0 && c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 1, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (left - 1 < n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

char *pl__utf8_sanitize(const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t len = strlen((const char *)s), o = 0;
	/* Each bad byte grows to the 3 bytes of U+FFFD. */
	char *out = malloc(3 * len + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(s + i, len - i);
		if (n) {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

const char *pl__fmt_mm(char *buf, uint32_t um)
{
	unsigned whole = um / 1000, frac = um % 1000;
	if (frac % 10)
		snprintf(buf, 24, "%u.%03u", whole, frac);
	else
		snprintf(buf, 24, "%u.%02u", whole, frac / 10);
	return buf;
}

/* "preset 2 \"Cheek\"", or just "preset 2" when the name itself is bad. */
static const char *who(char *buf, size_t cap, const struct pl_preset *p)
{
	size_t n = strnlen(p->name, sizeof p->name);
	if (n && n <= PL_PRESET_NAME_MAX && pl__utf8_valid(p->name, n))
		snprintf(buf, cap, "preset %u \"%s\"", p->id, p->name);
	else
		snprintf(buf, cap, "preset %u", p->id);
	return buf;
}

static int check_depth(const struct pl_device_info *l, const struct pl_preset *p,
                       const char *w)
{
	char a[24], b[24], c[24];
	if (p->depth_um > l->depth_max_um)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: depth %s mm is above this pen's maximum of %s mm", w,
		                pl__fmt_mm(a, p->depth_um), pl__fmt_mm(b, l->depth_max_um));
	if (p->depth_um < l->depth_min_um)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: depth %s mm is below this pen's minimum of %s mm", w,
		                pl__fmt_mm(a, p->depth_um), pl__fmt_mm(b, l->depth_min_um));
	uint32_t step = l->depth_step_um;
	if (step && (p->depth_um - l->depth_min_um) % step) {
		if (l->depth_min_um % step == 0)
			return pl__fail(PL_ERR_VALIDATION,
			                "%s: depth %s mm is not a multiple of the %s mm step", w,
			                pl__fmt_mm(a, p->depth_um), pl__fmt_mm(b, step));
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: depth %s mm is not on the %s mm steps counted from %s mm",
		                w, pl__fmt_mm(a, p->depth_um), pl__fmt_mm(b, step),
		                pl__fmt_mm(c, l->depth_min_um));
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
		                w, pl__fmt_mm(a, p->depth_um),
		                pl__fmt_mm(b, l->slow_lock_depth_um),
		                pl__fmt_mm(b, l->slow_lock_depth_um), p->speed_level);
	return PL_OK;
}

static int check_name(const struct pl_preset *p, const char *w)
{
	size_t n = strnlen(p->name, sizeof p->name);
	if (n > PL_PRESET_NAME_MAX)
		return pl__fail(PL_ERR_VALIDATION,
		                "%s: name is more than %d bytes; at most %d", w,
		                PL_PRESET_NAME_MAX, PL_PRESET_NAME_MAX);
	if (n == 0)
		return pl__fail(PL_ERR_VALIDATION, "%s: name is empty", w);
	if (!pl__utf8_valid(p->name, n))
		return pl__fail(PL_ERR_VALIDATION, "%s: name is not valid UTF-8", w);
	return PL_OK;
}

int pl_preset_validate(const struct pl_device_info *limits,
                       const struct pl_preset *p)
{
	if (!limits || !p)
		return pl__fail(PL_ERR_ARG, "pl_preset_validate: missing argument");
	char w[64];
	who(w, sizeof w, p);
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
