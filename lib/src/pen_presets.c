/* Area names and the preset set on the pen: read, write, verify. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "internal.h"
#include "penlink_test.h"
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

/* A pen's set, its names measured on the wire: a name holding a NUL is the
 * pen's protocol error, not a shorter name (see pl_pen_get_presets). */
static int set_from_reply(const struct pl_pen *pen, const Pl__Envelope *rep,
                          struct pl_preset_set *out)
{
	char who[300];
	snprintf(who, sizeof who, "the pen on %s", pl_transport_name(pen->t));
	size_t len;
	const uint8_t *wire = pl__engine_reply_wire(pen->e, &len);
	return pl__preset_set_from_reply(rep, wire, len, who, out);
}

/* ------------------------------------------------------------------ read */

struct get_op {
	struct pl__op base;
	struct pl_preset_set *out;
};

static void get_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	if (!status)
		status = set_from_reply(op->pen, rep, ((struct get_op *)op)->out);
	pl__op_finish(op, status);
}

int pl_pen_get_presets_async(struct pl_pen *pen, struct pl_preset_set *out,
                         pl_done_fn done, void *ud)
{
	struct get_op *g;
	int rc = pl__op_new(pen, sizeof *g, done, ud, &g);
	if (rc || pl__op_refused(&g->base))
		return rc;
	if (!out) {
		pl__op_finish(&g->base, pl__fail(PL_ERR_ARG, "pl_pen_get_presets: missing result"));
		return PL_OK;
	}
	g->out = out;
	pl__op_send_query(&g->base, PL__ENVELOPE__BODY_GET_PRESETS, get_step);
	return PL_OK;
}

int pl_pen_get_presets(struct pl_pen *pen, struct pl_preset_set *out)
{
	PL__BLOCKING(pen, "pl_pen_get_presets",
	             pl_pen_get_presets_async(pen, out, PL__WAITER));
}

/* ------------------------------------------------------------------ write */

/*
 * Writing is: the pen's limits (GetInfo, unless cached), host-side
 * validation, PutPresets, then GetPresets to compare.  On a revision
 * conflict one more GetPresets names the pen's current revision.
 */
struct put_op {
	struct pl__op base;
	struct pl_preset_set set;   /* a copy: the caller's may change meanwhile */
	struct pl_preset_set back;  /* as read back */
	struct pl_preset_set *result;
	char pen_msg[PL__MSG_MAX];  /* the pen's words on a conflict */
};

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

static void readback_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct put_op *p = (struct put_op *)op;
	if (!status)
		status = set_from_reply(op->pen, rep, &p->back);
	if (!status)
		status = verify(&p->set, &p->back);
	if (!status && p->result)
		*p->result = p->back;
	pl__op_finish(op, status);
}

/* Names both revisions so the technician knows to re-read; the pen's own
 * words if the current set cannot be read. */
static void conflict_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct put_op *p = (struct put_op *)op;
	if (!status && set_from_reply(op->pen, rep, &p->back) == PL_OK)
		pl__fail(PL_ERR_CONFLICT,
		         "the presets on the pen changed since they were read "
		         "(revision %u, now %u); read them again",
		         p->set.revision, p->back.revision);
	else
		pl__fail(PL_ERR_CONFLICT, "%s", p->pen_msg);
	pl__op_finish(op, PL_ERR_CONFLICT);
}

static void put_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct put_op *p = (struct put_op *)op;
	(void)rep;
	if (status == PL_ERR_CONFLICT) {
		snprintf(p->pen_msg, sizeof p->pen_msg, "%s", pl_error_message());
		if (pl__op_submit_query(op, PL__ENVELOPE__BODY_GET_PRESETS,
		                        conflict_step))
			conflict_step(op, PL_ERR_CONFLICT, NULL);
		return;
	}
	if (status) {
		pl__op_finish(op, status);
		return;
	}
	pl__op_send_query(op, PL__ENVELOPE__BODY_GET_PRESETS, readback_step);
}

static void send_put(struct put_op *p)
{
	struct pl__preset_set_pb w;
	pl__preset_set_to_pb(&p->set, &w);
	Pl__PutPresets pp = PL__PUT_PRESETS__INIT;
	pp.expected_revision = w.set.revision;
	pp.n_presets = w.set.n_presets;
	pp.presets = w.set.presets;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_PUT_PRESETS;
	req.put_presets = &pp;
	pl__op_send(&p->base, &req, PL__ENVELOPE__BODY_PRESET_SET, put_step);
}

/* Validates against the pen's cached limits, then writes. */
static void validate_and_put(struct put_op *p)
{
	int rc = pl_preset_set_validate(&p->base.pen->info, &p->set);
	if (rc)
		pl__op_finish(&p->base, rc);
	else
		send_put(p);
}

static void limits_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	if (status) {
		pl__op_finish(op, status);
		return;
	}
	pl__pen_store_info(op->pen, rep->device_info);
	validate_and_put((struct put_op *)op);
}

static int put_async(struct pl_pen *pen, const struct pl_preset_set *set,
                     struct pl_preset_set *result, bool checked,
                     const char *fn, pl_done_fn done, void *ud)
{
	struct put_op *p;
	int rc = pl__op_new(pen, sizeof *p, done, ud, &p);
	if (rc || pl__op_refused(&p->base))
		return rc;
	if (!set) {
		pl__op_finish(&p->base, pl__fail(PL_ERR_ARG, "%s: missing presets", fn));
		return PL_OK;
	}
	/* Checked sets get the validator's words for this. */
	if (!checked && set->count > PL_MAX_PRESETS) {
		pl__op_finish(&p->base, pl__fail(PL_ERR_ARG, "%zu presets; a set holds at most %d",
		                                 set->count, PL_MAX_PRESETS));
		return PL_OK;
	}
	p->set = *set;
	p->result = result;
	if (!checked) {
		send_put(p);
	} else if (pen->have_info) {
		validate_and_put(p);
	} else {
		pl__op_send_query(&p->base, PL__ENVELOPE__BODY_GET_INFO, limits_step);
	}
	return PL_OK;
}

int pl_pen_put_presets_async(struct pl_pen *pen, const struct pl_preset_set *set,
                         struct pl_preset_set *result, pl_done_fn done,
                         void *ud)
{
	return put_async(pen, set, result, true, "pl_pen_put_presets", done, ud);
}

int pl_pen_put_presets(struct pl_pen *pen, const struct pl_preset_set *set,
                   struct pl_preset_set *result)
{
	PL__BLOCKING(pen, "pl_pen_put_presets",
	             put_async(pen, set, result, true, "pl_pen_put_presets", PL__WAITER));
}

int pl_pen_put_presets_unchecked(struct pl_pen *pen,
                             const struct pl_preset_set *set,
                             struct pl_preset_set *result)
{
	PL__BLOCKING(pen, "pl_pen_put_presets_unchecked",
	             put_async(pen, set, result, false, "pl_pen_put_presets_unchecked", PL__WAITER));
}
