/* What a preset push changes (pl_preset_set_diff) and the rule that a push
 * may remove presets only when told to (pl_preset_diff_check_removals). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preset_diff.h"
#include "validate.h"

static size_t bounded(const struct pl_preset_set *s)
{
	return s ? (s->count < PL_MAX_PRESETS ? s->count : PL_MAX_PRESETS) : 0;
}

static const struct pl_preset *find(const struct pl_preset_set *s, uint32_t id)
{
	size_t n = bounded(s);
	for (size_t i = 0; i < n; i++)
		if (s->presets[i].id == id)
			return &s->presets[i];
	return NULL;
}

/* The fields of a and b that differ.  Names compare as the bytes up to the
 * field's first NUL, as they go on the wire. */
static unsigned fields_differing(const struct pl_preset *a,
                                 const struct pl_preset *b)
{
	unsigned f = 0;
	if (strncmp(a->name, b->name, sizeof a->name) != 0)
		f |= PL_PRESET_FIELD_NAME;
	if (a->depth_um != b->depth_um)
		f |= PL_PRESET_FIELD_DEPTH;
	if (a->speed_level != b->speed_level)
		f |= PL_PRESET_FIELD_SPEED;
	if (a->area != b->area)
		f |= PL_PRESET_FIELD_AREA;
	if (a->needle_count != b->needle_count)
		f |= PL_PRESET_FIELD_NEEDLES;
	if (a->max_duration_s != b->max_duration_s)
		f |= PL_PRESET_FIELD_MAX_DURATION;
	return f;
}

unsigned pl__preset_change_of(const struct pl_preset_set *old,
                              const struct pl_preset *p)
{
	const struct pl_preset *o = find(old, p->id);
	return o ? fields_differing(o, p) : PL__PRESET_NEW;
}

static int by_id(const void *a, const void *b)
{
	const struct pl_preset_change *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (int)x->kind - (int)y->kind;
}

int pl_preset_set_diff(const struct pl_preset_set *old,
                       const struct pl_preset_set *next,
                       struct pl_preset_diff *out)
{
	if (!next || !out)
		return pl__fail(PL_ERR_ARG, "pl_preset_set_diff: missing argument");
	memset(out, 0, sizeof *out);
	size_t nn = bounded(next), no = bounded(old);
	for (size_t i = 0; i < nn; i++) {
		const struct pl_preset *p = &next->presets[i];
		/* A repeated id is the set's fault (pl_preset_set_validate
		 * refuses it); its first preset speaks for it here. */
		if (find(next, p->id) != p)
			continue;
		unsigned c = pl__preset_change_of(old, p);
		if (!c) {
			out->unchanged++;
			continue;
		}
		struct pl_preset_change *ch = &out->changes[out->count++];
		ch->id = p->id;
		ch->after = *p;
		if (c & PL__PRESET_NEW) {
			ch->kind = PL_PRESET_ADDED;
			out->added++;
		} else {
			ch->kind = PL_PRESET_CHANGED;
			ch->fields = c;
			ch->before = *find(old, p->id);
			out->changed++;
		}
	}
	for (size_t i = 0; i < no; i++) {
		const struct pl_preset *o = &old->presets[i];
		if (find(old, o->id) != o || find(next, o->id))
			continue;
		struct pl_preset_change *ch = &out->changes[out->count++];
		ch->kind = PL_PRESET_REMOVED;
		ch->id = o->id;
		ch->before = *o;
		out->removed++;
	}
	if (out->count) /* changes may be NULL when nothing changed */
		qsort(out->changes, out->count, sizeof out->changes[0], by_id);
	return PL_OK;
}

/* Presets named in a refusal; the rest are counted. */
#define REMOVALS_NAMED 8

int pl_preset_diff_check_removals(const struct pl_preset_diff *diff,
                                  bool replace)
{
	if (!diff)
		return pl__fail(PL_ERR_ARG,
		                "pl_preset_diff_check_removals: missing argument");
	if (replace || !diff->removed)
		return PL_OK;
	char names[REMOVALS_NAMED * (4 * PL_PRESET_NAME_MAX + 40) + 64] = "";
	char w[4 * PL_PRESET_NAME_MAX + 32];
	size_t len = 0, named = 0;
	for (size_t i = 0; i < diff->count && named < REMOVALS_NAMED; i++) {
		const struct pl_preset_change *c = &diff->changes[i];
		if (c->kind != PL_PRESET_REMOVED)
			continue;
		len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
		                        named ? ", " : "",
		                        pl__preset_who(w, sizeof w, &c->before));
		named++;
	}
	if (diff->removed > named)
		snprintf(names + len, sizeof names - len, " and %zu more",
		         diff->removed - named);
	bool empties = !diff->added && !diff->changed && !diff->unchanged;
	if (empties)
		return pl__fail(PL_ERR_POLICY,
		                "this push empties the pen's set, removing every "
		                "preset (%s); add --replace to push it",
		                names);
	if (diff->removed == 1)
		return pl__fail(PL_ERR_POLICY,
		                "this push removes %s; add --replace to push it",
		                names);
	return pl__fail(PL_ERR_POLICY,
	                "this push removes %zu presets: %s; add --replace to push "
	                "it",
	                diff->removed, names);
}
