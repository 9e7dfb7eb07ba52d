/* Area names and the preset set on the pen: read, write, verify. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pen.h"

static const char *const area_names[PL_AREA_COUNT] = {
    [PL_AREA_UNSPECIFIED] = "unspecified",
    [PL_AREA_FOREHEAD] = "forehead",
    [PL_AREA_GLABELLA] = "glabella",
    [PL_AREA_PERIORBITAL] = "periorbital",
    [PL_AREA_NOSE] = "nose",
    [PL_AREA_CHEEK] = "cheek",
    [PL_AREA_CHEEKBONE] = "cheekbone",
    [PL_AREA_PERIORAL] = "perioral",
    [PL_AREA_CHIN_JAW] = "chin-jaw",
    [PL_AREA_NECK] = "neck",
    [PL_AREA_DECOLLETE] = "decollete",
    [PL_AREA_SCALP] = "scalp",
    [PL_AREA_STRETCH_MARKS] = "stretch-marks",
    [PL_AREA_BODY_SCAR] = "body-scar",
    [PL_AREA_OTHER] = "other",
};

const char *pl_area_name(enum pl_area area)
{
	if ((int)area < 0 || area >= PL_AREA_COUNT)
		return NULL;
	return area_names[area];
}

int pl_area_from_name(const char *name)
{
	if (!name)
		return pl__fail(PL_ERR_ARG, "no area name");
	/* Fold to the canonical spelling: lower case, '-' between words,
	 * and é/É (as typed by French-speaking staff) to e. */
	char norm[40];
	size_t n = 0;
	for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
		char c;
		if (s[0] == 0xc3 && (s[1] == 0xa9 || s[1] == 0x89)) {
			c = 'e';
			s++;
		} else if (*s == '_' || *s == ' ' || *s == '/' || *s == '-') {
			c = '-';
		} else if (*s < 0x80) {
			c = (char)tolower(*s);
		} else {
			n = sizeof norm; /* no area has other non-ASCII letters */
			break;
		}
		if (n >= sizeof norm - 1) {
			n = sizeof norm;
			break;
		}
		norm[n++] = c;
	}
	if (n < sizeof norm) {
		norm[n] = 0;
		for (int a = PL_AREA_FOREHEAD; a < PL_AREA_COUNT; a++)
			if (!strcmp(norm, area_names[a]))
				return a;
		if (!strcmp(norm, "unspecified"))
			return PL_AREA_UNSPECIFIED;
	}
	return pl__fail(PL_ERR_ARG,
	                "unknown area \"%.40s\"; known areas: forehead, glabella, "
	                "periorbital, nose, cheek, cheekbone, perioral, chin-jaw, "
	                "neck, decollete, scalp, stretch-marks, body-scar, other",
	                name);
}

/* ------------------------------------------------------------------ wire */

static int set_from_wire(const struct pl_pen *pen, uint32_t revision,
                         Pl__Preset **ps, size_t n, struct pl_preset_set *out)
{
	if (n > PL_MAX_PRESETS)
		return pl__fail(PL_ERR_PROTOCOL,
		                "the pen on %s sent %zu presets; at most %d are possible",
		                pl_transport_name(pen->t), n, PL_MAX_PRESETS);
	memset(out, 0, sizeof *out);
	out->revision = revision;
	out->count = n;
	for (size_t i = 0; i < n; i++) {
		const Pl__Preset *w = ps[i];
		struct pl_preset *p = &out->presets[i];
		const char *name = w->name ? w->name : "";
		if (strlen(name) > PL_PRESET_NAME_MAX)
			return pl__fail(PL_ERR_PROTOCOL,
			                "the pen on %s sent preset %u with a name of %zu "
			                "bytes; at most %d are possible",
			                pl_transport_name(pen->t), w->id, strlen(name),
			                PL_PRESET_NAME_MAX);
		p->id = w->id;
		memcpy(p->name, name, strlen(name) + 1);
		p->depth_um = w->depth_um;
		p->speed_level = w->speed_level;
		p->area = (enum pl_area)w->area;
		p->needle_count = w->needle_count;
		p->max_duration_s = w->max_duration_s;
	}
	return PL_OK;
}

int pl_get_presets(struct pl_pen *pen, struct pl_preset_set *out)
{
	if (!pen || !out)
		return pl__fail(PL_ERR_ARG, "pl_get_presets: missing pen or result");
	Pl__GetPresets gp = PL__GET_PRESETS__INIT;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_GET_PRESETS;
	req.get_presets = &gp;
	Pl__Envelope *rep = NULL;
	int rc = pl__engine_call(pen->e, &req, PL__ENVELOPE__BODY_PRESET_SET, &rep);
	if (rc)
		return rc;
	rc = set_from_wire(pen, rep->preset_set->revision,
	                   rep->preset_set->presets, rep->preset_set->n_presets, out);
	pl__envelope__free_unpacked(rep, NULL);
	return rc;
}

