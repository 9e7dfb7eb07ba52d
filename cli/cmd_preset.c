/* penctl preset list | preset push FILE | preset push --id N ... */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "penctl.h"

/* A preset file is a few kB; refuse anything absurd before parsing it. */
#define PRESET_FILE_MAX (1u << 20)

static int preset_list(struct ctl *c, struct opt_iter *it)
{
	int rc = cmd_start(c, it);
	if (rc != PX_OK)
		return rc;
	struct pl_preset_set *set = calloc(1, sizeof *set);
	if (!set)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	rc = c->be.ops->get_presets(c->be.ctx, set);
	if (rc != PL_OK) {
		free(set);
		return ctl_fail_pl(c, rc);
	}
	const char *serial = c->be.ops->serial(c->be.ctx);
	if (c->json) {
		/* No "serial" here: the preset-file parser accepts only
		 * "presets" and "revision", and this output is meant to be
		 * edited and pushed back. */
		json_object *o = json_object_new_object();
		json_object_object_add(o, "revision", json_object_new_int64(set->revision));
		json_object_object_add(o, "presets", json_preset_set(set));
		free(set);
		return ctl_emit_json(c, o);
	}
	ctl_say("%s: revision %u, %zu preset%s", serial, set->revision, set->count,
	        set->count == 1 ? "" : "s");
	if (set->count)
		print_preset_table(set, stdout);
	free(set);
	return PX_OK;
}

enum {
	P_ID = 1, P_NAME, P_DEPTH, P_SPEED, P_AREA, P_NEEDLES, P_MAXDUR, P_CONFIRM,
	P_REPLACE, P_DRY_RUN,
};

struct push_args {
	const char *file;
	unsigned given; /* 1u << id of each preset flag given (--id, fields) */
	struct pl_preset p;
	struct push_flags flags;
	bool delete;    /* preset delete --id N */
};

static int parse_name(struct ctl *c, const char *opt, const char *val,
                      void *field)
{
	if (strlen(val) > PL_PRESET_NAME_MAX)
		return ctl_fail_code(c, PL_ERR_VALIDATION,
		                     "%s is %zu bytes; a preset name has at most %d "
		                     "bytes of UTF-8",
		                     opt, strlen(val), PL_PRESET_NAME_MAX);
	snprintf(field, PL_PRESET_NAME_MAX + 1, "%s", val);
	return PX_OK;
}

static int parse_depth(struct ctl *c, const char *opt, const char *val,
                       void *field)
{
	if (pl_depth_parse_mm(val, field) != PL_OK)
		return ctl_usage(c, "%s: %s", opt, pl_error_message());
	return PX_OK;
}

static int parse_area(struct ctl *c, const char *opt, const char *val,
                      void *field)
{
	int area = pl_area_from_name(val);
	if (area < 0)
		return ctl_usage(c, "%s: unknown area '%.40s' (forehead, glabella, "
		                 "periorbital, nose, cheek, cheekbone, perioral, "
		                 "chin-jaw, neck, decollete, scalp, stretch-marks, "
		                 "body-scar, other)", opt, val);
	*(enum pl_area *)field = (enum pl_area)area;
	return PX_OK;
}

#define PUSH(name, arg, id, help, kind, member, ...)                         \
	OPT(name, 0, arg, id, help, kind, struct push_args, member, __VA_ARGS__)
#define PUSH_U32(name, arg, id, help, member)                                \
	PUSH(name, arg, id, help, OPT_U32, member, .min = 0, .max = UINT32_MAX)
