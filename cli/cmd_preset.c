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
};

static const struct optdef push_opts[] = {
	{"--id", 0, "N", P_ID, "the preset to add or replace"},
	{"--name", 0, "S", P_NAME, "its name, 1 to 32 bytes of UTF-8"},
	{"--depth", 0, "MM", P_DEPTH, "needle depth in millimetres (0.25, 1.5)"},
	{"--speed", 0, "L", P_SPEED, "speed level, 1 to the pen's levels"},
	{"--area", 0, "A", P_AREA, "treatment area (default other)"},
	{"--needles", 0, "N", P_NEEDLES, "needles of the cartridge (0: nano)"},
	{"--max-duration", 0, "S", P_MAXDUR, "longest treatment in seconds"},
	{"--confirm", 0, NULL, P_CONFIRM,
	 "confirm depths above the policy's threshold"},
	{NULL, 0, NULL, 0, NULL},
};

/* The flags that describe one preset; all but these are optional. */
static const int push_required[] = {P_ID, P_NAME, P_DEPTH, P_SPEED};

static const char *push_opt_name(int id)
{
	const struct optdef *d = push_opts;
	while (d->id != id)
		d++;
	return d->name;
}

/* The field of the preset that a numeric flag (--id, --speed, --needles,
 * --max-duration) sets. */
static uint32_t *push_number(struct pl_preset *p, int id)
{
	switch (id) {
	case P_ID: return &p->id;
	case P_SPEED: return &p->speed_level;
	case P_NEEDLES: return &p->needle_count;
	default: return &p->max_duration_s;
	}
}

struct push_args {
	const char *file;
	unsigned given; /* 1u << id of each preset flag given */
	struct pl_preset p;
	bool confirm;
};

