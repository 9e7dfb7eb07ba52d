/*
 * penemu --treat: a treatment in real time.
 *
 * Some time after the first host finished its handshake (--treat-after) the
 * virtual pen starts a treatment of --treat seconds with one of its presets
 * and plays a script drawn from --seed: depth and speed changes, a pause
 * with a cartridge swap, an area change, maybe a fault it stops for, the
 * battery draining below its low mark, and the stop.  Everything is sent
 * the moment it happens, as a state event (the protocol's StateKind: what
 * kind of thing changed, its value, and a detail naming the record's event)
 * and an info trace line; a debug trace line shows the telemetry once a
 * second.  At the stop the session is recorded in the flash with exactly
 * those events at their offsets and the telemetry sampled along the way
 * (gen_record_events), and a SESSION_RECORDED state event names its id, so
 * an attached host downloads it.  With --treat-every the pen treats again
 * that long after each stop.
 *
 * The details begin with the event's name in the record ("depth: 1.25 mm",
 * "cartridge out"), so a host can tell which event a state event is: the
 * StateKind alone is coarser (depth, speed, area and resume are TREATING;
 * pause and stop are IDLE).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.pb-c.h"
#include "treat.h"

#define SAMPLE_MS 100u       /* telemetry interval */
#define TRACE_SAMPLE_EVERY 10u /* a debug trace line every this many samples */
#define BATTERY_LOW_MV 3550u
#define MAX_STEPS 24

enum phase { WAIT_HOST, SCHEDULED, RUNNING, DONE };

struct treat {
	struct treat_opts o;
	enum phase phase;
	int64_t start_at;      /* monotonic ms */
	unsigned index;        /* treatments begun */
	struct emu_rng noise;

	/* the script, in time order, and how far it has been played */
	struct gen_event script[MAX_STEPS];
	size_t nsteps, next_step;

	/* the treatment as it happens */
	struct pl_fw_preset preset;
	uint32_t revision;
	int64_t start_ms;      /* pen time: UTC if its clock is set, else uptime */
	bool rtc;
	uint32_t dur_ms;
	uint32_t start_mv, end_mv;
	bool running;
	uint32_t depth, speed, needles;
	struct gen_samples samples;
	struct gen_event done[MAX_STEPS];
	size_t ndone;
};

static const uint32_t cartridge_needles[] = {12, 24, 36, 42, 0};

struct treat *treat_new(const struct treat_opts *o)
{
	struct treat *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->o = *o;
	if (t->o.duration_s < TREAT_MIN_S)
		t->o.duration_s = TREAT_MIN_S;
	return t;
}

void treat_free(struct treat *t)
{
	if (!t)
		return;
	gen_samples_free(&t->samples);
	free(t);
}

/* ------------------------------------------------------------------ script */

static void add_step(struct treat *t, uint32_t at, uint32_t kind, int32_t value)
{
	if (t->nsteps < MAX_STEPS)
		t->script[t->nsteps++] = (struct gen_event){at, kind, value};
}

static int by_offset(const void *a, const void *b)
{
	const struct gen_event *x = a, *y = b;

	if (x->offset_ms != y->offset_ms)
		return x->offset_ms < y->offset_ms ? -1 : 1;
	return 0;
}

/* at: a fraction of the treatment in thousandths, moved by up to +-15. */
static uint32_t when(struct treat *t, struct emu_rng *r, uint32_t permille)
{
	uint32_t p = permille - 15u + emu_rng_range(r, 0, 30);
	return (uint32_t)((uint64_t)t->dur_ms * p / 1000u);
}

/* A depth one step from d, staying within the pen's range and under its
 * slow lock (so speed changes stay allowed). */
static uint32_t depth_step(const struct pl_fw_device_info *info,
                           struct emu_rng *r, uint32_t d)
{
	uint32_t step = info->depth_step_um ? info->depth_step_um : 250;
	uint32_t top = info->depth_max_um;

	if (info->slow_lock_depth_um && info->slow_lock_depth_um - step < top)
		top = info->slow_lock_depth_um - step;
	if ((emu_rng_next(r) & 1) && d + step <= top)
		return d + step;
	if (d >= info->depth_min_um + step)
		return d - step;
	return d + step;
}

static uint32_t speed_step(const struct pl_fw_device_info *info,
                           struct emu_rng *r, uint32_t s)
{
	if ((emu_rng_next(r) & 1) && s < info->speed_levels)
		return s + 1;
	return s > 1 ? s - 1 : s + 1;
}