static const struct optdef push_opts[] = {
	PUSH_U32("--id", "N", P_ID, "the preset to change or add", p.id),
	PUSH("--name", "S", P_NAME, "its name, 1 to 32 bytes of UTF-8", OPT_CALL,
	     p.name, .parse = parse_name),
	PUSH("--depth", "MM", P_DEPTH, "needle depth in millimetres (0.25, 1.5)",
	     OPT_CALL, p.depth_um, .parse = parse_depth),
	PUSH_U32("--speed", "L", P_SPEED, "speed level, 1 to the pen's levels",
	         p.speed_level),
	PUSH("--area", "A", P_AREA, "treatment area (a new preset: other)",
	     OPT_CALL, p.area, .parse = parse_area),
	PUSH_U32("--needles", "N", P_NEEDLES,
	         "needles of the cartridge (0: nano; a new preset: 0)",
	         p.needle_count),
	PUSH_U32("--max-duration", "S", P_MAXDUR,
	         "longest treatment in seconds (0: no limit; a new preset: 0)",
	         p.max_duration_s),
	PUSH("--confirm", NULL, P_CONFIRM,
	     "confirm depths above the policy's threshold", OPT_FLAG,
	     flags.confirm),
	PUSH("--replace", NULL, P_REPLACE,
	     "allow the push to remove presets (or empty the set)", OPT_FLAG,
	     flags.replace),
	PUSH("--dry-run", NULL, P_DRY_RUN,
	     "show what the push would change, run its checks, write nothing",
	     OPT_FLAG, flags.dry_run),
	OPT_TABLE_END,
};

static const struct optdef delete_opts[] = {
	PUSH_U32("--id", "N", P_ID, "the preset to remove", p.id),
	PUSH("--dry-run", NULL, P_DRY_RUN,
	     "show what the delete would change, write nothing", OPT_FLAG,
	     flags.dry_run),
	OPT_TABLE_END,
};
#undef PUSH_U32
#undef PUSH

/* The fields a new preset needs; the others have defaults. */
static const int new_required[] = {P_NAME, P_DEPTH, P_SPEED};
/* The flags that set a field of the preset (all but --id). */
#define FIELD_FLAGS                                                          \
	(1u << P_NAME | 1u << P_DEPTH | 1u << P_SPEED | 1u << P_AREA |         \
	 1u << P_NEEDLES | 1u << P_MAXDUR)

static const char *push_opt_name(int id)
{
	const struct optdef *d = push_opts;
	while (d->id != id)
		d++;
	return d->name;
}

static int parse_push(struct ctl *c, struct opt_iter *it, struct push_args *a)
{
	const char *cmd = a->delete ? "preset delete" : "preset push";
	struct opt_args args = {a->delete ? "--id N" : "FILE", !a->delete,
	                        &a->file, 0};
	int rc = opt_parse(c, it, a, &args);
	if (rc != PX_OK)
		return rc;
	/* the preset's own: --id and its fields, not --confirm and the like */
	a->given = it->given & ((1u << P_CONFIRM) - 1);
	if (a->delete) {
		if (!(a->given & 1u << P_ID))
			return ctl_usage(c, "preset delete needs --id N");
		/* Removing is what was asked for. */
		a->flags.replace = true;
		return PX_OK;
	}
	if (a->file && a->given)
		return ctl_usage(c, "preset push takes either FILE or --id/--name/"
		                 "--depth/--speed/..., not both");
	if (!a->file && !a->given)
		return ctl_usage(c, "%s needs FILE or --id N and the fields to "
		                 "change (--name S --depth MM --speed L ...)", cmd);
	if (a->given && !(a->given & 1u << P_ID))
		return ctl_usage(c, "preset push: --id N names the preset to change "
		                 "or add");
	if (a->given && !(a->given & FIELD_FLAGS))
		return ctl_usage(c, "preset push --id %u: nothing to change (give "
		                 "--name, --depth, --speed, --area, --needles or "
		                 "--max-duration)", a->p.id);
	return PX_OK;
}

