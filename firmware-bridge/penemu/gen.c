/*
 * Session records as a pen would log them (brief §2): a treatment of 30-60
 * minutes a few weeks ago, with the preset in force, the cartridge, the
 * technician's adjustments and pauses as events, telemetry sampled at a
 * fixed interval that follows those events, and a summary computed from the
 * same timeline.  The number of samples is chosen so the packed record
 * reaches the requested size.  Everything derives from --seed and the
 * session's sequence number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "penemu.h"
#include "record.pb-c.h"
#include "treat.h"

#define MIN_MS 60000u
#define DAY_MS 86400000LL

/* A stretch of the treatment with constant settings. */
struct seg {
	uint32_t t0, t1;   /* ms since start */
	bool running;
	uint32_t depth_um;
	uint32_t speed;
};

struct timeline {
	Pl__Event *ev;
	size_t nev, cap_ev;
	struct seg *seg;
	size_t nseg, cap_seg;
	/* current state */
	uint32_t seg_start;
	bool running;
	uint32_t depth, speed, area, needles;
	/* derived */
	uint64_t run_ms, strokes;
	uint32_t max_depth, errors;
};

static int add_event(struct timeline *tl, uint32_t t, Pl__EventKind kind,
                     int32_t value)
{
	if (emu_grow((void **)&tl->ev, &tl->cap_ev, tl->nev + 1, sizeof *tl->ev) != 0)
		return -1;
	/* Events are logged in order; never let a computed time step back. */
	if (tl->nev && t < tl->ev[tl->nev - 1].offset_ms)
		t = tl->ev[tl->nev - 1].offset_ms;
	pl__event__init(&tl->ev[tl->nev]);
	tl->ev[tl->nev].offset_ms = t;
	tl->ev[tl->nev].kind = kind;
	tl->ev[tl->nev].value = value;
	tl->nev++;
	return 0;
}

/* Closes the current stretch at t and starts a new one there. */
static int cut(struct timeline *tl, uint32_t t, const uint32_t *rates)
{
	struct seg *s;

	if (t <= tl->seg_start)
		return 0;
	if (emu_grow((void **)&tl->seg, &tl->cap_seg, tl->nseg + 1, sizeof *tl->seg) != 0)
		return -1;
	s = &tl->seg[tl->nseg++];
	s->t0 = tl->seg_start;
	s->t1 = t;
	s->running = tl->running;
	s->depth_um = tl->depth;
	s->speed = tl->speed;
	if (tl->running) {
		uint64_t ms = t - tl->seg_start;
		tl->run_ms += ms;
		tl->strokes += ms * rates[tl->speed - 1] / 1000u;
		if (tl->depth > tl->max_depth)
			tl->max_depth = tl->depth;
	}
	tl->seg_start = t;
	return 0;
}

/* Battery voltage (mV) at time t: a slow linear drain, sagging under load. */
struct battery {
	uint32_t start_mv, drain_mv, dur_ms;
};

static uint32_t battery_at(const struct battery *b, uint32_t t)
{
	return b->start_mv - (uint32_t)((uint64_t)b->drain_mv * t / b->dur_ms);
}

#define BATTERY_LOW_MV 3550u