/* Draws this treatment: the preset, the cartridge, the battery, the script. */
static void plan(struct treat *t, const struct pl_fw_device_info *info,
                 const struct pl_fw_preset *presets, size_t npresets)
{
	static const struct pl_fw_preset fallback = {1, "Default", 1000, 2, 5, 12, 0};
	struct emu_rng r;
	uint32_t depth, speed, area, t_low, needles;
	bool known = false;

	emu_rng_seed(&r, t->o.seed ^ 0x7472656174ull ^ ((uint64_t)t->index << 32));
	emu_rng_seed(&t->noise, emu_rng_next(&r));
	t->preset = npresets ? presets[emu_rng_range(&r, 0, (uint32_t)npresets - 1)]
	                     : fallback;
	for (size_t i = 0; i < sizeof cartridge_needles / sizeof *cartridge_needles; i++)
		known |= cartridge_needles[i] == t->preset.needle_count;
	t->needles = known ? t->preset.needle_count : 12;
	t->depth = t->preset.depth_um;
	t->speed = t->preset.speed_level ? t->preset.speed_level : 1;
	t->running = false;

	/* The cell crosses its low mark at 72-80 % of the treatment. */
	t->start_mv = emu_rng_range(&r, 3680, 3740);
	t_low = (uint32_t)((uint64_t)t->dur_ms * emu_rng_range(&r, 720, 800) / 1000u);
	t->end_mv = t->start_mv -
	            (uint32_t)((uint64_t)(t->start_mv - BATTERY_LOW_MV) * t->dur_ms / t_low);

	t->nsteps = t->next_step = 0;
	depth = t->depth >= info->slow_lock_depth_um && info->slow_lock_depth_um
	            ? info->slow_lock_depth_um - info->depth_step_um
	            : depth_step(info, &r, t->depth);
	speed = speed_step(info, &r, t->speed);
	add_step(t, 0, PL__EVENT_KIND__EVENT_KIND_START, (int32_t)t->preset.id);
	add_step(t, when(t, &r, 100), PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE,
	         (int32_t)depth);
	add_step(t, when(t, &r, 180), PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE,
	         (int32_t)speed);
	add_step(t, when(t, &r, 260), PL__EVENT_KIND__EVENT_KIND_PAUSE, 0);
	add_step(t, when(t, &r, 310), PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_OUT, 0);
	needles = cartridge_needles[emu_rng_range(&r, 0, 4)];
	add_step(t, when(t, &r, 370), PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_IN,
	         (int32_t)needles);
	add_step(t, when(t, &r, 430), PL__EVENT_KIND__EVENT_KIND_RESUME, 0);
	area = emu_rng_range(&r, PL__AREA__AREA_FOREHEAD, PL__AREA__AREA_OTHER);
	if (area == t->preset.area)
		area = area == PL__AREA__AREA_OTHER ? PL__AREA__AREA_FOREHEAD : area + 1;
	add_step(t, when(t, &r, 500), PL__EVENT_KIND__EVENT_KIND_AREA_CHANGE,
	         (int32_t)area);
	add_step(t, when(t, &r, 570), PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE,
	         (int32_t)depth_step(info, &r, depth));
	if (emu_rng_next(&r) & 1) {
		/* A fault the pen stops for, and the technician goes on. */
		uint32_t at = when(t, &r, 640);
		add_step(t, at, PL__EVENT_KIND__EVENT_KIND_ERROR,
		         (int32_t)emu_rng_range(&r, 1, 4));
		add_step(t, at, PL__EVENT_KIND__EVENT_KIND_PAUSE, 0);
		add_step(t, when(t, &r, 690), PL__EVENT_KIND__EVENT_KIND_RESUME, 0);
	}
	add_step(t, t_low, PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW,
	         (int32_t)BATTERY_LOW_MV);
	add_step(t, when(t, &r, 880), PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE,
	         (int32_t)speed_step(info, &r, speed));
	add_step(t, t->dur_ms, PL__EVENT_KIND__EVENT_KIND_STOP, 0);
	/* In time order; a stable sort keeps steps at one offset (the error
	 * and the pause it causes) in the order they were drawn. */
	for (size_t i = 1; i < t->nsteps; i++)
		for (size_t j = i; j > 0 && by_offset(&t->script[j - 1], &t->script[j]) > 0; j--) {
			struct gen_event x = t->script[j];
			t->script[j] = t->script[j - 1];
			t->script[j - 1] = x;
		}
}

/* ------------------------------------------------------------------ playing */

static uint32_t battery_at(const struct treat *t, uint32_t ms)
{
	return t->start_mv -
	       (uint32_t)((uint64_t)(t->start_mv - t->end_mv) * ms / t->dur_ms);
}