static int load_file(struct ctl *c, const char *path, struct pl_preset_set *out)
{
	const char *open_path = strcmp(path, "-") == 0 ? "/dev/stdin" : path;
	char *text = read_text_file(open_path, PRESET_FILE_MAX, NULL);
	if (!text) {
		if (errno == EFBIG)
			return ctl_fail_code(c, PL_ERR_PARSE,
			                     "%s: larger than %u bytes; not a preset file",
			                     path, PRESET_FILE_MAX);
		if (errno == EISDIR)
			return ctl_fail_code(c, PL_ERR_PARSE,
			                     "%s: a directory, not a preset file", path);
		return ctl_fail_errno(c, errno, "%s", path);
	}
	int rc = pl_preset_set_from_json(text, out);
	free(text);
	if (rc != PL_OK)
		return ctl_fail_code(c, rc, "%s: %s", path, pl_error_message());
	return PX_OK;
}

static struct pl_preset *find_preset(struct pl_preset_set *s, uint32_t id)
{
	for (size_t i = 0; i < s->count; i++)
		if (s->presets[i].id == id)
			return &s->presets[i];
	return NULL;
}

/* next: the pen's set cur with the preset --id names changed in the
 * fields given and only those, or added (then --name, --depth and --speed
 * are needed; area other, nano, no time limit unless given). */
static int merge_flags(struct ctl *c, const struct push_args *a,
                       const struct pl_preset_set *cur,
                       struct pl_preset_set *next)
{
	const char *serial = c->be.ops->serial(c->be.ctx);
	*next = *cur;
	struct pl_preset *slot = find_preset(next, a->p.id);
	if (!slot) {
		char missing[64] = "";
		size_t n = 0;
		for (size_t i = 0; i < sizeof new_required / sizeof new_required[0]; i++)
			if (!(a->given & 1u << new_required[i]))
				n += (size_t)snprintf(missing + n, sizeof missing - n, "%s%s",
				                      n ? ", " : "",
				                      push_opt_name(new_required[i]));
		if (n)
			return ctl_usage(c, "preset push: %s has no preset %u; a new "
			                 "preset needs --name S, --depth MM and --speed L "
			                 "(missing: %s)", serial, a->p.id, missing);
		if (next->count >= PL_MAX_PRESETS)
			return ctl_fail_code(c, PL_ERR_VALIDATION,
			                     "the pen already holds %zu presets; cannot "
			                     "add preset %u", next->count, a->p.id);
		slot = &next->presets[next->count++];
		memset(slot, 0, sizeof *slot);
		slot->id = a->p.id;
		slot->area = PL_AREA_OTHER; /* as in preset files */
	}
	if (a->given & 1u << P_NAME)
		memcpy(slot->name, a->p.name, sizeof slot->name);
	if (a->given & 1u << P_DEPTH)
		slot->depth_um = a->p.depth_um;
	if (a->given & 1u << P_SPEED)
		slot->speed_level = a->p.speed_level;
	if (a->given & 1u << P_AREA)
		slot->area = a->p.area;
	if (a->given & 1u << P_NEEDLES)
		slot->needle_count = a->p.needle_count;
	if (a->given & 1u << P_MAXDUR)
		slot->max_duration_s = a->p.max_duration_s;
	return PX_OK;
}

/* ------------------------------------------------------------------ the diff */