static int parse_push(struct ctl *c, struct opt_iter *it, struct push_args *a)
{
	const char *v;
	int id;
	while ((id = opt_next(c, it, &v)) != OPT_END) {
		int area;
		if (id > 0 && id != P_CONFIRM)
			a->given |= 1u << id;
		switch (id) {
		case OPT_BAD:
			return PX_USAGE;
		case OPT_ARG:
			if (a->file)
				return ctl_usage(c, "preset push takes one FILE (got '%.40s' "
				                 "and '%.40s')", a->file, v);
			a->file = v;
			break;
		case P_ID:
		case P_SPEED:
		case P_NEEDLES:
		case P_MAXDUR:
			if (parse_u32(c, push_opt_name(id), v, 0, UINT32_MAX,
			              push_number(&a->p, id)) != PX_OK)
				return PX_USAGE;
			break;
		case P_NAME:
			if (strlen(v) > PL_PRESET_NAME_MAX)
				return ctl_fail_code(c, PL_ERR_VALIDATION,
				                     "--name is %zu bytes; a preset name "
				                     "has at most %d bytes of UTF-8",
				                     strlen(v), PL_PRESET_NAME_MAX);
			snprintf(a->p.name, sizeof a->p.name, "%s", v);
			break;
		case P_DEPTH:
			if (pl_depth_parse_mm(v, &a->p.depth_um) != PL_OK)
				return ctl_usage(c, "--depth: %s", pl_error_message());
			break;
		case P_AREA:
			area = pl_area_from_name(v);
			if (area < 0)
				return ctl_usage(c, "--area: unknown area '%.40s' (forehead, "
				                 "glabella, periorbital, nose, cheek, "
				                 "cheekbone, perioral, chin-jaw, neck, "
				                 "decollete, scalp, stretch-marks, "
				                 "body-scar, other)", v);
			a->p.area = (enum pl_area)area;
			break;
		case P_CONFIRM:
			a->confirm = true;
			break;
		default:
			return ctl_usage(c, "internal: unhandled option");
		}
	}
	if (a->file && a->given)
		return ctl_usage(c, "preset push takes either FILE or --id/--name/"
		                 "--depth/--speed, not both");
	if (!a->file && !a->given)
		return ctl_usage(c, "preset push needs FILE or --id N --name S "
		                 "--depth MM --speed L");
	size_t nreq = sizeof push_required / sizeof push_required[0];
	for (size_t i = 0; a->given && i < nreq; i++)
		if (!(a->given & 1u << push_required[i]))
			return ctl_usage(c, "preset push: %s is required with flags",
			                 push_opt_name(push_required[i]));
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

static const struct pl_preset *find_preset(const struct pl_preset_set *s,
                                           uint32_t id)
{
	for (size_t i = 0; i < s->count; i++)
		if (s->presets[i].id == id)
			return &s->presets[i];
	return NULL;
}

static int preset_push(struct ctl *c, struct opt_iter *it)
{
	struct push_args a;
	memset(&a, 0, sizeof a);
	a.p.area = PL_AREA_OTHER; /* --area is optional, as in preset files */
	int rc = parse_push(c, it, &a);
	if (rc != PX_OK)
		return rc;

	/* cur, next, result: three 5 kB sets, so on the heap. */
	struct pl_preset_set *sets = calloc(3, sizeof *sets);
	if (!sets)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
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

	if (!a.file) {
		*next = *cur;
		struct pl_preset *slot = (struct pl_preset *)find_preset(next, a.p.id);
		if (!slot) {
			if (next->count >= PL_MAX_PRESETS) {
				rc = ctl_fail_code(c, PL_ERR_VALIDATION,
				                   "the pen already holds %zu presets; "
				                   "cannot add preset %u",
				                   next->count, a.p.id);
				goto out;
			}
			slot = &next->presets[next->count++];
		}
		*slot = a.p;
	}
	next->revision = cur->revision;

	/* The policy and the pen's limits are checked once, by whoever
	 * writes: the library with --port, penlinkd through the daemon. */
	e = c->be.ops->put_presets(c->be.ctx, cur, next, a.confirm, result);
	if (e != PL_OK) {
		rc = ctl_fail_pl(c, e);
		goto out;
	}
	const char *serial = c->be.ops->serial(c->be.ctx);
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "serial", json_object_new_string(serial));
		json_object_object_add(o, "previous_revision",
		                       json_object_new_int64(cur->revision));
		json_object_object_add(o, "revision",
		                       json_object_new_int64(result->revision));
		json_object_object_add(o, "presets", json_preset_set(result));
		rc = ctl_emit_json(c, o);
	} else {
		ctl_say("%s: pushed %zu preset%s, verified; revision %u -> %u", serial,
		        result->count, result->count == 1 ? "" : "s", cur->revision,
		        result->revision);
		if (result->count)
			print_preset_table(result, stdout);
		rc = PX_OK;
	}
out:
	free(sets);
	return rc;
}

static const struct cmd_spec preset_specs[] = {
	{"preset list", NULL, "the presets on the pen", CMD_BOTH, NULL, NULL,
	 preset_list},
	{"preset push",
	 "FILE | --id N --name S --depth MM --speed L [--area A] [--needles N] "
	 "[--max-duration S] [--confirm]",
	 "replace the presets with a JSON preset file (depths in mm), or add or "
	 "replace one preset",
	 CMD_BOTH, push_opts,
	 "FILE ('-': stdin) replaces the whole set.  With --id the pen's set is\n"
	 "read, the preset with that id replaced or added, and the rest kept.\n"
	 "Presets this push adds or deepens beyond the clinic policy's threshold\n"
	 "(default 1.50 mm) need --confirm: with --port the policy is the default\n"
	 "or penctl --policy FILE's; through penlinkd the daemon's own.\n"
	 "Areas: forehead glabella periorbital nose cheek cheekbone perioral\n"
	 "chin-jaw neck decollete scalp stretch-marks body-scar other.\n",
	 preset_push},
	{NULL, NULL, NULL, CMD_BOTH, NULL, NULL, NULL},
};
const struct cmd_group preset_cmds = {"preset", "presets", preset_specs};