static int take_sample(struct treat *t, struct pl_fw *fw)
{
	struct gen_sample g;
	struct gen_samples *s = &t->samples;
	uint32_t ms = (uint32_t)(s->n * SAMPLE_MS);

	if (gen_samples_reserve(s, s->n + 1) != 0)
		return -1;
	gen_sample(t->running, t->depth, t->speed, battery_at(t, ms),
	           emu_rng_next(&t->noise), &g);
	gen_samples_put(s, s->n, &g);
	if (s->n % TRACE_SAMPLE_EVERY == 0) {
		char line[128];
		snprintf(line, sizeof line,
		         "treatment %u.%03u s: depth %" PRIu32 " um, motor %" PRIu32
		         " mA, battery %" PRIu32 " mV",
		         ms / 1000u, ms % 1000u, g.depth_um, g.current_ma, g.battery_mv);
		pl_fw_trace(fw, 3, line);
	}
	s->n++;
	return 0;
}

/* The state event and trace line of one event of the record. */
static void announce(struct treat *t, struct pl_fw *fw, const struct gen_event *e)
{
	char detail[128], line[160];
	uint32_t kind = PL__STATE_KIND__STATE_KIND_TREATING;
	uint32_t value = e->value > 0 ? (uint32_t)e->value : 0;

	switch (e->kind) {
	case PL__EVENT_KIND__EVENT_KIND_START:
		snprintf(detail, sizeof detail,
		         "start: preset %" PRIu32 " \"%s\", %" PRIu32 ".%02" PRIu32
		         " mm, speed %" PRIu32 ", %s, %" PRIu32 " needles",
		         t->preset.id, t->preset.name, t->preset.depth_um / 1000u,
		         t->preset.depth_um % 1000u / 10u, t->preset.speed_level,
		         pl_area_name((enum pl_area)t->preset.area), t->needles);
		break;
	case PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE:
		snprintf(detail, sizeof detail, "depth: %" PRIu32 ".%02" PRIu32 " mm",
		         value / 1000u, value % 1000u / 10u);
		break;
	case PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE:
		snprintf(detail, sizeof detail, "speed: level %" PRIu32, value);
		break;
	case PL__EVENT_KIND__EVENT_KIND_AREA_CHANGE:
		snprintf(detail, sizeof detail, "area: %s",
		         pl_area_name((enum pl_area)value));
		break;
	case PL__EVENT_KIND__EVENT_KIND_PAUSE:
		kind = PL__STATE_KIND__STATE_KIND_IDLE;
		snprintf(detail, sizeof detail, "pause");
		break;
	case PL__EVENT_KIND__EVENT_KIND_RESUME:
		snprintf(detail, sizeof detail, "resume");
		break;
	case PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_OUT:
		kind = PL__STATE_KIND__STATE_KIND_CARTRIDGE;
		snprintf(detail, sizeof detail, "cartridge out");
		break;
	case PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_IN:
		kind = PL__STATE_KIND__STATE_KIND_CARTRIDGE;
		if (value)
			snprintf(detail, sizeof detail, "cartridge in: %" PRIu32 " needles",
			         value);
		else
			snprintf(detail, sizeof detail, "cartridge in: nano");
		break;
	case PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW:
		kind = PL__STATE_KIND__STATE_KIND_BATTERY_LOW;
		snprintf(detail, sizeof detail, "battery low: %" PRIu32 " mV", value);
		break;
	case PL__EVENT_KIND__EVENT_KIND_ERROR:
		kind = PL__STATE_KIND__STATE_KIND_ERROR;
		snprintf(detail, sizeof detail, "error: %" PRIu32 " %s", value,
		         pl_record_error_meaning(e->value));
		break;
	case PL__EVENT_KIND__EVENT_KIND_STOP:
		kind = PL__STATE_KIND__STATE_KIND_IDLE;
		snprintf(detail, sizeof detail, "stop: after %" PRIu32 ".%03" PRIu32 " s",
		         e->offset_ms / 1000u, e->offset_ms % 1000u);
		break;
	default:
		snprintf(detail, sizeof detail, "event %" PRIu32, e->kind);
		break;
	}
	snprintf(line, sizeof line, "treatment %" PRIu32 ".%03" PRIu32 " s: %s",
	         e->offset_ms / 1000u, e->offset_ms % 1000u, detail);
	pl_fw_trace(fw, 2, line);
	pl_fw_state_event(fw, kind, value, detail);
}

static void play(struct treat *t, struct pl_fw *fw, const struct gen_event *e)
{
	switch (e->kind) {
	case PL__EVENT_KIND__EVENT_KIND_START:
	case PL__EVENT_KIND__EVENT_KIND_RESUME:
		t->running = true;
		break;
	case PL__EVENT_KIND__EVENT_KIND_PAUSE:
	case PL__EVENT_KIND__EVENT_KIND_STOP:
		t->running = false;
		break;
	case PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE:
		t->depth = (uint32_t)e->value;
		break;
	case PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE:
		t->speed = (uint32_t)e->value;
		break;
	default:
		break;
	}
	if (t->ndone < MAX_STEPS)
		t->done[t->ndone++] = *e;
	announce(t, fw, e);
}