static const struct {
	unsigned bit;
	const char *label; /* for people */
	const char *key;   /* in JSON: the preset file's key */
} fields[] = {
	{PL_PRESET_FIELD_NAME, "name", "name"},
	{PL_PRESET_FIELD_DEPTH, "depth", "depth_mm"},
	{PL_PRESET_FIELD_SPEED, "speed", "speed"},
	{PL_PRESET_FIELD_AREA, "area", "area"},
	{PL_PRESET_FIELD_NEEDLES, "needles", "needles"},
	{PL_PRESET_FIELD_MAX_DURATION, "max duration", "max_duration_s"},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* One field of p for people: "Cheek" (quoted), 0.50 mm, 3, neck, nano,
 * 600 s, no limit. */
static const char *field_text(unsigned bit, const struct pl_preset *p,
                              char *out, size_t cap)
{
	char mm[PL_MM_TEXT_MAX];
	switch (bit) {
	case PL_PRESET_FIELD_NAME: snprintf(out, cap, "\"%s\"", p->name); break;
	case PL_PRESET_FIELD_DEPTH:
		snprintf(out, cap, "%s mm", pl_depth_format_mm(p->depth_um, PL_MM_FIXED, mm));
		break;
	case PL_PRESET_FIELD_SPEED: snprintf(out, cap, "%u", p->speed_level); break;
	case PL_PRESET_FIELD_AREA: snprintf(out, cap, "%s", fmt_area(p->area)); break;
	case PL_PRESET_FIELD_NEEDLES:
		if (p->needle_count)
			snprintf(out, cap, "%u", p->needle_count);
		else
			snprintf(out, cap, "nano");
		break;
	default:
		if (p->max_duration_s)
			snprintf(out, cap, "%u s", p->max_duration_s);
		else
			snprintf(out, cap, "no limit");
		break;
	}
	return out;
}

/* A whole preset on one line: depth 0.50 mm, speed 2, neck, 12 needles,
 * 600 s. */
static void preset_summary(const struct pl_preset *p, char *out, size_t cap)
{
	char mm[PL_MM_TEXT_MAX], needles[32], dur[32];
	if (p->needle_count)
		snprintf(needles, sizeof needles, "%u needles", p->needle_count);
	else
		snprintf(needles, sizeof needles, "nano");
	if (p->max_duration_s)
		snprintf(dur, sizeof dur, "%u s", p->max_duration_s);
	else
		snprintf(dur, sizeof dur, "no time limit");
	snprintf(out, cap, "depth %s mm, speed %u, %s, %s, %s",
	         pl_depth_format_mm(p->depth_um, PL_MM_FIXED, mm), p->speed_level,
	         fmt_area(p->area), needles, dur);
}

/*
 * For people, on stdout, before the outcome:
 *   PEN-0001, revision 7: 1 changed, 1 added, 1 removed
 *     ~ preset 1 "Forehead": depth 0.50 mm -> 0.75 mm
 *     + preset 4 "Neck": depth 0.50 mm, speed 2, neck, 12 needles, 600 s
 *     - preset 2 "Cheek": depth 1.00 mm, speed 3, cheek, nano, no time limit
 * one line per changed field, in order of id.
 */
static void print_diff(const char *serial, uint32_t revision,
                       const struct pl_preset_diff *d)
{
	char head[128] = "";
	size_t n = 0;
	const struct {
		size_t count;
		const char *what;
	} parts[] = {{d->changed, "changed"}, {d->added, "added"},
	             {d->removed, "removed"}};
	for (size_t i = 0; i < 3; i++)
		if (parts[i].count)
			n += (size_t)snprintf(head + n, sizeof head - n, "%s%zu %s",
			                      n ? ", " : "", parts[i].count, parts[i].what);
	ctl_say("%s, revision %u: %s", serial, revision, n ? head : "no changes");
	for (size_t i = 0; i < d->count; i++) {
		const struct pl_preset_change *ch = &d->changes[i];
		const struct pl_preset *p =
		    ch->kind == PL_PRESET_REMOVED ? &ch->before : &ch->after;
		char line[256], a[96], b[96];
		if (ch->kind != PL_PRESET_CHANGED) {
			preset_summary(p, line, sizeof line);
			ctl_say("  %c preset %u \"%s\": %s",
			        ch->kind == PL_PRESET_ADDED ? '+' : '-', ch->id, p->name,
			        line);
			continue;
		}
		for (size_t f = 0; f < N_FIELDS; f++)
			if (ch->fields & fields[f].bit)
				ctl_say("  ~ preset %u \"%s\": %s %s -> %s", ch->id, p->name,
				        fields[f].label,
				        field_text(fields[f].bit, &ch->before, a, sizeof a),
				        field_text(fields[f].bit, &ch->after, b, sizeof b));
	}
}

static json_object *json_field(unsigned bit, const struct pl_preset *p)
{
	switch (bit) {
	case PL_PRESET_FIELD_NAME: return json_object_new_string(p->name);
	case PL_PRESET_FIELD_DEPTH: return json_depth_mm(p->depth_um);
	case PL_PRESET_FIELD_SPEED: return json_object_new_int64(p->speed_level);
	case PL_PRESET_FIELD_AREA: {
		const char *a = pl_area_name(p->area);
		return a && p->area != PL_AREA_UNSPECIFIED ? json_object_new_string(a)
		                                           : NULL;
	}
	case PL_PRESET_FIELD_NEEDLES: return json_object_new_int64(p->needle_count);
	default: return json_object_new_int64(p->max_duration_s);
	}
}

/*
 * [{"id": 1, "change": "changed", "name": "Forehead",
 *   "fields": {"depth_mm": {"old": 0.5, "new": 0.75}}},
 *  {"id": 4, "change": "added", "name": "Neck", "new": {preset}},
 *  {"id": 2, "change": "removed", "name": "Cheek", "old": {preset}}]
 */
static json_object *json_diff(const struct pl_preset_diff *d)
{
	json_object *arr = json_object_new_array();
	for (size_t i = 0; i < d->count; i++) {
		const struct pl_preset_change *ch = &d->changes[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_int64(ch->id));
		const char *kind = ch->kind == PL_PRESET_ADDED     ? "added"
		                   : ch->kind == PL_PRESET_REMOVED ? "removed"
		                                                   : "changed";
		json_object_object_add(o, "change", json_object_new_string(kind));
		const struct pl_preset *p =
		    ch->kind == PL_PRESET_REMOVED ? &ch->before : &ch->after;
		json_object_object_add(o, "name", json_object_new_string(p->name));
		if (ch->kind == PL_PRESET_ADDED) {
			json_object_object_add(o, "new", json_preset(&ch->after));
		} else if (ch->kind == PL_PRESET_REMOVED) {
			json_object_object_add(o, "old", json_preset(&ch->before));
		} else {
			json_object *fo = json_object_new_object();
			for (size_t f = 0; f < N_FIELDS; f++) {
				if (!(ch->fields & fields[f].bit))
					continue;
				json_object *v = json_object_new_object();
				json_object_object_add(v, "old",
				                       json_field(fields[f].bit, &ch->before));
				json_object_object_add(v, "new",
				                       json_field(fields[f].bit, &ch->after));
				json_object_object_add(fo, fields[f].key, v);
			}
			json_object_object_add(o, "fields", fo);
		}
		json_object_array_add(arr, o);
	}
	return arr;
}

/* ------------------------------------------------------------------ push, delete */

/* preset push and preset delete: read the pen's set, make the next one,
 * have the backend decide, write and diff it, then print the diff and the
 * outcome. */
static int push_run(struct ctl *c, struct opt_iter *it, bool delete)
{
	struct push_args a;
	memset(&a, 0, sizeof a);
	a.delete = delete;
	int rc = parse_push(c, it, &a);
	if (rc != PX_OK)
		return rc;

	/* cur, next, result: three 5 kB sets, and the diff, on the heap. */
	struct pl_preset_set *sets = calloc(3, sizeof *sets);
	struct pl_preset_diff *diff = calloc(1, sizeof *diff);
	if (!sets || !diff) {
		free(sets);
		free(diff);
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	}
	struct pl_preset_set *cur = &sets[0], *next = &sets[1], *result = &sets[2];

	/* A broken file is reported before touching the pen. */
	if (a.file && (rc = load_file(c, a.file, next)) != PX_OK)
		goto out;
	if ((rc = ctl_connect(c)) != PX_OK)
		goto out;
	int e = c->be.ops->get_presets(c->be.ctx, cur);
	if (e != PL_OK) {
		rc = ctl_fail_pl(c, e);
		goto out;
	}
	const char *serial = c->be.ops->serial(c->be.ctx);

	if (delete) {
		*next = *cur;
		struct pl_preset *gone = find_preset(next, a.p.id);
		if (!gone) {
			rc = ctl_fail_code(c, PL_ERR_NOT_FOUND, "%s has no preset %u",
			                   serial, a.p.id);
			goto out;
		}
		size_t at = (size_t)(gone - next->presets);
		memmove(gone, gone + 1, (next->count - at - 1) * sizeof *gone);
		next->count--;
	} else if (!a.file && (rc = merge_flags(c, &a, cur, next)) != PX_OK) {
		goto out;
	}
	next->revision = cur->revision;

	/* The --replace rule, the policy and the pen's limits are checked
	 * once, by whoever writes: the library with --port, penlinkd through
	 * the daemon; the diff comes from the same place. */
	e = c->be.ops->put_presets(c->be.ctx, cur, next, &a.flags, result, diff);
	if (e != PL_OK) {
		rc = ctl_fail_pl(c, e);
		goto out;
	}
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "serial", json_object_new_string(serial));
		json_object_object_add(o, "dry_run",
		                       json_object_new_boolean(a.flags.dry_run));
		if (!a.flags.dry_run)
			json_object_object_add(o, "previous_revision",
			                       json_object_new_int64(cur->revision));
		json_object_object_add(o, "revision",
		                       json_object_new_int64(result->revision));
		json_object_object_add(o, "diff", json_diff(diff));
		json_object_object_add(o, "presets", json_preset_set(result));
		rc = ctl_emit_json(c, o);
		goto out;
	}
	print_diff(serial, cur->revision, diff);
	if (a.flags.dry_run) {
		ctl_say("%s: dry run: nothing written", serial);
	} else {
		ctl_say("%s: pushed %zu preset%s, verified; revision %u -> %u", serial,
		        result->count, result->count == 1 ? "" : "s", cur->revision,
		        result->revision);
		if (result->count)
			print_preset_table(result, stdout);
	}
	rc = PX_OK;