static int put(struct pl_pen *pen, const struct pl_preset_set *set)
{
	Pl__Preset wire[PL_MAX_PRESETS];
	Pl__Preset *ptrs[PL_MAX_PRESETS];
	/* Unvalidated sets may hold names without a terminator. */
	char names[PL_MAX_PRESETS][PL_PRESET_NAME_MAX + 2];
	for (size_t i = 0; i < set->count; i++) {
		const struct pl_preset *p = &set->presets[i];
		Pl__Preset *w = &wire[i];
		pl__preset__init(w);
		w->id = p->id;
		size_t n = strnlen(p->name, sizeof p->name);
		memcpy(names[i], p->name, n);
		names[i][n] = 0;
		w->name = names[i];
		w->depth_um = p->depth_um;
		w->speed_level = p->speed_level;
		w->area = (Pl__Area)p->area;
		w->needle_count = p->needle_count;
		w->max_duration_s = p->max_duration_s;
		ptrs[i] = w;
	}
	Pl__PutPresets pp = PL__PUT_PRESETS__INIT;
	pp.expected_revision = set->revision;
	pp.n_presets = set->count;
	pp.presets = ptrs;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_PUT_PRESETS;
	req.put_presets = &pp;
	return pl__engine_call(pen->e, &req, PL__ENVELOPE__BODY_PRESET_SET, NULL);
}

static const struct pl_preset *find(const struct pl_preset_set *s, uint32_t id)
{
	for (size_t i = 0; i < s->count; i++)
		if (s->presets[i].id == id)
			return &s->presets[i];
	return NULL;
}

/* Names the first field that differs, by preset id (a pen may store its
 * presets in another order).  Names are bounded: an unchecked set may hold
 * one without a terminator. */
static int verify(const struct pl_preset_set *want, const struct pl_preset_set *got)
{
	const char *hdr = "the presets read back differ from those written";
	for (size_t i = 0; i < want->count; i++) {
		const struct pl_preset *w = &want->presets[i];
		const struct pl_preset *g = find(got, w->id);
		int wn = (int)strnlen(w->name, sizeof w->name);
		if (!g)
			return pl__fail(PL_ERR_VERIFY, "%s: preset %u \"%.*s\" is missing",
			                hdr, w->id, wn, w->name);
		if (strncmp(w->name, g->name, sizeof w->name))
			return pl__fail(PL_ERR_VERIFY,
			                "%s: preset %u: name written \"%.*s\", read back \"%s\"",
			                hdr, w->id, wn, w->name, g->name);
#define CMP(field, label)                                                        \
	if (w->field != g->field)                                                \
		return pl__fail(PL_ERR_VERIFY,                                   \
		                "%s: preset %u \"%.*s\": " label " written %lu, read back %lu", \
		                hdr, w->id, wn, w->name, (unsigned long)w->field, \
		                (unsigned long)g->field);
		CMP(depth_um, "depth_um")
		CMP(speed_level, "speed level")
		CMP(area, "area")
		CMP(needle_count, "needle count")
		CMP(max_duration_s, "max_duration_s")
#undef CMP
	}
	if (got->count != want->count)
		return pl__fail(PL_ERR_VERIFY, "%s: %zu written, %zu read back", hdr,
		                want->count, got->count);
	return PL_OK;
}

static int put_verified(struct pl_pen *pen, const struct pl_preset_set *set,
                        struct pl_preset_set *result)
{
	int rc = put(pen, set);
	if (rc == PL_ERR_CONFLICT) {
		/* Name both revisions so the technician knows to re-read. */
		char pen_msg[512];
		snprintf(pen_msg, sizeof pen_msg, "%s", pl_last_error_message());
		struct pl_preset_set *now = malloc(sizeof *now);
		if (now && pl_get_presets(pen, now) == PL_OK)
			rc = pl__fail(PL_ERR_CONFLICT,
			              "the presets on the pen changed since they were read "
			              "(revision %u, now %u); read them again",
			              set->revision, now->revision);
		else
			rc = pl__fail(PL_ERR_CONFLICT, "%s", pen_msg);
		free(now);
		return rc;
	}
	if (rc)
		return rc;

	struct pl_preset_set *back = malloc(sizeof *back);
	if (!back)
		return pl__fail(PL_ERR_MEM, "out of memory");
	rc = pl_get_presets(pen, back);
	if (!rc)
		rc = verify(set, back);
	if (!rc && result)
		*result = *back;
	free(back);
	return rc;
}

int pl_put_presets(struct pl_pen *pen, const struct pl_preset_set *set,
                   struct pl_preset_set *result)
{
	if (!pen || !set)
		return pl__fail(PL_ERR_ARG, "pl_put_presets: missing pen or presets");
	const struct pl_device_info *limits;
	int rc = pl__pen_limits(pen, &limits);
	if (rc)
		return rc;
	rc = pl_validate_preset_set(limits, set);
	if (rc)
		return rc;
	return put_verified(pen, set, result);
}

int pl_put_presets_unchecked(struct pl_pen *pen,
                             const struct pl_preset_set *set,
                             struct pl_preset_set *result)
{
	if (!pen || !set)
		return pl__fail(PL_ERR_ARG, "pl_put_presets_unchecked: missing pen or presets");
	if (set->count > PL_MAX_PRESETS)
		return pl__fail(PL_ERR_ARG, "%zu presets; a set holds at most %d",
		                set->count, PL_MAX_PRESETS);
	return put_verified(pen, set, result);
}