static int build_timeline(struct timeline *tl, struct emu_rng *r,
                          const struct pl_fw_device_info *info,
                          const struct pl_fw_preset *p, uint32_t dur,
                          const struct battery *bat)
{
	const uint32_t *rates = info->stroke_rate_hz;
	uint32_t step = info->depth_step_um ? info->depth_step_um : 250;
	uint32_t lock = info->slow_lock_depth_um ? info->slow_lock_depth_um
	                                         : UINT32_MAX;
	uint32_t t, t_low = UINT32_MAX;
	bool low_logged = false;

	if (bat->start_mv - bat->drain_mv < BATTERY_LOW_MV)
		t_low = (uint32_t)((uint64_t)(bat->start_mv - BATTERY_LOW_MV) *
		                   dur / bat->drain_mv);
	tl->depth = p->depth_um;
	tl->speed = p->speed_level;
	tl->area = p->area;
	tl->running = false;
	tl->seg_start = 0;

	/* Cartridge clicked in, a few seconds of getting ready, start. */
	if (add_event(tl, 0, PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_IN,
	              (int32_t)tl->needles))
		return -1;
	t = emu_rng_range(r, 2000, 15000);
	if (cut(tl, t, rates) ||
	    add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_START, (int32_t)p->id))
		return -1;
	tl->running = true;

	while (t + 90000u < dur) {
		uint32_t next = t + emu_rng_range(r, 20000, 200000);
		uint32_t roll;

		if (next > dur - 30000u)
			next = dur - 30000u;
		if (cut(tl, next, rates))
			return -1;
		t = next;
		if (!low_logged && t >= t_low) {
			if (add_event(tl, t_low, PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW,
			              (int32_t)battery_at(bat, t_low)))
				return -1;
			low_logged = true;
		}
		roll = emu_rng_range(r, 0, 99);
		if (roll < 28) {
			/* Depth one step up or down, within the pen's range. */
			uint32_t d = tl->depth;
			if ((emu_rng_next(r) & 1) && d + step <= info->depth_max_um)
				d += step;
			else if (d >= info->depth_min_um + step)
				d -= step;
			else
				d += step;
			if (d >= lock && tl->speed != 1) {
				tl->speed = 1;
				if (add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE, 1))
					return -1;
			}
			tl->depth = d;
			if (add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE,
			              (int32_t)d))
				return -1;
		} else if (roll < 46) {
			uint32_t s = tl->speed;
			if (tl->depth >= lock)
				continue; /* slow lock: only level 1 */
			if ((emu_rng_next(r) & 1) && s < info->speed_levels)
				s++;
			else if (s > 1)
				s--;
			else
				s++;
			if (s > info->speed_levels)
				continue;
			tl->speed = s;
			if (add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE,
			              (int32_t)s))
				return -1;
		} else if (roll < 60) {
			uint32_t a = emu_rng_range(r, PL__AREA__AREA_FOREHEAD,
			                           PL__AREA__AREA_OTHER);
			if (a == tl->area)
				continue;
			tl->area = a;
			if (add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_AREA_CHANGE,
			              (int32_t)a))
				return -1;
		} else if (roll < 84 || (roll < 88 && tl->errors < 2)) {
			/* A pause (or a fault the pen stopped for), sometimes
			 * with a fresh cartridge. */
			uint32_t len = emu_rng_range(r, 15000, 150000);
			if (roll >= 84) {
				tl->errors++;
				if (add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_ERROR,
				              (int32_t)emu_rng_range(r, 1, 4)))
					return -1;
			}
			if (t + len > dur - 20000u)
				len = dur - 20000u - t;
			if (add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_PAUSE, 0))
				return -1;
			tl->running = false;
			if (len > 20000u && emu_rng_range(r, 0, 4) == 0) {
				uint32_t out = t + emu_rng_range(r, 2000, 6000);
				if (add_event(tl, out, PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_OUT, 0) ||
				    add_event(tl, out + emu_rng_range(r, 5000, 12000),
				              PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_IN,
				              (int32_t)tl->needles))
					return -1;
			}
			if (cut(tl, t + len, rates))
				return -1;
			t += len;
			tl->running = true;
			if (add_event(tl, t, PL__EVENT_KIND__EVENT_KIND_RESUME, 0))
				return -1;
		}
	}
	if (!low_logged && t_low < dur &&
	    add_event(tl, t_low, PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW,
	              (int32_t)battery_at(bat, t_low)))
		return -1;
	if (cut(tl, dur, rates))
		return -1;
	tl->running = false;
	return add_event(tl, dur, PL__EVENT_KIND__EVENT_KIND_STOP, 0);
}

int gen_samples_reserve(struct gen_samples *s, size_t n)
{
	uint32_t **series[] = {&s->depth_um, &s->current_ma, &s->battery_mv};
	size_t cap = s->cap;

	/* The series grow alike, so they reach the same capacity; cap moves
	 * only when all three have. */
	for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
		cap = s->cap;
		if (emu_grow((void **)series[i], &cap, n, sizeof **series[i]) != 0)
			return -1;
	}
	s->cap = cap;
	return 0;
}

void gen_samples_put(struct gen_samples *s, size_t i, const struct gen_sample *g)
{
	s->depth_um[i] = g->depth_um;
	s->current_ma[i] = g->current_ma;
	s->battery_mv[i] = g->battery_mv;
}