static int begin(struct treat *t, struct pl_fw *fw)
{
	struct pl_fw_device_info info;
	struct pl_fw_preset presets[PL_FW_MAX_PRESETS];
	size_t npresets = 0;
	uint32_t revision = 0;
	bool rtc = false;
	int64_t utc;

	memset(&info, 0, sizeof info);
	fw->ops->get_info(fw->ctx, &info);
	if (fw->ops->presets_load(fw->ctx, presets, PL_FW_MAX_PRESETS, &npresets,
	                          &revision) != PL_FW_OK)
		npresets = 0;
	t->dur_ms = t->o.duration_s * 1000u;
	plan(t, &info, presets, npresets);
	t->revision = revision;
	utc = fw->ops->rtc_get(fw->ctx, &rtc);
	t->rtc = rtc;
	t->start_ms = rtc ? utc : (int64_t)fw->ops->uptime_ms(fw->ctx);
	t->samples.n = 0;
	t->ndone = 0;
	t->index++;
	t->start_at = pl_time_monotonic_ms();
	t->phase = RUNNING;
	return 0;
}

static void finish(struct treat *t, struct pl_fw *fw, struct flash *f)
{
	struct pl_fw_device_info info;
	struct pl_session_info meta;
	char detail[128], uuid[37];

	memset(&info, 0, sizeof info);
	fw->ops->get_info(fw->ctx, &info);
	const struct gen_params gp = {
		.seed = t->o.seed,
		.serial = info.serial,
		.uuid_serial = t->o.uuid_serial,
		.fw_version = t->o.fw_version,
		.info = &info,
	};
	const struct gen_live in = {
		.preset = &t->preset,
		.preset_revision = t->revision,
		.needles = t->needles,
		.start_ms = t->start_ms,
		.rtc = t->rtc,
		.dur_ms = t->dur_ms,
		.ev = t->done,
		.nev = t->ndone,
		.interval_us = SAMPLE_MS * 1000u,
		.samples = &t->samples,
	};
	if (gen_record_events(f, &gp, &in, &meta) != 0) {
		pl_fw_trace(fw, 0, "treatment: the session could not be recorded");
		pl_fw_state_event(fw, PL__STATE_KIND__STATE_KIND_ERROR, 0,
		                  "the session could not be recorded");
	} else {
		pl_uuid_format(meta.uuid, uuid);
		snprintf(detail, sizeof detail, "session %" PRIu32 " recorded: %s, %zu events",
		         meta.id, uuid, t->ndone);
		pl_fw_trace(fw, 2, detail);
		pl_fw_state_event(fw, PL__STATE_KIND__STATE_KIND_SESSION_RECORDED,
		                  meta.id, detail);
	}
	if (t->o.every_s) {
		t->phase = SCHEDULED;
		t->start_at = pl_time_monotonic_ms() + (int64_t)t->o.every_s * 1000;
	} else {
		t->phase = DONE;
	}
}

int treat_tick(struct treat *t, struct pl_fw *fw, struct flash *f)
{
	int64_t now;
	uint32_t el;

	if (!t || t->phase == DONE)
		return -1;
	now = pl_time_monotonic_ms();
	if (t->phase == WAIT_HOST) {
		if (!fw->host_max_frame)
			return -1; /* no host has finished a handshake yet */
		t->phase = SCHEDULED;
		t->start_at = now + (int64_t)t->o.after_s * 1000;
	}
	if (t->phase == SCHEDULED) {
		if (now < t->start_at)
			return (int)(t->start_at - now);
		begin(t, fw);
		now = t->start_at;
	}
	el = (uint32_t)(now - t->start_at);
	if (el > t->dur_ms)
		el = t->dur_ms;
	/* What is due, in time order; at one instant the step comes first, so
	 * the sample shows what it changed. */
	for (;;) {
		uint32_t ts = (uint32_t)(t->samples.n * SAMPLE_MS);
		uint32_t te = t->next_step < t->nsteps ? t->script[t->next_step].offset_ms
		                                       : UINT32_MAX;

		if (te <= el && te <= ts)
			play(t, fw, &t->script[t->next_step++]);
		else if (ts < t->dur_ms && ts <= el)
			take_sample(t, fw); /* out of memory: the sample is lost */
		else
			break;
	}
	if (t->next_step >= t->nsteps) {
		finish(t, fw, f);
		return t->phase == DONE ? -1 : (int)(t->start_at - now);
	}
	{
		uint32_t ts = (uint32_t)(t->samples.n * SAMPLE_MS);
		uint32_t te = t->script[t->next_step].offset_ms;
		uint32_t next = ts < t->dur_ms && ts < te ? ts : te;
		return next > el ? (int)(next - el) : 0;
	}
}