out:
	free(sets);
	free(diff);
	return rc;
}

static int preset_push(struct ctl *c, struct opt_iter *it)
{
	return push_run(c, it, false);
}

static int preset_delete(struct ctl *c, struct opt_iter *it)
{
	return push_run(c, it, true);
}

static const struct cmd_spec preset_specs[] = {
	{"preset list", NULL, "the presets on the pen", CMD_BOTH, NULL, NULL,
	 preset_list},
	{"preset push",
	 "FILE [--replace] | --id N [--name S] [--depth MM] [--speed L] "
	 "[--area A] [--needles N] [--max-duration S] [--confirm] [--dry-run]",
	 "replace the presets with a JSON preset file (depths in mm), or change "
	 "or add one preset",
	 CMD_BOTH, push_opts,
	 "FILE ('-': stdin) becomes the whole set; a FILE that leaves out presets\n"
	 "the pen holds (or is empty) removes them, which needs --replace.\n"
	 "With --id the pen's set is read and only the fields given change; a\n"
	 "new id needs --name, --depth and --speed (area other, nano, no time\n"
	 "limit unless given).  Every push prints what it changes (old -> new\n"
	 "per field, presets added and removed) before the outcome; --dry-run\n"
	 "prints it, runs every check and writes nothing.\n"
	 "Presets this push adds or deepens beyond the clinic policy's threshold\n"
	 "(default 1.50 mm) need --confirm: with --port the policy is the default\n"
	 "or penctl --policy FILE's; through penlinkd the daemon's own.\n"
	 "Areas: forehead glabella periorbital nose cheek cheekbone perioral\n"
	 "chin-jaw neck decollete scalp stretch-marks body-scar other.\n",
	 preset_push},
	{"preset delete", "--id N [--dry-run]", "remove one preset", CMD_BOTH,
	 delete_opts,
	 "Reads the pen's set and pushes it without preset N (audited by\n"
	 "penlinkd like any push), printing what it removes.\n",
	 preset_delete},
	{NULL, NULL, NULL, CMD_BOTH, NULL, NULL, NULL},
};
const struct cmd_group preset_cmds = {"preset", "presets", preset_specs};