void gen_samples_free(struct gen_samples *s)
{
	free(s->depth_um);
	free(s->current_ma);
	free(s->battery_mv);
	memset(s, 0, sizeof *s);
}

/* One telemetry sample: the needle stops a little short of the set depth,
 * never beyond it (the depth stop is mechanical), the motor draws more at
 * higher speed and depth, and the cell sags under load.  noise is one draw
 * of the generator. */
void gen_sample(bool running, uint32_t depth_um, uint32_t speed,
                uint32_t battery_mv, uint64_t noise, struct gen_sample *out)
{
	uint32_t mv = battery_mv + (uint32_t)(noise % 9u) - 4u;

	if (running) {
		uint32_t d = depth_um - (uint32_t)((noise >> 8) % 26u);
		int32_t ma = 170 + (int32_t)speed * 50 + (int32_t)(d / 25u) +
		             (int32_t)((noise >> 16) % 41u) - 20;
		if (ma < 200)
			ma = 200;
		if (ma > 600)
			ma = 600;
		out->depth_um = d;
		out->current_ma = (uint32_t)ma;
		out->battery_mv = mv - 35u; /* sag under motor load */
	} else {
		out->depth_um = 0;
		out->current_ma = 8u + (uint32_t)((noise >> 16) % 13u);
		out->battery_mv = mv;
	}
}

/* Fills n samples taken every interval_us along the timeline. */
static int fill_samples(struct gen_samples *sm, size_t n, uint32_t interval_us,
                        const struct timeline *tl, const struct battery *bat,
                        uint64_t noise_seed)
{
	struct emu_rng r;
	size_t si = 0;

	if (gen_samples_reserve(sm, n) != 0)
		return -1;
	emu_rng_seed(&r, noise_seed);
	for (size_t i = 0; i < n; i++) {
		uint32_t t = (uint32_t)((uint64_t)i * interval_us / 1000u);
		const struct seg *s;
		struct gen_sample g;

		while (si + 1 < tl->nseg && t >= tl->seg[si].t1)
			si++;
		s = &tl->seg[si];
		gen_sample(s->running, s->depth_um, s->speed, battery_at(bat, t),
		           emu_rng_next(&r), &g);
		gen_samples_put(sm, i, &g);
	}
	sm->n = n;
	return 0;
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL)) {
		fprintf(stderr, "penemu: SHA-256 failed\n");
		abort(); /* libcrypto without SHA-256 cannot happen in practice */
	}
}

static const uint32_t cartridge_needles[] = {12, 24, 36, 42, 0};

/* FNV-1a, to fold a serial into a seed. */
static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; s && *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/* A session's UUID: 16 draws of the session's generator (as ever, so the
 * rest of the record does not move) mixed with a stream derived from the
 * serial (or --uuid-serial) and the sequence number, so two pens on one
 * seed record different UUIDs, and a pen told to derive them as if it were
 * another records that pen's. */
static void make_uuid(struct emu_rng *r, const struct gen_params *gp,
                      uint32_t seq, uint8_t uuid[16])
{
	const char *who = gp->uuid_serial ? gp->uuid_serial : gp->serial;
	uint64_t x = fnv1a(who) ^ ((uint64_t)seq * 0xd6e8feb86659fd93ull);
	uint64_t k[2];

	k[0] = emu_splitmix(&x);
	k[1] = emu_splitmix(&x);
	for (int i = 0; i < 16; i++)
		uuid[i] = (uint8_t)emu_rng_next(r) ^ (uint8_t)(k[i / 8] >> (8 * (i % 8)));
	uuid[6] = (uint8_t)((uuid[6] & 0x0fu) | 0x40u); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3fu) | 0x80u); /* RFC 4122 variant */
}

/* The cartridge's needle length, lot and tag UID, from r. */
static void make_cartridge(struct emu_rng *r, const struct gen_params *gp,
                           uint32_t needles, Pl__Cartridge *cart, char lot[16],
                           uint8_t uid[7])
{
	cart->needle_count = needles;
	cart->needle_length_um = gp->info->depth_max_um >= 2500 ? 3000 : 2500;
	snprintf(lot, 16, "L24-%04u", emu_rng_range(r, 0, 9999));
	cart->lot = lot;
	uid[0] = 0x04; /* NXP, as on NTAG cartridge tags */
	for (size_t i = 1; i < 7; i++)
		uid[i] = (uint8_t)emu_rng_next(r);
	cart->uid.data = uid;
	cart->uid.len = 7;
}

static void make_preset(const struct pl_fw_preset *p, Pl__Preset *pp)
{
	pp->id = p->id;
	pp->name = (char *)p->name;
	pp->depth_um = p->depth_um;
	pp->speed_level = p->speed_level;
	pp->area = (Pl__Area)p->area;
	pp->needle_count = p->needle_count;
	pp->max_duration_s = p->max_duration_s;
}

/* A record's messages; rec points into the others. */
struct record_msgs {
	Pl__SessionRecord rec;
	Pl__Preset preset;
	Pl__Cartridge cart;
	Pl__Telemetry tel;
	Pl__Summary sum;
	uint8_t uuid[16], uid[7];
	char lot[16];
};

/* All a record holds but its times, events and telemetry: who recorded
 * it, the preset in force, the cartridge (drawn from r) and the summary
 * of tl.  m->uuid is the caller's (make_uuid draws it earlier from r). */
static void record_msgs_init(struct record_msgs *m, struct emu_rng *r,
                             const struct gen_params *gp, uint32_t seq,
                             const struct timeline *tl,
                             const struct pl_fw_preset *p,
                             uint32_t preset_revision, uint32_t needles)
{
	pl__session_record__init(&m->rec);
	pl__preset__init(&m->preset);
	pl__cartridge__init(&m->cart);
	pl__telemetry__init(&m->tel);
	pl__summary__init(&m->sum);
	make_preset(p, &m->preset);
	make_cartridge(r, gp, needles, &m->cart, m->lot, m->uid);
	m->sum.run_time_s = (uint32_t)(tl->run_ms / 1000u);
	m->sum.strokes = tl->strokes;
	m->sum.max_depth_um = tl->max_depth;
	m->sum.errors = tl->errors;

	m->rec.format = 1;
	m->rec.uuid.data = m->uuid;
	m->rec.uuid.len = sizeof m->uuid;
	m->rec.seq = seq;
	m->rec.serial = (char *)gp->serial;
	m->rec.preset = &m->preset;
	m->rec.preset_revision = preset_revision;
	m->rec.cartridge = &m->cart;
	m->rec.telemetry = &m->tel;
	m->rec.summary = &m->sum;
	m->rec.fw_version = (char *)gp->fw_version;
}

/* The samples as the record's telemetry (the caller sets the interval). */
static void set_samples(Pl__Telemetry *tel, const struct gen_samples *s)
{
	tel->n_depth_um = tel->n_current_ma = tel->n_battery_mv = s->n;
	tel->depth_um = s->depth_um;
	tel->current_ma = s->current_ma;
	tel->battery_mv = s->battery_mv;
}

/* Packs rec (size bytes, as measured) and stores it with its digest; *meta
 * gets the id the flash assigned. */
static int store_record(struct flash *f, const Pl__SessionRecord *rec,
                        size_t size, uint64_t strokes, uint64_t run_s,
                        struct pl_session_info *meta)
{
	uint8_t *buf = malloc(size ? size : 1);
	int rc = -1;

	if (!buf)
		return -1;
	if (pl__session_record__pack(rec, buf) != size) {
		fprintf(stderr, "penemu: packing a session record failed\n");
		goto out;
	}
	memset(meta, 0, sizeof *meta);
	memcpy(meta->uuid, rec->uuid.data, sizeof meta->uuid);
	meta->seq = rec->seq;
	meta->start_ms = rec->start_ms;
	meta->end_ms = rec->end_ms;
	meta->rtc_time = rec->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
	sha256(buf, size, meta->sha256);
	if (flash_session_add(f, meta, buf, size, strokes, run_s) != 0)
		goto out;
	rc = 0;
out:
	free(buf);
	return rc;
}

static int gen_one(struct flash *f, const struct gen_params *gp, unsigned index,
                   uint32_t seq, const struct pl_fw_preset *presets,
                   size_t npresets, uint32_t preset_revision)
{
	static const struct pl_fw_preset fallback = {1, "Default", 1000, 2, 5, 12, 0};
	struct emu_rng r;
	struct timeline tl;
	struct gen_samples sm;
	struct battery bat;
	const struct pl_fw_preset *p;
	struct record_msgs m;
	Pl__Event **evp = NULL;
	struct pl_session_info meta;
	uint32_t dur;
	int64_t start, slot;
	size_t n = 0, base, size = 0;
	uint64_t noise_seed;
	int rc = -1;

	memset(&tl, 0, sizeof tl);
	memset(&sm, 0, sizeof sm);
	emu_rng_seed(&r, gp->seed * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seq << 17));
	noise_seed = emu_rng_next(&r);

	make_uuid(&r, gp, seq, m.uuid);

	/* Spread the sessions over four weeks ending two weeks ago, in clinic
	 * hours when each gets a day or more. */
	slot = 28 * DAY_MS / (int64_t)(gp->count ? gp->count : 1);
	if (slot >= DAY_MS) {
		int64_t day0 = (gp->now_ms - 42 * DAY_MS) / DAY_MS * DAY_MS;
		start = day0 + (int64_t)index * (slot / DAY_MS) * DAY_MS +
		        8 * 3600000LL + (int64_t)emu_rng_range(&r, 0, 9 * 3600) * 1000;
	} else {
		int64_t room = slot - 65 * (int64_t)MIN_MS;
		start = gp->now_ms - 42 * DAY_MS + (int64_t)index * slot +
		        (room > 0 ? (int64_t)(emu_rng_next(&r) % (uint64_t)room) : 0);
	}
	dur = emu_rng_range(&r, 30 * MIN_MS, 60 * MIN_MS);

	p = npresets ? &presets[emu_rng_range(&r, 0, (uint32_t)npresets - 1)] : &fallback;
	tl.needles = p->needle_count;
	{
		bool known = false;
		for (size_t i = 0; i < sizeof cartridge_needles / sizeof cartridge_needles[0]; i++)
			known |= cartridge_needles[i] == p->needle_count;
		if (!known)
			tl.needles = cartridge_needles[emu_rng_range(&r, 0, 4)];
	}
	bat.start_mv = emu_rng_range(&r, 3900, 4180);
	bat.drain_mv = emu_rng_range(&r, 150, 480);
	bat.dur_ms = dur;
	if (build_timeline(&tl, &r, gp->info, p, dur, &bat) != 0)
		goto out;

	record_msgs_init(&m, &r, gp, seq, &tl, p, preset_revision, tl.needles);
	evp = malloc(tl.nev * sizeof *evp);
	if (!evp)
		goto out;
	for (size_t i = 0; i < tl.nev; i++)
		evp[i] = &tl.ev[i];
	m.rec.start_ms = start;
	m.rec.end_ms = start + dur;
	m.rec.time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	m.rec.n_events = tl.nev;
	m.rec.events = evp;

	/* Size the telemetry: measure the record without samples, guess
	 * ~6 bytes a sample, then correct from what packing really gives. */
	m.tel.interval_us = 1000000;
	base = pl__session_record__get_packed_size(&m.rec);
	n = gp->target_bytes > base ? (gp->target_bytes - base) / 6 : 0;
	for (int attempt = 0; attempt < 8; attempt++) {
		double per;
		long long delta;

		m.tel.interval_us = n ? (uint32_t)((uint64_t)dur * 1000u / n) : 1000000;
		if (m.tel.interval_us == 0)
			m.tel.interval_us = 1;
		if (fill_samples(&sm, n, m.tel.interval_us, &tl, &bat, noise_seed) != 0)
			goto out;
		set_samples(&m.tel, &sm);
		size = pl__session_record__get_packed_size(&m.rec);
		delta = (long long)gp->target_bytes - (long long)size;
		if (n == 0 || llabs(delta) * 400 <= (long long)gp->target_bytes)
			break; /* within 0.25 % */
		per = (double)(size - base) / (double)n;
		if ((long long)n + (long long)(delta / per) < 0)
			n = 0;
		else
			n = (size_t)((long long)n + (long long)(delta / per));
	}

	if (store_record(f, &m.rec, size, tl.strokes, tl.run_ms / 1000u, &meta) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "penemu: could not generate session %u\n", seq);
	free(evp);
	free(tl.ev);
	free(tl.seg);
	gen_samples_free(&sm);
	return rc;
}

int gen_sessions(struct flash *f, const struct gen_params *gp)
{
	struct pl_fw_preset presets[PL_FW_MAX_PRESETS];
	size_t npresets = 0;
	uint32_t revision = 0;
	struct flash_meta m;

	if (flash_meta(f, &m) != 0 ||
	    flash_presets_load(f, presets, PL_FW_MAX_PRESETS, &npresets,
	                       &revision) != PL_FW_OK)
		return -1;
	for (unsigned i = 0; i < gp->count; i++)
		if (gen_one(f, gp, i, m.next_seq + i, presets, npresets, revision) != 0)
			return -1;
	return 0;
}

int gen_record_events(struct flash *f, const struct gen_params *gp,
                      const struct gen_live *in, struct pl_session_info *meta)
{
	const uint32_t *rates = gp->info->stroke_rate_hz;
	struct emu_rng r;
	struct timeline tl;
	struct flash_meta fm;
	struct record_msgs m;
	Pl__Event *ev = NULL, **evp = NULL;
	uint32_t seq;
	int rc = -1;

	if (flash_meta(f, &fm) != 0)
		return -1;
	seq = fm.next_seq;
	memset(&tl, 0, sizeof tl);
	emu_rng_seed(&r, gp->seed * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seq << 17));
	(void)emu_rng_next(&r); /* the noise seed of a generated session */
	make_uuid(&r, gp, seq, m.uuid);

	/* The summary follows the events: the motor runs from START and
	 * RESUME to PAUSE and STOP, at the depth and speed last set. */
	tl.depth = in->preset->depth_um;
	tl.speed = in->preset->speed_level ? in->preset->speed_level : 1;
	ev = calloc(in->nev ? in->nev : 1, sizeof *ev);
	evp = calloc(in->nev ? in->nev : 1, sizeof *evp);
	if (!ev || !evp)
		goto out;
	for (size_t i = 0; i < in->nev; i++) {
		const struct gen_event *e = &in->ev[i];

		pl__event__init(&ev[i]);
		ev[i].offset_ms = e->offset_ms;
		ev[i].kind = (Pl__EventKind)e->kind;
		ev[i].value = e->value;
		evp[i] = &ev[i];
		if (cut(&tl, e->offset_ms, rates) != 0)
			goto out;
		switch (e->kind) {
		case PL__EVENT_KIND__EVENT_KIND_START:
		case PL__EVENT_KIND__EVENT_KIND_RESUME:
			tl.running = true;
			break;
		case PL__EVENT_KIND__EVENT_KIND_PAUSE:
		case PL__EVENT_KIND__EVENT_KIND_STOP:
			tl.running = false;
			break;
		case PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE:
			tl.depth = (uint32_t)e->value;
			break;
		case PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE:
			if (e->value >= 1 && e->value <= (int32_t)PL_MAX_SPEED_LEVELS)
				tl.speed = (uint32_t)e->value;
			break;
		case PL__EVENT_KIND__EVENT_KIND_ERROR:
			tl.errors++;
			break;
		default:
			break;
		}
	}
	if (cut(&tl, in->dur_ms, rates) != 0)
		goto out;

	record_msgs_init(&m, &r, gp, seq, &tl, in->preset, in->preset_revision,
	                 in->needles);
	m.rec.start_ms = in->start_ms;
	m.rec.end_ms = in->start_ms + in->dur_ms;
	m.rec.time_source = in->rtc ? PL__TIME_SOURCE__TIME_SOURCE_RTC
	                            : PL__TIME_SOURCE__TIME_SOURCE_UPTIME;
	m.rec.n_events = in->nev;
	m.rec.events = evp;
	m.tel.interval_us = in->interval_us;
	set_samples(&m.tel, in->samples);
	rc = store_record(f, &m.rec, pl__session_record__get_packed_size(&m.rec),
	                  tl.strokes, tl.run_ms / 1000u, meta);
out:
	if (rc != 0)
		fprintf(stderr, "penemu: could not record the treatment as session %u\n",
		        seq);
	free(ev);
	free(evp);
	free(tl.ev);
	free(tl.seg);
	return rc;
}
